//! The lease port: a duty that must run in one process at a time, however many serve one log
//! (the outbox's mails, the timers, the purge). A process that holds a duty's lease renews it
//! well before it runs out; one that stops renewing (killed, cut off) loses the duty when the
//! lease expires, and another process takes it. The store's own clock decides expiry, so the
//! processes' clocks need not agree.
//!
//! A lease is not a lock against a process that keeps working after its lease expired (a long
//! pause): the holder checks its lease before each unit of work with a side effect, and a
//! side effect that got through anyway is made harmless by its idempotency key (a mail's
//! Message-ID, a command's decision). ADR 0023.

use std::time::Duration;

use crate::store::StoreError;

/// A duty's name: `outbox`, `timers`, `retention`. Other leases are named at run time: a
/// room's media node is `room:<session>` (ADR 0028).
pub type Duty = &'static str;

#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews the lease `name` for `holder` for `ttl`: `true` when `holder` has it now
    /// (it was free, expired, or already `holder`'s), `false` when another holder's lease runs.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives `name` up if `holder` has it, so another process need not wait for the expiry.
    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// Who holds `name` now, if anybody's lease on it runs.
    async fn holder(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Takes or renews `name` for `holder` unless another holder's lease runs; either way, the
    /// holder it has afterwards.
    async fn claim(&self, name: &str, holder: &str, ttl: Duration) -> Result<String, StoreError> {
        // A lease that runs out between the two questions is asked for again; a few rounds
        // settle it, as every round somebody holds it or it is free to take.
        for _ in 0..3 {
            if self.acquire(name, holder, ttl).await? {
                return Ok(holder.to_owned());
            }
            if let Some(other) = self.holder(name).await? {
                return Ok(other);
            }
        }
        Err(StoreError::new(format!(
            "the lease {name} changed hands three times in a row"
        )))
    }
}
