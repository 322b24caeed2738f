//! `kind = "v4l2"` in `[cameras.source]`: a USB/CSI camera by its device node, the
//! formats it may deliver, its buffers and stall timeout, and `[cameras.source.controls]`
//! (exposure, gain, white balance). Size and rate are the camera's `width`, `height`
//! and `fps`; the device's own ranges are checked when it is opened.

use std::path::PathBuf;

use toml_span::value::ValueInner;
use venue_drivers::PixelFormat;
use venue_drivers::v4l2::{ControlValue, parse_controls};

use super::{Ctx, NameList, TableWalk, int_or, ms, name_list, string, type_name};
use crate::config::{SourceConfig, V4l2Source};

/// Keys of a V4L2 `[cameras.source]`.
pub(super) const KEYS: &[&str] = &[
    "kind",
    "device",
    "formats",
    "buffers",
    "frame_timeout_ms",
    "reopen_min_ms",
    "reopen_max_ms",
    "controls",
];

pub(super) fn source(ctx: &mut Ctx<'_>, path: &str, t: &mut TableWalk<'_>) -> Option<SourceConfig> {
    t.known = KEYS;
    let device = match string(ctx, t, "device") {
        None => {
            t.missing(ctx, "device");
            None
        }
        Some(Some((d, span))) if d.trim().is_empty() || d.contains('\0') => {
            ctx.error(
                span,
                format!("{path}.device: must be a device path such as /dev/video0"),
            );
            None
        }
        Some(d) => d.map(|(d, _)| PathBuf::from(d)),
    };
    let formats = formats(ctx, t);
    let buffers = int_or(ctx, t, "buffers", 2..=32, 4);
    let timeout = int_or(ctx, t, "frame_timeout_ms", 10..=60_000, 2_000);
    let min_span = t.value_span("reopen_min_ms");
    let min = int_or(ctx, t, "reopen_min_ms", 10..=600_000, 500);
    let max = int_or(ctx, t, "reopen_max_ms", 10..=600_000, 30_000);
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        ctx.error(
            min_span,
            format!("{path}.reopen_min_ms: {lo} is above reopen_max_ms ({hi})"),
        );
        return None;
    }
    let controls = controls(ctx, path, t);
    Some(SourceConfig::V4l2(V4l2Source {
        device: device?,
        formats: formats?,
        buffers: buffers? as u32,
        frame_timeout: ms(timeout?),
        reopen_min: ms(min?),
        reopen_max: ms(max?),
        controls: controls?,
    }))
}

/// `formats = ["nv12", "yuyv", "mjpeg"]`: allowed formats, most preferred first.
fn formats(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<Vec<PixelFormat>> {
    let expected = PixelFormat::ALL.map(PixelFormat::name).join(", ");
    let spec = NameList {
        what: "format",
        expected: &expected,
        parse: &PixelFormat::from_name,
        non_empty: true,
        unique: true,
    };
    name_list(ctx, t, "formats", &spec)
        .unwrap_or_else(|| Some(venue_drivers::v4l2::ModeRequest::DEFAULT_FORMATS.to_vec()))
}

/// `[cameras.source.controls]`: `exposure = 200`, `gain_auto = true`, …; names, types
/// and manual-vs-automatic conflicts are checked here, ranges on the device.
fn controls(
    ctx: &mut Ctx<'_>,
    path: &str,
    t: &mut TableWalk<'_>,
) -> Option<Vec<venue_drivers::v4l2::ControlSetting>> {
    let Some((_, mut v)) = t.take("controls") else {
        return Some(Vec::new());
    };
    let span = v.span;
    let ValueInner::Table(map) = v.take() else {
        ctx.error(
            span,
            format!("{path}.controls: expected a table such as {{ exposure = 200 }}"),
        );
        return None;
    };
    let mut entries = Vec::new();
    let mut ok = true;
    for (key, mut value) in map {
        let vspan = value.span;
        match value.take() {
            ValueInner::Integer(i) => entries.push((key.name.to_string(), ControlValue::Int(i))),
            ValueInner::Boolean(b) => entries.push((key.name.to_string(), ControlValue::Bool(b))),
            other => {
                ctx.error(
                    vspan,
                    format!(
                        "{path}.controls.{}: expected an integer or a boolean, found {}",
                        key.name,
                        type_name(&other)
                    ),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match parse_controls(&entries) {
        Ok(settings) => Some(settings),
        Err(e) => {
            ctx.error(span, format!("{path}.controls: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::time::Duration;

    use venue_drivers::PixelFormat;
    use venue_drivers::v4l2::{ControlName, ControlValue};

    use super::super::parse;
    use crate::config::{SourceConfig, V4l2Source};

    const CAMERA: &str = "[box]\nvenue = \"v\"\nid = \"b\"\n[[cameras]]\nid = \"c1\"\nwidth = 1920\nheight = 1080\nfps = 25\n[cameras.source]\nkind = \"v4l2\"\n";

    fn source(body: &str) -> Result<V4l2Source, Vec<String>> {
        match parse(&format!("{CAMERA}{body}"), "t.toml") {
            Ok(c) => match &c.cameras[0].source {
                SourceConfig::V4l2(s) => Ok(s.clone()),
                other => panic!("not a V4L2 source: {other:?}"),
            },
            Err(e) => Err(e.0.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn defaults_and_every_key() {
        let s = source("device = \"/dev/video0\"\n").unwrap();
        assert_eq!(s.device.to_str(), Some("/dev/video0"));
        assert_eq!(
            s.formats,
            vec![PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg]
        );
        assert_eq!((s.buffers, s.frame_timeout), (4, Duration::from_secs(2)));
        assert!(s.controls.is_empty());

        let s = source(
            "device = \"/dev/v4l/by-id/usb-cam-video-index0\"\nformats = [\"mjpeg\", \"YUYV\"]\nbuffers = 8\nframe_timeout_ms = 500\nreopen_min_ms = 100\nreopen_max_ms = 4000\n[cameras.source.controls]\nexposure = 200\ngain_auto = true\n",
        )
        .unwrap();
        assert_eq!(s.formats, vec![PixelFormat::Mjpeg, PixelFormat::Yuyv]);
        assert_eq!(s.buffers, 8);
        assert_eq!(s.frame_timeout, Duration::from_millis(500));
        assert_eq!(
            (s.reopen_min, s.reopen_max),
            (Duration::from_millis(100), Duration::from_secs(4))
        );
        let exposure = s
            .controls
            .iter()
            .find(|c| c.name == ControlName::Exposure)
            .expect("exposure set");
        assert_eq!(exposure.value, ControlValue::Int(200));
        assert!(s.controls.iter().any(|c| c.name == ControlName::GainAuto));
    }

    #[test]
    fn bad_values_name_the_key_and_the_place() {
        let cases: &[(&str, &str)] = &[
            ("", "missing required key \"device\" in [cameras[0].source]"),
            (
                "device = \"\"\n",
                "cameras[0].source.device: must be a device path",
            ),
            (
                "device = \"/dev/video0\"\nformats = [\"i420\"]\n",
                "t.toml:12:13: cameras[0].source.formats[0]: \"i420\" is not a format; expected one of: nv12, yuyv, rgb24, mjpeg, h264, h265",
            ),
            (
                "device = \"/dev/video0\"\nformats = []\n",
                "formats: must name at least one format",
            ),
            (
                "device = \"/dev/video0\"\nformats = [\"nv12\", \"nv12\"]\n",
                "\"nv12\" is listed twice",
            ),
            (
                "device = \"/dev/video0\"\nbuffers = 1\n",
                "buffers: 1 is out of range; expected 2..=32",
            ),
            (
                "device = \"/dev/video0\"\nreopen_min_ms = 5000\nreopen_max_ms = 100\n",
                "reopen_min_ms: 5000 is above reopen_max_ms (100)",
            ),
            (
                "device = \"/dev/video0\"\nurl = \"rtsp://x/y\"\n",
                "unknown key \"url\" in [cameras[0].source]",
            ),
            (
                "device = \"/dev/video0\"\n[cameras.source.controls]\nshutter = 5\n",
                "unknown camera control \"shutter\"",
            ),
            (
                "device = \"/dev/video0\"\n[cameras.source.controls]\nexposure = 200\nexposure_auto = true\n",
                "conflicts with exposure_auto = true",
            ),
            (
                "device = \"/dev/video0\"\n[cameras.source.controls]\ngain = \"high\"\n",
                "controls.gain: expected an integer or a boolean, found a string",
            ),
        ];
        for (body, expected) in cases {
            let errors = source(body).expect_err(body);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{body:?}: expected {expected:?} in {errors:?}"
            );
        }
    }
}
