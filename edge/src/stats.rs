//! Cheap per-frame statistics on the luma plane: brightness and a motion cue.

use venue_proto::FrameStats;

/// Sampling grid step in pixels: enough for exposure and motion cues at a small
/// fraction of a full-frame pass.
const STEP: usize = 4;

/// Keeps the previous frame's samples to measure motion.
#[derive(Debug, Default)]
pub struct StatsState {
    prev: Vec<u8>,
    cur: Vec<u8>,
}

impl StatsState {
    /// Statistics of a `width`×`height` luma plane (row stride = width).
    pub fn measure(&mut self, luma: &[u8], width: usize, height: usize) -> FrameStats {
        self.cur.clear();
        let (mut sum, mut min, mut max) = (0u64, u8::MAX, u8::MIN);
        for row in luma.chunks_exact(width.max(1)).take(height).step_by(STEP) {
            for &px in row.iter().step_by(STEP) {
                sum += u64::from(px);
                min = min.min(px);
                max = max.max(px);
                self.cur.push(px);
            }
        }
        let n = self.cur.len();
        let motion = if n > 0 && self.prev.len() == n {
            let diff: u64 = self
                .prev
                .iter()
                .zip(&self.cur)
                .map(|(a, b)| u64::from(a.abs_diff(*b)))
                .sum();
            diff as f32 / n as f32
        } else {
            0.0
        };
        std::mem::swap(&mut self.prev, &mut self.cur);
        if n == 0 {
            return FrameStats {
                luma_mean: 0.0,
                luma_min: 0,
                luma_max: 0,
                motion: 0.0,
            };
        }
        FrameStats {
            luma_mean: sum as f32 / n as f32,
            luma_min: min,
            luma_max: max,
            motion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_then_changed() {
        let mut s = StatsState::default();
        let a = vec![100u8; 64 * 32];
        let st = s.measure(&a, 64, 32);
        assert_eq!(
            (st.luma_mean, st.luma_min, st.luma_max, st.motion),
            (100.0, 100, 100, 0.0)
        );
        let b = vec![110u8; 64 * 32];
        let st = s.measure(&b, 64, 32);
        assert_eq!(st.motion, 10.0);
        assert_eq!(st.luma_mean, 110.0);
    }

    #[test]
    fn min_max_and_empty() {
        let mut s = StatsState::default();
        let mut a = vec![50u8; 16 * 16];
        a[0] = 0;
        a[4] = 255;
        let st = s.measure(&a, 16, 16);
        assert_eq!((st.luma_min, st.luma_max), (0, 255));
        let st = s.measure(&[], 0, 0);
        assert_eq!(st.luma_mean, 0.0);
    }
}
