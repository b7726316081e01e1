//! Catch-up-then-live subscriptions, shared by every backend.
//!
//! A subscription is a loop of `read_all(after, page)`; when a page comes back empty it waits
//! for the backend's head signal (an in-process watch channel, fed by the backend's own writer
//! or by PostgreSQL NOTIFY) or, at the latest, the poll interval, which covers writers in other
//! processes. Correctness rests only on the store's guarantee that positions commit in order;
//! the signal only makes it prompt.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use videoamt_core::event::{GlobalPosition, RecordedEvent};
use videoamt_core::store::{EventStore, EventStream, StoreError};

use super::SUBSCRIPTION_PAGE;

struct State<S: ?Sized> {
    store: Arc<S>,
    after: GlobalPosition,
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<GlobalPosition>,
    poll: Duration,
    failed: bool,
}

pub(crate) fn catch_up_then_live<S>(
    store: Arc<S>,
    after: GlobalPosition,
    head: watch::Receiver<GlobalPosition>,
    poll: Duration,
) -> EventStream
where
    S: EventStore + ?Sized + 'static,
{
    let state = State {
        store,
        after,
        buffer: VecDeque::new(),
        head,
        poll,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, next))
}

async fn next<S>(mut s: State<S>) -> Option<(Result<RecordedEvent, StoreError>, State<S>)>
where
    S: EventStore + ?Sized + 'static,
{
    if s.failed {
        return None;
    }
    loop {
        if let Some(event) = s.buffer.pop_front() {
            s.after = event.global_position;
            return Some((Ok(event), s));
        }
        match s.store.read_all(s.after, SUBSCRIPTION_PAGE).await {
            Ok(page) if page.is_empty() => {
                let after = s.after;
                // Err means the writer is gone (store dropped) or the wait timed out; either
                // way the next read decides.
                let writer_gone = tokio::time::timeout(s.poll, s.head.wait_for(|&h| h > after))
                    .await
                    .is_ok_and(|woken| woken.is_err());
                if writer_gone {
                    tokio::time::sleep(s.poll).await;
                }
            }
            Ok(page) => s.buffer.extend(page),
            Err(e) => {
                s.failed = true;
                return Some((Err(e), s));
            }
        }
    }
}
