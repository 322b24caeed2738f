//! [`Encoder`]: `appsrc ! videoconvert ! ENCODER ! profile caps ! h26xparse
//! config-interval=-1 ! byte-stream/au ! appsink`, fed NV12 frames and pulled for
//! Annex-B access units.
//!
//! Alignment: each frame's buffer gets a presentation time derived from its capture
//! sequence; the encoder and parser carry it to the access unit, and the unit is
//! matched back to the frame by that time (not by position), so an encoder that
//! reorders or drops frames still labels every unit with the frame it encodes.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::debug;

use super::element::{make, resolve, set};
use super::{EncodeError, EncoderElement, EncoderSettings, Family, LatencyMode, Profile};
use crate::frame::{Frame, PixelFormat};

/// Frames accepted by `appsrc` before `push` waits for the encoder: bounds memory
/// when the encoder is slower than the camera (the wait is the back-pressure).
const QUEUED_FRAMES: u64 = 3;

/// One encoded access unit and the frame it encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUnit {
    /// Capture sequence of the frame (the metadata's `frame_seq`).
    pub seq: u64,
    /// Capture time of the frame, Unix ns.
    pub capture_ns: u64,
    /// An IDR access unit (with SPS/PPS in front): decoding can start here.
    pub keyframe: bool,
    /// Annex-B bytes.
    pub data: Vec<u8>,
}

/// A frame in the encoder, waiting for its access unit.
#[derive(Debug, Clone, Copy)]
struct Pending {
    pts: u64,
    seq: u64,
    capture_ns: u64,
}

/// The frame bytes handed to GStreamer, returned for reuse when it lets go of them
/// (the encoder may hold a few frames for threading or lookahead, so the camera's
/// own pooled buffer is released at once instead).
struct Recycled {
    data: Vec<u8>,
    home: mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let _ = self.home.send(std::mem::take(&mut self.data));
    }
}

/// A running encoder for one frame size and rate.
#[derive(Debug)]
pub struct Encoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    element: &'static EncoderElement,
    /// The raw format frames arrive in.
    format: PixelFormat,
    width: u32,
    height: u32,
    fps: u32,
    frame_bytes: usize,
    first_seq: Option<u64>,
    pending: VecDeque<Pending>,
    spare_tx: mpsc::Sender<Vec<u8>>,
    spare_rx: mpsc::Receiver<Vec<u8>>,
}

impl Encoder {
    /// Builds and starts an encoder for NV12 frames of `width × height` at `fps`.
    /// Fails with what to install when the element is missing, and with the
    /// setting and the accepted range when the element refuses a value.
    pub fn new(
        settings: &EncoderSettings,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, EncodeError> {
        Self::for_format(settings, PixelFormat::Nv12, width, height, fps)
    }

    /// Whether frames of `format` can be encoded: the raw formats cameras deliver
    /// (NV12, YUYV from V4L2 devices, RGB); `videoconvert` turns them into what the
    /// encoder takes (a no-op for NV12).
    pub fn takes(format: PixelFormat) -> bool {
        raw_caps_name(format).is_some()
    }

    /// [`Encoder::new`] for frames of another raw `format` (see [`Encoder::takes`]).
    pub fn for_format(
        settings: &EncoderSettings,
        format: PixelFormat,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self, EncodeError> {
        let format_name = raw_caps_name(format).ok_or_else(|| {
            EncodeError::Input(format!(
                "{format:?} frames cannot be encoded; raw NV12, YUYV or RGB frames can"
            ))
        })?;
        let element = resolve(settings.choice)?;
        if width == 0
            || height == 0
            || !width.is_multiple_of(2)
            || !height.is_multiple_of(2)
            || fps == 0
        {
            return Err(EncodeError::Input(format!(
                "{width}x{height}@{fps}: frames must have an even, non-zero size and a rate"
            )));
        }
        let frame_bytes = format
            .frame_bytes(width, height)
            .ok_or_else(|| EncodeError::Input(format!("{format:?} has no frame size")))?;
        let base = "gstreamer1.0-plugins-base";
        let src = make("appsrc", base)?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| EncodeError::Pipeline("appsrc is not an AppSrc".into()))?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", format_name)
            .field("width", width as i32)
            .field("height", height as i32)
            .field("framerate", gst::Fraction::new(fps as i32, 1))
            .build();
        src.set_caps(Some(&caps));
        src.set_format(gst::Format::Time);
        src.set_block(true);
        src.set_max_bytes(frame_bytes as u64 * QUEUED_FRAMES);
        let convert = make("videoconvert", base)?;
        let enc = gst::ElementFactory::make(element.factory)
            .build()
            .map_err(|_| EncodeError::Missing {
                element: element.factory,
                install: element.install,
            })?;
        configure(&enc, element, settings)?;
        let (codec, parser) = match element.codec {
            PixelFormat::H265 => ("h265", "h265parse"),
            _ => ("h264", "h264parse"),
        };
        let profile = match (element.codec, settings.profile) {
            (PixelFormat::H265, _) => "main",
            (_, p) => p.as_str(),
        };
        let profile_caps = make("capsfilter", "gstreamer1.0-plugins-base")?;
        profile_caps.set_property(
            "caps",
            gst::Caps::builder(format!("video/x-{codec}"))
                .field("profile", profile)
                .build(),
        );
        let parse = make(
            if parser == "h264parse" {
                "h264parse"
            } else {
                "h265parse"
            },
            "gstreamer1.0-plugins-bad",
        )?;
        // SPS/PPS in front of every keyframe: each run of units from a keyframe
        // decodes on its own (chunks, clips, late joiners).
        parse.set_property("config-interval", -1i32);
        let au_caps = make("capsfilter", base)?;
        au_caps.set_property(
            "caps",
            gst::Caps::builder(format!("video/x-{codec}"))
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        );
        let sink = make("appsink", base)?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| EncodeError::Pipeline("appsink is not an AppSink".into()))?;
        sink.set_sync(false);
        let pipeline = gst::Pipeline::new();
        let mut chain: Vec<gst::Element> = vec![src.clone().upcast(), convert];
        if element.family == Family::Nvv4l2 {
            // Jetson encoders take frames in NVMM memory (not run on this project's CI).
            let nvconv = make("nvvidconv", element.install)?;
            let nvmm = make("capsfilter", base)?;
            nvmm.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .features(["memory:NVMM"])
                    .field("format", "NV12")
                    .build(),
            );
            chain.extend([nvconv, nvmm]);
        }
        chain.extend([enc, profile_caps, parse, au_caps, sink.clone().upcast()]);
        pipeline
            .add_many(&chain)
            .map_err(|e| EncodeError::Pipeline(e.to_string()))?;
        gst::Element::link_many(&chain).map_err(|e| EncodeError::Misconfigured {
            element: element.factory,
            message: format!(
                "cannot link the pipeline ({e}); the encoder may not support profile \"{profile}\" or NV12 input"
            ),
        })?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| EncodeError::Pipeline("the pipeline has no bus".into()))?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let reason = bus_error(&bus).unwrap_or_else(|| "it did not start".into());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(EncodeError::Misconfigured {
                element: element.factory,
                message: reason,
            });
        }
        debug!(
            encoder = element.factory,
            width, height, fps, "encoder started"
        );
        let (spare_tx, spare_rx) = mpsc::channel();
        Ok(Self {
            pipeline,
            src,
            sink,
            bus,
            element,
            format,
            width,
            height,
            fps,
            frame_bytes,
            first_seq: None,
            pending: VecDeque::new(),
            spare_tx,
            spare_rx,
        })
    }

    /// The element in use (`x264enc`).
    pub fn element(&self) -> &'static EncoderElement {
        self.element
    }

    /// [`PixelFormat::H264`] or [`PixelFormat::H265`].
    pub fn codec(&self) -> PixelFormat {
        self.element.codec
    }

    /// Whether frames of this size and rate fit this encoder.
    pub fn accepts(&self, frame: &Frame) -> bool {
        frame.format == self.format
            && (frame.width, frame.height, frame.fps) == (self.width, self.height, self.fps)
    }

    /// Frames given to the encoder whose access units have not come out yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Hands one frame to the encoder (its bytes are copied into a reused
    /// buffer). Waits while the encoder already holds a few frames.
    pub fn push(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        if !self.accepts(frame) || frame.data.len() != self.frame_bytes {
            return Err(EncodeError::Input(format!(
                "{:?} {}x{}@{} ({} bytes); this encoder takes {:?} {}x{}@{}",
                frame.format,
                frame.width,
                frame.height,
                frame.fps,
                frame.data.len(),
                self.format,
                self.width,
                self.height,
                self.fps
            )));
        }
        self.check_bus()?;
        let first = *self.first_seq.get_or_insert(frame.seq);
        if frame.seq < first || self.pending.back().is_some_and(|p| p.seq >= frame.seq) {
            return Err(EncodeError::Input(format!(
                "frame {} is not after the previous one",
                frame.seq
            )));
        }
        let period = 1_000_000_000u128 / u128::from(self.fps);
        let pts = (u128::from(frame.seq - first) * period) as u64;
        let mut data = self.spare_rx.try_recv().unwrap_or_default();
        data.clear();
        data.extend_from_slice(&frame.data);
        let mut buffer = gst::Buffer::from_slice(Recycled {
            data,
            home: self.spare_tx.clone(),
        });
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_duration(gst::ClockTime::from_nseconds(period as u64));
        }
        self.pending.push_back(Pending {
            pts,
            seq: frame.seq,
            capture_ns: frame.capture_ns,
        });
        self.src
            .push_buffer(buffer)
            .map_err(|e| self.failure(format!("the encoder refused a frame: {e:?}")))?;
        Ok(())
    }

    /// The next access unit, waiting up to `timeout`; `None` when none is ready.
    pub fn pull(&mut self, timeout: Duration) -> Result<Option<EncodedUnit>, EncodeError> {
        self.check_bus()?;
        let t = gst::ClockTime::from_nseconds(timeout.as_nanos() as u64);
        let Some(sample) = self.sink.try_pull_sample(t) else {
            return Ok(None);
        };
        let buffer = sample
            .buffer()
            .ok_or_else(|| EncodeError::Pipeline("access unit without a buffer".into()))?;
        let pts = buffer
            .pts()
            .ok_or_else(|| EncodeError::Pipeline("access unit without a timestamp".into()))?;
        // Encoders may shift timestamps and their segment together (x264enc adds
        // 1000 hours to keep DTS positive): the running time is what is preserved.
        let pts = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
            .and_then(|s| s.to_running_time(pts))
            .unwrap_or(pts)
            .nseconds();
        let idx = self
            .pending
            .iter()
            .position(|p| p.pts == pts)
            .ok_or_else(|| {
                EncodeError::Pipeline(format!(
                    "access unit at {pts} ns matches no frame given to the encoder"
                ))
            })?;
        // Frames before it that never came out were dropped by the encoder: forget
        // them, but only once well behind (a reordering encoder emits them later).
        let found = self
            .pending
            .remove(idx)
            .ok_or_else(|| EncodeError::Pipeline("pending frame vanished".into()))?;
        while self.pending.len() > 64 {
            self.pending.pop_front();
        }
        let map = buffer
            .map_readable()
            .map_err(|_| EncodeError::Pipeline("cannot read an access unit".into()))?;
        Ok(Some(EncodedUnit {
            seq: found.seq,
            capture_ns: found.capture_ns,
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            data: map.as_slice().to_vec(),
        }))
    }

    /// Ends the stream and returns every access unit still inside the encoder.
    pub fn finish(mut self) -> Result<Vec<EncodedUnit>, EncodeError> {
        let _ = self.src.end_of_stream();
        let mut out = Vec::new();
        loop {
            if self.sink.is_eos() && self.pending.is_empty() {
                break;
            }
            match self.pull(Duration::from_secs(5))? {
                Some(u) => out.push(u),
                None => break,
            }
        }
        Ok(out)
    }

    fn check_bus(&self) -> Result<(), EncodeError> {
        match bus_error(&self.bus) {
            Some(reason) => Err(self.failure(reason)),
            None => Ok(()),
        }
    }

    fn failure(&self, reason: String) -> EncodeError {
        EncodeError::Pipeline(format!("{}: {reason}", self.element.factory))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The first error on the bus, if any (drains what is there).
/// GStreamer's name of a raw format, `None` for compressed ones.
fn raw_caps_name(format: PixelFormat) -> Option<&'static str> {
    match format {
        PixelFormat::Nv12 => Some("NV12"),
        PixelFormat::Yuyv => Some("YUY2"),
        PixelFormat::Rgb24 => Some("RGB"),
        PixelFormat::Mjpeg | PixelFormat::H264 | PixelFormat::H265 => None,
    }
}

fn bus_error(bus: &gst::Bus) -> Option<String> {
    let mut first = None;
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(err) = msg.view()
            && first.is_none()
        {
            let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
            first = Some(format!("{src}: {}", err.error()));
        }
    }
    first
}

/// Sets the element's properties for `settings` in its family's own names and units.
fn configure(
    enc: &gst::Element,
    e: &'static EncoderElement,
    s: &EncoderSettings,
) -> Result<(), EncodeError> {
    let f = e.factory;
    let low = s.latency == LatencyMode::Low;
    match e.family {
        Family::X26x => {
            set(enc, f, "bitrate", &s.bitrate_kbps.to_string())?;
            set(enc, f, "key-int-max", &s.gop.to_string())?;
            set(enc, f, "speed-preset", s.preset.as_str())?;
            if low {
                set(enc, f, "tune", "zerolatency")?;
            }
            if e.codec == PixelFormat::H265 {
                // x265enc has no B-frame property of its own.
                set(enc, f, "option-string", "bframes=0")?;
            } else {
                // Output order = capture order; lookahead only in normal mode.
                set(enc, f, "bframes", "0")?;
                if s.profile == Profile::Baseline {
                    set(enc, f, "cabac", "false")?;
                }
            }
        }
        Family::Nvcodec => {
            set(enc, f, "bitrate", &s.bitrate_kbps.to_string())?;
            set(enc, f, "gop-size", &s.gop.to_string())?;
            set(enc, f, "bframes", "0")?;
            set(enc, f, "zerolatency", if low { "true" } else { "false" })?;
        }
        Family::Nvv4l2 => {
            // bit/s, not kbit/s.
            let bps = u64::from(s.bitrate_kbps) * 1000;
            set(enc, f, "bitrate", &bps.to_string())?;
            set(enc, f, "iframeinterval", &s.gop.to_string())?;
            set(enc, f, "idrinterval", &s.gop.to_string())?;
            set(enc, f, "insert-sps-pps", "true")?;
            set(enc, f, "maxperf-enable", if low { "true" } else { "false" })?;
        }
    }
    Ok(())
}
