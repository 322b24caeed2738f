//! The pre-roll ring: the last seconds of one camera's encoded video in memory,
//! bounded by age and bytes. It always starts at a keyframe (whole GOPs leave
//! together), so any cut from it decodes.

use std::collections::VecDeque;
use std::time::Duration;

use super::SharedUnit;

/// Why a time range cannot be cut from the ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutError {
    #[error("the range ends before it starts")]
    Empty,
    #[error("nothing in the ring yet")]
    NoVideo,
    #[error(
        "the range starts before the oldest video kept ({oldest_ns} ns); the ring keeps the last {kept_ms} ms"
    )]
    TooOld { oldest_ns: u64, kept_ms: u64 },
    #[error("the range starts after the newest video ({newest_ns} ns)")]
    InFuture { newest_ns: u64 },
}

/// Recent access units of one camera.
#[derive(Debug)]
pub struct Ring {
    units: VecDeque<SharedUnit>,
    bytes: usize,
    max_age: Duration,
    max_bytes: usize,
    /// Units dropped (aged out, over the byte cap, or arriving before any keyframe).
    pub evicted: u64,
}

impl Ring {
    pub fn new(max_age: Duration, max_bytes: usize) -> Self {
        Self {
            units: VecDeque::new(),
            bytes: 0,
            max_age,
            max_bytes,
            evicted: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.units.len()
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Capture time of the newest unit.
    pub fn newest_ns(&self) -> Option<u64> {
        self.units.back().map(|u| u.capture_ns)
    }

    pub fn push(&mut self, unit: SharedUnit) {
        if self.units.is_empty() && !unit.keyframe {
            // A cut must start at a keyframe: nothing before the first one is kept.
            self.evicted += 1;
            return;
        }
        self.bytes += unit.data.len();
        let newest = unit.capture_ns;
        self.units.push_back(unit);
        let max_age = self.max_age.as_nanos() as u64;
        while let Some(front) = self.units.front() {
            let too_old = newest.saturating_sub(front.capture_ns) > max_age;
            if !(too_old || self.bytes > self.max_bytes) {
                break;
            }
            self.pop_gop();
        }
    }

    /// Drops the oldest GOP (the front keyframe and the units up to the next one).
    fn pop_gop(&mut self) {
        let mut first = true;
        while let Some(front) = self.units.front() {
            if front.keyframe && !first {
                break;
            }
            first = false;
            self.bytes -= front.data.len();
            self.units.pop_front();
            self.evicted += 1;
        }
    }

    /// The units from the last keyframe at or before `start_ns` through the last
    /// unit at or before `end_ns`. `clamp`: a start older than the ring begins at
    /// its oldest keyframe instead of failing (an event clip near start-up).
    pub fn cut(
        &self,
        start_ns: u64,
        end_ns: u64,
        clamp: bool,
    ) -> Result<Vec<SharedUnit>, CutError> {
        if end_ns < start_ns {
            return Err(CutError::Empty);
        }
        let (Some(oldest), Some(newest)) = (self.units.front(), self.units.back()) else {
            return Err(CutError::NoVideo);
        };
        if start_ns > newest.capture_ns {
            return Err(CutError::InFuture {
                newest_ns: newest.capture_ns,
            });
        }
        if start_ns < oldest.capture_ns && !clamp {
            return Err(CutError::TooOld {
                oldest_ns: oldest.capture_ns,
                kept_ms: self.max_age.as_millis() as u64,
            });
        }
        // The ring's front is a keyframe, so a start is always found.
        let first = self
            .units
            .iter()
            .rposition(|u| u.keyframe && u.capture_ns <= start_ns)
            .unwrap_or(0);
        Ok(self
            .units
            .iter()
            .skip(first)
            .take_while(|u| u.capture_ns <= end_ns)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::video::Unit;

    const MS: u64 = 1_000_000;

    /// 10 units a second, a keyframe every 5, 100 bytes each.
    fn fill(ring: &mut Ring, from: u64, to: u64) {
        for s in from..to {
            ring.push(Arc::new(Unit {
                seq: s,
                capture_ns: s * 100 * MS,
                keyframe: s % 5 == 0,
                data: vec![0; 100],
            }));
        }
    }

    #[test]
    fn the_ring_keeps_whole_gops_within_its_age() {
        let mut r = Ring::new(Duration::from_millis(1000), 1 << 20);
        fill(&mut r, 3, 40);
        // 3 and 4 precede the first keyframe; GOPs leave whole once older than 1 s.
        let cut = r.cut(0, u64::MAX, true).unwrap();
        assert!(cut[0].keyframe);
        assert_eq!(cut[0].seq, 30);
        assert_eq!(cut.last().unwrap().seq, 39);
        assert_eq!(r.evicted, 2 + 25);
        assert_eq!(r.bytes(), 10 * 100);
    }

    #[test]
    fn the_byte_cap_drops_gops_too() {
        let mut r = Ring::new(Duration::from_secs(60), 1200);
        fill(&mut r, 0, 20);
        assert!(r.bytes() <= 1200);
        assert_eq!(r.cut(0, u64::MAX, true).unwrap()[0].seq, 10);
    }

    #[test]
    fn a_cut_starts_at_the_keyframe_before_its_start() {
        let mut r = Ring::new(Duration::from_secs(60), 1 << 20);
        fill(&mut r, 0, 40);
        let cut = r.cut(1230 * MS, 2000 * MS, false).unwrap();
        let seqs: Vec<u64> = cut.iter().map(|u| u.seq).collect();
        assert_eq!(seqs, (10..=20).collect::<Vec<_>>());
        // Exactly on a keyframe: starts there.
        assert_eq!(r.cut(1500 * MS, 1600 * MS, false).unwrap()[0].seq, 15);
    }

    #[test]
    fn ranges_outside_the_ring_are_refused() {
        let mut r = Ring::new(Duration::from_millis(1000), 1 << 20);
        assert_eq!(r.cut(0, 1, false), Err(CutError::NoVideo));
        fill(&mut r, 0, 40);
        assert!(matches!(
            r.cut(0, 3000 * MS, false),
            Err(CutError::TooOld { .. })
        ));
        assert!(matches!(
            r.cut(9000 * MS, 9999 * MS, false),
            Err(CutError::InFuture { .. })
        ));
        assert_eq!(r.cut(5, 4, false), Err(CutError::Empty));
        // Clamped (event clips near start-up): from the oldest keyframe.
        assert_eq!(r.cut(0, 3100 * MS, true).unwrap()[0].seq, 30);
    }
}
