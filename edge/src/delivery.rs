//! Delivery: one sender per spooled stream publishes its records on zenoh,
//! go-back-N against the cloud's end-to-end acks, and an ack listener feeds those
//! acks to the spool. Nothing here ever blocks capture: the pipeline only appends
//! to the spool.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use venue_drivers::Clock;
use venue_proto::{
    Ack, Gap, GapReason, Id, SCHEMA_VERSION, StreamKey, StreamKind, StreamUplink, Timecode,
};

use crate::config::UplinkConfig;
use crate::metrics::{Metrics, StreamLabels};
use crate::mqtt::Mqtt;
use crate::spool::{Pos, Read, Spool, StreamHandle, StreamId, Transport};
use crate::uplink;

/// Records read from the spool per batch.
const BATCH: u64 = 1024;

/// Streams whose records wait in the spool for an ack (the wire contract's list).
pub const SPOOLED: [StreamKind; 5] = StreamKind::SPOOLED;

/// Runs the senders and the ack listener.
#[derive(Debug)]
pub struct Delivery {
    session: zenoh::Session,
    spool: Spool,
    venue: Id,
    box_id: Id,
    cfg: UplinkConfig,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
    running: Mutex<HashSet<StreamId>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    gap_seq: AtomicU64,
    /// The MQTT uplink, which carries some spooled streams (events) too.
    mqtt: Option<Arc<Mqtt>>,
    /// Per stream, the oldest unacknowledged record's position and capture
    /// time as last read for the health report: while the cloud is away that
    /// record stays the oldest, and reading it again every report (a video
    /// chunk is hundreds of kB, from disk by then) would be disk work for
    /// nothing.
    oldest_unacked: Mutex<HashMap<StreamId, (Pos, u64)>>,
}

impl Delivery {
    /// Starts the ack listener and a sender for every stream already in the spool
    /// (records left by an earlier run are delivered first).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        session: zenoh::Session,
        spool: Spool,
        venue: Id,
        box_id: Id,
        cfg: UplinkConfig,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mqtt: Option<Arc<Mqtt>>,
    ) -> anyhow::Result<Arc<Self>> {
        let d = Arc::new(Self {
            session,
            spool,
            venue,
            box_id,
            cfg,
            clock,
            metrics,
            cancel: CancellationToken::new(),
            running: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
            gap_seq: AtomicU64::new(0),
            mqtt,
            oldest_unacked: Mutex::new(HashMap::new()),
        });
        // Acks are cumulative: when the queue is full, dropping one loses nothing.
        let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>(1024);
        let selector = venue_proto::key::acks_for_box(&d.venue, &d.box_id);
        let subscriber = d
            .session
            .declare_subscriber(selector.clone())
            .callback(move |s| {
                let _ = tx.try_send((
                    s.key_expr().as_str().to_string(),
                    s.payload().to_bytes().to_vec(),
                ));
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot subscribe to acks on {selector}: {e}"))?;
        let listener = tokio::spawn(Arc::clone(&d).ack_loop(rx, subscriber));
        d.track(listener);
        for h in d.spool.streams() {
            d.ensure_sender(h);
        }
        Ok(d)
    }

    fn track(&self, task: JoinHandle<()>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
    }

    /// Starts the sender of a stream unless it runs already (and its MQTT sender
    /// when MQTT carries the stream).
    pub fn ensure_sender(self: &Arc<Self>, h: StreamHandle) {
        if let Some(mqtt) = &self.mqtt {
            mqtt.ensure_sender(h.clone());
        }
        let fresh = self
            .running
            .lock()
            .map(|mut r| r.insert(h.id().clone()))
            .unwrap_or(false);
        if fresh {
            let task = tokio::spawn(Arc::clone(self).send_loop(h));
            self.track(task);
        }
    }

    /// Stops every sender and the ack listener, waiting at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.cancel.cancel();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("delivery tasks did not stop in time");
        }
    }

    async fn ack_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<(String, Vec<u8>)>,
        _subscriber: zenoh::pubsub::Subscriber<()>,
    ) {
        let accepted = self
            .metrics
            .acks
            .get_or_create(&crate::metrics::ResultLabels { result: "accepted" })
            .clone();
        let rejected = self
            .metrics
            .acks
            .get_or_create(&crate::metrics::ResultLabels { result: "rejected" })
            .clone();
        loop {
            let (key, bytes) = tokio::select! {
                m = rx.recv() => match m { Some(m) => m, None => break },
                () = self.cancel.cancelled() => break,
            };
            match self.route_ack(&key, &bytes) {
                Ok(Some((h, ack))) => {
                    accepted.inc();
                    // File deletions happen here: keep them off the async workers.
                    let _ = tokio::task::spawn_blocking(move || {
                        h.ack_by(Transport::Zenoh, ack.acked_incarnation, ack.acked_seq)
                    })
                    .await;
                }
                Ok(None) => {}
                Err(reason) => {
                    let n = rejected.inc() + 1;
                    if n % 100 == 1 {
                        warn!(%key, %reason, rejected = n, "ack ignored");
                    }
                }
            }
        }
    }

    /// Validates an ack and finds the stream it is for.
    fn route_ack(&self, key: &str, bytes: &[u8]) -> Result<Option<(StreamHandle, Ack)>, String> {
        let k = StreamKey::parse(key).map_err(|e| e.to_string())?;
        let ack: Ack = venue_proto::decode(bytes).map_err(|e| e.to_string())?;
        if k.venue != self.venue || k.box_id != self.box_id || ack.header.camera != k.camera {
            return Err("ack addressed to another box or camera".into());
        }
        if !SPOOLED.contains(&ack.stream) {
            return Err(format!("stream {} is not acknowledged", ack.stream));
        }
        Ok(self.spool.existing(&k.camera, ack.stream).map(|h| (h, ack)))
    }

    async fn send_loop(self: Arc<Self>, h: StreamHandle) {
        let id = h.id().clone();
        let key = StreamKey::new(
            self.venue.clone(),
            self.box_id.clone(),
            id.camera.clone(),
            id.kind,
        )
        .to_string();
        let gap_key = StreamKey::new(
            self.venue.clone(),
            self.box_id.clone(),
            id.camera.clone(),
            StreamKind::Gap,
        )
        .to_string();
        let (publisher, gap_publisher) = loop {
            match (
                uplink::publisher(&self.session, key.clone()).await,
                uplink::publisher(&self.session, gap_key.clone()).await,
            ) {
                (Ok(p), Ok(g)) => break (p, g),
                (Err(e), _) | (_, Err(e)) => {
                    warn!(stream = %id, error = %format!("{e:#}"), "cannot declare publishers; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = self.cancel.cancelled() => return,
                    }
                }
            }
        };
        let labels = StreamLabels {
            camera: id.camera.to_string(),
            stream: id.kind.as_str(),
        };
        let sent = self.metrics.uplink_sent.get_or_create(&labels).clone();
        let resent = self.metrics.uplink_resent.get_or_create(&labels).clone();
        let gaps = self.metrics.gaps_sent.get_or_create(&labels).clone();
        let latency = self
            .metrics
            .latency
            .get_or_create(&crate::metrics::CameraLabels {
                camera: id.camera.to_string(),
            })
            .clone();

        // Whether anyone subscribes to this stream: without a subscriber nothing is
        // sent (an outage costs no traffic), and when one appears (consumer back,
        // router restarted) sending restarts at once from the first unacknowledged
        // record instead of waiting for the resend timer.
        let matching = publisher.matching_listener().await.ok();
        let mut subscribed = publisher
            .matching_status()
            .await
            .map_or(true, |m| m.matching());
        let mut rewind = false;
        let mut cursor: Option<Pos> = None;
        // Highest position ever sent: anything below is a resend.
        let mut high_water: Option<Pos> = None;
        let mut last_first: Option<Pos> = None;
        let mut stalled_since = Instant::now();
        let mut resend_after = self.cfg.resend_after;
        let mut read_errors = 0u64;
        while !self.cancel.is_cancelled() {
            let Some(first) = h.first_unacked_by(Transport::Zenoh) else {
                cursor = None;
                self.wait(&h, None, matching.as_ref(), &mut subscribed, &mut rewind)
                    .await;
                continue;
            };
            if last_first != Some(first) {
                last_first = Some(first);
                stalled_since = Instant::now();
                resend_after = self.cfg.resend_after;
            }
            let mut cur = cursor.map_or(first, |c| c.max(first));
            if std::mem::take(&mut rewind) {
                debug!(stream = %id, from = ?first, "subscriber appeared; sending from the last ack");
                cur = first;
                stalled_since = Instant::now();
                resend_after = self.cfg.resend_after;
            }
            if !subscribed {
                cursor = Some(cur);
                self.wait(&h, None, matching.as_ref(), &mut subscribed, &mut rewind)
                    .await;
                continue;
            }
            if cur > first && stalled_since.elapsed() >= resend_after {
                // Go-back-N: the cloud has not acknowledged for a while (link down,
                // router restarted, consumer restarted): send again from the last ack.
                debug!(stream = %id, from = ?first, "no ack progress; resending");
                cur = first;
                stalled_since = Instant::now();
                resend_after = (resend_after * 2).min(self.cfg.resend_after * 8);
            }
            let in_flight = if cur.incarnation == first.incarnation {
                cur.seq - first.seq
            } else {
                cur.seq + 1
            };
            let deadline = stalled_since + resend_after;
            if in_flight >= self.cfg.window {
                cursor = Some(cur);
                self.wait(
                    &h,
                    Some(deadline),
                    matching.as_ref(),
                    &mut subscribed,
                    &mut rewind,
                )
                .await;
                continue;
            }
            let max = (self.cfg.window - in_flight).min(BATCH) as usize;
            let read = match h.read_cached(cur, max) {
                Some(r) => Ok(Ok(r)),
                None => {
                    // A backlog older than the cache: read the disk off the async workers.
                    let reader = h.clone();
                    tokio::task::spawn_blocking(move || reader.read(cur, max)).await
                }
            };
            match read {
                Ok(Ok(Read::Records(records))) => {
                    // Counters and the latency sample are taken once per batch: at a
                    // camera's rate a batch is one record, and in a backlog drain the
                    // per-record header decode and histogram update would cost a
                    // sizeable share of each put.
                    let (mut first_sends, mut resends) = (0u64, 0u64);
                    let mut newest: Option<&Bytes> = None;
                    for r in &records {
                        if let Err(e) = publisher.put(r.payload.clone()).await {
                            warn!(stream = %id, error = %e, "publish failed");
                            break;
                        }
                        if high_water.is_none_or(|hw| r.pos >= hw) {
                            first_sends += 1;
                            newest = Some(&r.payload);
                            high_water = Some(Pos {
                                incarnation: r.pos.incarnation,
                                seq: r.pos.seq + 1,
                            });
                        } else {
                            resends += 1;
                        }
                        cur = Pos {
                            incarnation: r.pos.incarnation,
                            seq: r.pos.seq + 1,
                        };
                    }
                    sent.inc_by(first_sends);
                    resent.inc_by(resends);
                    if let Some(payload) = newest
                        && let Ok(header) = venue_proto::peek_header(payload)
                    {
                        let age = self.clock.unix_ns().saturating_sub(header.capture_ns);
                        latency.observe(age as f64 / 1e9);
                    }
                    cursor = Some(cur);
                }
                Ok(Ok(Read::Gap {
                    incarnation,
                    from,
                    to,
                })) => {
                    let reason = if matches!(id.kind, StreamKind::Video | StreamKind::Clip) {
                        GapReason::Evicted
                    } else {
                        GapReason::Damaged
                    };
                    let notice = self.gap_notice(&id, incarnation, from, to, reason);
                    match venue_proto::encode(&notice) {
                        Ok(bytes) => {
                            if let Err(e) = gap_publisher.put(bytes).await {
                                warn!(stream = %id, error = %e, "gap notice not published");
                            }
                        }
                        Err(e) => warn!(stream = %id, error = %e, "gap notice not encoded"),
                    }
                    gaps.inc();
                    warn!(stream = %id, incarnation, from, to, ?reason, "records lost in the spool; receivers told");
                    cursor = Some(Pos {
                        incarnation,
                        seq: to,
                    });
                }
                Ok(Ok(Read::Empty)) => {
                    cursor = Some(cur);
                    let until = (cur > first).then_some(deadline);
                    self.wait(&h, until, matching.as_ref(), &mut subscribed, &mut rewind)
                        .await;
                }
                Ok(Err(e)) => {
                    read_errors += 1;
                    if read_errors % 100 == 1 {
                        warn!(stream = %id, error = %e, "spool read failed");
                    }
                    cursor = Some(cur);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    warn!(stream = %id, error = %e, "spool read task failed");
                    cursor = Some(cur);
                }
            }
        }
        info!(stream = %id, "sender stopped");
    }

    /// Waits for an append or ack on the stream, the deadline, a change in whether
    /// anyone subscribes (setting `rewind` when someone appears), or shutdown.
    async fn wait(
        &self,
        h: &StreamHandle,
        deadline: Option<Instant>,
        matching: Option<
            &zenoh::matching::MatchingListener<
                zenoh::handlers::FifoChannelHandler<zenoh::matching::MatchingStatus>,
            >,
        >,
        subscribed: &mut bool,
        rewind: &mut bool,
    ) {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep(d.saturating_duration_since(Instant::now())).await,
                None => std::future::pending().await,
            }
        };
        let status = async {
            match matching {
                Some(m) => m.recv_async().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = h.changed() => {}
            () = sleep => {}
            () = self.cancel.cancelled() => {}
            Some(s) = status => {
                if s.matching() && !*subscribed {
                    *rewind = true;
                }
                *subscribed = s.matching();
            }
        }
    }

    fn gap_notice(
        &self,
        id: &StreamId,
        incarnation: u64,
        from: u64,
        to: u64,
        reason: GapReason,
    ) -> Gap {
        let now = self.clock.unix_ns();
        Gap {
            header: venue_proto::Header {
                schema: SCHEMA_VERSION,
                venue: self.venue.clone(),
                box_id: self.box_id.clone(),
                camera: id.camera.clone(),
                incarnation: self.spool.incarnation(),
                seq: self.gap_seq.fetch_add(1, Ordering::Relaxed),
                capture_ns: now,
                timecode: Timecode::from_unix_ns(now, 30),
            },
            stream: id.kind,
            incarnation,
            first_seq: from,
            end_seq: to,
            reason,
        }
    }

    /// Capture time of the record at `pos` of `stream`: remembered from the
    /// last report when it is the same record, else read (and remembered).
    fn capture_ns_of(&self, stream: &StreamHandle, pos: Pos) -> Option<u64> {
        let id = stream.id();
        let oldest = || {
            self.oldest_unacked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let known = oldest()
            .get(id)
            .filter(|(at, _)| *at == pos)
            .map(|&(_, captured)| captured);
        if known.is_some() {
            return known;
        }
        let captured = match stream.read(pos, 1) {
            Ok(Read::Records(r)) => r
                .first()
                .and_then(|r| venue_proto::peek_header(&r.payload).ok())
                .map(|h| h.capture_ns),
            _ => None,
        }?;
        oldest().insert(id.clone(), (pos, captured));
        Some(captured)
    }

    /// Delivery state of a camera's spooled streams (for its health message), and
    /// the same figures as metrics.
    pub fn stream_health(&self, camera: &Id) -> Vec<StreamUplink> {
        let now = self.clock.unix_ns();
        SPOOLED
            .iter()
            .filter_map(|kind| self.spool.existing(camera, *kind))
            .map(|h| {
                let first = h.first_unacked();
                let end = h.end();
                let ack_lag = first.map_or(0, |f| {
                    if f.incarnation == end.incarnation {
                        end.seq - f.seq
                    } else {
                        end.seq + 1
                    }
                });
                let oldest_unacked_ms = first
                    .and_then(|f| self.capture_ns_of(&h, f))
                    .map_or(0, |captured| now.saturating_sub(captured) / 1_000_000);
                let c = h.counters();
                let labels = StreamLabels {
                    camera: camera.to_string(),
                    stream: h.id().kind.as_str(),
                };
                self.metrics
                    .ack_lag
                    .get_or_create(&labels)
                    .set(ack_lag as i64);
                self.metrics
                    .oldest_unacked_ms
                    .get_or_create(&labels)
                    .set(oldest_unacked_ms as i64);
                for (reason, n) in [
                    ("full", c.lost_full),
                    ("damaged", c.lost_damaged),
                    ("evicted", c.lost_evicted),
                ] {
                    let l = crate::metrics::LossLabels {
                        camera: camera.to_string(),
                        stream: h.id().kind.as_str(),
                        reason,
                    };
                    self.metrics.spool_lost.get_or_create(&l).set(n as i64);
                }
                StreamUplink {
                    stream: h.id().kind,
                    ack_lag,
                    oldest_unacked_ms,
                    lost_full: c.lost_full,
                    lost_damaged: c.lost_damaged,
                    lost_evicted: c.lost_evicted,
                }
            })
            .collect()
    }
}
