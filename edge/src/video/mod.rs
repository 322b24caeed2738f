//! Video out: raw cameras encoded to H.264/H.265 (`stage`), compressed feeds passed
//! through as received, access units grouped into `video` chunks (`chunk`), the
//! last seconds of each camera kept for clips (`ring`), event and on-request MP4
//! clips cut without re-encoding (`clip`), and JPEG snapshots (`snapshot`).
//! Every access unit keeps the capture sequence and time of its frame, so video and
//! per-frame metadata line up exactly.

pub mod chunk;
#[cfg(feature = "gstreamer")]
pub mod client;
pub mod clip;
pub mod counters;
pub mod ring;
#[cfg(feature = "gstreamer")]
pub mod serve;
pub mod snapshot;
#[cfg(feature = "gstreamer")]
pub mod stage;

use std::sync::Arc;
use std::time::Duration;

use venue_drivers::gst::encode::EncoderSettings;

pub use chunk::Chunker;
pub use counters::VideoCounters;
pub use ring::Ring;

/// How access units are grouped into `video` chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkMode {
    /// One chunk per GOP: each chunk starts at a keyframe and decodes on its own.
    Gop,
    /// One chunk per time window (by capture time); a chunk may start mid-GOP.
    Window(Duration),
}

/// The `[video]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// How raw cameras are encoded; `None` (`encoder = "off"`): they are not.
    pub encoder: Option<EncoderSettings>,
    /// Compressed feeds (RTSP/SRT/file) send their access units as received.
    pub passthrough: bool,
    pub chunk: ChunkMode,
    /// A chunk is closed early when it would grow past this.
    pub chunk_max_bytes: usize,
    /// Encoded video kept per camera for clips, by age and by size.
    pub preroll: Duration,
    pub preroll_max_bytes: usize,
    /// Video before an event's start included in its clip (at most `preroll`).
    pub clip_preroll: Duration,
    /// Video after an event's end included in its clip.
    pub postroll: Duration,
    /// Cut a clip for every key-moment event that ends.
    pub event_clips: bool,
    /// Event clips kept per camera for retrieval (oldest dropped first), at most
    /// this many and this many bytes.
    pub clips_kept: usize,
    pub clips_max_bytes: usize,
}

impl Default for VideoConfig {
    /// No `[video]` section: nothing encoded, feeds pass through.
    fn default() -> Self {
        Self {
            encoder: None,
            passthrough: true,
            chunk: ChunkMode::Gop,
            chunk_max_bytes: 2048 * 1024,
            preroll: Duration::from_secs(10),
            preroll_max_bytes: 64 * 1024 * 1024,
            clip_preroll: Duration::from_secs(2),
            postroll: Duration::from_secs(3),
            event_clips: true,
            clips_kept: 16,
            clips_max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One access unit as the video stage keeps it: shared by the chunker, the ring
/// and clip cutting without copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Capture sequence of the frame it encodes (the metadata's `frame_seq`).
    pub seq: u64,
    pub capture_ns: u64,
    pub keyframe: bool,
    /// Annex-B bytes.
    pub data: Vec<u8>,
}

pub type SharedUnit = Arc<Unit>;
