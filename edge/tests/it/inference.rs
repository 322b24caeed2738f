//! Segmentation in the running daemon: masks ride on the frame metadata at the
//! configured rate, and a reload swaps the model without a restart or rejects a bad
//! one while the old keeps running.

use std::path::Path;
use std::time::Duration;

use venue_proto::FrameMeta;

use crate::common::*;

/// A camera that segments `inference_fps` of its `fps` frames a second.
fn seg_camera(id: &str, fps: u32, inference_fps: u32) -> String {
    format!(
        "\n[[cameras]]\nid = \"{id}\"\nwidth = 640\nheight = 360\nfps = {fps}\ninference_fps = {inference_fps}\n[cameras.source]\nkind = \"synthetic\"\nseed = 9003\nathletes = 6\n"
    )
}

fn masked(metas: &[FrameMeta]) -> impl Iterator<Item = &venue_proto::MaskRle> {
    metas.iter().filter_map(|m| m.mask.as_ref())
}

#[test]
fn frame_metadata_carries_masks_at_the_inference_rate() {
    let (mut daemon, listener, _ports, _cfg) = start("masks", &seg_camera("seg", 10, 5));
    let mut log = MetaLog::default();
    assert!(
        log.collect_until(&listener, Duration::from_secs(60), |l| l.count("seg") >= 40
            && l.health.iter().any(|(c, _)| c == "seg")),
        "{}",
        daemon.log()
    );
    let metas = &log.by_camera["seg"];
    let masks: Vec<_> = masked(metas).collect();
    // 5 of 10 frames a second are due: never more masks than that. How many of
    // those a busy worker replaced depends on the machine; they are counted below.
    assert!(
        masks.len() >= 3 && masks.len() <= metas.len() / 2 + 2,
        "{} masks on {} frames",
        masks.len(),
        metas.len()
    );
    for m in &masks {
        assert_eq!((m.width, m.height), (256, 144));
        assert!(m.is_consistent(), "runs do not cover the mask");
    }
    // Six synthetic athletes: most masks show some.
    let with_athletes = masks.iter().filter(|m| m.runs.len() > 1).count();
    assert!(
        with_athletes * 2 > masks.len(),
        "{with_athletes} of {} masks show athletes",
        masks.len()
    );
    // Health reports the infer stage.
    let (_, health) = log.health.iter().rev().find(|(c, _)| c == "seg").unwrap();
    let infer = health
        .stages
        .iter()
        .find(|s| s.stage == "infer")
        .expect("infer stage in health");
    assert!(infer.frames_in > 0 && infer.frames_out > 0, "{infer:?}");
    // Every frame handed to inference is accounted for: masked, dropped as busy
    // (counted when replaced), failed, or still in flight: at most two with the
    // workers, plus masks waiting in the metadata queue (queue_depth 4 + 10 fps).
    let settled = infer.frames_out + infer.dropped + infer.errors;
    assert!(
        settled <= infer.frames_in && infer.frames_in <= settled + 2 + 14,
        "{infer:?}"
    );
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

/// A copy of the reference model with another version in its manifest.
fn model_dir(dir: &Path, version: &str) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/reference");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(reference.join("model.onnx"), dir.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(reference.join("manifest.toml")).unwrap();
    let manifest = manifest.replace("version = \"1\"", &format!("version = \"{version}\""));
    assert!(manifest.contains(&format!("version = \"{version}\"")));
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
}

#[test]
fn reload_swaps_the_model_and_rejects_a_bad_one() {
    let (mut daemon, listener, ports, cfg) = start("model-swap", &seg_camera("seg", 10, 5));
    let dir = cfg.parent().unwrap().to_path_buf();
    let mut log = MetaLog::default();
    let masks = |l: &MetaLog| l.by_camera.get("seg").map_or(0, |m| masked(m).count());
    assert!(
        log.collect_until(&listener, Duration::from_secs(60), |l| masks(l) >= 3),
        "{}",
        daemon.log()
    );

    // A model directory whose ONNX file is garbage: rejected, the old model goes on.
    let bad = dir.join("bad-model");
    model_dir(&bad, "bad");
    std::fs::write(bad.join("model.onnx"), b"not a model").unwrap();
    let with_model = |model: &Path| {
        format!(
            "{}\n[inference]\nmodel = \"{}\"\n",
            seg_camera("seg", 10, 5),
            model.display()
        )
    };
    std::fs::write(&cfg, config_text(&ports, &with_model(&bad))).unwrap();
    daemon.signal("-HUP");
    let before = masks(&log);
    assert!(
        log.collect_until(&listener, Duration::from_secs(60), |l| masks(l)
            >= before + 3),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains(
            "the segmentation model cannot be used; keeping the running configuration and model"
        ),
        "{}",
        daemon.log()
    );

    // A good new model: loaded in the background and swapped in; the camera runs on.
    let good = dir.join("good-model");
    model_dir(&good, "2");
    std::fs::write(&cfg, config_text(&ports, &with_model(&good))).unwrap();
    daemon.signal("-HUP");
    let swapped = |d: &Daemon| {
        d.log()
            .contains("segmentation model swapped in model=venue-reference-seg 2 (tract")
    };
    let t = std::time::Instant::now();
    while !swapped(&daemon) && t.elapsed() < Duration::from_secs(60) {
        let _ = log.collect_until(&listener, Duration::from_millis(200), |_| false);
    }
    assert!(swapped(&daemon), "{}", daemon.log());
    let before = masks(&log);
    assert!(
        log.collect_until(&listener, Duration::from_secs(60), |l| masks(l)
            >= before + 3),
        "{}",
        daemon.log()
    );
    // The camera itself was not restarted: its frames stayed gap-free.
    for w in log.by_camera["seg"].windows(2) {
        assert_eq!(
            w[1].frame_seq,
            w[0].frame_seq + 1,
            "camera missed a frame during the swap"
        );
    }
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn a_model_that_cannot_load_stops_the_start_with_the_reason() {
    let dir = temp_dir("bad-model-start");
    let ports = Ports {
        zenoh: free_port(),
        metrics: free_port(),
        spool: dir.join("spool"),
    };
    let cameras = format!(
        "{}\n[inference]\nmodel = \"{}\"\n",
        seg_camera("seg", 10, 5),
        dir.join("no-such-model").display()
    );
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config_text(&ports, &cameras)).unwrap();
    let mut daemon = Daemon::start(&cfg, dir.join("daemon.log"));
    let (status, _) = daemon.wait_exit(Duration::from_secs(30)).expect("exit");
    assert!(!status.success());
    let log = daemon.log();
    assert!(
        log.contains("cannot load the segmentation model") && log.contains("no-such-model"),
        "{log}"
    );
}

#[test]
fn segmented_frames_are_tagged_into_events_composites_and_thumbnails() {
    use std::collections::BTreeMap;
    use venue_proto::{AnyMessage, EventKind, EventPhase, StreamKind};

    // A ski slope segmented at its full frame rate, with frequent thumbnails.
    let cameras = "\n[[cameras]]\nid = \"slope\"\nwidth = 640\nheight = 360\nfps = 8\ninference_fps = 8\n[cameras.source]\nkind = \"synthetic\"\nscene = \"slope\"\nseed = 9005\nathletes = 3\n\n[tagging]\nthumbnail_interval_ms = 1000\n";
    let (mut daemon, listener, _ports, _cfg) = start("tagging", cameras);
    let mut log = MetaLog::default();
    let mut events: BTreeMap<u64, Vec<venue_proto::Event>> = BTreeMap::new();
    let mut composites = Vec::new();
    let mut thumbnails = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(90) {
        let enough = events.len() >= 3 && thumbnails.len() >= 2 && log.count("slope") >= 40;
        if enough {
            break;
        }
        let Some((key, msg)) = listener.next(Duration::from_millis(200)) else {
            continue;
        };
        match msg {
            // Unacknowledged records are resent: keep the first copy of each.
            AnyMessage::Event(e) => {
                if seen.insert((StreamKind::Event, e.header.incarnation, e.header.seq)) {
                    events.entry(e.event_id).or_default().push(e);
                }
            }
            AnyMessage::Composite(c) => {
                if seen.insert((StreamKind::Composite, c.header.incarnation, c.header.seq)) {
                    composites.push(c);
                }
            }
            AnyMessage::Thumbnail(th) => thumbnails.push(th),
            other => log.push(key, other),
        }
    }
    assert!(
        events.len() >= 3,
        "{} events; {}",
        events.len(),
        daemon.log()
    );
    assert!(thumbnails.len() >= 2, "{} thumbnails", thumbnails.len());
    // Detections ride on segmented frames, in frame pixels.
    let metas = &log.by_camera["slope"];
    let detected = metas.iter().filter(|m| !m.detections.is_empty()).count();
    assert!(detected > 0, "no frame carried detections");
    for d in metas.iter().flat_map(|m| &m.detections) {
        assert!(
            d.bbox.x + d.bbox.w <= 640 && d.bbox.y + d.bbox.h <= 360,
            "{d:?}"
        );
    }
    // Every event's updates share its id and kind, start once, and end at most once.
    for (id, updates) in &events {
        let kinds: std::collections::BTreeSet<_> = updates.iter().map(|e| e.kind as u8).collect();
        assert_eq!(kinds.len(), 1, "event {id} changed kind: {updates:?}");
        let ended = updates
            .iter()
            .filter(|e| e.phase == EventPhase::Ended)
            .count();
        assert!(ended <= 1, "event {id} ended twice: {updates:?}");
    }
    assert!(
        events
            .values()
            .flatten()
            .any(|e| e.kind == EventKind::Enter),
        "no enter event among {:?}",
        events
            .values()
            .flatten()
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    );
    // A composite belongs to a jump event and is a PNG.
    for c in &composites {
        assert!(c.image.starts_with(b"\x89PNG"), "composite is not a PNG");
        let jump = events
            .get(&c.event_id)
            .expect("composite names a known event");
        assert!(jump.iter().all(|e| e.kind == EventKind::Jump));
        // Rendered after its frame went out, it is still dated by that frame: the
        // one the jump ended on.
        let ended = jump.iter().find(|e| e.phase == EventPhase::Ended);
        if let Some(e) = ended {
            assert_eq!(c.header.capture_ns, e.header.capture_ns, "{c:?} vs {e:?}");
        }
    }
    for th in &thumbnails {
        assert!(
            th.image.starts_with(&[0xFF, 0xD8]),
            "thumbnail is not a JPEG"
        );
        assert_eq!(th.width, 320);
    }
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).is_some());
}

/// A strobe composite on request: the camera's `composite` queryable cuts a track
/// over a span of the frames its tagger still holds (`venue-edge composite`);
/// a track it never saw, or an empty span, is refused saying why.
#[test]
fn a_composite_is_cut_on_request_for_a_recent_track() {
    use std::collections::BTreeMap;
    let cameras = "\n[[cameras]]\nid = \"slope\"\nwidth = 640\nheight = 360\nfps = 8\ninference_fps = 8\n[cameras.source]\nkind = \"synthetic\"\nscene = \"slope\"\nseed = 9005\nathletes = 3\n";
    let (mut daemon, listener, ports, _cfg) = start("composite-request", cameras);
    let dir = temp_dir("composite-request-out");
    let png = dir.join("strobe.png");
    let png_arg = png.to_str().expect("path");
    let ask = |track: u64, start: u64, end: u64| {
        let (track, start, end) = (track.to_string(), start.to_string(), end.to_string());
        client(
            ports.zenoh,
            &[
                "composite",
                "--camera",
                "slope",
                "--track",
                &track,
                "--start-ns",
                &start,
                "--end-ns",
                &end,
                "--out",
                png_arg,
            ],
        )
    };
    // Tracks seen on the segmented frames, with the capture times they were seen at.
    let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut log = MetaLog::default();
    let t = std::time::Instant::now();
    let mut last_refusal = String::new();
    let made = loop {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "no composite on request; last refusal: {last_refusal}; log:\n{}",
            daemon.log()
        );
        log.collect_until(&listener, Duration::from_millis(500), |_| false);
        for m in log.by_camera.get("slope").into_iter().flatten() {
            for d in &m.detections {
                if let Some(track) = d.track {
                    let times = seen.entry(track).or_default();
                    if times.last().is_none_or(|&l| l < m.header.capture_ns) {
                        times.push(m.header.capture_ns);
                    }
                }
            }
        }
        // A track on at least 6 recent segmented frames (the default composite has
        // 5 cut-outs): ask for its last 6 while the tagger still holds them. The
        // newest *segmented* frame: under load most frames go unsegmented (no
        // mask, no detections), and no track is ever seen on those.
        let newest = log
            .by_camera
            .get("slope")
            .and_then(|v| v.iter().rev().find(|m| m.mask.is_some()))
            .map_or(0, |m| m.header.capture_ns);
        let Some((track, times)) = seen
            .iter()
            .filter(|(_, v)| v.len() >= 6 && v.last() == Some(&newest))
            .max_by_key(|(_, v)| v.len())
        else {
            continue;
        };
        let (ok, out, err) = ask(*track, times[times.len() - 6], newest);
        if ok {
            break out;
        }
        // The span can leave the tagger's frames on a slow machine: try a newer one.
        assert!(err.contains("kept frames"), "{err}");
        last_refusal = err;
    };
    // Up to 5 cut-outs (the default), one per distinct frame nearest its moment:
    // frames skipped under load can leave fewer.
    let cutouts: u32 = made
        .split_whitespace()
        .rev()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cut-out count in {made:?}"));
    assert!((2..=5).contains(&cutouts), "{made}");
    let bytes = std::fs::read(&png).expect("png");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    let image = venue_edge::segment::read_image(&png).expect("decode");
    assert!(image.width > 0 && image.height > 0);

    let (ok, _, err) = ask(999_999, 1, 2);
    assert!(
        !ok && err.contains("track 999999 is on 0 kept frames"),
        "{err}"
    );
    let (ok, _, err) = ask(1, 5, 5);
    assert!(!ok && err.contains("not after"), "{err}");
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}
