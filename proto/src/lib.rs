//! The Venue Edge wire contract: every message a box sends or receives, its CBOR
//! encoding and the key-expression/topic hierarchy. No I/O lives here.
//!
//! Messages are CBOR maps with stable integer keys (see `docs/wire.md`). Every
//! message starts with a [`Header`] under key 0 that carries the schema version,
//! the venue, box and camera ids, the stream incarnation, the per-stream sequence
//! number, the capture time and the SMPTE timecode.
//!
//! The crate is `no_std` + `alloc` so that it can be used on small targets; the
//! `std` feature only adds `std::error::Error` plumbing through `minicbor`.
#![no_std]

extern crate alloc;

mod codec;
mod id;
pub mod key;
mod msg;
mod timecode;

pub use codec::{
    AnyMessage, DecodeError, EncodeError, MAX_MESSAGE_BYTES, Message, decode, decode_any, encode,
    encode_into, peek_header,
};
pub use id::{BOX_CAMERA, Id, IdError};
pub use key::{KeyError, StreamKey, StreamKind};
pub use msg::{
    AccessUnit, Ack, BBox, CameraState, Clip, Composite, Detection, Event, EventKind, EventPhase,
    FrameMeta, FrameStats, Gap, GapReason, Header, Health, ImageFormat, MaskRle, PixelFormat,
    StageCounters, StreamUplink, Thumbnail, VideoChunk, VideoCodec,
};
pub use timecode::Timecode;

/// The schema version this crate writes and reads. It changes only when a message
/// changes incompatibly; adding a new optional key does not change it (decoders skip
/// keys they do not know).
pub const SCHEMA_VERSION: u16 = 1;
