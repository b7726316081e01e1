//! `videoamt retention …`: status, purge run, verification and the DPO's export.

use std::process::ExitCode;

use time::OffsetDateTime;

use videoamt_core::domain::SubjectId;
use videoamt_projections::retention::{self as projection, RetentionState};

use anyhow::Context as _;
use videoamt_projections::timers::{self, TimerKind};

use crate::app::System;
use crate::app::retention::{catch_up, report, retention_projections};
use crate::workers::retention::{VERIFY_BATCH, purge, verify};

/// `videoamt retention status`: counts per tenant and state.
pub(crate) async fn status(system: &System, tenant: Option<&str>) -> anyhow::Result<ExitCode> {
    if let Some(t) = tenant
        && !system.tenants.iter().any(|x| x.id.as_str() == t)
    {
        anyhow::bail!("unbekannter Mandant {t:?}");
    }
    catch_up(system, &retention_projections()).await?;
    let rows = projection::subjects(system.store.as_ref(), tenant).await?;
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
    for counts in projection::counts(&rows, now) {
        print!("{:<12}", counts.tenant);
        for s in states {
            print!(" {:>14}", counts.counts.get(&s).copied().unwrap_or(0));
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `videoamt retention run [--dry-run]`.
pub(crate) async fn run(system: &System, dry_run: bool) -> anyhow::Result<ExitCode> {
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
pub(crate) async fn verify_cli(system: &System, subject: Option<&str>) -> anyhow::Result<ExitCode> {
    // Read models must have folded `PurgeExecuted` (and scrubbed) before the scan.
    catch_up(system, &videoamt_projections::all(system.tenants.clone())).await?;
    let subjects = match subject {
        Some(s) => vec![
            uuid::Uuid::parse_str(s)
                .map(SubjectId)
                .with_context(|| format!("{s:?} ist keine Personen-ID (UUID)"))?,
        ],
        None => projection::subjects(system.store.as_ref(), None)
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

/// `videoamt retention report --format csv|json`.
pub(crate) async fn export(
    system: &System,
    format: super::ops::Format,
) -> anyhow::Result<ExitCode> {
    let rows = report(system, None, OffsetDateTime::now_utc()).await?.rows;
    match format {
        super::ops::Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        super::ops::Format::Csv | super::ops::Format::Table => {
            print!("{}", crate::app::export::retention_csv(&rows))
        }
    }
    Ok(ExitCode::SUCCESS)
}
