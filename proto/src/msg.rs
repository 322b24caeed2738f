//! The message types. Field numbers are the contract: never reuse or renumber one;
//! add new optional fields with new numbers (old decoders skip them).

use alloc::string::String;
use alloc::vec::Vec;

use minicbor::{CborLen, Decode, Encode};

use crate::id::Id;
use crate::key::StreamKind;
use crate::timecode::Timecode;

/// Key 0 of every message: who sent it, where it sits in its stream, and when the
/// data it describes was captured.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Header {
    /// [`crate::SCHEMA_VERSION`] of the writer.
    #[n(0)]
    pub schema: u16,
    #[n(1)]
    pub venue: Id,
    #[n(2)]
    pub box_id: Id,
    /// Camera id, or [`crate::BOX_CAMERA`] for box-level messages.
    #[n(3)]
    pub camera: Id,
    /// Identifies one run of the stream's sequence counter. A new incarnation starts
    /// again at sequence 0; receivers key gap detection on (stream, incarnation).
    #[n(4)]
    pub incarnation: u64,
    /// Per-stream sequence number: gap-free, starting at 0 per incarnation.
    #[n(5)]
    pub seq: u64,
    /// Capture time of the data, nanoseconds since the Unix epoch (UTC from the box's
    /// disciplined wall clock; PTP-disciplined where the box has it).
    #[n(6)]
    pub capture_ns: u64,
    /// SMPTE timecode of the captured frame.
    #[n(7)]
    pub timecode: Timecode,
}

/// Pixel layout or compression of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum PixelFormat {
    #[n(0)]
    Nv12,
    #[n(1)]
    Yuyv,
    #[n(2)]
    Rgb24,
    #[n(3)]
    Mjpeg,
    #[n(4)]
    H264,
    #[n(5)]
    H265,
}

/// Cheap per-frame statistics computed on the luma plane.
#[derive(Debug, Clone, Copy, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct FrameStats {
    /// Mean luma, 0–255.
    #[n(0)]
    pub luma_mean: f32,
    #[n(1)]
    pub luma_min: u8,
    #[n(2)]
    pub luma_max: u8,
    /// Mean absolute luma difference to the previous frame, 0–255 (a motion cue).
    #[n(3)]
    pub motion: f32,
}

/// An axis-aligned box in pixels of the full frame: `[x, y, width, height]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(array)]
pub struct BBox {
    #[n(0)]
    pub x: u32,
    #[n(1)]
    pub y: u32,
    #[n(2)]
    pub w: u32,
    #[n(3)]
    pub h: u32,
}

/// One detected object (an athlete) in a frame.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Detection {
    /// Class index from the model manifest (0 = athlete for the reference model).
    #[n(0)]
    pub class: u16,
    #[n(1)]
    pub bbox: BBox,
    /// Confidence, 0–1.
    #[n(2)]
    pub score: f32,
    /// Track id, when the tracker has assigned one.
    #[n(3)]
    pub track: Option<u64>,
    /// Mask area in pixels.
    #[n(4)]
    pub area_px: u32,
}

/// Per-frame metadata: stream `meta`, one message per captured frame.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct FrameMeta {
    #[n(0)]
    pub header: Header,
    /// Capture sequence number of the frame (aligns metadata with video access units).
    #[n(1)]
    pub frame_seq: u64,
    #[n(2)]
    pub width: u32,
    #[n(3)]
    pub height: u32,
    #[n(4)]
    pub format: PixelFormat,
    #[n(5)]
    pub stats: FrameStats,
    #[n(6)]
    pub detections: Vec<Detection>,
    /// The athlete mask at the model's resolution, when this frame was segmented
    /// (`None`: not segmented, e.g. skipped by the inference rate or dropped because
    /// inference was busy; health counts those).
    #[n(7)]
    pub mask: Option<MaskRle>,
}

/// A binary mask, run-length encoded: row-major, alternating run lengths starting
/// with a background run (which may be 0), covering exactly `width × height` pixels.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct MaskRle {
    #[n(0)]
    pub width: u32,
    #[n(1)]
    pub height: u32,
    #[n(2)]
    pub runs: Vec<u32>,
}

impl MaskRle {
    /// Whether the runs cover exactly `width × height` pixels (a decoder of outside
    /// data checks this before expanding the mask).
    pub fn is_consistent(&self) -> bool {
        let covered: u64 = self.runs.iter().map(|&r| u64::from(r)).sum();
        covered == u64::from(self.width) * u64::from(self.height)
    }
}

/// What kind of key moment an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum EventKind {
    #[n(0)]
    Enter,
    #[n(1)]
    Exit,
    #[n(2)]
    TakeOff,
    #[n(3)]
    Landing,
    #[n(4)]
    Fall,
    #[n(5)]
    SpeedPeak,
    #[n(6)]
    LineCross,
    /// A whole jump, from take-off to landing.
    #[n(7)]
    Jump,
}

/// Where an event is in its life. An event is sent when it starts and again when it
/// is updated or ends, always with the same `event_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum EventPhase {
    #[n(0)]
    Started,
    #[n(1)]
    Updated,
    #[n(2)]
    Ended,
}

/// A key-moment event: stream `event`.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Event {
    #[n(0)]
    pub header: Header,
    /// Unique per (box, camera); the same across an event's updates.
    #[n(1)]
    pub event_id: u64,
    #[n(2)]
    pub kind: EventKind,
    #[n(3)]
    pub phase: EventPhase,
    /// Start of the moment, Unix ns.
    #[n(4)]
    pub start_ns: u64,
    /// End of the moment, Unix ns, once known.
    #[n(5)]
    pub end_ns: Option<u64>,
    #[n(6)]
    pub tracks: Vec<u64>,
    /// Confidence, 0–1.
    #[n(7)]
    pub confidence: f32,
}

/// The state a camera (or the box) is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum CameraState {
    /// Frames arrive and flow downstream.
    #[n(0)]
    Running,
    /// No frame for longer than the configured stall timeout.
    #[n(1)]
    Stalled,
    /// Downstream cannot keep up; frames are being dropped.
    #[n(2)]
    Blocked,
    /// The source failed and is being reopened with backoff.
    #[n(3)]
    Reconnecting,
    /// The configuration cannot be met; no retry until the config changes.
    #[n(4)]
    Failed,
    /// Starting up or shut down.
    #[n(5)]
    Stopped,
}

/// Frame counters of one pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct StageCounters {
    #[n(0)]
    pub stage: String,
    #[n(1)]
    pub frames_in: u64,
    #[n(2)]
    pub frames_out: u64,
    #[n(3)]
    pub dropped: u64,
    #[n(4)]
    pub errors: u64,
}

/// Camera or box health: stream `health`, sent periodically.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Health {
    /// `capture_ns` is the time the report was made.
    #[n(0)]
    pub header: Header,
    #[n(1)]
    pub state: CameraState,
    #[n(2)]
    pub uptime_ms: u64,
    /// Frames per second measured over the last report interval.
    #[n(3)]
    pub fps: f32,
    #[n(4)]
    pub stages: Vec<StageCounters>,
    /// Pipeline restarts since the daemon started.
    #[n(5)]
    pub restarts: u64,
    /// Human-readable reason for a non-running state.
    #[n(6)]
    pub detail: Option<String>,
    /// Delivery state of the camera's spooled streams (absent in box health).
    #[n(7)]
    pub uplink: Option<Vec<StreamUplink>>,
    /// Spool bytes in use and its cap (box health only).
    #[n(8)]
    pub spool_used_bytes: Option<u64>,
    #[n(9)]
    pub spool_max_bytes: Option<u64>,
}

/// Delivery state of one spooled stream, reported in health.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct StreamUplink {
    #[n(0)]
    pub stream: StreamKind,
    /// Records stored but not yet acknowledged by the cloud.
    #[n(1)]
    pub ack_lag: u64,
    /// Age of the oldest unacknowledged record (capture time to now), ms.
    #[n(2)]
    pub oldest_unacked_ms: u64,
    /// Records never stored because the spool was full or had failed.
    #[n(3)]
    pub lost_full: u64,
    /// Records found damaged on disk.
    #[n(4)]
    pub lost_damaged: u64,
    /// Records evicted by the size policy (video only).
    #[n(5)]
    pub lost_evicted: u64,
}

/// How a picture is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum ImageFormat {
    #[n(0)]
    Jpeg,
    #[n(1)]
    Png,
}

/// A small picture of what a camera sees now, the athlete mask overlaid and track
/// ids drawn: stream `thumbnail`, every few seconds per camera.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Thumbnail {
    #[n(0)]
    pub header: Header,
    /// Capture sequence number of the frame shown.
    #[n(1)]
    pub frame_seq: u64,
    #[n(2)]
    pub width: u32,
    #[n(3)]
    pub height: u32,
    #[n(4)]
    pub format: ImageFormat,
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::msg::byte_len"))]
    #[cbor(n(5), with = "minicbor::bytes")]
    pub image: Vec<u8>,
}

/// A picture made for an event (today: a jump's strobe composite, the athlete cut
/// out at evenly spaced moments over a clean background): stream `composite`.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Composite {
    #[n(0)]
    pub header: Header,
    /// The event it belongs to ([`Event::event_id`], same camera).
    #[n(1)]
    pub event_id: u64,
    #[n(2)]
    pub width: u32,
    #[n(3)]
    pub height: u32,
    #[n(4)]
    pub format: ImageFormat,
    /// Athlete cut-outs shown.
    #[n(5)]
    pub cutouts: u32,
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::msg::byte_len"))]
    #[cbor(n(6), with = "minicbor::bytes")]
    pub image: Vec<u8>,
}

/// Video codec of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum VideoCodec {
    #[n(0)]
    H264,
    #[n(1)]
    H265,
}

/// One encoded access unit and the frame it encodes.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct AccessUnit {
    /// Capture sequence number of the frame (matches [`FrameMeta::frame_seq`]).
    #[n(0)]
    pub frame_seq: u64,
    #[n(1)]
    pub capture_ns: u64,
    #[n(2)]
    pub keyframe: bool,
    /// Annex-B byte stream of the access unit.
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::msg::byte_len"))]
    #[cbor(n(3), with = "minicbor::bytes")]
    pub data: Vec<u8>,
}

#[cfg(feature = "serde")]
fn byte_len<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&alloc::format!("<{} bytes>", data.len()))
}

/// A run of encoded access units: stream `video`.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct VideoChunk {
    /// `capture_ns`/`timecode` are those of the first access unit.
    #[n(0)]
    pub header: Header,
    #[n(1)]
    pub codec: VideoCodec,
    #[n(2)]
    pub width: u32,
    #[n(3)]
    pub height: u32,
    #[n(4)]
    pub units: Vec<AccessUnit>,
}

/// An MP4 clip cut from a camera's encoded video without re-encoding: the reply to
/// a `clip` query (an event's clip, or any time range still in the box's pre-roll
/// ring). It starts on a keyframe at or before the requested start.
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Clip {
    /// `seq` counts clips sent for this camera in this run; `capture_ns`/`timecode`
    /// are those of the clip's first frame.
    #[n(0)]
    pub header: Header,
    /// The event this clip was cut for; absent for a time-range request.
    #[n(1)]
    pub event_id: Option<u64>,
    #[n(2)]
    pub codec: VideoCodec,
    #[n(3)]
    pub width: u32,
    #[n(4)]
    pub height: u32,
    /// Capture sequence of the first frame (a keyframe).
    #[n(5)]
    pub first_frame_seq: u64,
    /// Frames in the clip.
    #[n(6)]
    pub frames: u32,
    /// Capture times of the first and last frame, Unix ns.
    #[n(7)]
    pub start_ns: u64,
    #[n(8)]
    pub end_ns: u64,
    /// The MP4 file (`ftyp`, `moov` first, then `mdat`).
    #[cfg_attr(feature = "serde", serde(serialize_with = "crate::msg::byte_len"))]
    #[cbor(n(9), with = "minicbor::bytes")]
    pub mp4: Vec<u8>,
}

/// End-to-end acknowledgement from the cloud consumer: stream `ack`, cloud → box,
/// on the key of the camera whose stream it acknowledges. It means "every record of
/// `stream` in `acked_incarnation` up to and including `acked_seq` is durably stored".
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Ack {
    /// The acker's own header: its sequence counts acks sent for this camera.
    #[n(0)]
    pub header: Header,
    #[n(1)]
    pub stream: StreamKind,
    #[n(2)]
    pub acked_incarnation: u64,
    #[n(3)]
    pub acked_seq: u64,
}

/// Why records are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, CborLen)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum GapReason {
    /// Damaged on the box's storage (found by checksum).
    #[n(0)]
    Damaged,
    /// Evicted by the box's storage policy (video, when the spool is full).
    #[n(1)]
    Evicted,
}

/// Notice that records `[first_seq, end_seq)` of a stream incarnation will never be
/// sent: stream `gap`, box → cloud, on the key of the camera concerned. Receivers
/// count them as lost and move their watermark past them (so acks advance).
#[derive(Debug, Clone, PartialEq, Encode, Decode, CborLen)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cbor(map)]
pub struct Gap {
    /// The notice's own header; `seq` counts notices sent by this run.
    #[n(0)]
    pub header: Header,
    /// The stream with missing records.
    #[n(1)]
    pub stream: StreamKind,
    #[n(2)]
    pub incarnation: u64,
    #[n(3)]
    pub first_seq: u64,
    /// Exclusive.
    #[n(4)]
    pub end_seq: u64,
    #[n(5)]
    pub reason: GapReason,
}
