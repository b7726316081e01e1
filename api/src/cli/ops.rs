//! The operator commands over the read models: projection status and rebuild, audit replay,
//! statistics. Output for people is German where it is the product's language (summaries,
//! states), tables and machine formats keep stable English keys.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use videoamt_adapters::store::AdminStore;
use videoamt_core::domain::AppointmentId;
use videoamt_core::event::{Actor, ActorRole};
use videoamt_core::tenant::Tenant;
use videoamt_projections::runner::Runner;
use videoamt_projections::statistics::{self, WeekRow};
use videoamt_projections::{Projection, all, audit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

fn runner(store: &Arc<dyn AdminStore>) -> Runner {
    Runner::new(store.clone(), store.clone())
}

pub(crate) async fn projections_status(
    store: &Arc<dyn AdminStore>,
    tenants: Arc<Vec<Tenant>>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let projections = all(tenants);
    let lags = runner(store).lag(&projections).await?;
    if json {
        let rows: Vec<serde_json::Value> = lags
            .iter()
            .map(|l| {
                serde_json::json!({
                    "projection": l.projection,
                    "checkpoint": l.checkpoint,
                    "events_behind": l.events_behind,
                    "seconds_behind": l.seconds_behind,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<22} {:>12} {:>14} {:>14}",
            "projection", "checkpoint", "events behind", "seconds behind"
        );
        for l in &lags {
            println!(
                "{:<22} {:>12} {:>14} {:>14.1}",
                l.projection, l.checkpoint, l.events_behind, l.seconds_behind
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn projections_rebuild(
    store: &Arc<dyn AdminStore>,
    tenants: Arc<Vec<Tenant>>,
    name: Option<&str>,
    everything: bool,
) -> anyhow::Result<ExitCode> {
    let chosen: Vec<Arc<dyn Projection>> = match name {
        Some(name) if !everything => {
            let Some(p) = videoamt_projections::named(tenants.clone(), name) else {
                let known = all(tenants);
                let names: Vec<&str> = known.iter().map(|p| p.name()).collect();
                bail!("unknown projection {name:?}; known: {}", names.join(", "));
            };
            vec![p]
        }
        _ => all(tenants),
    };
    let head = store.last_position().await?;
    let bar = indicatif::ProgressBar::new(head);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}",
        )?
        .progress_chars("=> "),
    );
    let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
    bar.set_message(format!("rebuilding {}", names.join(", ")));
    let started = Instant::now();
    let read = runner(store)
        .rebuild(&chosen, |position| bar.set_position(position.min(head)))
        .await?;
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} projection(s) over {read} events in {seconds:.1} s ({:.0} events/s)",
        chosen.len(),
        read as f64 / seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn projections_run(
    store: &Arc<dyn AdminStore>,
    tenants: Arc<Vec<Tenant>>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let projections = all(tenants);
    let runner = runner(store);
    if follow {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn({
            let runner = runner.clone();
            let projections = projections.clone();
            async move { runner.run(projections, stopped).await }
        });
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        task.await??;
    } else {
        runner.catch_up(&projections).await?;
    }
    for l in runner.lag(&projections).await? {
        println!("{} {}", l.projection, l.checkpoint);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit_replay(
    system: &crate::app::System,
    appointment: &str,
    at: Option<u64>,
    auditor: &str,
) -> anyhow::Result<ExitCode> {
    let id = uuid::Uuid::parse_str(appointment)
        .map(AppointmentId)
        .with_context(|| format!("{appointment:?} is not an appointment id (a UUID)"))?;
    let viewer = Actor::new(ActorRole::Auditor, auditor)?;
    let desk = crate::app::audit::AuditDesk::new(system.bus(), system.store.clone());
    let replay = desk.view(id, at, &viewer).await?;
    println!(
        "Prüfakte Termin {} – Stand Position {} (Ende des Protokolls: {})",
        replay.appointment, replay.as_of, replay.head
    );
    println!();
    for e in &replay.timeline {
        println!(
            "{:>10}  {}  {:<20}  {:<26}  {}",
            e.position, e.recorded_at, e.actor, e.event_type, e.summary
        );
    }
    println!();
    let tenant = match system.appointment(id).await {
        Ok(Some((_, tenant))) => system.tenants.iter().find(|t| t.id == tenant),
        _ => None,
    };
    for line in audit::describe(&replay.record, tenant) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn stats(
    store: &Arc<dyn AdminStore>,
    tenants: Arc<Vec<Tenant>>,
    tenant: Option<&str>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    if let Some(t) = tenant
        && !tenants.iter().any(|known| known.id.as_str() == t)
    {
        let names: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        bail!("unknown tenant {t:?}; known: {}", names.join(", "));
    }
    let projection: Vec<Arc<dyn Projection>> =
        vec![Arc::new(statistics::PilotStatistics::new(tenants))];
    // Statistics are read from the projection; bring it up to the log's end first.
    runner(store).catch_up(&projection).await?;
    let rows = statistics::rows(store.as_ref(), tenant).await?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => print!("{}", crate::app::export::statistics_csv(&rows)),
        Format::Table => print!("{}", table(&rows)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Column headers of the table, with their widths (negative: left-aligned).
const TABLE: [(&str, i8); 19] = [
    ("Mandant", -10),
    ("Fachbereich", -26),
    ("Woche", -8),
    ("Sitz.", 5),
    ("erl.", 5),
    ("abgeb.", 6),
    ("n.e.", 5),
    ("Dauer~", 7),
    ("Dauer90", 7),
    ("Vorl.~h", 8),
    ("Vorl.90h", 8),
    ("Ausw.", 6),
    ("Unt.", 6),
    ("Zahl.", 6),
    ("FB1", 4),
    ("FB2", 4),
    ("FB3", 4),
    ("FB4", 4),
    ("FB5", 4),
];

fn table_line<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    let line: Vec<String> = cells
        .zip(TABLE)
        .map(|(cell, (_, width))| {
            let w = usize::from(width.unsigned_abs());
            if width < 0 {
                format!("{cell:<w$}")
            } else {
                format!("{cell:>w$}")
            }
        })
        .collect();
    format!("{}\n", line.join(" "))
}

fn table(rows: &[WeekRow]) -> String {
    let mut out = table_line(TABLE.iter().map(|(h, _)| *h));
    for r in rows {
        let cells = crate::app::export::statistics_cells(r);
        out.push_str(&table_line(cells.iter().map(String::as_str)));
    }
    if rows.is_empty() {
        out.push_str("(noch keine abgeschlossenen Termine)\n");
    }
    out
}

/// `tenants check DIR`: each file's municipality on stdout, or every problem on stderr.
pub(crate) fn tenants_check(dir: &std::path::Path) -> ExitCode {
    match crate::app::tenants::load_dir(dir) {
        Ok(tenants) => {
            for (file, t) in &tenants {
                let booked_online = t.departments.values().filter(|d| d.online_booking).count();
                let sign_on = t.oidc.as_ref().map_or_else(String::new, |o| {
                    let ca = o.ca_file.as_deref().map_or_else(String::new, |path| {
                        match videoamt_adapters::oidc::ca_certificates(std::path::Path::new(path)) {
                            Ok(n) => {
                                format!(", trusting only the CA file {path} ({n} certificates)")
                            }
                            Err(_) => format!(", CA file {path} not usable"),
                        }
                    });
                    format!(
                        ", staff sign-on through {} ({} grants{ca})",
                        o.issuer,
                        o.grants.len()
                    )
                });
                println!(
                    "{}: {} ({}), {} departments ({} bookable online), {} services, {} \
                     form templates, retention {} months{sign_on}",
                    file.display(),
                    t.id.as_str(),
                    t.name,
                    t.departments.len(),
                    booked_online,
                    t.services.len(),
                    t.forms.len(),
                    t.retention_months
                );
            }
            // The CA file is read where the check runs: `serve` on the same machine refuses to
            // start without it. (The client secret's variable is `serve`'s environment's only.)
            let all: Vec<_> = tenants.into_iter().map(|(_, t)| t).collect();
            let problems = crate::app::tenants::ca_file_problems(&all);
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{problem}");
                }
                eprintln!("{} problems; serve would not start", problems.len());
                return ExitCode::FAILURE;
            }
            println!("{} municipalities, all valid", all.len());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems.0 {
                eprintln!("{problem}");
            }
            eprintln!("{} problems; nothing would be loaded", problems.0.len());
            ExitCode::FAILURE
        }
    }
}
