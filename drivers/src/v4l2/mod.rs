//! V4L2 cameras. The decisions are pure and always compiled, so they are tested
//! without a device: format negotiation (`negotiate`), the stall/reopen state
//! machine (`state`), control parsing and range checks (`controls`), buffer
//! copying (`copy`) and the camera listing (`listing`). The device side
//! (`device`: `list_cameras`, `V4l2Camera`) needs the `v4l2` feature.

pub mod controls;
pub mod copy;
#[cfg(feature = "v4l2")]
mod device;
#[cfg(feature = "v4l2")]
mod ioctl;
pub mod listing;
pub mod negotiate;
pub mod state;

use std::path::PathBuf;
use std::time::Duration;

pub use controls::{ControlError, ControlName, ControlSetting, ControlValue, parse_controls};
#[cfg(feature = "v4l2")]
pub use device::{V4l2Camera, list_cameras};
pub use listing::{CameraInfo, ListingProblem, NO_CAMERAS};
pub use negotiate::{FourCc, Mode, ModeRequest, NegotiationError, choose_mode};
pub use state::{Backoff, Link, LinkEvent, LinkState};

/// One V4L2 camera's settings, as the configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Config {
    /// The camera id its frames carry.
    pub camera: std::sync::Arc<str>,
    /// Device node, reopened by this path after an unplug. A stable
    /// `/dev/v4l/by-id/…` or `/dev/v4l/by-path/…` link survives renumbering.
    pub path: PathBuf,
    /// Size, rate and allowed formats in preference order.
    pub mode: ModeRequest,
    /// Controls to set after every (re)open, in order (see [`parse_controls`]).
    pub controls: Vec<ControlSetting>,
    /// mmap buffers queued in the driver (2-32).
    pub buffers: u32,
    /// No frame for this long is a stall (and a reopen).
    pub frame_timeout: Duration,
    /// Reopen delays after a stall.
    pub backoff: Backoff,
}

impl V4l2Config {
    /// 1280x720 at 30 fps, NV12 > YUYV > MJPEG, 4 buffers, 2 s frame timeout.
    pub fn new(path: PathBuf) -> Self {
        Self {
            camera: std::sync::Arc::from("v4l2"),
            path,
            mode: ModeRequest {
                width: 1280,
                height: 720,
                fps: 30,
                formats: ModeRequest::DEFAULT_FORMATS.to_vec(),
            },
            controls: Vec::new(),
            buffers: 4,
            frame_timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
        }
    }

    /// Checks what a device cannot check: values that are wrong on any camera.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use std::os::unix::ffi::OsStrExt as _;
        let path = self.path.as_os_str().as_bytes();
        if path.is_empty() || path.contains(&0) {
            return Err(ConfigError(format!(
                "device path {:?} must be a non-empty path without NUL bytes",
                self.path
            )));
        }
        if self.mode.width == 0
            || self.mode.height == 0
            || self.mode.width > 16384
            || self.mode.height > 16384
        {
            return Err(ConfigError(format!(
                "size {}x{} must be from 1x1 to 16384x16384",
                self.mode.width, self.mode.height
            )));
        }
        if !(1..=1000).contains(&self.mode.fps) {
            return Err(ConfigError(format!(
                "fps {} must be from 1 to 1000",
                self.mode.fps
            )));
        }
        if self.mode.formats.is_empty() {
            return Err(ConfigError("at least one format must be allowed".into()));
        }
        if !(2..=32).contains(&self.buffers) {
            return Err(ConfigError(format!(
                "buffers {} must be from 2 to 32",
                self.buffers
            )));
        }
        // The dequeue timeout is an i32 of milliseconds in the kernel's poll.
        if self.frame_timeout < Duration::from_millis(10)
            || self.frame_timeout > Duration::from_secs(60)
        {
            return Err(ConfigError(format!(
                "frame timeout {:?} must be from 10 ms to 60 s",
                self.frame_timeout
            )));
        }
        if self.backoff.min.is_zero() || self.backoff.min > self.backoff.max {
            return Err(ConfigError(format!(
                "reopen backoff {:?}..{:?} needs 0 < min <= max",
                self.backoff.min, self.backoff.max
            )));
        }
        Ok(())
    }
}

/// A V4L2 setting that no camera can meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A camera's state as health reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Status {
    pub state: LinkState,
    /// Monotonic time of the next reopen, while stalled.
    pub next_retry: Option<Duration>,
    /// Why the camera last stalled or failed.
    pub last_error: Option<String>,
    /// Times the camera came back after a stall.
    pub reconnects: u64,
    /// The mode streaming now.
    pub mode: Option<Mode>,
}

impl Default for V4l2Status {
    fn default() -> Self {
        Self {
            state: LinkState::Opening,
            next_retry: None,
            last_error: None,
            reconnects: 0,
            mode: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_explained() {
        let ok = V4l2Config::new(PathBuf::from("/dev/video0"));
        assert_eq!(ok.validate(), Ok(()));

        let mut c = ok.clone();
        c.path = PathBuf::from("/dev/vid\0eo0");
        assert!(c.validate().unwrap_err().0.contains("NUL"));
        let mut c = ok.clone();
        c.mode.fps = 0;
        assert_eq!(c.validate().unwrap_err().0, "fps 0 must be from 1 to 1000");
        let mut c = ok.clone();
        c.buffers = 1;
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.frame_timeout = Duration::from_secs(3600);
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.backoff.min = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = ok;
        c.mode.formats.clear();
        assert!(c.validate().is_err());
    }
}
