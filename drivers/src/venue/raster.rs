//! Scanline rasterisation into NV12 planes: athlete body parts (capsules and
//! ellipses) that write the label and mask planes as they draw, so the ground truth
//! is exactly what was drawn; the lighting tables; snow specks that punch holes in
//! the mask. Nothing here allocates.

/// Quantised lighting levels: 0 is unshadowed, `LEVELS - 1` is the cloud's core.
pub(crate) const LEVELS: usize = 32;

/// A 2-D point in frame pixels (x right, y down).
pub(crate) type P = [f32; 2];

/// A body part's outline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// All points within `r` of the segment `a`–`b` (limbs, skis, skates).
    Capsule { a: P, b: P, r: f32 },
    /// Semi-axis `rx` along `angle` (radians), `ry` across it (torso, head).
    Ellipse { c: P, rx: f32, ry: f32, angle: f32 },
}

impl Shape {
    /// Bounding box: min x, min y, max x, max y.
    fn bounds(&self) -> [f32; 4] {
        match *self {
            Self::Capsule { a, b, r } => [
                a[0].min(b[0]) - r,
                a[1].min(b[1]) - r,
                a[0].max(b[0]) + r,
                a[1].max(b[1]) + r,
            ],
            Self::Ellipse { c, rx, ry, .. } => {
                let m = rx.max(ry);
                [c[0] - m, c[1] - m, c[0] + m, c[1] + m]
            }
        }
    }

    /// The same part mirrored about the horizontal line `y = axis` and squashed
    /// vertically by `squash`: its reflection in the ice.
    pub(crate) fn reflected(&self, axis: f32, squash: f32) -> Self {
        let m = |p: P| [p[0], axis + (axis - p[1]) * squash];
        match *self {
            Self::Capsule { a, b, r } => Self::Capsule {
                a: m(a),
                b: m(b),
                r: r * squash.sqrt(),
            },
            Self::Ellipse { c, rx, ry, angle } => Self::Ellipse {
                c: m(c),
                rx,
                ry: ry * squash,
                angle: -angle,
            },
        }
    }
}

/// Per-shape constants so each row's span costs a few flops.
enum Prepared {
    Capsule {
        a: P,
        b: P,
        r: f32,
        d: P,
        len2: f32,
        n: P,
    },
    Ellipse {
        c: P,
        qa: f32,
        qb: f32,
        qc: f32,
    },
}

impl Prepared {
    fn new(shape: &Shape) -> Self {
        match *shape {
            Shape::Capsule { a, b, r } => {
                let d = [b[0] - a[0], b[1] - a[1]];
                let len2 = d[0] * d[0] + d[1] * d[1];
                let len = len2.sqrt().max(1e-6);
                Self::Capsule {
                    a,
                    b,
                    r,
                    d,
                    len2,
                    n: [-d[1] / len, d[0] / len],
                }
            }
            Shape::Ellipse { c, rx, ry, angle } => {
                let (s, co) = angle.sin_cos();
                let (ia, ib) = (1.0 / (rx * rx).max(1e-6), 1.0 / (ry * ry).max(1e-6));
                // u = dx·cos + dy·sin, v = −dx·sin + dy·cos; u²/rx² + v²/ry² ≤ 1 is a
                // quadratic in dx for each row.
                Self::Ellipse {
                    c,
                    qa: co * co * ia + s * s * ib,
                    qb: 2.0 * co * s * (ia - ib),
                    qc: s * s * ia + co * co * ib,
                }
            }
        }
    }

    /// The interval of x covered on the horizontal line through `yc`.
    fn span(&self, yc: f32) -> Option<(f32, f32)> {
        match *self {
            Self::Capsule {
                a,
                b,
                r,
                d,
                len2,
                n,
            } => {
                // A capsule is the union of two discs and a rectangle, and convex, so
                // its row span is the hull of the three row spans.
                let mut lo = f32::INFINITY;
                let mut hi = f32::NEG_INFINITY;
                for p in [a, b] {
                    let dy = yc - p[1];
                    let q = r * r - dy * dy;
                    if q >= 0.0 {
                        let h = q.sqrt();
                        lo = lo.min(p[0] - h);
                        hi = hi.max(p[0] + h);
                    }
                }
                if len2 > 1e-6 {
                    let dy = yc - a[1];
                    // 0 ≤ ((x−ax)·dx + dy·dy_seg) ≤ len² and |(x−ax)·nx + dy·ny| ≤ r,
                    // each linear in x.
                    let (mut l, mut h) = (f32::NEG_INFINITY, f32::INFINITY);
                    let ok = clamp_linear(d[0], dy * d[1], 0.0, len2, &mut l, &mut h)
                        && clamp_linear(n[0], dy * n[1], -r, r, &mut l, &mut h);
                    if ok && l <= h {
                        lo = lo.min(a[0] + l);
                        hi = hi.max(a[0] + h);
                    }
                }
                (lo <= hi).then_some((lo, hi))
            }
            Self::Ellipse { c, qa, qb, qc } => {
                let dy = yc - c[1];
                let (b, cc) = (qb * dy, qc * dy * dy - 1.0);
                let disc = b * b - 4.0 * qa * cc;
                if disc < 0.0 {
                    return None;
                }
                let s = disc.sqrt();
                Some((c[0] + (-b - s) / (2.0 * qa), c[0] + (-b + s) / (2.0 * qa)))
            }
        }
    }
}

/// Narrows [l, h] to the t with lo ≤ k·t + off ≤ hi. False when no t qualifies.
fn clamp_linear(k: f32, off: f32, lo: f32, hi: f32, l: &mut f32, h: &mut f32) -> bool {
    if k.abs() < 1e-9 {
        return (lo..=hi).contains(&off);
    }
    let (t0, t1) = ((lo - off) / k, (hi - off) / k);
    *l = l.max(t0.min(t1));
    *h = h.min(t0.max(t1));
    true
}

/// How a shape is painted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Paint {
    /// Athlete pixels: lit luma, chroma, and this athlete's label (slot + 1).
    Body { label: u8, y: u8, u: u8, v: u8 },
    /// Darkens luma by `num`/256 and leaves everything else (reflections, marks).
    Shade { num: u16 },
    /// Scenery painted into a background: luma and chroma, no label.
    Flat { y: u8, u: u8, v: u8 },
}

/// A soft-edged elliptical cloud shadow, in frame pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shadow {
    pub cx: f32,
    pub cy: f32,
    pub rx: f32,
    pub ry: f32,
    /// Soft edge half-width as a fraction of the radii.
    pub soft: f32,
    /// Fraction of light the core takes away.
    pub depth: f32,
}

/// The frame's lighting: a global gain and an optional cloud shadow, applied through
/// one 256-entry table per shadow level so a pixel costs one lookup.
#[derive(Debug)]
pub(crate) struct Light {
    lut: [[u8; 256]; LEVELS],
    shadow: Option<Shadow>,
    identity: bool,
    /// The shadow's runs for every row of the frame, computed once per frame.
    rows: Vec<RowLight>,
}

/// The shadow on one row, as nested column runs: columns `lo[k]..hi[k]` are at
/// level `k` or deeper. Background rows and athlete pixels use the same runs, so
/// both see exactly the same light.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowLight {
    lo: [u32; LEVELS],
    hi: [u32; LEVELS],
}

impl RowLight {
    const NONE: Self = Self {
        lo: [0; LEVELS],
        hi: [0; LEVELS],
    };

    /// Shadow level at column `x`.
    pub(crate) fn level(&self, x: usize) -> usize {
        let x = x as u32;
        let mut k = 1;
        while k < LEVELS && self.lo[k] <= x && x < self.hi[k] {
            k += 1;
        }
        k - 1
    }
}

impl Default for Light {
    fn default() -> Self {
        let mut l = Self {
            lut: [[0; 256]; LEVELS],
            shadow: None,
            identity: false,
            rows: Vec::new(),
        };
        l.set(1.0, None, 0, 0);
        l
    }
}

impl Light {
    /// Rebuilds the tables for a `width`×`height` frame: every luma is scaled by
    /// `gain`, and by the shadow's level.
    pub(crate) fn set(&mut self, gain: f32, shadow: Option<Shadow>, width: usize, height: usize) {
        let depth = shadow.map_or(0.0, |s| s.depth);
        for (k, table) in self.lut.iter_mut().enumerate() {
            let f = gain * (1.0 - depth * k as f32 / (LEVELS - 1) as f32);
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 * f).round().clamp(0.0, 255.0) as u8;
            }
        }
        self.shadow = shadow;
        self.identity = shadow.is_none() && gain == 1.0;
        // Resizing to the same height never reallocates.
        self.rows.resize(height, RowLight::NONE);
        for y in 0..height {
            self.rows[y] = self.compute_row(y, width);
        }
    }

    /// Table for one shadow level.
    pub(crate) fn lut(&self, level: usize) -> &[u8; 256] {
        &self.lut[level.min(LEVELS - 1)]
    }

    /// The shadow's runs on row `y` of a frame `width` pixels wide. The level falls
    /// linearly with the elliptical distance d from the centre, from the core
    /// (d ≤ 1 − soft) to nothing (d ≥ 1 + soft).
    pub(crate) fn row(&self, y: usize) -> RowLight {
        self.rows.get(y).copied().unwrap_or(RowLight::NONE)
    }

    fn compute_row(&self, y: usize, width: usize) -> RowLight {
        let Some(s) = self.shadow else {
            return RowLight::NONE;
        };
        let dy = (y as f32 + 0.5 - s.cy) / s.ry;
        let dy2 = dy * dy;
        let n = width as f32;
        let mut r = RowLight::NONE;
        let (mut lo, mut hi) = (0u32, width as u32);
        for k in 1..LEVELS {
            // Level ≥ k where (1 − t)(LEVELS − 1) ≥ k − ½, t = (d − (1 − soft)) / 2·soft.
            let t = 1.0 - (k as f32 - 0.5) / (LEVELS - 1) as f32;
            let d = 1.0 - s.soft + 2.0 * s.soft * t;
            let q = d * d - dy2;
            if q > 0.0 {
                let hw = s.rx * q.sqrt();
                let l = (s.cx - hw - 0.5).ceil().clamp(0.0, n) as u32;
                let h = ((s.cx + hw - 0.5).floor() + 1.0).clamp(0.0, n) as u32;
                lo = lo.max(l);
                hi = hi.min(h).max(lo);
            } else {
                hi = lo;
            }
            r.lo[k] = lo;
            r.hi[k] = hi;
        }
        r
    }

    /// Copies one luma row through the lighting: memcpy when unlit, otherwise one
    /// table per run of constant level.
    pub(crate) fn blit_row(&self, src: &[u8], dst: &mut [u8], y: usize) {
        let n = src.len().min(dst.len());
        let (src, dst) = (&src[..n], &mut dst[..n]);
        if self.identity {
            dst.copy_from_slice(src);
            return;
        }
        let row = self.row(y);
        let deepest = (1..LEVELS)
            .take_while(|&k| row.lo[k] < row.hi[k])
            .last()
            .unwrap_or(0);
        let mut x = 0usize;
        let mut run = |k: usize, end: usize, x: &mut usize| {
            let end = end.clamp(*x, n);
            map(self.lut(k), &src[*x..end], &mut dst[*x..end]);
            *x = end;
        };
        for k in 0..deepest {
            run(k, row.lo[k + 1] as usize, &mut x);
        }
        for k in (0..=deepest).rev() {
            run(k, if k == 0 { n } else { row.hi[k] as usize }, &mut x);
        }
    }
}

fn map(lut: &[u8; 256], src: &[u8], dst: &mut [u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = lut[*s as usize];
    }
}

/// What drawing did to one athlete this frame; index = label − 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coverage {
    /// In-frame pixels drawn for the athlete (its silhouette, before occlusion).
    pub drawn: u32,
    /// Of those, pixels a nearer athlete later drew over.
    pub hidden: u32,
    /// Of those, pixels a snow speck later covered.
    pub specked: u32,
    /// Inclusive bounds of the silhouette; empty when `x0 > x1`.
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Coverage {
    pub(crate) const EMPTY: Self = Self {
        drawn: 0,
        hidden: 0,
        specked: 0,
        x0: usize::MAX,
        y0: usize::MAX,
        x1: 0,
        y1: 0,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.drawn == 0
    }
}

/// The planes of one frame being drawn, plus the truth planes that shadow them.
#[derive(Debug)]
pub(crate) struct Canvas<'a> {
    pub w: usize,
    pub h: usize,
    pub y: &'a mut [u8],
    pub uv: &'a mut [u8],
    pub label: &'a mut [u8],
    pub mask: &'a mut [u8],
    pub cov: &'a mut [Coverage],
    pub light: &'a Light,
}

impl Canvas<'_> {
    /// Fills every pixel whose centre lies inside `shape`.
    pub(crate) fn fill(&mut self, shape: &Shape, paint: Paint) {
        if self.w == 0 || self.h == 0 {
            return;
        }
        let [_, by0, _, by1] = shape.bounds();
        let (wf, hf) = (self.w as f32, self.h as f32);
        let r0 = (by0 - 0.5).ceil().max(0.0);
        let r1 = (by1 - 0.5).floor().min(hf - 1.0);
        if r0.is_nan() || r1.is_nan() || r1 < r0 {
            return;
        }
        let prep = Prepared::new(shape);
        for row in r0 as usize..=r1 as usize {
            let Some((l, r)) = prep.span(row as f32 + 0.5) else {
                continue;
            };
            let x0 = (l - 0.5).ceil().max(0.0);
            let x1 = (r - 0.5).floor().min(wf - 1.0);
            if x0 <= x1 {
                self.span(row, x0 as usize, x1 as usize, paint);
            }
        }
    }

    fn span(&mut self, row: usize, x0: usize, x1: usize, paint: Paint) {
        let base = row * self.w;
        match paint {
            Paint::Shade { num } => {
                for p in &mut self.y[base + x0..=base + x1] {
                    *p = ((u16::from(*p) * num) >> 8) as u8;
                }
            }
            Paint::Flat { y, u, v } => {
                self.y[base + x0..=base + x1].fill(y);
                self.chroma(row, x0, x1, u, v);
            }
            Paint::Body { label, y, u, v } => {
                let me = usize::from(label.max(1)) - 1;
                let rl = self.light.row(row);
                let mut fresh = 0u32;
                for x in x0..=x1 {
                    let i = base + x;
                    let prev = self.label[i];
                    if prev != label {
                        fresh += 1;
                        if prev != 0
                            && let Some(c) = self.cov.get_mut(usize::from(prev) - 1)
                        {
                            c.hidden += 1;
                        }
                        self.label[i] = label;
                        self.mask[i] = 255;
                    }
                    self.y[i] = self.light.lut(rl.level(x))[usize::from(y)];
                }
                self.chroma(row, x0, x1, u, v);
                if let Some(c) = self.cov.get_mut(me) {
                    c.drawn += fresh;
                    c.x0 = c.x0.min(x0);
                    c.x1 = c.x1.max(x1);
                    c.y0 = c.y0.min(row);
                    c.y1 = c.y1.max(row);
                }
            }
        }
    }

    /// Chroma is subsampled 2×2: the top-left pixel of each block decides it.
    fn chroma(&mut self, row: usize, x0: usize, x1: usize, u: u8, v: u8) {
        if !row.is_multiple_of(2) {
            return;
        }
        let cbase = (row / 2) * self.w;
        let mut x = x0 + (x0 & 1);
        while x <= x1 && x + 1 < self.w {
            self.uv[cbase + x] = u;
            self.uv[cbase + x + 1] = v;
            x += 2;
        }
    }

    /// A snow speck: a `size`×`size` square of luma `luma` at (`x`, `y`), clipped.
    /// Whatever athlete pixel it covers leaves the mask.
    pub(crate) fn speck(&mut self, x: usize, y: usize, size: usize, luma: u8) {
        for row in y..(y + size).min(self.h) {
            for col in x..(x + size).min(self.w) {
                let i = row * self.w + col;
                self.y[i] = luma;
                let prev = self.label[i];
                if prev != 0 {
                    if let Some(c) = self.cov.get_mut(usize::from(prev) - 1) {
                        c.specked += 1;
                    }
                    self.label[i] = 0;
                    self.mask[i] = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Planes {
        y: Vec<u8>,
        uv: Vec<u8>,
        label: Vec<u8>,
        mask: Vec<u8>,
        cov: Vec<Coverage>,
    }

    fn planes(w: usize, h: usize) -> Planes {
        Planes {
            y: vec![200; w * h],
            uv: vec![128; w * h / 2],
            label: vec![0; w * h],
            mask: vec![0; w * h],
            cov: vec![Coverage::EMPTY; 4],
        }
    }

    fn count(p: &Planes, label: u8) -> u32 {
        p.label.iter().filter(|&&l| l == label).count() as u32
    }

    #[test]
    fn shapes_fill_their_area_and_count_occlusion() {
        let (w, h) = (64, 48);
        let mut p = planes(w, h);
        let light = Light::default();
        let mut c = Canvas {
            w,
            h,
            y: &mut p.y,
            uv: &mut p.uv,
            label: &mut p.label,
            mask: &mut p.mask,
            cov: &mut p.cov,
            light: &light,
        };
        let disc = Shape::Ellipse {
            c: [20.0, 20.0],
            rx: 10.0,
            ry: 10.0,
            angle: 0.3,
        };
        c.fill(
            &disc,
            Paint::Body {
                label: 1,
                y: 50,
                u: 90,
                v: 200,
            },
        );
        // A rod across the disc, nearer to the camera.
        let rod = Shape::Capsule {
            a: [5.0, 20.0],
            b: [40.0, 25.0],
            r: 3.0,
        };
        c.fill(
            &rod,
            Paint::Body {
                label: 2,
                y: 80,
                u: 128,
                v: 128,
            },
        );
        c.speck(20, 10, 2, 250);
        let (c1, c2) = (p.cov[0], p.cov[1]);
        // A disc of radius 10 has about π·100 pixels.
        assert!((300..330).contains(&c1.drawn), "{}", c1.drawn);
        assert!(c1.hidden > 0 && c1.specked > 0);
        assert_eq!(count(&p, 1), c1.drawn - c1.hidden - c1.specked);
        assert_eq!(count(&p, 2), c2.drawn - c2.hidden - c2.specked);
        for i in 0..w * h {
            assert_eq!(p.mask[i] == 255, p.label[i] != 0);
            if p.label[i] == 1 {
                assert_eq!(p.y[i], 50);
            }
        }
        assert_eq!((c1.x0, c1.x1, c1.y0, c1.y1), (10, 29, 10, 29));
    }

    #[test]
    fn shadow_darkens_smoothly_and_blit_matches_levels() {
        let mut light = Light::default();
        light.set(
            0.9,
            Some(Shadow {
                cx: 50.0,
                cy: 20.0,
                rx: 25.0,
                ry: 15.0,
                soft: 0.4,
                depth: 0.3,
            }),
            100,
            100,
        );
        let src = vec![200u8; 100];
        let mut dst = vec![0u8; 100];
        light.blit_row(&src, &mut dst, 20);
        let row = light.row(20);
        for (x, &v) in dst.iter().enumerate() {
            assert_eq!(v, light.lut(row.level(x))[200], "x={x}");
        }
        assert_eq!(dst[0], 180);
        assert_eq!(dst[50], (200.0f32 * 0.9 * 0.7).round() as u8);
        // Neighbouring pixels never jump by more than one level's step.
        assert!(dst.windows(2).all(|p| p[0].abs_diff(p[1]) <= 6));
        light.blit_row(&src, &mut dst, 90);
        assert!(dst.iter().all(|&v| v == 180));
    }
}
