//! Frame pixels handed to the tagger (NV12 or packed RGB at the camera's size) and
//! nearest-neighbour sampling of them into small RGB images for composites and
//! thumbnails.

use super::TaggingError;

/// A frame's pixels at the camera's full size.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// Y plane then interleaved UV (full-range BT.601), `w×h×3/2` bytes.
    Nv12(&'a [u8]),
    /// Packed RGB, `w×h×3` bytes.
    Rgb(&'a [u8]),
}

impl Pixels<'_> {
    /// Errors unless the buffer holds a `w`×`h` frame.
    pub fn check(&self, w: u32, h: u32) -> Result<(), TaggingError> {
        let (w, h) = (w as usize, h as usize);
        let (need, what) = match self {
            Self::Nv12(_) => (w * h + 2 * w.div_ceil(2) * h.div_ceil(2), "NV12"),
            Self::Rgb(_) => (w * h * 3, "RGB"),
        };
        let got = match self {
            Self::Nv12(d) | Self::Rgb(d) => d.len(),
        };
        if got < need {
            return Err(TaggingError::Pixels(format!(
                "{what} frame of {w}x{h} needs {need} bytes, got {got}"
            )));
        }
        Ok(())
    }

    /// RGB of pixel (`x`, `y`) of a `w`-wide frame (checked to be in range).
    #[inline]
    fn rgb_at(&self, x: usize, y: usize, w: usize, h: usize) -> [u8; 3] {
        match self {
            Self::Rgb(d) => {
                let i = (y * w + x) * 3;
                d.get(i..i + 3).map_or([0; 3], |p| [p[0], p[1], p[2]])
            }
            Self::Nv12(d) => {
                let l = i32::from(d.get(y * w + x).copied().unwrap_or(0));
                let ci = w * h + (y / 2) * 2 * w.div_ceil(2) + (x & !1);
                let u = i32::from(d.get(ci).copied().unwrap_or(128)) - 128;
                let v = i32::from(d.get(ci + 1).copied().unwrap_or(128)) - 128;
                [
                    (l + ((359 * v) >> 8)).clamp(0, 255) as u8,
                    (l - ((88 * u + 183 * v) >> 8)).clamp(0, 255) as u8,
                    (l + ((454 * u) >> 8)).clamp(0, 255) as u8,
                ]
            }
        }
    }

    /// Chroma of pixel (`x`, `y`) of a `w`×`h` frame as (U, V) about grey
    /// (full-range BT.601, each −128..127); grey outside the buffer.
    #[inline]
    pub fn uv_at(&self, x: usize, y: usize, w: usize, h: usize) -> [i32; 2] {
        match self {
            Self::Nv12(d) => {
                let ci = w * h + (y / 2) * 2 * w.div_ceil(2) + (x & !1);
                let u = i32::from(d.get(ci).copied().unwrap_or(128)) - 128;
                let v = i32::from(d.get(ci + 1).copied().unwrap_or(128)) - 128;
                [u, v]
            }
            Self::Rgb(d) => {
                let i = (y * w + x) * 3;
                let Some(p) = d.get(i..i + 3) else {
                    return [0, 0];
                };
                let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
                [
                    (-43 * r - 85 * g + 128 * b) >> 8,
                    (128 * r - 107 * g - 21 * b) >> 8,
                ]
            }
        }
    }

    /// Samples the `fw`×`fh` frame into `out` (`ow`×`oh` packed RGB), nearest
    /// neighbour with pixel centres aligned.
    pub fn sample(&self, fw: u32, fh: u32, ow: usize, oh: usize, out: &mut Vec<u8>) {
        let (fw, fh) = (fw as usize, fh as usize);
        out.clear();
        out.reserve(ow * oh * 3);
        for oy in 0..oh {
            let sy = ((2 * oy + 1) * fh / (2 * oh)).min(fh.saturating_sub(1));
            for ox in 0..ow {
                let sx = ((2 * ox + 1) * fw / (2 * ow)).min(fw.saturating_sub(1));
                out.extend_from_slice(&self.rgb_at(sx, sy, fw, fh));
            }
        }
    }
}

/// Encodes packed RGB as PNG in memory.
pub fn png_rgb(w: usize, h: usize, rgb: &[u8]) -> Result<Vec<u8>, TaggingError> {
    let mut bytes = Vec::new();
    let (w32, h32) = (
        u32::try_from(w).map_err(|e| TaggingError::Strobe(e.to_string()))?,
        u32::try_from(h).map_err(|e| TaggingError::Strobe(e.to_string()))?,
    );
    let mut enc = png::Encoder::new(&mut bytes, w32, h32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc
        .write_header()
        .map_err(|e| TaggingError::Strobe(format!("PNG: {e}")))?;
    writer
        .write_image_data(rgb)
        .and_then(|()| writer.finish())
        .map_err(|e| TaggingError::Strobe(format!("PNG: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_grey_stays_grey() {
        let nv12 = [100u8, 100, 100, 100, 128, 128];
        assert!(Pixels::Nv12(&nv12).check(2, 2).is_ok());
        assert!(Pixels::Nv12(&nv12[..5]).check(2, 2).is_err());
        assert!(Pixels::Rgb(&nv12).check(2, 2).is_err());
        let mut out = Vec::new();
        Pixels::Nv12(&nv12).sample(2, 2, 1, 1, &mut out);
        assert_eq!(out, vec![100, 100, 100]);
        assert_eq!(Pixels::Nv12(&nv12).uv_at(1, 1, 2, 2), [0, 0]);
        let red = [70u8, 70, 70, 70, 100, 200];
        assert_eq!(Pixels::Nv12(&red).uv_at(0, 1, 2, 2), [-28, 72]);
        let rgb = [1u8, 2, 3, 4, 5, 6];
        Pixels::Rgb(&rgb).sample(2, 1, 4, 1, &mut out);
        assert_eq!(out, vec![1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    }
}
