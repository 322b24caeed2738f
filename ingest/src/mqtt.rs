//! The MQTT input: subscribes to the configured topic filters (boxes publish
//! health and events there) and feeds payloads to the writer under their topic,
//! which is the same hierarchy as the zenoh keys. Records of spooled streams that
//! came over MQTT are acknowledged over MQTT too ([`MqttAcks`]), after the writer
//! has committed them, on `venue/{venue}/{box}/{camera}/ack`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use venue_proto::{Id, StreamKey, StreamKind};

use crate::ingest::Incoming;
use crate::service::MqttSettings;

/// Requests (ack publishes, subscriptions) waiting for the event loop. Acks are
/// cumulative and coalesced per stream by the writer, so a full queue loses
/// nothing a later ack does not cover.
const REQUEST_QUEUE: usize = 1024;

/// A stream as the writer's acker names it.
type StreamRef = (Id, Id, Id, StreamKind);

/// Publishes acks over MQTT for the streams whose records arrived over MQTT.
#[derive(Debug, Clone)]
pub struct MqttAcks {
    client: AsyncClient,
    seen: Arc<Mutex<HashSet<StreamRef>>>,
}

impl MqttAcks {
    /// Publishes an encoded `Ack` (QoS 1) if records of this stream came over
    /// MQTT; returns whether it was handed to the client.
    pub fn publish(
        &self,
        venue: &Id,
        box_id: &Id,
        camera: &Id,
        stream: StreamKind,
        ack: &[u8],
    ) -> bool {
        let key = (venue.clone(), box_id.clone(), camera.clone(), stream);
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key);
        if !seen {
            return false;
        }
        let topic = StreamKey::new(
            venue.clone(),
            box_id.clone(),
            camera.clone(),
            StreamKind::Ack,
        )
        .to_string();
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, false, ack.to_vec())
        {
            Ok(()) => true,
            Err(e) => {
                // The next ack covers this one; the box resends meanwhile.
                debug!(error = %e, "MQTT ack not queued");
                false
            }
        }
    }

    /// Notes that a record of a spooled stream arrived over MQTT on `topic`.
    fn arrived(&self, topic: &str) {
        let Ok(k) = StreamKey::parse(topic) else {
            return;
        };
        if k.stream.is_spooled() {
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((k.venue, k.box_id, k.camera, k.stream));
        }
    }
}

/// Starts the MQTT input; the task runs until cancelled, reconnecting with a
/// capped backoff, and never fails.
pub fn start(
    settings: MqttSettings,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) -> (MqttAcks, JoinHandle<()>) {
    let mut opts = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, events) = AsyncClient::new(opts, REQUEST_QUEUE);
    let acks = MqttAcks {
        client: client.clone(),
        seen: Arc::default(),
    };
    let task = tokio::spawn(run(settings, client, events, acks.clone(), tx, cancel));
    (acks, task)
}

async fn run(
    settings: MqttSettings,
    client: AsyncClient,
    mut events: rumqttc::EventLoop,
    acks: MqttAcks,
    tx: mpsc::Sender<Incoming>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    let mut connected = false;
    loop {
        let event = tokio::select! {
            e = events.poll() => e,
            () = cancel.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_secs(1);
                connected = true;
                info!(host = %settings.host, port = settings.port, "MQTT connected");
                // A clean session forgets subscriptions: subscribe after every connect.
                for t in &settings.topics {
                    if let Err(e) = client.try_subscribe(t.as_str(), QoS::AtLeastOnce) {
                        warn!(topic = %t, error = %e, "MQTT subscribe failed");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                acks.arrived(&p.topic);
                let item = Incoming {
                    key: p.topic,
                    payload: Bytes::from(p.payload.to_vec()),
                };
                if tx.send(item).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if connected {
                    warn!(error = %e, "MQTT connection lost; reconnecting");
                    connected = false;
                }
                // Acks queued for the lost connection are stale: the box resends
                // what is unacknowledged and gets fresh acks.
                events.pending.clear();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    let _ = client.try_disconnect();
}
