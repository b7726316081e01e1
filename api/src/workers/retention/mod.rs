//! Retention: the purge job, the independent deletion verifier, and the scheduler that runs
//! both from the due-timer projection.

pub mod purge;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use videoamt_core::domain::SubjectId;
use videoamt_projections::Projection;
use videoamt_projections::timers::{self, TimerKind};

use crate::app::System;

/// Subjects verified together, sharing one scan of the store. The scan is the cost of a
/// verification (it reads every row and file once, however many subjects it looks for), so the
/// batch is as large as memory allows: per subject the verifier holds about 300 bytes (its
/// fingerprints by 128 bits, its verdict's inputs), 30 MB for a full batch.
pub const VERIFY_BATCH: usize = 100_000;

/// Subjects whose verification timer is due at `now`, up to `limit`.
async fn due_verifications(
    system: &System,
    now: OffsetDateTime,
    limit: usize,
) -> anyhow::Result<Vec<SubjectId>> {
    let mut subjects = Vec::new();
    let mut after = String::new();
    while subjects.len() < limit {
        let want = u32::try_from(limit - subjects.len())
            .unwrap_or(u32::MAX)
            .min(1000);
        let page = timers::due::<timers::Timer>(
            system.store.as_ref(),
            TimerKind::Verify,
            now,
            &after,
            want,
        )
        .await?;
        let Some((last, _)) = page.last() else { break };
        after.clone_from(last);
        subjects.extend(page.into_iter().map(|(_, t)| t.subject));
    }
    Ok(subjects)
}

/// One round of the scheduler: purge what is due, then verify what was purged, once every
/// projection has folded the purges (they scrub on `PurgeExecuted`). Returns how many keys the
/// round destroyed.
pub async fn tick(system: &System, projections: &[Arc<dyn Projection>]) -> anyhow::Result<u64> {
    let now = OffsetDateTime::now_utc();
    // The same round fires the appointments' reminders and no-show checks.
    let fired = crate::workers::timers::fire_due(system, now).await?;
    if fired > 0 {
        tracing::info!(fired, "appointment timers fired");
    }
    let summary = purge::PurgeJob::new(system).run_due(now, |_| {}).await?;
    if summary.purged + summary.blocked > 0 {
        tracing::info!(
            purged = summary.purged,
            blocked = summary.blocked,
            keys_destroyed = summary.keys_destroyed,
            blobs_deleted = summary.blobs_deleted,
            "retention purge"
        );
    }
    let destroyed = summary.keys_destroyed;
    let timers_at = system.store.checkpoint(timers::NAME).await?.position;
    for p in projections {
        if system.store.checkpoint(p.name()).await?.position < timers_at {
            return Ok(destroyed); // the next round verifies
        }
    }
    let verifier = verify::Verifier::new(system);
    let swept = verifier.sweep().await?;
    if swept > 0 {
        tracing::info!(swept, "manifests of verified deletions removed");
    }
    let subjects = due_verifications(system, now, VERIFY_BATCH).await?;
    if subjects.is_empty() {
        return Ok(destroyed);
    }
    let verdicts = verifier.verify(&subjects, now).await?;
    let failed = verdicts.iter().filter(|v| !v.passed()).count();
    tracing::info!(
        verified = verdicts.len() - failed,
        failed,
        "retention verification"
    );
    Ok(destroyed)
}

/// Writes the key backup the settings name, if any; false when that failed.
async fn write_key_backup(system: &System) -> bool {
    let Some(path) = &system.settings.key_backup else {
        return true;
    };
    match videoamt_adapters::store::backup::backup_keys(system.store.as_ref(), path).await {
        Ok(written) => {
            tracing::info!(
                keys = written.keys,
                position = written.position,
                "key backup written"
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "key backup failed; retrying next round");
            false
        }
    }
}

/// Runs [`tick`] every `every` until `stop` turns true. Errors are logged and retried: every
/// step is idempotent. After a round that destroyed keys the key backup is written anew, when
/// the settings name one (ADR 0027).
pub async fn schedule(
    system: System,
    projections: Vec<Arc<dyn Projection>>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Due at once: a holder that died after purging may not have written it. Then after every
    // round that destroyed keys, or failed part-way and may have; a failed write is retried.
    let mut key_backup_due = true;
    loop {
        match tick(&system, &projections).await {
            Ok(destroyed) => key_backup_due |= destroyed > 0,
            Err(e) => {
                key_backup_due = true;
                tracing::warn!(error = %e, "retention round failed; retrying");
            }
        }
        if key_backup_due {
            key_backup_due = !write_key_backup(&system).await;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
