//! Video encoding: which GStreamer encoder element to use (configured or detected),
//! its settings, and [`Encoder`], a raw-frame → H.264/H.265 access-unit pipeline
//! that keeps each unit's capture sequence and time (`mux` turns a run of units
//! into an MP4 without re-encoding).
//!
//! The settings types build without the `gstreamer` feature, so configuration can
//! name encoders either way.

#[cfg(feature = "gstreamer")]
mod element;
#[cfg(feature = "gstreamer")]
pub mod mux;
#[cfg(feature = "gstreamer")]
mod pipeline;

#[cfg(feature = "gstreamer")]
pub use element::{probe, resolve};
#[cfg(feature = "gstreamer")]
pub use pipeline::{EncodedUnit, Encoder};

use crate::frame::PixelFormat;

/// An encoder GStreamer element this project knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderElement {
    /// GStreamer factory name (`x264enc`).
    pub factory: &'static str,
    /// [`PixelFormat::H264`] or [`PixelFormat::H265`].
    pub codec: PixelFormat,
    /// What to install (or where it comes from) when the element is missing.
    pub install: &'static str,
    /// Family of property names and value conventions.
    pub family: Family,
}

/// How an encoder family names its settings (they differ in units and names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// x264enc / x265enc (CPU).
    X26x,
    /// nvh264enc / nvh265enc (NVIDIA desktop GPUs, NVENC through the nvcodec plugin).
    Nvcodec,
    /// nvv4l2h264enc / nvv4l2h265enc (Jetson, NVIDIA's L4T multimedia API).
    Nvv4l2,
}

/// Every encoder element known, in `auto` preference order (hardware first).
pub const ELEMENTS: &[EncoderElement] = &[
    EncoderElement {
        factory: "nvv4l2h264enc",
        codec: PixelFormat::H264,
        install: "NVIDIA's L4T GStreamer plugins (nvidia-l4t-gstreamer, Jetson only)",
        family: Family::Nvv4l2,
    },
    EncoderElement {
        factory: "nvh264enc",
        codec: PixelFormat::H264,
        install: "the GStreamer nvcodec plugin (gstreamer1.0-plugins-bad) with the NVIDIA driver's libnvidia-encode",
        family: Family::Nvcodec,
    },
    EncoderElement {
        factory: "x264enc",
        codec: PixelFormat::H264,
        install: "gstreamer1.0-plugins-ugly (Debian/Ubuntu; x264enc)",
        family: Family::X26x,
    },
    EncoderElement {
        factory: "nvv4l2h265enc",
        codec: PixelFormat::H265,
        install: "NVIDIA's L4T GStreamer plugins (nvidia-l4t-gstreamer, Jetson only)",
        family: Family::Nvv4l2,
    },
    EncoderElement {
        factory: "nvh265enc",
        codec: PixelFormat::H265,
        install: "the GStreamer nvcodec plugin (gstreamer1.0-plugins-bad) with the NVIDIA driver's libnvidia-encode",
        family: Family::Nvcodec,
    },
    EncoderElement {
        factory: "x265enc",
        codec: PixelFormat::H265,
        install: "gstreamer1.0-plugins-bad (Debian/Ubuntu; x265enc)",
        family: Family::X26x,
    },
];

/// Which encoder to use: a named one, or the best one this machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderChoice {
    /// H.264: `nvv4l2h264enc`, then `nvh264enc`, then `x264enc`, whichever exists.
    Auto,
    /// The element with this factory name (one of [`ELEMENTS`]).
    Named(&'static EncoderElement),
}

impl EncoderChoice {
    /// Config names: `auto`, `x264`, `x265`, `nvh264`, `nvh265`, `nvv4l2h264`,
    /// `nvv4l2h265` (the factory name without `enc`).
    pub const NAMES: &'static [&'static str] = &[
        "auto",
        "x264",
        "x265",
        "nvh264",
        "nvh265",
        "nvv4l2h264",
        "nvv4l2h265",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        if name == "auto" {
            return Some(Self::Auto);
        }
        ELEMENTS
            .iter()
            .find(|e| e.factory.strip_suffix("enc") == Some(name))
            .map(Self::Named)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Named(e) => e.factory.strip_suffix("enc").unwrap_or(e.factory),
        }
    }
}

/// H.264/H.265 profile. H.265 encoders use `main` for all three (8-bit 4:2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Baseline,
    Main,
    High,
}

impl Profile {
    pub const NAMES: &'static [&'static str] = &["baseline", "main", "high"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "baseline" => Some(Self::Baseline),
            "main" => Some(Self::Main),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Main => "main",
            Self::High => "high",
        }
    }
}

/// Latency against compression: `Low` emits each frame's access unit as soon as
/// the frame is encoded (no lookahead, no B-frames); `Normal` lets the encoder look
/// ahead for better quality at the same bitrate (still without B-frames, so output
/// order is capture order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencyMode {
    Low,
    Normal,
}

impl LatencyMode {
    pub const NAMES: &'static [&'static str] = &["low", "normal"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "low" => Some(Self::Low),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }
}

/// Speed against quality for CPU encoders (x264/x265 `speed-preset`); hardware
/// encoders map it to their nearest preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl Preset {
    pub const NAMES: &'static [&'static str] = &[
        "ultrafast",
        "superfast",
        "veryfast",
        "faster",
        "fast",
        "medium",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ultrafast" => Self::Ultrafast,
            "superfast" => Self::Superfast,
            "veryfast" => Self::Veryfast,
            "faster" => Self::Faster,
            "fast" => Self::Fast,
            "medium" => Self::Medium,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Everything an [`Encoder`] needs besides the frame size and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    pub choice: EncoderChoice,
    /// Target bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames from one keyframe to the next (GOP length).
    pub gop: u32,
    pub profile: Profile,
    pub latency: LatencyMode,
    pub preset: Preset,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            choice: EncoderChoice::Auto,
            bitrate_kbps: 4000,
            gop: 30,
            profile: Profile::High,
            latency: LatencyMode::Low,
            preset: Preset::Superfast,
        }
    }
}

/// Why video could not be encoded (or muxed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The named encoder element is not installed on this machine.
    #[error(
        "GStreamer encoder \"{element}\" is not installed; install {install}, or set [video] encoder = \"auto\""
    )]
    Missing {
        element: &'static str,
        install: &'static str,
    },
    /// `auto` found no encoder at all.
    #[error(
        "no H.264 encoder found (tried {tried}); install gstreamer1.0-plugins-ugly for x264enc, or set [video] encoder = \"off\""
    )]
    NoEncoder { tried: String },
    /// A GStreamer element the pipeline needs besides the encoder is missing.
    #[error("GStreamer element \"{element}\" is not installed; install {install}")]
    MissingElement {
        element: &'static str,
        install: &'static str,
    },
    /// A setting the element does not accept.
    #[error("encoder {element}: {message}")]
    Misconfigured {
        element: &'static str,
        message: String,
    },
    /// A frame the encoder cannot take (wrong format or size).
    #[error("frame not encodable: {0}")]
    Input(String),
    /// The running pipeline failed.
    #[error("encoding pipeline: {0}")]
    Pipeline(String),
}
