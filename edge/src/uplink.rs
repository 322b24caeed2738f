//! The zenoh session a box publishes on: built from [`ZenohConfig`], one publisher
//! per stream key.

use anyhow::Context as _;
use zenoh::qos::CongestionControl;

use crate::config::ZenohConfig;

/// Builds the zenoh configuration (also used by `tail`).
pub fn zenoh_config(z: &ZenohConfig) -> anyhow::Result<zenoh::Config> {
    let json = serde_json::json!({
        "mode": z.mode.as_str(),
        "listen": { "endpoints": z.listen },
        "connect": { "endpoints": z.connect },
        "scouting": { "multicast": { "enabled": z.multicast_scouting } },
    });
    zenoh::Config::from_json5(&json.to_string())
        .map_err(|e| anyhow::anyhow!("invalid zenoh configuration: {e}"))
}

/// Opens the session; fails clearly when a listen endpoint cannot be bound.
pub async fn open(z: &ZenohConfig) -> anyhow::Result<zenoh::Session> {
    let config = zenoh_config(z)?;
    zenoh::open(config).await.map_err(|e| anyhow::anyhow!("{e}")).with_context(|| {
        format!(
            "cannot open the zenoh session (listen on {:?}); is another venue-edge running, or is the port taken? Change [zenoh] listen",
            z.listen
        )
    })
}

/// A publisher for one stream key. Metadata must not be dropped by zenoh's queues,
/// so puts block (in the sender task, never in capture) under congestion. Not
/// `express`: zenoh sends at once when its queue is idle anyway, and batching under
/// load is what lets a backlog drain at full speed after an outage.
pub async fn publisher(
    session: &zenoh::Session,
    key: String,
) -> anyhow::Result<zenoh::pubsub::Publisher<'static>> {
    session
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .await
        .map_err(|e| anyhow::anyhow!("cannot declare a zenoh publisher on {key}: {e}"))
}
