//! The video stage of one camera. Raw cameras: a `video` thread takes each frame
//! after `analyze` (the pixels shared, not copied), encodes it and serves snapshot
//! requests. Compressed feeds: a `video` thread takes the feed's access units as
//! received. Either way each access unit goes into the pre-roll ring and the
//! chunker, and complete chunks into the spool's `video` stream. Clips are muxed on
//! a separate `clips` thread so encoding never waits for them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace, warn};
use venue_drivers::gst::encode::{EncodedUnit, Encoder, EncoderSettings};
use venue_drivers::{Frame, PixelFormat};
use venue_proto::{AccessUnit, Header, Id, VideoChunk, VideoCodec};

use super::clip::{self, ClipFile, ClipStore};
use super::ring::Ring;
use super::{Chunker, SharedUnit, Unit, VideoConfig, VideoCounters, snapshot};
use crate::camera::Shared;
use crate::spool::StreamHandle;

/// What a camera's access units are: codec, size and nominal rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamInfo {
    pub codec: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl StreamInfo {
    pub fn wire_codec(&self) -> VideoCodec {
        match self.codec {
            PixelFormat::H265 => VideoCodec::H265,
            _ => VideoCodec::H264,
        }
    }
}

/// A camera's latest frame as a JPEG.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub frame_seq: u64,
    pub capture_ns: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub jpeg: Vec<u8>,
}

/// Where a camera's event clips go besides its own store: the spool's `clip`
/// stream, sent to the cloud and acknowledged like events.
#[derive(Debug, Clone)]
pub struct ClipOut {
    pub stream: StreamHandle,
    pub shared: Arc<Shared>,
}

/// Largest clip sent: a record must fit one wire message with room for its header.
const MAX_CLIP_SENT: usize = venue_proto::MAX_MESSAGE_BYTES - 64 * 1024;

/// An event waiting for its post-roll to be encoded.
#[derive(Debug, Clone, Copy)]
struct ClipJob {
    event_id: u64,
    from_ns: u64,
    until_ns: u64,
}

/// Units for the clip thread to mux.
struct ClipWork {
    event_id: u64,
    units: Vec<SharedUnit>,
    info: StreamInfo,
}

type SnapshotReply = oneshot::Sender<Result<Snapshot, String>>;

/// One camera's video state, alive across pipeline restarts: the ring, the clips
/// and the requests waiting for a frame.
#[derive(Debug)]
pub struct CameraVideo {
    pub camera: Id,
    pub config: VideoConfig,
    ring: Mutex<Ring>,
    info: Mutex<Option<StreamInfo>>,
    jobs: Mutex<Vec<ClipJob>>,
    clips: Arc<Mutex<ClipStore>>,
    clip_tx: Mutex<Option<std::sync::mpsc::SyncSender<ClipWork>>>,
    snapshots: Mutex<Vec<SnapshotReply>>,
    snapshot_wanted: AtomicBool,
    pub counters: VideoCounters,
    /// Sequence of clips sent by this camera's `clip` queryable.
    pub clip_seq: AtomicU64,
}

impl std::fmt::Debug for ClipWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipWork")
            .field("event_id", &self.event_id)
            .field("units", &self.units.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CameraVideo {
    /// The camera's video state and its clip thread, which keeps each event clip
    /// and, with `out`, spools it for the cloud.
    pub fn new(
        camera: Id,
        config: VideoConfig,
        counters: VideoCounters,
        out: Option<ClipOut>,
    ) -> Arc<Self> {
        let clips = Arc::new(Mutex::new(ClipStore::new(
            config.clips_kept,
            config.clips_max_bytes,
        )));
        // A few events waiting to be muxed; more are dropped (and counted).
        let (tx, rx) = std::sync::mpsc::sync_channel::<ClipWork>(4);
        let worker = {
            let (clips, counters, camera) = (Arc::clone(&clips), counters.clone(), camera.clone());
            std::thread::Builder::new()
                .name(format!("clips-{camera}"))
                .spawn(move || {
                    while let Ok(work) = rx.recv() {
                        match clip::cut(&work.units, work.info.codec, work.info.fps, Some(work.event_id)) {
                            Ok(c) => {
                                info!(camera = %camera, event_id = work.event_id, frames = c.frames, bytes = c.mp4.len(), "event clip cut");
                                counters.clips_cut.inc();
                                if let Some(out) = &out {
                                    send_clip(out, &camera, work.info, &c, &counters);
                                }
                                let mut kept = lock(&clips);
                                kept.insert(c);
                                counters.clips_kept_bytes.set(kept.bytes() as i64);
                            }
                            Err(error) => {
                                counters.clips_failed.inc();
                                counters.errors.inc();
                                warn!(camera = %camera, event_id = work.event_id, %error, "event clip failed");
                            }
                        }
                    }
                })
        };
        let clip_tx = match worker {
            Ok(_) => Some(tx),
            Err(error) => {
                error!(camera = %camera, %error, "cannot start the clip thread; no event clips");
                None
            }
        };
        Arc::new(Self {
            ring: Mutex::new(Ring::new(config.preroll, config.preroll_max_bytes)),
            info: Mutex::new(None),
            jobs: Mutex::new(Vec::new()),
            clips,
            clip_tx: Mutex::new(clip_tx),
            snapshots: Mutex::new(Vec::new()),
            snapshot_wanted: AtomicBool::new(false),
            counters,
            clip_seq: AtomicU64::new(0),
            camera,
            config,
        })
    }

    /// Ends the clip thread (it finishes what it holds).
    pub fn close(&self) {
        lock(&self.clip_tx).take();
    }

    pub fn info(&self) -> Option<StreamInfo> {
        *lock(&self.info)
    }

    /// An event ended: its clip is cut once the post-roll is in the ring.
    pub fn event_ended(&self, event_id: u64, start_ns: u64, end_ns: u64) {
        if !self.config.event_clips {
            return;
        }
        let from_ns = start_ns.saturating_sub(self.config.clip_preroll.as_nanos() as u64);
        let until_ns = end_ns.saturating_add(self.config.postroll.as_nanos() as u64);
        debug!(camera = %self.camera, event_id, from_ns, until_ns, "event clip due");
        lock(&self.jobs).push(ClipJob {
            event_id,
            from_ns,
            until_ns,
        });
    }

    /// The stored clip of an event.
    pub fn event_clip(&self, event_id: u64) -> Option<Arc<ClipFile>> {
        lock(&self.clips).get(event_id)
    }

    /// Cuts and muxes a range still in the ring (blocking: call off the async
    /// workers).
    pub fn range_clip(&self, start_ns: u64, end_ns: u64) -> Result<ClipFile, String> {
        let info = self.info().ok_or("this camera has no video yet")?;
        let units = lock(&self.ring)
            .cut(start_ns, end_ns, false)
            .map_err(|e| e.to_string())?;
        clip::cut(&units, info.codec, info.fps, None).map_err(|e| e.to_string())
    }

    /// Asks for the next frame as a JPEG (raw cameras only: the `video` thread
    /// answers with the next frame it sees).
    pub fn request_snapshot(&self) -> oneshot::Receiver<Result<Snapshot, String>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.snapshots).push(tx);
        self.snapshot_wanted.store(true, Ordering::Release);
        rx
    }

    /// Answers waiting snapshot requests with `frame`.
    fn serve_snapshots(&self, frame: &Frame) {
        if !self.snapshot_wanted.swap(false, Ordering::AcqRel) {
            return;
        }
        let waiting = std::mem::take(&mut *lock(&self.snapshots));
        let result = match frame.format {
            PixelFormat::Nv12 => snapshot::nv12_to_jpeg(&frame.data, frame.width, frame.height)
                .map(|jpeg| Snapshot {
                    frame_seq: frame.seq,
                    capture_ns: frame.capture_ns,
                    width: frame.width,
                    height: frame.height,
                    fps: frame.fps,
                    jpeg,
                })
                .map_err(|e| e.to_string()),
            other => Err(format!("frames are {other:?}, not NV12")),
        };
        for tx in waiting {
            let _ = tx.send(result.clone());
        }
    }

    /// A new access unit: into the ring, and any event clip now complete is cut.
    fn on_unit(&self, unit: &SharedUnit, info: StreamInfo) {
        *lock(&self.info) = Some(info);
        let mut ring = lock(&self.ring);
        ring.push(Arc::clone(unit));
        self.counters.ring_bytes.set(ring.bytes() as i64);
        let mut jobs = lock(&self.jobs);
        if jobs.is_empty() {
            return;
        }
        let now = unit.capture_ns;
        let (due, waiting): (Vec<ClipJob>, Vec<ClipJob>) =
            jobs.drain(..).partition(|j| j.until_ns <= now);
        *jobs = waiting;
        drop(jobs);
        for job in due {
            let units = match ring.cut(job.from_ns, job.until_ns, true) {
                Ok(u) => u,
                Err(error) => {
                    self.counters.clips_failed.inc();
                    self.counters.errors.inc();
                    warn!(camera = %self.camera, event_id = job.event_id, %error, "event clip not cut");
                    continue;
                }
            };
            let sent = lock(&self.clip_tx).as_ref().map(|tx| {
                tx.try_send(ClipWork {
                    event_id: job.event_id,
                    units,
                    info,
                })
            });
            if !matches!(sent, Some(Ok(()))) {
                self.counters.clips_busy.inc();
                warn!(camera = %self.camera, event_id = job.event_id, "event clip dropped: the clip thread is busy");
            }
        }
    }
}

/// Where one pipeline run's access units go: ring, chunker, spool.
#[derive(Debug)]
pub struct UnitSink {
    video: Arc<CameraVideo>,
    shared: Arc<Shared>,
    stream: StreamHandle,
    chunker: Chunker,
    info: Option<StreamInfo>,
    /// Units before the first keyframe cannot be decoded: not sent.
    started: bool,
    failures: u64,
}

impl UnitSink {
    pub fn new(video: Arc<CameraVideo>, shared: Arc<Shared>, stream: StreamHandle) -> Self {
        let chunker = Chunker::new(video.config.chunk, video.config.chunk_max_bytes);
        Self {
            video,
            shared,
            stream,
            chunker,
            info: None,
            started: false,
            failures: 0,
        }
    }

    pub fn push(&mut self, unit: Unit, info: StreamInfo) {
        if self.info != Some(info) {
            // A new size or codec starts a new chunk.
            self.flush();
            self.info = Some(info);
            self.started = false;
        }
        if !self.started && !unit.keyframe {
            return;
        }
        self.started = true;
        let unit = Arc::new(unit);
        self.video.on_unit(&unit, info);
        if let Some(chunk) = self.chunker.push(unit) {
            self.store(&chunk);
        }
    }

    /// Sends what the chunker holds (end of a run, or a format change).
    pub fn flush(&mut self) {
        if let Some(chunk) = self.chunker.flush() {
            self.store(&chunk);
        }
    }

    fn store(&mut self, chunk: &[SharedUnit]) {
        let (Some(info), Some(first)) = (self.info, chunk.first()) else {
            return;
        };
        let camera = &self.video.camera;
        let shared = &self.shared;
        let bytes: usize = chunk.iter().map(|u| u.data.len()).sum();
        let mut encode_error = None;
        let result = self.stream.append_with(|incarnation, seq| {
            let msg = VideoChunk {
                header: shared.header(camera, incarnation, seq, first.capture_ns, info.fps),
                codec: info.wire_codec(),
                width: info.width,
                height: info.height,
                units: chunk
                    .iter()
                    .map(|u| AccessUnit {
                        frame_seq: u.seq,
                        capture_ns: u.capture_ns,
                        keyframe: u.keyframe,
                        data: u.data.clone(),
                    })
                    .collect(),
            };
            venue_proto::encode(&msg).unwrap_or_else(|e| {
                encode_error = Some(e.to_string());
                Vec::new()
            })
        });
        let counters = &self.video.counters;
        match (result, encode_error) {
            (Ok(pos), None) => {
                counters.chunks.inc();
                counters.bytes.inc_by(bytes as u64);
                counters.frames_out.inc_by(chunk.len() as u64);
                trace!(camera = %camera, seq = pos.seq, units = chunk.len(), bytes, "video chunk spooled");
            }
            (_, Some(error)) => {
                counters.not_stored.inc_by(chunk.len() as u64);
                counters.errors.inc();
                warn!(camera = %camera, %error, "video chunk encoding failed");
            }
            (Err(error), None) => {
                counters.not_stored.inc_by(chunk.len() as u64);
                self.failures += 1;
                if self.failures % 100 == 1 {
                    warn!(camera = %camera, %error, lost = self.failures, "video chunk not stored: counted as lost");
                }
            }
        }
    }
}

/// Frames between attempts to rebuild an encoder that failed.
const RETRY_FRAMES: u64 = 150;

/// The `video` thread of a raw camera: encodes each frame (when an encoder is
/// configured) and answers snapshot requests. `encoder` is the one built and
/// checked at pipeline start for the configured size; frames of another size get
/// a new one.
pub fn raw_loop(
    mut rx: mpsc::Receiver<Frame>,
    video: &Arc<CameraVideo>,
    settings: Option<EncoderSettings>,
    mut encoder: Option<Encoder>,
    mut sink: Option<UnitSink>,
) {
    let mut retry_at = 0u64;
    let mut last_error = String::new();
    while let Some(frame) = rx.blocking_recv() {
        video.serve_snapshots(&frame);
        let (Some(settings), Some(sink)) = (&settings, sink.as_mut()) else {
            continue;
        };
        video.counters.frames_in.inc();
        if !Encoder::takes(frame.format) {
            // MJPEG from a V4L2 device: decoded for segmentation, not re-encoded.
            video.counters.not_encoded.inc();
            report(
                &video.camera,
                &format!(
                    "{:?} frames are not encoded; choose a raw format (NV12, YUYV) for the camera to have video",
                    frame.format
                ),
                &mut last_error,
            );
            continue;
        }
        if !encoder.as_ref().is_some_and(|e| e.accepts(&frame)) {
            if let Some(old) = encoder.take() {
                drain(old.finish(), sink, video, &mut last_error);
            }
            if frame.seq < retry_at {
                video.counters.not_encoded.inc();
                continue;
            }
            match Encoder::for_format(settings, frame.format, frame.width, frame.height, frame.fps)
            {
                Ok(e) => encoder = Some(e),
                Err(error) => {
                    video.counters.errors.inc();
                    video.counters.not_encoded.inc();
                    retry_at = frame.seq + RETRY_FRAMES;
                    report(&video.camera, &error.to_string(), &mut last_error);
                    continue;
                }
            }
        }
        let Some(enc) = encoder.as_mut() else {
            continue;
        };
        let info = StreamInfo {
            codec: enc.codec(),
            width: frame.width,
            height: frame.height,
            fps: frame.fps,
        };
        let mut result = enc.push(&frame);
        while result.is_ok() {
            match enc.pull(Duration::ZERO) {
                Ok(Some(u)) => sink.push(unit(u), info),
                Ok(None) => break,
                Err(e) => result = Err(e),
            }
        }
        // Releases the camera's pooled buffer before waiting for the next frame.
        drop(frame);
        if let Err(error) = result {
            video.counters.errors.inc();
            report(&video.camera, &error.to_string(), &mut last_error);
            encoder = None;
        }
    }
    if let (Some(enc), Some(sink)) = (encoder, sink.as_mut()) {
        let info = StreamInfo {
            codec: enc.codec(),
            ..sink.info.unwrap_or(StreamInfo {
                codec: enc.codec(),
                width: 0,
                height: 0,
                fps: 30,
            })
        };
        match enc.finish() {
            Ok(units) => units.into_iter().for_each(|u| sink.push(unit(u), info)),
            Err(error) => report(&video.camera, &error.to_string(), &mut last_error),
        }
    }
    if let Some(sink) = sink.as_mut() {
        sink.flush();
    }
}

/// Sends the last units of an encoder being replaced (frame size change).
fn drain(
    units: Result<Vec<EncodedUnit>, venue_drivers::gst::encode::EncodeError>,
    sink: &mut UnitSink,
    video: &CameraVideo,
    last_error: &mut String,
) {
    match units {
        Ok(units) => {
            if let Some(info) = sink.info {
                units.into_iter().for_each(|u| sink.push(unit(u), info));
            }
        }
        Err(error) => report(&video.camera, &error.to_string(), last_error),
    }
}

fn unit(u: EncodedUnit) -> Unit {
    Unit {
        seq: u.seq,
        capture_ns: u.capture_ns,
        keyframe: u.keyframe,
        data: u.data,
    }
}

/// Logs an encoder failure once per distinct message (a broken encoder must not
/// flood the log every frame).
fn report(camera: &Id, error: &str, last: &mut String) {
    if error != last {
        error!(camera = %camera, %error, "video encoding failed");
        *last = error.to_string();
    }
}

/// Whether an Annex-B access unit only continues the previous picture: its first
/// slice does not start the picture (H.264 `first_mb_in_slice` ≠ 0, H.265
/// `first_slice_segment_in_pic_flag` = 0).
pub fn continues_picture(data: &[u8], codec: PixelFormat) -> bool {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let h = i + 3;
        match codec {
            PixelFormat::H265 => {
                let kind = (data[h] >> 1) & 0x3f;
                if kind <= 31 {
                    return data.get(h + 2).is_some_and(|b| b & 0x80 == 0);
                }
            }
            _ => {
                let kind = data[h] & 0x1f;
                if (1..=5).contains(&kind) {
                    // ue(v) 0 is a single 1 bit.
                    return data.get(h + 1).is_some_and(|b| b & 0x80 == 0);
                }
            }
        }
        i = h;
    }
    false
}

/// Joins access units that carry one picture between them. At the start of an
/// RTSP stream the depayloader can hand over a multi-slice keyframe as one unit
/// per slice; a clip or decoder needs the picture whole, and the frame numbering
/// must count pictures to match the decoded frames' metadata. Holds one unit back.
#[derive(Debug, Default)]
struct PictureJoin {
    pending: Option<(Unit, StreamInfo)>,
    /// Units folded into the one before: later sequence numbers shift down by this.
    merged: u64,
}

impl PictureJoin {
    fn push(&mut self, mut u: Unit, info: StreamInfo) -> Option<(Unit, StreamInfo)> {
        if let Some((p, pinfo)) = self.pending.as_mut()
            && *pinfo == info
            && continues_picture(&u.data, info.codec)
        {
            p.data.extend_from_slice(&u.data);
            p.keyframe |= u.keyframe;
            self.merged += 1;
            return None;
        }
        u.seq = u.seq.saturating_sub(self.merged);
        self.pending.replace((u, info))
    }

    fn flush(&mut self) -> Option<(Unit, StreamInfo)> {
        self.pending.take()
    }
}

/// The `video` thread of a compressed feed: its access units as received, with the
/// camera's frame numbering (`base`: the sequence this pipeline run starts at).
pub fn passthrough_loop(
    units: venue_drivers::gst::AccessUnits,
    stop: &CancellationToken,
    base: u64,
    mut sink: UnitSink,
) {
    let mut join = PictureJoin::default();
    loop {
        match units.recv_timeout(Duration::from_millis(100)) {
            Some(f) => {
                let info = StreamInfo {
                    codec: f.format,
                    width: f.width,
                    height: f.height,
                    fps: f.fps,
                };
                let u = Unit {
                    seq: f.seq + base,
                    capture_ns: f.capture_ns,
                    keyframe: f.keyframe,
                    // The feed's pooled buffer goes back at once.
                    data: f.data.to_vec(),
                };
                if let Some((u, info)) = join.push(u, info) {
                    sink.video.counters.frames_in.inc();
                    sink.push(u, info);
                }
            }
            None if stop.is_cancelled() => break,
            None => {}
        }
    }
    if let Some((u, info)) = join.flush() {
        sink.video.counters.frames_in.inc();
        sink.push(u, info);
    }
    sink.flush();
    let dropped = units.dropped();
    if dropped > 0 {
        warn!(dropped, "feed access units dropped (queue full)");
    }
}

/// Spools an event clip for the cloud (too large for one message: kept on the box
/// only, and counted).
fn send_clip(out: &ClipOut, camera: &Id, info: StreamInfo, c: &ClipFile, counters: &VideoCounters) {
    if c.mp4.len() > MAX_CLIP_SENT {
        counters.clips_too_large.inc();
        warn!(camera = %camera, event_id = c.event_id, bytes = c.mp4.len(), limit = MAX_CLIP_SENT, "event clip too large to send; kept on the box (shorten [video] clip_preroll_s/postroll_s or lower the bitrate)");
        return;
    }
    let mut encode_error = None;
    let result = out.stream.append_with(|incarnation, seq| {
        let header = out
            .shared
            .header(camera, incarnation, seq, c.start_ns, info.fps);
        venue_proto::encode(&clip_record(header, info, c)).unwrap_or_else(|e| {
            encode_error = Some(e.to_string());
            Vec::new()
        })
    });
    match (result, encode_error) {
        (Ok(pos), None) => {
            counters.clips_sent.inc();
            debug!(camera = %camera, event_id = c.event_id, seq = pos.seq, "event clip spooled");
        }
        (_, Some(error)) => {
            counters.clips_failed.inc();
            counters.errors.inc();
            warn!(camera = %camera, event_id = c.event_id, %error, "event clip encoding failed");
        }
        (Err(error), None) => {
            counters.clips_not_stored.inc();
            warn!(camera = %camera, event_id = c.event_id, %error, "event clip not stored for the uplink: counted as lost");
        }
    }
}

/// The wire form of a clip.
pub fn clip_record(header: Header, info: StreamInfo, c: &ClipFile) -> venue_proto::Clip {
    venue_proto::Clip {
        header,
        event_id: c.event_id,
        codec: info.wire_codec(),
        width: info.width,
        height: info.height,
        first_frame_seq: c.first_frame_seq,
        frames: c.frames,
        start_ns: c.start_ns,
        end_ns: c.end_ns,
        mp4: c.mp4.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> StreamInfo {
        StreamInfo {
            codec: PixelFormat::H264,
            width: 320,
            height: 240,
            fps: 25,
        }
    }

    fn au(seq: u64, slice: &[u8]) -> Unit {
        let mut data = vec![0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1];
        data.extend_from_slice(slice);
        Unit {
            seq,
            capture_ns: seq,
            keyframe: slice[0] == 0x65,
            data,
        }
    }

    #[test]
    fn slices_of_one_picture_are_joined_and_numbering_counts_pictures() {
        assert!(!continues_picture(
            &au(0, &[0x65, 0x88]).data,
            PixelFormat::H264
        ));
        assert!(continues_picture(
            &au(1, &[0x65, 0x01, 0x42]).data,
            PixelFormat::H264
        ));
        let mut j = PictureJoin::default();
        let mut out = Vec::new();
        for u in [
            au(0, &[0x65, 0x88]),
            au(1, &[0x65, 0x01]),
            au(2, &[0x41, 0x9a]),
            au(3, &[0x41, 0x9b]),
        ] {
            out.extend(j.push(u, info()));
        }
        out.extend(j.flush());
        let seqs: Vec<u64> = out.iter().map(|(u, _)| u.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert!(
            out[0]
                .0
                .data
                .ends_with(&[0x65, 0x88, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x65, 0x01])
        );
        // H.265: first_slice_segment_in_pic_flag is the first bit after the header.
        assert!(!continues_picture(
            &[0, 0, 1, 0x26, 0x01, 0x80],
            PixelFormat::H265
        ));
        assert!(continues_picture(
            &[0, 0, 1, 0x26, 0x01, 0x40],
            PixelFormat::H265
        ));
    }
}
