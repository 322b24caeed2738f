//! Runs the real daemon with the embedded default's two 1280×720@30 synthetic
//! cameras (segmented, tagged and encoded) for a while and prints its resident
//! memory, how much it grew from the second quarter of the run to the last (the
//! target is flat; the 10-minute soak in `--bench encode` is the long form), CPU
//! use and mean capture→publish latency. `cargo bench -p venue-edge --bench daemon_rss`
//! (`BENCH_SECONDS` sets the run length, default 30).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/daemon.rs"]
mod daemon;
use daemon::{default_config, free_port, metrics, rss_kb, smoke, sum_of};

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 2 } else { 30 });
    let bin = env!("CARGO_BIN_EXE_venue-edge");
    let (zport, mport) = (free_port(), free_port());
    let spool_dir =
        std::env::temp_dir().join(format!("venue-edge-bench-spool-{}", std::process::id()));
    let cfg = default_config(bin, zport, mport, &spool_dir);
    let path = std::env::temp_dir().join(format!("venue-edge-bench-{}.toml", std::process::id()));
    std::fs::write(&path, cfg).expect("config");
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(3)); // start-up
    let t0 = Instant::now();
    let cpu0 = cpu_ticks(pid).unwrap_or(0);
    let mut samples = Vec::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Some(kb) = rss_kb(pid) {
            samples.push(kb);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let cpu = (cpu_ticks(pid).unwrap_or(0) - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    let m = metrics(mport);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&spool_dir);
    // Growth: median of the last quarter against the second quarter (the first
    // fills the bounded stores: ring, kept clips, spool cache, model buffers).
    let quarter = |q: usize| {
        let n = samples.len();
        let mut part = samples[n * q / 4..n * (q + 1) / 4].to_vec();
        part.sort_unstable();
        part.get(part.len() / 2).copied().unwrap_or(0)
    };
    let growth_mb = (quarter(3) as f64 - quarter(1) as f64) / 1024.0;
    samples.sort_unstable();
    let median = samples.get(samples.len() / 2).copied().unwrap_or(0);
    let max = samples.last().copied().unwrap_or(0);
    let lat_sum = sum_of(&m, "venue_edge_pipeline_latency_seconds_sum", "");
    let lat_count = sum_of(&m, "venue_edge_pipeline_latency_seconds_count", "");
    let dropped = sum_of(&m, "venue_edge_frames_dropped_total", "");
    let published = sum_of(&m, "venue_edge_uplink_sent_total", "");
    println!("daemon_two_synthetic_720p30 seconds={secs}");
    println!("daemon_rss_median_mb={:.1}", median as f64 / 1024.0);
    println!("daemon_rss_max_mb={:.1}", max as f64 / 1024.0);
    println!(
        "daemon_rss_growth_mb={growth_mb:.1} (second to last quarter of the run; target: flat)"
    );
    println!("daemon_cpu_cores={cpu:.2}");
    println!("metadata_published={published} frames_dropped={dropped}");
    if lat_count > 0.0 {
        println!(
            "capture_to_publish_mean_ms={:.3}",
            lat_sum / lat_count * 1000.0
        );
    }
}
