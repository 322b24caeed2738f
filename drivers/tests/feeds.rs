//! GStreamer feeds against real GStreamer: a recorded H.264 file replays with the
//! right frame count, timestamps and byte-identical access units (H.264 and H.265);
//! a live feed that falls behind drops its oldest frames and counts them; an RTSP camera
//! (the test server) runs, stalls when frames stop, and comes back after the server
//! is stopped and restarted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use venue_drivers::gst::test_server::{Pattern, RtspTestServer};
use venue_drivers::gst::{
    BackoffConfig, FeedConfig, FeedKind, FeedState, FeedStatus, GstSource, StopSignal,
};
use venue_drivers::{Clock, PixelFormat, Source, SourceError, SystemClock};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("venue-feeds-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Encodes `frames` test-pattern frames with x264 into `path` (`mux`: "mp4mux" or
/// none for an Annex-B elementary stream) and returns each encoded access unit.
fn encode(path: &Path, frames: u32, fps: u32, mux: Option<&str>) -> Vec<Vec<u8>> {
    encode_with(path, frames, fps, mux, "h264")
}

/// [`encode`] with a choice of codec: `h264` (x264) or `h265` (x265). Keyframes
/// every 10 frames and nowhere else, no B-frames.
fn encode_with(path: &Path, frames: u32, fps: u32, mux: Option<&str>, codec: &str) -> Vec<Vec<u8>> {
    gst::init().unwrap();
    let tail = match mux {
        Some(m) => format!("{codec}parse ! {m} ! filesink location={}", path.display()),
        None => format!("filesink location={}", path.display()),
    };
    let encoder = match codec {
        "h264" => "x264enc key-int-max=10 bframes=0 speed-preset=ultrafast",
        "h265" => {
            "x265enc key-int-max=10 speed-preset=ultrafast option-string=bframes=0:scenecut=0:open-gop=0"
        }
        other => panic!("no encoder for {other}"),
    };
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate={fps}/1 \
         ! {encoder} ! video/x-{codec},stream-format=byte-stream,alignment=au \
         ! tee name=t ! queue ! appsink name=units sync=false t. ! queue ! {tail}"
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("units")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut units = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        units.push(buf.map_readable().unwrap().to_vec());
    }
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("encoder finished");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    units
}

/// The NAL units of an Annex-B access unit, without their start codes.
fn nal_units(au: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (k, &(_, body)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(au.len(), |&(sc, _)| sc);
        // A 4-byte start code's leading zero belongs to no unit.
        let mut end = end;
        while end > body && au[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        units.push(&au[body..end]);
    }
    units
}

fn file_feed(path: &Path, au_queue: usize) -> FeedConfig {
    let mut cfg = FeedConfig::new(FeedKind::File {
        path: path.to_path_buf(),
        realtime: false,
        repeat: false,
    });
    cfg.access_unit_queue = au_queue;
    cfg
}

/// What a test keeps of a frame (holding the frames would exhaust the pool).
struct Seen {
    seq: u64,
    capture_mono: Duration,
    capture_ns: u64,
    width: u32,
    height: u32,
    fps: u32,
    format: PixelFormat,
    len: usize,
}

fn replay(path: &Path, au_queue: usize) -> (Vec<Seen>, GstSource) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut src = GstSource::new(file_feed(path, au_queue), clock, StopSignal::new()).unwrap();
    let mut frames = Vec::new();
    loop {
        match src.next_frame() {
            Ok(f) => frames.push(Seen {
                seq: f.seq,
                capture_mono: f.capture_mono,
                capture_ns: f.capture_ns,
                width: f.width,
                height: f.height,
                fps: f.fps,
                format: f.format,
                len: f.data.len(),
            }),
            Err(SourceError::Ended) => break,
            Err(e) => panic!("replay failed: {e}"),
        }
        if frames.len() > 1000 {
            panic!("too many frames");
        }
    }
    assert_eq!(
        src.status().dropped_frames(),
        0,
        "a file replay loses nothing"
    );
    (frames, src)
}

fn assert_spacing(frames: &[Seen], fps: u64) {
    let period = 1_000_000_000 / fps;
    for (i, f) in frames.iter().enumerate() {
        let offset = f.capture_ns - frames[0].capture_ns;
        let expected = i as u64 * period;
        assert!(
            offset.abs_diff(expected) <= 1_000,
            "frame {i}: {offset} ns after the first, expected {expected}"
        );
        assert_eq!(f.seq, i as u64);
        assert_eq!(
            (f.capture_mono - frames[0].capture_mono).as_nanos() as u64,
            offset
        );
    }
}

#[test]
fn an_mp4_file_replays_every_frame_with_its_timestamps() {
    let dir = scratch("mp4");
    let path = dir.join("clip.mp4");
    let encoded = encode(&path, 45, 25, Some("mp4mux"));
    assert_eq!(encoded.len(), 45);
    let (frames, src) = replay(&path, 0);
    assert_eq!(frames.len(), 45);
    assert_spacing(&frames, 25);
    let f = &frames[0];
    assert_eq!(
        (f.width, f.height, f.fps, f.format),
        (160, 120, 25, PixelFormat::Nv12)
    );
    assert_eq!(f.len, 160 * 120 * 3 / 2);
    assert_eq!(src.status().state().0, FeedState::Ended);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_h264_stream_replays_with_byte_identical_access_units() {
    let dir = scratch("annexb");
    let path = dir.join("clip.h264");
    let encoded = encode(&path, 30, 30, None);
    let (frames, mut src) = replay(&path, 64);
    assert_eq!(frames.len(), 30);
    assert_spacing(&frames, 30);
    let units = src.access_units().expect("access units requested");
    let mut got = Vec::new();
    while let Some(au) = units.try_recv() {
        assert_eq!(au.format, PixelFormat::H264);
        assert_eq!(au.seq, got.len() as u64);
        got.push((au.keyframe, au.data.to_vec()));
    }
    assert_eq!(units.dropped(), 0);
    assert_eq!(got.len(), encoded.len());
    for (i, ((keyframe, bytes), want)) in got.iter().zip(&encoded).enumerate() {
        // The parser may write 4-byte start codes where the encoder wrote 3; the
        // NAL units themselves must be the encoder's, byte for byte.
        assert_eq!(nal_units(bytes), nal_units(want), "access unit {i}");
        assert!(bytes.starts_with(&[0, 0, 0, 1]) || bytes.starts_with(&[0, 0, 1]));
        assert_eq!(*keyframe, i % 10 == 0, "access unit {i}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_h265_file_replays_every_frame_with_its_pictures_byte_identical() {
    let dir = scratch("hevc");
    let path = dir.join("clip.h265");
    let encoded = encode_with(&path, 30, 30, None, "h265");
    let (frames, mut src) = replay(&path, 64);
    assert_eq!(frames.len(), 30, "every H.265 frame decoded");
    assert_spacing(&frames, 30);
    assert_eq!(
        (frames[0].width, frames[0].height, frames[0].format),
        (160, 120, PixelFormat::Nv12)
    );
    let units = src.access_units().expect("access units requested");
    let mut got = Vec::new();
    while let Some(au) = units.try_recv() {
        assert_eq!(au.format, PixelFormat::H265);
        assert_eq!(au.seq, got.len() as u64);
        got.push((au.keyframe, au.data.to_vec()));
    }
    assert_eq!(got.len(), encoded.len());
    // H.265 NAL unit type; 32..=34 are the parameter sets (VPS, SPS, PPS).
    let is_parameter_set = |nal: &&[u8]| {
        nal.first()
            .is_some_and(|b| (32..=34).contains(&((b >> 1) & 0x3f)))
    };
    for (i, ((keyframe, bytes), want)) in got.iter().zip(&encoded).enumerate() {
        let (got_nals, want_nals) = (nal_units(bytes), nal_units(want));
        // Every picture NAL unit is the encoder's, byte for byte; the parser only
        // repeats the parameter sets before each keyframe (x265 writes them once),
        // so a run of units starting at any keyframe decodes on its own.
        let pictures = |nals: &[&[u8]]| -> Vec<Vec<u8>> {
            nals.iter()
                .filter(|n| !is_parameter_set(n))
                .map(|n| n.to_vec())
                .collect()
        };
        assert_eq!(pictures(&got_nals), pictures(&want_nals), "access unit {i}");
        assert_eq!(*keyframe, i % 10 == 0, "access unit {i}");
        if *keyframe {
            assert_eq!(
                got_nals.iter().filter(|n| is_parameter_set(n)).count(),
                3,
                "keyframe {i} carries VPS, SPS and PPS"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_file_is_retried_not_fatal() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let stop = StopSignal::new();
    let mut cfg = file_feed(Path::new("/nonexistent/venue/clip.mp4"), 0);
    cfg.backoff = BackoffConfig {
        min: Duration::from_millis(10),
        max: Duration::from_millis(20),
    };
    let mut src = GstSource::new(cfg, clock, stop.clone()).unwrap();
    let status = src.status();
    let stopper = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while status.failures() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let seen = status.state();
        stop.stop();
        (status.failures(), seen)
    });
    assert!(matches!(src.next_frame(), Err(SourceError::Stopped)));
    let (failures, (state, detail)) = stopper.join().unwrap();
    assert!(failures >= 3, "{failures} failures");
    assert_eq!(state, FeedState::Reconnecting);
    let detail = detail.unwrap_or_default();
    assert!(
        detail.contains("clip.mp4"),
        "detail names the file: {detail}"
    );
}

fn rtsp_feed(url: String) -> FeedConfig {
    let mut cfg = FeedConfig::new(FeedKind::Rtsp { url });
    cfg.latency = Duration::from_millis(50);
    cfg.stall_timeout = Duration::from_millis(1500);
    cfg.backoff = BackoffConfig {
        min: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    cfg
}

/// Runs the source on its own thread (as the daemon does) and reports each frame's
/// arrival; the thread ends when the source is stopped.
fn run_source(
    mut src: GstSource,
) -> (
    Receiver<(u64, Instant)>,
    std::thread::JoinHandle<Option<SourceError>>,
) {
    let (tx, rx) = channel();
    let t = std::thread::spawn(move || {
        loop {
            match src.next_frame() {
                Ok(f) => {
                    if tx.send((f.seq, Instant::now())).is_err() {
                        return None;
                    }
                }
                Err(SourceError::Stopped) => return None,
                Err(e) => return Some(e),
            }
        }
    });
    (rx, t)
}

/// Frames received within `window`.
fn drain(rx: &Receiver<(u64, Instant)>, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut n = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if rx.recv_timeout(left).is_ok() {
            n += 1;
        }
    }
    n
}

fn wait_for(status: &FeedStatus, state: FeedState, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if status.state().0 == state {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn an_rtsp_camera_runs_stalls_and_comes_back_after_a_server_restart() {
    let server = RtspTestServer::start(0, Pattern::default()).unwrap();
    let port = server.port();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let stop = StopSignal::new();
    let src = GstSource::new(rtsp_feed(server.url()), clock, stop.clone()).unwrap();
    let status = src.status();
    let (frames, thread) = run_source(src);
    let first = frames
        .recv_timeout(Duration::from_secs(10))
        .expect("first frame");
    assert_eq!(first.0, 0);
    assert!(
        drain(&frames, Duration::from_secs(1)) >= 15,
        "about 25 frames a second"
    );
    assert_eq!(status.state().0, FeedState::Running);

    // Frames stop, the connection stays: stalled within the stall timeout.
    server.set_flowing(false);
    let took = wait_for(&status, FeedState::Stalled, Duration::from_secs(10)).expect("stalled");
    println!("stalled after {took:?} (timeout 1.5 s)");
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    // While held back it stays stalled (reopened, still nothing).
    let _ = drain(&frames, Duration::from_secs(2));
    assert_eq!(status.state().0, FeedState::Stalled);
    assert!(drain(&frames, Duration::from_millis(500)) == 0);
    server.set_flowing(true);
    frames
        .recv_timeout(Duration::from_secs(10))
        .expect("frames resume");
    assert_eq!(status.state().0, FeedState::Running);

    // The server dies and comes back on the same port.
    let failures = status.failures();
    server.stop();
    wait_for(&status, FeedState::Reconnecting, Duration::from_secs(5)).expect("reconnecting");
    assert!(status.failures() > failures);
    let _ = drain(&frames, Duration::from_secs(2));
    let server = RtspTestServer::start(port, Pattern::default()).unwrap();
    let back = Instant::now();
    frames
        .recv_timeout(Duration::from_secs(10))
        .expect("frames after the restart");
    let resumed = back.elapsed();
    println!("frames resumed {resumed:?} after the server's return");
    assert!(
        resumed < Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    assert_eq!(status.state().0, FeedState::Running);
    stop.stop();
    assert!(
        thread.join().unwrap().is_none(),
        "ended by the stop request"
    );
    drop(server);
}

#[test]
fn a_live_feed_whose_consumer_falls_behind_drops_the_oldest_frames_and_counts_them() {
    let server = RtspTestServer::start(0, Pattern::default()).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut src = GstSource::new(rtsp_feed(server.url()), clock, StopSignal::new()).unwrap();
    let status = src.status();
    let first = src.next_frame().expect("the feed runs");
    let before = status.dropped_frames();
    // The capture thread is away for a second (under the 1.5 s stall timeout):
    // the feed goes on decoding.
    std::thread::sleep(Duration::from_secs(1));
    let after_pause = src.next_frame().expect("frames again");
    let dropped = status.dropped_frames() - before;
    assert!(
        dropped > 0,
        "a second of frames cannot fit the 8-frame queue, yet none was counted"
    );
    // Sequence numbers count delivered frames: gap-free, drops are counted instead.
    assert_eq!(after_pause.seq, first.seq + 1);
    // The oldest frames went: the next frame is from the end of the pause, not the
    // one captured right after the first (which a drop-newest queue would give).
    let gap = Duration::from_nanos(after_pause.capture_ns - first.capture_ns);
    assert!(
        gap >= Duration::from_millis(500),
        "next frame only {gap:?} after the first"
    );
    println!("dropped {dropped} frames while the consumer slept 1 s");
    assert_eq!(status.state().0, FeedState::Running);
}

/// An SRT camera as a venue has them: H.264 in MPEG-TS (seven TS packets per SRT
/// message), the camera listening and the box calling.
fn srt_sender(port: u16) -> gst::Pipeline {
    gst::init().unwrap();
    let desc = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=15 speed-preset=ultrafast \
         ! mpegtsmux alignment=7 ! srtsink uri=srt://127.0.0.1:{port}?mode=listener wait-for-connection=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    pipeline
}

#[test]
fn an_srt_camera_delivers_frames_and_comes_back_after_the_sender_restarts() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let sender = srt_sender(port);
    let mut cfg = rtsp_feed(String::new());
    cfg.kind = FeedKind::Srt {
        url: format!("srt://127.0.0.1:{port}?mode=caller"),
    };
    cfg.access_unit_queue = 64;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let stop = StopSignal::new();
    let mut src = GstSource::new(cfg, clock, stop.clone()).unwrap();
    let status = src.status();
    let units = src.access_units().expect("access units requested");
    let (frames, thread) = run_source(src);
    frames
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no SRT frame; state {:?}", status.state()));
    assert!(
        drain(&frames, Duration::from_secs(1)) >= 15,
        "about 30 frames a second"
    );
    assert_eq!(status.state().0, FeedState::Running);
    let au = units
        .recv_timeout(Duration::from_secs(1))
        .expect("an access unit");
    assert_eq!(au.format, PixelFormat::H264);

    // The camera goes away: stalled or reconnecting, then back within 5 s.
    sender.set_state(gst::State::Null).unwrap();
    drop(sender);
    let down = wait_for(&status, FeedState::Reconnecting, Duration::from_secs(10))
        .or_else(|| wait_for(&status, FeedState::Stalled, Duration::from_secs(1)));
    assert!(down.is_some(), "state stayed {:?}", status.state());
    let _ = drain(&frames, Duration::from_millis(100));
    let back = Instant::now();
    let sender = srt_sender(port);
    frames
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no frame after the sender returned; {:?}", status.state()));
    println!(
        "SRT frames resumed {:?} after the sender returned",
        back.elapsed()
    );
    assert!(status.failures() >= 1);
    stop.stop();
    assert!(thread.join().unwrap().is_none());
    sender.set_state(gst::State::Null).unwrap();
}

#[test]
fn an_h265_rtsp_camera_delivers_decoded_frames_and_access_units() {
    let pattern = Pattern {
        h265: true,
        ..Pattern::default()
    };
    let server = RtspTestServer::start(0, pattern).unwrap();
    let mut cfg = rtsp_feed(server.url());
    cfg.access_unit_queue = 64;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
    let mut src = GstSource::new(cfg, clock, StopSignal::new()).unwrap();
    let units = src.access_units().expect("access units requested");
    let first = src.next_frame().expect("a decoded H.265 frame");
    assert_eq!(
        (first.width, first.height, first.format),
        (320, 240, PixelFormat::Nv12)
    );
    for _ in 0..10 {
        src.next_frame().expect("frames keep coming");
    }
    let au = units
        .recv_timeout(Duration::from_secs(2))
        .expect("an access unit");
    assert_eq!(au.format, PixelFormat::H265);
    assert_eq!(src.status().state().0, FeedState::Running);
}
