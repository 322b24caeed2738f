//! Video out with the real daemon: a synthetic camera encoded with x264 for 10 s
//! becomes, through `venue-edge video-file`, an MP4 that ffprobe reads with the
//! right frame count, size and rate, each access unit labelled exactly like the
//! frame's metadata; an event clip cut on the box starts on a keyframe at or before
//! the event's start minus the clip pre-roll and decodes to its frame count; a
//! snapshot is a JPEG of the frame size; a missing encoder fails the camera with
//! what to install.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use venue_proto::{AnyMessage, CameraState, VideoChunk};

use crate::common::{BIN, Listener, MetaLog, camera, client, http_get, start, temp_dir};

/// Frame count, width, height, rate and codec of the first video stream, by ffprobe.
fn ffprobe(path: &Path) -> BTreeMap<String, String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .arg("stream=nb_read_frames,width,height,r_frame_rate,codec_name")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe (scripts/setup.sh installs ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Receives until `done`, keeping metadata (per camera) and video chunks (by seq).
struct Collected {
    meta: MetaLog,
    video: BTreeMap<u64, VideoChunk>,
    events: Vec<venue_proto::Event>,
    /// Event clips pushed on the `clip` stream, by event id.
    clips: BTreeMap<u64, venue_proto::Clip>,
}

impl Collected {
    fn new() -> Self {
        Self {
            meta: MetaLog::default(),
            video: BTreeMap::new(),
            events: Vec::new(),
            clips: BTreeMap::new(),
        }
    }

    fn until(&mut self, l: &Listener, limit: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if done(self) {
                return true;
            }
            if let Some((k, m)) = l.next(Duration::from_millis(200)) {
                match m {
                    AnyMessage::Video(v) => {
                        self.video.entry(v.header.seq).or_insert(v);
                    }
                    AnyMessage::Event(e) => self.events.push(e),
                    AnyMessage::Clip(c) => {
                        if let Some(id) = c.event_id {
                            self.clips.insert(id, c);
                        }
                    }
                    m => self.meta.push(k, m),
                }
            }
        }
        done(self)
    }
}

const VIDEO: &str =
    "\n[video]\nencoder = \"x264\"\ngop = 30\nbitrate_kbps = 1000\npreset = \"ultrafast\"\n";

#[test]
fn ten_seconds_of_a_synthetic_camera_play_back_frame_for_frame() {
    let cams = format!("{VIDEO}{}", camera("cam-v", 30, ""));
    let (mut daemon, listener, ports, _) = start("video-file", &cams);
    let dir = temp_dir("video-file-out");
    let (mp4, index) = (dir.join("cam-v.mp4"), dir.join("cam-v.tsv"));
    // The project's own client receives 300 frames (10 s) into a playable file.
    let client = Command::new(BIN)
        .args([
            "video-file",
            "--camera",
            "cam-v",
            "--frames",
            "300",
            "--seconds",
            "60",
        ])
        .args(["--connect", &format!("tcp/127.0.0.1:{}", ports.zenoh)])
        .arg("--out")
        .arg(&mp4)
        .arg("--index")
        .arg(&index)
        .output();
    let mut got = Collected::new();
    got.until(&listener, Duration::from_secs(5), |c| c.video.len() >= 12);
    let client = client.expect("video-file");
    assert!(
        client.status.success(),
        "video-file failed: {}\n{}",
        String::from_utf8_lossy(&client.stderr),
        daemon.log()
    );
    let report = String::from_utf8_lossy(&client.stdout);
    assert!(report.contains("300 frames"), "{report}");

    let probe = ffprobe(&mp4);
    assert_eq!(
        probe.get("codec_name").map(String::as_str),
        Some("h264"),
        "{probe:?}"
    );
    assert_eq!(
        probe.get("width").map(String::as_str),
        Some("640"),
        "{probe:?}"
    );
    assert_eq!(
        probe.get("height").map(String::as_str),
        Some("360"),
        "{probe:?}"
    );
    assert_eq!(
        probe.get("r_frame_rate").map(String::as_str),
        Some("30/1"),
        "{probe:?}"
    );
    assert_eq!(
        probe.get("nb_read_frames").map(String::as_str),
        Some("300"),
        "{probe:?}"
    );

    // Each frame of the file is the frame the metadata describes: same capture
    // sequence, same capture time.
    let ok = got.until(&listener, Duration::from_secs(10), |c| {
        c.meta.count("cam-v") >= 400
    });
    assert!(ok, "metadata: {} frames", got.meta.count("cam-v"));
    let meta: BTreeMap<u64, u64> = got.meta.by_camera["cam-v"]
        .iter()
        .map(|m| (m.frame_seq, m.header.capture_ns))
        .collect();
    let text = std::fs::read_to_string(&index).expect("index");
    let rows: Vec<(u64, u64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 300);
    for (seq, capture_ns) in &rows {
        if let Some(m) = meta.get(seq) {
            assert_eq!(
                m, capture_ns,
                "frame {seq}: video and metadata disagree on its capture time"
            );
        }
    }
    let covered = rows.iter().filter(|(s, _)| meta.contains_key(s)).count();
    assert!(
        covered >= 250,
        "only {covered} of 300 frames seen in the metadata"
    );

    // Over every chunk received, the access units are exactly the metadata's frames,
    // in order, none missing and none extra.
    let units: Vec<(u64, u64)> = got
        .video
        .values()
        .flat_map(|c| c.units.iter().map(|u| (u.frame_seq, u.capture_ns)))
        .collect();
    let (lo, hi) = (units[0].0, units.last().unwrap().0);
    let chunks_contiguous = got
        .video
        .keys()
        .zip(got.video.keys().skip(1))
        .all(|(a, b)| b - a == 1);
    assert!(
        chunks_contiguous,
        "chunk seqs {:?}",
        got.video.keys().collect::<Vec<_>>()
    );
    let meta_span: Vec<(u64, u64)> = meta.range(lo..=hi).map(|(s, c)| (*s, *c)).collect();
    assert_eq!(
        units, meta_span,
        "access units vs metadata frames {lo}..={hi}"
    );
    // GOP chunks: each starts at a keyframe, 30 frames long.
    for c in got.video.values() {
        assert!(c.units[0].keyframe && c.units[1..].iter().all(|u| !u.keyframe));
    }

    // The video stage in health and metrics: frames in and units spooled, none lost.
    let video_stage = got
        .meta
        .health
        .iter()
        .rev()
        .find(|(c, _)| c == "cam-v")
        .and_then(|(_, h)| h.stages.iter().find(|s| s.stage == "video").cloned())
        .expect("health carries a video stage");
    assert!(
        video_stage.frames_in >= 300 && video_stage.frames_out >= 270 && video_stage.dropped == 0,
        "{video_stage:?}"
    );
    let metrics = http_get(ports.metrics, "/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    assert!(value(r#"venue_edge_frames_out_total{camera="cam-v",stage="video"}"#) >= 300.0);
    assert!(value(r#"venue_edge_video_chunks_total{camera="cam-v"}"#) >= 10.0);
    assert!(value(r#"venue_edge_video_bytes_total{camera="cam-v"}"#) > 10_000.0);
    assert!(value(r#"venue_edge_video_ring_bytes{camera="cam-v"}"#) > 10_000.0);
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}

#[test]
fn a_missing_encoder_fails_the_camera_with_what_to_install() {
    // Jetson's encoder is never on a CI machine.
    let cams = format!(
        "\n[video]\nencoder = \"nvv4l2h264\"\n{}",
        camera("cam-x", 30, "")
    );
    let (mut daemon, listener, _ports, _) = start("video-missing", &cams);
    let mut log = MetaLog::default();
    let ok = log.collect_until(&listener, Duration::from_secs(15), |l| {
        l.health
            .iter()
            .any(|(c, h)| c == "cam-x" && h.state == CameraState::Failed)
    });
    assert!(ok, "no failed report; log:\n{}", daemon.log());
    let detail = log
        .health
        .iter()
        .rev()
        .find_map(|(c, h)| (c == "cam-x").then(|| h.detail.clone()))
        .flatten()
        .unwrap_or_default();
    assert!(
        detail.contains("nvv4l2h264enc") && detail.contains("install"),
        "{detail}"
    );
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}

/// `N frames from frame_seq S` in the clip command's report.
fn clip_report(stdout: &str) -> (u64, u64) {
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let at = |w: &str| words.iter().position(|x| *x == w).expect(stdout);
    let frames = words[at("frames") - 1].parse().expect(stdout);
    let first = words[at("frame_seq") + 1].parse().expect(stdout);
    (frames, first)
}

#[test]
fn event_clips_start_on_a_keyframe_before_the_event_and_decode() {
    use venue_proto::EventPhase;
    // A ski slope, segmented and tagged at its full rate, encoded with a GOP of 8.
    let cams = "\n[video]\nencoder = \"x264\"\ngop = 8\npreset = \"ultrafast\"\nbitrate_kbps = 800\npreroll_s = 20\nclip_preroll_s = 1\npostroll_s = 1\n\n[[cameras]]\nid = \"slope\"\nwidth = 640\nheight = 360\nfps = 8\ninference_fps = 8\n[cameras.source]\nkind = \"synthetic\"\nscene = \"slope\"\nseed = 9005\nathletes = 3\n";
    let (mut daemon, listener, ports, _) = start("video-clip", cams);
    let mut got = Collected::new();
    let preroll = 1_000_000_000u64;
    // An event that ended, whose start minus the pre-roll is after the first video.
    let wanted = |c: &Collected| {
        let first = c.video.values().next().map(|v| v.units[0].capture_ns)?;
        c.events
            .iter()
            .find(|e| {
                e.phase == EventPhase::Ended
                    && e.end_ns.is_some()
                    && e.start_ns.saturating_sub(preroll) > first + preroll
            })
            .cloned()
    };
    let ok = got.until(&listener, Duration::from_secs(90), |c| wanted(c).is_some());
    assert!(
        ok,
        "no event ended; {} events; log:\n{}",
        got.events.len(),
        daemon.log()
    );
    let event = wanted(&got).unwrap();
    let end = event.end_ns.unwrap();
    // The clip is cut once the post-roll is encoded; ask until it is there.
    let dir = temp_dir("video-clip-out");
    let path = dir.join("event.mp4");
    let id = event.event_id.to_string();
    let t = Instant::now();
    let report = loop {
        let (ok, out, err) = client(
            ports.zenoh,
            &[
                "clip",
                "--camera",
                "slope",
                "--event",
                &id,
                "--out",
                path.to_str().unwrap(),
            ],
        );
        if ok {
            break out;
        }
        assert!(err.contains("not ended yet"), "{err}");
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no clip: {err}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (frames, first_seq) = clip_report(&report);
    // What the clip should hold, from the chunks on the wire.
    got.until(&listener, Duration::from_secs(3), |_| false);
    let units: Vec<_> = got.video.values().flat_map(|c| c.units.clone()).collect();
    let start = units
        .iter()
        .position(|u| u.frame_seq == first_seq)
        .expect("first frame on the wire");
    let first = &units[start];
    assert!(
        first.keyframe,
        "the clip starts on frame {first_seq}, not a keyframe"
    );
    let from = event.start_ns - preroll;
    assert!(
        first.capture_ns <= from,
        "clip starts after event start − pre-roll"
    );
    // …and on the last keyframe at or before it (no later keyframe would do).
    assert!(
        !units[start + 1..]
            .iter()
            .any(|u| u.keyframe && u.capture_ns <= from),
        "a later keyframe was at or before event start − pre-roll"
    );
    let expected = units[start..]
        .iter()
        .take_while(|u| u.capture_ns <= end + preroll)
        .count() as u64;
    assert_eq!(frames, expected, "frames through event end + post-roll");
    let probe = ffprobe(&path);
    assert_eq!(
        probe.get("nb_read_frames"),
        Some(&frames.to_string()),
        "{probe:?}"
    );
    assert_eq!(probe.get("width").map(String::as_str), Some("640"));

    // The same clip was pushed to the cloud on the camera's spooled `clip` stream.
    let pushed = got.until(&listener, Duration::from_secs(20), |c| {
        c.clips.contains_key(&event.event_id)
    });
    assert!(
        pushed,
        "event clip {} not pushed; log:\n{}",
        event.event_id,
        daemon.log()
    );
    let clip = &got.clips[&event.event_id];
    assert_eq!(
        clip.mp4,
        std::fs::read(&path).unwrap(),
        "the pushed clip is the one the box keeps"
    );
    assert_eq!(
        (clip.first_frame_seq, u64::from(clip.frames), clip.width),
        (first_seq, frames, 640)
    );

    // Any range still in the ring, on request; one no longer kept is refused.
    let last = units.last().unwrap();
    let (a, b) = (last.capture_ns - 2 * preroll, last.capture_ns - preroll);
    let range = dir.join("range.mp4");
    let (ok, out, err) = client(
        ports.zenoh,
        &[
            "clip",
            "--camera",
            "slope",
            "--start-ns",
            &a.to_string(),
            "--end-ns",
            &b.to_string(),
            "--out",
            range.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let (frames, first_seq) = clip_report(&out);
    let u = units
        .iter()
        .find(|u| u.frame_seq == first_seq)
        .expect("range start on the wire");
    assert!(
        u.keyframe && u.capture_ns <= a,
        "range clip starts on {u:?}"
    );
    assert_eq!(
        ffprobe(&range).get("nb_read_frames"),
        Some(&frames.to_string())
    );
    let (ok, _, err) = client(
        ports.zenoh,
        &[
            "clip",
            "--camera",
            "slope",
            "--start-ns",
            "1",
            "--end-ns",
            "2",
            "--out",
            range.to_str().unwrap(),
        ],
    );
    assert!(!ok && err.contains("before the oldest video kept"), "{err}");

    // A snapshot: the next frame as a full-size JPEG.
    let jpeg = dir.join("snap.jpg");
    let (ok, out, err) = client(
        ports.zenoh,
        &[
            "snapshot",
            "--camera",
            "slope",
            "--out",
            jpeg.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("640x360"), "{out}");
    let probe = ffprobe(&jpeg);
    assert_eq!(probe.get("codec_name").map(String::as_str), Some("mjpeg"));
    assert_eq!(probe.get("width").map(String::as_str), Some("640"));
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}

/// The slice NAL units (types 1-5) of an Annex-B access unit, without start codes:
/// what identifies the picture (parsers may repeat SPS/PPS in front of keyframes).
fn slices(au: &[u8]) -> Vec<Vec<u8>> {
    if !(au.starts_with(&[0, 0, 1]) || au.starts_with(&[0, 0, 0, 1])) {
        // Length-prefixed (avc) as the encoder may hand it to the payloader.
        let mut out = Vec::new();
        let mut i = 0;
        while i + 4 <= au.len() {
            let n = u32::from_be_bytes([au[i], au[i + 1], au[i + 2], au[i + 3]]) as usize;
            let nal = &au[i + 4..(i + 4 + n).min(au.len())];
            if nal.first().is_some_and(|b| (1..=5).contains(&(b & 0x1f))) {
                out.push(nal.to_vec());
            }
            i += 4 + n;
        }
        return out;
    }
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(au.len(), |n| n - 3);
        // A 4-byte start code leaves one zero before the next 3-byte one.
        while end > s && starts.get(k + 1).is_some() && au[end - 1] == 0 {
            end -= 1;
        }
        if s < au.len() && (1..=5).contains(&(au[s] & 0x1f)) {
            out.push(au[s..end].to_vec());
        }
    }
    out
}

#[test]
fn an_rtsp_h264_feed_passes_through_bit_exact() {
    use venue_drivers::gst::test_server::{Pattern, RtspTestServer};
    let server = RtspTestServer::start(0, Pattern::default()).expect("rtsp server");
    let cams = format!(
        "\n[[cameras]]\nid = \"net\"\n[cameras.source]\nkind = \"rtsp\"\nurl = \"{}\"\nlatency_ms = 50\n",
        server.url()
    );
    let (mut daemon, listener, _ports, _) = start("video-rtsp", &cams);
    let mut got = Collected::new();
    let ok = got.until(&listener, Duration::from_secs(20), |c| {
        c.video.values().map(|v| v.units.len()).sum::<usize>() >= 100
    });
    assert!(ok, "{} chunks; log:\n{}", got.video.len(), daemon.log());
    let sent: Vec<Vec<Vec<u8>>> = server.sent_units().iter().map(|u| slices(u)).collect();
    let out: Vec<&venue_proto::AccessUnit> = got.video.values().flat_map(|c| &c.units).collect();
    assert!(out[0].keyframe, "the first unit sent is a keyframe");
    assert_eq!(
        got.video.values().next().map(|c| c.codec),
        Some(venue_proto::VideoCodec::H264)
    );
    // The first unit out is one the server sent; from there on, unit for unit, the
    // pictures are the encoder's bytes.
    let first = slices(&out[0].data);
    let at = sent.iter().position(|s| *s == first).unwrap_or_else(|| {
        panic!(
            "first unit out ({} slices, {} bytes) was not sent; {} sent, first sent {:?}",
            first.len(),
            out[0].data.len(),
            sent.len(),
            server
                .sent_units()
                .first()
                .map(|u| u[..u.len().min(16)].to_vec())
        )
    });
    let mut matched = 0;
    for (i, u) in out.iter().enumerate() {
        let Some(want) = sent.get(at + i) else { break };
        assert_eq!(
            &slices(&u.data),
            want,
            "access unit {i} differs from what was sent"
        );
        matched += 1;
    }
    assert!(matched >= 100, "only {matched} units compared");
    // Sequence numbers are the camera's frame numbering, gap-free.
    assert!(out.windows(2).all(|w| w[1].frame_seq == w[0].frame_seq + 1));
    daemon.signal("-TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).is_some());
}
