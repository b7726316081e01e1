//! The cap on live streams per staff session (ADR 0025): a session holds at most
//! [`PER_SESSION`] Server-Sent-Event streams at once in this process; one more is refused with
//! 429, and a stream's place is free again when it ends (the page closed, the session over).
//! The count lives in this process, keyed by the session's digest: behind a load balancer each
//! server allows as many, so a session reaches at most `PER_SESSION` times the servers. The
//! session itself is in the store, and checked before and during each stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use videoamt_core::staff_session::SessionKey;

/// Streams one staff session may hold open at once here: the clerk's page in a few tabs.
pub(crate) const PER_SESSION: usize = 4;

/// The open streams of each session in this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveStreams {
    open: Arc<Mutex<HashMap<SessionKey, usize>>>,
}

/// A stream's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    open: Arc<Mutex<HashMap<SessionKey, usize>>>,
    session: SessionKey,
}

impl LiveStreams {
    /// A place for one more stream of `session`, or `None` when it holds [`PER_SESSION`].
    pub(crate) fn take(&self, session: SessionKey) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(session).or_default();
        if *count >= PER_SESSION {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            open: self.open.clone(),
            session,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.session) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_at_most_its_streams_and_a_closed_one_frees_its_place() {
        let streams = LiveStreams::default();
        let held: Vec<StreamSlot> = (0..PER_SESSION)
            .map(|_| streams.take([1; 32]).expect("a place"))
            .collect();
        assert!(streams.take([1; 32]).is_none(), "one too many");
        assert!(
            streams.take([2; 32]).is_some(),
            "another session has its own"
        );
        drop(held);
        assert!(streams.take([1; 32]).is_some());
        assert!(
            streams.open.lock().expect("not poisoned").is_empty(),
            "no session is kept once its streams are closed"
        );
    }
}
