//! Snapshots: one raw NV12 frame as a full-size JPEG (`jpeg-encoder`, already used
//! for thumbnails), for a camera's latest frame on request.

/// Why a frame could not be turned into a JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Frame(String),
    #[error("JPEG encoding: {0}")]
    Jpeg(String),
}

/// JPEG quality of snapshots (1-100).
pub const QUALITY: u8 = 85;

/// Encodes a tightly packed NV12 frame as a JPEG.
pub fn nv12_to_jpeg(nv12: &[u8], width: u32, height: u32) -> Result<Vec<u8>, SnapshotError> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || w % 2 != 0 || h % 2 != 0 || nv12.len() != w * h * 3 / 2 {
        return Err(SnapshotError::Frame(format!(
            "{} bytes is not an NV12 frame of {width}x{height}",
            nv12.len()
        )));
    }
    let (Ok(w16), Ok(h16)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(SnapshotError::Frame(format!(
            "{width}x{height} is too large for JPEG"
        )));
    };
    let (y, uv) = nv12.split_at(w * h);
    // Interleaved Y Cb Cr, the chroma of each 2×2 block repeated.
    let mut ycc = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let luma = &y[row * w..(row + 1) * w];
        let chroma = &uv[(row / 2) * w..(row / 2 + 1) * w];
        for (x, &l) in luma.iter().enumerate() {
            let c = x & !1;
            ycc.extend_from_slice(&[l, chroma[c], chroma[c + 1]]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, QUALITY)
        .encode(&ycc, w16, h16, jpeg_encoder::ColorType::Ycbcr)
        .map_err(|e| SnapshotError::Jpeg(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_becomes_a_decodable_jpeg_of_its_size() {
        let (w, h) = (64usize, 32usize);
        let mut frame = vec![128u8; w * h * 3 / 2];
        for (i, p) in frame[..w * h].iter_mut().enumerate() {
            *p = (i % w * 4) as u8;
        }
        let jpeg = nv12_to_jpeg(&frame, w as u32, h as u32).unwrap();
        let mut d = zune_jpeg::JpegDecoder::new(&jpeg);
        let pixels = d.decode().unwrap();
        assert_eq!(d.dimensions(), Some((w, h)));
        // A grey ramp: the left edge dark, the right edge bright.
        assert!(
            pixels[0] < 30 && pixels[(w - 1) * 3] > 220,
            "{} {}",
            pixels[0],
            pixels[(w - 1) * 3]
        );
    }

    #[test]
    fn a_wrong_size_is_an_error() {
        assert!(nv12_to_jpeg(&[0; 10], 64, 32).is_err());
        assert!(nv12_to_jpeg(&[], 0, 0).is_err());
    }
}
