//! Pre-tagging: from each frame's athlete mask to detections with stable track ids,
//! key-moment events (enter, exit, jump, fall, speed peak, line crossing), strobe
//! composites of jumps and periodic thumbnails. [`Tagger`] is the one entry point:
//! one per camera, fed every analysed frame in capture order.
//!
//! **Boundary**: no I/O, no clock, no wire headers: time comes in with each frame,
//! and what comes out ([`TagOutput`]) is turned into wire messages by the caller.

pub mod detect;
pub mod moments;
pub mod pixels;
pub mod share;
pub mod strobe;
pub mod suit;
pub mod thumbnail;
pub mod track;

use venue_proto::{BBox, Detection, Event, EventKind, EventPhase, Header};

use detect::{Blob, BlobRules, Detector};
use moments::{JumpDone, MomentRules, Moments};
pub use pixels::Pixels;
pub use strobe::{Composite, CompositeJob};
use strobe::{Strobe, StrobeRules};
pub use thumbnail::Thumbnail;
use thumbnail::Thumbnailer;
use track::{Track, TrackRules, Tracker};

/// Everything the tagger can be told. Plain data with defaults that suit the
/// reference model's 256×144 masks; [`TaggingConfig::validate`] says what is wrong
/// with a bad one.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggingConfig {
    /// Blobs smaller than this many mask pixels are dropped (snow, noise).
    pub min_area_px: u32,
    /// Blobs smaller than this share of the mask's area are dropped too (0–1).
    pub min_area_fraction: f32,
    /// Blobs shorter than this many mask rows are dropped.
    pub min_height_px: u32,
    /// A fragment within this many mask pixels of a larger blob joins it.
    pub merge_gap_px: u32,
    /// ... when it is at most this share of the larger blob's area (0–1): two
    /// athletes of similar size are never merged.
    pub merge_max_ratio: f32,
    /// Least IoU between a track's predicted box and a blob to assign them (0–1).
    pub iou_min: f32,
    /// Frames in a row a new track must be seen before it is reported.
    pub min_hits: u32,
    /// Frames a track survives unseen in the open before it ends.
    pub max_coast_frames: u32,
    /// Frames a track survives hidden behind or merged with another athlete.
    pub max_occluded_frames: u32,
    /// Gravity as it appears in the image, frame heights per second² (the
    /// camera's scale: 2.0 is a frame about 5 m high). Jumps are stretches of
    /// about this downward acceleration.
    pub gravity_hps2: f32,
    /// Shorter jumps are still reported, with low confidence.
    pub min_airtime_s: f32,
    /// A fall: the box's height-to-width ratio drops below this share of the
    /// athlete's upright ratio (0–1: lying down, the box turns wide and low)...
    pub fall_shape_ratio: f32,
    /// ... for this long, in seconds (and it is back up for as long to end); in
    /// frames at the camera's rate, at least one.
    pub fall_min_s: f32,
    /// Speed above which a speed peak is reported, frame heights per second.
    pub speed_peak_min_hps: f32,
    /// A start/finish line as two points in normalised frame coordinates (0–1,
    /// x right, y down); crossings of the athletes' feet are events.
    pub line: Option<[[f32; 2]; 2]>,
    /// Cut-outs in a strobe composite (2–16).
    pub strobe_cutouts: u32,
    /// Width of strobe composites in pixels (at most the frame's; 16–4096).
    pub strobe_width: u32,
    /// Longest jump a composite covers, seconds: bounds the frames kept for it.
    pub strobe_max_airtime_s: f32,
    /// Frames in the background plate's temporal median (3–31)...
    pub plate_samples: u32,
    /// ... one every this many frames.
    pub plate_every_frames: u32,
    /// A thumbnail every this many milliseconds; 0 for none.
    pub thumbnail_interval_ms: u64,
    /// Thumbnail width in pixels (16–1920).
    pub thumbnail_width: u32,
    /// Thumbnail JPEG quality (1–100).
    pub thumbnail_quality: u8,
}

impl Default for TaggingConfig {
    fn default() -> Self {
        Self {
            min_area_px: 12,
            min_area_fraction: 0.0002,
            min_height_px: 4,
            merge_gap_px: 2,
            merge_max_ratio: 0.35,
            iou_min: 0.2,
            min_hits: 3,
            max_coast_frames: 8,
            max_occluded_frames: 45,
            gravity_hps2: 2.0,
            min_airtime_s: 0.2,
            fall_shape_ratio: 0.7,
            fall_min_s: 0.13,
            speed_peak_min_hps: 1.2,
            line: None,
            strobe_cutouts: 5,
            strobe_width: 512,
            strobe_max_airtime_s: 2.0,
            plate_samples: 9,
            plate_every_frames: 10,
            thumbnail_interval_ms: 5000,
            thumbnail_width: 320,
            thumbnail_quality: 75,
        }
    }
}

/// Why the tagger refused a configuration or an input. Nothing changes when it does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaggingError {
    #[error("tagging setting `{field}` {reason}")]
    Config { field: &'static str, reason: String },
    #[error("mask of {width}x{height} needs {need} bytes, got {got}")]
    MaskSize {
        width: usize,
        height: usize,
        need: usize,
        got: usize,
    },
    #[error("frame pixels: {0}")]
    Pixels(String),
    #[error("capture time {now} ns is not after the previous frame's {last} ns")]
    TimeWentBack { now: u64, last: u64 },
    #[error(
        "camera of {width}x{height} at {fps} fps cannot be tagged (1-16384 pixels per side, 1-1000 fps)"
    )]
    Camera { width: u32, height: u32, fps: u32 },
    #[error("no strobe composite: {0}")]
    Strobe(String),
}

/// `secs` in whole frames at `fps`, at least one.
fn frames_at(secs: f32, fps: f32) -> u32 {
    ((secs * fps).round() as u32).max(1)
}

fn bad(field: &'static str, reason: impl Into<String>) -> TaggingError {
    TaggingError::Config {
        field,
        reason: reason.into(),
    }
}

impl TaggingConfig {
    /// Checks every field; the first problem found is the error.
    pub fn validate(&self) -> Result<(), TaggingError> {
        let unit = |field, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(bad(field, format!("must be between 0 and 1, got {v}")))
            }
        };
        unit("min_area_fraction", self.min_area_fraction)?;
        unit("merge_max_ratio", self.merge_max_ratio)?;
        unit("iou_min", self.iou_min)?;
        unit("fall_shape_ratio", self.fall_shape_ratio)?;
        if self.min_hits == 0 || self.min_hits > 30 {
            return Err(bad(
                "min_hits",
                format!("must be 1-30, got {}", self.min_hits),
            ));
        }
        if self.max_coast_frames > 300 || self.max_occluded_frames > 300 {
            return Err(bad(
                "max_coast_frames",
                "and max_occluded_frames must be at most 300",
            ));
        }
        if !(self.gravity_hps2.is_finite() && self.gravity_hps2 > 0.0 && self.gravity_hps2 < 1000.0)
        {
            return Err(bad(
                "gravity_hps2",
                format!("must be above 0, got {}", self.gravity_hps2),
            ));
        }
        if !(self.min_airtime_s.is_finite() && (0.0..10.0).contains(&self.min_airtime_s)) {
            return Err(bad("min_airtime_s", "must be 0-10 seconds"));
        }
        if !(self.fall_min_s.is_finite() && self.fall_min_s > 0.0 && self.fall_min_s <= 2.0) {
            return Err(bad("fall_min_s", "must be above 0 and at most 2 seconds"));
        }
        if !(self.speed_peak_min_hps.is_finite() && self.speed_peak_min_hps > 0.0) {
            return Err(bad("speed_peak_min_hps", "must be above 0"));
        }
        if let Some(line) = self.line {
            if line.iter().flatten().any(|v| !(0.0..=1.0).contains(v)) {
                return Err(bad("line", "points must be normalised coordinates (0-1)"));
            }
            if line[0] == line[1] {
                return Err(bad("line", "needs two different points"));
            }
        }
        if !(2..=16).contains(&self.strobe_cutouts) {
            return Err(bad("strobe_cutouts", "must be 2-16"));
        }
        if !(16..=4096).contains(&self.strobe_width) {
            return Err(bad("strobe_width", "must be 16-4096 pixels"));
        }
        if !(self.strobe_max_airtime_s.is_finite()
            && (0.1..=10.0).contains(&self.strobe_max_airtime_s))
        {
            return Err(bad("strobe_max_airtime_s", "must be 0.1-10 seconds"));
        }
        if !(3..=31).contains(&self.plate_samples) || !(1..=300).contains(&self.plate_every_frames)
        {
            return Err(bad(
                "plate_samples",
                "must be 3-31 (and plate_every_frames 1-300)",
            ));
        }
        if !(16..=1920).contains(&self.thumbnail_width) {
            return Err(bad("thumbnail_width", "must be 16-1920 pixels"));
        }
        if !(1..=100).contains(&self.thumbnail_quality) {
            return Err(bad("thumbnail_quality", "must be 1-100"));
        }
        Ok(())
    }
}

/// The camera a tagger serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraInfo {
    /// Frame size in pixels: detections are reported in these coordinates.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// First event id to hand out. Ids must be unique per (box, camera) across
    /// restarts, so a daemon passes something that grows between runs (e.g. the
    /// event stream's incarnation shifted left).
    pub first_event_id: u64,
}

/// One analysed frame.
#[derive(Debug, Clone, Copy)]
pub struct TagInput<'a> {
    /// Capture time, Unix ns; strictly increasing.
    pub capture_ns: u64,
    /// The athlete mask at model resolution, one byte per pixel (non-zero athlete).
    pub mask: &'a [u8],
    pub mask_width: usize,
    pub mask_height: usize,
    /// The frame itself, for strobe composites and thumbnails (optional: without
    /// it, neither is made).
    pub pixels: Option<Pixels<'a>>,
}

/// A new or changed event: send it on the wire (`event` stream) as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct EventUpdate {
    /// Stable across the event's updates.
    pub event_id: u64,
    pub kind: EventKind,
    pub phase: EventPhase,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    pub tracks: Vec<u64>,
    pub confidence: f32,
}

impl EventUpdate {
    /// The wire message under `header`.
    pub fn to_proto(&self, header: Header) -> Event {
        Event {
            header,
            event_id: self.event_id,
            kind: self.kind,
            phase: self.phase,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            tracks: self.tracks.clone(),
            confidence: self.confidence,
        }
    }
}

/// What one frame produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagOutput {
    /// Athletes on this frame in frame pixels; `track` is set for reported
    /// (confirmed) tracks. Athletes hidden behind another are included with their
    /// predicted box and `area_px` 0.
    pub detections: Vec<Detection>,
    pub events: Vec<EventUpdate>,
    /// Strobe composites of jumps that ended on this frame, to render with
    /// [`CompositeJob::render`]: tens of milliseconds each, so a pipeline does it
    /// off the thread that tags, after the frame's events have gone out.
    pub composites: Vec<CompositeJob>,
    pub thumbnail: Option<Thumbnail>,
}

/// The tagger of one camera: detection, tracking, moments, strobe and thumbnails.
#[derive(Debug)]
pub struct Tagger {
    camera: CameraInfo,
    blob_rules: BlobRules,
    detector: Detector,
    tracker: Tracker,
    moments: Moments,
    strobe: Strobe,
    thumbs: Thumbnailer,
    blobs: Vec<Blob>,
    jumps: Vec<JumpDone>,
    last_ns: Option<u64>,
    max_occluded: u32,
}

impl Tagger {
    pub fn new(config: &TaggingConfig, camera: CameraInfo) -> Result<Self, TaggingError> {
        config.validate()?;
        if !(1..=16384).contains(&camera.width)
            || !(1..=16384).contains(&camera.height)
            || !(1..=1000).contains(&camera.fps)
        {
            return Err(TaggingError::Camera {
                width: camera.width,
                height: camera.height,
                fps: camera.fps,
            });
        }
        let c = config;
        let fps = camera.fps as f32;
        let history = ((c.strobe_max_airtime_s * fps).ceil() as usize + 30).max(60);
        Ok(Self {
            camera,
            blob_rules: BlobRules {
                min_area_px: c.min_area_px,
                min_area_fraction: c.min_area_fraction,
                min_height_px: c.min_height_px,
                merge_gap_px: c.merge_gap_px,
                merge_max_ratio: c.merge_max_ratio,
            },
            detector: Detector::default(),
            tracker: Tracker::new(
                TrackRules {
                    iou_min: c.iou_min,
                    min_hits: c.min_hits,
                    max_coast_frames: c.max_coast_frames,
                    max_occluded_frames: c.max_occluded_frames,
                    history_frames: history,
                },
                camera.width,
                camera.height,
            ),
            moments: Moments::new(
                MomentRules {
                    gravity_hps2: c.gravity_hps2,
                    min_airtime_s: c.min_airtime_s,
                    fall_shape_ratio: c.fall_shape_ratio,
                    // Frames at this camera's rate: a fall takes as long at 15 fps
                    // as at 60.
                    fall_min_frames: frames_at(c.fall_min_s, fps),
                    speed_peak_min_hps: c.speed_peak_min_hps,
                    line: c.line,
                },
                camera.width,
                camera.height,
                camera.fps,
                camera.first_event_id,
            ),
            strobe: Strobe::new(
                StrobeRules {
                    cutouts: c.strobe_cutouts as usize,
                    width: c.strobe_width,
                    plate_samples: c.plate_samples as usize,
                    plate_every: c.plate_every_frames,
                    history_frames: history,
                },
                camera.width,
                camera.height,
            ),
            thumbs: Thumbnailer::new(
                c.thumbnail_interval_ms,
                c.thumbnail_width,
                c.thumbnail_quality,
                camera.width,
                camera.height,
            ),
            blobs: Vec::new(),
            jumps: Vec::new(),
            last_ns: None,
            max_occluded: c.max_occluded_frames,
        })
    }

    pub fn camera(&self) -> CameraInfo {
        self.camera
    }

    /// Tags one frame. A bad input (mask or pixels of the wrong size, time going
    /// backwards) is an error and changes nothing.
    pub fn push(&mut self, input: TagInput<'_>) -> Result<TagOutput, TaggingError> {
        let (mw, mh) = (input.mask_width, input.mask_height);
        let need = mw.saturating_mul(mh);
        if mw == 0 || mh == 0 || input.mask.len() != need {
            return Err(TaggingError::MaskSize {
                width: mw,
                height: mh,
                need,
                got: input.mask.len(),
            });
        }
        if let Some(last) = self.last_ns
            && input.capture_ns <= last
        {
            return Err(TaggingError::TimeWentBack {
                now: input.capture_ns,
                last,
            });
        }
        if let Some(p) = input.pixels {
            p.check(self.camera.width, self.camera.height)?;
        }
        self.last_ns = Some(input.capture_ns);
        let t = input.capture_ns;
        let (fw, fh) = (self.camera.width, self.camera.height);
        self.detector.detect(
            input.mask,
            (mw, mh),
            (fw, fh),
            &self.blob_rules,
            &mut self.blobs,
        );
        self.tracker.join_edge_pieces(t, &mut self.blobs);
        let mask = share::MaskView {
            data: input.mask,
            width: mw,
            height: mh,
            scale: [fw as f32 / mw as f32, fh as f32 / mh as f32],
            chroma: input.pixels.map(|pixels| suit::Chroma {
                pixels,
                width: fw as usize,
                height: fh as usize,
            }),
        };
        self.tracker.update_masked(t, &self.blobs, Some(mask));

        let mut out = TagOutput::default();
        self.jumps.clear();
        self.moments
            .update(t, &self.tracker, &mut out.events, &mut self.jumps);
        out.detections = self.detections();

        if let Some(px) = input.pixels {
            let boxes = self.tracker.tracks().iter().filter_map(|tr| {
                tr.last()
                    .filter(|o| o.observed && o.t_ns == t)
                    .map(|o| (tr.id, o.mask_box))
            });
            self.strobe.record(t, px, input.mask, mw, mh, boxes);
            for j in &self.jumps {
                // A jump too short to show apart is still an event, just no picture.
                if let Ok(job) = self
                    .strobe
                    .job(j.event_id, j.track, j.take_off_ns, j.landing_ns)
                {
                    out.composites.push(job);
                }
            }
            out.thumbnail = self
                .thumbs
                .maybe(t, px, input.mask, mw, mh, &out.detections);
        }
        Ok(out)
    }

    /// Ends every open track and event (the camera stops); returns the final
    /// updates.
    pub fn finish(&mut self) -> Vec<EventUpdate> {
        let t = self.last_ns.unwrap_or(0);
        self.tracker.finish();
        let mut events = Vec::new();
        self.jumps.clear();
        self.moments
            .finish(&self.tracker, t, &mut events, &mut self.jumps);
        events
    }

    /// A strobe composite on request: `track` between `start_ns` and `end_ns`, from
    /// the frames still held (about `strobe_max_airtime_s` plus a second). The
    /// frames are picked now; render the job wherever it suits.
    pub fn strobe(
        &self,
        track: u64,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<CompositeJob, TaggingError> {
        self.strobe.job(0, track, start_ns, end_ns)
    }

    fn detections(&self) -> Vec<Detection> {
        let (fw, fh) = (self.camera.width, self.camera.height);
        let owners = self.tracker.owners();
        let mut out = Vec::with_capacity(self.blobs.len() + 2);
        for (b, owner) in self.blobs.iter().zip(owners) {
            let owner = owner.and_then(|id| self.tracker.tracks().iter().find(|t| t.id == id));
            // A blob of athletes merged while crossing: each is reported below at
            // its own predicted place (or its share of the blob) instead.
            let coasting = |t: &Track| t.confirmed && t.last().is_some_and(|o| !o.observed);
            let shared = |t: &Track| t.last().is_some_and(|o| o.shared);
            if owner.is_some_and(|t| coasting(t) || shared(t)) {
                continue;
            }
            let track = owner.filter(|t| t.confirmed).map(|t| t.id);
            // A sliver at the edge is shown only as part of a track.
            if b.weak && track.is_none() {
                continue;
            }
            let [x, y, w, h] = b.rect.to_pixels(fw, fh);
            out.push(Detection {
                class: 0,
                bbox: BBox { x, y, w, h },
                score: if track.is_some() { 0.9 } else { 0.5 },
                track,
                area_px: b.area.round() as u32,
            });
        }
        // Athletes hidden by another: their predicted place, so ids carry through;
        // athletes in a group: their share of it.
        for t in self.tracker.tracks() {
            let Some(o) = t.last() else { continue };
            if t.confirmed && o.shared {
                // Its tracked box, moved by the share: the share's own box is cut
                // where it meets the others'.
                let [x, y, w, h] = t.predicted().clip(fw as f32, fh as f32).to_pixels(fw, fh);
                out.push(Detection {
                    class: 0,
                    bbox: BBox { x, y, w, h },
                    score: 0.7,
                    track: Some(t.id),
                    area_px: 0,
                });
                continue;
            }
            if t.confirmed && !o.observed && o.occluded && t.misses <= self.max_occluded {
                let [x, y, w, h] = o.rect.clip(fw as f32, fh as f32).to_pixels(fw, fh);
                if w > 0 && h > 0 {
                    out.push(Detection {
                        class: 0,
                        bbox: BBox { x, y, w, h },
                        score: 0.5,
                        track: Some(t.id),
                        area_px: 0,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_lasts_as_long_at_any_frame_rate() {
        let s = TaggingConfig::default().fall_min_s;
        assert_eq!(frames_at(s, 30.0), 4);
        assert_eq!(frames_at(s, 15.0), 2);
        assert_eq!(frames_at(s, 60.0), 8);
        // Never zero frames, however slow the camera.
        assert_eq!(frames_at(s, 1.0), 1);
    }

    /// Jump events (track, take-off frame) of two athletes at 30 fps riding
    /// side by side, one blob from frame 16 on, whose tops rise by `lift(frame)`.
    fn jumps_riding_together(lift: impl Fn(u64) -> [f32; 2]) -> Vec<(u64, u64)> {
        const FPS: u32 = 30;
        const FRAME_NS: u64 = 1_000_000_000 / FPS as u64;
        let (w, h) = (256usize, 144usize);
        let mut tagger = Tagger::new(
            &TaggingConfig::default(),
            CameraInfo {
                width: w as u32,
                height: h as u32,
                fps: FPS,
                first_event_id: 1,
            },
        )
        .expect("tagger");
        let mut events = Vec::new();
        for f in 0..60u64 {
            // Apart at first (a track each), closing in to ride side by side.
            let x = 20.0 + 3.0 * f as f32;
            let gap = 8.0 - (f.saturating_sub(6).min(10) as f32 * 1.1);
            let [a, b] = lift(f);
            let mut mask = vec![0u8; w * h];
            for (x0, top) in [(x, 80.0 - a), (x + 12.0 + gap, 78.0 - b)] {
                for y in top.round() as usize..(top + 30.0).round() as usize {
                    for xx in x0.round() as usize..(x0 + 12.0).round() as usize {
                        mask[y * w + xx] = 255;
                    }
                }
            }
            let out = tagger
                .push(TagInput {
                    capture_ns: f * FRAME_NS,
                    mask: &mask,
                    mask_width: w,
                    mask_height: h,
                    pixels: None,
                })
                .expect("tagged");
            events.extend(out.events);
        }
        events.extend(tagger.finish());
        let mut jumps: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e.kind == EventKind::Jump && e.phase == EventPhase::Started)
            .map(|e| (e.tracks[0], e.start_ns / FRAME_NS))
            .collect();
        jumps.sort_unstable();
        jumps
    }

    /// Two athletes riding side by side make one blob, so each is seen only
    /// through its share of it. When they jump together both jumps are found,
    /// dated on the take-off frame; a share whose top steps and settles (where
    /// the shares meet moves) is no jump.
    #[test]
    fn athletes_riding_together_are_seen_to_jump_through_their_shares() {
        const TAKE_OFF: u64 = 30;
        // Gravity in frame pixels per second squared; 0.6 s in the air.
        let g = TaggingConfig::default().gravity_hps2 * 144.0;
        let v0 = g * 0.3;
        let jumps = jumps_riding_together(|f| {
            let air = f.saturating_sub(TAKE_OFF) as f32 / 30.0;
            let lift = if f > TAKE_OFF && air < 0.6 {
                v0 * air - g * air * air / 2.0
            } else {
                0.0
            };
            [lift; 2]
        });
        assert_eq!(jumps.len(), 2, "{jumps:?}");
        for &(_, at) in &jumps {
            assert!(at.abs_diff(TAKE_OFF) <= 1, "take-offs dated {jumps:?}");
        }
        let stepped = jumps_riding_together(|f| {
            let a = match f {
                0..30 => 0.0,
                30..32 => -7.0,
                32..36 => -5.0,
                36 => -2.0,
                37..39 => -3.0,
                39..41 => -4.0,
                41..43 => -5.0,
                _ => -6.0,
            };
            [a, 0.0]
        });
        assert_eq!(stepped, [], "a step is no jump");
    }

    #[test]
    fn fall_duration_is_checked() {
        for bad_s in [0.0, -1.0, 2.5, f32::NAN] {
            let c = TaggingConfig {
                fall_min_s: bad_s,
                ..TaggingConfig::default()
            };
            let err = c.validate().expect_err("refused").to_string();
            assert!(err.contains("fall_min_s"), "{err}");
        }
        assert!(TaggingConfig::default().validate().is_ok());
    }
}
