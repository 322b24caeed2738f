//! TOML → [`Config`]: a span-keeping walk over the document that reports every
//! unknown key, wrong type, out-of-range value and duplicate id with its position.

mod inference;
mod tagging;
mod v4l2;
mod video;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use toml_span::Span;
use toml_span::value::{Key, Table, Value, ValueInner};
use venue_proto::{Id, StreamKind};

use super::{
    CameraConfig, Config, ConfigError, ConfigErrors, DEFAULT_SPOOL_DIR, HealthConfig,
    MetricsConfig, MqttClientCert, MqttConfig, MqttTls, PipelineConfig, SourceConfig, SpoolConfig,
    UplinkConfig, ZenohConfig, ZenohMode,
};

/// Parses and validates `text`; `file` names it in error messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx {
        text,
        file,
        errors: Vec::new(),
    };
    let mut root = match toml_span::parse(text) {
        Ok(v) => v,
        Err(e) => {
            ctx.error(e.span, format!("invalid TOML: {e}"));
            return Err(ctx.finish());
        }
    };
    let config = parse_root(&mut ctx, &mut root);
    match config {
        Some(c) if ctx.errors.is_empty() => Ok(c),
        _ => Err(ctx.finish()),
    }
}

struct Ctx<'t> {
    text: &'t str,
    file: &'t str,
    errors: Vec<(usize, ConfigError)>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Span, message: String) {
        let (line, column) = line_col(self.text, span.start);
        let e = ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message,
        };
        self.errors.push((span.start, e));
    }

    fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(pos, _)| *pos);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = text.get(..pos).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A table being consumed key by key; whatever is left at the end is unknown.
struct TableWalk<'de> {
    path: String,
    span: Span,
    map: Table<'de>,
    known: &'static [&'static str],
}

impl<'de> TableWalk<'de> {
    fn new(
        ctx: &mut Ctx<'_>,
        path: &str,
        value: &mut Value<'de>,
        known: &'static [&'static str],
    ) -> Option<Self> {
        let span = value.span;
        match value.take() {
            ValueInner::Table(map) => Some(Self {
                path: path.to_string(),
                span,
                map,
                known,
            }),
            other => {
                ctx.error(
                    span,
                    format!("{path}: expected a table, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn take(&mut self, key: &'static str) -> Option<(Key<'de>, Value<'de>)> {
        debug_assert!(self.known.contains(&key));
        self.map.remove_entry(key)
    }

    /// Span of a key's value, or of the table when the key is absent.
    fn value_span(&self, key: &str) -> Span {
        self.map.get(key).map_or(self.span, |v| v.span)
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn missing(&self, ctx: &mut Ctx<'_>, key: &str) {
        let where_ = if self.path.is_empty() {
            "the top level".to_string()
        } else {
            format!("[{}]", self.path)
        };
        ctx.error(
            self.span,
            format!("missing required key \"{key}\" in {where_}"),
        );
    }

    /// Reports every key nobody asked for.
    fn finish(self, ctx: &mut Ctx<'_>) {
        for (key, _) in self.map {
            let where_ = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            ctx.error(
                key.span,
                format!(
                    "unknown key \"{}\" {where_}; expected one of: {}",
                    key.name,
                    self.known.join(", ")
                ),
            );
        }
    }
}

fn type_name(v: &ValueInner<'_>) -> &'static str {
    match v {
        ValueInner::String(_) => "a string",
        ValueInner::Integer(_) => "an integer",
        ValueInner::Float(_) => "a float",
        ValueInner::Boolean(_) => "a boolean",
        ValueInner::Array(_) => "an array",
        ValueInner::Table(_) => "a table",
    }
}

fn int(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    range: RangeInclusive<i64>,
) -> Option<Option<i64>> {
    let (_, mut v) = t.take(key)?;
    let path = t.key_path(key);
    Some(match v.take() {
        ValueInner::Integer(i) if range.contains(&i) => Some(i),
        ValueInner::Integer(i) => {
            ctx.error(
                v.span,
                format!(
                    "{path}: {i} is out of range; expected {}..={}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
        other => {
            ctx.error(
                v.span,
                format!("{path}: expected an integer, found {}", type_name(&other)),
            );
            None
        }
    })
}

/// An integer key with a default; `None` only when the value present is invalid.
fn int_or(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    range: RangeInclusive<i64>,
    default: i64,
) -> Option<i64> {
    int(ctx, t, key, range).unwrap_or(Some(default))
}

fn string<'de>(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'de>,
    key: &'static str,
) -> Option<Option<(String, Span)>> {
    let (_, mut v) = t.take(key)?;
    let path = t.key_path(key);
    Some(match v.take() {
        ValueInner::String(s) => Some((s.into_owned(), v.span)),
        other => {
            ctx.error(
                v.span,
                format!("{path}: expected a string, found {}", type_name(&other)),
            );
            None
        }
    })
}

fn boolean(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    default: bool,
) -> Option<bool> {
    let Some((_, mut v)) = t.take(key) else {
        return Some(default);
    };
    let path = t.key_path(key);
    match v.take() {
        ValueInner::Boolean(b) => Some(b),
        other => {
            ctx.error(
                v.span,
                format!("{path}: expected a boolean, found {}", type_name(&other)),
            );
            None
        }
    }
}

/// How an array of names is read (`formats = ["nv12", "yuyv"]`).
struct NameList<'a, T> {
    /// One item, for messages ("format").
    what: &'a str,
    /// The allowed names, for messages ("nv12, yuyv, mjpeg").
    expected: &'a str,
    parse: &'a dyn Fn(&str) -> Option<T>,
    /// An empty array is an error.
    non_empty: bool,
    /// A name listed twice is an error.
    unique: bool,
}

/// An array of names, each parsed by `spec.parse`: `None` when `key` is absent,
/// `Some(None)` when the value is invalid (every problem reported with its place).
fn name_list<T: PartialEq>(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    spec: &NameList<'_, T>,
) -> Option<Option<Vec<T>>> {
    let path = t.key_path(key);
    let (_, mut v) = t.take(key)?;
    let (what, expected) = (spec.what, spec.expected);
    let ValueInner::Array(items) = v.take() else {
        ctx.error(
            v.span,
            format!("{path}: expected an array of {what} names ({expected})"),
        );
        return Some(None);
    };
    if spec.non_empty && items.is_empty() {
        ctx.error(v.span, format!("{path}: must name at least one {what}"));
        return Some(None);
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, mut item) in items.into_iter().enumerate() {
        let span = item.span;
        let problem = match item.take() {
            ValueInner::String(name) => match (spec.parse)(&name) {
                Some(x) if spec.unique && out.contains(&x) => {
                    Some(format!("\"{name}\" is listed twice"))
                }
                Some(x) => {
                    out.push(x);
                    None
                }
                None => Some(format!(
                    "\"{name}\" is not a {what}; expected one of: {expected}"
                )),
            },
            other => Some(format!("expected a string, found {}", type_name(&other))),
        };
        if let Some(problem) = problem {
            ctx.error(span, format!("{path}[{i}]: {problem}"));
            ok = false;
        }
    }
    Some(ok.then_some(out))
}

fn id(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>, key: &'static str) -> Option<(Id, Span)> {
    match string(ctx, t, key) {
        None => {
            t.missing(ctx, key);
            None
        }
        Some(None) => None,
        Some(Some((s, span))) => match Id::new(&s) {
            Ok(id) if s != venue_proto::BOX_CAMERA => Some((id, span)),
            Ok(_) => {
                ctx.error(
                    span,
                    format!(
                        "{}: \"{s}\" is reserved for box-level messages",
                        t.key_path(key)
                    ),
                );
                None
            }
            Err(e) => {
                ctx.error(span, format!("{}: {e}", t.key_path(key)));
                None
            }
        },
    }
}

/// Checks a zenoh endpoint's shape: `proto/address`, with a transport this build has.
fn endpoint(ctx: &mut Ctx<'_>, path: &str, s: &str, span: Span) -> Option<String> {
    let Some((proto, addr)) = s.split_once('/') else {
        ctx.error(span, format!("{path}: \"{s}\" is not an endpoint; expected \"proto/address:port\", e.g. \"tcp/127.0.0.1:7447\""));
        return None;
    };
    if proto != "tcp" {
        ctx.error(
            span,
            format!("{path}: transport \"{proto}\" is not built in; expected \"tcp\""),
        );
        return None;
    }
    let host_port = addr.split('#').next().unwrap_or(addr);
    let port_ok = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !port_ok {
        ctx.error(
            span,
            format!("{path}: \"{s}\" needs an address and a port, e.g. \"tcp/127.0.0.1:7447\""),
        );
        return None;
    }
    Some(s.to_string())
}

/// Checks an MQTT broker URL: `mqtt://HOST:PORT` or `mqtts://HOST:PORT` (TLS),
/// nothing else (no credentials, path or query). Returns whether it is TLS, the
/// host (IPv6 unbracketed) and port.
fn mqtt_url(ctx: &mut Ctx<'_>, path: &str, s: &str, span: Span) -> Option<(bool, String, u16)> {
    let Some((scheme, rest)) = s.split_once("://") else {
        ctx.error(span, format!("{path}: \"{s}\" is not a broker URL; expected \"mqtt://HOST:PORT\", e.g. \"mqtt://127.0.0.1:1883\""));
        return None;
    };
    let tls = match scheme {
        "mqtt" => false,
        "mqtts" => true,
        _ => {
            ctx.error(
                span,
                format!("{path}: scheme \"{scheme}\" is not supported; expected \"mqtt\" or \"mqtts\" (TLS)"),
            );
            return None;
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        ctx.error(
            span,
            format!(
                "{path}: \"{s}\" has a user, path or query; expected just \"mqtt://HOST:PORT\""
            ),
        );
        return None;
    }
    let host_port = match rest.strip_prefix('[') {
        // An IPv6 literal: [addr]:port.
        Some(v6) => v6
            .split_once("]:")
            .filter(|(h, _)| h.parse::<std::net::Ipv6Addr>().is_ok()),
        None => rest.rsplit_once(':').filter(|(h, _)| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        }),
    };
    match host_port {
        Some((h, p)) if !h.is_empty() => match p.parse::<u16>() {
            Ok(port) if port > 0 => return Some((tls, h.to_string(), port)),
            _ => {}
        },
        _ => {}
    }
    ctx.error(
        span,
        format!("{path}: \"{s}\" needs a host and a port, e.g. \"mqtt://127.0.0.1:1883\""),
    );
    None
}

/// The `[mqtt]` section: `None` inside when absent or `enabled = false`. Values are
/// checked even when it is off, so switching it on holds no surprise.
fn mqtt(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    present: bool,
    ids: Option<&(Id, Id, Option<Duration>)>,
) -> Option<Option<MqttConfig>> {
    let enabled = boolean(ctx, t, "enabled", present);
    let url = match string(ctx, t, "url") {
        None => Some(None),
        Some(None) => None,
        Some(Some((s, span))) => mqtt_url(ctx, "mqtt.url", &s, span).map(|hp| Some((s, hp))),
    };
    let client_id = match string(ctx, t, "client_id") {
        None => Some(None),
        Some(None) => None,
        Some(Some((s, span))) => {
            let ok = (1..=256).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
            if !ok {
                ctx.error(span, format!("mqtt.client_id: \"{s}\" must be 1-256 characters of letters, digits, '-', '_', '.' and ':'"));
            }
            ok.then_some(Some(s))
        }
    };
    let keep_alive = int_or(ctx, t, "keep_alive_s", 5..=600, 30);
    let streams = mqtt_streams(ctx, t);
    let ca_file = pem_file(ctx, t, "ca_file", crate::mqtt::tls::read_certificates);
    let cert_file = pem_file(ctx, t, "cert_file", crate::mqtt::tls::read_certificates);
    let key_file = pem_file(ctx, t, "key_file", crate::mqtt::tls::read_private_key);
    let qos = match t.take("qos") {
        None => Some(()),
        Some((_, mut v)) => match v.take() {
            ValueInner::Integer(1) => Some(()),
            ValueInner::Integer(i) => {
                ctx.error(
                    v.span,
                    format!("mqtt.qos: {i} is not supported; expected 1 (at least once)"),
                );
                None
            }
            other => {
                ctx.error(
                    v.span,
                    format!("mqtt.qos: expected an integer, found {}", type_name(&other)),
                );
                None
            }
        },
    };
    if enabled == Some(true) && url == Some(None) {
        t.missing(ctx, "url");
        return None;
    }
    let (enabled, url, client_id, keep_alive, streams, ()) =
        (enabled?, url?, client_id?, keep_alive?, streams?, qos?);
    let (ca_file, cert_file, key_file) = (ca_file?, cert_file?, key_file?);
    let tls_url = url.as_ref().is_some_and(|(_, (tls, _, _))| *tls);
    let client = match (cert_file, key_file) {
        (Some(cert), Some(key)) => Some(MqttClientCert {
            cert_file: cert.0,
            cert_pem: cert.1,
            key_file: key.0,
            key_pem: key.1,
        }),
        (None, None) => None,
        (Some((_, _, span)), None) | (None, Some((_, _, span))) => {
            ctx.error(
                span,
                "mqtt.cert_file and mqtt.key_file go together: set both for mutual TLS, or neither"
                    .into(),
            );
            return None;
        }
    };
    let tls = match ca_file {
        Some((ca_file, _, span)) if !tls_url => {
            ctx.error(
                span,
                format!(
                    "mqtt.ca_file: \"{}\" is for TLS; the url must start with \"mqtts://\"",
                    ca_file.display()
                ),
            );
            return None;
        }
        Some((ca_file, ca_pem, _)) => Some(MqttTls {
            ca_file,
            ca_pem,
            client,
        }),
        None if tls_url => {
            let span = t.value_span("url");
            ctx.error(span, "mqtt.url: mqtts:// needs mqtt.ca_file, the CA certificate (PEM) that signed the broker's certificate".into());
            return None;
        }
        None if client.is_some() => {
            ctx.error(t.span, "mqtt.cert_file/key_file: client certificates need TLS: an \"mqtts://\" url and mqtt.ca_file".into());
            return None;
        }
        None => None,
    };
    if let Some(tls) = &tls
        && let Err(e) = crate::mqtt::tls::client_config(tls)
    {
        ctx.error(t.span, format!("[mqtt] TLS: {e}"));
        return None;
    }
    let Some((url, (_, host, port))) = url.filter(|_| enabled) else {
        return Some(None);
    };
    let client_id = match client_id {
        Some(id) => id,
        None => {
            let (venue, box_id, _) = ids?;
            format!("venue-edge-{venue}-{box_id}")
        }
    };
    Some(Some(MqttConfig {
        url,
        host,
        port,
        client_id,
        keep_alive: Duration::from_secs(keep_alive.unsigned_abs()),
        streams,
        tls,
    }))
}

/// A PEM file key of `[mqtt]`: the path, the file's bytes (checked by `read`) and
/// the value's span. `Some(None)` when absent.
#[allow(clippy::type_complexity)]
fn pem_file(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    read: fn(&std::path::Path) -> Result<Vec<u8>, String>,
) -> Option<Option<(PathBuf, Vec<u8>, Span)>> {
    match string(ctx, t, key) {
        None => Some(None),
        Some(None) => None,
        Some(Some((s, span))) => {
            let path = PathBuf::from(&s);
            match read(&path) {
                Ok(pem) => Some(Some((path, pem, span))),
                Err(e) => {
                    ctx.error(span, format!("mqtt.{key}: {e}"));
                    None
                }
            }
        }
    }
}

/// `mqtt.streams`: which streams MQTT carries, from "health" and "event"; each
/// at most once. Default: health only. Events over MQTT hold the spool until an
/// MQTT consumer acknowledges them, so they are carried only when asked for: a
/// broker whose subscribers never acknowledge would otherwise fill the spool and,
/// at its cap, cost records on zenoh too.
fn mqtt_streams(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<Vec<StreamKind>> {
    const ALLOWED: [StreamKind; 2] = [StreamKind::Health, StreamKind::Event];
    let spec = NameList {
        what: "stream",
        expected: "health, event",
        parse: &|s: &str| ALLOWED.into_iter().find(|k| k.as_str() == s),
        non_empty: false,
        unique: true,
    };
    name_list(ctx, t, "streams", &spec).unwrap_or(Some(vec![StreamKind::Health]))
}

fn endpoints(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    default: &[&str],
) -> Option<Vec<String>> {
    let path = t.key_path(key);
    let Some((_, mut v)) = t.take(key) else {
        return Some(default.iter().map(|s| s.to_string()).collect());
    };
    match v.take() {
        ValueInner::Array(items) => {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, mut item) in items.into_iter().enumerate() {
                let p = format!("{path}[{i}]");
                match item.take() {
                    ValueInner::String(s) => match endpoint(ctx, &p, &s, item.span) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    },
                    other => {
                        ctx.error(
                            item.span,
                            format!("{p}: expected a string, found {}", type_name(&other)),
                        );
                        ok = false;
                    }
                }
            }
            ok.then_some(out)
        }
        other => {
            ctx.error(
                v.span,
                format!(
                    "{path}: expected an array of endpoint strings, found {}",
                    type_name(&other)
                ),
            );
            None
        }
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(v.unsigned_abs())
}

/// Takes an optional sub-table; a missing one is walked as empty so defaults apply.
fn section<'de>(
    ctx: &mut Ctx<'_>,
    root: &mut TableWalk<'de>,
    key: &'static str,
    known: &'static [&'static str],
) -> Option<TableWalk<'de>> {
    match root.take(key) {
        Some((_, mut v)) => TableWalk::new(ctx, key, &mut v, known),
        None => Some(TableWalk {
            path: key.to_string(),
            span: root.span,
            map: Table::new(),
            known,
        }),
    }
}

fn parse_root(ctx: &mut Ctx<'_>, root: &mut Value<'_>) -> Option<Config> {
    let mut top = TableWalk::new(
        ctx,
        "",
        root,
        &[
            "box",
            "zenoh",
            "metrics",
            "health",
            "pipeline",
            "spool",
            "uplink",
            "mqtt",
            "inference",
            "tagging",
            "video",
            "cameras",
        ],
    )?;

    let ids = match top.take("box") {
        Some((_, mut v)) => {
            TableWalk::new(ctx, "box", &mut v, &["venue", "id", "allocator_trim_s"]).and_then(
                |mut t| {
                    let venue = id(ctx, &mut t, "venue");
                    let box_id = id(ctx, &mut t, "id");
                    let trim = int_or(ctx, &mut t, "allocator_trim_s", 0..=3600, 60);
                    t.finish(ctx);
                    let trim = trim?;
                    let trim = (trim > 0).then(|| Duration::from_secs(trim as u64));
                    Some((venue?.0, box_id?.0, trim))
                },
            )
        }
        None => {
            top.missing(ctx, "box");
            None
        }
    };
    let zenoh = section(
        ctx,
        &mut top,
        "zenoh",
        &["mode", "listen", "connect", "multicast_scouting"],
    )
    .and_then(|mut t| {
        let mode = match string(ctx, &mut t, "mode") {
            None => Some(ZenohMode::Peer),
            Some(None) => None,
            Some(Some((s, span))) => match s.as_str() {
                "peer" => Some(ZenohMode::Peer),
                "client" => Some(ZenohMode::Client),
                _ => {
                    ctx.error(
                        span,
                        format!("zenoh.mode: \"{s}\" is not a mode; expected one of: peer, client"),
                    );
                    None
                }
            },
        };
        let listen = endpoints(ctx, &mut t, "listen", &["tcp/127.0.0.1:7447"]);
        let connect = endpoints(ctx, &mut t, "connect", &[]);
        let multicast_scouting = boolean(ctx, &mut t, "multicast_scouting", false);
        t.finish(ctx);
        Some(ZenohConfig {
            mode: mode?,
            listen: listen?,
            connect: connect?,
            multicast_scouting: multicast_scouting?,
        })
    });
    let metrics = section(ctx, &mut top, "metrics", &["listen"]).and_then(|mut t| {
        let listen = match string(ctx, &mut t, "listen") {
            None => Some(Some(SocketAddr::from(([127, 0, 0, 1], 9464)))),
            Some(None) => None,
            Some(Some((s, _))) if s == "off" => Some(None),
            Some(Some((s, span))) => match s.parse::<SocketAddr>() {
                Ok(a) => Some(Some(a)),
                Err(_) => {
                    ctx.error(span, format!("metrics.listen: \"{s}\" is not an address; expected \"IP:PORT\" (e.g. \"127.0.0.1:9464\") or \"off\""));
                    None
                }
            },
        };
        t.finish(ctx);
        Some(MetricsConfig { listen: listen? })
    });
    let health = section(
        ctx,
        &mut top,
        "health",
        &["interval_ms", "stall_timeout_ms"],
    )
    .and_then(|mut t| {
        let interval = int_or(ctx, &mut t, "interval_ms", 100..=60_000, 1000);
        let stall = int_or(ctx, &mut t, "stall_timeout_ms", 100..=600_000, 2000);
        t.finish(ctx);
        Some(HealthConfig {
            interval: ms(interval?),
            stall_timeout: ms(stall?),
        })
    });
    let pipeline = section(ctx, &mut top, "pipeline", &["queue_depth", "restart_backoff_min_ms", "restart_backoff_max_ms"])
        .and_then(|mut t| {
            let depth = int_or(ctx, &mut t, "queue_depth", 1..=64, 4);
            let min_span = t.value_span("restart_backoff_min_ms");
            let min = int_or(ctx, &mut t, "restart_backoff_min_ms", 10..=600_000, 250);
            let max = int_or(ctx, &mut t, "restart_backoff_max_ms", 10..=600_000, 10_000);
            t.finish(ctx);
            let (min, max) = (min?, max?);
            if min > max {
                ctx.error(min_span, format!(
                    "pipeline.restart_backoff_min_ms ({min}) must not exceed pipeline.restart_backoff_max_ms ({max})"
                ));
                return None;
            }
            Some(PipelineConfig { queue_depth: depth? as usize, restart_backoff_min: ms(min), restart_backoff_max: ms(max) })
        });
    let spool = section(
        ctx,
        &mut top,
        "spool",
        &[
            "dir",
            "max_mb",
            "segment_mb",
            "fsync_interval_ms",
            "cache_kb",
        ],
    )
    .and_then(|mut t| {
        let dir = match string(ctx, &mut t, "dir") {
            None => Some(PathBuf::from(DEFAULT_SPOOL_DIR)),
            Some(None) => None,
            Some(Some((s, span))) if s.trim().is_empty() => {
                ctx.error(span, "spool.dir: must not be empty".to_string());
                None
            }
            Some(Some((s, _))) => Some(PathBuf::from(s)),
        };
        let max_mb = int_or(ctx, &mut t, "max_mb", 1..=1_048_576, 1024);
        let segment_mb = int_or(ctx, &mut t, "segment_mb", 1..=1024, 16);
        let fsync = int_or(ctx, &mut t, "fsync_interval_ms", 1..=10_000, 10);
        let cache_kb = int_or(ctx, &mut t, "cache_kb", 64..=1_048_576, 4096);
        t.finish(ctx);
        Some(SpoolConfig {
            dir: dir?,
            max_bytes: max_mb? as u64 * 1024 * 1024,
            segment_bytes: segment_mb? as u64 * 1024 * 1024,
            fsync_interval: ms(fsync?),
            cache_bytes: cache_kb? as usize * 1024,
            // Filled in from [mqtt] below.
            mqtt_streams: Vec::new(),
        })
    });
    let uplink =
        section(ctx, &mut top, "uplink", &["window", "resend_after_ms"]).and_then(|mut t| {
            let window = int_or(ctx, &mut t, "window", 1..=1_000_000, 4096);
            let resend = int_or(ctx, &mut t, "resend_after_ms", 50..=600_000, 1000);
            t.finish(ctx);
            Some(UplinkConfig {
                window: window? as u64,
                resend_after: ms(resend?),
            })
        });
    let present = top.map.contains_key("mqtt");
    let mqtt = section(
        ctx,
        &mut top,
        "mqtt",
        &[
            "enabled",
            "url",
            "client_id",
            "keep_alive_s",
            "qos",
            "streams",
            "ca_file",
            "cert_file",
            "key_file",
        ],
    )
    .and_then(|mut t| {
        let mqtt = mqtt(ctx, &mut t, present, ids.as_ref());
        t.finish(ctx);
        mqtt
    });
    let inference = section(ctx, &mut top, "inference", inference::KEYS).and_then(|mut t| {
        let inference = inference::inference(ctx, &mut t);
        t.finish(ctx);
        inference
    });
    let tagging = section(ctx, &mut top, "tagging", tagging::KEYS).and_then(|mut t| {
        let tagging = tagging::tagging(ctx, &mut t);
        t.finish(ctx);
        tagging
    });
    let video = section(ctx, &mut top, "video", video::KEYS).and_then(|mut t| {
        let video = video::video(ctx, &mut t);
        t.finish(ctx);
        video
    });
    let cameras = match top.take("cameras") {
        Some((_, v)) => cameras(ctx, v),
        None => {
            top.missing(ctx, "cameras");
            None
        }
    };
    top.finish(ctx);
    let (venue, box_id, allocator_trim) = ids?;
    let mut spool = spool?;
    let mqtt = mqtt?;
    // A spooled stream MQTT carries is kept until MQTT acknowledges it too.
    spool.mqtt_streams = mqtt.as_ref().map_or_else(Vec::new, |m| {
        m.streams
            .iter()
            .copied()
            .filter(|k| crate::delivery::SPOOLED.contains(k))
            .collect()
    });
    Some(Config {
        venue,
        box_id,
        allocator_trim,
        zenoh: zenoh?,
        metrics: metrics?,
        health: health?,
        pipeline: pipeline?,
        spool,
        uplink: uplink?,
        mqtt,
        inference: inference?,
        tagging: tagging?,
        video: video?,
        cameras: cameras?,
    })
}

fn cameras(ctx: &mut Ctx<'_>, mut v: Value<'_>) -> Option<Vec<CameraConfig>> {
    let span = v.span;
    let items = match v.take() {
        ValueInner::Array(items) => items,
        other => {
            ctx.error(
                span,
                format!(
                    "cameras: expected an array of tables ([[cameras]]), found {}",
                    type_name(&other)
                ),
            );
            return None;
        }
    };
    if items.is_empty() || items.len() > 64 {
        ctx.error(
            span,
            format!(
                "cameras: {} cameras configured; expected 1..=64",
                items.len()
            ),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut first_seen: HashMap<Id, usize> = HashMap::new();
    for (i, mut item) in items.into_iter().enumerate() {
        let path = format!("cameras[{i}]");
        let Some(mut t) = TableWalk::new(
            ctx,
            &path,
            &mut item,
            &["id", "width", "height", "fps", "inference_fps", "source"],
        ) else {
            ok = false;
            continue;
        };
        let cam_id = id(ctx, &mut t, "id");
        if let Some((cam_id, span)) = &cam_id {
            let line = line_col(ctx.text, span.start).0;
            if let Some(first) = first_seen.get(cam_id) {
                ctx.error(*span, format!("{path}.id: duplicate camera id \"{cam_id}\" (first defined on line {first})"));
                ok = false;
            } else {
                first_seen.insert(cam_id.clone(), line);
            }
        }
        let spans = [t.value_span("width"), t.value_span("height")];
        let width = int_or(ctx, &mut t, "width", 16..=7680, 1280);
        let height = int_or(ctx, &mut t, "height", 16..=4320, 720);
        let dims = [("width", width), ("height", height)];
        for ((key, value), span) in dims.into_iter().zip(spans) {
            if let Some(v) = value.filter(|v| v % 2 != 0) {
                ctx.error(
                    span,
                    format!("{path}.{key}: {v} is odd; 4:2:0 frames need an even {key}"),
                );
                ok = false;
            }
        }
        let fps = int_or(ctx, &mut t, "fps", 1..=240, 30);
        let inference_fps = int_or(ctx, &mut t, "inference_fps", 0..=240, 0);
        let source = match t.take("source") {
            Some((_, mut v)) => source(ctx, &format!("{path}.source"), &mut v),
            None => {
                t.missing(ctx, "source");
                None
            }
        };
        t.finish(ctx);
        match (cam_id, width, height, fps, inference_fps, source) {
            (Some((id, _)), Some(w), Some(h), Some(fps), Some(inf), Some(source)) => {
                out.push(CameraConfig {
                    id,
                    width: w as u32,
                    height: h as u32,
                    fps: fps as u32,
                    // More than the camera delivers means every frame.
                    inference_fps: (inf as u32).min(fps as u32),
                    source,
                })
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn source(ctx: &mut Ctx<'_>, path: &str, v: &mut Value<'_>) -> Option<SourceConfig> {
    let mut t = TableWalk::new(
        ctx,
        path,
        v,
        &["kind", "scene", "seed", "athletes", "fail_after_frames"],
    )?;
    let kind = match string(ctx, &mut t, "kind") {
        None => {
            t.missing(ctx, "kind");
            None
        }
        Some(k) => k,
    };
    let result = match kind {
        Some((k, _)) if k == "synthetic" => {
            let scene = match string(ctx, &mut t, "scene") {
                None => Some(venue_drivers::Scene::default()),
                Some(None) => None,
                Some(Some((s, span))) => {
                    match s.parse::<venue_drivers::Scene>() {
                        Ok(scene) => Some(scene),
                        Err(_) => {
                            ctx.error(
                            span,
                            format!("{path}.scene: \"{s}\" is not a scene; expected one of: rink, slope"),
                        );
                            None
                        }
                    }
                }
            };
            let seed = int_or(ctx, &mut t, "seed", 0..=i64::MAX, 1);
            let athletes = int_or(ctx, &mut t, "athletes", 0..=64, 4);
            let fail = int(ctx, &mut t, "fail_after_frames", 1..=i64::MAX);
            let fail = match fail {
                None => Some(None),
                Some(Some(n)) => Some(Some(n as u64)),
                Some(None) => None,
            };
            Some(SourceConfig::Synthetic {
                scene: scene?,
                seed: seed? as u64,
                athletes: athletes? as u32,
                fail_after_frames: fail?,
            })
        }
        Some((k, _)) if FEED_KINDS.contains(&k.as_str()) => feed_source(ctx, path, &mut t, &k),
        Some((k, _)) if k == "v4l2" => v4l2::source(ctx, path, &mut t),
        Some((k, span)) => {
            ctx.error(
                span,
                format!("{path}.kind: unknown source kind \"{k}\"; expected one of: synthetic, rtsp, srt, file, v4l2"),
            );
            // The keys of an unknown kind are not reported as unknown on top of that.
            return None;
        }
        None => None,
    };
    t.finish(ctx);
    result
}

// Network and file feeds: `kind = "rtsp" | "srt" | "file"` in [cameras.source].

const FEED_KINDS: &[&str] = &["rtsp", "srt", "file"];
const RTSP_KEYS: &[&str] = &[
    "kind",
    "url",
    "latency_ms",
    "stall_timeout_ms",
    "reconnect_min_ms",
    "reconnect_max_ms",
];
const FILE_KEYS: &[&str] = &[
    "kind",
    "path",
    "realtime",
    "repeat",
    "stall_timeout_ms",
    "reconnect_min_ms",
    "reconnect_max_ms",
];

/// Checks a feed URL's scheme and that it names a host (and, for SRT, a port).
fn feed_url(ctx: &mut Ctx<'_>, path: &str, kind: &str, url: &str, span: Span) -> Option<String> {
    let scheme = format!("{kind}://");
    let problem = match url.strip_prefix(&scheme) {
        None => Some(format!("must start with {scheme}")),
        Some(rest) => {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let host_port = authority.rsplit('@').next().unwrap_or("");
            let port = host_port.rsplit_once(':').map(|(_, p)| p);
            if host_port.is_empty() || host_port.starts_with(':') {
                Some("names no host".to_string())
            } else if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Some("contains whitespace".to_string())
            } else if kind == "srt"
                && port.is_none_or(|p| p.parse::<u16>().map_or(true, |p| p == 0))
            {
                Some("needs a port (srt://HOST:PORT)".to_string())
            } else if port.is_some_and(|p| !p.ends_with(']') && p.parse::<u16>().is_err()) {
                Some("has an invalid port".to_string())
            } else {
                None
            }
        }
    };
    match problem {
        None => Some(url.to_string()),
        Some(p) => {
            ctx.error(span, format!("{path}.url: \"{url}\" {p}"));
            None
        }
    }
}

fn feed_source(
    ctx: &mut Ctx<'_>,
    path: &str,
    t: &mut TableWalk<'_>,
    kind: &str,
) -> Option<SourceConfig> {
    use venue_drivers::gst::FeedKind;
    t.known = if kind == "file" { FILE_KEYS } else { RTSP_KEYS };
    let feed_kind = if kind == "file" {
        let file = match string(ctx, t, "path") {
            None => {
                t.missing(ctx, "path");
                None
            }
            Some(Some((p, span))) if p.trim().is_empty() => {
                ctx.error(span, format!("{path}.path: must not be empty"));
                None
            }
            Some(p) => p.map(|(p, _)| p),
        };
        let realtime = boolean(ctx, t, "realtime", true);
        let repeat = boolean(ctx, t, "repeat", false);
        Some(FeedKind::File {
            path: file?.into(),
            realtime: realtime?,
            repeat: repeat?,
        })
    } else {
        let url = match string(ctx, t, "url") {
            None => {
                t.missing(ctx, "url");
                None
            }
            Some(Some((u, span))) => feed_url(ctx, path, kind, &u, span),
            Some(None) => None,
        };
        url.map(|url| {
            if kind == "rtsp" {
                FeedKind::Rtsp { url }
            } else {
                FeedKind::Srt { url }
            }
        })
    };
    let latency = if kind == "file" {
        Some(0)
    } else {
        int_or(ctx, t, "latency_ms", 0..=10_000, 200)
    };
    let stall = int_or(ctx, t, "stall_timeout_ms", 100..=600_000, 5_000);
    let min_span = t.value_span("reconnect_min_ms");
    let min = int_or(ctx, t, "reconnect_min_ms", 10..=600_000, 500);
    let max = int_or(ctx, t, "reconnect_max_ms", 10..=600_000, 10_000);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        ctx.error(
            min_span,
            format!("{path}.reconnect_min_ms: {lo} is above reconnect_max_ms ({hi})"),
        );
        return None;
    }
    Some(SourceConfig::Feed(super::FeedSource {
        kind: feed_kind?,
        latency: ms(latency?),
        stall_timeout: ms(stall?),
        reconnect_min: ms(min?),
        reconnect_max: ms(max?),
    }))
}

#[cfg(test)]
mod feed_tests {
    use std::time::Duration;

    use venue_drivers::gst::FeedKind;

    use super::super::{FeedSource, SourceConfig};
    use super::parse;

    const BOX: &str = "[box]\nvenue = \"v\"\nid = \"b\"\n";

    fn source(body: &str) -> Result<SourceConfig, Vec<String>> {
        let text = format!("{BOX}[[cameras]]\nid = \"c1\"\n[cameras.source]\n{body}");
        parse(&text, "t.toml")
            .map(|c| c.cameras[0].source.clone())
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn feeds_parse_with_defaults() {
        let rtsp = source("kind = \"rtsp\"\nurl = \"rtsp://10.0.0.5:554/s1\"\n").unwrap();
        assert_eq!(
            rtsp,
            SourceConfig::Feed(FeedSource {
                kind: FeedKind::Rtsp {
                    url: "rtsp://10.0.0.5:554/s1".into()
                },
                latency: Duration::from_millis(200),
                stall_timeout: Duration::from_secs(5),
                reconnect_min: Duration::from_millis(500),
                reconnect_max: Duration::from_secs(10),
            })
        );
        let srt = source("kind = \"srt\"\nurl = \"srt://[::1]:9000?mode=caller\"\nlatency_ms = 120\nstall_timeout_ms = 900\n").unwrap();
        let SourceConfig::Feed(f) = srt else {
            panic!("feed")
        };
        assert_eq!(
            (f.latency, f.stall_timeout),
            (Duration::from_millis(120), Duration::from_millis(900))
        );
        let file =
            source("kind = \"file\"\npath = \"a.mp4\"\nrepeat = true\nrealtime = false\n").unwrap();
        let SourceConfig::Feed(f) = file else {
            panic!("feed")
        };
        assert_eq!(
            f.kind,
            FeedKind::File {
                path: "a.mp4".into(),
                realtime: false,
                repeat: true
            }
        );
    }

    #[test]
    fn bad_feeds_are_explained() {
        let cases: &[(&str, &str)] = &[
            (
                "kind = \"rtsp\"\n",
                "missing required key \"url\" in [cameras[0].source]",
            ),
            (
                "kind = \"rtsp\"\nurl = \"http://x/y\"\n",
                "\"http://x/y\" must start with rtsp://",
            ),
            ("kind = \"rtsp\"\nurl = \"rtsp:///y\"\n", "names no host"),
            (
                "kind = \"rtsp\"\nurl = \"rtsp://h:99999/y\"\n",
                "has an invalid port",
            ),
            ("kind = \"srt\"\nurl = \"srt://host\"\n", "needs a port"),
            ("kind = \"file\"\npath = \" \"\n", "path: must not be empty"),
            (
                "kind = \"file\"\npath = \"a\"\nurl = \"x\"\n",
                "unknown key \"url\"",
            ),
            (
                "kind = \"rtsp\"\nurl = \"rtsp://h/\"\nseed = 1\n",
                "unknown key \"seed\"",
            ),
            (
                "kind = \"rtsp\"\nurl = \"rtsp://h/\"\nstall_timeout_ms = 5\n",
                "5 is out of range",
            ),
            (
                "kind = \"rtsp\"\nurl = \"rtsp://h/\"\nreconnect_min_ms = 5000\nreconnect_max_ms = 100\n",
                "reconnect_min_ms: 5000 is above reconnect_max_ms (100)",
            ),
            (
                "kind = \"file\"\npath = \"a\"\nrepeat = 1\n",
                "expected a boolean",
            ),
        ];
        for (body, want) in cases {
            let errors = source(body).expect_err(body);
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(want) && e.starts_with("t.toml:")),
                "{body:?}: {errors:?} lacks {want:?}"
            );
        }
    }

    #[test]
    fn the_embedded_feed_and_v4l2_examples_are_valid() {
        // The commented feed and V4L2 cameras at the end of the default config, uncommented.
        let text = super::super::DEFAULT_TOML;
        let start = text.find("# Network and file feeds").expect("feed example");
        let example: String = text[start..]
            .lines()
            .filter_map(|l| {
                l.strip_prefix("#  ")
                    .or_else(|| l.strip_prefix("# ["))
                    .map(|r| {
                        if l.starts_with("# [") {
                            format!("[{r}")
                        } else {
                            r.to_string()
                        }
                    })
            })
            .map(|l| l.split(" #").next().unwrap_or("").to_string() + "\n")
            .collect();
        let config = parse(&format!("{BOX}{example}"), "t.toml")
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
        assert_eq!(config.cameras.len(), 3);
        assert!(
            config.cameras[..2]
                .iter()
                .all(|c| matches!(c.source, SourceConfig::Feed(_)))
        );
        match &config.cameras[2].source {
            // Three set, two implied: a manual exposure and white balance turn their
            // automatic modes off.
            SourceConfig::V4l2(v) => assert_eq!(v.controls.len(), 5, "{v:?}"),
            other => panic!("expected the V4L2 example, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 4));
    }

    const BOX: &str = "[box]\nvenue = \"v\"\nid = \"b\"\n";
    const CAM: &str = "[[cameras]]\nid = \"c1\"\n[cameras.source]\nkind = \"synthetic\"\n";

    fn errors(text: &str) -> Vec<String> {
        match parse(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(&format!("{BOX}{CAM}"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cameras.len(), 1);
        assert_eq!(
            (c.cameras[0].width, c.cameras[0].height, c.cameras[0].fps),
            (1280, 720, 30)
        );
        assert_eq!(c.zenoh.listen, vec!["tcp/127.0.0.1:7447".to_string()]);
        assert_eq!(
            c.metrics.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        assert_eq!(c.pipeline.queue_depth, 4);
        assert_eq!(c.health.interval, Duration::from_secs(1));
    }

    #[test]
    fn mqtt_is_off_unless_configured() {
        let off = |extra: &str| {
            parse(&format!("{BOX}{extra}{CAM}"), "t.toml")
                .unwrap_or_else(|e| panic!("{e}"))
                .mqtt
        };
        assert_eq!(off(""), None);
        assert_eq!(off("[mqtt]\nenabled = false\n"), None);
        assert_eq!(
            off("[mqtt]\nenabled = false\nurl = \"mqtt://b:1883\"\n"),
            None
        );
        let on = off("[mqtt]\nurl = \"mqtt://broker.venue.lan:1883\"\n").expect("mqtt on");
        assert_eq!(
            (on.host.as_str(), on.port, on.client_id.as_str()),
            ("broker.venue.lan", 1883, "venue-edge-v-b")
        );
        assert_eq!(on.keep_alive, Duration::from_secs(30));
        let v6 = off("[mqtt]\nurl = \"mqtt://[::1]:1884/\"\nclient_id = \"box:7\"\nkeep_alive_s = 600\nqos = 1\n")
            .expect("mqtt on");
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.client_id.as_str()),
            ("::1", 1884, "box:7")
        );
        assert_eq!(v6.keep_alive, Duration::from_secs(600));
        // Health only by default: events on MQTT stay in the spool until MQTT
        // acknowledges them too, so they are carried only when asked for.
        assert_eq!(on.streams, [StreamKind::Health]);
        let config = |extra: &str| {
            parse(&format!("{BOX}{extra}{CAM}"), "t.toml").unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(
            config("[mqtt]\nurl = \"mqtt://b:1\"\n")
                .spool
                .mqtt_streams
                .is_empty()
        );
        let both = config("[mqtt]\nurl = \"mqtt://b:1\"\nstreams = [\"health\", \"event\"]\n");
        assert_eq!(both.spool.mqtt_streams, [StreamKind::Event]);
        assert!(config("").spool.mqtt_streams.is_empty());
        for bad in [
            "mqtt://:1883",
            "mqtt://host:0",
            "mqtt://host:99999",
            "mqtt://::1:1883",
            "mqtt://[nope]:1883",
            "mqtt://host name:1",
        ] {
            assert!(
                parse(&format!("{BOX}[mqtt]\nurl = \"{bad}\"\n{CAM}"), "t.toml").is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = super::super::embedded_default().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cameras.len(), 2);
        assert_eq!(c.zenoh.mode, ZenohMode::Peer);
    }

    /// The commented `[mqtt]` example in the embedded default is valid as written,
    /// and switched on by `enabled = true`.
    #[test]
    fn embedded_default_mqtt_example_is_valid() {
        let uncomment = |enabled: &str| -> String {
            super::super::DEFAULT_TOML
                .lines()
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest)
                        if rest == "[mqtt]"
                            || rest.split_once(" = ").is_some_and(|(k, _)| {
                                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                            }) =>
                    {
                        rest.replace("enabled = false", enabled)
                    }
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let off = parse(&uncomment("enabled = false"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(off.mqtt, None);
        let on = parse(&uncomment("enabled = true"), "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let m = on.mqtt.expect("mqtt on");
        assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 1883));
        assert_eq!(m.client_id, "venue-edge-demo-venue-demo-box");
    }

    /// Each bad config with the exact errors it must produce.
    #[test]
    fn bad_configs_table() {
        let table: Vec<(String, Vec<&str>)> = vec![
            (
                format!(
                    "{BOX}[inference]\nbackend = \"tensorrt\"\nworkers = 0\nproviders = [\"cpu\", \"gpu\", 3]\n{CAM}"
                ),
                vec![
                    r#"t.toml:5:12: inference.backend: "tensorrt" is not a backend; expected one of: tract, onnxruntime"#,
                    "t.toml:6:11: inference.workers: 0 is out of range; expected 1..=64",
                    r#"t.toml:7:22: inference.providers[1]: "gpu" is not a provider; expected one of: tensorrt, cuda, cpu"#,
                    "t.toml:7:28: inference.providers[2]: expected a string, found an integer",
                ],
            ),
            (
                format!(
                    "{BOX}[[cameras]]\nid = \"c1\"\ninference_fps = -1\n[cameras.source]\nkind = \"synthetic\"\n"
                ),
                vec!["t.toml:6:17: cameras[0].inference_fps: -1 is out of range; expected 0..=240"],
            ),
            (
                "[box\nvenue = 1".into(),
                vec!["t.toml:1:5: invalid TOML: expected a right bracket, found a newline"],
            ),
            (
                format!("{BOX}venu = \"x\"\n{CAM}"),
                vec![
                    r#"t.toml:4:1: unknown key "venu" in [box]; expected one of: venue, id, allocator_trim_s"#,
                ],
            ),
            (
                format!("{BOX}allocator_trim_s = -1\n{CAM}"),
                vec!["t.toml:4:20: box.allocator_trim_s: -1 is out of range; expected 0..=3600"],
            ),
            (
                format!("{BOX}{CAM}fps = \"30\"\n"),
                vec![
                    r#"t.toml:8:1: unknown key "fps" in [cameras[0].source]; expected one of: kind, scene, seed, athletes, fail_after_frames"#,
                ],
            ),
            (
                format!(
                    "{BOX}[[cameras]]\nid = \"c1\"\nfps = \"30\"\n[cameras.source]\nkind = \"synthetic\"\n"
                ),
                vec!["t.toml:6:8: cameras[0].fps: expected an integer, found a string"],
            ),
            (
                format!(
                    "{BOX}[[cameras]]\nid = \"c1\"\nfps = 0\nwidth = 99999\n[cameras.source]\nkind = \"synthetic\"\n"
                ),
                vec![
                    "t.toml:6:7: cameras[0].fps: 0 is out of range; expected 1..=240",
                    "t.toml:7:9: cameras[0].width: 99999 is out of range; expected 16..=7680",
                ],
            ),
            (
                format!("{BOX}{CAM}{CAM}"),
                vec![
                    r#"t.toml:9:7: cameras[1].id: duplicate camera id "c1" (first defined on line 5)"#,
                ],
            ),
            (
                format!("[box]\nvenue = \"Bad Venue\"\n{CAM}"),
                vec![
                    "t.toml:1:1: missing required key \"id\" in [box]",
                    "t.toml:2:10: box.venue: identifier \"Bad Venue\" must start with a lowercase letter or digit and contain only lowercase letters, digits, '-' and '_'",
                ],
            ),
            (
                format!(
                    "{BOX}[[cameras]]\nid = \"_box\"\n[cameras.source]\nkind = \"v4l3\"\nseed = 1\n"
                ),
                vec![
                    "t.toml:5:7: cameras[0].id: \"_box\" is reserved for box-level messages",
                    "t.toml:7:9: cameras[0].source.kind: unknown source kind \"v4l3\"; expected one of: synthetic, rtsp, srt, file, v4l2",
                ],
            ),
            (
                format!(
                    "{BOX}[zenoh]\nmode = \"router\"\nlisten = [\"udp/1.2.3.4:1\", \"tcp/nohost\"]\n{CAM}"
                ),
                vec![
                    "t.toml:5:9: zenoh.mode: \"router\" is not a mode; expected one of: peer, client",
                    "t.toml:6:12: zenoh.listen[0]: transport \"udp\" is not built in; expected \"tcp\"",
                    "t.toml:6:29: zenoh.listen[1]: \"tcp/nohost\" needs an address and a port, e.g. \"tcp/127.0.0.1:7447\"",
                ],
            ),
            (
                format!(
                    "{BOX}[metrics]\nlisten = \"localhost\"\n[pipeline]\nrestart_backoff_min_ms = 5000\nrestart_backoff_max_ms = 1000\n{CAM}"
                ),
                vec![
                    "t.toml:5:11: metrics.listen: \"localhost\" is not an address; expected \"IP:PORT\" (e.g. \"127.0.0.1:9464\") or \"off\"",
                    "t.toml:7:26: pipeline.restart_backoff_min_ms (5000) must not exceed pipeline.restart_backoff_max_ms (1000)",
                ],
            ),
            (
                BOX.to_string(),
                vec!["t.toml:1:1: missing required key \"cameras\" in the top level"],
            ),
            (
                format!("cameras = []\n{BOX}"),
                vec!["t.toml:1:11: cameras: 0 cameras configured; expected 1..=64"],
            ),
            (
                // A top-level key written after a table header belongs to that table.
                format!("{BOX}cameras = []\n"),
                vec![
                    "t.toml:1:1: missing required key \"cameras\" in the top level",
                    "t.toml:4:1: unknown key \"cameras\" in [box]; expected one of: venue, id, allocator_trim_s",
                ],
            ),
            (
                format!("{BOX}[[cameras]]\nid = \"c1\"\nheight = 721\n"),
                vec![
                    "t.toml:4:1: missing required key \"source\" in [cameras[0]]",
                    "t.toml:6:10: cameras[0].height: 721 is odd; 4:2:0 frames need an even height",
                ],
            ),
            (
                format!("{BOX}[mqtt]\nurl = \"mqtp://broker:8883\"\nkeep_alive_s = 2\n{CAM}"),
                vec![
                    "t.toml:5:8: mqtt.url: scheme \"mqtp\" is not supported; expected \"mqtt\" or \"mqtts\" (TLS)",
                    "t.toml:6:16: mqtt.keep_alive_s: 2 is out of range; expected 5..=600",
                ],
            ),
            (
                format!(
                    "{BOX}[mqtt]\nurl = \"mqtt://b:1\"\nstreams = [\"event\", \"meta\", \"event\", 3]\n{CAM}"
                ),
                vec![
                    "t.toml:6:22: mqtt.streams[1]: \"meta\" is not a stream; expected one of: health, event",
                    "t.toml:6:30: mqtt.streams[2]: \"event\" is listed twice",
                    "t.toml:6:38: mqtt.streams[3]: expected a string, found an integer",
                ],
            ),
            (
                format!("{BOX}[mqtt]\nurl = \"mqtt://b:1\"\nstreams = \"event\"\n{CAM}"),
                vec![
                    "t.toml:6:12: mqtt.streams: expected an array of stream names (health, event)",
                ],
            ),
            (
                format!("{BOX}[mqtt]\nurl = \"mqtt://broker\"\nqos = 0\nkeep_alive_s = 601\n{CAM}"),
                vec![
                    "t.toml:5:8: mqtt.url: \"mqtt://broker\" needs a host and a port, e.g. \"mqtt://127.0.0.1:1883\"",
                    "t.toml:6:7: mqtt.qos: 0 is not supported; expected 1 (at least once)",
                    "t.toml:7:16: mqtt.keep_alive_s: 601 is out of range; expected 5..=600",
                ],
            ),
            (
                format!(
                    "{BOX}[mqtt]\nenabled = true\nclient_id = \"two words\"\nurl = \"mqtt://u:p@broker:1883/x\"\n{CAM}"
                ),
                vec![
                    "t.toml:6:14: mqtt.client_id: \"two words\" must be 1-256 characters of letters, digits, '-', '_', '.' and ':'",
                    "t.toml:7:8: mqtt.url: \"mqtt://u:p@broker:1883/x\" has a user, path or query; expected just \"mqtt://HOST:PORT\"",
                ],
            ),
            (
                format!("{BOX}[mqtt]\nenabled = true\n{CAM}"),
                vec!["t.toml:4:1: missing required key \"url\" in [mqtt]"],
            ),
            (
                format!("{BOX}[mqtt]\nurl = \"127.0.0.1:1883\"\nenabled = \"yes\"\n{CAM}"),
                vec![
                    "t.toml:5:8: mqtt.url: \"127.0.0.1:1883\" is not a broker URL; expected \"mqtt://HOST:PORT\", e.g. \"mqtt://127.0.0.1:1883\"",
                    "t.toml:6:12: mqtt.enabled: expected a boolean, found a string",
                ],
            ),
            (
                format!("{BOX}[health]\ninterval_ms = 1.5\nextra = true\n{CAM}"),
                vec![
                    "t.toml:5:15: health.interval_ms: expected an integer, found a float",
                    "t.toml:6:1: unknown key \"extra\" in [health]; expected one of: interval_ms, stall_timeout_ms",
                ],
            ),
        ];
        let mut mismatches = Vec::new();
        for (text, expected) in table {
            let got = errors(&text);
            if got != expected {
                mismatches.push(format!(
                    "config:\n{text}\n got: {got:#?}\n expected: {expected:#?}"
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    }
}
