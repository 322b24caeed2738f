//! Tagging cost per frame: detections + tracking + events for a frame with 10
//! athletes (target ≤ 0.3 ms on one core), from the synthetic rink's true masks at
//! the reference model's 256×144, from the masks alone and with the frames'
//! pixels. `cargo bench -p venue-edge --bench tagging`.

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use venue_drivers::{Clock, ManualClock, Scene, SyntheticCamera, SyntheticConfig};
use venue_edge::tagging::{CameraInfo, Pixels, TagInput, Tagger, TaggingConfig};

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
/// without it, and then a small smoke run checks the bench still works.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let (w, h) = (256u32, 144u32);
    let frames = if smoke() { 60 } else { 3000 };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let cfg = SyntheticConfig {
        width: w,
        height: h,
        fps: 30,
        seed: 9401,
        // More than ten in the scene, so that most frames show ten or more at once.
        athletes: 16,
        fail_after_frames: None,
        scene: Scene::Rink,
    };
    let mut cam = SyntheticCamera::new(cfg, clock, 2).expect("camera");
    // Render first, so only tagging is timed; warm up until the rink is full.
    let mut frames_in = Vec::with_capacity(frames);
    let mut athletes = 0usize;
    for i in 0..frames + 150 {
        let (frame, truth) = cam.next_frame_with_truth().expect("frame");
        if i >= 150 {
            athletes += truth.athletes.len();
            frames_in.push(Input {
                athletes: truth.athletes.len(),
                mask: truth.mask.clone(),
                nv12: frame.data.to_vec(),
            });
        }
    }
    let camera = CameraInfo {
        width: w,
        height: h,
        fps: 30,
        first_event_id: 1,
    };
    // Masks alone: detections, tracking and events. With the frame's pixels
    // the tracker also tells suits apart, and the tagger keeps the strobe's
    // frames and makes thumbnails.
    for (label, pixels) in [
        ("tagging_frame", false),
        ("tagging_frame_with_pixels", true),
    ] {
        let (times, tracked) = run(&frames_in, camera, pixels);
        let mut ten: Vec<f64> = times
            .iter()
            .zip(&frames_in)
            .filter(|(_, f)| f.athletes >= 10)
            .map(|(t, _)| *t)
            .collect();
        let mut all = times;
        all.sort_by(f64::total_cmp);
        ten.sort_by(f64::total_cmp);
        println!(
            "{label} frames={} athletes_per_frame={:.1} tracked_per_frame={:.1} median_ms={:.4} p99_ms={:.4}",
            all.len(),
            athletes as f64 / frames as f64,
            tracked as f64 / frames as f64,
            pct(&all, 50),
            pct(&all, 99),
        );
        // The target covers detections, tracking and events; with pixels the
        // time includes the strobe's frame copies and the thumbnails.
        let target = if pixels {
            "(with strobe frames and thumbnails)"
        } else {
            "(target <= 0.3)"
        };
        println!(
            "{label}_10_athletes frames={} median_ms={:.4} p99_ms={:.4} {target}",
            ten.len(),
            pct(&ten, 50),
            pct(&ten, 99),
        );
        assert!(tracked > 0, "nothing was tracked");
    }
}

/// One rendered frame: athletes in view, the true mask and the picture.
struct Input {
    athletes: usize,
    mask: Vec<u8>,
    nv12: Vec<u8>,
}

/// Tags every frame with a new tagger; the time of each push in ms, and the
/// tracked detections in all.
fn run(frames: &[Input], camera: CameraInfo, pixels: bool) -> (Vec<f64>, usize) {
    let mut tagger = Tagger::new(&TaggingConfig::default(), camera).expect("tagger");
    let mut times = Vec::with_capacity(frames.len());
    let mut tracked = 0usize;
    for (i, f) in frames.iter().enumerate() {
        let t = Instant::now();
        let out = tagger
            .push(TagInput {
                capture_ns: (i as u64 + 1) * 33_333_333,
                mask: &f.mask,
                mask_width: camera.width as usize,
                mask_height: camera.height as usize,
                pixels: pixels.then_some(Pixels::Nv12(&f.nv12)),
            })
            .expect("push");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        tracked += out.detections.iter().filter(|d| d.track.is_some()).count();
    }
    (times, tracked)
}

fn pct(v: &[f64], p: usize) -> f64 {
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}
