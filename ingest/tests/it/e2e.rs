//! End to end with the real box daemon: two synthetic cameras publish per-frame
//! metadata and health; the ingest is killed and restarted midway, the daemon is
//! stopped and started again (delivering what was left of its first run). Every
//! record ends up stored exactly once, and the API returns them all.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;

pub const FPS: u32 = 15;

/// The spool stage's `frames_out` in the newest health of each camera: records
/// the box has stored and must deliver.
pub fn spooled(ingest: &Ingest, venue: &str, cameras: &[&str]) -> BTreeMap<String, u64> {
    let stats = ingest.get(&format!("/api/v1/stats?venue={venue}"));
    let mut out = BTreeMap::new();
    for c in stats["cameras"].as_array().unwrap() {
        let cam = c["camera"].as_str().unwrap();
        if !cameras.contains(&cam) {
            continue;
        }
        let n = c["health"]["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["stage"] == "spool"))
            .and_then(|s| s["frames_out"].as_u64())
            .unwrap_or(0);
        out.insert(cam.to_string(), n);
    }
    out
}

/// Waits until, for every camera, the box's first run is fully delivered: in a
/// health report of its next run (incarnation other than `first_run`), the first
/// unacknowledged meta record belongs to that next run (`ack_lag` counts an older
/// run's records on top of the new run's, so it is then below the new run's
/// spooled count), and the ingest has stored records of the next run.
pub fn wait_all_acked(
    ingest: &Ingest,
    venue: &str,
    cameras: &[&str],
    first_run: &BTreeMap<String, u64>,
) {
    wait_for(Duration::from_secs(60), "the first run delivered", || {
        let stats = ingest.get(&format!("/api/v1/stats?venue={venue}"));
        cameras.iter().all(|cam| {
            stats["cameras"].as_array().unwrap().iter().any(|c| {
                let h = &c["health"];
                let spooled = h["stages"]
                    .as_array()
                    .and_then(|s| s.iter().find(|s| s["stage"] == "spool"))
                    .and_then(|s| s["frames_out"].as_u64())
                    .unwrap_or(0);
                let lag = h["uplink"]
                    .as_array()
                    .and_then(|u| u.iter().find(|s| s["stream"] == "meta"))
                    .and_then(|s| s["ack_lag"].as_u64());
                let newer_stored = c["streams"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["stream"] == "meta"
                            && s["incarnation"].as_u64() != first_run.get(*cam).copied()
                            && s["stored"].as_u64().unwrap_or(0) > 0
                    })
                });
                c["camera"] == *cam
                    && h["header"]["incarnation"].as_u64() != first_run.get(*cam).copied()
                    && lag.is_some_and(|l| l < spooled)
                    && newer_stored
            })
        })
    });
}

/// The incarnation of each camera's newest health.
pub fn health_incarnations(ingest: &Ingest, venue: &str) -> BTreeMap<String, u64> {
    let stats = ingest.get(&format!("/api/v1/stats?venue={venue}"));
    stats["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            Some((
                c["camera"].as_str()?.to_string(),
                c["health"]["header"]["incarnation"].as_u64()?,
            ))
        })
        .collect()
}

/// Every stored frame of a camera, by incarnation: sequence numbers must be exactly
/// 0..n (no hole, no copy); returns n per incarnation, in incarnation order.
pub fn stored_runs(ingest: &Ingest, venue: &str, box_id: &str, camera: &str) -> Vec<(u64, u64)> {
    let mut by_inc: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut from = 0u64;
    loop {
        let page = ingest.get(&format!(
            "/api/v1/frames?venue={venue}&box={box_id}&camera={camera}&from_ns={from}&limit=10000"
        ));
        for f in page["frames"].as_array().unwrap() {
            by_inc
                .entry(f["incarnation"].as_u64().unwrap())
                .or_default()
                .push((f["seq"].as_u64().unwrap(), f["frame_seq"].as_u64().unwrap()));
        }
        match page["next_from_ns"].as_u64() {
            Some(n) => from = n,
            None => break,
        }
    }
    let mut out = Vec::new();
    for (inc, mut frames) in by_inc {
        frames.sort();
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        let want: Vec<u64> = (0..frames.len() as u64).collect();
        assert_eq!(seqs, want, "{camera} incarnation {inc}: holes or copies");
        assert!(
            frames.windows(2).all(|w| w[0].1 < w[1].1),
            "{camera}: frame_seq not increasing"
        );
        out.push((inc, frames.len() as u64));
    }
    out
}

/// The watermarks agree with the rows: stored == next_seq, nothing lost or skipped.
pub fn check_stats(ingest: &Ingest, venue: &str, camera: &str, runs: &[(u64, u64)]) {
    let stats = ingest.get(&format!("/api/v1/stats?venue={venue}&camera={camera}"));
    let streams = stats["cameras"][0]["streams"].as_array().unwrap().clone();
    let meta: Vec<&serde_json::Value> = streams.iter().filter(|s| s["stream"] == "meta").collect();
    assert_eq!(meta.len(), runs.len(), "{stats}");
    for (s, (inc, n)) in meta.iter().zip(runs) {
        assert_eq!(s["incarnation"].as_u64(), Some(*inc), "{stats}");
        assert_eq!(s["stored"].as_u64(), Some(*n), "{stats}");
        assert_eq!(s["next_seq"].as_u64(), Some(*n), "{stats}");
        assert_eq!(s["lost"], 0, "{stats}");
        assert_eq!(s["skipped"], 0, "{stats}");
    }
}

fn e2e(name: &str, db: String) {
    let secs = e2e_secs();
    let dir = temp_dir(name);
    let zport = free_port();
    let cams = ["cam-1", "cam-2"];
    let mut ingest = Ingest::start(
        &[
            "--db".into(),
            db,
            "--objects".into(),
            dir.join("objects").display().to_string(),
            "--connect".into(),
            format!("tcp/127.0.0.1:{zport}"),
        ],
        dir.join("ingest.log"),
    );
    let config = edge_config(
        &dir,
        "test-venue",
        "box-1",
        &cams,
        FPS,
        &format!("listen = [\"tcp/127.0.0.1:{zport}\"]"),
    );
    let mut edge = start_edge(&config, dir.join("edge.log"));
    std::thread::sleep(Duration::from_secs(secs / 2));
    // The ingest dies without warning; the box keeps its records until acked.
    ingest.crash_and_restart();
    std::thread::sleep(Duration::from_secs(secs - secs / 2));
    let before_stop = spooled(&ingest, "test-venue", &cams);
    let first_run = health_incarnations(&ingest, "test-venue");
    assert!(edge.stop().success(), "{}", edge.log());
    // The next run delivers what the first left unacknowledged, under its own
    // incarnation, then its own records.
    let mut edge = start_edge(&config, dir.join("edge.log"));
    wait_all_acked(&ingest, "test-venue", &cams, &first_run);
    assert!(edge.stop().success(), "{}", edge.log());

    for cam in cams {
        let runs = stored_runs(&ingest, "test-venue", "box-1", cam);
        assert_eq!(runs.len(), 2, "{cam}: {runs:?}");
        let (inc, n) = runs[0];
        assert_eq!(Some(inc), first_run.get(cam).copied());
        // Everything the box had spooled when asked, plus what it captured until
        // the stop (at most a couple of seconds).
        let spooled = before_stop[cam];
        assert!(
            spooled >= u64::from(FPS) * secs * 7 / 10,
            "{cam}: {spooled} spooled"
        );
        assert!(
            n >= spooled && n <= spooled + 3 * u64::from(FPS),
            "{cam}: {n} stored, {spooled} spooled before the stop"
        );
        check_stats(&ingest, "test-venue", cam, &runs);
    }
    let v = ingest.get("/api/v1/venues");
    let cameras: Vec<&str> = v["venues"][0]["boxes"][0]["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["camera"].as_str().unwrap())
        .collect();
    assert_eq!(cameras, ["_box", "cam-1", "cam-2"]);
    assert!(ingest.counter("health") > 0);
    assert_eq!(ingest.get("/api/v1/ingest")["rejected"]["malformed"], 0);
}

#[test]
fn daemon_to_ingest_sqlite_every_record_once() {
    let dir = temp_dir("e2e-sqlite-db");
    e2e(
        "e2e-sqlite",
        format!("sqlite:{}", dir.join("ingest.db").display()),
    );
}

#[test]
fn daemon_to_ingest_postgres_every_record_once() {
    let pg = Postgres::start("e2e");
    e2e("e2e-pg", pg.url.clone());
}
