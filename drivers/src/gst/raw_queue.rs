//! Decoded frames on their way from GStreamer's streaming thread to the capture
//! thread. Bounded: when a live feed's consumer falls behind, the oldest frame is
//! dropped and counted (the newest is what analysis wants); a file's streaming
//! thread waits for room instead, so a replay loses nothing. appsink's own
//! `drop=true` would drop silently, which is why frames are taken out of appsink at
//! once and queued here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A bounded queue of `T` (samples in the pipeline, plain values in tests).
#[derive(Debug)]
pub(crate) struct RawQueue<T> {
    state: Mutex<State<T>>,
    /// Signalled on push and on close.
    ready: Condvar,
    /// Signalled on pop and on close.
    room: Condvar,
    capacity: usize,
    drop_oldest: bool,
    /// Frames dropped because the consumer fell behind; shared with the feed's
    /// status so the count survives reconnects.
    dropped: Arc<AtomicU64>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> RawQueue<T> {
    pub(crate) fn new(capacity: usize, drop_oldest: bool, dropped: Arc<AtomicU64>) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            capacity,
            drop_oldest,
            dropped,
        }
    }

    /// Queues `item`; when full, drops the oldest (live) or waits for room (file).
    /// After [`RawQueue::close`] items are discarded at once, so a waiting
    /// streaming thread never holds up the pipeline's shutdown.
    pub(crate) fn push(&self, item: T) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.closed && s.items.len() >= self.capacity {
            if self.drop_oldest {
                s.items.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
            s = self.room.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        if s.closed {
            return;
        }
        s.items.push_back(item);
        drop(s);
        self.ready.notify_one();
    }

    /// The oldest queued item, waiting up to `timeout`.
    pub(crate) fn pop(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(item) = s.items.pop_front() {
                drop(s);
                self.room.notify_one();
                return Some(item);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if s.closed || left.is_zero() {
                return None;
            }
            s = self
                .ready
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Ends the queue: waiters wake, later pushes are discarded.
    pub(crate) fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.closed = true;
        s.items.clear();
        drop(s);
        self.ready.notify_all();
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_live_queue_drops_the_oldest_and_counts_it() {
        let dropped = Arc::new(AtomicU64::new(0));
        let q = RawQueue::new(3, true, Arc::clone(&dropped));
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        let got: Vec<_> = std::iter::from_fn(|| q.pop(Duration::ZERO)).collect();
        assert_eq!(got, vec![2, 3, 4], "the newest frames are kept");
        assert_eq!(q.pop(Duration::from_millis(5)), None);
    }

    #[test]
    fn a_file_queue_waits_for_room_and_loses_nothing() {
        let dropped = Arc::new(AtomicU64::new(0));
        let q = Arc::new(RawQueue::new(2, false, Arc::clone(&dropped)));
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || (0..50).for_each(|i| q.push(i)))
        };
        let got: Vec<_> = (0..50)
            .map(|_| q.pop(Duration::from_secs(10)).unwrap())
            .collect();
        producer.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn close_releases_a_blocked_producer_and_a_waiting_consumer() {
        let q = Arc::new(RawQueue::new(1, false, Arc::new(AtomicU64::new(0))));
        q.push(1);
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || q.push(2))
        };
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        producer.join().unwrap();
        assert_eq!(q.pop(Duration::from_secs(5)), None, "closed and emptied");
    }
}
