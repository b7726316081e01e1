//! One feed of "the clerks' read models moved", shared by every live view: the clerk's page
//! over Server-Sent Events and the session room's WebSocket. One task per process follows the
//! log through the store's live subscription (woken by the store's own writer, or by
//! PostgreSQL's NOTIFY for another node's writes) and, after each change, reads the
//! checkpoints of the schedule and waiting-room projections (their copies in memory, which
//! the views read, ADR 0029) until they have folded it; then
//! it tells the views the new position, and each view renders once. While the log is quiet
//! nothing is read (ADR 0025). The task starts with the first subscriber and ends when the
//! last one is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use videoamt_adapters::store::AdminStore;
use videoamt_core::readmodel::ReadModelStore as _;
use videoamt_projections::memory::MemoryModels;

/// How soon the checkpoints are read again while they are behind the log; doubled each time
/// up to [`BEHIND_AT_MOST`]. The projections usually fold a change within milliseconds.
const BEHIND_FIRST: Duration = Duration::from_millis(10);
const BEHIND_AT_MOST: Duration = Duration::from_secs(1);
/// The pause before the subscription is opened again after the store failed.
const RETRY: Duration = Duration::from_millis(500);

/// The read models a live view of the clerk shows.
const WATCHED: [&str; 2] = [
    videoamt_projections::schedule::NAME,
    videoamt_projections::waiting_room::NAME,
];

#[derive(Clone, Default)]
pub struct LiveFeed {
    sender: Arc<Mutex<Option<watch::Sender<u64>>>>,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFeed").finish_non_exhaustive()
    }
}

impl LiveFeed {
    /// A receiver whose value is the sum of the watched checkpoints; it changes whenever one of
    /// them moves. Starts the reading task if none runs.
    pub fn subscribe(
        &self,
        store: &Arc<dyn AdminStore>,
        models: &Arc<MemoryModels>,
    ) -> watch::Receiver<u64> {
        let mut sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = sender.as_ref().filter(|s| !s.is_closed()) {
            return running.subscribe();
        }
        let (tx, rx) = watch::channel(0);
        tokio::spawn(follow(store.clone(), models.clone(), tx.clone()));
        *sender = Some(tx);
        rx
    }
}

/// The sum of the watched checkpoints (the feed's value) and the lowest of them.
async fn checkpoints(models: &MemoryModels) -> Option<(u64, u64)> {
    let (mut sum, mut low) = (0u64, u64::MAX);
    for name in WATCHED {
        match models.checkpoint(name).await {
            Ok(c) => {
                sum = sum.saturating_add(c.position);
                low = low.min(c.position);
            }
            // The next change tries again; a view keeps showing what it has.
            Err(e) => {
                tracing::warn!(error = %e, "live feed cannot read checkpoints");
                return None;
            }
        }
    }
    Some((sum, low))
}

async fn follow(store: Arc<dyn AdminStore>, models: Arc<MemoryModels>, tx: watch::Sender<u64>) {
    use futures::{FutureExt as _, StreamExt as _};
    let publish = |sum: u64| {
        tx.send_if_modified(|last| {
            let moved = *last != sum;
            *last = sum;
            moved
        });
    };
    // Where the read models are: the log is followed from there, so that a change made
    // before this task ran is not missed.
    let low = loop {
        if let Some((sum, low)) = checkpoints(&models).await {
            publish(sum);
            break low;
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = tx.closed() => return,
        }
    };
    let (mut head, mut folded) = (low, low);
    let mut log = store.subscribe(head);
    let mut pause = BEHIND_FIRST;
    loop {
        if folded >= head {
            // Caught up: wait for the log to grow, reading nothing meanwhile.
            let next = tokio::select! {
                next = log.next() => next,
                () = tx.closed() => return,
            };
            match next {
                Some(Ok(event)) => head = head.max(event.global_position),
                failed => {
                    if let Some(Err(e)) = failed {
                        tracing::warn!(error = %e, "live feed lost the log; following again");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        () = tx.closed() => return,
                    }
                    log = store.subscribe(head);
                    continue;
                }
            }
        } else {
            // Behind: the projections have not folded what the log has; look again soon.
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = tx.closed() => return,
            }
            pause = (pause * 2).min(BEHIND_AT_MOST);
        }
        // Whatever else has arrived is covered by the same read.
        while let Some(Some(Ok(event))) = log.next().now_or_never() {
            head = head.max(event.global_position);
        }
        if let Some((sum, low)) = checkpoints(&models).await {
            publish(sum);
            folded = low;
        }
        if folded >= head {
            pause = BEHIND_FIRST;
        }
    }
}
