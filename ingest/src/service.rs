//! The running service: zenoh subscribers (and an MQTT client) feed one writer task
//! through a bounded channel; the writer stores batches and publishes the acks; the
//! HTTP API reads the same database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use venue_proto::{Ack, Header, Id, SCHEMA_VERSION, StreamKey, StreamKind, Timecode};
use zenoh::sample::Locality;

use crate::api;
use crate::db::{Db, DbError};
use crate::ingest::{AckDue, Counters, Incoming, Ingest};
use crate::mqtt::MqttAcks;
use crate::objects::{ObjectError, Objects, S3Options};

/// Queue between the receivers and the writer; when full, zenoh is slowed down
/// (back-pressure) rather than records dropped.
const QUEUE: usize = 16 * 1024;

/// How the zenoh session is opened.
#[derive(Debug, Clone)]
pub struct ZenohSettings {
    /// "peer" or "client".
    pub mode: String,
    pub connect: Vec<String>,
    pub listen: Vec<String>,
}

/// Everything the service needs, already checked by the caller's parser.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: String,
    /// A directory, or `s3://BUCKET/PREFIX` (see [`crate::objects::Location`]).
    pub objects: String,
    /// Endpoint, region and plain-HTTP permission of an S3-compatible store.
    pub s3: S3Options,
    pub http: SocketAddr,
    pub zenoh: ZenohSettings,
    /// Key expressions this instance owns (its partition), e.g. `venue/**` or
    /// `venue/a$*/**`.
    pub keys: Vec<String>,
    /// MQTT broker (`mqtt://HOST:PORT`) and the topic filters to subscribe to.
    pub mqtt: Option<MqttSettings>,
    /// Most records per transaction, and how long to wait to fill one.
    pub batch_max: usize,
    pub batch_wait: Duration,
    /// Acks are sent at most this often per stream (they are cumulative).
    pub ack_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topics: Vec<String>,
}

impl Settings {
    /// Defaults that suit a demo on one machine: a box on `tcp/127.0.0.1:7447`.
    pub fn demo() -> Self {
        Self {
            db: "sqlite:.run/ingest.db".into(),
            objects: ".run/objects".into(),
            s3: S3Options::default(),
            http: SocketAddr::from(([127, 0, 0, 1], 8090)),
            zenoh: ZenohSettings {
                mode: "peer".into(),
                connect: vec!["tcp/127.0.0.1:7447".into()],
                listen: Vec::new(),
            },
            keys: vec![venue_proto::key::ALL.to_string()],
            mqtt: None,
            batch_max: 4096,
            batch_wait: Duration::from_millis(20),
            ack_interval: Duration::from_millis(50),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("zenoh configuration: {0}")]
    ZenohConfig(String),
    #[error("cannot open the zenoh session: {0}")]
    Zenoh(String),
    #[error("cannot subscribe to {key}: {reason}")]
    Subscribe { key: String, reason: String },
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started service.
#[derive(Debug)]
pub struct Service {
    /// Where the HTTP API listens (the real port when 0 was asked for).
    pub http_addr: SocketAddr,
    pub counters: Arc<Counters>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    session: zenoh::Session,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Opens a zenoh session from the settings.
pub async fn open_zenoh(z: &ZenohSettings) -> Result<zenoh::Session, StartError> {
    let mut c = zenoh::Config::default();
    let json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let mut set = |k: &str, v: String| {
        c.insert_json5(k, &v)
            .map_err(|e| StartError::ZenohConfig(format!("{k} = {v}: {e}")))
    };
    set("mode", format!("{:?}", z.mode))?;
    set("connect/endpoints", json(&z.connect))?;
    set("listen/endpoints", json(&z.listen))?;
    set("scouting/multicast/enabled", "false".into())?;
    zenoh::open(c)
        .await
        .map_err(|e| StartError::Zenoh(e.to_string()))
}

impl Service {
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        let db = Db::connect(&settings.db).await?;
        let objects = Objects::open(&settings.objects, &settings.s3).await?;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let session = open_zenoh(&settings.zenoh).await?;
        let (tx, rx) = mpsc::channel::<Incoming>(QUEUE);
        let mut tasks = Vec::new();

        for key in &settings.keys {
            // Remote records only: the ingest's own acks lie under `venue/**` too,
            // and a local put is delivered inside the put itself. With the queue
            // full (the writer busy) the writer's ack would then wait on the queue
            // only the writer empties — a deadlock that also stalls zenoh's receive
            // thread, so boxes block until zenoh closes their link.
            let sub = session
                .declare_subscriber(key.as_str())
                .allowed_origin(Locality::Remote)
                .with(zenoh::handlers::FifoChannel::new(QUEUE))
                .await
                .map_err(|e| StartError::Subscribe {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            let tx = tx.clone();
            let cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let sample = tokio::select! {
                        s = sub.recv_async() => match s { Ok(s) => s, Err(_) => break },
                        () = cancel.cancelled() => break,
                    };
                    let item = Incoming {
                        key: sample.key_expr().as_str().to_string(),
                        payload: Bytes::from(sample.payload().to_bytes().into_owned()),
                    };
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            }));
        }
        let mut mqtt_acks = None;
        if let Some(m) = settings.mqtt.clone() {
            let (acks, task) = crate::mqtt::start(m, tx.clone(), cancel.clone());
            tasks.push(task);
            mqtt_acks = Some(acks);
        }
        drop(tx);

        let ingest = Ingest::new(db.clone(), objects.clone(), Arc::clone(&counters));
        tasks.push(tokio::spawn(writer(
            ingest,
            rx,
            Acker::new(session.clone(), mqtt_acks),
            settings.clone(),
            cancel.clone(),
        )));

        let listener = tokio::net::TcpListener::bind(settings.http)
            .await
            .map_err(|source| StartError::Http {
                addr: settings.http,
                source,
            })?;
        let http_addr = listener.local_addr().map_err(|source| StartError::Http {
            addr: settings.http,
            source,
        })?;
        let app = api::router(api::AppState {
            db,
            objects,
            counters: Arc::clone(&counters),
        });
        let http_cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app)
                .with_graceful_shutdown(async move { http_cancel.cancelled().await });
            if let Err(e) = serve.await {
                warn!(error = %e, "HTTP server stopped");
            }
        }));
        info!(http = %http_addr, keys = ?settings.keys, objects = %settings.objects, "ingest running");
        Ok(Self {
            http_addr,
            counters,
            cancel,
            tasks,
            session,
        })
    }

    /// Stops receiving, sends the acks due and stops, waiting at most `grace`.
    /// Records still queued are not acknowledged, so the boxes send them again.
    pub async fn stop(self, grace: Duration) {
        self.cancel.cancel();
        let all = async {
            for t in self.tasks {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("ingest tasks did not stop in time");
        }
        let _ = self.session.close().await;
    }
}

/// The single writer: batches what arrives, stores it, and publishes acks.
async fn writer(
    mut ingest: Ingest,
    mut rx: mpsc::Receiver<Incoming>,
    mut acker: Acker,
    settings: Settings,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.ack_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut backoff = Duration::from_millis(100);
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = tick.tick() => {
                acker.flush(ingest.counters()).await;
                continue;
            }
            () = cancel.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut items = vec![first];
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while items.len() < settings.batch_max {
            match rx.try_recv() {
                Ok(m) => items.push(m),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(m)) => items.push(m),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        match ingest.process(items).await {
            Ok(acks) => {
                backoff = Duration::from_millis(100);
                acker.add(acks);
                if acker.due(settings.ack_interval) {
                    acker.flush(ingest.counters()).await;
                }
            }
            Err(e) => {
                // Nothing of the batch is acknowledged: the boxes send it again.
                warn!(error = %e, "batch not stored; the boxes will resend it");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    acker.flush(ingest.counters()).await;
}

/// Coalesces acks per stream and publishes them on zenoh, and over MQTT for the
/// streams that arrived over MQTT.
struct Acker {
    session: zenoh::Session,
    mqtt: Option<MqttAcks>,
    pending: HashMap<(Id, Id, Id, StreamKind, u64), u64>,
    seq: HashMap<(Id, Id, Id), u64>,
    incarnation: u64,
    last: tokio::time::Instant,
}

impl Acker {
    fn new(session: zenoh::Session, mqtt: Option<MqttAcks>) -> Self {
        Self {
            session,
            mqtt,
            pending: HashMap::new(),
            seq: HashMap::new(),
            incarnation: now_ns(),
            last: tokio::time::Instant::now(),
        }
    }

    fn add(&mut self, acks: Vec<AckDue>) {
        for a in acks {
            let e = self
                .pending
                .entry((a.venue, a.box_id, a.camera, a.stream, a.incarnation))
                .or_insert(a.acked_seq);
            *e = (*e).max(a.acked_seq);
        }
    }

    fn due(&self, interval: Duration) -> bool {
        self.last.elapsed() >= interval
    }

    async fn flush(&mut self, counters: &Counters) {
        self.last = tokio::time::Instant::now();
        let now = now_ns();
        for ((venue, box_id, camera, stream, inc), acked_seq) in std::mem::take(&mut self.pending) {
            let seq = self
                .seq
                .entry((venue.clone(), box_id.clone(), camera.clone()))
                .or_insert(0);
            let ack = Ack {
                header: Header {
                    schema: SCHEMA_VERSION,
                    venue: venue.clone(),
                    box_id: box_id.clone(),
                    camera: camera.clone(),
                    incarnation: self.incarnation,
                    seq: *seq,
                    capture_ns: now,
                    timecode: Timecode::from_unix_ns(now, 30),
                },
                stream,
                acked_incarnation: inc,
                acked_seq,
            };
            *seq += 1;
            let Ok(bytes) = venue_proto::encode(&ack) else {
                continue;
            };
            if let Some(mqtt) = &self.mqtt {
                mqtt.publish(&venue, &box_id, &camera, stream, &bytes);
            }
            let key = StreamKey::new(venue, box_id, camera, StreamKind::Ack).to_string();
            // Never to this process's own subscribers (see `Service::start`).
            match self
                .session
                .put(&key, bytes)
                .allowed_destination(Locality::Remote)
                .await
            {
                Ok(()) => {
                    counters
                        .acks_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                // A lost ack is covered by the next one (acks are cumulative).
                Err(e) => warn!(%key, error = %e, "ack not sent"),
            }
        }
    }
}
