//! The device state machine of one V4L2 camera: opening, streaming, stalled when
//! the device goes away or stops delivering, reopened with capped exponential
//! backoff, failed when the configuration cannot be met. Driven by events and the
//! caller's monotonic time, so tests step through it without a device or a clock.

use std::time::Duration;

/// Where a camera is. [`LinkState::wire_name`] gives the matching `CameraState`
/// name of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Opening the device for the first time.
    Opening,
    /// Frames arrive.
    Streaming,
    /// The device went away or stopped delivering; waiting for the next reopen.
    Stalled,
    /// A reopen is in progress.
    Reconnecting,
    /// The configuration cannot be met (format, size, controls); no retry until
    /// the configuration changes.
    Failed,
    /// Shut down.
    Stopped,
}

impl LinkState {
    /// The `CameraState` name on the wire (`running`, `stalled`, `reconnecting`,
    /// `failed`, `stopped`). Opening counts as `stopped`, which the contract defines
    /// as "starting up or shut down".
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Opening | Self::Stopped => "stopped",
            Self::Streaming => "running",
            Self::Stalled => "stalled",
            Self::Reconnecting => "reconnecting",
            Self::Failed => "failed",
        }
    }
}

/// Reopen delays: `min`, doubling per failed attempt, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before reopen attempt `attempt` (0-based).
    pub fn delay(self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max.max(self.min))
    }
}

/// What happened to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The device was opened, configured and started streaming.
    Opened,
    /// A frame arrived.
    Frame,
    /// The device went away or failed (ENODEV, EIO, dequeue timeout).
    Lost(String),
    /// A reopen attempt failed for a reason that may pass (device not back yet,
    /// busy).
    OpenFailed(String),
    /// The device cannot give what the configuration asks.
    ConfigRejected(String),
    /// The reopen whose time had come is being attempted.
    ReopenStarted,
    /// Shutdown.
    Stop,
}

/// The state machine. Time is the caller's monotonic time.
#[derive(Debug, Clone)]
pub struct Link {
    state: LinkState,
    backoff: Backoff,
    /// Failed reopen attempts since the last frame.
    attempt: u32,
    next_retry: Option<Duration>,
    last_error: Option<String>,
    reconnects: u64,
}

impl Link {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            state: LinkState::Opening,
            backoff,
            attempt: 0,
            next_retry: None,
            last_error: None,
            reconnects: 0,
        }
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// When the next reopen is due, while stalled.
    pub fn next_retry(&self) -> Option<Duration> {
        self.next_retry
    }

    /// The reason of the last stall or failure.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// How many times the device came back after a stall.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Whether a reopen should be attempted at `now`.
    pub fn reopen_due(&self, now: Duration) -> bool {
        self.state == LinkState::Stalled && self.next_retry.is_some_and(|t| now >= t)
    }

    /// Applies an event at monotonic time `now`. Events that make no sense in the
    /// current state (a frame while failed) change nothing: the terminal states stay.
    pub fn on(&mut self, event: LinkEvent, now: Duration) {
        use LinkState as S;
        match (self.state, event) {
            (S::Stopped, _) => {}
            (_, LinkEvent::Stop) => {
                self.state = S::Stopped;
                self.next_retry = None;
            }
            (S::Failed, _) => {}
            (_, LinkEvent::ConfigRejected(why)) => {
                self.state = S::Failed;
                self.next_retry = None;
                self.last_error = Some(why);
            }
            (S::Opening | S::Reconnecting, LinkEvent::Opened) => {
                if self.state == S::Reconnecting {
                    self.reconnects += 1;
                }
                self.state = S::Streaming;
                self.next_retry = None;
            }
            (S::Streaming, LinkEvent::Frame) => {
                // Only a delivered frame proves the device healthy: a device that
                // opens and dies at once keeps backing off.
                self.attempt = 0;
            }
            (S::Streaming, LinkEvent::Lost(why))
            | (S::Opening | S::Reconnecting, LinkEvent::OpenFailed(why) | LinkEvent::Lost(why)) => {
                self.stall(why, now);
            }
            (S::Stalled, LinkEvent::ReopenStarted) => {
                self.state = S::Reconnecting;
                self.next_retry = None;
            }
            // Anything else (a frame while stalled, a second ReopenStarted) is a
            // caller bug or a late report; the state stays.
            _ => {}
        }
    }

    fn stall(&mut self, why: String, now: Duration) {
        let delay = self.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.state = LinkState::Stalled;
        self.next_retry = Some(now + delay);
        self.last_error = Some(why);
    }
}

/// How a failed device call is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The device is gone or broken for now: stall and reopen with backoff.
    Lost,
    /// The device refuses what is asked: `failed` until the config changes.
    Config,
}

// Linux errno values (the module only runs on Linux; kept here so the
// classification compiles and is tested without libc).
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EIO: i32 = 5;
const ENXIO: i32 = 6;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const ENOTTY: i32 = 25;
const ERANGE: i32 = 34;

/// Classifies an OS error from opening, configuring or reading a device.
/// Unplugged (ENODEV, ENXIO, ENOENT for a node not back yet), I/O errors, busy
/// devices, missing permissions (a udev rule may be fixed) and timeouts are worth a
/// retry; a device that rejects the format or a control value, or is no video
/// device at all, will not change its mind.
pub fn classify(error: &std::io::Error) -> Fault {
    match error.raw_os_error() {
        Some(EINVAL | ENOTTY | ERANGE) => Fault::Config,
        Some(ENODEV | ENXIO | ENOENT | EIO | EBUSY | EACCES | EPERM) => Fault::Lost,
        _ => Fault::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn backoff() -> Backoff {
        Backoff {
            min: 100 * MS,
            max: 1000 * MS,
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = backoff();
        let delays: Vec<_> = (0..6).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(u32::MAX), 1000 * MS);
    }

    #[test]
    fn unplug_stall_reopen_resume() {
        let mut l = Link::new(backoff());
        assert_eq!(l.state().wire_name(), "stopped");
        l.on(LinkEvent::Opened, Duration::ZERO);
        l.on(LinkEvent::Frame, 10 * MS);
        assert_eq!(l.state(), LinkState::Streaming);
        assert_eq!(l.state().wire_name(), "running");

        // ENODEV: stalled, first retry after the minimum delay.
        l.on(LinkEvent::Lost("ENODEV".into()), 50 * MS);
        assert_eq!(l.state(), LinkState::Stalled);
        assert_eq!(l.next_retry(), Some(150 * MS));
        assert!(!l.reopen_due(149 * MS));
        assert!(l.reopen_due(150 * MS));

        // The node is not back yet: each failed attempt doubles the wait.
        l.on(LinkEvent::ReopenStarted, 150 * MS);
        assert_eq!(l.state().wire_name(), "reconnecting");
        l.on(LinkEvent::OpenFailed("ENOENT".into()), 151 * MS);
        assert_eq!(l.next_retry(), Some(351 * MS));
        l.on(LinkEvent::ReopenStarted, 351 * MS);
        l.on(LinkEvent::OpenFailed("ENOENT".into()), 352 * MS);
        assert_eq!(l.next_retry(), Some(752 * MS));
        assert_eq!(l.last_error(), Some("ENOENT"));

        // Back: streaming again, counted as a reconnect, backoff reset by a frame.
        l.on(LinkEvent::ReopenStarted, 752 * MS);
        l.on(LinkEvent::Opened, 760 * MS);
        assert_eq!(l.state(), LinkState::Streaming);
        assert_eq!(l.reconnects(), 1);
        assert_eq!(l.next_retry(), None);
        l.on(LinkEvent::Frame, 770 * MS);
        l.on(LinkEvent::Lost("EIO".into()), 800 * MS);
        assert_eq!(l.next_retry(), Some(900 * MS));
    }

    #[test]
    fn a_device_that_dies_right_after_opening_keeps_backing_off() {
        let mut l = Link::new(backoff());
        let mut now = Duration::ZERO;
        l.on(LinkEvent::Opened, now);
        let mut waits = Vec::new();
        for _ in 0..5 {
            l.on(LinkEvent::Lost("timeout".into()), now);
            let next = l.next_retry().unwrap();
            waits.push((next - now).as_millis());
            now = next;
            l.on(LinkEvent::ReopenStarted, now);
            l.on(LinkEvent::Opened, now);
        }
        assert_eq!(waits, [100, 200, 400, 800, 1000]);
    }

    #[test]
    fn config_rejection_is_terminal() {
        let mut l = Link::new(backoff());
        l.on(LinkEvent::ConfigRejected("no NV12".into()), Duration::ZERO);
        assert_eq!(l.state().wire_name(), "failed");
        l.on(LinkEvent::Opened, MS);
        l.on(LinkEvent::Lost("x".into()), MS);
        assert_eq!(l.state(), LinkState::Failed);
        assert!(!l.reopen_due(Duration::from_secs(100)));
        assert_eq!(l.last_error(), Some("no NV12"));
        l.on(LinkEvent::Stop, MS);
        assert_eq!(l.state(), LinkState::Stopped);
    }

    #[test]
    fn first_open_failure_stalls_too() {
        let mut l = Link::new(backoff());
        l.on(LinkEvent::OpenFailed("EBUSY".into()), Duration::ZERO);
        assert_eq!(l.state(), LinkState::Stalled);
        assert_eq!(l.next_retry(), Some(100 * MS));
        // A stray frame report while stalled changes nothing.
        l.on(LinkEvent::Frame, MS);
        assert_eq!(l.state(), LinkState::Stalled);
        l.on(LinkEvent::Stop, MS);
        l.on(LinkEvent::Opened, MS);
        assert_eq!(l.state(), LinkState::Stopped);
    }

    #[test]
    fn errors_are_classified() {
        use std::io::{Error, ErrorKind};
        assert_eq!(classify(&Error::from_raw_os_error(ENODEV)), Fault::Lost);
        assert_eq!(classify(&Error::from_raw_os_error(EIO)), Fault::Lost);
        assert_eq!(classify(&Error::from_raw_os_error(EBUSY)), Fault::Lost);
        assert_eq!(classify(&Error::from_raw_os_error(EINVAL)), Fault::Config);
        assert_eq!(classify(&Error::from_raw_os_error(ENOTTY)), Fault::Config);
        assert_eq!(classify(&Error::from(ErrorKind::TimedOut)), Fault::Lost);
    }
}
