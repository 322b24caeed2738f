//! `venue-edge eval`: scores tagging against the synthetic venue camera's ground
//! truth. Runs capture → segmentation (the embedded reference model, or the true
//! masks with `--truth-masks` to isolate the tagger) → tagging over seeds of a
//! scene, and reports tracking (MOTA, IDF1 — CLEAR-MOT and ID measures at IoU ≥
//! 0.5) and key-moment precision/recall with timing errors in frames.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use pathfinding::prelude::{Matrix, kuhn_munkres};
use venue_drivers::{Clock, ManualClock, MomentKind, Scene, SyntheticCamera, SyntheticConfig};
use venue_models::Model;
use venue_proto::{EventKind, EventPhase};

use crate::tagging::detect::Rect;
use crate::tagging::{CameraInfo, EventUpdate, Pixels, TagInput, Tagger, TaggingConfig};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub scene: Scene,
    pub seeds: Vec<u64>,
    /// Frames per seed.
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub athletes: u32,
    /// Tag the true masks instead of the model's.
    pub truth_masks: bool,
    /// With `truth_masks`: clear the pixels where two athletes touch, so each
    /// is a blob of its own (what a model that tells touching athletes apart
    /// would give the tagger: how much that is worth).
    pub truth_seams: bool,
    /// Keep the model's masks here and reuse them on the next run of the same
    /// sequence (see [`crate::mask_cache`]).
    pub mask_cache: Option<std::path::PathBuf>,
    /// A predicted moment matches a true one at most this many frames apart.
    pub window: u64,
    pub config: TaggingConfig,
    /// Where the model runs (the masks agree across backends; the time does not).
    pub backend: venue_models::BackendChoice,
}

impl Default for EvalArgs {
    fn default() -> Self {
        Self {
            scene: Scene::Rink,
            seeds: vec![1001],
            frames: 450,
            width: 256,
            height: 144,
            fps: 30,
            athletes: 4,
            truth_masks: false,
            truth_seams: false,
            mask_cache: None,
            window: 2,
            config: TaggingConfig::default(),
            backend: venue_models::BackendChoice::default(),
        }
    }
}

/// Parses `1,2,3`, `1..10` (inclusive) or a mix (`1..3,7`).
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if let Some((a, b)) = part.split_once("..") {
            let a: u64 = a
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a seed range like 1..10"))?;
            let b: u64 = b
                .trim()
                .parse()
                .map_err(|_| format!("{part:?} is not a seed range like 1..10"))?;
            if b < a || b - a >= 10_000 {
                return Err(format!(
                    "seed range {part:?} must go up and hold at most 10000 seeds"
                ));
            }
            out.extend(a..=b);
        } else {
            out.push(
                part.parse()
                    .map_err(|_| format!("{part:?} is not a seed (a whole number)"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("no seeds given".into());
    }
    Ok(out)
}

/// Precision, recall and timing of one kind of moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MomentScore {
    pub truth: usize,
    pub predicted: usize,
    pub matched: usize,
    /// Sum and maximum of |predicted − true| frames over matches.
    pub error_sum: u64,
    pub error_max: u64,
}

impl MomentScore {
    pub fn precision(&self) -> f64 {
        ratio(self.matched, self.predicted)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.matched, self.truth)
    }
    pub fn mean_error(&self) -> f64 {
        if self.matched == 0 {
            0.0
        } else {
            self.error_sum as f64 / self.matched as f64
        }
    }
    fn add(&mut self, o: &MomentScore) {
        self.truth += o.truth;
        self.predicted += o.predicted;
        self.matched += o.matched;
        self.error_sum += o.error_sum;
        self.error_max = self.error_max.max(o.error_max);
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The moment kinds scored (those the synthetic camera labels).
pub const KINDS: [MomentKind; 5] = [
    MomentKind::Enter,
    MomentKind::Exit,
    MomentKind::TakeOff,
    MomentKind::Landing,
    MomentKind::Fall,
];

/// Everything measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalReport {
    pub scene: String,
    pub seeds: Vec<u64>,
    pub frames: u64,
    pub truth_masks: bool,
    pub truth_seams: bool,
    pub gt_boxes: usize,
    /// Truth boxes below the detector's floor (see [`dont_care`]): not scored.
    pub ignored_boxes: usize,
    /// True moments of an athlete out of sight or below the detector's floor in
    /// the moment's frame: not scored either way.
    pub ignored_moments: usize,
    pub hyp_boxes: usize,
    pub misses: usize,
    pub false_positives: usize,
    pub id_switches: usize,
    pub idtp: usize,
    /// Per kind, in [`KINDS`] order.
    pub moments: Vec<(MomentKind, MomentScore)>,
    /// Event updates that broke the upsert rules (kind or track changed under one
    /// id, an update after the end, two ends).
    pub update_errors: usize,
    /// Jumps reported twice (two jump ids overlapping in time on one track).
    pub duplicate_jumps: usize,
    pub composites: usize,
    pub composite_cutouts_min: usize,
    pub thumbnails: usize,
    pub tagging_ms_per_frame: f64,
    pub model_ms_per_frame: f64,
}

impl EvalReport {
    pub fn mota(&self) -> f64 {
        if self.gt_boxes == 0 {
            return 1.0;
        }
        1.0 - (self.misses + self.false_positives + self.id_switches) as f64 / self.gt_boxes as f64
    }
    pub fn idf1(&self) -> f64 {
        let d = self.gt_boxes + self.hyp_boxes;
        if d == 0 {
            1.0
        } else {
            2.0 * self.idtp as f64 / d as f64
        }
    }
    pub fn events(&self) -> MomentScore {
        let mut all = MomentScore::default();
        for (_, m) in &self.moments {
            all.add(m);
        }
        all
    }
    pub fn moment(&self, kind: MomentKind) -> MomentScore {
        self.moments
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| *m)
            .unwrap_or_default()
    }
}

impl EvalReport {
    /// Adds the counts of `o` (scored on other seeds) to these.
    fn merge(&mut self, o: &EvalReport) {
        self.gt_boxes += o.gt_boxes;
        self.ignored_boxes += o.ignored_boxes;
        self.ignored_moments += o.ignored_moments;
        self.hyp_boxes += o.hyp_boxes;
        self.misses += o.misses;
        self.false_positives += o.false_positives;
        self.id_switches += o.id_switches;
        self.idtp += o.idtp;
        for ((k, m), (ok, om)) in self.moments.iter_mut().zip(&o.moments) {
            if k == ok {
                m.add(om);
            }
        }
        self.update_errors += o.update_errors;
        self.duplicate_jumps += o.duplicate_jumps;
        self.composites += o.composites;
        self.composite_cutouts_min = self.composite_cutouts_min.min(o.composite_cutouts_min);
        self.thumbnails += o.thumbnails;
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        writeln!(f, "scene {}", self.scene)?;
        writeln!(f, "seeds {}", seeds.join(","))?;
        writeln!(f, "frames {}", self.frames)?;
        let masks = match (self.truth_masks, self.truth_seams) {
            (true, true) => "truth, apart where athletes touch",
            (true, false) => "truth",
            (false, _) => "model",
        };
        writeln!(f, "masks {masks}")?;
        writeln!(f, "mota {:.3}", self.mota())?;
        writeln!(f, "idf1 {:.3}", self.idf1())?;
        writeln!(f, "truth_boxes {}", self.gt_boxes)?;
        writeln!(f, "truth_boxes_ignored {}", self.ignored_boxes)?;
        writeln!(f, "misses {}", self.misses)?;
        writeln!(f, "false_positives {}", self.false_positives)?;
        writeln!(f, "id_switches {}", self.id_switches)?;
        let all = self.events();
        writeln!(f, "moments_ignored {}", self.ignored_moments)?;
        writeln!(f, "event_precision {:.3}", all.precision())?;
        writeln!(f, "event_recall {:.3}", all.recall())?;
        for (k, m) in &self.moments {
            let k = k.as_str();
            writeln!(f, "{k}_truth {}", m.truth)?;
            writeln!(f, "{k}_predicted {}", m.predicted)?;
            writeln!(f, "{k}_precision {:.3}", m.precision())?;
            writeln!(f, "{k}_recall {:.3}", m.recall())?;
            writeln!(f, "{k}_error_frames_mean {:.2}", m.mean_error())?;
            writeln!(f, "{k}_error_frames_max {}", m.error_max)?;
        }
        writeln!(f, "event_update_errors {}", self.update_errors)?;
        writeln!(f, "duplicate_jumps {}", self.duplicate_jumps)?;
        writeln!(f, "strobe_composites {}", self.composites)?;
        writeln!(f, "strobe_cutouts_min {}", self.composite_cutouts_min)?;
        writeln!(f, "thumbnails {}", self.thumbnails)?;
        writeln!(f, "tagging_ms_per_frame {:.3}", self.tagging_ms_per_frame)?;
        writeln!(f, "model_ms_per_frame {:.1}", self.model_ms_per_frame)
    }
}

/// Seeds are independent, so up to this many run at once, each thread with its
/// own model and tagger; the figures do not depend on how they are shared out.
const MAX_THREADS: usize = 2;

/// What one thread measured over its share of the seeds.
struct Partial {
    report: EvalReport,
    tag_s: f64,
    model_s: f64,
    frames: u64,
}

/// Runs the evaluation.
pub fn run(args: &EvalArgs) -> anyhow::Result<EvalReport> {
    args.config.validate().context("bad tagging settings")?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
        .min(args.seeds.len().max(1));
    let share = args.seeds.len().div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<Partial>> = std::thread::scope(|s| {
        let handles: Vec<_> = args
            .seeds
            .chunks(share)
            .map(|seeds| s.spawn(move || run_seeds(args, seeds)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an evaluation thread panicked")))
            })
            .collect()
    });
    let mut report = empty_report(args);
    let (mut tag_s, mut model_s, mut n_frames) = (0.0f64, 0.0f64, 0u64);
    for part in parts {
        let part = part?;
        report.merge(&part.report);
        tag_s += part.tag_s;
        model_s += part.model_s;
        n_frames += part.frames;
    }
    if report.composite_cutouts_min == usize::MAX {
        report.composite_cutouts_min = 0;
    }
    let n = n_frames.max(1) as f64;
    report.tagging_ms_per_frame = tag_s * 1e3 / n;
    report.model_ms_per_frame = model_s * 1e3 / n;
    Ok(report)
}

fn empty_report(args: &EvalArgs) -> EvalReport {
    EvalReport {
        scene: args.scene.as_str().into(),
        seeds: args.seeds.clone(),
        frames: args.frames,
        truth_masks: args.truth_masks,
        truth_seams: args.truth_masks && args.truth_seams,
        moments: KINDS.iter().map(|&k| (k, MomentScore::default())).collect(),
        composite_cutouts_min: usize::MAX,
        ..EvalReport::default()
    }
}

/// `seeds` one after the other, with a model of its own.
fn run_seeds(args: &EvalArgs, seeds: &[u64]) -> anyhow::Result<Partial> {
    let cache = match (&args.mask_cache, args.truth_masks) {
        (Some(dir), false) => {
            let source = venue_models::ModelSource::reference()
                .context("cannot load the embedded reference model")?;
            Some((dir.clone(), crate::mask_cache::model_digest(&source.onnx)))
        }
        _ => None,
    };
    let mut masks = MaskSource {
        truth: args.truth_masks,
        backend: &args.backend,
        model: None,
        cache,
    };
    let mut part = Partial {
        report: empty_report(args),
        tag_s: 0.0,
        model_s: 0.0,
        frames: 0,
    };
    for &seed in seeds {
        part.frames += run_seed(
            args,
            seed,
            &mut masks,
            &mut part.report,
            &mut part.tag_s,
            &mut part.model_s,
        )
        .with_context(|| format!("seed {seed}"))?;
    }
    Ok(part)
}

/// Where a seed's masks come from: the synthetic truth, or the reference model on
/// `backend` (loaded on first need), maybe through the mask cache (directory, model
/// digest).
struct MaskSource<'a> {
    truth: bool,
    backend: &'a venue_models::BackendChoice,
    model: Option<Model>,
    cache: Option<(std::path::PathBuf, String)>,
}

impl MaskSource<'_> {
    fn model(&mut self) -> anyhow::Result<&mut Model> {
        if self.model.is_none() {
            let source = venue_models::ModelSource::reference()
                .context("cannot load the embedded reference model")?;
            let model = source.build(self.backend).with_context(|| {
                format!("cannot run the reference model on {}", self.backend.name())
            })?;
            self.model = Some(model);
        }
        self.model
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no model"))
    }
}

type Boxes = Vec<(u64, Rect)>;

fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
    Rect {
        x0: x as f32,
        y0: y as f32,
        x1: (x + w) as f32,
        y1: (y + h) as f32,
    }
}

fn run_seed(
    args: &EvalArgs,
    seed: u64,
    masks: &mut MaskSource,
    report: &mut EvalReport,
    tag_s: &mut f64,
    model_s: &mut f64,
) -> anyhow::Result<u64> {
    let cfg = SyntheticConfig {
        width: args.width,
        height: args.height,
        fps: args.fps,
        seed,
        athletes: args.athletes,
        fail_after_frames: None,
        scene: args.scene,
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_767_225_600_000_000_000));
    let mut camera =
        SyntheticCamera::new(cfg, clock, 2).context("cannot set up the synthetic camera")?;
    let mut tagger = Tagger::new(
        &args.config,
        CameraInfo {
            width: args.width,
            height: args.height,
            fps: args.fps,
            first_event_id: 1,
        },
    )?;
    let (w, h) = (args.width as usize, args.height as usize);
    let mut times = Vec::with_capacity(args.frames as usize);
    let mut gts: Vec<Boxes> = Vec::new();
    let mut hyps: Vec<Boxes> = Vec::new();
    let mut ignored_gts: Vec<Vec<Rect>> = Vec::new();
    let mut asked = AskedMoments::new(args.fps);
    let mut updates: Vec<EventUpdate> = Vec::new();
    let cache_path = masks.cache.as_ref().map(|(dir, digest)| {
        let what = format!(
            "{}-{seed}-{w}x{h}-{}fps-{}athletes-{}frames",
            args.scene.as_str(),
            args.fps,
            args.athletes,
            args.frames
        );
        crate::mask_cache::path(dir, &what, digest)
    });
    let cached = cache_path
        .as_deref()
        .and_then(|p| crate::mask_cache::load(p, args.frames as usize));
    let mut computed =
        (cache_path.is_some() && cached.is_none()).then(|| crate::mask_cache::Masks {
            width: 0,
            height: 0,
            frames: Vec::with_capacity(args.frames as usize),
        });
    let mut seamed = Vec::new();
    for index in 0..args.frames {
        let (frame, _) = camera
            .next_frame_with_truth()
            .with_context(|| format!("frame {index}"))?;
        if masks.truth && args.truth_seams {
            apart_where_touching(&camera.last_instances(), w, &mut seamed);
        }
        let truth = camera.last_truth();
        times.push(frame.capture_ns);
        let t0 = Instant::now();
        let model_mask;
        let (mask, mw, mh) = match &cached {
            _ if masks.truth && args.truth_seams => (&seamed[..], w, h),
            _ if masks.truth => (&truth.mask[..], w, h),
            Some(c) => (&c.frames[index as usize][..], c.width, c.height),
            None => {
                model_mask = masks
                    .model()?
                    .segment_nv12(&frame.data, w, h)
                    .context("segmentation failed")?;
                if let Some(c) = computed.as_mut() {
                    (c.width, c.height) = (model_mask.width, model_mask.height);
                    c.frames.push(model_mask.data.clone());
                }
                (&model_mask.data[..], model_mask.width, model_mask.height)
            }
        };
        *model_s += t0.elapsed().as_secs_f64();
        let (mut scored, mut ignored) = (Vec::new(), Vec::new());
        for a in &truth.athletes {
            let r = rect(a.bbox.x, a.bbox.y, a.bbox.width, a.bbox.height);
            if dont_care(a, (w, h), (mw, mh), &args.config) {
                ignored.push(r);
            } else {
                scored.push((u64::from(a.id), r));
            }
        }
        let in_view = |athlete: u64| scored.iter().any(|(id, _)| *id == athlete);
        asked.frame(index, &truth.moments, in_view);
        gts.push(scored);
        ignored_gts.push(ignored);
        let t1 = Instant::now();
        let out = tagger.push(TagInput {
            capture_ns: frame.capture_ns,
            mask,
            mask_width: mw,
            mask_height: mh,
            pixels: Some(Pixels::Nv12(&frame.data)),
        })?;
        *tag_s += t1.elapsed().as_secs_f64();
        hyps.push(
            out.detections
                .iter()
                .filter_map(|d| {
                    d.track
                        .map(|id| (id, rect(d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h)))
                })
                .collect(),
        );
        // Each event with the frame its start falls on.
        let start_frame = |ns: u64| {
            (ns.saturating_sub(times[0]) as f64 * f64::from(args.fps) * 1e-9).round() as u64
        };
        tracing::trace!(
            seed,
            frame = index,
            truth = ?gts.last(),
            tracks = ?hyps.last(),
            events = ?out
                .events
                .iter()
                .map(|e| (e.event_id, e.kind, e.phase, &e.tracks, start_frame(e.start_ns)))
                .collect::<Vec<_>>(),
            "frame"
        );
        updates.extend(out.events);
        for job in &out.composites {
            match job.render() {
                Ok(c) => {
                    report.composites += 1;
                    report.composite_cutouts_min =
                        report.composite_cutouts_min.min(c.cutouts.len());
                }
                Err(e) => tracing::warn!(error = %e, "strobe composite not made"),
            }
        }
        report.thumbnails += usize::from(out.thumbnail.is_some());
    }
    updates.extend(tagger.finish());
    let (mut truth_moments, mut ignored_moments) = asked.finish();
    if let (Some(p), Some(c)) = (&cache_path, &computed)
        && let Err(e) = crate::mask_cache::store(p, c)
    {
        tracing::warn!(path = %p.display(), error = %e, "masks not cached");
    }

    // Tracking.
    let hyp_to_gt = score_tracking(&gts, &ignored_gts, &hyps, report);

    // Events: the final state of each id, checked against the upsert rules.
    let mut last: BTreeMap<u64, EventUpdate> = BTreeMap::new();
    for u in &updates {
        match last.get(&u.event_id) {
            Some(prev)
                if prev.phase == EventPhase::Ended
                    || prev.kind != u.kind
                    || prev.tracks != u.tracks =>
            {
                report.update_errors += 1;
            }
            None if u.phase == EventPhase::Updated => report.update_errors += 1,
            _ => {}
        }
        last.insert(u.event_id, u.clone());
    }
    let jumps: Vec<&EventUpdate> = last
        .values()
        .filter(|e| e.kind == EventKind::Jump)
        .collect();
    for (i, a) in jumps.iter().enumerate() {
        for b in &jumps[i + 1..] {
            let (ae, be) = (a.end_ns.unwrap_or(u64::MAX), b.end_ns.unwrap_or(u64::MAX));
            if a.tracks == b.tracks && a.start_ns <= be && b.start_ns <= ae {
                report.duplicate_jumps += 1;
            }
        }
    }
    let frame_of = |ns: u64| -> u64 {
        match times.binary_search(&ns) {
            Ok(i) => i as u64,
            Err(i) => {
                let after = i.min(times.len().saturating_sub(1));
                let before = i.saturating_sub(1);
                if times[after].abs_diff(ns) < times[before].abs_diff(ns) {
                    after as u64
                } else {
                    before as u64
                }
            }
        }
    };
    let mut predicted: Vec<(MomentKind, u64, u64)> = Vec::new();
    for e in last.values() {
        let Some(&track) = e.tracks.first() else {
            continue;
        };
        let mut push = |k, ns| predicted.push((k, track, frame_of(ns)));
        match e.kind {
            EventKind::Enter => push(MomentKind::Enter, e.start_ns),
            EventKind::Exit => push(MomentKind::Exit, e.start_ns),
            EventKind::Fall => push(MomentKind::Fall, e.start_ns),
            EventKind::Jump => {
                push(MomentKind::TakeOff, e.start_ns);
                if let Some(end) = e.end_ns {
                    push(MomentKind::Landing, end);
                }
            }
            _ => {}
        }
    }
    // Moments in the last frames cannot be finished by any tagger: left out.
    let guard = args.frames.saturating_sub(u64::from(args.fps) / 2);
    truth_moments.retain(|m| m.2 < guard);
    ignored_moments.retain(|m| m.2 < guard);
    predicted.retain(|m| m.2 < guard);
    // A prediction of an ignored moment (and of no scored one) leaves the count.
    let near = |list: &[(MomentKind, u64, u64)], p: &(MomentKind, u64, u64)| {
        hyp_to_gt.get(&p.1).is_some_and(|athlete| {
            list.iter()
                .any(|t| t.0 == p.0 && t.1 == *athlete && t.2.abs_diff(p.2) <= args.window)
        })
    };
    predicted.retain(|p| !near(&ignored_moments, p) || near(&truth_moments, p));
    report.ignored_moments += ignored_moments.len();
    for (kind, score) in &mut report.moments {
        let (s, missed, spurious) =
            score_moments(*kind, &truth_moments, &predicted, &hyp_to_gt, args.window);
        // Why a figure is short: `--log info,venue_edge::eval=debug`.
        for (athlete, frame) in &missed {
            tracing::debug!(seed, kind = ?kind, athlete, frame, "moment missed");
        }
        for (track, frame) in &spurious {
            let athlete = hyp_to_gt.get(track);
            tracing::debug!(seed, kind = ?kind, track, ?athlete, frame, "moment not in the truth");
        }
        score.add(&s);
    }
    Ok(args.frames)
}

/// A 0/255 mask from an instance plane (`ids`, `w` wide) with the pixels that
/// touch another athlete's (8-neighbours) cleared: every athlete a blob of its own.
fn apart_where_touching(ids: &[u32], w: usize, out: &mut Vec<u8>) {
    out.clear();
    out.resize(ids.len(), 0);
    let h = ids.len() / w.max(1);
    for y in 0..h {
        for x in 0..w {
            let id = ids[y * w + x];
            if id == 0 {
                continue;
            }
            let touches = (y.saturating_sub(1)..(y + 2).min(h)).any(|ny| {
                (x.saturating_sub(1)..(x + 2).min(w)).any(|nx| {
                    let o = ids[ny * w + nx];
                    o != 0 && o != id
                })
            });
            out[y * w + x] = if touches { 0 } else { 255 };
        }
    }
}

/// A true moment: kind, athlete, frame.
type TrueMoment = (MomentKind, u64, u64);

/// Which true moments the tagger is asked for: (kind, athlete, frame) lists of
/// the scored and the ignored ones. A moment of the body nobody could see (a
/// fall or a jump of an athlete out of view, or a sliver, in that frame) is not
/// asked for, like the box. Entering and leaving happen at the edge by
/// definition: always asked for. A fall shows in its tumble, after the moment's
/// frame: one whose athlete is out of view (or a sliver) when the tumble ends
/// went out of the frame falling, and is not asked for either.
struct AskedMoments {
    scored: Vec<TrueMoment>,
    ignored: Vec<TrueMoment>,
    /// Falls seen on their frame, waiting for the end of their tumble:
    /// (athlete, frame).
    falls_pending: Vec<(u64, u64)>,
    tumble_frames: u64,
}

impl AskedMoments {
    fn new(fps: u32) -> Self {
        Self {
            scored: Vec::new(),
            ignored: Vec::new(),
            falls_pending: Vec::new(),
            tumble_frames: (venue_drivers::FALL_TUMBLE_S * fps as f32).ceil() as u64,
        }
    }

    /// Frame `index`'s moments; `in_view(athlete)`: scored (not a sliver) in it.
    fn frame(
        &mut self,
        index: u64,
        moments: &[venue_drivers::Moment],
        in_view: impl Fn(u64) -> bool,
    ) {
        let tumble = self.tumble_frames;
        let (scored, ignored) = (&mut self.scored, &mut self.ignored);
        self.falls_pending.retain(|&(athlete, at)| {
            if index < at + tumble {
                return true;
            }
            let list = if in_view(athlete) {
                &mut *scored
            } else {
                &mut *ignored
            };
            list.push((MomentKind::Fall, athlete, at));
            false
        });
        for m in moments {
            let athlete = u64::from(m.athlete);
            let seen = matches!(m.kind, MomentKind::Enter | MomentKind::Exit) || in_view(athlete);
            if seen && m.kind == MomentKind::Fall {
                self.falls_pending.push((athlete, index));
                continue;
            }
            let list = if seen {
                &mut self.scored
            } else {
                &mut self.ignored
            };
            list.push((m.kind, athlete, index));
        }
    }

    /// The scored and the ignored moments. Tumbles cut off by the end of the
    /// run are too late to score either way (the last half second is left out):
    /// kept with the scored.
    fn finish(mut self) -> (Vec<TrueMoment>, Vec<TrueMoment>) {
        let pending = self.falls_pending.iter();
        self.scored
            .extend(pending.map(|&(a, f)| (MomentKind::Fall, a, f)));
        (self.scored, self.ignored)
    }
}

/// An athlete whose visible part is below what the detector is configured to
/// keep (fewer mask pixels than `min_area_px`, fewer rows than `min_height_px`):
/// a sliver at the edge or a few pixels peeking out from behind someone, which
/// the snow filter drops by design. Such a truth box is not scored.
fn dont_care(
    a: &venue_drivers::AthleteTruth,
    (w, h): (usize, usize),
    (mw, mh): (usize, usize),
    cfg: &TaggingConfig,
) -> bool {
    let area_scale = (mw * mh) as f64 / (w * h).max(1) as f64;
    let row_scale = mh as f64 / h.max(1) as f64;
    (f64::from(a.pixels) * area_scale) < f64::from(cfg.min_area_px)
        || (f64::from(a.bbox.height) * row_scale) < f64::from(cfg.min_height_px)
}

/// CLEAR-MOT counts (misses, false positives, id switches; IoU ≥ 0.5, earlier
/// pairings kept while they still overlap) and the ID measure's global matching.
/// Returns that matching, hypothesis id → truth id.
///
/// `ignored` are the truth boxes nobody is asked to find (MOTChallenge's
/// "ignore" semantics): not misses, and a hypothesis on one is neither a hit nor a
/// false positive.
fn score_tracking(
    gts: &[Boxes],
    ignored: &[Vec<Rect>],
    hyps: &[Boxes],
    report: &mut EvalReport,
) -> HashMap<u64, u64> {
    const IOU: f32 = 0.5;
    let mut pairing: HashMap<u64, u64> = HashMap::new(); // gt → hyp, current
    let mut last_hyp: HashMap<u64, u64> = HashMap::new(); // gt → hyp last matched
    let mut overlap: HashMap<(u64, u64), usize> = HashMap::new();
    for ((gt, hyp), ignored) in gts.iter().zip(hyps).zip(ignored) {
        // Hypotheses on an ignored athlete (and on no scored one) leave the count.
        let on_ignored = |hr: &Rect| {
            ignored.iter().any(|ir| {
                ir.iou(hr) >= IOU || (hr.area() > 0.0 && hr.intersection(ir) >= 0.5 * hr.area())
            }) && !gt.iter().any(|(_, gr)| gr.iou(hr) >= IOU)
        };
        let kept: Boxes = hyp
            .iter()
            .filter(|(_, hr)| !on_ignored(hr))
            .cloned()
            .collect();
        let hyp = &kept;
        report.gt_boxes += gt.len();
        report.ignored_boxes += ignored.len();
        report.hyp_boxes += hyp.len();
        for (g, gr) in gt {
            for (hid, hr) in hyp {
                if gr.iou(hr) >= IOU {
                    *overlap.entry((*g, *hid)).or_default() += 1;
                }
            }
        }
        let mut gt_done = vec![false; gt.len()];
        let mut hyp_done = vec![false; hyp.len()];
        let mut matched = Vec::new();
        // Keep last frame's pairs that still hold.
        for (i, (g, gr)) in gt.iter().enumerate() {
            if let Some(h) = pairing.get(g)
                && let Some(j) = hyp
                    .iter()
                    .position(|(hid, hr)| hid == h && gr.iou(hr) >= IOU)
                && !hyp_done[j]
            {
                gt_done[i] = true;
                hyp_done[j] = true;
                matched.push((*g, *h));
            }
        }
        let gi: Vec<usize> = (0..gt.len()).filter(|&i| !gt_done[i]).collect();
        let hi: Vec<usize> = (0..hyp.len()).filter(|&j| !hyp_done[j]).collect();
        if !gi.is_empty() && !hi.is_empty() {
            let n = gi.len().max(hi.len());
            let mut m = Matrix::new(n, n, 0i64);
            for (a, &i) in gi.iter().enumerate() {
                for (b, &j) in hi.iter().enumerate() {
                    let iou = gt[i].1.iou(&hyp[j].1);
                    if iou >= IOU {
                        m[(a, b)] = (iou * 1e6) as i64;
                    }
                }
            }
            let (_, cols) = kuhn_munkres(&m);
            for (a, &b) in cols.iter().enumerate() {
                if a < gi.len() && b < hi.len() && m[(a, b)] > 0 {
                    gt_done[gi[a]] = true;
                    hyp_done[hi[b]] = true;
                    matched.push((gt[gi[a]].0, hyp[hi[b]].0));
                }
            }
        }
        pairing.clear();
        for (g, h) in matched {
            if last_hyp.get(&g).is_some_and(|&prev| prev != h) {
                report.id_switches += 1;
            }
            last_hyp.insert(g, h);
            pairing.insert(g, h);
        }
        report.misses += gt_done.iter().filter(|d| !**d).count();
        report.false_positives += hyp_done.iter().filter(|d| !**d).count();
    }
    // ID measure: one truth id per hypothesis id, maximising frames in common.
    let mut gids: Vec<u64> = overlap.keys().map(|k| k.0).collect();
    let mut hids: Vec<u64> = overlap.keys().map(|k| k.1).collect();
    gids.sort_unstable();
    gids.dedup();
    hids.sort_unstable();
    hids.dedup();
    let mut out = HashMap::new();
    if gids.is_empty() {
        return out;
    }
    let n = gids.len().max(hids.len());
    let mut m = Matrix::new(n, n, 0i64);
    for (&(g, h), &c) in &overlap {
        if let (Ok(a), Ok(b)) = (gids.binary_search(&g), hids.binary_search(&h)) {
            m[(a, b)] = c as i64;
        }
    }
    let (_, cols) = kuhn_munkres(&m);
    for (a, &b) in cols.iter().enumerate() {
        if a < gids.len() && b < hids.len() && m[(a, b)] > 0 {
            report.idtp += m[(a, b)] as usize;
            out.insert(hids[b], gids[a]);
        }
    }
    out
}

/// (athlete or track, frame) of one moment.
type Moment = (u64, u64);

/// Matches predicted moments of `kind` to true ones of the same athlete (through
/// the track → athlete matching), nearest first, at most `window` frames apart.
/// Also returns the unmatched true moments (athlete, frame) and the unmatched
/// predictions (track, frame).
fn score_moments(
    kind: MomentKind,
    truth: &[(MomentKind, u64, u64)],
    predicted: &[(MomentKind, u64, u64)],
    hyp_to_gt: &HashMap<u64, u64>,
    window: u64,
) -> (MomentScore, Vec<Moment>, Vec<Moment>) {
    let t: Vec<&(MomentKind, u64, u64)> = truth.iter().filter(|m| m.0 == kind).collect();
    let p: Vec<&(MomentKind, u64, u64)> = predicted.iter().filter(|m| m.0 == kind).collect();
    let mut pairs = Vec::new();
    for (i, tm) in t.iter().enumerate() {
        for (j, pm) in p.iter().enumerate() {
            if hyp_to_gt.get(&pm.1) == Some(&tm.1) {
                let d = tm.2.abs_diff(pm.2);
                if d <= window {
                    pairs.push((d, i, j));
                }
            }
        }
    }
    pairs.sort_unstable();
    let (mut tu, mut pu) = (vec![false; t.len()], vec![false; p.len()]);
    let mut s = MomentScore {
        truth: t.len(),
        predicted: p.len(),
        ..MomentScore::default()
    };
    for (d, i, j) in pairs {
        if !tu[i] && !pu[j] {
            tu[i] = true;
            pu[j] = true;
            s.matched += 1;
            s.error_sum += d;
            s.error_max = s.error_max.max(d);
        }
    }
    let unmatched = |ms: &[&(MomentKind, u64, u64)], used: &[bool]| -> Vec<Moment> {
        ms.iter()
            .zip(used)
            .filter(|(_, used)| !**used)
            .map(|(m, _)| (m.1, m.2))
            .collect()
    };
    (s, unmatched(&t, &tu), unmatched(&p, &pu))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two athletes side by side, touching, and a third alone: the touching
    /// columns are cleared (two blobs now), the lone athlete is kept whole.
    #[test]
    fn touching_athletes_are_set_apart_and_a_lone_one_is_kept_whole() {
        let w = 10;
        #[rustfmt::skip]
        let ids: Vec<u32> = vec![
            1, 1, 2, 2, 0, 0, 0, 0, 3, 3,
            1, 1, 2, 2, 0, 0, 0, 0, 3, 3,
            1, 1, 2, 2, 0, 0, 0, 0, 3, 3,
        ];
        let mut out = Vec::new();
        apart_where_touching(&ids, w, &mut out);
        for row in out.chunks(w) {
            assert_eq!(row, [255, 0, 0, 255, 0, 0, 0, 0, 255, 255]);
        }
    }

    #[test]
    fn a_fall_out_of_view_before_its_tumble_ends_is_not_asked_for() {
        use venue_drivers::Moment;
        let fall = |athlete| Moment {
            kind: MomentKind::Fall,
            athlete,
        };
        // 30 fps: the tumble takes 11 frames. Athlete 1 stays in view, athlete 2
        // leaves two frames after falling, athlete 3 falls out of view.
        let mut asked = AskedMoments::new(30);
        for index in 0..20u64 {
            let moments: Vec<Moment> = if index == 5 {
                vec![fall(1), fall(2), fall(3)]
            } else {
                Vec::new()
            };
            asked.frame(index, &moments, |a| match a {
                1 => true,
                2 => index < 7,
                _ => false,
            });
        }
        let (scored, ignored) = asked.finish();
        assert_eq!(scored, vec![(MomentKind::Fall, 1, 5)]);
        assert_eq!(
            ignored,
            vec![(MomentKind::Fall, 3, 5), (MomentKind::Fall, 2, 5)]
        );
        // Entering and leaving are asked for even when nothing shows.
        let mut asked = AskedMoments::new(30);
        let exit = Moment {
            kind: MomentKind::Exit,
            athlete: 4,
        };
        asked.frame(3, &[exit], |_| false);
        assert_eq!(asked.finish().0, vec![(MomentKind::Exit, 4, 3)]);
    }

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seeds("1,2,3"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_seeds("1..4"), Ok(vec![1, 2, 3, 4]));
        assert_eq!(parse_seeds("9..10, 20"), Ok(vec![9, 10, 20]));
        for bad in ["", "a", "3..1", "1..", "1,,2", "0..999999"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_perfect_tracker_scores_one_and_a_swap_counts() {
        let b = |x: f32| Rect {
            x0: x,
            y0: 0.0,
            x1: x + 10.0,
            y1: 10.0,
        };
        let gts: Vec<Boxes> = (0..10)
            .map(|f| vec![(1, b(f as f32)), (2, b(100.0 - f as f32))])
            .collect();
        let none = vec![Vec::new(); gts.len()];
        let mut r = EvalReport::default();
        let m = score_tracking(&gts, &none, &gts, &mut r);
        assert_eq!((r.mota(), r.idf1()), (1.0, 1.0));
        assert_eq!(m.get(&1), Some(&1));
        // Hypothesis ids swap half-way: one switch per athlete, IDF1 drops to 0.5.
        let hyps: Vec<Boxes> = gts
            .iter()
            .enumerate()
            .map(|(f, g)| {
                if f < 5 {
                    g.clone()
                } else {
                    vec![(2, g[0].1), (1, g[1].1)]
                }
            })
            .collect();
        let mut r = EvalReport::default();
        score_tracking(&gts, &none, &hyps, &mut r);
        assert_eq!(r.id_switches, 2);
        assert!((r.idf1() - 0.5).abs() < 1e-9, "{}", r.idf1());
    }

    #[test]
    fn ignored_truth_is_neither_missed_nor_a_false_positive() {
        let b = |x: f32, w: f32| Rect {
            x0: x,
            y0: 0.0,
            x1: x + w,
            y1: 10.0,
        };
        // Athlete 1 is scored; a sliver of another at the edge is ignored.
        let gts: Vec<Boxes> = vec![vec![(1, b(50.0, 10.0))]; 4];
        let ignored = vec![vec![b(0.0, 2.0)]; 4];
        // Frames 0-1: the tracker also follows the sliver (no penalty); frames 2-3
        // it puts a box where nothing is (a false positive each).
        let hyps: Vec<Boxes> = (0..4)
            .map(|f| {
                let extra = if f < 2 { b(0.0, 2.0) } else { b(120.0, 10.0) };
                vec![(1, b(50.0, 10.0)), (9, extra)]
            })
            .collect();
        let mut r = EvalReport::default();
        score_tracking(&gts, &ignored, &hyps, &mut r);
        assert_eq!((r.gt_boxes, r.ignored_boxes), (4, 4));
        assert_eq!((r.misses, r.false_positives), (0, 2));
        assert_eq!(r.hyp_boxes, 6);
        // Nothing ignored: the sliver is a miss in every frame it goes unfound.
        let mut r = EvalReport::default();
        let gts2: Vec<Boxes> = vec![vec![(1, b(50.0, 10.0)), (2, b(0.0, 2.0))]; 4];
        let none = vec![Vec::new(); 4];
        score_tracking(&gts2, &none, &hyps, &mut r);
        assert_eq!((r.misses, r.false_positives), (2, 2));
    }

    #[test]
    fn the_detector_floor_decides_what_is_ignored() {
        let cfg = TaggingConfig::default();
        let athlete = |pixels, height| venue_drivers::AthleteTruth {
            id: 1,
            bbox: venue_drivers::PixelBox {
                x: 0,
                y: 0,
                width: 3,
                height,
            },
            pixels,
            occluded: false,
            airborne: false,
            fallen: false,
        };
        let full = (256, 144);
        assert!(dont_care(
            &athlete(cfg.min_area_px - 1, 20),
            full,
            full,
            &cfg
        ));
        assert!(dont_care(
            &athlete(100, cfg.min_height_px - 1),
            full,
            full,
            &cfg
        ));
        assert!(!dont_care(&athlete(cfg.min_area_px, 20), full, full, &cfg));
        // A half-size mask has a quarter of the pixels: the floor is in mask pixels.
        let half = (128, 72);
        assert!(dont_care(
            &athlete(4 * cfg.min_area_px - 1, 20),
            full,
            half,
            &cfg
        ));
        assert!(!dont_care(
            &athlete(4 * cfg.min_area_px, 20),
            full,
            half,
            &cfg
        ));
    }
}
