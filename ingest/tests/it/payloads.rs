//! Bad input from the network: counted, logged with its key, ignored; the service
//! keeps storing what is valid.

use std::time::Duration;

use venue_proto::{FrameMeta, FrameStats, PixelFormat, StreamKind};

use crate::common::*;

fn meta(camera: &str, seq: u64) -> FrameMeta {
    FrameMeta {
        header: header(
            "pv",
            "box-1",
            camera,
            7,
            seq,
            1_800_000_000_000_000_000 + seq % 1_000_000,
        ),
        frame_seq: seq,
        width: 64,
        height: 32,
        format: PixelFormat::Nv12,
        stats: FrameStats {
            luma_mean: 100.0,
            luma_min: 1,
            luma_max: 200,
            motion: 0.5,
        },
        detections: Vec::new(),
        mask: None,
    }
}

#[test]
fn malformed_payloads_are_counted_logged_and_ignored() {
    let dir = temp_dir("payloads");
    let zport = free_port();
    let ingest = Ingest::start(
        &[
            "--db".into(),
            format!("sqlite:{}", dir.join("ingest.db").display()),
            "--objects".into(),
            dir.join("objects").display().to_string(),
            "--listen".into(),
            format!("tcp/127.0.0.1:{zport}"),
        ],
        dir.join("ingest.log"),
    );
    let bus = Bus::connect(&format!("tcp/127.0.0.1:{zport}"));
    let good_key = key("pv", "box-1", "cam-1", StreamKind::Meta);
    bus.wait_subscriber(&good_key);

    let mut wrong_schema = meta("cam-1", 0);
    wrong_schema.header.schema = 2;
    let health_bytes = std::fs::read(root().join("proto/tests/fixtures/health.cbor")).unwrap();
    let bad: Vec<(String, Vec<u8>)> = vec![
        // Not CBOR at all.
        (good_key.clone(), b"\xff\x00garbage".to_vec()),
        // Valid CBOR, not a message.
        (good_key.clone(), vec![0x83, 0x01, 0x02, 0x03]),
        // Truncated message.
        (good_key.clone(), {
            let b = venue_proto::encode(&meta("cam-1", 0)).unwrap();
            b[..b.len() / 2].to_vec()
        }),
        // A health message on a meta key.
        (good_key.clone(), health_bytes),
        // A schema version this build does not read.
        (
            good_key.clone(),
            venue_proto::encode(&wrong_schema).unwrap(),
        ),
        // Unknown key shapes: too few chunks, unknown stream, bad id.
        (
            "venue/pv/box-1/meta".into(),
            venue_proto::encode(&meta("cam-1", 0)).unwrap(),
        ),
        (
            "venue/pv/box-1/cam-1/blob".into(),
            venue_proto::encode(&meta("cam-1", 0)).unwrap(),
        ),
        (
            "venue/PV/box-1/cam-1/meta".into(),
            venue_proto::encode(&meta("cam-1", 0)).unwrap(),
        ),
        // Header says cam-2, key says cam-1.
        (
            good_key.clone(),
            venue_proto::encode(&meta("cam-2", 0)).unwrap(),
        ),
        // A sequence number no database integer holds.
        (
            good_key.clone(),
            venue_proto::encode(&meta("cam-1", u64::MAX)).unwrap(),
        ),
    ];
    let n_bad = bad.len() as u64;
    for (k, b) in bad {
        bus.put(&k, b);
    }
    // Then valid records: they are stored and acknowledged.
    for seq in 0..5 {
        bus.put(&good_key, venue_proto::encode(&meta("cam-1", seq)).unwrap());
    }
    wait_for(Duration::from_secs(20), "every payload handled", || {
        ingest.counter("received") >= n_bad + 5
    });
    wait_for(Duration::from_secs(10), "the ack of seq 4", || {
        bus.acked("cam-1", StreamKind::Meta, 7) == Some(4)
    });
    let c = ingest.get("/api/v1/ingest");
    let r = &c["rejected"];
    assert_eq!(r["malformed"], 4, "{c}");
    assert_eq!(r["schema"], 1, "{c}");
    assert_eq!(r["bad_key"], 3, "{c}");
    assert_eq!(r["key_mismatch"], 1, "{c}");
    assert_eq!(r["out_of_range"], 1, "{c}");
    assert_eq!(c["stored"], 5, "{c}");

    // Nothing of the bad input was stored: one camera, five frames.
    let v = ingest.get("/api/v1/venues");
    let cams = &v["venues"][0]["boxes"][0]["cameras"];
    assert_eq!(v["venues"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(cams.as_array().unwrap().len(), 1, "{v}");
    let f = ingest.get("/api/v1/frames?venue=pv&box=box-1&camera=cam-1");
    let seqs: Vec<u64> = f["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);

    // Each refusal is logged with its key.
    let log = ingest.proc.log();
    assert!(log.contains("venue/pv/box-1/cam-1/blob"), "{log}");
    assert!(log.contains("schema version 2"), "{log}");

    // Bad API parameters get a clear 400, and the service is still up.
    let (code, body) = http(ingest.http, "/api/v1/events?limit=0");
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("limit"));
    let (code, body) = http(ingest.http, "/api/v1/events?kind=somersault");
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("jump"));
    let (code, _) = http(ingest.http, "/api/v1/events?camera=Bad%20Id");
    assert_eq!(code, 400);
    let (code, _) = http(ingest.http, "/api/v1/frames?venue=pv");
    assert_eq!(code, 400);
    assert_eq!(http(ingest.http, "/healthz").0, 200);
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(INGEST)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["--db", "mysql://x"]).contains("unsupported database URL"));
    assert!(run(&["--connect", "udp/1.2.3.4:5"]).contains("tcp/HOST:PORT"));
    assert!(run(&["--key", "other/**"]).contains("venue/"));
    assert!(run(&["--mqtt", "http://x"]).contains("mqtt://HOST:PORT"));
    assert!(run(&["--mode", "router"]).contains("peer or client"));
    assert!(run(&["--batch-max", "0"]).contains("batch-max"));
}
