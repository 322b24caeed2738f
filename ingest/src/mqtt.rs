//! The MQTT input: subscribes to the configured topic filters (boxes publish
//! health there) and feeds payloads to the writer under their topic, which is the
//! same hierarchy as the zenoh keys.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ingest::Incoming;
use crate::service::MqttSettings;

/// Runs until cancelled, reconnecting with a capped backoff; never fails.
pub async fn run(settings: MqttSettings, tx: mpsc::Sender<Incoming>, cancel: CancellationToken) {
    let mut opts = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut events) = AsyncClient::new(opts, 64);
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
