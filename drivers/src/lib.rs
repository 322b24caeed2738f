//! Media sources for Venue Edge: the frame type, its buffer pool, the clock sources
//! read time from, the synthetic venue camera with its scenes and ground truth, and
//! (feature `gstreamer`) network and file feeds.
//! Knows nothing about the wire format, zenoh or MQTT.

pub mod clock;
pub mod frame;
pub mod gst;
pub mod pool;
pub mod synthetic;
pub mod v4l2;
pub mod venue;

pub use clock::{Clock, ManualClock, SystemClock};
pub use frame::{Frame, PixelFormat, Timecode};
pub use pool::BufferPool;
pub use synthetic::{SyntheticCamera, SyntheticConfig};
pub use venue::Scene;
pub use venue::truth::{
    AthleteTruth, FALL_TUMBLE_S, GroundTruth, Moment, MomentKind, PixelBox, Speck,
};

/// Why a source could not deliver a frame.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configured fault-injection point was reached (tests and drills only).
    #[error("injected fault after {0} frames")]
    Injected(u64),
    /// The requested format cannot be produced by this source.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
    /// Every pooled buffer is still held downstream; frame `seq` was not captured.
    #[error("frame {seq} dropped: every frame buffer is still in use downstream")]
    PoolExhausted { seq: u64 },
    /// Shutdown was requested while waiting for a frame.
    #[error("source stopped")]
    Stopped,
    /// The source has no more frames (a file played to its end).
    #[error("end of the feed")]
    Ended,
    /// The feed delivered something unusable (a frame that cannot be mapped).
    #[error("feed error: {0}")]
    Feed(String),
}

/// A camera: blocking, one frame at a time. Implementations run on their own thread,
/// never on the async runtime.
pub trait Source: Send {
    /// Blocks until the next frame is available, or returns an error.
    fn next_frame(&mut self) -> Result<Frame, SourceError>;
}
