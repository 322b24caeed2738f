//! S3-compatible object storage: the events suite against a real S3 server of the
//! test's own (`moto_server` from `.venv`, on loopback), its composites, thumbnails
//! and video stored in the bucket and served back through the API; and bad S3
//! locations refused at start-up with the reason.

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// An S3-compatible server on a free loopback port.
pub struct S3Server {
    pub port: u16,
    _proc: Proc,
}

impl S3Server {
    pub fn start(dir: &std::path::Path) -> Self {
        let bin = root().join(".venv/bin/moto_server");
        assert!(
            bin.exists(),
            "{} missing: run scripts/setup.sh (it installs tests/python/requirements.txt into .venv)",
            bin.display()
        );
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let proc = Proc::spawn(cmd, dir.join("s3.log"));
        wait_for(Duration::from_secs(30), "the S3 server", || {
            request(port, "GET", "/").is_some()
        });
        Self { port, _proc: proc }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let (code, body) = request(self.port, "PUT", &format!("/{bucket}")).expect("PUT bucket");
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// Every key in the bucket under `prefix` (ListObjectsV2, one page).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (code, body) = request(
            self.port,
            "GET",
            &format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}"),
        )
        .expect("list bucket");
        assert_eq!(code, 200);
        let xml = String::from_utf8_lossy(&body);
        xml.split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

/// A bare HTTP/1.0 request (the S3 server accepts unsigned requests).
fn request(port: u16, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, raw[split + 4..].to_vec()))
}

/// Test credentials: the server accepts any, the client must sign with some.
fn credentials() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), "test-key".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test-secret".into()),
    ]
}

#[test]
fn events_suite_on_s3_compatible_storage() {
    let dir = temp_dir("s3-events");
    let s3 = S3Server::start(&dir);
    s3.create_bucket("venue-clips");
    let zport = free_port();
    let ingest = Ingest::start_with_env(
        &[
            "--db".into(),
            format!("sqlite:{}", dir.join("ingest.db").display()),
            "--objects".into(),
            "s3://venue-clips/ingest-test".into(),
            "--s3-endpoint".into(),
            s3.endpoint(),
            "--s3-region".into(),
            "us-east-1".into(),
            "--s3-allow-http".into(),
            "--listen".into(),
            format!("tcp/127.0.0.1:{zport}"),
        ],
        &credentials(),
        dir.join("ingest.log"),
    );
    crate::events::check_events(&ingest, zport);
    // What the API served came from the bucket, under the prefix.
    let keys = s3.keys("venue-clips", "ingest-test/");
    for want in [
        "ingest-test/composites/ev/box-1/cam-1/100.png",
        "ingest-test/video/ev/box-1/cam-1/1790000000000000000/000000000000.h264",
        "ingest-test/video/ev/box-1/cam-1/1790000000000000000/000000000004.h264",
    ] {
        assert!(keys.iter().any(|k| k == want), "{want} not in {keys:?}");
    }
    let thumbnails = keys
        .iter()
        .filter(|k| k.starts_with("ingest-test/thumbnails/ev/box-1/cam-1/"))
        .count();
    assert_eq!(thumbnails, 2, "{keys:?}");
    assert!(
        s3.keys("venue-clips", "video/").is_empty(),
        "objects outside the prefix"
    );
}

#[test]
fn bad_s3_locations_are_refused_at_start_up() {
    let dir = temp_dir("s3-bad");
    let s3 = S3Server::start(&dir);
    s3.create_bucket("venue-clips");
    let db = format!("sqlite:{}", dir.join("ingest.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(INGEST)
            .args(["--db", &db, "--http", "127.0.0.1:0"])
            .args(args)
            .envs(credentials())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let endpoint = s3.endpoint();
    let e = run(&["--objects", "s3://Bad_Bucket/x"]);
    assert!(e.contains("bucket must be 3-63 characters"), "{e}");
    let e = run(&["--objects", "gs://clips/x"]);
    assert!(e.contains("unsupported scheme"), "{e}");
    let e = run(&[
        "--objects",
        "s3://venue-clips/x",
        "--s3-endpoint",
        &endpoint,
    ]);
    assert!(e.contains("--s3-allow-http"), "{e}");
    let e = run(&["--objects", "/tmp/x", "--s3-endpoint", &endpoint]);
    assert!(e.contains("need --objects s3://"), "{e}");
    // A bucket that does not exist, and an endpoint nobody listens on: the start-up
    // check names the location and the reason.
    let e = run(&[
        "--objects",
        "s3://no-such-bucket/x",
        "--s3-endpoint",
        &endpoint,
        "--s3-allow-http",
    ]);
    assert!(e.contains("cannot use s3://no-such-bucket/x"), "{e}");
    assert!(e.contains("NoSuchBucket") || e.contains("404"), "{e}");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let e = run(&[
        "--objects",
        "s3://venue-clips/x",
        "--s3-endpoint",
        &closed,
        "--s3-allow-http",
    ]);
    assert!(e.contains("cannot use s3://venue-clips/x"), "{e}");
}
