//! Video encoding figures, printed.
//!
//! 1. Encode cost per 1280×720 frame with x264enc inside the project (`Encoder`:
//!    appsrc → x264enc → h264parse → appsink, units labelled with their frames) against
//!    `gst-launch-1.0` running the same encoder settings on the same frames
//!    (`filesrc ! rawvideoparse ! x264enc … ! h264parse ! fakesink`), interleaved, in
//!    one run; each side's cost is the difference between an n/2- and an n-frame run, so
//!    start-up is left out on both. Target ≤ 1.1×.
//! 2. Soak: the daemon with the embedded default config (two 1280×720@30 synthetic
//!    cameras, segmentation, tagging and H.264 encoding), printing capture drops and
//!    resident memory over time. Target: zero drops, memory flat.
//!
//! `cargo bench -p venue-edge --bench encode`; `ENCODE_FRAMES` (default 300),
//! `SOAK_SECONDS` (default 600; 0 skips the soak). Under `cargo test --all-targets`
//! (no `--bench` argument) it is a smoke run: 20 frames and a 5 s soak.

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use venue_drivers::gst::encode::{
    Encoder, EncoderChoice, EncoderSettings, LatencyMode, Preset, Profile,
};
use venue_drivers::{Frame, ManualClock, Source, SyntheticCamera, SyntheticConfig};

#[path = "support/daemon.rs"]
mod daemon;
use daemon::{default_config, free_port, metrics, rss_kb, smoke, sum_of};

const W: u32 = 1280;
const H: u32 = 720;
const FPS: u32 = 30;

fn env_or(name: &str, full: u64, smoke_value: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { smoke_value } else { full })
}

fn settings() -> EncoderSettings {
    EncoderSettings {
        choice: EncoderChoice::parse("x264").unwrap(),
        bitrate_kbps: 2000,
        gop: 30,
        profile: Profile::High,
        latency: LatencyMode::Low,
        preset: Preset::Superfast,
    }
}

/// The same settings as `gst-launch-1.0` arguments.
const GST_ENCODER: &str = "x264enc bitrate=2000 key-int-max=30 speed-preset=superfast tune=zerolatency bframes=0 ! video/x-h264,profile=high ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au";

fn in_project(frames: &[Frame]) -> (Duration, usize) {
    let t = Instant::now();
    let mut enc = Encoder::new(&settings(), W, H, FPS).expect("x264enc");
    let mut units = 0;
    for f in frames {
        enc.push(f).expect("push");
        while enc.pull(Duration::ZERO).expect("pull").is_some() {
            units += 1;
        }
    }
    units += enc.finish().expect("finish").len();
    (t.elapsed(), units)
}

fn gst_launch(raw: &std::path::Path, frames: usize) -> Duration {
    let frame_bytes = (W * H * 3 / 2) as usize;
    let desc = format!(
        "filesrc location={} blocksize={frame_bytes} num-buffers={frames} ! rawvideoparse width={W} height={H} format=nv12 framerate={FPS}/1 ! {GST_ENCODER} ! fakesink sync=false",
        raw.display()
    );
    let t = Instant::now();
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .status()
        .expect("gst-launch-1.0 (gstreamer1.0-tools)");
    assert!(status.success(), "gst-launch-1.0 failed: {desc}");
    t.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn encode_cost() {
    let n = env_or("ENCODE_FRAMES", 300, 20) as usize;
    let cfg = SyntheticConfig {
        width: W,
        height: H,
        fps: FPS,
        seed: 11,
        ..SyntheticConfig::default()
    };
    let clock = Arc::new(ManualClock::new(1_767_225_600_000_000_000));
    let mut cam = SyntheticCamera::new(cfg, clock, n + 2).expect("camera");
    let frames: Vec<Frame> = (0..n).map(|_| cam.next_frame().expect("frame")).collect();
    let raw = std::env::temp_dir().join(format!("venue-encode-bench-{}.nv12", std::process::id()));
    {
        let mut f = std::fs::File::create(&raw).expect("raw file");
        for fr in &frames {
            f.write_all(&fr.data).expect("write raw");
        }
    }
    // Both sides are timed for n/2 and n frames; the difference over n/2 frames is
    // the marginal cost per frame, free of start-up (process, plugin loading,
    // encoder initialisation) on either side.
    let rounds = if smoke() { 1 } else { 3 };
    let half = n / 2;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t_half, units) = in_project(&frames[..half]);
        assert_eq!(units, half, "one access unit per frame");
        let (t_full, units) = in_project(&frames);
        assert_eq!(units, n, "one access unit per frame");
        ours.push((t_full.as_secs_f64() - t_half.as_secs_f64()) * 1000.0 / (n - half) as f64);
        let g = gst_launch(&raw, n).as_secs_f64() - gst_launch(&raw, half).as_secs_f64();
        theirs.push(g * 1000.0 / (n - half) as f64);
    }
    let _ = std::fs::remove_file(&raw);
    let (o, g) = (median(ours), median(theirs));
    println!(
        "encode_x264_1280x720 frames={n} rounds={rounds} settings=\"bitrate 2000 kbit/s, gop 30, superfast, zerolatency, high\""
    );
    println!("  in-project ms/frame: {o:.2}");
    println!("  gst-launch-1.0 ms/frame: {g:.2}");
    println!(
        "  ratio in-project / gst-launch: {:.2} (target <= 1.10)",
        o / g.max(1e-9)
    );
}

fn soak() {
    let secs = env_or("SOAK_SECONDS", 600, 5);
    if secs == 0 {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_venue-edge");
    let (zport, mport) = (free_port(), free_port());
    let spool = std::env::temp_dir().join(format!("venue-encode-soak-{}", std::process::id()));
    let mut cfg = default_config(bin, zport, mport, &spool);
    // `SOAK_CACHE_KB`: a smaller spool cache per stream, so that the bounded
    // stores are full within the first minute and RSS itself should stay flat.
    if let Ok(kb) = std::env::var("SOAK_CACHE_KB") {
        assert!(cfg.contains("cache_kb = 4096"), "the default cache");
        cfg = cfg.replace("cache_kb = 4096", &format!("cache_kb = {kb}"));
        println!("  spool cache_kb = {kb}");
    }
    // `SOAK_TRIM_S`: how often the daemon trims its allocator (default 60; 0
    // never), to compare the resident size with and without.
    if let Ok(s) = std::env::var("SOAK_TRIM_S") {
        assert!(cfg.contains("allocator_trim_s = 60"), "the default trim");
        cfg = cfg.replace("allocator_trim_s = 60", &format!("allocator_trim_s = {s}"));
        println!("  allocator_trim_s = {s}");
    }
    assert!(
        cfg.contains("encoder = \"auto\""),
        "the default config encodes"
    );
    let path = spool.with_extension("toml");
    std::fs::write(&path, cfg).expect("config");
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(5)); // start-up, first model load
    println!("soak_two_720p30_seg_tag_h264 seconds={secs}");
    let t0 = Instant::now();
    let step = Duration::from_secs(if secs >= 60 { 30 } else { 1 });
    let mut samples = Vec::new();
    let mut stored = Vec::new();
    let mut next = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(secs) {
        if t0.elapsed() >= next {
            let m = metrics(mport);
            let captured = sum_of(&m, "venue_edge_frames_in_total", "stage=\"capture\"");
            let dropped = sum_of(&m, "venue_edge_frames_dropped_total", "stage=\"capture\"");
            let kb = rss_kb(pid).unwrap_or(0);
            // The bounded stores that fill over the first minutes.
            let stores = sum_of(&m, "venue_edge_video_ring_bytes", "")
                + sum_of(&m, "venue_edge_event_clips_kept_bytes", "")
                + sum_of(&m, "venue_edge_spool_cache_bytes", "");
            println!(
                "  t={:>4}s rss={:.1} MB (ring + kept clips + spool cache {:.1} MB) captured={captured} capture_dropped={dropped}",
                t0.elapsed().as_secs(),
                kb as f64 / 1024.0,
                stores / 1048576.0
            );
            samples.push(kb);
            stored.push(stores / 1024.0);
            next += step;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = metrics(mport);
    let captured = sum_of(&m, "venue_edge_frames_in_total", "stage=\"capture\"");
    let dropped = sum_of(&m, "venue_edge_frames_dropped_total", "stage=\"capture\"");
    let trimmed = sum_of(&m, "venue_edge_allocator_trim_released_bytes_total", "");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&spool);
    let first = samples.first().copied().unwrap_or(0) as f64 / 1024.0;
    let last = samples.last().copied().unwrap_or(0) as f64 / 1024.0;
    let max = samples.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
    println!("  captured frames: {captured}; capture drops: {dropped} (target 0)");
    println!(
        "  allocator trims gave back {:.1} MB in all",
        trimmed / 1048576.0
    );
    let half = samples.get(samples.len() / 2).copied().unwrap_or(0) as f64 / 1024.0;
    println!("  rss first {first:.1} MB, last {last:.1} MB, max {max:.1} MB (target: flat)");
    // The bounded stores (pre-roll ring, kept clips, spool cache) fill during the
    // first minutes; growth after that would be a leak.
    println!(
        "  rss growth over the second half: {:+.1} MB ({half:.1} → {last:.1})",
        last - half
    );
    let kept = |i: usize| stored.get(i).copied().unwrap_or(0.0) / 1024.0;
    let (h, l) = (samples.len() / 2, samples.len().saturating_sub(1));
    println!(
        "  of which ring + kept clips + spool cache: {:+.1} MB; rss less those: {:+.1} MB",
        kept(l) - kept(h),
        (last - kept(l)) - (half - kept(h))
    );
    // Two samples are at the mercy of the moment (a clip cut, a chunk in
    // flight): the least-squares slope over the second half says more.
    let rss_mb: Vec<f64> = samples.iter().map(|&kb| kb as f64 / 1024.0).collect();
    let stores_mb: Vec<f64> = (0..samples.len()).map(kept).collect();
    let less: Vec<f64> = rss_mb.iter().zip(&stores_mb).map(|(r, s)| r - s).collect();
    let per_min = |v: &[f64]| slope(&v[h..]) * 60.0 / step.as_secs_f64();
    println!(
        "  second-half slope, MB/min: rss {:+.2}, stores {:+.2}, rss less stores {:+.2}",
        per_min(&rss_mb),
        per_min(&stores_mb),
        per_min(&less)
    );
}

/// Least-squares slope of `v` against its index (0 for fewer than two points).
fn slope(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if v.len() < 2 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = v.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in v.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (y - my);
        sxx += dx * dx;
    }
    sxy / sxx
}

fn main() {
    encode_cost();
    soak();
}
