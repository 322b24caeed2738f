//! The tracker (SORT family): a constant-velocity Kalman filter per axis predicts
//! each track's box, the Hungarian algorithm (`pathfinding`'s Kuhn–Munkres)
//! assigns blobs to tracks by IoU, and tracks coast through short occlusions —
//! including two athletes merging into one blob while they cross — so ids stay
//! stable.

use std::collections::VecDeque;

use pathfinding::prelude::{Matrix, kuhn_munkres};

use super::detect::{Blob, Rect};
use super::share::{MaskView, Share, apart, share};
use super::suit::{DISTINCT, HUES, Hues, Pack, SEEN_PIXELS, Suit, two_suits};

/// A constant-velocity Kalman filter on one axis (position, velocity), with white
/// acceleration noise. Four of these track a box; a full 8-state filter would
/// couple nothing more, as the axes are independent under this motion model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kalman1d {
    pub pos: f32,
    pub vel: f32,
    /// Covariance `[[p00, p01], [p01, p11]]`.
    p00: f32,
    p01: f32,
    p11: f32,
}

impl Kalman1d {
    pub fn new(pos: f32, pos_var: f32, vel_var: f32) -> Self {
        Self {
            pos,
            vel: 0.0,
            p00: pos_var,
            p01: 0.0,
            p11: vel_var,
        }
    }

    /// Advances by `dt` seconds with acceleration noise density `q`.
    pub fn predict(&mut self, dt: f32, q: f32) {
        self.pos += self.vel * dt;
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt, dt * dt * dt * dt);
        self.p00 += 2.0 * dt * self.p01 + dt2 * self.p11 + q * dt4 / 4.0;
        self.p01 += dt * self.p11 + q * dt3 / 2.0;
        self.p11 += q * dt2;
    }

    /// Folds in a position measurement `z` with variance `r`.
    pub fn update(&mut self, z: f32, r: f32) {
        let s = self.p00 + r;
        if s <= 0.0 {
            return;
        }
        let (k0, k1) = (self.p00 / s, self.p01 / s);
        let innovation = z - self.pos;
        self.pos += k0 * innovation;
        self.vel += k1 * innovation;
        let (p00, p01, p11) = (self.p00, self.p01, self.p11);
        self.p00 = (1.0 - k0) * p00;
        self.p01 = (1.0 - k0) * p01;
        self.p11 = p11 - k1 * p01;
    }
}

/// One observation of a track, kept for the moment detectors and cut-outs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Obs {
    pub t_ns: u64,
    /// The measured box (the blob's), or the predicted one when coasting.
    pub rect: Rect,
    pub centroid: [f32; 2],
    /// A blob of its own was assigned on this frame.
    pub observed: bool,
    /// Hidden by, or merged with, another athlete.
    pub occluded: bool,
    /// The blob touched the frame's edge.
    pub at_edge: bool,
    /// The blob was a sliver at the edge (see [`Blob::weak`]).
    pub weak: bool,
    /// Measured from its share of a blob of several athletes (see
    /// [`super::share`]): the top and centre are its own, the width is cut where
    /// the shares meet.
    pub shared: bool,
    /// The share was told apart from the others' by the suits' colours (see
    /// [`super::suit`]): its top is the athlete's own, not where shares meet.
    pub worn: bool,
    /// The blob was cut from a pack's component (see [`Blob::cut`]): the width
    /// ends at the cut.
    pub cut: bool,
    /// The blob's box in mask pixels (for cut-outs); zero when not observed.
    pub mask_box: [u32; 4],
}

impl Obs {
    /// The box's width is not the athlete's: cut by the frame's edge, where its
    /// share of a group ends, or where the detector cut a pack apart.
    pub fn width_cut(&self) -> bool {
        self.at_edge || self.shared || self.cut
    }

    /// Seen well enough to read its top from: measured this frame, not hidden,
    /// not cut by the frame's edge; a share of a group only when `shares` or
    /// when it was told apart by colour.
    pub fn clear(&self, shares: bool) -> bool {
        self.observed && !self.occluded && !self.at_edge && (shares || !self.shared || self.worn)
    }
}

/// A tracked athlete.
#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    cx: Kalman1d,
    cy: Kalman1d,
    /// Smoothed box size.
    pub w: f32,
    pub h: f32,
    /// Smoothed mask area (frame pixels) of its blobs seen whole, 0 until one
    /// is: what a share must hold to be the athlete rather than its skis.
    pub area: f32,
    /// Frames with an assigned blob, in a row at the start (for confirmation) and
    /// in total.
    pub hits: u32,
    /// Frames in a row without a blob of its own.
    pub misses: u32,
    pub confirmed: bool,
    /// Capture time of the first blob.
    pub first_ns: u64,
    pub last_seen_ns: u64,
    /// Capture time of the first frame after `last_seen_ns` (when it went missing).
    pub missing_since_ns: Option<u64>,
    /// Newest last; bounded.
    pub history: VecDeque<Obs>,
    /// Born from a piece that split off this track's blob (athletes who came in
    /// together, one blob, and drew apart, or two suits in its blob): they
    /// arrived with it.
    pub split_from: Option<u64>,
    /// What it wears, learnt from the blobs it had to itself.
    pub suit: Suit,
    /// Two suits seen in its own blob, and on how many frames in a row.
    pack: Option<(Pack, u32)>,
    /// Per hue: since when its own blobs have shown it, frame after frame.
    hue_since: [Option<u64>; HUES],
    /// Split off a pack by its suit: when its suit first showed in the
    /// pack's blob, if after the pack's track began (it came in later).
    pub came_in_ns: Option<u64>,
    /// Frames in a row hidden in a blob at the frame's edge that shows none of
    /// its suit: it is not in there (it went out, and the blob is whoever came
    /// to the edge after it).
    unworn_in_cover: u32,
}

impl Track {
    /// The box predicted for now.
    pub fn predicted(&self) -> Rect {
        Rect::around([self.cx.pos, self.cy.pos], self.w, self.h)
    }

    /// Velocity, frame pixels per second.
    pub fn velocity(&self) -> [f32; 2] {
        [self.cx.vel, self.cy.vel]
    }

    pub fn last(&self) -> Option<&Obs> {
        self.history.back()
    }

    /// Its last blobs of its own were at the frame's edge and shrinking: it was
    /// going out of view (not lying there) when it was last seen.
    fn shrank_at_edge(&self) -> bool {
        let mut seen = self
            .history
            .iter()
            .rev()
            .filter(|o| o.observed && !o.shared);
        let (Some(last), Some(_), Some(before)) = (seen.next(), seen.next(), seen.next()) else {
            return false;
        };
        last.at_edge && before.at_edge && last.rect.area() < 0.8 * before.rect.area()
    }

    /// Where the athlete's visible part is `dt` seconds after the last frame,
    /// when it was seen at, or is expected over, the frame's edge: the last box
    /// moved by the velocity and grown a little. The Kalman box follows the
    /// visible part's centre, which jumps as pieces leave the view; this does not.
    fn expected_at_edge(&self, dt: f32, fw: f32, fh: f32) -> Option<Rect> {
        let o = self.last().filter(|o| o.observed)?;
        let [vx, vy] = self.velocity();
        let m = 0.1 * o.rect.width().max(o.rect.height()) + 2.0;
        let e = Rect {
            x0: o.rect.x0 + vx * dt - m,
            y0: o.rect.y0 + vy * dt - m,
            x1: o.rect.x1 + vx * dt + m,
            y1: o.rect.y1 + vy * dt + m,
        };
        let crossing = e.x0 < 0.0 || e.y0 < 0.0 || e.x1 > fw || e.y1 > fh;
        (o.at_edge || crossing).then_some(e)
    }
}

/// Tracker settings (see [`super::TaggingConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackRules {
    pub iou_min: f32,
    pub min_hits: u32,
    pub max_coast_frames: u32,
    pub max_occluded_frames: u32,
    pub history_frames: usize,
}

/// A track that ended on this frame.
#[derive(Debug, Clone)]
pub struct Ended {
    pub track: Track,
    /// Whether it was last seen at, or predicted beyond, the frame's edge.
    pub left_view: bool,
}

/// All tracks of one camera.
#[derive(Debug)]
pub struct Tracker {
    rules: TrackRules,
    tracks: Vec<Track>,
    next_id: u64,
    last_ns: Option<u64>,
    frame_w: f32,
    frame_h: f32,
    /// Per blob: the id of the track it went to.
    owner: Vec<Option<u64>>,
    ended: Vec<Ended>,
    /// Box sizes (w, h) of confirmed athletes seen whole, newest last: the
    /// scene's athlete scale.
    sizes: VecDeque<(f32, f32)>,
}

/// Measurement noise of a box centre, in pixels² per frame-height² (scaled to the
/// frame so settings do not depend on the resolution).
const MEASURE_VAR: f32 = 0.0004;
/// Longest gap between frames (seconds) that tracks carry over.
const MAX_GAP_S: f32 = 2.0;
/// Whole-athlete boxes kept for the scene's athlete scale.
const SIZES: usize = 128;
/// Fewest of them before pieces at the edge are joined by size.
const MIN_SIZES: usize = 16;

/// Least distance between the centres of tracks predicted in one blob, in their
/// mean size along either axis, for the blob to be shared out between them.
const SHARE_APART: f32 = 0.6;
/// Least share of a group blob (of an even split) that measures a track.
const SHARE_MIN: f32 = 0.3;

/// Frames of its parent's path a track split off another starts with.
const INHERITED: usize = 12;

/// Least height of a share, in the track's height, for it to measure the track.
const SHARE_TALL: f32 = 0.8;
/// A lower share measures the track when it holds this much of the area the
/// track's blobs had (a fallen athlete), down to `SHARE_LOW` of its height.
const SHARE_BODY: f32 = 0.7;
const SHARE_LOW: f32 = 0.4;

/// Least height of the tracks in a group, in the scene's athletes' height,
/// for the group to be shared out by colour.
const SHARE_WHOLE: f32 = 0.5;
/// Least part of a share told apart by colour that must be in its suit's colour.
const SHARE_WORN: f32 = 0.2;
/// Least part of a share in its suit's colour, and most in another's, for
/// its top to be its own.
const SHARE_OWN: f32 = 0.4;
const SHARE_FOREIGN: f32 = 0.05;
/// A share by place whose top row lies this clearly nearer its own box than
/// any other (see [`Share::top_margin`]) has the athlete's own top.
const SHARE_TOP_MARGIN: f32 = 2.0;
/// ... or whose top quarter is this much its own suit's colour and next to
/// none another's (at 0.4 / 0.05, as for shares by colour, the rink got a false
/// jump in a minute: a skater's head and shoulders are less of her suit).
const SHARE_TOP_OWN: f32 = 0.6;
/// A track whose predicted box reaches this part of itself into a blob is
/// near it (two suits there may be that track's, passing).
const NEAR_PACK: f32 = 0.1;
const SHARE_TOP_FOREIGN: f32 = 0.01;

/// Frames in a row a track's own blob shows the same two suits before the
/// second suit is a track of its own (a pack that came in as one blob).
const PACK_FRAMES: u32 = 4;
/// Frames in a row a track hidden at the edge may be covered by a blob without
/// its suit before it counts as gone.
const UNWORN_FRAMES: u32 = 3;
/// How far (in the track's height) a blob at the edge may reach back into the
/// view past the last blob of a track going out there and still be its.
const BACK_IN: f32 = 0.1;
/// Least speed out over the edge, in the track's heights a second, for the
/// furthest-out reading of [`GoingOut::came_back_in`] (a skier lying at the edge, whom
/// others pass, is no one going out).
const BACK_SPEED: f32 = 1.0;

/// Acceleration noise density in frame-heights²/s⁴: athletes turn and jump.
const ACCEL_VAR: f32 = 4.0;

impl Tracker {
    pub fn new(rules: TrackRules, frame_w: u32, frame_h: u32) -> Self {
        Self {
            rules,
            tracks: Vec::new(),
            next_id: 1,
            last_ns: None,
            frame_w: frame_w as f32,
            frame_h: frame_h as f32,
            owner: Vec::new(),
            ended: Vec::new(),
            sizes: VecDeque::with_capacity(SIZES),
        }
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Tracks that ended during the last [`Tracker::update`].
    pub fn ended(&self) -> &[Ended] {
        &self.ended
    }

    /// Id of the track each blob of the last update went to.
    pub fn owners(&self) -> &[Option<u64>] {
        &self.owner
    }

    /// Joins pieces of one athlete that the frame's edge cut apart (a body and its
    /// skis leaving over a corner, with the legs already out of view): blobs at
    /// the edge that all lie where a confirmed track, last seen at or expected
    /// over the edge, is expected now (its last box moved by its velocity, a little grown) and that
    /// no other track expects become one blob. Pieces far apart along the edge are
    /// only joined this way, by a track that knows they are one athlete.
    pub fn join_edge_pieces(&self, t_ns: u64, blobs: &mut Vec<Blob>) {
        let dt = match self.last_ns {
            Some(last) if t_ns > last => (t_ns - last) as f32 * 1e-9,
            _ => return,
        };
        if dt > MAX_GAP_S {
            return;
        }
        let (fw, fh) = (self.frame_w, self.frame_h);
        let expected: Vec<Rect> = self
            .tracks
            .iter()
            .filter(|t| t.confirmed)
            .filter_map(|t| t.expected_at_edge(dt, fw, fh))
            .collect();
        for (k, e) in expected.iter().enumerate() {
            let inside = |b: &Blob| b.at_edge && b.rect.intersection(e) >= 0.5 * b.rect.area();
            let pieces: Vec<usize> = (0..blobs.len()).filter(|&j| inside(&blobs[j])).collect();
            if pieces.len() < 2 {
                continue;
            }
            let shared = expected.iter().enumerate().any(|(o, oe)| {
                o != k && pieces.iter().any(|&j| blobs[j].rect.intersection(oe) > 0.0)
            });
            if shared {
                continue;
            }
            let mut joined = blobs[pieces[0]];
            for &j in &pieces[1..] {
                joined = joined.joined(&blobs[j]);
            }
            for &j in pieces.iter().rev() {
                blobs.swap_remove(j);
            }
            blobs.push(joined);
        }
        self.join_entering(blobs);
    }

    /// The median of `f` over this scene's athletes seen whole (`sizes`: width,
    /// height), once enough were seen; sizes `f` gives no value for are left out.
    fn median_size(&self, f: impl Fn(&(f32, f32)) -> Option<f32>) -> Option<f32> {
        if self.sizes.len() < MIN_SIZES {
            return None;
        }
        let mut v: Vec<f32> = self.sizes.iter().filter_map(f).collect();
        v.sort_by(f32::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// The height of this scene's athletes seen whole (the median), once
    /// enough were seen.
    fn scene_height(&self) -> Option<f32> {
        self.median_size(|s| Some(s.1))
    }

    /// The width of this scene's athletes seen whole in their height (the
    /// median), once enough were seen.
    fn aspect(&self) -> Option<f32> {
        self.median_size(|s| (s.1 > 0.0).then(|| s.0 / s.1))
    }

    /// Pieces of an athlete coming in over the edge (skis first, then the body
    /// with the legs still outside): blobs at one side of the frame that no
    /// confirmed track is near, and that together are no larger than an athlete
    /// of this scene (the median whole box of the athletes seen so far), join.
    /// Until enough athletes were seen, nothing is joined this way.
    fn join_entering(&self, blobs: &mut Vec<Blob>) {
        let (Some(sw), Some(sh)) = (
            self.median_size(|s| Some(s.0)),
            self.median_size(|s| Some(s.1)),
        ) else {
            return;
        };
        let (fw, fh) = (self.frame_w, self.frame_h);
        let sides = |r: &Rect| [r.x0 <= 0.5, r.y0 <= 0.5, r.x1 >= fw - 0.5, r.y1 >= fh - 0.5];
        let near_track = |r: &Rect| {
            self.tracks.iter().filter(|t| t.confirmed).any(|t| {
                let p = t.predicted();
                r.intersection(&p) > 0.0
            })
        };
        let mut i = 0;
        while i < blobs.len() {
            let a = blobs[i];
            if !a.at_edge || near_track(&a.rect) {
                i += 1;
                continue;
            }
            let mut joined = false;
            for j in i + 1..blobs.len() {
                let b = blobs[j];
                if !b.at_edge || near_track(&b.rect) {
                    continue;
                }
                let same = sides(&a.rect)
                    .iter()
                    .zip(&sides(&b.rect))
                    .any(|(x, y)| *x && *y);
                let u = a.rect.union(&b.rect);
                if same && u.width() <= 1.15 * sw && u.height() <= 1.15 * sh {
                    blobs[i] = a.joined(&b);
                    blobs.swap_remove(j);
                    joined = true;
                    break;
                }
            }
            if !joined {
                i += 1;
            }
        }
    }

    /// Advances every track to `t_ns` and assigns `blobs`, without the mask:
    /// athletes merged in one blob coast on their motion.
    pub fn update(&mut self, t_ns: u64, blobs: &[Blob]) {
        self.update_masked(t_ns, blobs, None);
    }

    /// Advances every track to `t_ns` and assigns `blobs` (found in `mask`); a
    /// blob of several tracked athletes is shared out between them.
    pub fn update_masked(&mut self, t_ns: u64, blobs: &[Blob], mask: Option<MaskView<'_>>) {
        self.ended.clear();
        let dt = match self.last_ns {
            Some(last) if t_ns > last => (t_ns - last) as f32 * 1e-9,
            _ => 0.0,
        };
        self.last_ns = Some(t_ns);
        // After a long gap (the camera stalled) no motion model holds: start over.
        if dt > MAX_GAP_S {
            for track in self.tracks.drain(..) {
                if track.confirmed {
                    self.ended.push(Ended {
                        track,
                        left_view: false,
                    });
                }
            }
        }
        let h2 = self.frame_h * self.frame_h;
        let (fw, fh) = (self.frame_w, self.frame_h);
        // Taken before the tracks advance: the velocity moves the last box.
        let at_edge: Vec<Option<Rect>> = self
            .tracks
            .iter()
            .map(|t| t.expected_at_edge(dt, fw, fh))
            .collect();
        for t in &mut self.tracks {
            t.cx.predict(dt, ACCEL_VAR * h2);
            t.cy.predict(dt, ACCEL_VAR * h2);
        }

        // Assignment: maximise total IoU; a pair below the gate is no pair.
        let (nt, nb) = (self.tracks.len(), blobs.len());
        self.owner.clear();
        self.owner.resize(nb, None);
        let mut assigned: Vec<Option<usize>> = vec![None; nt];
        if nt > 0 && nb > 0 {
            let n = nt.max(nb);
            let mut m = Matrix::new(n, n, 0i64);
            // The colours of each blob inside the view, where the frame's pixels
            // are known: a blob plainly in someone else's colours is no track's
            // but theirs. (Not at the edge: part of an athlete there may show
            // little of its suit, and counting it out there lost more exits and
            // entries than it saved.)
            // Counted when first needed: only pairs that could match are asked.
            let mut inner_hues: Vec<Option<Option<Hues>>> = vec![None; nb];
            let mut plainly_else = |t: &Track, j: usize| {
                let b = &blobs[j];
                let hues = inner_hues[j].get_or_insert_with(|| {
                    mask.as_ref()
                        .filter(|_| !b.at_edge)
                        .map(|m| Hues::count(m, b.mask_box))
                });
                hues.as_ref().is_some_and(|h| t.suit.not_in(h))
            };
            for (i, t) in self.tracks.iter().enumerate() {
                let p = t.predicted();
                let reach = t.w.max(t.h);
                // Read when first asked: only a track paired with a blob at the
                // edge is.
                let mut going_out: Option<Option<GoingOut>> = None;
                for (j, b) in blobs.iter().enumerate() {
                    // Slivers continue tracks at the edge, where athletes come in.
                    if b.weak && !t.confirmed && !t.last().is_some_and(|o| o.at_edge) {
                        continue;
                    }
                    let iou = p.iou(&b.rect);
                    let score = if iou >= self.rules.iou_min {
                        iou
                    } else {
                        // Growing or shrinking boxes (coming in over the edge, going
                        // behind something): the smaller lies mostly in the larger.
                        // Fast athletes: a near centre. Both count, weakly.
                        let small = p.area().min(b.rect.area());
                        let ioa = if small > 0.0 {
                            p.intersection(&b.rect) / small
                        } else {
                            0.0
                        };
                        let c = b.rect.center();
                        let d = ((c[0] - t.cx.pos).powi(2) + (c[1] - t.cy.pos).powi(2)).sqrt();
                        // What is left of an athlete going out of view lies where
                        // its last box went.
                        let left_over = b.at_edge
                            && at_edge[i].is_some_and(|e| {
                                b.rect.area() > 0.0
                                    && e.intersection(&b.rect) >= 0.5 * b.rect.area()
                            });
                        if ioa >= 0.5 || left_over {
                            0.01 * ioa.max(0.5)
                        } else if d < reach {
                            0.005 * (1.0 - d / reach)
                        } else {
                            0.0
                        }
                    };
                    if score > 0.0 && t.confirmed && t.suit.known() && plainly_else(t, j) {
                        continue;
                    }
                    // A track going out over the edge takes no blob there that
                    // reaches back in: the rink's next skater coming in where
                    // the last went out.
                    if score > 0.0
                        && b.at_edge
                        && going_out
                            .get_or_insert_with(|| GoingOut::of(t, fw, fh))
                            .is_some_and(|g| g.came_back_in(b, fw, fh))
                    {
                        continue;
                    }
                    m[(i, j)] = (score * 1e6) as i64;
                }
            }
            let (_, cols) = kuhn_munkres(&m);
            for (i, &j) in cols.iter().enumerate().take(nt) {
                if j < nb && m[(i, j)] > 0 {
                    assigned[i] = Some(j);
                    self.owner[j] = Some(self.tracks[i].id);
                }
            }
        }

        // A blob overlapping several confirmed tracks is athletes merged while they
        // cross: nobody measures from it, they all coast on their motion.
        let mut group = vec![false; nb];
        // Confirmed tracks whose predicted box reaches a tenth of itself into
        // the blob: a blob near no other athlete is the only place two suits in
        // it can be a pack that came in as one, not someone else's track
        // passing. (Any touch at all kept a pack riding right behind another
        // athlete, boxes touching, from ever splitting.)
        let mut near = vec![0u32; nb];
        for (j, b) in blobs.iter().enumerate() {
            if b.weak {
                continue;
            }
            let mut claims = 0;
            for (i, t) in self.tracks.iter().enumerate().filter(|(_, t)| t.confirmed) {
                let p = t.predicted();
                let inside = p.intersection(&b.rect);
                // A track that took a blob of its own this frame is there, not
                // in this one.
                let elsewhere = assigned[i].is_some_and(|a| a != j);
                if p.area() > 0.0
                    && inside >= 0.3 * p.area()
                    && !elsewhere
                    && !gone_from(t, b, mask.as_ref())
                {
                    claims += 1;
                }
                if inside > NEAR_PACK * p.area() {
                    near[j] += 1;
                }
            }
            group[j] = claims >= 2;
        }
        tracing::trace!(
            blobs = ?blobs
                .iter()
                .map(|b| (b.rect, b.area, b.weak, b.at_edge))
                .collect::<Vec<_>>(),
            owners = ?self.owner,
            ?group,
            "blobs assigned"
        );
        let shares = match mask {
            Some(m) => self.shares(&m, blobs, &group, &assigned),
            None => vec![None; nt],
        };

        // Hits of the track each blob went to (for telling fragments from athletes).
        let mut owner_hits = vec![0u32; nb];
        for (i, a) in assigned.iter().enumerate() {
            if let Some(j) = *a {
                owner_hits[j] = self.tracks[i].hits;
            }
        }
        let rules = self.rules;
        let (fw, fh) = (self.frame_w, self.frame_h);
        let r = MEASURE_VAR * h2;
        // Tracks whose blob has shown two suits long enough, with the blob.
        let mut packs: Vec<(u64, usize, Pack)> = Vec::new();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let obs = match assigned[i] {
                _ if let Some((_, s, worn)) = shares[i] => {
                    // Its share of a group: the centre is its own but less sure
                    // than a blob of its own, and the size is kept (the share's
                    // width is cut).
                    let c = s.rect.center();
                    t.cx.update(c[0], 4.0 * r);
                    t.cy.update(c[1], 4.0 * r);
                    t.hits += 1;
                    t.misses = 0;
                    t.last_seen_ns = t_ns;
                    t.missing_since_ns = None;
                    Obs {
                        t_ns,
                        rect: s.rect,
                        centroid: s.centroid,
                        observed: true,
                        occluded: false,
                        at_edge: s.at_edge,
                        weak: false,
                        shared: true,
                        worn,
                        cut: false,
                        mask_box: s.mask_box,
                    }
                }
                Some(j) if !group[j] => {
                    let b = &blobs[j];
                    let c = b.rect.center();
                    t.cx.update(c[0], r);
                    t.cy.update(c[1], r);
                    if t.hits == 0 || !b.at_edge {
                        t.w = if t.hits == 0 {
                            b.rect.width()
                        } else {
                            0.5 * (t.w + b.rect.width())
                        };
                        t.h = if t.hits == 0 {
                            b.rect.height()
                        } else {
                            0.5 * (t.h + b.rect.height())
                        };
                        if !b.at_edge && !b.cut {
                            t.area = if t.area == 0.0 {
                                b.area
                            } else {
                                0.5 * (t.area + b.area)
                            };
                        }
                    } else {
                        // Partly outside the view: the visible box is all we know.
                        t.w = b.rect.width();
                        t.h = b.rect.height();
                    }
                    if t.confirmed && !b.at_edge && !b.weak && !b.cut {
                        if self.sizes.len() >= SIZES {
                            self.sizes.pop_front();
                        }
                        self.sizes.push_back((b.rect.width(), b.rect.height()));
                    }
                    if let Some(m) = &mask {
                        let hues = Hues::count(m, b.mask_box);
                        for (h, since) in t.hue_since.iter_mut().enumerate() {
                            *since = hues.shows(h).then(|| since.unwrap_or(t_ns));
                        }
                        // Two suits in a blob of its own, near nobody else: a
                        // pack riding as one. Otherwise the colours are its own.
                        let pack = (t.confirmed && !b.weak && near[j] <= 1)
                            .then(|| two_suits(m, b.mask_box, &hues))
                            .flatten();
                        t.pack = match (t.pack, pack) {
                            (Some((old, n)), Some(new)) if old.same_as(&new) => Some((new, n + 1)),
                            (_, Some(new)) => Some((new, 1)),
                            (_, None) => None,
                        };
                        match t.pack {
                            Some((p, n)) if n >= PACK_FRAMES => {
                                packs.push((t.id, j, p));
                                t.pack = None;
                            }
                            Some(_) => {}
                            None => t.suit.learn(&hues),
                        }
                    }
                    t.hits += 1;
                    t.misses = 0;
                    t.last_seen_ns = t_ns;
                    t.missing_since_ns = None;
                    // Confirmed on a blob of full size: slivers alone (noise at
                    // the edge) never make an athlete.
                    if t.hits >= rules.min_hits && !b.weak {
                        t.confirmed = true;
                    }
                    Obs {
                        t_ns,
                        rect: b.rect,
                        centroid: b.centroid,
                        observed: true,
                        occluded: false,
                        at_edge: b.at_edge,
                        weak: b.weak,
                        shared: false,
                        worn: false,
                        cut: b.cut,
                        mask_box: b.mask_box,
                    }
                }
                other => {
                    let p = t.predicted();
                    // The blob hiding it: the group it was assigned, or the one
                    // covering most of its predicted box.
                    let cover = other.or_else(|| {
                        blobs
                            .iter()
                            .enumerate()
                            .filter(|(_, b)| !b.weak)
                            .map(|(j, b)| (j, p.intersection(&b.rect)))
                            .filter(|&(_, a)| p.area() > 0.0 && a >= 0.3 * p.area())
                            .max_by(|a, b| a.1.total_cmp(&b.1))
                            .map(|(j, _)| j)
                    });
                    t.misses += 1;
                    t.missing_since_ns.get_or_insert(t_ns);
                    // Hidden at the edge in a blob that shows none of its suit
                    // (someone else who came to the edge after it went out).
                    let unworn = cover.is_some_and(|j| gone_from(t, &blobs[j], mask.as_ref()));
                    t.unworn_in_cover = if unworn { t.unworn_in_cover + 1 } else { 0 };
                    let (rect, at_edge) = match cover {
                        // Hidden in a group: the athlete is inside the group's box,
                        // where its motion puts it. That is a weak measurement, so
                        // the track follows the group instead of drifting away.
                        // A young track swallowed by an established one that measures
                        // the whole blob was a fragment of that athlete: let it go.
                        Some(j) if !group[j] && t.hits < 15 && owner_hits[j] >= 2 * t.hits => {
                            t.misses = u32::MAX / 2;
                            (p, false)
                        }
                        // In a group at the frame's edge and moving out over it
                        // (passing someone who lies there): it is leaving, so it
                        // goes on its own motion instead of being held in the
                        // group, and ends once past the edge.
                        Some(j)
                            if let Some(across) =
                                heading_out(t.velocity(), &blobs[j].rect, fw, fh) =>
                        {
                            // Held in the group only along the edge: it leaves
                            // across it at its speed.
                            let snapped = snap(&p, &blobs[j].rect);
                            let c = snapped.center();
                            let rect = if across == Axis::X {
                                t.cy.update(c[1], 16.0 * r);
                                Rect {
                                    y0: snapped.y0,
                                    y1: snapped.y1,
                                    ..p
                                }
                            } else {
                                t.cx.update(c[0], 16.0 * r);
                                Rect {
                                    x0: snapped.x0,
                                    x1: snapped.x1,
                                    ..p
                                }
                            };
                            (rect, true)
                        }
                        Some(j) => {
                            let snapped = snap(&p, &blobs[j].rect);
                            let c = snapped.center();
                            t.cx.update(c[0], 16.0 * r);
                            t.cy.update(c[1], 16.0 * r);
                            (snapped, blobs[j].at_edge)
                        }
                        None => (p, false),
                    };
                    Obs {
                        t_ns,
                        rect,
                        centroid: [t.cx.pos, t.cy.pos],
                        observed: false,
                        occluded: cover.is_some(),
                        at_edge,
                        weak: false,
                        shared: false,
                        worn: false,
                        cut: false,
                        mask_box: [0; 4],
                    }
                }
            };
            if obs.observed {
                t.unworn_in_cover = 0;
            }
            if t.history.len() >= rules.history_frames.max(1) {
                t.history.pop_front();
            }
            t.history.push_back(obs);
            tracing::trace!(
                track = t.id,
                t_ns = obs.t_ns,
                rect = ?obs.rect,
                observed = obs.observed,
                occluded = obs.occluded,
                shared = obs.shared,
                worn = obs.worn,
                at_edge = obs.at_edge,
                "track observation"
            );
        }

        // End tracks: tentative ones at their first miss, confirmed ones once they
        // have coasted too long or left the view.
        let mut i = 0;
        while i < self.tracks.len() {
            let t = &self.tracks[i];
            let occluded = t.last().is_some_and(|o| o.occluded);
            let p = t.predicted();
            let c = p.center();
            let outside = c[0] < 0.0 || c[1] < 0.0 || c[0] > fw || c[1] > fh;
            let limit = if occluded {
                rules.max_occluded_frames
            } else {
                rules.max_coast_frames
            };
            let end = if !t.confirmed {
                t.misses > 0
            } else {
                // Gone past the edge: ended after a few frames rather than at once,
                // so an athlete who stops dead there (a fall) can be found again.
                t.misses > limit || (t.misses >= 3 && outside) || t.unworn_in_cover >= UNWORN_FRAMES
            };
            if end {
                let track = self.tracks.remove(i);
                let last_seen = track.history.iter().rev().find(|o| o.observed);
                // Hidden in a group at the edge since it was last seen: it went
                // out with (or through) the group.
                let in_edge_group = track
                    .history
                    .iter()
                    .rev()
                    .take_while(|o| !o.observed)
                    .any(|o| o.occluded && o.at_edge);
                let left_view = outside || in_edge_group || last_seen.is_some_and(|o| o.at_edge);
                if track.confirmed {
                    self.ended.push(Ended { track, left_view });
                }
            } else {
                i += 1;
            }
        }

        // New tracks from blobs nobody took (and that are not part of a group).
        for (j, b) in blobs.iter().enumerate() {
            if self.owner[j].is_some() || group[j] || b.weak {
                continue;
            }
            // Most of it lay in the box of a track that measured another blob
            // now: the two were one blob and split. (Not at the edge: there it is
            // the next athlete coming in where the last one just was.)
            let split_from = self
                .tracks
                .iter()
                .filter(|_| !b.at_edge)
                .filter(|t| t.confirmed && t.last().is_some_and(|o| o.observed))
                .find(|t| {
                    let n = t.history.len();
                    n >= 2 && {
                        let before = &t.history[n - 2];
                        before.observed
                            && b.rect.area() > 0.0
                            && before.rect.intersection(&b.rect) >= 0.5 * b.rect.area()
                    }
                })
                .map(|t| t.id);
            let c = b.rect.center();
            let pv = MEASURE_VAR * h2;
            let vv = h2; // A frame height per second, either way.
            let mut history = match split_from.and_then(|p| self.tracks.iter().find(|t| t.id == p))
            {
                Some(parent) => self.inherited(parent, t_ns),
                None => VecDeque::with_capacity(self.rules.history_frames.max(1)),
            };
            history.push_back(Obs {
                t_ns,
                rect: b.rect,
                centroid: b.centroid,
                observed: true,
                occluded: false,
                at_edge: b.at_edge,
                weak: b.weak,
                shared: false,
                worn: false,
                cut: b.cut,
                mask_box: b.mask_box,
            });
            self.tracks.push(Track {
                id: self.next_id,
                cx: Kalman1d::new(c[0], pv, vv),
                cy: Kalman1d::new(c[1], pv, vv),
                w: b.rect.width(),
                h: b.rect.height(),
                area: if b.at_edge { 0.0 } else { b.area },
                hits: 1,
                misses: 0,
                confirmed: self.rules.min_hits <= 1 && !b.weak,
                first_ns: t_ns,
                last_seen_ns: t_ns,
                missing_since_ns: None,
                history,
                split_from,
                suit: Suit::default(),
                pack: None,
                hue_since: mask.map_or([None; HUES], |m| {
                    let hues = Hues::count(&m, b.mask_box);
                    std::array::from_fn(|h| hues.shows(h).then_some(t_ns))
                }),
                came_in_ns: None,
                unworn_in_cover: 0,
            });
            self.owner[j] = Some(self.next_id);
            self.next_id += 1;
        }

        if let Some(m) = &mask {
            for (parent, j, pack) in packs {
                self.split_pack(t_ns, m, &blobs[j], parent, &pack);
            }
        }
    }

    /// A new track's start when it split off `parent`: it rode in that one's
    /// blob, so the parent's recent path (before `t_ns`) is its own as far as a
    /// share of a group is (its top and centre roughly, not its width), and a
    /// jump just after the split has a path before it to start from.
    fn inherited(&self, parent: &Track, t_ns: u64) -> VecDeque<Obs> {
        let mut history = VecDeque::with_capacity(self.rules.history_frames.max(1));
        let keep = INHERITED.min(self.rules.history_frames.saturating_sub(1));
        let before = parent.history.iter().filter(|o| o.t_ns < t_ns);
        let n = before.clone().count();
        history.extend(before.skip(n.saturating_sub(keep)).map(|o| Obs {
            shared: o.observed,
            worn: false,
            mask_box: [0; 4],
            ..*o
        }));
        history
    }

    /// The blob of track `parent` has shown the same two suits for a while: two
    /// athletes came in as one. The parent keeps the suit that showed first (the
    /// larger when both did from the start), a new track (confirmed: the suits
    /// were seen on `PACK_FRAMES` frames) takes the other, and from now on the
    /// blob is shared out between them by their suits.
    fn split_pack(
        &mut self,
        t_ns: u64,
        mask: &MaskView<'_>,
        blob: &Blob,
        parent: u64,
        pack: &Pack,
    ) {
        let [kx, ky] = mask.scale;
        let boxes = pack.boxes.map(|[x0, y0, x1, y1]| Rect {
            x0: x0 as f32 * kx,
            y0: y0 as f32 * ky,
            x1: x1 as f32 * kx,
            y1: y1 as f32 * ky,
        });
        let parts = share(mask, blob, &boxes, &pack.suits, true);
        let (Some(Some(a)), Some(Some(b))) = (parts.first(), parts.get(1)) else {
            return;
        };
        let Some(p) = self.tracks.iter().position(|t| t.id == parent) else {
            return;
        };
        // Since when each suit has shown in the track's blobs, frame after
        // frame (a sliver beside the first athlete when the second came in).
        let since = |k: usize| {
            let t = &self.tracks[p];
            let peak = pack.peaks[k] as usize;
            [peak + HUES - 1, peak, peak + 1]
                .iter()
                .filter_map(|&h| t.hue_since[h % HUES])
                .min()
        };
        // The track stays with the suit that was there first (the larger when
        // both were); the other came in later, with the track or after it.
        let (kept, other) = match (since(0), since(1)) {
            (Some(s0), Some(s1)) if s0 > s1 => (1, 0),
            _ => (0, 1),
        };
        let (mine, theirs) = if kept == 0 { (a, b) } else { (b, a) };
        let came_in_ns = since(other).filter(|&at| at > self.tracks[p].first_ns);
        let history = self.inherited(&self.tracks[p], t_ns);
        // A share is cut where the two meet, and the one behind is partly
        // hidden: each athlete is as wide as this scene's athletes are for
        // their height, at least as wide as its share.
        let aspect = self.aspect();
        let width = |s: &Share| {
            aspect
                .map_or(0.0, |a| a * s.rect.height())
                .max(s.rect.width())
        };
        let t = &mut self.tracks[p];
        let measured = |s: &Share, o: &Obs| Obs {
            rect: s.rect,
            centroid: s.centroid,
            at_edge: s.at_edge,
            shared: true,
            worn: true,
            cut: false,
            mask_box: s.mask_box,
            ..*o
        };
        let Some(last) = t.history.back_mut().filter(|o| o.t_ns == t_ns) else {
            return;
        };
        let first = measured(theirs, last);
        *last = measured(mine, last);
        let c = mine.rect.center();
        (t.cx.pos, t.cy.pos) = (c[0], c[1]);
        (t.w, t.h, t.area) = (width(mine), mine.rect.height(), mine.area);
        t.suit = pack.suits[kept];
        let [vx, vy] = t.velocity();
        let h2 = self.frame_h * self.frame_h;
        let c = theirs.rect.center();
        let mut track = Track {
            id: self.next_id,
            cx: Kalman1d::new(c[0], MEASURE_VAR * h2, h2),
            cy: Kalman1d::new(c[1], MEASURE_VAR * h2, h2),
            w: width(theirs),
            h: theirs.rect.height(),
            area: theirs.area,
            hits: self.rules.min_hits,
            misses: 0,
            confirmed: true,
            first_ns: t_ns,
            last_seen_ns: t_ns,
            missing_since_ns: None,
            history,
            split_from: Some(parent),
            suit: pack.suits[other],
            pack: None,
            hue_since: [None; HUES],
            came_in_ns,
            unworn_in_cover: 0,
        };
        (track.cx.vel, track.cy.vel) = (vx, vy);
        track.history.push_back(first);
        tracing::debug!(
            parent,
            track = track.id,
            t_ns,
            "two suits in one blob: a second track"
        );
        self.next_id += 1;
        self.tracks.push(track);
    }

    /// Per track: its share of the group blob it lies in, when the confirmed
    /// tracks predicted in that blob are far enough apart to be told apart (or,
    /// on top of each other, wear suits that tell them apart) and its share is
    /// a fair part of the blob (a sliver means it is mostly hidden: it coasts);
    /// with whether the share's top is the athlete's own (told apart by colour).
    fn shares(
        &self,
        mask: &MaskView<'_>,
        blobs: &[Blob],
        group: &[bool],
        assigned: &[Option<usize>],
    ) -> Vec<Option<(usize, Share, bool)>> {
        let mut out = vec![None; self.tracks.len()];
        // Told apart by colour only athletes of about a whole one's size, inside
        // the view: what is left of one at the frame's edge (or a track that
        // outlived its athlete there) is no suit to go by.
        let min_h = self.scene_height().map_or(0.0, |h| SHARE_WHOLE * h);
        let (fw, fh) = (self.frame_w, self.frame_h);
        let inside = |r: &Rect| r.x0 > 0.0 && r.y0 > 0.0 && r.x1 < fw && r.y1 < fh;
        for (j, b) in blobs.iter().enumerate().filter(|&(j, _)| group[j]) {
            let (who, boxes): (Vec<usize>, Vec<Rect>) = self
                .tracks
                .iter()
                .enumerate()
                // A track measured from a blob of its own is not in this one.
                .filter(|&(i, t)| t.confirmed && assigned[i].is_none_or(|a| a == j || group[a]))
                .map(|(i, t)| (i, t.predicted()))
                .filter(|(_, p)| p.area() > 0.0 && p.intersection(&b.rect) >= 0.3 * p.area())
                .unzip();
            if who.len() < 2 {
                continue;
            }
            let suits: Vec<Suit> = who.iter().map(|&i| self.tracks[i].suit).collect();
            let by_place = apart(&boxes, SHARE_APART);
            // Boxes on top of each other: told apart by what they wear.
            let by_colour = !by_place
                && who.iter().all(|&i| self.tracks[i].h >= min_h)
                && boxes.iter().all(inside)
                && suits
                    .iter()
                    .enumerate()
                    .all(|(k, a)| suits[k + 1..].iter().all(|b| a.alike(b) <= DISTINCT));
            if !(by_place || by_colour) {
                continue;
            }
            // Suits unlike each other are read for tops even when shared by place.
            let distinct = suits
                .iter()
                .enumerate()
                .all(|(k, a)| suits[k + 1..].iter().all(|b| a.alike(b) <= DISTINCT));
            let suits: &[Suit] = if by_colour || distinct { &suits } else { &[] };
            let parts = share(mask, b, &boxes, suits, by_colour);
            for (&i, part) in who.iter().zip(parts) {
                // A share much lower than the athlete (its skis only, the body
                // went to a neighbour) says nothing of where its top is.
                // A share as large as the athlete's body but lower (it fell) does.
                let t = &self.tracks[i];
                // Told apart by colour, a share must show its suit: one of grey
                // pixels only (skis, someone else's) is not the athlete, who may
                // have gone.
                if let Some(s) = part.filter(|s| {
                    (!by_colour || s.worn >= SHARE_WORN)
                        && s.area >= SHARE_MIN * b.area / who.len() as f32
                        && (s.rect.height() >= SHARE_TALL * t.h
                            || (s.rect.height() >= SHARE_LOW * t.h
                                && t.area > 0.0
                                && s.area >= SHARE_BODY * t.area))
                }) {
                    // Its top is its own when it wears its suit and little of
                    // anyone else's; shared by place, when its top row lies
                    // clearly in its own box or its head and shoulders wear its
                    // suit.
                    let own_top = (by_colour && s.worn >= SHARE_OWN && s.foreign <= SHARE_FOREIGN)
                        || (by_place
                            && (s.top_margin >= SHARE_TOP_MARGIN
                                || (s.top_worn >= SHARE_TOP_OWN
                                    && s.top_foreign <= SHARE_TOP_FOREIGN)));
                    out[i] = Some((j, s, own_top));
                }
            }
        }
        out
    }

    /// Ends every track (the stream is over), reporting them as ended.
    pub fn finish(&mut self) {
        self.ended.clear();
        for track in self.tracks.drain(..) {
            if track.confirmed {
                self.ended.push(Ended {
                    track,
                    left_view: false,
                });
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    X,
    Y,
}

/// Whether a track moving at `v` (pixels/s) is heading out over an edge of the
/// frame that `group` touches, faster than 0.4 frame heights a second;
/// the axis it leaves along.
fn heading_out(v: [f32; 2], group: &Rect, fw: f32, fh: f32) -> Option<Axis> {
    let min = 0.4 * fh;
    if (group.x1 >= fw - 1.0 && v[0] > min) || (group.x0 <= 1.0 && v[0] < -min) {
        Some(Axis::X)
    } else if (group.y1 >= fh - 1.0 && v[1] > min) || (group.y0 <= 1.0 && v[1] < -min) {
        Some(Axis::Y)
    } else {
        None
    }
}

/// Whether a box touches one of the frame's edges (given the frame's width and
/// height).
type Touches = fn(&Rect, f32, f32) -> bool;
/// How far out a box's inner side lies, towards one of the frame's edges.
type Out = fn(&Rect) -> f32;
/// The speed towards one of the frame's edges, from a velocity.
type Towards = fn([f32; 2]) -> f32;
/// The frame's four edges: the speed towards one from a velocity, whether a box
/// touches it, and how far out a box's inner side lies.
const EDGES: [(Towards, Touches, Out); 4] = [
    (|v| v[0], |q, fw, _| q.x1 >= fw - 1.0, |q| q.x0),
    (|v| -v[0], |q, _, _| q.x0 <= 1.0, |q| -q.x1),
    (|v| v[1], |q, _, fh| q.y1 >= fh - 1.0, |q| q.y0),
    (|v| -v[1], |q, _, _| q.y0 <= 1.0, |q| -q.y1),
];

/// A track's own blobs at an edge it moves towards, newest first: how far out
/// the inner side of the last, the first and the furthest out lay.
#[derive(Debug, Clone, Copy)]
struct EdgeRun {
    speed: f32,
    last: f32,
    first: f32,
    furthest: f32,
    len: usize,
}

/// A confirmed track going out over the frame's edges, read at most once a
/// frame (it depends on the track alone) for [`GoingOut::came_back_in`] to ask
/// of each blob at the edge.
#[derive(Debug, Clone, Copy)]
struct GoingOut {
    /// How far a blob may reach back in and still be the track's.
    margin: f32,
    /// The track's own blobs at the edge were shrinking.
    shrinking: bool,
    /// The least speed out for the furthest-out reading.
    min_speed: f32,
    /// Per edge of [`EDGES`], the track's run of blobs there.
    runs: [Option<EdgeRun>; 4],
}

impl GoingOut {
    /// `t`'s runs at the edges it moves towards; none when it is at none.
    fn of(t: &Track, fw: f32, fh: f32) -> Option<Self> {
        if !t.confirmed {
            return None;
        }
        let v = t.velocity();
        let mut runs = [None; 4];
        for (run, &(towards, touches, out)) in runs.iter_mut().zip(&EDGES) {
            let speed = towards(v);
            if speed <= 0.0 {
                continue;
            }
            let mut own = t
                .history
                .iter()
                .rev()
                .filter(|o| o.observed && !o.shared)
                .take_while(|o| touches(&o.rect, fw, fh))
                .map(|o| out(&o.rect));
            let Some(last) = own.next() else { continue };
            let (mut first, mut furthest, mut len) = (last, last, 1);
            for x in own {
                (first, furthest, len) = (x, furthest.max(x), len + 1);
            }
            *run = Some(EdgeRun {
                speed,
                last,
                first,
                furthest,
                len,
            });
        }
        runs.iter().any(Option::is_some).then(|| GoingOut {
            margin: (BACK_IN * t.h).max(2.0),
            shrinking: t.shrank_at_edge(),
            min_speed: BACK_SPEED * t.h,
            runs,
        })
    }

    /// Whether `b`, a blob at an edge the track is going out over (the caller
    /// asks only of blobs at the frame's edge), is the next athlete coming in
    /// there: it reaches back into the view against the
    /// track's motion, past its last own blob at that edge when those were
    /// shrinking; or past the furthest out its own blobs at that edge got, when
    /// they did move out and it still moves out at one of its heights a second
    /// or more (a newcomer whose blob is one with what is left of the track for
    /// a few frames grows back in a little each frame, never far past the last
    /// one). What went out does not come back against its motion.
    fn came_back_in(&self, b: &Blob, fw: f32, fh: f32) -> bool {
        EDGES
            .iter()
            .zip(&self.runs)
            .any(|(&(_, touches, out), run)| {
                let Some(r) = run else { return false };
                if !touches(&b.rect, fw, fh) {
                    return false;
                }
                let back = out(&b.rect);
                (self.shrinking && r.last - back > self.margin)
                    || (r.speed >= self.min_speed
                        && r.len >= 3
                        && r.furthest - r.first > self.margin
                        && r.furthest - back > self.margin)
            })
    }
}

/// Whether `t`, last seen going out over the frame's edge, is not in `b`, a blob
/// at the edge that shows none of its suit: `b` is someone who came to the edge
/// after it. (Without the frame's colours, or a suit learnt, nothing says so.)
fn gone_from(t: &Track, b: &Blob, mask: Option<&MaskView<'_>>) -> bool {
    match mask {
        Some(m) if b.at_edge && t.suit.known() && t.shrank_at_edge() => {
            t.suit.worn_in(&Hues::count(m, b.mask_box)) < SEEN_PIXELS
        }
        _ => false,
    }
}

/// `r` moved (not resized) to lie inside `within`, centred where it is larger.
fn snap(r: &Rect, within: &Rect) -> Rect {
    let shift = |a0: f32, a1: f32, b0: f32, b1: f32| {
        if a1 - a0 >= b1 - b0 {
            (b0 + b1) * 0.5 - (a0 + a1) * 0.5
        } else if a0 < b0 {
            b0 - a0
        } else if a1 > b1 {
            b1 - a1
        } else {
            0.0
        }
    };
    let dx = shift(r.x0, r.x1, within.x0, within.x1);
    let dy = shift(r.y0, r.y1, within.y0, within.y1);
    Rect {
        x0: r.x0 + dx,
        y0: r.y0 + dy,
        x1: r.x1 + dx,
        y1: r.y1 + dy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TrackRules = TrackRules {
        iou_min: 0.2,
        min_hits: 3,
        max_coast_frames: 5,
        max_occluded_frames: 20,
        history_frames: 30,
    };

    fn blob(x: f32, y: f32, w: f32, h: f32) -> Blob {
        let rect = Rect {
            x0: x,
            y0: y,
            x1: x + w,
            y1: y + h,
        };
        Blob {
            rect,
            centroid: rect.center(),
            area: w * h,
            fill: 1.0,
            mask_box: [0; 4],
            at_edge: false,
            weak: false,
            cut: false,
        }
    }

    const FRAME_NS: u64 = 33_333_333;

    /// A mask at frame resolution.
    fn unit_view(mask: &[u8], width: usize, height: usize) -> MaskView<'_> {
        MaskView {
            data: mask,
            width,
            height,
            scale: [1.0, 1.0],
            chroma: None,
        }
    }

    /// Suit colours of the athletes the colour tests draw.
    const RED: [u8; 3] = [200, 30, 30];
    const BLUE: [u8; 3] = [30, 60, 200];

    /// A mask at frame resolution with the frame's colours (`rgb`), or blind to
    /// them.
    fn coloured_view<'a>(
        mask: &'a [u8],
        rgb: &'a [u8],
        width: usize,
        height: usize,
        colours: bool,
    ) -> MaskView<'a> {
        MaskView {
            chroma: colours.then_some(super::super::suit::Chroma {
                pixels: super::super::pixels::Pixels::Rgb(rgb),
                width,
                height,
            }),
            ..unit_view(mask, width, height)
        }
    }

    /// An athlete moving right leaves over the frame's right edge: body and skis
    /// come apart there (the legs are out of view) and then only a sliver of skis
    /// is left. One track follows all of it to the last pixel.
    #[test]
    fn an_athlete_leaving_stays_one_track_to_the_last_sliver() {
        let mut tr = Tracker::new(RULES, 200, 100);
        let mut f = 0u64;
        let mut x = 100.0;
        while x + 20.0 < 200.0 {
            tr.update(f * FRAME_NS, &[blob(x, 40.0, 20.0, 40.0)]);
            f += 1;
            x += 5.0;
        }
        let id = tr.tracks()[0].id;
        let edge = |mut b: Blob| {
            b.rect.x1 = b.rect.x1.min(200.0);
            b.at_edge = true;
            b
        };
        for k in 0..6 {
            let x = x + 5.0 * k as f32;
            let mut blobs = vec![
                edge(blob(x + 10.0, 40.0, 15.0, 12.0)),
                edge(blob(x, 74.0, 25.0, 6.0)),
            ];
            if k >= 3 {
                // The body is out; thin skis are left.
                blobs = vec![edge(blob(176.0 + 4.0 * k as f32, 77.0, 25.0, 2.0))];
                blobs[0].weak = true;
            }
            tr.join_edge_pieces(f * FRAME_NS, &mut blobs);
            assert_eq!(blobs.len(), 1, "frame {f}: {blobs:?}");
            tr.update(f * FRAME_NS, &blobs);
            assert_eq!(tr.owners(), &[Some(id)], "frame {f}");
            f += 1;
        }
        // A sliver nobody expects starts nothing.
        let mut s = blob(0.0, 10.0, 3.0, 1.0);
        s.weak = true;
        s.at_edge = true;
        tr.update(f * FRAME_NS, &[s]);
        assert_eq!(tr.owners(), &[None]);
        assert!(tr.tracks().iter().all(|t| t.id == id));
    }

    /// Eight empty frames from frame `f` on: every track still open ends; what
    /// ended goes to `ended` as (id, left the view).
    fn drain_ended(tr: &mut Tracker, mut f: u64, ended: &mut Vec<(u64, bool)>) {
        for _ in 0..8 {
            tr.update(f * FRAME_NS, &[]);
            ended.extend(tr.ended().iter().map(|e| (e.track.id, e.left_view)));
            f += 1;
        }
    }

    /// A skater goes out over the right edge; two frames after its last sliver
    /// the next one comes in at the same place, going the other way. Its blob
    /// reaches back into the view past the last of the one who went out: a new
    /// track, and the old one has left the view (a hand-over, not a U-turn).
    #[test]
    fn an_athlete_coming_in_where_another_went_out_is_a_new_track() {
        let mut tr = Tracker::new(RULES, 200, 100);
        let edge = |x: f32, w: f32| {
            let mut b = blob(x, 40.0, w, 40.0);
            b.rect.x1 = b.rect.x1.min(200.0);
            b.at_edge = b.rect.x1 >= 200.0;
            b
        };
        let mut f = 0u64;
        // Going out at 5 px a frame, 20 px wide: the last sliver at x = 196.
        let mut x = 120.0;
        while x < 200.0 {
            tr.update(f * FRAME_NS, &[edge(x, 20.0)]);
            f += 1;
            x += 5.0;
        }
        let gone = tr.tracks()[0].id;
        // A frame with nothing, then the next one coming in, 10 px showing.
        tr.update(f * FRAME_NS, &[]);
        f += 1;
        let mut ended = Vec::new();
        for k in 0..4 {
            tr.update(f * FRAME_NS, &[edge(190.0 - 5.0 * k as f32, 20.0)]);
            ended.extend(tr.ended().iter().map(|e| (e.track.id, e.left_view)));
            assert_ne!(tr.owners()[0], Some(gone), "frame {f}");
            f += 1;
        }
        drain_ended(&mut tr, f, &mut ended);
        assert!(ended.contains(&(gone, true)), "{ended:?}");
    }

    /// A skater goes out over the right edge while the next comes in right
    /// there: for a few frames one blob holds what is left of the first and the
    /// front of the second, and it reaches back in a little each frame, never
    /// far past the last one. Past the furthest out the first one's blobs got,
    /// it is the newcomer's: a new track, and the first has left the view.
    #[test]
    fn a_newcomer_sharing_the_edge_blob_with_one_going_out_gets_its_own_track() {
        let mut tr = Tracker::new(RULES, 200, 100);
        let edge = |x0: f32, x1: f32| {
            let mut b = blob(x0, 40.0, x1.min(200.0) - x0, 40.0);
            b.at_edge = x1 >= 200.0;
            b
        };
        let mut f = 0u64;
        // Going out at 6 px a frame, 20 px wide.
        let mut gone = None;
        let mut owners = Vec::new();
        let mut ended = Vec::new();
        for k in 0..24u64 {
            let a0 = 100.0 + 6.0 * k as f32;
            // The newcomer comes in from frame 16 at 4 px a frame.
            let b0 = 200.0 - 4.0 * k.saturating_sub(15) as f32;
            let blobs = match (a0 < 200.0, k > 15) {
                (true, false) => vec![edge(a0, a0 + 20.0)],
                (true, true) => vec![edge(a0.min(b0), 220.0)],
                (false, _) => vec![edge(b0, b0 + 20.0)],
            };
            tr.update(f * FRAME_NS, &blobs);
            if k == 15 {
                gone = tr.owners()[0];
            }
            owners.push(tr.owners()[0]);
            ended.extend(tr.ended().iter().map(|e| (e.track.id, e.left_view)));
            f += 1;
        }
        let gone = gone.expect("tracked going out");
        assert_ne!(owners.last().copied().flatten(), Some(gone), "{owners:?}");
        drain_ended(&mut tr, f, &mut ended);
        assert!(ended.contains(&(gone, true)), "{ended:?}");
    }

    /// Skis and body coming in over the left edge as two blobs join into one once
    /// the tracker knows how big athletes are here; two athletes side by side do
    /// not.
    #[test]
    fn pieces_coming_in_join_by_the_scene_scale() {
        let mut tr = Tracker::new(RULES, 200, 100);
        let mut pieces = vec![blob(0.0, 30.0, 6.0, 12.0), blob(0.0, 60.0, 10.0, 4.0)];
        for b in &mut pieces {
            b.at_edge = true;
        }
        let mut blobs = pieces.clone();
        tr.join_edge_pieces(FRAME_NS, &mut blobs);
        assert_eq!(blobs.len(), 2, "no scale known yet");
        // An athlete of 20×36 crossing the middle of the frame.
        for f in 0..(MIN_SIZES as u64 + 4) {
            tr.update(f * FRAME_NS, &[blob(80.0 + f as f32, 30.0, 20.0, 36.0)]);
        }
        let t = (MIN_SIZES as u64 + 4) * FRAME_NS;
        let mut blobs = pieces.clone();
        tr.join_edge_pieces(t, &mut blobs);
        assert_eq!(blobs.len(), 1, "{blobs:?}");
        assert_eq!(blobs[0].rect, pieces[0].rect.union(&pieces[1].rect));
        // Two whole athletes one above the other at the edge are too tall for one.
        let mut blobs = vec![blob(0.0, 5.0, 8.0, 36.0), blob(0.0, 50.0, 8.0, 36.0)];
        for b in &mut blobs {
            b.at_edge = true;
        }
        tr.join_edge_pieces(t, &mut blobs);
        assert_eq!(blobs.len(), 2);
    }

    #[test]
    fn kalman_learns_a_constant_velocity() {
        let mut k = Kalman1d::new(0.0, 1.0, 100.0);
        for i in 1..=30 {
            k.predict(0.1, 1.0);
            k.update(i as f32 * 2.0, 0.01);
        }
        assert!((k.vel - 20.0).abs() < 0.5, "{k:?}");
        k.predict(0.1, 1.0);
        assert!((k.pos - 62.0).abs() < 0.5, "{k:?}");
    }

    /// Someone lies at the right edge; a skier passes and goes out over the edge
    /// while the two are one blob. The skier's track goes out on its own motion
    /// and ends as having left the view; the lying athlete keeps its id.
    #[test]
    fn a_skier_passing_one_who_lies_at_the_edge_leaves_and_the_other_stays() {
        let (fw, fh) = (400.0, 200.0);
        let mut tr = Tracker::new(RULES, fw as u32, fh as u32);
        let lying = |b: Blob| Blob { at_edge: true, ..b };
        let mut lying_id = None;
        let mut left = None;
        for f in 0..60u64 {
            let x = 200.0 + 6.0 * f as f32;
            let skier = blob(x, 130.0, 30.0, 50.0);
            let down = lying(blob(350.0, 140.0, 50.0, 40.0));
            let blobs = if x + 30.0 < 350.0 {
                vec![skier, down]
            } else if x < fw {
                // Merged with the lying one (and cut by the edge).
                vec![lying(blob(x.min(350.0), 130.0, fw - x.min(350.0), 50.0))]
            } else {
                vec![down]
            };
            tr.update(f * FRAME_NS, &blobs);
            if f == 5 {
                lying_id = tr.owners()[1];
            }
            if let Some(e) = tr.ended().first() {
                let last = e.track.last().map(|o| o.rect);
                left.get_or_insert((f, e.left_view, e.track.id, last));
            }
            if x >= fw + 60.0 {
                assert_eq!(
                    tr.owners(),
                    [lying_id],
                    "frame {f}: the lying athlete keeps its id"
                );
            }
        }
        let (f, left_view, id, last) = left.expect("the skier's track ends");
        assert!(left_view, "it went out over the edge");
        // Not held inside the group's box: its own motion took it past the edge.
        let last = last.expect("history");
        assert!(last.x1 > fw, "held in the group at {last:?}");
        assert_ne!(Some(id), lying_id);
        // Its box is past the edge from frame 34 (x = 404); it ends a few frames on.
        assert!((30..=40).contains(&f), "ended at frame {f}");
    }

    /// Two athletes come in as one blob and draw apart: the new track knows whose
    /// blob it split off.
    #[test]
    fn a_piece_splitting_off_a_track_knows_its_parent() {
        let mut tr = Tracker::new(RULES, 400, 200);
        for f in 0..20u64 {
            let x = 100.0 + 5.0 * f as f32;
            let blobs = if f < 10 {
                vec![blob(x, 50.0, 60.0, 60.0)]
            } else {
                let gap = 4.0 * (f - 9) as f32;
                vec![
                    blob(x + 30.0 + gap, 50.0, 30.0, 60.0),
                    blob(x - gap, 50.0, 30.0, 60.0),
                ]
            };
            tr.update(f * FRAME_NS, &blobs);
        }
        let parent = tr
            .tracks()
            .iter()
            .find(|t| t.first_ns == 0)
            .expect("parent");
        let child = tr
            .tracks()
            .iter()
            .find(|t| t.first_ns > 0)
            .expect("split-off track");
        assert_eq!(child.split_from, Some(parent.id));
        assert_eq!(parent.split_from, None);
        // It starts with the parent's path before the split (10 frames), read
        // as a share of a group: top and centre, not width.
        let inherited: Vec<&Obs> = child
            .history
            .iter()
            .take_while(|o| o.t_ns < child.first_ns)
            .collect();
        assert_eq!(inherited.len(), 10, "{:?}", child.history);
        assert!(inherited.iter().all(|o| o.shared && o.width_cut()));
        assert_eq!(inherited[0].t_ns, 0);
    }

    #[test]
    fn ids_survive_a_crossing_and_a_short_gap() {
        let mut tr = Tracker::new(RULES, 400, 200);
        let mut ids_a = Vec::new();
        let mut ids_b = Vec::new();
        for f in 0..60u64 {
            let t = f * FRAME_NS;
            // A moves right, B moves left, same row: they merge around f = 30.
            let (xa, xb) = (20.0 + 5.0 * f as f32, 320.0 - 5.0 * f as f32);
            let blobs: Vec<Blob> = if (xa - xb).abs() < 30.0 {
                vec![blob(xa.min(xb), 50.0, (xa - xb).abs() + 30.0, 60.0)]
            } else if f == 10 {
                // One missing frame for both.
                Vec::new()
            } else {
                vec![blob(xa, 50.0, 30.0, 60.0), blob(xb, 50.0, 30.0, 60.0)]
            };
            tr.update(t, &blobs);
            assert!(tr.ended().is_empty(), "frame {f}: {:?}", tr.ended());
            for (j, b) in blobs.iter().enumerate() {
                if blobs.len() == 2
                    && let Some(id) = tr.owners()[j]
                {
                    if b.rect.x0 == xa {
                        ids_a.push(id)
                    } else {
                        ids_b.push(id)
                    }
                }
            }
        }
        ids_a.dedup();
        ids_b.dedup();
        assert_eq!(ids_a.len(), 1, "A changed id: {ids_a:?}");
        assert_eq!(ids_b.len(), 1, "B changed id: {ids_b:?}");
        assert_ne!(ids_a, ids_b);
        let t = &tr.tracks()[0];
        assert!(
            t.confirmed && t.velocity()[0].abs() > 100.0,
            "{:?}",
            t.velocity()
        );
    }

    #[test]
    fn tentative_tracks_die_at_once_and_confirmed_ones_after_coasting() {
        let mut tr = Tracker::new(RULES, 400, 200);
        tr.update(0, &[blob(100.0, 50.0, 20.0, 40.0)]);
        tr.update(FRAME_NS, &[]);
        assert!(tr.tracks().is_empty() && tr.ended().is_empty());
        for f in 0..5 {
            tr.update(f * FRAME_NS, &[blob(100.0, 50.0, 20.0, 40.0)]);
        }
        let mut ended_at = None;
        for f in 5..20 {
            tr.update(f * FRAME_NS, &[]);
            if !tr.ended().is_empty() {
                ended_at = Some(f);
                assert_eq!(tr.ended()[0].track.missing_since_ns, Some(5 * FRAME_NS));
                break;
            }
        }
        assert_eq!(ended_at, Some(5 + RULES.max_coast_frames as u64));
        // A long gap ends every track at once; a gap of years does not break it.
        for f in 0..5 {
            tr.update(
                100 * FRAME_NS + f * FRAME_NS,
                &[blob(100.0, 50.0, 20.0, 40.0)],
            );
        }
        tr.update(u64::MAX / 2, &[blob(100.0, 50.0, 20.0, 40.0)]);
        assert_eq!(tr.ended().len(), 1);
        assert_eq!(tr.tracks().len(), 1);
        assert!(!tr.tracks()[0].confirmed);
    }

    /// Two athletes riding side by side merge into one blob; one of them jumps
    /// while they are merged. With the mask each track is measured from its own
    /// share (its own top), so the jump shows on the right track; without it
    /// both coast on their motion and nobody's top moves.
    #[test]
    fn tracks_in_one_blob_are_measured_from_their_shares() {
        let (w, h) = (120usize, 60usize);
        let mut tr = Tracker::new(RULES, w as u32, h as u32);
        let mut plain = Tracker::new(RULES, w as u32, h as u32);
        // Athlete A: columns x..x+10, rows 20..50; B: 14 columns to the right,
        // rows 20 - lift..50.
        let frame = |x: usize, gap: usize, lift: usize| {
            let mut m = vec![0u8; w * h];
            let bx = x + 10 + gap;
            for y in 0..h {
                for c in 0..w {
                    let a = (x..x + 10).contains(&c) && (20..50).contains(&y);
                    let b = (bx..bx + 10).contains(&c) && (20 - lift..50).contains(&y);
                    m[y * w + c] = u8::from(a || b);
                }
            }
            (m, bx)
        };
        let mut last = (None, None);
        for f in 0..20u64 {
            let x = 10 + f as usize;
            // Apart for 8 frames (4 columns between them), then touching.
            let gap = if f < 8 { 4 } else { 0 };
            let lift = if f >= 12 { 2 * (f as usize - 11) } else { 0 };
            let (mask, bx) = frame(x, gap, lift);
            let blobs: Vec<Blob> = if gap > 0 {
                vec![
                    blob(x as f32, 20.0, 10.0, 30.0),
                    blob(bx as f32, 20.0, 10.0, 30.0),
                ]
            } else {
                let top = (20 - lift) as f32;
                let mut b = blob(x as f32, top, (bx + 10 - x) as f32, 50.0 - top);
                b.mask_box = [x as u32, 20 - lift as u32, bx as u32 + 10, 50];
                vec![b]
            };
            let view = unit_view(&mask, w, h);
            tr.update_masked(f * FRAME_NS, &blobs, Some(view));
            plain.update(f * FRAME_NS, &blobs);
            last = (
                tr.tracks()
                    .iter()
                    .map(|t| *t.last().unwrap())
                    .collect::<Vec<_>>()
                    .into(),
                plain
                    .tracks()
                    .iter()
                    .map(|t| *t.last().unwrap())
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        let (shared, coasting): (Vec<Obs>, Vec<Obs>) = (last.0.unwrap(), last.1.unwrap());
        assert_eq!(shared.len(), 2, "{shared:?}");
        let mut by_x = shared.clone();
        by_x.sort_by(|a, b| a.rect.x0.total_cmp(&b.rect.x0));
        assert!(
            by_x.iter().all(|o| o.observed && o.shared && !o.occluded),
            "{by_x:?}"
        );
        assert_eq!(by_x[0].rect.y0, 20.0, "A stays on the ground: {by_x:?}");
        assert_eq!(by_x[1].rect.y0, 4.0, "B is 16 px up: {by_x:?}");
        assert_eq!(coasting.len(), 2);
        assert!(
            coasting.iter().all(|o| !o.observed && o.occluded),
            "{coasting:?}"
        );
    }

    /// Where B is on frame `f` of the pack test: columns right of A, and lift.
    /// Side by side, then B drifts in front of A until almost wholly covering
    /// it; B jumps from frame 14.
    fn pack_path(f: u64) -> (usize, usize) {
        let off = if f < 7 {
            7
        } else {
            13usize.saturating_sub(f as usize).max(1)
        };
        let lift = if f >= 14 { 2 * (f as usize - 13) } else { 0 };
        (off, lift)
    }

    /// Two athletes who came in as one blob (a red and a blue suit, side by
    /// side, the blue in front, two frames after the red): after `PACK_FRAMES`
    /// frames of two suits the second is a track of its own, split off the
    /// first, that came in when its suit first showed. Then they overlap so
    /// much that their boxes cannot share the blob out by place, and the blue
    /// one jumps: told apart by their suits, each track keeps its own top.
    #[test]
    fn a_pack_of_two_suits_becomes_two_tracks_told_apart_by_colour() {
        use super::super::pixels::Pixels;
        use super::super::suit::Chroma;
        const RED: [u8; 3] = [200, 30, 30];
        const BLUE: [u8; 3] = [30, 60, 200];
        let (w, h) = (120usize, 60usize);
        let mut tr = Tracker::new(RULES, w as u32, h as u32);
        // A (red): columns x..x+10, rows 20..50; B (blue, drawn over A):
        // columns x+off..x+off+bw, rows 20-lift..50-lift.
        let scene = |x: usize, off: usize, lift: usize, bw: usize| {
            let (mut mask, mut rgb) = (vec![0u8; w * h], vec![255u8; w * h * 3]);
            for y in 0..h {
                for c in 0..w {
                    let a = (x..x + 10).contains(&c) && (20..50).contains(&y);
                    let b =
                        (x + off..x + off + bw).contains(&c) && (20 - lift..50 - lift).contains(&y);
                    let colour = if b { BLUE } else { RED };
                    if a || b {
                        mask[y * w + c] = 1;
                        rgb[(y * w + c) * 3..][..3].copy_from_slice(&colour);
                    }
                }
            }
            let top = (20 - lift) as u32;
            let width = (off + bw).max(10);
            let mut b = blob(x as f32, top as f32, width as f32, 50.0 - top as f32);
            b.mask_box = [x as u32, top, (x + width) as u32, 50];
            b.area = mask.iter().filter(|&&m| m != 0).count() as f32;
            (mask, rgb, b)
        };
        let mut split_at = None;
        for f in 0..20u64 {
            let x = 10 + f as usize;
            let (off, lift) = pack_path(f);
            let bw = if f < 2 { 0 } else { 10 };
            let (mask, rgb, b) = scene(x, off, lift, bw);
            let view = MaskView {
                chroma: Some(Chroma {
                    pixels: Pixels::Rgb(&rgb),
                    width: w,
                    height: h,
                }),
                ..unit_view(&mask, w, h)
            };
            tr.update_masked(f * FRAME_NS, &[b], Some(view));
            if split_at.is_none() && tr.tracks().len() == 2 {
                split_at = Some(f);
            }
        }
        // Confirmed on frame 2, two suits from frame 3: split on frame 6.
        assert_eq!(split_at, Some(6), "{:?}", tr.tracks());
        let ts = tr.tracks();
        assert!(ts.iter().all(|t| t.confirmed));
        assert_eq!(ts[1].split_from, Some(ts[0].id));
        assert_eq!(
            ts[1].came_in_ns,
            Some(2 * FRAME_NS),
            "blue showed on frame 2"
        );
        assert_eq!(ts[0].came_in_ns, None);
        // The one whose share reaches further right wears blue.
        let last: Vec<Obs> = ts.iter().map(|t| *t.last().unwrap()).collect();
        assert!(last.iter().all(|o| o.observed && o.shared), "{last:?}");
        let (red, blue) = if last[0].rect.x1 < last[1].rect.x1 {
            (last[0], last[1])
        } else {
            (last[1], last[0])
        };
        // Frame 19: B is 12 px up, A on the ground; B's top is its own.
        assert_eq!(blue.rect.y0, 8.0, "{blue:?}");
        assert!(blue.worn, "{blue:?}");
        assert_eq!(red.rect.y0, 20.0, "{red:?}");
        assert_eq!(red.rect.y1, 50.0, "{red:?}");
        // Without the colours the pack stays one track.
        let mut blind = Tracker::new(RULES, w as u32, h as u32);
        for f in 0..20u64 {
            let x = 10 + f as usize;
            let (off, lift) = pack_path(f);
            let (mask, _, b) = scene(x, off, lift, if f < 2 { 0 } else { 10 });
            blind.update_masked(f * FRAME_NS, &[b], Some(unit_view(&mask, w, h)));
        }
        assert_eq!(
            blind.tracks().len(),
            1,
            "one track for the pack without colour"
        );
    }

    /// Two athletes riding side by side, their boxes overlapping (skis under the
    /// other's body) but their blobs apart: each track measures its own blob on
    /// every frame. The right one's box reaching into the left one's blob does
    /// not make that blob a group of two (which hid the left one, e.g. at the
    /// apex of a jump they took together).
    #[test]
    fn a_track_with_a_blob_of_its_own_claims_no_share_of_its_neighbours() {
        let mut tr = Tracker::new(RULES, 200, 100);
        for f in 0..12u64 {
            let x = f as f32 * 3.0;
            tr.update(
                f * FRAME_NS,
                &[
                    blob(10.0 + x, 20.0, 30.0, 30.0),
                    blob(28.0 + x, 18.0, 30.0, 30.0),
                ],
            );
            if f >= 3 {
                assert_eq!(tr.tracks().len(), 2, "frame {f}");
                for t in tr.tracks() {
                    let o = t.last().expect("seen");
                    assert!(o.observed && !o.occluded && !o.shared, "frame {f}: {t:?}");
                }
            }
        }
    }

    /// A red athlete crawls out over the right edge (it fell there) and a blue
    /// one rides out right behind it, in front of the red one's last sliver:
    /// from then on the blob there shows no red. The red track has left the
    /// view three frames later, the blue one keeps its own track. Without the
    /// colours the red track is held in the blue blob until that is gone.
    #[test]
    fn a_track_gone_out_is_not_held_in_the_next_athletes_blob() {
        let (w, h) = (120usize, 60usize);
        // Frame f: red at columns 110+f/2..120+f/2, blue (drawn over it) at
        // 76+2f..86+2f, both rows 20..50; one blob where they touch.
        let scene = |f: u64| {
            let (mut mask, mut rgb) = (vec![0u8; w * h], vec![255u8; w * h * 3]);
            let mut spans = Vec::new();
            let (red, blue) = (110 + f as usize / 2, 76 + 2 * f as usize);
            for (x0, colour) in [(red, RED), (blue, BLUE)] {
                let x1 = (x0 + 10).min(w);
                if x0 >= x1 {
                    continue;
                }
                for y in 20..50 {
                    for c in x0..x1 {
                        mask[y * w + c] = 1;
                        rgb[(y * w + c) * 3..][..3].copy_from_slice(&colour);
                    }
                }
                spans.push((x0, x1));
            }
            if let [(r0, r1), (b0, b1)] = spans[..]
                && b1 >= r0
            {
                spans = vec![(b0.min(r0), b1.max(r1))];
            }
            let blobs: Vec<Blob> = spans
                .iter()
                .map(|&(x0, x1)| {
                    let mut b = blob(x0 as f32, 20.0, (x1 - x0) as f32, 30.0);
                    b.mask_box = [x0 as u32, 20, x1 as u32, 50];
                    b.at_edge = x1 == w;
                    b
                })
                .collect();
            (mask, rgb, blobs)
        };
        let run = |colours: bool| {
            let mut tr = Tracker::new(RULES, w as u32, h as u32);
            let mut ended = std::collections::BTreeMap::new();
            for f in 0..30u64 {
                let (mask, rgb, blobs) = scene(f);
                let view = coloured_view(&mask, &rgb, w, h, colours);
                tr.update_masked(f * FRAME_NS, &blobs, Some(view));
                for e in tr.ended() {
                    ended.insert(e.track.id, (f, e.left_view));
                }
            }
            ended
        };
        // Red's last pixels show on frame 16 (then blue is in front of the
        // rest): hidden in a blob without red on frames 17, 18 and 19.
        // Blue's last pixels show on frame 21: its track goes out then, and
        // no third track is ever made.
        let ended = run(true);
        assert_eq!(ended.get(&1), Some(&(19, true)), "{ended:?}");
        assert!(
            ended.get(&2).is_some_and(|&(f, left)| f > 21 && left),
            "{ended:?}"
        );
        assert_eq!(ended.len(), 2, "{ended:?}");
        // Blind, the red track is held at the edge past the blue one's last
        // pixels (frame 21).
        let ended = run(false);
        assert!(ended.get(&1).is_some_and(|&(f, _)| f > 21), "{ended:?}");
    }

    /// A red athlete riding across vanishes (behind something the mask does not
    /// show) and on that frame a blue one appears right where the red one was
    /// going. Seeing the colours, the red track does not take the blue blob: the
    /// blue athlete gets a track of its own. Blind, the red track goes on as
    /// the blue athlete.
    #[test]
    fn a_track_takes_no_blob_plainly_in_someone_elses_colours() {
        let (w, h) = (120usize, 60usize);
        // Frame f: one athlete at columns 20+2f..30+2f, rows 20..50, red before
        // frame 10 and blue from then on.
        let scene = |f: u64| {
            let (mut mask, mut rgb) = (vec![0u8; w * h], vec![255u8; w * h * 3]);
            let x0 = 20 + 2 * f as usize;
            let colour = if f < 10 { RED } else { BLUE };
            for y in 20..50 {
                for c in x0..x0 + 10 {
                    mask[y * w + c] = 1;
                    rgb[(y * w + c) * 3..][..3].copy_from_slice(&colour);
                }
            }
            let mut b = blob(x0 as f32, 20.0, 10.0, 30.0);
            b.mask_box = [x0 as u32, 20, x0 as u32 + 10, 50];
            (mask, rgb, b)
        };
        let run = |colours: bool| {
            let mut tr = Tracker::new(RULES, w as u32, h as u32);
            for f in 0..14u64 {
                let (mask, rgb, b) = scene(f);
                let view = coloured_view(&mask, &rgb, w, h, colours);
                tr.update_masked(f * FRAME_NS, &[b], Some(view));
            }
            // Who measured the blue athlete on the last frame.
            tr.tracks()
                .iter()
                .find(|t| {
                    t.last()
                        .is_some_and(|o| o.observed && o.t_ns == 13 * FRAME_NS)
                })
                .map(|t| t.id)
        };
        let red = 1;
        let seeing = run(true).expect("the blue athlete is tracked");
        assert_ne!(seeing, red, "the red track took the blue athlete");
        assert_eq!(run(false), Some(red), "blind, one track for both");
    }

    /// Two athletes side by side merge into one blob and one of them falls: its
    /// share is low (half its height) but holds its whole body, so it still
    /// measures the track and the fall shows. A share of legs and skis, as low
    /// but a third of the body, says nothing: the track coasts.
    #[test]
    fn a_fallen_athletes_share_measures_it_but_its_legs_alone_do_not() {
        let (w, h) = (120usize, 60usize);
        // A's rectangles ([x0, x1, y0, y1)) once merged, for A at `x` and B at `b0`.
        let run = |merged: &dyn Fn(usize, usize) -> Vec<[usize; 4]>| {
            let mut tr = Tracker::new(RULES, w as u32, h as u32);
            let mut last = Vec::new();
            for f in 0..12u64 {
                let x = 30 + f as usize;
                let b = [x + 14, x + 24, 20, 50];
                // Upright and apart for 8 frames, then touching B.
                let mut rects = if f < 8 {
                    vec![[x, x + 10, 20, 50]]
                } else {
                    merged(x, b[0])
                };
                rects.push(b);
                let mut mask = vec![0u8; w * h];
                for r in &rects {
                    for y in r[2]..r[3] {
                        mask[y * w + r[0]..y * w + r[1]].fill(1);
                    }
                }
                let area = mask.iter().filter(|&&p| p != 0).count() as f32;
                let blobs = if f < 8 {
                    vec![
                        blob(x as f32, 20.0, 10.0, 30.0),
                        blob(b[0] as f32, 20.0, 10.0, 30.0),
                    ]
                } else {
                    let x0 = rects.iter().map(|r| r[0]).min().unwrap();
                    let mut g = blob(x0 as f32, 20.0, (b[1] - x0) as f32, 30.0);
                    g.area = area;
                    g.mask_box = [x0 as u32, 20, b[1] as u32, 50];
                    vec![g]
                };
                let view = unit_view(&mask, w, h);
                tr.update_masked(f * FRAME_NS, &blobs, Some(view));
                last = tr.tracks().iter().map(|t| *t.last().unwrap()).collect();
                last.sort_by(|p: &Obs, q: &Obs| p.centroid[0].total_cmp(&q.centroid[0]));
            }
            last
        };
        // Lying on its side next to B: 15 rows (half its height), 20 columns,
        // as much area as upright.
        let fallen = run(&|_, b0| vec![[b0 - 20, b0, 35, 50]]);
        assert_eq!(fallen.len(), 2, "{fallen:?}");
        assert!(fallen[0].observed && fallen[0].shared, "{fallen:?}");
        assert_eq!(
            fallen[0].rect.y0, 35.0,
            "its top is where it lies: {fallen:?}"
        );
        assert!(fallen[1].observed && fallen[1].shared, "{fallen:?}");
        // Legs and skis, as low, a third of the area: coasts.
        let legs = run(&|x, b0| vec![[x + 2, x + 8, 35, 50], [x + 8, b0, 48, 50]]);
        assert_eq!(legs.len(), 2, "{legs:?}");
        assert!(!legs[0].observed, "legs alone do not measure it: {legs:?}");
        assert!(legs[1].observed && legs[1].shared, "{legs:?}");
    }
}
