//! What the integration tests share: the daemon as a child process, a zenoh
//! listener, configs on free loopback ports.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use venue_proto::{AnyMessage, FrameMeta, Health, StreamKey};

pub const BIN: &str = env!("CARGO_BIN_EXE_venue-edge");

#[path = "../../../tests/support/free_port.rs"]
mod free_port;
pub use free_port::free_port;

/// The ONNX Runtime library: `$ORT_DYLIB_PATH`, else the CPU build of the
/// `onnxruntime` wheel that `scripts/setup.sh` installs into the project's venv.
pub fn ort_library() -> PathBuf {
    venue_models::ort_backend::test_library(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"))
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("venue-edge-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub struct Ports {
    pub zenoh: u16,
    pub metrics: u16,
    /// The daemon's spool directory.
    pub spool: PathBuf,
}

pub fn config_text(ports: &Ports, cameras: &str) -> String {
    format!(
        r#"
[box]
venue = "test-venue"
id = "box-1"

[zenoh]
listen = ["tcp/127.0.0.1:{}"]

[metrics]
listen = "127.0.0.1:{}"

[health]
interval_ms = 200
stall_timeout_ms = 1000

[pipeline]
restart_backoff_min_ms = 100
restart_backoff_max_ms = 400

[spool]
dir = "{spool}"
{cameras}
"#,
        ports.zenoh,
        ports.metrics,
        spool = ports.spool.display()
    )
}

pub fn camera(id: &str, fps: u32, extra: &str) -> String {
    format!(
        "\n[[cameras]]\nid = \"{id}\"\nwidth = 640\nheight = 360\nfps = {fps}\n[cameras.source]\nkind = \"synthetic\"\nseed = 3\n{extra}\n"
    )
}

/// The daemon under test; killed if a test fails before stopping it.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,zenoh=warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start venue-edge");
        Self { child, log }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// Waits for exit up to `limit`; returns the status and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, t.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects every message on `venue/**` from the daemon, decoded.
pub struct Listener {
    rx: flume::Receiver<(String, Vec<u8>)>,
    _session: zenoh::Session,
    // Keeps zenoh's callbacks running for the listener's lifetime.
    _rt: tokio::runtime::Runtime,
}

impl Listener {
    pub fn connect(port: u16) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let (tx, rx) = flume::unbounded();
        let session = rt.block_on(async {
            let mut c = zenoh::Config::default();
            c.insert_json5("mode", r#""peer""#).expect("mode");
            c.insert_json5("connect/endpoints", &format!(r#"["tcp/127.0.0.1:{port}"]"#))
                .expect("connect");
            c.insert_json5("listen/endpoints", "[]").expect("listen");
            c.insert_json5("scouting/multicast/enabled", "false")
                .expect("scouting");
            let session = zenoh::open(c).await.expect("zenoh open");
            session
                .declare_subscriber("venue/**")
                .callback(move |s| {
                    let _ = tx.send((
                        s.key_expr().as_str().to_string(),
                        s.payload().to_bytes().to_vec(),
                    ));
                })
                .background()
                .await
                .expect("subscribe");
            session
        });
        Self {
            rx,
            _session: session,
            _rt: rt,
        }
    }

    pub fn next(&self, timeout: Duration) -> Option<(StreamKey, AnyMessage)> {
        let (key, bytes) = self.rx.recv_timeout(timeout).ok()?;
        let k = StreamKey::parse(&key).unwrap_or_else(|e| panic!("bad key from daemon: {e}"));
        let msg = venue_proto::decode_any(k.stream, &bytes)
            .unwrap_or_else(|e| panic!("bad payload on {key}: {e}"));
        Some((k, msg))
    }
}

/// Per-camera metadata received, checked gap-free and in order as it arrives.
#[derive(Default)]
pub struct MetaLog {
    pub by_camera: BTreeMap<String, Vec<FrameMeta>>,
    pub health: Vec<(String, Health)>,
    /// Copies received again (the box resends until acknowledged).
    pub duplicates: u64,
}

impl MetaLog {
    pub fn push(&mut self, key: StreamKey, msg: AnyMessage) {
        match msg {
            AnyMessage::Meta(m) => {
                let cam = key.camera.to_string();
                assert_eq!(m.header.camera, key.camera, "header and key disagree");
                let list = self.by_camera.entry(cam.clone()).or_default();
                if let Some(prev) = list.last() {
                    // Unacknowledged records are sent again: a receiver drops copies.
                    if m.header.incarnation == prev.header.incarnation
                        && m.header.seq <= prev.header.seq
                    {
                        self.duplicates += 1;
                        return;
                    }
                    assert_eq!(
                        (m.header.incarnation, m.header.seq),
                        (prev.header.incarnation, prev.header.seq + 1),
                        "gap or reorder in {cam} meta"
                    );
                    assert!(
                        m.frame_seq > prev.frame_seq,
                        "frame_seq not increasing on {cam}"
                    );
                    assert!(
                        m.header.capture_ns > prev.header.capture_ns,
                        "capture time not increasing on {cam}"
                    );
                }
                // The first message seen may have seq > 0: the listener's session comes
                // up after the daemon starts publishing, and replaying from seq 0 to late
                // subscribers is the spool's job, not the live uplink's.
                list.push(m);
            }
            AnyMessage::Health(h) => self.health.push((key.camera.to_string(), h)),
            _ => {}
        }
    }

    pub fn count(&self, cam: &str) -> usize {
        self.by_camera.get(cam).map_or(0, Vec::len)
    }

    /// Receives until `done` holds or `limit` passes.
    pub fn collect_until(
        &mut self,
        l: &Listener,
        limit: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if done(self) {
                return true;
            }
            if let Some((k, m)) = l.next(Duration::from_millis(200)) {
                self.push(k, m);
            }
        }
        done(self)
    }
}

pub fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    body
}

/// Starts a listener first (so nothing is missed), then the daemon.
pub fn start(name: &str, cameras: &str) -> (Daemon, Listener, Ports, PathBuf) {
    let dir = temp_dir(name);
    let ports = Ports {
        zenoh: free_port(),
        metrics: free_port(),
        spool: dir.join("spool"),
    };
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&ports, cameras)).expect("write config");
    let daemon = Daemon::start(&cfg, dir.join("daemon.log"));
    // The daemon listens; the listener's connect is retried until it is up.
    let listener = Listener::connect(ports.zenoh);
    (daemon, listener, ports, cfg)
}

/// The `zenohd` router that `scripts/setup.sh` builds into `.tools/bin` (the
/// workspace's zenoh version, TCP only).
pub fn zenohd_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/zenohd");
    assert!(
        bin.is_file(),
        "{} missing: the router tests need a real zenohd 1.10.2. Run scripts/setup.sh \
         (its setup_zenohd builds it with cargo install into .tools), or scripts/test.sh",
        bin.display()
    );
    bin
}

/// A real zenoh router (`zenohd`) on 127.0.0.1:port; killed when dropped.
pub struct Router {
    child: Child,
    log: PathBuf,
}

impl Router {
    /// Starts the router and waits until it accepts connections.
    pub fn start(port: u16, log: PathBuf) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("router log");
        let err = out.try_clone().expect("router log");
        let child = Command::new(zenohd_bin())
            .args(["--no-multicast-scouting", "-l"])
            .arg(format!("tcp/127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start zenohd");
        let mut router = Self { child, log };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = router.child.try_wait() {
                panic!(
                    "zenohd exited with {status}; log:\n{}",
                    std::fs::read_to_string(&router.log).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "zenohd did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        router
    }

    /// Kills the router outright (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a `venue-edge` client subcommand against the box on `port`: (success,
/// stdout, stderr).
pub fn client(port: u16, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--connect", &format!("tcp/127.0.0.1:{port}")])
        .output()
        .expect("venue-edge client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
