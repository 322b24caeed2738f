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
    let kept = int_or(ctx, t, "clips_kept", 0..=10_000, 32);
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
    })
}
