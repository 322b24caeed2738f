//! Ingest benchmarks, printed:
//! - sustained per-frame metadata ingest (decode, dedup, batched transactions) into
//!   SQLite and into PostgreSQL, messages/s, for 50 boxes × 4 cameras; target
//!   ≥ 6,000/s;
//! - the same through zenoh into the running service (`Service`: subscriber, writer,
//!   acks): a box-like publisher session puts every message once, never resending,
//!   with at most `INGEST_BENCH_WINDOW` (256) unacknowledged per stream, peer to peer on loopback and
//!   through a zenoh router; messages/s from the first put to the ack of the last;
//! - API latency of event queries over 1 million stored events (SQLite), p50/p99;
//!   target p99 ≤ 50 ms.
//!
//! `cargo bench -p venue-ingest --bench ingest` (`INGEST_BENCH_MESSAGES`, default
//! 120000; `INGEST_BENCH_EVENTS`, default 1000000; `INGEST_BENCH_ONLY=store|zenoh|api`
//! runs one part). Under `cargo test --all-targets` a small smoke run checks the
//! bench still works.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use venue_ingest::api::{AppState, router};
use venue_ingest::db::Db;
use venue_ingest::ingest::{Counters, Incoming, Ingest};
use venue_ingest::objects::Objects;
use venue_ingest::service::{Service, Settings, ZenohSettings};
use venue_proto::{
    Ack, Detection, FrameMeta, FrameStats, Header, Id, PixelFormat, SCHEMA_VERSION, StreamKey,
    StreamKind, Timecode,
};
use zenoh::qos::CongestionControl;

/// `cargo bench` passes `--bench`; without it this is the smoke run.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn env_or(name: &str, full: usize, small: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { small } else { full })
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("venue-ingest-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 50 boxes × 4 cameras, one frame each per round: the messages of `n / 200` rounds.
fn frames(n: usize) -> Vec<Incoming> {
    let cameras: Vec<(Id, Id, Id)> = (0..50)
        .flat_map(|b| {
            (0..4).map(move |c| {
                (
                    Id::new(&format!("venue-{}", b % 5)).unwrap(),
                    Id::new(&format!("box-{b:02}")).unwrap(),
                    Id::new(&format!("cam-{c}")).unwrap(),
                )
            })
        })
        .collect();
    let t0 = 1_800_000_000_000_000_000u64;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let round = (i / cameras.len()) as u64;
        let (venue, box_id, camera) = cameras[i % cameras.len()].clone();
        let capture_ns = t0 + round * 33_333_333;
        let key = StreamKey::new(
            venue.clone(),
            box_id.clone(),
            camera.clone(),
            StreamKind::Meta,
        );
        let meta = FrameMeta {
            header: Header {
                schema: SCHEMA_VERSION,
                venue,
                box_id,
                camera,
                incarnation: 1,
                seq: round,
                capture_ns,
                timecode: Timecode::from_unix_ns(capture_ns, 30),
            },
            frame_seq: round,
            width: 1920,
            height: 1080,
            format: PixelFormat::Nv12,
            stats: FrameStats {
                luma_mean: 120.0,
                luma_min: 3,
                luma_max: 250,
                motion: 1.5,
            },
            detections: (0..4)
                .map(|d| Detection {
                    class: 0,
                    bbox: venue_proto::BBox {
                        x: 100 * d,
                        y: 200,
                        w: 40,
                        h: 90,
                    },
                    score: 0.9,
                    track: Some(u64::from(d)),
                    area_px: 2400,
                })
                .collect(),
            mask: None,
        };
        out.push(Incoming {
            key: key.to_string(),
            payload: Bytes::from(venue_proto::encode(&meta).unwrap()),
        });
    }
    out
}

async fn ingest_rate(label: &str, db: Db, dir: &Path, n: usize) {
    let objects = Objects::local(&dir.join("objects")).unwrap();
    let counters = Arc::new(Counters::default());
    let mut ingest = Ingest::new(db, objects, Arc::clone(&counters));
    let msgs = frames(n);
    let t = Instant::now();
    for chunk in msgs.chunks(4096) {
        ingest.process(chunk.to_vec()).await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let stored = counters.stored.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored, n as u64, "every message stored once");
    println!(
        "ingest {label}: {n} per-frame metadata messages (200 streams) in {secs:.2} s = {:.0} messages/s (target >= 6000)",
        n as f64 / secs
    );
}

/// Unacknowledged messages a publisher keeps in flight per stream (the box's
/// `[uplink] window` is 4096; 200 streams × 256 keeps ~50,000 in flight);
/// `INGEST_BENCH_WINDOW` changes it.
fn window() -> u64 {
    std::env::var("INGEST_BENCH_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[path = "../../tests/support/free_port.rs"]
mod free_port;
use free_port::free_port;

#[path = "../../tests/support/postgres.rs"]
mod postgres;

fn zenoh_config(mode: &str, connect: &[String], listen: &[String]) -> zenoh::Config {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", &format!("{mode:?}")).unwrap();
    c.insert_json5(
        "connect/endpoints",
        &serde_json::to_string(connect).unwrap(),
    )
    .unwrap();
    c.insert_json5("listen/endpoints", &serde_json::to_string(listen).unwrap())
        .unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    c
}

/// The zenoh router of `tests/python/router.py` (eclipse-zenoh in `.venv`), or
/// `None` when the venv is missing.
fn python_router(port: u16) -> Option<Child> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        return None;
    }
    let child = Command::new(python)
        .arg(root.join("tests/python/router.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(child)
}

/// Highest acknowledged sequence per stream key.
type Acked = Arc<Mutex<HashMap<String, u64>>>;

/// Messages/s through zenoh into the service, publishing every message once.
/// `router`: connect both sides to a router there (clients) instead of the
/// publisher connecting to the ingest directly (peers).
async fn zenoh_rate(label: &str, db_url: &str, dir: &Path, n: usize, router: Option<u16>) {
    let zport = free_port();
    let mut settings = Settings::demo();
    settings.db = db_url.to_string();
    settings.objects = dir.join("objects").display().to_string();
    settings.http = "127.0.0.1:0".parse().unwrap();
    let (ingest_z, publisher_z) = match router {
        Some(r) => {
            let at = vec![format!("tcp/127.0.0.1:{r}")];
            (
                ZenohSettings {
                    mode: "client".into(),
                    connect: at.clone(),
                    listen: Vec::new(),
                },
                zenoh_config("client", &at, &[]),
            )
        }
        None => (
            ZenohSettings {
                mode: "peer".into(),
                connect: Vec::new(),
                listen: vec![format!("tcp/127.0.0.1:{zport}")],
            },
            zenoh_config("peer", &[format!("tcp/127.0.0.1:{zport}")], &[]),
        ),
    };
    settings.zenoh = ingest_z;
    let service = Service::start(settings).await.unwrap();
    let session = zenoh::open(publisher_z).await.unwrap();
    let acked: Acked = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    let (sink, wake) = (Arc::clone(&acked), Arc::clone(&notify));
    let _acks = session
        .declare_subscriber("venue/*/*/*/ack")
        .callback(move |s| {
            if let Ok(a) = venue_proto::decode::<Ack>(&s.payload().to_bytes()) {
                let key = StreamKey::new(
                    a.header.venue.clone(),
                    a.header.box_id.clone(),
                    a.header.camera.clone(),
                    a.stream,
                )
                .to_string();
                let mut m = sink.lock().unwrap();
                let e = m.entry(key).or_insert(a.acked_seq);
                *e = (*e).max(a.acked_seq);
                drop(m);
                wake.notify_waiters();
            }
        })
        .await
        .unwrap();
    let msgs = frames(n);
    let mut publishers = HashMap::new();
    for m in &msgs {
        if !publishers.contains_key(&m.key) {
            let p = session
                .declare_publisher(m.key.clone())
                .congestion_control(CongestionControl::Block)
                .await
                .unwrap();
            publishers.insert(m.key.clone(), p);
        }
    }
    // A put before the ingest's subscription has reached this session is routed
    // nowhere and lost: wait until every publisher matches it, as a box does
    // (its resends cover it; this publisher never resends).
    // INGEST_BENCH_NO_MATCH_WAIT=1 shows what happens without it (the run then
    // stops at the first stream whose early messages were lost).
    let t = Instant::now();
    let wait_matching = std::env::var_os("INGEST_BENCH_NO_MATCH_WAIT").is_none();
    for p in publishers.values().filter(|_| wait_matching) {
        while !p.matching_status().await.unwrap().matching() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no subscriber matched"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let seq_of = |i: usize| (i / 200) as u64;
    let window = window();
    let t = Instant::now();
    for (i, m) in msgs.iter().enumerate() {
        let seq = seq_of(i);
        // Window: wait for the ack that lets this sequence go (as the box's sender).
        loop {
            let acked_to = acked.lock().unwrap().get(&m.key).map_or(-1, |a| *a as i64);
            if (seq as i64) - acked_to <= window as i64 {
                break;
            }
            let waited = tokio::time::timeout(Duration::from_secs(10), notify.notified()).await;
            if waited.is_err()
                && acked.lock().unwrap().get(&m.key).map_or(-1, |a| *a as i64) == acked_to
            {
                panic!(
                    "{label}: no ack progress for 10 s on {} at seq {seq}: lost on the way (ingest counters {})",
                    m.key,
                    service.counters.snapshot()
                );
            }
        }
        publishers[&m.key].put(m.payload.clone()).await.unwrap();
    }
    let last = seq_of(n - 1);
    let streams = publishers.len();
    let done = || {
        let a = acked.lock().unwrap();
        a.len() == streams && a.values().all(|s| *s >= last)
    };
    let wait = Instant::now();
    while !done() {
        if wait.elapsed() > Duration::from_secs(60) {
            panic!(
                "{label}: not every stream acknowledged to {last} after 60 s (ingest counters {})",
                service.counters.snapshot()
            );
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notify.notified()).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let stored = service
        .counters
        .stored
        .load(std::sync::atomic::Ordering::Relaxed);
    let ahead = service
        .counters
        .ahead
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored, n as u64, "every message stored once");
    println!(
        "ingest {label}: {n} per-frame metadata messages (200 streams, window {window}, put once, acked) in {secs:.2} s = {:.0} messages/s (target >= 6000); lost on the way: {ahead}",
        n as f64 / secs
    );
    drop(publishers);
    let _ = session.close().await;
    service.stop(Duration::from_secs(5)).await;
}

/// Loads `n` events (20 cameras, 8 kinds, 2 tracks each) straight into the tables.
async fn load_events(db: &Db, n: usize) {
    let mut cams = Vec::new();
    for c in 0..20 {
        let id = venue_ingest::store::upsert_camera(
            db,
            &Id::new("bench").unwrap(),
            &Id::new(&format!("box-{}", c / 4)).unwrap(),
            &Id::new(&format!("cam-{}", c % 4)).unwrap(),
            0,
        )
        .await
        .unwrap();
        cams.push(id);
    }
    assert_eq!(
        cams,
        (1..=20).collect::<Vec<i64>>(),
        "a fresh database numbers cameras 1-20"
    );
    // Generated inside SQLite (a recursive CTE): the bench measures queries, and
    // a million rows through the client would only measure the load.
    let t0 = 1_800_000_000_000_000_000i64;
    let events = format!(
        "INSERT INTO events (id, camera_ref, event_id, kind, phase, start_ns, end_ns, confidence, \
         tracks, updates, incarnation, last_seq, capture_ns, stored_ns) \
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last}) \
         SELECT i + 1, 1 + i % 20, i, (i / 3) % 8, 2, {t0} + i * 10000000, {t0} + i * 10000000 + 500000000, \
         0.9, '[' || (i % 50) || ',' || (50 + i % 7) || ']', 2, 1, i, {t0} + i * 10000000, {t0} + i * 10000000 FROM s",
        last = n as i64 - 1
    );
    sqlx::query(&events).execute(&db.pool).await.unwrap();
    let tracks = format!(
        "INSERT INTO event_tracks (track, start_ns, event_ref) \
         WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last}) \
         SELECT i % 50, {t0} + i * 10000000, i + 1 FROM s \
         UNION ALL SELECT 50 + i % 7, {t0} + i * 10000000, i + 1 FROM s",
        last = n as i64 - 1
    );
    sqlx::query(&tracks).execute(&db.pool).await.unwrap();
}

fn get(port: u16, path: &str) -> (u16, usize) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(20)]).to_string();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, raw.len())
}

async fn api_latency(dir: &Path, n: usize, queries: usize) {
    let db = Db::connect(&format!("sqlite:{}", dir.join("events.db").display()))
        .await
        .unwrap();
    let t = Instant::now();
    load_events(&db, n).await;
    println!(
        "api: loaded {n} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let state = AppState {
        db,
        objects: Objects::local(&dir.join("objects")).unwrap(),
        counters: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let t0 = 1_800_000_000_000_000_000i64;
    let span = n as i64 * 10_000_000;
    let kinds = [
        "enter",
        "exit",
        "take_off",
        "landing",
        "fall",
        "speed_peak",
        "line_cross",
        "jump",
    ];
    let mut lat = Vec::with_capacity(queries);
    let mut by_type: [Vec<Duration>; 4] = Default::default();
    for q in 0..queries {
        // A mix of the API's filters, over pseudo-random windows of 60 s.
        let from = t0 + (q as i64 * 7_919_000_000_007) % span.max(1);
        let to = from + 60_000_000_000;
        let path = match q % 4 {
            0 => format!("/api/v1/events?from_ns={from}&to_ns={to}&limit=100"),
            1 => format!(
                "/api/v1/events?venue=bench&box=box-{}&camera=cam-{}&from_ns={from}&to_ns={to}&limit=100",
                q % 5,
                q % 4
            ),
            2 => format!(
                "/api/v1/events?kind={}&from_ns={from}&to_ns={to}&limit=100",
                kinds[q % 8]
            ),
            _ => format!(
                "/api/v1/events?track={}&from_ns={from}&to_ns={to}&limit=100",
                q % 57
            ),
        };
        let t = Instant::now();
        let (code, len) = tokio::task::spawn_blocking(move || get(port, &path))
            .await
            .unwrap();
        lat.push(t.elapsed());
        by_type[q % 4].push(t.elapsed());
        assert_eq!(code, 200);
        assert!(len > 0);
    }
    for (name, l) in ["time", "camera", "kind", "track"].iter().zip(&mut by_type) {
        l.sort();
        let p99 = l[((l.len() as f64 * 0.99) as usize).min(l.len() - 1)];
        println!("api: {name} filter p99 {:.2} ms", p99.as_secs_f64() * 1e3);
    }
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "api: {queries} event queries over {n} events (time window, camera, kind, track; 100 per page): p50 {:.2} ms, p99 {:.2} ms (target p99 <= 50 ms)",
        pct(0.50),
        pct(0.99)
    );
}

fn main() {
    let messages = env_or("INGEST_BENCH_MESSAGES", 120_000, 4_000);
    let events = env_or("INGEST_BENCH_EVENTS", 1_000_000, 10_000);
    let only = std::env::var("INGEST_BENCH_ONLY").unwrap_or_default();
    let part = |p: &str| only.is_empty() || only == p;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if part("store") {
            let dir = temp_dir("sqlite");
            let db = Db::connect(&format!("sqlite:{}", dir.join("ingest.db").display()))
                .await
                .unwrap();
            ingest_rate("sqlite", db, &dir, messages).await;
            let _ = std::fs::remove_dir_all(&dir);

            let dir = temp_dir("pg");
            let pg = postgres::Postgres::start_in(&dir, free_port());
            let db = Db::connect(&pg.url).await.unwrap();
            ingest_rate("postgres", db, &dir, messages).await;
        }
        if part("zenoh") {
            let dir = temp_dir("zenoh-sqlite");
            let url = format!("sqlite:{}", dir.join("ingest.db").display());
            zenoh_rate("sqlite via zenoh (peer)", &url, &dir, messages, None).await;
            let _ = std::fs::remove_dir_all(&dir);

            let dir = temp_dir("zenoh-pg");
            let pg = postgres::Postgres::start_in(&dir, free_port());
            zenoh_rate("postgres via zenoh (peer)", &pg.url, &dir, messages, None).await;
            drop(pg);

            // Through a router (both sides clients), when the test venv has one.
            let port = free_port();
            if let Some(mut router) = python_router(port) {
                let dir = temp_dir("zenoh-router");
                let url = format!("sqlite:{}", dir.join("ingest.db").display());
                zenoh_rate("sqlite via zenoh router", &url, &dir, messages, Some(port)).await;
                let _ = router.kill();
                let _ = router.wait();
                let _ = std::fs::remove_dir_all(&dir);
            } else {
                println!("ingest via zenoh router: skipped (no .venv with eclipse-zenoh)");
            }
        }
        if part("api") {
            let dir = temp_dir("api");
            api_latency(&dir, events, if smoke() { 50 } else { 2000 }).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    });
}
