//! A tagged camera's `composite` queryable: `venue/{venue}/{box}/{camera}/composite`
//! with `track=T;start_ns=A;end_ns=B` answers a strobe composite of that track over
//! that span, cut from the frames the camera's `tag` thread still holds (about the
//! longest jump airtime plus a second), as a `Composite` whose `event_id` is 0. Bad
//! parameters, an unknown track or a span no longer held get an error reply saying
//! why.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use venue_proto::Id;
use zenoh::query::Query;

use crate::camera::Shared;
use crate::tag_stage::{self, StrobeRequests};

/// Longest wait for the `tag` thread's next frame.
const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// The request a selector's parameters make: (track, start_ns, end_ns).
pub fn parse(params: &zenoh::query::Parameters<'_>) -> Result<(u64, u64, u64), String> {
    let number = |key: &str| -> Result<u64, String> {
        let v = params
            .get(key)
            .ok_or_else(|| "expected track=T;start_ns=A;end_ns=B (Unix ns)".to_string())?;
        v.parse()
            .map_err(|_| format!("{key}={v:?} is not a whole number"))
    };
    let (track, start, end) = (number("track")?, number("start_ns")?, number("end_ns")?);
    if end <= start {
        return Err(format!("end_ns {end} is not after start_ns {start}"));
    }
    Ok((track, start, end))
}

/// Answers the camera's composite queries until `cancel`.
pub async fn serve(
    shared: Arc<Shared>,
    camera: Id,
    fps: u32,
    requests: Arc<StrobeRequests>,
    cancel: CancellationToken,
) {
    let key = format!(
        "{}/{}/{}/{camera}/composite",
        venue_proto::key::ROOT,
        shared.venue,
        shared.box_id
    );
    let queryable = match shared.session.declare_queryable(&key).await {
        Ok(q) => q,
        Err(error) => {
            warn!(camera = %camera, %error, "composite queries disabled");
            return;
        }
    };
    let seq = Arc::new(AtomicU64::new(0));
    loop {
        tokio::select! {
            q = queryable.recv_async() => match q {
                Ok(q) => {
                    tokio::spawn(answer(
                        Arc::clone(&shared),
                        camera.clone(),
                        fps,
                        Arc::clone(&requests),
                        Arc::clone(&seq),
                        q,
                    ));
                }
                Err(_) => break,
            },
            () = cancel.cancelled() => break,
        }
    }
}

async fn answer(
    shared: Arc<Shared>,
    camera: Id,
    fps: u32,
    requests: Arc<StrobeRequests>,
    seq: Arc<AtomicU64>,
    q: Query,
) {
    let result = match parse(q.parameters()) {
        Err(why) => Err(why),
        Ok((track, start, end)) => {
            match tokio::time::timeout(ANSWER_WAIT, requests.ask(track, start, end)).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) | Err(_) => Err(format!(
                    "the camera tagged no frame within {} s (stopped or not segmenting)",
                    ANSWER_WAIT.as_secs()
                )),
            }
        }
    };
    let bytes = result.and_then(|c| {
        let header = shared.header(
            &camera,
            shared.incarnation,
            seq.fetch_add(1, Ordering::Relaxed),
            c.start_ns,
            fps,
        );
        venue_proto::encode(&tag_stage::composite_record(header, &c))
            .map_err(|e| format!("encoding the composite: {e}"))
    });
    let sent = match bytes {
        Ok(b) => q.reply(q.key_expr().clone(), b).await,
        Err(why) => {
            debug!(camera = %camera, %why, "composite query refused");
            q.reply_err(why).await
        }
    };
    if let Err(error) = sent {
        debug!(camera = %camera, %error, "composite reply not sent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        let p = |s: &str| parse(&zenoh::query::Parameters::from(s));
        assert_eq!(p("track=3;start_ns=10;end_ns=20"), Ok((3, 10, 20)));
        assert!(
            p("track=3;start_ns=10")
                .unwrap_err()
                .contains("track=T;start_ns=A;end_ns=B")
        );
        assert!(
            p("track=x;start_ns=10;end_ns=20")
                .unwrap_err()
                .contains("track=\"x\"")
        );
        assert!(
            p("track=1;start_ns=20;end_ns=20")
                .unwrap_err()
                .contains("not after")
        );
    }
}
