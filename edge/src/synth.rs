//! `venue-edge synth`: renders a synthetic venue scene to disk — RGB frames, athlete
//! masks, which athlete each mask pixel is, and the ground truth as JSON — to look
//! at scenes, to train segmentation and to score it and tagging offline against
//! exact answers.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};
use venue_drivers::{Clock, GroundTruth, ManualClock, Scene, SyntheticCamera, SyntheticConfig};

/// What to render and where.
#[derive(Debug, Clone)]
pub struct SynthArgs {
    pub scene: Scene,
    pub seed: u64,
    pub frames: u64,
    pub out: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub athletes: u32,
}

/// Renders `args.frames` frames into `args.out`: `frame_NNNNNN.png` (RGB),
/// `mask_NNNNNN.png` (8-bit gray, 0/255), `instances_NNNNNN.png` (16-bit gray:
/// the id of the athlete each mask pixel shows, as in `truth.json`, 0 off the
/// mask) and `truth.json`.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let dir = &args.out;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory {}", dir.display()))?;
    // Open the truth file first: an unwritable directory fails before any rendering.
    let truth_path = dir.join("truth.json");
    let truth_file = File::create(&truth_path)
        .with_context(|| format!("cannot write to output directory {}", dir.display()))?;

    let cfg = SyntheticConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        seed: args.seed,
        athletes: args.athletes,
        fail_after_frames: None,
        scene: args.scene,
    };
    // A manual clock: render as fast as the machine allows, timestamps still exact.
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let mut camera =
        SyntheticCamera::new(cfg, clock, 2).context("cannot set up the synthetic camera")?;

    let bar = progress(args.frames);
    let (w, h) = (args.width as usize, args.height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let mut frames = Vec::with_capacity(args.frames.min(1 << 20) as usize);
    let (mut appearances, mut moments) = (0usize, 0usize);
    for index in 0..args.frames {
        let (frame, truth) = camera
            .next_frame_with_truth()
            .with_context(|| format!("frame {index}"))?;
        nv12_to_rgb(&frame.data, w, h, &mut rgb);
        let frame_name = format!("frame_{index:06}.png");
        let mask_name = format!("mask_{index:06}.png");
        write_png(
            &dir.join(&frame_name),
            args.width,
            args.height,
            png::ColorType::Rgb,
            &rgb,
        )?;
        write_png(
            &dir.join(&mask_name),
            args.width,
            args.height,
            png::ColorType::Grayscale,
            &truth.mask,
        )?;
        let instances_name = format!("instances_{index:06}.png");
        let ids = camera.last_instances();
        write_instances(&dir.join(&instances_name), args.width, args.height, &ids)?;
        let truth = camera.last_truth();
        appearances += truth.athletes.len();
        moments += truth.moments.len();
        let names = Names {
            frame: &frame_name,
            mask: &mask_name,
            instances: &instances_name,
        };
        frames.push(frame_json(index, &names, truth));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let doc = json!({
        "scene": args.scene.as_str(),
        "seed": args.seed,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        "athletes_max": args.athletes,
        "frames": frames,
    });
    let mut out = BufWriter::new(truth_file);
    serde_json::to_writer_pretty(&mut out, &doc)
        .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io))
        .and_then(|()| out.flush().map_err(serde_json::Error::io))
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    println!(
        "wrote {} frames of the {} scene (seed {}) to {}: {appearances} athlete boxes, {moments} key moments",
        args.frames,
        args.scene,
        args.seed,
        dir.display()
    );
    Ok(())
}

/// A progress bar on stderr for a terminal; nothing when piped or in tests.
fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix}[{bar:30}] {pos}/{len} frames, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("synth ");
    bar
}

/// The files written for one frame.
struct Names<'a> {
    frame: &'a str,
    mask: &'a str,
    instances: &'a str,
}

fn frame_json(index: u64, names: &Names<'_>, truth: &GroundTruth) -> Value {
    let athletes: Vec<Value> = truth
        .athletes
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "box": {
                    "x": a.bbox.x,
                    "y": a.bbox.y,
                    "width": a.bbox.width,
                    "height": a.bbox.height,
                },
                "pixels": a.pixels,
                "occluded": a.occluded,
                "airborne": a.airborne,
                "fallen": a.fallen,
            })
        })
        .collect();
    let events: Vec<Value> = truth
        .moments
        .iter()
        .map(|m| json!({ "kind": m.kind.as_str(), "athlete": m.athlete }))
        .collect();
    json!({
        "index": index,
        "seq": truth.seq,
        "time_s": truth.time_s,
        "frame": names.frame,
        "mask": names.mask,
        "instances": names.instances,
        "athletes": athletes,
        "events": events,
    })
}

/// Writes an 8-bit PNG (RGB frames, grayscale masks); `segment` uses it too.
pub fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    color: png::ColorType,
    data: &[u8],
) -> anyhow::Result<()> {
    write_png_at(path, (width, height), color, png::BitDepth::Eight, data)
}

/// Writes athlete ids as a 16-bit grayscale PNG (ids above 65535 are clamped:
/// a camera would have to see that many athletes come and go first).
fn write_instances(path: &Path, width: u32, height: u32, ids: &[u32]) -> anyhow::Result<()> {
    let bytes: Vec<u8> = ids
        .iter()
        .flat_map(|&id| (id.min(u32::from(u16::MAX)) as u16).to_be_bytes())
        .collect();
    let (color, depth) = (png::ColorType::Grayscale, png::BitDepth::Sixteen);
    write_png_at(path, (width, height), color, depth, &bytes)
}

/// Writes `data` (samples big-endian at 16 bits) as a PNG of `size`.
fn write_png_at(
    path: &Path,
    (width, height): (u32, u32),
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .with_context(|| format!("cannot write {}", path.display()))?;
    writer
        .write_image_data(data)
        .and_then(|()| writer.finish())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Full-range BT.601 NV12 → packed RGB (8-bit fixed point). `rgb` holds w×h×3.
pub fn nv12_to_rgb(nv12: &[u8], w: usize, h: usize, rgb: &mut [u8]) {
    let (luma, chroma) = nv12.split_at((w * h).min(nv12.len()));
    for y in 0..h {
        let crow = (y / 2) * w;
        for x in 0..w {
            let l = i32::from(luma.get(y * w + x).copied().unwrap_or(0));
            let ci = crow + (x & !1);
            let u = i32::from(chroma.get(ci).copied().unwrap_or(128)) - 128;
            let v = i32::from(chroma.get(ci + 1).copied().unwrap_or(128)) - 128;
            let px = [
                l + ((359 * v) >> 8),
                l - ((88 * u + 183 * v) >> 8),
                l + ((454 * u) >> 8),
            ];
            if let Some(out) = rgb.get_mut((y * w + x) * 3..(y * w + x) * 3 + 3) {
                for (o, c) in out.iter_mut().zip(px) {
                    *o = c.clamp(0, 255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_stays_grey_and_red_is_red() {
        // 2×2 frame: one chroma pair.
        let mut rgb = [0u8; 12];
        nv12_to_rgb(&[100, 100, 100, 100, 128, 128], 2, 2, &mut rgb);
        assert!(rgb.iter().all(|&c| c == 100));
        nv12_to_rgb(&[80, 80, 80, 80, 100, 200], 2, 2, &mut rgb);
        assert!(rgb[0] > 150 && rgb[1] < 80 && rgb[2] < 80, "{rgb:?}");
    }
}
