//! Ingest benchmarks, printed:
//! - sustained per-frame metadata ingest (decode, dedup, batched transactions) into
//!   SQLite and into PostgreSQL, messages/s, for 50 boxes × 4 cameras; target
//!   ≥ 6,000/s;
//! - API latency of event queries over 1 million stored events (SQLite), p50/p99;
//!   target p99 ≤ 50 ms.
//!
//! `cargo bench -p venue-ingest --bench ingest` (`INGEST_BENCH_MESSAGES`, default
//! 120000; `INGEST_BENCH_EVENTS`, default 1000000). Under `cargo test --all-targets`
//! a small smoke run checks the bench still works.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use venue_ingest::api::{AppState, router};
use venue_ingest::db::Db;
use venue_ingest::ingest::{Counters, Incoming, Ingest};
use venue_ingest::objects::Objects;
use venue_proto::{
    Detection, FrameMeta, FrameStats, Header, Id, PixelFormat, SCHEMA_VERSION, StreamKey,
    StreamKind, Timecode,
};

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

/// A PostgreSQL server of the bench's own (as the `postgres` user when run as root).
struct Pg {
    child: Child,
    url: String,
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn postgres(dir: &Path) -> Pg {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql); run scripts/setup.sh")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .max()
        .expect("no initdb under /usr/lib/postgresql");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let cmd = |p: &str| {
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(p));
            c
        } else {
            Command::new(bin.join(p))
        }
    };
    if root {
        assert!(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .unwrap()
                .success()
        );
    }
    let data = dir.join("data");
    let out = cmd("initdb")
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = cmd("postgres")
        .arg("-D")
        .arg(&data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-k",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "PostgreSQL did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    Pg {
        child,
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
    }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = temp_dir("sqlite");
        let db = Db::connect(&format!("sqlite:{}", dir.join("ingest.db").display()))
            .await
            .unwrap();
        ingest_rate("sqlite", db, &dir, messages).await;

        let dir = temp_dir("pg");
        let pg = postgres(&dir);
        let db = Db::connect(&pg.url).await.unwrap();
        ingest_rate("postgres", db, &dir, messages).await;
        drop(pg);

        let dir = temp_dir("api");
        api_latency(&dir, events, if smoke() { 50 } else { 2000 }).await;
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("venue-ingest-bench-sqlite-{}", std::process::id())),
        );
    });
}
