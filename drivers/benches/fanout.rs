//! Frame fan-out: a 1920×1080 NV12 raw source (the synthetic camera) hands every
//! frame to 3 consumers on their own threads through bounded channels. Prints the
//! heap allocations per frame in steady state (source + fan-out, target 0), counted
//! by a global allocator wrapper, and shows that no consumer got a copy of the
//! pixels: each sees the very buffer the source filled (same address, one `Arc`).
//! `cargo bench -p venue-drivers --bench fanout` (`BENCH_FRAMES`, default 300).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use venue_drivers::{Clock, Frame, ManualClock, SyntheticCamera, SyntheticConfig};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::ALLOCATIONS;

const CONSUMERS: usize = 3;

fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// A consumer: reads a byte of each frame and reports the buffer address it saw.
fn consumer(rx: Receiver<Frame>, seen: SyncSender<(u64, usize)>) {
    while let Ok(frame) = rx.recv() {
        std::hint::black_box(frame.data[frame.data.len() / 2]);
        let _ = seen.send((frame.seq, frame.data.as_ptr() as usize));
    }
}

fn main() {
    let frames: u64 = if smoke() {
        10
    } else {
        std::env::var("BENCH_FRAMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300)
            .max(1)
    };
    let cfg = SyntheticConfig {
        width: 1920,
        height: 1080,
        fps: 30,
        seed: 1,
        athletes: 4,
        ..SyntheticConfig::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    // Each consumer queues at most 2 frames; +2 for the one being filled and slack.
    let mut camera = SyntheticCamera::new(cfg, clock, 2 * CONSUMERS + 4).expect("camera");
    let (seen_tx, seen_rx) = sync_channel::<(u64, usize)>(64 * CONSUMERS);
    let mut senders = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..CONSUMERS {
        let (tx, rx) = sync_channel::<Frame>(2);
        let seen = seen_tx.clone();
        senders.push(tx);
        threads.push(std::thread::spawn(move || consumer(rx, seen)));
    }
    drop(seen_tx);
    let mut run = |n: u64, check: &mut dyn FnMut(u64, usize)| {
        for _ in 0..n {
            let frame = camera.next_frame_with_truth().expect("frame").0;
            let addr = frame.data.as_ptr() as usize;
            for tx in &senders {
                // A clone is a reference count, not a copy of the pixels.
                tx.send(frame.clone()).expect("consumer alive");
            }
            drop(frame);
            for _ in 0..CONSUMERS {
                let (seq, seen) = seen_rx.recv().expect("consumer report");
                check(seq, seen);
            }
            check(u64::MAX, addr);
        }
    };
    // Warm up: buffers and channels reach their working size.
    run(60, &mut |_, _| {});
    let mut copies = 0u64;
    let mut addrs: Vec<usize> = Vec::with_capacity(CONSUMERS);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();
    run(frames, &mut |seq, addr| {
        if seq == u64::MAX {
            // Every consumer must have seen the source's own buffer.
            copies += addrs.iter().filter(|&&a| a != addr).count() as u64;
            addrs.clear();
        } else {
            addrs.push(addr);
        }
    });
    let elapsed = start.elapsed();
    let allocs = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "fan-out 1920x1080 NV12 to {CONSUMERS} consumers: {frames} frames, {:.3} allocations/frame, {copies} pixel copies ({} buffer addresses checked), {:.2} ms/frame",
        allocs as f64 / frames as f64,
        frames * CONSUMERS as u64,
        elapsed.as_secs_f64() * 1e3 / frames as f64,
    );
    assert_eq!(copies, 0, "a consumer saw a copy of the pixels");
    drop(senders);
    for t in threads {
        t.join().expect("consumer");
    }
}
