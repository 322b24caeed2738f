//! What the integration tests share: the ingest and the box daemon as child
//! processes, a PostgreSQL server and a zenoh router of their own, a zenoh session
//! that publishes like a box and watches the acks, and a small HTTP client.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use venue_proto::{Ack, Header, Id, SCHEMA_VERSION, StreamKey, StreamKind, Timecode};

pub const INGEST: &str = env!("CARGO_BIN_EXE_venue-ingest");

/// The workspace root (for `.venv` and `tests/python`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[path = "../../../tests/support/free_port.rs"]
mod free_port;
pub use free_port::free_port;

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("venue-ingest-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Seconds to run the daemon in the end-to-end tests (`INGEST_E2E_SECS`; the issue's
/// full run is 120).
pub fn e2e_secs() -> u64 {
    std::env::var("INGEST_E2E_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(8)
}

pub fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(done(), "timed out after {limit:?} waiting for {what}");
}

/// A child process killed when the test ends (also on failure).
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Self { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("process did not stop within 10 s:\n{}", self.log());
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `venue-ingest`.
pub struct Ingest {
    pub proc: Proc,
    pub http: u16,
    pub args: Vec<String>,
    /// Environment variables set for the process (besides RUST_LOG).
    pub env: Vec<(String, String)>,
}

impl Ingest {
    /// Starts the ingest with `args` on a free HTTP port and waits for its API.
    pub fn start(args: &[String], log: PathBuf) -> Self {
        Self::start_with_env(args, &[], log)
    }

    /// Like [`Ingest::start`], with environment variables for the process.
    pub fn start_with_env(args: &[String], env: &[(String, String)], log: PathBuf) -> Self {
        let http = free_port();
        let mut all: Vec<String> = vec!["--http".into(), format!("127.0.0.1:{http}")];
        all.extend(args.iter().cloned());
        let mut i = Self::spawn(all, env.to_vec(), log);
        i.http = http;
        i
    }

    fn spawn(args: Vec<String>, env: Vec<(String, String)>, log: PathBuf) -> Self {
        let mut cmd = Command::new(INGEST);
        cmd.args(&args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info,zenoh=warn");
        let proc = Proc::spawn(cmd, log);
        let http = args
            .iter()
            .position(|a| a == "--http")
            .and_then(|i| args.get(i + 1))
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("http port");
        let mut me = Self {
            proc,
            http,
            args,
            env,
        };
        me.wait_ready();
        me
    }

    fn wait_ready(&mut self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(s)) = self.proc.child.try_wait() {
                panic!("venue-ingest exited ({s}):\n{}", self.proc.log());
            }
            if try_http(self.http, "/healthz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("venue-ingest API not up:\n{}", self.proc.log());
    }

    /// Kills the process (no clean shutdown) and starts it again with the same
    /// arguments.
    pub fn crash_and_restart(&mut self) {
        self.proc.kill9();
        let log = self.proc.log.clone();
        let args = self.args.clone();
        let env = self.env.clone();
        *self = Self::spawn(args, env, log);
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        get_json(self.http, path)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.get("/api/v1/ingest")[name].as_u64().unwrap_or(0)
    }
}

/// GET over HTTP/1.0; returns the status code and body.
pub fn try_http(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    try_http_with(port, path, "").map(|(code, _, body)| (code, body))
}

/// GET over HTTP/1.0 with extra request header lines (each ending in CRLF);
/// returns the status code, the response head (lower-cased) and the body.
pub fn try_http_with(port: u16, path: &str, headers: &str) -> Option<(u16, String, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, head, raw[split + 4..].to_vec()))
}

pub fn http(port: u16, path: &str) -> (u16, Vec<u8>) {
    try_http(port, path).unwrap_or_else(|| panic!("GET {path} failed"))
}

pub fn get_json(port: u16, path: &str) -> serde_json::Value {
    let (code, body) = http(port, path);
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
}

/// The `venue-edge` binary beside this test executable's `deps/`. `cargo test
/// --workspace` (the test command) builds it with the same features as everything
/// else in that run, so it is used as it is; building it here with `-p venue-edge`
/// would resolve other features and recompile half the tree. Only when it is
/// missing (`cargo test -p venue-ingest` alone on a fresh tree) is it built, with
/// the cargo that runs the tests. After changing `edge/`, run the workspace tests
/// (or build `venue-edge`) so this binary is current.
pub fn edge_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory")
            .to_path_buf();
        let bin = profile_dir.join("venue-edge");
        if bin.exists() {
            return bin;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "venue-edge", "--bin", "venue-edge"])
            .current_dir(root());
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build -p venue-edge");
        assert!(status.success(), "cargo build -p venue-edge failed");
        let bin = profile_dir.join("venue-edge");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// A box daemon config on free ports: `cameras` × 640×360 synthetic at `fps`.
pub fn edge_config(
    dir: &Path,
    venue: &str,
    box_id: &str,
    cameras: &[&str],
    fps: u32,
    zenoh: &str,
) -> PathBuf {
    let mut cams = String::new();
    for (i, c) in cameras.iter().enumerate() {
        cams.push_str(&format!(
            "\n[[cameras]]\nid = \"{c}\"\nwidth = 640\nheight = 360\nfps = {fps}\n[cameras.source]\nkind = \"synthetic\"\nseed = {}\n",
            i + 1
        ));
    }
    let text = format!(
        r#"
[box]
venue = "{venue}"
id = "{box_id}"

[zenoh]
{zenoh}

[metrics]
listen = "off"

[health]
interval_ms = 200

[spool]
dir = "{spool}"

[uplink]
resend_after_ms = 300
{cams}
"#,
        spool = dir.join("spool").display()
    );
    let path = dir.join("edge.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

pub fn start_edge(config: &Path, log: PathBuf) -> Proc {
    let mut cmd = Command::new(edge_bin());
    cmd.args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,zenoh=warn");
    Proc::spawn(cmd, log)
}

#[path = "../../../tests/support/postgres.rs"]
mod postgres;
pub use postgres::Postgres;

impl Postgres {
    /// A server of the test's own, in a temporary directory on a free port.
    pub fn start(name: &str) -> Self {
        Self::start_in(&temp_dir(&format!("pg-{name}")), free_port())
    }
}

/// A real zenoh router: the `zenohd` 1.10.2 that `scripts/setup.sh` builds into
/// `.tools/bin` (TCP only), on a free loopback port.
pub fn start_router(dir: &Path) -> (Proc, u16) {
    let zenohd = root().join(".tools/bin/zenohd");
    assert!(
        zenohd.is_file(),
        "{} missing: the router tests need a real zenohd 1.10.2. Run scripts/setup.sh \
         (its setup_zenohd builds it with cargo install into .tools), or scripts/test.sh",
        zenohd.display()
    );
    let port = free_port();
    let mut cmd = Command::new(zenohd);
    cmd.args(["--no-multicast-scouting", "-l"])
        .arg(format!("tcp/127.0.0.1:{port}"))
        .env("RUST_LOG", "warn");
    let p = Proc::spawn(cmd, dir.join("router.log"));
    wait_for(Duration::from_secs(30), "the zenoh router", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (p, port)
}

/// A zenoh session that publishes like a box and records the acks it sees.
pub struct Bus {
    pub session: zenoh::Session,
    pub acks: Arc<Mutex<Vec<Ack>>>,
    pub rt: tokio::runtime::Runtime,
}

impl Bus {
    pub fn connect(endpoint: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let sink = Arc::clone(&acks);
        let session = rt.block_on(async {
            let mut c = zenoh::Config::default();
            c.insert_json5("mode", r#""peer""#).expect("mode");
            c.insert_json5("connect/endpoints", &format!(r#"["{endpoint}"]"#))
                .expect("connect");
            c.insert_json5("listen/endpoints", "[]").expect("listen");
            c.insert_json5("scouting/multicast/enabled", "false")
                .expect("scouting");
            let session = zenoh::open(c).await.expect("zenoh open");
            session
                .declare_subscriber("venue/*/*/*/ack")
                .callback(move |s| {
                    if let Ok(a) = venue_proto::decode::<Ack>(&s.payload().to_bytes()) {
                        sink.lock().expect("acks").push(a);
                    }
                })
                .background()
                .await
                .expect("subscribe");
            session
        });
        Self { session, acks, rt }
    }

    /// Waits until a subscriber (the ingest) matches `key`.
    pub fn wait_subscriber(&self, key: &str) {
        let publisher = self
            .rt
            .block_on(async { self.session.declare_publisher(key.to_string()).await })
            .expect("publisher");
        wait_for(Duration::from_secs(20), "the ingest's subscription", || {
            self.rt
                .block_on(async { publisher.matching_status().await })
                .map(|m| m.matching())
                .unwrap_or(false)
        });
    }

    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        self.rt
            .block_on(async { self.session.put(key, bytes).await })
            .expect("put");
    }

    /// The highest sequence acknowledged for (camera, stream, incarnation).
    pub fn acked(&self, camera: &str, stream: StreamKind, incarnation: u64) -> Option<u64> {
        self.acks
            .lock()
            .expect("acks")
            .iter()
            .filter(|a| {
                a.header.camera.as_str() == camera
                    && a.stream == stream
                    && a.acked_incarnation == incarnation
            })
            .map(|a| a.acked_seq)
            .max()
    }
}

pub fn id(s: &str) -> Id {
    Id::new(s).expect("id")
}

pub fn header(
    venue: &str,
    box_id: &str,
    camera: &str,
    incarnation: u64,
    seq: u64,
    capture_ns: u64,
) -> Header {
    Header {
        schema: SCHEMA_VERSION,
        venue: id(venue),
        box_id: id(box_id),
        camera: id(camera),
        incarnation,
        seq,
        capture_ns,
        timecode: Timecode::from_unix_ns(capture_ns, 30),
    }
}

pub fn key(venue: &str, box_id: &str, camera: &str, stream: StreamKind) -> String {
    StreamKey::new(id(venue), id(box_id), id(camera), stream).to_string()
}
