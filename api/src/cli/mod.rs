//! The `videoamt` command line.

pub(crate) mod backup;
pub(crate) mod exposure;
pub(crate) mod ops;
pub(crate) mod retention;
pub(crate) mod users;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::store::{AdminStore, DEFAULT_STORE, StoreLocation};
use videoamt_core::event::{
    Actor, EventMetadata, EventType, NewEvent, Payload, StreamId, TenantId,
};
use videoamt_core::store::{AppendBatch, ExpectedVersion};

use crate::bench::Backend;
use crate::http as server;

#[derive(Debug, Parser)]
#[command(
    name = "videoamt",
    version,
    about = "Videoberatung für Kommunen: Server und Betrieb"
)]
struct Cli {
    /// Where the event log lives: `sqlite:PATH` or `postgres://…`.
    #[arg(long, global = true, env = "VIDEOAMT_STORE", default_value = DEFAULT_STORE)]
    store: String,
    /// Folder for the key-encryption key, blobs, outbox and logs; beside the embedded store's
    /// file by default, else `./videoamt-data`.
    #[arg(long, global = true, env = "VIDEOAMT_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    settings: crate::app::Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server.
    Serve {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, env = "VIDEOAMT_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Do not fill an empty embedded store with demo visits.
        #[arg(long)]
        no_demo: bool,
        /// List the mails and SMS written instead of sent at `/dev/outbox`. They hold the
        /// appointments' links, so only a server that nobody else reaches may list them: a
        /// loopback listener whose public URL, if set, is plain HTTP on loopback; elsewhere
        /// `serve` refuses to start. On by default in the embedded mode without a mail server
        /// when the server is local in that sense, off otherwise (ADR 0026).
        #[arg(long, env = "VIDEOAMT_DEV_OUTBOX")]
        dev_outbox: bool,
        /// What this process does: `web` the pages, API and rooms, `worker` the background
        /// work (mails, timers, purges, read models), `all` both. Several processes may serve
        /// one PostgreSQL log in any mix (ADR 0023).
        #[arg(long, env = "VIDEOAMT_ROLE", value_enum, default_value = "all")]
        role: crate::app::Role,
        /// This server as the other servers on the same log reach it (`http://host:port`,
        /// on the internal network): a room's sockets are steered to the server that runs its
        /// call, whichever server the browser reached (ADR 0028). By default the bound
        /// address, loopback when bound to every interface: enough for one machine only.
        #[arg(long, env = "VIDEOAMT_NODE_URL")]
        node_url: Option<String>,
    },
    /// Inspect and check the event log.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Read models: status, rebuild.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Audit reads (each one is recorded as `AuditRecordViewed`).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Retention: purge due subjects (crypto-shredding) and verify their deletion.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Back the store up, in two parts kept apart: the log, and the key store on its own
    /// schedule (ADR 0027, docs/operations/backup.md).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a log backup and a key backup into an empty store. Exit code 2, with nothing
    /// written, when the target holds events or keys, a file is not a complete backup of its
    /// kind, or the key backup is older than the log backup.
    Restore {
        /// The log backup (`videoamt backup log`).
        #[arg(long)]
        log: std::path::PathBuf,
        /// The newest key backup (`videoamt backup keys`), taken after the last purge round.
        #[arg(long)]
        keys: std::path::PathBuf,
    },
    /// Pilot statistics per tenant, department and ISO week.
    Stats {
        /// Only this tenant, e.g. `ettlingen`.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::cli::ops::Format,
    },
    /// Staff accounts: clerks, auditors, data-protection officers, admins.
    #[command(subcommand)]
    User(UserCommand),
    /// The municipalities' configuration files.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Measure the system against raw baselines on the same machine.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// The database without the key store, staff sessions, sign-ons under way and leases:
    /// SQLite's online backup API, beside the running server, or `pg_dump` in the custom
    /// format. Written to `FILE.partial`, renamed to FILE when complete.
    Log {
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Every wrapped data key as JSON lines, still wrapped under the KEK (which is in no
    /// backup). Replaces FILE in one rename; writers of one file take turns.
    Keys {
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TenantsCommand {
    /// Check a folder of tenant files, one `*.toml` per municipality, as `--tenants` would load
    /// it: each file's municipality, or every problem as `file:line: message`; exit code 1 if
    /// there is one.
    Check {
        /// The folder, e.g. `/etc/videoamt/tenants`.
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input (one line, at least 12
    /// characters) and only its argon2id hash is stored.
    Add {
        /// The municipality, e.g. `ettlingen`.
        #[arg(long)]
        tenant: String,
        /// `clerk`, `auditor`, `dpo` or `admin`.
        #[arg(long)]
        role: String,
        /// A clerk's department; repeat for several. Only for clerks.
        #[arg(long = "department")]
        departments: Vec<String>,
        /// The login name, e.g. `a.becker`.
        #[arg(long)]
        login: String,
    },
    /// The municipality's accounts: login, role, departments, active or deactivated, locked.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Deactivate an account: it cannot log in, its open sessions end at their next request.
    /// Refused for the municipality's last active admin.
    Disable {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        login: String,
    },
    /// Reactivate a deactivated account.
    Enable {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        login: String,
    },
    /// Give an account a role and departments (a clerk at least one, other roles none).
    /// Refused when it would take the last active admin away.
    SetRoles {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        login: String,
        /// `clerk`, `auditor`, `dpo` or `admin`.
        #[arg(long)]
        role: String,
        /// A clerk's department; repeat for several.
        #[arg(long = "department")]
        departments: Vec<String>,
    },
    /// Reset the password: the old one stops working and a one-time link (72 hours, used
    /// once) to set a new one is printed. With `--unlock`, lift the throttles after failed
    /// logins instead.
    Reset {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        login: String,
        /// Only lift the throttles of the addresses that failed to log in (and a lock of an
        /// older log); the password stays.
        #[arg(long)]
        unlock: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectionsCommand {
    /// Each projection's checkpoint and lag.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Drop and rebuild one projection, or all, from the whole log.
    Rebuild {
        /// The projection to rebuild (see `projections status`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Apply the log to all projections until caught up (or forever with `--follow`),
    /// printing each projection's checkpoint; for operators and the crash test.
    #[command(hide = true)]
    Run {
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Subjects per tenant: active, scheduled, due, overdue, blocked, executed, verified.
    Status {
        /// Only this tenant, e.g. `stuttgart`.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Purge every subject whose retention has run out (with a progress bar).
    Run {
        /// Only list what would be purged.
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the deletion of one purged subject, or of all not yet verified.
    Verify {
        /// The subject id (UUID).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        subject: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// The DPO's export: per subject the dates, counts and checks; no personal data.
    Report {
        #[arg(long, value_enum, default_value = "csv")]
        format: crate::cli::ops::Format,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print an appointment's timeline and its state, as of a global position if given.
    Replay {
        /// The appointment id (UUID).
        appointment: String,
        /// Global position to show the state as of; the log's end by default.
        #[arg(long)]
        at: Option<u64>,
        /// Who reads, recorded in the `AuditRecordViewed` event.
        #[arg(long, env = "VIDEOAMT_AUDITOR", default_value = "cli")]
        auditor: String,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Counts, last position and size.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Check positions are gap-free and ordered, streams contiguous from 0 and the append-only
    /// guards in place. Exits non-zero if anything is wrong.
    Verify,
    /// Append `ProbeAppended` events to `probe-RUN` one at a time, printing each acknowledged
    /// position; for smoke tests and the crash-durability test.
    #[command(hide = true)]
    Probe {
        #[arg(long, default_value = "smoke")]
        run: String,
        #[arg(long, default_value_t = 10)]
        count: u64,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Appends, reads and catch-up of the event store against a raw driver baseline.
    Store {
        #[arg(long, value_enum)]
        backend: Backend,
        /// Size of the log for the read cases.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Duration of each append case, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Folder for the JSON results.
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// All projections over a generated log: rebuild rate, live lag, audit replay latency.
    Projections {
        #[arg(long, value_enum)]
        backend: Backend,
        /// Size of the generated log.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events appended per second in the live phase.
        #[arg(long, default_value_t = 1_000)]
        rate: u64,
        /// Duration of the live phase, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Audit replays to time.
        #[arg(long, default_value_t = 1_000)]
        replays: u32,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// Purge and verify many due subjects: subjects/s for each, memory along the way.
    Retention {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long, default_value_t = 100_000)]
        subjects: usize,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// Concurrent bookers through the command bus, racing for a week of slots.
    Booking {
        #[arg(long, value_enum)]
        backend: Backend,
        /// Concurrent bookers.
        #[arg(long, default_value_t = 64)]
        bookers: u32,
        /// Weeks of slots to fill, starting Monday 30 November 2026.
        #[arg(long, default_value_t = 4)]
        weeks: u32,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// Two-party calls of Rust peers through the media relay: the largest number under 1 %
    /// loss, added latency, packets per server CPU-second, memory over many set-ups and
    /// tear-downs, and refusals past capacity.
    Media {
        /// The ramp's last step.
        #[arg(long, default_value_t = 150)]
        max_calls: usize,
        #[arg(long, default_value_t = 10)]
        step: usize,
        /// Measured seconds per ramp step and for the overload phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Call set-ups and tear-downs in the churn phase.
        #[arg(long, default_value_t = 1_000)]
        churn: usize,
        /// Configured capacity for the overload phase (default: what the ramp found).
        #[arg(long)]
        capacity: Option<usize>,
        /// Video bit rate of each party, bits per second.
        #[arg(long, default_value_t = 1_500_000)]
        video_bps: u64,
        /// Measure another relay program that speaks the same control protocol
        /// (`videoamt_core::media::control`; started with `--bind 127.0.0.1:0 --max-calls N`)
        /// instead of this binary's str0m relay.
        #[arg(long)]
        relay_program: Option<std::path::PathBuf>,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// The relay of `bench media` as a child process: a str0m relay driven by JSON lines on
    /// stdin/stdout until stdin closes (see `bench/media_relay.rs`).
    #[command(hide = true)]
    MediaRelay {
        /// The relay's UDP address (a concrete one; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
        #[arg(long, default_value_t = 150)]
        max_calls: usize,
    },
    /// The baseline relay of `bench media`: plain UDP forwarding between the two addresses
    /// of a call, until stdin closes (see `bench/udp_relay.rs`).
    #[command(hide = true)]
    UdpRelay {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: SocketAddr,
    },
    /// The baseline server of `bench api`: the mix's routes, each one store call on `--store`
    /// and nothing else, until SIGTERM (see `bench/api_baseline.rs`).
    #[command(hide = true)]
    ApiBaseline {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Every benchmark in sequence (the API from 200 to 2,000 req/s, projections, retention on
    /// SQLite and, with a PostgreSQL `--store`, on PostgreSQL; media), then one summary
    /// against the targets: `summary.md` and `api-latency.svg` in the output folder.
    All {
        /// Offered loads of the API sweep, requests per second.
        #[arg(long, value_delimiter = ',', default_value = "200,600,1200,1600,2000")]
        rates: Vec<u32>,
        /// Seconds per API load step.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Log size of the projections benchmark.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Subjects of the retention benchmark.
        #[arg(long, default_value_t = 100_000)]
        subjects: usize,
        /// The media ramp's last step.
        #[arg(long, default_value_t = 150)]
        max_calls: usize,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
    /// The HTTP API against a `serve` child process: slot queries, bookings, token lookups and
    /// clerk schedule reads from concurrent keep-alive clients; latencies and server RSS.
    Api {
        #[arg(long, value_enum)]
        backend: Backend,
        /// Concurrent clients, one connection each.
        #[arg(long, default_value_t = 64)]
        clients: u32,
        /// Duration of the run, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Requests per second of all clients together, paced; as fast as they go when unset.
        /// Latencies then count from each request's planned start (no coordinated omission).
        #[arg(long)]
        rate: Option<u32>,
        #[arg(long, default_value = "target/bench")]
        out: std::path::PathBuf,
    },
}

/// Events of demo visits for an empty embedded store: about a hundred complete visits of both
/// example municipalities.
const DEMO_EVENTS: u64 = 3_000;

/// Runs the command line and turns failures into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server also keeps its log in the data folder, where the deletion verifier looks.
    let log_file = match (&cli.command, StoreLocation::parse(&cli.store)) {
        (Command::Serve { .. }, Ok(location)) => Some(
            cli.data_dir
                .clone()
                .unwrap_or_else(|| crate::app::system::default_data_dir(&location))
                .join("logs")
                .join("videoamt.log"),
        ),
        _ => None,
    };
    init_logging(log_file.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("videoamt: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("videoamt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// JSON logs on stderr and, for the server, appended to `file`; filtered by `VIDEOAMT_LOG`
/// (default `info`). Log lines carry ids and counts, never personal data.
fn init_logging(file: Option<&std::path::Path>) {
    use tracing_subscriber::fmt::writer::MakeWriterExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIDEOAMT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let opened = file.and_then(|path| {
        std::fs::create_dir_all(path.parent()?).ok()?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let builder = tracing_subscriber::fmt().json().with_env_filter(filter);
    let _ = match opened {
        Some(f) => builder
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let location = StoreLocation::parse(&cli.store)?;
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::app::system::default_data_dir(&location));
    let system = || crate::app::System::open(&location, &data_dir, cli.settings.clone());
    let tenants = || -> anyhow::Result<std::sync::Arc<Vec<videoamt_core::tenant::Tenant>>> {
        Ok(std::sync::Arc::new(crate::app::tenants::load(
            cli.settings.tenants.as_deref(),
        )?))
    };
    match cli.command {
        Command::Serve {
            listen,
            no_demo,
            dev_outbox,
            role,
            node_url,
        } => {
            let options = ServeOptions {
                listen,
                demo: !no_demo,
                dev_outbox,
                role,
                node_url,
            };
            serve(system().await?, &location, options).await
        }
        Command::Backup(BackupCommand::Log { to }) => backup::log(&location, &to).await,
        Command::Backup(BackupCommand::Keys { to }) => backup::keys(&location, &to).await,
        // Before anything opens the target: opening would migrate it.
        Command::Restore { log, keys } => backup::restore(&location, &log, &keys).await,
        Command::Store(StoreCommand::Stats { json }) => stats(&location, json).await,
        Command::Store(StoreCommand::Verify) => verify(&location).await,
        Command::Store(StoreCommand::Probe { run, count }) => probe(&location, &run, count).await,
        Command::Projections(ProjectionsCommand::Status { json }) => {
            crate::cli::ops::projections_status(&open(&location).await?, tenants()?, json).await
        }
        Command::Projections(ProjectionsCommand::Rebuild { name, all }) => {
            crate::cli::ops::projections_rebuild(
                &open(&location).await?,
                tenants()?,
                name.as_deref(),
                all,
            )
            .await
        }
        Command::Projections(ProjectionsCommand::Run { follow }) => {
            crate::cli::ops::projections_run(&open(&location).await?, tenants()?, follow).await
        }
        Command::Audit(AuditCommand::Replay {
            appointment,
            at,
            auditor,
        }) => crate::cli::ops::audit_replay(&system().await?, &appointment, at, &auditor).await,
        Command::Retention(RetentionCommand::Status { tenant }) => {
            retention::status(&system().await?, tenant.as_deref()).await
        }
        Command::Retention(RetentionCommand::Run { dry_run }) => {
            retention::run(&system().await?, dry_run).await
        }
        Command::Retention(RetentionCommand::Verify { subject, .. }) => {
            retention::verify_cli(&system().await?, subject.as_deref()).await
        }
        Command::Retention(RetentionCommand::Report { format }) => {
            retention::export(&system().await?, format).await
        }
        Command::User(UserCommand::Add {
            tenant,
            role,
            departments,
            login,
        }) => users::add(&system().await?, &tenant, &role, &departments, &login).await,
        Command::User(UserCommand::List { tenant, json }) => {
            users::list(&system().await?, &tenant, json).await
        }
        Command::User(UserCommand::Disable { tenant, login }) => {
            users::change(&system().await?, &tenant, &login, users::Change::Disable).await
        }
        Command::User(UserCommand::Enable { tenant, login }) => {
            users::change(&system().await?, &tenant, &login, users::Change::Enable).await
        }
        Command::User(UserCommand::SetRoles {
            tenant,
            login,
            role,
            departments,
        }) => {
            let change = users::Change::SetRoles { role, departments };
            users::change(&system().await?, &tenant, &login, change).await
        }
        Command::User(UserCommand::Reset {
            tenant,
            login,
            unlock,
        }) => {
            let change = users::Change::Reset { unlock };
            users::change(&system().await?, &tenant, &login, change).await
        }
        Command::Stats { tenant, format } => {
            crate::cli::ops::stats(
                &open(&location).await?,
                tenants()?,
                tenant.as_deref(),
                format,
            )
            .await
        }
        Command::Tenants(TenantsCommand::Check { dir }) => Ok(crate::cli::ops::tenants_check(&dir)),
        Command::Bench(BenchCommand::Store {
            backend,
            events,
            seconds,
            out,
        }) => {
            let options = crate::bench::StoreBenchOptions {
                backend,
                server: location,
                events,
                seconds,
                out,
            };
            crate::bench::store(options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Projections {
            backend,
            events,
            rate,
            seconds,
            replays,
            out,
        }) => {
            let options = crate::bench::projections::ProjectionsBenchOptions {
                backend,
                server: location,
                events,
                rate,
                seconds,
                replays,
                out,
            };
            crate::bench::projections::projections(options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Retention {
            backend,
            subjects,
            out,
        }) => {
            crate::bench::retention::retention(crate::bench::retention::RetentionBenchOptions {
                backend,
                server: location,
                subjects,
                out,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Booking {
            backend,
            bookers,
            weeks,
            out,
        }) => {
            let options = crate::bench::BookingBenchOptions {
                backend,
                server: location,
                bookers,
                weeks,
                out,
            };
            crate::bench::booking(options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Media {
            max_calls,
            step,
            seconds,
            churn,
            capacity,
            video_bps,
            relay_program,
            out,
        }) => {
            let options = crate::bench::media::MediaBenchOptions {
                max_calls,
                step,
                seconds,
                churn,
                capacity,
                video_bps,
                relay_program,
                out,
            };
            crate::bench::media::media(options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::MediaRelay { bind, max_calls }) => {
            crate::bench::media_relay::serve(bind, max_calls).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::ApiBaseline { listen }) => {
            crate::bench::api_baseline::serve(&location, listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::UdpRelay { bind }) => {
            tokio::task::spawn_blocking(move || crate::bench::udp_relay::serve(bind)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::All {
            rates,
            seconds,
            events,
            subjects,
            max_calls,
            out,
        }) => {
            crate::bench::all::all(crate::bench::all::AllOptions {
                server: location,
                rates,
                seconds,
                events,
                subjects,
                max_calls,
                out,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Api {
            backend,
            clients,
            seconds,
            rate,
            out,
        }) => {
            let options = crate::bench::api::ApiBenchOptions {
                backend,
                server: location,
                clients,
                seconds,
                rate,
                out,
            };
            crate::bench::api::api(options).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(location: &StoreLocation) -> anyhow::Result<std::sync::Arc<dyn AdminStore>> {
    location
        .open()
        .await
        .with_context(|| format!("cannot open the store {location:?}"))
}

/// The password of every demo account on a local server (README); only an empty embedded
/// store gets them, and a server others can reach gets a random one instead (ADR 0026).
pub const DEMO_PASSWORD: &str = "videoamt-demo";

/// Random bytes of a reachable server's demo password: 144 bits, 24 characters base64url.
const DEMO_SECRET_BYTES: usize = 18;

/// The demo accounts' password for a server of this `exposure`: the README's on a local one, a
/// random one for a server others can reach, where the published one would open every
/// account to anyone who read the README.
fn demo_password(exposure: &exposure::Exposure) -> anyhow::Result<String> {
    use base64::Engine as _;
    if *exposure == exposure::Exposure::Local {
        return Ok(DEMO_PASSWORD.to_owned());
    }
    let mut secret = [0u8; DEMO_SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret))
}

/// Demo accounts for each example municipality: its clerks from the tenant file, and one
/// auditor (`pruefung`), DPO (`datenschutz`) and admin (`verwaltung`), all with `password`.
async fn demo_accounts(system: &crate::app::System, password: &str) -> anyhow::Result<()> {
    use videoamt_core::domain::account::StaffRole;
    let now = OffsetDateTime::now_utc();
    for tenant in system.tenants.iter() {
        let mut accounts: Vec<(String, StaffRole, Vec<String>)> = tenant
            .clerks
            .values()
            .map(|c| {
                let departments = c.departments.iter().map(|d| d.to_string()).collect();
                (c.id.to_string(), StaffRole::Clerk, departments)
            })
            .collect();
        accounts.push(("pruefung".into(), StaffRole::Auditor, vec![]));
        accounts.push(("datenschutz".into(), StaffRole::Dpo, vec![]));
        accounts.push(("verwaltung".into(), StaffRole::Admin, vec![]));
        for (login, role, departments) in accounts {
            crate::http::staff::create_account(
                system,
                tenant,
                &login,
                role,
                &departments,
                password,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// What `serve` was asked for on its command line.
struct ServeOptions {
    listen: SocketAddr,
    demo: bool,
    /// `--dev-outbox`: asked for explicitly.
    dev_outbox: bool,
    role: crate::app::Role,
    /// `--node-url`: where the other servers reach this one.
    node_url: Option<String>,
}

async fn serve(
    system: crate::app::System,
    location: &StoreLocation,
    options: ServeOptions,
) -> anyhow::Result<ExitCode> {
    let ServeOptions {
        listen,
        demo,
        dev_outbox,
        role,
        node_url,
    } = options;
    // A node URL the other servers could not use stops the start.
    let node_url = node_url
        .map(|url| crate::http::room::steer::node_url(&url))
        .transpose()?;
    // Whether anybody but this machine reaches the server decides the demo password and the
    // dev outbox (ADR 0026); the listen address is known before anything is bound.
    let exposure = exposure::Exposure::of(listen.ip(), system.settings.public_url.as_deref());
    let smtp = system.settings.smtp().is_some();
    let embedded_default = matches!(location, StoreLocation::Sqlite(_)) && !smtp;
    let dev_outbox = match (&exposure, dev_outbox) {
        (exposure::Exposure::Reachable(why), true) => anyhow::bail!(
            "--dev-outbox (VIDEOAMT_DEV_OUTBOX) lists every mail with the appointments' links \
             and is only for a server nobody else reaches, but {why}; listen on 127.0.0.1 \
             without an https or foreign public URL, or leave --dev-outbox out"
        ),
        (exposure::Exposure::Local, asked) => asked || embedded_default,
        (exposure::Exposure::Reachable(why), false) => {
            if embedded_default {
                tracing::info!(
                    reason = %why,
                    "dev outbox off: the mails stay in the outbox folder, unlisted"
                );
            }
            false
        }
    };
    // A seal key or chain that cannot be used stops the start, not the first signature.
    system.check_seals()?;
    let store = system.store.clone();
    // The embedded store starts with something to look at; a PostgreSQL log never gets demo
    // data, and neither does one that already has events. The demo visits and accounts are
    // those of the shipped examples: with a tenants folder of one's own there are none (and no
    // account with the README's demo password), accounts come from `user add`.
    let examples = system.settings.tenants.is_none();
    // A generated demo password, shown once on standard output after the listening line.
    let mut shown_password = None;
    if demo
        && examples
        && matches!(location, StoreLocation::Sqlite(_))
        && store.last_position().await? == 0
    {
        let spec = videoamt_scenarios::generate::BulkSpec {
            target_events: DEMO_EVENTS,
            big_record_events: 0,
        };
        let log = videoamt_scenarios::generate::bulk_log(store.clone(), &spec, |_| {}).await?;
        tracing::info!(
            events = log.events,
            appointments = log.appointments.len(),
            "empty embedded store filled with demo visits"
        );
        let password = demo_password(&exposure)?;
        demo_accounts(&system, &password).await?;
        let generated = password != DEMO_PASSWORD;
        // The password itself never enters the log.
        tracing::info!(
            password = if generated {
                "generated, shown once on standard output"
            } else {
                "the README's"
            },
            "demo accounts created"
        );
        if generated {
            shown_password = Some(password);
        }
        // The demo visits are history: nobody is waiting for their mails.
        crate::workers::outbox::skip_to_head(&system).await?;
    }
    // A directory sign-on without its secret, or with a CA file that is not one, would only
    // fail at the first sign-in.
    let problems = crate::app::tenants::sign_on_problems(&system.tenants);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    // A configuration that removed what outstanding appointments were booked under, or
    // changed their department's slot grid, is refused before anything is served (ADR 0020).
    let conflicts = crate::app::tenants::outstanding_conflicts(&system).await?;
    if !conflicts.is_empty() {
        anyhow::bail!(
            "the municipalities' configuration no longer fits {} appointment(s) still to be \
             held:\n  {}\nKeep the department, service or slot length until they are held or \
             cancelled (`online_booking = false` on a department stops new bookings), then \
             change it (ADR 0020)",
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }
    let listener = server::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = ?location, "videoamt serving");
    // Metrics only on their own, internal listener (ADR 0025).
    let metrics = match system.settings.metrics_listen {
        Some(at) => Some(
            server::bind(at)
                .await
                .with_context(|| format!("cannot listen for metrics on {at}"))?,
        ),
        None => None,
    };
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    println!("videoamt listening on http://{addr}");
    // And the metrics listener's from the second, when there is one.
    if let Some(metrics) = &metrics {
        println!(
            "videoamt metrics on http://{}/metrics",
            metrics.local_addr()?
        );
    }
    if let Some(password) = shown_password {
        println!(
            "Passwort aller Demo-Konten, nur jetzt angezeigt (dieser Server ist nicht nur auf \
             diesem Rechner erreichbar, das Passwort aus der README gilt hier nicht): {password}"
        );
    }
    std::io::stdout().flush()?;
    // Links in mails and pages: the public URL behind a proxy, else the bound address.
    let public_url =
        (system.settings.public_url.clone()).unwrap_or_else(|| format!("http://{addr}"));
    let relay = media_relay(&system.settings)?;
    let turn = system.settings.turn()?;
    // A bad SMS gateway or case system URL stops the start, not the first signature or
    // hand-over; so does one that names a metadata service (SSRF).
    system.sms()?;
    system.case_system()?;
    // The built-in payment sandbox is reached at the bound address itself, plain HTTP on
    // loopback when bound to every interface, whatever the public URL behind a proxy is.
    let own = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    // The room's sockets meet on one server, the one that runs the call (ADR 0028).
    let node = node_url.unwrap_or_else(|| format!("http://{own}"));
    let mut state = server::AppState::new(system)
        .with_public_url(&public_url)
        .with_media(relay)
        .with_turn(turn)
        .with_node(&node)
        .with_payments(&format!("http://{own}"))?;
    // The dev outbox page exists only on a local server, asked for or in the embedded default
    // mode (no mail server configured).
    if dev_outbox {
        state = state.with_dev_outbox();
    }
    server::serve(listener, metrics, state, role).await?;
    Ok(ExitCode::SUCCESS)
}

/// The rooms' media relay as the settings say.
fn media_relay(
    settings: &crate::app::Settings,
) -> anyhow::Result<std::sync::Arc<dyn videoamt_core::media::MediaRelay>> {
    let mut config =
        videoamt_adapters::media::MediaConfig::new(settings.media_bind, settings.media_max_calls);
    config.announce_ip = settings.media_announce_ip;
    // The relay logs its own bound address.
    let relay = videoamt_adapters::media::Str0mRelay::start(config)
        .with_context(|| format!("cannot start the media relay on {}", settings.media_bind))?;
    Ok(std::sync::Arc::new(relay))
}

async fn stats(location: &StoreLocation, json: bool) -> anyhow::Result<ExitCode> {
    let s = open(location).await?.stats().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!("backend         {}", s.backend);
        println!("events          {}", s.events);
        println!("streams         {}", s.streams);
        println!("last position   {}", s.last_position);
        println!(
            "size            {:.1} MiB ({} bytes)",
            mib(s.size_bytes),
            s.size_bytes
        );
        println!("schema version  {}", s.schema_version);
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> f64 {
    // Display only; precision beyond a tenth of a MiB does not matter.
    bytes as f64 / (1024.0 * 1024.0)
}

async fn verify(location: &StoreLocation) -> anyhow::Result<ExitCode> {
    let report = open(location).await?.verify().await?;
    if report.is_ok() {
        println!(
            "store verify: OK, {} events checked: positions gap-free and ordered, streams \
             contiguous from 0, append-only guards present",
            report.events_checked
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "store verify: FAILED, {} problem(s):",
            report.problems.len()
        );
        for problem in &report.problems {
            eprintln!("  - {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

async fn probe(location: &StoreLocation, run: &str, count: u64) -> anyhow::Result<ExitCode> {
    let store = open(location).await?;
    let stream = StreamId::of("probe", run)?;
    let event_type = EventType::parse("ProbeAppended")?;
    let tenant = TenantId::parse("videoamt")?;
    let correlation = Uuid::now_v7();
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        let meta = EventMetadata::new(
            tenant.clone(),
            correlation,
            correlation,
            Actor::system("probe"),
            OffsetDateTime::now_utc(),
        );
        let payload = Payload::from_value(&serde_json::json!({ "n": n }))?;
        let event = NewEvent::new(Uuid::now_v7(), event_type.clone(), 1, meta, payload)?;
        let batch = AppendBatch::single(stream.clone(), ExpectedVersion::Any, vec![event])?;
        let appended = store.append(batch).await?;
        // One line per acknowledged append, flushed, so a killed run leaves exact evidence.
        writeln!(out, "{} {n}", appended.last_position())?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
