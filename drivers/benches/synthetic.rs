//! Synthetic venue camera: frames per second at 1920×1080 with ground truth, one
//! core, for each scene (target ≥ 60), and heap allocations per frame in steady
//! state (target 0), counted by a global allocator wrapper.
//! `cargo bench -p venue-drivers --bench synthetic` (`BENCH_FRAMES` sets the frames
//! measured per scene, default 600; `BENCH_ATHLETES` the athletes, default 6).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use venue_drivers::{Clock, ManualClock, Scene, SyntheticCamera, SyntheticConfig};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::ALLOCATIONS;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
/// it, and then a small smoke run checks the bench still works without the cost.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let frames = if smoke() {
        5
    } else {
        env_u64("BENCH_FRAMES", 600).max(1)
    };
    let athletes = env_u64("BENCH_ATHLETES", 6) as u32;
    let (width, height) = (1920, 1080);
    for scene in Scene::ALL {
        let cfg = SyntheticConfig {
            width,
            height,
            fps: 30,
            seed: 1,
            athletes,
            scene,
            ..SyntheticConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let built = Instant::now();
        let mut camera = SyntheticCamera::new(cfg, clock, 2).expect("camera");
        let setup = built.elapsed();
        // Warm up: athletes arrive, buffers reach their working size.
        for _ in 0..90 {
            let (frame, _) = camera.next_frame_with_truth().expect("frame");
            drop(frame);
        }
        let allocs_before = ALLOCATIONS.load(Ordering::Relaxed);
        let start = Instant::now();
        let (mut boxes, mut moments) = (0usize, 0usize);
        for _ in 0..frames {
            let (frame, truth) = camera.next_frame_with_truth().expect("frame");
            boxes += truth.athletes.len();
            moments += truth.moments.len();
            black_box(&frame.data[0]);
            drop(frame);
        }
        let elapsed = start.elapsed();
        let allocs = ALLOCATIONS.load(Ordering::Relaxed) - allocs_before;
        println!(
            "synthetic {scene:>5} {width}x{height}: {:7.1} frames/s ({:.2} ms/frame), {:.3} allocations/frame, setup {:.0} ms, {:.1} athletes/frame, {moments} key moments",
            frames as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e3 / frames as f64,
            allocs as f64 / frames as f64,
            setup.as_secs_f64() * 1e3,
            boxes as f64 / frames as f64,
        );
    }
}
