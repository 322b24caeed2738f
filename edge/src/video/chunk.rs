//! Groups access units into `video` chunks: per GOP (a chunk closes when the next
//! keyframe arrives) or per capture-time window, and never past a byte cap.

use super::{ChunkMode, SharedUnit};

/// Collects units until a chunk is complete.
#[derive(Debug)]
pub struct Chunker {
    mode: ChunkMode,
    max_bytes: usize,
    units: Vec<SharedUnit>,
    bytes: usize,
}

impl Chunker {
    pub fn new(mode: ChunkMode, max_bytes: usize) -> Self {
        Self {
            mode,
            max_bytes,
            units: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds `unit`; returns the chunk it closes, if it starts a new one.
    pub fn push(&mut self, unit: SharedUnit) -> Option<Vec<SharedUnit>> {
        let closes = match self.units.first() {
            None => false,
            Some(first) => {
                let boundary = match self.mode {
                    ChunkMode::Gop => unit.keyframe,
                    ChunkMode::Window(w) => {
                        unit.capture_ns >= first.capture_ns.saturating_add(w.as_nanos() as u64)
                    }
                };
                boundary || self.bytes + unit.data.len() > self.max_bytes
            }
        };
        let done = if closes { self.flush() } else { None };
        self.bytes += unit.data.len();
        self.units.push(unit);
        done
    }

    /// The units collected so far as a chunk (at shutdown).
    pub fn flush(&mut self) -> Option<Vec<SharedUnit>> {
        self.bytes = 0;
        (!self.units.is_empty()).then(|| std::mem::take(&mut self.units))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::video::Unit;

    fn unit(seq: u64, keyframe: bool, len: usize) -> SharedUnit {
        Arc::new(Unit {
            seq,
            capture_ns: seq * 33_333_333,
            keyframe,
            data: vec![0; len],
        })
    }

    fn seqs(c: &[SharedUnit]) -> Vec<u64> {
        c.iter().map(|u| u.seq).collect()
    }

    #[test]
    fn gop_chunks_start_at_keyframes() {
        let mut c = Chunker::new(ChunkMode::Gop, 1 << 20);
        let mut out = Vec::new();
        for s in 0..10 {
            out.extend(c.push(unit(s, s % 4 == 0, 10)));
        }
        out.extend(c.flush());
        let got: Vec<Vec<u64>> = out.iter().map(|c| seqs(c)).collect();
        assert_eq!(got, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        assert!(c.flush().is_none());
    }

    #[test]
    fn windows_close_by_capture_time() {
        let mut c = Chunker::new(ChunkMode::Window(Duration::from_millis(100)), 1 << 20);
        let mut out = Vec::new();
        for s in 0..7 {
            out.extend(c.push(unit(s, s == 0, 10)));
        }
        out.extend(c.flush());
        // 33.3 ms apart: 0-3 are less than 100 ms after 0; 4 (133.3 ms) opens the next.
        assert_eq!(seqs(&out[0]), vec![0, 1, 2, 3]);
        assert_eq!(seqs(&out[1]), vec![4, 5, 6]);
    }

    #[test]
    fn a_chunk_never_grows_past_the_byte_cap() {
        let mut c = Chunker::new(ChunkMode::Gop, 25);
        let mut out = Vec::new();
        for s in 0..5 {
            out.extend(c.push(unit(s, s == 0, 10)));
        }
        out.extend(c.flush());
        let got: Vec<Vec<u64>> = out.iter().map(|c| seqs(c)).collect();
        assert_eq!(got, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
