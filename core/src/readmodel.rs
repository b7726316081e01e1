//! The read-model port: where projections keep what they fold.
//!
//! A projection keeps JSON documents under `(projection, kind, key)`. The runner reads the
//! documents an event touches, lets the projection's pure fold change them, and commits the
//! changes together with the projection's new checkpoint in one transaction, so a crash never
//! applies an event twice or skips one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::event::GlobalPosition;
use crate::store::StoreError;

/// Where a document lives within its projection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocKey {
    pub kind: String,
    pub key: String,
}

impl DocKey {
    pub fn new(kind: &str, key: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            key: key.into(),
        }
    }
}

/// One change of a committed batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(DocKey, serde_json::Value),
    Delete(DocKey),
}

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionCheckpoint {
    pub projection: String,
    pub position: GlobalPosition,
    /// When the event at `position` was recorded (for lag in seconds).
    pub event_recorded_at: Option<OffsetDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// Someone else moved the checkpoint (a second runner, or a rebuild): nothing was written.
    #[error("projection {projection} is at {actual}, not {expected}")]
    CheckpointMoved {
        projection: String,
        expected: GlobalPosition,
        actual: GlobalPosition,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait::async_trait]
pub trait ReadModelStore: Send + Sync {
    /// The projection's checkpoint; position 0 if it never ran.
    async fn checkpoint(&self, projection: &str) -> Result<ProjectionCheckpoint, StoreError>;

    /// Every checkpoint there is.
    async fn checkpoints(&self) -> Result<Vec<ProjectionCheckpoint>, StoreError>;

    /// The documents among `keys` that exist.
    async fn get(
        &self,
        projection: &str,
        keys: &[DocKey],
    ) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError>;

    /// Documents of one kind whose key starts with `prefix`, in key order.
    async fn list(
        &self,
        projection: &str,
        kind: &str,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;

    /// Applies `changes` and moves the checkpoint from `from` to `to`, atomically. Refused if
    /// the stored checkpoint is not `from`.
    async fn commit(
        &self,
        projection: &str,
        from: GlobalPosition,
        to: ProjectionCheckpoint,
        changes: Vec<Change>,
    ) -> Result<(), ReadModelError>;

    /// Drops every document and the checkpoint of a projection, for a rebuild from 0.
    async fn reset(&self, projection: &str) -> Result<(), StoreError>;

    /// Every document of a projection, ordered, for comparisons.
    async fn dump(&self, projection: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError>;
}

/// The documents one batch of events reads and writes: loaded before the fold, changed by it,
/// and turned into [`Change`]s afterwards.
#[derive(Debug, Default)]
pub struct Docs {
    docs: BTreeMap<DocKey, Option<serde_json::Value>>,
    dirty: BTreeSet<DocKey>,
}

impl Docs {
    /// Registers what the store returned for `requested`; keys it did not return are absent.
    pub fn load(&mut self, requested: &[DocKey], found: Vec<(DocKey, serde_json::Value)>) {
        for key in requested {
            self.docs.entry(key.clone()).or_insert(None);
        }
        for (key, value) in found {
            if !self.dirty.contains(&key) {
                self.docs.insert(key, Some(value));
            }
        }
    }

    /// Keys not loaded yet.
    pub fn missing(&self, keys: &[DocKey]) -> Vec<DocKey> {
        keys.iter()
            .filter(|k| !self.docs.contains_key(*k))
            .cloned()
            .collect()
    }

    /// A document as its type. A document that does not parse as `T` is treated as absent:
    /// the projection wrote it, so that only happens after its shape changed, and a rebuild
    /// repairs it.
    pub fn get<T: DeserializeOwned>(&self, key: &DocKey) -> Option<T> {
        self.docs
            .get(key)?
            .as_ref()
            .and_then(|v| T::deserialize(v).ok())
    }

    /// Forgets every document and pending change.
    pub fn clear(&mut self) {
        self.docs.clear();
        self.dirty.clear();
    }

    /// Documents held, loaded or written.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    pub fn put<T: Serialize>(&mut self, key: DocKey, value: &T) {
        // Serializing plain data structs to a JSON tree cannot fail.
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.docs.insert(key.clone(), Some(value));
        self.dirty.insert(key);
    }

    pub fn delete(&mut self, key: DocKey) {
        self.docs.insert(key.clone(), None);
        self.dirty.insert(key);
    }

    /// Read-modify-write of one document, starting from `Default` when absent.
    pub fn update<T: Serialize + DeserializeOwned + Default>(
        &mut self,
        key: DocKey,
        f: impl FnOnce(&mut T),
    ) {
        let mut doc: T = self.get(&key).unwrap_or_default();
        f(&mut doc);
        self.put(key, &doc);
    }

    /// The changes to commit. The documents stay as a cache for the next batch: valid as long
    /// as this runner is the projection's only writer, which the checkpoint check of
    /// [`ReadModelStore::commit`] guarantees. After a failed commit, [`Docs::clear`] it.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|key| match self.docs.get(&key).cloned().flatten() {
                Some(value) => Change::Put(key, value),
                None => Change::Delete(key),
            })
            .collect()
    }
}
