//! [`GstSource`]: a feed as a blocking [`Source`]. Its thread owns the pipeline and
//! the reconnect state machine; a failing feed waits out its backoff inside
//! `next_frame`, which touches nothing shared with other cameras.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tracing::{debug, info, warn};

use super::backoff::{Action, FeedState, Reconnect};
use super::pipeline::{self, AuOutput, Built, caps_fps};
use super::{FeedConfig, FeedKind, StopSignal};
use crate::clock::Clock;
use crate::frame::{Frame, PixelFormat};
use crate::pool::BufferPool;
use crate::{Source, SourceError};

/// Longest single wait on the pipeline, so a stop request or a bus error is seen
/// promptly even while frames are flowing slowly.
const POLL: Duration = Duration::from_millis(100);

/// A feed's state as its health reports it; cheap to clone and read from any thread.
#[derive(Debug, Clone)]
pub struct FeedStatus {
    inner: Arc<StatusInner>,
}

#[derive(Debug)]
struct StatusInner {
    state: Mutex<(FeedState, Option<String>)>,
    failures: AtomicU64,
    /// Decoded frames dropped because the capture thread fell behind.
    dropped: Arc<AtomicU64>,
}

impl FeedStatus {
    fn new() -> Self {
        Self {
            inner: Arc::new(StatusInner {
                state: Mutex::new((FeedState::Connecting, None)),
                failures: AtomicU64::new(0),
                dropped: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// The current state and, when not running, why.
    pub fn state(&self) -> (FeedState, Option<String>) {
        self.inner
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((FeedState::Reconnecting, None))
    }

    /// Failures (errors, stalls, ends) since the source was created; each one is
    /// followed by a reconnect.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Decoded frames a live feed dropped because the capture thread fell behind
    /// (the oldest queued frame goes first); files never drop.
    pub fn dropped_frames(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn set(&self, state: FeedState, detail: Option<String>) {
        if let Ok(mut s) = self.inner.state.lock() {
            *s = (state, detail);
        }
    }
}

/// The compressed access units of a feed, in order, as received (Annex-B).
#[derive(Debug)]
pub struct AccessUnits {
    rx: Receiver<Frame>,
    out: Arc<AuOutput>,
}

impl AccessUnits {
    /// The next access unit, waiting up to `timeout`; `None` on timeout or when the
    /// source is gone.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Frame> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next access unit if one is queued.
    pub fn try_recv(&self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }

    /// Access units dropped because the queue or its buffers were full.
    pub fn dropped(&self) -> u64 {
        self.out.dropped.load(Ordering::Relaxed)
    }
}

/// One open pipeline with the sink frames are pulled from.
#[derive(Debug)]
struct Live {
    built: Built,
    bus: gst::Bus,
}

impl Live {
    fn close(self) {
        // A file's streaming thread may wait for room in the queue: release it first.
        self.built.raw.close();
        // NULL releases sockets and files; rtspsrc sends its TEARDOWN with a bounded
        // wait of its own.
        let _ = self.built.pipeline.set_state(gst::State::Null);
    }
}

/// What the bus said since the last look.
enum BusEvent {
    Error(String),
    Eos,
}

/// A GStreamer feed (RTSP, SRT, file): decoded NV12 frames from [`Source::next_frame`],
/// compressed access units from [`GstSource::access_units`].
#[derive(Debug)]
pub struct GstSource {
    cfg: FeedConfig,
    clock: Arc<dyn Clock>,
    stop: StopSignal,
    machine: Reconnect,
    status: FeedStatus,
    live: Option<Live>,
    pool: BufferPool,
    seq: u64,
    au: Option<Arc<AuOutput>>,
    au_rx: Option<AccessUnits>,
}

impl GstSource {
    /// A source for `cfg`; nothing is opened before the first `next_frame`. `stop`
    /// ends any wait inside `next_frame` with [`SourceError::Stopped`]. `clock` must
    /// follow real time (GStreamer and the network do): backoff and stall deadlines
    /// are read from it while the waits themselves are real.
    pub fn new(
        cfg: FeedConfig,
        clock: Arc<dyn Clock>,
        stop: StopSignal,
    ) -> Result<Self, SourceError> {
        super::init()?;
        let (au, au_rx) = if cfg.access_unit_queue > 0 {
            let (tx, rx) = std::sync::mpsc::sync_channel(cfg.access_unit_queue);
            // The queue plus one being filled and one held by the consumer.
            let out = Arc::new(AuOutput::new(
                tx,
                Arc::clone(&cfg.camera),
                cfg.access_unit_queue + 2,
                Arc::clone(&clock),
            ));
            (Some(Arc::clone(&out)), Some(AccessUnits { rx, out }))
        } else {
            (None, None)
        };
        Ok(Self {
            machine: Reconnect::new(cfg.backoff, cfg.stall_timeout),
            pool: BufferPool::new(0, cfg.pool_buffers),
            cfg,
            clock,
            stop,
            status: FeedStatus::new(),
            live: None,
            seq: 0,
            au,
            au_rx,
        })
    }

    /// A handle on the feed's state for health reporting.
    pub fn status(&self) -> FeedStatus {
        self.status.clone()
    }

    /// The compressed access units (only once; `None` when the config asked for
    /// none or they were already taken).
    pub fn access_units(&mut self) -> Option<AccessUnits> {
        self.au_rx.take()
    }

    /// Builds and starts the pipeline. `Err(Ok(reason))`: this machine cannot build
    /// it (fatal); `Err(Err(reason))`: it did not start (retry).
    fn open(&mut self) -> Result<Live, Result<String, String>> {
        let built = pipeline::build(
            &self.cfg,
            &self.clock,
            self.au.as_ref(),
            &self.status.inner.dropped,
        )
        .map_err(Ok)?;
        let bus = built
            .pipeline
            .bus()
            .ok_or_else(|| Ok("the pipeline has no bus".to_string()))?;
        if built.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus (file not found, port in use…).
            let reason = match Self::poll_bus(&bus) {
                Some(BusEvent::Error(reason)) => reason,
                _ => "the pipeline did not start".to_string(),
            };
            let _ = built.pipeline.set_state(gst::State::Null);
            return Err(Err(reason));
        }
        Ok(Live { built, bus })
    }

    fn close(&mut self) {
        if let Some(live) = self.live.take() {
            live.close();
        }
    }

    fn fail(&mut self, state: FeedState, reason: String) {
        self.close();
        let now = self.clock.monotonic();
        let wait = if state == FeedState::Stalled {
            self.machine.stalled(now)
        } else {
            self.machine.failed(now)
        };
        self.status.inner.failures.fetch_add(1, Ordering::Relaxed);
        warn!(
            feed = %self.cfg.kind.location(),
            state = state.as_str(),
            %reason,
            retry_in_ms = wait.as_millis() as u64,
            "feed interrupted; reconnecting"
        );
        let detail = format!("{}: {reason}", self.cfg.kind.location());
        self.status.set(self.machine.state(), Some(detail));
    }

    /// Drains the bus (so it never grows) and returns the first error or end.
    fn poll_bus(bus: &gst::Bus) -> Option<BusEvent> {
        let mut event = None;
        while let Some(msg) = bus.pop() {
            match msg.view() {
                gst::MessageView::Error(err) if event.is_none() => {
                    let src = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    event = Some(BusEvent::Error(format!("{src}: {}", err.error())));
                    debug!(debug = ?err.debug(), "feed error details");
                }
                gst::MessageView::Eos(_) if event.is_none() => event = Some(BusEvent::Eos),
                gst::MessageView::Warning(w) => {
                    debug!(warning = %w.error(), "feed warning");
                }
                _ => {}
            }
        }
        event
    }

    /// Copies a decoded sample into a pooled buffer as a tightly packed NV12 frame.
    fn frame_from(
        &mut self,
        sample: &gst::Sample,
        time: &pipeline::TimeBase,
    ) -> Result<Frame, SourceError> {
        let seq = self.seq;
        self.seq += 1;
        let caps = sample
            .caps()
            .ok_or_else(|| SourceError::Feed("decoded frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| SourceError::Feed(format!("decoded frame caps: {e}")))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| SourceError::Feed("decoded sample without buffer".into()))?;
        let (capture_mono, capture_ns) = time.stamp(buffer.pts(), self.clock.as_ref());
        let video = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| SourceError::Feed(format!("cannot map a decoded frame: {e}")))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let (uv_row, uv_rows) = (w.div_ceil(2) * 2, h.div_ceil(2));
        let len = w * h + uv_row * uv_rows;
        if self.pool_len() != len {
            // New resolution: a new pool; frames still held keep their old buffers.
            self.pool = BufferPool::preallocated(len, self.cfg.pool_buffers);
        }
        let strides = video.plane_stride();
        let planes = (video.plane_data(0), video.plane_data(1));
        let (Ok(y), Ok(uv)) = planes else {
            return Err(SourceError::Feed(
                "decoded frame is not two-plane NV12".into(),
            ));
        };
        let (ys, uvs) = (
            strides.first().copied().unwrap_or(0).max(0) as usize,
            strides.get(1).copied().unwrap_or(0).max(0) as usize,
        );
        let y_needed = ys * h.saturating_sub(1) + w;
        let uv_needed = uvs * uv_rows.saturating_sub(1) + uv_row;
        if ys < w || uvs < uv_row || y.len() < y_needed || uv.len() < uv_needed {
            return Err(SourceError::Feed(
                "decoded frame smaller than its caps".into(),
            ));
        }
        let Some(data) = self.pool.fill(|dst| {
            dst.resize(len, 0);
            let (dy, duv) = dst.split_at_mut(w * h);
            for (row, out) in dy.chunks_exact_mut(w).enumerate() {
                out.copy_from_slice(&y[row * ys..row * ys + w]);
            }
            for (row, out) in duv.chunks_exact_mut(uv_row).enumerate() {
                out.copy_from_slice(&uv[row * uvs..row * uvs + uv_row]);
            }
        }) else {
            return Err(SourceError::PoolExhausted { seq });
        };
        let fps = caps_fps(caps, self.cfg.fallback_fps);
        Ok(Frame {
            camera: Arc::clone(&self.cfg.camera),
            seq,
            capture_mono,
            capture_ns,
            timecode: Frame::timecode_at(capture_ns, fps),
            width: info.width(),
            height: info.height(),
            format: PixelFormat::Nv12,
            fps,
            keyframe: true,
            data,
        })
    }

    fn pool_len(&self) -> usize {
        self.pool.buf_len()
    }

    /// One step while the feed is open: a frame, a pool drop, or `None` (keep going).
    fn await_frame(&mut self, stall_at: Duration) -> Option<Result<Frame, SourceError>> {
        let now = self.clock.monotonic();
        let live = self.live.as_ref()?;
        if let Some(reason) = live.built.fatal.take() {
            self.close();
            return Some(Err(SourceError::Unsupported(reason)));
        }
        match Self::poll_bus(&live.bus) {
            Some(BusEvent::Error(reason)) => {
                self.fail(FeedState::Reconnecting, reason);
                return None;
            }
            Some(BusEvent::Eos) => return self.end_of_stream(),
            None => {}
        }
        if now >= stall_at {
            let reason = format!("no frame for {} ms", self.cfg.stall_timeout.as_millis());
            self.fail(FeedState::Stalled, reason);
            return None;
        }
        let wait = (stall_at - now).min(POLL);
        let live = self.live.as_ref()?;
        let sample = live.built.raw.pop(wait)?;
        let time = Arc::clone(&live.built.time);
        let result = self.frame_from(&sample, &time);
        let now = self.clock.monotonic();
        match &result {
            Ok(_) | Err(SourceError::PoolExhausted { .. }) => {
                if self.machine.state() != FeedState::Running {
                    info!(feed = %self.cfg.kind.location(), "feed running");
                    self.status.set(FeedState::Running, None);
                }
                self.machine.frame(now);
            }
            Err(e) => warn!(feed = %self.cfg.kind.location(), error = %e, "decoded frame skipped"),
        }
        match result {
            Ok(f) => Some(Ok(f)),
            Err(e @ SourceError::PoolExhausted { .. }) => Some(Err(e)),
            Err(_) => None,
        }
    }

    fn end_of_stream(&mut self) -> Option<Result<Frame, SourceError>> {
        match self.cfg.kind {
            FeedKind::File { repeat: true, .. } => {
                // Start over at once: a replay loop is not a failure.
                self.close();
                match self.open() {
                    Ok(live) => {
                        self.machine.opened(self.clock.monotonic());
                        self.live = Some(live);
                        None
                    }
                    Err(Ok(reason)) => Some(Err(SourceError::Unsupported(reason))),
                    Err(Err(reason)) => {
                        self.fail(FeedState::Reconnecting, reason);
                        None
                    }
                }
            }
            FeedKind::File { .. } => {
                self.close();
                self.machine.ended();
                self.status
                    .set(FeedState::Ended, Some("end of file".into()));
                info!(feed = %self.cfg.kind.location(), frames = self.seq, "file played to its end");
                Some(Err(SourceError::Ended))
            }
            // A live feed that ends (server shutdown, RTCP BYE) is reconnected.
            _ => {
                self.fail(FeedState::Reconnecting, "the stream ended".into());
                None
            }
        }
    }
}

impl Source for GstSource {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if self.stop.is_stopped() {
                self.close();
                return Err(SourceError::Stopped);
            }
            if self.machine.state() == FeedState::Ended {
                return Err(SourceError::Ended);
            }
            let now = self.clock.monotonic();
            match self.machine.next_action(now) {
                Action::WaitUntil(at) => {
                    self.stop.wait(at.saturating_sub(now).min(POLL));
                }
                Action::Open => match self.open() {
                    Ok(live) => {
                        debug!(feed = %self.cfg.kind.location(), "feed opened");
                        self.machine.opened(self.clock.monotonic());
                        self.live = Some(live);
                    }
                    // A missing plugin will not appear by retrying.
                    Err(Ok(reason)) => return Err(SourceError::Unsupported(reason)),
                    Err(Err(reason)) => {
                        // fail() counts from an open pipeline; mark one as opened.
                        self.machine.opened(now);
                        self.fail(FeedState::Reconnecting, reason);
                    }
                },
                Action::AwaitFrames { stall_at } => {
                    if let Some(result) = self.await_frame(stall_at) {
                        return result;
                    }
                }
            }
        }
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        self.close();
    }
}
