//! SMPTE 12M timecode as carried in every message header.

use core::fmt;

/// SMPTE timecode of a frame: hours, minutes, seconds and frames at a nominal
/// integer rate. Encoded as the CBOR array `[h, m, s, f, drop_frame, rate]`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, minicbor::Encode, minicbor::Decode, minicbor::CborLen,
)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(array)]
pub struct Timecode {
    #[n(0)]
    pub hours: u8,
    #[n(1)]
    pub minutes: u8,
    #[n(2)]
    pub seconds: u8,
    #[n(3)]
    pub frames: u8,
    /// Drop-frame counting (29.97/59.94 material).
    #[n(4)]
    pub drop_frame: bool,
    /// Nominal frames per second (30 for 29.97 drop-frame).
    #[n(5)]
    pub rate: u8,
}

impl Timecode {
    /// Non-drop-frame timecode of the instant `ns` nanoseconds after midnight
    /// (of whatever day the clock is on) at `rate` frames per second, rounded to the
    /// nearest frame: a source paced at a whole number of nanoseconds per frame
    /// (33,333,333 ns at 30 fps) drifts a few ns below the exact frame instants, and
    /// truncating would give two frames in a row the same timecode.
    pub fn from_time_of_day_ns(ns_of_day: u64, rate: u8) -> Self {
        let rate = rate.max(1);
        let total = (u128::from(ns_of_day) * u128::from(rate) + 500_000_000) / 1_000_000_000;
        let secs = (total / u128::from(rate)) as u64;
        let frames = (total % u128::from(rate)) as u8;
        Self {
            hours: ((secs / 3600) % 24) as u8,
            minutes: ((secs / 60) % 60) as u8,
            seconds: (secs % 60) as u8,
            frames,
            drop_frame: false,
            rate,
        }
    }

    /// Timecode for a wall-clock time in Unix nanoseconds.
    pub fn from_unix_ns(unix_ns: u64, rate: u8) -> Self {
        Self::from_time_of_day_ns(unix_ns % (86_400 * 1_000_000_000), rate)
    }

    /// Whether every field is within SMPTE's ranges.
    pub fn is_valid(&self) -> bool {
        self.rate >= 1
            && self.hours < 24
            && self.minutes < 60
            && self.seconds < 60
            && self.frames < self.rate
    }
}

impl fmt::Display for Timecode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.drop_frame { ';' } else { ':' };
        write!(
            f,
            "{:02}:{:02}:{:02}{sep}{:02}",
            self.hours, self.minutes, self.seconds, self.frames
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn from_time_of_day() {
        // 10:20:30 and half a second at 30 fps is frame 15.
        let ns = ((10 * 3600 + 20 * 60 + 30) * 1_000_000_000u64) + 500_000_000;
        let tc = Timecode::from_time_of_day_ns(ns, 30);
        assert_eq!(tc.to_string(), "10:20:30:15");
        assert!(tc.is_valid());
        // The last frame of a second, stamped a few ns early (a paced source).
        let tc = Timecode::from_time_of_day_ns(959_999_990, 25);
        assert_eq!(tc.to_string(), "00:00:00:24");
        // Nearest frame: just before a second's end is the next second's frame 0.
        let tc = Timecode::from_time_of_day_ns(999_999_999, 25);
        assert_eq!(tc.to_string(), "00:00:01:00");
        assert!(tc.is_valid());
        // Frames paced at a whole number of ns never share a timecode.
        let period = 1_000_000_000 / 30;
        let codes: alloc::vec::Vec<_> = (0..90u64)
            .map(|i| Timecode::from_time_of_day_ns(i * period, 30).to_string())
            .collect();
        let mut unique = codes.clone();
        unique.dedup();
        assert_eq!(unique.len(), 90, "{codes:?}");
    }

    #[test]
    fn unix_wraps_at_midnight() {
        let tc = Timecode::from_unix_ns(86_400 * 1_000_000_000 + 1_000_000_000, 30);
        assert_eq!(tc.to_string(), "00:00:01:00");
    }

    #[test]
    fn validity() {
        let mut tc = Timecode::from_time_of_day_ns(0, 30);
        tc.frames = 30;
        assert!(!tc.is_valid());
        tc.frames = 0;
        tc.minutes = 60;
        assert!(!tc.is_valid());
    }
}
