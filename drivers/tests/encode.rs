//! The encoder against real GStreamer elements: x264enc labels every access unit
//! with the frame it encodes, keyframes come every GOP, and the muxer turns the
//! units into an MP4 that GStreamer's own demuxer and decoder read back frame for
//! frame; a missing or misconfigured encoder is a clear error.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use venue_drivers::gst::encode::mux::{MuxUnit, mp4};
use venue_drivers::gst::encode::{
    ELEMENTS, EncodeError, EncodedUnit, Encoder, EncoderChoice, EncoderSettings, Profile,
};
use venue_drivers::{ManualClock, PixelFormat, Source, SyntheticCamera, SyntheticConfig};

fn x264() -> EncoderSettings {
    EncoderSettings {
        choice: EncoderChoice::parse("x264").unwrap(),
        gop: 10,
        bitrate_kbps: 800,
        ..EncoderSettings::default()
    }
}

fn camera(width: u32, height: u32) -> SyntheticCamera {
    let cfg = SyntheticConfig {
        width,
        height,
        fps: 30,
        seed: 7,
        ..SyntheticConfig::default()
    };
    SyntheticCamera::new(
        cfg,
        Arc::new(ManualClock::new(1_700_000_000_000_000_000)),
        4,
    )
    .unwrap()
}

fn encode(frames: u64, settings: &EncoderSettings) -> (Vec<EncodedUnit>, Vec<(u64, u64)>) {
    let mut cam = camera(320, 240);
    let mut enc = Encoder::new(settings, 320, 240, 30).unwrap();
    let mut units = Vec::new();
    let mut given = Vec::new();
    for _ in 0..frames {
        let f = cam.next_frame().unwrap();
        given.push((f.seq, f.capture_ns));
        enc.push(&f).unwrap();
        while let Some(u) = enc.pull(Duration::ZERO).unwrap() {
            units.push(u);
        }
    }
    units.extend(enc.finish().unwrap());
    (units, given)
}

#[test]
fn every_access_unit_carries_its_frames_sequence_and_capture_time() {
    let (units, given) = encode(45, &x264());
    let labels: Vec<(u64, u64)> = units.iter().map(|u| (u.seq, u.capture_ns)).collect();
    assert_eq!(labels, given, "one unit per frame, in capture order");
    let keys: Vec<u64> = units.iter().filter(|u| u.keyframe).map(|u| u.seq).collect();
    assert_eq!(keys, vec![0, 10, 20, 30, 40], "a keyframe every GOP (10)");
    // SPS (NAL type 7) in front of each keyframe: each GOP decodes on its own.
    for u in units.iter().filter(|u| u.keyframe) {
        assert!(has_nal(&u.data, 7), "keyframe {} without SPS", u.seq);
    }
}

fn has_nal(data: &[u8], kind: u8) -> bool {
    data.windows(4)
        .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == kind)
}

#[test]
fn muxed_units_decode_back_to_the_same_number_of_frames() {
    let (units, _) = encode(30, &x264());
    let file = mux_all(&units);
    assert_eq!(&file[4..8], b"ftyp", "an MP4 file");
    assert_eq!(decoded_frames(&file, "nv12"), 30);
}

/// `units` (from a keyframe) as an H.264 MP4 at 30 frames/s, times from the first.
fn mux_all(units: &[EncodedUnit]) -> Vec<u8> {
    let mux: Vec<MuxUnit<'_>> = units
        .iter()
        .map(|u| MuxUnit {
            pts_ns: u.capture_ns - units[0].capture_ns,
            keyframe: u.keyframe,
            data: &u.data,
        })
        .collect();
    mp4(PixelFormat::H264, 30, &mux).unwrap()
}

/// Decodes an MP4 with GStreamer's own demuxer and decoder, counting frames.
fn decoded_frames(file: &[u8], name: &str) -> u64 {
    let dir = std::env::temp_dir().join(format!("venue-encode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, file).unwrap();
    gst::init().unwrap();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! qtdemux ! h264parse ! avdec_h264 ! fakesink name=out signal-handoffs=true sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = Arc::clone(&count);
    p.by_name("out")
        .unwrap()
        .connect("handoff", false, move |_| {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            None
        });
    p.set_state(gst::State::Playing).unwrap();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    p.set_state(gst::State::Null).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    count.load(std::sync::atomic::Ordering::Relaxed)
}

/// The synthetic camera's NV12 frame as a V4L2 camera's YUYV (4:2:2, Y0 U Y1 V).
fn to_yuyv(f: &venue_drivers::Frame) -> venue_drivers::Frame {
    let (w, h) = (f.width as usize, f.height as usize);
    let (y, uv) = f.data.split_at(w * h);
    let mut out = Vec::with_capacity(w * h * 2);
    for row in 0..h {
        for col in (0..w).step_by(2) {
            let c = (row / 2) * w + col;
            out.extend_from_slice(&[y[row * w + col], uv[c], y[row * w + col + 1], uv[c + 1]]);
        }
    }
    venue_drivers::Frame {
        format: PixelFormat::Yuyv,
        data: Arc::new(out),
        ..f.clone()
    }
}

/// V4L2 cameras deliver YUYV: encoded like NV12 (converted before the encoder),
/// every unit labelled with its frame, and the result decodes frame for frame.
/// MJPEG is refused with the formats that work.
#[test]
fn yuyv_frames_are_encoded_and_mjpeg_is_refused_clearly() {
    assert!(Encoder::takes(PixelFormat::Yuyv) && !Encoder::takes(PixelFormat::Mjpeg));
    let err = Encoder::for_format(&x264(), PixelFormat::Mjpeg, 320, 240, 30)
        .map(|_| ())
        .expect_err("MJPEG refused")
        .to_string();
    assert!(err.contains("Mjpeg") && err.contains("YUYV"), "{err}");
    let mut cam = camera(320, 240);
    let mut enc = Encoder::for_format(&x264(), PixelFormat::Yuyv, 320, 240, 30).unwrap();
    let nv12 = cam.next_frame().unwrap();
    assert!(
        enc.push(&nv12).is_err(),
        "an NV12 frame is not what this encoder takes"
    );
    let (mut units, mut given) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let f = to_yuyv(&cam.next_frame().unwrap());
        assert!(enc.accepts(&f));
        given.push((f.seq, f.capture_ns));
        enc.push(&f).unwrap();
        while let Some(u) = enc.pull(Duration::ZERO).unwrap() {
            units.push(u);
        }
    }
    units.extend(enc.finish().unwrap());
    let labels: Vec<(u64, u64)> = units.iter().map(|u| (u.seq, u.capture_ns)).collect();
    assert_eq!(labels, given, "one unit per YUYV frame, in capture order");
    let file = mux_all(&units);
    assert_eq!(decoded_frames(&file, "yuyv"), 20);
}

#[test]
fn a_clip_must_start_at_a_keyframe() {
    let (units, _) = encode(12, &x264());
    let mux: Vec<MuxUnit<'_>> = units[1..]
        .iter()
        .map(|u| MuxUnit {
            pts_ns: u.capture_ns,
            keyframe: u.keyframe,
            data: &u.data,
        })
        .collect();
    let err = mp4(PixelFormat::H264, 30, &mux).unwrap_err();
    assert!(err.to_string().contains("keyframe"), "{err}");
}

#[test]
fn a_missing_encoder_names_what_to_install() {
    gst::init().unwrap();
    // Jetson's encoder is not on a CI machine; where it is, there is nothing to test.
    let jetson = ELEMENTS
        .iter()
        .find(|e| e.factory == "nvv4l2h264enc")
        .unwrap();
    if gst::ElementFactory::find(jetson.factory).is_some() {
        return;
    }
    let settings = EncoderSettings {
        choice: EncoderChoice::Named(jetson),
        ..EncoderSettings::default()
    };
    let err = Encoder::new(&settings, 320, 240, 30).unwrap_err();
    assert!(matches!(err, EncodeError::Missing { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("nvv4l2h264enc") && text.contains("install"),
        "{text}"
    );
}

#[test]
fn a_setting_the_encoder_refuses_is_named_with_its_range() {
    let settings = EncoderSettings {
        bitrate_kbps: 5_000_000,
        ..x264()
    };
    let err = Encoder::new(&settings, 320, 240, 30).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EncodeError::Misconfigured { .. }), "{err:?}");
    assert!(
        text.contains("bitrate") && text.contains("out of range"),
        "{text}"
    );
    // A baseline stream is what was asked for (no CABAC, profile in the SPS).
    let baseline = EncoderSettings {
        profile: Profile::Baseline,
        ..x264()
    };
    let (units, _) = encode(3, &baseline);
    let sps = units[0]
        .data
        .windows(5)
        .find(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)
        .unwrap();
    assert_eq!(sps[4], 66, "profile_idc 66 (baseline)");
}

#[test]
fn frames_of_another_size_are_refused() {
    let mut enc = Encoder::new(&x264(), 320, 240, 30).unwrap();
    let f = camera(640, 360).next_frame().unwrap();
    assert!(matches!(enc.push(&f), Err(EncodeError::Input(_))));
}
