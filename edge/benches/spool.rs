//! Spool figures: append throughput with group commit (target ≥ 200 MB/s) and the
//! time to reopen a 1 GB spool after a crash (target ≤ 1 s).
//! `cargo bench -p venue-edge --bench spool` (`SPOOL_BENCH_MB` sets the size, default 1024;
//! `SPOOL_BENCH_DIR` the directory, default the system temp dir).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use venue_edge::spool::{Spool, SpoolConfig};
use venue_proto::{Id, StreamKind};

fn run(label: &str, dir: &std::path::Path, total_mb: u64, record: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let cfg = SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: (total_mb + 256) * 1024 * 1024,
        segment_bytes: 64 * 1024 * 1024,
        fsync_interval: Duration::from_millis(10),
        cache_bytes: 4 * 1024 * 1024,
        mqtt_streams: Vec::new(),
    };
    let (spool, _) = Spool::open(cfg.clone(), 1).expect("open");
    let stop = CancellationToken::new();
    let committer = spool.spawn_committer(stop.clone()).expect("committer");
    let streams: Vec<_> = (0..4)
        .map(|i| {
            spool.stream(
                &Id::new(&format!("cam-{i}")).expect("id"),
                StreamKind::Video,
            )
        })
        .collect();
    let payload = vec![0x5au8; record];
    let n = total_mb * 1024 * 1024 / record as u64;
    let t = Instant::now();
    for i in 0..n {
        let s = &streams[(i % 4) as usize];
        // Keep the pending buffers bounded like a real producer paced by capture.
        while spool.used_bytes() > (i + 1) * record as u64 + 512 * 1024 * 1024 {
            std::thread::yield_now();
        }
        s.append_with(|_, _| payload.clone()).expect("append");
    }
    stop.cancel();
    committer.join().expect("committer");
    let secs = t.elapsed().as_secs_f64();
    let mb = (n * record as u64) as f64 / 1024.0 / 1024.0;
    println!(
        "spool_append_{label} records={n} record_bytes={record} mb={mb:.0} seconds={secs:.2} mb_per_s={:.0} (target >= 200)",
        mb / secs
    );
    drop(streams);
    drop(spool);

    // Reopen as after a crash: scan, checksum and index every record.
    let t = Instant::now();
    let (_spool, report) = Spool::open(cfg, 2).expect("reopen");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "spool_recovery_{label} mb={mb:.0} records={} segments={} seconds={secs:.3} (target <= 1.0 for 1 GB)",
        report.records, report.segments
    );
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
/// it, and then a small smoke run checks the bench still works without the cost.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let mb: u64 = std::env::var("SPOOL_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 16 } else { 1024 });
    let base = std::env::var_os("SPOOL_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("venue-spool-bench-{}", std::process::id()));
    run("4k_records", &dir, mb, 4096);
    run("300b_records", &dir, mb / 4, 300);
    let _ = std::fs::remove_dir_all(&dir);
}
