//! Builds the GStreamer pipeline of a feed. The front end depends on the kind
//! (`rtspsrc`, `srtsrc ! tsdemux`, `filesrc ! parsebin`); once the stream's codec is
//! known (a pad appears), one branch is attached:
//!
//! ```text
//! [rtph26xdepay !] h26xparse ! byte-stream/au ! tee ─▶ queue ! appsink "au"   (compressed, as received)
//!                                                  └▶ queue ! avdec_h26x ! videoconvert ! NV12 ! appsink "raw"
//! ```
//!
//! Callbacks run on GStreamer's streaming threads: they never panic and never block
//! (except a file's raw queue, which waits for room: that is how a replay is paced);
//! what goes wrong there is posted on the bus or recorded in [`Fatal`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tracing::{debug, trace, warn};

use super::raw_queue::RawQueue;
use super::{FeedConfig, FeedKind};
use crate::clock::Clock;
use crate::frame::{Frame, PixelFormat};
use crate::pool::BufferPool;

/// The two codecs a feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    H264,
    H265,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Self::H264 => "h264",
            Self::H265 => "h265",
        }
    }

    fn format(self) -> PixelFormat {
        match self {
            Self::H264 => PixelFormat::H264,
            Self::H265 => PixelFormat::H265,
        }
    }
}

/// A reason the configuration cannot be met (unsupported codec), set from a
/// streaming thread and read by the source's thread.
#[derive(Debug, Default)]
pub(crate) struct Fatal(Mutex<Option<String>>);

impl Fatal {
    fn set(&self, reason: String) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(reason);
        }
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// Maps buffer timestamps to capture times. Live feeds are stamped on arrival;
/// files by their presentation time from the moment the pipeline was opened, so a
/// replay has the recorded spacing however fast it is read.
#[derive(Debug)]
pub(crate) struct TimeBase {
    live: bool,
    mono0: Duration,
    ns0: u64,
    /// First presentation time seen (ns), `u64::MAX` until then.
    first_pts: AtomicU64,
}

impl TimeBase {
    pub(crate) fn new(live: bool, clock: &dyn Clock) -> Self {
        Self {
            live,
            mono0: clock.monotonic(),
            ns0: clock.unix_ns(),
            first_pts: AtomicU64::new(u64::MAX),
        }
    }

    /// (monotonic, Unix ns) capture time of a buffer with presentation time `pts`.
    pub(crate) fn stamp(&self, pts: Option<gst::ClockTime>, clock: &dyn Clock) -> (Duration, u64) {
        match pts {
            Some(pts) if !self.live => {
                let pts = pts.nseconds();
                let first = match self.first_pts.compare_exchange(
                    u64::MAX,
                    pts,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => pts,
                    Err(first) => first,
                };
                let offset = pts.saturating_sub(first);
                (
                    self.mono0 + Duration::from_nanos(offset),
                    self.ns0.saturating_add(offset),
                )
            }
            _ => (clock.monotonic(), clock.unix_ns()),
        }
    }
}

/// The access-unit output shared by every pipeline of one source, so the sequence
/// and the buffers carry over reconnects.
#[derive(Debug)]
pub(crate) struct AuOutput {
    tx: SyncSender<Frame>,
    camera: Arc<str>,
    pool: Mutex<(BufferPool, u64)>,
    pub(crate) dropped: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl AuOutput {
    pub(crate) fn new(
        tx: SyncSender<Frame>,
        camera: Arc<str>,
        buffers: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            tx,
            camera,
            // Buffers start empty and grow to the largest access unit seen.
            pool: Mutex::new((BufferPool::new(0, buffers), 0)),
            dropped: AtomicU64::new(0),
            clock,
        }
    }

    /// Called on the streaming thread for each access unit: copy it into a pooled
    /// buffer and queue it without waiting; a full queue or pool drops and counts it.
    fn push(&self, sample: &gst::Sample, codec: Codec, time: &TimeBase, fps: u32) {
        let Some(buffer) = sample.buffer() else {
            return;
        };
        let Ok(map) = buffer.map_readable() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (capture_mono, capture_ns) = time.stamp(buffer.pts(), self.clock.as_ref());
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let (width, height) = sample
            .caps()
            .and_then(|c| c.structure(0))
            .map(|s| {
                (
                    s.get::<i32>("width").unwrap_or(0).max(0) as u32,
                    s.get::<i32>("height").unwrap_or(0).max(0) as u32,
                )
            })
            .unwrap_or((0, 0));
        let Ok(mut guard) = self.pool.lock() else {
            return;
        };
        let (pool, seq) = &mut *guard;
        let this_seq = *seq;
        *seq += 1;
        let Some(data) = pool.fill(|v| {
            v.clear();
            v.extend_from_slice(map.as_slice());
        }) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            trace!(
                seq = this_seq,
                "access unit dropped: every buffer still held"
            );
            return;
        };
        drop(guard);
        let frame = Frame {
            camera: Arc::clone(&self.camera),
            seq: this_seq,
            capture_mono,
            capture_ns,
            timecode: Frame::timecode_at(capture_ns, fps),
            width,
            height,
            format: codec.format(),
            fps,
            keyframe,
            data,
        };
        match self.tx.try_send(frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                trace!(seq = this_seq, "access unit dropped: queue full");
            }
            // Nobody takes access units any more: nothing to count.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// One opened pipeline.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) pipeline: gst::Pipeline,
    /// Decoded frames, taken out of the `raw` appsink as they arrive.
    pub(crate) raw: Arc<RawQueue<gst::Sample>>,
    pub(crate) time: Arc<TimeBase>,
    pub(crate) fatal: Arc<Fatal>,
}

/// Decoded frames queued between the streaming and the capture thread.
const RAW_QUEUE: usize = 8;

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element \"{factory}\" is not installed"))
}

/// Builds the pipeline for `cfg` (not started). `Err` means this machine cannot
/// build it (missing plugin): a configuration that cannot be met.
pub(crate) fn build(
    cfg: &FeedConfig,
    clock: &Arc<dyn Clock>,
    au: Option<&Arc<AuOutput>>,
    dropped: &Arc<AtomicU64>,
) -> Result<Built, String> {
    let pipeline = gst::Pipeline::new();
    let live = !matches!(cfg.kind, FeedKind::File { .. });
    let time = Arc::new(TimeBase::new(live, clock.as_ref()));
    let fatal = Arc::new(Fatal::default());
    let latency_ms = u32::try_from(cfg.latency.as_millis()).unwrap_or(u32::MAX);
    let (demuxer, rtp, sync) = match &cfg.kind {
        FeedKind::Rtsp { url } => {
            let src = make("rtspsrc")?;
            src.set_property("location", url.as_str());
            src.set_property("latency", latency_ms);
            src.set_property_from_str("protocols", "tcp");
            pipeline.add(&src).map_err(|e| e.to_string())?;
            (src, true, false)
        }
        FeedKind::Srt { url } => {
            let src = make("srtsrc")?;
            src.set_property("uri", url.as_str());
            src.set_property("latency", i32::try_from(latency_ms).unwrap_or(i32::MAX));
            let demux = make("tsdemux")?;
            pipeline
                .add_many([&src, &demux])
                .map_err(|e| e.to_string())?;
            src.link(&demux).map_err(|e| e.to_string())?;
            (demux, false, false)
        }
        FeedKind::File { path, realtime, .. } => {
            let src = make("filesrc")?;
            src.set_property("location", path.to_string_lossy().as_ref());
            let parse = make("parsebin")?;
            pipeline
                .add_many([&src, &parse])
                .map_err(|e| e.to_string())?;
            src.link(&parse).map_err(|e| e.to_string())?;
            (parse, false, *realtime)
        }
    };
    // Live feeds must never back up into the network: the raw queue drops (and
    // counts) the oldest frame if the capture thread falls behind. A file is read at
    // the pace frames are taken, so none is lost.
    let raw = Arc::new(RawQueue::new(RAW_QUEUE, live, Arc::clone(dropped)));
    let attach = Attach {
        pipeline: pipeline.downgrade(),
        rtp,
        sync,
        raw: Arc::clone(&raw),
        fallback_fps: cfg.fallback_fps,
        au: au.cloned(),
        time: Arc::clone(&time),
        fatal: Arc::clone(&fatal),
        attached: AtomicBool::new(false),
    };
    demuxer.connect_pad_added(move |_, pad| attach.pad_added(pad));
    Ok(Built {
        pipeline,
        raw,
        time,
        fatal,
    })
}

/// What the pad-added callback needs to attach the codec branch.
struct Attach {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    rtp: bool,
    sync: bool,
    raw: Arc<RawQueue<gst::Sample>>,
    fallback_fps: u32,
    au: Option<Arc<AuOutput>>,
    time: Arc<TimeBase>,
    fatal: Arc<Fatal>,
    attached: AtomicBool,
}

impl Attach {
    fn pad_added(&self, pad: &gst::Pad) {
        let Some(pipeline) = self.pipeline.upgrade() else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let Some(s) = caps.structure(0) else {
            return;
        };
        let media = s.name().as_str();
        let (is_video, encoding) = if self.rtp {
            (
                s.get::<&str>("media").ok() == Some("video"),
                s.get::<&str>("encoding-name")
                    .unwrap_or("")
                    .to_ascii_uppercase(),
            )
        } else {
            (
                media.starts_with("video/"),
                media.trim_start_matches("video/x-").to_ascii_uppercase(),
            )
        };
        let codec = match encoding.as_str() {
            "H264" => Some(Codec::H264),
            "H265" => Some(Codec::H265),
            _ => None,
        };
        let result = match codec {
            Some(codec) if is_video && !self.attached.swap(true, Ordering::SeqCst) => {
                self.attach_branch(&pipeline, pad, codec)
            }
            None if is_video && !self.attached.load(Ordering::SeqCst) => {
                self.fatal.set(format!(
                    "video codec \"{media}\" ({encoding}) is not supported; feeds carry H.264 or H.265"
                ));
                attach_fakesink(&pipeline, pad)
            }
            // Audio, data and extra video streams are consumed and discarded, so an
            // unlinked pad never stops the source.
            _ => attach_fakesink(&pipeline, pad),
        };
        if let Err(error) = result {
            warn!(%error, "cannot attach the feed's branch");
            self.fatal
                .set(format!("cannot build the pipeline: {error}"));
        }
    }

    fn attach_branch(
        &self,
        pipeline: &gst::Pipeline,
        pad: &gst::Pad,
        codec: Codec,
    ) -> Result<(), String> {
        let c = codec.name();
        let depay = if self.rtp {
            format!("rtp{c}depay ! ")
        } else {
            String::new()
        };
        let sync = self.sync;
        // config-interval=-1 repeats SPS/PPS before every keyframe, so each access
        // unit run starting at a keyframe decodes on its own.
        let mut desc = format!(
            "{depay}{c}parse config-interval=-1 ! video/x-{c},stream-format=byte-stream,alignment=au ! "
        );
        if self.au.is_some() {
            desc.push_str(&format!(
                "tee name=t ! queue ! appsink name=au sync={sync} async=false max-buffers=64 drop=true t. ! "
            ));
        }
        desc.push_str(&format!(
            "queue ! avdec_{c} ! videoconvert ! video/x-raw,format=NV12 ! appsink name=raw sync={sync} max-buffers=1 drop=false"
        ));
        let bin = gst::parse::bin_from_description(&desc, true)
            .map_err(|e| format!("cannot build \"{desc}\": {e}"))?;
        if let (Some(out), Some(sink)) = (
            &self.au,
            bin.by_name("au")
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok()),
        ) {
            let out = Arc::clone(out);
            let time = Arc::clone(&self.time);
            let fallback = self.fallback_fps;
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        if let Ok(sample) = sink.pull_sample() {
                            let fps = sample.caps().map_or(fallback, |c| caps_fps(c, fallback));
                            out.push(&sample, codec, &time, fps);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        if let Some(sink) = bin
            .by_name("raw")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        {
            // Each decoded frame leaves appsink at once, into the counted queue.
            let raw = Arc::clone(&self.raw);
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        if let Ok(sample) = sink.pull_sample() {
                            raw.push(sample);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline.add(&bin).map_err(|e| e.to_string())?;
        bin.sync_state_with_parent().map_err(|e| e.to_string())?;
        let sink = bin
            .static_pad("sink")
            .ok_or_else(|| "the branch has no sink pad".to_string())?;
        pad.link(&sink)
            .map_err(|e| format!("cannot link the {c} stream: {e:?}"))?;
        debug!(codec = c, "feed branch attached");
        Ok(())
    }
}

fn attach_fakesink(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| "fakesink has no sink pad".to_string())?;
    pad.link(&sinkpad).map_err(|e| format!("{e:?}"))?;
    Ok(())
}

/// The frame rate stated by `caps`, rounded, or `fallback`.
pub(crate) fn caps_fps(caps: &gst::CapsRef, fallback: u32) -> u32 {
    caps.structure(0)
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map_or(fallback, |f| {
            ((f.numer() as f64 / f.denom() as f64).round() as u32).max(1)
        })
}
