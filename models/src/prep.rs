//! Frames → model input in one pass: every output value is sampled from the source
//! frame (bilinear, pixel centres aligned), colour-converted and normalised through a
//! per-channel lookup table, and written straight into the NCHW tensor. No
//! intermediate image at the frame's size (or any size) is made.
//!
//! Downscaling samples 2×2 source pixels per output pixel (no area averaging): at
//! 1920×1080 → 256×144 thin details alias, which is the price of staying far under
//! 1 ms per frame. At the model's own size the input is copied exactly.

use crate::ModelError;
use crate::manifest::{ColorOrder, InputSpec};

/// Fixed-point bilinear taps along one axis: for each output index the two source
/// indices and the weight (0..=256) of the second.
fn taps(src: usize, dst: usize) -> Vec<(usize, usize, u32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(src - 1);
            let w = ((s - i0 as f64) * 256.0).round() as u32;
            (i0, i1, w)
        })
        .collect()
}

/// Value in the model's units for each byte value, per model channel.
fn luts(spec: &InputSpec) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 / 255.0 - spec.mean[c]) / spec.std[c];
        }
    }
    lut
}

/// Which model plane receives source R, G and B.
fn planes(spec: &InputSpec) -> [usize; 3] {
    match spec.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    }
}

fn check(
    len: usize,
    need: usize,
    what: &str,
    width: usize,
    height: usize,
    out: &[f32],
    spec: &InputSpec,
) -> Result<(), ModelError> {
    if width == 0 || height == 0 {
        return Err(ModelError::Image(format!(
            "{what} frame of {width}x{height} has no pixels"
        )));
    }
    if len < need {
        return Err(ModelError::Image(format!(
            "{what} frame of {width}x{height} needs {need} bytes, got {len}"
        )));
    }
    let want = 3 * spec.width as usize * spec.height as usize;
    if out.len() != want {
        return Err(ModelError::Mismatch(format!(
            "input buffer holds {} values, the model takes {want}",
            out.len()
        )));
    }
    Ok(())
}

#[inline]
fn lerp(a: u8, b: u8, w: u32) -> u32 {
    u32::from(a) * (256 - w) + u32::from(b) * w
}

/// Packed RGB (`width × height × 3`) → NCHW input of `spec`'s size.
pub fn rgb_to_input(
    rgb: &[u8],
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) -> Result<(), ModelError> {
    check(
        rgb.len(),
        width * height * 3,
        "RGB",
        width,
        height,
        out,
        spec,
    )?;
    let (ow, oh) = (spec.width as usize, spec.height as usize);
    let plane = ow * oh;
    let lut = luts(spec);
    let dst = planes(spec);
    let xt = taps(width, ow);
    let yt = taps(height, oh);
    let (out0, rest) = out.split_at_mut(plane);
    let (out1, out2) = rest.split_at_mut(plane);
    let outs = [out0, out1, out2];
    for (oy, &(y0, y1, fy)) in yt.iter().enumerate() {
        let r0 = &rgb[y0 * width * 3..(y0 + 1) * width * 3];
        let r1 = &rgb[y1 * width * 3..(y1 + 1) * width * 3];
        for (ox, &(x0, x1, fx)) in xt.iter().enumerate() {
            let i = oy * ow + ox;
            for c in 0..3 {
                let top = lerp(r0[x0 * 3 + c], r0[x1 * 3 + c], fx);
                let bottom = lerp(r1[x0 * 3 + c], r1[x1 * 3 + c], fx);
                let v = (top * (256 - fy) + bottom * fy + (1 << 15)) >> 16;
                outs[dst[c]][i] = lut[dst[c]][v.min(255) as usize];
            }
        }
    }
    Ok(())
}

/// Full-range BT.601 YUV → RGB, in the same integer arithmetic as the synthetic
/// camera's reference conversion.
#[inline]
fn yuv_to_rgb(l: i32, u: i32, v: i32) -> [usize; 3] {
    let u = u - 128;
    let v = v - 128;
    [
        (l + ((359 * v) >> 8)).clamp(0, 255) as usize,
        (l - ((88 * u + 183 * v) >> 8)).clamp(0, 255) as usize,
        (l + ((454 * u) >> 8)).clamp(0, 255) as usize,
    ]
}

/// A planar or packed YUV frame as the sampler reads it.
struct YuvLayout<'a> {
    /// Luma row `y`, its samples `luma_step` bytes apart.
    luma_row: &'a dyn Fn(usize) -> &'a [u8],
    luma_step: usize,
    /// The chroma row serving luma row `y`.
    chroma_row: &'a dyn Fn(usize) -> &'a [u8],
    /// Byte offset of U in a chroma row for pixel column `x` (even), and V after it.
    u_offset: fn(usize) -> usize,
    v_delta: usize,
}

/// YUV → NCHW input of `spec`'s size: luma sampled bilinearly, chroma at the
/// nearest sample, converted and normalised. The one loop behind NV12 and YUYV.
fn yuv_to_input(
    layout: &YuvLayout<'_>,
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) {
    let (ow, oh) = (spec.width as usize, spec.height as usize);
    let plane = ow * oh;
    let lut = luts(spec);
    let dst = planes(spec);
    let xt = taps(width, ow);
    let yt = taps(height, oh);
    let step = layout.luma_step;
    // The chroma sample nearest to each sampling point, as a byte offset in a row.
    let cx: Vec<usize> = xt
        .iter()
        .map(|&(x0, x1, fx)| (layout.u_offset)((if fx >= 128 { x1 } else { x0 }) & !1))
        .collect();
    let (out0, rest) = out.split_at_mut(plane);
    let (out1, out2) = rest.split_at_mut(plane);
    let outs = [out0, out1, out2];
    for (oy, &(y0, y1, fy)) in yt.iter().enumerate() {
        let r0 = (layout.luma_row)(y0);
        let r1 = (layout.luma_row)(y1);
        let crow = (layout.chroma_row)(if fy >= 128 { y1 } else { y0 });
        for (ox, (&(x0, x1, fx), &c)) in xt.iter().zip(&cx).enumerate() {
            let top = lerp(r0[x0 * step], r0[x1 * step], fx);
            let bottom = lerp(r1[x0 * step], r1[x1 * step], fx);
            let l = ((top * (256 - fy) + bottom * fy + (1 << 15)) >> 16) as i32;
            let u = i32::from(crow[c]);
            let v = i32::from(crow.get(c + layout.v_delta).copied().unwrap_or(128));
            let rgb = yuv_to_rgb(l, u, v);
            let i = oy * ow + ox;
            for s in 0..3 {
                outs[dst[s]][i] = lut[dst[s]][rgb[s]];
            }
        }
    }
}

/// NV12 (`width × height` Y plane, then `width × height/2` interleaved UV) → NCHW
/// input of `spec`'s size. Luma is sampled bilinearly, chroma at the nearest sample.
pub fn nv12_to_input(
    nv12: &[u8],
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let need = width * height + width * height.div_ceil(2);
    check(nv12.len(), need, "NV12", width, height, out, spec)?;
    let (luma, chroma) = nv12.split_at(width * height);
    let luma_row = |y: usize| &luma[y * width..(y + 1) * width];
    let chroma_row = |y: usize| &chroma[(y / 2) * width..(y / 2 + 1) * width];
    let layout = YuvLayout {
        luma_row: &luma_row,
        luma_step: 1,
        chroma_row: &chroma_row,
        u_offset: |x| x,
        v_delta: 1,
    };
    yuv_to_input(&layout, width, height, spec, out);
    Ok(())
}

/// YUYV 4:2:2 (`Y0 U Y1 V` per pixel pair, `width × 2` bytes a row, what most USB
/// cameras send) → NCHW input of `spec`'s size. Luma is sampled bilinearly, chroma
/// from the nearest pixel pair of the nearest row.
pub fn yuyv_to_input(
    yuyv: &[u8],
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) -> Result<(), ModelError> {
    check(
        yuyv.len(),
        width * height * 2,
        "YUYV",
        width,
        height,
        out,
        spec,
    )?;
    let stride = width * 2;
    let row = |y: usize| &yuyv[y * stride..(y + 1) * stride];
    let layout = YuvLayout {
        luma_row: &row,
        luma_step: 2,
        chroma_row: &row,
        u_offset: |x| x * 2 + 1,
        v_delta: 2,
    };
    yuv_to_input(&layout, width, height, spec, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Layout;

    fn spec(w: u32, h: u32, color: ColorOrder) -> InputSpec {
        InputSpec {
            width: w,
            height: h,
            layout: Layout::Nchw,
            color,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
        }
    }

    fn rgb_frame(w: usize, h: usize) -> Vec<u8> {
        (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect()
    }

    #[test]
    fn same_size_is_an_exact_normalised_copy() -> Result<(), ModelError> {
        let (w, h) = (7, 5);
        let rgb = rgb_frame(w, h);
        let s = spec(w as u32, h as u32, ColorOrder::Rgb);
        let mut out = vec![0f32; 3 * w * h];
        rgb_to_input(&rgb, w, h, &s, &mut out)?;
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let want = (f32::from(rgb[(y * w + x) * 3 + c]) / 255.0 - s.mean[c]) / s.std[c];
                    assert_eq!(out[c * w * h + y * w + x], want);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bgr_swaps_planes() -> Result<(), ModelError> {
        let rgb = vec![10u8, 20, 30];
        let mut s = spec(1, 1, ColorOrder::Bgr);
        s.mean = [0.0; 3];
        s.std = [1.0; 3];
        let mut out = vec![0f32; 3];
        rgb_to_input(&rgb, 1, 1, &s, &mut out)?;
        assert_eq!(out, vec![30.0 / 255.0, 20.0 / 255.0, 10.0 / 255.0]);
        Ok(())
    }

    #[test]
    fn halving_averages_two_by_two() -> Result<(), ModelError> {
        // A 4x2 frame to 2x1: each output pixel sits between four source pixels.
        let mut rgb = vec![0u8; 4 * 2 * 3];
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            px.fill(if i % 2 == 0 { 100 } else { 200 });
        }
        let mut s = spec(2, 1, ColorOrder::Rgb);
        s.mean = [0.0; 3];
        s.std = [1.0; 3];
        let mut out = vec![0f32; 6];
        rgb_to_input(&rgb, 4, 2, &s, &mut out)?;
        for v in out {
            assert_eq!(v, 150.0 / 255.0);
        }
        Ok(())
    }

    #[test]
    fn nv12_matches_rgb_conversion_at_same_size() -> Result<(), ModelError> {
        let (w, h) = (6, 4);
        let nv12: Vec<u8> = (0..w * h * 3 / 2).map(|i| (i * 53 % 256) as u8).collect();
        // Reference: convert every pixel the synthetic camera's way, then RGB path.
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let ci = w * h + (y / 2) * w + (x & !1);
                let px = yuv_to_rgb(
                    i32::from(nv12[y * w + x]),
                    i32::from(nv12[ci]),
                    i32::from(nv12[ci + 1]),
                );
                for c in 0..3 {
                    rgb[(y * w + x) * 3 + c] = px[c] as u8;
                }
            }
        }
        let s = spec(w as u32, h as u32, ColorOrder::Rgb);
        let (mut a, mut b) = (vec![0f32; 3 * w * h], vec![0f32; 3 * w * h]);
        nv12_to_input(&nv12, w, h, &s, &mut a)?;
        rgb_to_input(&rgb, w, h, &s, &mut b)?;
        assert_eq!(a, b);
        Ok(())
    }

    #[test]
    fn short_or_empty_frames_are_errors() {
        let s = spec(2, 2, ColorOrder::Rgb);
        let mut out = vec![0f32; 12];
        assert!(rgb_to_input(&[0; 11], 2, 2, &s, &mut out).is_err());
        assert!(rgb_to_input(&[], 0, 2, &s, &mut out).is_err());
        assert!(nv12_to_input(&[0; 5], 2, 2, &s, &mut out).is_err());
        let mut small = vec![0f32; 3];
        assert!(rgb_to_input(&[0; 12], 2, 2, &s, &mut small).is_err());
    }

    #[test]
    fn downscale_1080p_nv12_stays_in_range() -> Result<(), ModelError> {
        let (w, h) = (1920, 1080);
        let nv12 = vec![128u8; w * h * 3 / 2];
        let s = spec(256, 144, ColorOrder::Rgb);
        let mut out = vec![f32::NAN; 3 * 256 * 144];
        nv12_to_input(&nv12, w, h, &s, &mut out)?;
        assert!(out.iter().all(|v| v.is_finite()));
        Ok(())
    }

    #[test]
    fn yuyv_matches_nv12_when_chroma_agrees() -> Result<(), ModelError> {
        // The same picture as NV12 and YUYV (chroma constant over each 2x2 block, so
        // 4:2:0 and 4:2:2 carry identical information): identical model input.
        let (w, h) = (64usize, 36usize);
        let luma = |x: usize, y: usize| ((x * 7 + y * 13) % 256) as u8;
        let chroma = |x: usize, y: usize| {
            (
                ((x / 2) * 29 % 200) as u8 + 20,
                ((y / 2) * 31 % 200) as u8 + 20,
            )
        };
        let mut nv12 = vec![0u8; w * h * 3 / 2];
        let mut yuyv = vec![0u8; w * h * 2];
        for y in 0..h {
            for x in 0..w {
                nv12[y * w + x] = luma(x, y);
                yuyv[y * w * 2 + x * 2] = luma(x, y);
                let (u, v) = chroma(x, y);
                yuyv[y * w * 2 + (x & !1) * 2 + 1] = u;
                yuyv[y * w * 2 + (x & !1) * 2 + 3] = v;
                nv12[w * h + (y / 2) * w + (x & !1)] = u;
                nv12[w * h + (y / 2) * w + (x & !1) + 1] = v;
            }
        }
        for (ow, oh) in [(64u32, 36u32), (32, 18), (48, 30)] {
            let s = spec(ow, oh, ColorOrder::Rgb);
            let n = 3 * (ow * oh) as usize;
            let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
            nv12_to_input(&nv12, w, h, &s, &mut a)?;
            yuyv_to_input(&yuyv, w, h, &s, &mut b)?;
            assert_eq!(a, b, "{ow}x{oh}");
        }
        let s = spec(32, 18, ColorOrder::Rgb);
        let mut out = vec![0f32; 3 * 32 * 18];
        assert!(yuyv_to_input(&yuyv[..100], w, h, &s, &mut out).is_err());
        Ok(())
    }
}
