//! The daemon's life: metadata, signals, restarts, reloads, configuration errors.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn publishes_gap_free_metadata_and_stops_on_sigterm() {
    let cams = format!("{}{}", camera("cam-a", 60, ""), camera("cam-b", 60, ""));
    let (mut daemon, listener, ports, _) = start("basic", &cams);
    let mut log = MetaLog::default();
    let done = log.collect_until(&listener, Duration::from_secs(30), |l| {
        l.count("cam-a") >= 300 && l.count("cam-b") >= 300
    });
    assert!(
        done,
        "got {} / {} frames; log:\n{}",
        log.count("cam-a"),
        log.count("cam-b"),
        daemon.log()
    );
    // Every frame's metadata carries what the contract promises.
    let m = &log.by_camera["cam-a"][10];
    assert_eq!((m.width, m.height, m.header.timecode.rate), (640, 360, 60));
    assert!(m.stats.luma_mean > 100.0 && m.stats.luma_max > m.stats.luma_min);
    assert_eq!(m.header.venue.as_str(), "test-venue");
    // Health arrives per camera and for the box.
    let stages: Vec<&str> = log
        .health
        .iter()
        .find(|(c, _)| c == "cam-a")
        .map(|(_, h)| h.stages.iter().map(|s| s.stage.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(stages, ["capture", "analyze", "infer", "tag", "spool"]);
    assert!(log.health.iter().any(|(c, _)| c == "_box"));

    let metrics = http_get(ports.metrics, "/metrics");
    assert!(
        metrics.contains(r#"venue_edge_frames_in_total{camera="cam-a",stage="capture"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"venue_edge_pipeline_latency_seconds_bucket{"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"venue_edge_camera_state{camera="cam-b",state="running"} 1"#),
        "{metrics}"
    );
    // The box's resident size, set with its health: a running daemon with two
    // cameras holds tens of MB.
    let resident: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("venue_edge_resident_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resident_bytes in {metrics}"));
    assert!(resident > 10e6, "resident {resident} bytes");
    assert!(metrics.contains("venue_edge_allocator_trim_released_bytes_total "));

    daemon.signal("-TERM");
    let (status, took) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("daemon did not exit after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        daemon.log()
    );
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    // Flushed: whatever was captured before the signal is still gap-free at the end.
    let _ = log.collect_until(&listener, Duration::from_millis(300), |_| false);
    assert!(daemon.log().contains("venue-edge stopped"));
}

#[test]
fn failing_camera_restarts_without_disturbing_the_other() {
    let cams = format!(
        "{}{}",
        camera("flaky", 30, "fail_after_frames = 15"),
        camera("steady", 30, "")
    );
    let (mut daemon, listener, ports, _) = start("restart", &cams);
    let mut log = MetaLog::default();
    // The flaky camera fails every 15 frames; wait for several restarts.
    let ok = log.collect_until(&listener, Duration::from_secs(30), |l| {
        l.count("flaky") >= 45
            && l.count("steady") >= 90
            && l.health
                .iter()
                .any(|(c, h)| c == "flaky" && h.restarts >= 2)
    });
    assert!(
        ok,
        "flaky {} steady {}; log:\n{}",
        log.count("flaky"),
        log.count("steady"),
        daemon.log()
    );
    // The steady camera never missed a frame while the other restarted.
    let steady = &log.by_camera["steady"];
    for w in steady.windows(2) {
        assert_eq!(
            w[1].frame_seq,
            w[0].frame_seq + 1,
            "steady camera lost a frame"
        );
    }
    assert!(daemon.log().contains("camera pipeline failed; restarting"));
    let metrics = http_get(ports.metrics, "/metrics");
    assert!(
        !metrics.contains(r#"venue_edge_pipeline_restarts_total{camera="flaky"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"venue_edge_pipeline_restarts_total{camera="steady"} 0"#),
        "{metrics}"
    );
    daemon.signal("-INT");
    let (status, _) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("exit after SIGINT");
    assert!(status.success());
}

#[test]
fn sighup_reload_starts_new_cameras_and_keeps_unchanged_ones_running() {
    let (mut daemon, listener, ports, cfg) = start("reload", &camera("keep", 30, ""));
    let mut log = MetaLog::default();
    assert!(
        log.collect_until(&listener, Duration::from_secs(20), |l| l.count("keep")
            >= 30),
        "{}",
        daemon.log()
    );

    // A broken config is rejected and changes nothing.
    std::fs::write(&cfg, config_text(&ports, &camera("keep", 0, ""))).expect("write");
    daemon.signal("-HUP");
    let before = log.count("keep");
    assert!(
        log.collect_until(&listener, Duration::from_secs(10), |l| l.count("keep")
            >= before + 30)
    );
    assert!(
        daemon.log().contains("config reload rejected"),
        "{}",
        daemon.log()
    );

    // Add a camera; the unchanged one keeps running without a restart.
    let both = format!("{}{}", camera("keep", 30, ""), camera("added", 30, ""));
    std::fs::write(&cfg, config_text(&ports, &both)).expect("write");
    daemon.signal("-HUP");
    assert!(
        log.collect_until(&listener, Duration::from_secs(20), |l| l.count("added")
            >= 30),
        "{}",
        daemon.log()
    );
    let keep = &log.by_camera["keep"];
    for w in keep.windows(2) {
        assert_eq!(
            w[1].frame_seq,
            w[0].frame_seq + 1,
            "unchanged camera missed a frame during reload"
        );
    }
    assert!(daemon.log().contains("configuration reloaded"));

    // Remove the first camera: its metadata stops, the other goes on.
    std::fs::write(&cfg, config_text(&ports, &camera("added", 30, ""))).expect("write");
    daemon.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    let _ = log.collect_until(&listener, Duration::from_millis(500), |_| false);
    let keep_count = log.count("keep");
    let added_count = log.count("added");
    let _ = log.collect_until(&listener, Duration::from_secs(2), |_| false);
    assert_eq!(
        log.count("keep"),
        keep_count,
        "removed camera still publishing"
    );
    assert!(log.count("added") > added_count + 20);

    daemon.signal("-TERM");
    let (status, _) = daemon.wait_exit(Duration::from_secs(5)).expect("exit");
    assert!(status.success());
}

#[test]
fn tail_prints_each_message_as_a_json_line() {
    let (mut daemon, _listener, ports, _) = start("tail", &camera("cam-t", 30, ""));
    let out = Command::new(BIN)
        .args([
            "tail",
            "--key",
            "venue/*/*/cam-t/meta",
            "-n",
            "5",
            "--connect",
        ])
        .arg(format!("tcp/127.0.0.1:{}", ports.zenoh))
        .output()
        .expect("tail");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for l in &lines {
        assert_eq!(l["key"], "venue/test-venue/box-1/cam-t/meta");
        assert_eq!(l["stream"], "meta");
        assert_eq!(l["width"], 640);
        assert!(l["header"]["seq"].is_u64());
    }
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn bad_config_refuses_to_start_with_every_error() {
    let dir = temp_dir("badcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[box]\nvenue = \"v\"\nid = \"b\"\n[[cameras]]\nid = \"c\"\nfps = 999\n[cameras.source]\nkind = \"nope\"\n")
        .expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = cfg.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:6:7: cameras[0].fps: 999 is out of range; expected 1..=240"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:8:9: cameras[0].source.kind: unknown source kind \"nope\""
        )),
        "{err}"
    );

    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .expect("check-config");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 error(s)"), "{err}");

    let missing = Command::new(BIN)
        .args(["check-config", "/nonexistent/venue.toml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
}

#[test]
fn default_config_is_printed_and_valid() {
    let out = Command::new(BIN)
        .arg("default-config")
        .output()
        .expect("default-config");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("[[cameras]]") && text.contains("# "));
    let dir = temp_dir("default");
    let path = dir.join("default.toml");
    std::fs::write(&path, &text).expect("write");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 cameras"));
}

#[test]
fn busy_port_is_a_clear_startup_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = temp_dir("busy");
    let ports = Ports {
        zenoh: free_port(),
        metrics: port,
        spool: dir.join("spool"),
    };
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&ports, &camera("c", 30, ""))).expect("write");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot bind the metrics endpoint on 127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn unknown_arguments_are_rejected() {
    let out = Command::new(BIN)
        .args(["run", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn a_second_daemon_on_the_same_spool_is_refused() {
    let (mut first, _listener, ports, _) = start("spoollock", &camera("cam-l", 30, ""));
    let dir = temp_dir("spoollock2");
    let other = Ports {
        zenoh: free_port(),
        metrics: free_port(),
        spool: ports.spool.clone(),
    };
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&other, &camera("cam-l", 30, ""))).expect("write");
    // Give the first daemon time to open its spool.
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by another process"), "{err}");
    first.signal("-TERM");
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());
}
