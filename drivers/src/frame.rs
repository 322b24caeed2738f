//! The frame every source produces and every stage reads.

use std::sync::Arc;
use std::time::Duration;

pub use venue_proto::Timecode;

/// Pixel layout of a raw frame, or the compression of a compressed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Y plane then interleaved UV at half resolution (4:2:0).
    Nv12,
    Yuyv,
    Rgb24,
    Mjpeg,
    H264,
    H265,
}

impl PixelFormat {
    /// Bytes of a raw frame, or `None` for compressed formats.
    pub fn frame_bytes(self, width: u32, height: u32) -> Option<usize> {
        let px = width as usize * height as usize;
        match self {
            Self::Nv12 => Some(px + px / 2),
            Self::Yuyv => Some(px * 2),
            Self::Rgb24 => Some(px * 3),
            Self::Mjpeg | Self::H264 | Self::H265 => None,
        }
    }
}

/// One captured frame: raw pixels (NV12, YUYV, RGB), a JPEG image (MJPEG), or one
/// compressed H.264/H.265 access unit (Annex-B, as received: no re-encode). The
/// bytes sit behind an `Arc` from a [`crate::BufferPool`]: cloning a frame to fan it
/// out to several stages never copies them.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Id of the camera that captured it (shared, so a frame costs no allocation).
    pub camera: Arc<str>,
    /// Capture sequence number of this source incarnation, gap-free from 0.
    pub seq: u64,
    /// Monotonic capture time (the clock's origin is the daemon's start).
    pub capture_mono: Duration,
    /// Wall-clock capture time, Unix nanoseconds.
    pub capture_ns: u64,
    /// SMPTE timecode of the capture: from the source when it carries one, else
    /// derived from `capture_ns` at the nominal rate ([`Frame::timecode_at`]).
    pub timecode: Timecode,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// Nominal frame rate of the source.
    pub fps: u32,
    /// A frame decodable on its own: every raw frame; an IDR/IRAP access unit.
    pub keyframe: bool,
    pub data: Arc<Vec<u8>>,
}

impl PixelFormat {
    /// Every format, in the order configuration errors list them.
    pub const ALL: [PixelFormat; 6] = [
        Self::Nv12,
        Self::Yuyv,
        Self::Rgb24,
        Self::Mjpeg,
        Self::H264,
        Self::H265,
    ];

    /// The lower-case name configuration uses (`nv12`, `yuyv`, `rgb24`, `mjpeg`,
    /// `h264`, `h265`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nv12 => "nv12",
            Self::Yuyv => "yuyv",
            Self::Rgb24 => "rgb24",
            Self::Mjpeg => "mjpeg",
            Self::H264 => "h264",
            Self::H265 => "h265",
        }
    }

    /// The format a configuration name stands for (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Whether frames of this format carry compressed video (access units).
    pub fn is_video_codec(self) -> bool {
        matches!(self, Self::H264 | Self::H265)
    }
}

impl Frame {
    /// The timecode a source without its own derives from the wall clock: time of
    /// day at the nominal rate (rates above 255 fps are clamped: SMPTE counts frames
    /// in a byte).
    pub fn timecode_at(capture_ns: u64, fps: u32) -> Timecode {
        Timecode::from_unix_ns(capture_ns, fps.clamp(1, 255) as u8)
    }

    /// The luma plane of a planar YUV frame.
    pub fn luma(&self) -> Option<&[u8]> {
        match self.format {
            PixelFormat::Nv12 => self.data.get(..self.width as usize * self.height as usize),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PixelFormat;

    #[test]
    fn format_names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(PixelFormat::from_name("NV12"), Some(PixelFormat::Nv12));
        assert_eq!(PixelFormat::from_name("i420"), None);
    }
}
