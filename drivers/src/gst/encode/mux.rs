//! Access units → MP4, without re-encoding: `appsrc ! h26xparse ! mp4mux
//! faststart=true ! appsink`. `faststart` puts the index first, so the muxer never
//! seeks back and the file can be built in memory (and played while downloading).

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::EncodeError;
use super::element::make;
use crate::frame::PixelFormat;

/// Longest wait for the muxer to finish once every unit is in.
const FINISH: Duration = Duration::from_secs(20);

/// One access unit to mux: Annex-B bytes at a presentation time (ns from any
/// origin; increasing).
#[derive(Debug, Clone, Copy)]
pub struct MuxUnit<'a> {
    pub pts_ns: u64,
    pub keyframe: bool,
    pub data: &'a [u8],
}

/// An MP4 file holding `units` (which must start at a keyframe, with SPS/PPS in
/// front of it, as this project's encoders and feeds give them).
pub fn mp4(codec: PixelFormat, fps: u32, units: &[MuxUnit<'_>]) -> Result<Vec<u8>, EncodeError> {
    gst::init().map_err(|e| EncodeError::Pipeline(format!("GStreamer: {e}")))?;
    let (caps_name, parser) = match codec {
        PixelFormat::H264 => ("video/x-h264", "h264parse"),
        PixelFormat::H265 => ("video/x-h265", "h265parse"),
        other => {
            return Err(EncodeError::Input(format!(
                "{other:?} is not compressed video"
            )));
        }
    };
    match units.first() {
        None => return Err(EncodeError::Input("no access units to mux".into())),
        Some(u) if !u.keyframe => {
            return Err(EncodeError::Input(
                "the first access unit is not a keyframe; a playable file starts at one".into(),
            ));
        }
        Some(_) => {}
    }
    if units.windows(2).any(|w| w[1].pts_ns <= w[0].pts_ns) {
        return Err(EncodeError::Input(
            "access unit times do not increase".into(),
        ));
    }
    let base = "gstreamer1.0-plugins-base";
    let src = make("appsrc", base)?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| EncodeError::Pipeline("appsrc is not an AppSrc".into()))?;
    src.set_caps(Some(
        &gst::Caps::builder(caps_name)
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .field("framerate", gst::Fraction::new(fps.max(1) as i32, 1))
            .build(),
    ));
    src.set_format(gst::Format::Time);
    let parse = if parser == "h264parse" {
        make("h264parse", "gstreamer1.0-plugins-bad")?
    } else {
        make("h265parse", "gstreamer1.0-plugins-bad")?
    };
    let mux = make("mp4mux", "gstreamer1.0-plugins-good")?;
    mux.set_property("faststart", true);
    let sink = make("appsink", base)?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| EncodeError::Pipeline("appsink is not an AppSink".into()))?;
    sink.set_sync(false);
    let pipeline = gst::Pipeline::new();
    let chain: [gst::Element; 4] = [src.clone().upcast(), parse, mux, sink.clone().upcast()];
    pipeline
        .add_many(&chain)
        .map_err(|e| EncodeError::Pipeline(e.to_string()))?;
    gst::Element::link_many(&chain).map_err(|e| EncodeError::Pipeline(e.to_string()))?;
    let result = run(&pipeline, &src, &sink, fps, units);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run(
    pipeline: &gst::Pipeline,
    src: &gst_app::AppSrc,
    sink: &gst_app::AppSink,
    fps: u32,
    units: &[MuxUnit<'_>],
) -> Result<Vec<u8>, EncodeError> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| EncodeError::Pipeline(format!("the muxer did not start: {e}")))?;
    let first = units.first().map_or(0, |u| u.pts_ns);
    let period = 1_000_000_000 / u64::from(fps.max(1));
    for (i, u) in units.iter().enumerate() {
        let next = units.get(i + 1).map_or(u.pts_ns + period, |n| n.pts_ns);
        let mut buffer = gst::Buffer::from_slice(u.data.to_vec());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(u.pts_ns - first));
            b.set_dts(gst::ClockTime::from_nseconds(u.pts_ns - first));
            b.set_duration(gst::ClockTime::from_nseconds(next - u.pts_ns));
            if !u.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        src.push_buffer(buffer)
            .map_err(|e| EncodeError::Pipeline(format!("the muxer refused a unit: {e:?}")))?;
    }
    let _ = src.end_of_stream();
    let mut out = Vec::new();
    let bus = pipeline.bus();
    let deadline = std::time::Instant::now() + FINISH;
    while !sink.is_eos() {
        if let Some(bus) = &bus {
            while let Some(msg) = bus.pop() {
                if let gst::MessageView::Error(err) = msg.view() {
                    return Err(EncodeError::Pipeline(format!("muxing: {}", err.error())));
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(EncodeError::Pipeline("the muxer did not finish".into()));
        }
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100))
            && let Some(buffer) = sample.buffer()
            && let Ok(map) = buffer.map_readable()
        {
            out.extend_from_slice(map.as_slice());
        }
    }
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
        if let Some(buffer) = sample.buffer()
            && let Ok(map) = buffer.map_readable()
        {
            out.extend_from_slice(map.as_slice());
        }
    }
    Ok(out)
}
