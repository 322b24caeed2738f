//! Box configuration: TOML in, a validated [`Config`] out. Parsing and validation
//! collect every problem with its file, line and column, so `check-config` can list
//! them all at once; start-up and SIGHUP reload go through the same [`load`].

mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use venue_proto::Id;

pub use parse::parse;

/// The embedded default configuration, every key commented.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Name used in error messages for the embedded default.
pub const DEFAULT_NAME: &str = "<embedded default>";

/// A configuration that passed validation: every value is in range and every camera
/// id is unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub venue: Id,
    pub box_id: Id,
    /// How often free memory of the allocator is given back to the system
    /// (`[box] allocator_trim_s`; `None`: never).
    pub allocator_trim: Option<Duration>,
    pub zenoh: ZenohConfig,
    pub metrics: MetricsConfig,
    pub health: HealthConfig,
    pub pipeline: PipelineConfig,
    pub spool: SpoolConfig,
    pub uplink: UplinkConfig,
    /// `None` when `[mqtt]` is absent or has `enabled = false`.
    pub mqtt: Option<MqttConfig>,
    /// Segmentation: backend, model and workers (`[inference]`).
    pub inference: InferenceConfig,
    /// Tagging of segmented frames (`[tagging]`); `None` when switched off.
    pub tagging: Option<TaggingConfig>,
    /// Encoding, passthrough, chunks, pre-roll and clips (`[video]`).
    pub video: VideoConfig,
    pub cameras: Vec<CameraConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZenohMode {
    Peer,
    Client,
}

impl ZenohMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peer => "peer",
            Self::Client => "client",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenohConfig {
    pub mode: ZenohMode,
    pub listen: Vec<String>,
    pub connect: Vec<String>,
    pub multicast_scouting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `None` when the endpoint is switched off.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval: Duration,
    pub stall_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    pub queue_depth: usize,
    pub restart_backoff_min: Duration,
    pub restart_backoff_max: Duration,
}

pub use crate::inference::InferenceConfig;
pub use crate::spool::SpoolConfig;
pub use crate::tagging::TaggingConfig;
pub use crate::video::VideoConfig;

/// Where the spool lives when `[spool] dir` is not set (relative to the working
/// directory; a box sets an absolute path such as /var/lib/venue-edge/spool).
pub const DEFAULT_SPOOL_DIR: &str = ".run/spool";

/// How the uplink sends spooled records and waits for the cloud's acks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    /// Records sent ahead of the last acknowledgement, per stream.
    pub window: u64,
    /// Without ack progress for this long, resend from the last acknowledgement.
    pub resend_after: Duration,
}

/// The MQTT uplink (health and events for systems that speak MQTT). QoS is always 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// The broker's URL as written (`mqtt://HOST:PORT`), for logs.
    pub url: String,
    /// Broker host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Unique per broker: a second client with the same id takes the session over.
    pub client_id: String,
    /// The client pings the broker when idle this long; the broker drops the
    /// connection after 1.5 times this without traffic.
    pub keep_alive: Duration,
    /// What MQTT carries: `Health` (live, retained) and/or `Event` (from the
    /// spool, acknowledged over MQTT).
    pub streams: Vec<venue_proto::StreamKind>,
    /// TLS (`mqtts://`): the checked PEM files.
    pub tls: Option<MqttTls>,
}

/// TLS settings of the MQTT uplink, with the PEM contents read and checked at
/// load time (a reload that changes a file's content is seen as a change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTls {
    pub ca_file: PathBuf,
    pub ca_pem: Vec<u8>,
    /// Mutual TLS: the box's certificate chain and key.
    pub client: Option<MqttClientCert>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttClientCert {
    pub cert_file: PathBuf,
    pub cert_pem: Vec<u8>,
    pub key_file: PathBuf,
    pub key_pem: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraConfig {
    pub id: Id,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Frames a second segmented (0: none; at most `fps`).
    pub inference_fps: u32,
    pub source: SourceConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    Synthetic {
        /// The venue drawn: an ice rink or a ski slope with a jump.
        scene: venue_drivers::Scene,
        seed: u64,
        athletes: u32,
        fail_after_frames: Option<u64>,
    },
    /// An RTSP or SRT camera, or a recorded file, through GStreamer.
    Feed(FeedSource),
    /// A USB/CSI camera through V4L2 (`kind = "v4l2"`).
    V4l2(V4l2Source),
}

/// A V4L2 camera (`kind = "v4l2"`). Size and rate are the camera's `width`,
/// `height` and `fps`; the closest mode the device offers is negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Source {
    /// Device node, reopened by this path after an unplug.
    pub device: PathBuf,
    /// Allowed pixel formats, most preferred first.
    pub formats: Vec<venue_drivers::PixelFormat>,
    /// mmap buffers queued in the driver.
    pub buffers: u32,
    /// No frame for this long is a stall (and a reopen).
    pub frame_timeout: Duration,
    /// Reopen backoff after a stall: starts at `reopen_min`, doubles to `reopen_max`.
    pub reopen_min: Duration,
    pub reopen_max: Duration,
    /// Exposure, gain and white balance, set after every (re)open.
    pub controls: Vec<venue_drivers::v4l2::ControlSetting>,
}

/// A network or file feed (`kind = "rtsp" | "srt" | "file"`). The frame size is the
/// stream's own; the camera's `width`/`height` apply to synthetic sources only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSource {
    pub kind: venue_drivers::gst::FeedKind,
    /// Jitter-buffer (RTSP) or receive (SRT) latency.
    pub latency: Duration,
    /// No frame for this long: `stalled`, then the feed is reopened.
    pub stall_timeout: Duration,
    /// Reconnect backoff: starts at `reconnect_min`, doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &name),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// The embedded default configuration, validated.
pub fn embedded_default() -> Result<Config, ConfigErrors> {
    parse(DEFAULT_TOML, DEFAULT_NAME)
}
