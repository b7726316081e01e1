//! The blob store port: uploaded documents and signed PDFs, each encrypted with its data
//! subject's key, so that destroying the key erases them wherever copies went. Deleting the
//! subject's blobs on purge removes even the ciphertext.

use crate::domain::SubjectId;
use crate::keys::KeyError;

/// A stored file's name within its subject: letters, digits, `-`, `_` and `.`, at most 128
/// bytes, not starting with a dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobName(String);

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob name {0:?}")]
    InvalidName(String),
    #[error("no blob {name} for subject {subject}")]
    NotFound { subject: SubjectId, name: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("blob store: {0}")]
    Io(String),
}

impl BlobName {
    pub fn parse(name: &str) -> Result<Self, BlobError> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(BlobError::InvalidName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What reading a blob gives.
#[derive(Clone, PartialEq, Eq)]
pub enum BlobContent {
    Bytes(Vec<u8>),
    /// The subject's key is destroyed (the ciphertext may not even exist any more).
    Erased,
}

impl std::fmt::Debug for BlobContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Self::Erased => f.write_str("Erased"),
        }
    }
}

#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Encrypts `bytes` with the subject's key and stores them under `name`, replacing what was
    /// there.
    async fn put(&self, subject: SubjectId, name: &BlobName, bytes: &[u8])
    -> Result<(), BlobError>;

    /// The decrypted bytes; `Erased` once the subject's key is gone; `Key(Tampered)` if the
    /// file was changed.
    async fn get(&self, subject: SubjectId, name: &BlobName) -> Result<BlobContent, BlobError>;

    /// Deletes one blob; whether it was there. For a write that must be taken back, such as an
    /// upload whose command was refused, so that no file outlives its refusal.
    async fn delete(&self, subject: SubjectId, name: &BlobName) -> Result<bool, BlobError>;

    /// Deletes every blob of the subject; how many there were.
    async fn delete_subject(&self, subject: SubjectId) -> Result<u32, BlobError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_cannot_leave_their_folder() {
        for good in ["nachweis.pdf", "form-1_signed.pdf", "a"] {
            assert!(BlobName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "../kek", ".hidden", "a/b", "x y", &"a".repeat(129)] {
            assert!(BlobName::parse(bad).is_err(), "{bad}");
        }
    }
}
