//! `venue-edge tail`: subscribe to a key expression and print each message as one
//! JSON line, decoded as `docs/wire.md` describes.

use std::io::Write as _;

use anyhow::Context as _;
use venue_proto::{StreamKey, StreamKind};

use crate::config::{ZenohConfig, ZenohMode};
use crate::uplink;

/// Prints messages on `key` until `count` have been printed (or forever).
/// Unless `resends` is set, copies of spooled records the box sends again (no ack
/// yet) are skipped: each (key, incarnation, seq) prints once.
pub async fn tail(
    connect: Vec<String>,
    key: &str,
    count: Option<u64>,
    resends: bool,
) -> anyhow::Result<()> {
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
    let mut seen = Seen::default();
    let stdout = std::io::stdout();
    while count.is_none_or(|c| printed < c) {
        let sample = subscriber
            .recv_async()
            .await
            .map_err(|e| anyhow::anyhow!("subscription ended: {e}"))?;
        let key = sample.key_expr().as_str().to_string();
        let payload = sample.payload().to_bytes();
        if !resends && seen.is_copy(&key, &payload) {
            continue;
        }
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

/// Highest sequence printed per (key, incarnation) of spooled streams.
#[derive(Debug, Default)]
struct Seen(std::collections::HashMap<(String, u64), u64>);

impl Seen {
    fn is_copy(&mut self, key: &str, payload: &[u8]) -> bool {
        let spooled = StreamKey::parse(key).is_ok_and(|k| {
            matches!(
                k.stream,
                StreamKind::Meta | StreamKind::Event | StreamKind::Video
            )
        });
        let Some(h) = spooled
            .then(|| venue_proto::peek_header(payload).ok())
            .flatten()
        else {
            return false;
        };
        let k = (key.to_string(), h.incarnation);
        match self.0.get_mut(&k) {
            Some(highest) if h.seq <= *highest => true,
            Some(highest) => {
                *highest = h.seq;
                false
            }
            None => {
                self.0.insert(k, h.seq);
                false
            }
        }
    }
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

    fn meta(seq: u64) -> Vec<u8> {
        let id = |s: &str| venue_proto::Id::new(s).unwrap_or_else(|e| panic!("{e}"));
        let msg = venue_proto::FrameMeta {
            header: venue_proto::Header {
                schema: venue_proto::SCHEMA_VERSION,
                venue: id("v"),
                box_id: id("b"),
                camera: id("c"),
                incarnation: 7,
                seq,
                capture_ns: 0,
                timecode: venue_proto::Timecode::from_unix_ns(0, 30),
            },
            frame_seq: seq,
            width: 16,
            height: 16,
            format: venue_proto::PixelFormat::Nv12,
            stats: venue_proto::FrameStats {
                luma_mean: 0.0,
                luma_min: 0,
                luma_max: 0,
                motion: 0.0,
            },
            detections: Vec::new(),
            mask: None,
        };
        venue_proto::encode(&msg).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn resent_copies_print_once() {
        let mut seen = Seen::default();
        let key = "venue/v/b/c/meta";
        assert!(!seen.is_copy(key, &meta(0)));
        assert!(!seen.is_copy(key, &meta(1)));
        assert!(seen.is_copy(key, &meta(0)), "resend of 0");
        assert!(seen.is_copy(key, &meta(1)), "resend of 1");
        assert!(!seen.is_copy(key, &meta(2)));
        // Health is not spooled: never treated as a copy.
        assert!(!seen.is_copy("venue/v/b/c/health", &meta(2)));
    }

    #[test]
    fn bad_payload_and_key_render_as_errors() {
        let line = render("venue/a/b/c/meta", &[0xff, 0x00]);
        assert!(line.contains("\"error\""), "{line}");
        let line = render("other/a/b/c/meta", &[]);
        assert!(line.contains("does not start"), "{line}");
    }
}
