//! Spooled streams over MQTT: a sender per stream reads the spool from the MQTT
//! ack cursor and publishes QoS 1, go-back-N like the zenoh sender; acks arriving
//! on `venue/{venue}/{box}/+/ack` move that cursor. The spool deletes a record only
//! once every transport carrying its stream has acknowledged it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};
use venue_proto::{Ack, Gap, GapReason, Header, SCHEMA_VERSION, StreamKey, StreamKind, Timecode};

use super::{AckRoute, Inner, Mqtt};
use crate::metrics::{Metrics, ResultLabels};
use crate::spool::{Pos, Read, StreamHandle, Transport};

/// Records published ahead of the last MQTT ack, per stream. Half the client's
/// request queue, so that health (one message per camera) always finds room.
const WINDOW: u64 = super::REQUEST_QUEUE as u64 / 2;
/// A full client queue or a failed spool read is retried after this.
const RETRY: Duration = Duration::from_millis(50);

/// Applies an ack received over MQTT; anything malformed or addressed elsewhere is
/// counted and ignored.
pub(super) fn on_ack(route: &AckRoute, metrics: &Metrics, topic: &str, payload: &[u8]) {
    match route_ack(route, topic, payload) {
        Ok((h, ack)) => {
            metrics
                .acks
                .get_or_create(&ResultLabels { result: "accepted" })
                .inc();
            // Deleting acknowledged segments is file I/O: off the event loop.
            tokio::task::spawn_blocking(move || {
                h.ack_by(Transport::Mqtt, ack.acked_incarnation, ack.acked_seq);
            });
        }
        Err(reason) => {
            let n = metrics
                .acks
                .get_or_create(&ResultLabels { result: "rejected" })
                .inc()
                + 1;
            if n % 100 == 1 {
                warn!(%topic, %reason, rejected = n, "MQTT ack ignored");
            }
        }
    }
}

fn route_ack(route: &AckRoute, topic: &str, payload: &[u8]) -> Result<(StreamHandle, Ack), String> {
    let k = StreamKey::parse(topic).map_err(|e| e.to_string())?;
    if k.stream != StreamKind::Ack {
        return Err(format!("not an ack topic ({})", k.stream));
    }
    let ack: Ack = venue_proto::decode(payload).map_err(|e| e.to_string())?;
    if k.venue != route.venue || k.box_id != route.box_id || ack.header.camera != k.camera {
        return Err("ack addressed to another box or camera".into());
    }
    if ack.stream != StreamKind::Event {
        return Err(format!("stream {} is not carried over MQTT", ack.stream));
    }
    match route.spool.existing(&k.camera, ack.stream) {
        Some(h) => Ok((h, ack)),
        None => Err(format!("no {} stream for camera {}", ack.stream, k.camera)),
    }
}

/// Publishes one spooled stream over MQTT until the uplink stops.
pub(super) async fn send_loop(mqtt: Arc<Mqtt>, h: StreamHandle) {
    let id = h.id().clone();
    let topic = StreamKey::new(
        mqtt.venue.clone(),
        mqtt.box_id.clone(),
        id.camera.clone(),
        id.kind,
    )
    .to_string();
    let gap_topic = StreamKey::new(
        mqtt.venue.clone(),
        mqtt.box_id.clone(),
        id.camera.clone(),
        StreamKind::Gap,
    )
    .to_string();
    let inner: &Inner = &mqtt.inner;
    let stream = id.kind.as_str();
    let window = mqtt.uplink.window.min(WINDOW);
    let base_resend = mqtt.uplink.resend_after;
    let mut connections = inner.connections.subscribe();
    let mut seen_connection = *connections.borrow_and_update();
    let mut cursor: Option<Pos> = None;
    let mut last_first: Option<Pos> = None;
    let mut stalled_since = Instant::now();
    let mut resend_after = base_resend;
    let mut gap_seq = 0u64;
    loop {
        if mqtt.stop.is_cancelled() {
            break;
        }
        let connection = *connections.borrow_and_update();
        if connection != seen_connection {
            // A new connection (clean session): whatever was in flight is gone.
            seen_connection = connection;
            cursor = None;
            stalled_since = Instant::now();
            resend_after = base_resend;
        }
        if !inner.lock().connected {
            tokio::select! {
                _ = connections.changed() => {}
                () = mqtt.stop.cancelled() => break,
            }
            continue;
        }
        let Some(first) = h.first_unacked_by(Transport::Mqtt) else {
            cursor = None;
            wait(&mqtt, &h, &mut connections, None).await;
            continue;
        };
        if last_first != Some(first) {
            last_first = Some(first);
            stalled_since = Instant::now();
            resend_after = base_resend;
        }
        let mut cur = cursor.map_or(first, |c| c.max(first));
        if cur > first && stalled_since.elapsed() >= resend_after {
            // No ack progress (consumer restarted or not subscribed yet): go back.
            debug!(stream = %id, from = ?first, "no MQTT ack progress; resending");
            cur = first;
            stalled_since = Instant::now();
            resend_after = (resend_after * 2).min(base_resend * 8);
        }
        let in_flight = if cur.incarnation == first.incarnation {
            cur.seq - first.seq
        } else {
            cur.seq + 1
        };
        let deadline = stalled_since + resend_after;
        if in_flight >= window {
            cursor = Some(cur);
            wait(&mqtt, &h, &mut connections, Some(deadline)).await;
            continue;
        }
        let max = (window - in_flight) as usize;
        let read = match h.read_cached(cur, max) {
            Some(r) => Ok(r),
            None => {
                let reader = h.clone();
                tokio::task::spawn_blocking(move || reader.read(cur, max))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
            }
        };
        match read {
            Ok(Read::Records(records)) => {
                let mut full = false;
                for r in records {
                    if !inner.try_send_spooled(topic.clone(), stream, r.payload.clone()) {
                        full = true;
                        break;
                    }
                    cur = Pos {
                        incarnation: r.pos.incarnation,
                        seq: r.pos.seq + 1,
                    };
                }
                cursor = Some(cur);
                if full {
                    tokio::time::sleep(RETRY).await;
                }
            }
            Ok(Read::Gap {
                incarnation,
                from,
                to,
            }) => {
                let notice = gap_notice(&mqtt, &h, gap_seq, incarnation, from, to);
                gap_seq += 1;
                if let Ok(bytes) = venue_proto::encode(&notice)
                    && inner.try_send_spooled(gap_topic.clone(), "gap", Bytes::from(bytes))
                {
                    warn!(stream = %id, incarnation, from, to, "records lost in the spool; MQTT receivers told");
                    cursor = Some(Pos {
                        incarnation,
                        seq: to,
                    });
                } else {
                    cursor = Some(cur);
                    tokio::time::sleep(RETRY).await;
                }
            }
            Ok(Read::Empty) => {
                cursor = Some(cur);
                let until = (cur > first).then_some(deadline);
                wait(&mqtt, &h, &mut connections, until).await;
            }
            Err(error) => {
                warn!(stream = %id, %error, "spool read for MQTT failed");
                cursor = Some(cur);
                tokio::time::sleep(RETRY * 2).await;
            }
        }
    }
    info!(stream = %id, "MQTT sender stopped");
}

/// Waits for an append or MQTT ack on the stream, a new connection, the deadline
/// or shutdown.
async fn wait(
    mqtt: &Mqtt,
    h: &StreamHandle,
    connections: &mut tokio::sync::watch::Receiver<u64>,
    deadline: Option<Instant>,
) {
    let sleep = async {
        match deadline {
            Some(d) => tokio::time::sleep(d.saturating_duration_since(Instant::now())).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = h.changed_for(Transport::Mqtt) => {}
        _ = connections.changed() => {}
        () = sleep => {}
        () = mqtt.stop.cancelled() => {}
    }
}

fn gap_notice(
    mqtt: &Mqtt,
    h: &StreamHandle,
    seq: u64,
    incarnation: u64,
    from: u64,
    to: u64,
) -> Gap {
    let now = mqtt.clock.unix_ns();
    Gap {
        header: Header {
            schema: SCHEMA_VERSION,
            venue: mqtt.venue.clone(),
            box_id: mqtt.box_id.clone(),
            camera: h.id().camera.clone(),
            incarnation: h.end().incarnation,
            seq,
            capture_ns: now,
            timecode: Timecode::from_unix_ns(now, 30),
        },
        stream: h.id().kind,
        incarnation,
        first_seq: from,
        end_seq: to,
        reason: GapReason::Damaged,
    }
}
