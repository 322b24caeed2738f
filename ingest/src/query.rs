//! The read side of the schema: the queries behind the HTTP API.

use serde::Serialize;
use sqlx::Row as _;
use sqlx::any::AnyRow;
use venue_proto::{EventKind, EventPhase, FrameMeta, Health};

use crate::db::{Db, DbError, Param, Sql};

/// A camera (or a box's `_box` slot) that has sent something.
#[derive(Debug, Serialize)]
pub struct CameraSeen {
    pub venue: String,
    #[serde(rename = "box")]
    pub box_id: String,
    pub camera: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
}

pub async fn cameras(db: &Db) -> Result<Vec<CameraSeen>, DbError> {
    let rows = sqlx::query(
        "SELECT venue, box, camera, first_seen_ns, last_seen_ns FROM cameras \
         ORDER BY venue, box, camera",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CameraSeen {
                venue: r.try_get(0)?,
                box_id: r.try_get(1)?,
                camera: r.try_get(2)?,
                first_seen_ns: r.try_get(3)?,
                last_seen_ns: r.try_get(4)?,
            })
        })
        .collect()
}

/// Which cameras a query is about; `None` fields match everything.
#[derive(Debug, Default, Clone)]
pub struct CameraFilter {
    pub venue: Option<String>,
    pub box_id: Option<String>,
    pub camera: Option<String>,
}

impl CameraFilter {
    fn is_any(&self) -> bool {
        self.venue.is_none() && self.box_id.is_none() && self.camera.is_none()
    }
}

/// Ids of the cameras matching a filter (`None`: no filter at all).
async fn camera_refs(db: &Db, f: &CameraFilter) -> Result<Option<Vec<i64>>, DbError> {
    if f.is_any() {
        return Ok(None);
    }
    let mut q = Sql::new("SELECT id FROM cameras WHERE 1 = 1");
    if let Some(v) = &f.venue {
        q.push(" AND venue = ").bind(v.clone());
    }
    if let Some(v) = &f.box_id {
        q.push(" AND box = ").bind(v.clone());
    }
    if let Some(v) = &f.camera {
        q.push(" AND camera = ").bind(v.clone());
    }
    let rows = q.query().fetch_all(&db.pool).await?;
    Ok(Some(
        rows.iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?,
    ))
}

fn push_in(q: &mut Sql, column: &str, ids: &[i64]) {
    q.push(" AND ").push(column).push(" IN ");
    q.bind_list(ids.iter().map(|id| Param::Int(*id)));
}

/// An event as the API returns it.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct EventOut {
    pub venue: String,
    #[serde(rename = "box")]
    pub box_id: String,
    pub camera: String,
    pub event_id: i64,
    pub kind: &'static str,
    pub phase: &'static str,
    pub start_ns: i64,
    pub end_ns: Option<i64>,
    pub tracks: Vec<i64>,
    pub confidence: f64,
    /// Records received for this event (start, updates, end).
    pub updates: i64,
    pub incarnation: i64,
    pub last_seq: i64,
    pub capture_ns: i64,
    pub stored_ns: i64,
    /// The form `/clip` serves for this event, set for a single event only: `mp4`
    /// (the clip the box cut) or `chunks` (assembled from stored video chunks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<&'static str>,
    #[serde(skip)]
    pub row_id: i64,
    #[serde(skip)]
    pub camera_ref: i64,
}

pub const EVENT_KINDS: [(&str, EventKind); 8] = [
    ("enter", EventKind::Enter),
    ("exit", EventKind::Exit),
    ("take_off", EventKind::TakeOff),
    ("landing", EventKind::Landing),
    ("fall", EventKind::Fall),
    ("speed_peak", EventKind::SpeedPeak),
    ("line_cross", EventKind::LineCross),
    ("jump", EventKind::Jump),
];

fn kind_name(k: i64) -> &'static str {
    EVENT_KINDS
        .iter()
        .find(|(_, kind)| *kind as i64 == k)
        .map_or("other", |(n, _)| n)
}

fn phase_name(p: i64) -> &'static str {
    match p {
        x if x == EventPhase::Started as i64 => "started",
        x if x == EventPhase::Updated as i64 => "updated",
        x if x == EventPhase::Ended as i64 => "ended",
        _ => "other",
    }
}

/// Filters of an event query. Times are Unix ns; `from_ns` inclusive, `to_ns`
/// exclusive, on the event's start.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub cameras: CameraFilter,
    pub kind: Option<EventKind>,
    pub track: Option<i64>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    /// Keyset cursor: events after (start_ns, row id).
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

const EVENT_COLUMNS: &str = "SELECT e.id, c.venue, c.box, c.camera, e.event_id, e.kind, e.phase, \
    e.start_ns, e.end_ns, e.confidence, e.tracks, e.updates, e.incarnation, e.last_seq, \
    e.capture_ns, e.stored_ns, e.camera_ref FROM events e JOIN cameras c ON c.id = e.camera_ref";

fn event_row(r: &AnyRow) -> Result<EventOut, DbError> {
    let tracks: String = r.try_get(10)?;
    Ok(EventOut {
        clip: None,
        row_id: r.try_get(0)?,
        venue: r.try_get(1)?,
        box_id: r.try_get(2)?,
        camera: r.try_get(3)?,
        event_id: r.try_get(4)?,
        kind: kind_name(r.try_get(5)?),
        phase: phase_name(r.try_get(6)?),
        start_ns: r.try_get(7)?,
        end_ns: r.try_get(8)?,
        confidence: r.try_get(9)?,
        tracks: serde_json::from_str(&tracks).unwrap_or_default(),
        updates: r.try_get(11)?,
        incarnation: r.try_get(12)?,
        last_seq: r.try_get(13)?,
        capture_ns: r.try_get(14)?,
        stored_ns: r.try_get(15)?,
        camera_ref: r.try_get(16)?,
    })
}

/// Events matching `f`, ordered by start time.
pub async fn events(db: &Db, f: &EventFilter) -> Result<Vec<EventOut>, DbError> {
    let refs = camera_refs(db, &f.cameras).await?;
    if refs.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut q = Sql::new(EVENT_COLUMNS);
    q.push(" WHERE 1 = 1");
    if let Some(refs) = &refs {
        push_in(&mut q, "e.camera_ref", refs);
    }
    if let Some(k) = f.kind {
        q.push(" AND e.kind = ").bind(k as i64);
    }
    if let Some(t) = f.track {
        // The time bounds are repeated inside so the track index reads one range.
        q.push(" AND e.id IN (SELECT event_ref FROM event_tracks WHERE track = ")
            .bind(t);
        if let Some(v) = f.from_ns {
            q.push(" AND start_ns >= ").bind(v);
        }
        if let Some(v) = f.to_ns {
            q.push(" AND start_ns < ").bind(v);
        }
        q.push(")");
    }
    if let Some(v) = f.from_ns {
        q.push(" AND e.start_ns >= ").bind(v);
    }
    if let Some(v) = f.to_ns {
        q.push(" AND e.start_ns < ").bind(v);
    }
    if let Some((start, id)) = f.after {
        q.push(" AND (e.start_ns > ")
            .bind(start)
            .push(" OR (e.start_ns = ")
            .bind(start)
            .push(" AND e.id > ")
            .bind(id)
            .push("))");
    }
    q.push(" ORDER BY e.start_ns, e.id LIMIT ").bind(f.limit);
    let rows = q.query().fetch_all(&db.pool).await?;
    rows.iter().map(event_row).collect()
}

/// One event by its natural key.
pub async fn event(
    db: &Db,
    venue: &str,
    box_id: &str,
    camera: &str,
    event_id: i64,
) -> Result<Option<EventOut>, DbError> {
    let sql = format!(
        "{EVENT_COLUMNS} WHERE c.venue = $1 AND c.box = $2 AND c.camera = $3 AND e.event_id = $4"
    );
    let row = sqlx::query(&sql)
        .bind(venue)
        .bind(box_id)
        .bind(camera)
        .bind(event_id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(event_row).transpose()
}

/// The capture time of the camera's thumbnail for a moment: the first taken at
/// or after `at_ns`, else the last before it; `None` when none is indexed.
pub async fn thumbnail_near(
    db: &Db,
    venue: &str,
    box_id: &str,
    camera: &str,
    at_ns: i64,
) -> Result<Option<i64>, DbError> {
    // Two probes of the (camera, time) key, each one index row.
    for (op, order) in [(">=", "ASC"), ("<", "DESC")] {
        let sql = format!(
            "SELECT t.capture_ns FROM thumbnails t JOIN cameras c ON c.id = t.camera_ref \
             WHERE c.venue = $1 AND c.box = $2 AND c.camera = $3 AND t.capture_ns {op} $4 \
             ORDER BY t.capture_ns {order} LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(venue)
            .bind(box_id)
            .bind(camera)
            .bind(at_ns)
            .fetch_optional(&db.pool)
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.try_get(0)?));
        }
    }
    Ok(None)
}

/// One frame's metadata as the API returns it.
#[derive(Debug, Serialize)]
pub struct FrameOut {
    pub venue: String,
    #[serde(rename = "box")]
    pub box_id: String,
    pub camera: String,
    pub incarnation: u64,
    pub seq: u64,
    pub capture_ns: u64,
    pub frame_seq: u64,
    pub width: u32,
    pub height: u32,
    pub format: venue_proto::PixelFormat,
    pub stats: venue_proto::FrameStats,
    pub detections: Vec<venue_proto::Detection>,
}

/// Per-frame metadata of the matching cameras in `[from_ns, to_ns)`, by capture time.
pub async fn frames(
    db: &Db,
    cameras: &CameraFilter,
    from_ns: Option<i64>,
    to_ns: Option<i64>,
    limit: i64,
) -> Result<Vec<FrameOut>, DbError> {
    let refs = camera_refs(db, cameras).await?;
    if refs.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut q = Sql::new("SELECT f.payload FROM frames f WHERE 1 = 1");
    if let Some(refs) = &refs {
        push_in(&mut q, "f.camera_ref", refs);
    }
    if let Some(v) = from_ns {
        q.push(" AND f.capture_ns >= ").bind(v);
    }
    if let Some(v) = to_ns {
        q.push(" AND f.capture_ns < ").bind(v);
    }
    q.push(" ORDER BY f.capture_ns, f.stream_ref, f.seq LIMIT ")
        .bind(limit);
    let rows = q.query().fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let payload: Vec<u8> = r.try_get(0)?;
        // Stored payloads were validated on the way in; one that no longer decodes
        // (a newer schema written by another instance) is skipped, not fatal.
        let Ok(m) = venue_proto::decode::<FrameMeta>(&payload) else {
            continue;
        };
        out.push(FrameOut {
            venue: m.header.venue.to_string(),
            box_id: m.header.box_id.to_string(),
            camera: m.header.camera.to_string(),
            incarnation: m.header.incarnation,
            seq: m.header.seq,
            capture_ns: m.header.capture_ns,
            frame_seq: m.frame_seq,
            width: m.width,
            height: m.height,
            format: m.format,
            stats: m.stats,
            detections: m.detections,
        });
    }
    Ok(out)
}

/// Delivery statistics of one stream incarnation.
#[derive(Debug, Serialize)]
pub struct StreamStats {
    pub stream: &'static str,
    pub incarnation: i64,
    /// Next sequence expected: everything below is stored or declared lost.
    pub next_seq: i64,
    pub stored: i64,
    /// Records the box declared lost (gap notices).
    pub lost: i64,
    /// Records before the first one this ingest saw (acknowledged elsewhere).
    pub skipped: i64,
    pub gap_notices: i64,
    pub first_capture_ns: Option<i64>,
    pub last_capture_ns: Option<i64>,
    pub last_stored_ns: Option<i64>,
    /// Records per second of capture time over the stream's span.
    pub rate_per_s: Option<f64>,
    /// Capture of the newest record to its storage, ms.
    pub lag_ms: Option<f64>,
}

/// Statistics of one camera: its streams and the newest health it reported.
#[derive(Debug, Serialize)]
pub struct CameraStats {
    pub venue: String,
    #[serde(rename = "box")]
    pub box_id: String,
    pub camera: String,
    pub streams: Vec<StreamStats>,
    /// The newest health report (state, fps, and per stream the box's own ack lag
    /// and losses), when one arrived.
    pub health: Option<Health>,
}

pub async fn stats(db: &Db, cameras: &CameraFilter) -> Result<Vec<CameraStats>, DbError> {
    let refs = camera_refs(db, cameras).await?;
    let mut q = Sql::new(
        "SELECT c.id, c.venue, c.box, c.camera, h.payload FROM cameras c \
         LEFT JOIN health h ON h.camera_ref = c.id WHERE 1 = 1",
    );
    if let Some(refs) = &refs {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        push_in(&mut q, "c.id", refs);
    }
    q.push(" ORDER BY c.venue, c.box, c.camera");
    let cams = q.query().fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(cams.len());
    for c in &cams {
        let id: i64 = c.try_get(0)?;
        let payload: Option<Vec<u8>> = c.try_get(4)?;
        let rows = sqlx::query(
            "SELECT s.kind, s.incarnation, s.next_seq, s.stored, s.lost, s.skipped, \
             (SELECT COUNT(*) FROM gaps g WHERE g.stream_ref = s.id), \
             s.first_capture_ns, s.last_capture_ns, s.last_stored_ns \
             FROM streams s WHERE s.camera_ref = $1 ORDER BY s.kind, s.incarnation",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
        let mut streams = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind: i64 = r.try_get(0)?;
            let stored: i64 = r.try_get(3)?;
            let first: Option<i64> = r.try_get(7)?;
            let last: Option<i64> = r.try_get(8)?;
            let last_stored: Option<i64> = r.try_get(9)?;
            let rate = match (first, last) {
                (Some(a), Some(b)) if b > a && stored > 1 => {
                    Some((stored - 1) as f64 / ((b - a) as f64 / 1e9))
                }
                _ => None,
            };
            streams.push(StreamStats {
                stream: venue_proto::StreamKind::ALL
                    .into_iter()
                    .find(|k| *k as i64 == kind)
                    .map_or("other", venue_proto::StreamKind::as_str),
                incarnation: r.try_get(1)?,
                next_seq: r.try_get(2)?,
                stored,
                lost: r.try_get(4)?,
                skipped: r.try_get(5)?,
                gap_notices: r.try_get(6)?,
                first_capture_ns: first,
                last_capture_ns: last,
                last_stored_ns: last_stored,
                rate_per_s: rate,
                lag_ms: match (last, last_stored) {
                    (Some(c), Some(s)) => Some((s - c) as f64 / 1e6),
                    _ => None,
                },
            });
        }
        out.push(CameraStats {
            venue: c.try_get(1)?,
            box_id: c.try_get(2)?,
            camera: c.try_get(3)?,
            streams,
            health: payload.and_then(|p| venue_proto::decode::<Health>(&p).ok()),
        });
    }
    Ok(out)
}

/// Video chunks of a camera overlapping `[from_ns, to_ns]`, by time: (object,
/// starts with a keyframe).
pub async fn video_objects(
    db: &Db,
    camera_ref: i64,
    from_ns: i64,
    to_ns: i64,
) -> Result<Vec<(String, bool)>, DbError> {
    let rows = sqlx::query(
        "SELECT object, starts_with_keyframe FROM video_chunks \
         WHERE camera_ref = $1 AND end_ns >= $2 AND start_ns <= $3 \
         ORDER BY start_ns, stream_ref, seq",
    )
    .bind(camera_ref)
    .bind(from_ns)
    .bind(to_ns)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{self, Batch};

    #[test]
    fn a_moments_thumbnail_is_the_first_at_or_after_it_else_the_last_before() {
        let dir = std::env::temp_dir().join(format!("ingest-thumbs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite:{}", dir.join("t.db").display());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let db = Db::connect(&url).await.expect("db");
            let id = |s| venue_proto::Id::new(s).expect("id");
            let cam = store::upsert_camera(&db, &id("v"), &id("b"), &id("c"), 0)
                .await
                .expect("camera");
            let near = |at| thumbnail_near(&db, "v", "b", "c", at);
            assert_eq!(near(5).await.expect("query"), None, "nothing indexed yet");
            let mut batch = Batch::default();
            batch.thumbnails = vec![(cam, 100), (cam, 200), (cam, 300)];
            store::write(&db, &batch, 0).await.expect("write");
            // Written twice (a resend): still one row each.
            store::write(&db, &batch, 0).await.expect("rewrite");
            assert_eq!(near(5).await.expect("query"), Some(100));
            assert_eq!(near(200).await.expect("query"), Some(200));
            assert_eq!(near(201).await.expect("query"), Some(300));
            assert_eq!(near(301).await.expect("query"), Some(300));
            let other = thumbnail_near(&db, "v", "b", "other", 5)
                .await
                .expect("query");
            assert_eq!(other, None, "another camera's pictures are not this one's");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
