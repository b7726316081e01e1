//! The read-model port: where projections keep what they fold.
//!
//! A projection keeps JSON documents under `(projection, kind, key)`. The runner reads the
//! documents an event touches, lets the projection's pure fold change them, and commits the
//! changes together with the projection's new checkpoint in one transaction, so a crash never
//! applies an event twice or skips one.

use std::any::Any;
use std::collections::HashMap;

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
    /// The document as JSON text.
    Put(DocKey, String),
    /// The same, for a document the store does not hold: the projection's only writer knows it
    /// is new (looked up and absent, or never written since a reset), so a store may write it
    /// without looking for an older one, in bulk.
    Insert(DocKey, String),
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

/// One projection's part of [`ReadModelStore::commit_all`]: its changes and the move of its
/// checkpoint from `from` to `to` (which names the projection).
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub from: GlobalPosition,
    pub to: ProjectionCheckpoint,
    pub changes: Vec<Change>,
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

    /// At most `limit` documents of one kind with `after < key < before`, in key order: a page
    /// of a range, for readers that must not hold a whole kind at once. Range keys must be
    /// fixed-width lowercase ASCII letters and digits, so that every database collation orders
    /// them alike.
    async fn list_range(
        &self,
        projection: &str,
        kind: &str,
        after: &str,
        before: &str,
        limit: u32,
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

    /// Several projections' commits, each as [`commit`](Self::commit) would make it. A
    /// backend with round trips makes them one transaction, all or none; this default commits
    /// one after the other and stops at the first refusal, so after a refusal a caller reads
    /// the checkpoints again.
    async fn commit_all(&self, commits: Vec<Commit>) -> Result<(), ReadModelError> {
        commit_in_turn(self, commits).await
    }

    /// Drops every document and the checkpoint of a projection, for a rebuild from 0.
    async fn reset(&self, projection: &str) -> Result<(), StoreError>;

    /// Every document of a projection, ordered, for comparisons.
    async fn dump(&self, projection: &str) -> Result<Vec<(DocKey, serde_json::Value)>, StoreError>;
}

/// Commits one after the other, stopping at the first refusal: [`ReadModelStore::commit_all`]
/// without a joint transaction, and what a backend falls back to where one does not pay.
pub async fn commit_in_turn<S: ReadModelStore + ?Sized>(
    store: &S,
    commits: Vec<Commit>,
) -> Result<(), ReadModelError> {
    for c in commits {
        let projection = c.to.projection.clone();
        store.commit(&projection, c.from, c.to, c.changes).await?;
    }
    Ok(())
}

/// A document as a projection holds it: its own type, turned into JSON only when committed.
pub trait Document: Any + Send + Sync {
    /// The JSON text the store keeps.
    fn to_json(&self) -> String;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Serialize + Any + Send + Sync> Document for T {
    fn to_json(&self) -> String {
        // Serializing plain data structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

enum Slot {
    /// Looked up, and not there (or deleted).
    Absent,
    /// As the store returned it; parsed into a type on first typed use.
    Stored(serde_json::Value),
    Typed(Box<dyn Document>),
}

struct Held {
    slot: Slot,
    dirty: bool,
    stored: Stored,
}

/// Whether the store holds a document, as far as this cache knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Unknown,
    Yes,
    No,
}

/// The documents a projection reads and writes: loaded before the fold, changed by it in their
/// own types (no JSON per event), and turned into [`Change`]s once per batch. They stay as a
/// cache for the next batch.
#[derive(Default)]
pub struct Docs {
    /// Keys come from the log, not from a caller who could choose them to collide.
    docs: HashMap<DocKey, Held, foldhash::fast::RandomState>,
    dirty: Vec<DocKey>,
    /// Every document of the projection is held: what is not here does not exist.
    complete: bool,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("held", &self.docs.len())
            .field("dirty", &self.dirty.len())
            .finish()
    }
}

fn parse<T: DeserializeOwned>(slot: &Slot) -> Option<T> {
    match slot {
        Slot::Absent => None,
        Slot::Stored(value) => T::deserialize(value).ok(),
        // Another type under the same key: go through JSON, as the store would.
        Slot::Typed(doc) => serde_json::from_str(&doc.to_json()).ok(),
    }
}

impl Docs {
    /// Registers what the store returned for `requested`; keys it did not return are absent.
    pub fn load(&mut self, requested: &[DocKey], found: Vec<(DocKey, serde_json::Value)>) {
        for key in requested {
            let held = self.docs.entry(key.clone()).or_insert(Held {
                slot: Slot::Absent,
                dirty: false,
                stored: Stored::No,
            });
            if held.stored == Stored::Unknown {
                held.stored = Stored::No;
            }
        }
        for (key, value) in found {
            match self.docs.get_mut(&key) {
                Some(held) if held.dirty => held.stored = Stored::Yes,
                Some(held) => {
                    held.slot = Slot::Stored(value);
                    held.stored = Stored::Yes;
                }
                None => {
                    self.docs.insert(
                        key,
                        Held {
                            slot: Slot::Stored(value),
                            dirty: false,
                            stored: Stored::Yes,
                        },
                    );
                }
            }
        }
    }

    /// Holds every document of a projection that starts empty (a rebuild after its reset), so
    /// nothing needs loading until [`Docs::clear`].
    pub fn complete() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }

    /// Whether every document is held (see [`Docs::complete`]).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Keys not loaded yet.
    pub fn missing(&self, keys: &[DocKey]) -> Vec<DocKey> {
        if self.complete {
            return Vec::new();
        }
        keys.iter()
            .filter(|k| !self.docs.contains_key(*k))
            .cloned()
            .collect()
    }

    /// A document as its type. A document that does not parse as `T` is treated as absent:
    /// the projection wrote it, so that only happens after its shape changed, and a rebuild
    /// repairs it.
    pub fn get<T: DeserializeOwned + Clone + 'static>(&self, key: &DocKey) -> Option<T> {
        let slot = &self.docs.get(key)?.slot;
        if let Slot::Typed(doc) = slot
            && let Some(value) = doc.as_any().downcast_ref::<T>()
        {
            return Some(value.clone());
        }
        parse(slot)
    }

    /// Forgets every document and pending change.
    pub fn clear(&mut self) {
        self.docs.clear();
        self.dirty.clear();
        self.complete = false;
    }

    /// Documents changed since the last [`Docs::take_changes`].
    pub fn changed(&self) -> usize {
        self.dirty.len()
    }

    /// Documents held, loaded or written.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn set(&mut self, key: DocKey, slot: Slot) {
        match self.docs.get_mut(&key) {
            Some(held) => {
                held.slot = slot;
                if !held.dirty {
                    held.dirty = true;
                    self.dirty.push(key);
                }
            }
            None => {
                // In a complete cache, what is not held does not exist.
                let stored = if self.complete {
                    Stored::No
                } else {
                    Stored::Unknown
                };
                self.docs.insert(
                    key.clone(),
                    Held {
                        slot,
                        dirty: true,
                        stored,
                    },
                );
                self.dirty.push(key);
            }
        }
    }

    pub fn put<T: Document>(&mut self, key: DocKey, value: T) {
        self.set(key, Slot::Typed(Box::new(value)));
    }

    pub fn delete(&mut self, key: DocKey) {
        self.set(key, Slot::Absent);
    }

    /// Read-modify-write of one document, starting from `Default` when absent. A document
    /// already held in its type is changed in place.
    pub fn update<T: Document + DeserializeOwned + Default>(
        &mut self,
        key: DocKey,
        f: impl FnOnce(&mut T),
    ) {
        if let Some(held) = self.docs.get_mut(&key)
            && let Slot::Typed(doc) = &mut held.slot
            && let Some(value) = doc.as_any_mut().downcast_mut::<T>()
        {
            f(value);
            if !held.dirty {
                held.dirty = true;
                self.dirty.push(key);
            }
            return;
        }
        let mut doc: T = self
            .docs
            .get(&key)
            .and_then(|held| parse(&held.slot))
            .unwrap_or_default();
        f(&mut doc);
        self.put(key, doc);
    }

    /// The changes to commit. The documents stay as a cache for the next batch: valid as long
    /// as this runner is the projection's only writer, which the checkpoint check of
    /// [`ReadModelStore::commit`] guarantees. After a failed commit, [`Docs::clear`] it.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes = Vec::with_capacity(dirty.len());
        for key in dirty {
            let Some(held) = self.docs.get_mut(&key) else {
                continue;
            };
            held.dirty = false;
            let json = match &held.slot {
                // Deleting what the store does not hold changes nothing.
                Slot::Absent if held.stored == Stored::No => continue,
                Slot::Absent => {
                    held.stored = Stored::No;
                    changes.push(Change::Delete(key));
                    continue;
                }
                Slot::Stored(value) => value.to_string(),
                Slot::Typed(doc) => doc.to_json(),
            };
            let new = held.stored == Stored::No;
            held.stored = Stored::Yes;
            changes.push(if new {
                Change::Insert(key, json)
            } else {
                Change::Put(key, json)
            });
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
    struct Counter {
        n: u32,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
    struct Other {
        n: u32,
        label: Option<String>,
    }

    fn key(k: &str) -> DocKey {
        DocKey::new("counter", k)
    }

    #[test]
    fn changes_are_json_once_per_batch_and_the_documents_stay_cached() {
        let mut docs = Docs::default();
        docs.load(
            &[key("a"), key("b")],
            vec![(key("a"), serde_json::json!({ "n": 4 }))],
        );
        for _ in 0..3 {
            docs.update(key("a"), |c: &mut Counter| c.n += 1);
        }
        docs.update(key("b"), |c: &mut Counter| c.n += 1);
        docs.delete(key("b"));
        let changes = docs.take_changes();
        // b was looked up, absent, and is absent again: nothing to write.
        assert_eq!(changes, [Change::Put(key("a"), r#"{"n":7}"#.to_owned())]);
        assert!(docs.take_changes().is_empty(), "nothing changed since");
        assert_eq!(docs.get::<Counter>(&key("a")), Some(Counter { n: 7 }));
        assert_eq!(docs.get::<Counter>(&key("b")), None);
        assert_eq!(docs.missing(&[key("a"), key("c")]), [key("c")]);
    }

    #[test]
    fn a_document_read_as_another_type_goes_through_json() {
        let mut docs = Docs::default();
        docs.put(key("a"), Counter { n: 2 });
        assert_eq!(
            docs.get::<Other>(&key("a")),
            Some(Other { n: 2, label: None })
        );
        docs.update(key("a"), |o: &mut Other| o.label = Some("x".into()));
        assert_eq!(
            docs.take_changes(),
            [Change::Put(key("a"), r#"{"n":2,"label":"x"}"#.to_owned())]
        );
    }

    #[test]
    fn documents_known_to_be_new_are_inserts_and_then_puts() {
        let mut docs = Docs::default();
        docs.load(
            &[key("a"), key("b")],
            vec![(key("b"), serde_json::json!({ "n": 1 }))],
        );
        docs.put(key("a"), Counter { n: 1 });
        docs.put(key("b"), Counter { n: 2 });
        // Not looked up: the store may hold it.
        docs.put(key("c"), Counter { n: 3 });
        assert_eq!(
            docs.take_changes(),
            [
                Change::Insert(key("a"), r#"{"n":1}"#.to_owned()),
                Change::Put(key("b"), r#"{"n":2}"#.to_owned()),
                Change::Put(key("c"), r#"{"n":3}"#.to_owned()),
            ]
        );
        docs.put(key("a"), Counter { n: 4 });
        docs.delete(key("b"));
        assert_eq!(
            docs.take_changes(),
            [
                Change::Put(key("a"), r#"{"n":4}"#.to_owned()),
                Change::Delete(key("b")),
            ]
        );
        // Deleted, then written again: new once more.
        docs.put(key("b"), Counter { n: 5 });
        assert_eq!(
            docs.take_changes(),
            [Change::Insert(key("b"), r#"{"n":5}"#.to_owned())]
        );

        let mut rebuilt = Docs::complete();
        rebuilt.put(key("x"), Counter { n: 1 });
        rebuilt.put(key("y"), Counter { n: 1 });
        rebuilt.delete(key("y"));
        assert_eq!(
            rebuilt.take_changes(),
            [Change::Insert(key("x"), r#"{"n":1}"#.to_owned())]
        );
    }

    #[test]
    fn a_complete_cache_loads_nothing_until_cleared() {
        let mut docs = Docs::complete();
        assert!(docs.missing(&[key("a")]).is_empty());
        assert_eq!(docs.get::<Counter>(&key("a")), None);
        docs.clear();
        assert!(!docs.is_complete());
        assert_eq!(docs.missing(&[key("a")]), [key("a")]);
    }
}
