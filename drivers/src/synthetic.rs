//! The synthetic camera: deterministic moving shapes on a bright, textured background.
//! A stand-in for the full synthetic venue camera (scenes, ground truth) that a
//! later stage of the project grows from it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::frame::{Frame, PixelFormat};
use crate::pool::BufferPool;
use crate::{Source, SourceError};

/// What the synthetic camera produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Same seed, same frames.
    pub seed: u64,
    /// Number of moving athletes (dark shapes).
    pub athletes: u32,
    /// Fault injection for drills and tests: fail after this many frames.
    pub fail_after_frames: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Athlete {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    w: u32,
    h: u32,
    luma: u8,
}

/// SplitMix64: a tiny, well-known generator; enough for procedural scenes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + unit * (hi - lo)
    }
}

/// A paced synthetic NV12 camera.
#[derive(Debug)]
pub struct SyntheticCamera {
    cfg: SyntheticConfig,
    clock: Arc<dyn Clock>,
    background: Vec<u8>,
    athletes: Vec<Athlete>,
    pool: BufferPool,
    seq: u64,
    start: Option<Duration>,
}

impl SyntheticCamera {
    /// Builds the camera; `pool_buffers` bounds how many frames may be in flight.
    pub fn new(
        cfg: SyntheticConfig,
        clock: Arc<dyn Clock>,
        pool_buffers: usize,
    ) -> Result<Self, SourceError> {
        if cfg.width < 16 || cfg.height < 16 || cfg.width % 2 != 0 || cfg.height % 2 != 0 {
            return Err(SourceError::Unsupported(format!(
                "synthetic NV12 needs even width and height of at least 16, got {}x{}",
                cfg.width, cfg.height
            )));
        }
        if cfg.fps == 0 {
            return Err(SourceError::Unsupported("fps must be at least 1".into()));
        }
        let len = PixelFormat::Nv12
            .frame_bytes(cfg.width, cfg.height)
            .unwrap_or(0);
        let mut rng = Rng(cfg.seed);
        let background = render_background(cfg.width, cfg.height, &mut rng);
        let (w, h) = (cfg.width as f32, cfg.height as f32);
        let athletes = (0..cfg.athletes)
            .map(|_| {
                let aw = (cfg.width / 40).max(2);
                let ah = (cfg.height / 8).max(2);
                Athlete {
                    x: rng.range(0.0, w - aw as f32),
                    y: rng.range(0.0, h - ah as f32),
                    vx: rng.range(-6.0, 6.0) * w / 1280.0,
                    vy: rng.range(-2.0, 2.0) * h / 720.0,
                    w: aw,
                    h: ah,
                    luma: rng.range(20.0, 70.0) as u8,
                }
            })
            .collect();
        Ok(Self {
            pool: BufferPool::new(len, pool_buffers),
            cfg,
            clock,
            background,
            athletes,
            seq: 0,
            start: None,
        })
    }

    fn period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.cfg.fps))
    }

    fn step_athletes(&mut self) {
        let (w, h) = (self.cfg.width as f32, self.cfg.height as f32);
        for a in &mut self.athletes {
            a.x += a.vx;
            a.y += a.vy;
            if a.x < 0.0 || a.x + a.w as f32 > w {
                a.vx = -a.vx;
                a.x = a.x.clamp(0.0, w - a.w as f32);
            }
            if a.y < 0.0 || a.y + a.h as f32 > h {
                a.vy = -a.vy;
                a.y = a.y.clamp(0.0, h - a.h as f32);
            }
        }
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.seq
    }

    /// Buffers ever allocated by this camera's pool.
    pub fn pool_allocations(&self) -> u64 {
        self.pool.allocations()
    }
}

fn render_background(width: u32, height: u32, rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut buf = vec![128u8; w * h + w * h / 2];
    // Bright ice/snow with a vertical gradient, a board line and fine texture.
    for y in 0..h {
        let base = 200 - (y * 40 / h) as i32;
        let row = &mut buf[y * w..(y + 1) * w];
        for (x, px) in row.iter_mut().enumerate() {
            let texture = ((x * 7 + y * 13) % 11) as i32 - 5;
            *px = (base + texture).clamp(0, 255) as u8;
        }
        if y == h / 5 || y == h / 5 + 1 {
            row.fill(60);
        }
    }
    // A few random darker patches (skate marks).
    for _ in 0..8 {
        let x0 = rng.range(0.0, w as f32 - 8.0) as usize;
        let y0 = rng.range(0.0, h as f32 - 4.0) as usize;
        for y in y0..y0 + 4 {
            for px in &mut buf[y * w + x0..y * w + x0 + 8] {
                *px = px.saturating_sub(30);
            }
        }
    }
    buf
}

impl Source for SyntheticCamera {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        if let Some(limit) = self.cfg.fail_after_frames {
            if self.seq >= limit {
                return Err(SourceError::Injected(limit));
            }
        }
        let start = *self.start.get_or_insert_with(|| self.clock.monotonic());
        let deadline = start + self.period() * self.seq as u32;
        self.clock.sleep_until(deadline);
        let capture_mono = self.clock.monotonic();
        let capture_ns = self.clock.unix_ns();
        self.step_athletes();

        let (w, _h) = (self.cfg.width as usize, self.cfg.height as usize);
        // Every buffer still held downstream: this frame is lost (the sequence
        // number advances, so the gap is visible) and memory stays bounded.
        let Some(slot) = self.pool.acquire() else {
            self.seq += 1;
            return Err(SourceError::PoolExhausted { seq: self.seq - 1 });
        };
        let Some(pixels) = Arc::get_mut(slot) else {
            self.seq += 1;
            return Err(SourceError::PoolExhausted { seq: self.seq - 1 });
        };
        pixels.copy_from_slice(&self.background);
        for a in &self.athletes {
            let (x0, y0) = (a.x as usize, a.y as usize);
            for y in y0..y0 + a.h as usize {
                pixels[y * w + x0..y * w + x0 + a.w as usize].fill(a.luma);
            }
        }
        let data = Arc::clone(slot);
        let frame = Frame {
            seq: self.seq,
            capture_mono,
            capture_ns,
            width: self.cfg.width,
            height: self.cfg.height,
            format: PixelFormat::Nv12,
            fps: self.cfg.fps,
            data,
        };
        self.seq += 1;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn cfg(seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            width: 64,
            height: 48,
            fps: 30,
            seed,
            athletes: 3,
            fail_after_frames: None,
        }
    }

    fn camera(seed: u64) -> SyntheticCamera {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000_000_000));
        SyntheticCamera::new(cfg(seed), clock, 4).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn deterministic_by_seed() {
        let (mut a, mut b, mut c) = (camera(7), camera(7), camera(8));
        for _ in 0..10 {
            let (fa, fb, fc) = (a.next_frame(), b.next_frame(), c.next_frame());
            let (fa, fb, fc) = (
                fa.ok().map(|f| f.data),
                fb.ok().map(|f| f.data),
                fc.ok().map(|f| f.data),
            );
            assert_eq!(fa, fb);
            assert_ne!(fa, fc);
        }
    }

    #[test]
    fn paced_sequenced_and_pooled() {
        let mut cam = camera(1);
        let mut last = None;
        for i in 0..100u64 {
            let f = cam.next_frame().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.seq, i);
            assert_eq!(f.data.len(), 64 * 48 * 3 / 2);
            // 30 fps: frame i is captured at i/30 s on the manual clock.
            assert_eq!(
                f.capture_mono,
                Duration::from_nanos(1_000_000_000 / 30) * i as u32
            );
            last = Some(f);
        }
        drop(last);
        // Frames were dropped by the consumer each time: one or two buffers suffice.
        assert!(
            cam.pool_allocations() <= 2,
            "allocations: {}",
            cam.pool_allocations()
        );
    }

    #[test]
    fn shapes_move() {
        let mut cam = camera(3);
        let a = cam
            .next_frame()
            .map(|f| f.data.to_vec())
            .unwrap_or_default();
        // Small frames move sub-pixel per frame: look a second later.
        let b = (0..30)
            .filter_map(|_| cam.next_frame().ok())
            .last()
            .map(|f| f.data.to_vec())
            .unwrap_or_default();
        assert!(!a.is_empty());
        assert_ne!(a, b);
    }

    #[test]
    fn injected_fault_and_bad_size() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut c = cfg(1);
        c.fail_after_frames = Some(2);
        let mut cam =
            SyntheticCamera::new(c, Arc::clone(&clock), 4).unwrap_or_else(|e| panic!("{e}"));
        assert!(cam.next_frame().is_ok());
        assert!(cam.next_frame().is_ok());
        assert!(matches!(cam.next_frame(), Err(SourceError::Injected(2))));
        let mut c = cfg(1);
        c.width = 63;
        assert!(SyntheticCamera::new(c, clock, 4).is_err());
    }
}
