//! The synthetic venue: procedural scenes (ice rink, ski slope) that advance one
//! frame at a time and draw themselves into NV12 planes together with their exact
//! ground truth. Deterministic by seed; nothing allocates once running.

mod body;
mod raster;
mod rink;
mod rng;
mod slope;
pub mod truth;

use std::fmt;
use std::str::FromStr;

use body::{Body, Kit};
use raster::{Canvas, Coverage, Light, Paint};
use rng::Rng;
use truth::{AthleteTruth, GroundTruth, Moment, MomentKind, PixelBox, Speck};

/// Which venue the synthetic camera shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scene {
    /// Ice rink: reflective ice, board markings, skaters on curved paths crossing
    /// each other.
    #[default]
    Rink,
    /// Ski slope: textured snow, a kicker, skiers jumping and sometimes falling,
    /// blowing snow, changing light and a slow camera pan.
    Slope,
}

impl Scene {
    pub const ALL: [Scene; 2] = [Scene::Rink, Scene::Slope];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rink => "rink",
            Self::Slope => "slope",
        }
    }
}

impl fmt::Display for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown scene name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scene {0:?} (expected \"rink\" or \"slope\")")]
pub struct UnknownScene(pub String);

impl FromStr for Scene {
    type Err = UnknownScene;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scene| scene.as_str() == s)
            .ok_or_else(|| UnknownScene(s.to_owned()))
    }
}

/// A pre-rendered NV12 background, at least as wide as the frame (wider where
/// the camera pans: the frame is a window into it).
#[derive(Debug)]
pub(crate) struct Background {
    w: usize,
    h: usize,
    y: Vec<u8>,
    /// Interleaved UV, `w` bytes per chroma row, `h / 2` rows.
    uv: Vec<u8>,
}

impl Background {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            y: vec![0; w * h],
            uv: vec![128; w * (h / 2)],
        }
    }

    /// Sets one pixel; chroma is taken from the top-left pixel of each 2×2 block.
    fn put(&mut self, x: usize, y: usize, luma: f32, u: f32, v: f32) {
        let q = |f: f32| f.round().clamp(0.0, 255.0) as u8;
        if let Some(p) = self.y.get_mut(y * self.w + x) {
            *p = q(luma);
        }
        if x.is_multiple_of(2) && y.is_multiple_of(2) {
            let i = (y / 2) * self.w + x;
            if let Some(p) = self.uv.get_mut(i..i + 2) {
                p[0] = q(u);
                p[1] = q(v);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Motion {
    Skate(rink::Skate),
    Ski(slope::Ski),
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Rink(rink::Rink),
    Slope(slope::Slope),
}

#[derive(Debug, Clone, Copy)]
struct Actor {
    id: u32,
    kit: Kit,
    motion: Motion,
    /// Had pixels in the frame on the last rendered frame.
    present: bool,
    /// Seconds since spawn.
    age: f32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    actor: Option<Actor>,
    /// Scene time at which an empty slot sends the next athlete.
    wake: f64,
}

/// Longest an athlete may wait outside the frame before it is given up.
const MAX_UNSEEN_S: f32 = 20.0;

/// A running scene. `render` advances it by one frame.
#[derive(Debug)]
pub(crate) struct Venue {
    w: usize,
    h: usize,
    fps: u32,
    /// Seconds per frame, for motion.
    dt: f32,
    frame: u64,
    layout: Layout,
    bg: Background,
    slots: Vec<Slot>,
    bodies: Vec<Option<(Body, f32)>>,
    order: Vec<usize>,
    cov: Vec<Coverage>,
    label: Vec<u8>,
    pending: Vec<(usize, MomentKind)>,
    flakes: Vec<slope::Flake>,
    rng: Rng,
    next_id: u32,
    light: Light,
    pan: usize,
}

/// Labels are one byte: athlete slot + 1, 0 for none.
pub(crate) const MAX_ATHLETES: u32 = 254;

impl Venue {
    /// A scene of `w`×`h` pixels (even, ≥ 2) at `fps` with up to `athletes` in it.
    pub(crate) fn new(
        scene: Scene,
        w: usize,
        h: usize,
        fps: u32,
        seed: u64,
        athletes: u32,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let mut layout_rng = rng.fork();
        let mut bg_rng = rng.fork();
        let mut flake_rng = rng.fork();
        // Scene sizes scale with a 16:9 "unit" so other aspect ratios frame the
        // same action.
        let unit = (h as f32).min(w as f32 * 9.0 / 16.0);
        let bg_seed = bg_rng.next_u64();
        let (layout, bg, flakes) = match scene {
            Scene::Rink => {
                let r = rink::Rink::new(w, h, unit);
                (Layout::Rink(r), r.background(bg_seed), Vec::new())
            }
            Scene::Slope => {
                let s = slope::Slope::new(w, h, unit, &mut layout_rng);
                let flakes = s.flakes(&mut flake_rng);
                (Layout::Slope(s), s.background(bg_seed), flakes)
            }
        };
        let n = athletes.min(MAX_ATHLETES) as usize;
        // The first athletes come in quickly, staggered so they are not all in step.
        let slots = (0..n)
            .map(|i| Slot {
                actor: None,
                wake: f64::from(rng.range(0.0, 1.0)) + i as f64 * 0.7,
            })
            .collect();
        Self {
            w,
            h,
            fps: fps.max(1),
            dt: 1.0 / fps.max(1) as f32,
            frame: 0,
            layout,
            bg,
            slots,
            bodies: vec![None; n],
            order: Vec::with_capacity(n),
            cov: vec![Coverage::EMPTY; n],
            label: vec![0; w * h],
            pending: Vec::with_capacity(4 * n + 4),
            flakes,
            rng,
            next_id: 1,
            light: Light::default(),
            pan: 0,
        }
    }

    /// Sizes `truth`'s buffers for this scene once, so rendering never grows them.
    pub(crate) fn prepare(&self, truth: &mut GroundTruth) {
        let n = self.slots.len();
        truth.mask.clear();
        truth.mask.resize(self.w * self.h, 0);
        truth.athletes.reserve(n);
        truth.moments.reserve(4 * n + 4);
        truth.specks.reserve(self.flakes.len());
    }

    fn time(&self) -> f64 {
        self.frame as f64 / f64::from(self.fps)
    }

    /// Advances the scene by one frame without drawing it (the frame was dropped):
    /// athletes move on, and that frame's key moments are lost with it.
    pub(crate) fn skip(&mut self) {
        self.step();
        self.pending.clear();
        self.frame += 1;
    }

    /// Advances the scene by one frame and draws it into `y` (w×h) and `uv`
    /// (w×h/2), filling `truth` (whose mask must be w×h bytes).
    pub(crate) fn render(&mut self, y: &mut [u8], uv: &mut [u8], truth: &mut GroundTruth) {
        self.step();
        let t = self.time();
        let (w, h) = (self.w, self.h);
        if truth.mask.len() != w * h {
            truth.mask.clear();
            truth.mask.resize(w * h, 0);
            self.label.fill(0);
            self.cov.fill(Coverage::EMPTY);
        }
        self.clear_truth_planes(&mut truth.mask);

        // Background through the lighting, as a window at the pan offset.
        let pan = self.pan.min(self.bg.w.saturating_sub(w));
        for row in 0..h {
            let src = &self.bg.y[row * self.bg.w + pan..row * self.bg.w + pan + w];
            self.light
                .blit_row(src, &mut y[row * w..(row + 1) * w], row);
        }
        for row in 0..h / 2 {
            let src = &self.bg.uv[row * self.bg.w + pan..row * self.bg.w + pan + w];
            uv[row * w..(row + 1) * w].copy_from_slice(src);
        }

        let mut canvas = Canvas {
            w,
            h,
            y,
            uv,
            label: &mut self.label,
            mask: &mut truth.mask,
            cov: &mut self.cov,
            light: &self.light,
        };
        if let Layout::Rink(_) = self.layout {
            // Reflections in the ice: darker, squashed mirror images, not athletes.
            for (body, _) in self.bodies.iter().flatten() {
                for part in body.parts() {
                    let shape = part.shape.reflected(body.feet[1], 0.45);
                    canvas.fill(&shape, Paint::Shade { num: 228 });
                }
            }
        }
        for &slot in &self.order {
            let Some((body, _)) = &self.bodies[slot] else {
                continue;
            };
            for part in body.parts() {
                let c = part.color;
                let paint = Paint::Body {
                    label: slot as u8 + 1,
                    y: c.y,
                    u: c.u,
                    v: c.v,
                };
                canvas.fill(&part.shape, paint);
            }
        }
        truth.specks.clear();
        for f in &self.flakes {
            let (x, yy) = (f.x as usize, f.y as usize);
            canvas.speck(x, yy, usize::from(f.size), f.luma);
            truth.specks.push(Speck {
                x: x as u32,
                y: yy as u32,
                size: u32::from(f.size),
            });
        }

        truth.seq = self.frame;
        truth.time_s = t;
        truth.width = w as u32;
        truth.height = h as u32;
        self.collect_truth(truth);
        self.frame += 1;
    }

    /// The athlete visible at each pixel of the last rendered frame, into `out`
    /// (w×h, row-major): its id (as in [`AthleteTruth::id`]) where `mask` (that
    /// frame's truth mask) is 255, 0 elsewhere. Which athlete is which where
    /// two touch: what a model that tells them apart learns from.
    pub(crate) fn instances(&self, mask: &[u8], out: &mut Vec<u32>) {
        out.clear();
        out.extend(self.label.iter().zip(mask).map(|(&l, &m)| {
            let actor = (m == 255 && l > 0)
                .then(|| self.slots.get(usize::from(l) - 1))
                .flatten()
                .and_then(|s| s.actor.as_ref());
            actor.map_or(0, |a| a.id)
        }));
    }

    /// Zeroes the label and mask planes where athletes were drawn last frame: the
    /// rest is zero already, so no full-frame pass is needed.
    fn clear_truth_planes(&mut self, mask: &mut [u8]) {
        for c in &mut self.cov {
            if !c.is_empty() {
                for row in c.y0..=c.y1 {
                    let (a, b) = (row * self.w + c.x0, row * self.w + c.x1 + 1);
                    self.label[a..b].fill(0);
                    mask[a..b].fill(0);
                }
            }
            *c = Coverage::EMPTY;
        }
    }

    /// Moves time on: pan and light, arrivals, motion, poses, snow.
    fn step(&mut self) {
        let t = self.time();
        let dt = self.dt;
        if let Layout::Slope(s) = &self.layout {
            self.pan = s.pan(t);
            let (gain, shadow) = s.lighting(t, self.pan);
            self.light.set(gain, Some(shadow), self.w, self.h);
            for f in &mut self.flakes {
                s.step_flake(f, t, dt);
            }
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match &mut slot.actor {
                None if t >= slot.wake => {
                    let motion = match &self.layout {
                        Layout::Rink(r) => Motion::Skate(r.spawn(&mut self.rng)),
                        Layout::Slope(s) => Motion::Ski(s.spawn(&mut self.rng, self.pan as f32)),
                    };
                    slot.actor = Some(Actor {
                        id: self.next_id,
                        kit: Kit::random(&mut self.rng),
                        motion,
                        present: false,
                        age: 0.0,
                    });
                    self.next_id = self.next_id.wrapping_add(1).max(1);
                }
                None => {}
                Some(actor) => {
                    actor.age += dt;
                    let pending = &mut self.pending;
                    match (&self.layout, &mut actor.motion) {
                        (Layout::Rink(r), Motion::Skate(s)) => r.step(s, dt),
                        (Layout::Slope(sl), Motion::Ski(s)) => {
                            sl.step(s, dt, &mut |kind| pending.push((i, kind)));
                        }
                        _ => {}
                    }
                }
            }
            self.bodies[i] = slot
                .actor
                .as_ref()
                .map(|a| match (&self.layout, &a.motion) {
                    (Layout::Rink(r), Motion::Skate(s)) => r.pose(s, &a.kit),
                    (Layout::Slope(sl), Motion::Ski(s)) => sl.pose(s, self.pan, &a.kit),
                    // Motions always match their layout; an empty figure draws nothing.
                    _ => (Body::default(), 0.0),
                });
        }
        self.order.clear();
        self.order
            .extend((0..self.bodies.len()).filter(|&i| self.bodies[i].is_some()));
        let bodies = &self.bodies;
        let depth = |i: &usize| bodies[*i].as_ref().map_or(0.0, |b| b.1);
        // Far first, so nearer athletes are drawn over them; slot breaks ties.
        self.order
            .sort_unstable_by(|a, b| depth(a).total_cmp(&depth(b)).then(a.cmp(b)));
    }

    /// Visible athletes, arrivals and departures from what was drawn.
    fn collect_truth(&mut self, truth: &mut GroundTruth) {
        truth.athletes.clear();
        truth.moments.clear();
        for &slot in &self.order {
            let Some(actor) = self.slots[slot].actor else {
                continue;
            };
            let c = self.cov[slot];
            let visible = c.drawn - c.hidden - c.specked;
            if visible == 0 {
                continue;
            }
            let occluded = c.hidden + c.specked > 0;
            let bbox = if occluded {
                self.visible_box(slot)
            } else {
                PixelBox {
                    x: c.x0 as u32,
                    y: c.y0 as u32,
                    width: (c.x1 - c.x0 + 1) as u32,
                    height: (c.y1 - c.y0 + 1) as u32,
                }
            };
            let (airborne, fallen) = match &actor.motion {
                Motion::Ski(s) => (s.airborne(), s.fallen()),
                Motion::Skate(_) => (false, false),
            };
            truth.athletes.push(AthleteTruth {
                id: actor.id,
                bbox,
                pixels: visible,
                occluded,
                airborne,
                fallen,
            });
        }
        let t = self.time();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(actor) = slot.actor.as_mut() else {
                continue;
            };
            let now = !self.cov[i].is_empty();
            let moment = |kind| Moment {
                kind,
                athlete: actor.id,
            };
            if now && !actor.present {
                truth.moments.push(moment(MomentKind::Enter));
            }
            if now {
                for &(_, kind) in self.pending.iter().filter(|(s, _)| *s == i) {
                    truth.moments.push(moment(kind));
                }
            }
            let finished = match (&self.layout, &actor.motion) {
                (Layout::Rink(r), Motion::Skate(s)) => r.finished(s),
                (Layout::Slope(sl), Motion::Ski(s)) => sl.finished(s),
                _ => true,
            };
            if !now && actor.present {
                truth.moments.push(moment(MomentKind::Exit));
            }
            // Leaving the frame ends an athlete; so does never arriving.
            let gone = !now && (actor.present || finished || actor.age > MAX_UNSEEN_S);
            actor.present = now;
            if gone {
                slot.actor = None;
                slot.wake = t + f64::from(self.rng.range(0.3, 2.5));
            }
        }
        self.pending.clear();
    }

    /// Tight box around the pixels still labelled as `slot`'s athlete.
    fn visible_box(&self, slot: usize) -> PixelBox {
        let c = self.cov[slot];
        let label = slot as u8 + 1;
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for row in c.y0..=c.y1 {
            let line = &self.label[row * self.w + c.x0..=row * self.w + c.x1];
            let Some(first) = line.iter().position(|&l| l == label) else {
                continue;
            };
            let last = line.iter().rposition(|&l| l == label).unwrap_or(first);
            x0 = x0.min(c.x0 + first);
            x1 = x1.max(c.x0 + last);
            y0 = y0.min(row);
            y1 = y1.max(row);
        }
        if x0 > x1 {
            return PixelBox::default();
        }
        PixelBox {
            x: x0 as u32,
            y: y0 as u32,
            width: (x1 - x0 + 1) as u32,
            height: (y1 - y0 + 1) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue(scene: Scene, seed: u64) -> (Venue, GroundTruth, Vec<u8>) {
        let (w, h) = (96, 54);
        let v = Venue::new(scene, w, h, 30, seed, 4);
        let mut truth = GroundTruth::default();
        v.prepare(&mut truth);
        (v, truth, vec![0; w * h * 3 / 2])
    }

    #[test]
    fn slope_pans_within_its_background() {
        let (mut v, mut truth, mut buf) = venue(Scene::Slope, 4);
        assert!(v.bg.w > v.w);
        let mut pans = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let (y, uv) = buf.split_at_mut(v.w * v.h);
            v.render(y, uv, &mut truth);
            assert!(v.pan + v.w <= v.bg.w && v.pan % 2 == 0);
            pans.insert(v.pan);
        }
        assert!(pans.len() > 1, "the camera never panned");
    }

    #[test]
    fn dropped_frames_move_the_scene_on_and_keep_the_truth_planes_clean() {
        let (mut v, mut truth, mut buf) = venue(Scene::Rink, 9);
        let mut seen = 0;
        for i in 0..300u64 {
            if i % 3 == 1 {
                v.skip();
                continue;
            }
            let (y, uv) = buf.split_at_mut(v.w * v.h);
            v.render(y, uv, &mut truth);
            assert_eq!(truth.seq, i);
            let masked = truth.mask.iter().filter(|&&m| m == 255).count() as u32;
            let pixels: u32 = truth.athletes.iter().map(|a| a.pixels).sum();
            assert_eq!(masked, pixels, "frame {i}");
            seen += truth.athletes.len();
        }
        assert!(seen > 0);
    }

    /// Each athlete's pixels in the instance plane are its visible pixels, and
    /// together they are the mask; athletes touching or overlapping stay apart.
    #[test]
    fn the_instance_plane_holds_each_visible_athlete_by_its_id() {
        for scene in Scene::ALL {
            let (mut v, mut truth, mut buf) = venue(scene, 5);
            let mut ids = Vec::new();
            let mut occluded = 0;
            for i in 0..300u64 {
                let (y, uv) = buf.split_at_mut(v.w * v.h);
                v.render(y, uv, &mut truth);
                v.instances(&truth.mask, &mut ids);
                assert_eq!(ids.len(), v.w * v.h);
                for a in &truth.athletes {
                    let n = ids.iter().filter(|&&id| id == a.id).count() as u32;
                    assert_eq!(n, a.pixels, "{scene} frame {i} athlete {}", a.id);
                    occluded += u32::from(a.occluded);
                }
                for (&id, &m) in ids.iter().zip(&truth.mask) {
                    assert_eq!(id != 0, m == 255, "{scene} frame {i}");
                }
            }
            assert!(occluded > 0, "{scene}: nobody ever hid anyone");
        }
    }

    #[test]
    fn scene_names_round_trip() {
        for s in Scene::ALL {
            assert_eq!(s.as_str().parse::<Scene>(), Ok(s));
        }
        assert!("halfpipe".parse::<Scene>().is_err());
    }
}
