//! Time as sources see it: a monotonic clock for pacing and a wall clock for capture
//! timestamps, passed in so tests can run without real time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Source of time for capture and pacing.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic time since the clock's origin.
    fn monotonic(&self) -> Duration;
    /// Wall-clock time, nanoseconds since the Unix epoch.
    fn unix_ns(&self) -> u64;
    /// Blocks the calling thread until `monotonic() >= deadline`.
    fn sleep_until(&self, deadline: Duration);
}

/// The machine's clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_ns(&self) -> u64 {
        // A wall clock before 1970 is a misconfigured box; report 0 rather than panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    }

    fn sleep_until(&self, deadline: Duration) {
        let now = self.monotonic();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    }
}

/// A clock that only moves when told to; sleeping jumps straight to the deadline.
/// Lets tests run a camera at full speed with exact, repeatable timestamps.
#[derive(Debug)]
pub struct ManualClock {
    mono_ns: AtomicU64,
    unix_origin_ns: u64,
    lock: Mutex<()>,
}

impl ManualClock {
    pub fn new(unix_origin_ns: u64) -> Self {
        Self {
            mono_ns: AtomicU64::new(0),
            unix_origin_ns,
            lock: Mutex::new(()),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.mono_ns
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.mono_ns.load(Ordering::SeqCst))
    }

    fn unix_ns(&self) -> u64 {
        self.unix_origin_ns + self.mono_ns.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline: Duration) {
        // Serialise so concurrent sleepers never move time backwards.
        let _guard = self.lock.lock();
        self.mono_ns
            .fetch_max(deadline.as_nanos() as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_jumps_forward_only() {
        let c = ManualClock::new(1_000);
        c.sleep_until(Duration::from_millis(5));
        assert_eq!(c.monotonic(), Duration::from_millis(5));
        c.sleep_until(Duration::from_millis(1));
        assert_eq!(c.monotonic(), Duration::from_millis(5));
        c.advance(Duration::from_nanos(7));
        assert_eq!(c.unix_ns(), 1_000 + 5_000_007);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock::new();
        let a = c.monotonic();
        c.sleep_until(a + Duration::from_millis(2));
        assert!(c.monotonic() >= a + Duration::from_millis(2));
        assert!(c.unix_ns() > 1_600_000_000_000_000_000);
    }
}
