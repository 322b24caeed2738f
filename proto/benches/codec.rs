//! Prints the cost of encoding and decoding a frame-metadata message with 10
//! detections (target: ≤ 2 µs each). Run with `cargo bench -p venue-proto`.

use std::hint::black_box;
use std::time::Instant;

use venue_proto::*;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
/// it, and then a small smoke run checks the bench still works without the cost.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn main() {
    let id = |s: &str| Id::new(s).unwrap_or_else(|e| panic!("{e}"));
    let msg = FrameMeta {
        header: Header {
            schema: SCHEMA_VERSION,
            venue: id("cortina"),
            box_id: id("box-01"),
            camera: id("cam-1"),
            incarnation: 1,
            seq: 123_456,
            capture_ns: 1_771_000_000_500_000_000,
            timecode: Timecode::from_unix_ns(1_771_000_000_500_000_000, 30),
        },
        frame_seq: 123_456,
        width: 1920,
        height: 1080,
        format: PixelFormat::Nv12,
        stats: FrameStats {
            luma_mean: 181.5,
            luma_min: 12,
            luma_max: 250,
            motion: 3.25,
        },
        detections: (0..10)
            .map(|i| Detection {
                class: 0,
                bbox: BBox {
                    x: 100 * i,
                    y: 200,
                    w: 40,
                    h: 90,
                },
                score: 0.875,
                track: Some(u64::from(i)),
                area_px: 2_400,
            })
            .collect(),
        mask: None,
    };
    let mut buf = Vec::with_capacity(1024);
    let iters = if smoke() { 1_000u32 } else { 200_000u32 };
    // Warm up.
    for _ in 0..10_000 {
        buf.clear();
        encode_into(black_box(&msg), &mut buf).unwrap_or_else(|e| panic!("{e}"));
    }
    let t = Instant::now();
    for _ in 0..iters {
        buf.clear();
        encode_into(black_box(&msg), &mut buf).unwrap_or_else(|e| panic!("{e}"));
    }
    let enc = t.elapsed() / iters;
    let t = Instant::now();
    for _ in 0..iters {
        let m: FrameMeta = decode(black_box(&buf)).unwrap_or_else(|e| panic!("{e}"));
        black_box(m);
    }
    let dec = t.elapsed() / iters;
    println!("frame_meta_10_detections bytes={}", buf.len());
    println!(
        "frame_meta_10_detections encode_ns={} (target <= 2000)",
        enc.as_nanos()
    );
    println!(
        "frame_meta_10_detections decode_ns={} (target <= 2000)",
        dec.as_nanos()
    );
}
