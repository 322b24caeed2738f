//! Segmentation in the daemon: a pool of inference worker threads shared by every
//! camera (own OS threads, never the async runtime), fed latest-frame-wins, and the
//! model they run, swapped without a restart.
//!
//! Each camera has one slot. Submitting a frame while the camera's previous frame
//! is still waiting replaces it: the replaced frame is answered [`Outcome::Busy`]
//! and counted by the camera, so a slow model costs masks, never capture frames and
//! never silently. Cameras with waiting frames are served in turn.
//!
//! The model is a [`ModelSource`] (manifest + ONNX bytes) plus a [`BackendChoice`];
//! every worker builds its own backend from it and rebuilds when the generation
//! changes. A new model is checked (loaded and run once) before it is installed, so a
//! bad one is rejected while the old one keeps running.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};
use venue_drivers::{Frame, PixelFormat};
use venue_models::{BackendChoice, Model, ModelError, ModelSource, rle};
use venue_proto::MaskRle;

use crate::tagging::Pixels;

/// What the inference section of the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferenceConfig {
    pub backend: BackendChoice,
    /// A model directory (`manifest.toml` + `model.onnx`); `None`: the reference
    /// model built into the binary.
    pub model: Option<PathBuf>,
    /// Inference worker threads shared by all cameras.
    pub workers: usize,
}

impl Default for InferenceConfig {
    fn default() -> Self {
        InferenceConfig {
            backend: BackendChoice::default(),
            model: None,
            workers: 1,
        }
    }
}

/// A segmented frame.
#[derive(Debug)]
pub struct Segmented {
    /// The athlete mask at the model's resolution, for the wire.
    pub rle: MaskRle,
    /// The same mask, one byte per pixel (255 athlete), for the tagger.
    pub mask: Vec<u8>,
    /// A small RGB copy of the frame, when asked for (for composites, thumbnails).
    pub preview: Option<Preview>,
}

/// A packed RGB copy of a frame at a reduced size.
#[derive(Debug)]
pub struct Preview {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// The size of the preview of a `width`×`height` frame at most `max_width` wide
/// (the aspect kept, even sides, never larger than the frame).
pub fn preview_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    let w = max_width.min(width).max(2) & !1;
    let h = ((u64::from(height) * u64::from(w) / u64::from(width.max(1))) as u32).max(2) & !1;
    (w, h)
}

/// The answer to one submitted frame.
#[derive(Debug)]
pub enum Outcome {
    /// The frame's masks (and preview).
    Mask(Segmented),
    /// A newer frame of the same camera replaced this one before a worker took it.
    Busy,
    /// Inference failed (the reason is logged once per failure kind by the worker).
    Failed(String),
}

/// A model checked and ready to install.
#[derive(Debug, Clone)]
pub struct Prepared {
    source: ModelSource,
    backend: BackendChoice,
}

impl Prepared {
    /// `name version (backend, origin)` for logs.
    pub fn describe(&self) -> String {
        describe(&self.source, &self.backend)
    }
}

fn describe(source: &ModelSource, backend: &BackendChoice) -> String {
    format!(
        "{} {} ({}, {})",
        source.manifest.name,
        source.manifest.version,
        backend.name(),
        source.origin
    )
}

/// Reads the configured model and proves it works: builds it on the configured
/// backend and runs it once on a blank frame. Blocking (hundreds of ms): call it
/// off the async workers.
pub fn prepare(config: &InferenceConfig) -> Result<Prepared, ModelError> {
    let source = match &config.model {
        Some(dir) => ModelSource::from_dir(dir)?,
        None => ModelSource::reference()?,
    };
    let mut model = source.build(&config.backend)?;
    let (w, h) = (
        source.manifest.input.width as usize,
        source.manifest.input.height as usize,
    );
    model.segment_rgb(&vec![0u8; w * h * 3], w, h)?;
    Ok(Prepared {
        source,
        backend: config.backend.clone(),
    })
}

/// Whether `config` would load exactly the model and backend that are installed.
pub fn same_model(installed: &Prepared, config: &InferenceConfig) -> Result<bool, ModelError> {
    if installed.backend != config.backend {
        return Ok(false);
    }
    let source = match &config.model {
        Some(dir) => ModelSource::from_dir(dir)?,
        None => ModelSource::reference()?,
    };
    Ok(source.onnx == installed.source.onnx
        && source.manifest == installed.source.manifest
        && source.origin == installed.source.origin)
}

/// A frame handed to the workers.
#[derive(Debug)]
pub struct Submitted {
    /// Answers with the frame's mask (or why there is none).
    pub rx: oneshot::Receiver<Outcome>,
    /// The camera's previous frame was still waiting and is now dropped.
    pub replaced: bool,
}

/// Identifies one camera's slot in the pool.
pub type SlotId = u64;

struct Job {
    frame: Frame,
    /// Width of the preview wanted with the mask; 0 for none.
    preview_width: u32,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    /// At most one waiting frame per camera.
    slots: BTreeMap<SlotId, Job>,
    /// Cameras with a waiting frame, in the order they first submitted it.
    order: VecDeque<SlotId>,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    model: Mutex<Arc<Prepared>>,
    generation: AtomicU64,
    next_slot: AtomicU64,
}

/// The inference worker pool; dropping it stops the workers after their current job.
pub struct Inference {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Inference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inference")
            .field("workers", &self.workers.len())
            .field("generation", &self.inner.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl Inference {
    /// Starts `workers` threads running `model`.
    pub fn start(model: Prepared, workers: usize) -> std::io::Result<Inference> {
        info!(model = %model.describe(), workers, "segmentation model loaded");
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            model: Mutex::new(Arc::new(model)),
            generation: AtomicU64::new(1),
            next_slot: AtomicU64::new(0),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let shared = Arc::clone(&inner);
            let handle = std::thread::Builder::new()
                .name(format!("infer-{i}"))
                .spawn(move || worker(&shared));
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let pool = Inference {
                        inner,
                        workers: handles,
                    };
                    drop(pool);
                    return Err(e);
                }
            }
        }
        Ok(Inference {
            inner,
            workers: handles,
        })
    }

    /// A new camera slot.
    pub fn slot(&self) -> SlotId {
        self.inner.next_slot.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `frame` for `slot`. A frame of the same slot still waiting is answered
    /// [`Outcome::Busy`] and replaced (latest frame wins): `replaced` says so, for the
    /// camera to count. Never blocks on inference.
    pub fn submit(&self, slot: SlotId, frame: Frame, preview_width: u32) -> Submitted {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            frame,
            preview_width,
            reply,
        };
        let refuse = |job: Job, why: &str| {
            let _ = job.reply.send(Outcome::Failed(why.into()));
        };
        let Ok(mut q) = self.inner.queue.lock() else {
            refuse(job, "inference queue poisoned");
            return Submitted {
                rx,
                replaced: false,
            };
        };
        if q.stop {
            refuse(job, "inference stopped");
            return Submitted {
                rx,
                replaced: false,
            };
        }
        let replaced = match q.slots.insert(slot, job) {
            Some(old) => {
                let _ = old.reply.send(Outcome::Busy);
                true
            }
            None => {
                q.order.push_back(slot);
                false
            }
        };
        drop(q);
        self.inner.wake.notify_one();
        Submitted { rx, replaced }
    }

    /// Forgets a camera's waiting frame (the camera stopped).
    pub fn release(&self, slot: SlotId) {
        if let Ok(mut q) = self.inner.queue.lock() {
            q.slots.remove(&slot);
            q.order.retain(|s| *s != slot);
        }
    }

    /// The installed model.
    pub fn installed(&self) -> Option<Arc<Prepared>> {
        self.inner.model.lock().ok().map(|m| Arc::clone(&m))
    }

    /// Installs a prepared model: each worker switches to it before its next frame.
    pub fn install(&self, model: Prepared) {
        let described = model.describe();
        if let Ok(mut m) = self.inner.model.lock() {
            *m = Arc::new(model);
            self.inner.generation.fetch_add(1, Ordering::AcqRel);
            info!(model = %described, "segmentation model swapped in");
        }
    }
}

impl Drop for Inference {
    fn drop(&mut self) {
        if let Ok(mut q) = self.inner.queue.lock() {
            q.stop = true;
            // Waiting frames are answered (their receivers see the sender dropped).
            q.slots.clear();
            q.order.clear();
        }
        self.inner.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Takes the next waiting frame, or `None` when the pool stops.
fn next_job(inner: &Inner) -> Option<Job> {
    let mut q = inner.queue.lock().ok()?;
    loop {
        if q.stop {
            return None;
        }
        if let Some(slot) = q.order.pop_front()
            && let Some(job) = q.slots.remove(&slot)
        {
            return Some(job);
        }
        q = inner.wake.wait(q).ok()?;
    }
}

fn worker(inner: &Inner) {
    // (generation, model) this worker runs; built on first use and after a swap.
    let mut current: Option<(u64, Model)> = None;
    let mut last_error = String::new();
    while let Some(job) = next_job(inner) {
        let generation = inner.generation.load(Ordering::Acquire);
        if current.as_ref().is_none_or(|(g, _)| *g != generation) {
            let prepared = inner.model.lock().ok().map(|m| Arc::clone(&m));
            current = match prepared.map(|p| p.source.build(&p.backend)) {
                Some(Ok(model)) => Some((generation, model)),
                Some(Err(e)) => {
                    // Checked by `prepare`, so this is unexpected (e.g. out of memory).
                    error!(error = %e, "inference worker cannot build the model");
                    None
                }
                None => None,
            };
            debug!(generation, "inference worker switched model");
        }
        let outcome = match current.as_mut() {
            Some((_, model)) => run(model, &job.frame, job.preview_width),
            None => Outcome::Failed("no model".into()),
        };
        if let Outcome::Failed(why) = &outcome
            && *why != last_error
        {
            warn!(error = %why, "inference failed");
            last_error.clone_from(why);
        }
        let _ = job.reply.send(outcome);
    }
}

fn run(model: &mut Model, frame: &Frame, preview_width: u32) -> Outcome {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mask = match frame.format {
        PixelFormat::Nv12 => model.segment_nv12(&frame.data, w, h),
        PixelFormat::Rgb24 => model.segment_rgb(&frame.data, w, h),
        PixelFormat::Yuyv => model.segment_yuyv(&frame.data, w, h),
        other => {
            return Outcome::Failed(format!("frames in {other:?} cannot be segmented yet"));
        }
    };
    let mask = match mask {
        Ok(mask) => mask,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let pixels = match frame.format {
        PixelFormat::Nv12 => Some(Pixels::Nv12(&frame.data)),
        PixelFormat::Rgb24 => Some(Pixels::Rgb(&frame.data)),
        _ => None,
    };
    let preview = pixels.filter(|_| preview_width > 0).map(|px| {
        let (pw, ph) = preview_size(frame.width, frame.height, preview_width);
        let mut rgb = Vec::new();
        px.sample(
            frame.width,
            frame.height,
            pw as usize,
            ph as usize,
            &mut rgb,
        );
        Preview {
            width: pw,
            height: ph,
            rgb,
        }
    });
    Outcome::Mask(Segmented {
        rle: MaskRle {
            width: mask.width as u32,
            height: mask.height as u32,
            runs: rle::rle_encode(&mask.data),
        },
        mask: mask.data,
        preview,
    })
}

/// When each camera's next frame is due for inference, at its configured rate.
#[derive(Debug, Clone)]
pub struct RateGate {
    period_ns: u64,
    next_due_ns: u64,
}

impl RateGate {
    /// `per_second` inferences a second (0: never).
    pub fn new(per_second: u32) -> RateGate {
        RateGate {
            period_ns: if per_second == 0 {
                0
            } else {
                1_000_000_000 / u64::from(per_second)
            },
            next_due_ns: 0,
        }
    }

    /// Whether the frame captured at `capture_ns` is due. Keeps the phase so that
    /// 10/s on a 30 fps camera takes every third frame, and does not try to catch up
    /// after a pause.
    pub fn due(&mut self, capture_ns: u64) -> bool {
        if self.period_ns == 0 {
            return false;
        }
        // Half a frame of slack: capture timestamps jitter around the nominal period.
        if capture_ns + self.period_ns / 8 < self.next_due_ns {
            return false;
        }
        self.next_due_ns = if capture_ns >= self.next_due_ns + self.period_ns {
            capture_ns + self.period_ns
        } else {
            self.next_due_ns + self.period_ns
        };
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;

    fn frame(seq: u64, w: u32, h: u32) -> Frame {
        Frame {
            camera: Arc::from("cam"),
            seq,
            capture_mono: Duration::ZERO,
            capture_ns: seq,
            timecode: Frame::timecode_at(seq, 30),
            width: w,
            height: h,
            format: PixelFormat::Nv12,
            fps: 30,
            keyframe: true,
            data: Arc::new(vec![128u8; (w * h * 3 / 2) as usize]),
        }
    }

    #[test]
    fn rate_gate_takes_every_third_frame_at_a_third_of_the_rate() {
        let mut gate = RateGate::new(10);
        let period = 1_000_000_000 / 30;
        let due: Vec<bool> = (0..9).map(|i| gate.due(i * period)).collect();
        assert_eq!(
            due,
            [true, false, false, true, false, false, true, false, false]
        );
        let mut off = RateGate::new(0);
        assert!(!off.due(0));
        let mut all = RateGate::new(30);
        assert!((0..30).all(|i| all.due(i * period)));
    }

    #[test]
    fn rate_gate_does_not_catch_up_after_a_pause() {
        let mut gate = RateGate::new(10);
        assert!(gate.due(0));
        assert!(gate.due(5_000_000_000));
        assert!(!gate.due(5_050_000_000));
        assert!(gate.due(5_100_000_000));
    }

    #[test]
    fn frames_get_masks_and_the_latest_frame_wins() {
        let pool = Inference::start(prepare(&InferenceConfig::default()).unwrap(), 1).unwrap();
        let slot = pool.slot();
        let first = pool.submit(slot, frame(0, 320, 180), 0).rx;
        // The worker is busy with (or about to take) the first frame; of the next
        // two submitted at once, the older one is replaced.
        let second = pool.submit(slot, frame(1, 320, 180), 0).rx;
        let third = pool.submit(slot, frame(2, 320, 180), 64);
        let replaced = third.replaced;
        let third = third.rx;
        let outcomes: Vec<Outcome> = [first, second, third]
            .into_iter()
            .map(|rx| rx.blocking_recv().unwrap())
            .collect();
        let masks = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Mask(_)))
            .count();
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Busy))
            .count();
        assert_eq!(masks + busy, 3, "{outcomes:?}");
        assert!(busy >= 1, "{outcomes:?}");
        // Replacing the second frame was reported to the submitter.
        assert_eq!(
            replaced,
            matches!(outcomes[1], Outcome::Busy),
            "{outcomes:?}"
        );
        assert!(matches!(outcomes[2], Outcome::Mask(_)), "{outcomes:?}");
        let Outcome::Mask(m) = &outcomes[2] else {
            unreachable!()
        };
        assert_eq!((m.rle.width, m.rle.height), (256, 144));
        assert!(m.rle.is_consistent());
        assert_eq!(m.mask.len(), 256 * 144);
        // The preview asked for: 64 wide, the frame's aspect.
        let p = m.preview.as_ref().expect("preview");
        assert_eq!((p.width, p.height, p.rgb.len()), (64, 36, 64 * 36 * 3));
    }

    #[test]
    fn unsupported_formats_fail_clearly() {
        let pool = Inference::start(prepare(&InferenceConfig::default()).unwrap(), 1).unwrap();
        let mut f = frame(0, 64, 64);
        f.format = PixelFormat::Mjpeg;
        let out = pool.submit(pool.slot(), f, 0).rx.blocking_recv().unwrap();
        assert!(
            matches!(&out, Outcome::Failed(why) if why.contains("Mjpeg")),
            "{out:?}"
        );
    }

    #[test]
    fn a_bad_model_directory_is_rejected_and_the_old_model_keeps_running() {
        let pool = Inference::start(prepare(&InferenceConfig::default()).unwrap(), 1).unwrap();
        let dir = std::env::temp_dir().join(format!("venue-bad-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("manifest.toml"), "[model]\nname = 1\n").unwrap();
        let bad = InferenceConfig {
            model: Some(dir.clone()),
            ..InferenceConfig::default()
        };
        let err = prepare(&bad).unwrap_err().to_string();
        assert!(err.contains("manifest.toml"), "{err}");
        let out = pool
            .submit(pool.slot(), frame(0, 320, 180), 0)
            .rx
            .blocking_recv();
        assert!(matches!(out, Ok(Outcome::Mask(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_installed_model_is_used_by_the_next_frame() {
        let pool = Inference::start(prepare(&InferenceConfig::default()).unwrap(), 1).unwrap();
        let before = pool.installed().unwrap();
        assert!(same_model(&before, &InferenceConfig::default()).unwrap());
        let tract2 = InferenceConfig {
            backend: BackendChoice::Tract { threads: 2 },
            ..InferenceConfig::default()
        };
        assert!(!same_model(&before, &tract2).unwrap());
        pool.install(prepare(&tract2).unwrap());
        assert_eq!(
            pool.installed().unwrap().backend,
            BackendChoice::Tract { threads: 2 }
        );
        let out = pool
            .submit(pool.slot(), frame(0, 320, 180), 0)
            .rx
            .blocking_recv();
        assert!(matches!(out, Ok(Outcome::Mask(_))));
    }
}
