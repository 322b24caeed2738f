//! Inference figures for the reference model: ms per inference on the tract backend
//! at the model's resolution with 1 and 2 threads, and the time to preprocess a
//! 1920×1080 NV12 frame into the model input (target ≤ 1 ms on one core); then the
//! ONNX Runtime backend at 1 and 2 threads side by side with ONNX Runtime's own
//! Python runner (`ort_python.py`) on the same model, input and thread count (target:
//! within 1.1×). Both use the library of the `onnxruntime` wheel in `.venv`
//! (`scripts/setup.sh`), or `$ORT_DYLIB_PATH` with the venv's Python.
//! `cargo bench -p venue-models --bench infer` (`INFER_BENCH_RUNS`, default 50).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use std::path::PathBuf;
use std::process::Command;
use tract_linalg::multithread::{Executor, multithread_tract_scope};

use venue_models::{
    Backend as _, Manifest, OrtBackend, OrtOptions, Provider, Tensor, TractBackend, prep, reference,
};

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

    // ONNX Runtime: this backend, then ONNX Runtime's Python runner, per thread count.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let library = venue_models::ort_backend::test_library(&root.join(".venv"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("venue-infer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let model_path = dir.join("model.onnx");
    let input_path = dir.join("input.f32");
    std::fs::write(&model_path, reference::ONNX).expect("write model");
    let bytes: Vec<u8> = input.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input_path, bytes).expect("write input");
    for threads in [1usize, 2] {
        let options = OrtOptions {
            library: Some(library.clone()),
            threads,
            providers: vec![Provider::Cpu],
            engine_cache: None,
            fp16: false,
        };
        let mut backend = OrtBackend::new(&manifest, reference::ONNX, &options).expect("ort");
        backend.infer(&input).expect("warm-up");
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                backend.infer(&input).expect("infer");
                t.elapsed()
            })
            .collect();
        let ours = ms(median(times));
        let out = Command::new(&python)
            .arg(root.join("models/benches/ort_python.py"))
            .args([&model_path, &input_path])
            .args([h, w, threads, runs.max(3)].map(|v| v.to_string()))
            .output()
            .expect("run the Python runner");
        assert!(
            out.status.success(),
            "Python runner failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("Python runner's figure");
        println!(
            "onnxruntime {w}x{h}, {threads} thread(s): {ours:.2} ms per inference; \
             Python onnxruntime {theirs:.2} ms; ratio {:.2}x (target <= 1.1x)",
            ours / theirs
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
