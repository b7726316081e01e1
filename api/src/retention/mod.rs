//! Retention: the purge job, the independent deletion verifier, and the scheduler that runs
//! both from the due-timer projection.

pub mod purge;
pub mod verify;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use time::OffsetDateTime;
use videoamt_core::domain::SubjectId;
use videoamt_core::domain::events::PurgeExecuted;
use videoamt_core::readmodel::ReadModelError;
use videoamt_projections::retention::{self as report, RetentionState};
use videoamt_projections::runner::{Runner, RunnerError};
use videoamt_projections::timers::{self, TimerKind};
use videoamt_projections::{Projection, retention::RetentionReport, timers::DueTimers};

use crate::system::System;

/// Subjects verified together, sharing one scan of the store.
pub const VERIFY_BATCH: usize = 20_000;

/// The projections retention reads, caught up before it acts.
fn retention_projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(DueTimers), Arc::new(RetentionReport)]
}

/// Brings `projections` up to the log's end. When another runner (a running server) keeps
/// them, it moved the checkpoints itself; that is fine.
async fn catch_up(system: &System, projections: &[Arc<dyn Projection>]) -> anyhow::Result<()> {
    let runner = Runner::new(system.store.clone(), system.store.clone());
    match runner.catch_up(projections).await {
        Ok(_) | Err(RunnerError::ReadModel(ReadModelError::CheckpointMoved { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

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
/// projection has folded the purges (they scrub on `PurgeExecuted`).
pub async fn tick(system: &System, projections: &[Arc<dyn Projection>]) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    // The same round fires the appointments' reminders and no-show checks.
    let fired = crate::timers::fire_due(system, now).await?;
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
    let timers_at = system.store.checkpoint(timers::NAME).await?.position;
    for p in projections {
        if system.store.checkpoint(p.name()).await?.position < timers_at {
            return Ok(()); // the next round verifies
        }
    }
    let subjects = due_verifications(system, now, VERIFY_BATCH).await?;
    if subjects.is_empty() {
        return Ok(());
    }
    let verdicts = verify::Verifier::new(system).verify(&subjects, now).await?;
    let failed = verdicts.iter().filter(|v| !v.passed()).count();
    tracing::info!(
        verified = verdicts.len() - failed,
        failed,
        "retention verification"
    );
    Ok(())
}

/// Runs [`tick`] every `every` until `stop` turns true. Errors are logged and retried: every
/// step is idempotent.
pub async fn schedule(
    system: System,
    projections: Vec<Arc<dyn Projection>>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = tick(&system, &projections).await {
            tracing::warn!(error = %e, "retention round failed; retrying");
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

/// `videoamt retention status`: counts per tenant and state.
pub async fn status(system: &System, tenant: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(t) = tenant {
        if !system.tenants.iter().any(|x| x.id.as_str() == t) {
            anyhow::bail!("unbekannter Mandant {t:?}");
        }
    }
    catch_up(system, &retention_projections()).await?;
    let rows = report::subjects(system.store.as_ref(), tenant).await?;
    let now = OffsetDateTime::now_utc();
    let states = [
        RetentionState::Active,
        RetentionState::Scheduled,
        RetentionState::Due,
        RetentionState::Overdue,
        RetentionState::Blocked,
        RetentionState::Executed,
        RetentionState::Verified,
    ];
    print!("{:<12}", "tenant");
    for s in states {
        print!(" {:>14}", s.german());
    }
    println!();
    for counts in report::counts(&rows, now) {
        print!("{:<12}", counts.tenant);
        for s in states {
            print!(" {:>14}", counts.counts.get(&s).copied().unwrap_or(0));
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `videoamt retention run [--dry-run]`.
pub async fn run(system: &System, dry_run: bool) -> anyhow::Result<ExitCode> {
    catch_up(system, &retention_projections()).await?;
    let now = OffsetDateTime::now_utc();
    let mut due = 0u64;
    let mut after = String::new();
    loop {
        let page = timers::due::<timers::Timer>(
            system.store.as_ref(),
            TimerKind::Purge,
            now,
            &after,
            1000,
        )
        .await?;
        let Some((last, _)) = page.last() else { break };
        after.clone_from(last);
        for (_, timer) in &page {
            due += 1;
            if dry_run {
                println!(
                    "{}  {}  fällig seit {}",
                    timer.subject, timer.tenant, timer.due
                );
            }
        }
    }
    println!("{due} Löschungen fällig");
    if dry_run || due == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(due);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} Personen  {per_sec}  noch {eta}",
        )
        .context("progress bar template")?,
    );
    let summary = purge::PurgeJob::new(system)
        .run_due(now, |_| bar.inc(1))
        .await?;
    bar.finish_and_clear();
    println!(
        "gelöscht: {}, zurückgestellt: {}, übersprungen: {}; Schlüssel vernichtet: {}, Blobs gelöscht: {}, Postausgang bereinigt: {}",
        summary.purged,
        summary.blocked,
        summary.skipped,
        summary.keys_destroyed,
        summary.blobs_deleted,
        summary.outbox_items_scrubbed
    );
    Ok(ExitCode::SUCCESS)
}

/// `videoamt retention verify [SUBJECT|--all]`: exits non-zero if any verification failed.
pub async fn verify_cli(system: &System, subject: Option<&str>) -> anyhow::Result<ExitCode> {
    // Read models must have folded `PurgeExecuted` (and scrubbed) before the scan.
    catch_up(system, &videoamt_projections::all(system.tenants.clone())).await?;
    let subjects = match subject {
        Some(s) => vec![
            uuid::Uuid::parse_str(s)
                .map(SubjectId)
                .with_context(|| format!("{s:?} ist keine Personen-ID (UUID)"))?,
        ],
        None => report::subjects(system.store.as_ref(), None)
            .await?
            .into_iter()
            .filter(|r| r.executed_at.is_some() && r.verified_at.is_none())
            .filter_map(|r| r.subject)
            .collect(),
    };
    let verifier = verify::Verifier::new(system);
    let mut failed = 0;
    let mut not_purged = 0;
    for chunk in subjects.chunks(VERIFY_BATCH) {
        for verdict in verifier.verify(chunk, OffsetDateTime::now_utc()).await? {
            if !verdict.recorded {
                not_purged += 1;
                println!("{}: noch nicht gelöscht, nicht geprüft", verdict.subject);
            } else if verdict.passed() {
                println!("{}: Löschung bestätigt", verdict.subject);
            } else {
                failed += 1;
                println!("{}: FEHLGESCHLAGEN", verdict.subject);
                for place in &verdict.places {
                    println!("  gefunden: {place}");
                }
            }
        }
    }
    println!(
        "{} geprüft, {failed} fehlgeschlagen, {not_purged} noch nicht gelöscht",
        subjects.len()
    );
    Ok(if failed == 0 && not_purged == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

const COLUMNS: [&str; 14] = [
    "subject",
    "tenant",
    "state",
    "final_state",
    "final_at",
    "due",
    "blocked",
    "executed_at",
    "verified_at",
    "keys_destroyed",
    "blobs_deleted",
    "outbox_items_scrubbed",
    "checks",
    "failed_places",
];

/// One row of the DPO's export: ids, dates, counts; no personal data.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReportRow {
    pub subject: String,
    pub tenant: String,
    /// The state in German (`aktiv`, `fällig`, `gelöscht`, `geprüft`, …).
    pub state: &'static str,
    pub final_state: String,
    pub final_at: String,
    pub due: String,
    /// Why the purge waits (a missing case-system handover), if it does.
    pub blocked: String,
    pub executed_at: String,
    pub verified_at: String,
    pub keys_destroyed: String,
    pub blobs_deleted: String,
    pub outbox_items_scrubbed: String,
    /// What the verifier checked, `; `-separated.
    pub checks: String,
    /// Where the verifier found traces, `; `-separated; empty when none.
    pub failed_places: String,
}

/// The DPO's report of one tenant (all when `None`), brought up to the log's end first.
#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    /// Subjects per state (in German), in the states' order, over all rows.
    pub counts: Vec<(&'static str, u64)>,
}

pub async fn report(
    system: &System,
    tenant: Option<&str>,
    now: OffsetDateTime,
) -> anyhow::Result<Report> {
    catch_up(system, &retention_projections()).await?;
    let subjects = report::subjects(system.store.as_ref(), tenant).await?;
    let mut counts: std::collections::BTreeMap<RetentionState, u64> = Default::default();
    for per_tenant in report::counts(&subjects, now) {
        for (state, n) in per_tenant.counts {
            *counts.entry(state).or_default() += n;
        }
    }
    Ok(Report {
        rows: subjects.iter().map(|r| report_row(r, now)).collect(),
        counts: counts.into_iter().map(|(s, n)| (s.german(), n)).collect(),
    })
}

fn report_row(r: &report::SubjectRetention, now: OffsetDateTime) -> ReportRow {
    let count = |f: fn(&PurgeExecuted) -> u32| r.purge.as_ref().map(|p| f(p).to_string());
    ReportRow {
        subject: r.subject.map(|s| s.to_string()).unwrap_or_default(),
        tenant: r.tenant.clone(),
        state: r.state(now).german(),
        final_state: r
            .final_state
            .and_then(|f| serde_json::to_value(f).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        final_at: date(r.final_at),
        due: date(r.due),
        blocked: r.blocked.clone().unwrap_or_default(),
        executed_at: date(r.executed_at),
        verified_at: date(r.verified_at),
        keys_destroyed: count(|p| p.keys_destroyed).unwrap_or_default(),
        blobs_deleted: count(|p| p.blobs_deleted).unwrap_or_default(),
        outbox_items_scrubbed: count(|p| p.outbox_items_scrubbed).unwrap_or_default(),
        checks: r.checks.join("; "),
        failed_places: r.failed_places.join("; "),
    }
}

fn date(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default()
}

/// `videoamt retention report --format csv|json`.
pub async fn export(system: &System, format: crate::ops::Format) -> anyhow::Result<ExitCode> {
    let rows = report(system, None, OffsetDateTime::now_utc()).await?.rows;
    match format {
        crate::ops::Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        crate::ops::Format::Csv | crate::ops::Format::Table => print!("{}", csv(&rows)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 4180: every field quoted, quotes doubled, so reasons with commas stay one field.
pub fn csv(rows: &[ReportRow]) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        out.push_str(&quoted.join(","));
        out.push_str("\r\n");
    };
    line(COLUMNS.iter().map(|c| (*c).to_owned()).collect());
    for row in rows {
        let map = serde_json::to_value(row)?;
        line(
            COLUMNS
                .iter()
                .map(|k| match &map[*k] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    Ok(out)
}
