//! On-device test of V4L2 capture: needs a real camera (see `hil-tests/README.md`
//! for the fixture). Built only with the `v4l2-hil` feature, so the default test
//! run never looks for one:
//!
//! ```text
//! VENUE_V4L2_DEVICE=/dev/video0 cargo test -p venue-drivers --features v4l2-hil --test v4l2_hil -- --test-threads=1 --nocapture
//! ```
//!
//! With `VENUE_V4L2_USB_PORT` set (a port under `/sys/bus/usb/devices`, root
//! needed) the unplug test de-authorises the camera's USB port and authorises it
//! again, and checks that the same `V4l2Camera` stalls, reopens and goes on.

// A test's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use venue_drivers::gst::StopSignal;
use venue_drivers::v4l2::{
    ControlValue, LinkState, ModeRequest, V4l2Camera, V4l2Config, list_cameras, parse_controls,
};
use venue_drivers::{Clock, PixelFormat, Source, SourceError, SystemClock};

fn device() -> PathBuf {
    PathBuf::from(std::env::var("VENUE_V4L2_DEVICE").unwrap_or_else(|_| "/dev/video0".into()))
}

/// The configuration under test: env `VENUE_V4L2_MODE=WxH@FPS`, default 640x480@30.
fn config() -> V4l2Config {
    let mut cfg = V4l2Config::new(device());
    let mode = std::env::var("VENUE_V4L2_MODE").unwrap_or_else(|_| "640x480@30".into());
    let (size, fps) = mode.split_once('@').expect("VENUE_V4L2_MODE is WxH@FPS");
    let (w, h) = size.split_once('x').expect("VENUE_V4L2_MODE is WxH@FPS");
    cfg.mode.width = w.parse().expect("width");
    cfg.mode.height = h.parse().expect("height");
    cfg.mode.fps = fps.parse().expect("fps");
    cfg
}

/// A camera whose stop flag is raised after `budget`: a missing or silent device
/// stalls and is retried forever by design, so the test needs its own limit
/// (`next_frame` then returns `Stopped` and the test fails saying so).
fn camera(cfg: V4l2Config, budget: Duration) -> V4l2Camera {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let stop = StopSignal::new();
    let watchdog = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        watchdog.stop();
    });
    V4l2Camera::new(cfg, clock, stop, 4).expect("valid config")
}

#[test]
fn the_fixture_camera_is_listed() {
    let (cameras, problems) = list_cameras();
    let path = device();
    let cam = cameras.iter().find(|c| c.path == path).unwrap_or_else(|| {
        panic!(
            "{} not listed; found {cameras:?}, problems {problems:?}",
            path.display()
        )
    });
    assert!(!cam.formats.is_empty());
    assert!(cam.formats.iter().all(|f| !f.sizes.is_empty()), "{cam:?}");
    println!(
        "{}",
        venue_drivers::v4l2::listing::render(&cameras, &problems)
    );
}

#[test]
fn frames_are_gap_free_and_well_formed() {
    let mut cam = camera(config(), Duration::from_secs(30));
    let started = Instant::now();
    let mut last_ns = 0;
    let n = 90;
    for expect_seq in 0..n {
        let f = cam
            .next_frame()
            .unwrap_or_else(|e| panic!("frame {expect_seq}: {e} (device missing or silent?)"));
        assert_eq!(f.seq, expect_seq);
        assert!(f.capture_ns > last_ns, "capture times increase");
        last_ns = f.capture_ns;
        match f.format.frame_bytes(f.width, f.height) {
            Some(len) => assert_eq!(f.data.len(), len, "raw frame is packed"),
            None if f.format == PixelFormat::Mjpeg => {
                assert_eq!(&f.data[..2], &[0xff, 0xd8], "JPEG start of image");
            }
            None => assert!(!f.data.is_empty()),
        }
    }
    let status = cam.status().lock().unwrap().clone();
    assert_eq!(status.state, LinkState::Streaming);
    let mode = status.mode.expect("mode while streaming");
    // A figure to read, not a timed assertion.
    println!(
        "{mode}: {n} frames in {:.2} s = {:.1} fps",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_impossible_control_value_fails_with_the_reason() {
    let mut cfg = config();
    cfg.controls =
        parse_controls(&[("gain".into(), ControlValue::Int(i64::from(i32::MAX)))]).unwrap();
    let mut cam = camera(cfg, Duration::from_secs(30));
    let err = cam.next_frame().expect_err("out-of-range gain");
    let text = err.to_string();
    let last = cam.status().lock().unwrap().last_error.clone();
    assert!(
        matches!(err, SourceError::Unsupported(_)),
        "{text}; last error: {last:?}"
    );
    assert!(
        text.contains("outside the camera's range") || text.contains("has no gain control"),
        "{text}"
    );
    assert_eq!(cam.status().lock().unwrap().state.wire_name(), "failed");
}

#[test]
fn a_format_the_camera_lacks_fails_listing_the_offer() {
    let (cameras, _) = list_cameras();
    let offers_hevc = cameras
        .iter()
        .filter(|c| c.path == device())
        .flat_map(|c| &c.formats)
        .any(|f| f.fourcc.pixel_format() == Some(PixelFormat::H265));
    if offers_hevc {
        println!("the fixture camera offers HEVC; nothing to check");
        return;
    }
    let mut cfg = config();
    cfg.mode = ModeRequest {
        formats: vec![PixelFormat::H265],
        ..cfg.mode
    };
    let err = camera(cfg, Duration::from_secs(30))
        .next_frame()
        .expect_err("no HEVC");
    assert!(
        err.to_string()
            .contains("offers none of the allowed formats (HEVC)"),
        "{err}"
    );
}

#[test]
fn unplug_stalls_and_the_camera_comes_back() {
    let Ok(port) = std::env::var("VENUE_V4L2_USB_PORT") else {
        println!("VENUE_V4L2_USB_PORT not set: unplug test skipped");
        return;
    };
    let authorized = PathBuf::from("/sys/bus/usb/devices")
        .join(&port)
        .join("authorized");
    let mut cam = camera(config(), Duration::from_secs(90));
    let status = cam.status();
    let before = cam.next_frame().expect("first frame").seq;

    // Pull the camera off the bus from another thread while this one waits for
    // frames, as the capture thread would; that thread also watches the state,
    // since next_frame blocks through the stall and the reopen.
    let unplugger = {
        let status = Arc::clone(&status);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            std::fs::write(&authorized, "0").expect("de-authorise the USB port (root?)");
            let until = Instant::now() + Duration::from_secs(10);
            let mut seen = None;
            while Instant::now() < until && seen.is_none() {
                let state = status.lock().unwrap().state;
                if matches!(state, LinkState::Stalled | LinkState::Reconnecting) {
                    seen = Some(state.wire_name());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::fs::write(&authorized, "1").expect("authorise the USB port");
            seen
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let resumed = loop {
        assert!(
            Instant::now() < deadline,
            "no frame within 60 s of re-plugging"
        );
        let f = cam
            .next_frame()
            .unwrap_or_else(|e| panic!("frames did not resume: {e}"));
        if status.lock().unwrap().reconnects >= 1 {
            break f;
        }
    };
    let seen = unplugger.join().unwrap();
    assert!(
        seen.is_some(),
        "the camera never reported stalled/reconnecting"
    );
    let s = status.lock().unwrap().clone();
    assert_eq!(s.state, LinkState::Streaming);
    assert_eq!(s.reconnects, 1);
    assert!(s.last_error.is_some(), "the stall's reason is kept");
    assert!(
        resumed.seq > before,
        "the sequence goes on after the reopen"
    );
}
