//! The wire contract from the outside: golden fixtures, round trips, and decoding
//! arbitrary bytes without panicking.

use std::path::PathBuf;

use proptest::prelude::*;
use venue_proto::*;

fn id(s: &str) -> Id {
    Id::new(s).unwrap_or_else(|e| panic!("{e}"))
}

fn header(camera: Id, seq: u64) -> Header {
    Header {
        schema: SCHEMA_VERSION,
        venue: id("cortina"),
        box_id: id("box-01"),
        camera,
        incarnation: 1_767_225_600_000_000_000,
        seq,
        capture_ns: 1_771_000_000_500_000_000,
        timecode: Timecode {
            hours: 16,
            minutes: 26,
            seconds: 40,
            frames: 15,
            drop_frame: false,
            rate: 30,
        },
    }
}

fn sample_meta(detections: usize) -> FrameMeta {
    FrameMeta {
        header: header(id("cam-1"), 42),
        frame_seq: 42,
        width: 1280,
        height: 720,
        format: PixelFormat::Nv12,
        stats: FrameStats {
            luma_mean: 181.5,
            luma_min: 12,
            luma_max: 250,
            motion: 3.25,
        },
        detections: (0..detections as u32)
            .map(|i| Detection {
                class: 0,
                bbox: BBox {
                    x: 100 + i * 50,
                    y: 200,
                    w: 40,
                    h: 90,
                },
                score: 0.875,
                track: Some(u64::from(i) + 7),
                area_px: 2_400,
            })
            .collect(),
        // An 8x4 mask: 10 background, 3 athlete, 5 background, 4 athlete, 10 background.
        mask: Some(MaskRle {
            width: 8,
            height: 4,
            runs: vec![10, 3, 5, 4, 10],
        }),
    }
}

fn sample_event() -> Event {
    Event {
        header: header(id("cam-1"), 3),
        event_id: 11,
        kind: EventKind::Jump,
        phase: EventPhase::Ended,
        start_ns: 1_771_000_000_000_000_000,
        end_ns: Some(1_771_000_002_500_000_000),
        tracks: vec![7],
        confidence: 0.9375,
    }
}

fn sample_health() -> Health {
    Health {
        header: header(id("cam-1"), 9),
        state: CameraState::Running,
        uptime_ms: 90_000,
        fps: 30.0,
        stages: vec![StageCounters {
            stage: "capture".into(),
            frames_in: 2700,
            frames_out: 2699,
            dropped: 1,
            errors: 0,
        }],
        restarts: 0,
        detail: None,
        uplink: Some(vec![StreamUplink {
            stream: StreamKind::Meta,
            ack_lag: 3,
            oldest_unacked_ms: 120,
            lost_full: 0,
            lost_damaged: 0,
            lost_evicted: 0,
        }]),
        spool_used_bytes: None,
        spool_max_bytes: None,
    }
}

fn sample_video() -> VideoChunk {
    VideoChunk {
        header: header(id("cam-1"), 5),
        codec: VideoCodec::H264,
        width: 1280,
        height: 720,
        units: vec![AccessUnit {
            frame_seq: 150,
            capture_ns: 1_771_000_000_500_000_000,
            keyframe: true,
            data: vec![0, 0, 0, 1, 0x65, 0x88],
        }],
    }
}

fn sample_ack() -> Ack {
    Ack {
        header: header(id("cam-1"), 77),
        stream: StreamKind::Meta,
        acked_incarnation: 1_767_225_600_000_000_000,
        acked_seq: 41,
    }
}

fn sample_gap() -> Gap {
    Gap {
        header: header(id("cam-1"), 0),
        stream: StreamKind::Meta,
        incarnation: 1_767_225_600_000_000_000,
        first_seq: 17,
        end_seq: 18,
        reason: GapReason::Damaged,
    }
}

fn sample_thumbnail() -> Thumbnail {
    Thumbnail {
        header: header(id("cam-1"), 3),
        frame_seq: 450,
        width: 320,
        height: 180,
        format: ImageFormat::Jpeg,
        // The first bytes of a JPEG; a real thumbnail is a few kB.
        image: vec![0xFF, 0xD8, 0xFF, 0xE0],
    }
}

fn sample_composite() -> Composite {
    Composite {
        header: header(id("cam-1"), 0),
        event_id: 12,
        width: 512,
        height: 288,
        format: ImageFormat::Png,
        cutouts: 5,
        image: vec![0x89, b'P', b'N', b'G'],
    }
}

fn sample_clip() -> Clip {
    Clip {
        header: header(id("cam-1"), 2),
        event_id: Some(11),
        codec: VideoCodec::H264,
        width: 1280,
        height: 720,
        first_frame_seq: 120,
        frames: 390,
        start_ns: 1_771_000_000_000_000_000,
        end_ns: 1_771_000_012_966_666_666,
        // The first bytes of an MP4; a real clip is megabytes.
        mp4: vec![0, 0, 0, 0x20, b'f', b't', b'y', b'p'],
    }
}

fn fixtures() -> Vec<(&'static str, StreamKind, Vec<u8>)> {
    let enc = |r: Result<Vec<u8>, EncodeError>| r.unwrap_or_else(|e| panic!("{e}"));
    vec![
        ("frame_meta", StreamKind::Meta, enc(encode(&sample_meta(1)))),
        ("event", StreamKind::Event, enc(encode(&sample_event()))),
        ("health", StreamKind::Health, enc(encode(&sample_health()))),
        (
            "video_chunk",
            StreamKind::Video,
            enc(encode(&sample_video())),
        ),
        ("ack", StreamKind::Ack, enc(encode(&sample_ack()))),
        ("gap", StreamKind::Gap, enc(encode(&sample_gap()))),
        (
            "thumbnail",
            StreamKind::Thumbnail,
            enc(encode(&sample_thumbnail())),
        ),
        (
            "composite",
            StreamKind::Composite,
            enc(encode(&sample_composite())),
        ),
        ("clip", StreamKind::Clip, enc(encode(&sample_clip()))),
    ]
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `UPDATE_GOLDEN=1 cargo test -p venue-proto` rewrites the fixtures after a
/// deliberate contract change (and the test then fails until docs/wire.md matches).
#[test]
fn golden_fixtures_match_encoder() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, _, bytes) in fixtures() {
        let path = fixture_dir().join(format!("{name}.cbor"));
        if update {
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(
                fixture_dir().join(format!("{name}.diag")),
                format!("{}\n", minicbor::display(&bytes)),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            hex(&golden),
            hex(&bytes),
            "encoding of {name} changed: the wire contract moved"
        );
    }
}

#[test]
fn golden_fixtures_decode_to_samples() {
    let read = |n: &str| {
        std::fs::read(fixture_dir().join(format!("{n}.cbor"))).unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        decode::<FrameMeta>(&read("frame_meta")).ok(),
        Some(sample_meta(1))
    );
    assert_eq!(decode::<Event>(&read("event")).ok(), Some(sample_event()));
    assert_eq!(
        decode::<Health>(&read("health")).ok(),
        Some(sample_health())
    );
    assert_eq!(
        decode::<VideoChunk>(&read("video_chunk")).ok(),
        Some(sample_video())
    );
    assert_eq!(decode::<Ack>(&read("ack")).ok(), Some(sample_ack()));
    assert_eq!(decode::<Gap>(&read("gap")).ok(), Some(sample_gap()));
    assert_eq!(
        decode::<Thumbnail>(&read("thumbnail")).ok(),
        Some(sample_thumbnail())
    );
    assert_eq!(
        decode::<Composite>(&read("composite")).ok(),
        Some(sample_composite())
    );
    assert_eq!(decode::<Clip>(&read("clip")).ok(), Some(sample_clip()));
    // Every message's header can be read without decoding its body.
    for (name, _, bytes) in fixtures() {
        let h = peek_header(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(h.venue.as_str(), "cortina", "{name}");
    }
}

/// docs/wire.md shows every fixture in diagnostic notation and hex; it must not drift.
#[test]
fn wire_doc_shows_every_fixture() {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/wire.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    for (name, _, bytes) in fixtures() {
        let diag = minicbor::display(&bytes).to_string();
        assert!(
            doc.contains(&diag),
            "docs/wire.md lacks the diagnostic notation of {name}:\n{diag}"
        );
        assert!(
            doc.contains(&hex(&bytes)),
            "docs/wire.md lacks the hex bytes of {name}"
        );
    }
}

#[test]
fn schema_version_is_checked() {
    let mut m = sample_meta(0);
    m.header.schema = SCHEMA_VERSION + 1;
    let bytes = encode(&m).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        decode::<FrameMeta>(&bytes),
        Err(DecodeError::UnsupportedSchema { found, .. }) if found == SCHEMA_VERSION + 1
    ));
}

#[test]
fn semantic_checks() {
    let mut m = sample_meta(0);
    m.header.timecode.frames = 30;
    let bytes = encode(&m).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        decode::<FrameMeta>(&bytes),
        Err(DecodeError::Timecode)
    ));

    let mut bytes = encode(&sample_meta(0)).unwrap_or_else(|e| panic!("{e}"));
    bytes.push(0);
    assert!(matches!(
        decode::<FrameMeta>(&bytes),
        Err(DecodeError::Trailing(1))
    ));

    let big = vec![0u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        decode::<FrameMeta>(&big),
        Err(DecodeError::TooLarge(_))
    ));

    // An id that would break the key hierarchy is rejected at decode time.
    let good = encode(&sample_ack()).unwrap_or_else(|e| panic!("{e}"));
    let bad = hex(&good).replace(&hex(b"cortina"), &hex(b"cor/ina"));
    let bad: Vec<u8> = (0..bad.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&bad[i..i + 2], 16).unwrap_or(0))
        .collect();
    assert!(matches!(decode::<Ack>(&bad), Err(DecodeError::Cbor(_))));
}

#[test]
fn unknown_fields_are_skipped() {
    // A newer writer adds key 99 to the top-level map: old readers still decode.
    let bytes = encode(&sample_ack()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bytes[0], 0xa4, "ack is a 4-entry map");
    let mut newer = vec![0xa5];
    newer.extend_from_slice(&bytes[1..]);
    newer.extend_from_slice(&[0x18, 99, 0x63, b'n', b'e', b'w']);
    assert_eq!(decode::<Ack>(&newer).ok(), Some(sample_ack()));
}

#[test]
fn wrong_stream_type_is_an_error() {
    let bytes = encode(&sample_event()).unwrap_or_else(|e| panic!("{e}"));
    assert!(decode_any(StreamKind::Meta, &bytes).is_err());
    assert!(decode_any(StreamKind::Event, &bytes).is_ok());
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        0u8..24,
        0u8..60,
        0u8..60,
        1u8..=120,
        "[a-z0-9][a-z0-9_-]{0,20}",
    )
        .prop_map(|(inc, seq, ns, h, m, s, rate, cam)| Header {
            schema: SCHEMA_VERSION,
            venue: id("v"),
            box_id: id("b"),
            camera: id(&cam),
            incarnation: inc,
            seq,
            capture_ns: ns,
            timecode: Timecode {
                hours: h,
                minutes: m,
                seconds: s,
                frames: rate - 1,
                drop_frame: false,
                rate,
            },
        })
}

proptest! {
    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for k in StreamKind::ALL {
            let _ = decode_any(k, &bytes);
        }
    }

    #[test]
    fn decode_mutated_fixtures_never_panics(idx in 0usize..6, pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let (_, kind, mut bytes) = fixtures().swap_remove(idx);
        let p = pos.index(bytes.len());
        bytes[p] = byte;
        let _ = decode_any(kind, &bytes);
        let _ = peek_header(&bytes);
        let c = cut.index(bytes.len());
        let _ = decode_any(kind, &bytes[..c]);
    }

    #[test]
    fn frame_meta_round_trips(h in arb_header(), w in any::<u32>(), n in 0usize..12, lm in 0f32..255.0, track in proptest::option::of(any::<u64>())) {
        let mut m = sample_meta(n);
        m.header = h;
        m.width = w;
        m.stats.luma_mean = lm;
        for d in &mut m.detections { d.track = track; }
        let bytes = encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode::<FrameMeta>(&bytes).ok(), Some(m));
    }

    #[test]
    fn event_round_trips(h in arb_header(), id_ in any::<u64>(), end in proptest::option::of(any::<u64>()), tracks in proptest::collection::vec(any::<u64>(), 0..8)) {
        let mut e = sample_event();
        e.header = h;
        e.event_id = id_;
        e.end_ns = end;
        e.tracks = tracks;
        let bytes = encode(&e).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode::<Event>(&bytes).ok(), Some(e));
    }
}
