//! The blob store on the filesystem: `ROOT/{subject}/{name}`, each file the subject-sealed
//! ciphertext of one document (the same sealed form as a personal value in an event). The
//! default root is `./videoamt-data/blobs/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use videoamt_core::blobs::{BlobContent, BlobError, BlobName, BlobStore};
use videoamt_core::domain::SubjectId;
use videoamt_core::keys::{KeyError, KeyStore, Opened, Sealed};

pub struct FsBlobStore {
    root: PathBuf,
    keys: Arc<dyn KeyStore>,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Io(format!("{}: {e}", path.display()))
}

impl FsBlobStore {
    pub fn new(root: impl Into<PathBuf>, keys: Arc<dyn KeyStore>) -> Self {
        Self {
            root: root.into(),
            keys,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn folder(&self, subject: SubjectId) -> PathBuf {
        self.root.join(subject.to_string())
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        subject: SubjectId,
        name: &BlobName,
        bytes: &[u8],
    ) -> Result<(), BlobError> {
        let sealed = self.keys.seal(subject, bytes).await?;
        let text = serde_json::to_vec(&sealed).map_err(|e| BlobError::Io(e.to_string()))?;
        let folder = self.folder(subject);
        let target = folder.join(name.as_str());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
            // Written beside and renamed over, so a reader never sees half a file.
            let partial = folder.join(format!(".{}.partial", uuid::Uuid::now_v7()));
            std::fs::write(&partial, &text).map_err(|e| io(&partial, e))?;
            std::fs::rename(&partial, &target).map_err(|e| io(&target, e))
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }

    async fn get(&self, subject: SubjectId, name: &BlobName) -> Result<BlobContent, BlobError> {
        let path = self.folder(subject).join(name.as_str());
        let read_path = path.clone();
        let read = tokio::task::spawn_blocking(move || std::fs::read(read_path))
            .await
            .map_err(|e| BlobError::Io(e.to_string()))?;
        let text = match read {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if self.keys.holds(subject).await? {
                    Err(BlobError::NotFound {
                        subject,
                        name: name.as_str().to_owned(),
                    })
                } else {
                    Ok(BlobContent::Erased)
                };
            }
            Err(e) => return Err(io(&path, e)),
        };
        let sealed: Sealed =
            serde_json::from_slice(&text).map_err(|_| KeyError::Tampered { subject })?;
        if sealed.subject != subject {
            return Err(KeyError::Tampered { subject }.into());
        }
        Ok(match self.keys.open(&sealed).await? {
            Opened::Plain(bytes) => BlobContent::Bytes(bytes),
            Opened::Erased => BlobContent::Erased,
        })
    }

    // The subject's folder stays: removing it could race a `put` between its `create_dir_all`
    // and its write; the purge removes it with the rest.
    async fn delete(&self, subject: SubjectId, name: &BlobName) -> Result<bool, BlobError> {
        let path = self.folder(subject).join(name.as_str());
        tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&path, e)),
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }

    async fn delete_subject(&self, subject: SubjectId) -> Result<u32, BlobError> {
        let folder = self.folder(subject);
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(io(&folder, e)),
            };
            let mut deleted = 0;
            for entry in entries {
                let path = entry.map_err(|e| io(&folder, e))?.path();
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
                deleted += 1;
            }
            std::fs::remove_dir(&folder).map_err(|e| io(&folder, e))?;
            Ok(deleted)
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }
}
