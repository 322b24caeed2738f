//! A publisher that outruns the writer: zenoh's back-pressure (`Block`) holds it,
//! the ingest's queues stay full for a while, and every message is still stored
//! and acknowledged. (The ingest once delivered its own acks to its own `venue/**`
//! subscription; with the queue full the writer waited on itself for good.)

use std::time::Duration;

use venue_proto::{FrameMeta, FrameStats, PixelFormat, StreamKind};
use zenoh::qos::CongestionControl;

use crate::common::*;

const STREAMS: u64 = 8;
const PER_STREAM: u64 = 8_000;

#[test]
fn a_flood_faster_than_the_writer_is_stored_and_acknowledged() {
    let dir = temp_dir("flood");
    let zport = free_port();
    // Small transactions, each synced to disk: the writer is the slow part.
    let ingest = Ingest::start(
        &[
            "--db".into(),
            format!("sqlite:{}", dir.join("ingest.db").display()),
            "--objects".into(),
            dir.join("objects").display().to_string(),
            "--listen".into(),
            format!("tcp/127.0.0.1:{zport}"),
            "--batch-max".into(),
            "32".into(),
            "--batch-ms".into(),
            "0".into(),
        ],
        dir.join("ingest.log"),
    );
    let bus = Bus::connect(&format!("tcp/127.0.0.1:{zport}"));
    let cams: Vec<String> = (0..STREAMS).map(|c| format!("cam-{c}")).collect();
    for c in &cams {
        bus.wait_subscriber(&key("fl", "box-1", c, StreamKind::Meta));
    }
    bus.rt.block_on(async {
        let mut pubs = Vec::new();
        for c in &cams {
            let p = bus
                .session
                .declare_publisher(key("fl", "box-1", c, StreamKind::Meta))
                .congestion_control(CongestionControl::Block)
                .await
                .unwrap();
            pubs.push(p);
        }
        for seq in 0..PER_STREAM {
            for (c, p) in cams.iter().zip(&pubs) {
                let m = FrameMeta {
                    header: header("fl", "box-1", c, 3, seq, 1_800_000_000_000_000_000 + seq),
                    frame_seq: seq,
                    width: 64,
                    height: 32,
                    format: PixelFormat::Nv12,
                    stats: FrameStats {
                        luma_mean: 1.0,
                        luma_min: 0,
                        luma_max: 2,
                        motion: 0.0,
                    },
                    detections: Vec::new(),
                    mask: None,
                };
                p.put(venue_proto::encode(&m).unwrap()).await.unwrap();
            }
        }
    });
    for c in &cams {
        wait_for(
            Duration::from_secs(120),
            "the last message acknowledged",
            || bus.acked(c, StreamKind::Meta, 3) == Some(PER_STREAM - 1),
        );
    }
    assert_eq!(ingest.counter("stored"), STREAMS * PER_STREAM);
    assert_eq!(ingest.counter("ahead"), 0, "nothing lost on the way");
}
