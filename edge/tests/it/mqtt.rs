//! The MQTT uplink against a real broker (mosquitto on a free loopback port): health
//! arrives decoded and retained, survives a broker restart without disturbing zenoh,
//! and a box without a broker still starts, captures and publishes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use venue_proto::Health;

use crate::common::*;

/// The broker binary: Debian installs it in /usr/sbin, which is not on every PATH.
fn mosquitto_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto is not installed; the MQTT tests need a real broker. \
                 Run scripts/test.sh (it installs mosquitto through scripts/setup.sh)"
            )
        })
}

/// A mosquitto instance of our own on 127.0.0.1:port; killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(
            dir,
            port,
            &format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
    }

    /// Starts mosquitto with this configuration; `port` is the one waited for.
    fn start_with(dir: &Path, port: u16, config: &str) -> Self {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, config).expect("broker config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("mosquitto.log"))
            .expect("broker log");
        let t = Instant::now();
        loop {
            let mut child = Command::new(mosquitto_bin())
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log.try_clone().expect("log"))
                .spawn()
                .expect("start mosquitto");
            // Up once it accepts connections; retried if the port was briefly held.
            while t.elapsed() < Duration::from_secs(10) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self {
                        child,
                        port,
                        dir: dir.to_path_buf(),
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "mosquitto did not start on port {port}; log:\n{}",
                std::fs::read_to_string(dir.join("mosquitto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills the broker outright (no clean shutdown), as a crash or power cut would.
    fn kill(mut self) -> (PathBuf, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.dir.clone(), self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cloud-side MQTT subscriber on every health topic of the test box; reconnects
/// and subscribes again by itself.
struct Subscriber {
    rx: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
}

struct Received {
    topic: String,
    payload: Vec<u8>,
    retained: bool,
    at: Instant,
}

impl Subscriber {
    fn connect(port: u16) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "it-sub-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 16);
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match connection.recv_timeout(Duration::from_millis(300)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        client
                            .try_subscribe("venue/test-venue/box-1/+/health", QoS::AtLeastOnce)
                            .expect("subscribe");
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        let _ = tx.send(Received {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retained: p.retain,
                            at: Instant::now(),
                        });
                    }
                    Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                }
            }
        });
        Self { rx, stop }
    }

    /// Receives until every camera in `cams` has sent health (decoded and checked);
    /// returns when each first arrived, or `None` after `limit`.
    fn health_from(&self, cams: &[&str], limit: Duration) -> Option<Vec<(Health, Received)>> {
        let t = Instant::now();
        let mut got: Vec<Option<(Health, Received)>> = cams.iter().map(|_| None).collect();
        while got.iter().any(Option::is_none) {
            let left = limit.checked_sub(t.elapsed())?;
            let Ok(r) = self.rx.recv_timeout(left) else {
                return None;
            };
            let h = venue_proto::decode::<Health>(&r.payload)
                .unwrap_or_else(|e| panic!("undecodable health on {}: {e}", r.topic));
            let cam = h.header.camera.to_string();
            assert_eq!(
                r.topic,
                format!("venue/test-venue/box-1/{cam}/health"),
                "topic and header disagree"
            );
            assert_eq!(
                (h.header.venue.as_str(), h.header.box_id.as_str()),
                ("test-venue", "box-1")
            );
            if let Some(i) = cams.iter().position(|c| *c == cam)
                && got[i].is_none()
            {
                got[i] = Some((h, r));
            }
        }
        Some(got.into_iter().flatten().collect())
    }

    /// Forgets everything received so far.
    fn clear(&self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The value of one metric line (exact name and labels), if the endpoint answers.
fn metric(port: u16, series: &str) -> Option<f64> {
    let text = std::panic::catch_unwind(|| http_get(port, "/metrics")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn wait_metric(port: u16, series: &str, want: f64, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if metric(port, series) == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn mqtt_section(port: u16) -> String {
    format!(
        "\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nkeep_alive_s = 5\nstreams = [\"health\", \"event\"]\n"
    )
}

/// Every camera's metadata in the log has consecutive frame numbers: nothing was
/// dropped or interrupted.
fn assert_contiguous(log: &MetaLog, cams: &[&str]) {
    for cam in cams {
        let list = &log.by_camera[*cam];
        for w in list.windows(2) {
            assert_eq!(
                w[1].frame_seq,
                w[0].frame_seq + 1,
                "{cam}: metadata interrupted"
            );
        }
    }
}

fn stop_daemon(daemon: &mut Daemon) {
    daemon.signal("-TERM");
    let (status, took) = daemon
        .wait_exit(Duration::from_secs(5))
        .expect("daemon exits after SIGTERM");
    assert!(status.success(), "exit {status}; log:\n{}", daemon.log());
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

#[test]
fn health_on_mqtt_is_retained_and_resumes_after_a_broker_restart() {
    let dir = temp_dir("mqtt-restart");
    let broker = Broker::start(&dir, free_port());
    let sub = Subscriber::connect(broker.port);
    let cams = ["cam-a", "cam-b"];
    let cameras = format!(
        "{}{}{}",
        camera(cams[0], 15, ""),
        camera(cams[1], 15, ""),
        mqtt_section(broker.port)
    );
    let (mut daemon, listener, ports, _) = start("mqtt-restart-box", &cameras);
    let mut log = MetaLog::default();

    // (a) Health of each camera and of the box arrives on MQTT and decodes.
    let all = ["cam-a", "cam-b", "_box"];
    let got = sub
        .health_from(&all, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no MQTT health; log:\n{}", daemon.log()));
    let stages: Vec<&str> = got[0].0.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        ["capture", "analyze", "infer", "tag", "spool"],
        "camera health carries its stages"
    );
    assert!(
        got[2].0.spool_max_bytes.is_some(),
        "box health carries the spool"
    );
    // Retained: a dashboard subscribing now gets every latest state at once.
    let late = Subscriber::connect(broker.port);
    let retained = late
        .health_from(&all, Duration::from_secs(2))
        .expect("retained health for a late subscriber");
    assert!(retained.iter().all(|(_, r)| r.retained));
    drop(late);
    assert!(wait_metric(
        ports.metrics,
        "venue_edge_mqtt_connected",
        1.0,
        Duration::from_secs(5)
    ));
    assert!(log.collect_until(&listener, Duration::from_secs(20), |l| {
        cams.iter().all(|c| l.count(c) >= 30)
    }));

    // (b) The broker dies; zenoh carries on; the broker comes back on the same port.
    let (dir, port) = broker.kill();
    let killed_ns = unix_ns();
    assert!(
        wait_metric(
            ports.metrics,
            "venue_edge_mqtt_connected",
            0.0,
            Duration::from_secs(5)
        ),
        "the box did not notice the broker going away; log:\n{}",
        daemon.log()
    );
    let _ = log.collect_until(&listener, Duration::from_secs(3), |_| false);
    sub.clear();
    let broker = Broker::start(&dir, port);
    let back_ns = unix_ns();
    let back = Instant::now();
    let resumed = sub
        .health_from(&all, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("no MQTT health after the restart; log:\n{}", daemon.log()));
    let took = resumed
        .iter()
        .map(|(_, r)| r.at.duration_since(back))
        .max()
        .unwrap_or_default();
    eprintln!("MQTT health resumed {took:?} after the broker came back");
    assert!(
        took <= Duration::from_secs(10),
        "health resumed only after {took:?}"
    );
    // Zenoh metadata never stopped: frames captured while the broker was away
    // arrived, and every frame number is there.
    let _ = log.collect_until(&listener, Duration::from_secs(1), |_| false);
    for cam in cams {
        let during = log.by_camera[cam]
            .iter()
            .filter(|m| (killed_ns..back_ns).contains(&m.header.capture_ns))
            .count();
        assert!(
            during >= 15 * 2,
            "{cam}: only {during} frames while the broker was away"
        );
    }
    assert_contiguous(&log, &cams);

    assert!(wait_metric(
        ports.metrics,
        "venue_edge_mqtt_connected",
        1.0,
        Duration::from_secs(5)
    ));
    let published = metric(
        ports.metrics,
        r#"venue_edge_mqtt_published_total{stream="health"}"#,
    )
    .unwrap_or(0.0);
    assert!(published >= 6.0, "published {published}");
    stop_daemon(&mut daemon);
    // Each change of state is logged once, not each reconnect attempt.
    let text = daemon.log();
    assert_eq!(text.matches("MQTT connection lost").count(), 1, "{text}");
    assert_eq!(text.matches("MQTT connected").count(), 2, "{text}");
    drop(broker);
}

#[test]
fn box_runs_without_a_broker_and_connects_when_one_appears() {
    // The broker starts half-way through: fail at once if there is none to start.
    mosquitto_bin();
    let dir = temp_dir("mqtt-late");
    let port = free_port();
    let cams = ["cam-a"];
    let cameras = format!("{}{}", camera(cams[0], 15, ""), mqtt_section(port));
    let (mut daemon, listener, ports, _) = start("mqtt-late-box", &cameras);
    let mut log = MetaLog::default();

    // (c) No broker: the box starts, captures and publishes on zenoh.
    assert!(
        log.collect_until(&listener, Duration::from_secs(20), |l| l.count("cam-a")
            >= 60),
        "no metadata without a broker; log:\n{}",
        daemon.log()
    );
    assert_eq!(
        metric(ports.metrics, "venue_edge_mqtt_connected"),
        Some(0.0)
    );
    assert_contiguous(&log, &cams);

    let broker = Broker::start(&dir, port);
    let sub = Subscriber::connect(port);
    assert!(
        wait_metric(
            ports.metrics,
            "venue_edge_mqtt_connected",
            1.0,
            Duration::from_secs(40)
        ),
        "never connected; log:\n{}",
        daemon.log()
    );
    assert!(
        sub.health_from(&["cam-a", "_box"], Duration::from_secs(10))
            .is_some(),
        "no MQTT health once the broker appeared; log:\n{}",
        daemon.log()
    );
    stop_daemon(&mut daemon);
    let text = daemon.log();
    assert_eq!(
        text.matches("MQTT broker unreachable").count(),
        1,
        "one warning however many attempts:\n{text}"
    );
    drop(broker);
}

/// A cloud consumer on MQTT: stores event records in order per (camera,
/// incarnation), drops copies, honours gap notices and acknowledges what it stored
/// on `…/{camera}/ack` every 50 ms, as `venue-ingest` does. Its store survives
/// broker restarts (the client reconnects and subscribes again by itself).
struct EventConsumer {
    store: Arc<std::sync::Mutex<EventStore>>,
    stop: Arc<AtomicBool>,
}

/// One (camera, incarnation) of the event stream at the consumer.
#[derive(Debug, Default)]
struct EventStream {
    /// Next sequence expected: everything below is stored or declared lost.
    next: u64,
    stored: u64,
    lost: u64,
    acked: Option<u64>,
}

#[derive(Default)]
struct EventStore {
    streams: std::collections::BTreeMap<(String, u64), EventStream>,
    duplicates: u64,
    ahead: u64,
}

impl EventStore {
    fn next(&self, camera: &str) -> u64 {
        self.streams
            .iter()
            .filter(|((c, _), _)| c == camera)
            .map(|(_, s)| s.next)
            .sum()
    }
}

impl EventConsumer {
    fn connect(port: u16) -> Self {
        use venue_proto::{Ack, Gap, Header, Id, SCHEMA_VERSION, StreamKey, StreamKind, Timecode};
        let mut options = MqttOptions::new(
            format!("it-events-{}", std::process::id()),
            "127.0.0.1",
            port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 256);
        let store = Arc::new(std::sync::Mutex::new(EventStore::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stopped) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut last_ack = Instant::now();
            let mut ack_seq = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                match connection.recv_timeout(Duration::from_millis(50)) {
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        for t in ["event", "gap"] {
                            let _ = client.try_subscribe(
                                format!("venue/test-venue/box-1/+/{t}"),
                                QoS::AtLeastOnce,
                            );
                        }
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        let key = StreamKey::parse(&p.topic).expect("topic");
                        let cam = key.camera.to_string();
                        let mut s = st.lock().expect("store");
                        if key.stream == StreamKind::Gap {
                            let g: Gap = venue_proto::decode(&p.payload).expect("gap");
                            let e = s.streams.entry((cam, g.incarnation)).or_default();
                            if g.first_seq <= e.next && e.next < g.end_seq {
                                e.lost += g.end_seq - e.next;
                                e.next = g.end_seq;
                            }
                            continue;
                        }
                        let ev: venue_proto::Event =
                            venue_proto::decode(&p.payload).expect("undecodable event on MQTT");
                        assert_eq!(ev.header.camera.as_str(), cam, "topic and header disagree");
                        let h = ev.header;
                        let e = s.streams.entry((cam, h.incarnation)).or_default();
                        if h.seq == e.next {
                            e.next += 1;
                            e.stored += 1;
                        } else if h.seq < e.next {
                            s.duplicates += 1;
                        } else {
                            s.ahead += 1;
                        }
                    }
                    Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Ok(Err(_)) => std::thread::sleep(Duration::from_millis(100)),
                    Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                }
                if last_ack.elapsed() < Duration::from_millis(50) {
                    continue;
                }
                last_ack = Instant::now();
                let mut s = st.lock().expect("store");
                for ((cam, inc), e) in s.streams.iter_mut() {
                    if e.next == 0 || e.acked == Some(e.next - 1) {
                        continue;
                    }
                    let camera = Id::new(cam).expect("camera");
                    let ack = Ack {
                        header: Header {
                            schema: SCHEMA_VERSION,
                            venue: Id::new("test-venue").expect("venue"),
                            box_id: Id::new("box-1").expect("box"),
                            camera: camera.clone(),
                            incarnation: 1,
                            seq: ack_seq,
                            capture_ns: 0,
                            timecode: Timecode::from_unix_ns(0, 30),
                        },
                        stream: StreamKind::Event,
                        acked_incarnation: *inc,
                        acked_seq: e.next - 1,
                    };
                    ack_seq += 1;
                    let topic = format!("venue/test-venue/box-1/{cam}/ack");
                    let bytes = venue_proto::encode(&ack).expect("encode ack");
                    // Only a queued ack counts: a lost one is sent again later.
                    if client
                        .try_publish(topic, QoS::AtLeastOnce, false, bytes)
                        .is_ok()
                    {
                        e.acked = Some(e.next - 1);
                    }
                }
            }
        });
        Self { store, stop }
    }
}

impl Drop for EventConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn events_over_mqtt_arrive_exactly_once_in_order_across_a_broker_restart() {
    let dir = temp_dir("mqtt-events");
    let broker = Broker::start(&dir, free_port());
    let mqtt = EventConsumer::connect(broker.port);
    // A ski slope, segmented and tagged at its full rate: it makes events.
    let cameras = format!(
        "\n[[cameras]]\nid = \"slope\"\nwidth = 640\nheight = 360\nfps = 8\ninference_fps = 8\n\
         [cameras.source]\nkind = \"synthetic\"\nscene = \"slope\"\nseed = 9005\nathletes = 3\n\
         [tagging]\nthumbnail_interval_ms = 0\n{}\n[uplink]\nresend_after_ms = 300\n",
        mqtt_section(broker.port)
    );
    let (mut daemon, _listener, ports, _) = start("mqtt-events-box", &cameras);
    // The zenoh side of the same box, acking too: the spool trims events only
    // when both transports have acknowledged them.
    let mut zenoh = crate::consumer::Consumer::new("test-venue", "box-1");
    zenoh.connect(&format!("tcp/127.0.0.1:{}", ports.zenoh));
    let zenoh_events = || {
        let st = zenoh.store.lock().expect("store");
        st.streams
            .iter()
            .filter(|((c, k, _), _)| c == "slope" && *k == venue_proto::StreamKind::Event)
            .map(|(_, s)| s.next)
            .sum::<u64>()
    };
    let mqtt_events = || mqtt.store.lock().expect("store").next("slope");
    let wait = |what: &str, limit: Duration, done: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !done() {
            assert!(
                t.elapsed() < limit,
                "{what} (zenoh {}, MQTT {}); log:\n{}",
                zenoh_events(),
                mqtt_events(),
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("no events over MQTT", Duration::from_secs(60), &|| {
        mqtt_events() >= 3
    });

    // The broker dies; events go on into the spool; it comes back on the same port.
    let (dir, port) = broker.kill();
    let at_kill = mqtt_events();
    std::thread::sleep(Duration::from_secs(4));
    let during = zenoh_events();
    let broker = Broker::start(&dir, port);
    wait(
        "events made while the broker was away did not arrive over MQTT",
        Duration::from_secs(60),
        &|| mqtt_events() >= during.max(at_kill + 3),
    );
    // Everything zenoh saw up to now, MQTT delivers too: every sequence 0..N.
    let n = zenoh_events();
    wait("MQTT fell behind zenoh", Duration::from_secs(30), &|| {
        mqtt_events() >= n
    });
    {
        let s = mqtt.store.lock().expect("store");
        assert_eq!(
            s.streams.len(),
            1,
            "one incarnation: {:?}",
            s.streams.keys()
        );
        let (_, e) = s.streams.iter().next().expect("stream");
        assert_eq!(
            (e.stored, e.lost),
            (e.next, 0),
            "every event stored once, none lost"
        );
        eprintln!(
            "events over MQTT: {} stored in order, {} copies dropped, {} ahead of a missing one",
            e.next, s.duplicates, s.ahead
        );
    }
    // Both transports acknowledged: the event backlog drains to nothing.
    assert!(
        wait_metric(
            ports.metrics,
            r#"venue_edge_ack_lag_records{camera="slope",stream="event"}"#,
            0.0,
            Duration::from_secs(20)
        ),
        "events never acknowledged by both transports; log:\n{}",
        daemon.log()
    );
    let published = metric(
        ports.metrics,
        r#"venue_edge_mqtt_published_total{stream="event"}"#,
    )
    .unwrap_or(0.0);
    assert!(published >= n as f64, "published {published} of {n}");
    stop_daemon(&mut daemon);
    drop(broker);
}

/// Runs `openssl` with `args` in `dir`; the test needs the CLI to make certificates.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the TLS test makes its certificates with the openssl CLI ({e}); install openssl"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`{name}.pem`/`.key`) and, signed by it, certificates for `leaves`
/// (`{leaf}.pem`/`.key`, the broker's for IP 127.0.0.1).
fn make_pki(dir: &Path, name: &str, leaves: &[&str]) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca_key = format!("{name}.key");
    let ca_pem = format!("{name}.pem");
    let subject = format!("/CN={name}");
    let mut args = vec![
        "req", "-x509", "-days", "2", "-subj", &subject, "-keyout", &ca_key, "-out", &ca_pem,
    ];
    args.extend(ec);
    openssl(dir, &args);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    for leaf in leaves {
        let (key, csr, pem) = (
            format!("{leaf}.key"),
            format!("{leaf}.csr"),
            format!("{leaf}.pem"),
        );
        let subject = format!("/CN={leaf}");
        let mut args = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
        args.extend(ec);
        openssl(dir, &args);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &pem,
            ],
        );
    }
}

#[test]
fn mqtt_over_tls_with_a_client_certificate_and_a_wrong_ca_fails_clearly() {
    let dir = temp_dir("mqtt-tls");
    make_pki(&dir, "ca", &["broker", "box"]);
    make_pki(&dir, "other-ca", &[]);
    // mosquitto started as root reads its key as the `mosquitto` user.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            dir.join("broker.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
    }
    let (plain, tls) = (free_port(), free_port());
    let p = |f: &str| dir.join(f).display().to_string();
    // Mutual TLS for the box; a plain loopback listener for the test's subscriber.
    let broker = Broker::start_with(
        &dir,
        tls,
        &format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            p("ca.pem"),
            p("broker.pem"),
            p("broker.key")
        ),
    );
    let sub = Subscriber::connect(plain);
    let tls_section = |ca: &str| {
        format!(
            "\n[mqtt]\nurl = \"mqtts://127.0.0.1:{tls}\"\nkeep_alive_s = 5\nca_file = \"{}\"\n\
             cert_file = \"{}\"\nkey_file = \"{}\"\n",
            p(ca),
            p("box.pem"),
            p("box.key")
        )
    };

    // (a) The right CA and a client certificate: health arrives through TLS.
    let cameras = format!("{}{}", camera("cam-a", 15, ""), tls_section("ca.pem"));
    let (mut daemon, _listener, ports, cfg) = start("mqtt-tls-box", &cameras);
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .expect("check-config");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        sub.health_from(&["cam-a", "_box"], Duration::from_secs(20))
            .is_some(),
        "no health over TLS; log:\n{}",
        daemon.log()
    );
    assert_eq!(
        metric(ports.metrics, "venue_edge_mqtt_connected"),
        Some(1.0)
    );
    stop_daemon(&mut daemon);

    // (b) A CA that did not sign the broker's certificate: a clear log line, never
    // connected, and the box captures and publishes on zenoh all the same.
    let cameras = format!("{}{}", camera("cam-a", 15, ""), tls_section("other-ca.pem"));
    let (mut daemon, listener, ports, _) = start("mqtt-tls-wrong-ca", &cameras);
    let mut log = MetaLog::default();
    assert!(
        log.collect_until(&listener, Duration::from_secs(20), |l| l.count("cam-a")
            >= 30),
        "no metadata with a failing TLS broker; log:\n{}",
        daemon.log()
    );
    let text = daemon.log();
    assert!(
        text.contains("MQTT TLS handshake failed") && text.contains("certificate"),
        "no clear TLS message:\n{text}"
    );
    assert_eq!(
        metric(ports.metrics, "venue_edge_mqtt_connected"),
        Some(0.0)
    );
    stop_daemon(&mut daemon);
    drop(broker);

    // (c) Unreadable and invalid PEM files are configuration errors, with position.
    let bad = dir.join("bad.toml");
    for (ca, cert, expect) in [
        (
            "/nonexistent/ca.pem",
            p("box.pem"),
            "mqtt.ca_file: cannot read \"/nonexistent/ca.pem\"",
        ),
        (&p("san.ext")[..], p("box.pem"), "holds no PEM certificate"),
        (&p("ca.pem")[..], p("box.key"), "mqtt.cert_file"),
    ] {
        std::fs::write(
            &bad,
            format!(
                "[box]\nvenue = \"v\"\nid = \"b\"\n[mqtt]\nurl = \"mqtts://127.0.0.1:{tls}\"\n\
                 ca_file = \"{ca}\"\ncert_file = \"{cert}\"\nkey_file = \"{}\"\n\
                 [[cameras]]\nid = \"c\"\n[cameras.source]\nkind = \"synthetic\"\n",
                p("box.key")
            ),
        )
        .expect("bad config");
        let out = Command::new(BIN)
            .arg("check-config")
            .arg(&bad)
            .output()
            .expect("check-config");
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "accepted: {err}");
        assert!(
            err.contains(expect) && err.contains("bad.toml:"),
            "{expect}: {err}"
        );
    }
}
