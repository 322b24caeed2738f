//! The reconnect state machine of a feed, free of GStreamer and of real time so it
//! can be tested without a server: what state the feed is in, when to try again,
//! and how the wait grows (capped exponential backoff, reset by a delivered frame).

use std::time::Duration;

/// Capped exponential backoff between connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Wait before the first retry; also the wait after a feed that delivered frames.
    pub min: Duration,
    /// The wait doubles after every failed attempt up to this.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

/// What a feed is doing, as its health reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedState {
    /// Opening the feed for the first time, before its first frame.
    Connecting,
    /// Frames arrive.
    Running,
    /// Connected (or connecting) but no frame for the stall timeout; the feed is
    /// torn down and reopened after the backoff.
    Stalled,
    /// The feed failed (refused, closed, timed out, ended) and waits for its next attempt.
    Reconnecting,
    /// A file that was played to its end (and is not repeated).
    Ended,
}

impl FeedState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Running => "running",
            Self::Stalled => "stalled",
            Self::Reconnecting => "reconnecting",
            Self::Ended => "ended",
        }
    }
}

/// The next thing the feed's thread must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open the feed now.
    Open,
    /// Wait for frames; declare a stall if none has come by this monotonic deadline.
    AwaitFrames { stall_at: Duration },
    /// Nothing to do before this monotonic time (backoff).
    WaitUntil(Duration),
}

/// Reconnect logic of one feed. Times are monotonic durations from any origin; the
/// caller reports what happened and asks [`Reconnect::next_action`] what to do.
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: BackoffConfig,
    stall_timeout: Duration,
    state: FeedState,
    /// Wait applied after the next failure.
    next_wait: Duration,
    /// Whether a pipeline is open (between `opened` and `closed`).
    open: bool,
    /// Last frame, or the moment the feed was opened if no frame came since.
    last_activity: Duration,
    retry_at: Duration,
    attempts: u64,
    failures: u64,
}

impl Reconnect {
    pub fn new(backoff: BackoffConfig, stall_timeout: Duration) -> Self {
        let min = backoff.min.min(backoff.max);
        Self {
            backoff: BackoffConfig { min, ..backoff },
            stall_timeout,
            state: FeedState::Connecting,
            next_wait: min,
            open: false,
            last_activity: Duration::ZERO,
            retry_at: Duration::ZERO,
            attempts: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> FeedState {
        self.state
    }

    /// Connection attempts made so far (the first one included).
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Failures (errors, ends and stalls) so far.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// What to do at monotonic time `now`.
    pub fn next_action(&self, now: Duration) -> Action {
        if self.open {
            Action::AwaitFrames {
                stall_at: self.last_activity + self.stall_timeout,
            }
        } else if now >= self.retry_at {
            Action::Open
        } else {
            Action::WaitUntil(self.retry_at)
        }
    }

    /// The feed was (re)opened at `now`; its stall clock starts. The state stays
    /// what the last failure made it (reconnecting, stalled) until a frame arrives,
    /// so a feed that keeps stalling reads `stalled`, not a flicker of states.
    pub fn opened(&mut self, now: Duration) {
        self.open = true;
        self.attempts += 1;
        self.last_activity = now;
    }

    /// A frame arrived: the feed runs and the backoff starts over.
    pub fn frame(&mut self, now: Duration) {
        self.last_activity = now;
        self.state = FeedState::Running;
        self.next_wait = self.backoff.min;
    }

    /// The feed failed at `now` (error, end of stream, could not open): it is closed
    /// and retried after the current backoff, which then doubles up to the cap.
    pub fn failed(&mut self, now: Duration) -> Duration {
        self.close_and_schedule(now, FeedState::Reconnecting)
    }

    /// No frame by the stall deadline: closed, reported stalled until the retry.
    pub fn stalled(&mut self, now: Duration) -> Duration {
        self.close_and_schedule(now, FeedState::Stalled)
    }

    /// A file reached its end and is not repeated: nothing more to do.
    pub fn ended(&mut self) {
        self.open = false;
        self.state = FeedState::Ended;
    }

    fn close_and_schedule(&mut self, now: Duration, state: FeedState) -> Duration {
        self.open = false;
        self.failures += 1;
        self.state = state;
        let wait = self.next_wait;
        self.retry_at = now + wait;
        self.next_wait = (self.next_wait * 2).min(self.backoff.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn machine() -> Reconnect {
        Reconnect::new(
            BackoffConfig {
                min: ms(100),
                max: ms(1000),
            },
            ms(2000),
        )
    }

    #[test]
    fn opens_at_once_then_awaits_frames_with_a_stall_deadline() {
        let mut r = machine();
        assert_eq!(r.state(), FeedState::Connecting);
        assert_eq!(r.next_action(ms(0)), Action::Open);
        r.opened(ms(10));
        assert_eq!(
            r.next_action(ms(20)),
            Action::AwaitFrames { stall_at: ms(2010) }
        );
        r.frame(ms(500));
        assert_eq!(r.state(), FeedState::Running);
        assert_eq!(
            r.next_action(ms(600)),
            Action::AwaitFrames { stall_at: ms(2500) }
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_frame() {
        let mut r = machine();
        let mut now = ms(0);
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(r.next_action(now), Action::Open);
            r.opened(now);
            let wait = r.failed(now);
            assert_eq!(r.state(), FeedState::Reconnecting);
            assert_eq!(r.next_action(now), Action::WaitUntil(now + wait));
            waits.push(wait.as_millis());
            now += wait;
        }
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        r.opened(now);
        r.frame(now);
        assert_eq!(r.failed(now), ms(100));
        assert_eq!(r.attempts(), 7);
        assert_eq!(r.failures(), 7);
    }

    #[test]
    fn a_stall_is_reported_until_frames_come_back() {
        let mut r = machine();
        r.opened(ms(0));
        r.frame(ms(100));
        assert_eq!(r.stalled(ms(2100)), ms(100));
        assert_eq!(r.state(), FeedState::Stalled);
        assert_eq!(r.next_action(ms(2150)), Action::WaitUntil(ms(2200)));
        assert_eq!(r.next_action(ms(2200)), Action::Open);
        r.opened(ms(2200));
        assert_eq!(r.state(), FeedState::Stalled);
        r.frame(ms(2300));
        assert_eq!(r.state(), FeedState::Running);
    }

    #[test]
    fn min_above_max_is_clamped() {
        let mut r = Reconnect::new(
            BackoffConfig {
                min: ms(5000),
                max: ms(300),
            },
            ms(1000),
        );
        r.opened(ms(0));
        assert_eq!(r.failed(ms(0)), ms(300));
        r.opened(ms(300));
        assert_eq!(r.failed(ms(300)), ms(300));
    }
}
