//! Events published through zenoh as a box would (encoded with `proto`), with
//! copies and out-of-order records, then queried back through the API: the answers
//! are exactly the ground truth. Video chunks give the event's clip.

use std::collections::BTreeMap;
use std::time::Duration;

use venue_proto::{
    AccessUnit, Composite, Event, EventKind, EventPhase, Gap, GapReason, ImageFormat, StreamKind,
    Thumbnail, VideoChunk, VideoCodec,
};

use crate::common::*;

const VENUE: &str = "ev";
const BOX: &str = "box-1";
const INC: u64 = 1_790_000_000_000_000_000;
const T0: u64 = 1_800_000_000_000_000_000;
const KINDS: [(EventKind, &str); 8] = [
    (EventKind::Enter, "enter"),
    (EventKind::Exit, "exit"),
    (EventKind::TakeOff, "take_off"),
    (EventKind::Landing, "landing"),
    (EventKind::Fall, "fall"),
    (EventKind::SpeedPeak, "speed_peak"),
    (EventKind::LineCross, "line_cross"),
    (EventKind::Jump, "jump"),
];

/// The truth: what the API must return for each event.
#[derive(Debug, Clone, PartialEq)]
struct Truth {
    camera: String,
    event_id: u64,
    kind: &'static str,
    start_ns: u64,
    end_ns: u64,
    tracks: Vec<u64>,
    updates: u64,
}

/// Per camera, the event records in sequence order, and the truth.
fn scenario() -> (BTreeMap<String, Vec<Event>>, Vec<Truth>) {
    let mut records = BTreeMap::new();
    let mut truth = Vec::new();
    for (c, camera) in ["cam-1", "cam-2"].iter().enumerate() {
        let mut list = Vec::new();
        for i in 0..40u64 {
            let event_id = 100 + i;
            let (kind, kind_name) = KINDS[((i as usize) + c) % KINDS.len()];
            let start = T0 + i * 1_000_000_000 + c as u64 * 300_000_000;
            let end = start + 400_000_000;
            let tracks = vec![i % 5, 10 + (i % 3)];
            let with_update = i % 3 == 0;
            let phases: &[EventPhase] = if with_update {
                &[EventPhase::Started, EventPhase::Updated, EventPhase::Ended]
            } else {
                &[EventPhase::Started, EventPhase::Ended]
            };
            for phase in phases {
                let seq = list.len() as u64;
                list.push(Event {
                    header: header(VENUE, BOX, camera, INC, seq, start),
                    event_id,
                    kind,
                    phase: *phase,
                    start_ns: start,
                    end_ns: (*phase == EventPhase::Ended).then_some(end),
                    tracks: tracks.clone(),
                    confidence: 0.75,
                });
            }
            truth.push(Truth {
                camera: camera.to_string(),
                event_id,
                kind: kind_name,
                start_ns: start,
                end_ns: end,
                tracks,
                updates: phases.len() as u64,
            });
        }
        records.insert(camera.to_string(), list);
    }
    truth.sort_by_key(|t| t.start_ns);
    (records, truth)
}

fn parse(list: &serde_json::Value) -> Vec<Truth> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| Truth {
            camera: e["camera"].as_str().unwrap().to_string(),
            event_id: e["event_id"].as_u64().unwrap(),
            kind: KINDS
                .iter()
                .find(|(_, n)| *n == e["kind"].as_str().unwrap())
                .map(|(_, n)| *n)
                .unwrap(),
            start_ns: e["start_ns"].as_u64().unwrap(),
            end_ns: e["end_ns"].as_u64().unwrap(),
            tracks: e["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap())
                .collect(),
            updates: e["updates"].as_u64().unwrap(),
        })
        .collect()
}

fn chunk(camera: &str, seq: u64, start: u64) -> VideoChunk {
    VideoChunk {
        header: header(VENUE, BOX, camera, INC, seq, start),
        codec: VideoCodec::H264,
        width: 640,
        height: 360,
        units: (0..30u64)
            .map(|i| AccessUnit {
                frame_seq: seq * 30 + i,
                capture_ns: start + i * 33_333_333,
                keyframe: i == 0,
                data: vec![
                    0,
                    0,
                    0,
                    1,
                    if i == 0 { 0x65 } else { 0x41 },
                    seq as u8,
                    i as u8,
                ],
            })
            .collect(),
    }
}

#[test]
fn events_stored_once_and_queried_exactly() {
    let dir = temp_dir("events");
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
    check_events(&ingest, zport);
}

/// The same suite against PostgreSQL (a server of the test's own).
#[test]
fn events_stored_once_and_queried_exactly_postgres() {
    let dir = temp_dir("events-pg");
    let pg = Postgres::start("events");
    let zport = free_port();
    let ingest = Ingest::start(
        &[
            "--db".into(),
            pg.url.clone(),
            "--objects".into(),
            dir.join("objects").display().to_string(),
            "--listen".into(),
            format!("tcp/127.0.0.1:{zport}"),
        ],
        dir.join("ingest.log"),
    );
    check_events(&ingest, zport);
}

pub fn check_events(ingest: &Ingest, zport: u16) {
    let bus = Bus::connect(&format!("tcp/127.0.0.1:{zport}"));
    bus.wait_subscriber(&key(VENUE, BOX, "cam-1", StreamKind::Event));
    let (records, truth) = scenario();
    let mut sent = 0u64;
    for (camera, list) in &records {
        let k = key(VENUE, BOX, camera, StreamKind::Event);
        for (i, e) in list.iter().enumerate() {
            // A record ahead of its predecessor is dropped (the box resends it)...
            if i % 10 == 5
                && let Some(next) = list.get(i + 1)
            {
                bus.put(&k, venue_proto::encode(next).unwrap());
                sent += 1;
            }
            bus.put(&k, venue_proto::encode(e).unwrap());
            sent += 1;
            // ...and a copy of an already stored record is dropped.
            if i % 7 == 3 {
                bus.put(&k, venue_proto::encode(&list[i - 1]).unwrap());
                sent += 1;
            }
        }
    }
    // Video around the first events of cam-1: one chunk per second.
    let vkey = key(VENUE, BOX, "cam-1", StreamKind::Video);
    for s in 0..5u64 {
        bus.put(
            &vkey,
            venue_proto::encode(&chunk("cam-1", s, T0 + s * 1_000_000_000)).unwrap(),
        );
        sent += 1;
    }
    // A gap notice for cam-2's video: records 0-2 were evicted on the box.
    let gap = Gap {
        header: header(VENUE, BOX, "cam-2", INC, 0, T0),
        stream: StreamKind::Video,
        incarnation: INC,
        first_seq: 0,
        end_seq: 3,
        reason: GapReason::Evicted,
    };
    bus.put(
        &key(VENUE, BOX, "cam-2", StreamKind::Gap),
        venue_proto::encode(&gap).unwrap(),
    );
    sent += 1;
    wait_for(Duration::from_secs(30), "every record handled", || {
        ingest.counter("received") >= sent
    });
    // Whatever arrived ahead was dropped; a box would resend it. Send the stream
    // again from the start, as a box does after a timeout (go-back-N).
    for (camera, list) in &records {
        let k = key(VENUE, BOX, camera, StreamKind::Event);
        for e in list {
            bus.put(&k, venue_proto::encode(e).unwrap());
        }
    }
    for (camera, list) in &records {
        let last = list.len() as u64 - 1;
        wait_for(Duration::from_secs(20), "the ack of the last event", || {
            bus.acked(camera, StreamKind::Event, INC) == Some(last)
        });
    }
    wait_for(Duration::from_secs(10), "video acked", || {
        bus.acked("cam-1", StreamKind::Video, INC) == Some(4)
    });
    // The gap moved cam-2's video watermark: acknowledged up to 2 without a record.
    wait_for(Duration::from_secs(10), "gap acked", || {
        bus.acked("cam-2", StreamKind::Video, INC) == Some(2)
    });
    assert!(ingest.counter("duplicates") > 0);
    assert!(ingest.counter("ahead") > 0);

    // Everything, in start order.
    let all = ingest.get("/api/v1/events?venue=ev&limit=10000");
    assert_eq!(parse(&all["events"]), truth);
    assert!(all["next"].is_null());
    assert!(
        all["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["phase"] == "ended")
    );

    // Filters, each against the truth filtered the same way.
    let check = |q: &str, keep: &dyn Fn(&Truth) -> bool| {
        let got = parse(&ingest.get(&format!("/api/v1/events?{q}"))["events"]);
        let want: Vec<Truth> = truth.iter().filter(|t| keep(t)).cloned().collect();
        assert!(!want.is_empty(), "{q}: empty truth proves nothing");
        assert_eq!(got, want, "{q}");
    };
    check("camera=cam-2", &|t| t.camera == "cam-2");
    check("venue=ev&box=box-1&camera=cam-1&kind=jump", &|t| {
        t.camera == "cam-1" && t.kind == "jump"
    });
    check("kind=take_off", &|t| t.kind == "take_off");
    check("track=3", &|t| t.tracks.contains(&3));
    check("track=11&camera=cam-1", &|t| {
        t.tracks.contains(&11) && t.camera == "cam-1"
    });
    let (from, to) = (T0 + 10_000_000_000, T0 + 20_000_000_000);
    check(&format!("from_ns={from}&to_ns={to}"), &|t| {
        t.start_ns >= from && t.start_ns < to
    });
    check(
        &format!("from_ns={from}&to_ns={to}&kind=fall&camera=cam-2"),
        &|t| t.start_ns >= from && t.start_ns < to && t.kind == "fall" && t.camera == "cam-2",
    );
    // Nothing matches: empty, not an error.
    let none = ingest.get("/api/v1/events?venue=nowhere");
    assert_eq!(none["events"].as_array().unwrap().len(), 0);

    // Pages of 7 add up to the whole list.
    let mut paged = Vec::new();
    let mut q = "/api/v1/events?limit=7".to_string();
    loop {
        let page = ingest.get(&q);
        paged.extend(parse(&page["events"]));
        match page["next"].as_str() {
            Some(n) => q = format!("/api/v1/events?limit=7&after={n}"),
            None => break,
        }
    }
    assert_eq!(paged, truth);

    // One event; a missing one is a 404.
    let one = ingest.get("/api/v1/events/ev/box-1/cam-1/100");
    assert_eq!(one["event_id"], 100);
    assert_eq!(one["updates"], 3);
    assert_eq!(
        http(ingest.http, "/api/v1/events/ev/box-1/cam-1/99999").0,
        404
    );

    // The clip of cam-1's first event: the chunks around it, from a keyframe.
    let (code, clip) = http(ingest.http, "/api/v1/events/ev/box-1/cam-1/100/clip");
    assert_eq!(code, 200);
    let mut want = Vec::new();
    for s in 0..2u64 {
        for u in chunk("cam-1", s, T0 + s * 1_000_000_000).units {
            want.extend(u.data);
        }
    }
    assert_eq!(clip, want);
    assert_eq!(&clip[..5], &[0, 0, 0, 1, 0x65]);
    // No video for cam-2.
    assert_eq!(
        http(ingest.http, "/api/v1/events/ev/box-1/cam-2/100/clip").0,
        404
    );
    // Pictures: none yet is a 404; then the box's composite for the event (a
    // spooled record, acknowledged) and a live thumbnail of the camera.
    assert_eq!(
        http(ingest.http, "/api/v1/events/ev/box-1/cam-1/100/thumbnail").0,
        404
    );
    assert_eq!(
        http(ingest.http, "/api/v1/events/ev/box-1/cam-1/100/composite").0,
        404
    );
    let png = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let composite = Composite {
        header: header(VENUE, BOX, "cam-1", INC, 0, T0),
        event_id: 100,
        width: 512,
        height: 288,
        format: ImageFormat::Png,
        cutouts: 5,
        image: png.clone(),
    };
    bus.put(
        &key(VENUE, BOX, "cam-1", StreamKind::Composite),
        venue_proto::encode(&composite).unwrap(),
    );
    wait_for(Duration::from_secs(10), "composite acked", || {
        bus.acked("cam-1", StreamKind::Composite, INC) == Some(0)
    });
    let (code, got) = http(ingest.http, "/api/v1/events/ev/box-1/cam-1/100/composite");
    assert_eq!((code, got), (200, png));
    // Thumbnails before and after the event's start: the one after is the event's.
    for (i, t) in [(0u8, T0 - 2_000_000_000), (1, T0 + 100_000_000)] {
        let thumb = Thumbnail {
            header: header(VENUE, BOX, "cam-1", INC, u64::from(i), t),
            frame_seq: u64::from(i),
            width: 320,
            height: 180,
            format: ImageFormat::Jpeg,
            image: vec![0xFF, 0xD8, i],
        };
        bus.put(
            &key(VENUE, BOX, "cam-1", StreamKind::Thumbnail),
            venue_proto::encode(&thumb).unwrap(),
        );
    }
    let path = "/api/v1/events/ev/box-1/cam-1/100/thumbnail";
    wait_for(Duration::from_secs(10), "thumbnail stored", || {
        http(ingest.http, path).1 == [0xFF, 0xD8, 1]
    });

    // Statistics: the gap is counted as lost on cam-2's video.
    let stats = ingest.get("/api/v1/stats?venue=ev&camera=cam-2");
    let streams = stats["cameras"][0]["streams"].as_array().unwrap();
    let video = streams.iter().find(|s| s["stream"] == "video").unwrap();
    assert_eq!(video["lost"], 3, "{stats}");
    assert_eq!(video["next_seq"], 3, "{stats}");
    assert_eq!(video["gap_notices"], 1, "{stats}");
    let ev = streams.iter().find(|s| s["stream"] == "event").unwrap();
    assert_eq!(
        ev["stored"].as_u64(),
        Some(records["cam-2"].len() as u64),
        "{stats}"
    );
}
