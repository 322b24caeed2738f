//! The inference backends against each other and against bad input: tract and ONNX
//! Runtime (CPU provider, the library from the `onnxruntime` Python wheel that
//! `scripts/setup.sh` installs into `.venv`) agree on the reference model's masks.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use venue_drivers::{ManualClock, Scene, SyntheticCamera, SyntheticConfig};
use venue_models::ort_backend::test_library;
use venue_models::{BackendChoice, ModelError, ModelSource, OrtOptions, Provider};

/// The ONNX Runtime library: `$ORT_DYLIB_PATH`, else the one in the project's venv.
fn ort_library() -> PathBuf {
    test_library(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ort(providers: Vec<Provider>) -> BackendChoice {
    BackendChoice::OnnxRuntime(OrtOptions {
        library: Some(ort_library()),
        threads: 1,
        providers,
        engine_cache: None,
        fp16: false,
    })
}

/// NV12 frames of a synthetic scene, deterministic by seed.
fn frames(scene: Scene, seed: u64, count: usize) -> Vec<(Vec<u8>, usize, usize)> {
    let cfg = SyntheticConfig {
        width: 640,
        height: 360,
        fps: 30,
        seed,
        athletes: 5,
        scene,
        ..SyntheticConfig::default()
    };
    let mut cam = SyntheticCamera::new(cfg, Arc::new(ManualClock::new(0)), 2).unwrap();
    // Spread the frames over a few seconds of the scene.
    let mut out = Vec::new();
    for i in 0..count * 15 {
        let (frame, _) = cam.next_frame_with_truth().unwrap();
        if i % 15 == 0 {
            out.push((frame.data.to_vec(), 640, 360));
        }
    }
    out
}

#[test]
fn tract_and_onnxruntime_agree_on_the_reference_model() {
    let source = ModelSource::reference().unwrap();
    let mut tract = source.build(&BackendChoice::default()).unwrap();
    let mut onnx = source.build(&ort(vec![Provider::Cpu])).unwrap();
    assert_eq!(onnx.backend_name(), "onnxruntime");
    let (mut same, mut total, mut athlete_px) = (0usize, 0usize, 0usize);
    for (scene, seed) in [(Scene::Rink, 9001), (Scene::Slope, 9002)] {
        for (nv12, w, h) in frames(scene, seed, 6) {
            let a = tract.segment_nv12(&nv12, w, h).unwrap();
            let b = onnx.segment_nv12(&nv12, w, h).unwrap();
            assert_eq!((a.width, a.height), (b.width, b.height));
            same += a.data.iter().zip(&b.data).filter(|(x, y)| x == y).count();
            total += a.data.len();
            athlete_px += a.count();
        }
    }
    let agree = same as f64 / total as f64;
    println!(
        "tract vs onnxruntime: {:.4} % of {total} mask pixels identical",
        agree * 100.0
    );
    // The frames must contain athletes, or agreeing on background proves little.
    assert!(athlete_px > total / 200, "only {athlete_px} athlete pixels");
    assert!(
        agree >= 0.995,
        "backends agree on {:.3} % of pixels",
        agree * 100.0
    );
}

#[test]
fn gpu_providers_fall_back_to_the_cpu_when_absent() {
    // The wheel is a CPU build: TensorRT and CUDA are skipped, the CPU is used.
    let source = ModelSource::reference().unwrap();
    let manifest = &source.manifest;
    let backend = venue_models::OrtBackend::new(
        manifest,
        &source.onnx,
        &OrtOptions {
            library: Some(ort_library()),
            ..OrtOptions::default()
        },
    )
    .unwrap();
    assert_eq!(backend.provider(), Provider::Cpu);
}

#[test]
fn only_absent_providers_is_a_clear_error() {
    let source = ModelSource::reference().unwrap();
    let err = source
        .build(&ort(vec![Provider::TensorRt, Provider::Cuda]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no execution provider could be used")
            && err.contains("tensorrt:")
            && err.contains("cuda:"),
        "{err}"
    );
}

#[test]
fn garbage_is_not_a_model_on_onnxruntime() {
    let source = ModelSource::reference().unwrap();
    let err = ort(vec![Provider::Cpu])
        .build(&source.manifest, b"not an onnx file")
        .unwrap_err();
    assert!(matches!(err, ModelError::Onnx(_)), "{err}");
    assert!(
        err.to_string().contains("cannot load the ONNX model"),
        "{err}"
    );
}

#[test]
fn a_manifest_size_the_model_cannot_take_is_a_mismatch() {
    let mut source = ModelSource::reference().unwrap();
    source.manifest.input.width = 200;
    let err = source.build(&ort(vec![Provider::Cpu])).unwrap_err();
    assert!(
        matches!(err, ModelError::Mismatch(_) | ModelError::Onnx(_)),
        "{err}"
    );
    assert!(err.to_string().contains("1x3x144x200"), "{err}");
}

#[test]
fn a_missing_library_is_a_clear_error() {
    let source = ModelSource::reference().unwrap();
    let choice = BackendChoice::OnnxRuntime(OrtOptions {
        library: Some(PathBuf::from("/nonexistent/libonnxruntime.so")),
        ..OrtOptions::default()
    });
    let err = source.build(&choice).unwrap_err().to_string();
    // Either the load fails, or another test of this process loaded the real one
    // first (one ONNX Runtime per process): both name the library.
    assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
}
