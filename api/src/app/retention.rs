//! The retention report: each data subject's way from active to verified deletion, as the
//! DPO's page, the JSON API and the CLI export show it. Ids, dates and counts; no personal
//! data.

use std::sync::Arc;

use time::OffsetDateTime;
use videoamt_core::domain::events::PurgeExecuted;
use videoamt_core::readmodel::ReadModelError;
use videoamt_projections::retention::{self as report, RetentionReport, RetentionState};
use videoamt_projections::runner::{Runner, RunnerError};
use videoamt_projections::{Projection, timers::DueTimers};

use crate::app::System;

/// The projections retention reads, caught up before it acts.
pub(crate) fn retention_projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(DueTimers), Arc::new(RetentionReport)]
}

/// Brings `projections` up to the log's end. When another runner (a running server) keeps
/// them, it moved the checkpoints itself; that is fine.
pub(crate) async fn catch_up(
    system: &System,
    projections: &[Arc<dyn Projection>],
) -> anyhow::Result<()> {
    let runner = Runner::new(system.store.clone(), system.store.clone());
    match runner.catch_up(projections).await {
        Ok(_) | Err(RunnerError::ReadModel(ReadModelError::CheckpointMoved { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

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

/// Brings the retention read models up to the log's end first.
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
