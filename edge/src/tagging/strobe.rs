//! Strobe composites ("spacetime slices") of jumps: a clean background plate — the
//! per-pixel temporal median of sampled recent frames, leaving out pixels the mask
//! calls athlete — with the jumping athlete cut out of N evenly spaced frames of
//! the jump pasted on it, encoded as one PNG. Keeps the recent frames it needs at
//! a reduced size, reusing their buffers.
//!
//! Making a composite is two steps: [`Strobe::job`] picks the frames (cheap, on
//! the tagger's thread) and [`CompositeJob::render`] computes the plate and encodes
//! the PNG (tens of milliseconds), wherever the caller likes. The frames are shared
//! (`Arc`), so a job holds the ones it needs while the tagger moves on.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use super::TaggingError;
use super::pixels::{Pixels, png_rgb};

/// Strobe settings (see [`super::TaggingConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrobeRules {
    pub cutouts: usize,
    pub width: u32,
    pub plate_samples: usize,
    pub plate_every: u32,
    pub history_frames: usize,
}

/// One athlete cut-out placed in a composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutout {
    /// Capture time of the frame it was cut from.
    pub t_ns: u64,
    /// Box in composite pixels `[x, y, w, h]`.
    pub rect: [u32; 4],
    /// Pixels pasted.
    pub pixels: u32,
}

/// A finished strobe composite.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// The jump event it belongs to (0 when made on request).
    pub event_id: u64,
    pub track: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub width: u32,
    pub height: u32,
    /// The image, PNG.
    pub png: Vec<u8>,
    pub cutouts: Vec<Cutout>,
}

#[derive(Debug, Default, PartialEq)]
struct Stored {
    t_ns: u64,
    /// The frame at composite size: NV12 when `nv12` (turned into RGB only
    /// when a composite uses it), packed RGB otherwise.
    px: Vec<u8>,
    nv12: bool,
    /// The mask at model resolution.
    mask: Vec<u8>,
    /// Tracks seen on this frame and their boxes in mask pixels.
    boxes: Vec<(u64, [u32; 4])>,
}

/// Composite and mask sizes, shared by a [`Strobe`] and its jobs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Geometry {
    /// Composite size.
    w: usize,
    h: usize,
    mask_w: usize,
    mask_h: usize,
}

/// Recent frames and plate samples of one camera.
#[derive(Debug)]
pub struct Strobe {
    rules: StrobeRules,
    frame_w: u32,
    frame_h: u32,
    geo: Geometry,
    frames: VecDeque<Arc<Stored>>,
    plate: VecDeque<Arc<Stored>>,
    spare: Vec<Stored>,
    count: u64,
}

/// The frames one composite is made of, ready to render anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeJob {
    event_id: u64,
    track: u64,
    start_ns: u64,
    end_ns: u64,
    geo: Geometry,
    plate: Vec<Arc<Stored>>,
    /// The frames to cut the athlete from, each with its box in mask pixels.
    picks: Vec<(Arc<Stored>, [u32; 4])>,
}

impl Stored {
    /// The frame as packed RGB of `w`×`h`.
    fn rgb(&self, w: usize, h: usize) -> Cow<'_, [u8]> {
        if self.nv12 {
            let mut rgb = Vec::new();
            Pixels::Nv12(&self.px).sample(w as u32, h as u32, w, h, &mut rgb);
            Cow::Owned(rgb)
        } else {
            Cow::Borrowed(&self.px)
        }
    }
}

impl Geometry {
    /// Composite pixel → mask pixel.
    fn mask_index(&self, x: usize, y: usize) -> usize {
        let mx = ((2 * x + 1) * self.mask_w / (2 * self.w)).min(self.mask_w.saturating_sub(1));
        let my = ((2 * y + 1) * self.mask_h / (2 * self.h)).min(self.mask_h.saturating_sub(1));
        my * self.mask_w + mx
    }

    /// The background plate of `samples`: per pixel, the median of the samples
    /// where no athlete was (all samples where athletes were everywhere).
    fn plate(&self, samples: &[Arc<Stored>]) -> Vec<u8> {
        let (w, h) = (self.w, self.h);
        let mut out = vec![0u8; w * h * 3];
        let mut vals: [Vec<u8>; 3] = Default::default();
        let rgbs: Vec<Cow<'_, [u8]>> = samples.iter().map(|s| s.rgb(w, h)).collect();
        for y in 0..h {
            for x in 0..w {
                let mi = self.mask_index(x, y);
                let i = (y * w + x) * 3;
                for v in &mut vals {
                    v.clear();
                }
                for clean_only in [true, false] {
                    for (s, rgb) in samples.iter().zip(&rgbs) {
                        if clean_only && s.mask.get(mi).is_some_and(|&m| m != 0) {
                            continue;
                        }
                        for (c, v) in vals.iter_mut().enumerate() {
                            v.push(rgb.get(i + c).copied().unwrap_or(0));
                        }
                    }
                    if !vals[0].is_empty() {
                        break;
                    }
                }
                for (c, v) in vals.iter_mut().enumerate() {
                    if !v.is_empty() {
                        v.sort_unstable();
                        out[i + c] = v[v.len() / 2];
                    }
                }
            }
        }
        out
    }
}

impl Strobe {
    pub fn new(rules: StrobeRules, frame_w: u32, frame_h: u32) -> Self {
        let w = (rules.width.min(frame_w).max(1)) as usize;
        let h = ((u64::from(frame_h) * w as u64 / u64::from(frame_w.max(1))).max(1)) as usize;
        Self {
            rules,
            frame_w,
            frame_h,
            geo: Geometry {
                w,
                h,
                mask_w: 0,
                mask_h: 0,
            },
            frames: VecDeque::new(),
            plate: VecDeque::new(),
            spare: Vec::new(),
            count: 0,
        }
    }

    /// A buffer to fill: `old`'s when no job holds it any more, else the spare
    /// pile's, else a new one.
    fn reuse(&mut self, old: Option<Arc<Stored>>) -> Stored {
        old.and_then(|a| Arc::try_unwrap(a).ok())
            .or_else(|| self.spare.pop())
            .unwrap_or_default()
    }

    /// Keeps frame `t_ns` (its pixels, mask and the tracks' boxes on it).
    pub fn record(
        &mut self,
        t_ns: u64,
        px: Pixels<'_>,
        mask: &[u8],
        mw: usize,
        mh: usize,
        boxes: impl Iterator<Item = (u64, [u32; 4])>,
    ) {
        if (mw, mh) != (self.geo.mask_w, self.geo.mask_h) {
            // The model changed: old masks no longer line up.
            let old: Vec<Arc<Stored>> = self.frames.drain(..).chain(self.plate.drain(..)).collect();
            self.spare
                .extend(old.into_iter().filter_map(|a| Arc::try_unwrap(a).ok()));
            (self.geo.mask_w, self.geo.mask_h) = (mw, mh);
        }
        let (fw, fh, w, h) = (self.frame_w, self.frame_h, self.geo.w, self.geo.h);
        let fill = |s: &mut Stored| {
            s.t_ns = t_ns;
            s.nv12 = px.sample_nv12(fw, fh, w, h, &mut s.px).is_some();
            if !s.nv12 {
                px.sample(fw, fh, w, h, &mut s.px);
            }
            s.mask.clear();
            s.mask.extend_from_slice(mask);
        };
        if self.count.is_multiple_of(u64::from(self.rules.plate_every)) {
            let old = (self.plate.len() >= self.rules.plate_samples)
                .then(|| self.plate.pop_front())
                .flatten();
            let mut s = self.reuse(old);
            fill(&mut s);
            s.boxes.clear();
            self.plate.push_back(Arc::new(s));
        }
        let old = (self.frames.len() >= self.rules.history_frames)
            .then(|| self.frames.pop_front())
            .flatten();
        let mut s = self.reuse(old);
        fill(&mut s);
        s.boxes.clear();
        s.boxes.extend(boxes);
        self.frames.push_back(Arc::new(s));
        self.count += 1;
    }

    /// The frames for the composite of `track` from `start_ns` to `end_ns`: `cutouts`
    /// frames of the span evenly spaced in time on which the track was seen, and
    /// the current plate samples. An error when there are too few.
    pub fn job(
        &self,
        event_id: u64,
        track: u64,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<CompositeJob, TaggingError> {
        if end_ns <= start_ns {
            return Err(TaggingError::Strobe(format!(
                "empty time span {start_ns}..{end_ns}"
            )));
        }
        // Frames of the span on which the track was seen.
        let seen: Vec<&Arc<Stored>> = self
            .frames
            .iter()
            .filter(|s| {
                s.t_ns >= start_ns && s.t_ns <= end_ns && s.boxes.iter().any(|b| b.0 == track)
            })
            .collect();
        let n = self.rules.cutouts;
        if seen.len() < n || self.plate.is_empty() {
            return Err(TaggingError::Strobe(format!(
                "track {track} is on {} kept frames of the span, {n} needed",
                seen.len()
            )));
        }
        let mut picks: Vec<(Arc<Stored>, [u32; 4])> = Vec::with_capacity(n);
        for k in 0..n {
            let want = start_ns + ((end_ns - start_ns) as f64 * k as f64 / (n - 1) as f64) as u64;
            let Some(s) = seen.iter().min_by_key(|s| s.t_ns.abs_diff(want)) else {
                continue;
            };
            if picks.iter().any(|(p, _)| p.t_ns == s.t_ns) {
                continue;
            }
            if let Some(&(_, b)) = s.boxes.iter().find(|b| b.0 == track) {
                picks.push((Arc::clone(s), b));
            }
        }
        Ok(CompositeJob {
            event_id,
            track,
            start_ns,
            end_ns,
            geo: self.geo,
            plate: self.plate.iter().cloned().collect(),
            picks,
        })
    }
}

impl CompositeJob {
    /// The jump event the composite belongs to (0 when asked for).
    pub fn event_id(&self) -> u64 {
        self.event_id
    }

    /// The plate with the cut-outs pasted on it, as a PNG.
    pub fn render(&self) -> Result<Composite, TaggingError> {
        let g = &self.geo;
        let mut rgb = g.plate(&self.plate);
        let mut cutouts = Vec::with_capacity(self.picks.len());
        for (s, mask_box) in &self.picks {
            let [mx0, my0, mx1, my1] = *mask_box;
            // The box in composite pixels.
            let x0 = mx0 as usize * g.w / g.mask_w.max(1);
            let x1 = (mx1 as usize * g.w).div_ceil(g.mask_w.max(1)).min(g.w);
            let y0 = my0 as usize * g.h / g.mask_h.max(1);
            let y1 = (my1 as usize * g.h).div_ceil(g.mask_h.max(1)).min(g.h);
            let mut pixels = 0u32;
            let src = s.rgb(g.w, g.h);
            for y in y0..y1 {
                for x in x0..x1 {
                    if s.mask.get(g.mask_index(x, y)).is_some_and(|&m| m != 0) {
                        let i = (y * g.w + x) * 3;
                        if let (Some(d), Some(src)) = (rgb.get_mut(i..i + 3), src.get(i..i + 3)) {
                            d.copy_from_slice(src);
                            pixels += 1;
                        }
                    }
                }
            }
            cutouts.push(Cutout {
                t_ns: s.t_ns,
                rect: [
                    x0 as u32,
                    y0 as u32,
                    x1.saturating_sub(x0) as u32,
                    y1.saturating_sub(y0) as u32,
                ],
                pixels,
            });
        }
        Ok(Composite {
            event_id: self.event_id,
            track: self.track,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            width: g.w as u32,
            height: g.h as u32,
            png: png_rgb(g.w, g.h, &rgb)?,
            cutouts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plate_is_the_clean_median_and_cutouts_land_where_the_athlete_was() {
        let rules = StrobeRules {
            cutouts: 3,
            width: 64,
            plate_samples: 5,
            plate_every: 1,
            history_frames: 10,
        };
        let (w, h) = (8u32, 4u32);
        let mut s = Strobe::new(rules, w, h);
        // Grey background, a dark 1×1 "athlete" moving right one pixel a frame.
        for f in 0..6u64 {
            let mut rgb = vec![200u8; (w * h * 3) as usize];
            let mut mask = vec![0u8; (w * h) as usize];
            let x = f as usize;
            mask[w as usize + x] = 255;
            rgb[(w as usize + x) * 3..(w as usize + x) * 3 + 3].copy_from_slice(&[10, 20, 30]);
            let b = [x as u32, 1, x as u32 + 1, 2];
            s.record(
                f * 10,
                Pixels::Rgb(&rgb),
                &mask,
                w as usize,
                h as usize,
                [(7, b)].into_iter(),
            );
        }
        let samples: Vec<Arc<Stored>> = s.plate.iter().cloned().collect();
        assert!(
            s.geo.plate(&samples).iter().all(|&v| v == 200),
            "the athlete left no ghost"
        );
        let composite = |track, start, end| s.job(3, track, start, end).and_then(|j| j.render());
        let c = composite(7, 10, 50).expect("composite");
        assert_eq!((c.width, c.height), (8, 4));
        let xs: Vec<u32> = c.cutouts.iter().map(|c| c.rect[0]).collect();
        assert_eq!(xs, vec![1, 3, 5]);
        assert!(c.cutouts.iter().all(|c| c.pixels == 1));
        assert!(c.png.starts_with(b"\x89PNG"));
        assert!(composite(8, 10, 50).is_err(), "unknown track");
        assert!(composite(7, 50, 10).is_err(), "backwards span");
    }
}
