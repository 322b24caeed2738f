//! The MQTT uplink: health and events for cloud systems that speak MQTT, on the
//! same topic hierarchy and with the same CBOR payloads as zenoh, QoS 1.
//!
//! Events come from the spool ([`events`]): sent go-back-N against the cloud's
//! acks on MQTT, which move the stream's MQTT ack cursor in the spool.
//!
//! [`Mqtt`] owns a `rumqttc` client and the task that drives its event loop. The
//! task reconnects forever with capped exponential backoff and never blocks or fails
//! the daemon: publishing is `try_publish` (a full client queue is a counted drop),
//! and while the broker is away only the newest payload per topic is kept. Health
//! is periodic, so the newest report supersedes the older ones; after every
//! (re)connect the newest payload of every topic is published again, because a
//! broker that restarted without persistence has lost its retained messages.

mod events;
pub mod tls;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Request,
    TlsConfiguration, Transport,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use venue_drivers::Clock;
use venue_proto::{Id, StreamKey, StreamKind};

use crate::config::{MqttConfig, UplinkConfig};
use crate::metrics::{Metrics, MqttLabels};
use crate::spool::{Spool, StreamHandle, StreamId};

/// Reconnect delays: the first retry after this, doubling …
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// … up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Publishes waiting for the event loop. Health is one message per camera (at most
/// 64) and one for the box per interval, so this fills only when the event loop
/// cannot keep up; then `try_publish` fails and the message is counted as dropped.
pub(crate) const REQUEST_QUEUE: usize = 256;
/// Largest packet the box sends (health is well under 1 KiB); larger payloads are
/// dropped before they reach the client, which would otherwise drop the connection.
const MAX_OUTGOING_PACKET: usize = 1024 * 1024;
/// Largest packet accepted from the broker (the box subscribes to acks only, each
/// well under 1 KiB).
const MAX_INCOMING_PACKET: usize = 16 * 1024;
/// Seconds to wait for a TCP connection and the broker's CONNACK.
const CONNECT_TIMEOUT_S: u64 = 5;

/// The MQTT uplink of a box; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Mqtt {
    venue: Id,
    box_id: Id,
    inner: Arc<Inner>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    streams: Vec<StreamKind>,
    uplink: UplinkConfig,
    clock: Arc<dyn Clock>,
    /// Streams whose event sender runs.
    senders: Mutex<HashSet<StreamId>>,
    sender_tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Mqtt {
    /// Starts the client and its event loop (inside a tokio runtime). Returns at once:
    /// the connection is made, and remade, in the background. Acks for spooled
    /// streams arriving over MQTT move their MQTT cursor in `spool`.
    pub fn start(
        config: &MqttConfig,
        venue: Id,
        box_id: Id,
        metrics: Arc<Metrics>,
        spool: Spool,
        uplink: UplinkConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
        if let Some(t) = &config.tls {
            // Checked when the configuration was loaded; a failure here means the
            // files changed since.
            let tls = tls::client_config(t)?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        }
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        let mut network = eventloop.network_options();
        network.set_connection_timeout(CONNECT_TIMEOUT_S);
        eventloop.set_network_options(network);
        let mut inner = Inner::new(client, metrics);
        if config.streams.contains(&StreamKind::Event) {
            inner.acks = Some(AckRoute {
                topic: venue_proto::key::acks_for_box(&venue, &box_id).replace('*', "+"),
                venue: venue.clone(),
                box_id: box_id.clone(),
                spool,
            });
        }
        let inner = Arc::new(inner);
        let stop = CancellationToken::new();
        let task = tokio::spawn(drive(
            eventloop,
            Arc::clone(&inner),
            config.url.clone(),
            stop.clone(),
        ));
        info!(url = %config.url, client_id = %config.client_id, "MQTT uplink started; connecting in the background");
        Ok(Self {
            venue,
            box_id,
            inner,
            stop,
            task: Mutex::new(Some(task)),
            streams: config.streams.clone(),
            uplink,
            clock,
            senders: Mutex::new(HashSet::new()),
            sender_tasks: Mutex::new(Vec::new()),
        })
    }

    /// Whether MQTT carries this stream (health, events).
    pub fn carries(&self, kind: StreamKind) -> bool {
        self.streams.contains(&kind)
    }

    /// Starts the MQTT sender of a spooled stream MQTT carries, unless it runs.
    pub fn ensure_sender(self: &Arc<Self>, h: StreamHandle) {
        if !self.carries(h.id().kind) {
            return;
        }
        let fresh = self
            .senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(h.id().clone());
        if fresh {
            let task = tokio::spawn(events::send_loop(Arc::clone(self), h));
            self.sender_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(task);
        }
    }

    /// Publishes a camera's (or the box's) health, retained, on
    /// `venue/{venue}/{box}/{camera}/health`. Never blocks.
    pub fn publish_health(&self, camera: &Id, payload: Bytes) {
        if !self.carries(StreamKind::Health) {
            return;
        }
        let key = StreamKey::new(
            self.venue.clone(),
            self.box_id.clone(),
            camera.clone(),
            StreamKind::Health,
        );
        self.inner
            .publish_latest(key.to_string(), "health", payload);
    }

    /// Disconnects cleanly if connected, waiting at most `within` for the DISCONNECT
    /// to go out, then stops the event loop either way.
    pub async fn shutdown(&self, within: Duration) {
        self.stop.cancel();
        let senders = std::mem::take(
            &mut *self
                .sender_tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for t in senders {
            t.abort();
        }
        // Wakes an event loop waiting on the connection; harmless when disconnected
        // (the loop then ends at once).
        let _ = self.inner.client.try_disconnect();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(within, &mut task).await.is_err()
        {
            task.abort();
            warn!(
                "MQTT did not disconnect within {} ms; closed anyway",
                within.as_millis()
            );
        }
    }
}

/// What the publishers and the event loop share.
#[derive(Debug)]
struct Inner {
    client: AsyncClient,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    /// Counts connections accepted by the broker; senders resend from the last
    /// ack when it changes (the session is clean, so nothing survives a reconnect).
    connections: watch::Sender<u64>,
    /// Where acks arriving over MQTT go, when MQTT carries a spooled stream.
    acks: Option<AckRoute>,
}

/// The box's ack subscription and the spool its acks apply to.
#[derive(Debug)]
struct AckRoute {
    /// `venue/{venue}/{box}/+/ack`.
    topic: String,
    venue: Id,
    box_id: Id,
    spool: Spool,
}

#[derive(Debug, Default)]
struct State {
    connected: bool,
    /// Newest payload per retained topic.
    latest: HashMap<String, Latest>,
    /// Streams of the publishes handed to the client and not yet written, in order
    /// (the client's queue is FIFO, so the next written publish is the front one).
    queued: VecDeque<&'static str>,
    /// Streams of the publishes written and not yet acknowledged, by packet id.
    in_flight: HashMap<u16, &'static str>,
}

#[derive(Debug)]
struct Latest {
    stream: &'static str,
    payload: Bytes,
    /// Kept while disconnected and not handed to the client yet.
    held: bool,
}

impl Inner {
    fn new(client: AsyncClient, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            state: Mutex::new(State::default()),
            metrics,
            connections: watch::Sender::new(0),
            acks: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every step; a panic elsewhere cannot break it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dropped(&self, stream: &'static str, n: u64) {
        if n > 0 {
            self.metrics
                .mqtt_dropped
                .get_or_create(&MqttLabels { stream })
                .inc_by(n);
        }
    }

    /// Publishes a retained message of which only the newest per topic matters.
    fn publish_latest(&self, topic: String, stream: &'static str, payload: Bytes) {
        if payload.len() + topic.len() + 16 > MAX_OUTGOING_PACKET {
            self.dropped(stream, 1);
            return;
        }
        let mut st = self.lock();
        let held = !st.connected;
        let latest = Latest {
            stream,
            payload: payload.clone(),
            held,
        };
        if let Some(older) = st.latest.insert(topic.clone(), latest)
            && older.held
        {
            // Superseded before it could be sent.
            self.dropped(older.stream, 1);
        }
        if !held {
            self.send(&mut st, topic, stream, payload);
        }
    }

    /// Hands one retained QoS 1 publish to the client; a full queue is a drop.
    fn send(&self, st: &mut State, topic: String, stream: &'static str, payload: Bytes) {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => st.queued.push_back(stream),
            Err(_) => self.dropped(stream, 1),
        }
    }

    /// Hands one QoS 1 publish of a spooled stream to the client; `false` when
    /// disconnected or the client's queue is full (the record stays in the spool
    /// and is sent later).
    fn try_send_spooled(&self, topic: String, stream: &'static str, payload: Bytes) -> bool {
        let mut st = self.lock();
        if !st.connected {
            return false;
        }
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => {
                st.queued.push_back(stream);
                true
            }
            Err(_) => false,
        }
    }

    /// The broker accepted the connection: subscribe to acks, publish the newest of
    /// every retained topic again and let the senders resend from the last ack.
    fn on_connected(&self) {
        if let Some(route) = &self.acks
            && let Err(error) = self
                .client
                .try_subscribe(route.topic.clone(), QoS::AtLeastOnce)
        {
            warn!(topic = %route.topic, %error, "cannot subscribe to MQTT acks");
        }
        let mut st = self.lock();
        st.connected = true;
        self.metrics.mqtt_connected.set(1);
        let again: Vec<(String, &'static str, Bytes)> = st
            .latest
            .iter_mut()
            .map(|(topic, l)| {
                l.held = false;
                (topic.clone(), l.stream, l.payload.clone())
            })
            .collect();
        for (topic, stream, payload) in again {
            self.send(&mut st, topic, stream, payload);
        }
        drop(st);
        self.connections.send_modify(|n| *n += 1);
    }

    /// A publish left for the network under packet id `pkid`.
    fn on_written(&self, pkid: u16) {
        let mut st = self.lock();
        if let Some(stream) = st.queued.pop_front() {
            st.in_flight.insert(pkid, stream);
        }
    }

    /// The broker acknowledged packet `pkid` (QoS 1): published.
    fn on_acked(&self, pkid: u16) {
        let stream = self.lock().in_flight.remove(&pkid);
        if let Some(stream) = stream {
            self.metrics
                .mqtt_published
                .get_or_create(&MqttLabels { stream })
                .inc();
        }
    }

    /// The connection is gone. `pending` holds what rumqttc would send again: the
    /// unacknowledged publishes and the requests still queued. The session is clean,
    /// so a reconnect discards them anyway; they are counted as dropped here and the
    /// newest payload per topic goes out again from `latest`. Returns whether the
    /// box was connected until now.
    fn on_disconnected(&self, pending: &mut VecDeque<Request>) -> bool {
        let mut st = self.lock();
        let was = st.connected;
        st.connected = false;
        self.metrics.mqtt_connected.set(0);
        let mut lost = 0;
        for request in pending.drain(..) {
            if let Request::Publish(p) = request {
                lost += 1;
                let stream = stream_of(&p.topic);
                // Spooled records are sent again from the spool: not a loss.
                if stream != StreamKind::Event.as_str() && stream != StreamKind::Gap.as_str() {
                    self.dropped(stream, 1);
                }
            }
        }
        // Unacknowledged ones were in flight; the rest came from the client's queue,
        // oldest first.
        let from_queue = (lost - lost.min(st.in_flight.len())).min(st.queued.len());
        st.queued.drain(..from_queue);
        st.in_flight.clear();
        was
    }
}

/// Whether a connection error is the TLS handshake (certificates), not the network.
fn is_tls_failure(error: &ConnectionError) -> bool {
    match error {
        ConnectionError::Tls(_) => true,
        ConnectionError::Io(e) => e.get_ref().is_some_and(|inner| {
            inner.downcast_ref::<rustls::Error>().is_some()
                || inner.to_string().contains("certificate")
        }),
        _ => false,
    }
}

/// The stream label of a topic the box published on.
fn stream_of(topic: &str) -> &'static str {
    StreamKey::parse(topic).map_or("other", |k| k.stream.as_str())
}

/// Polls the event loop forever: connects, reconnects after `BACKOFF_MIN` doubling
/// up to `BACKOFF_MAX`, and logs each change of state once, not each attempt.
async fn drive(mut eventloop: EventLoop, inner: Arc<Inner>, url: String, stop: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    let mut down_logged = false;
    loop {
        let connected = inner.lock().connected;
        let polled = if connected {
            // Stopping while connected: the DISCONNECT request wakes this poll.
            eventloop.poll().await
        } else {
            tokio::select! {
                r = eventloop.poll() => r,
                () = stop.cancelled() => return,
            }
        };
        match polled {
            // rumqttc reports a refused connection as an error: this one is accepted.
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                inner.on_connected();
                backoff = BACKOFF_MIN;
                down_logged = false;
                info!(%url, "MQTT connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => inner.on_written(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => inner.on_acked(ack.pkid),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(route) = &inner.acks {
                    events::on_ack(route, &inner.metrics, &p.topic, &p.payload);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                inner.on_disconnected(&mut eventloop.pending);
                debug!(%url, "MQTT disconnected");
                return;
            }
            Ok(_) => {}
            Err(error) => {
                let was_connected = inner.on_disconnected(&mut eventloop.pending);
                if stop.is_cancelled() {
                    return;
                }
                if !down_logged {
                    if is_tls_failure(&error) {
                        warn!(%url, %error, "MQTT TLS handshake failed (check [mqtt] ca_file, cert_file and key_file against the broker's certificates); retrying in the background");
                    } else if was_connected {
                        warn!(%url, %error, "MQTT connection lost; reconnecting in the background");
                    } else {
                        warn!(%url, %error, "MQTT broker unreachable; retrying in the background");
                    }
                    down_logged = true;
                } else {
                    debug!(%url, %error, retry_in_ms = backoff.as_millis() as u64, "MQTT connect failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Inner` whose client writes into a channel the test reads.
    fn inner() -> (Inner, flume::Receiver<Request>) {
        let (tx, rx) = flume::bounded(REQUEST_QUEUE);
        (
            Inner::new(AsyncClient::from_senders(tx), Arc::new(Metrics::new())),
            rx,
        )
    }

    fn counter(i: &Inner, published: bool) -> u64 {
        let family = if published {
            &i.metrics.mqtt_published
        } else {
            &i.metrics.mqtt_dropped
        };
        family.get_or_create(&MqttLabels { stream: "health" }).get()
    }

    fn publishes(rx: &flume::Receiver<Request>) -> Vec<(String, Vec<u8>, bool, QoS)> {
        rx.drain()
            .filter_map(|r| match r {
                Request::Publish(p) => Some((p.topic, p.payload.to_vec(), p.retain, p.qos)),
                _ => None,
            })
            .collect()
    }

    const A: &str = "venue/v/b/cam-1/health";
    const B: &str = "venue/v/b/_box/health";

    #[test]
    fn only_the_newest_per_topic_waits_for_the_broker() {
        let (i, rx) = inner();
        for n in 0..3u8 {
            i.publish_latest(A.into(), "health", Bytes::from(vec![n]));
        }
        i.publish_latest(B.into(), "health", Bytes::from_static(b"box"));
        assert!(
            publishes(&rx).is_empty(),
            "nothing is queued while disconnected"
        );
        assert_eq!(counter(&i, false), 2, "two superseded reports");

        i.on_connected();
        let mut sent = publishes(&rx);
        sent.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            sent,
            vec![
                (B.into(), b"box".to_vec(), true, QoS::AtLeastOnce),
                (A.into(), vec![2], true, QoS::AtLeastOnce),
            ]
        );
        // Connected: each report goes out as it comes, nothing superseded.
        i.publish_latest(A.into(), "health", Bytes::from(vec![3]));
        i.publish_latest(A.into(), "health", Bytes::from(vec![4]));
        assert_eq!(publishes(&rx).len(), 2);
        assert_eq!(counter(&i, false), 2);
        assert_eq!(i.metrics.mqtt_connected.get(), 1);
    }

    #[test]
    fn acks_count_as_published_and_a_lost_connection_as_dropped() {
        let (i, rx) = inner();
        i.on_connected();
        for n in 0..3u8 {
            i.publish_latest(A.into(), "health", Bytes::from(vec![n]));
        }
        let mut requests: VecDeque<Request> = rx.drain().collect();
        assert_eq!(requests.len(), 3);
        // The first two are written, the first is acknowledged.
        i.on_written(1);
        i.on_written(2);
        i.on_acked(1);
        i.on_acked(9); // unknown ids are ignored
        assert_eq!(counter(&i, true), 1);
        // The connection drops: rumqttc hands back the unacknowledged and queued ones.
        requests.pop_front();
        assert!(i.on_disconnected(&mut requests));
        assert!(requests.is_empty());
        assert_eq!(counter(&i, false), 2);
        assert_eq!(i.metrics.mqtt_connected.get(), 0);
        {
            let st = i.lock();
            assert!(st.queued.is_empty() && st.in_flight.is_empty());
        }
        // The newest goes out again on reconnect.
        i.on_connected();
        assert_eq!(
            publishes(&rx),
            vec![(A.into(), vec![2], true, QoS::AtLeastOnce)]
        );
        i.on_written(1);
        i.on_acked(1);
        assert_eq!(counter(&i, true), 2);
    }

    #[test]
    fn a_full_client_queue_is_a_drop_not_a_wait() {
        let (tx, _rx) = flume::bounded(1);
        let i = Inner::new(AsyncClient::from_senders(tx), Arc::new(Metrics::new()));
        i.on_connected();
        i.publish_latest(A.into(), "health", Bytes::from_static(b"1"));
        i.publish_latest(A.into(), "health", Bytes::from_static(b"2"));
        assert_eq!(counter(&i, false), 1);
        assert_eq!(i.lock().queued.len(), 1);
        // Oversized payloads never reach the client.
        i.publish_latest(
            B.into(),
            "health",
            Bytes::from(vec![0; MAX_OUTGOING_PACKET]),
        );
        assert_eq!(counter(&i, false), 2);
    }

    #[test]
    fn streams_of_topics() {
        assert_eq!(stream_of(A), "health");
        assert_eq!(stream_of("not/a/key"), "other");
    }
}
