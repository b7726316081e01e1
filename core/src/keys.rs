//! The key store port: one data key per data subject, and erasure by destroying it.
//!
//! Personal values are sealed with their subject's key (AEAD). A sealed value names its subject
//! and carries a fingerprint of the plaintext under a key of that subject's own, which dies with
//! the data key: after erasure it confirms no guess and links no two subjects (ADR 0024). The
//! deletion verifier searches every table for the plaintext with fingerprints of its own
//! ([`KeyStore::fingerprint`]), taken before the purge and deleted once it verified. Once the
//! key is destroyed the value opens as [`Opened::Erased`]: readers show "[gelöscht]", they
//! never fail.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::domain::{Personal, SubjectId};
use crate::store::StoreError;

/// What a reader shows in place of an erased value.
pub const ERASED_TEXT: &str = "[gelöscht]";

/// A personal value as it is stored: ciphertext, never the plaintext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub subject: SubjectId,
    /// Fingerprint of the plaintext under the subject's own fingerprint key (`2.` and base64),
    /// or, for values sealed before ADR 0024, under the KEK's (base64 only).
    pub fingerprint: String,
    /// Nonce, ciphertext and tag, base64. Subject and fingerprint are authenticated with it.
    pub sealed: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// The result of opening a sealed value.
#[derive(Clone, PartialEq, Eq)]
pub enum Opened {
    Plain(Vec<u8>),
    /// The subject's key is destroyed: the value is gone for good.
    Erased,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(‹redacted›)"),
            Self::Erased => f.write_str("Erased"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The value does not authenticate under its subject's key: changed after sealing.
    #[error("sealed value of subject {subject} was tampered with")]
    Tampered { subject: SubjectId },
    /// Sealing for a subject that has no key (never issued, or destroyed).
    #[error("subject {0} has no data key")]
    NoKey(SubjectId),
    #[error("key-encryption key: {0}")]
    Kek(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates the subject's data key; issuing twice keeps the first key.
    async fn issue(&self, subject: SubjectId) -> Result<(), KeyError>;

    /// Destroys the subject's key, finally; `false` if there was none (already destroyed).
    async fn destroy(&self, subject: SubjectId) -> Result<bool, KeyError>;

    /// Destroys several subjects' keys at once (stores override it to do so in one
    /// transaction); the subjects whose key existed.
    async fn destroy_all(&self, subjects: &[SubjectId]) -> Result<Vec<SubjectId>, KeyError> {
        let mut destroyed = Vec::new();
        for &subject in subjects {
            if self.destroy(subject).await? {
                destroyed.push(subject);
            }
        }
        Ok(destroyed)
    }

    /// Whether the subject's key exists.
    async fn holds(&self, subject: SubjectId) -> Result<bool, KeyError>;

    /// Those of `subjects` whose key exists; stores override it to ask once for all.
    async fn held_among(&self, subjects: &[SubjectId]) -> Result<HashSet<SubjectId>, KeyError> {
        let mut held = HashSet::new();
        for &subject in subjects {
            if self.holds(subject).await? {
                held.insert(subject);
            }
        }
        Ok(held)
    }

    /// Seals `plaintext` with the subject's key.
    async fn seal(&self, subject: SubjectId, plaintext: &[u8]) -> Result<Sealed, KeyError>;

    /// Seals several values of one subject; stores override it to unwrap the key once.
    async fn seal_all(
        &self,
        subject: SubjectId,
        plaintexts: &[&[u8]],
    ) -> Result<Vec<Sealed>, KeyError> {
        let mut sealed = Vec::with_capacity(plaintexts.len());
        for p in plaintexts {
            sealed.push(self.seal(subject, p).await?);
        }
        Ok(sealed)
    }

    /// Opens a sealed value: its plaintext, `Erased` when the key is gone, `Tampered` when it
    /// does not authenticate.
    async fn open(&self, sealed: &Sealed) -> Result<Opened, KeyError>;

    /// Opens several values, each as [`KeyStore::open`] would, in their order: the inner error
    /// is a value's own ([`KeyError::Tampered`]), the outer one stops all (the store failed).
    /// Stores override it to look up all the subjects' keys at once.
    async fn open_all(&self, sealed: &[Sealed]) -> Result<Vec<Result<Opened, KeyError>>, KeyError> {
        let mut opened = Vec::with_capacity(sealed.len());
        for s in sealed {
            opened.push(match self.open(s).await {
                Err(KeyError::Tampered { subject }) => Err(KeyError::Tampered { subject }),
                Err(e) => return Err(e),
                Ok(o) => Ok(o),
            });
        }
        Ok(opened)
    }

    /// The verifier's fingerprint of a plaintext, under a key derived from the KEK: the same for
    /// every subject, so it is kept only in the verifier's manifest, never in the log, and only
    /// until the deletion is verified (ADR 0024). It can still be computed after erasure.
    fn fingerprint(&self, plaintext: &[u8]) -> String;
}

/// A personal value as a reader sees it.
#[derive(Clone, PartialEq, Eq)]
pub enum Revealed {
    Text(String),
    /// Its subject's key is destroyed.
    Erased,
}

impl Revealed {
    /// The text to show: the value, or "[gelöscht]".
    pub fn shown(&self) -> &str {
        match self {
            Self::Text(t) => t,
            Self::Erased => ERASED_TEXT,
        }
    }
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(‹redacted›)"),
            Self::Erased => f.write_str("Erased"),
        }
    }
}

/// Opens a personal value for display. An erased value is [`Revealed::Erased`], never an
/// error; a tampered one is [`KeyError::Tampered`], never shown.
pub async fn reveal(keys: &dyn KeyStore, value: &Personal) -> Result<Revealed, KeyError> {
    match value {
        Personal::Plain(text) => Ok(Revealed::Text(text.clone())),
        Personal::Sealed(sealed) => match keys.open(sealed).await? {
            Opened::Plain(bytes) => {
                String::from_utf8(bytes)
                    .map(Revealed::Text)
                    .map_err(|_| KeyError::Tampered {
                        subject: sealed.subject,
                    })
            }
            Opened::Erased => Ok(Revealed::Erased),
        },
    }
}
