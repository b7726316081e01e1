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

/// A duty's name: `outbox`, `timers`, `retention`.
pub type Duty = &'static str;

#[async_trait::async_trait]
pub trait Leases: Send + Sync {
    /// Takes or renews `duty` for `holder` for `ttl`: `true` when `holder` has it now (it was
    /// free, expired, or already `holder`'s), `false` when another holder's lease runs.
    async fn acquire(&self, duty: Duty, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives `duty` up if `holder` has it, so another process need not wait for the expiry.
    async fn release(&self, duty: Duty, holder: &str) -> Result<(), StoreError>;
}
