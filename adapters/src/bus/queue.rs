//! In-process queues per stream: commands of one process that touch the same stream wait for
//! each other here, one after another in arrival order, instead of racing for the stream's
//! version and retrying.
//!
//! A command takes its streams as the bus loads them, round by round, and holds them until its
//! append is done. Waiting only ever happens for streams that sort after every stream the
//! command already holds; when a later round names one that sorts before, the command tries it
//! without waiting and, if it is busy, lets go of everything and queues for all of them in
//! order. So no two commands ever wait for each other in a circle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as Queue, OwnedMutexGuard};
use videoamt_core::event::StreamId;

/// The queues of the streams some command holds or waits for; a queue nobody uses is dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamQueues {
    queues: Arc<Mutex<HashMap<StreamId, Arc<Queue<()>>>>>,
}

impl StreamQueues {
    /// A command's place in the queues; it holds nothing yet.
    pub(crate) fn hold(&self) -> Held {
        Held {
            queues: self.clone(),
            held: BTreeMap::new(),
        }
    }

    fn queue(&self, stream: &StreamId) -> Arc<Queue<()>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.entry(stream.clone()).or_default().clone()
    }

    /// Drops the queue of `stream` if nobody holds or waits for it.
    fn forget(&self, stream: &StreamId) {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if queues
            .get(stream)
            .is_some_and(|q| Arc::strong_count(q) == 1)
        {
            queues.remove(stream);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Whether what was read under the streams held so far still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Every stream held before is still held.
    Kept,
    /// The command let go of its streams for a while: others may have written them since.
    LetGo,
}

/// The streams one command holds, released when it is dropped.
#[derive(Debug)]
pub(crate) struct Held {
    queues: StreamQueues,
    held: BTreeMap<StreamId, OwnedMutexGuard<()>>,
}

impl Held {
    /// Takes `streams` besides those already held, waiting for them as long as it takes.
    pub(crate) async fn take(&mut self, streams: impl IntoIterator<Item = StreamId>) -> Taken {
        let wanted: BTreeSet<StreamId> = streams
            .into_iter()
            .filter(|s| !self.held.contains_key(s))
            .collect();
        let Some(first) = wanted.first() else {
            return Taken::Kept;
        };
        if self
            .held
            .last_key_value()
            .is_none_or(|(last, _)| last < first)
        {
            self.wait_for(wanted).await;
            return Taken::Kept;
        }
        if self.try_take(wanted.iter().cloned()) {
            return Taken::Kept;
        }
        // Waiting for a stream that sorts before one held could close a circle with a command
        // that holds it and waits for ours.
        let all: BTreeSet<StreamId> = std::mem::take(&mut self.held)
            .into_keys()
            .chain(wanted)
            .collect();
        self.wait_for(all).await;
        Taken::LetGo
    }

    /// Takes `streams` only if none of them is busy; takes nothing otherwise.
    pub(crate) fn try_take(&mut self, streams: impl IntoIterator<Item = StreamId>) -> bool {
        let wanted: BTreeSet<StreamId> = streams
            .into_iter()
            .filter(|s| !self.held.contains_key(s))
            .collect();
        let mut taken = Vec::with_capacity(wanted.len());
        for stream in wanted {
            match self.queues.queue(&stream).try_lock_owned() {
                Ok(guard) => taken.push((stream, guard)),
                Err(_) => {
                    for (stream, guard) in taken {
                        drop(guard);
                        self.queues.forget(&stream);
                    }
                    return false;
                }
            }
        }
        self.held.extend(taken);
        true
    }

    /// Waits for each stream in order; all sort after every stream held.
    async fn wait_for(&mut self, streams: BTreeSet<StreamId>) {
        for stream in streams {
            let guard = self.queues.queue(&stream).lock_owned().await;
            self.held.insert(stream, guard);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for (stream, guard) in std::mem::take(&mut self.held) {
            drop(guard);
            self.queues.forget(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str) -> StreamId {
        StreamId::parse(name).expect("valid stream id")
    }

    #[tokio::test]
    async fn a_busy_stream_is_waited_for_and_queues_are_forgotten_after_use() {
        let queues = StreamQueues::default();
        let mut first = queues.hold();
        assert_eq!(
            first.take([s("slot-a-1"), s("slot-a-2")]).await,
            Taken::Kept
        );
        let mut second = queues.hold();
        assert!(!second.try_take([s("slot-a-0"), s("slot-a-2")]));
        // Nothing of a failed try stays held.
        let mut third = queues.hold();
        assert!(third.try_take([s("slot-a-0")]));
        drop(third);
        {
            let waiting = second.take([s("slot-a-2")]);
            tokio::pin!(waiting);
            assert!(futures::poll!(&mut waiting).is_pending());
            drop(first);
            assert_eq!(waiting.await, Taken::Kept);
        }
        drop(second);
        assert_eq!(queues.len(), 0);
    }

    #[tokio::test]
    async fn a_stream_sorting_before_a_held_one_lets_go_if_it_is_busy() {
        let queues = StreamQueues::default();
        let mut other = queues.hold();
        assert_eq!(other.take([s("slot-a-1")]).await, Taken::Kept);
        let mut held = queues.hold();
        assert_eq!(held.take([s("slot-a-2")]).await, Taken::Kept);
        // Free: taken at once without letting go.
        assert_eq!(held.take([s("slot-a-0")]).await, Taken::Kept);
        {
            let waiting = held.take([s("slot-a-1")]);
            tokio::pin!(waiting);
            assert!(futures::poll!(&mut waiting).is_pending());
            drop(other);
            assert_eq!(waiting.await, Taken::LetGo);
        }
        assert_eq!(held.held.len(), 3);
    }
}
