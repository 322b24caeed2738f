//! Encoding and decoding: one place that applies the size limit, the schema-version
//! check and the semantic checks every decoded message must pass.

use alloc::vec::Vec;

use crate::key::StreamKind;
use crate::msg::{
    Ack, Clip, Composite, Event, FrameMeta, Gap, Header, Health, Thumbnail, VideoChunk,
};

/// Largest payload accepted by [`decode`]: bigger inputs are rejected before parsing.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why bytes are not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is {0} bytes; at most {MAX_MESSAGE_BYTES} are accepted")]
    TooLarge(usize),
    #[error("malformed CBOR: {0}")]
    Cbor(#[from] minicbor::decode::Error),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("schema version {found} is not supported (this build reads version {supported})")]
    UnsupportedSchema { found: u16, supported: u16 },
    #[error("invalid timecode")]
    Timecode,
}

/// Encoding into memory cannot fail for these types; the error exists only because
/// `minicbor` writers are generic.
#[derive(Debug, thiserror::Error)]
#[error("CBOR encoding failed: {0}")]
pub struct EncodeError(minicbor::encode::Error<core::convert::Infallible>);

/// A wire message: knows its stream and its header.
pub trait Message:
    minicbor::Encode<()> + for<'b> minicbor::Decode<'b, ()> + minicbor::CborLen<()>
{
    const STREAM: StreamKind;
    fn header(&self) -> &Header;
}

macro_rules! message {
    ($t:ty, $k:ident) => {
        impl Message for $t {
            const STREAM: StreamKind = StreamKind::$k;
            fn header(&self) -> &Header {
                &self.header
            }
        }
    };
}
message!(FrameMeta, Meta);
message!(Event, Event);
message!(Health, Health);
message!(VideoChunk, Video);
message!(Ack, Ack);
message!(Gap, Gap);
message!(Thumbnail, Thumbnail);
message!(Composite, Composite);
// Event clips are spooled on the camera's `clip` stream; a reply to a query on
// that key is the same message.
message!(Clip, Clip);

/// Encodes a message into a new buffer.
pub fn encode<M: Message>(msg: &M) -> Result<Vec<u8>, EncodeError> {
    let mut buf = Vec::with_capacity(minicbor::len(msg));
    encode_into(msg, &mut buf)?;
    Ok(buf)
}

/// Encodes a message, appending to `buf` (reuse one buffer on hot paths).
pub fn encode_into<M: Message>(msg: &M, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    minicbor::encode(msg, buf).map_err(EncodeError)
}

/// Decodes and validates one message of type `M`. Never panics, whatever the bytes.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let mut d = minicbor::Decoder::new(bytes);
    let msg: M = d.decode()?;
    let rest = bytes.len() - d.position();
    if rest != 0 {
        return Err(DecodeError::Trailing(rest));
    }
    check_header(msg.header())?;
    Ok(msg)
}

/// Any message, as chosen by the stream chunk of its key.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "stream", rename_all = "snake_case")
)]
pub enum AnyMessage {
    Meta(FrameMeta),
    Event(Event),
    Health(Health),
    Video(VideoChunk),
    Ack(Ack),
    Gap(Gap),
    Thumbnail(Thumbnail),
    Composite(Composite),
    Clip(Clip),
}

impl AnyMessage {
    pub fn header(&self) -> &Header {
        match self {
            Self::Meta(m) => &m.header,
            Self::Event(m) => &m.header,
            Self::Health(m) => &m.header,
            Self::Video(m) => &m.header,
            Self::Ack(m) => &m.header,
            Self::Gap(m) => &m.header,
            Self::Thumbnail(m) => &m.header,
            Self::Composite(m) => &m.header,
            Self::Clip(m) => &m.header,
        }
    }

    pub fn stream(&self) -> StreamKind {
        match self {
            Self::Meta(_) => StreamKind::Meta,
            Self::Event(_) => StreamKind::Event,
            Self::Health(_) => StreamKind::Health,
            Self::Video(_) => StreamKind::Video,
            Self::Ack(_) => StreamKind::Ack,
            Self::Gap(_) => StreamKind::Gap,
            Self::Thumbnail(_) => StreamKind::Thumbnail,
            Self::Composite(_) => StreamKind::Composite,
            Self::Clip(_) => StreamKind::Clip,
        }
    }
}

/// Decodes a message of the given stream kind (taken from its key).
pub fn decode_any(stream: StreamKind, bytes: &[u8]) -> Result<AnyMessage, DecodeError> {
    Ok(match stream {
        StreamKind::Meta => AnyMessage::Meta(decode(bytes)?),
        StreamKind::Event => AnyMessage::Event(decode(bytes)?),
        StreamKind::Health => AnyMessage::Health(decode(bytes)?),
        StreamKind::Video => AnyMessage::Video(decode(bytes)?),
        StreamKind::Ack => AnyMessage::Ack(decode(bytes)?),
        StreamKind::Gap => AnyMessage::Gap(decode(bytes)?),
        StreamKind::Thumbnail => AnyMessage::Thumbnail(decode(bytes)?),
        StreamKind::Composite => AnyMessage::Composite(decode(bytes)?),
        StreamKind::Clip => AnyMessage::Clip(decode(bytes)?),
    })
}

/// Decodes only the header of any message (key 0, which writers put first), without
/// the body. For routing, dedup and latency on hot paths.
pub fn peek_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    let mut d = minicbor::Decoder::new(bytes);
    d.map()?;
    let pos = d.position();
    if d.u32()? != 0 {
        let e = minicbor::decode::Error::message("key 0 (header) is not first").at(pos);
        return Err(DecodeError::Cbor(e));
    }
    let h: Header = d.decode()?;
    check_header(&h)?;
    Ok(h)
}

/// The checks every decoded header must pass: a schema version this build reads
/// and a timecode within SMPTE's ranges.
fn check_header(h: &Header) -> Result<(), DecodeError> {
    if h.schema != crate::SCHEMA_VERSION {
        return Err(DecodeError::UnsupportedSchema {
            found: h.schema,
            supported: crate::SCHEMA_VERSION,
        });
    }
    if !h.timecode.is_valid() {
        return Err(DecodeError::Timecode);
    }
    Ok(())
}
