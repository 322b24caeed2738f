//! The `[tagging]` section: how segmented frames become detections, tracks, events,
//! strobe composites and thumbnails. Only the settings a venue tunes are keys; the
//! rest keep the tagger's defaults (`TaggingConfig::default`).

use toml_span::value::ValueInner;

use super::{Ctx, TableWalk, boolean, int_or, type_name};
use crate::tagging::TaggingConfig;

/// Keys of `[tagging]`.
pub(super) const KEYS: &[&str] = &[
    "enabled",
    "min_area_px",
    "line",
    "thumbnail_interval_ms",
    "thumbnail_width",
    "strobe_cutouts",
    "strobe_width",
];

/// `None` inside `Some` when tagging is switched off; outer `None` on errors.
pub(super) fn tagging(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<Option<TaggingConfig>> {
    let d = TaggingConfig::default();
    let enabled = boolean(ctx, t, "enabled", true);
    let min_area = int_or(ctx, t, "min_area_px", 1..=100_000, i64::from(d.min_area_px));
    let thumb_ms = int_or(
        ctx,
        t,
        "thumbnail_interval_ms",
        0..=3_600_000,
        d.thumbnail_interval_ms as i64,
    );
    let thumb_w = int_or(
        ctx,
        t,
        "thumbnail_width",
        16..=1920,
        i64::from(d.thumbnail_width),
    );
    let cutouts = int_or(
        ctx,
        t,
        "strobe_cutouts",
        2..=16,
        i64::from(d.strobe_cutouts),
    );
    let strobe_w = int_or(ctx, t, "strobe_width", 16..=4096, i64::from(d.strobe_width));
    let line = line(ctx, t);
    let config = TaggingConfig {
        min_area_px: min_area? as u32,
        thumbnail_interval_ms: thumb_ms? as u64,
        thumbnail_width: thumb_w? as u32,
        strobe_cutouts: cutouts? as u32,
        strobe_width: strobe_w? as u32,
        line: line?,
        ..d
    };
    if let Err(e) = config.validate() {
        ctx.error(t.span, format!("tagging: {e}"));
        return None;
    }
    Some(enabled?.then_some(config))
}

/// `line = [[x0, y0], [x1, y1]]`: a start/finish line in normalised frame
/// coordinates (0-1, x right, y down).
fn line(ctx: &mut Ctx<'_>, t: &mut TableWalk<'_>) -> Option<Option<[[f32; 2]; 2]>> {
    let path = t.key_path("line");
    let Some((_, mut v)) = t.take("line") else {
        return Some(None);
    };
    let span = v.span;
    let shape = format!("{path}: expected two points [[x0, y0], [x1, y1]] with coordinates 0-1");
    let ValueInner::Array(points) = v.take() else {
        ctx.error(span, shape);
        return None;
    };
    let mut out = [[0f32; 2]; 2];
    if points.len() != 2 {
        ctx.error(span, shape);
        return None;
    }
    for (i, mut p) in points.into_iter().enumerate() {
        let pspan = p.span;
        let ValueInner::Array(coords) = p.take() else {
            ctx.error(pspan, shape);
            return None;
        };
        if coords.len() != 2 {
            ctx.error(pspan, shape);
            return None;
        }
        for (j, mut c) in coords.into_iter().enumerate() {
            let cspan = c.span;
            let value = match c.take() {
                ValueInner::Float(f) => f,
                ValueInner::Integer(n) => n as f64,
                other => {
                    ctx.error(
                        cspan,
                        format!(
                            "{path}[{i}][{j}]: expected a number, found {}",
                            type_name(&other)
                        ),
                    );
                    return None;
                }
            };
            if !(0.0..=1.0).contains(&value) {
                ctx.error(cspan, format!("{path}[{i}][{j}]: {value} is outside 0-1 (coordinates are fractions of the frame)"));
                return None;
            }
            out[i][j] = value as f32;
        }
    }
    Some(Some(out))
}
