//! Prometheus metrics: per-stage frame counters, pipeline latency and camera state,
//! served as text on `GET /metrics`. The names are the contract in `docs/metrics.md`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use venue_proto::CameraState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub camera: String,
    pub stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub camera: String,
    pub stage: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabels {
    pub camera: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub camera: String,
    pub stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LossLabels {
    pub camera: String,
    pub stream: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MqttLabels {
    pub stream: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClipLabels {
    pub camera: String,
    pub result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub camera: String,
    pub state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// Every metric the daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub frames_in: Family<StageLabels, Counter>,
    pub frames_out: Family<StageLabels, Counter>,
    pub frames_dropped: Family<DropLabels, Counter>,
    pub errors: Family<StageLabels, Counter>,
    pub latency: Family<CameraLabels, Histogram, fn() -> Histogram>,
    pub camera_state: Family<StateLabels, Gauge>,
    pub restarts: Family<CameraLabels, Counter>,
    /// Network/file feed reconnects (errors, stalls, ends), inside a running pipeline.
    pub feed_reconnects: Family<CameraLabels, Counter>,
    pub uplink_sent: Family<StreamLabels, Counter>,
    pub uplink_resent: Family<StreamLabels, Counter>,
    pub gaps_sent: Family<StreamLabels, Counter>,
    pub acks: Family<ResultLabels, Counter>,
    pub ack_lag: Family<StreamLabels, Gauge>,
    pub oldest_unacked_ms: Family<StreamLabels, Gauge>,
    pub spool_lost: Family<LossLabels, Gauge>,
    pub spool_used_bytes: Gauge,
    pub spool_cache_bytes: Gauge,
    pub spool_max_bytes: Gauge,
    /// The daemon's resident size, set with the box's health.
    pub resident_bytes: Gauge,
    /// What the periodic allocator trim gave back to the system.
    pub allocator_trim_released_bytes: Counter,
    pub mqtt_connected: Gauge,
    pub mqtt_published: Family<MqttLabels, Counter>,
    pub mqtt_dropped: Family<MqttLabels, Counter>,
    pub video_chunks: Family<CameraLabels, Counter>,
    pub video_bytes: Family<CameraLabels, Counter>,
    pub event_clips: Family<ClipLabels, Counter>,
    pub video_ring_bytes: Family<CameraLabels, Gauge>,
    pub event_clips_kept_bytes: Family<CameraLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("venue_edge");
        let frames_in = Family::<StageLabels, Counter>::default();
        let frames_out = Family::<StageLabels, Counter>::default();
        let frames_dropped = Family::<DropLabels, Counter>::default();
        let errors = Family::<StageLabels, Counter>::default();
        let latency = Family::<CameraLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let camera_state = Family::<StateLabels, Gauge>::default();
        let restarts = Family::<CameraLabels, Counter>::default();
        let feed_reconnects = Family::<CameraLabels, Counter>::default();
        let uplink_sent = Family::<StreamLabels, Counter>::default();
        let uplink_resent = Family::<StreamLabels, Counter>::default();
        let gaps_sent = Family::<StreamLabels, Counter>::default();
        let acks = Family::<ResultLabels, Counter>::default();
        let ack_lag = Family::<StreamLabels, Gauge>::default();
        let oldest_unacked_ms = Family::<StreamLabels, Gauge>::default();
        let spool_lost = Family::<LossLabels, Gauge>::default();
        let spool_used_bytes = Gauge::default();
        let spool_cache_bytes = Gauge::default();
        let spool_max_bytes = Gauge::default();
        let resident_bytes = Gauge::default();
        let allocator_trim_released_bytes = Counter::default();
        let mqtt_connected = Gauge::default();
        let mqtt_published = Family::<MqttLabels, Counter>::default();
        let mqtt_dropped = Family::<MqttLabels, Counter>::default();
        let video_chunks = Family::<CameraLabels, Counter>::default();
        let video_bytes = Family::<CameraLabels, Counter>::default();
        let event_clips = Family::<ClipLabels, Counter>::default();
        let video_ring_bytes = Family::<CameraLabels, Gauge>::default();
        let event_clips_kept_bytes = Family::<CameraLabels, Gauge>::default();
        registry.register(
            "frames_in",
            "Frames received by a pipeline stage",
            frames_in.clone(),
        );
        registry.register(
            "frames_out",
            "Frames passed on by a pipeline stage",
            frames_out.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames dropped by a pipeline stage, by reason",
            frames_dropped.clone(),
        );
        registry.register("stage_errors", "Errors in a pipeline stage", errors.clone());
        registry.register(
            "pipeline_latency_seconds",
            "Capture to metadata published (first send), per camera",
            latency.clone(),
        );
        registry.register(
            "camera_state",
            "1 for the state each camera is in, 0 for the others",
            camera_state.clone(),
        );
        registry.register(
            "pipeline_restarts",
            "Camera pipeline restarts after a failure",
            restarts.clone(),
        );
        registry.register(
            "feed_reconnects",
            "Network or file feed reconnects after an error, a stall or an end of stream",
            feed_reconnects.clone(),
        );
        registry.register(
            "uplink_sent",
            "Spooled records published for the first time",
            uplink_sent.clone(),
        );
        registry.register(
            "uplink_resent",
            "Spooled records published again (no ack in time)",
            uplink_resent.clone(),
        );
        registry.register(
            "uplink_gaps",
            "Gap notices sent for records lost in the spool",
            gaps_sent.clone(),
        );
        registry.register(
            "acks",
            "End-to-end acks received, accepted or rejected",
            acks.clone(),
        );
        registry.register(
            "ack_lag_records",
            "Records stored but not yet acknowledged",
            ack_lag.clone(),
        );
        registry.register(
            "oldest_unacked_ms",
            "Age of the oldest unacknowledged record, capture to now",
            oldest_unacked_ms.clone(),
        );
        registry.register(
            "spool_lost_records",
            "Records lost by the spool, by reason (full, damaged, evicted)",
            spool_lost.clone(),
        );
        registry.register(
            "spool_used_bytes",
            "Bytes in the spool (disk and pending)",
            spool_used_bytes.clone(),
        );
        registry.register(
            "spool_cache_bytes",
            "Recent records the spool keeps in memory for sending (each stream capped)",
            spool_cache_bytes.clone(),
        );
        registry.register(
            "spool_max_bytes",
            "The spool's size cap",
            spool_max_bytes.clone(),
        );
        registry.register(
            "resident_bytes",
            "Resident memory of the daemon (updated with the box's health)",
            resident_bytes.clone(),
        );
        registry.register(
            "allocator_trim_released_bytes",
            "Memory the allocator held free and the periodic trim gave back ([box] allocator_trim_s)",
            allocator_trim_released_bytes.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while connected to the MQTT broker, 0 otherwise (and when MQTT is off)",
            mqtt_connected.clone(),
        );
        registry.register(
            "mqtt_published",
            "Messages the MQTT broker acknowledged, per stream",
            mqtt_published.clone(),
        );
        registry.register(
            "mqtt_dropped",
            "Messages never delivered to the MQTT broker (superseded while disconnected, lost with a connection, or client queue full), per stream",
            mqtt_dropped.clone(),
        );
        registry.register(
            "video_chunks",
            "Video chunks stored in the spool for the uplink",
            video_chunks.clone(),
        );
        registry.register(
            "video_bytes",
            "Encoded video bytes stored in the spool for the uplink",
            video_bytes.clone(),
        );
        registry.register(
            "event_clips",
            "Event clips by result: cut, sent (spooled for the uplink), failed, busy (the clip thread was full), too_large, not_stored",
            event_clips.clone(),
        );
        registry.register(
            "video_ring_bytes",
            "Encoded video held in the camera's pre-roll ring",
            video_ring_bytes.clone(),
        );
        registry.register(
            "event_clips_kept_bytes",
            "MP4 bytes of the event clips kept on the box for queries",
            event_clips_kept_bytes.clone(),
        );
        Self {
            registry,
            frames_in,
            frames_out,
            frames_dropped,
            errors,
            latency,
            camera_state,
            restarts,
            feed_reconnects,
            uplink_sent,
            uplink_resent,
            gaps_sent,
            acks,
            ack_lag,
            oldest_unacked_ms,
            spool_lost,
            spool_used_bytes,
            spool_cache_bytes,
            spool_max_bytes,
            resident_bytes,
            allocator_trim_released_bytes,
            mqtt_connected,
            mqtt_published,
            mqtt_dropped,
            video_chunks,
            video_bytes,
            event_clips,
            video_ring_bytes,
            event_clips_kept_bytes,
        }
    }

    /// Sets the one-hot state gauge of a camera.
    pub fn set_state(&self, camera: &str, state: CameraState) {
        for s in ALL_STATES {
            let v = i64::from(s == state);
            self.camera_state
                .get_or_create(&StateLabels {
                    camera: camera.to_string(),
                    state: state_name(s),
                })
                .set(v);
        }
    }

    /// Removes a camera's state series (camera removed by a reload).
    pub fn forget_camera(&self, camera: &str) {
        for s in ALL_STATES {
            self.camera_state.remove(&StateLabels {
                camera: camera.to_string(),
                state: state_name(s),
            });
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

pub const ALL_STATES: [CameraState; 6] = [
    CameraState::Running,
    CameraState::Stalled,
    CameraState::Blocked,
    CameraState::Reconnecting,
    CameraState::Failed,
    CameraState::Stopped,
];

pub fn state_name(s: CameraState) -> &'static str {
    match s {
        CameraState::Running => "running",
        CameraState::Stalled => "stalled",
        CameraState::Blocked => "blocked",
        CameraState::Reconnecting => "reconnecting",
        CameraState::Failed => "failed",
        CameraState::Stopped => "stopped",
    }
}

/// Binds the metrics endpoint and serves it until `shutdown`. Returns the bound
/// address (useful with port 0).
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the metrics endpoint on {addr} (change [metrics] listen, or set it to \"off\")"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = Arc::clone(&metrics);
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_and_state() {
        let m = Metrics::new();
        m.frames_in
            .get_or_create(&StageLabels {
                camera: "cam-1".into(),
                stage: "capture",
            })
            .inc_by(3);
        m.set_state("cam-1", CameraState::Stalled);
        m.latency
            .get_or_create(&CameraLabels {
                camera: "cam-1".into(),
            })
            .observe(0.002);
        let text = m.render();
        assert!(
            text.contains(r#"venue_edge_frames_in_total{camera="cam-1",stage="capture"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"venue_edge_camera_state{camera="cam-1",state="stalled"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"venue_edge_camera_state{camera="cam-1",state="running"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("venue_edge_pipeline_latency_seconds_count{camera=\"cam-1\"} 1"),
            "{text}"
        );
        m.forget_camera("cam-1");
        assert!(!m.render().contains("camera_state{camera=\"cam-1\""));
    }
}
