//! The receiver's contract (docs/wire.md, "Delivery"): decode and validate every
//! incoming payload, drop copies and records ahead of a missing one, apply gap
//! notices, store a batch in one transaction and only then compute the acks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tracing::{debug, warn};
use venue_proto::{AnyMessage, DecodeError, Header, Id, StreamKey, StreamKind};

use crate::db::{Db, DbError, to_i64};
use crate::objects::{ObjectError, Objects};
use crate::store::{self, Batch, CursorUpdate, EventRow, FrameRow, GapRow, HealthRow, VideoRow};

/// A stream first seen at a sequence above 0 (its earlier records were acknowledged
/// before this database existed) is adopted at the lowest sequence seen once the
/// box has had this long to resend from its last ack.
const ADOPT_AFTER: Duration = Duration::from_secs(3);

/// One payload as it arrived, with the key (zenoh key expression or MQTT topic).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub key: String,
    pub payload: Bytes,
}

/// Why a payload was refused; each is counted and logged with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// The key is not `venue/{venue}/{box}/{camera}/{stream}` with valid ids.
    BadKey,
    /// Not a valid message of the key's stream (malformed CBOR, trailing bytes, bad
    /// ids or timecode, too large).
    Malformed,
    /// A schema version this build does not read.
    Schema,
    /// The header's venue, box or camera differs from the key's.
    KeyMismatch,
    /// A number the database cannot hold (above 2^63 - 1).
    OutOfRange,
}

impl Reject {
    const ALL: [Reject; 5] = [
        Self::BadKey,
        Self::Malformed,
        Self::Schema,
        Self::KeyMismatch,
        Self::OutOfRange,
    ];
    fn index(self) -> usize {
        self as usize
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadKey => "bad_key",
            Self::Malformed => "malformed",
            Self::Schema => "schema",
            Self::KeyMismatch => "key_mismatch",
            Self::OutOfRange => "out_of_range",
        }
    }
}

/// Counters of this ingest instance (served at `/api/v1/ingest`).
#[derive(Debug, Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub ahead: AtomicU64,
    pub gaps: AtomicU64,
    pub health: AtomicU64,
    pub acks_ignored: AtomicU64,
    pub batches: AtomicU64,
    pub batch_errors: AtomicU64,
    pub acks_sent: AtomicU64,
    rejected: [AtomicU64; 5],
}

impl Counters {
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected[r.index()].load(Ordering::Relaxed)
    }

    pub fn rejected_total(&self) -> u64 {
        Reject::ALL.iter().map(|r| self.rejected(*r)).sum()
    }

    /// A JSON view for the API.
    pub fn snapshot(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rejected: serde_json::Map<String, serde_json::Value> = Reject::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), self.rejected(*r).into()))
            .collect();
        serde_json::json!({
            "received": get(&self.received),
            "stored": get(&self.stored),
            "duplicates": get(&self.duplicates),
            "ahead": get(&self.ahead),
            "gaps": get(&self.gaps),
            "health": get(&self.health),
            "acks_ignored": get(&self.acks_ignored),
            "batches": get(&self.batches),
            "batch_errors": get(&self.batch_errors),
            "acks_sent": get(&self.acks_sent),
            "rejected": rejected,
        })
    }
}

/// An acknowledgement to publish: every record of the stream up to `acked_seq` is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckDue {
    pub venue: Id,
    pub box_id: Id,
    pub camera: Id,
    pub stream: StreamKind,
    pub incarnation: u64,
    pub acked_seq: u64,
}

/// Why a batch was not stored (nothing of it was acknowledged; the box resends).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Object(#[from] ObjectError),
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(DbError::Sql(e))
    }
}

type CameraKey = (Id, Id, Id);
type StreamIdent = (i64, StreamKind, u64);

/// The watermark of one (camera, stream, incarnation).
#[derive(Debug)]
struct StreamState {
    id: i64,
    camera: CameraKey,
    /// Next sequence expected, as committed to the database.
    next: u64,
    /// Next sequence expected including the batch being built.
    pending: u64,
    /// Whether the database had the stream before this instance saw it.
    fresh: bool,
    /// For a fresh stream first seen above 0: lowest sequence seen, and when.
    first_seen: Option<(u64, Instant)>,
    /// Whether an ack should go out (records stored or copies received).
    ack_due: bool,
}

/// Decodes, deduplicates and stores; owns the watermarks of every stream it sees.
#[derive(Debug)]
pub struct Ingest {
    db: Db,
    objects: Objects,
    counters: Arc<Counters>,
    cameras: HashMap<CameraKey, i64>,
    /// When each camera's `last_seen_ns` was last written (at most once a second,
    /// so a batch does not rewrite a row per camera).
    camera_touched: HashMap<i64, Instant>,
    streams: HashMap<StreamIdent, StreamState>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Ingest {
    pub fn new(db: Db, objects: Objects, counters: Arc<Counters>) -> Self {
        Self {
            db,
            objects,
            counters,
            cameras: HashMap::new(),
            camera_touched: HashMap::new(),
            streams: HashMap::new(),
        }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    fn reject(&self, why: Reject, key: &str, detail: &dyn std::fmt::Display) {
        let n = self.counters.rejected[why.index()].fetch_add(1, Ordering::Relaxed) + 1;
        // Logged with its key; a flood is sampled so the log stays readable.
        if n <= 10 || n.is_multiple_of(1000) {
            warn!(%key, reason = why.as_str(), %detail, rejected = n, "payload ignored");
        }
    }

    async fn camera_ref(&mut self, h: &Header) -> Result<i64, BatchError> {
        let key = (h.venue.clone(), h.box_id.clone(), h.camera.clone());
        if let Some(id) = self.cameras.get(&key) {
            return Ok(*id);
        }
        let id = store::upsert_camera(&self.db, &key.0, &key.1, &key.2, now_ns()).await?;
        self.cameras.insert(key, id);
        Ok(id)
    }

    async fn stream(
        &mut self,
        camera_ref: i64,
        camera: &CameraKey,
        kind: StreamKind,
        incarnation: u64,
    ) -> Result<&mut StreamState, BatchError> {
        let ident = (camera_ref, kind, incarnation);
        if !self.streams.contains_key(&ident) {
            let inc = to_i64(incarnation, "incarnation")?;
            let (id, next, existed) = store::upsert_stream(&self.db, camera_ref, kind, inc).await?;
            let next = u64::try_from(next).unwrap_or(0);
            self.streams.insert(
                ident,
                StreamState {
                    id,
                    camera: camera.clone(),
                    next,
                    pending: next,
                    fresh: !existed || next == 0,
                    first_seen: None,
                    ack_due: false,
                },
            );
        }
        self.streams
            .get_mut(&ident)
            .ok_or(BatchError::Db(DbError::Range("stream state")))
    }

    /// Stores what is new in `items` in one transaction and returns the acks due.
    /// On error nothing of the batch counts as stored (the box sends it again).
    pub async fn process(&mut self, items: Vec<Incoming>) -> Result<Vec<AckDue>, BatchError> {
        let mut batch = Batch::default();
        let stored_ns = now_ns();
        let result = self.build(items, &mut batch, stored_ns).await;
        let result = match result {
            Ok(()) => store::write(&self.db, &batch, stored_ns)
                .await
                .map_err(BatchError::from),
            Err(e) => Err(e),
        };
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            self.counters.batch_errors.fetch_add(1, Ordering::Relaxed);
            for s in self.streams.values_mut() {
                s.pending = s.next;
                s.first_seen = None;
            }
            return Err(e);
        }
        let stored = (batch.frames.len() + batch.event_records + batch.videos.len()) as u64;
        self.counters.stored.fetch_add(stored, Ordering::Relaxed);
        let mut acks = Vec::new();
        for ((_, kind, incarnation), s) in &mut self.streams {
            s.next = s.pending;
            if s.ack_due && s.next > 0 {
                acks.push(AckDue {
                    venue: s.camera.0.clone(),
                    box_id: s.camera.1.clone(),
                    camera: s.camera.2.clone(),
                    stream: *kind,
                    incarnation: *incarnation,
                    acked_seq: s.next - 1,
                });
            }
            s.ack_due = false;
        }
        Ok(acks)
    }

    async fn build(
        &mut self,
        items: Vec<Incoming>,
        batch: &mut Batch,
        stored_ns: i64,
    ) -> Result<(), BatchError> {
        for item in items {
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            let key = match StreamKey::parse(&item.key) {
                Ok(k) => k,
                Err(e) => {
                    self.reject(Reject::BadKey, &item.key, &e);
                    continue;
                }
            };
            if key.stream == StreamKind::Ack {
                // Acks (ours, or another consumer's) travel on the same hierarchy.
                self.counters.acks_ignored.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let msg = match venue_proto::decode_any(key.stream, &item.payload) {
                Ok(m) => m,
                Err(e @ DecodeError::UnsupportedSchema { .. }) => {
                    self.reject(Reject::Schema, &item.key, &e);
                    continue;
                }
                Err(e) => {
                    self.reject(Reject::Malformed, &item.key, &e);
                    continue;
                }
            };
            let h = msg.header();
            if h.venue != key.venue || h.box_id != key.box_id || h.camera != key.camera {
                self.reject(
                    Reject::KeyMismatch,
                    &item.key,
                    &"header ids differ from the key",
                );
                continue;
            }
            if let Err(e) = self.accept(&item, msg, batch, stored_ns).await {
                match e {
                    BatchError::Db(DbError::Range(what)) => {
                        self.reject(Reject::OutOfRange, &item.key, &what);
                    }
                    other => return Err(other),
                }
            }
        }
        Ok(())
    }

    async fn accept(
        &mut self,
        item: &Incoming,
        msg: AnyMessage,
        batch: &mut Batch,
        stored_ns: i64,
    ) -> Result<(), BatchError> {
        let h = msg.header().clone();
        let camera = (h.venue.clone(), h.box_id.clone(), h.camera.clone());
        // Range checks first, so a refused record leaves no trace.
        let seq = to_i64(h.seq, "seq")?;
        let capture_ns = to_i64(h.capture_ns, "capture_ns")?;
        to_i64(h.incarnation, "incarnation")?;
        let camera_ref = self.camera_ref(&h).await?;
        let now = Instant::now();
        let due = self
            .camera_touched
            .get(&camera_ref)
            .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(1));
        if due {
            self.camera_touched.insert(camera_ref, now);
            batch.touch_camera(camera_ref, stored_ns);
        }
        match msg {
            AnyMessage::Thumbnail(t) => {
                // Live only, like health: kept as an object per picture, named by
                // capture time, and indexed (object first, so a row never names a
                // missing picture) for the event API to find the one of a moment.
                let object = thumbnail_object(&h.venue, &h.box_id, &h.camera, h.capture_ns);
                self.objects
                    .put(&object, Bytes::from(t.image.clone()))
                    .await?;
                batch.thumbnails.push((camera_ref, capture_ns));
                return Ok(());
            }
            AnyMessage::Health(_) => {
                self.counters.health.fetch_add(1, Ordering::Relaxed);
                batch.health(HealthRow {
                    camera_ref,
                    incarnation: to_i64(h.incarnation, "incarnation")?,
                    seq,
                    capture_ns,
                    payload: item.payload.clone(),
                });
                return Ok(());
            }
            AnyMessage::Gap(g) => {
                self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                if !g.stream.is_spooled() {
                    return Ok(());
                }
                let first = to_i64(g.first_seq, "first_seq")?;
                let end = to_i64(g.end_seq, "end_seq")?;
                let s = self
                    .stream(camera_ref, &camera, g.stream, g.incarnation)
                    .await?;
                let applied = if g.first_seq <= s.pending && s.pending < g.end_seq {
                    let lost = g.end_seq - s.pending;
                    s.pending = g.end_seq;
                    s.ack_due = true;
                    lost
                } else {
                    0
                };
                let sid = s.id;
                if applied > 0 {
                    let c = batch.cursor(sid);
                    c.lost += applied;
                    c.next = Some(c.next.unwrap_or(0).max(g.end_seq));
                }
                batch.gaps.push(GapRow {
                    stream_ref: sid,
                    first_seq: first,
                    end_seq: end,
                    reason: g.reason as i64,
                    applied: to_i64(applied, "lost")?,
                });
                return Ok(());
            }
            AnyMessage::Ack(_) => return Ok(()),
            _ => {}
        }
        check_ranges(&msg)?;
        let kind = msg.stream();
        let counters = Arc::clone(&self.counters);
        let s = self
            .stream(camera_ref, &camera, kind, h.incarnation)
            .await?;
        if h.seq < s.pending {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            // The box resends what it has no ack for: say again that it is stored.
            s.ack_due = true;
            return Ok(());
        }
        if h.seq > s.pending {
            if s.fresh && s.pending == 0 {
                let now = Instant::now();
                let (low, since) = match s.first_seen {
                    Some((low, since)) => (low.min(h.seq), since),
                    None => (h.seq, now),
                };
                s.first_seen = Some((low, since));
                if now.duration_since(since) >= ADOPT_AFTER && h.seq == low {
                    debug!(key = %item.key, from = low, "stream adopted above sequence 0");
                    let sid = s.id;
                    s.pending = low;
                    batch.cursor(sid).skipped += low;
                } else {
                    counters.ahead.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            } else {
                counters.ahead.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        s.pending += 1;
        s.ack_due = true;
        s.fresh = false;
        let sid = s.id;
        let c = batch.cursor(sid);
        c.next = Some(h.seq + 1);
        c.stored += 1;
        c.first_capture.get_or_insert(capture_ns);
        c.last_capture = Some(capture_ns);
        match msg {
            AnyMessage::Meta(m) => batch.frames.push(FrameRow {
                stream_ref: sid,
                seq,
                camera_ref,
                capture_ns,
                frame_seq: to_i64(m.frame_seq, "frame_seq")?,
                detections: m.detections.len() as i64,
                payload: item.payload.clone(),
            }),
            AnyMessage::Event(e) => {
                batch.event_records += 1;
                batch.event(EventRow {
                    camera_ref,
                    event_id: to_i64(e.event_id, "event_id")?,
                    kind: e.kind as i64,
                    phase: e.phase as i64,
                    start_ns: to_i64(e.start_ns, "start_ns")?,
                    end_ns: e.end_ns.map(|v| to_i64(v, "end_ns")).transpose()?,
                    confidence: f64::from(e.confidence),
                    tracks: e
                        .tracks
                        .iter()
                        .map(|t| to_i64(*t, "track"))
                        .collect::<Result<_, _>>()?,
                    incarnation: to_i64(h.incarnation, "incarnation")?,
                    seq,
                    capture_ns,
                    updates: 1,
                });
            }
            AnyMessage::Video(v) => {
                let object = format!(
                    "video/{}/{}/{}/{}/{:012}.h264",
                    h.venue, h.box_id, h.camera, h.incarnation, h.seq
                );
                let mut data = Vec::with_capacity(v.units.iter().map(|u| u.data.len()).sum());
                for u in &v.units {
                    data.extend_from_slice(&u.data);
                }
                let first = v.units.first();
                let last = v.units.last();
                let row = VideoRow {
                    stream_ref: sid,
                    seq,
                    camera_ref,
                    codec: v.codec as i64,
                    width: i64::from(v.width),
                    height: i64::from(v.height),
                    start_ns: to_i64(first.map_or(h.capture_ns, |u| u.capture_ns), "capture_ns")?,
                    end_ns: to_i64(last.map_or(h.capture_ns, |u| u.capture_ns), "capture_ns")?,
                    first_frame_seq: to_i64(first.map_or(0, |u| u.frame_seq), "frame_seq")?,
                    starts_with_keyframe: first.is_some_and(|u| u.keyframe),
                    bytes: data.len() as i64,
                    object: object.clone(),
                };
                // The object is written before the row that points at it: a crash
                // between the two leaves an orphan file, never a dangling row.
                self.objects.put(&object, Bytes::from(data)).await?;
                batch.videos.push(row);
            }
            AnyMessage::Composite(c) => {
                // One picture per event: writing it again (a resend) is harmless.
                let object = composite_object(&h.venue, &h.box_id, &h.camera, c.event_id);
                self.objects
                    .put(&object, Bytes::from(c.image.clone()))
                    .await?;
            }
            AnyMessage::Clip(c) => {
                // One MP4 per event, like composites. A clip without an event is a
                // reply to someone's query, not a record of the stream: not kept.
                if let Some(event_id) = c.event_id {
                    let object = clip_object(&h.venue, &h.box_id, &h.camera, event_id);
                    self.objects
                        .put(&object, Bytes::from(c.mp4.clone()))
                        .await?;
                } else {
                    debug!(camera = %h.camera, seq = h.seq, "clip without an event id not kept");
                }
            }
            AnyMessage::Health(_)
            | AnyMessage::Gap(_)
            | AnyMessage::Ack(_)
            | AnyMessage::Thumbnail(_) => {}
        }
        Ok(())
    }
}

/// The object of an event's MP4 clip, as the box cut it.
pub fn clip_object(
    venue: &impl std::fmt::Display,
    box_id: &impl std::fmt::Display,
    camera: &impl std::fmt::Display,
    event_id: u64,
) -> String {
    format!("clips/{venue}/{box_id}/{camera}/{event_id}.mp4")
}

/// Where a camera's thumbnails are kept (one object per picture).
pub fn thumbnail_prefix(venue: &str, box_id: &str, camera: &str) -> String {
    format!("thumbnails/{venue}/{box_id}/{camera}")
}

/// The object of the thumbnail captured at `capture_ns` (zero-padded, so keys sort
/// by time).
pub fn thumbnail_object(
    venue: &impl std::fmt::Display,
    box_id: &impl std::fmt::Display,
    camera: &impl std::fmt::Display,
    capture_ns: u64,
) -> String {
    format!("thumbnails/{venue}/{box_id}/{camera}/{capture_ns:020}.jpg")
}

/// The object of an event's composite picture.
pub fn composite_object(
    venue: &impl std::fmt::Display,
    box_id: &impl std::fmt::Display,
    camera: &impl std::fmt::Display,
    event_id: u64,
) -> String {
    format!("composites/{venue}/{box_id}/{camera}/{event_id}.png")
}

impl Batch {
    fn cursor(&mut self, stream_ref: i64) -> &mut CursorUpdate {
        self.cursors.entry(stream_ref).or_default()
    }
}

/// Every number of a record that becomes a database integer fits one, checked
/// before the record moves a watermark (so a refused record is never acknowledged
/// as stored).
fn check_ranges(msg: &AnyMessage) -> Result<(), DbError> {
    match msg {
        AnyMessage::Meta(m) => {
            to_i64(m.frame_seq, "frame_seq")?;
        }
        AnyMessage::Event(e) => {
            to_i64(e.event_id, "event_id")?;
            to_i64(e.start_ns, "start_ns")?;
            if let Some(end) = e.end_ns {
                to_i64(end, "end_ns")?;
            }
            for t in &e.tracks {
                to_i64(*t, "track")?;
            }
        }
        AnyMessage::Video(v) => {
            for u in &v.units {
                to_i64(u.frame_seq, "frame_seq")?;
                to_i64(u.capture_ns, "capture_ns")?;
            }
        }
        AnyMessage::Composite(c) => {
            to_i64(c.event_id, "event_id")?;
        }
        AnyMessage::Clip(c) => {
            if let Some(id) = c.event_id {
                to_i64(id, "event_id")?;
            }
        }
        AnyMessage::Health(_)
        | AnyMessage::Gap(_)
        | AnyMessage::Ack(_)
        | AnyMessage::Thumbnail(_) => {}
    }
    Ok(())
}
