//! Crypto-shredding: one random data key per data subject, stored wrapped by a key-encryption
//! key (KEK) that never enters the database. Destroying the wrapped key erases every value
//! sealed with it, in the log and in its copies, without touching the append-only log.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use videoamt_core::domain::SubjectId;
use videoamt_core::keys::{KeyError, KeyStore, Opened, Sealed};
use videoamt_core::store::StoreError;

/// The KEK itself, base64 of 32 bytes.
pub const KEK_ENV: &str = "VIDEOAMT_KEK";
/// A file holding the KEK as base64.
pub const KEK_FILE_ENV: &str = "VIDEOAMT_KEK_FILE";

const NONCE: usize = 24;
const WRAP_LABEL: &[u8] = b"videoamt key wrapping v1";
const FINGERPRINT_LABEL: &[u8] = b"videoamt fingerprint v1";
/// The label of a subject's own fingerprint key, derived from its data key (ADR 0024).
const SUBJECT_FINGERPRINT_LABEL: &[u8] = b"videoamt fingerprint v2";
/// What a per-subject fingerprint starts with; the ones under the KEK's key have no prefix.
pub const SUBJECT_FINGERPRINT_PREFIX: &str = "2.";
const ACCESS_LABEL: &[u8] = b"videoamt citizen access v1";
const TAN_LABEL: &[u8] = b"videoamt signature tan v1";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Kek(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// The key-encryption key, split into a wrapping key and a fingerprint key.
#[derive(Clone)]
pub struct Kek {
    wrap: [u8; 32],
    fingerprint: [u8; 32],
    access: [u8; 32],
    tan: [u8; 32],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(‹secret›)")
    }
}

impl Kek {
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            wrap: mac(secret, &[WRAP_LABEL]),
            fingerprint: mac(secret, &[FINGERPRINT_LABEL]),
            access: mac(secret, &[ACCESS_LABEL]),
            tan: mac(secret, &[TAN_LABEL]),
        }
    }

    /// The key citizens' capability links are derived with (see [`crate::access`]).
    pub fn access_tokens(&self) -> crate::access::AccessTokens {
        crate::access::AccessTokens::new(self.access)
    }

    /// The key TAN codes are digested with (see [`crate::tan`]).
    pub fn tan_codes(&self) -> crate::tan::TanCodes {
        crate::tan::TanCodes::new(self.tan)
    }

    /// A random KEK that lives only in memory: for throw-away stores and tests.
    pub fn ephemeral() -> Result<Self, KeyError> {
        Ok(Self::from_secret(&random()?))
    }

    fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| KeyError::Kek(format!("{origin} is not base64")))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Kek(format!("{origin} must hold 32 bytes")))?;
        Ok(Self::from_secret(&secret))
    }

    /// The KEK from `VIDEOAMT_KEK`, else from the file `VIDEOAMT_KEK_FILE` names, else from
    /// `data_dir/kek`, generated there (mode 0600) on first use.
    pub fn load(data_dir: &Path) -> Result<Self, KeyError> {
        Self::resolve(
            std::env::var(KEK_ENV).ok(),
            std::env::var_os(KEK_FILE_ENV).map(PathBuf::from),
            data_dir,
        )
    }

    /// [`Kek::load`] with the environment passed in.
    pub fn resolve(
        inline: Option<String>,
        file: Option<PathBuf>,
        data_dir: &Path,
    ) -> Result<Self, KeyError> {
        if let Some(text) = inline {
            return Self::parse(&text, KEK_ENV);
        }
        if let Some(path) = file {
            return Self::read_file(&path);
        }
        let path = data_dir.join("kek");
        if path.exists() {
            Self::read_file(&path)
        } else {
            Self::generate_file(&path)
        }
    }

    fn read_file(path: &Path) -> Result<Self, KeyError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| KeyError::Kek(format!("{}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KeyError::Kek(format!(
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError::Kek(format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    fn generate_file(path: &Path) -> Result<Self, KeyError> {
        use std::io::Write as _;
        let secret: [u8; 32] = random()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| KeyError::Kek(format!("{}: {e}", dir.display())))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .map_err(|e| KeyError::Kek(format!("{}: {e}", path.display())))?;
        file.write_all(B64.encode(secret).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| KeyError::Kek(format!("{}: {e}", path.display())))?;
        Ok(Self::from_secret(&secret))
    }
}

/// One row of the key store as the key backup carries it: the data key still wrapped under
/// the KEK, so the backup opens nothing without the KEK, which is kept elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub subject: SubjectId,
    pub wrapped: Vec<u8>,
    pub issued_at: time::OffsetDateTime,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("subject", &self.subject)
            .field("wrapped", &format_args!("‹{} bytes›", self.wrapped.len()))
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// Where wrapped data keys are kept: a table beside the log. Deleting a row is the erasure.
#[async_trait::async_trait]
pub trait WrappedKeys: Send + Sync {
    /// Stores the subject's wrapped key unless it has one already.
    async fn insert_wrapped_key(
        &self,
        subject: SubjectId,
        wrapped: Vec<u8>,
    ) -> Result<(), StoreError>;

    async fn wrapped_key(&self, subject: SubjectId) -> Result<Option<Vec<u8>>, StoreError>;

    /// The wrapped keys of those of `subjects` that hold one, in one query: the deletion
    /// verifier opens the values of thousands of subjects at a time.
    async fn wrapped_keys_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, Vec<u8>)>, StoreError>;

    /// Deletes the subjects' wrapped keys in one transaction; the subjects that had one.
    async fn delete_wrapped_keys(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<SubjectId>, StoreError>;

    /// Up to `limit` held keys in subject order, after `after` (from the first when `None`):
    /// the key backup pages through the store with it.
    async fn wrapped_keys_after(
        &self,
        after: Option<SubjectId>,
        limit: u32,
    ) -> Result<Vec<WrappedKey>, StoreError>;

    /// Puts keys from a key backup back as they were, in one transaction; a subject that holds
    /// a key already keeps it. How many were put back.
    async fn restore_wrapped_keys(&self, keys: Vec<WrappedKey>) -> Result<u64, StoreError>;

    /// Adds the deletion verifier's fingerprints of subjects' values to its manifest, a table
    /// beside the keys and outside the log (ADR 0024); rows already there stay.
    async fn add_to_manifest(&self, rows: Vec<(SubjectId, String)>) -> Result<(), StoreError>;

    /// The manifest's fingerprints of `subjects`.
    async fn manifest_of(
        &self,
        subjects: &[SubjectId],
    ) -> Result<Vec<(SubjectId, String)>, StoreError>;

    /// Deletes the manifest rows of `subjects`, once their deletion is verified.
    async fn drop_manifests(&self, subjects: &[SubjectId]) -> Result<(), StoreError>;

    /// Up to `limit` subjects with manifest rows, in subject order.
    async fn manifest_subjects(&self, limit: u32) -> Result<Vec<SubjectId>, StoreError>;
}

/// The key store: data keys wrapped with the KEK (XChaCha20-Poly1305), values sealed with the
/// data keys (XChaCha20-Poly1305, subject and fingerprint as associated data). A sealed value's
/// fingerprint is HMAC-SHA256 under a key derived from the subject's data key, so it dies with
/// the key; the verifier's fingerprints are HMAC-SHA256 under a key derived from the KEK, kept
/// outside the log only until the deletion is verified (ADR 0024).
pub struct Keyring<K: WrappedKeys + ?Sized> {
    kek: Kek,
    keys: Arc<K>,
}

impl<K: WrappedKeys + ?Sized> std::fmt::Debug for Keyring<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

fn key_aad(subject: SubjectId) -> Vec<u8> {
    [WRAP_LABEL, subject.0.as_bytes().as_slice()].concat()
}

fn value_aad(subject: SubjectId, fingerprint: &str) -> Vec<u8> {
    [subject.0.as_bytes().as_slice(), fingerprint.as_bytes()].concat()
}

fn encrypt(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    let nonce: [u8; NONCE] = random()?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| KeyError::Kek("encryption failed".into()))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// `None` when the bytes do not authenticate.
fn decrypt(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

/// A sealed value opened with its subject's data key; `Tampered` when it does not authenticate.
fn open_with(key: &[u8; 32], sealed: &Sealed) -> Result<Opened, KeyError> {
    let subject = sealed.subject;
    B64.decode(&sealed.sealed)
        .ok()
        .and_then(|bytes| decrypt(key, &bytes, &value_aad(subject, &sealed.fingerprint)))
        .map(Opened::Plain)
        .ok_or(KeyError::Tampered { subject })
}

impl<K: WrappedKeys + ?Sized> Keyring<K> {
    pub fn new(kek: Kek, keys: Arc<K>) -> Self {
        Self { kek, keys }
    }

    /// A key ring under a random in-memory KEK: for throw-away stores and tests. Its keys are
    /// lost with it.
    pub fn ephemeral(keys: Arc<K>) -> Arc<Self> {
        // Without randomness nothing can be sealed anyway; fail loudly at the start.
        let kek = Kek::ephemeral().expect("the operating system provides randomness");
        Arc::new(Self::new(kek, keys))
    }

    async fn data_key(&self, subject: SubjectId) -> Result<Option<[u8; 32]>, KeyError> {
        let Some(wrapped) = self.keys.wrapped_key(subject).await? else {
            return Ok(None);
        };
        self.unwrap(subject, &wrapped).map(Some)
    }

    fn unwrap(&self, subject: SubjectId, wrapped: &[u8]) -> Result<[u8; 32], KeyError> {
        decrypt(&self.kek.wrap, wrapped, &key_aad(subject))
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| {
                KeyError::Kek(format!(
                    "the data key of subject {subject} does not open under this KEK"
                ))
            })
    }
}

#[async_trait::async_trait]
impl<K: WrappedKeys + ?Sized + 'static> KeyStore for Keyring<K> {
    async fn issue(&self, subject: SubjectId) -> Result<(), KeyError> {
        let key: [u8; 32] = random()?;
        let wrapped = encrypt(&self.kek.wrap, &key, &key_aad(subject))?;
        Ok(self.keys.insert_wrapped_key(subject, wrapped).await?)
    }

    async fn destroy(&self, subject: SubjectId) -> Result<bool, KeyError> {
        Ok(!self.destroy_all(&[subject]).await?.is_empty())
    }

    async fn destroy_all(&self, subjects: &[SubjectId]) -> Result<Vec<SubjectId>, KeyError> {
        Ok(self.keys.delete_wrapped_keys(subjects).await?)
    }

    async fn holds(&self, subject: SubjectId) -> Result<bool, KeyError> {
        Ok(self.keys.wrapped_key(subject).await?.is_some())
    }

    async fn held_among(&self, subjects: &[SubjectId]) -> Result<HashSet<SubjectId>, KeyError> {
        let held = self.keys.wrapped_keys_of(subjects).await?;
        Ok(held.into_iter().map(|(subject, _)| subject).collect())
    }

    async fn seal(&self, subject: SubjectId, plaintext: &[u8]) -> Result<Sealed, KeyError> {
        let mut sealed = self.seal_all(subject, &[plaintext]).await?;
        sealed.pop().ok_or(KeyError::NoKey(subject))
    }

    async fn seal_all(
        &self,
        subject: SubjectId,
        plaintexts: &[&[u8]],
    ) -> Result<Vec<Sealed>, KeyError> {
        // One key lookup and unwrap for all values.
        let key = self
            .data_key(subject)
            .await?
            .ok_or(KeyError::NoKey(subject))?;
        let subject_key = mac(&key, &[SUBJECT_FINGERPRINT_LABEL]);
        plaintexts
            .iter()
            .map(|plaintext| {
                let fingerprint = format!(
                    "{SUBJECT_FINGERPRINT_PREFIX}{}",
                    B64.encode(mac(&subject_key, &[plaintext]))
                );
                let sealed = encrypt(&key, plaintext, &value_aad(subject, &fingerprint))?;
                Ok(Sealed {
                    subject,
                    fingerprint,
                    sealed: B64.encode(sealed),
                })
            })
            .collect()
    }

    async fn open(&self, sealed: &Sealed) -> Result<Opened, KeyError> {
        let Some(key) = self.data_key(sealed.subject).await? else {
            return Ok(Opened::Erased);
        };
        open_with(&key, sealed)
    }

    async fn open_all(&self, sealed: &[Sealed]) -> Result<Vec<Result<Opened, KeyError>>, KeyError> {
        let mut subjects: Vec<SubjectId> = sealed.iter().map(|s| s.subject).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let mut keys = HashMap::with_capacity(subjects.len());
        for (subject, wrapped) in self.keys.wrapped_keys_of(&subjects).await? {
            keys.insert(subject, self.unwrap(subject, &wrapped)?);
        }
        Ok(sealed
            .iter()
            .map(|s| match keys.get(&s.subject) {
                None => Ok(Opened::Erased),
                Some(key) => open_with(key, s),
            })
            .collect())
    }

    fn fingerprint(&self, plaintext: &[u8]) -> String {
        B64.encode(mac(&self.kek.fingerprint, &[plaintext]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_kek_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Kek::resolve(None, None, dir.path()).expect("generated");
        let again = Kek::resolve(None, None, dir.path()).expect("read back");
        assert_eq!(first.fingerprint, again.fingerprint);
        assert_eq!(first.wrap, again.wrap);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("kek"))
                .expect("kek file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_environment_wins_and_bad_keks_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = B64.encode([9u8; 32]);
        let inline = Kek::resolve(Some(secret.clone()), None, dir.path()).expect("inline");
        assert_eq!(inline.wrap, Kek::from_secret(&[9u8; 32]).wrap);
        assert!(!dir.path().join("kek").exists(), "nothing generated");

        let file = dir.path().join("given");
        std::fs::write(&file, &secret).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let refused = Kek::resolve(None, Some(file.clone()), dir.path());
            assert!(matches!(refused, Err(KeyError::Kek(m)) if m.contains("chmod 600")));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let from_file = Kek::resolve(None, Some(file), dir.path()).expect("file");
        assert_eq!(from_file.wrap, inline.wrap);

        for bad in ["not base64!", "AAAA"] {
            assert!(matches!(
                Kek::resolve(Some(bad.into()), None, dir.path()),
                Err(KeyError::Kek(_))
            ));
        }
    }
}
