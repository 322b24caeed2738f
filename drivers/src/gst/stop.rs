//! A stop request a blocking source can wait on: its waits (backoff, frames) end as
//! soon as the owner asks it to stop, instead of at the next poll.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Cloneable; every clone sees the same request.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop; wakes any waiter.
    pub fn stop(&self) {
        let (lock, cvar) = &*self.inner;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        // A poisoned lock means a holder panicked: treat it as a stop.
        self.inner.0.lock().map_or(true, |s| *s)
    }

    /// Sleeps up to `timeout`; returns true when a stop was requested.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &*self.inner;
        let Ok(guard) = lock.lock() else {
            return true;
        };
        match cvar.wait_timeout_while(guard, timeout, |stopped| !*stopped) {
            Ok((stopped, _)) => *stopped,
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_a_waiter_early() {
        let s = StopSignal::new();
        assert!(!s.wait(Duration::from_millis(1)));
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || {
                let t = std::time::Instant::now();
                (s.wait(Duration::from_secs(30)), t.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        s.stop();
        let (stopped, took) = waiter.join().unwrap_or((false, Duration::MAX));
        assert!(stopped);
        assert!(took < Duration::from_secs(10));
        assert!(s.is_stopped());
    }
}
