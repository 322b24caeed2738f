//! The `[video]` section: how raw cameras are encoded (encoder element, bitrate,
//! GOP, profile, latency, preset), whether compressed feeds pass through, how
//! access units are grouped into chunks, and the pre-roll ring and event clips.

use std::time::Duration;

use toml_span::Span;
use venue_drivers::gst::encode::{EncoderChoice, EncoderSettings, LatencyMode, Preset, Profile};

use super::{Ctx, TableWalk, boolean, int_or, string};
use crate::video::{ChunkMode, VideoConfig};

/// Keys of `[video]`.
pub(super) const KEYS: &[&str] = &[
    "encoder",
    "bitrate_kbps",
    "gop",
    "profile",
    "latency",
    "preset",
    "passthrough",
    "chunk",
    "chunk_window_ms",
    "chunk_max_kb",
    "preroll_s",
    "preroll_max_mb",
    "clip_preroll_s",
    "postroll_s",
    "event_clips",
    "clips_kept",
    "clips_max_mb",
];

/// A string key that must be one of `names`; `default` when absent.
fn choice<T>(
    ctx: &mut Ctx<'_>,
    t: &mut TableWalk<'_>,
    key: &'static str,
    names: &[&str],
    default: T,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<(T, Option<Span>)> {
    match string(ctx, t, key) {
        None => Some((default, None)),
        Some(None) => None,
        Some(Some((s, span))) => match parse(&s) {
            Some(v) => Some((v, Some(span))),
            None => {
                ctx.error(
                    span,
                    format!(
                        "video.{key}: \"{s}\" is not known; expected one of: {}",
                        names.join(", ")
                    ),
                );
                None
            }
        },
    }
}

pub(super) fn video(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<VideoConfig> {
    let d = EncoderSettings::default();
    let mut encoder_names = vec!["off"];
    encoder_names.extend_from_slice(EncoderChoice::NAMES);
    let encoder = choice(ctx, t, "encoder", &encoder_names, None, |s| {
        if s == "off" {
            Some(None)
        } else {
            EncoderChoice::parse(s).map(Some)
        }
    });
    let bitrate = int_or(
        ctx,
        t,
        "bitrate_kbps",
        100..=200_000,
        i64::from(d.bitrate_kbps),
    );
    let gop = int_or(ctx, t, "gop", 1..=1000, i64::from(d.gop));
    let profile = choice(ctx, t, "profile", Profile::NAMES, d.profile, Profile::parse);
    let latency = choice(
        ctx,
        t,
        "latency",
        LatencyMode::NAMES,
        d.latency,
        LatencyMode::parse,
    );
    let preset = choice(ctx, t, "preset", Preset::NAMES, d.preset, Preset::parse);
    let passthrough = boolean(ctx, t, "passthrough", true);
    let chunk = choice(ctx, t, "chunk", &["gop", "window"], "gop", |s| match s {
        "gop" => Some("gop"),
        "window" => Some("window"),
        _ => None,
    });
    let window = int_or(ctx, t, "chunk_window_ms", 100..=60_000, 1000);
    let chunk_max = int_or(ctx, t, "chunk_max_kb", 16..=8192, 2048);
    let preroll_span = t.value_span("clip_preroll_s");
    let preroll = int_or(ctx, t, "preroll_s", 0..=300, 10);
    let clip_preroll = int_or(ctx, t, "clip_preroll_s", 0..=300, 2);
    let preroll_mb = int_or(ctx, t, "preroll_max_mb", 1..=4096, 64);
    let postroll = int_or(ctx, t, "postroll_s", 0..=60, 3);
    let clips = boolean(ctx, t, "event_clips", true);
    let kept = int_or(ctx, t, "clips_kept", 0..=10_000, 16);
    let kept_mb = int_or(ctx, t, "clips_max_mb", 1..=4096, 32);
    let (encoder, _) = encoder?;
    let settings = encoder.map(|choice| EncoderSettings {
        choice,
        bitrate_kbps: bitrate.unwrap_or(0) as u32,
        gop: gop.unwrap_or(1) as u32,
        profile: profile.map_or(d.profile, |p| p.0),
        latency: latency.map_or(d.latency, |l| l.0),
        preset: preset.map_or(d.preset, |p| p.0),
    });
    let chunk = match chunk?.0 {
        "window" => ChunkMode::Window(Duration::from_millis(window? as u64)),
        _ => ChunkMode::Gop,
    };
    let (preroll, clip_preroll) = (preroll?, clip_preroll?);
    if clip_preroll > preroll {
        ctx.error(
            preroll_span,
            format!("video.clip_preroll_s ({clip_preroll}) must not exceed video.preroll_s ({preroll}): the ring keeps only preroll_s seconds"),
        );
        return None;
    }
    // Every value is checked before any is used.
    let (_, _, _, _, _) = (bitrate?, gop?, profile?, latency?, preset?);
    Some(VideoConfig {
        encoder: settings,
        passthrough: passthrough?,
        chunk,
        chunk_max_bytes: chunk_max? as usize * 1024,
        preroll: Duration::from_secs(preroll as u64),
        clip_preroll: Duration::from_secs(clip_preroll as u64),
        preroll_max_bytes: preroll_mb? as usize * 1024 * 1024,
        postroll: Duration::from_secs(postroll? as u64),
        event_clips: clips?,
        clips_kept: kept? as usize,
        clips_max_bytes: kept_mb? as usize * 1024 * 1024,
    })
}

#[cfg(test)]
mod tests {
    use venue_drivers::gst::encode::{EncoderChoice, LatencyMode, Preset, Profile};

    use crate::config::parse;
    use crate::video::{ChunkMode, VideoConfig};

    const BOX: &str = "[box]\nvenue = \"v\"\nid = \"b\"\n";
    const CAM: &str = "[[cameras]]\nid = \"c1\"\n[cameras.source]\nkind = \"synthetic\"\n";

    fn video(section: &str) -> Result<VideoConfig, Vec<String>> {
        parse(&format!("{BOX}{section}\n{CAM}"), "t.toml")
            .map(|c| c.video)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn no_section_encodes_nothing_and_passes_feeds_through() {
        assert_eq!(video(""), Ok(VideoConfig::default()));
        assert!(video("").is_ok_and(|v| v.encoder.is_none() && v.passthrough));
    }

    #[test]
    fn every_key_is_read() {
        let v = video(
            "[video]\nencoder = \"x264\"\nbitrate_kbps = 3000\ngop = 60\nprofile = \"main\"\nlatency = \"normal\"\npreset = \"veryfast\"\npassthrough = false\nchunk = \"window\"\nchunk_window_ms = 500\nchunk_max_kb = 512\npreroll_s = 20\npreroll_max_mb = 100\nclip_preroll_s = 5\npostroll_s = 4\nevent_clips = false\nclips_kept = 3\nclips_max_mb = 8\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let e = v.encoder.unwrap();
        assert_eq!(e.choice, EncoderChoice::parse("x264").unwrap());
        assert_eq!((e.bitrate_kbps, e.gop), (3000, 60));
        assert_eq!(
            (e.profile, e.latency, e.preset),
            (Profile::Main, LatencyMode::Normal, Preset::Veryfast)
        );
        assert!(!v.passthrough && !v.event_clips);
        assert_eq!(
            v.chunk,
            ChunkMode::Window(std::time::Duration::from_millis(500))
        );
        assert_eq!(
            (v.chunk_max_bytes, v.preroll_max_bytes, v.clips_kept),
            (512 * 1024, 100 << 20, 3)
        );
        assert_eq!(v.clips_max_bytes, 8 << 20);
        assert_eq!(
            (
                v.preroll.as_secs(),
                v.clip_preroll.as_secs(),
                v.postroll.as_secs()
            ),
            (20, 5, 4)
        );
    }

    #[test]
    fn bad_values_are_reported_with_their_position() {
        let errs = video("[video]\nencoder = \"h264\"\nbitrate_kbps = 5\nprofile = \"extended\"\nchunk = \"frame\"\n")
            .unwrap_err();
        assert_eq!(
            errs,
            vec![
                "t.toml:5:12: video.encoder: \"h264\" is not known; expected one of: off, auto, x264, x265, nvh264, nvh265, nvv4l2h264, nvv4l2h265",
                "t.toml:6:16: video.bitrate_kbps: 5 is out of range; expected 100..=200000",
                "t.toml:7:12: video.profile: \"extended\" is not known; expected one of: baseline, main, high",
                "t.toml:8:10: video.chunk: \"frame\" is not known; expected one of: gop, window",
            ]
        );
        let errs = video("[video]\npreroll_s = 3\nclip_preroll_s = 5\n").unwrap_err();
        assert_eq!(
            errs,
            vec![
                "t.toml:6:18: video.clip_preroll_s (5) must not exceed video.preroll_s (3): the ring keeps only preroll_s seconds"
            ]
        );
        let errs = video("[video]\nencoder = 264\nframes = 3\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("video.encoder: expected a string, found an integer"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("unknown key \"frames\" in [video]"),
            "{errs:?}"
        );
    }
}
