//! What the log says about a file without holding it: its media type and its SHA-256.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// The media type of an uploaded document: lowercase `type/subtype`, one of
/// [`MediaType::ALLOWED`].
///
/// Stored events are read through the same parse, so a type once allowed stays in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaType(&'static str);

impl MediaType {
    /// What citizens and clerks may upload: documents and photos or scans of them.
    pub const ALLOWED: [&'static str; 3] = ["application/pdf", "image/jpeg", "image/png"];

    pub const PDF: Self = Self("application/pdf");
    pub const JPEG: Self = Self("image/jpeg");
    pub const PNG: Self = Self("image/png");

    /// Reads a media type as browsers send it (case-insensitive, without parameters).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let lower = raw.trim().to_ascii_lowercase();
        Self::ALLOWED
            .into_iter()
            .find(|allowed| *allowed == lower)
            .map(Self)
            .ok_or(DomainError::MediaTypeNotAllowed)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl FromStr for MediaType {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        Self::parse(raw)
    }
}

impl Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A SHA-256 digest, written as 64 lowercase hex digits (as `sha256sum` prints it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256([u8; 32]);

impl Sha256 {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, DomainError> {
        // Lowercase only, so that the stored text is exactly what was read.
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let raw = raw.as_bytes();
        if raw.len() != 64 {
            return Err(DomainError::InvalidSha256);
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(raw.chunks_exact(2)) {
            let (Some(high), Some(low)) = (digit(pair[0]), digit(pair[1])) else {
                return Err(DomainError::InvalidSha256);
            };
            *byte = high << 4 | low;
        }
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for Sha256 {
    type Error = DomainError;

    fn try_from(raw: String) -> Result<Self, DomainError> {
        raw.parse()
    }
}

impl From<Sha256> for String {
    fn from(digest: Sha256) -> Self {
        digest.to_string()
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_read_lowercase_and_only_when_allowed() {
        assert_eq!(MediaType::parse("application/pdf"), Ok(MediaType::PDF));
        assert_eq!(MediaType::parse("image/jpeg"), Ok(MediaType::JPEG));
        assert_eq!(MediaType::parse("image/png"), Ok(MediaType::PNG));
        assert_eq!(
            MediaType::parse(" Image/JPEG "),
            MediaType::parse("image/jpeg")
        );
        assert_eq!(
            MediaType::parse("image/png").map(MediaType::as_str),
            Ok("image/png")
        );
        for bad in [
            "",
            "pdf",
            "application/",
            "application/pdf; charset=binary",
            "text/html",
            "image/svg+xml",
            "application/x-msdownload",
        ] {
            assert_eq!(
                MediaType::parse(bad),
                Err(DomainError::MediaTypeNotAllowed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_media_type_is_stored_as_its_string() {
        for allowed in MediaType::ALLOWED {
            let media_type = MediaType::parse(allowed).expect("allowed");
            let json = serde_json::to_string(&media_type).expect("encodes");
            assert_eq!(json, format!("\"{allowed}\""));
            assert_eq!(
                serde_json::from_str::<MediaType>(&json).expect("decodes"),
                media_type
            );
        }
        assert!(serde_json::from_str::<MediaType>("\"text/html\"").is_err());
    }

    #[test]
    fn a_sha256_is_64_lowercase_hex_digits() {
        let hex = "5e".repeat(32);
        let digest: Sha256 = hex.parse().expect("valid");
        assert_eq!(digest.as_bytes(), &[0x5e; 32]);
        assert_eq!(digest.to_string(), hex);
        let sha256_of_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            sha256_of_empty.parse::<Sha256>().map(|d| d.to_string()),
            Ok(sha256_of_empty.to_owned())
        );
        for bad in [
            String::new(),
            "ab".repeat(31),
            "ab".repeat(33),
            "AB".repeat(32),
            "g".repeat(64),
            format!("{} ", "a".repeat(63)),
            "ä".repeat(32),
        ] {
            assert_eq!(
                bad.parse::<Sha256>(),
                Err(DomainError::InvalidSha256),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_sha256_is_stored_as_its_hex_string() {
        let hex = "0123456789abcdef".repeat(4);
        let digest: Sha256 = hex.parse().expect("valid");
        let json = serde_json::to_string(&digest).expect("encodes");
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(
            serde_json::from_str::<Sha256>(&json).expect("decodes"),
            digest
        );
        assert!(serde_json::from_str::<Sha256>("\"abc\"").is_err());
        assert_eq!(format!("{digest:?}"), format!("Sha256({hex})"));
    }
}
