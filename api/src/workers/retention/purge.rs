//! The purge job: for each subject whose purge timer is due, in due order, page by page:
//!
//! 1. `CheckPurge` decides whether it may run (due, not yet purged, every required case-system
//!    handover done); a missing handover appends `PurgeBlocked` and moves the timer;
//! 2. the deletion verifier prepares its manifest (ADR 0024: it takes the fingerprints it will
//!    look for while the values still open), then the subject's key is destroyed, its blobs
//!    deleted and its outbox mail scrubbed;
//! 3. `ExecutePurge` appends `PurgeExecuted` with the counts.
//!
//! Every step can be repeated: a run killed between 2 and 3 is finished by the next one (the
//! decider lets `PurgeExecuted` happen once). Only one page of timers is in memory at a time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_adapters::store::AdminStore;
use videoamt_core::blobs::BlobStore;
use videoamt_core::domain::events::PurgeExecuted;
use videoamt_core::domain::subject::SubjectCommand;
use videoamt_core::domain::{DomainError, SubjectId};
use videoamt_core::event::{Actor, TenantId};
use videoamt_core::keys::KeyStore;
use videoamt_projections::timers::{self, Timer, TimerKind};

use crate::app::System;

/// How long a blocked purge waits before it is tried again.
pub const BLOCKED_RETRY: Duration = Duration::days(1);
/// Subjects whose files are deleted at the same time.
const PARALLEL: usize = 16;

/// What happened to one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Purged(PurgeExecuted),
    Blocked,
    /// Not due (yet), or already purged by someone else: nothing done.
    Skipped,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub purged: u64,
    pub blocked: u64,
    pub skipped: u64,
    pub keys_destroyed: u64,
    pub blobs_deleted: u64,
    pub outbox_items_scrubbed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("key store: {0}")]
    Key(#[from] videoamt_core::keys::KeyError),
    #[error("blob store: {0}")]
    Blob(#[from] videoamt_core::blobs::BlobError),
    #[error("outbox {}: {source}", .path.display())]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] videoamt_core::store::StoreError),
    #[error("the outbox task failed: {0}")]
    Task(String),
    #[error("unknown tenant {0:?} in a timer")]
    Tenant(String),
    #[error("the deletion verifier's manifest: {0}")]
    Manifest(String),
}

#[derive(Clone)]
pub struct PurgeJob {
    bus: CommandBus,
    store: Arc<dyn AdminStore>,
    keys: Arc<dyn KeyStore>,
    blobs: Arc<dyn BlobStore>,
    outbox: PathBuf,
    page: u32,
    /// Prepares its manifest before the keys go; the purge shares no code with it.
    verifier: super::verify::Verifier,
}

impl std::fmt::Debug for PurgeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PurgeJob").finish_non_exhaustive()
    }
}

/// Deletes the subject's outbox folder (`outbox/{subject}/`); how many items it held.
fn scrub_outbox(outbox: &Path, subject: SubjectId) -> Result<u32, PurgeError> {
    let folder = outbox.join(subject.to_string());
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(PurgeError::Outbox {
                path: folder,
                source: e,
            });
        }
    };
    let mut scrubbed = 0;
    for entry in entries {
        let path = entry
            .map_err(|e| PurgeError::Outbox {
                path: folder.clone(),
                source: e,
            })?
            .path();
        std::fs::remove_file(&path).map_err(|e| PurgeError::Outbox {
            path: path.clone(),
            source: e,
        })?;
        scrubbed += 1;
    }
    std::fs::remove_dir(&folder).map_err(|e| PurgeError::Outbox {
        path: folder,
        source: e,
    })?;
    Ok(scrubbed)
}

impl PurgeJob {
    pub fn new(system: &System) -> Self {
        Self {
            bus: system.bus(),
            store: system.store.clone(),
            keys: system.keys.clone(),
            blobs: system.blobs.clone(),
            outbox: system.outbox_dir(),
            page: system.settings.purge_page.max(1),
            verifier: super::verify::Verifier::new(system),
        }
    }

    fn issued(&self, tenant: &str, now: OffsetDateTime) -> Result<Issued, PurgeError> {
        let tenant = TenantId::parse(tenant).map_err(|_| PurgeError::Tenant(tenant.to_owned()))?;
        let id = Uuid::now_v7();
        Ok(Issued {
            tenant,
            actor: Actor::system("retention"),
            correlation_id: id,
            command_id: id,
            now,
        })
    }

    /// Purges one page of due timers; the outcome of each, in order. The page goes through
    /// every step together (one combined `CheckPurge` append, one key deletion, one combined
    /// `PurgeExecuted` append), so a page costs a handful of commits, not a few per subject.
    async fn purge_page(
        &self,
        page: &[Timer],
        now: OffsetDateTime,
    ) -> Result<Vec<Outcome>, PurgeError> {
        let checks = page
            .iter()
            .map(|timer| {
                let check = SubjectCommand::CheckPurge {
                    subject: timer.subject,
                    retry_at: now + BLOCKED_RETRY,
                }
                .into();
                Ok((check, self.issued(&timer.tenant, now)?))
            })
            .collect::<Result<Vec<_>, PurgeError>>()?;
        let mut outcomes = Vec::with_capacity(page.len());
        let mut allowed = Vec::new();
        for (timer, checked) in page.iter().zip(self.bus.execute_all(&checks).await) {
            outcomes.push(match checked {
                Ok(done) if done.positions.is_empty() => {
                    allowed.push(timer);
                    None
                }
                // `PurgeBlocked` was appended, with the reason, and the timer moves to its retry.
                Ok(_) => Some(Outcome::Blocked),
                Err(BusError::Refused(
                    DomainError::PurgeNotDue(_) | DomainError::AlreadyPurged,
                )) => Some(Outcome::Skipped),
                Err(e) => return Err(e.into()),
            });
        }
        let subjects: Vec<SubjectId> = allowed.iter().map(|t| t.subject).collect();
        self.verifier
            .prepare(&subjects)
            .await
            .map_err(|e| PurgeError::Manifest(e.to_string()))?;
        let destroyed: HashSet<SubjectId> = self
            .keys
            .destroy_all(&subjects)
            .await?
            .into_iter()
            .collect();
        let files: Vec<(u32, u32)> = futures::stream::iter(subjects)
            .map(|subject| {
                let job = self.clone();
                async move { job.delete_files(subject).await }
            })
            .buffered(PARALLEL)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let results: Vec<PurgeExecuted> = allowed
            .iter()
            .zip(files)
            .map(
                |(timer, (blobs_deleted, outbox_items_scrubbed))| PurgeExecuted {
                    keys_destroyed: u32::from(destroyed.contains(&timer.subject)),
                    blobs_deleted,
                    outbox_items_scrubbed,
                },
            )
            .collect();
        let executes = allowed
            .iter()
            .zip(&results)
            .map(|(timer, result)| {
                let execute = SubjectCommand::ExecutePurge {
                    subject: timer.subject,
                    result: result.clone(),
                }
                .into();
                Ok((execute, self.issued(&timer.tenant, now)?))
            })
            .collect::<Result<Vec<_>, PurgeError>>()?;
        let executed = results
            .into_iter()
            .zip(self.bus.execute_all(&executes).await);
        // The allowed subjects' slots are the empty ones, in the same order.
        for (slot, (result, done)) in outcomes.iter_mut().filter(|o| o.is_none()).zip(executed) {
            *slot = Some(match done {
                Ok(_) => Outcome::Purged(result),
                Err(BusError::Refused(DomainError::AlreadyPurged)) => Outcome::Skipped,
                Err(e) => return Err(e.into()),
            });
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Deletes the subject's blobs and outbox mail: how many of each.
    async fn delete_files(&self, subject: SubjectId) -> Result<(u32, u32), PurgeError> {
        let blobs_deleted = self.blobs.delete_subject(subject).await?;
        let outbox = self.outbox.clone();
        let outbox_items_scrubbed =
            tokio::task::spawn_blocking(move || scrub_outbox(&outbox, subject))
                .await
                .map_err(|e| PurgeError::Task(e.to_string()))??;
        Ok((blobs_deleted, outbox_items_scrubbed))
    }

    /// Every purge due at `now` whose timer the due-timer projection holds, in due order;
    /// `progress` hears of each subject done. The projection must be caught up by the caller.
    pub async fn run_due(
        &self,
        now: OffsetDateTime,
        mut progress: impl FnMut(&Outcome),
    ) -> Result<Summary, PurgeError> {
        let mut summary = Summary::default();
        let mut after = String::new();
        loop {
            let page = timers::due::<timers::Timer>(
                self.store.as_ref(),
                TimerKind::Purge,
                now,
                &after,
                self.page,
            )
            .await?;
            let Some((last, _)) = page.last() else { break };
            after.clone_from(last);
            let timers: Vec<Timer> = page.into_iter().map(|(_, timer)| timer).collect();
            let outcomes = self.purge_page(&timers, now).await?;
            for outcome in outcomes {
                match &outcome {
                    Outcome::Purged(p) => {
                        summary.purged += 1;
                        summary.keys_destroyed += u64::from(p.keys_destroyed);
                        summary.blobs_deleted += u64::from(p.blobs_deleted);
                        summary.outbox_items_scrubbed += u64::from(p.outbox_items_scrubbed);
                    }
                    Outcome::Blocked => summary.blocked += 1,
                    Outcome::Skipped => summary.skipped += 1,
                }
                progress(&outcome);
            }
        }
        if summary.keys_destroyed > 0 {
            self.store.forget_deleted().await?;
        }
        Ok(summary)
    }
}
