//! `venue-edge segment` end to end: committed fixture frames (rendered by `synth`
//! from seeds never used in training) reproduce their committed masks; the embedded
//! reference model reaches IoU ≥ 0.90 against the synthetic ground truth on held-out
//! seeds of both scenes; bad images and bad models fail with clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use venue_edge::segment::read_image;
use venue_models::Model;

use crate::common::BIN;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/segment")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("venue-edge-segment-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn segment(args: &[&Path]) -> Output {
    Command::new(BIN)
        .arg("segment")
        .args(args)
        .output()
        .expect("run venue-edge")
}

/// Foreground (non-zero) pixels of a grayscale PNG as booleans.
fn mask(path: &Path) -> (usize, usize, Vec<bool>) {
    let img = read_image(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let fg = img.rgb.chunks_exact(3).map(|p| p[0] > 127).collect();
    (img.width, img.height, fg)
}

#[test]
fn fixtures_reproduce_committed_masks() {
    let dir = scratch("fixtures");
    for (image, expected) in [
        ("rink-9001-150.png", "rink-9001-150.mask.png"),
        ("slope-9002-150.jpg", "slope-9002-150.mask.png"),
    ] {
        let out = dir.join(expected);
        let result = segment(&[&fixtures().join(image), Path::new("--out"), &out]);
        assert!(
            result.status.success(),
            "{image}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        let (w, h, got) = mask(&out);
        let (ew, eh, want) = mask(&fixtures().join(expected));
        assert_eq!((w, h), (ew, eh), "{image}: mask size");
        let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        // Float summation order may differ between CPUs: allow 0.1 % of pixels.
        assert!(
            differ * 1000 <= w * h,
            "{image}: {differ} of {} pixels differ from the committed mask",
            w * h
        );
        // Only 0 and 255 are written.
        let raw = read_image(&out).expect("mask");
        assert!(raw.rgb.iter().all(|&v| v == 0 || v == 255), "{image}");
    }
}

/// Pooled IoU per scene over a few frames of seeds never used in training
/// (training used 1-40, the model card's evaluation 1001-1006).
#[test]
fn iou_on_held_out_seeds_is_at_least_0_90() {
    let dir = scratch("iou");
    let mut model = Model::reference().expect("reference model");
    for scene in ["rink", "slope"] {
        let (mut inter, mut union) = (0usize, 0usize);
        for seed in ["9101", "9102"] {
            let out = dir.join(format!("{scene}-{seed}"));
            let result = Command::new(BIN)
                .args(["synth", "--scene", scene, "--seed", seed, "--frames", "181"])
                .args([
                    "--width", "256", "--height", "144", "--log", "warn", "--out",
                ])
                .arg(&out)
                .output()
                .expect("run venue-edge synth");
            assert!(
                result.status.success(),
                "{}",
                String::from_utf8_lossy(&result.stderr)
            );
            for index in (60..=180).step_by(30) {
                let frame = read_image(&out.join(format!("frame_{index:06}.png"))).expect("frame");
                let (_, _, truth) = mask(&out.join(format!("mask_{index:06}.png")));
                let pred = model
                    .segment_rgb(&frame.rgb, frame.width, frame.height)
                    .expect("segment");
                for (p, t) in pred.data.iter().map(|&v| v != 0).zip(truth) {
                    inter += usize::from(p && t);
                    union += usize::from(p || t);
                }
            }
        }
        assert!(
            union > 500,
            "{scene}: too few athlete pixels to judge ({union})"
        );
        let iou = inter as f64 / union as f64;
        println!("{scene}: IoU {iou:.3} over {union} pixels");
        assert!(iou >= 0.90, "{scene}: IoU {iou:.3} < 0.90");
    }
}

#[test]
fn larger_images_get_a_mask_of_their_own_size() {
    let dir = scratch("large");
    let out = dir.join("run");
    let result = Command::new(BIN)
        .args([
            "synth", "--scene", "slope", "--seed", "9103", "--frames", "121",
        ])
        .args([
            "--width", "512", "--height", "288", "--log", "warn", "--out",
        ])
        .arg(&out)
        .output()
        .expect("run venue-edge synth");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mask_path = dir.join("mask.png");
    let result = segment(&[
        &out.join("frame_000120.png"),
        Path::new("--out"),
        &mask_path,
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let (w, h, got) = mask(&mask_path);
    assert_eq!((w, h), (512, 288));
    let (_, _, truth) = mask(&out.join("mask_000120.png"));
    let inter = got.iter().zip(&truth).filter(|(a, b)| **a && **b).count();
    let union = got.iter().zip(&truth).filter(|(a, b)| **a || **b).count();
    // Downscaled to the model's 256x144 and back: edges are coarser, athletes found.
    assert!(union > 0 && inter * 10 >= union * 6, "IoU {inter}/{union}");
}

fn fails_with(args: &[&Path], expected: &str) {
    let result = segment(args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(expected),
        "{args:?}: expected {expected:?} in {stderr:?}"
    );
}

#[test]
fn bad_images_and_models_are_clear_errors() {
    let dir = scratch("errors");
    let out = dir.join("mask.png");
    let o = Path::new("--out");
    let frame = fixtures().join("rink-9001-150.png");

    fails_with(&[&dir.join("missing.png"), o, &out], "cannot read");
    let text = dir.join("notes.png");
    std::fs::write(&text, "not an image").expect("write");
    fails_with(&[&text, o, &out], "is not a PNG or JPEG image");
    let bytes = std::fs::read(&frame).expect("fixture");
    let truncated = dir.join("truncated.png");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    fails_with(&[&truncated, o, &out], "cannot decode");
    let bad_jpeg = dir.join("bad.jpg");
    std::fs::write(&bad_jpeg, [0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 1, 2]).expect("write");
    fails_with(&[&bad_jpeg, o, &out], "cannot decode");

    let m = Path::new("--model");
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/reference");
    // A model directory with a bad manifest: every error with its line and column.
    let bad_manifest = dir.join("bad-manifest");
    std::fs::create_dir_all(&bad_manifest).expect("mkdir");
    std::fs::copy(
        reference.join("model.onnx"),
        bad_manifest.join("model.onnx"),
    )
    .expect("copy");
    let manifest = std::fs::read_to_string(reference.join("manifest.toml")).expect("manifest");
    std::fs::write(
        bad_manifest.join("manifest.toml"),
        manifest.replace("layout = \"NCHW\"", "layout = \"NHWC\""),
    )
    .expect("write");
    fails_with(
        &[&frame, o, &out, m, &bad_manifest],
        "input.layout: \"NHWC\" is not one of \"NCHW\"",
    );
    // A file that is not ONNX.
    let bad_onnx = dir.join("bad-onnx");
    std::fs::create_dir_all(&bad_onnx).expect("mkdir");
    std::fs::write(bad_onnx.join("manifest.toml"), &manifest).expect("write");
    std::fs::write(bad_onnx.join("model.onnx"), "garbage").expect("write");
    fails_with(
        &[&frame, o, &out, m, &bad_onnx],
        "cannot load the ONNX model",
    );
    // A manifest whose input size the model cannot take.
    let wrong_size = dir.join("wrong-size");
    std::fs::create_dir_all(&wrong_size).expect("mkdir");
    std::fs::copy(reference.join("model.onnx"), wrong_size.join("model.onnx")).expect("copy");
    std::fs::write(
        wrong_size.join("manifest.toml"),
        manifest.replace("width = 256", "width = 250"),
    )
    .expect("write");
    fails_with(
        &[&frame, o, &out, m, &wrong_size],
        "does not match its manifest",
    );
    // No model there at all.
    fails_with(&[&frame, o, &out, m, &dir.join("nowhere")], "cannot read");
    // Nothing was written by any of the failures.
    assert!(!out.exists());
}
