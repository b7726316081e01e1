//! `videoamt bench retention`: purge and verify many due subjects on a scratch store, and watch
//! memory while doing it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt as _;

use serde::Serialize;
use time::{Duration, OffsetDateTime};
use videoamt_adapters::keys::Kek;
use videoamt_adapters::store::StoreLocation;
use videoamt_core::blobs::BlobStore;
use videoamt_projections::Projection;
use videoamt_projections::runner::Runner;
use videoamt_projections::timers::DueTimers;

use crate::app::System;
use crate::bench::Backend;
use crate::bench::{round, rss_mb, scratch, write_json};
use crate::workers::retention::purge::PurgeJob;
use crate::workers::retention::verify::Verifier;

#[derive(Debug)]
pub(crate) struct RetentionBenchOptions {
    pub backend: Backend,
    pub server: StoreLocation,
    pub subjects: usize,
    pub out: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
struct Report {
    backend: &'static str,
    subjects: usize,
    generate_seconds: f64,
    purge_seconds: f64,
    purge_subjects_per_second: f64,
    purge_target_subjects_per_second: u64,
    keys_destroyed: u64,
    blobs_deleted: u64,
    verify_seconds: f64,
    verify_subjects_per_second: f64,
    verify_target_subjects_per_second: u64,
    verified: usize,
    verification_failed: usize,
    rss_before_purge_mb: f64,
    /// Sampled every 1,000 subjects during the purge.
    rss_max_during_purge_mb: f64,
    rss_after_purge_mb: f64,
    peak_rss_mb: f64,
    /// The baseline, measured in the same run: as many fresh keys deleted in a raw loop, one
    /// statement and commit per key, as a purge without batching would at least do.
    baseline_key_delete_loop_per_second: f64,
    purge_ratio_to_key_delete_loop: f64,
    /// The same number of keys deleted page by page (the purge's page), nothing else: the
    /// floor of the purge's own key deletes.
    paged_key_deletes_per_second: f64,
}

pub(crate) async fn retention(options: RetentionBenchOptions) -> anyhow::Result<()> {
    let scratch = scratch(options.backend, &options.server, "retention").await?;
    let data = tempfile::tempdir()?;
    let system = System::new(
        scratch.store.clone(),
        Kek::ephemeral()?,
        data.path(),
        videoamt_core::tenant::example_tenants()?,
    );
    let now = OffsetDateTime::now_utc();
    eprintln!(
        "bench retention {}: writing {} due subjects",
        scratch.name, options.subjects
    );
    let started = Instant::now();
    let blobs: Arc<dyn BlobStore> = system.blobs.clone();
    let events = system.store.clone() as Arc<dyn videoamt_core::store::EventStore>;
    let subjects = videoamt_scenarios::due::due_subjects(
        &events,
        &system.keys,
        &blobs,
        options.subjects,
        now - Duration::days(1),
        |n| {
            if n % 10_000 == 0 {
                eprintln!("  {n} written");
            }
        },
    )
    .await?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let timers: Vec<Arc<dyn Projection>> = vec![Arc::new(DueTimers)];
    Runner::new(system.store.clone(), system.store.clone())
        .catch_up(&timers)
        .await?;

    let rss_before_purge_mb = rss_mb("VmRSS");
    let max_rss = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let summary = PurgeJob::new(&system)
        .run_due(now, |_| {
            if done.fetch_add(1, Ordering::Relaxed).is_multiple_of(1_000) {
                // Kilobytes as an integer, for the atomic.
                let kb = (rss_mb("VmRSS") * 1024.0) as u64;
                max_rss.fetch_max(kb, Ordering::Relaxed);
            }
        })
        .await?;
    let purge_seconds = started.elapsed().as_secs_f64();
    let rss_after_purge_mb = rss_mb("VmRSS");
    eprintln!("  purged {} in {purge_seconds:.1} s", summary.purged);

    let started = Instant::now();
    let verifier = Verifier::new(&system);
    let (mut verified, mut failed) = (0, 0);
    for chunk in subjects.chunks(crate::workers::retention::VERIFY_BATCH) {
        for v in verifier.verify(chunk, now).await? {
            if v.passed() {
                verified += 1;
            } else {
                failed += 1;
            }
        }
    }
    let verify_seconds = started.elapsed().as_secs_f64();
    let n = options.subjects as f64;

    // The baselines: as many fresh keys deleted one by one, then as many in pages of the
    // purge's size.
    let fresh: Vec<videoamt_core::domain::SubjectId> = (0..2 * options.subjects)
        .map(|_| videoamt_core::domain::SubjectId(uuid::Uuid::now_v7()))
        .collect();
    futures::stream::iter(fresh.iter().copied())
        .map(|subject| {
            let keys = system.keys.clone();
            async move { keys.issue(subject).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let (one_by_one, paged) = fresh.split_at(options.subjects);
    let started = Instant::now();
    let mut deleted = 0;
    for &subject in one_by_one {
        deleted += usize::from(system.keys.destroy(subject).await?);
    }
    let loop_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for page in paged.chunks(system.settings.purge_page.max(1) as usize) {
        deleted += system.keys.destroy_all(page).await?.len();
    }
    let paged_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        deleted == fresh.len(),
        "the baselines deleted {deleted} keys"
    );
    let baseline_key_delete_loop_per_second = n / loop_seconds;
    let purge_subjects_per_second = summary.purged as f64 / purge_seconds;
    let report = Report {
        backend: scratch.name,
        subjects: options.subjects,
        generate_seconds: round(generate_seconds),
        purge_seconds: round(purge_seconds),
        purge_subjects_per_second: round(purge_subjects_per_second),
        purge_target_subjects_per_second: 2_000,
        keys_destroyed: summary.keys_destroyed,
        blobs_deleted: summary.blobs_deleted,
        verify_seconds: round(verify_seconds),
        verify_subjects_per_second: round(n / verify_seconds),
        verify_target_subjects_per_second: 2_000,
        verified,
        verification_failed: failed,
        rss_before_purge_mb: round(rss_before_purge_mb),
        rss_max_during_purge_mb: round(max_rss.load(Ordering::Relaxed) as f64 / 1024.0),
        rss_after_purge_mb: round(rss_after_purge_mb),
        peak_rss_mb: round(rss_mb("VmHWM")),
        baseline_key_delete_loop_per_second: round(baseline_key_delete_loop_per_second),
        purge_ratio_to_key_delete_loop: round(
            purge_subjects_per_second / baseline_key_delete_loop_per_second,
        ),
        paged_key_deletes_per_second: round(n / paged_seconds),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    write_json(
        &options.out,
        format!("retention-{}.json", scratch.name),
        &report,
    )?;
    scratch.cleanup.run().await
}
