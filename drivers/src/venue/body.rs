//! Athlete figures: a skater and a skier posed from a few joint angles and drawn as
//! capsules (limbs, skis, blades) and ellipses (torso, head) in suit colours.

use super::raster::{P, Shape};
use super::rng::Rng;

/// Parts in the largest figure.
pub(crate) const MAX_PARTS: usize = 12;

/// A colour in the frame's YUV (full range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

const fn yuv(y: u8, u: u8, v: u8) -> Yuv {
    Yuv { y, u, v }
}

/// Suits: every luma stays well below the ice and snow (≥ 150 even in shadow), the
/// chroma makes teams and nations tell apart.
const SUITS: [Yuv; 8] = [
    yuv(70, 100, 200), // red
    yuv(60, 180, 110), // blue
    yuv(95, 80, 120),  // green
    yuv(115, 60, 150), // yellow-orange
    yuv(40, 135, 125), // black
    yuv(85, 170, 160), // purple
    yuv(105, 160, 95), // light blue
    yuv(90, 95, 170),  // orange
];

/// An athlete's colours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kit {
    pub suit: Yuv,
    pub pants: Yuv,
    pub helmet: Yuv,
    pub gear: Yuv,
}

impl Kit {
    pub(crate) fn random(rng: &mut Rng) -> Self {
        let suit = SUITS[rng.index(SUITS.len())];
        let helmet = SUITS[rng.index(SUITS.len())];
        Self {
            suit,
            pants: Yuv {
                y: suit.y.saturating_sub(25).max(25),
                ..suit
            },
            helmet,
            gear: yuv(rng.range(25.0, 55.0) as u8, 128, 128),
        }
    }
}

/// One drawn part.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub shape: Shape,
    pub color: Yuv,
}

/// A posed figure, back parts first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Body {
    parts: [Part; MAX_PARTS],
    n: usize,
    /// Where the figure meets the ice or snow (reflections mirror about it).
    pub feet: P,
}

impl Default for Body {
    fn default() -> Self {
        let none = Part {
            shape: Shape::Capsule {
                a: [0.0, 0.0],
                b: [0.0, 0.0],
                r: 0.0,
            },
            color: yuv(0, 128, 128),
        };
        Self {
            parts: [none; MAX_PARTS],
            n: 0,
            feet: [0.0, 0.0],
        }
    }
}

impl Body {
    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts[..self.n]
    }

    fn push(&mut self, shape: Shape, color: Yuv) {
        if let Some(p) = self.parts.get_mut(self.n) {
            *p = Part { shape, color };
            self.n += 1;
        }
    }

    fn limb(&mut self, a: P, b: P, r: f32, color: Yuv) {
        self.push(Shape::Capsule { a, b, r }, color);
    }

    fn torso(&mut self, hip: P, shoulder: P, width: f32, color: Yuv) {
        let (dx, dy) = (shoulder[0] - hip[0], shoulder[1] - hip[1]);
        let len = (dx * dx + dy * dy).sqrt();
        self.push(
            Shape::Ellipse {
                c: [(hip[0] + shoulder[0]) * 0.5, (hip[1] + shoulder[1]) * 0.5],
                rx: len * 0.5 + width * 0.4,
                ry: width,
                angle: dy.atan2(dx),
            },
            color,
        );
    }

    fn head(&mut self, c: P, r: f32, color: Yuv) {
        self.push(
            Shape::Ellipse {
                c,
                rx: r,
                ry: r * 1.1,
                angle: std::f32::consts::FRAC_PI_2,
            },
            color,
        );
    }
}

/// Slightly darker for the far side of the body, so limbs read in front of each other.
fn far(c: Yuv) -> Yuv {
    Yuv {
        y: c.y.saturating_sub(12).max(20),
        ..c
    }
}

/// Maps body-local coordinates (units of the figure's height, x forward, y down,
/// origin at the feet) to the frame, rotated by `tilt` about the feet.
#[derive(Debug, Clone, Copy)]
struct Frame2 {
    feet: P,
    s: f32,
    dir: f32,
    cos: f32,
    sin: f32,
}

impl Frame2 {
    fn new(feet: P, s: f32, dir: f32, tilt: f32) -> Self {
        let (sin, cos) = tilt.sin_cos();
        Self {
            feet,
            s,
            dir,
            cos,
            sin,
        }
    }

    fn at(&self, p: P) -> P {
        let (x, y) = (p[0] * self.s * self.dir, p[1] * self.s);
        let (x, y) = if self.dir < 0.0 {
            // Mirrored figures tilt the other way too.
            (x * self.cos + y * self.sin, -x * self.sin + y * self.cos)
        } else {
            (x * self.cos - y * self.sin, x * self.sin + y * self.cos)
        };
        [self.feet[0] + x, self.feet[1] + y]
    }
}

fn add(a: P, b: P) -> P {
    [a[0] + b[0], a[1] + b[1]]
}

/// A skater of height `s` pixels with feet at `feet`, facing `dir` (±1), at stride
/// phase `phase` (radians; one stride per 2π).
pub(crate) fn skater(feet: P, s: f32, dir: f32, phase: f32, kit: &Kit) -> Body {
    let f = Frame2::new(feet, s, dir, 0.0);
    let mut b = Body {
        feet,
        ..Body::default()
    };
    let hip = [0.02, -0.47];
    let shoulder = add(hip, [0.15, -0.28]);
    let leg = |side: f32| {
        let sw = (phase + side).sin();
        let lift = 0.05 * (-(phase + side).cos()).max(0.0);
        let foot = [0.15 * sw - 0.02, -lift];
        let knee = [(hip[0] + foot[0]) * 0.5 + 0.09, (hip[1] + foot[1]) * 0.5];
        (foot, knee)
    };
    let arm = |side: f32| add(shoulder, [0.13 * (phase + side + 0.4).sin() + 0.04, 0.25]);
    let (back, front) = (std::f32::consts::PI, 0.0);
    for (side, shade) in [(back, true), (front, false)] {
        let (foot, knee) = leg(side);
        let c = |k: Yuv| if shade { far(k) } else { k };
        b.limb(
            f.at([foot[0] - 0.08, foot[1] + 0.015]),
            f.at([foot[0] + 0.1, foot[1] + 0.015]),
            0.018 * s,
            c(kit.gear),
        );
        b.limb(f.at(foot), f.at(knee), 0.042 * s, c(kit.suit));
        b.limb(f.at(knee), f.at(hip), 0.055 * s, c(kit.pants));
        if shade {
            b.limb(f.at(shoulder), f.at(arm(side)), 0.035 * s, c(kit.suit));
        } else {
            b.torso(f.at(hip), f.at(shoulder), 0.09 * s, kit.suit);
            b.limb(f.at(shoulder), f.at(arm(side)), 0.035 * s, kit.suit);
        }
    }
    b.head(f.at(add(shoulder, [0.07, -0.09])), 0.068 * s, kit.helmet);
    b
}

/// How a skier holds itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SkiPose {
    /// Angle of the skis (radians, positive pointing down to the right).
    pub ski_angle: f32,
    /// Rotation of the body about the feet (0 upright; π/2 lying forward).
    pub tilt: f32,
    /// 0 standing tall, 1 deep tuck.
    pub crouch: f32,
    /// 0 arms forward, 1 arms out for balance.
    pub arms_out: f32,
    /// Skis spread apart after a fall (0 together).
    pub splay: f32,
}

/// A skier of height `s` pixels with feet at `feet`, heading right.
pub(crate) fn skier(feet: P, s: f32, pose: &SkiPose, kit: &Kit) -> Body {
    let f = Frame2::new(feet, s, 1.0, pose.tilt);
    let mut b = Body {
        feet,
        ..Body::default()
    };
    let c = pose.crouch.clamp(0.0, 1.0);
    let knee = [0.06 + 0.08 * c, -0.27 + 0.07 * c];
    let hip = [-0.03 - 0.07 * c, -0.52 + 0.14 * c];
    let shoulder = add(hip, [0.13 + 0.1 * c, -0.3 + 0.07 * c]);
    let hand = add(
        shoulder,
        [0.17 - 0.1 * pose.arms_out, 0.13 - 0.2 * pose.arms_out],
    );
    let (sin, cos) = pose.ski_angle.sin_cos();
    let ski = |offset: f32, spread: f32| {
        let (ss, sc) = (pose.ski_angle + spread).sin_cos();
        let root = [
            feet[0] + offset * s * cos,
            feet[1] + offset * s * sin + 0.012 * s,
        ];
        (
            [root[0] - 0.42 * s * sc, root[1] - 0.42 * s * ss],
            [root[0] + 0.5 * s * sc, root[1] + 0.5 * s * ss],
        )
    };
    // Far ski and leg, torso and far arm, near leg and ski, near arm, head.
    let (a, z) = ski(0.03, -0.4 * pose.splay);
    b.limb(a, z, 0.02 * s, far(kit.gear));
    b.limb(
        f.at([0.03, -0.03]),
        f.at(add(knee, [0.03, 0.0])),
        0.045 * s,
        far(kit.pants),
    );
    b.limb(
        f.at(add(knee, [0.03, 0.0])),
        f.at(hip),
        0.055 * s,
        far(kit.pants),
    );
    b.limb(
        f.at(shoulder),
        f.at(add(hand, [0.03, -0.02])),
        0.034 * s,
        far(kit.suit),
    );
    b.torso(f.at(hip), f.at(shoulder), 0.095 * s, kit.suit);
    b.limb(f.at([0.0, -0.03]), f.at(knee), 0.045 * s, kit.pants);
    b.limb(f.at(knee), f.at(hip), 0.055 * s, kit.pants);
    let (a, z) = ski(0.0, 0.3 * pose.splay);
    b.limb(a, z, 0.02 * s, kit.gear);
    b.limb(f.at(shoulder), f.at(hand), 0.034 * s, kit.suit);
    b.head(f.at(add(shoulder, [0.07, -0.09])), 0.07 * s, kit.helmet);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_fit_their_height_and_stay_dark() {
        let mut rng = Rng::new(1);
        let kit = Kit::random(&mut rng);
        for body in [
            skater([100.0, 200.0], 100.0, -1.0, 1.0, &kit),
            skier(
                [100.0, 200.0],
                100.0,
                &SkiPose {
                    ski_angle: 0.2,
                    tilt: 0.0,
                    crouch: 0.5,
                    arms_out: 0.0,
                    splay: 0.0,
                },
                &kit,
            ),
        ] {
            assert!(body.parts().len() >= 9);
            for p in body.parts() {
                assert!(p.color.y < 130);
                let c = match p.shape {
                    Shape::Capsule { a, .. } => a,
                    Shape::Ellipse { c, .. } => c,
                };
                assert!((c[1] - 200.0).abs() <= 110.0 && (c[0] - 100.0).abs() <= 60.0);
            }
        }
    }
}
