//! The ice rink: a fixed camera above the boards looking across the ice. Owns the
//! rink's pre-rendered background (crowd, glass, boards, lines, light reflections)
//! and the skaters' curved paths across it.

use super::Background;
use super::body::{self, Body, Kit};
use super::raster::{Canvas, Light, P, Paint, Shape};
use super::rng::{Rng, hash01, value_noise};

/// Rink geometry in frame pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rink {
    w: f32,
    h: f32,
    unit: f32,
    /// Row where the ice starts (the foot of the boards).
    ice_top: f32,
}

/// One skater's path: a quadratic Bézier from outside one side of the frame to
/// outside the other, walked at constant speed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Skate {
    p: [P; 3],
    /// Bézier parameter; beyond 1 the skater carries on along the end tangent.
    t: f32,
    /// Pixels per second.
    speed: f32,
    phase: f32,
    /// Pixels travelled per stride.
    stride: f32,
    dir: f32,
}

impl Rink {
    pub(crate) fn new(w: usize, h: usize, unit: f32) -> Self {
        Self {
            w: w as f32,
            h: h as f32,
            unit,
            ice_top: (h as f32 * 0.275).round(),
        }
    }

    /// Skater height at feet row `y`: nearer the camera is lower in the frame and
    /// larger.
    fn height_at(&self, y: f32) -> f32 {
        let depth = ((y - self.ice_top) / (self.h - self.ice_top)).clamp(0.0, 1.0);
        self.unit * 0.34 * (0.55 + 0.45 * depth)
    }

    pub(crate) fn spawn(&self, rng: &mut Rng) -> Skate {
        let dir = if rng.chance(0.5) { 1.0 } else { -1.0 };
        // Far enough out that no part of the figure is in the frame.
        let margin = self.unit * 0.3;
        let (lo, hi) = (
            self.ice_top + (self.h - self.ice_top) * 0.15,
            self.h - self.h * 0.04,
        );
        let (x0, x2) = if dir > 0.0 {
            (-margin, self.w + margin)
        } else {
            (self.w + margin, -margin)
        };
        let p = [
            [x0, rng.range(lo, hi)],
            [rng.range(0.25, 0.75) * self.w, rng.range(lo, hi)],
            [x2, rng.range(lo, hi)],
        ];
        Skate {
            p,
            t: 0.0,
            speed: rng.range(0.45, 0.8) * self.unit,
            phase: rng.range(0.0, std::f32::consts::TAU),
            stride: rng.range(0.25, 0.35) * self.unit,
            dir,
        }
    }

    pub(crate) fn step(&self, s: &mut Skate, dt: f32) {
        let d = derivative(&s.p, s.t.min(1.0));
        let len = (d[0] * d[0] + d[1] * d[1]).sqrt().max(1e-3);
        s.t += s.speed * dt / len;
        s.phase += std::f32::consts::TAU * s.speed * dt / s.stride;
    }

    /// The posed figure and its depth (larger is nearer).
    pub(crate) fn pose(&self, s: &Skate, kit: &Kit) -> (Body, f32) {
        let feet = if s.t <= 1.0 {
            point(&s.p, s.t)
        } else {
            let d = derivative(&s.p, 1.0);
            let end = s.p[2];
            [end[0] + d[0] * (s.t - 1.0), end[1] + d[1] * (s.t - 1.0)]
        };
        let dir = s.dir;
        (
            body::skater(feet, self.height_at(feet[1]), dir, s.phase, kit),
            feet[1],
        )
    }

    /// Gone for good: past the far end of its path.
    pub(crate) fn finished(&self, s: &Skate) -> bool {
        s.t > 1.2
    }

    pub(crate) fn background(&self, seed: u64) -> Background {
        let (w, h) = (self.w as usize, self.h as usize);
        let mut bg = Background::new(w, h);
        let crowd_end = (self.h * 0.17) as usize;
        let glass_end = (self.h * 0.205) as usize;
        let boards_end = (self.h * 0.262) as usize;
        let ice_top = self.ice_top as usize;
        let cell = (self.h * 0.012).max(2.0);
        let panel = self.w * 0.22;
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32, y as f32);
                let (cx, cy) = ((fx / cell) as i64, (fy / cell) as i64);
                let (luma, u, v) = if y < crowd_end {
                    // Spectators: dark, busy, colourful; not athletes.
                    let n = hash01(seed, cx, cy);
                    (
                        40.0 + 70.0 * n + 10.0 * value_noise(seed ^ 1, fx, fy, cell * 6.0),
                        88.0 + 80.0 * hash01(seed ^ 2, cx, cy),
                        88.0 + 80.0 * hash01(seed ^ 3, cx, cy),
                    )
                } else if y < glass_end {
                    (
                        150.0 + 25.0 * value_noise(seed ^ 4, fx, fy, cell * 4.0),
                        134.0,
                        126.0,
                    )
                } else if y < boards_end {
                    let k = (fx / panel) as i64;
                    let inside = (fx - k as f32 * panel) > panel * 0.15;
                    let mid = fy > self.h * 0.215 && fy < self.h * 0.252;
                    if inside && mid {
                        // Advertising panels.
                        (
                            150.0 + 40.0 * hash01(seed ^ 5, k, 0),
                            80.0 + 96.0 * hash01(seed ^ 6, k, 0),
                            80.0 + 96.0 * hash01(seed ^ 7, k, 0),
                        )
                    } else {
                        (226.0, 128.0, 128.0)
                    }
                } else if y < ice_top {
                    (185.0, 60.0, 150.0)
                } else {
                    let depth = (fy - self.ice_top) / (self.h - self.ice_top);
                    let mut l = 234.0 - 14.0 * depth
                        + 6.0 * (value_noise(seed ^ 8, fx, fy, self.unit * 0.05) - 0.5)
                        + 2.0 * (hash01(seed ^ 9, x as i64, y as i64) - 0.5);
                    // Arena lights reflected in the ice, nearest the boards.
                    for k in 0..5 {
                        let lx = (k as f32 + 0.5) * self.w / 5.0;
                        let ly = self.ice_top + (self.h - self.ice_top) * 0.14;
                        let d = ((fx - lx) / (self.w * 0.05)).powi(2)
                            + ((fy - ly) / (self.h * 0.03)).powi(2);
                        if d < 1.0 {
                            l += 16.0 * (1.0 - d);
                        }
                    }
                    (l, 131.0, 126.0)
                };
                bg.put(x, y, luma, u, v);
            }
        }
        self.markings(&mut bg, seed);
        bg
    }

    /// Lines and circles painted on the ice, and skate scratches.
    fn markings(&self, bg: &mut Background, seed: u64) {
        let (w, h) = (self.w, self.h);
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
        let lw = (w * 0.006).max(0.7);
        let red = Paint::Flat {
            y: 95,
            u: 110,
            v: 190,
        };
        let blue = Paint::Flat {
            y: 90,
            u: 170,
            v: 105,
        };
        // Perspective: lines lean out towards the camera.
        for (x, paint) in [(0.5, red), (0.2, blue), (0.8, blue)] {
            let lean = (x - 0.5) * 0.15 * w;
            canvas.fill(
                &Shape::Capsule {
                    a: [x * w, self.ice_top],
                    b: [x * w + lean, h + lw],
                    r: lw,
                },
                paint,
            );
        }
        let (cx, cy, rx, ry) = (
            0.5 * w,
            self.ice_top + (h - self.ice_top) * 0.55,
            0.16 * w,
            0.2 * h,
        );
        let n = 48;
        for i in 0..n {
            let a0 = i as f32 / n as f32 * std::f32::consts::TAU;
            let a1 = (i + 1) as f32 / n as f32 * std::f32::consts::TAU;
            canvas.fill(
                &Shape::Capsule {
                    a: [cx + rx * a0.cos(), cy + ry * a0.sin()],
                    b: [cx + rx * a1.cos(), cy + ry * a1.sin()],
                    r: lw * 0.6,
                },
                blue,
            );
        }
        canvas.fill(
            &Shape::Ellipse {
                c: [cx, cy],
                rx: lw * 2.5,
                ry: lw * 1.8,
                angle: 0.0,
            },
            blue,
        );
        let mut rng = Rng::new(seed ^ 0x5c7a);
        for _ in 0..40 {
            let a = [rng.range(0.0, w), rng.range(self.ice_top, h)];
            let ang = rng.range(-0.4, 0.4);
            let len = rng.range(0.05, 0.2) * self.unit;
            canvas.fill(
                &Shape::Capsule {
                    a,
                    b: [a[0] + len * ang.cos(), a[1] + len * ang.sin()],
                    r: (self.unit * 0.002).max(0.5),
                },
                Paint::Shade { num: 244 },
            );
        }
    }
}

fn point(p: &[P; 3], t: f32) -> P {
    let u = 1.0 - t;
    let (a, b, c) = (u * u, 2.0 * u * t, t * t);
    [
        a * p[0][0] + b * p[1][0] + c * p[2][0],
        a * p[0][1] + b * p[1][1] + c * p[2][1],
    ]
}

fn derivative(p: &[P; 3], t: f32) -> P {
    let u = 1.0 - t;
    [
        2.0 * u * (p[1][0] - p[0][0]) + 2.0 * t * (p[2][0] - p[1][0]),
        2.0 * u * (p[1][1] - p[0][1]) + 2.0 * t * (p[2][1] - p[1][1]),
    ]
}
