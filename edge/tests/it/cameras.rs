//! `venue-edge cameras` as a technician runs it: exits 0 whether or not the box
//! has cameras, and says so plainly when it has none. A configured V4L2 camera that
//! is not plugged in is reported `stalled` while the other cameras run.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use venue_drivers::v4l2::NO_CAMERAS;
use venue_drivers::v4l2::listing::video_nodes;
use venue_proto::CameraState;

use crate::common::{BIN, MetaLog, camera, http_get, start};

#[test]
fn cameras_lists_or_says_there_are_none() {
    let out = Command::new(BIN)
        .arg("cameras")
        .output()
        .expect("run venue-edge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if video_nodes(Path::new("/dev")).is_empty() {
        // CI and development machines: no video nodes at all.
        assert_eq!(stdout.lines().next(), Some(NO_CAMERAS), "{stdout}");
    } else {
        // A box with cameras: every node is either listed or explained, or was
        // left out as a non-capture node; either way the output is not empty.
        assert!(!stdout.trim().is_empty());
    }
}

#[test]
fn a_v4l2_camera_that_is_not_plugged_in_is_stalled_and_the_other_camera_runs() {
    let device = "/dev/v4l/by-id/usb-not-plugged-in-video-index0";
    let cams = format!(
        "{}\n[[cameras]]\nid = \"usb\"\nwidth = 640\nheight = 480\nfps = 30\n[cameras.source]\nkind = \"v4l2\"\ndevice = \"{device}\"\nreopen_min_ms = 50\nreopen_max_ms = 200\n",
        camera("syn", 30, "")
    );
    let (mut daemon, listener, ports, _) = start("v4l2-missing", &cams);
    let mut log = MetaLog::default();
    let ok = log.collect_until(&listener, Duration::from_secs(20), |l| {
        l.count("syn") >= 60
            && l.health
                .iter()
                .any(|(c, h)| c == "usb" && h.state == CameraState::Stalled)
    });
    assert!(
        ok,
        "no stalled usb camera or no frames; log:\n{}",
        daemon.log()
    );
    let (_, h) = log
        .health
        .iter()
        .find(|(c, h)| c == "usb" && h.state == CameraState::Stalled)
        .expect("stalled health");
    let detail = h.detail.clone().unwrap_or_default();
    assert!(detail.contains("usb-not-plugged-in"), "detail: {detail}");
    assert!(
        log.count("usb") == 0,
        "frames from a camera that is not there"
    );
    // The metrics say so too.
    let metrics = http_get(ports.metrics, "/metrics");
    assert!(
        metrics.contains(r#"venue_edge_camera_state{camera="usb",state="stalled"} 1"#),
        "{metrics}"
    );
    daemon.signal("-TERM");
    let (status, _) = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status:?}; log:\n{}", daemon.log());
}
