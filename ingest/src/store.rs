//! The write side of the schema: one batch of new records, stored in a single
//! transaction together with the watermarks that say they are stored.

use std::collections::HashMap;

use bytes::Bytes;
use sqlx::Row as _;
use venue_proto::{Id, StreamKind};

use crate::db::{Db, DbError, Param, Sql, to_i64};

/// Rows per multi-row `INSERT` (7 parameters each stays far below both servers'
/// parameter limits).
const ROWS_PER_INSERT: usize = 500;

#[derive(Debug)]
pub struct FrameRow {
    pub stream_ref: i64,
    pub seq: i64,
    pub camera_ref: i64,
    pub capture_ns: i64,
    pub frame_seq: i64,
    pub detections: i64,
    pub payload: Bytes,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub camera_ref: i64,
    pub event_id: i64,
    pub kind: i64,
    pub phase: i64,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    pub confidence: f64,
    pub tracks: Vec<i64>,
    pub incarnation: i64,
    pub seq: i64,
    pub capture_ns: i64,
    /// Records of this event in the batch.
    pub updates: i64,
}

#[derive(Debug)]
pub struct VideoRow {
    pub stream_ref: i64,
    pub seq: i64,
    pub camera_ref: i64,
    pub codec: i64,
    pub width: i64,
    pub height: i64,
    pub start_ns: i64,
    pub end_ns: i64,
    pub first_frame_seq: i64,
    pub starts_with_keyframe: bool,
    pub bytes: i64,
    pub object: String,
}

#[derive(Debug)]
pub struct GapRow {
    pub stream_ref: i64,
    pub first_seq: i64,
    pub end_seq: i64,
    pub reason: i64,
    pub applied: i64,
}

#[derive(Debug, Clone)]
pub struct HealthRow {
    pub camera_ref: i64,
    pub incarnation: i64,
    pub seq: i64,
    pub capture_ns: i64,
    pub payload: Bytes,
}

/// How a stream's watermark moves with the batch.
#[derive(Debug, Default)]
pub struct CursorUpdate {
    /// New next-expected sequence (the stored value only ever grows).
    pub next: Option<u64>,
    pub stored: u64,
    pub lost: u64,
    pub skipped: u64,
    pub first_capture: Option<i64>,
    pub last_capture: Option<i64>,
}

/// Everything one transaction stores.
#[derive(Debug, Default)]
pub struct Batch {
    pub frames: Vec<FrameRow>,
    /// Latest state per (camera, event id): an event's updates collapse into one upsert.
    pub events: Vec<EventRow>,
    event_index: HashMap<(i64, i64), usize>,
    pub event_records: usize,
    pub videos: Vec<VideoRow>,
    pub gaps: Vec<GapRow>,
    pub health: HashMap<i64, HealthRow>,
    pub cursors: HashMap<i64, CursorUpdate>,
    pub cameras_seen: HashMap<i64, i64>,
    /// (camera, capture time) of thumbnails put in the object store.
    pub thumbnails: Vec<(i64, i64)>,
}

impl Batch {
    pub fn touch_camera(&mut self, camera_ref: i64, now_ns: i64) {
        self.cameras_seen.insert(camera_ref, now_ns);
    }

    /// Adds an event record; a later record of the same event replaces the state.
    pub fn event(&mut self, row: EventRow) {
        let key = (row.camera_ref, row.event_id);
        match self.event_index.get(&key) {
            Some(&i) => {
                let updates = self.events[i].updates + 1;
                let end_ns = row.end_ns.or(self.events[i].end_ns);
                self.events[i] = EventRow {
                    updates,
                    end_ns,
                    ..row
                };
            }
            None => {
                self.event_index.insert(key, self.events.len());
                self.events.push(row);
            }
        }
    }

    /// Keeps the newest health report per camera.
    pub fn health(&mut self, row: HealthRow) {
        match self.health.get(&row.camera_ref) {
            Some(old) if (old.incarnation, old.seq) >= (row.incarnation, row.seq) => {}
            _ => {
                self.health.insert(row.camera_ref, row);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
            && self.events.is_empty()
            && self.videos.is_empty()
            && self.gaps.is_empty()
            && self.health.is_empty()
            && self.cursors.is_empty()
            && self.cameras_seen.is_empty()
            && self.thumbnails.is_empty()
    }
}

/// Finds or creates a camera row; returns its id.
pub async fn upsert_camera(
    db: &Db,
    venue: &Id,
    box_id: &Id,
    camera: &Id,
    now_ns: i64,
) -> Result<i64, DbError> {
    let row = sqlx::query(
        "INSERT INTO cameras (venue, box, camera, first_seen_ns, last_seen_ns) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (venue, box, camera) DO UPDATE SET last_seen_ns = excluded.last_seen_ns \
         RETURNING id",
    )
    .bind(venue.as_str())
    .bind(box_id.as_str())
    .bind(camera.as_str())
    .bind(now_ns)
    .fetch_one(&db.pool)
    .await?;
    Ok(row.try_get(0)?)
}

/// Finds or creates a stream row; returns (id, next_seq, whether it existed).
pub async fn upsert_stream(
    db: &Db,
    camera_ref: i64,
    kind: StreamKind,
    incarnation: i64,
) -> Result<(i64, i64, bool), DbError> {
    let found = sqlx::query(
        "SELECT id, next_seq FROM streams WHERE camera_ref = $1 AND kind = $2 AND incarnation = $3",
    )
    .bind(camera_ref)
    .bind(kind as i64)
    .bind(incarnation)
    .fetch_optional(&db.pool)
    .await?;
    if let Some(row) = found {
        return Ok((row.try_get(0)?, row.try_get(1)?, true));
    }
    let row = sqlx::query(
        "INSERT INTO streams (camera_ref, kind, incarnation) VALUES ($1, $2, $3) \
         ON CONFLICT (camera_ref, kind, incarnation) DO UPDATE SET kind = excluded.kind \
         RETURNING id, next_seq",
    )
    .bind(camera_ref)
    .bind(kind as i64)
    .bind(incarnation)
    .fetch_one(&db.pool)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?, false))
}

/// Stores a batch and its watermarks atomically.
pub async fn write(db: &Db, batch: &Batch, stored_ns: i64) -> Result<(), DbError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = db.pool.begin().await?;
    for chunk in batch.frames.chunks(ROWS_PER_INSERT) {
        let mut q = Sql::new(
            "INSERT INTO frames (stream_ref, seq, camera_ref, capture_ns, frame_seq, detections, payload) VALUES ",
        );
        for (i, r) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind_list([
                Param::Int(r.stream_ref),
                Param::Int(r.seq),
                Param::Int(r.camera_ref),
                Param::Int(r.capture_ns),
                Param::Int(r.frame_seq),
                Param::Int(r.detections),
                Param::Bytes(r.payload.to_vec()),
            ]);
        }
        // The primary key is the last line of defence against storing a record twice.
        q.push(" ON CONFLICT DO NOTHING");
        q.query().execute(&mut *tx).await?;
    }
    for e in &batch.events {
        let tracks = serde_json::to_string(&e.tracks).unwrap_or_else(|_| "[]".into());
        let row = sqlx::query(
            "INSERT INTO events (camera_ref, event_id, kind, phase, start_ns, end_ns, confidence, \
             tracks, updates, incarnation, last_seq, capture_ns, stored_ns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (camera_ref, event_id) DO UPDATE SET kind = excluded.kind, \
             phase = excluded.phase, start_ns = excluded.start_ns, \
             end_ns = COALESCE(excluded.end_ns, events.end_ns), confidence = excluded.confidence, \
             tracks = excluded.tracks, updates = events.updates + excluded.updates, \
             incarnation = excluded.incarnation, last_seq = excluded.last_seq, \
             capture_ns = excluded.capture_ns, stored_ns = excluded.stored_ns \
             RETURNING id",
        )
        .bind(e.camera_ref)
        .bind(e.event_id)
        .bind(e.kind)
        .bind(e.phase)
        .bind(e.start_ns)
        .bind(e.end_ns)
        .bind(e.confidence)
        .bind(tracks)
        .bind(e.updates)
        .bind(e.incarnation)
        .bind(e.seq)
        .bind(e.capture_ns)
        .bind(stored_ns)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        sqlx::query("DELETE FROM event_tracks WHERE event_ref = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for t in &e.tracks {
            sqlx::query(
                "INSERT INTO event_tracks (track, start_ns, event_ref) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(*t)
            .bind(e.start_ns)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
    }
    for chunk in batch.thumbnails.chunks(ROWS_PER_INSERT) {
        let mut q = Sql::new("INSERT INTO thumbnails (camera_ref, capture_ns) VALUES ");
        for (i, (camera_ref, capture_ns)) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.bind_list([Param::Int(*camera_ref), Param::Int(*capture_ns)]);
        }
        q.push(" ON CONFLICT DO NOTHING");
        q.query().execute(&mut *tx).await?;
    }
    for v in &batch.videos {
        sqlx::query(
            "INSERT INTO video_chunks (stream_ref, seq, camera_ref, codec, width, height, start_ns, \
             end_ns, first_frame_seq, starts_with_keyframe, bytes, object) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        )
        .bind(v.stream_ref)
        .bind(v.seq)
        .bind(v.camera_ref)
        .bind(v.codec)
        .bind(v.width)
        .bind(v.height)
        .bind(v.start_ns)
        .bind(v.end_ns)
        .bind(v.first_frame_seq)
        .bind(i64::from(v.starts_with_keyframe))
        .bind(v.bytes)
        .bind(v.object.as_str())
        .execute(&mut *tx)
        .await?;
    }
    for g in &batch.gaps {
        sqlx::query(
            "INSERT INTO gaps (stream_ref, first_seq, end_seq, reason, applied, received_ns) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(g.stream_ref)
        .bind(g.first_seq)
        .bind(g.end_seq)
        .bind(g.reason)
        .bind(g.applied)
        .bind(stored_ns)
        .execute(&mut *tx)
        .await?;
    }
    for h in batch.health.values() {
        sqlx::query(
            "INSERT INTO health (camera_ref, incarnation, seq, capture_ns, received_ns, payload) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (camera_ref) DO UPDATE SET incarnation = excluded.incarnation, \
             seq = excluded.seq, capture_ns = excluded.capture_ns, \
             received_ns = excluded.received_ns, payload = excluded.payload \
             WHERE excluded.incarnation > health.incarnation \
             OR (excluded.incarnation = health.incarnation AND excluded.seq > health.seq)",
        )
        .bind(h.camera_ref)
        .bind(h.incarnation)
        .bind(h.seq)
        .bind(h.capture_ns)
        .bind(stored_ns)
        .bind(h.payload.to_vec())
        .execute(&mut *tx)
        .await?;
    }
    for (id, c) in &batch.cursors {
        let next = match c.next {
            Some(n) => Some(to_i64(n, "seq")?),
            None => None,
        };
        sqlx::query(
            "UPDATE streams SET \
             next_seq = CASE WHEN next_seq > COALESCE($1, 0) THEN next_seq ELSE COALESCE($1, 0) END, \
             stored = stored + $2, lost = lost + $3, skipped = skipped + $4, \
             first_capture_ns = COALESCE(first_capture_ns, $5), \
             last_capture_ns = COALESCE($6, last_capture_ns), last_stored_ns = $7 \
             WHERE id = $8",
        )
        .bind(next)
        .bind(to_i64(c.stored, "stored")?)
        .bind(to_i64(c.lost, "lost")?)
        .bind(to_i64(c.skipped, "skipped")?)
        .bind(c.first_capture)
        .bind(c.last_capture)
        .bind(stored_ns)
        .bind(*id)
        .execute(&mut *tx)
        .await?;
    }
    for (id, seen) in &batch.cameras_seen {
        sqlx::query("UPDATE cameras SET last_seen_ns = $1 WHERE id = $2")
            .bind(*seen)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_id: i64, seq: i64, phase: i64, end_ns: Option<i64>) -> EventRow {
        EventRow {
            camera_ref: 1,
            event_id,
            kind: 7,
            phase,
            start_ns: 10,
            end_ns,
            confidence: 0.5,
            tracks: vec![3],
            incarnation: 1,
            seq,
            capture_ns: 10,
            updates: 1,
        }
    }

    #[test]
    fn an_events_records_collapse_into_its_latest_state() {
        let mut b = Batch::default();
        b.event(event(5, 0, 0, None));
        b.event(event(6, 1, 0, None));
        b.event(event(5, 2, 2, Some(99)));
        b.event(event(5, 3, 1, None));
        assert_eq!(b.events.len(), 2);
        let e = &b.events[0];
        assert_eq!((e.event_id, e.seq, e.phase, e.updates), (5, 3, 1, 3));
        // An update without an end keeps the end already known.
        assert_eq!(e.end_ns, Some(99));
    }

    #[test]
    fn newest_health_wins() {
        let mut b = Batch::default();
        let h = |incarnation, seq| HealthRow {
            camera_ref: 1,
            incarnation,
            seq,
            capture_ns: 0,
            payload: Bytes::new(),
        };
        b.health(h(2, 5));
        b.health(h(2, 4));
        b.health(h(1, 9));
        assert_eq!(b.health[&1].seq, 5);
        b.health(h(3, 0));
        assert_eq!((b.health[&1].incarnation, b.health[&1].seq), (3, 0));
    }
}
