//! One feed of "the clerks' read models moved", shared by every live view: the clerk's page
//! over Server-Sent Events today, the session room's WebSocket later. One task reads the
//! checkpoints of the schedule and waiting-room projections a few times a second, however many
//! views are open, and tells them the new position; each view then renders once. The task
//! starts with the first subscriber and ends when the last one is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use videoamt_adapters::store::AdminStore;

/// How often the feed looks at the checkpoints.
const EVERY: Duration = Duration::from_millis(250);

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
    pub fn subscribe(&self, store: &Arc<dyn AdminStore>) -> watch::Receiver<u64> {
        let mut sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = sender.as_ref().filter(|s| !s.is_closed()) {
            return running.subscribe();
        }
        let (tx, rx) = watch::channel(0);
        tokio::spawn(follow(store.clone(), tx.clone()));
        *sender = Some(tx);
        rx
    }
}

async fn follow(store: Arc<dyn AdminStore>, tx: watch::Sender<u64>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = tx.closed() => return,
        }
        let mut sum = 0u64;
        for name in WATCHED {
            match store.checkpoint(name).await {
                Ok(c) => sum = sum.saturating_add(c.position),
                // The next tick tries again; a view keeps showing what it has.
                Err(e) => tracing::warn!(error = %e, "live feed cannot read checkpoints"),
            }
        }
        tx.send_if_modified(|last| {
            let moved = *last != sum;
            *last = sum;
            moved
        });
    }
}
