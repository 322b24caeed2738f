//! Network feeds in the real daemon: an RTSP camera (GStreamer's RTSP server serving
//! a test pattern, started here on loopback) survives its server being stopped and
//! restarted while a synthetic camera in the same daemon misses no frame, and a
//! server that stops sending frames is reported `stalled`; a recorded file replays
//! at its own frame spacing and the camera stops at its end.

use std::time::{Duration, Instant};

use venue_drivers::gst::test_server::{Pattern, RtspTestServer};
use venue_proto::CameraState;

use crate::common::{MetaLog, camera, http_get, start, temp_dir};

fn rtsp_camera(id: &str, url: &str) -> String {
    format!(
        "\n[[cameras]]\nid = \"{id}\"\n[cameras.source]\nkind = \"rtsp\"\nurl = \"{url}\"\nlatency_ms = 50\nstall_timeout_ms = 1500\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
    )
}

/// Index of the first health report of `cam` at or after `from` in state `state`.
fn health_since(log: &MetaLog, from: usize, cam: &str, state: CameraState) -> Option<usize> {
    log.health
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, (c, h))| c == cam && h.state == state)
        .map(|(i, _)| i)
}

#[test]
fn rtsp_camera_reconnects_after_its_server_restarts_and_the_other_camera_misses_nothing() {
    let server = RtspTestServer::start(0, Pattern::default()).expect("rtsp server");
    let port = server.port();
    let cams = format!(
        "{}{}",
        rtsp_camera("net", &server.url()),
        camera("steady", 30, "")
    );
    let (mut daemon, listener, ports, _) = start("rtsp-restart", &cams);
    let mut log = MetaLog::default();
    let ok = log.collect_until(&listener, Duration::from_secs(20), |l| {
        l.count("net") >= 25 && health_since(l, 0, "net", CameraState::Running).is_some()
    });
    assert!(
        ok,
        "net {} frames; log:\n{}",
        log.count("net"),
        daemon.log()
    );
    let first = &log.by_camera["net"][0];
    assert_eq!(
        (first.width, first.height),
        (320, 240),
        "the stream's own size"
    );

    // The server goes away: the camera reports reconnecting.
    server.stop();
    let killed = Instant::now();
    let before = log.health.len();
    let ok = log.collect_until(&listener, Duration::from_secs(10), |l| {
        health_since(l, before, "net", CameraState::Reconnecting).is_some()
    });
    assert!(ok, "no reconnecting report; log:\n{}", daemon.log());
    // Stay down a little while so several attempts fail (connection refused).
    let _ = log.collect_until(&listener, Duration::from_secs(2), |_| false);
    let frames_while_down = log.count("net");

    // Back on the same port: frames resume within 5 s, state running again.
    let server = RtspTestServer::start(port, Pattern::default()).expect("rtsp server again");
    let back = Instant::now();
    let health_mark = log.health.len();
    let ok = log.collect_until(&listener, Duration::from_secs(10), |l| {
        l.count("net") > frames_while_down
    });
    let resumed = back.elapsed();
    assert!(ok, "frames did not resume; log:\n{}", daemon.log());
    println!(
        "rtsp down {:?}; frames resumed {resumed:?} after the server's return",
        back - killed
    );
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    let ok = log.collect_until(&listener, Duration::from_secs(5), |l| {
        health_since(l, health_mark, "net", CameraState::Running).is_some()
    });
    assert!(ok, "not reported running again");

    // The synthetic camera never missed a frame meanwhile.
    let steady = &log.by_camera["steady"];
    assert!(steady.len() > 100, "{} steady frames", steady.len());
    for w in steady.windows(2) {
        assert_eq!(
            w[1].frame_seq,
            w[0].frame_seq + 1,
            "steady camera lost a frame"
        );
    }
    assert!(
        log.health
            .iter()
            .filter(|(c, _)| c == "steady")
            .all(|(_, h)| h.state == CameraState::Running),
        "the synthetic camera left running"
    );
    let metrics = http_get(ports.metrics, "/metrics");
    assert!(
        !metrics.contains(r#"venue_edge_feed_reconnects_total{camera="net"} 0"#)
            && metrics.contains(r#"venue_edge_feed_reconnects_total{camera="net"}"#),
        "{metrics}"
    );
    assert!(daemon.log().contains("feed interrupted; reconnecting"));
    daemon.signal("-TERM");
    let (status, took) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    drop(server);
}

#[test]
fn an_rtsp_server_that_stops_sending_frames_is_reported_stalled() {
    let server = RtspTestServer::start(0, Pattern::default()).expect("rtsp server");
    let (mut daemon, listener, ports, _) = start("rtsp-stall", &rtsp_camera("net", &server.url()));
    let mut log = MetaLog::default();
    let ok = log.collect_until(&listener, Duration::from_secs(20), |l| l.count("net") >= 10);
    assert!(ok, "no frames; log:\n{}", daemon.log());

    // The connection stays up; frames stop.
    server.set_flowing(false);
    let stopped = Instant::now();
    let mark = log.health.len();
    let ok = log.collect_until(&listener, Duration::from_secs(10), |l| {
        health_since(l, mark, "net", CameraState::Stalled).is_some()
    });
    let took = stopped.elapsed();
    assert!(ok, "never reported stalled; log:\n{}", daemon.log());
    println!(
        "stalled reported {took:?} after frames stopped (camera stall timeout 1 s, feed 1.5 s)"
    );
    // Within the (feed) stall timeout plus one health interval and some slack.
    assert!(
        took < Duration::from_millis(1500 + 200 + 1500),
        "took {took:?}"
    );
    let i = health_since(&log, mark, "net", CameraState::Stalled).expect("stalled");
    let detail = log.health[i].1.detail.clone().unwrap_or_default();
    assert!(detail.contains("no frame"), "detail: {detail}");
    let metrics = http_get(ports.metrics, "/metrics");
    assert!(
        metrics.contains(r#"venue_edge_camera_state{camera="net",state="stalled"} 1"#),
        "{metrics}"
    );

    // Frames come back: running again.
    server.set_flowing(true);
    let mark = log.health.len();
    let ok = log.collect_until(&listener, Duration::from_secs(10), |l| {
        health_since(l, mark, "net", CameraState::Running).is_some()
    });
    assert!(ok, "not running again; log:\n{}", daemon.log());
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn a_recorded_file_replays_at_its_frame_spacing_and_the_camera_stops_at_its_end() {
    let dir = temp_dir("file-feed-clip");
    let clip = dir.join("clip.mp4");
    // 75 frames at 25 fps, H.264 in MP4, made with GStreamer's command-line tool.
    let made = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=75", "pattern=ball", "!"])
        .args([
            "video/x-raw,width=160,height=120,framerate=25/1",
            "!",
            "x264enc",
            "!",
        ])
        .args(["h264parse", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", clip.display()))
        .status()
        .expect("gst-launch-1.0");
    assert!(made.success());
    let cam = format!(
        "\n[[cameras]]\nid = \"replay\"\nfps = 25\n[cameras.source]\nkind = \"file\"\npath = \"{}\"\n",
        clip.display()
    );
    let (mut daemon, listener, ports, _) = start("file-feed", &cam);
    let mut log = MetaLog::default();
    let ok = log.collect_until(&listener, Duration::from_secs(20), |l| {
        l.by_camera
            .get("replay")
            .and_then(|m| m.last())
            .is_some_and(|m| m.frame_seq == 74)
            && l.health.iter().any(|(c, h)| {
                c == "replay"
                    && h.state == CameraState::Stopped
                    && h.detail.as_deref() == Some("end of file")
            })
    });
    assert!(ok, "replay incomplete; log:\n{}", daemon.log());
    let metas = &log.by_camera["replay"];
    // Played in real time: the listener sees most of it (it connects as playing starts).
    assert!(metas.len() >= 40, "{} records", metas.len());
    // Frames keep their recorded spacing; on a loaded machine the pipeline may
    // drop one it cannot keep up with, which must then be counted, not silent.
    let mut skipped = 0;
    for w in metas.windows(2) {
        let step = w[1].frame_seq - w[0].frame_seq;
        assert!(
            step >= 1,
            "frame {} after {}",
            w[1].frame_seq,
            w[0].frame_seq
        );
        skipped += step - 1;
        let gap = w[1].header.capture_ns - w[0].header.capture_ns;
        assert!(
            gap.abs_diff(step * 40_000_000) <= 1_000 * step,
            "frames {} apart {gap} ns, recorded 40 ms each",
            step
        );
    }
    if skipped > 0 {
        let metrics = http_get(ports.metrics, "/metrics");
        let dropped: f64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("venue_edge_frames_dropped_total{")
                    && l.contains(r#"camera="replay""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(
            dropped >= skipped as f64,
            "{skipped} frames missing but {dropped} counted as dropped:\n{metrics}"
        );
    }
    assert!(
        daemon.log().contains("file played to its end")
            || daemon.log().contains("played to its end")
    );
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
    let _ = std::fs::remove_dir_all(dir);
}
