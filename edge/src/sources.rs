//! Opening a camera's source from its configuration (synthetic, GStreamer feed,
//! V4L2 device) and reading a live source's own state for health reports.

use std::sync::Arc;

use venue_drivers::gst::StopSignal;
use venue_drivers::{Clock, Source, SyntheticCamera, SyntheticConfig};
use venue_proto::CameraState;

use crate::config::{CameraConfig, SourceConfig};

/// A live view of a source that knows its own state (network/file feeds and V4L2
/// devices). Synthetic cameras have none: the camera-level checks judge them.
#[derive(Debug)]
pub enum SourceHandle {
    #[cfg(feature = "gstreamer")]
    Feed(venue_drivers::gst::FeedStatus),
    #[cfg(feature = "v4l2")]
    V4l2(Arc<std::sync::Mutex<venue_drivers::v4l2::V4l2Status>>),
}

/// What a source's own state says about the camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// `None` while the source delivers (the camera-level checks then decide:
    /// stalled by `[health]`, blocked by drops).
    pub state: Option<(CameraState, Option<String>)>,
    /// Times the source came back after losing its feed or device.
    pub reconnects: u64,
    /// Frames the source dropped before capture took them (a live feed whose
    /// capture thread fell behind).
    pub dropped: u64,
}

impl SourceHandle {
    pub fn state(&self) -> SourceState {
        // Without either feature there is no handle to ask.
        #[cfg(not(any(feature = "gstreamer", feature = "v4l2")))]
        match *self {}
        #[cfg(any(feature = "gstreamer", feature = "v4l2"))]
        match self {
            #[cfg(feature = "gstreamer")]
            Self::Feed(feed) => {
                use venue_drivers::gst::FeedState;
                let (state, detail) = feed.state();
                let state = match state {
                    FeedState::Running => None,
                    FeedState::Stalled => Some((CameraState::Stalled, detail)),
                    FeedState::Reconnecting => Some((CameraState::Reconnecting, detail)),
                    FeedState::Connecting => {
                        Some((CameraState::Reconnecting, Some("connecting".into())))
                    }
                    FeedState::Ended => Some((CameraState::Stopped, detail)),
                };
                SourceState {
                    state,
                    reconnects: feed.failures(),
                    dropped: feed.dropped_frames(),
                }
            }
            #[cfg(feature = "v4l2")]
            Self::V4l2(status) => {
                let s = status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                SourceState {
                    state: v4l2_camera_state(s.state, s.last_error),
                    reconnects: s.reconnects,
                    // The driver's own drops show as gaps in its buffer sequence,
                    // which the device side does not read yet.
                    dropped: 0,
                }
            }
        }
    }
}

/// The camera state a V4L2 link state implies (`None`: streaming).
#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
fn v4l2_camera_state(
    state: venue_drivers::v4l2::LinkState,
    last_error: Option<String>,
) -> Option<(CameraState, Option<String>)> {
    use venue_drivers::v4l2::LinkState;
    match state {
        LinkState::Streaming => None,
        LinkState::Opening => Some((CameraState::Reconnecting, Some("opening".into()))),
        LinkState::Stalled => Some((CameraState::Stalled, last_error)),
        LinkState::Reconnecting => Some((CameraState::Reconnecting, last_error)),
        LinkState::Failed => Some((CameraState::Failed, last_error)),
        LinkState::Stopped => Some((CameraState::Stopped, last_error)),
    }
}

/// A feed's compressed access units, as received (passthrough to the video branch).
#[cfg(feature = "gstreamer")]
pub type FeedUnits = venue_drivers::gst::AccessUnits;
#[cfg(not(feature = "gstreamer"))]
pub type FeedUnits = std::convert::Infallible;

/// An opened source with what else it offers.
pub struct Opened {
    pub source: Box<dyn Source>,
    /// Its own state, for sources that know it (feeds, V4L2 devices).
    pub handle: Option<SourceHandle>,
    /// A compressed feed's access units, when `passthrough` was asked for.
    pub units: Option<FeedUnits>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("handle", &self.handle)
            .field("units", &self.units.is_some())
            .finish_non_exhaustive()
    }
}

/// How a camera's source is opened beyond its configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The capture queue's length: with the frames being captured and analysed
    /// (and, with inference, waiting for and in a worker) it bounds the pooled
    /// buffers.
    pub queue_depth: usize,
    /// Buffers other consumers (the video branch) may hold on top.
    pub extra_buffers: usize,
    /// Keep a compressed feed's access units for the video branch.
    pub passthrough: bool,
}

/// Opens `cam`'s source; `stop` ends any wait inside it.
pub fn open(
    cam: &CameraConfig,
    clock: &Arc<dyn Clock>,
    options: OpenOptions,
    stop: &StopSignal,
) -> Result<Opened, String> {
    let camera: Arc<str> = Arc::from(cam.id.as_str());
    // Frames in flight: the queue, one being captured and one being analysed, and
    // with inference one waiting for a worker and one being segmented.
    let inference = if cam.inference_fps > 0 { 2 } else { 0 };
    let base = options.queue_depth + 2 + options.extra_buffers;
    let buffers = base + inference;
    match &cam.source {
        SourceConfig::Synthetic {
            scene,
            seed,
            athletes,
            fail_after_frames,
        } => {
            let cfg = SyntheticConfig {
                scene: *scene,
                width: cam.width,
                height: cam.height,
                fps: cam.fps,
                seed: *seed,
                athletes: *athletes,
                fail_after_frames: *fail_after_frames,
            };
            SyntheticCamera::new(cfg, Arc::clone(clock), buffers)
                .map(|c| Opened {
                    source: Box::new(c.with_camera_id(camera)),
                    handle: None,
                    units: None,
                })
                .map_err(|e| e.to_string())
        }
        SourceConfig::Feed(feed) => open_feed(feed, camera, clock, base, options.passthrough, stop),
        SourceConfig::V4l2(v4l2) => open_v4l2(cam, v4l2, camera, clock, buffers, stop),
    }
}

#[cfg(feature = "gstreamer")]
fn open_feed(
    feed: &crate::config::FeedSource,
    camera: Arc<str>,
    clock: &Arc<dyn Clock>,
    pool_buffers: usize,
    passthrough: bool,
    stop: &StopSignal,
) -> Result<Opened, String> {
    use venue_drivers::gst::{BackoffConfig, FeedConfig, GstSource};
    let cfg = FeedConfig {
        latency: feed.latency,
        stall_timeout: feed.stall_timeout,
        backoff: BackoffConfig {
            min: feed.reconnect_min,
            max: feed.reconnect_max,
        },
        pool_buffers,
        // About two seconds of access units may wait for the video branch.
        access_unit_queue: if passthrough { 64 } else { 0 },
        camera,
        ..FeedConfig::new(feed.kind.clone())
    };
    let mut source =
        GstSource::new(cfg, Arc::clone(clock), stop.clone()).map_err(|e| e.to_string())?;
    let status = source.status();
    let units = source.access_units();
    Ok(Opened {
        source: Box::new(source),
        handle: Some(SourceHandle::Feed(status)),
        units,
    })
}

#[cfg(not(feature = "gstreamer"))]
fn open_feed(
    feed: &crate::config::FeedSource,
    _camera: Arc<str>,
    _clock: &Arc<dyn Clock>,
    _pool_buffers: usize,
    _passthrough: bool,
    _stop: &StopSignal,
) -> Result<Opened, String> {
    Err(format!(
        "{}: this build has no GStreamer support (feature \"gstreamer\")",
        feed.kind.location()
    ))
}

/// The driver-level V4L2 settings of a configured camera.
pub fn v4l2_config(
    cam: &CameraConfig,
    v4l2: &crate::config::V4l2Source,
    camera: Arc<str>,
) -> venue_drivers::v4l2::V4l2Config {
    use venue_drivers::v4l2::{Backoff, ModeRequest, V4l2Config};
    V4l2Config {
        camera,
        mode: ModeRequest {
            width: cam.width,
            height: cam.height,
            fps: cam.fps,
            formats: v4l2.formats.clone(),
        },
        controls: v4l2.controls.clone(),
        buffers: v4l2.buffers,
        frame_timeout: v4l2.frame_timeout,
        backoff: Backoff {
            min: v4l2.reopen_min,
            max: v4l2.reopen_max,
        },
        ..V4l2Config::new(v4l2.device.clone())
    }
}

#[cfg(feature = "v4l2")]
fn open_v4l2(
    cam: &CameraConfig,
    v4l2: &crate::config::V4l2Source,
    camera: Arc<str>,
    clock: &Arc<dyn Clock>,
    pool_buffers: usize,
    stop: &StopSignal,
) -> Result<Opened, String> {
    use venue_drivers::v4l2::V4l2Camera;
    let cfg = v4l2_config(cam, v4l2, camera);
    let source = V4l2Camera::new(cfg, Arc::clone(clock), stop.clone(), pool_buffers)
        .map_err(|e| e.to_string())?;
    let status = source.status();
    Ok(Opened {
        source: Box::new(source),
        handle: Some(SourceHandle::V4l2(status)),
        units: None,
    })
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(
    _cam: &CameraConfig,
    v4l2: &crate::config::V4l2Source,
    _camera: Arc<str>,
    _clock: &Arc<dyn Clock>,
    _pool_buffers: usize,
    _stop: &StopSignal,
) -> Result<Opened, String> {
    Err(format!(
        "{}: this build has no V4L2 support (feature \"v4l2\")",
        v4l2.device.display()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::path::PathBuf;
    use std::time::Duration;

    use venue_drivers::PixelFormat;
    use venue_drivers::v4l2::LinkState;

    use super::*;
    use crate::config::V4l2Source;

    fn v4l2_camera() -> (CameraConfig, V4l2Source) {
        let src = V4l2Source {
            device: PathBuf::from("/dev/v4l/by-id/usb-cam-video-index0"),
            formats: vec![PixelFormat::Yuyv, PixelFormat::Mjpeg],
            buffers: 6,
            frame_timeout: Duration::from_millis(1500),
            reopen_min: Duration::from_millis(250),
            reopen_max: Duration::from_secs(8),
            controls: Vec::new(),
        };
        let cam = CameraConfig {
            id: "cam-3".parse().unwrap(),
            width: 1920,
            height: 1080,
            fps: 25,
            inference_fps: 0,
            source: SourceConfig::V4l2(src.clone()),
        };
        (cam, src)
    }

    #[test]
    fn v4l2_settings_come_from_the_camera_and_its_source() {
        let (cam, src) = v4l2_camera();
        let cfg = v4l2_config(&cam, &src, Arc::from("cam-3"));
        assert_eq!(&*cfg.camera, "cam-3");
        assert_eq!(
            (cfg.mode.width, cfg.mode.height, cfg.mode.fps),
            (1920, 1080, 25)
        );
        assert_eq!(
            cfg.mode.formats,
            vec![PixelFormat::Yuyv, PixelFormat::Mjpeg]
        );
        assert_eq!(cfg.buffers, 6);
        assert_eq!(cfg.frame_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.backoff.min, Duration::from_millis(250));
        assert_eq!(cfg.backoff.max, Duration::from_secs(8));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn v4l2_link_states_map_onto_camera_states() {
        let why = || Some("ENODEV".to_string());
        assert_eq!(v4l2_camera_state(LinkState::Streaming, why()), None);
        assert_eq!(
            v4l2_camera_state(LinkState::Stalled, why()),
            Some((CameraState::Stalled, why()))
        );
        assert_eq!(
            v4l2_camera_state(LinkState::Failed, why()).map(|s| s.0),
            Some(CameraState::Failed)
        );
        assert_eq!(
            v4l2_camera_state(LinkState::Opening, None).map(|s| s.0),
            Some(CameraState::Reconnecting)
        );
    }

    /// A configured device that is not there: the camera opens (nothing is opened
    /// before the first frame), and its state says it is waiting for the device.
    #[cfg(feature = "v4l2")]
    #[test]
    fn a_missing_v4l2_device_reports_stalled_not_an_error() {
        let (mut cam, mut src) = v4l2_camera();
        src.device = PathBuf::from("/dev/video-not-plugged-in");
        cam.source = SourceConfig::V4l2(src);
        let clock: Arc<dyn Clock> = Arc::new(venue_drivers::SystemClock::new());
        let stop = StopSignal::new();
        let options = OpenOptions {
            queue_depth: 4,
            ..OpenOptions::default()
        };
        let opened = open(&cam, &clock, options, &stop).expect("opens lazily");
        let mut source = opened.source;
        let handle = opened.handle.expect("a V4L2 camera reports its own state");
        // Watch the state while the source waits for its device, then stop it.
        let watcher = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut seen = handle.state();
                while seen.state.as_ref().map(|s| s.0) != Some(CameraState::Stalled)
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                    seen = handle.state();
                }
                stop.stop();
                (seen, handle)
            })
        };
        assert!(matches!(
            source.next_frame(),
            Err(venue_drivers::SourceError::Stopped)
        ));
        let (seen, handle) = watcher.join().unwrap();
        let (state, detail) = seen.state.expect("not streaming");
        assert_eq!(state, CameraState::Stalled);
        assert!(
            detail.unwrap_or_default().contains("video-not-plugged-in"),
            "the reason names the device"
        );
        assert_eq!(
            handle.state().state.map(|s| s.0),
            Some(CameraState::Stopped)
        );
    }
}
