//! One camera: a supervised pipeline of stages joined by bounded channels.
//!
//! `capture` (own thread) → `analyze` (own thread; hands frames due for segmentation
//! to the shared inference workers, stage `infer`) → `tag` (own thread: waits for each
//! frame's mask in capture order, tags segmented frames) → `spool` (async task: stores
//! metadata, events and composites in the spool; publishes thumbnails live).
//! A stage failure ends the pipeline; the supervisor restarts it with capped
//! exponential backoff. Nothing here is shared with another camera except the zenoh
//! session, the MQTT client and the metrics registry, so one camera failing never
//! stops another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace, warn};
use venue_drivers::gst::StopSignal;
use venue_drivers::{Clock, Frame, Source, SourceError};
use venue_proto::{
    CameraState, FrameMeta, FrameStats, Header, Health, Id, SCHEMA_VERSION, StageCounters,
    StreamKey, StreamKind, Timecode,
};

#[cfg(feature = "gstreamer")]
use crate::config::SourceConfig;
use crate::config::{CameraConfig, HealthConfig, PipelineConfig, VideoConfig};
use crate::delivery::Delivery;
use crate::inference::{Inference, RateGate, SlotId};
use crate::metrics::{CameraLabels, DropLabels, Metrics, StageLabels};
use crate::mqtt::Mqtt;
use crate::sources::{self, SourceHandle};
use crate::spool::{Spool, StreamHandle};
use crate::stats::StatsState;
use crate::tag_stage::{self, CameraTagger, FrameInfo, PendingMask, TagCounters, Tagged};
use crate::tagging::TaggingConfig;
use crate::uplink;
#[cfg(feature = "gstreamer")]
use crate::video::stage::{self as video_stage, CameraVideo, UnitSink};

/// Raw frames waiting for the `video` thread (encoding); a full queue holds
/// `analyze` back, so capture stays the one drop point.
#[cfg(feature = "gstreamer")]
const VIDEO_QUEUE: usize = 2;

/// A run without failure this long resets the restart backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// What every camera of the daemon shares.
#[derive(Debug)]
pub struct Shared {
    pub venue: Id,
    pub box_id: Id,
    pub session: zenoh::Session,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub health: HealthConfig,
    pub pipeline: PipelineConfig,
    /// Incarnation of the streams this daemon run publishes live (health).
    pub incarnation: u64,
    /// Where metadata waits for the cloud's acknowledgement.
    pub spool: Spool,
    pub delivery: Arc<Delivery>,
    /// Health goes to MQTT too when `[mqtt]` is configured.
    pub mqtt: Option<Arc<Mqtt>>,
    /// The segmentation workers, started when a camera first asks for inference.
    pub inference: Mutex<Option<Arc<Inference>>>,
    /// How segmented frames are tagged; `None`: not at all.
    pub tagging: Option<TaggingConfig>,
    /// Encoding, passthrough, chunks, ring and clips (`[video]`).
    pub video: VideoConfig,
}

impl Shared {
    pub fn header(
        &self,
        camera: &Id,
        incarnation: u64,
        seq: u64,
        capture_ns: u64,
        fps: u32,
    ) -> Header {
        Header {
            schema: SCHEMA_VERSION,
            venue: self.venue.clone(),
            box_id: self.box_id.clone(),
            camera: camera.clone(),
            incarnation,
            seq,
            capture_ns,
            timecode: Timecode::from_unix_ns(capture_ns, fps.clamp(1, 255) as u8),
        }
    }

    pub fn key(&self, camera: &Id, stream: StreamKind) -> String {
        StreamKey::new(
            self.venue.clone(),
            self.box_id.clone(),
            camera.clone(),
            stream,
        )
        .to_string()
    }
}

/// Counters of one stage, registered under the stage's name.
#[derive(Debug, Clone)]
struct StageStats {
    name: &'static str,
    frames_in: Counter,
    frames_out: Counter,
    errors: Counter,
    drops: Vec<Counter>,
}

impl StageStats {
    fn new(m: &Metrics, camera: &str, name: &'static str, drop_reasons: &[&'static str]) -> Self {
        let l = StageLabels {
            camera: camera.to_string(),
            stage: name,
        };
        Self {
            name,
            frames_in: m.frames_in.get_or_create(&l).clone(),
            frames_out: m.frames_out.get_or_create(&l).clone(),
            errors: m.errors.get_or_create(&l).clone(),
            drops: drop_reasons
                .iter()
                .map(|r| {
                    m.frames_dropped
                        .get_or_create(&DropLabels {
                            camera: camera.to_string(),
                            stage: name,
                            reason: r,
                        })
                        .clone()
                })
                .collect(),
        }
    }

    fn snapshot(&self) -> StageCounters {
        StageCounters {
            stage: self.name.to_string(),
            frames_in: self.frames_in.get(),
            frames_out: self.frames_out.get(),
            dropped: self.drops.iter().map(Counter::get).sum(),
            errors: self.errors.get(),
        }
    }
}

/// Everything a camera counts, shared by its stages and its health reporter.
#[derive(Debug)]
struct CameraStats {
    capture: StageStats,
    analyze: StageStats,
    infer: StageStats,
    tag: StageStats,
    spool: StageStats,
    /// capture drop reasons, in the order given to [`StageStats::new`].
    queue_full: Counter,
    pool_exhausted: Counter,
    /// Decoded frames a live feed dropped before capture took them.
    feed_overrun: Counter,
    restarts: Counter,
    /// Monotonic ns of the last captured frame (0: none yet).
    last_frame_ns: AtomicU64,
    /// Supervisor's view of the camera, refined by the health reporter.
    state: Mutex<(CameraState, Option<String>)>,
    /// The source's own state (network/file feeds, V4L2 devices), read by the
    /// health reporter.
    source: Mutex<Option<SourceHandle>>,
    /// Reconnects of a feed or V4L2 device.
    feed_reconnects: Counter,
    /// The `video` stage's counters, once the camera has video.
    video: std::sync::OnceLock<crate::video::VideoCounters>,
    /// Composite requests for the `tag` thread (the `composite` queryable).
    strobe_requests: Arc<tag_stage::StrobeRequests>,
}

impl CameraStats {
    fn new(m: &Metrics, camera: &str) -> Self {
        let capture = StageStats::new(
            m,
            camera,
            "capture",
            &["queue_full", "pool_exhausted", "feed_overrun"],
        );
        let queue_full = capture.drops[0].clone();
        let pool_exhausted = capture.drops[1].clone();
        let feed_overrun = capture.drops[2].clone();
        Self {
            analyze: StageStats::new(m, camera, "analyze", &[]),
            // "busy": a newer frame of this camera replaced it before a worker was free.
            infer: StageStats::new(m, camera, "infer", &["busy"]),
            tag: StageStats::new(m, camera, "tag", &[]),
            spool: StageStats::new(m, camera, "spool", &[]),
            capture,
            queue_full,
            pool_exhausted,
            feed_overrun,
            restarts: m
                .restarts
                .get_or_create(&CameraLabels {
                    camera: camera.to_string(),
                })
                .clone(),
            last_frame_ns: AtomicU64::new(0),
            state: Mutex::new((CameraState::Stopped, None)),
            source: Mutex::new(None),
            video: std::sync::OnceLock::new(),
            strobe_requests: Arc::default(),
            feed_reconnects: m
                .feed_reconnects
                .get_or_create(&CameraLabels {
                    camera: camera.to_string(),
                })
                .clone(),
        }
    }

    fn set_state(&self, state: CameraState, detail: Option<String>) {
        if let Ok(mut s) = self.state.lock() {
            *s = (state, detail);
        }
    }

    fn state(&self) -> (CameraState, Option<String>) {
        self.state
            .lock()
            .map(|s| s.clone())
            .unwrap_or((CameraState::Failed, Some("state lock poisoned".into())))
    }
}

/// A running camera; dropping it does not stop it, [`CameraHandle::stop`] does.
#[derive(Debug)]
pub struct CameraHandle {
    pub config: CameraConfig,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl CameraHandle {
    pub fn spawn(shared: Arc<Shared>, config: CameraConfig, parent: &CancellationToken) -> Self {
        let cancel = parent.child_token();
        let task = tokio::spawn(supervise(shared, config.clone(), cancel.clone()));
        Self {
            config,
            cancel,
            task,
        }
    }

    /// Stops the camera after flushing what its stages hold.
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(error) = self.task.await {
            error!(camera = %self.config.id, %error, "camera task ended abnormally");
        }
    }
}

/// Why a pipeline run ended.
#[derive(Debug)]
enum Ended {
    /// Shutdown or removal: do not restart.
    Cancelled,
    /// The configuration cannot be met: do not restart until it changes.
    Fatal(String),
    /// The source has no more frames (a file played to its end): do not restart.
    Finished,
    /// A transient failure: restart with backoff.
    Failed(String),
}

async fn supervise(shared: Arc<Shared>, cam: CameraConfig, cancel: CancellationToken) {
    let id = cam.id.clone();
    let stats = Arc::new(CameraStats::new(&shared.metrics, id.as_str()));
    let health = tokio::spawn(report_health(
        Arc::clone(&shared),
        cam.clone(),
        Arc::clone(&stats),
        cancel.clone(),
    ));
    // The spool numbers metadata; the frame sequence survives pipeline restarts so a
    // restarted camera continues where it stopped.
    let meta = shared.spool.stream(&id, StreamKind::Meta);
    shared.delivery.ensure_sender(meta.clone());
    // Events and composites exist where frames are segmented and tagged.
    let tagged = (cam.inference_fps > 0 && shared.tagging.is_some()).then(|| {
        let events = shared.spool.stream(&id, StreamKind::Event);
        let composites = shared.spool.stream(&id, StreamKind::Composite);
        shared.delivery.ensure_sender(events.clone());
        shared.delivery.ensure_sender(composites.clone());
        (events, composites)
    });
    let composite_queries = tagged.as_ref().map(|_| {
        tokio::spawn(crate::strobe_query::serve(
            Arc::clone(&shared),
            id.clone(),
            cam.fps,
            Arc::clone(&stats.strobe_requests),
            cancel.clone(),
        ))
    });
    #[cfg(feature = "gstreamer")]
    let video = camera_video(&shared, &cam);
    #[cfg(feature = "gstreamer")]
    if let Some((_, v)) = &video {
        let _ = stats.video.set(v.counters.clone());
    }
    #[cfg(feature = "gstreamer")]
    let serving = video.as_ref().map(|(_, v)| {
        tokio::spawn(crate::video::serve::serve(
            Arc::clone(&shared),
            Arc::clone(v),
            cancel.clone(),
        ))
    });
    let streams = CameraStreams {
        meta,
        tagged,
        #[cfg(feature = "gstreamer")]
        video,
    };
    let next_frame_seq = Arc::new(AtomicU64::new(0));
    let mut backoff = shared.pipeline.restart_backoff_min;
    loop {
        stats.set_state(CameraState::Running, None);
        shared.metrics.set_state(id.as_str(), CameraState::Running);
        info!(camera = %id, "camera pipeline starting");
        let started = shared.clock.monotonic();
        match run_pipeline(&shared, &cam, &stats, &streams, &next_frame_seq, &cancel).await {
            Ended::Cancelled => break,
            Ended::Finished => {
                info!(camera = %id, "source played to its end; camera idle until a config change");
                stats.set_state(CameraState::Stopped, Some("end of file".into()));
                shared.metrics.set_state(id.as_str(), CameraState::Stopped);
                cancel.cancelled().await;
                break;
            }
            Ended::Fatal(reason) => {
                error!(camera = %id, %reason, "camera cannot run with this configuration; waiting for a config change");
                stats.set_state(CameraState::Failed, Some(reason));
                shared.metrics.set_state(id.as_str(), CameraState::Failed);
                cancel.cancelled().await;
                break;
            }
            Ended::Failed(reason) => {
                if shared.clock.monotonic().saturating_sub(started) >= HEALTHY_RUN {
                    backoff = shared.pipeline.restart_backoff_min;
                }
                stats.restarts.inc();
                warn!(camera = %id, %reason, backoff_ms = backoff.as_millis() as u64, "camera pipeline failed; restarting");
                stats.set_state(CameraState::Reconnecting, Some(reason));
                shared
                    .metrics
                    .set_state(id.as_str(), CameraState::Reconnecting);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(shared.pipeline.restart_backoff_max);
            }
        }
    }
    stats.set_state(CameraState::Stopped, None);
    shared.metrics.set_state(id.as_str(), CameraState::Stopped);
    let _ = health.await;
    if let Some(task) = composite_queries {
        let _ = task.await;
    }
    #[cfg(feature = "gstreamer")]
    {
        if let Some(task) = serving {
            let _ = task.await;
        }
        if let Some((_, v)) = &streams.video {
            v.close();
        }
    }
    info!(camera = %id, "camera stopped");
}

/// The spool streams a camera writes.
#[derive(Debug, Clone)]
struct CameraStreams {
    meta: StreamHandle,
    /// Events and composites, when the camera's frames are tagged.
    tagged: Option<(StreamHandle, StreamHandle)>,
    /// Video chunks and the camera's video state, when it has video.
    #[cfg(feature = "gstreamer")]
    video: Option<(StreamHandle, Arc<CameraVideo>)>,
}

/// The camera's video: raw cameras when an encoder is configured, feeds when
/// passthrough is on.
#[cfg(feature = "gstreamer")]
fn camera_video(
    shared: &Arc<Shared>,
    cam: &CameraConfig,
) -> Option<(StreamHandle, Arc<CameraVideo>)> {
    let wanted = match cam.source {
        SourceConfig::Feed(_) => shared.video.passthrough,
        // V4L2 devices delivering MJPEG are not encoded (counted as `not_encoded`).
        SourceConfig::Synthetic { .. } | SourceConfig::V4l2(_) => shared.video.encoder.is_some(),
    };
    wanted.then(|| {
        let stream = shared.spool.stream(&cam.id, StreamKind::Video);
        shared.delivery.ensure_sender(stream.clone());
        // Event clips go to the cloud where events do (tagged cameras).
        let tagged = cam.inference_fps > 0 && shared.tagging.is_some();
        let out = (shared.video.event_clips && tagged).then(|| {
            let clips = shared.spool.stream(&cam.id, StreamKind::Clip);
            shared.delivery.ensure_sender(clips.clone());
            crate::video::stage::ClipOut {
                stream: clips,
                shared: Arc::clone(shared),
            }
        });
        let counters = crate::video::VideoCounters::new(&shared.metrics, cam.id.as_str());
        (
            stream,
            CameraVideo::new(cam.id.clone(), shared.video.clone(), counters, out),
        )
    })
}

/// Frames the `video` thread may hold besides the queue (one being encoded).
fn video_buffers(streams: &CameraStreams) -> usize {
    #[cfg(feature = "gstreamer")]
    if streams.video.is_some() {
        return VIDEO_QUEUE + 1;
    }
    let _ = streams;
    0
}

/// A frame's analysis result, passed from `analyze` to `tag`.
#[derive(Debug)]
struct Analyzed {
    frame: FrameInfo,
    /// The frame's segmentation, when it was due for inference.
    mask: Option<PendingMask>,
}

async fn run_pipeline(
    shared: &Arc<Shared>,
    cam: &CameraConfig,
    stats: &Arc<CameraStats>,
    streams: &CameraStreams,
    next_frame_seq: &Arc<AtomicU64>,
    cancel: &CancellationToken,
) -> Ended {
    // A source blocked in a reconnect wait hears the shutdown through this.
    let stop_source = StopSignal::new();
    #[cfg(feature = "gstreamer")]
    let passthrough = streams.video.is_some() && matches!(cam.source, SourceConfig::Feed(_));
    #[cfg(not(feature = "gstreamer"))]
    let passthrough = false;
    let options = sources::OpenOptions {
        queue_depth: shared.pipeline.queue_depth,
        extra_buffers: video_buffers(streams),
        passthrough,
    };
    let (source, feed_units) = match sources::open(cam, &shared.clock, options, &stop_source) {
        Ok(opened) => {
            if let Ok(mut slot) = stats.source.lock() {
                *slot = opened.handle;
            }
            (opened.source, opened.units)
        }
        Err(reason) => return Ended::Fatal(reason),
    };
    #[cfg(feature = "gstreamer")]
    let video = match start_video(shared, cam, streams, feed_units, next_frame_seq).await {
        Ok(v) => v,
        Err(reason) => return Ended::Fatal(reason),
    };
    #[cfg(not(feature = "gstreamer"))]
    let _ = feed_units;
    let depth = shared.pipeline.queue_depth;
    let inference = if cam.inference_fps > 0 {
        match shared.inference.lock().ok().and_then(|i| i.clone()) {
            Some(pool) => Some(pool),
            None => return Ended::Fatal("inference is configured but no model is loaded".into()),
        }
    } else {
        None
    };
    let (frame_tx, frame_rx) = mpsc::channel::<Frame>(depth);
    #[cfg(feature = "gstreamer")]
    let video_tx = video.frames;
    #[cfg(not(feature = "gstreamer"))]
    let video_tx: Option<mpsc::Sender<Frame>> = None;
    // Metadata waits in capture order for its frame's mask: room for a second of
    // frames, so a slow model costs masks (counted), never capture frames.
    let meta_depth = depth
        + if inference.is_some() {
            cam.fps as usize
        } else {
            0
        };
    let (meta_tx, meta_rx) = mpsc::channel::<Analyzed>(meta_depth);
    let (tagged_tx, tagged_rx) = mpsc::channel::<Tagged>(depth);
    // Event ids grow across runs: this run's start in ms, shifted past the ids one
    // run can use (2^20 events).
    let first_event_id = (shared.clock.unix_ns() / 1_000_000) << 20;
    let tagger = match (&inference, &shared.tagging, &streams.tagged) {
        (Some(_), Some(cfg), Some(_)) => match CameraTagger::new(cfg, cam, first_event_id) {
            Ok(t) => Some(t),
            Err(e) => return Ended::Fatal(format!("cannot tag this camera: {e}")),
        },
        _ => None,
    };
    let preview_width = tagger.as_ref().map_or(0, CameraTagger::preview_width);
    let infer = inference.map(|pool| {
        let slot = pool.slot();
        InferHandle {
            pool,
            slot,
            gate: RateGate::new(cam.inference_fps),
            preview_width,
        }
    });
    let infer_release = infer.as_ref().map(|i| (Arc::clone(&i.pool), i.slot));
    let (capture_done_tx, capture_done) = oneshot::channel();
    // Stopping the capture thread ends the pipeline; the other stages drain and end.
    let stop_capture = cancel.child_token();
    let forward_stop = {
        let (token, signal) = (stop_capture.clone(), stop_source.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            signal.stop();
        })
    };

    let capture = {
        let stats = Arc::clone(stats);
        let clock = Arc::clone(&shared.clock);
        let stop = stop_capture.clone();
        let id = cam.id.clone();
        let next_seq = Arc::clone(next_frame_seq);
        std::thread::Builder::new()
            .name(format!("capture-{id}"))
            .spawn(move || {
                let result = capture_loop(
                    source,
                    &frame_tx,
                    &stats,
                    clock.as_ref(),
                    &stop,
                    &id,
                    &next_seq,
                );
                let _ = capture_done_tx.send(result);
            })
    };
    let capture = match capture {
        Ok(t) => t,
        Err(e) => return Ended::Failed(format!("cannot start the capture thread: {e}")),
    };
    let analyze = {
        let stats = Arc::clone(stats);
        std::thread::Builder::new()
            .name(format!("analyze-{}", cam.id))
            .spawn(move || analyze_loop(frame_rx, &meta_tx, video_tx.as_ref(), &stats, infer))
    };
    let analyze = match analyze {
        Ok(t) => t,
        Err(e) => {
            stop_capture.cancel();
            let _ = capture.join();
            return Ended::Failed(format!("cannot start the analyze thread: {e}"));
        }
    };
    let tag = {
        let stats = Arc::clone(stats);
        std::thread::Builder::new()
            .name(format!("tag-{}", cam.id))
            .spawn({
                let id = cam.id.clone();
                move || tag_loop(meta_rx, &tagged_tx, &stats, tagger, &id)
            })
    };
    let tag = match tag {
        Ok(t) => t,
        Err(e) => {
            stop_capture.cancel();
            let _ = capture.join();
            let _ = analyze.join();
            return Ended::Failed(format!("cannot start the tag thread: {e}"));
        }
    };
    let spool_stage = tokio::spawn(spool_loop(
        Arc::clone(shared),
        cam.id.clone(),
        streams.clone(),
        tagged_rx,
        Arc::clone(stats),
    ));

    let result = capture_done.await;
    forward_stop.abort();
    #[cfg(feature = "gstreamer")]
    video.stop.cancel();
    // Capture has ended: analysis, tagging and spooling drain what is queued, then end.
    let joined = tokio::task::spawn_blocking(move || {
        let ok = capture.join().is_ok() & analyze.join().is_ok();
        (ok, tag.join().is_ok())
    })
    .await;
    let _ = spool_stage.await;
    #[cfg(feature = "gstreamer")]
    {
        let threads = video.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
    if let Some((pool, slot)) = infer_release {
        pool.release(slot);
    }
    if !matches!(joined, Ok((true, true))) {
        return Ended::Failed("a pipeline thread panicked".into());
    }
    match result {
        Ok(Ok(())) => Ended::Cancelled,
        Ok(Err(SourceError::Unsupported(reason))) => Ended::Fatal(reason),
        Ok(Err(SourceError::Ended)) => Ended::Finished,
        Ok(Err(e)) => Ended::Failed(e.to_string()),
        Err(_) => Ended::Failed("the capture thread ended without a result".into()),
    }
}

fn capture_loop(
    mut source: Box<dyn Source>,
    tx: &mpsc::Sender<Frame>,
    stats: &CameraStats,
    clock: &dyn Clock,
    stop: &CancellationToken,
    id: &Id,
    next_seq: &AtomicU64,
) -> Result<(), SourceError> {
    // A restarted source counts from 0 again; the camera's frame sequence goes on.
    let base = next_seq.load(Ordering::Relaxed);
    while !stop.is_cancelled() {
        match source.next_frame() {
            Ok(mut frame) => {
                frame.seq += base;
                next_seq.store(frame.seq + 1, Ordering::Relaxed);
                stats.capture.frames_in.inc();
                stats.last_frame_ns.store(
                    clock.monotonic().as_nanos().max(1) as u64,
                    Ordering::Relaxed,
                );
                let seq = frame.seq;
                match tx.try_send(frame) {
                    Ok(()) => {
                        stats.capture.frames_out.inc();
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        stats.queue_full.inc();
                        trace!(camera = %id, seq, "frame dropped: analysis queue full");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                };
            }
            Err(SourceError::PoolExhausted { seq }) => {
                let seq = seq + base;
                next_seq.store(seq + 1, Ordering::Relaxed);
                stats.capture.frames_in.inc();
                stats.pool_exhausted.inc();
                trace!(camera = %id, seq, "frame dropped: no free buffer");
            }
            Err(SourceError::Stopped) => return Ok(()),
            Err(SourceError::Ended) => return Err(SourceError::Ended),
            Err(e) => {
                stats.capture.errors.inc();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// A camera's way into the inference workers.
struct InferHandle {
    pool: Arc<Inference>,
    slot: SlotId,
    gate: RateGate,
    /// Width of the frame copy the tagger needs with each mask (0: none).
    preview_width: u32,
}

fn analyze_loop(
    mut rx: mpsc::Receiver<Frame>,
    tx: &mpsc::Sender<Analyzed>,
    video: Option<&mpsc::Sender<Frame>>,
    stats: &CameraStats,
    mut infer: Option<InferHandle>,
) {
    let mut state = StatsState::default();
    while let Some(frame) = rx.blocking_recv() {
        stats.analyze.frames_in.inc();
        let frame_stats = match frame.luma() {
            Some(luma) => state.measure(luma, frame.width as usize, frame.height as usize),
            None => FrameStats {
                luma_mean: 0.0,
                luma_min: 0,
                luma_max: 0,
                motion: 0.0,
            },
        };
        let due = infer.as_mut().is_some_and(|i| i.gate.due(frame.capture_ns));
        let mask = match infer.as_ref() {
            Some(i) if due => {
                stats.infer.frames_in.inc();
                // Shares the pixels with the worker; never blocks on inference.
                let submitted = i.pool.submit(i.slot, frame.clone(), i.preview_width);
                if submitted.replaced {
                    // The previous due frame never reached a worker: counted now.
                    stats.infer.drops[0].inc();
                }
                Some(submitted.rx)
            }
            _ => None,
        };
        let out = Analyzed {
            frame: FrameInfo {
                frame_seq: frame.seq,
                capture_ns: frame.capture_ns,
                timecode: frame.timecode,
                width: frame.width,
                height: frame.height,
                fps: frame.fps,
                stats: frame_stats,
            },
            mask,
        };
        // The video thread shares the pixels; when it is behind, this waits (and
        // capture counts the drop), so every analysed frame is also encoded.
        if let Some(v) = video
            && v.blocking_send(frame.clone()).is_err()
        {
            debug!("video thread gone; frames no longer encoded");
        }
        // Releases the pixel buffer back to the source's pool before waiting.
        drop(frame);
        // Back-pressure: if spooling is slow we wait here, the capture queue fills
        // and capture drops (and counts) frames. One drop point, always counted.
        if tx.blocking_send(out).is_err() {
            return;
        }
        stats.analyze.frames_out.inc();
    }
}

/// The `tag` stage: waits for each frame's mask in capture order (a frame not due
/// for inference passes straight through), tags segmented frames and passes
/// everything on to `spool`; its `strobe` thread renders composites after their
/// frame has gone. When the pipeline ends, the tagger's open tracks end and their
/// events go out last.
fn tag_loop(
    mut rx: mpsc::Receiver<Analyzed>,
    tx: &mpsc::Sender<Tagged>,
    stats: &CameraStats,
    mut tagger: Option<CameraTagger>,
    camera: &Id,
) {
    let requests = Arc::clone(&stats.strobe_requests);
    let counters = TagCounters {
        infer_out: &stats.infer.frames_out,
        infer_errors: &stats.infer.errors,
        tag_in: &stats.tag.frames_in,
        tag_out: &stats.tag.frames_out,
        tag_errors: &stats.tag.errors,
    };
    let (compose, jobs) = std::sync::mpsc::sync_channel(tag_stage::COMPOSE_QUEUE);
    std::thread::scope(|scope| {
        let strobe = std::thread::Builder::new()
            .name(format!("strobe-{camera}"))
            .spawn_scoped(scope, move || {
                tag_stage::compose_loop(&jobs, tx, &stats.tag.errors);
            });
        if let Err(error) = strobe {
            // Tagging goes on; composites and requests then go unanswered.
            warn!(camera = %camera, %error, "cannot start the strobe thread: no composites");
        }
        let mut last_error = String::new();
        while let Some(a) = rx.blocking_recv() {
            let stamp = (a.frame.capture_ns, a.frame.fps);
            let (tagged, made) =
                tag_stage::tag_frame(a.frame, a.mask, tagger.as_mut(), &counters, &mut last_error);
            if tx.blocking_send(tagged).is_err() {
                return;
            }
            for job in made {
                let _ = compose.send(tag_stage::Compose::Jump {
                    job,
                    capture_ns: stamp.0,
                    fps: stamp.1,
                });
            }
            requests.answer(tagger.as_ref(), &compose);
        }
        if let Some(t) = tagger.as_mut() {
            let events = t.finish();
            if !events.is_empty() {
                let _ = tx.blocking_send(Tagged {
                    events,
                    ..Tagged::default()
                });
            }
        }
        // Hanging up lets the `strobe` thread finish its queue and end.
        drop(compose);
    });
}

/// Stores one record in `stream`; counts and logs (rate-limited) what fails.
fn store(
    stream: &StreamHandle,
    camera: &Id,
    what: &'static str,
    failures: &mut u64,
    build: impl FnOnce(u64, u64) -> Result<Vec<u8>, venue_proto::EncodeError>,
) -> bool {
    let mut encode_error = None;
    let result = stream.append_with(|incarnation, seq| {
        build(incarnation, seq).unwrap_or_else(|e| {
            encode_error = Some(e.to_string());
            Vec::new()
        })
    });
    match (result, encode_error) {
        (Ok(pos), None) => {
            trace!(camera = %camera, seq = pos.seq, what, "spooled");
            true
        }
        (_, Some(error)) => {
            warn!(camera = %camera, %error, what, "encoding failed");
            false
        }
        (Err(error), None) => {
            *failures += 1;
            // Log the first loss and then every 100th: a full disk must not flood the log.
            if *failures % 100 == 1 {
                warn!(camera = %camera, %error, what, lost = *failures, "not stored: counted as lost");
            }
            false
        }
    }
}

/// The `spool` stage: gives each frame's metadata (and each event and composite) its
/// sequence number and stores it durably; the delivery senders publish from there.
/// Thumbnails are live only: published here, not spooled.
async fn spool_loop(
    shared: Arc<Shared>,
    camera: Id,
    streams: CameraStreams,
    mut rx: mpsc::Receiver<Tagged>,
    stats: Arc<CameraStats>,
) {
    let mut failures = 0u64;
    let thumbnails = if streams.tagged.is_some() {
        uplink::publisher(&shared.session, shared.key(&camera, StreamKind::Thumbnail))
            .await
            .map_err(|error| warn!(camera = %camera, error = %format!("{error:#}"), "thumbnails disabled"))
            .ok()
    } else {
        None
    };
    let mut thumbnail_seq = 0u64;
    while let Some(t) = rx.recv().await {
        let (capture_ns, fps) = match (&t.frame, t.stamp) {
            (Some(f), _) => (f.capture_ns, f.fps),
            (None, Some(stamp)) => stamp,
            (None, None) => (shared.clock.unix_ns(), 30),
        };
        if let Some(f) = &t.frame {
            stats.spool.frames_in.inc();
            let stored = store(
                &streams.meta,
                &camera,
                "metadata",
                &mut failures,
                |incarnation, seq| {
                    venue_proto::encode(&FrameMeta {
                        header: Header {
                            timecode: f.timecode,
                            ..shared.header(&camera, incarnation, seq, f.capture_ns, f.fps)
                        },
                        frame_seq: f.frame_seq,
                        width: f.width,
                        height: f.height,
                        format: venue_proto::PixelFormat::Nv12,
                        stats: f.stats,
                        detections: t.detections.clone(),
                        mask: t.mask.clone(),
                    })
                },
            );
            if stored {
                stats.spool.frames_out.inc();
            } else {
                stats.spool.errors.inc();
            }
        }
        #[cfg(feature = "gstreamer")]
        if let Some((_, video)) = &streams.video {
            for e in &t.events {
                if let (venue_proto::EventPhase::Ended, Some(end)) = (e.phase, e.end_ns) {
                    video.event_ended(e.event_id, e.start_ns, end);
                }
            }
        }
        if let Some((events, composites)) = &streams.tagged {
            for e in &t.events {
                store(
                    events,
                    &camera,
                    "event",
                    &mut failures,
                    |incarnation, seq| {
                        venue_proto::encode(&e.to_proto(shared.header(
                            &camera,
                            incarnation,
                            seq,
                            capture_ns,
                            fps,
                        )))
                    },
                );
            }
            for c in &t.composites {
                store(
                    composites,
                    &camera,
                    "composite",
                    &mut failures,
                    |incarnation, seq| {
                        venue_proto::encode(&tag_stage::composite_record(
                            shared.header(&camera, incarnation, seq, capture_ns, fps),
                            c,
                        ))
                    },
                );
            }
        }
        if let (Some(thumb), Some(publisher), Some(f)) = (&t.thumbnail, &thumbnails, &t.frame) {
            let msg = tag_stage::thumbnail_record(
                shared.header(
                    &camera,
                    shared.incarnation,
                    thumbnail_seq,
                    f.capture_ns,
                    f.fps,
                ),
                f.frame_seq,
                thumb,
            );
            thumbnail_seq += 1;
            match venue_proto::encode(&msg) {
                Ok(bytes) => {
                    if let Err(error) = publisher.put(bytes).await {
                        debug!(camera = %camera, %error, "thumbnail publish failed");
                    }
                }
                Err(error) => warn!(camera = %camera, %error, "thumbnail encoding failed"),
            }
        }
    }
    debug!(camera = %camera, "spool stage drained");
}

/// Publishes the camera's health every interval, refining `Running` into `Stalled`
/// (no frame for the stall timeout) or `Blocked` (frames dropped for a full queue).
async fn report_health(
    shared: Arc<Shared>,
    cam: CameraConfig,
    stats: Arc<CameraStats>,
    cancel: CancellationToken,
) {
    let key = shared.key(&cam.id, StreamKind::Health);
    let publisher = match uplink::publisher(&shared.session, key).await {
        Ok(p) => p,
        Err(error) => {
            error!(camera = %cam.id, error = %format!("{error:#}"), "health reporting disabled");
            return;
        }
    };
    let HealthConfig {
        interval,
        stall_timeout,
    } = shared.health.clone();
    let started = shared.clock.monotonic();
    let mut seq = 0u64;
    let mut last_in = 0u64;
    let mut last_drops = 0u64;
    let mut last_report = started;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => break,
        }
        let now = shared.clock.monotonic();
        let frames_in = stats.capture.frames_in.get();
        let own_state = source_state(&stats);
        let drops = stats.queue_full.get() + stats.pool_exhausted.get() + stats.feed_overrun.get();
        let secs = now.saturating_sub(last_report).as_secs_f32();
        let fps = if secs > 0.0 {
            (frames_in - last_in) as f32 / secs
        } else {
            0.0
        };
        let (mut state, mut detail) = stats.state();
        if state == CameraState::Running
            && let Some((feed_state, feed_detail)) = own_state
        {
            // A network or file feed knows best why no frames come.
            (state, detail) = (feed_state, feed_detail);
        }
        if state == CameraState::Running {
            let last = Duration::from_nanos(stats.last_frame_ns.load(Ordering::Relaxed));
            let since = if last.is_zero() {
                now.saturating_sub(started)
            } else {
                now.saturating_sub(last)
            };
            if since >= stall_timeout {
                state = CameraState::Stalled;
                detail = Some(format!("no frame for {} ms", since.as_millis()));
            } else if drops > last_drops {
                state = CameraState::Blocked;
                detail = Some(format!(
                    "{} frames dropped in the last interval",
                    drops - last_drops
                ));
            }
        }
        shared.metrics.set_state(cam.id.as_str(), state);
        let uplink_health = {
            let (d, camera) = (Arc::clone(&shared.delivery), cam.id.clone());
            // Reads the oldest unacked record, maybe from disk: off the async workers.
            tokio::task::spawn_blocking(move || d.stream_health(&camera))
                .await
                .unwrap_or_default()
        };
        let msg = Health {
            header: shared.header(
                &cam.id,
                shared.incarnation,
                seq,
                shared.clock.unix_ns(),
                cam.fps,
            ),
            state,
            uptime_ms: now.saturating_sub(started).as_millis() as u64,
            fps,
            stages: {
                let mut stages = vec![
                    stats.capture.snapshot(),
                    stats.analyze.snapshot(),
                    stats.infer.snapshot(),
                    stats.tag.snapshot(),
                    stats.spool.snapshot(),
                ];
                if let Some(video) = stats.video.get() {
                    stages.push(video.stage());
                }
                stages
            },
            restarts: stats.restarts.get(),
            uplink: Some(uplink_health),
            detail,
            spool_used_bytes: None,
            spool_max_bytes: None,
        };
        match venue_proto::encode(&msg) {
            Ok(bytes) => {
                let bytes = bytes::Bytes::from(bytes);
                if let Err(error) = publisher.put(bytes.clone()).await {
                    warn!(camera = %cam.id, %error, "health publish failed");
                }
                if let Some(mqtt) = &shared.mqtt {
                    mqtt.publish_health(&cam.id, bytes);
                }
            }
            Err(error) => warn!(camera = %cam.id, %error, "health encoding failed"),
        }
        seq += 1;
        last_in = frames_in;
        last_drops = drops;
        last_report = now;
    }
}

/// The camera state the source's own state implies (network/file feeds and V4L2
/// devices), or `None` while it delivers. Brings the metrics up to the source's own
/// counts (reconnects, frames it dropped) as a side effect.
fn source_state(stats: &CameraStats) -> Option<(CameraState, Option<String>)> {
    let slot = stats.source.lock().ok()?;
    let seen = slot.as_ref()?.state();
    for (counter, total) in [
        (&stats.feed_reconnects, seen.reconnects),
        (&stats.feed_overrun, seen.dropped),
    ] {
        let counted = counter.get();
        if total > counted {
            counter.inc_by(total - counted);
        }
    }
    seen.state
}

// Video: the `video` thread of a pipeline run.

/// The video side of one pipeline run.
#[cfg(feature = "gstreamer")]
struct RunVideo {
    /// Raw frames for the `video` thread (`None`: no raw video thread).
    frames: Option<mpsc::Sender<Frame>>,
    /// Ends the passthrough thread once capture has ended.
    stop: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Starts the camera's `video` thread for this run. A raw camera's encoder is
/// built here for the configured size, so a missing or misconfigured encoder
/// fails the camera at once with the reason.
#[cfg(feature = "gstreamer")]
async fn start_video(
    shared: &Arc<Shared>,
    cam: &CameraConfig,
    streams: &CameraStreams,
    feed_units: Option<sources::FeedUnits>,
    next_frame_seq: &Arc<AtomicU64>,
) -> Result<RunVideo, String> {
    let mut run = RunVideo {
        frames: None,
        stop: CancellationToken::new(),
        threads: Vec::new(),
    };
    let Some((stream, video)) = &streams.video else {
        return Ok(run);
    };
    let sink = UnitSink::new(Arc::clone(video), Arc::clone(shared), stream.clone());
    let name = format!("video-{}", cam.id);
    if let Some(units) = feed_units {
        let (stop, base) = (run.stop.clone(), next_frame_seq.load(Ordering::Relaxed));
        let t = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || video_stage::passthrough_loop(units, &stop, base, sink))
            .map_err(|e| format!("cannot start the video thread: {e}"))?;
        run.threads.push(t);
    }
    // Raw frames: encoded (synthetic and V4L2 cameras with an encoder), or only for
    // snapshots. The encoder built here for NV12 at the configured size proves the
    // element and settings work before frames flow; a V4L2 device that negotiated
    // YUYV or another size gets its own on the first frame.
    let settings = match cam.source {
        SourceConfig::Synthetic { .. } | SourceConfig::V4l2(_) => shared.video.encoder,
        SourceConfig::Feed(_) => None,
    };
    let encoder = match settings {
        Some(s) => {
            let (w, h, fps) = (cam.width, cam.height, cam.fps);
            let built = tokio::task::spawn_blocking(move || {
                venue_drivers::gst::encode::Encoder::new(&s, w, h, fps)
            })
            .await
            .map_err(|e| format!("video encoder set-up failed: {e}"))?;
            let enc = built.map_err(|e| format!("video: {e}"))?;
            info!(camera = %cam.id, encoder = enc.element().factory, bitrate_kbps = s.bitrate_kbps, gop = s.gop, "video encoder ready");
            Some(enc)
        }
        None => None,
    };
    let (tx, rx) = mpsc::channel::<Frame>(VIDEO_QUEUE);
    let v = Arc::clone(video);
    let sink =
        settings.map(|_| UnitSink::new(Arc::clone(video), Arc::clone(shared), stream.clone()));
    let t = std::thread::Builder::new()
        .name(name)
        .spawn(move || video_stage::raw_loop(rx, &v, settings, encoder, sink))
        .map_err(|e| format!("cannot start the video thread: {e}"))?;
    run.threads.push(t);
    run.frames = Some(tx);
    Ok(run)
}
