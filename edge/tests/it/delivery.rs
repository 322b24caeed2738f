//! Nothing lost: for each fault, every metadata record the box spooled reaches a
//! consumer that acks after storing, exactly once and in order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::consumer::Consumer;

fn zenoh_listen(port: u16) -> String {
    format!("[zenoh]\nlisten = [\"tcp/127.0.0.1:{port}\"]\n")
}

fn config(ports: &Ports, zenoh: &str, spool_extra: &str, cameras: &str) -> String {
    format!(
        "[box]\nvenue = \"test-venue\"\nid = \"box-1\"\n\n{zenoh}\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n\
         [health]\ninterval_ms = 200\n\n[uplink]\nresend_after_ms = 300\n\n\
         [spool]\ndir = \"{}\"\n{spool_extra}\n{cameras}",
        ports.metrics,
        ports.spool.display()
    )
}

fn cameras(names: &[&str], fps: u32, size: (u32, u32)) -> String {
    names
        .iter()
        .map(|n| {
            format!(
                "[[cameras]]\nid = \"{n}\"\nwidth = {}\nheight = {}\nfps = {fps}\n[cameras.source]\nkind = \"synthetic\"\n\n",
                size.0, size.1
            )
        })
        .collect()
}

fn setup(name: &str) -> (PathBuf, Ports) {
    let dir = temp_dir(name);
    let ports = Ports {
        zenoh: free_port(),
        metrics: free_port(),
        spool: dir.join("spool"),
    };
    (dir, ports)
}

fn launch(dir: &Path, text: &str, log: &str) -> Daemon {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, text).expect("config");
    Daemon::start(&cfg, dir.join(log))
}

/// Sum of a metric's samples whose line starts with `prefix`.
fn metric(port: u16, prefix: &str) -> Option<f64> {
    let text = std::panic::catch_unwind(|| http_get(port, "/metrics")).ok()?;
    let mut found = None;
    for line in text.lines().filter(|l| l.starts_with(prefix)) {
        let v: f64 = line.rsplit(' ').next()?.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + v);
    }
    found
}

fn spooled(port: u16, cam: &str) -> Option<u64> {
    metric(
        port,
        &format!("venue_edge_frames_out_total{{camera=\"{cam}\",stage=\"spool\"}}"),
    )
    .map(|v| v as u64)
}

/// Waits until, for every camera, the consumer has stored at least as many records of
/// the newest incarnation as the daemon had spooled when we looked.
fn wait_caught_up(consumer: &Consumer, ports: &Ports, cams: &[&str], limit: Duration) -> bool {
    wait_caught_up_runs(consumer, ports, cams, 1, limit)
}

/// The same, once the consumer has seen `runs` incarnations per camera (after a
/// restart the daemon's counters describe the newest one).
fn wait_caught_up_runs(
    consumer: &Consumer,
    ports: &Ports,
    cams: &[&str],
    runs: usize,
    limit: Duration,
) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        let targets: Option<Vec<u64>> = cams.iter().map(|c| spooled(ports.metrics, c)).collect();
        if let Some(targets) = targets {
            std::thread::sleep(Duration::from_millis(300));
            let store = consumer.store.lock().expect("store");
            let done = cams.iter().zip(&targets).all(|(c, target)| {
                let meta = store.meta(c);
                meta.len() >= runs
                    && meta
                        .last()
                        .is_some_and(|(_, s)| s.next >= *target && *target > 0)
            });
            if done {
                return true;
            }
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    false
}

fn stop(daemon: &mut Daemon) {
    daemon.signal("-TERM");
    let (status, _) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("daemon exits");
    assert!(status.success(), "exit {status}; log:\n{}", daemon.log());
}

fn endpoint(port: u16) -> String {
    format!("tcp/127.0.0.1:{port}")
}

/// Checks the consumer's store for one camera: one run of records per incarnation,
/// each stored once, none missing (unless a gap notice said so); returns them.
fn check_complete(consumer: &Consumer, cam: &str) -> Vec<(u64, crate::consumer::StreamStore)> {
    let store = consumer.store.lock().expect("store");
    let runs = store.meta(cam);
    assert!(!runs.is_empty(), "{cam}: nothing stored");
    for (inc, s) in &runs {
        assert_eq!(
            s.stored + s.lost,
            s.next,
            "{cam}/{inc}: stored {} lost {} of {}",
            s.stored,
            s.lost,
            s.next
        );
    }
    assert_eq!(store.undecodable, 0);
    runs
}

#[test]
fn consumer_outage_then_back_delivers_everything_once() {
    let outage: u64 = std::env::var("VENUE_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (dir, ports) = setup("outage");
    let cams = ["cam-a", "cam-b"];
    let mut daemon = launch(
        &dir,
        &config(
            &ports,
            &zenoh_listen(ports.zenoh),
            "",
            &cameras(&cams, 30, (320, 180)),
        ),
        "d.log",
    );
    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(20)),
        "{}",
        daemon.log()
    );

    consumer.disconnect();
    std::thread::sleep(Duration::from_secs(outage));
    let lag = metric(ports.metrics, "venue_edge_ack_lag_records").unwrap_or(0.0);
    assert!(
        lag >= (outage * 2 * 25) as f64,
        "backlog while the consumer was away: {lag}"
    );
    // The oldest record waiting was captured when the consumer left: its age
    // is the outage's length (read once, then remembered while it waits).
    let oldest = metric(
        ports.metrics,
        "venue_edge_oldest_unacked_ms{camera=\"cam-a\",stream=\"meta\"}",
    )
    .unwrap_or(0.0);
    assert!(
        oldest >= (outage * 1000 * 8 / 10) as f64 && oldest <= ((outage + 20) * 1000) as f64,
        "oldest unacknowledged record {oldest} ms old after a {outage} s outage"
    );

    consumer.connect(&endpoint(ports.zenoh));
    let t = Instant::now();
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(60)),
        "{}",
        daemon.log()
    );
    let drain = t.elapsed();
    eprintln!(
        "outage {outage}s: backlog {lag} records drained in {:.2}s ({:.0} records/s)",
        drain.as_secs_f64(),
        lag / drain.as_secs_f64()
    );
    stop(&mut daemon);
    for cam in cams {
        let runs = check_complete(&consumer, cam);
        assert_eq!(runs.len(), 1, "{cam}: one incarnation");
        let s = &runs[0].1;
        assert_eq!(s.lost, 0);
        assert!(
            s.stored >= 30 * (outage + 1) * 9 / 10,
            "{cam}: only {} records",
            s.stored
        );
    }
}

#[test]
fn kill_9_and_restart_on_the_same_spool_loses_nothing_stored() {
    let (dir, ports) = setup("kill9");
    let cams = ["cam-a", "cam-b"];
    let text = config(
        &ports,
        &zenoh_listen(ports.zenoh),
        "",
        &cameras(&cams, 30, (320, 180)),
    );
    let mut daemon = launch(&dir, &text, "d1.log");
    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(20)),
        "{}",
        daemon.log()
    );
    // Take the consumer away so records pile up unacknowledged, then crash the box.
    consumer.disconnect();
    std::thread::sleep(Duration::from_secs(2));
    daemon.signal("-KILL");
    let _ = daemon.wait_exit(Duration::from_secs(5));

    let mut daemon = launch(&dir, &text, "d2.log");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up_runs(&consumer, &ports, &cams, 2, Duration::from_secs(30)),
        "{}",
        daemon.log()
    );
    // The records of the crashed run were acknowledged and their segments deleted.
    std::thread::sleep(Duration::from_millis(500));
    stop(&mut daemon);
    for cam in cams {
        let runs = check_complete(&consumer, cam);
        assert_eq!(
            runs.len(),
            2,
            "{cam}: the crashed run and the new one: {runs:?}"
        );
        let (old, new) = (&runs[0].1, &runs[1].1);
        assert_eq!(old.lost + new.lost, 0);
        assert!(
            old.stored >= 2 * 30,
            "{cam}: crashed run delivered {}",
            old.stored
        );
        assert!(new.stored > 0);
    }
    assert!(daemon.log().contains("spool opened") || daemon.log().contains("spool recovered"));
}

#[test]
fn router_restart_loses_nothing() {
    let (dir, ports) = setup("router");
    let router_port = free_port();
    // A real zenohd, as a venue or cloud network runs it.
    let mut router = Router::start(router_port, dir.join("router.log"));
    let cams = ["cam-a", "cam-b"];
    let zenoh = format!(
        "[zenoh]\nmode = \"client\"\nlisten = []\nconnect = [\"tcp/127.0.0.1:{router_port}\"]\n"
    );
    let mut daemon = launch(
        &dir,
        &config(&ports, &zenoh, "", &cameras(&cams, 30, (320, 180))),
        "d.log",
    );
    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(router_port));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(30)),
        "{}",
        daemon.log()
    );

    router.kill();
    std::thread::sleep(Duration::from_secs(5));
    let _router = Router::start(router_port, dir.join("router.log"));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(60)),
        "{}",
        daemon.log()
    );
    stop(&mut daemon);
    for cam in cams {
        let runs = check_complete(&consumer, cam);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1.lost, 0);
        // About 1 s before the outage, 5 s of outage, and the catch-up.
        assert!(runs[0].1.stored >= 30 * 6, "{cam}: {}", runs[0].1.stored);
    }
}

#[test]
fn full_spool_refuses_new_records_counts_them_and_delivers_the_rest() {
    let (dir, ports) = setup("full");
    let cams = ["f1", "f2", "f3", "f4"];
    let text = config(
        &ports,
        &zenoh_listen(ports.zenoh),
        "max_mb = 1\nsegment_mb = 1\n",
        &cameras(&cams, 240, (64, 48)),
    );
    let mut daemon = launch(&dir, &text, "d.log");
    // No consumer: the spool fills up.
    let t = Instant::now();
    loop {
        let lost = metric(ports.metrics, "venue_edge_spool_lost_records{").unwrap_or(0.0);
        if lost > 0.0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "spool never filled; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let used = metric(ports.metrics, "venue_edge_spool_used_bytes").unwrap_or(0.0);
    assert!(used <= 1024.0 * 1024.0, "spool over its cap: {used}");
    // Capture carries on while the spool refuses records.
    let captured = metric(
        ports.metrics,
        "venue_edge_frames_in_total{camera=\"f1\",stage=\"capture\"}",
    )
    .unwrap_or(0.0);
    std::thread::sleep(Duration::from_millis(500));
    let later = metric(
        ports.metrics,
        "venue_edge_frames_in_total{camera=\"f1\",stage=\"capture\"}",
    )
    .unwrap_or(0.0);
    assert!(later > captured);

    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(60)),
        "{}",
        daemon.log()
    );
    let lost = metric(ports.metrics, "venue_edge_spool_lost_records{").unwrap_or(0.0);
    stop(&mut daemon);
    assert!(lost > 0.0);
    for cam in cams {
        let runs = check_complete(&consumer, cam);
        assert_eq!(runs.len(), 1);
        // Refused records never got a sequence number: what was stored is gap-free.
        assert_eq!(runs[0].1.lost, 0);
    }
}

fn segment_of(spool: &Path, cam: &str) -> PathBuf {
    let d = spool.join(cam).join("meta");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&d)
        .expect("spool dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.into_iter().next().expect("a segment")
}

#[test]
fn damaged_spool_files_keep_every_intact_record_and_report_the_rest() {
    let (dir, ports) = setup("damage");
    let cams = ["cam-a", "cam-b"];
    let text = config(
        &ports,
        &zenoh_listen(ports.zenoh),
        "",
        &cameras(&cams, 60, (160, 96)),
    );
    let mut daemon = launch(&dir, &text, "d1.log");
    std::thread::sleep(Duration::from_secs(3));
    let before_b = spooled(ports.metrics, "cam-b").expect("metrics");
    stop(&mut daemon);

    // A flipped bit in the middle of cam-a's segment, a cut in the middle of cam-b's.
    let a = segment_of(&ports.spool, "cam-a");
    let mut bytes = std::fs::read(&a).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x04;
    std::fs::write(&a, &bytes).expect("write");
    let b = segment_of(&ports.spool, "cam-b");
    let bytes = std::fs::read(&b).expect("read");
    let cut = bytes.len() / 2 + 7;
    std::fs::write(&b, &bytes[..cut]).expect("write");

    let mut daemon = launch(&dir, &text, "d2.log");
    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up_runs(&consumer, &ports, &cams, 2, Duration::from_secs(30)),
        "{}",
        daemon.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let damaged = metric(
        ports.metrics,
        "venue_edge_spool_lost_records{camera=\"cam-a\",stream=\"meta\",reason=\"damaged\"}",
    );
    stop(&mut daemon);
    let log = daemon.log();
    assert!(log.contains("spool recovered with damage"), "{log}");

    let a_runs = check_complete(&consumer, "cam-a");
    let (_, old_a) = &a_runs[0];
    assert_eq!(
        old_a.lost, 1,
        "one damaged record, reported by a gap notice"
    );
    assert_eq!(damaged, Some(1.0));
    let b_runs = check_complete(&consumer, "cam-b");
    let (_, old_b) = &b_runs[0];
    assert_eq!(old_b.lost, 0);
    assert!(
        old_b.stored > 0 && old_b.stored < before_b,
        "cut segment keeps its head: {} of {before_b}",
        old_b.stored
    );
    assert!(consumer.store.lock().expect("store").gaps >= 1);
    // The box ran on: the new incarnation was delivered too.
    assert_eq!(a_runs.len(), 2);
    assert_eq!(b_runs.len(), 2);
}

/// Mounts a tmpfs of `size` on `dir` in a private mount namespace (entered through
/// a user namespace, so no host mount is touched) and runs `venue-edge run` there.
fn launch_on_small_fs(dir: &Path, spool: &Path, size: &str, text: &str) -> Daemon {
    std::fs::create_dir_all(spool).expect("spool dir");
    let probe = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={size} tmpfs '{}'",
            spool.display()
        ))
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "this test needs a small real filesystem: it mounts a tmpfs inside \
             `unshare --user --map-root-user --mount` (util-linux), which needs user \
             namespaces (sysctl user.max_user_namespaces > 0; on older Debian kernels \
             kernel.unprivileged_userns_clone=1) or root with CAP_SYS_ADMIN; got {other:?}"
        ),
    }
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, text).expect("config");
    let log = dir.join("d.log");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    // `exec` keeps the pid: signals reach the daemon itself.
    let child = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size="$0" tmpfs "$1" && exec "$2" run --config "$3""#)
        .arg(size)
        .arg(spool)
        .arg(BIN)
        .arg(&cfg)
        .env("RUST_LOG", "info,zenoh=warn")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start venue-edge on a tmpfs");
    Daemon { child, log }
}

#[test]
fn full_filesystem_keeps_capturing_counts_losses_and_resumes_when_space_returns() {
    let (dir, ports) = setup("enospc");
    let cams = ["d1", "d2"];
    // The filesystem (256 KiB) fills long before the spool's own cap (1 MiB, which
    // also bounds what waits in memory for the disk).
    let text = config(
        &ports,
        &zenoh_listen(ports.zenoh),
        "max_mb = 1\nsegment_mb = 1\n",
        &cameras(&cams, 240, (64, 48)),
    );
    let mut daemon = launch_on_small_fs(&dir, &ports.spool, "256k", &text);
    // No consumer: the disk fills, writes fail with ENOSPC, then the spool refuses.
    let t = Instant::now();
    while metric(ports.metrics, "venue_edge_spool_lost_records{").unwrap_or(0.0) <= 0.0 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no losses counted on a full filesystem; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let text_log = daemon.log();
    assert!(
        text_log.contains("No space left on device"),
        "the disk never filled up:\n{text_log}"
    );
    // Losses per stream, in metrics and in the camera's health.
    for cam in cams {
        let lost = metric(
            ports.metrics,
            &format!(
                "venue_edge_spool_lost_records{{camera=\"{cam}\",stream=\"meta\",reason=\"full\"}}"
            ),
        );
        assert!(lost.is_some(), "{cam}: no loss series");
    }
    let captured = |m: &Ports| {
        metric(
            m.metrics,
            "venue_edge_frames_in_total{camera=\"d1\",stage=\"capture\"}",
        )
        .unwrap_or(0.0)
    };
    let before = captured(&ports);
    std::thread::sleep(Duration::from_millis(500));
    assert!(captured(&ports) > before, "capture stopped on a full disk");

    // A consumer acknowledges: segments are deleted, space returns, spooling resumes
    // and everything stored arrives once, in order, with no gap.
    let mut consumer = Consumer::new("test-venue", "box-1");
    consumer.connect(&endpoint(ports.zenoh));
    assert!(
        wait_caught_up(&consumer, &ports, &cams, Duration::from_secs(60)),
        "spooling did not resume after space returned; log:\n{}",
        daemon.log()
    );
    let t = Instant::now();
    while !daemon.log().contains("spool writes succeed again") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no write succeeded after space returned:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(&mut daemon);
    let text_log = daemon.log();
    assert!(!text_log.contains("panicked"), "{text_log}");
    for cam in cams {
        let runs = check_complete(&consumer, cam);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].1.lost, 0);
    }
}
