//! Identifiers for venues, boxes and cameras: the chunks of every key expression.

use alloc::string::String;
use core::fmt;

/// The camera slot used for messages about the box as a whole (box health).
pub const BOX_CAMERA: &str = "_box";

/// Longest identifier accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier is {0} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong(usize),
    #[error(
        "identifier {0:?} must start with a lowercase letter or digit and contain only lowercase letters, digits, '-' and '_'"
    )]
    BadChar(String),
}

/// A venue, box or camera identifier: 1–64 bytes of `[a-z0-9_-]`, starting with a
/// letter or digit. These rules keep every id a single, wildcard-free chunk of a zenoh
/// key expression and a single MQTT topic level. The reserved camera slot
/// [`BOX_CAMERA`] is the one exception (it starts with `_`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Id(String);

impl Id {
    /// Validates `s` as an identifier.
    pub fn new(s: &str) -> Result<Self, IdError> {
        validate(s)?;
        Ok(Self(String::from(s)))
    }

    /// The reserved camera slot for box-level messages.
    pub fn box_camera() -> Self {
        Self(String::from(BOX_CAMERA))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the identifier rules without allocating.
pub fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    if s == BOX_CAMERA {
        return Ok(());
    }
    let bytes = s.as_bytes();
    let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
    let rest_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(IdError::BadChar(String::from(s)))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<C> minicbor::Encode<C> for Id {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.str(&self.0)?;
        Ok(())
    }
}

impl<'b, C> minicbor::Decode<'b, C> for Id {
    fn decode(
        d: &mut minicbor::Decoder<'b>,
        _ctx: &mut C,
    ) -> Result<Self, minicbor::decode::Error> {
        let pos = d.position();
        let s = d.str()?;
        validate(s).map_err(|_| minicbor::decode::Error::message("invalid identifier").at(pos))?;
        Ok(Self(String::from(s)))
    }
}

impl<C> minicbor::CborLen<C> for Id {
    fn cbor_len(&self, ctx: &mut C) -> usize {
        self.0.as_str().cbor_len(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(Id::new("cam-1").is_ok());
        assert!(Id::new("0_a").is_ok());
        assert!(Id::new("_box").is_ok());
        assert_eq!(Id::new(""), Err(IdError::Empty));
        assert!(matches!(Id::new("Cam"), Err(IdError::BadChar(_))));
        assert!(matches!(Id::new("a/b"), Err(IdError::BadChar(_))));
        assert!(matches!(Id::new("*"), Err(IdError::BadChar(_))));
        assert!(matches!(Id::new("-a"), Err(IdError::BadChar(_))));
        assert!(matches!(Id::new("_other"), Err(IdError::BadChar(_))));
        let long = "a".repeat(65);
        assert_eq!(Id::new(&long), Err(IdError::TooLong(65)));
    }
}
