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
                yuv_to_rgb(l, u, v)
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
        let xs = source_columns(fw, ow);
        let cw = 2 * fw.div_ceil(2);
        for oy in 0..oh {
            let sy = source_index(oy, fh, oh);
            // NV12 of the checked size: this row's luma and chroma, sliced once.
            let rows = match self {
                Self::Nv12(d) => d
                    .get(sy * fw..(sy + 1) * fw)
                    .zip(d.get(fw * fh + (sy / 2) * cw..).and_then(|c| c.get(..cw))),
                Self::Rgb(_) => None,
            };
            match rows {
                Some((luma, chroma)) => {
                    for &sx in &xs {
                        let l = i32::from(luma[sx]);
                        let u = i32::from(chroma[sx & !1]) - 128;
                        let v = i32::from(chroma[(sx & !1) + 1]) - 128;
                        out.extend_from_slice(&yuv_to_rgb(l, u, v));
                    }
                }
                None => {
                    for &sx in &xs {
                        out.extend_from_slice(&self.rgb_at(sx, sy, fw, fh));
                    }
                }
            }
        }
    }

    /// Samples the `fw`×`fh` frame into `out` as NV12 of `ow`×`oh` (nearest
    /// neighbour, as [`Pixels::sample`]; each 2×2 block's chroma from its top
    /// left pixel's source). An NV12 frame of the output's size is copied as it
    /// is: keeping a frame costs a copy, and only the frames a strobe composite
    /// uses are ever turned into RGB. `None` for RGB frames.
    pub fn sample_nv12(
        &self,
        fw: u32,
        fh: u32,
        ow: usize,
        oh: usize,
        out: &mut Vec<u8>,
    ) -> Option<()> {
        let Self::Nv12(d) = self else {
            return None;
        };
        let (fw, fh) = (fw as usize, fh as usize);
        let (cw, ch) = (ow.div_ceil(2), oh.div_ceil(2));
        out.clear();
        if (ow, oh) == (fw, fh) && d.len() == fw * fh + 2 * cw * ch {
            out.extend_from_slice(d);
            return Some(());
        }
        out.reserve(ow * oh + 2 * cw * ch);
        let xs = source_columns(fw, ow);
        for oy in 0..oh {
            let row = source_index(oy, fh, oh) * fw;
            out.extend(xs.iter().map(|&sx| d.get(row + sx).copied().unwrap_or(0)));
        }
        let src_cw = 2 * fw.div_ceil(2);
        for cy in 0..ch {
            let row = fw * fh + (source_index(2 * cy, fh, oh) / 2) * src_cw;
            for cx in 0..cw {
                let ci = row + (xs[2 * cx] & !1);
                out.push(d.get(ci).copied().unwrap_or(128));
                out.push(d.get(ci + 1).copied().unwrap_or(128));
            }
        }
        Some(())
    }
}

/// The source index of output index `o` when `src` pixels are sampled to `out`:
/// nearest neighbour with pixel centres aligned.
fn source_index(o: usize, src: usize, out: usize) -> usize {
    ((2 * o + 1) * src / (2 * out)).min(src.saturating_sub(1))
}

/// The source column of each of `ow` output columns, worked out once per
/// sampling (a division per pixel was most of the cost of a frame's tagging).
fn source_columns(fw: usize, ow: usize) -> Vec<usize> {
    (0..ow).map(|ox| source_index(ox, fw, ow)).collect()
}

/// Full-range BT.601 luma and chroma (about grey) to RGB.
#[inline]
fn yuv_to_rgb(l: i32, u: i32, v: i32) -> [u8; 3] {
    [
        (l + ((359 * v) >> 8)).clamp(0, 255) as u8,
        (l - ((88 * u + 183 * v) >> 8)).clamp(0, 255) as u8,
        (l + ((454 * u) >> 8)).clamp(0, 255) as u8,
    ]
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

    /// A frame kept as NV12 and turned into RGB later is the RGB sampled from
    /// it at once: exactly at the frame's own size, and, scaled, on every
    /// pixel whose chroma is its 2×2 block's.
    #[test]
    fn a_frame_kept_as_nv12_gives_the_same_rgb() {
        let (w, h) = (6usize, 4usize);
        let mut nv12: Vec<u8> = (0..w * h).map(|i| (i * 9) as u8).collect();
        nv12.extend((0..w * h / 2).map(|i| (60 + i * 13) as u8));
        let frame = Pixels::Nv12(&nv12);
        let (mut kept, mut later, mut direct) = (Vec::new(), Vec::new(), Vec::new());
        for (ow, oh) in [(w, h), (4, 2), (12, 8)] {
            frame
                .sample_nv12(w as u32, h as u32, ow, oh, &mut kept)
                .expect("NV12");
            assert!(Pixels::Nv12(&kept).check(ow as u32, oh as u32).is_ok());
            Pixels::Nv12(&kept).sample(ow as u32, oh as u32, ow, oh, &mut later);
            frame.sample(w as u32, h as u32, ow, oh, &mut direct);
            assert_eq!(later.len(), direct.len());
            for y in (0..oh).step_by(2) {
                for x in (0..ow).step_by(2) {
                    let i = (y * ow + x) * 3;
                    assert_eq!(later[i..i + 3], direct[i..i + 3], "{ow}x{oh} at {x},{y}");
                }
            }
            if (ow, oh) == (w, h) {
                assert_eq!(kept, nv12);
                assert_eq!(later, direct);
            }
        }
        assert!(
            Pixels::Rgb(&[0; 3])
                .sample_nv12(1, 1, 1, 1, &mut kept)
                .is_none()
        );
    }
}
