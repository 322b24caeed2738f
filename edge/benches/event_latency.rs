//! Capture → event published, on loopback: runs the real daemon with one synthetic
//! slope camera segmented on every frame and a zenoh subscriber beside it, and
//! prints, over every event record received, p50 and p99 of the time from the
//! capture of the frame on which the event became known (the header's
//! `capture_ns`) to its arrival, next to the target of two frame periods plus the
//! inference time measured here on the same frames. One run per backend: tract at
//! 10 fps (one inference takes longer than a frame period on a CPU, so frames
//! queue and the core is saturated), then ONNX Runtime's CPU provider (the library
//! of the venv's `onnxruntime` wheel or `$ORT_DYLIB_PATH`; skipped, said so, when
//! there is none) at 10 and at 30 fps.
//! `cargo bench -p venue-edge --bench event_latency` (`BENCH_SECONDS` sets each
//! run's length, default 60; `cargo test --all-targets` runs a short smoke run).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use venue_drivers::{Clock, ManualClock, Scene, SyntheticCamera, SyntheticConfig};
use venue_models::{BackendChoice, ModelSource, OrtOptions, Provider};
use venue_proto::{AnyMessage, StreamKey, StreamKind};

#[path = "support/daemon.rs"]
mod daemon;
use daemon::{free_port, metrics, smoke, sum_of};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const SEED: u64 = 5;
const ATHLETES: u32 = 6;

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Where the daemon runs the model, for its config and for [`inference_ms`].
#[derive(Debug, Clone)]
enum Backend {
    Tract,
    /// ONNX Runtime's CPU provider from this library.
    Ort(std::path::PathBuf),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Tract => "tract",
            Backend::Ort(_) => "onnxruntime",
        }
    }

    fn choice(&self) -> BackendChoice {
        match self {
            Backend::Tract => BackendChoice::Tract { threads: 1 },
            Backend::Ort(lib) => BackendChoice::OnnxRuntime(OrtOptions {
                library: Some(lib.clone()),
                threads: 1,
                providers: vec![Provider::Cpu],
                ..OrtOptions::default()
            }),
        }
    }

    /// The `[inference]` table of the daemon's config.
    fn table(&self) -> String {
        match self {
            Backend::Tract => "backend = \"tract\"\nworkers = 1\nthreads = 1\n".into(),
            Backend::Ort(lib) => format!(
                "backend = \"onnxruntime\"\nort_library = \"{}\"\nproviders = [\"cpu\"]\nworkers = 1\nthreads = 1\n",
                lib.display()
            ),
        }
    }
}

/// The ONNX Runtime library: `$ORT_DYLIB_PATH`, else the venv's wheel.
fn ort_library() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv");
    venue_models::ort_backend::test_library(&venv).ok()
}

/// Median time of one segmentation (the daemon's: the reference model on
/// `backend`, one thread) of this camera's frames, in ms.
fn inference_ms(backend: &Backend, fps: u32) -> f64 {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let cfg = SyntheticConfig {
        width: WIDTH,
        height: HEIGHT,
        fps,
        seed: SEED,
        athletes: ATHLETES,
        fail_after_frames: None,
        scene: Scene::Slope,
    };
    let mut cam = SyntheticCamera::new(cfg, clock, 2).expect("camera");
    let mut model = ModelSource::reference()
        .and_then(|m| m.build(&backend.choice()))
        .expect("reference model");
    let mut times = Vec::new();
    for i in 0..25 {
        let (frame, _) = cam.next_frame_with_truth().expect("frame");
        let t = Instant::now();
        model
            .segment_nv12(&frame.data, WIDTH as usize, HEIGHT as usize)
            .expect("segment");
        if i >= 5 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn config(zport: u16, mport: u16, spool: &std::path::Path, backend: &Backend, fps: u32) -> String {
    format!(
        r#"
[box]
venue = "bench-venue"
id = "bench-box"

[zenoh]
listen = ["tcp/127.0.0.1:{zport}"]

[metrics]
listen = "127.0.0.1:{mport}"

[spool]
dir = "{spool}"

[inference]
{inference}
[tagging]
enabled = true
thumbnail_interval_ms = 0

[[cameras]]
id = "slope"
width = {WIDTH}
height = {HEIGHT}
fps = {fps}
inference_fps = {fps}

[cameras.source]
kind = "synthetic"
scene = "slope"
seed = {SEED}
athletes = {ATHLETES}
"#,
        spool = spool.display(),
        inference = backend.table()
    )
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 3 } else { 60 });
    let mut runs = vec![(Backend::Tract, 10)];
    match ort_library() {
        Some(lib) => {
            runs.push((Backend::Ort(lib.clone()), 10));
            if !smoke() {
                runs.push((Backend::Ort(lib), 30));
            }
        }
        None => println!(
            "onnxruntime: skipped (no ONNX Runtime library: run scripts/setup.sh or set ORT_DYLIB_PATH)"
        ),
    }
    for (backend, fps) in runs {
        run(&backend, fps, secs);
    }
}

/// One daemon run on `backend` at `fps`; prints its figures.
fn run(backend: &Backend, fps: u32, secs: u64) {
    let infer_ms = inference_ms(backend, fps);

    let bin = env!("CARGO_BIN_EXE_venue-edge");
    let (zport, mport) = (free_port(), free_port());
    let tag = format!("venue-edge-event-latency-{}", std::process::id());
    let spool = std::env::temp_dir().join(format!("{tag}-spool"));
    let path = std::env::temp_dir().join(format!("{tag}.toml"));
    std::fs::write(&path, config(zport, mport, &spool, backend, fps)).expect("config");
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start venue-edge");

    // The subscriber stamps each sample on arrival, in zenoh's callback.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = mpsc::channel::<(u64, String, Vec<u8>)>();
    let session = rt.block_on(async {
        let mut c = zenoh::Config::default();
        c.insert_json5("mode", r#""peer""#).expect("mode");
        c.insert_json5(
            "connect/endpoints",
            &format!(r#"["tcp/127.0.0.1:{zport}"]"#),
        )
        .expect("connect");
        c.insert_json5("listen/endpoints", "[]").expect("listen");
        c.insert_json5("scouting/multicast/enabled", "false")
            .expect("scouting");
        let session = zenoh::open(c).await.expect("zenoh open");
        session
            .declare_subscriber("venue/*/*/*/event")
            .callback(move |s| {
                let at = unix_ns();
                let _ = tx.send((
                    at,
                    s.key_expr().as_str().to_string(),
                    s.payload().to_bytes().to_vec(),
                ));
            })
            .background()
            .await
            .expect("subscribe");
        session
    });

    // Records are resent until acknowledged and nobody acknowledges here: only a
    // record's first arrival counts.
    let mut seen = HashSet::new();
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs + 3); // + start-up
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok((at, key, bytes)) = rx.recv_timeout(left) else {
            break;
        };
        let Ok(k) = StreamKey::parse(&key) else {
            continue;
        };
        if k.stream != StreamKind::Event {
            continue;
        }
        let Ok(AnyMessage::Event(e)) = venue_proto::decode_any(k.stream, &bytes) else {
            panic!("bad event payload on {key}");
        };
        if seen.insert((e.header.incarnation, e.header.seq)) {
            latencies.push(at.saturating_sub(e.header.capture_ns) as f64 * 1e-6);
        }
    }
    drop(session);
    // How much of "every frame" the model kept up with.
    let text = metrics(mport);
    let due = sum_of(&text, "venue_edge_frames_in_total", "stage=\"infer\"");
    let busy = sum_of(&text, "venue_edge_frames_dropped_total", "stage=\"infer\"");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&spool);

    latencies.sort_by(f64::total_cmp);
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let period_ms = 1e3 / f64::from(fps);
    let target = 2.0 * period_ms + infer_ms;
    println!(
        "event_latency slope {WIDTH}x{HEIGHT}@{fps} inference_fps = fps on {}, seconds={secs}",
        backend.name()
    );
    println!("events_received={}", latencies.len());
    println!(
        "frames_due_for_inference={due} replaced_while_waiting={busy} ({:.0} % segmented)",
        100.0 * (1.0 - busy / due.max(1.0))
    );
    println!("inference_ms_median={infer_ms:.1}");
    println!("capture_to_event_p50_ms={:.1}", pct(50));
    println!(
        "capture_to_event_p99_ms={:.1} (target <= {target:.1}: 2 x {period_ms:.1} ms frame period + inference)",
        pct(99)
    );
    println!("capture_to_event_max_ms={:.1}", pct(100));
    assert!(
        smoke() || !latencies.is_empty(),
        "no event arrived in {secs} s"
    );
}
