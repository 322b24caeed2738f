//! The key hierarchy shared by zenoh key expressions and MQTT topics:
//! `venue/{venue}/{box}/{camera}/{stream}`.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::id::{Id, IdError};

/// First chunk of every key.
pub const ROOT: &str = "venue";

/// Selector for everything every box publishes or receives.
pub const ALL: &str = "venue/**";

/// The kind of stream a key carries; the last chunk of the key.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    minicbor::Encode,
    minicbor::Decode,
    minicbor::CborLen,
)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[cbor(index_only)]
pub enum StreamKind {
    /// Per-frame metadata ([`crate::FrameMeta`]), box → cloud.
    #[n(0)]
    Meta,
    /// Key-moment events ([`crate::Event`]), box → cloud.
    #[n(1)]
    Event,
    /// Camera and box health ([`crate::Health`]), box → cloud.
    #[n(2)]
    Health,
    /// Compressed video chunks ([`crate::VideoChunk`]), box → cloud.
    #[n(3)]
    Video,
    /// End-to-end acknowledgements ([`crate::Ack`]), cloud → box.
    #[n(4)]
    Ack,
    /// Notices of records that will never arrive ([`crate::Gap`]), box → cloud.
    #[n(5)]
    Gap,
    /// Small periodic pictures of a camera ([`crate::Thumbnail`]), box → cloud; live
    /// only (the next one supersedes it), like health.
    #[n(6)]
    Thumbnail,
    /// Pictures made for an event, e.g. a jump's strobe composite
    /// ([`crate::Composite`]), box → cloud; spooled and acknowledged like events.
    #[n(7)]
    Composite,
    /// An event's MP4 clip ([`crate::Clip`]), box → cloud; spooled and acknowledged
    /// like composites. (The same message answers a `clip` query on this key.)
    #[n(8)]
    Clip,
}

impl StreamKind {
    /// Streams the box spools and resends until the cloud acknowledges them; the
    /// others (health, thumbnails, gaps, acks) are live only.
    pub const SPOOLED: [StreamKind; 5] = [
        Self::Meta,
        Self::Event,
        Self::Video,
        Self::Composite,
        Self::Clip,
    ];

    pub fn is_spooled(self) -> bool {
        Self::SPOOLED.contains(&self)
    }

    pub const ALL: [StreamKind; 9] = [
        Self::Meta,
        Self::Event,
        Self::Health,
        Self::Video,
        Self::Ack,
        Self::Gap,
        Self::Thumbnail,
        Self::Composite,
        Self::Clip,
    ];

    /// The key chunk naming this stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Event => "event",
            Self::Health => "health",
            Self::Video => "video",
            Self::Ack => "ack",
            Self::Gap => "gap",
            Self::Thumbnail => "thumbnail",
            Self::Composite => "composite",
            Self::Clip => "clip",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a stream key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "key {key:?} has {found} chunks; expected venue/{{venue}}/{{box}}/{{camera}}/{{stream}}"
    )]
    Shape { key: String, found: usize },
    #[error("key {0:?} does not start with \"venue/\"")]
    Root(String),
    #[error("key {key:?}: bad {what} id: {source}")]
    Id {
        key: String,
        what: &'static str,
        source: IdError,
    },
    #[error(
        "key {key:?}: unknown stream {stream:?}; expected one of meta, event, health, video, ack, gap"
    )]
    Stream { key: String, stream: String },
}

/// A fully specified stream key: one venue, box, camera slot and stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub venue: Id,
    pub box_id: Id,
    /// A camera id, or [`crate::BOX_CAMERA`] for box-level streams.
    pub camera: Id,
    pub stream: StreamKind,
}

impl StreamKey {
    pub fn new(venue: Id, box_id: Id, camera: Id, stream: StreamKind) -> Self {
        Self {
            venue,
            box_id,
            camera,
            stream,
        }
    }

    /// Parses a concrete key (no wildcards).
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let mut parts = key.split('/');
        let chunks: [Option<&str>; 5] = core::array::from_fn(|_| parts.next());
        let extra = parts.count();
        let [
            Some(root),
            Some(venue),
            Some(box_id),
            Some(camera),
            Some(stream),
        ] = chunks
        else {
            let found = chunks.iter().flatten().count();
            return Err(KeyError::Shape {
                key: String::from(key),
                found,
            });
        };
        if extra > 0 {
            return Err(KeyError::Shape {
                key: String::from(key),
                found: 5 + extra,
            });
        }
        if root != ROOT {
            return Err(KeyError::Root(String::from(key)));
        }
        let id = |s: &str, what| {
            Id::new(s).map_err(|source| KeyError::Id {
                key: String::from(key),
                what,
                source,
            })
        };
        let stream = StreamKind::parse(stream).ok_or_else(|| KeyError::Stream {
            key: String::from(key),
            stream: String::from(stream),
        })?;
        Ok(Self {
            venue: id(venue, "venue")?,
            box_id: id(box_id, "box")?,
            camera: id(camera, "camera")?,
            stream,
        })
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ROOT}/{}/{}/{}/{}",
            self.venue, self.box_id, self.camera, self.stream
        )
    }
}

/// Selector for every stream of one box.
pub fn box_selector(venue: &Id, box_id: &Id) -> String {
    format!("{ROOT}/{venue}/{box_id}/**")
}

/// Selector for one kind of stream of every camera of every box of every venue.
pub fn stream_selector(stream: StreamKind) -> String {
    format!("{ROOT}/*/*/*/{stream}")
}

/// Selector for the acks addressed to one box.
pub fn acks_for_box(venue: &Id, box_id: &Id) -> String {
    format!("{ROOT}/{venue}/{box_id}/*/{}", StreamKind::Ack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn id(s: &str) -> Id {
        Id::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn build_and_parse_round_trip() {
        for stream in StreamKind::ALL {
            let key = StreamKey::new(id("oslo"), id("box-7"), id("cam-2"), stream);
            let s = key.to_string();
            assert_eq!(StreamKey::parse(&s), Ok(key));
        }
        let k = StreamKey::new(id("oslo"), id("b"), Id::box_camera(), StreamKind::Health);
        assert_eq!(k.to_string(), "venue/oslo/b/_box/health");
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            StreamKey::parse("venue/a/b/c"),
            Err(KeyError::Shape { found: 4, .. })
        ));
        assert!(matches!(
            StreamKey::parse("venue/a/b/c/meta/x"),
            Err(KeyError::Shape { found: 6, .. })
        ));
        assert!(matches!(
            StreamKey::parse("other/a/b/c/meta"),
            Err(KeyError::Root(_))
        ));
        assert!(matches!(
            StreamKey::parse("venue/a/*/c/meta"),
            Err(KeyError::Id { what: "box", .. })
        ));
        assert!(matches!(
            StreamKey::parse("venue/a/b/c/blob"),
            Err(KeyError::Stream { .. })
        ));
        assert!(matches!(
            StreamKey::parse(""),
            Err(KeyError::Shape { found: 1, .. })
        ));
    }

    #[test]
    fn selectors() {
        assert_eq!(box_selector(&id("v"), &id("b")), "venue/v/b/**");
        assert_eq!(stream_selector(StreamKind::Meta), "venue/*/*/*/meta");
        assert_eq!(acks_for_box(&id("v"), &id("b")), "venue/v/b/*/ack");
    }
}
