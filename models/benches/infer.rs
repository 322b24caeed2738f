//! Inference figures for the reference model: ms per inference on the tract backend
//! at the model's resolution with 1 and 2 threads, and the time to preprocess a
//! 1920×1080 NV12 frame into the model input (target ≤ 1 ms on one core).
//! `cargo bench -p venue-models --bench infer` (`INFER_BENCH_RUNS`, default 50).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use venue_models::{Backend as _, Manifest, Tensor, TractBackend, prep, reference};

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
/// it, and then a tiny smoke pass is enough.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = if smoke() {
        2
    } else {
        std::env::var("INFER_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50)
    };
    let manifest = Manifest::parse(reference::MANIFEST).expect("reference manifest");
    let (w, h) = (
        manifest.input.width as usize,
        manifest.input.height as usize,
    );

    // Preprocessing: 1080p NV12 (a synthetic-looking gradient) → model input.
    let (fw, fh) = (1920usize, 1080usize);
    let nv12: Vec<u8> = (0..fw * fh * 3 / 2).map(|i| (i % 251) as u8).collect();
    let mut input = Tensor::zeros([1, 3, h, w]);
    let mut times = Vec::with_capacity(runs * 10);
    for _ in 0..runs * 10 {
        let t = Instant::now();
        prep::nv12_to_input(&nv12, fw, fh, &manifest.input, &mut input.data).expect("prep");
        times.push(t.elapsed());
    }
    println!(
        "preprocess NV12 {fw}x{fh} -> 1x3x{h}x{w}: {:.3} ms median (one core)",
        ms(median(times))
    );

    let mut backend = TractBackend::new(&manifest, reference::ONNX).expect("tract backend");
    for threads in [1usize, 2] {
        let executor = if threads == 1 {
            Executor::SingleThread
        } else {
            Executor::multithread(threads)
        };
        let times = multithread_tract_scope(executor, || {
            backend.infer(&input).expect("warm-up");
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    backend.infer(&input).expect("infer");
                    t.elapsed()
                })
                .collect::<Vec<_>>()
        });
        println!(
            "tract {w}x{h}, {threads} thread(s): {:.2} ms per inference (median of {runs})",
            ms(median(times))
        );
    }
}
