//! The ski slope: a side view of a course with a kicker, the camera panning slowly
//! along it. Owns the course profile, the wide pre-rendered background, the skiers'
//! physics (approach, take-off, ballistic flight, landing, falls), the lighting
//! (brightness drift, a passing cloud's shadow) and the swirling snow.

use std::f32::consts::{FRAC_PI_2, TAU};

use super::Background;
use super::body::{self, Body, Kit, SkiPose};
use super::raster::{Canvas, Light, Paint, Shadow, Shape};
use super::rng::{Rng, hash01, smooth, value_noise};
use crate::venue::truth::MomentKind;

/// The course's crest line in world pixels (y down).
#[derive(Debug, Clone, Copy)]
struct Course {
    y0: f32,
    /// Base gradient (pixels down per pixel right).
    k: f32,
    lip_x: f32,
    ramp_len: f32,
    lip_h: f32,
    drop_from: f32,
    drop_len: f32,
    drop: f32,
}

impl Course {
    fn ground(&self, x: f32) -> f32 {
        let base = self.y0 + self.k * x;
        let ramp_start = self.lip_x - self.ramp_len;
        if x < ramp_start {
            base
        } else if x <= self.lip_x {
            let r = (x - ramp_start) / self.ramp_len;
            base - self.lip_h * r * r
        } else {
            base + self.drop * smooth((x - self.drop_from) / self.drop_len)
        }
    }

    /// Gradient just before `x` (the ramp's at the lip, not the cliff behind it).
    fn gradient(&self, x: f32) -> f32 {
        (self.ground(x) - self.ground(x - 0.5)) / 0.5
    }
}

/// Slope geometry and timing, in frame pixels and seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slope {
    w: f32,
    h: f32,
    unit: f32,
    /// Width of the pre-rendered world: the frame plus the pan's travel.
    world_w: usize,
    pan_max: usize,
    course: Course,
    /// Gravity, pixels per second squared.
    g: f32,
    /// Phase offsets of the slow lighting and pan cycles (per seed).
    phases: [f32; 3],
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Ground,
    Air {
        launch: f32,
    },
    /// Seconds since the fall began: tumble, lie, get up.
    Fallen {
        t: f32,
    },
}

use super::truth::FALL_TUMBLE_S as TUMBLE_S;
const LIE_S: f32 = 1.7;
const RISE_S: f32 = 0.5;

/// One skier's run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ski {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    /// Speed along the snow, pixels per second.
    speed: f32,
    state: State,
    /// −1 (far side of the course) to 1 (near side).
    lane: f32,
    jumped: bool,
    /// Falls this many seconds after landing.
    falls_on_landing: Option<f32>,
    /// Catches an edge on the run-out at this x.
    edge_at: Option<f32>,
    /// Seconds until a scheduled fall.
    fall_in: Option<f32>,
    fell: bool,
    crouch: f32,
}

impl Ski {
    pub(crate) fn airborne(&self) -> bool {
        matches!(self.state, State::Air { .. })
    }

    pub(crate) fn fallen(&self) -> bool {
        matches!(self.state, State::Fallen { t } if t < LIE_S)
    }
}

/// A snow particle blowing across the frame (frame pixels).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flake {
    pub x: f32,
    pub y: f32,
    fall: f32,
    amp: f32,
    omega: f32,
    phase: f32,
    pub size: u8,
    pub luma: u8,
}

impl Slope {
    pub(crate) fn new(w: usize, h: usize, unit: f32, rng: &mut Rng) -> Self {
        let (wf, hf) = (w as f32, h as f32);
        let pan_max = ((wf * 0.15) as usize) & !1;
        let world_w = w + pan_max;
        let course = Course {
            y0: hf * 0.4,
            k: 0.32 * hf / wf,
            lip_x: pan_max as f32 + 0.25 * wf,
            ramp_len: 0.25 * unit,
            lip_h: 0.07 * unit,
            drop_from: pan_max as f32 + 0.25 * wf + 0.1 * unit,
            drop_len: 0.5 * unit,
            drop: 0.12 * unit,
        };
        Self {
            w: wf,
            h: hf,
            unit,
            world_w,
            pan_max,
            course,
            g: 2.0 * unit,
            phases: [
                rng.range(0.0, TAU),
                rng.range(0.0, TAU),
                rng.range(0.0, 1.0),
            ],
        }
    }

    /// Left edge of the view in world pixels at scene time `t` (even, so chroma
    /// rows line up). A slow back-and-forth pan.
    pub(crate) fn pan(&self, t: f64) -> usize {
        let c = 0.5 - 0.5 * ((t as f32) * TAU / 26.0 + self.phases[0]).cos();
        ((c * self.pan_max as f32) as usize).min(self.pan_max) & !1
    }

    /// Global gain (slow drift) and the cloud shadow, in frame pixels.
    pub(crate) fn lighting(&self, t: f64, pan: usize) -> (f32, Shadow) {
        let gain = 0.95 + 0.05 * ((t as f32) * TAU / 19.0 + self.phases[1]).sin();
        let rx = 0.45 * self.w;
        // The cloud drifts right through the world and comes round again.
        let lap = self.world_w as f32 + 2.6 * rx;
        let travelled = (self.phases[2] * lap + (t as f32) * 0.1 * self.w) % lap;
        let cx = travelled - 1.3 * rx - pan as f32;
        let shadow = Shadow {
            cx,
            cy: 0.55 * self.h,
            rx,
            ry: 0.7 * self.h,
            soft: 0.35,
            depth: 0.22,
        };
        (gain, shadow)
    }

    pub(crate) fn spawn(&self, rng: &mut Rng, view_left: f32) -> Ski {
        let x = view_left - 0.35 * self.unit;
        let falls_on_landing = rng.chance(0.3).then(|| rng.range(0.05, 0.3));
        let edge = rng.chance(0.12);
        Ski {
            x,
            y: self.course.ground(x),
            vx: 0.0,
            vy: 0.0,
            speed: rng.range(0.85, 1.05) * self.unit,
            state: State::Ground,
            lane: rng.range(-1.0, 1.0),
            jumped: false,
            falls_on_landing,
            edge_at: (edge && falls_on_landing.is_none())
                .then(|| self.course.lip_x + rng.range(0.9, 1.3) * self.unit),
            fall_in: None,
            fell: false,
            crouch: 0.6,
        }
    }

    /// Advances one skier by `dt` seconds; key moments go to `emit`.
    pub(crate) fn step(&self, s: &mut Ski, dt: f32, emit: &mut impl FnMut(MomentKind)) {
        let c = &self.course;
        match s.state {
            State::Ground => {
                if let Some(left) = s.fall_in.as_mut() {
                    *left -= dt;
                }
                let edge = s.edge_at.is_some_and(|at| s.x >= at);
                if s.fall_in.is_some_and(|left| left <= 0.0) || (edge && !s.fell) {
                    s.fall_in = None;
                    s.edge_at = None;
                    s.fell = true;
                    s.state = State::Fallen { t: 0.0 };
                    emit(MomentKind::Fall);
                    return;
                }
                let before = s.x;
                let grad = c.gradient(s.x + 0.5);
                s.x += s.speed * dt / (1.0 + grad * grad).sqrt();
                if !s.jumped && before < c.lip_x && s.x >= c.lip_x {
                    // Leaves the lip along the ramp's direction.
                    let g = c.gradient(c.lip_x);
                    let n = (1.0 + g * g).sqrt();
                    s.jumped = true;
                    s.x = c.lip_x;
                    s.y = c.ground(c.lip_x);
                    s.vx = s.speed / n;
                    s.vy = s.speed * g / n;
                    s.state = State::Air { launch: g.atan() };
                    emit(MomentKind::TakeOff);
                    return;
                }
                s.y = c.ground(s.x);
                let ramp = s.x > c.lip_x - c.ramp_len && s.x < c.lip_x;
                let target = if ramp { 0.25 } else { 0.6 };
                s.crouch += (target - s.crouch) * (dt * 4.0).min(1.0);
            }
            State::Air { .. } => {
                s.vy += self.g * dt;
                s.x += s.vx * dt;
                s.y += s.vy * dt;
                let ground = c.ground(s.x);
                if s.y >= ground {
                    s.y = ground;
                    s.speed = (s.vx * s.vx + s.vy * s.vy).sqrt().max(0.5 * self.unit) * 0.8;
                    s.state = State::Ground;
                    s.crouch = 1.0;
                    s.fall_in = s.falls_on_landing;
                    emit(MomentKind::Landing);
                }
            }
            State::Fallen { t } => {
                let t = t + dt;
                s.speed = if t < LIE_S {
                    (s.speed - 1.4 * self.unit * dt).max(0.0)
                } else {
                    (s.speed + 0.6 * self.unit * dt).min(0.7 * self.unit)
                };
                let grad = c.gradient(s.x + 0.5);
                s.x += s.speed * dt / (1.0 + grad * grad).sqrt();
                s.y = c.ground(s.x);
                s.crouch = 0.8;
                s.state = if t > LIE_S + RISE_S {
                    State::Ground
                } else {
                    State::Fallen { t }
                };
            }
        }
    }

    /// Gone for good: far past the right edge of the world.
    pub(crate) fn finished(&self, s: &Ski) -> bool {
        s.x > self.world_w as f32 + self.unit
    }

    /// The posed figure in frame pixels and its depth (larger is nearer).
    pub(crate) fn pose(&self, s: &Ski, pan: usize, kit: &Kit) -> (Body, f32) {
        let height = self.unit * 0.26 * (1.0 + 0.12 * s.lane);
        let feet = [s.x - pan as f32, s.y + s.lane * 0.035 * self.unit];
        let slope_angle = self.course.gradient(s.x + 0.5).atan();
        let pose = match s.state {
            State::Ground => SkiPose {
                ski_angle: slope_angle,
                tilt: 0.08,
                crouch: s.crouch,
                arms_out: 0.0,
                splay: 0.0,
            },
            State::Air { launch } => SkiPose {
                ski_angle: launch + (s.vy.atan2(s.vx) - launch) * 0.5,
                tilt: 0.12,
                crouch: 0.35,
                arms_out: 1.0,
                splay: 0.0,
            },
            State::Fallen { t } => {
                let p = if t < LIE_S {
                    smooth(t / TUMBLE_S)
                } else {
                    1.0 - smooth((t - LIE_S) / RISE_S)
                };
                SkiPose {
                    ski_angle: slope_angle + 0.3 * p,
                    tilt: 0.08 + p * (FRAC_PI_2 + slope_angle - 0.08),
                    crouch: 0.5,
                    arms_out: p,
                    splay: p,
                }
            }
        };
        (body::skier(feet, height, &pose, kit), s.lane)
    }

    pub(crate) fn flakes(&self, rng: &mut Rng) -> Vec<Flake> {
        let n = ((self.w * self.h / 2600.0) as usize).clamp(8, 4000);
        let big = (self.unit / 540.0).round().max(1.0) as usize;
        (0..n)
            .map(|_| {
                let dark = rng.chance(0.2);
                Flake {
                    x: rng.range(0.0, self.w),
                    y: rng.range(0.0, self.h),
                    fall: rng.range(0.03, 0.12) * self.unit,
                    amp: rng.range(0.02, 0.1) * self.unit,
                    omega: rng.range(0.5, 2.5),
                    phase: rng.range(0.0, TAU),
                    size: (1 + rng.index(big + 1)).min(4) as u8,
                    luma: if dark {
                        rng.range(60.0, 100.0) as u8
                    } else {
                        rng.range(235.0, 256.0) as u8
                    },
                }
            })
            .collect()
    }

    /// Blows a flake along by `dt` at scene time `t`: wind, fall and a swirl.
    pub(crate) fn step_flake(&self, f: &mut Flake, t: f64, dt: f32) {
        let a = (t as f32) * f.omega + f.phase;
        f.x = (f.x + (0.06 * self.unit + f.amp * a.sin()) * dt).rem_euclid(self.w);
        f.y = (f.y + (f.fall + 0.5 * f.amp * a.cos()) * dt).rem_euclid(self.h);
    }

    pub(crate) fn background(&self, seed: u64) -> Background {
        let (w, h) = (self.world_w, self.h as usize);
        let mut bg = Background::new(w, h);
        let c = &self.course;
        let u = self.unit;
        for x in 0..w {
            let fx = x as f32;
            let g = c.ground(fx + 0.5);
            let base = c.y0 + c.k * (fx + 0.5);
            let trees = self.h * 0.08
                + self.h * 0.04 * value_noise(seed, fx, 0.0, self.w * 0.06)
                + self.h * 0.025 * (((fx / (u * 0.03)).fract() - 0.5).abs() * 2.0);
            let forest_end = trees + self.h * 0.07;
            let kicker = fx > c.lip_x - c.ramp_len && fx <= c.lip_x;
            for y in 0..h {
                let fy = y as f32 + 0.5;
                let tex = 12.0 * (value_noise(seed ^ 1, fx, fy, u * 0.04) - 0.5)
                    + 6.0 * (value_noise(seed ^ 2, fx, fy, u * 0.01) - 0.5)
                    + 3.0 * (hash01(seed ^ 3, x as i64, y as i64) - 0.5);
                let (luma, cu, cv) = if fy < trees {
                    (200.0 + 20.0 * fy / trees, 140.0, 118.0)
                } else if fy < forest_end {
                    (
                        55.0 + 35.0 * value_noise(seed ^ 4, fx, fy, u * 0.006),
                        118.0,
                        112.0,
                    )
                } else if fy < g {
                    (224.0 + tex, 129.0, 127.0)
                } else if fy - g < (0.006 * u).max(1.0) {
                    // The crest: the course's edge against the hillside behind.
                    (180.0 + tex * 0.5, 131.0, 126.0)
                } else if kicker && fy < base {
                    (192.0 + tex, 134.0, 124.0)
                } else {
                    let d = ((fy - g) / (0.3 * self.h)).min(1.0);
                    (207.0 - 15.0 * d + tex, 130.0, 127.0)
                };
                bg.put(x, y, luma, cu, cv);
            }
        }
        self.scenery(&mut bg, seed);
        bg
    }

    /// Marker poles with flags, landing-zone dye lines and old ski tracks.
    fn scenery(&self, bg: &mut Background, seed: u64) {
        let c = self.course;
        let u = self.unit;
        let light = Light::default();
        let mut canvas = Canvas {
            w: bg.w,
            h: bg.h,
            y: &mut bg.y,
            uv: &mut bg.uv,
            label: &mut [],
            mask: &mut [],
            cov: &mut [],
            light: &light,
        };
        let mut rng = Rng::new(seed ^ 0x51e9);
        for dx in [-0.6, 0.45, 1.2] {
            let x = c.lip_x + dx * u;
            let top = c.ground(x) - 0.2 * u;
            canvas.fill(
                &Shape::Capsule {
                    a: [x, c.ground(x) - 0.03 * u],
                    b: [x, top],
                    r: (0.006 * u).max(0.6),
                },
                Paint::Flat {
                    y: 45,
                    u: 128,
                    v: 128,
                },
            );
            canvas.fill(
                &Shape::Ellipse {
                    c: [x + 0.03 * u, top + 0.02 * u],
                    rx: 0.03 * u,
                    ry: 0.018 * u,
                    angle: 0.1,
                },
                Paint::Flat {
                    y: 90,
                    u: 100,
                    v: 200,
                },
            );
        }
        for dx in [0.35, 0.55, 0.75] {
            let x = c.lip_x + dx * u;
            let y = c.ground(x);
            canvas.fill(
                &Shape::Capsule {
                    a: [x, y + 0.01 * u],
                    b: [x + 0.02 * u, y + 0.06 * u],
                    r: (0.004 * u).max(0.5),
                },
                Paint::Flat {
                    y: 125,
                    u: 175,
                    v: 100,
                },
            );
        }
        for _ in 0..6 {
            let mut p = [
                rng.range(0.0, self.world_w as f32),
                rng.range(0.2, 0.5) * self.h,
            ];
            let mut ang = rng.range(0.2, 0.6);
            for _ in 0..20 {
                ang += rng.range(-0.25, 0.25);
                let q = [p[0] + 0.05 * u * ang.cos(), p[1] + 0.05 * u * ang.sin()];
                if q[1] < c.ground(q[0]) {
                    canvas.fill(
                        &Shape::Capsule {
                            a: p,
                            b: q,
                            r: (0.002 * u).max(0.5),
                        },
                        Paint::Shade { num: 240 },
                    );
                }
                p = q;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_flies_and_lands_beyond_the_lip() {
        let mut rng = Rng::new(3);
        let slope = Slope::new(320, 180, 180.0, &mut rng);
        let mut ski = slope.spawn(&mut rng, 0.0);
        ski.falls_on_landing = None;
        ski.edge_at = None;
        let mut log = Vec::new();
        let dt = 1.0 / 30.0;
        for i in 0..300 {
            slope.step(&mut ski, dt, &mut |k| log.push((i, k)));
            if let State::Air { .. } = ski.state {
                assert!(ski.y <= slope.course.ground(ski.x) + 1e-3);
            }
        }
        let take_off = log.iter().find(|(_, k)| *k == MomentKind::TakeOff);
        let landing = log.iter().find(|(_, k)| *k == MomentKind::Landing);
        let (Some(a), Some(b)) = (take_off, landing) else {
            panic!("no jump: {log:?}");
        };
        let airtime = (b.0 - a.0) as f32 * dt;
        assert!((0.4..1.2).contains(&airtime), "airtime {airtime}");
    }
}
