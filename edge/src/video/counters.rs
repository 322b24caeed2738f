//! A camera's video counters: the `video` stage in the per-stage frame metrics and
//! in health, chunks and bytes spooled, and event clips by result.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use venue_proto::StageCounters;

use crate::metrics::{CameraLabels, ClipLabels, DropLabels, Metrics, StageLabels};

/// Registered under the camera's labels; cheap to update from the video threads.
#[derive(Debug, Clone)]
pub struct VideoCounters {
    /// Raw frames given to the video stage, or access units a feed delivered.
    pub frames_in: Counter,
    /// Access units stored in `video` chunks.
    pub frames_out: Counter,
    /// Raw frames not encoded: a format the encoder cannot take (MJPEG) or no
    /// working encoder until the next retry.
    pub not_encoded: Counter,
    /// Access units of chunks the spool refused (full disk, I/O error).
    pub not_stored: Counter,
    /// Encoder failures and clip failures.
    pub errors: Counter,
    pub chunks: Counter,
    pub bytes: Counter,
    pub clips_cut: Counter,
    pub clips_sent: Counter,
    pub clips_failed: Counter,
    pub clips_busy: Counter,
    pub clips_too_large: Counter,
    pub clips_not_stored: Counter,
    /// Bytes held by the pre-roll ring and by the kept event clips: the two
    /// bounded stores that fill during a camera's first minutes.
    pub ring_bytes: Gauge,
    pub clips_kept_bytes: Gauge,
}

impl VideoCounters {
    pub fn new(m: &Metrics, camera: &str) -> Self {
        let stage = StageLabels {
            camera: camera.to_string(),
            stage: "video",
        };
        let drop = |reason| {
            m.frames_dropped
                .get_or_create(&DropLabels {
                    camera: camera.to_string(),
                    stage: "video",
                    reason,
                })
                .clone()
        };
        let cam = CameraLabels {
            camera: camera.to_string(),
        };
        let clip = |result| {
            m.event_clips
                .get_or_create(&ClipLabels {
                    camera: camera.to_string(),
                    result,
                })
                .clone()
        };
        Self {
            frames_in: m.frames_in.get_or_create(&stage).clone(),
            frames_out: m.frames_out.get_or_create(&stage).clone(),
            not_encoded: drop("not_encoded"),
            not_stored: drop("not_stored"),
            errors: m.errors.get_or_create(&stage).clone(),
            chunks: m.video_chunks.get_or_create(&cam).clone(),
            bytes: m.video_bytes.get_or_create(&cam).clone(),
            clips_cut: clip("cut"),
            clips_sent: clip("sent"),
            clips_failed: clip("failed"),
            clips_busy: clip("busy"),
            clips_too_large: clip("too_large"),
            clips_not_stored: clip("not_stored"),
            ring_bytes: m.video_ring_bytes.get_or_create(&cam).clone(),
            clips_kept_bytes: m.event_clips_kept_bytes.get_or_create(&cam).clone(),
        }
    }

    /// The `video` stage as health reports it.
    pub fn stage(&self) -> StageCounters {
        StageCounters {
            stage: "video".into(),
            frames_in: self.frames_in.get(),
            frames_out: self.frames_out.get(),
            dropped: self.not_encoded.get() + self.not_stored.get(),
            errors: self.errors.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_metrics_and_health() {
        let m = Metrics::new();
        let c = VideoCounters::new(&m, "cam-1");
        c.frames_in.inc_by(30);
        c.frames_out.inc_by(28);
        c.not_stored.inc_by(2);
        c.clips_sent.inc();
        let s = c.stage();
        assert_eq!((s.frames_in, s.frames_out, s.dropped), (30, 28, 2));
        let text = m.render();
        for line in [
            r#"venue_edge_frames_in_total{camera="cam-1",stage="video"} 30"#,
            r#"venue_edge_frames_dropped_total{camera="cam-1",stage="video",reason="not_stored"} 2"#,
            r#"venue_edge_event_clips_total{camera="cam-1",result="sent"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
