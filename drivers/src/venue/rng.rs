//! Deterministic randomness for the procedural scenes: a seeded generator for
//! decisions and a stateless hash for textures, so the same seed gives the same bytes.

/// SplitMix64: a tiny, well-known generator; enough for procedural scenes.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + self.unit() * (hi - lo)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// Uniform index in 0..n (n > 0).
    pub(crate) fn index(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32) as usize * n.max(1)) >> 32
    }

    /// A new generator whose stream does not overlap this one's in practice: each
    /// scene part (background, athletes, particles) draws from its own stream, so
    /// adding a draw in one part does not reshuffle the others.
    pub(crate) fn fork(&mut self) -> Self {
        Self(self.next_u64())
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stateless hash of a lattice point to [0, 1): the basis of value noise.
pub(crate) fn hash01(seed: u64, x: i64, y: i64) -> f32 {
    let h = mix(seed
        ^ (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1) with lattice cells of `cell` pixels.
pub(crate) fn value_noise(seed: u64, x: f32, y: f32, cell: f32) -> f32 {
    let (fx, fy) = (x / cell, y / cell);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (tx, ty) = (smooth(fx - x0), smooth(fy - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let a = hash01(seed, ix, iy);
    let b = hash01(seed, ix + 1, iy);
    let c = hash01(seed, ix, iy + 1);
    let d = hash01(seed, ix + 1, iy + 1);
    let top = a + (b - a) * tx;
    let bottom = c + (d - c) * tx;
    top + (bottom - top) * ty
}

/// Hermite smoothstep of t in [0, 1].
pub(crate) fn smooth(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_determinism() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..1000 {
            let v = a.range(2.0, 3.0);
            assert!((2.0..3.0).contains(&v));
            assert_eq!(v, b.range(2.0, 3.0));
            assert!(a.index(7) < 7);
            b.index(7);
        }
        let n = value_noise(1, 10.5, 3.25, 8.0);
        assert!((0.0..1.0).contains(&n));
        assert_eq!(n, value_noise(1, 10.5, 3.25, 8.0));
    }
}
