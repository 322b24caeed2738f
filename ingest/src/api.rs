//! The HTTP API (JSON; specified in `docs/api.yaml`): cameras seen, events,
//! per-frame metadata, clips and stream statistics. Read-only.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use venue_proto::Id;

use crate::db::{Db, DbError};
use crate::ingest::Counters;
use crate::objects::{ObjectError, Objects};
use crate::query::{self, CameraFilter, EVENT_KINDS, EventFilter};

/// Largest page any list endpoint returns.
pub const MAX_LIMIT: i64 = 10_000;
/// Video before an event's start and after its end that a clip includes.
const CLIP_PREROLL_NS: i64 = 2_000_000_000;
const CLIP_POSTROLL_NS: i64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub objects: Objects,
    pub counters: Arc<Counters>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/ingest", get(ingest_counters))
        .route("/api/v1/venues", get(venues))
        .route("/api/v1/events", get(events))
        .route(
            "/api/v1/events/{venue}/{box}/{camera}/{event_id}",
            get(event),
        )
        .route(
            "/api/v1/events/{venue}/{box}/{camera}/{event_id}/clip",
            get(clip),
        )
        .route(
            "/api/v1/events/{venue}/{box}/{camera}/{event_id}/thumbnail",
            get(thumbnail),
        )
        .route(
            "/api/v1/events/{venue}/{box}/{camera}/{event_id}/composite",
            get(composite),
        )
        .route("/api/v1/frames", get(frames))
        .route("/api/v1/stats", get(stats))
        .with_state(state)
}

/// An error answer: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, msg.into())
    }
    fn not_found(msg: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::warn!(error = %e, "query failed");
        Self(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}"))
    }
}

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> Self {
        tracing::warn!(error = %e, "object read failed");
        Self(StatusCode::SERVICE_UNAVAILABLE, format!("objects: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "venue-ingest: the data API (docs/api.yaml)\n\
         GET /api/v1/venues   venues, boxes and cameras seen\n\
         GET /api/v1/events   key-moment events (?venue&box&camera&kind&track&from_ns&to_ns&limit&after)\n\
         GET /api/v1/frames   per-frame metadata (?venue&box&camera&from_ns&to_ns&limit)\n\
         GET /api/v1/stats    stream statistics (?venue&box&camera)\n\
         GET /api/v1/ingest   this instance's counters\n",
    )
}

async fn ingest_counters(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(s.counters.snapshot())
}

#[derive(Serialize)]
struct BoxOut {
    #[serde(rename = "box")]
    box_id: String,
    cameras: Vec<query::CameraSeen>,
}

#[derive(Serialize)]
struct VenueOut {
    venue: String,
    boxes: Vec<BoxOut>,
}

async fn venues(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let mut venues: Vec<VenueOut> = Vec::new();
    for c in query::cameras(&s.db).await? {
        if venues.last().is_none_or(|v| v.venue != c.venue) {
            venues.push(VenueOut {
                venue: c.venue.clone(),
                boxes: Vec::new(),
            });
        }
        let Some(v) = venues.last_mut() else { continue };
        if v.boxes.last().is_none_or(|b| b.box_id != c.box_id) {
            v.boxes.push(BoxOut {
                box_id: c.box_id.clone(),
                cameras: Vec::new(),
            });
        }
        if let Some(b) = v.boxes.last_mut() {
            b.cameras.push(c);
        }
    }
    Ok(Json(serde_json::json!({ "venues": venues })))
}

/// Query parameters shared by the list endpoints. Everything arrives as text and
/// is checked here, so every mistake gets a message naming the parameter.
#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    venue: Option<String>,
    #[serde(rename = "box")]
    box_id: Option<String>,
    camera: Option<String>,
    kind: Option<String>,
    track: Option<String>,
    from_ns: Option<String>,
    to_ns: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

fn id_param(name: &str, v: &Option<String>) -> ApiResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(s) => Id::new(s)
            .map(|_| Some(s.clone()))
            .map_err(|e| ApiError::bad(format!("{name}: {e}"))),
    }
}

fn int_param(name: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "{name}: expected a non-negative integer, got {s:?}"
                ))
            }),
    }
}

impl ListParams {
    fn cameras(&self) -> ApiResult<CameraFilter> {
        Ok(CameraFilter {
            venue: id_param("venue", &self.venue)?,
            box_id: id_param("box", &self.box_id)?,
            camera: id_param("camera", &self.camera)?,
        })
    }

    fn limit(&self, default: i64) -> ApiResult<i64> {
        match int_param("limit", &self.limit)? {
            None => Ok(default),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad(format!(
                "limit: {n} is not within 1-{MAX_LIMIT}"
            ))),
        }
    }
}

async fn events(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let kind = match &p.kind {
        None => None,
        Some(k) => Some(
            EVENT_KINDS
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    let names: Vec<&str> = EVENT_KINDS.iter().map(|(n, _)| *n).collect();
                    ApiError::bad(format!(
                        "kind: unknown {k:?}; expected one of {}",
                        names.join(", ")
                    ))
                })?,
        ),
    };
    let after = match &p.after {
        None => None,
        Some(a) => Some(
            a.split_once(':')
                .and_then(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad(format!(
                        "after: expected the `next` value of a previous page, got {a:?}"
                    ))
                })?,
        ),
    };
    let f = EventFilter {
        cameras: p.cameras()?,
        kind,
        track: int_param("track", &p.track)?,
        from_ns: int_param("from_ns", &p.from_ns)?,
        to_ns: int_param("to_ns", &p.to_ns)?,
        after,
        limit: p.limit(1000)?,
    };
    let list = query::events(&s.db, &f).await?;
    let next = if list.len() as i64 == f.limit {
        list.last().map(|e| format!("{}:{}", e.start_ns, e.row_id))
    } else {
        None
    };
    Ok(Json(serde_json::json!({ "events": list, "next": next })))
}

type EventPath = Path<(String, String, String, String)>;

async fn find_event(
    s: &AppState,
    path: (String, String, String, String),
) -> ApiResult<query::EventOut> {
    let (venue, box_id, camera, event_id) = path;
    for (name, v) in [("venue", &venue), ("box", &box_id), ("camera", &camera)] {
        Id::new(v).map_err(|e| ApiError::bad(format!("{name}: {e}")))?;
    }
    let id = int_param("event_id", &Some(event_id))?.unwrap_or(0);
    query::event(&s.db, &venue, &box_id, &camera, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id} from {venue}/{box_id}/{camera}")))
}

async fn event(
    State(s): State<AppState>,
    Path(path): EventPath,
) -> ApiResult<Json<query::EventOut>> {
    let mut e = find_event(&s, path).await?;
    let key = crate::ingest::clip_object(&e.venue, &e.box_id, &e.camera, e.event_id as u64);
    e.clip = Some(if s.objects.exists(&key).await? {
        "mp4"
    } else {
        "chunks"
    });
    Ok(Json(e))
}

/// The event's video. The MP4 clip the box cut for the event when it has arrived
/// (served with `Range` support, which browsers need to seek); otherwise the
/// H.264/H.265 Annex-B stream of the chunks around it, starting at the first chunk
/// that opens with a keyframe (so it plays).
async fn clip(
    State(s): State<AppState>,
    Path(path): EventPath,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let e = find_event(&s, path).await?;
    let key = crate::ingest::clip_object(&e.venue, &e.box_id, &e.camera, e.event_id as u64);
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    if let Some(r) = serve_object(&s.objects, &key, "video/mp4", range).await? {
        return Ok(r);
    }
    let end = e.end_ns.unwrap_or(e.start_ns);
    let chunks = query::video_objects(
        &s.db,
        e.camera_ref,
        e.start_ns.saturating_sub(CLIP_PREROLL_NS),
        end.saturating_add(CLIP_POSTROLL_NS),
    )
    .await?;
    // From the first stored chunk that opens with a keyframe; the rest are
    // opened one at a time as the body is sent, so minutes of video are never
    // held whole (a chunk gone from the store since is left out).
    let mut objects = chunks
        .into_iter()
        .skip_while(|(_, keyframe)| !keyframe)
        .map(|(object, _)| object);
    let first = loop {
        let Some(object) = objects.next() else {
            return Err(ApiError::not_found(format!(
                "no clip and no video stored around event {} of {}/{}/{}",
                e.event_id, e.venue, e.box_id, e.camera
            )));
        };
        if let Some(read) = s.objects.open_read(&object).await? {
            break read;
        }
    };
    let store = s.objects.clone();
    let rest = futures::stream::iter(objects)
        .then(move |object| {
            let store = store.clone();
            async move { store.open_read(&object).await }
        })
        .filter_map(|read| async move {
            match read {
                Ok(Some(read)) => Some(Ok(read.into_stream().map_err(std::io::Error::other))),
                Ok(None) => None,
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        })
        .try_flatten();
    let body = first
        .into_stream()
        .map_err(std::io::Error::other)
        .chain(rest);
    Ok((
        [(header::CONTENT_TYPE, "video/h264")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ranged {
    /// All of it (200): no `Range`, several ranges at once, or a `Range` that
    /// does not parse, which RFC 9110 allows (no multipart replies).
    Whole,
    /// One range, first and last byte (206).
    Part { first: u64, last: u64 },
    /// A range past the end (416, with the size).
    Unsatisfiable,
}

fn plan_range(len: u64, range: Option<&str>) -> Ranged {
    let Some(parsed) = range.and_then(|r| http_range_header::parse_range_header(r).ok()) else {
        return Ranged::Whole;
    };
    match parsed.validate(len) {
        Ok(ranges) if ranges.len() == 1 => Ranged::Part {
            first: *ranges[0].start(),
            last: *ranges[0].end(),
        },
        Ok(_) => Ranged::Whole,
        Err(_) => Ranged::Unsatisfiable,
    }
}

/// The object at `key` as a whole (200, streamed as it is read) or the one byte
/// range asked for (206, only those bytes read); a range past the end is 416 with
/// the size. `None` when there is no such object. Clips are megabytes and a
/// browser seeking asks for many small ranges: none of it is held whole.
async fn serve_object(
    objects: &Objects,
    key: &str,
    content_type: &'static str,
    range: Option<&str>,
) -> ApiResult<Option<Response>> {
    let Some(len) = objects.size(key).await? else {
        return Ok(None);
    };
    let headers = |extra: Option<String>| {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        h.insert(
            header::ACCEPT_RANGES,
            header::HeaderValue::from_static("bytes"),
        );
        if let Some(v) = extra.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
            h.insert(header::CONTENT_RANGE, v);
        }
        h
    };
    let response = match plan_range(len, range) {
        Ranged::Whole => {
            let Some(read) = objects.open_read(key).await? else {
                return Ok(None);
            };
            let mut h = headers(None);
            h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
            (h, axum::body::Body::from_stream(read.into_stream())).into_response()
        }
        Ranged::Part { first, last } => {
            let Some(part) = objects.get_range(key, first..last + 1).await? else {
                return Ok(None);
            };
            (
                StatusCode::PARTIAL_CONTENT,
                headers(Some(format!("bytes {first}-{last}/{len}"))),
                part,
            )
                .into_response()
        }
        Ranged::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response(),
    };
    Ok(Some(response))
}

/// The event's strobe composite (jumps), as the box made it.
async fn composite(State(s): State<AppState>, Path(path): EventPath) -> ApiResult<Response> {
    let e = find_event(&s, path).await?;
    let key = crate::ingest::composite_object(&e.venue, &e.box_id, &e.camera, e.event_id as u64);
    match s.objects.get(&key).await? {
        Some(png) => Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response()),
        None => Err(ApiError::not_found(format!(
            "no composite stored for event {} of {}/{}/{} (the box makes them for jumps)",
            e.event_id, e.venue, e.box_id, e.camera
        ))),
    }
}

/// The camera's thumbnail of the event's moment: the first taken at or after the
/// event's start, else the last before it.
async fn thumbnail(State(s): State<AppState>, Path(path): EventPath) -> ApiResult<Response> {
    let e = find_event(&s, path).await?;
    let indexed = query::thumbnail_near(&s.db, &e.venue, &e.box_id, &e.camera, e.start_ns).await?;
    let chosen = match indexed {
        Some(at) => Some(crate::ingest::thumbnail_object(
            &e.venue,
            &e.box_id,
            &e.camera,
            at.max(0) as u64,
        )),
        // Nothing indexed: a store written before the index, found by listing.
        None => {
            let prefix = crate::ingest::thumbnail_prefix(&e.venue, &e.box_id, &e.camera);
            let mut keys = s.objects.list(&prefix).await?;
            keys.sort();
            let start = crate::ingest::thumbnail_object(
                &e.venue,
                &e.box_id,
                &e.camera,
                e.start_ns.max(0) as u64,
            );
            match keys.iter().position(|k| *k >= start) {
                Some(i) => Some(keys.swap_remove(i)),
                None => keys.pop(),
            }
        }
    };
    let found = match chosen {
        Some(k) => s.objects.get(&k).await?,
        None => None,
    };
    match found {
        Some(jpeg) => Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()),
        None => Err(ApiError::not_found(format!(
            "no thumbnail stored for {}/{}/{}",
            e.venue, e.box_id, e.camera
        ))),
    }
}

async fn frames(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let cameras = p.cameras()?;
    if cameras.camera.is_none() {
        return Err(ApiError::bad(
            "camera: required (with venue and box) for frame queries",
        ));
    }
    let limit = p.limit(1000)?;
    let list = query::frames(
        &s.db,
        &cameras,
        int_param("from_ns", &p.from_ns)?,
        int_param("to_ns", &p.to_ns)?,
        limit,
    )
    .await?;
    // The next page starts after the last frame's capture time.
    let next_from_ns = if list.len() as i64 == limit {
        list.last().map(|f| f.capture_ns + 1)
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "frames": list, "next_from_ns": next_from_ns }),
    ))
}

async fn stats(
    State(s): State<AppState>,
    Query(p): Query<ListParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let list = query::stats(&s.db, &p.cameras()?).await?;
    Ok(Json(serde_json::json!({ "cameras": list })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// `GET` of a 10-byte object `0123456789`, from a local object store.
    async fn reply(range: Option<&str>) -> (StatusCode, Option<String>, Vec<u8>) {
        let dir = std::env::temp_dir().join(format!(
            "venue-ingest-ranges-{}-{}",
            std::process::id(),
            range.unwrap_or("none").replace(['=', ',', '-'], "_")
        ));
        let objects = Objects::local(&dir).expect("object dir");
        objects
            .put("clips/a.mp4", Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        let r = serve_object(&objects, "clips/a.mp4", "video/mp4", range)
            .await
            .ok()
            .flatten()
            .expect("the object is there");
        let _ = std::fs::remove_dir_all(&dir);
        let status = r.status();
        let content_range = r
            .headers()
            .get(header::CONTENT_RANGE)
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let body = axum::body::to_bytes(r.into_body(), 1024)
            .await
            .unwrap_or_default();
        (status, content_range, body.to_vec())
    }

    /// Browsers seek in an MP4 with `Range`: one range gets 206 and exactly those
    /// bytes, a range past the end 416 with the size; several ranges or a header
    /// that does not parse get the whole body.
    #[tokio::test]
    async fn byte_ranges() {
        assert_eq!(
            reply(None).await,
            (StatusCode::OK, None, b"0123456789".to_vec())
        );
        assert_eq!(
            reply(Some("bytes=2-5")).await,
            (
                StatusCode::PARTIAL_CONTENT,
                Some("bytes 2-5/10".into()),
                b"2345".to_vec()
            )
        );
        assert_eq!(
            reply(Some("bytes=7-")).await,
            (
                StatusCode::PARTIAL_CONTENT,
                Some("bytes 7-9/10".into()),
                b"789".to_vec()
            )
        );
        assert_eq!(
            reply(Some("bytes=-3")).await,
            (
                StatusCode::PARTIAL_CONTENT,
                Some("bytes 7-9/10".into()),
                b"789".to_vec()
            )
        );
        assert_eq!(
            reply(Some("bytes=20-30")).await,
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                Some("bytes */10".into()),
                Vec::new()
            )
        );
        assert_eq!(
            reply(Some("bytes=0-1,4-5")).await.0,
            StatusCode::OK,
            "several ranges: the whole body"
        );
        assert_eq!(reply(Some("pages=1")).await.2, b"0123456789".to_vec());
        let objects = Objects::local(&std::env::temp_dir().join("venue-ingest-ranges-empty"))
            .expect("object dir");
        assert!(
            serve_object(&objects, "clips/none.mp4", "video/mp4", None)
                .await
                .ok()
                .flatten()
                .is_none(),
            "no object, no reply (the caller says 404 and why)"
        );
    }

    /// Every route of the router is specified in `docs/api.yaml`.
    #[test]
    fn openapi_lists_every_route() {
        let spec = include_str!("../../docs/api.yaml");
        let source = include_str!("api.rs");
        let routes: Vec<&str> = source
            .match_indices("\"/")
            .filter_map(|(i, _)| source[i + 1..].split('"').next())
            .filter(|r| (r.starts_with("/api/v1/") && r.len() > 8) || *r == "/healthz")
            .collect();
        assert!(routes.len() >= 9, "{routes:?}");
        for r in routes {
            assert!(spec.contains(&format!("  {r}:")), "docs/api.yaml lacks {r}");
        }
    }
}
