//! The device side of V4L2 capture (feature `v4l2`): listing cameras with their
//! modes, opening one (negotiate the format, set the rate and controls, mmap
//! streaming) and `V4l2Camera`, the `Source` that keeps a camera running across
//! unplugs by reopening it with backoff.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use v4l::buffer::{Flags as BufferFlags, Type as BufferType};
use v4l::control::{Control, Value};
use v4l::device::Device;
use v4l::fraction::Fraction;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture as _;
use v4l::video::capture::Parameters;

use super::controls::{self, ControlValue};
use super::copy::{RowLayout, pack_rows};
use super::ioctl::{self, CAP_STREAMING, CAP_VIDEO_CAPTURE};
use super::listing::{CameraInfo, ListingProblem, video_nodes};
use super::negotiate::{
    FormatCaps, FourCc, Interval, IntervalRange, Mode, SizeCaps, SizeRange, choose_mode,
    describe_offer, fit_size,
};
use super::state::{Fault, Link, LinkEvent, classify};
use super::{V4l2Config, V4l2Status};
use crate::clock::Clock;
use crate::frame::{Frame, PixelFormat};
use crate::gst::StopSignal;
use crate::pool::BufferPool;
use crate::{Source, SourceError};

/// Every V4L2 capture device under `/dev`, and the nodes that could not be read.
/// Nodes that are not capture devices (a UVC camera's metadata node, codecs,
/// outputs) are left out.
pub fn list_cameras() -> (Vec<CameraInfo>, Vec<ListingProblem>) {
    let mut cameras = Vec::new();
    let mut problems = Vec::new();
    for path in video_nodes(Path::new("/dev")) {
        match describe(&path) {
            Ok(Some(info)) => cameras.push(info),
            Ok(None) => {}
            Err(e) => problems.push(ListingProblem {
                path,
                reason: e.to_string(),
            }),
        }
    }
    (cameras, problems)
}

fn describe(path: &Path) -> std::io::Result<Option<CameraInfo>> {
    let dev = Device::with_path(path)?;
    let id = ioctl::query_identity(&dev)?;
    if id.caps & CAP_VIDEO_CAPTURE == 0 {
        return Ok(None);
    }
    let formats = enumerate(&dev, None)?;
    if formats.is_empty() {
        return Ok(None);
    }
    Ok(Some(CameraInfo {
        path: path.to_path_buf(),
        card: id.card,
        driver: id.driver,
        bus: id.bus,
        formats,
    }))
}

/// The device's capture formats with sizes and rates. Rates of a stepwise size
/// range are queried at the size fitted to `request`, or at the largest size.
fn enumerate(dev: &Device, request: Option<(u32, u32)>) -> std::io::Result<Vec<FormatCaps>> {
    let mut out = Vec::new();
    for desc in dev.enum_formats()? {
        let fourcc = FourCc(desc.fourcc.repr);
        // A format whose sizes cannot be listed is still shown (with none).
        let sizes = dev.enum_framesizes(desc.fourcc).unwrap_or_default();
        let mut caps = Vec::new();
        for fs in sizes {
            let size = match fs.size {
                FrameSizeEnum::Discrete(d) => SizeRange::Discrete {
                    width: d.width,
                    height: d.height,
                },
                FrameSizeEnum::Stepwise(s) => SizeRange::Stepwise {
                    min_width: s.min_width,
                    max_width: s.max_width,
                    step_width: s.step_width,
                    min_height: s.min_height,
                    max_height: s.max_height,
                    step_height: s.step_height,
                },
            };
            let at = match (size, request) {
                (SizeRange::Stepwise { .. }, Some((w, h))) => fit_size(size, w, h),
                (SizeRange::Stepwise { .. }, None) => fit_size(size, u32::MAX, u32::MAX),
                (SizeRange::Discrete { width, height }, _) => Some((width, height)),
            };
            let intervals = at
                .map(|(w, h)| {
                    dev.enum_frameintervals(desc.fourcc, w, h)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|fi| match fi.interval {
                            FrameIntervalEnum::Discrete(f) => IntervalRange::Discrete(interval(f)),
                            FrameIntervalEnum::Stepwise(s) => IntervalRange::Stepwise {
                                min: interval(s.min),
                                max: interval(s.max),
                                step: interval(s.step),
                            },
                        })
                        .collect()
                })
                .unwrap_or_default();
            caps.push(SizeCaps { size, intervals });
        }
        out.push(FormatCaps {
            fourcc,
            description: desc.description,
            sizes: caps,
        });
    }
    Ok(out)
}

fn interval(f: Fraction) -> Interval {
    Interval::new(f.numerator, f.denominator)
}

/// Why a device could not be started.
#[derive(Debug)]
enum StartError {
    /// Worth retrying (unplugged, busy, I/O error).
    Transient(String),
    /// The configuration cannot be met on this device.
    Config(String),
}

impl StartError {
    fn io(what: &str, path: &Path, e: &std::io::Error) -> Self {
        let msg = format!("{}: {what}: {e}", path.display());
        match classify(e) {
            Fault::Lost => Self::Transient(msg),
            Fault::Config => Self::Config(msg),
        }
    }
}

/// A dequeued buffer, borrowed until the next dequeue.
struct Buffer<'a> {
    data: &'a [u8],
    /// The driver flagged it as damaged.
    damaged: bool,
}

/// An open, streaming device as the capture loop sees it. The seam lets the loop
/// (stall, reopen, sequence numbers, pool) be tested with a scripted device.
trait Capture: Send {
    fn mode(&self) -> Mode;
    /// Row layout for raw formats; `None` for compressed ones.
    fn layout(&self) -> Option<RowLayout>;
    fn fps(&self) -> u32;
    /// Waits for the next filled buffer (returning the previous one to the driver).
    fn next(&mut self) -> std::io::Result<Buffer<'_>>;
}

/// Opens a device for the capture loop.
trait Opener: Send {
    fn open(&mut self, cfg: &V4l2Config) -> Result<Box<dyn Capture>, StartError>;
}

/// The real thing: `Session::start`.
struct DeviceOpener;

impl Opener for DeviceOpener {
    fn open(&mut self, cfg: &V4l2Config) -> Result<Box<dyn Capture>, StartError> {
        Ok(Box::new(Session::start(cfg)?))
    }
}

/// An open, configured, streaming device.
struct Session {
    // Declared before `_device` so the stream (and its buffers) go first.
    stream: Option<Stream<'static>>,
    _device: Device,
    mode: Mode,
    /// Row layout for raw formats; `None` for compressed ones.
    layout: Option<RowLayout>,
    fps: u32,
}

impl Session {
    fn start(cfg: &V4l2Config) -> Result<Self, StartError> {
        let path = cfg.path.as_path();
        let dev = Device::with_path(path).map_err(|e| StartError::io("open", path, &e))?;
        let id = ioctl::query_identity(&dev).map_err(|e| StartError::io("query", path, &e))?;
        if id.caps & CAP_VIDEO_CAPTURE == 0 || id.caps & CAP_STREAMING == 0 {
            return Err(StartError::Config(format!(
                "{} ({}) is not a streaming video capture device",
                path.display(),
                id.card
            )));
        }
        let caps = enumerate(&dev, Some((cfg.mode.width, cfg.mode.height)))
            .map_err(|e| StartError::io("list formats", path, &e))?;
        let mode = choose_mode(&caps, &cfg.mode)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;

        let got = ioctl::set_format(&dev, mode.width, mode.height, mode.fourcc.0)
            .map_err(|e| StartError::io("set format", path, &e))?;
        if got.fourcc != mode.fourcc.0 || got.width != mode.width || got.height != mode.height {
            return Err(StartError::Config(format!(
                "{}: asked for {mode}, the driver set {} {}x{}; it offers: {}",
                path.display(),
                FourCc(got.fourcc),
                got.width,
                got.height,
                describe_offer(&caps)
            )));
        }
        let mut fps = cfg.mode.fps;
        if let Some(i) = mode.interval {
            // Not every driver lets the rate be set (S_PARM is optional): then it
            // runs at its own rate, which the frame timestamps show.
            match dev.set_params(&Parameters::new(Fraction::new(i.numerator, i.denominator))) {
                Ok(p) => {
                    if let Some(f) = interval(p.interval).fps() {
                        fps = f.round().max(1.0) as u32;
                    }
                }
                Err(e) => tracing::warn!(
                    device = %path.display(), error = %e,
                    "the driver did not accept the frame rate; running at its own"
                ),
            }
        }
        apply_controls(&dev, cfg, path)?;

        let layout = row_layout(mode.format, mode.width, mode.height, got.stride)
            .map_err(|why| StartError::Config(format!("{}: {why}", path.display())))?;
        let mut stream = Stream::with_buffers(&dev, BufferType::VideoCapture, cfg.buffers)
            .map_err(|e| StartError::io("allocate buffers", path, &e))?;
        stream.set_timeout(cfg.frame_timeout);
        Ok(Self {
            stream: Some(stream),
            _device: dev,
            mode,
            layout,
            fps,
        })
    }
}

impl Capture for Session {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn layout(&self) -> Option<RowLayout> {
        self.layout
    }

    fn fps(&self) -> u32 {
        self.fps
    }

    fn next(&mut self) -> std::io::Result<Buffer<'_>> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(std::io::Error::from_raw_os_error(19));
        };
        let (buf, meta) = CaptureStream::next(stream)?;
        let used = (meta.bytesused as usize).min(buf.len());
        Ok(Buffer {
            data: &buf[..used],
            damaged: meta.flags.contains(BufferFlags::ERROR),
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut stream) = self.stream.take() else {
            return;
        };
        // `v4l`'s stream panics in its own Drop when STREAMOFF fails for any reason
        // but ENODEV. Stop it here first; if that fails the device is in an unknown
        // state, and leaking its buffers and descriptor beats a panic.
        match stream.stop() {
            Ok(()) => drop(stream),
            Err(e) if e.raw_os_error() == Some(19) => drop(stream),
            Err(e) => {
                tracing::warn!(error = %e, "stopping the stream failed; its buffers are leaked");
                std::mem::forget(stream);
            }
        }
    }
}

fn apply_controls(dev: &Device, cfg: &V4l2Config, path: &Path) -> Result<(), StartError> {
    for setting in &cfg.controls {
        let range = ioctl::query_range(dev, setting.name.id())
            .map_err(|e| StartError::io("query control", path, &e))?;
        let value = controls::device_value(*setting, range)
            .map_err(|e| StartError::Config(format!("{}: {e}", path.display())))?;
        let value = match setting.value {
            ControlValue::Bool(_) if setting.name != controls::ControlName::ExposureAuto => {
                Value::Boolean(value != 0)
            }
            _ => Value::Integer(value),
        };
        dev.set_control(Control {
            id: setting.name.id(),
            value,
        })
        .map_err(|e| StartError::io(&format!("set control {}", setting.name), path, &e))?;
    }
    Ok(())
}

/// Where each row of a raw frame lies in a device buffer with `stride` bytes per
/// line (0 means packed). `Ok(None)` for compressed formats.
fn row_layout(
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
) -> Result<Option<RowLayout>, String> {
    let (w, h) = (width as usize, height as usize);
    let (row_bytes, rows) = match format {
        PixelFormat::Nv12 => {
            if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
                return Err(format!(
                    "NV12 needs an even size, the device gave {width}x{height}"
                ));
            }
            (w, h + h / 2)
        }
        PixelFormat::Yuyv => (w * 2, h),
        PixelFormat::Rgb24 => (w * 3, h),
        PixelFormat::Mjpeg | PixelFormat::H264 | PixelFormat::H265 => return Ok(None),
    };
    let stride = if stride == 0 {
        row_bytes
    } else {
        stride as usize
    };
    Ok(Some(RowLayout {
        row_bytes,
        stride,
        rows,
    }))
}

/// A V4L2 camera as a [`Source`]. Each dequeued buffer is copied once into a pooled
/// buffer (the mmap'd buffer must go back to the driver at once; sharing it would
/// stall capture while consumers hold the frame) and stamped from the `Clock`.
///
/// When the device goes away (ENODEV, EIO, no frame within `frame_timeout`),
/// `next_frame` does not fail: it reports `stalled`, reopens the same path with
/// capped exponential backoff and goes on with the next sequence number. It
/// returns an error only for a configuration the device cannot meet
/// (`Unsupported`, state `failed`), an exhausted pool (`PoolExhausted`) and
/// shutdown (`Stopped`, once the stop flag is set).
pub struct V4l2Camera {
    cfg: V4l2Config,
    clock: Arc<dyn Clock>,
    stop: StopSignal,
    status: Arc<Mutex<V4l2Status>>,
    link: Link,
    opener: Box<dyn Opener>,
    session: Option<Box<dyn Capture>>,
    pool: Option<BufferPool>,
    /// The mode the pool's buffers were sized for.
    pool_mode: Option<Mode>,
    pool_buffers: usize,
    seq: u64,
}

impl std::fmt::Debug for V4l2Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Camera")
            .field("path", &self.cfg.path)
            .field("state", &self.link.state())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// How long a stalled camera sleeps at most before looking at the stop flag again.
const STOP_POLL: Duration = Duration::from_millis(100);

impl V4l2Camera {
    /// A camera for `cfg`; nothing is opened until the first `next_frame`. `stop`
    /// ends a wait for a frame or a reopen; `pool_buffers` bounds frames in flight.
    pub fn new(
        cfg: V4l2Config,
        clock: Arc<dyn Clock>,
        stop: StopSignal,
        pool_buffers: usize,
    ) -> Result<Self, SourceError> {
        Self::with_opener(cfg, clock, stop, pool_buffers, Box::new(DeviceOpener))
    }

    fn with_opener(
        cfg: V4l2Config,
        clock: Arc<dyn Clock>,
        stop: StopSignal,
        pool_buffers: usize,
        opener: Box<dyn Opener>,
    ) -> Result<Self, SourceError> {
        cfg.validate()
            .map_err(|e| SourceError::Unsupported(e.to_string()))?;
        Ok(Self {
            opener,
            link: Link::new(cfg.backoff),
            status: Arc::new(Mutex::new(V4l2Status::default())),
            cfg,
            clock,
            stop,
            session: None,
            pool: None,
            pool_mode: None,
            pool_buffers,
            seq: 0,
        })
    }

    /// A live view of the camera's state, for health reports.
    pub fn status(&self) -> Arc<Mutex<V4l2Status>> {
        Arc::clone(&self.status)
    }

    /// The device path this camera reopens.
    pub fn path(&self) -> &Path {
        &self.cfg.path
    }

    fn event(&mut self, event: LinkEvent) {
        let now = self.clock.monotonic();
        self.link.on(event, now);
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        s.state = self.link.state();
        s.next_retry = self.link.next_retry();
        s.last_error = self.link.last_error().map(str::to_owned);
        s.reconnects = self.link.reconnects();
        s.mode = self.session.as_ref().map(|x| x.mode());
    }

    fn stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    /// Opens the device if it is due; returns an error only for `failed`.
    fn ensure_open(&mut self) -> Result<(), SourceError> {
        if self.session.is_some() {
            return Ok(());
        }
        let now = self.clock.monotonic();
        if self.link.next_retry().is_some() {
            if !self.link.reopen_due(now) {
                let wake = self
                    .link
                    .next_retry()
                    .map_or(now, |t| t.min(now + STOP_POLL));
                self.clock.sleep_until(wake);
                return Ok(());
            }
            self.event(LinkEvent::ReopenStarted);
        }
        match self.opener.open(&self.cfg) {
            Ok(session) => {
                tracing::info!(device = %self.cfg.path.display(), mode = %session.mode(), "camera streaming");
                // Compressed frames vary in size: their buffers start empty and
                // grow to the largest frame seen, then keep their capacity.
                let needed = session.layout().map_or(0, RowLayout::packed_len);
                // A device that comes back in another mode needs other buffers.
                if self.pool.is_none() || self.pool_mode != Some(session.mode()) {
                    self.pool = Some(if needed > 0 {
                        BufferPool::preallocated(needed, self.pool_buffers)
                    } else {
                        BufferPool::new(needed, self.pool_buffers)
                    });
                    self.pool_mode = Some(session.mode());
                }
                self.session = Some(session);
                self.event(LinkEvent::Opened);
                Ok(())
            }
            Err(StartError::Transient(why)) => {
                tracing::warn!(device = %self.cfg.path.display(), reason = %why, "camera not available; retrying");
                self.event(LinkEvent::OpenFailed(why));
                Ok(())
            }
            Err(StartError::Config(why)) => {
                self.event(LinkEvent::ConfigRejected(why.clone()));
                Err(SourceError::Unsupported(why))
            }
        }
    }

    fn lose(&mut self, why: String) {
        tracing::warn!(device = %self.cfg.path.display(), reason = %why, "camera stalled; reopening");
        self.session = None;
        self.event(LinkEvent::Lost(why));
    }
}

/// What one dequeue gave.
enum Dequeued {
    Frame(Frame),
    /// A buffer the driver flagged as damaged or too short: skipped, not a stall.
    Skipped(String),
    Exhausted,
    Lost(String),
}

impl Source for V4l2Camera {
    fn next_frame(&mut self) -> Result<Frame, SourceError> {
        loop {
            if self.stopped() {
                self.session = None;
                self.event(LinkEvent::Stop);
                return Err(SourceError::Stopped);
            }
            if self.link.state() == super::LinkState::Failed {
                return Err(SourceError::Unsupported(
                    self.link
                        .last_error()
                        .unwrap_or("configuration rejected")
                        .to_owned(),
                ));
            }
            self.ensure_open()?;
            let (Some(session), Some(pool)) = (self.session.as_mut(), self.pool.as_mut()) else {
                continue;
            };
            let result = dequeue(
                session.as_mut(),
                pool,
                &*self.clock,
                &self.cfg.camera,
                self.seq,
            );
            match result {
                Dequeued::Frame(frame) => {
                    self.seq += 1;
                    self.event(LinkEvent::Frame);
                    return Ok(frame);
                }
                Dequeued::Skipped(why) => {
                    tracing::debug!(device = %self.cfg.path.display(), reason = %why, "buffer skipped");
                }
                Dequeued::Exhausted => {
                    self.seq += 1;
                    return Err(SourceError::PoolExhausted { seq: self.seq - 1 });
                }
                Dequeued::Lost(why) => self.lose(why),
            }
        }
    }
}

fn dequeue(
    session: &mut dyn Capture,
    pool: &mut BufferPool,
    clock: &dyn Clock,
    camera: &Arc<str>,
    seq: u64,
) -> Dequeued {
    let (mode, layout, fps) = (session.mode(), session.layout(), session.fps());
    let buffer = match session.next() {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Dequeued::Lost("no frame within the frame timeout".into());
        }
        Err(e) => return Dequeued::Lost(format!("dequeue: {e}")),
    };
    // The kernel's capture time would be better than ours once the clocks are tied
    // together (PTP); until then the Clock is the one time base of the pipeline.
    let capture_mono = clock.monotonic();
    let capture_ns = clock.unix_ns();
    if buffer.damaged {
        return Dequeued::Skipped("the driver flagged the buffer as damaged".into());
    }
    let payload = buffer.data;
    let Some(slot) = pool.acquire() else {
        return Dequeued::Exhausted;
    };
    let Some(pixels) = Arc::get_mut(slot) else {
        return Dequeued::Exhausted;
    };
    match layout {
        Some(layout) => {
            if let Err(e) = pack_rows(payload, layout, pixels) {
                return Dequeued::Skipped(e.to_string());
            }
        }
        None => {
            if payload.is_empty() {
                return Dequeued::Skipped("empty compressed buffer".into());
            }
            pixels.clear();
            pixels.extend_from_slice(payload);
        }
    }
    Dequeued::Frame(Frame {
        camera: Arc::clone(camera),
        seq,
        capture_mono,
        capture_ns,
        timecode: Frame::timecode_at(capture_ns, fps),
        width: mode.width,
        height: mode.height,
        format: mode.format,
        fps,
        // Raw pictures (and MJPEG frames) each stand alone.
        keyframe: true,
        data: Arc::clone(slot),
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn raw_layouts_follow_the_format() {
        let l = row_layout(PixelFormat::Nv12, 640, 480, 0).unwrap().unwrap();
        assert_eq!((l.row_bytes, l.stride, l.rows), (640, 640, 720));
        let l = row_layout(PixelFormat::Yuyv, 640, 480, 1344)
            .unwrap()
            .unwrap();
        assert_eq!((l.row_bytes, l.stride, l.rows), (1280, 1344, 480));
        assert_eq!(row_layout(PixelFormat::Mjpeg, 640, 480, 0), Ok(None));
        assert!(row_layout(PixelFormat::Nv12, 641, 480, 0).is_err());
    }

    /// What a scripted device does on each open and each dequeue.
    enum Step {
        /// The open fails with this errno.
        OpenFails(i32),
        /// The open is refused for good (configuration).
        OpenRejected,
        /// The open succeeds; the session then delivers these dequeues.
        Opens(Vec<Dq>),
    }

    enum Dq {
        Frame(u8),
        Damaged,
        Err(i32),
        Timeout,
    }

    struct Scripted {
        steps: std::collections::VecDeque<Step>,
    }

    struct ScriptedSession {
        dqs: std::collections::VecDeque<Dq>,
        buf: Vec<u8>,
    }

    const MODE: Mode = Mode {
        format: PixelFormat::Yuyv,
        fourcc: FourCc::YUYV,
        width: 4,
        height: 2,
        interval: None,
    };

    impl Opener for Scripted {
        fn open(&mut self, _cfg: &V4l2Config) -> Result<Box<dyn Capture>, StartError> {
            match self.steps.pop_front() {
                Some(Step::Opens(dqs)) => Ok(Box::new(ScriptedSession {
                    dqs: dqs.into(),
                    buf: Vec::new(),
                })),
                Some(Step::OpenFails(errno)) => Err(StartError::io(
                    "open",
                    Path::new("/dev/video9"),
                    &std::io::Error::from_raw_os_error(errno),
                )),
                Some(Step::OpenRejected) => Err(StartError::Config("no YUYV".into())),
                None => Err(StartError::Transient("script ended".into())),
            }
        }
    }

    impl Capture for ScriptedSession {
        fn mode(&self) -> Mode {
            MODE
        }
        fn layout(&self) -> Option<RowLayout> {
            // 4x2 YUYV, rows padded to 10 bytes.
            Some(RowLayout {
                row_bytes: 8,
                stride: 10,
                rows: 2,
            })
        }
        fn fps(&self) -> u32 {
            30
        }
        fn next(&mut self) -> std::io::Result<Buffer<'_>> {
            let damaged = match self.dqs.pop_front() {
                Some(Dq::Frame(v)) => {
                    self.buf = vec![v; 20];
                    false
                }
                Some(Dq::Damaged) => {
                    self.buf = vec![0; 20];
                    true
                }
                Some(Dq::Err(errno)) => return Err(std::io::Error::from_raw_os_error(errno)),
                Some(Dq::Timeout) | None => {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            };
            Ok(Buffer {
                data: &self.buf,
                damaged,
            })
        }
    }

    fn scripted(steps: Vec<Step>) -> (V4l2Camera, Arc<crate::ManualClock>) {
        let clock = Arc::new(crate::ManualClock::new(1_000));
        let cam = V4l2Camera::with_opener(
            V4l2Config::new(PathBuf::from("/dev/video9")),
            Arc::clone(&clock) as Arc<dyn Clock>,
            StopSignal::new(),
            4,
            Box::new(Scripted {
                steps: steps.into(),
            }),
        )
        .unwrap();
        (cam, clock)
    }

    #[test]
    fn unplug_mid_stream_reopens_and_the_sequence_goes_on() {
        let (mut cam, clock) = scripted(vec![
            Step::Opens(vec![Dq::Frame(1), Dq::Damaged, Dq::Frame(2), Dq::Err(19)]),
            Step::OpenFails(2),
            Step::OpenFails(2),
            Step::Opens(vec![Dq::Frame(3), Dq::Timeout]),
            Step::Opens(vec![Dq::Frame(4)]),
        ]);
        let status = cam.status();
        let mut got = Vec::new();
        for _ in 0..4 {
            let f = cam.next_frame().unwrap();
            // Packed: the 2 padding bytes per row are gone.
            assert_eq!(f.data.len(), 16);
            got.push((f.seq, f.data[0], f.capture_mono));
        }
        let seqs: Vec<_> = got.iter().map(|g| (g.0, g.1)).collect();
        // The damaged buffer is skipped without a stall or a sequence gap.
        assert_eq!(seqs, [(0, 1), (1, 2), (2, 3), (3, 4)]);
        // Stalled at 0 (ENODEV): reopen at 0.5 s fails, at 1.5 s fails, at 3.5 s
        // opens; the timeout then stalls again with the backoff reset by frame 3.
        assert_eq!(got[2].2, Duration::from_millis(3500));
        assert_eq!(got[3].2, Duration::from_millis(4000));
        assert_eq!(clock.monotonic(), Duration::from_millis(4000));
        let s = status.lock().unwrap().clone();
        assert_eq!(s.state, super::super::LinkState::Streaming);
        assert_eq!(s.reconnects, 2);
        assert_eq!(s.mode, Some(MODE));
        assert_eq!(
            s.last_error.as_deref(),
            Some("no frame within the frame timeout")
        );
    }

    #[test]
    fn a_rejected_configuration_fails_for_good() {
        let (mut cam, _clock) = scripted(vec![
            Step::OpenFails(16),
            Step::OpenRejected,
            Step::Opens(vec![Dq::Frame(1)]),
        ]);
        let err = cam.next_frame().unwrap_err();
        assert_eq!(err.to_string(), "unsupported configuration: no YUYV");
        // No retry: the script's working open is never reached.
        assert!(matches!(cam.next_frame(), Err(SourceError::Unsupported(_))));
        assert_eq!(cam.status().lock().unwrap().state.wire_name(), "failed");
    }

    #[test]
    fn an_exhausted_pool_drops_with_a_visible_gap() {
        let (mut cam, _clock) = scripted(vec![Step::Opens((0..6).map(Dq::Frame).collect())]);
        let held: Vec<_> = (0..4).map(|_| cam.next_frame().unwrap()).collect();
        assert!(matches!(
            cam.next_frame(),
            Err(SourceError::PoolExhausted { seq: 4 })
        ));
        drop(held);
        assert_eq!(cam.next_frame().unwrap().seq, 5);
    }

    #[test]
    fn a_missing_device_stalls_instead_of_failing() {
        let cfg = V4l2Config::new(PathBuf::from("/dev/video-does-not-exist"));
        let clock: Arc<dyn Clock> = Arc::new(crate::ManualClock::new(0));
        let stop = StopSignal::new();
        let mut cam = V4l2Camera::new(cfg, Arc::clone(&clock), stop.clone(), 4).unwrap();
        let status = cam.status();
        // Run the reopen loop for a few attempts on the manual clock, then stop.
        let stopper = {
            let status = Arc::clone(&status);
            let stop = stop.clone();
            std::thread::spawn(move || {
                loop {
                    let s = status.lock().unwrap().clone();
                    if s.state == super::super::LinkState::Stalled
                        && s.next_retry >= Some(Duration::from_secs(1))
                    {
                        stop.stop();
                        return s;
                    }
                    std::thread::yield_now();
                }
            })
        };
        assert!(matches!(cam.next_frame(), Err(SourceError::Stopped)));
        let seen = stopper.join().unwrap();
        assert!(
            seen.last_error
                .unwrap()
                .contains("video-does-not-exist: open")
        );
        assert_eq!(status.lock().unwrap().state.wire_name(), "stopped");
    }
}
