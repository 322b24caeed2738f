//! Network and file feeds through GStreamer: RTSP and SRT cameras and recorded files
//! (H.264/H.265). A feed yields decoded NV12 frames for inference and, on request,
//! the compressed access units exactly as received (no re-encode). It reconnects
//! forever with capped exponential backoff and reports its state.
//!
//! The plain configuration and state types (and the reconnect state machine) build
//! without the `gstreamer` feature, so configuration can name feeds either way.

mod backoff;
pub mod encode;
#[cfg(feature = "gstreamer")]
mod pipeline;
#[cfg(feature = "gstreamer")]
mod raw_queue;
#[cfg(feature = "gstreamer")]
mod source;
mod stop;
#[cfg(feature = "rtsp-test-server")]
pub mod test_server;

use std::path::PathBuf;
use std::time::Duration;

pub use backoff::{Action, BackoffConfig, FeedState, Reconnect};
#[cfg(feature = "gstreamer")]
pub use source::{AccessUnits, FeedStatus, GstSource};
pub use stop::StopSignal;

/// Where a feed comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedKind {
    /// `rtsp://host[:port]/path`; RTP over the RTSP TCP connection (interleaved),
    /// which survives NAT and firewalls and loses nothing to UDP drops.
    Rtsp { url: String },
    /// `srt://host:port[?mode=caller|listener…]` carrying MPEG-TS.
    Srt { url: String },
    /// A recorded file (MP4, Matroska, MPEG-TS or an Annex-B elementary stream).
    File {
        path: PathBuf,
        /// Play at the recorded frame rate (true) or as fast as downstream takes it.
        realtime: bool,
        /// Start over at the end instead of ending.
        repeat: bool,
    },
}

impl FeedKind {
    /// The feed's location for logs and health details, without credentials
    /// (`rtsp://user:secret@host/…` reads `rtsp://host/…`).
    pub fn location(&self) -> String {
        match self {
            Self::Rtsp { url } | Self::Srt { url } => without_userinfo(url),
            Self::File { path, .. } => path.display().to_string(),
        }
    }
}

fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Everything a [`GstSource`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    pub kind: FeedKind,
    /// The camera id its frames carry.
    pub camera: std::sync::Arc<str>,
    /// Jitter-buffer latency (RTSP) or SRT receive latency.
    pub latency: Duration,
    /// No frame for this long: the feed is `stalled`, torn down and reopened.
    pub stall_timeout: Duration,
    pub backoff: BackoffConfig,
    /// Decoded frames in flight at most (pooled buffers).
    pub pool_buffers: usize,
    /// Frame rate reported when the stream does not state one.
    pub fallback_fps: u32,
    /// Compressed access units kept for [`GstSource::access_units`] (0: none are
    /// extracted). When the queue is full the newest unit is dropped and counted.
    pub access_unit_queue: usize,
}

impl FeedConfig {
    /// A config with the usual defaults for `kind`.
    pub fn new(kind: FeedKind) -> Self {
        Self {
            kind,
            camera: std::sync::Arc::from("feed"),
            latency: Duration::from_millis(200),
            stall_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
            pool_buffers: 4,
            fallback_fps: 30,
            access_unit_queue: 0,
        }
    }
}

/// Initialises GStreamer once per process; safe to call repeatedly.
#[cfg(feature = "gstreamer")]
pub fn init() -> Result<(), crate::SourceError> {
    gstreamer::init().map_err(|e| crate::SourceError::Unsupported(format!("GStreamer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_hide_credentials() {
        let rtsp = |url: &str| FeedKind::Rtsp { url: url.into() }.location();
        assert_eq!(
            rtsp("rtsp://admin:pw@10.0.0.5:554/s?a=b@c"),
            "rtsp://10.0.0.5:554/s?a=b@c"
        );
        assert_eq!(rtsp("rtsp://10.0.0.5/s"), "rtsp://10.0.0.5/s");
        assert_eq!(rtsp("not a url"), "not a url");
    }
}
