//! The synthetic venue camera: a paced NV12 source that renders a procedural
//! scene (see [`crate::venue`]) and keeps the ground truth of every frame it
//! delivers, for tests, demos and benchmarks of everything downstream.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::frame::{Frame, PixelFormat};
use crate::pool::BufferPool;
use crate::venue::truth::GroundTruth;
use crate::venue::{MAX_ATHLETES, Scene, Venue};
use crate::{Source, SourceError};

/// What the synthetic camera produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Same seed, same frames (byte for byte) and the same ground truth.
    pub seed: u64,
    /// How many athletes can be in the scene at once; each leaves and is replaced
    /// by a new one (a new id) after a short pause.
    pub athletes: u32,
    /// Fault injection for drills and tests: fail after this many frames.
    pub fail_after_frames: Option<u64>,
    /// The venue shown.
    pub scene: Scene,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            seed: 0,
            athletes: 4,
            fail_after_frames: None,
            scene: Scene::default(),
        }
    }
}

/// The camera id of a synthetic camera nobody named.
const DEFAULT_CAMERA_ID: &str = "synthetic";

/// A paced synthetic NV12 camera with ground truth.
#[derive(Debug)]
pub struct SyntheticCamera {
    camera: Arc<str>,
    cfg: SyntheticConfig,
    clock: Arc<dyn Clock>,
    venue: Venue,
    truth: GroundTruth,
    pool: BufferPool,
    seq: u64,
    start: Option<Duration>,
}

impl SyntheticCamera {
    /// Builds the camera (and pre-renders its scene's background); `pool_buffers`
    /// bounds how many frames may be in flight.
    pub fn new(
        cfg: SyntheticConfig,
        clock: Arc<dyn Clock>,
        pool_buffers: usize,
    ) -> Result<Self, SourceError> {
        if cfg.width < 16
            || cfg.height < 16
            || !cfg.width.is_multiple_of(2)
            || !cfg.height.is_multiple_of(2)
        {
            return Err(SourceError::Unsupported(format!(
                "synthetic NV12 needs even width and height of at least 16, got {}x{}",
                cfg.width, cfg.height
            )));
        }
        if cfg.width > 8192 || cfg.height > 8192 {
            return Err(SourceError::Unsupported(format!(
                "synthetic frames are at most 8192x8192, got {}x{}",
                cfg.width, cfg.height
            )));
        }
        if cfg.fps == 0 {
            return Err(SourceError::Unsupported("fps must be at least 1".into()));
        }
        if cfg.athletes > MAX_ATHLETES {
            return Err(SourceError::Unsupported(format!(
                "at most {MAX_ATHLETES} synthetic athletes, got {}",
                cfg.athletes
            )));
        }
        let len = PixelFormat::Nv12
            .frame_bytes(cfg.width, cfg.height)
            .unwrap_or(0);
        let venue = Venue::new(
            cfg.scene,
            cfg.width as usize,
            cfg.height as usize,
            cfg.fps,
            cfg.seed,
            cfg.athletes,
        );
        let mut truth = GroundTruth::default();
        venue.prepare(&mut truth);
        Ok(Self {
            camera: Arc::from(DEFAULT_CAMERA_ID),
            pool: BufferPool::preallocated(len, pool_buffers),
            cfg,
            clock,
            venue,
            truth,
            seq: 0,
            start: None,
        })
    }

    /// Names the camera its frames carry (`synthetic` until named).
    #[must_use]
    pub fn with_camera_id(mut self, camera: Arc<str>) -> Self {
        self.camera = camera;
        self
    }

    fn period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.cfg.fps))
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.seq
    }

    /// Buffers ever allocated by this camera's pool.
    pub fn pool_allocations(&self) -> u64 {
        self.pool.allocations()
    }

    /// The scene this camera shows.
    pub fn scene(&self) -> Scene {
        self.cfg.scene
    }

    /// The athlete visible at each pixel of the last frame delivered: its id
    /// (as in the truth's athletes) where the truth mask is 255, 0 elsewhere;
    /// row-major, width × height. Empty before the first frame.
    pub fn last_instances(&self) -> Vec<u32> {
        let mut out = Vec::new();
        if self.seq > 0 {
            self.venue.instances(&self.truth.mask, &mut out);
        }
        out
    }

    /// Ground truth of the last frame delivered (empty before the first).
    pub fn last_truth(&self) -> &GroundTruth {
        &self.truth
    }

    /// The next frame and its ground truth.
    pub fn next_frame_with_truth(&mut self) -> Result<(Frame, &GroundTruth), SourceError> {
        let frame = self.capture()?;
        Ok((frame, &self.truth))
    }

    fn capture(&mut self) -> Result<Frame, SourceError> {
        if let Some(limit) = self.cfg.fail_after_frames
            && self.seq >= limit
        {
            return Err(SourceError::Injected(limit));
        }
        let start = *self.start.get_or_insert_with(|| self.clock.monotonic());
        let deadline = start + self.period() * self.seq as u32;
        self.clock.sleep_until(deadline);
        let capture_mono = self.clock.monotonic();
        let capture_ns = self.clock.unix_ns();

        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        // Every buffer still held downstream: this frame is lost (the sequence
        // number advances, so the gap is visible, and the scene moves on) and
        // memory stays bounded.
        let Some(slot) = self.pool.acquire() else {
            self.venue.skip();
            self.seq += 1;
            return Err(SourceError::PoolExhausted { seq: self.seq - 1 });
        };
        let Some(pixels) = Arc::get_mut(slot) else {
            self.venue.skip();
            self.seq += 1;
            return Err(SourceError::PoolExhausted { seq: self.seq - 1 });
        };
        let (luma, chroma) = pixels.split_at_mut(w * h);
        self.venue.render(luma, chroma, &mut self.truth);
        let data = Arc::clone(slot);
        let frame = Frame {
            camera: Arc::clone(&self.camera),
            seq: self.seq,
            capture_mono,
            capture_ns,
            timecode: Frame::timecode_at(capture_ns, self.cfg.fps),
            width: self.cfg.width,
            height: self.cfg.height,
            format: PixelFormat::Nv12,
            fps: self.cfg.fps,
            keyframe: true,
            data,
        };
        self.seq += 1;
        Ok(frame)
    }
}

impl Source for SyntheticCamera {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        self.capture()
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
            ..SyntheticConfig::default()
        }
    }

    fn camera(seed: u64) -> SyntheticCamera {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000_000_000));
        SyntheticCamera::new(cfg(seed), clock, 4).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn default_scene_is_deterministic_by_seed() {
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
    fn frames_carry_the_camera_id_and_the_capture_timecode() {
        let mut cam = camera(1).with_camera_id(Arc::from("cam-7"));
        let first = cam.next_frame().unwrap_or_else(|e| panic!("{e}"));
        // 31 frames later the manual clock is 1 s + 31/30 s past midnight.
        for _ in 0..30 {
            let _ = cam.next_frame();
        }
        let later = cam.next_frame().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&*first.camera, "cam-7");
        // The clock starts 1 s after midnight (Unix ns 1e9): 00:00:01:00 at 30 fps.
        let tc = first.timecode;
        assert_eq!(
            (tc.hours, tc.minutes, tc.seconds, tc.frames, tc.rate),
            (0, 0, 1, 0, 30)
        );
        let tc = later.timecode;
        assert_eq!(
            (tc.seconds, tc.frames),
            (2, 1),
            "frame 31 is 1 s + 1 frame later"
        );
        assert!(tc.is_valid());
        // Every frame shares one id allocation.
        assert!(Arc::ptr_eq(&first.camera, &later.camera));
    }

    #[test]
    fn paced_sequenced_and_pooled() {
        let mut cam = camera(1);
        let before = cam.pool_allocations();
        assert!(before >= 1);
        let mut last = None;
        for i in 0..100u64 {
            let f = cam.next_frame().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.seq, i);
            assert_eq!(f.data.len(), 64 * 48 * 3 / 2);
            assert_eq!(cam.last_truth().seq, i);
            assert_eq!(cam.last_truth().mask.len(), 64 * 48);
            // 30 fps: frame i is captured at i/30 s on the manual clock.
            assert_eq!(
                f.capture_mono,
                Duration::from_nanos(1_000_000_000 / 30) * i as u32
            );
            last = Some(f);
        }
        drop(last);
        // Every buffer was allocated when the camera opened, none since.
        assert_eq!(cam.pool_allocations(), before);
    }

    #[test]
    fn held_buffers_drop_frames_and_the_scene_moves_on() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut cam = SyntheticCamera::new(cfg(2), clock, 2).unwrap_or_else(|e| panic!("{e}"));
        let held: Vec<_> = (0..2).filter_map(|_| cam.next_frame().ok()).collect();
        assert_eq!(held.len(), 2);
        assert!(matches!(
            cam.next_frame(),
            Err(SourceError::PoolExhausted { seq: 2 })
        ));
        drop(held);
        let f = cam.next_frame().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((f.seq, cam.last_truth().seq), (3, 3));
    }

    #[test]
    fn injected_fault_and_bad_configs() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut c = cfg(1);
        c.fail_after_frames = Some(2);
        let mut cam =
            SyntheticCamera::new(c, Arc::clone(&clock), 4).unwrap_or_else(|e| panic!("{e}"));
        assert!(cam.next_frame().is_ok());
        assert!(cam.next_frame().is_ok());
        assert!(matches!(cam.next_frame(), Err(SourceError::Injected(2))));
        for bad in [
            SyntheticConfig {
                width: 63,
                ..cfg(1)
            },
            SyntheticConfig {
                height: 8,
                ..cfg(1)
            },
            SyntheticConfig { fps: 0, ..cfg(1) },
            SyntheticConfig {
                athletes: 1000,
                ..cfg(1)
            },
        ] {
            assert!(SyntheticCamera::new(bad, Arc::clone(&clock), 4).is_err());
        }
    }
}
