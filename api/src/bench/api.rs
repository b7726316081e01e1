//! `videoamt bench api`: the HTTP API under load from citizens and clerks.
//!
//! The server is this binary's `serve`, started as a child process on a scratch store (a
//! temporary SQLite file or a scratch PostgreSQL database, as for the other benchmarks) with a
//! clerk account added by `user add`. Concurrent clients, each on one keep-alive HTTP/1.1
//! connection, run a mix of slot queries, bookings, token lookups and clerk schedule reads.
//! The server's resident memory is sampled along the way. Then the baseline
//! (`bench/api_baseline.rs`, one store call per request) takes its place on the same store
//! and gets the same load; the report gives each route's p99 beside the baseline's.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use time::{Date, Weekday};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;
use videoamt_adapters::store::StoreLocation;
use videoamt_adapters::store::postgres::ScratchDatabase;

use crate::bench::Backend;
use crate::bench::{Cleanup, percentile_ms, proc_status_mb, round, write_json};

pub(super) const TENANT: &str = "ettlingen";
const SERVICE: &str = "personalausweis";
pub(super) const DEPARTMENT: &str = "buergerbuero";
const CLERK: &str = "bench.clerk";
pub(super) const SESSION_COOKIE: &str = "videoamt_sitzung";
/// Booking, token and login requests per minute and address: high enough not to throttle.
const RATE_LIMITS: &str = "1000000,1000000,1000000";
/// Online bookings a day per mailbox and address: every bench citizen books from one of both.
const BOOKING_CAPS: &str = "1000000,1000000";
/// How often the mails in the server's outbox folder are read for the citizens' links.
const OUTBOX_EVERY: Duration = Duration::from_millis(200);
/// Weekdays with places left that bookings and slot queries spread over (four weeks).
const OPEN_DAYS: usize = 20;
/// More than a run can fill; a guard against looking for free days forever.
const MAX_DAYS: usize = 2_000;
/// Failed requests beyond this share fail the run.
const MAX_UNEXPECTED: f64 = 0.01;

#[derive(Debug)]
pub(crate) struct ApiBenchOptions {
    pub backend: Backend,
    /// For PostgreSQL: the server to create the scratch database on.
    pub server: StoreLocation,
    /// Concurrent clients, each with its own connection.
    pub clients: u32,
    pub seconds: u64,
    /// Requests per second of all clients together, paced; unpaced when `None`.
    pub rate: Option<u32>,
    pub out: PathBuf,
}

/// What each client does in turn, with its share of the mix in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Slots,
    Book,
    Token,
    Schedule,
}

const ROUTES: [(Route, u64); 4] = [
    (Route::Slots, 40),
    (Route::Book, 10),
    (Route::Token, 30),
    (Route::Schedule, 20),
];

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Slots => "slots",
            Route::Book => "book",
            Route::Token => "token",
            Route::Schedule => "schedule",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// 2xx, and for bookings 409 (a rival took the slot between query and booking).
    fn expected(self, status: u16) -> bool {
        (200..300).contains(&status) || (self == Route::Book && status == 409)
    }
}

#[derive(Debug, Serialize)]
struct RouteReport {
    route: &'static str,
    requests: u64,
    requests_per_s: f64,
    /// Answers other than 2xx by status; `error` for a broken connection.
    non_2xx: BTreeMap<String, u64>,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct ApiReport {
    backend: &'static str,
    clients: u32,
    /// The paced rate asked for (requests per second), or none: as fast as the clients go.
    target_rate: Option<u32>,
    seconds: f64,
    requests: u64,
    requests_per_s: f64,
    routes: Vec<RouteReport>,
    /// Appointments booked (201).
    bookings: u64,
    /// Bookings refused because the slot was taken meanwhile (409).
    slot_taken: u64,
    /// Bookings not tried: no free start on the day queried.
    no_free_start: u64,
    /// The clients' logins before the timed phase (not part of the mix).
    login: RouteReport,
    /// Requests with an unexpected answer (5xx, 4xx other than a booking's 409, broken
    /// connections); more than 1 % fail the run.
    unexpected: u64,
    /// Highest `VmRSS` of the server sampled every 200 ms, and its `VmHWM` at the end.
    server_rss_peak_mb: f64,
    server_hwm_mb: f64,
    /// The same load on the baseline server, and each route's p99 over the baseline's.
    baseline: BaselineReport,
}

#[derive(Debug, Serialize)]
struct BaselineReport {
    requests_per_s: f64,
    routes: Vec<RouteReport>,
    /// The route's p99 divided by the baseline's p99 for it: 1 is the floor of one query.
    ratio_p99: BTreeMap<&'static str, f64>,
    unexpected: u64,
}

pub(crate) async fn api(options: ApiBenchOptions) -> anyhow::Result<()> {
    // Only created here: the server opens the store and runs the migrations itself.
    let (cleanup, name) = match options.backend {
        Backend::Sqlite => (Cleanup::Dir(tempfile::tempdir()?), "sqlite"),
        Backend::Postgres => {
            let StoreLocation::Postgres(server) = &options.server else {
                anyhow::bail!(
                    "the PostgreSQL benchmark needs a server: --store postgres://… or VIDEOAMT_STORE"
                );
            };
            let db = ScratchDatabase::create(server, "api")
                .await
                .context("cannot create the scratch database")?;
            (Cleanup::Database(db), "postgres")
        }
    };
    let result = measure(&options, &cleanup, name).await;
    let cleaned = cleanup.run().await;
    let report = result?;
    cleaned?;
    print_table(&report);
    write_json(&options.out, format!("api-{name}.json"), &report)?;
    check(&report)
}

async fn measure(
    options: &ApiBenchOptions,
    cleanup: &Cleanup,
    name: &'static str,
) -> anyhow::Result<ApiReport> {
    let data = tempfile::tempdir()?;
    let store_url = match cleanup {
        Cleanup::Dir(dir) => format!("sqlite:{}", dir.path().join("events.db").display()),
        Cleanup::Database(db) => db.url(),
    };
    let exe = std::env::current_exe().context("cannot find this program's binary")?;
    let password = format!("Bench-{}-Pw1", Uuid::now_v7().simple());
    add_clerk(&exe, &store_url, data.path(), &password).await?;
    let server = Server::start(&exe, &store_url, data.path(), Serving::Product).await?;
    eprintln!(
        "bench api {name}: server at http://{} (pid {}), {} clients for {} s",
        server.addr, server.pid, options.clients, options.seconds
    );
    let sampling = sample_rss(server.pid);
    let driven = drive(&server, options, &password, &data.path().join("outbox")).await;
    sampling
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let server_rss_peak_mb = sampling.task.await.unwrap_or(0.0);
    let server_hwm_mb = proc_status_mb(server.pid, "VmHWM");
    let tail = server.stderr_tail();
    let stopped = server.stop().await;
    let driven = driven.map_err(|e| with_tail(e, &tail))?;
    stopped?;
    let (routes, requests, unexpected) = tally(&driven);
    let baseline = Server::start(&exe, &store_url, data.path(), Serving::Baseline).await?;
    eprintln!(
        "bench api {name}: baseline at http://{} (pid {}), the same load",
        baseline.addr, baseline.pid
    );
    let base = drive(&baseline, options, &password, &data.path().join("outbox")).await;
    let tail = baseline.stderr_tail();
    let stopped = baseline.stop().await;
    let base = base.map_err(|e| with_tail(e, &tail))?;
    stopped?;
    let (base_routes, base_requests, base_unexpected) = tally(&base);
    let ratio_p99 = routes
        .iter()
        .zip(&base_routes)
        .map(|(r, b)| (r.route, round(r.p99_ms / b.p99_ms.max(0.001))))
        .collect();
    let elapsed = driven.elapsed.as_secs_f64().max(f64::EPSILON);
    let book = &driven.stats.routes[Route::Book.index()];
    Ok(ApiReport {
        backend: name,
        clients: options.clients,
        target_rate: options.rate,
        seconds: round(elapsed),
        requests,
        requests_per_s: round(requests as f64 / elapsed),
        routes,
        bookings: book.statuses.get(&201).copied().unwrap_or(0),
        slot_taken: book.statuses.get(&409).copied().unwrap_or(0),
        no_free_start: driven.stats.no_free_start,
        login: driven
            .login
            .report("login", driven.login_elapsed.as_secs_f64()),
        unexpected,
        server_rss_peak_mb,
        server_hwm_mb,
        baseline: BaselineReport {
            requests_per_s: round(
                base_requests as f64 / base.elapsed.as_secs_f64().max(f64::EPSILON),
            ),
            routes: base_routes,
            ratio_p99,
            unexpected: base_unexpected,
        },
    })
}

/// Each route's report, all requests and the unexpected answers among them.
fn tally(driven: &Driven) -> (Vec<RouteReport>, u64, u64) {
    let elapsed = driven.elapsed.as_secs_f64().max(f64::EPSILON);
    let mut routes = Vec::new();
    let mut requests = 0;
    let mut unexpected = 0;
    for (route, _) in ROUTES {
        let stats = &driven.stats.routes[route.index()];
        requests += stats.latencies.len() as u64;
        unexpected += stats
            .statuses
            .iter()
            .filter(|(status, _)| !route.expected(**status))
            .map(|(_, n)| n)
            .sum::<u64>();
        routes.push(stats.report(route.name(), elapsed));
    }
    (routes, requests, unexpected)
}

fn with_tail(e: anyhow::Error, tail: &str) -> anyhow::Error {
    if tail.is_empty() {
        e
    } else {
        e.context(format!("the server's last log lines:\n{tail}"))
    }
}

/// `user add` of this binary: a clerk of Ettlingen's Bürgerbüro, the password on stdin.
async fn add_clerk(exe: &Path, store: &str, data: &Path, password: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(exe)
        .arg("--store")
        .arg(store)
        .arg("--data-dir")
        .arg(data)
        .args(["user", "add", "--tenant", TENANT, "--role", "clerk"])
        .args(["--department", DEPARTMENT, "--login", CLERK])
        .env("VIDEOAMT_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run `videoamt user add`")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{password}\n").as_bytes()).await?;
        stdin.shutdown().await?;
    }
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "`videoamt user add` for the bench clerk failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// What the child process serves: the product, or the baseline of one store call a request.
#[derive(Debug, Clone, Copy)]
enum Serving {
    Product,
    Baseline,
}

/// The server as a child process; killed when dropped, stopped with SIGTERM by `stop`.
#[derive(Debug)]
struct Server {
    child: tokio::process::Child,
    pid: u32,
    addr: SocketAddr,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    async fn start(exe: &Path, store: &str, data: &Path, serving: Serving) -> anyhow::Result<Self> {
        let command: &[&str] = match serving {
            Serving::Product => &["serve", "--listen", "127.0.0.1:0", "--no-demo"],
            Serving::Baseline => &["bench", "api-baseline", "--listen", "127.0.0.1:0"],
        };
        let mut child = tokio::process::Command::new(exe)
            .arg("--store")
            .arg(store)
            .arg("--data-dir")
            .arg(data)
            .args(command)
            .env("VIDEOAMT_RATE_LIMITS", RATE_LIMITS)
            .env("VIDEOAMT_BOOKING_CAPS", BOOKING_CAPS)
            .env("VIDEOAMT_LOG", "warn")
            .env_remove("VIDEOAMT_LISTEN")
            .env_remove("VIDEOAMT_SMTP_URL")
            .env_remove("VIDEOAMT_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `videoamt {}`", command.join(" ")))?;
        let pid = child.id().context("the server exited at once")?;
        // Keep the last lines of its log for error messages; draining also keeps it writing.
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if tail.len() == 20 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let stdout = child.stdout.take().context("no stdout of the server")?;
        let mut server = Self {
            child,
            pid,
            // Replaced by the address the server reports.
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("videoamt listening on http://") {
                    return anyhow::Ok(Some(addr.trim().parse::<SocketAddr>()?));
                }
            }
            Ok(None)
        })
        .await;
        match listening {
            Ok(Ok(Some(addr))) => server.addr = addr,
            Ok(Ok(None)) => {
                let status = server.child.wait().await?;
                anyhow::bail!(
                    "the server exited ({status}) before listening:\n{}",
                    server.stderr_tail()
                );
            }
            Ok(Err(e)) => return Err(with_tail(e, &server.stderr_tail())),
            Err(_) => anyhow::bail!(
                "the server did not report its address within 120 s:\n{}",
                server.stderr_tail()
            ),
        }
        // Whatever else it prints goes nowhere, so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(server)
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM (graceful shutdown), SIGKILL if it has not exited after ten seconds.
    async fn stop(mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            anyhow::bail!(
                "the server exited during the benchmark:\n{}",
                self.stderr_tail()
            );
        }
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("bench api: the server ignored SIGTERM for 10 s, killing it");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

struct Sampling {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
}

/// The highest `VmRSS` of `pid`, read every 200 ms until stopped.
fn sample_rss(pid: u32) -> Sampling {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            peak = peak.max(proc_status_mb(pid, "VmRSS"));
        }
        peak
    });
    Sampling { stop, task }
}

/// One keep-alive HTTP/1.1 connection to the server.
struct Conn {
    addr: SocketAddr,
    host: String,
    origin: String,
    sender: SendRequest<Full<Bytes>>,
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let sender = Self::connect(addr).await?;
        Ok(Self {
            addr,
            host: addr.to_string(),
            origin: format!("http://{addr}"),
            sender,
        })
    }

    async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the server at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake failed")?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// A new connection after a broken one.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        self.sender = Self::connect(self.addr).await?;
        Ok(())
    }

    /// Sends one request; writes (`POST`) carry the server's own origin and a JSON body.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        json: Option<&serde_json::Value>,
        cookie: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::ACCEPT, "application/json");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let body = match json {
            Some(value) => {
                request = request
                    .header(header::ORIGIN, &self.origin)
                    .header(header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(value)?))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body)?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// Latencies and answers of one route.
#[derive(Debug, Default)]
struct RouteStats {
    latencies: Vec<Duration>,
    /// By status; 0 for a broken connection.
    statuses: BTreeMap<u16, u64>,
}

impl RouteStats {
    fn record(&mut self, status: u16, took: Duration) {
        self.latencies.push(took);
        *self.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: RouteStats) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }

    fn report(&self, route: &'static str, seconds: f64) -> RouteReport {
        let requests = self.latencies.len() as u64;
        RouteReport {
            route,
            requests,
            requests_per_s: round(requests as f64 / seconds.max(f64::EPSILON)),
            non_2xx: self
                .statuses
                .iter()
                .filter(|(status, _)| !(200..300).contains(*status))
                .map(|(status, n)| {
                    let key = if *status == 0 {
                        "error".to_owned()
                    } else {
                        status.to_string()
                    };
                    (key, *n)
                })
                .collect(),
            p50_ms: round(percentile_ms(&self.latencies, 0.50)),
            p99_ms: round(percentile_ms(&self.latencies, 0.99)),
        }
    }
}

#[derive(Debug, Default)]
struct ClientStats {
    routes: [RouteStats; 4],
    no_free_start: u64,
    /// The planned start of the round's first request, when paced.
    planned: Option<Instant>,
}

struct Driven {
    stats: ClientStats,
    elapsed: Duration,
    login: RouteStats,
    login_elapsed: Duration,
}

/// Weekdays from tomorrow on; the first [`OPEN_DAYS`] of them with places left are where
/// citizens look and book. A day whose slot query comes back empty is full.
#[derive(Debug)]
struct Days {
    list: Vec<Date>,
    full: Vec<bool>,
}

impl Days {
    fn new() -> Self {
        Self {
            list: Vec::new(),
            full: Vec::new(),
        }
    }

    fn open(&mut self) -> Vec<usize> {
        let mut open: Vec<usize> = (0..self.list.len()).filter(|&i| !self.full[i]).collect();
        while open.len() < OPEN_DAYS && self.list.len() < MAX_DAYS {
            let mut next = match self.list.last() {
                Some(d) => d.next_day(),
                None => time::OffsetDateTime::now_utc().date().next_day(),
            }
            .unwrap_or(Date::MAX);
            while matches!(next.weekday(), Weekday::Saturday | Weekday::Sunday) {
                next = next.next_day().unwrap_or(Date::MAX);
            }
            open.push(self.list.len());
            self.list.push(next);
            self.full.push(false);
        }
        open.truncate(OPEN_DAYS);
        open
    }

    /// A random day with places left.
    fn pick_open(&mut self, rng: &mut Rng) -> Date {
        let open = self.open();
        self.list[open[rng.below(open.len())]]
    }

    /// A random day of all those seen, full or not.
    fn pick_any(&mut self, rng: &mut Rng) -> Date {
        self.open();
        self.list[rng.below(self.list.len())]
    }

    fn mark_full(&mut self, day: Date) {
        if let Some(i) = self.list.iter().position(|d| *d == day) {
            self.full[i] = true;
        }
    }
}

/// State the clients share: the days and the tokens booked so far.
struct Shared {
    days: Mutex<Days>,
    tokens: Mutex<Vec<String>>,
}

/// xorshift: the clients need spread, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or(0)
    }
}

async fn drive(
    server: &Server,
    options: &ApiBenchOptions,
    password: &str,
    outbox: &Path,
) -> anyhow::Result<Driven> {
    // Connections and logins first: a clerk signs in once per client, not in the mix. One
    // after the other: concurrent logins of one account race on its stream (409).
    let started = Instant::now();
    let mut login_stats = RouteStats::default();
    let mut clients = Vec::new();
    for _ in 0..options.clients.max(1) {
        let (conn, cookie, took, status) = login(server.addr, password).await?;
        login_stats.record(status, took);
        clients.push((conn, cookie));
    }
    let login_elapsed = started.elapsed();
    let shared = Arc::new(Shared {
        days: Mutex::new(Days::new()),
        tokens: Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let count = clients.len() as u32;
    // Each client's interval, and its first start spread over one interval.
    let pace = options
        .rate
        .filter(|r| *r > 0)
        .map(|r| Duration::from_secs_f64(f64::from(count) / f64::from(r)));
    // A booking answers with no link: the citizens' links are read from their mails, as the
    // citizens get them, while the clients run.
    let reading = tokio::spawn(read_links(outbox.to_path_buf(), shared.clone(), deadline));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, (conn, cookie))| {
            let shared = shared.clone();
            let seed = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let pacing = pace.map(|p| (p, started + p.mul_f64(n as f64 / f64::from(count))));
            tokio::spawn(client(conn, cookie, shared, seed, deadline, pacing))
        })
        .collect();
    let mut stats = ClientStats::default();
    for task in tasks {
        let s = task.await??;
        for (total, part) in stats.routes.iter_mut().zip(s.routes) {
            total.merge(part);
        }
        stats.no_free_start += s.no_free_start;
    }
    reading.abort();
    Ok(Driven {
        stats,
        elapsed: started.elapsed(),
        login: login_stats,
        login_elapsed,
    })
}

/// Opens a connection and signs the bench clerk in (any 2xx with the session cookie): the
/// connection, the `Cookie` header value, how long the login took and its status.
async fn login(addr: SocketAddr, password: &str) -> anyhow::Result<(Conn, String, Duration, u16)> {
    let mut conn = Conn::open(addr).await?;
    let body = serde_json::json!({ "tenant": TENANT, "login": CLERK, "password": password });
    let t = Instant::now();
    let answer = conn
        .send(Method::POST, "/api/v1/login", Some(&body), None)
        .await
        .context("login failed")?;
    let took = t.elapsed();
    anyhow::ensure!(
        answer.status.is_success(),
        "login of the bench clerk answered {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let cookie = answer
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.trim().starts_with(&format!("{SESSION_COOKIE}=")))
        .map(|pair| pair.trim().to_owned())
        .with_context(|| format!("the login set no `{SESSION_COOKIE}` cookie"))?;
    Ok((conn, cookie, took, answer.status.as_u16()))
}

#[derive(serde::Deserialize)]
struct SlotsAnswer {
    days: Vec<DayAnswer>,
}

#[derive(serde::Deserialize)]
struct DayAnswer {
    starts: Vec<String>,
}

/// Until `deadline`, adds the capability token of every new mail in the outbox folder
/// `outbox` (one folder per data subject) to the shared tokens.
async fn read_links(outbox: PathBuf, shared: Arc<Shared>, deadline: Instant) {
    let mut read = std::collections::HashSet::new();
    while Instant::now() < deadline {
        let found = tokio::task::spawn_blocking({
            let (outbox, mut read) = (outbox.clone(), std::mem::take(&mut read));
            move || {
                let tokens = new_links(&outbox, &mut read);
                (read, tokens)
            }
        })
        .await;
        let Ok((seen, tokens)) = found else { return };
        read = seen;
        shared
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tokens);
        tokio::time::sleep(OUTBOX_EVERY).await;
    }
}

/// The tokens of the `/termin/…` links in the mails under `outbox` not in `read` yet.
fn new_links(outbox: &Path, read: &mut std::collections::HashSet<PathBuf>) -> Vec<String> {
    let mut tokens = Vec::new();
    let folders = std::fs::read_dir(outbox).into_iter().flatten().flatten();
    for mail in folders.flat_map(|f| std::fs::read_dir(f.path()).into_iter().flatten().flatten()) {
        let path = mail.path();
        if read.contains(&path) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        read.insert(path);
        if let Some(rest) = text.split("/termin/").nth(1) {
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            if !token.is_empty() {
                tokens.push(token);
            }
        }
    }
    tokens
}

/// One client until the deadline: picks a route by the mix and sends it.
async fn client(
    mut conn: Conn,
    cookie: String,
    shared: Arc<Shared>,
    seed: u64,
    deadline: Instant,
    mut pacing: Option<(Duration, Instant)>,
) -> anyhow::Result<ClientStats> {
    let mut rng = Rng(seed);
    let mut stats = ClientStats::default();
    // The free starts of this client's last slot query.
    let mut free: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        // Paced: wait for this request's planned start and count its latency from there, so
        // a slow answer is not hidden by the requests it delayed.
        let planned = match pacing.as_mut() {
            Some((interval, next)) => {
                let planned = *next;
                *next += *interval;
                tokio::time::sleep_until(planned.into()).await;
                if planned >= deadline {
                    break;
                }
                planned
            }
            None => Instant::now(),
        };
        stats.planned = Some(planned);
        let mut roll = rng.below(100) as u64;
        let mut route = Route::Schedule;
        for (r, share) in ROUTES {
            if roll < share {
                route = r;
                break;
            }
            roll -= share;
        }
        let token = if route == Route::Token {
            let tokens = shared.tokens.lock().unwrap_or_else(|p| p.into_inner());
            let token = (!tokens.is_empty()).then(|| tokens[rng.below(tokens.len())].clone());
            if token.is_none() {
                // Nothing booked yet to look up: book first.
                route = Route::Book;
            }
            token
        } else {
            None
        };
        match route {
            Route::Slots => {
                free = slots(&mut conn, &shared, &mut rng, &mut stats).await?;
            }
            Route::Book => {
                if free.is_empty() {
                    free = slots(&mut conn, &shared, &mut rng, &mut stats).await?;
                }
                if free.is_empty() {
                    stats.no_free_start += 1;
                    continue;
                }
                let start = free.swap_remove(rng.below(free.len()));
                let body = serde_json::json!({
                    "tenant": TENANT,
                    "services": [SERVICE],
                    "start": start,
                    "contact": { "name": "Bench Bürger", "email": "bench@example.org" },
                    "privacy_accepted": true,
                });
                // The answer carries no link: that comes by mail ([`read_links`]).
                request(
                    &mut conn,
                    &mut stats,
                    Route::Book,
                    Method::POST,
                    "/api/v1/appointments",
                    Some(&body),
                    None,
                )
                .await?;
            }
            Route::Token => {
                let path = format!(
                    "/api/v1/appointments/by-token/{}",
                    token.unwrap_or_default()
                );
                request(
                    &mut conn,
                    &mut stats,
                    Route::Token,
                    Method::GET,
                    &path,
                    None,
                    None,
                )
                .await?;
            }
            Route::Schedule => {
                let day = shared
                    .days
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pick_any(&mut rng);
                let path = format!("/api/v1/clerk/schedule?from={day}&days=1");
                request(
                    &mut conn,
                    &mut stats,
                    Route::Schedule,
                    Method::GET,
                    &path,
                    None,
                    Some(&cookie),
                )
                .await?;
            }
        }
    }
    Ok(stats)
}

/// A slot query for a random open day: its free starts (none on an error answer).
async fn slots(
    conn: &mut Conn,
    shared: &Shared,
    rng: &mut Rng,
    stats: &mut ClientStats,
) -> anyhow::Result<Vec<String>> {
    let day = shared
        .days
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pick_open(rng);
    let path = format!("/api/v1/slots?tenant={TENANT}&services={SERVICE}&from={day}&days=1");
    let answer = request(conn, stats, Route::Slots, Method::GET, &path, None, None).await?;
    let Some(answer) = answer.filter(|a| a.status == StatusCode::OK) else {
        return Ok(Vec::new());
    };
    let slots: SlotsAnswer =
        serde_json::from_slice(&answer.body).context("unexpected answer to a slot query")?;
    let starts: Vec<String> = slots.days.into_iter().flat_map(|d| d.starts).collect();
    if starts.is_empty() {
        shared
            .days
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .mark_full(day);
    }
    Ok(starts)
}

/// Sends and records one request; a broken connection is recorded as status 0, reopened, and
/// answers `None`.
async fn request(
    conn: &mut Conn,
    stats: &mut ClientStats,
    route: Route,
    method: Method,
    path: &str,
    json: Option<&serde_json::Value>,
    cookie: Option<&str>,
) -> anyhow::Result<Option<Answer>> {
    // The first request of a round counts from its planned start, a second one from its own.
    let t = stats.planned.take().unwrap_or_else(Instant::now);
    let sent = conn.send(method, path, json, cookie).await;
    let took = t.elapsed();
    let stats = &mut stats.routes[route.index()];
    match sent {
        Ok(answer) => {
            stats.record(answer.status.as_u16(), took);
            Ok(Some(answer))
        }
        Err(_) => {
            stats.record(0, took);
            conn.reconnect().await?;
            Ok(None)
        }
    }
}

fn print_table(r: &ApiReport) {
    println!(
        "API benchmark, backend {}: {} clients{}, {:.1} s, {} requests, {:.0} requests/s",
        r.backend,
        r.clients,
        r.target_rate
            .map_or_else(String::new, |rate| format!(" paced at {rate} requests/s")),
        r.seconds,
        r.requests,
        r.requests_per_s
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}  non-2xx",
        "route", "requests", "req/s", "p50 ms", "p99 ms"
    );
    for route in r.routes.iter().chain([&r.login]) {
        let non_2xx = if route.non_2xx.is_empty() {
            "-".to_owned()
        } else {
            route
                .non_2xx
                .iter()
                .map(|(status, n)| format!("{status}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{:<10} {:>9} {:>9.0} {:>9.2} {:>9.2}  {}",
            route.route, route.requests, route.requests_per_s, route.p50_ms, route.p99_ms, non_2xx
        );
    }
    println!(
        "bookings {}, slot taken (409) {}, no free start {}; login is setup, not in the mix",
        r.bookings, r.slot_taken, r.no_free_start
    );
    println!(
        "server RSS: peak {:.1} MiB (sampled every 200 ms), VmHWM {:.1} MiB",
        r.server_rss_peak_mb, r.server_hwm_mb
    );
    let b = &r.baseline;
    println!(
        "baseline (one store call per request, same load): {:.0} requests/s",
        b.requests_per_s
    );
    for route in &b.routes {
        println!(
            "{:<10} {:>9} {:>9.0} {:>9.2} {:>9.2}  p99 ratio {:.2}",
            route.route,
            route.requests,
            route.requests_per_s,
            route.p50_ms,
            route.p99_ms,
            b.ratio_p99.get(route.route).copied().unwrap_or(f64::NAN)
        );
    }
}

/// Fails the run when more than 1 % of the requests got an unexpected answer.
fn check(r: &ApiReport) -> anyhow::Result<()> {
    anyhow::ensure!(r.requests > 0, "no request was answered");
    let base: u64 = r.baseline.routes.iter().map(|route| route.requests).sum();
    anyhow::ensure!(
        base > 0 && r.baseline.unexpected as f64 <= MAX_UNEXPECTED * base as f64,
        "the baseline answered {} of {base} requests unexpectedly",
        r.baseline.unexpected
    );
    if r.unexpected == 0 {
        return Ok(());
    }
    let which: Vec<String> = r
        .routes
        .iter()
        .flat_map(|route| {
            route
                .non_2xx
                .iter()
                .filter(|(status, _)| !(route.route == "book" && status.as_str() == "409"))
                .map(move |(status, n)| format!("{} {status}: {n}", route.route))
        })
        .collect();
    let share = r.unexpected as f64 / r.requests as f64;
    let message = format!(
        "{} of {} requests ({:.2} %) got an unexpected answer: {}",
        r.unexpected,
        r.requests,
        share * 100.0,
        which.join(", ")
    );
    anyhow::ensure!(share <= MAX_UNEXPECTED, "{message}");
    eprintln!("bench api: {message}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_weekdays_and_full_ones_give_way_to_later_ones() {
        let mut days = Days::new();
        let open = days.open();
        assert_eq!(open.len(), OPEN_DAYS);
        assert!(
            days.list
                .iter()
                .all(|d| !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday))
        );
        let first = days.list[0];
        let last = days.list[OPEN_DAYS - 1];
        days.mark_full(first);
        let open = days.open();
        assert_eq!(open.len(), OPEN_DAYS);
        assert!(!open.iter().any(|&i| days.list[i] == first));
        assert!(days.list[*open.last().unwrap_or(&0)] > last);
    }

    #[test]
    fn the_mix_adds_up_and_only_a_booking_may_be_refused_as_taken() {
        assert_eq!(ROUTES.iter().map(|(_, share)| share).sum::<u64>(), 100);
        assert!(Route::Book.expected(409));
        assert!(!Route::Slots.expected(409));
        assert!(!Route::Token.expected(404));
        assert!(!Route::Schedule.expected(500));
        assert!(Route::Schedule.expected(200));
    }
}
