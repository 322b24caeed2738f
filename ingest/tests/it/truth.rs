//! What the box published and what its synthetic cameras really showed, kept apart
//! from the ingest: `Watcher` is a zenoh session of the test's own that records
//! every event, composite and frame-metadata record the box sends; `truth_moments`
//! renders the synthetic camera again (same scene, seed, size and rate) to read
//! its ground truth; `score` matches stored events against it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use venue_drivers::{Clock, ManualClock, MomentKind, Scene, SyntheticCamera, SyntheticConfig};
use venue_proto::{
    Clip, Composite, Event, EventKind, EventPhase, FrameMeta, StreamKey, StreamKind,
};

/// One synthetic camera of the run.
#[derive(Debug, Clone, Copy)]
pub struct CameraSpec {
    pub id: &'static str,
    pub scene: Scene,
    pub seed: u64,
    pub athletes: u32,
}

/// Everything the watcher saw, each record once: keyed by (camera, incarnation, seq).
#[derive(Debug, Default)]
pub struct Seen {
    pub events: BTreeMap<(String, u64, u64), Event>,
    pub composites: BTreeMap<(String, u64, u64), Composite>,
    /// Event clips pushed on the `clip` stream, by (camera, event id).
    pub clips: BTreeMap<(String, u64), Clip>,
    /// (camera, incarnation) → frame_seq → capture_ns.
    pub frames: BTreeMap<(String, u64), BTreeMap<u64, u64>>,
}

/// A zenoh session that listens on its own port (the box connects to it at
/// start-up, before it publishes anything) and records what the box publishes.
pub struct Watcher {
    pub seen: Arc<Mutex<Seen>>,
    _session: zenoh::Session,
    _rt: tokio::runtime::Runtime,
}

impl Watcher {
    pub fn listen(port: u16, venue: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("rt");
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink = Arc::clone(&seen);
        let session = rt.block_on(async {
            let mut c = zenoh::Config::default();
            c.insert_json5("mode", r#""peer""#).expect("mode");
            c.insert_json5("connect/endpoints", "[]").expect("connect");
            c.insert_json5("listen/endpoints", &format!(r#"["tcp/127.0.0.1:{port}"]"#))
                .expect("listen");
            c.insert_json5("scouting/multicast/enabled", "false")
                .expect("scouting");
            let session = zenoh::open(c).await.expect("zenoh open");
            session
                .declare_subscriber(format!("venue/{venue}/**"))
                .callback(move |s| {
                    let Ok(key) = StreamKey::parse(s.key_expr().as_str()) else {
                        return;
                    };
                    let bytes = s.payload().to_bytes();
                    let cam = key.camera.as_str().to_string();
                    let mut seen = sink.lock().expect("seen");
                    match key.stream {
                        StreamKind::Event => {
                            if let Ok(e) = venue_proto::decode::<Event>(&bytes) {
                                let k = (cam, e.header.incarnation, e.header.seq);
                                seen.events.insert(k, e);
                            }
                        }
                        StreamKind::Composite => {
                            if let Ok(c) = venue_proto::decode::<Composite>(&bytes) {
                                let k = (cam, c.header.incarnation, c.header.seq);
                                seen.composites.insert(k, c);
                            }
                        }
                        StreamKind::Clip => {
                            if let Ok(c) = venue_proto::decode::<Clip>(&bytes)
                                && let Some(id) = c.event_id
                            {
                                seen.clips.insert((cam, id), c);
                            }
                        }
                        StreamKind::Meta => {
                            if let Ok(m) = venue_proto::decode::<FrameMeta>(&bytes) {
                                seen.frames
                                    .entry((cam, m.header.incarnation))
                                    .or_default()
                                    .insert(m.frame_seq, m.header.capture_ns);
                            }
                        }
                        _ => {}
                    }
                })
                .background()
                .await
                .expect("subscribe");
            session
        });
        Self {
            seen,
            _session: session,
            _rt: rt,
        }
    }
}

/// An event as published: its final state after all of its records.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalEvent {
    pub camera: String,
    pub event_id: u64,
    pub kind: &'static str,
    pub phase: &'static str,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub tracks: Vec<u64>,
    pub updates: u64,
    pub incarnation: u64,
}

pub fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Enter => "enter",
        EventKind::Exit => "exit",
        EventKind::TakeOff => "take_off",
        EventKind::Landing => "landing",
        EventKind::Fall => "fall",
        EventKind::SpeedPeak => "speed_peak",
        EventKind::LineCross => "line_cross",
        EventKind::Jump => "jump",
    }
}

fn phase_name(p: EventPhase) -> &'static str {
    match p {
        EventPhase::Started => "started",
        EventPhase::Updated => "updated",
        EventPhase::Ended => "ended",
    }
}

/// Folds the watcher's event records into one final state per (camera, event id),
/// the way the wire contract says consumers upsert: the newest record wins, an end
/// time once known stays. Also checks that the watcher itself missed nothing: each
/// (camera, incarnation) event stream is gap-free from sequence 0.
pub fn final_events(seen: &Seen) -> Vec<FinalEvent> {
    let mut by_stream: BTreeMap<(&str, u64), Vec<u64>> = BTreeMap::new();
    for (cam, inc, seq) in seen.events.keys() {
        by_stream.entry((cam, *inc)).or_default().push(*seq);
    }
    for ((cam, inc), seqs) in &by_stream {
        let want: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(
            seqs, &want,
            "the watcher missed event records of {cam} incarnation {inc}"
        );
    }
    let mut out: BTreeMap<(String, u64), FinalEvent> = BTreeMap::new();
    // Keys sort by (camera, incarnation, seq): records in publishing order.
    for ((cam, inc, _), e) in &seen.events {
        let f = out
            .entry((cam.clone(), e.event_id))
            .or_insert_with(|| FinalEvent {
                camera: cam.clone(),
                event_id: e.event_id,
                kind: kind_name(e.kind),
                phase: phase_name(e.phase),
                start_ns: e.start_ns,
                end_ns: None,
                tracks: Vec::new(),
                updates: 0,
                incarnation: *inc,
            });
        f.kind = kind_name(e.kind);
        f.phase = phase_name(e.phase);
        f.start_ns = e.start_ns;
        f.end_ns = e.end_ns.or(f.end_ns);
        f.tracks = e.tracks.clone();
        f.updates += 1;
        f.incarnation = *inc;
    }
    let mut list: Vec<FinalEvent> = out.into_values().collect();
    list.sort_by_key(|e| (e.camera.clone(), e.event_id));
    list
}

/// The API's events in the same shape.
pub fn api_events(list: &serde_json::Value) -> Vec<FinalEvent> {
    let kinds = [
        "enter",
        "exit",
        "take_off",
        "landing",
        "fall",
        "speed_peak",
        "line_cross",
        "jump",
    ];
    let phases = ["started", "updated", "ended"];
    let mut out: Vec<FinalEvent> = list
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| FinalEvent {
            camera: e["camera"].as_str().expect("camera").to_string(),
            event_id: e["event_id"].as_u64().expect("event_id"),
            kind: kinds
                .iter()
                .find(|k| **k == e["kind"])
                .copied()
                .expect("kind"),
            phase: phases
                .iter()
                .find(|p| **p == e["phase"])
                .copied()
                .expect("phase"),
            start_ns: e["start_ns"].as_u64().expect("start_ns"),
            end_ns: e["end_ns"].as_u64(),
            tracks: e["tracks"]
                .as_array()
                .expect("tracks")
                .iter()
                .map(|t| t.as_u64().expect("track"))
                .collect(),
            updates: e["updates"].as_u64().expect("updates"),
            incarnation: e["incarnation"].as_u64().expect("incarnation"),
        })
        .collect();
    out.sort_by_key(|e| (e.camera.clone(), e.event_id));
    out
}

/// A true moment: its kind, athlete and frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrueMoment {
    pub kind: MomentKind,
    pub athlete: u32,
    pub frame: u64,
}

/// The ground truth of frames `0..frames` of a synthetic camera (what the daemon
/// rendered in one run: every run starts the scene at frame 0). As `venue-edge
/// eval` asks: a fall whose athlete is out of view when its tumble ends went out
/// of the frame falling, and is left out.
pub fn truth_moments(
    cam: &CameraSpec,
    width: u32,
    height: u32,
    fps: u32,
    frames: u64,
) -> Vec<TrueMoment> {
    let cfg = SyntheticConfig {
        width,
        height,
        fps,
        seed: cam.seed,
        athletes: cam.athletes,
        fail_after_frames: None,
        scene: cam.scene,
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let mut camera = SyntheticCamera::new(cfg, clock, 2).expect("synthetic camera");
    let mut out = Vec::new();
    let mut in_view: Vec<BTreeSet<u32>> = Vec::new();
    for _ in 0..frames {
        let (frame, truth) = camera.next_frame_with_truth().expect("synthetic frame");
        in_view.push(truth.athletes.iter().map(|a| a.id).collect());
        for m in &truth.moments {
            out.push(TrueMoment {
                kind: m.kind,
                athlete: m.athlete,
                frame: frame.seq,
            });
        }
    }
    let tumble = (venue_drivers::FALL_TUMBLE_S * fps as f32).ceil() as usize;
    out.retain(|m| {
        m.kind != MomentKind::Fall
            || in_view
                .get(m.frame as usize + tumble)
                .is_none_or(|seen| seen.contains(&m.athlete))
    });
    out
}

/// The frame whose capture time is nearest `t` (frames: frame_seq → capture_ns).
pub fn frame_at(frames: &BTreeMap<u64, u64>, t: u64) -> Option<u64> {
    frames
        .iter()
        .min_by_key(|(_, c)| c.abs_diff(t))
        .map(|(f, _)| *f)
}

/// Matches of one kind of moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    pub truth: usize,
    pub stored: usize,
    pub matched: usize,
    pub error_max: u64,
}

impl Score {
    pub fn precision(&self) -> f64 {
        if self.stored == 0 {
            1.0
        } else {
            self.matched as f64 / self.stored as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.truth == 0 {
            1.0
        } else {
            self.matched as f64 / self.truth as f64
        }
    }
}

/// Greedy one-to-one matching by timing error: each true item matches at most one
/// stored item and the other way round; a pair is more than `window` frames apart
/// at either end is no match. `truth` and `stored` are (first, last) frames.
/// Returns the score and, per true item, how many stored items lie within the
/// window (a stored copy of one moment would show as 2).
pub fn match_frames(
    truth: &[(u64, u64)],
    stored: &[(u64, u64)],
    window: u64,
) -> (Score, Vec<usize>) {
    let err = |t: (u64, u64), s: (u64, u64)| t.0.abs_diff(s.0).max(t.1.abs_diff(s.1));
    let mut pairs: Vec<(u64, usize, usize)> = Vec::new();
    let mut near = vec![0usize; truth.len()];
    for (i, t) in truth.iter().enumerate() {
        for (j, s) in stored.iter().enumerate() {
            let e = err(*t, *s);
            if e <= window {
                pairs.push((e, i, j));
                near[i] += 1;
            }
        }
    }
    pairs.sort();
    let (mut used_t, mut used_s) = (BTreeSet::new(), BTreeSet::new());
    let mut score = Score {
        truth: truth.len(),
        stored: stored.len(),
        ..Score::default()
    };
    for (e, i, j) in pairs {
        if used_t.contains(&i) || used_s.contains(&j) {
            continue;
        }
        used_t.insert(i);
        used_s.insert(j);
        score.matched += 1;
        score.error_max = score.error_max.max(e);
    }
    (score, near)
}

/// True jumps: each take-off paired with the same athlete's next landing.
pub fn true_jumps(moments: &[TrueMoment]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for (i, m) in moments.iter().enumerate() {
        if m.kind != MomentKind::TakeOff {
            continue;
        }
        if let Some(l) = moments[i + 1..]
            .iter()
            .find(|l| l.athlete == m.athlete && l.kind == MomentKind::Landing)
        {
            out.push((m.frame, l.frame));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_one_to_one_within_the_window() {
        let (s, near) = match_frames(&[(10, 20), (50, 60)], &[(11, 19), (12, 21), (90, 95)], 2);
        assert_eq!((s.truth, s.stored, s.matched, s.error_max), (2, 3, 1, 1));
        assert_eq!(near, [2, 0]);
    }
}
