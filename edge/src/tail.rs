//! `venue-edge tail`: subscribe to a key expression and print each message as one
//! JSON line, decoded as `docs/wire.md` describes.

use std::io::Write as _;

use anyhow::Context as _;
use venue_proto::StreamKey;

use crate::config::{ZenohConfig, ZenohMode};
use crate::uplink;

/// Prints messages on `key` until `count` have been printed (or forever).
pub async fn tail(connect: Vec<String>, key: &str, count: Option<u64>) -> anyhow::Result<()> {
    let z = ZenohConfig {
        mode: ZenohMode::Peer,
        listen: Vec::new(),
        connect,
        multicast_scouting: false,
    };
    let session = zenoh::open(uplink::zenoh_config(&z)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot open a zenoh session")?;
    let subscriber = session
        .declare_subscriber(key)
        .await
        .map_err(|e| anyhow::anyhow!("invalid key expression {key:?}: {e}"))?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    while count.is_none_or(|c| printed < c) {
        let sample = subscriber
            .recv_async()
            .await
            .map_err(|e| anyhow::anyhow!("subscription ended: {e}"))?;
        let key = sample.key_expr().as_str().to_string();
        let payload = sample.payload().to_bytes();
        let line = render(&key, &payload);
        let mut out = stdout.lock();
        if writeln!(out, "{line}").is_err() {
            break; // stdout closed (e.g. piped into `head`)
        }
        let _ = out.flush();
        printed += 1;
    }
    let _ = session.close().await;
    Ok(())
}

/// One JSON line for a sample: the decoded message with its key, or the error.
pub fn render(key: &str, payload: &[u8]) -> String {
    let decoded = StreamKey::parse(key)
        .map_err(|e| e.to_string())
        .and_then(|k| venue_proto::decode_any(k.stream, payload).map_err(|e| e.to_string()));
    let value = match decoded {
        Ok(msg) => match serde_json::to_value(&msg) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.insert("key".into(), key.into());
                serde_json::Value::Object(map)
            }
            Ok(other) => other,
            Err(e) => serde_json::json!({ "key": key, "error": e.to_string() }),
        },
        Err(e) => serde_json::json!({ "key": key, "error": e, "bytes": payload.len() }),
    };
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_payload_and_key_render_as_errors() {
        let line = render("venue/a/b/c/meta", &[0xff, 0x00]);
        assert!(line.contains("\"error\""), "{line}");
        let line = render("other/a/b/c/meta", &[]);
        assert!(line.contains("does not start"), "{line}");
    }
}
