//! A camera's queryables: `venue/{venue}/{box}/{camera}/clip` (an event's clip, or
//! a time range still in the ring, as a `Clip`) and `…/snapshot` (the next frame as
//! a full-size JPEG in a `Thumbnail`). Bad parameters get an error reply saying why.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use venue_proto::{ImageFormat, Thumbnail};
use zenoh::query::Query;

use super::stage::{CameraVideo, clip_record};
use crate::camera::Shared;

/// Longest wait for the next frame of a snapshot request.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// The key of one of a camera's queryables (`clip`, `snapshot`).
pub fn query_key(shared: &Shared, camera: &venue_proto::Id, what: &str) -> String {
    format!(
        "{}/{}/{}/{camera}/{what}",
        venue_proto::key::ROOT,
        shared.venue,
        shared.box_id
    )
}

/// Answers the camera's queries until `cancel`.
pub async fn serve(shared: Arc<Shared>, video: Arc<CameraVideo>, cancel: CancellationToken) {
    let camera = video.camera.clone();
    let clip_key = query_key(&shared, &camera, "clip");
    let snap_key = query_key(&shared, &camera, "snapshot");
    let (clips, snaps) = match (
        shared.session.declare_queryable(&clip_key).await,
        shared.session.declare_queryable(&snap_key).await,
    ) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(error), _) | (_, Err(error)) => {
            warn!(camera = %camera, %error, "clip and snapshot queries disabled");
            return;
        }
    };
    let snapshot_seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        tokio::select! {
            q = clips.recv_async() => match q {
                Ok(q) => { tokio::spawn(answer_clip(Arc::clone(&shared), Arc::clone(&video), q)); }
                Err(_) => break,
            },
            q = snaps.recv_async() => match q {
                Ok(q) => { tokio::spawn(answer_snapshot(Arc::clone(&shared), Arc::clone(&video), Arc::clone(&snapshot_seq), q)); }
                Err(_) => break,
            },
            () = cancel.cancelled() => break,
        }
    }
}

async fn reply_err(q: &Query, why: String) {
    debug!(key = %q.key_expr(), %why, "query refused");
    if let Err(error) = q.reply_err(why).await {
        debug!(%error, "error reply not sent");
    }
}

fn number(q: &Query, key: &str) -> Result<Option<u64>, String> {
    match q.parameters().get(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{key}={v:?} is not a whole number")),
    }
}

async fn answer_clip(shared: Arc<Shared>, video: Arc<CameraVideo>, q: Query) {
    let params = (
        number(&q, "event"),
        number(&q, "start_ns"),
        number(&q, "end_ns"),
    );
    let clip = match params {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        (Ok(Some(id)), Ok(None), Ok(None)) => video.event_clip(id).map(|c| (*c).clone()).ok_or_else(|| {
            format!("no clip for event {id}: not ended yet, never seen, or no longer kept (the box keeps {})", video.config.clips_kept)
        }),
        (Ok(None), Ok(Some(start)), Ok(Some(end))) => {
            let v = Arc::clone(&video);
            tokio::task::spawn_blocking(move || v.range_clip(start, end))
                .await
                .unwrap_or_else(|e| Err(format!("clip task failed: {e}")))
        }
        _ => Err("expected event=ID, or start_ns=A;end_ns=B (Unix ns)".into()),
    };
    let (clip, info) = match (clip, video.info()) {
        (Ok(c), Some(info)) => (c, info),
        (Err(why), _) => return reply_err(&q, why).await,
        (Ok(_), None) => return reply_err(&q, "this camera has no video yet".into()).await,
    };
    let seq = video.clip_seq.fetch_add(1, Ordering::Relaxed);
    let header = shared.header(
        &video.camera,
        shared.incarnation,
        seq,
        clip.start_ns,
        info.fps,
    );
    match venue_proto::encode(&clip_record(header, info, &clip)) {
        Ok(bytes) => {
            if let Err(error) = q.reply(q.key_expr().clone(), bytes).await {
                debug!(%error, "clip reply not sent");
            }
        }
        Err(e) => reply_err(&q, format!("encoding the clip: {e}")).await,
    }
}

async fn answer_snapshot(
    shared: Arc<Shared>,
    video: Arc<CameraVideo>,
    seq: Arc<std::sync::atomic::AtomicU64>,
    q: Query,
) {
    let rx = video.request_snapshot();
    let snap = match tokio::time::timeout(SNAPSHOT_WAIT, rx).await {
        Ok(Ok(Ok(s))) => s,
        Ok(Ok(Err(why))) => return reply_err(&q, why).await,
        Ok(Err(_)) | Err(_) => {
            return reply_err(
                &q,
                format!(
                    "no raw frame from this camera within {} s",
                    SNAPSHOT_WAIT.as_secs()
                ),
            )
            .await;
        }
    };
    let header = shared.header(
        &video.camera,
        shared.incarnation,
        seq.fetch_add(1, Ordering::Relaxed),
        snap.capture_ns,
        snap.fps,
    );
    let msg = Thumbnail {
        header,
        frame_seq: snap.frame_seq,
        width: snap.width,
        height: snap.height,
        format: ImageFormat::Jpeg,
        image: snap.jpeg,
    };
    match venue_proto::encode(&msg) {
        Ok(bytes) => {
            if let Err(error) = q.reply(q.key_expr().clone(), bytes).await {
                debug!(%error, "snapshot reply not sent");
            }
        }
        Err(e) => reply_err(&q, format!("encoding the snapshot: {e}")).await,
    }
}
