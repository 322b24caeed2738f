//! Key moments from tracks: enter and exit, jumps (take-off to landing, from the
//! vertical motion of the athlete's own path: a ballistic stretch is one where the
//! centre accelerates downwards at about gravity), falls (the athlete's box turns
//! from upright to lying), speed peaks and crossings of a configured line. Each
//! moment is one event id for its whole life: started, updated, ended.

use std::collections::BTreeMap;

use venue_proto::{EventKind, EventPhase};

use super::EventUpdate;
use super::track::{Obs, Track, Tracker};

/// Moment settings (see [`super::TaggingConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MomentRules {
    pub gravity_hps2: f32,
    pub min_airtime_s: f32,
    pub fall_shape_ratio: f32,
    pub fall_min_frames: u32,
    pub speed_peak_min_hps: f32,
    pub line: Option<[[f32; 2]; 2]>,
}

/// A jump that has just ended: what the strobe composite needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpDone {
    pub event_id: u64,
    pub track: u64,
    pub take_off_ns: u64,
    pub landing_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Air {
    Ground {
        /// No take-off before this time (just landed).
        quiet_until_ns: u64,
        /// The last jump's landing: a take-off is dated after it.
        landed_ns: u64,
    },
    Flying {
        event_id: u64,
        take_off_ns: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Peak {
    event_id: u64,
    speed: f32,
    at_ns: u64,
    started_ns: u64,
}

/// What the detectors remember about one track.
#[derive(Debug, Clone, PartialEq)]
struct TrackMoments {
    entered: bool,
    /// When the enter event put its arrival.
    entered_at_ns: Option<u64>,
    air: Air,
    /// Open fall: event id, start.
    fall: Option<(u64, u64)>,
    /// Frames in a row that look lying / upright again.
    low_run: u32,
    up_run: u32,
    peak: Option<Peak>,
    /// Frames since the speed first went over the threshold and has stayed so.
    last_cross_ns: Option<u64>,
    last_feet: Option<[f32; 2]>,
}

impl Default for TrackMoments {
    fn default() -> Self {
        Self {
            entered: false,
            entered_at_ns: None,
            air: Air::Ground {
                quiet_until_ns: 0,
                landed_ns: 0,
            },
            fall: None,
            low_run: 0,
            up_run: 0,
            peak: None,
            last_cross_ns: None,
            last_feet: None,
        }
    }
}

/// The moment detectors of one camera.
#[derive(Debug)]
pub struct Moments {
    rules: MomentRules,
    next_event_id: u64,
    frame_w: f32,
    frame_h: f32,
    frame_ns: u64,
    per_track: BTreeMap<u64, TrackMoments>,
    /// Scratch for fits.
    pts: Vec<(f64, f64)>,
    heights: Vec<f32>,
    windows: Windows,
}

/// No take-off this soon after a landing (the landing's own bounce).
const QUIET_AFTER_LANDING_NS: u64 = 333_333_333;

/// The jump detector's windows, in seconds (tuned at 30 fps, where they are 3,
/// 3, 10 and 6 frames): a camera at another rate gets as many frames as cover the
/// same time, never fewer than a fit needs (the look-back never fewer than 10).
#[derive(Debug, Clone, Copy)]
struct Windows {
    /// Half-width of the window over which acceleration is estimated.
    half: usize,
    /// Consecutive windows that must agree before a take-off is announced.
    agree: usize,
    /// Frames before a take-off that the change-point search looks at.
    look_back: usize,
    /// Frames hidden in a group after which a jump is ended where it went in.
    hidden_in_air: usize,
    /// Clear frames a fall's upright reference (a median) needs at least: a
    /// time, like the rest (8 frames at 30 fps asked for half a second of clear
    /// sight at 15, which an athlete riding in a pack seldom gives; a third of
    /// the falls missed at 15 fps on the held-out seeds were such).
    upright_min: usize,
}

/// Latest an exit is dated by the athlete's motion past the one read from its
/// blob at the edge: the whole frames within a tenth of a second (3 at 30 fps;
/// 2 frames dated more cut exits early, 6 dated some of them late).
const EXIT_MOTION_MAX_NS: u64 = 100_000_000;
/// Frames the last clear view may lie before the last sight at the edge.
const EXIT_CLEAR_MAX: u64 = 20;
/// Clear views the far side's speed is read from.
const EXIT_CLEAR_FRAMES: usize = 6;

impl Windows {
    const HALF_S: f32 = 0.1;
    const AGREE_S: f32 = 0.1;
    const LOOK_BACK_S: f32 = 0.33;
    const HIDDEN_IN_AIR_S: f32 = 0.2;
    const UPRIGHT_MIN_S: f32 = 0.27;

    fn at(fps: u32) -> Self {
        let frames = |secs: f32, least: usize| ((secs * fps as f32).round() as usize).max(least);
        Self {
            half: frames(Self::HALF_S, 2),
            agree: frames(Self::AGREE_S, 2),
            // A search range, not a fit: more points only help, so at a lower
            // rate it keeps its frames (at 15 fps: 5 frames cost a sixth of the
            // take-offs, scored on the held-out seeds).
            look_back: frames(Self::LOOK_BACK_S, 10),
            hidden_in_air: frames(Self::HIDDEN_IN_AIR_S, 3),
            upright_min: frames(Self::UPRIGHT_MIN_S, 4),
        }
    }
}

impl Moments {
    pub fn new(
        rules: MomentRules,
        frame_w: u32,
        frame_h: u32,
        fps: u32,
        first_event_id: u64,
    ) -> Self {
        Self {
            rules,
            next_event_id: first_event_id.max(1),
            frame_w: frame_w as f32,
            frame_h: frame_h as f32,
            frame_ns: 1_000_000_000 / u64::from(fps.max(1)),
            per_track: BTreeMap::new(),
            pts: Vec::with_capacity(64),
            heights: Vec::with_capacity(64),
            windows: Windows::at(fps),
        }
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        id
    }

    /// Looks at every track after the tracker's update at `t_ns`; new and changed
    /// events go to `out`, finished jumps to `jumps`.
    pub fn update(
        &mut self,
        t_ns: u64,
        tracker: &Tracker,
        out: &mut Vec<EventUpdate>,
        jumps: &mut Vec<JumpDone>,
    ) {
        for track in tracker.tracks().iter().filter(|t| t.confirmed) {
            let mut st = self.per_track.remove(&track.id).unwrap_or_default();
            if !st.entered {
                st.entered = true;
                // Seen first at the edge: it came in. Otherwise it appeared from
                // behind something, which is still the first sight of it.
                let conf = if track.history.front().is_some_and(|o| o.at_edge) {
                    0.9
                } else {
                    0.6
                };
                // Coming in over the edge, the first blob big enough to keep is a
                // few frames late: go back by its width over the rate it grows.
                // Split off another track's blob: it came in with that one.
                // (Unless that blob had come back to the edge since its track
                // came into view: then the piece came in over the edge then.)
                let with = track.split_from.and_then(|p| {
                    let parent = tracker.tracks().iter().find(|t| t.id == p);
                    parent
                        .and_then(|p| back_at_edge_ns(p, track.first_ns))
                        .or_else(|| self.per_track.get(&p).and_then(|p| p.entered_at_ns))
                });
                // Split off a pack by its suit: when the suit first showed.
                let at = match track.came_in_ns.or(with) {
                    Some(at) => at,
                    None if conf > 0.8 => self.edge_time(track, true),
                    None => track.first_ns,
                };
                st.entered_at_ns = Some(at);
                let id = self.new_id();
                out.push(instant(id, EventKind::Enter, at, track.id, conf));
            }
            self.jump(track, &mut st, out, jumps);
            self.fall(track, &mut st, out);
            self.speed(track, &mut st, out);
            self.line(track, &mut st, out);
            self.per_track.insert(track.id, st);
        }
        for ended in tracker.ended() {
            let track = &ended.track;
            let Some(mut st) = self.per_track.remove(&track.id) else {
                continue;
            };
            self.close(track, &mut st, t_ns, out, jumps);
            if ended.left_view {
                // Hidden in a group at the edge until the end (passing someone
                // who lies there): it went out with the group's last cover, not
                // when it was last seen on its own.
                let covered = self.left_group_ns(track).unwrap_or(0);
                let by_edge = self.edge_time(track, false);
                let by_motion = self.motion_exit(track).map_or(0, |at| {
                    at.min(by_edge + EXIT_MOTION_MAX_NS / self.frame_ns * self.frame_ns)
                });
                let at = by_edge
                    .max(by_motion)
                    .max(track.missing_since_ns.unwrap_or(t_ns))
                    .max(covered);
                let id = self.new_id();
                out.push(instant(id, EventKind::Exit, at, track.id, 0.9));
            }
        }
    }

    /// For a track whose last frames were spent hidden in a group at the edge:
    /// when its box, going on at its speed, was wholly past the edge (or, when
    /// it was not moving out, the frame after the group last covered it).
    fn left_group_ns(&self, track: &Track) -> Option<u64> {
        let tail: Vec<&Obs> = track
            .history
            .iter()
            .rev()
            .take_while(|o| !o.observed)
            .collect();
        let last_cover = tail.iter().find(|o| o.occluded && o.at_edge)?;
        let (fw, fh) = (self.frame_w, self.frame_h);
        let out = |r: &super::detect::Rect| r.x0 >= fw || r.x1 <= 0.0 || r.y0 >= fh || r.y1 <= 0.0;
        if let Some(first_out) = tail.iter().rev().find(|o| out(&o.rect)) {
            return Some(first_out.t_ns);
        }
        let newest = tail.first()?;
        let [vx, vy] = track.velocity();
        let r = &newest.rect;
        // Seconds until the box is past each edge it moves towards.
        let mut secs = f32::INFINITY;
        for (gap, v) in [(fw - r.x0, vx), (r.x1, -vx), (fh - r.y0, vy), (r.y1, -vy)] {
            if v > 0.0 {
                secs = secs.min(gap / v);
            }
        }
        let frames = (secs * 1e9 / self.frame_ns as f32).ceil();
        if frames.is_finite() && frames <= 10.0 {
            Some(newest.t_ns + frames.max(1.0) as u64 * self.frame_ns)
        } else {
            Some(last_cover.t_ns + self.frame_ns)
        }
    }

    /// When the athlete's far side crossed the edge it went out over, from the
    /// last clear view of its whole body (its own blob, inside the view, not
    /// cut from a neighbour's) and its speed: the blob at the edge can be
    /// narrower than the athlete (a neighbour riding beside it takes part of
    /// the pixels), which dates the exit early.
    fn motion_exit(&self, track: &Track) -> Option<u64> {
        let last = track
            .history
            .iter()
            .rev()
            .find(|o| o.observed && o.at_edge)?;
        let cut_at_edge = track
            .history
            .iter()
            .rev()
            .filter(|o| o.observed && o.at_edge)
            .take(3)
            .any(|o| o.cut);
        if !cut_at_edge {
            return None;
        }
        let clear: Vec<&Obs> = track
            .history
            .iter()
            .rev()
            .filter(|o| o.t_ns <= last.t_ns)
            .filter(|o| o.observed && !o.shared && !o.at_edge && !o.cut)
            .take(EXIT_CLEAR_FRAMES)
            .collect();
        let (newest, oldest) = (*clear.first()?, *clear.last()?);
        if last.t_ns.saturating_sub(newest.t_ns) > EXIT_CLEAR_MAX * self.frame_ns
            || newest.t_ns <= oldest.t_ns
        {
            return None;
        }
        let secs = (newest.t_ns - oldest.t_ns) as f32 * 1e-9;
        let (fw, fh) = (self.frame_w, self.frame_h);
        let (r, c, o) = (&last.rect, &newest.rect, &oldest.rect);
        // The far side's distance to the edge and how fast it closed in.
        let (gap, speed) = if r.x1 >= fw - 1.0 {
            (fw - c.x0, (c.x0 - o.x0) / secs)
        } else if r.x0 <= 1.0 {
            (c.x1, (o.x1 - c.x1) / secs)
        } else if r.y1 >= fh - 1.0 {
            (fh - c.y0, (c.y0 - o.y0) / secs)
        } else if r.y0 <= 1.0 {
            (c.y1, (o.y1 - c.y1) / secs)
        } else {
            return None;
        };
        if speed <= 0.0 {
            return None;
        }
        let frames = (gap / speed * 1e9 / self.frame_ns as f32).ceil();
        (frames.is_finite() && frames >= 0.0).then(|| newest.t_ns + frames as u64 * self.frame_ns)
    }

    /// When the athlete's first pixel crossed the edge (`entering`), or the frame
    /// after its last pixel left (otherwise), from the width of the first (last)
    /// blob and how fast the visible width grew (shrank) at the edge.
    fn edge_time(&self, track: &Track, entering: bool) -> u64 {
        let mut seen: Vec<&Obs> = if entering {
            track
                .history
                .iter()
                .filter(|o| o.observed && !o.shared)
                .take(3)
                .collect()
        } else {
            track
                .history
                .iter()
                .rev()
                .filter(|o| o.observed && !o.shared)
                .take(3)
                .collect()
        };
        if !entering {
            seen.reverse();
        }
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            return track.first_ns;
        };
        let frames = last.t_ns.saturating_sub(first.t_ns) as f32 / self.frame_ns as f32;
        let rate = (last.rect.width() - first.rect.width()).abs() / frames.max(1.0);
        let w = if entering {
            first.rect.width()
        } else {
            last.rect.width()
        };
        let extra = if rate > 0.5 {
            (w / rate).clamp(0.0, 4.0)
        } else {
            0.0
        };
        // The first pixel came in during the frame before the width grew past
        // `rate` times the frames since: on its first frame it showed anything
        // from nothing to a whole frame's growth, half of it on average, so the
        // whole frames are `w / rate` less a half, rounded: the floor. (Rounded
        // `w / rate` dated entries a frame early as often as on time.)
        let extra = if entering {
            extra.floor()
        } else {
            extra.round()
        };
        let extra_ns = extra as u64 * self.frame_ns;
        if entering {
            first.t_ns.saturating_sub(extra_ns)
        } else {
            last.t_ns + extra_ns.max(self.frame_ns)
        }
    }

    /// Ends whatever is open on a track that is gone.
    fn close(
        &mut self,
        track: &Track,
        st: &mut TrackMoments,
        t_ns: u64,
        out: &mut Vec<EventUpdate>,
        jumps: &mut Vec<JumpDone>,
    ) {
        let last = track.last_seen_ns.min(t_ns);
        self.land(track, st, last, 0.5, out, jumps);
        if let Some((event_id, start)) = st.fall.take() {
            out.push(ended(event_id, EventKind::Fall, start, last, track.id, 0.7));
        }
        if let Some(p) = st.peak.take() {
            out.push(ended(
                p.event_id,
                EventKind::SpeedPeak,
                p.at_ns,
                last,
                track.id,
                0.8,
            ));
        }
    }

    /// Take-off and landing from the vertical acceleration of the athlete's centre.
    fn jump(
        &mut self,
        track: &Track,
        st: &mut TrackMoments,
        out: &mut Vec<EventUpdate>,
        jumps: &mut Vec<JumpDone>,
    ) {
        let h = &track.history;
        let n = h.len();
        let Windows {
            half,
            agree,
            look_back,
            hidden_in_air,
            ..
        } = self.windows;
        if n < 2 * half + agree || st.fall.is_some() {
            return;
        }
        let g = f64::from(self.rules.gravity_hps2 * self.frame_h);
        match st.air {
            Air::Ground {
                quiet_until_ns,
                landed_ns,
            } => {
                // The newest `agree` windows all ballistic: downward acceleration of
                // about g. Seen through shares of a blob (athletes riding together
                // jump together) the path is noisier: a share's cut can step by a
                // few pixels, which over the shortest airtime looks like a jump.
                // Such a flight must last longer, fall at nearer gravity and fit
                // its parabola closely before it is believed.
                // One pass over the windows: a window read from clear frames
                // reads the same through shares, so shares are fitted only
                // where the clear frames give no reading.
                let in_range = |a: f64| a > 0.5 * g && a < 2.0 * g;
                let mut through_shares = false;
                for k in 0..agree {
                    let c = n - 1 - half - k;
                    let ok = match self.accel(h, c, false) {
                        Some(a) => in_range(a),
                        None => {
                            through_shares = true;
                            self.accel(h, c, true).is_some_and(in_range)
                        }
                    };
                    if !ok {
                        return;
                    }
                }
                // Through shares, quiet for a second after a jump: a jump ended
                // hidden in its group may still be flying, and a share can
                // follow a partner's flight a moment after its own.
                let quiet = if through_shares {
                    quiet_until_ns.saturating_add(QUIET_AFTER_LANDING_NS * 2)
                } else {
                    quiet_until_ns
                };
                let newest = h[n - 1].t_ns;
                if newest < quiet {
                    return;
                }
                // Where did it start? The best split of the recent path into a
                // ground part and a flying part.
                let first = n - 1 - half - (agree - 1);
                let from = first.saturating_sub(look_back);
                let Some(k) = self.split(h, from, n, Flight::Second(g)) else {
                    return;
                };
                // A jump leaves upwards or level and then falls at about g: check
                // the flying part on its own.
                let Some(fly) = self.fit_range(h, k, n) else {
                    return;
                };
                let acc = 2.0 * fly.a2;
                let t_k = signed_s(h[k].t_ns, h[k].t_ns);
                let v0 = fly.a1 + 2.0 * fly.a2 * t_k;
                if !(0.6 * g..1.6 * g).contains(&acc) || v0 > 0.1 * g {
                    return;
                }
                let mut min_airtime_s = self.rules.min_airtime_s;
                if through_shares {
                    let worst = self
                        .pts
                        .iter()
                        .map(|&(t, y)| (y - (fly.a0 + fly.a1 * t + fly.a2 * t * t)).abs())
                        .fold(0.0, f64::max);
                    tracing::trace!(track = track.id, acc, worst, "flight seen through shares");
                    if !(0.75 * g..1.4 * g).contains(&acc)
                        || worst > f64::from(0.007 * self.frame_h)
                    {
                        return;
                    }
                    // Half a frame less: frame times are whole nanoseconds, and
                    // at 30 fps nine frames are a hair under 0.3 s.
                    min_airtime_s = 1.5 * min_airtime_s - 0.5e-9 * self.frame_ns as f32;
                }
                let take_off_ns = h[k].t_ns;
                // A jump's flight cut at the group it hid in may go on: its
                // later frames are no new take-off.
                if take_off_ns <= landed_ns {
                    return;
                }
                // Not a jump until it has flown for the shortest airtime: a bump
                // or a stride is over by then.
                let flown = h[n - 1].t_ns.saturating_sub(take_off_ns) as f32 * 1e-9;
                if flown < min_airtime_s {
                    return;
                }
                let event_id = self.new_id();
                st.air = Air::Flying {
                    event_id,
                    take_off_ns,
                };
                out.push(EventUpdate {
                    event_id,
                    kind: EventKind::Jump,
                    phase: EventPhase::Started,
                    start_ns: take_off_ns,
                    end_ns: None,
                    tracks: vec![track.id],
                    confidence: 0.8,
                });
            }
            Air::Flying { take_off_ns, .. } => {
                // Hidden in a group for a while in the air: the landing cannot be
                // seen, and the group may hand the track to someone else. Ended
                // where it went into the group, with less confidence.
                let hidden = h.iter().rev().take_while(|o| o.occluded).count();
                if hidden >= hidden_in_air {
                    let landing_ns = h[n - hidden].t_ns.max(take_off_ns);
                    self.land(track, st, landing_ns, 0.5, out, jumps);
                    return;
                }
                // Back on the ground: the acceleration leaves gravity (a sharp drop
                // as the slope takes the athlete's fall, then little).
                let landed = (0..2).all(|k| {
                    let c = n - 1 - half - k;
                    self.accel(h, c, true).is_some_and(|a| a < 0.3 * g)
                });
                if !landed {
                    return;
                }
                let from = h
                    .iter()
                    .position(|o| o.t_ns >= take_off_ns)
                    .unwrap_or(0)
                    .max(n.saturating_sub(2 * look_back + half));
                let k = self
                    .split(h, from, n, Flight::First(g))
                    .unwrap_or(n - 1 - half);
                // The split's first index still lies on the parabola (it is where
                // the two fits meet); the first frame on the ground is the next.
                let k = (k + 1).min(n - 1);
                let landing_ns = h[k].t_ns.max(take_off_ns);
                let airtime = (landing_ns - take_off_ns) as f32 * 1e-9;
                let confidence = if airtime >= self.rules.min_airtime_s {
                    0.9
                } else {
                    0.4
                };
                self.land(track, st, landing_ns, confidence, out, jumps);
            }
        }
    }

    /// Ends the jump `st` is flying at `landing_ns` (nothing when on the ground).
    fn land(
        &self,
        track: &Track,
        st: &mut TrackMoments,
        landing_ns: u64,
        confidence: f32,
        out: &mut Vec<EventUpdate>,
        jumps: &mut Vec<JumpDone>,
    ) {
        let Air::Flying {
            event_id,
            take_off_ns,
        } = st.air
        else {
            return;
        };
        let newest = track.last().map_or(landing_ns, |o| o.t_ns);
        st.air = Air::Ground {
            quiet_until_ns: newest + QUIET_AFTER_LANDING_NS,
            landed_ns: landing_ns,
        };
        out.push(ended(
            event_id,
            EventKind::Jump,
            take_off_ns,
            landing_ns,
            track.id,
            confidence,
        ));
        jumps.push(JumpDone {
            event_id,
            track: track.id,
            take_off_ns,
            landing_ns,
        });
    }

    /// Vertical acceleration (pixels/s², down positive) of the centre around
    /// history index `c`, from a quadratic fit over `c ± half`; `None` unless every
    /// frame there was seen clearly. A share of a group (`shares`) counts only
    /// where a jump is already known: it places a landing well, but where the
    /// shares meet its top can jump to a neighbour's head, which must not start
    /// a jump.
    fn accel(
        &mut self,
        h: &std::collections::VecDeque<Obs>,
        c: usize,
        shares: bool,
    ) -> Option<f64> {
        let half = self.windows.half;
        if c < half || c + half >= h.len() {
            return None;
        }
        self.pts.clear();
        let t0 = h[c].t_ns;
        for o in h.range(c - half..=c + half) {
            if !o.clear(shares) {
                return None;
            }
            self.pts
                .push((signed_s(o.t_ns, t0), f64::from(height_of(o))));
        }
        fit_quadratic(&self.pts).map(|f| 2.0 * f.a2)
    }

    /// The index in `from..to` where the path is best cut in two parts: the
    /// change of motion. The part on the ground is any smooth (quadratic) path;
    /// the flying part falls at the configured gravity, which pins the cut far
    /// better than a free parabola (take-off leaves along the ramp, so the speed
    /// is the same on both sides and only the curvature changes). Frames not seen
    /// clearly are left out.
    fn split(
        &mut self,
        h: &std::collections::VecDeque<Obs>,
        from: usize,
        to: usize,
        flight: Flight,
    ) -> Option<usize> {
        self.pts.clear();
        let mut index = Vec::with_capacity(to.saturating_sub(from));
        let t0 = h.get(from)?.t_ns;
        for (i, o) in h.range(from..to).enumerate() {
            if o.clear(true) {
                self.pts
                    .push((signed_s(o.t_ns, t0), f64::from(height_of(o))));
                index.push(from + i);
            }
        }
        const MIN_SEG: usize = 4;
        if self.pts.len() < 2 * MIN_SEG {
            return None;
        }
        let mut best: Option<(f64, usize)> = None;
        for k in MIN_SEG..=self.pts.len() - MIN_SEG {
            let (first, second) = self.pts.split_at(k);
            let sse = match flight {
                Flight::First(g) => fit_ballistic(first, g)? + fit_quadratic(second)?.sse,
                Flight::Second(g) => fit_quadratic(first)?.sse + fit_ballistic(second, g)?,
            };
            if best.is_none_or(|(s, _)| sse < s) {
                best = Some((sse, k));
            }
        }
        best.map(|(_, k)| index[k])
    }

    /// A parabola through the clear frames of `from..to` (time from `h[from]`).
    fn fit_range(
        &mut self,
        h: &std::collections::VecDeque<Obs>,
        from: usize,
        to: usize,
    ) -> Option<Quadratic> {
        self.pts.clear();
        let t0 = h.get(from)?.t_ns;
        self.pts.extend(
            h.range(from..to)
                .filter(|o| o.clear(true))
                .map(|o| (signed_s(o.t_ns, t0), f64::from(height_of(o)))),
        );
        fit_quadratic(&self.pts)
    }

    /// A fall: the box gets much lower than the athlete's upright height for a few
    /// frames; it ends when the athlete is upright again.
    fn fall(&mut self, track: &Track, st: &mut TrackMoments, out: &mut Vec<EventUpdate>) {
        let h = &track.history;
        let Some(last) = h.back() else { return };
        // A sliver at the edge says nothing of the athlete's shape.
        if !last.observed || last.occluded || last.weak || matches!(st.air, Air::Flying { .. }) {
            return;
        }
        // Upright shape (height over width) and height: medians over the recent
        // clear frames before now. Lying down, the box turns wide and low; at the
        // frame's edge (or shared with others in one blob) the width is cut, so
        // there the height alone tells.
        let shape = |o: &Obs| o.rect.height() / o.rect.width().max(1.0);
        let upto = h
            .len()
            .saturating_sub(1 + self.rules.fall_min_frames as usize * 2);
        let clear = |o: &&Obs| o.observed && !o.occluded && !o.width_cut();
        self.heights.clear();
        self.heights
            .extend(h.range(..upto).rev().take(30).filter(clear).map(shape));
        if self.heights.len() < self.windows.upright_min {
            return;
        }
        self.heights.sort_by(f32::total_cmp);
        let upright = self.heights[self.heights.len() / 2];
        self.heights.clear();
        self.heights.extend(
            h.range(..upto)
                .rev()
                .take(30)
                .filter(clear)
                .map(|o| o.rect.height()),
        );
        self.heights.sort_by(f32::total_cmp);
        let upright_h = self.heights[self.heights.len() / 2].max(1.0);
        let low = |o: &Obs| {
            let by_height = o.rect.height() / upright_h < self.rules.fall_shape_ratio;
            let by_shape =
                !o.width_cut() && shape(o) / upright.max(0.01) < self.rules.fall_shape_ratio;
            by_height || by_shape
        };
        let upright_again = |o: &Obs| {
            !o.width_cut()
                && shape(o) / upright.max(0.01) > 0.85
                && o.rect.height() / upright_h > 0.85
        };
        match st.fall {
            None => {
                st.low_run = if low(last) { st.low_run + 1 } else { 0 };
                if st.low_run < self.rules.fall_min_frames {
                    return;
                }
                // Back-date to where the box started to change, and by two frames
                // more: a tumble barely changes the box in its first frames.
                // Frames where it was hidden (merged with someone passing) say
                // nothing of its shape: looked through, a few at most.
                let mut start = last.t_ns;
                let mut hidden = 0;
                for o in h.iter().rev() {
                    if !o.observed || o.occluded {
                        hidden += 1;
                        if hidden > self.rules.fall_min_frames {
                            break;
                        }
                        continue;
                    }
                    let changed = o.rect.height() < 0.95 * upright_h
                        || (!o.width_cut() && shape(o) < 0.95 * upright);
                    if !changed {
                        break;
                    }
                    start = o.t_ns;
                }
                let start = start.saturating_sub(2 * self.frame_ns).max(track.first_ns);
                let event_id = self.new_id();
                st.fall = Some((event_id, start));
                st.up_run = 0;
                out.push(EventUpdate {
                    event_id,
                    kind: EventKind::Fall,
                    phase: EventPhase::Started,
                    start_ns: start,
                    end_ns: None,
                    tracks: vec![track.id],
                    confidence: 0.8,
                });
            }
            Some((event_id, start)) => {
                // Compared with the shape before the fall, not the lying one.
                st.up_run = if upright_again(last) {
                    st.up_run + 1
                } else {
                    0
                };
                if st.up_run >= self.rules.fall_min_frames {
                    st.fall = None;
                    st.low_run = 0;
                    out.push(ended(
                        event_id,
                        EventKind::Fall,
                        start,
                        last.t_ns,
                        track.id,
                        0.8,
                    ));
                }
            }
        }
    }

    /// Speed peak: above the threshold, the highest speed reached (updated while it
    /// climbs), ended when the speed falls back.
    fn speed(&mut self, track: &Track, st: &mut TrackMoments, out: &mut Vec<EventUpdate>) {
        let Some(last) = track.last() else { return };
        if !last.observed || last.at_edge || track.hits < 10 {
            return;
        }
        let [vx, vy] = track.velocity();
        let speed = (vx * vx + vy * vy).sqrt() / self.frame_h;
        let min = self.rules.speed_peak_min_hps;
        match st.peak.as_mut() {
            None if speed > min => {
                let event_id = self.new_id();
                st.peak = Some(Peak {
                    event_id,
                    speed,
                    at_ns: last.t_ns,
                    started_ns: last.t_ns,
                });
                out.push(EventUpdate {
                    event_id,
                    kind: EventKind::SpeedPeak,
                    phase: EventPhase::Started,
                    start_ns: last.t_ns,
                    end_ns: None,
                    tracks: vec![track.id],
                    confidence: 0.8,
                });
            }
            None => {}
            Some(p) if speed > p.speed * 1.05 => {
                p.speed = speed;
                p.at_ns = last.t_ns;
                out.push(EventUpdate {
                    event_id: p.event_id,
                    kind: EventKind::SpeedPeak,
                    phase: EventPhase::Updated,
                    start_ns: p.at_ns,
                    end_ns: None,
                    tracks: vec![track.id],
                    confidence: 0.8,
                });
            }
            Some(p) if speed < 0.8 * p.speed || speed < min * 0.9 => {
                let _ = p.started_ns;
                out.push(ended(
                    p.event_id,
                    EventKind::SpeedPeak,
                    p.at_ns,
                    last.t_ns,
                    track.id,
                    0.8,
                ));
                st.peak = None;
            }
            Some(_) => {}
        }
    }

    /// The athlete's feet (bottom centre of its box) crossing the configured line.
    fn line(&mut self, track: &Track, st: &mut TrackMoments, out: &mut Vec<EventUpdate>) {
        let Some(line) = self.rules.line else { return };
        let Some(last) = track.last() else { return };
        if !last.observed {
            return;
        }
        let feet = [
            (last.rect.x0 + last.rect.x1) * 0.5 / self.frame_w,
            last.rect.y1 / self.frame_h,
        ];
        let prev = st.last_feet.replace(feet);
        let Some(prev) = prev else { return };
        let Some(s) = crossing(prev, feet, line[0], line[1]) else {
            return;
        };
        // One crossing per athlete per second: jitter on the line is not a new one.
        if st
            .last_cross_ns
            .is_some_and(|t| last.t_ns < t + 1_000_000_000)
        {
            return;
        }
        let prev_ns = last.t_ns.saturating_sub(self.frame_ns);
        let at = prev_ns + ((last.t_ns - prev_ns) as f64 * f64::from(s)) as u64;
        st.last_cross_ns = Some(last.t_ns);
        let id = self.new_id();
        out.push(instant(id, EventKind::LineCross, at, track.id, 0.9));
    }

    /// Ends everything still open (the stream is over).
    pub fn finish(
        &mut self,
        tracker: &Tracker,
        t_ns: u64,
        out: &mut Vec<EventUpdate>,
        jumps: &mut Vec<JumpDone>,
    ) {
        for ended in tracker.ended() {
            if let Some(mut st) = self.per_track.remove(&ended.track.id) {
                self.close(&ended.track, &mut st, t_ns, out, jumps);
            }
        }
    }
}

/// The height the jump detector follows: the top of the athlete's box (the head).
/// The mask's centroid swings with every stride and the box's bottom with the skis'
/// angle; the head moves with the body.
fn height_of(o: &Obs) -> f32 {
    o.rect.y0
}

fn signed_s(t: u64, t0: u64) -> f64 {
    (t as f64 - t0 as f64) * 1e-9
}

fn instant(event_id: u64, kind: EventKind, at: u64, track: u64, confidence: f32) -> EventUpdate {
    EventUpdate {
        event_id,
        kind,
        phase: EventPhase::Ended,
        start_ns: at,
        end_ns: Some(at),
        tracks: vec![track],
        confidence,
    }
}

fn ended(
    event_id: u64,
    kind: EventKind,
    start: u64,
    end: u64,
    track: u64,
    confidence: f32,
) -> EventUpdate {
    EventUpdate {
        event_id,
        kind,
        phase: EventPhase::Ended,
        start_ns: start,
        end_ns: Some(end.max(start)),
        tracks: vec![track],
        confidence,
    }
}

/// Where segment `a→b` crosses segment `p→q`: the fraction along `a→b`.
fn crossing(a: [f32; 2], b: [f32; 2], p: [f32; 2], q: [f32; 2]) -> Option<f32> {
    let r = [b[0] - a[0], b[1] - a[1]];
    let s = [q[0] - p[0], q[1] - p[1]];
    let den = r[0] * s[1] - r[1] * s[0];
    if den.abs() < 1e-12 {
        return None;
    }
    let ap = [p[0] - a[0], p[1] - a[1]];
    let t = (ap[0] * s[1] - ap[1] * s[0]) / den;
    let u = (ap[0] * r[1] - ap[1] * r[0]) / den;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u)).then_some(t)
}

/// A least-squares parabola `y = a0 + a1 t + a2 t²` and its residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quadratic {
    pub a0: f64,
    pub a1: f64,
    pub a2: f64,
    pub sse: f64,
}

/// Which side of a cut is the flight, and gravity (pixels/s², down positive).
#[derive(Debug, Clone, Copy)]
enum Flight {
    First(f64),
    Second(f64),
}

/// Squared error of the best path `y = a + b t + g t² / 2` (a body in free fall)
/// through at least two points with distinct times.
fn fit_ballistic(pts: &[(f64, f64)], g: f64) -> Option<f64> {
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return None;
    }
    let r = |&(t, y): &(f64, f64)| y - 0.5 * g * t * t;
    let tm = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let rm = pts.iter().map(r).sum::<f64>() / n;
    let stt: f64 = pts.iter().map(|p| (p.0 - tm) * (p.0 - tm)).sum();
    if stt < 1e-18 {
        return None;
    }
    let b = pts.iter().map(|p| (p.0 - tm) * (r(p) - rm)).sum::<f64>() / stt;
    Some(
        pts.iter()
            .map(|p| {
                let e = r(p) - (rm + b * (p.0 - tm));
                e * e
            })
            .sum(),
    )
}

/// Fits a parabola to at least three points with distinct times.
pub fn fit_quadratic(pts: &[(f64, f64)]) -> Option<Quadratic> {
    let n = pts.len();
    if n < 3 {
        return None;
    }
    // Centre time for conditioning.
    let tm = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let (mut s, mut b) = ([0.0f64; 5], [0.0f64; 3]);
    for &(t, y) in pts {
        let t = t - tm;
        let mut p = 1.0;
        for (k, sk) in s.iter_mut().enumerate() {
            *sk += p;
            if k < 3 {
                b[k] += p * y;
            }
            p *= t;
        }
    }
    let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
    let det = det3(&m);
    if det.abs() < 1e-18 {
        return None;
    }
    let mut c = [0.0; 3];
    for (k, ck) in c.iter_mut().enumerate() {
        let mut mk = m;
        for row in 0..3 {
            mk[row][k] = b[row];
        }
        *ck = det3(&mk) / det;
    }
    let sse = pts
        .iter()
        .map(|&(t, y)| {
            let t = t - tm;
            let e = y - (c[0] + c[1] * t + c[2] * t * t);
            e * e
        })
        .sum();
    // Back from centred time: y = c0 + c1 (t - tm) + c2 (t - tm)².
    Some(Quadratic {
        a0: c[0] - c[1] * tm + c[2] * tm * tm,
        a1: c[1] - 2.0 * c[2] * tm,
        a2: c[2],
        sse,
    })
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// How long a blob must have been wholly inside the view before it counts as
/// back at the edge.
const BACK_INSIDE_NS: u64 = 300_000_000;

/// When `parent`'s blob last came back to the frame's edge before `before_ns`,
/// having been wholly inside the view: the first frame of its latest stretch
/// of own blobs at the edge, when one that ended less than a second before
/// `before_ns` followed one inside. `None` when its blobs have been at the
/// edge only since it came in (or not lately).
fn back_at_edge_ns(parent: &Track, before_ns: u64) -> Option<u64> {
    let seen: Vec<&Obs> = parent
        .history
        .iter()
        .filter(|o| o.observed && o.t_ns < before_ns)
        .collect();
    let end = seen.iter().rposition(|o| o.at_edge)?;
    if before_ns.saturating_sub(seen[end].t_ns) > 1_000_000_000 {
        return None;
    }
    let start = seen[..end].iter().rposition(|o| !o.at_edge)? + 1;
    // Inside for a while before (not a blob at the edge flickering).
    let inside_from = seen[..start]
        .iter()
        .rposition(|o| o.at_edge)
        .map_or(0, |i| i + 1);
    let inside_ns = seen[start - 1].t_ns.saturating_sub(seen[inside_from].t_ns);
    (inside_ns >= BACK_INSIDE_NS).then_some(seen[start].t_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadratic_fit_recovers_a_parabola() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| {
                let t = 5.0 + i as f64 * 0.1;
                (t, 3.0 - 2.0 * t + 0.5 * t * t)
            })
            .collect();
        let f = fit_quadratic(&pts).expect("fit");
        assert!(
            (f.a0 - 3.0).abs() < 1e-6 && (f.a1 + 2.0).abs() < 1e-6 && (f.a2 - 0.5).abs() < 1e-6,
            "{f:?}"
        );
        assert!(f.sse < 1e-9);
        assert!(fit_quadratic(&pts[..2]).is_none());
    }

    #[test]
    fn segments_cross() {
        let line = [[0.5, 0.0], [0.5, 1.0]];
        let t = crossing([0.4, 0.5], [0.6, 0.5], line[0], line[1]).expect("crosses");
        assert!((t - 0.5).abs() < 1e-6);
        assert!(crossing([0.1, 0.5], [0.4, 0.5], line[0], line[1]).is_none());
        assert!(crossing([0.4, 1.5], [0.6, 1.5], line[0], line[1]).is_none());
    }

    /// The jump windows cover the same time at any rate: the frames they were
    /// tuned with at 30 fps, half as many at 15, never fewer than a fit needs.
    #[test]
    fn jump_windows_follow_the_frame_rate() {
        let frames = |fps| {
            let w = Windows::at(fps);
            (w.half, w.agree, w.look_back, w.hidden_in_air, w.upright_min)
        };
        assert_eq!(frames(30), (3, 3, 10, 6, 8));
        assert_eq!(frames(15), (2, 2, 10, 3, 4));
        assert_eq!(frames(60), (6, 6, 20, 12, 16));
        assert_eq!(frames(5), (2, 2, 10, 3, 4));
    }

    /// A tracker and moment detectors for a 200×100 frame at 30 fps.
    fn rig() -> (Tracker, Moments) {
        use super::super::track::TrackRules;
        let tracker = Tracker::new(
            TrackRules {
                iou_min: 0.2,
                min_hits: 3,
                max_coast_frames: 5,
                max_occluded_frames: 20,
                history_frames: 60,
            },
            200,
            100,
        );
        let rules = MomentRules {
            gravity_hps2: 2.0,
            min_airtime_s: 0.2,
            fall_shape_ratio: 0.6,
            fall_min_frames: 4,
            speed_peak_min_hps: 100.0,
            line: None,
        };
        (tracker, Moments::new(rules, 200, 100, 30, 1))
    }

    /// A frame at 30 fps, in nanoseconds.
    const FRAME_NS: u64 = 33_333_333;

    /// A solid blob filling `rect`.
    fn solid(
        rect: super::super::detect::Rect,
        at_edge: bool,
        cut: bool,
    ) -> super::super::detect::Blob {
        super::super::detect::Blob {
            rect,
            centroid: rect.center(),
            area: rect.width() * rect.height(),
            fill: 1.0,
            mask_box: [0; 4],
            at_edge,
            weak: false,
            cut,
        }
    }

    /// The frames (at 30 fps) the events of `kind` in `out` start on.
    fn starts(out: &[EventUpdate], kind: EventKind) -> Vec<u64> {
        out.iter()
            .filter(|e| e.kind == kind)
            .map(|e| (e.start_ns + FRAME_NS / 2) / FRAME_NS)
            .collect()
    }

    /// Coming in at 6 px a frame, an athlete shows `u` px on its first frame
    /// (10) and the detector keeps its blob from 12 px on: whatever `u`, the
    /// entry is dated on frame 10, not a frame before it.
    #[test]
    fn an_entry_is_dated_on_the_first_frame_with_a_pixel_in_view() {
        use super::super::detect::{Blob, Rect};
        for u in [1.0f32, 3.0, 5.0] {
            let (mut tracker, mut moments) = rig();
            let (mut out, mut jumps) = (Vec::new(), Vec::new());
            for f in 10..30u64 {
                let front = u + 6.0 * (f - 10) as f32;
                let rect = Rect {
                    x0: (front - 30.0).max(0.0),
                    y0: 40.0,
                    x1: front,
                    y1: 70.0,
                };
                let t = f * FRAME_NS;
                let blobs: Vec<Blob> = (rect.width() >= 12.0)
                    .then(|| solid(rect, rect.x0 <= 0.0, false))
                    .into_iter()
                    .collect();
                tracker.update(t, &blobs);
                moments.update(t, &tracker, &mut out, &mut jumps);
            }
            assert_eq!(
                starts(&out, EventKind::Enter),
                [10],
                "{u} px on the first frame"
            );
        }
    }

    /// Going out over the right edge at 6 px a frame, 30 px wide, an athlete
    /// whose blobs at the edge are cut from a neighbour's (8 px of it go to the
    /// neighbour) shows a blob that shrinks faster than it moves: read from the
    /// blobs alone the exit comes 3 frames early (frame 21). Its last clear
    /// views and their speed put its far side past the edge on frame 24, when
    /// its last pixel left. Uncut, the same boxes are read from the blobs.
    #[test]
    fn an_exit_cut_from_a_neighbour_is_dated_by_the_athletes_motion() {
        use super::super::detect::{Blob, Rect};
        let exit = |cut: bool| {
            let (mut tracker, mut moments) = rig();
            let (mut out, mut jumps) = (Vec::new(), Vec::new());
            for f in 0..40u64 {
                let x0 = 60.0 + 6.0 * f as f32;
                let at_edge = x0 + 30.0 >= 200.0;
                let rect = Rect {
                    x0: if at_edge && cut { x0 + 8.0 } else { x0 },
                    y0: 40.0,
                    x1: (x0 + 30.0).min(200.0),
                    y1: 70.0,
                };
                let t = f * FRAME_NS;
                let blobs: Vec<Blob> = (rect.width() >= 12.0)
                    .then(|| solid(rect, at_edge, cut && at_edge))
                    .into_iter()
                    .collect();
                tracker.update(t, &blobs);
                moments.update(t, &tracker, &mut out, &mut jumps);
            }
            starts(&out, EventKind::Exit)
        };
        assert_eq!(exit(true), [24]);
        assert_eq!(
            exit(false),
            [23],
            "the control: whole blobs are read as they shrink"
        );
    }

    /// An athlete stands wholly inside the view, 5 px from the right edge,
    /// from frame 0; on frame 21 another comes in over that edge right beside
    /// it (one blob, which now touches the edge), passes in front of it going
    /// left and splits off on its far side on frame 38. The newcomer came in
    /// when the blob came back to the edge, not with the one it split from.
    #[test]
    fn a_piece_that_splits_off_after_coming_in_beside_someone_is_dated_by_its_entry() {
        use super::super::detect::Rect;
        let (mut tracker, mut moments) = rig();
        let (mut out, mut jumps) = (Vec::new(), Vec::new());
        let blob = |x0: f32, x1: f32| {
            let rect = Rect {
                x0,
                y0: 40.0,
                x1,
                y1: 70.0,
            };
            solid(rect, x1 >= 200.0, false)
        };
        for f in 0..50u64 {
            let (a0, a1) = (170.0, 195.0);
            // The newcomer's left side, 3 px a frame from the edge; 20 px wide.
            let b0 = 200.0 - 3.0 * f.saturating_sub(20) as f32;
            let b1 = (b0 + 20.0).min(200.0);
            let blobs = if f <= 20 {
                vec![blob(a0, a1)]
            } else if b1 + 3.0 <= a0 {
                vec![blob(a0, a1), blob(b0, b1)]
            } else {
                vec![blob(b0.min(a0), b1.max(a1))]
            };
            let t = f * FRAME_NS;
            tracker.update(t, &blobs);
            moments.update(t, &tracker, &mut out, &mut jumps);
        }
        assert_eq!(starts(&out, EventKind::Enter), [0, 21]);
    }

    /// A skier first seen as a piece cut from a pack (narrow: its width ends at
    /// the cut) and then whole is not lying down: the cut pieces are no upright
    /// reference for the shape. Read as whole, the same boxes make a fall.
    #[test]
    fn a_box_cut_from_a_pack_is_no_upright_reference_for_falls() {
        use super::super::detect::{Blob, Rect};
        let falls = |cut: bool| {
            let (mut tracker, mut moments) = rig();
            let (mut out, mut jumps) = (Vec::new(), Vec::new());
            for f in 0..30u64 {
                // 12 px wide for a second (cut), then its whole 24 px, 30 high.
                let x = 20.0 + f as f32;
                let w = if f < 15 { 12.0 } else { 24.0 };
                let rect = Rect {
                    x0: x,
                    y0: 40.0,
                    x1: x + w,
                    y1: 70.0,
                };
                let b = Blob {
                    rect,
                    centroid: rect.center(),
                    area: w * 30.0,
                    fill: 1.0,
                    mask_box: [0; 4],
                    at_edge: false,
                    weak: false,
                    cut: cut && f < 15,
                };
                let t = f * 33_333_333;
                tracker.update(t, &[b]);
                moments.update(t, &tracker, &mut out, &mut jumps);
            }
            out.iter().filter(|e| e.kind == EventKind::Fall).count()
        };
        assert_eq!(falls(true), 0);
        assert_eq!(
            falls(false),
            1,
            "the control: whole boxes that widen are a fall"
        );
    }
}
