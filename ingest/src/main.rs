//! `venue-ingest`: command line, logging and signals around `venue_ingest::service`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use venue_ingest::objects::{Location, S3Options};
use venue_ingest::service::{MqttSettings, Service, Settings, ZenohSettings};

/// Reference cloud consumer of Venue Edge boxes: stores every record once,
/// acknowledges it, and serves it over an HTTP API.
#[derive(Debug, Parser)]
#[command(name = "venue-ingest", version)]
struct Cli {
    /// Database: sqlite:PATH (created when missing) or postgres://USER[:PASSWORD]@HOST:PORT/DB.
    #[arg(long, default_value = "sqlite:.run/ingest.db")]
    db: String,
    /// Where video chunks, composites and thumbnails go: a directory, or an
    /// S3-compatible bucket as s3://BUCKET/PREFIX (credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN).
    #[arg(long, default_value = ".run/objects")]
    objects: String,
    /// Endpoint of an S3-compatible server (MinIO, Ceph, ...), e.g.
    /// https://s3.example.net:9000; default: AWS_ENDPOINT_URL, else AWS itself.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region; default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.
    #[arg(long)]
    s3_region: Option<String>,
    /// Permit a plain-HTTP S3 endpoint (a test server on loopback).
    #[arg(long)]
    s3_allow_http: bool,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8090")]
    http: SocketAddr,
    /// Zenoh endpoint to connect to (a box or a router), e.g. tcp/10.0.0.5:7447;
    /// repeatable. Default: a box on this machine, tcp/127.0.0.1:7447.
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Zenoh endpoint to listen on for boxes that connect to the ingest; repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Zenoh mode: peer, or client (through a router).
    #[arg(long, default_value = "peer")]
    mode: String,
    /// Key expression this instance owns (its partition), repeatable; e.g.
    /// 'venue/a$*/**' for the venues starting with "a".
    #[arg(long = "key", value_name = "KEYEXPR", default_value = "venue/**")]
    keys: Vec<String>,
    /// MQTT broker to read health and events from, mqtt://HOST:PORT; events
    /// are acknowledged there after they are stored.
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// MQTT topic filter, repeatable.
    #[arg(
        long = "mqtt-topic",
        default_values = ["venue/+/+/+/health", "venue/+/+/+/event", "venue/+/+/+/gap"]
    )]
    mqtt_topics: Vec<String>,
    /// Most records stored per transaction (1-100000).
    #[arg(long, default_value_t = 4096)]
    batch_max: usize,
    /// Longest wait to fill a transaction, ms (0-1000).
    #[arg(long, default_value_t = 20)]
    batch_ms: u64,
}

fn check_endpoint(e: &str) -> anyhow::Result<String> {
    let Some(addr) = e.strip_prefix("tcp/") else {
        bail!("zenoh endpoint {e:?}: expected tcp/HOST:PORT (only TCP is built in)");
    };
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(e.to_string()),
        _ => bail!("zenoh endpoint {e:?}: expected tcp/HOST:PORT"),
    }
}

fn check_key(k: &str) -> anyhow::Result<String> {
    zenoh::key_expr::KeyExpr::try_from(k.to_string())
        .map_err(|e| anyhow::anyhow!("key expression {k:?}: {e}"))?;
    if k != "venue/**" && !k.starts_with("venue/") {
        bail!("key expression {k:?}: must lie under venue/ (e.g. venue/** or 'venue/a$*/**')");
    }
    Ok(k.to_string())
}

fn mqtt_settings(url: &str, topics: &[String]) -> anyhow::Result<MqttSettings> {
    let rest = url
        .strip_prefix("mqtt://")
        .with_context(|| format!("MQTT URL {url:?}: expected mqtt://HOST:PORT"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .with_context(|| format!("MQTT URL {url:?}: expected mqtt://HOST:PORT"))?;
    for t in topics {
        if t.is_empty() || t.contains('\0') {
            bail!("MQTT topic filter {t:?} is empty or contains NUL");
        }
    }
    Ok(MqttSettings {
        host: host.to_string(),
        port,
        client_id: format!("venue-ingest-{}", std::process::id()),
        topics: topics.to_vec(),
    })
}

fn settings(cli: Cli) -> anyhow::Result<Settings> {
    let mut s = Settings::demo();
    s.db = cli.db;
    // The location's syntax is checked here; reaching it is checked at start-up.
    let location = Location::parse(&cli.objects)?;
    let s3_flags = cli.s3_endpoint.is_some() || cli.s3_region.is_some() || cli.s3_allow_http;
    if s3_flags && matches!(location, Location::Local(_)) {
        bail!(
            "--s3-endpoint, --s3-region and --s3-allow-http need --objects s3://BUCKET/PREFIX (got {:?})",
            cli.objects
        );
    }
    s.objects = cli.objects;
    s.s3 = S3Options {
        endpoint: cli.s3_endpoint,
        region: cli.s3_region,
        allow_http: cli.s3_allow_http,
    };
    s.http = cli.http;
    if cli.mode != "peer" && cli.mode != "client" {
        bail!("--mode {:?}: expected peer or client", cli.mode);
    }
    let connect: Vec<String> = cli
        .connect
        .iter()
        .map(|e| check_endpoint(e))
        .collect::<Result<_, _>>()?;
    let listen: Vec<String> = cli
        .listen
        .iter()
        .map(|e| check_endpoint(e))
        .collect::<Result<_, _>>()?;
    if cli.mode == "client" && connect.is_empty() {
        bail!("--mode client needs --connect tcp/ROUTER:PORT");
    }
    s.zenoh = ZenohSettings {
        mode: cli.mode,
        connect: if connect.is_empty() && listen.is_empty() {
            s.zenoh.connect
        } else {
            connect
        },
        listen,
    };
    s.keys = cli
        .keys
        .iter()
        .map(|k| check_key(k))
        .collect::<Result<_, _>>()?;
    s.mqtt = cli
        .mqtt
        .as_deref()
        .map(|u| mqtt_settings(u, &cli.mqtt_topics))
        .transpose()?;
    if !(1..=100_000).contains(&cli.batch_max) {
        bail!("--batch-max {}: expected 1-100000", cli.batch_max);
    }
    if cli.batch_ms > 1000 {
        bail!("--batch-ms {}: expected 0-1000", cli.batch_ms);
    }
    s.batch_max = cli.batch_max;
    s.batch_wait = Duration::from_millis(cli.batch_ms);
    Ok(s)
}

async fn shutdown_signal(cancel: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            cancel.cancel();
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    cancel.cancel();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zenoh=warn")),
        )
        .init();
    let settings = settings(cli)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let keys = settings.keys.join(" ");
        let service = Service::start(settings)
            .await
            .context("venue-ingest cannot start")?;
        println!(
            "venue-ingest is storing {keys}\n  events arriving: http://{0}/api/v1/events\n  stream statistics: http://{0}/api/v1/stats",
            service.http_addr
        );
        let cancel = CancellationToken::new();
        shutdown_signal(cancel.clone()).await;
        service.stop(Duration::from_secs(5)).await;
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
