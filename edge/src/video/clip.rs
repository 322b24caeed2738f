//! Clips: a run of access units from the ring muxed to MP4 without re-encoding,
//! and the per-camera store of event clips kept for retrieval.

use std::collections::VecDeque;
use std::sync::Arc;

#[cfg(feature = "gstreamer")]
use super::SharedUnit;

/// A cut clip, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipFile {
    pub event_id: Option<u64>,
    pub first_frame_seq: u64,
    pub frames: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub mp4: Vec<u8>,
}

/// Muxes `units` (starting at a keyframe) into an MP4. Presentation times follow
/// the capture sequence at the nominal rate, so frames dropped before encoding
/// show as gaps in time, and a clip plays at the camera's speed.
#[cfg(feature = "gstreamer")]
pub fn cut(
    units: &[SharedUnit],
    codec: venue_drivers::PixelFormat,
    fps: u32,
    event_id: Option<u64>,
) -> Result<ClipFile, venue_drivers::gst::encode::EncodeError> {
    use venue_drivers::gst::encode::mux::{MuxUnit, mp4};
    let first = units.first().map_or(0, |u| u.seq);
    let period = 1_000_000_000u128 / u128::from(fps.max(1));
    let mux: Vec<MuxUnit<'_>> = units
        .iter()
        .map(|u| MuxUnit {
            pts_ns: (u128::from(u.seq.saturating_sub(first)) * period) as u64,
            keyframe: u.keyframe,
            data: &u.data,
        })
        .collect();
    let file = mp4(codec, fps, &mux)?;
    Ok(ClipFile {
        event_id,
        first_frame_seq: first,
        frames: units.len() as u32,
        start_ns: units.first().map_or(0, |u| u.capture_ns),
        end_ns: units.last().map_or(0, |u| u.capture_ns),
        mp4: file,
    })
}

/// The last event clips of one camera, oldest dropped first, bounded by count and
/// by bytes (memory must stay flat however many events a venue has).
#[derive(Debug)]
pub struct ClipStore {
    clips: VecDeque<Arc<ClipFile>>,
    max: usize,
    max_bytes: usize,
    bytes: usize,
}

impl ClipStore {
    pub fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            clips: VecDeque::new(),
            max,
            max_bytes,
            bytes: 0,
        }
    }

    pub fn insert(&mut self, clip: ClipFile) {
        if self.max == 0 || clip.mp4.len() > self.max_bytes {
            return;
        }
        // An event ended twice (a restart's `finish`) keeps the newer cut.
        self.clips
            .retain(|c| c.event_id.is_none() || c.event_id != clip.event_id);
        self.bytes = self.clips.iter().map(|c| c.mp4.len()).sum();
        while self.clips.len() >= self.max || self.bytes + clip.mp4.len() > self.max_bytes {
            match self.clips.pop_front() {
                Some(old) => self.bytes -= old.mp4.len(),
                None => break,
            }
        }
        self.bytes += clip.mp4.len();
        self.clips.push_back(Arc::new(clip));
    }

    /// Bytes of MP4 kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn get(&self, event_id: u64) -> Option<Arc<ClipFile>> {
        self.clips
            .iter()
            .find(|c| c.event_id == Some(event_id))
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.clips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clips.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: u64) -> ClipFile {
        ClipFile {
            event_id: Some(id),
            first_frame_seq: 0,
            frames: 1,
            start_ns: 0,
            end_ns: 0,
            mp4: vec![0; 10],
        }
    }

    #[test]
    fn the_byte_cap_drops_the_oldest() {
        let mut s = ClipStore::new(100, 25);
        for id in 1..=4 {
            s.insert(clip(id));
        }
        assert_eq!((s.len(), s.bytes()), (2, 20));
        assert!(s.get(3).is_some() && s.get(4).is_some());
        let mut big = clip(9);
        big.mp4 = vec![0; 26];
        s.insert(big);
        assert!(s.get(9).is_none(), "a clip larger than the cap is not kept");
    }

    #[test]
    fn the_store_keeps_the_newest_clips() {
        let mut s = ClipStore::new(2, 1 << 20);
        for id in 1..=3 {
            s.insert(clip(id));
        }
        assert!(s.get(1).is_none());
        assert!(s.get(2).is_some() && s.get(3).is_some());
        s.insert(clip(3));
        assert_eq!(s.len(), 2);
        let mut none = ClipStore::new(0, 1 << 20);
        none.insert(clip(1));
        assert!(none.is_empty());
    }
}
