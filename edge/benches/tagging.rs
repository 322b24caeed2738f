//! Tagging cost per frame: detections + tracking + events for a frame with 10
//! athletes (target ≤ 0.3 ms on one core), from the synthetic rink's true masks at
//! the reference model's 256×144. `cargo bench -p venue-edge --bench tagging`.

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use venue_drivers::{Clock, ManualClock, Scene, SyntheticCamera, SyntheticConfig};
use venue_edge::tagging::{CameraInfo, TagInput, Tagger, TaggingConfig};

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
    let mut masks = Vec::with_capacity(frames);
    let mut athletes = 0usize;
    for i in 0..frames + 150 {
        let (_, truth) = cam.next_frame_with_truth().expect("frame");
        if i >= 150 {
            athletes += truth.athletes.len();
            masks.push((truth.athletes.len(), truth.mask.clone()));
        }
    }
    let camera = CameraInfo {
        width: w,
        height: h,
        fps: 30,
        first_event_id: 1,
    };
    let mut tagger = Tagger::new(&TaggingConfig::default(), camera).expect("tagger");
    let mut times = Vec::with_capacity(frames);
    let mut tracked = 0usize;
    for (i, (_, mask)) in masks.iter().enumerate() {
        let t = Instant::now();
        let out = tagger
            .push(TagInput {
                capture_ns: (i as u64 + 1) * 33_333_333,
                mask,
                mask_width: w as usize,
                mask_height: h as usize,
                pixels: None,
            })
            .expect("push");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        tracked += out.detections.iter().filter(|d| d.track.is_some()).count();
    }
    // Frames with at least ten athletes in view: the target's case.
    let mut ten: Vec<f64> = times
        .iter()
        .zip(&masks)
        .filter(|(_, (n, _))| *n >= 10)
        .map(|(t, _)| *t)
        .collect();
    times.sort_by(f64::total_cmp);
    ten.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: usize| {
        v.get((v.len() * p / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "tagging_frame frames={} athletes_per_frame={:.1} tracked_per_frame={:.1} median_ms={:.4} p99_ms={:.4}",
        times.len(),
        athletes as f64 / frames as f64,
        tracked as f64 / frames as f64,
        pct(&times, 50),
        pct(&times, 99),
    );
    println!(
        "tagging_frame_10_athletes frames={} median_ms={:.4} p99_ms={:.4} (target <= 0.3)",
        ten.len(),
        pct(&ten, 50),
        pct(&ten, 99),
    );
    assert!(tracked > 0, "nothing was tracked");
}
