//! `videoamt bench all`: the benchmarks in sequence, each with the baseline of its own run, and
//! one summary of their figures against the targets of issue 20: `summary.md` and
//! `api-latency.svg` (p99 against offered load, 200 to 2,000 requests per second) in the output
//! folder, beside each benchmark's JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use videoamt_adapters::store::StoreLocation;

use crate::bench::Backend;

#[derive(Debug)]
pub(crate) struct AllOptions {
    /// For PostgreSQL: the server to create the scratch databases on; SQLite only without.
    pub server: StoreLocation,
    /// Offered loads of the API sweep, requests per second.
    pub rates: Vec<u32>,
    /// Seconds per API load step.
    pub seconds: u64,
    /// Log size of the projections benchmark.
    pub events: u64,
    /// Subjects of the retention benchmark.
    pub subjects: usize,
    /// Largest number of calls of the media ramp.
    pub max_calls: usize,
    pub out: PathBuf,
}

/// The API's targets (issue 20): p99 of a booking and of a read, at this load or more.
const API_TARGET_RATE: u32 = 1_200;
const BOOK_P99_MS: f64 = 50.0;
const READ_P99_MS: f64 = 10.0;
const READ_ROUTES: [&str; 3] = ["slots", "token", "schedule"];

pub(crate) async fn all(options: AllOptions) -> anyhow::Result<()> {
    let mut backends = vec![Backend::Sqlite];
    if matches!(options.server, StoreLocation::Postgres(_)) {
        backends.push(Backend::Postgres);
    } else {
        eprintln!("bench all: no PostgreSQL server given (--store postgres://…): SQLite only");
    }
    let mut failures = Vec::new();
    for &backend in &backends {
        let name = backend_name(backend);
        for &rate in &options.rates {
            eprintln!("bench all: api on {name} at {rate} req/s");
            let run = crate::bench::api::api(crate::bench::api::ApiBenchOptions {
                backend,
                server: options.server.clone(),
                clients: 64,
                seconds: options.seconds,
                rate: Some(rate),
                out: api_dir(&options.out, rate),
            })
            .await;
            if let Err(e) = run {
                failures.push(format!("api {name} {rate} req/s: {e:#}"));
            }
        }
        eprintln!("bench all: projections on {name}");
        let run = crate::bench::projections::projections(
            crate::bench::projections::ProjectionsBenchOptions {
                backend,
                server: options.server.clone(),
                events: options.events,
                rate: 1_000,
                seconds: 20,
                replays: 1_000,
                out: options.out.clone(),
            },
        )
        .await;
        if let Err(e) = run {
            failures.push(format!("projections {name}: {e:#}"));
        }
        eprintln!("bench all: retention on {name}");
        let run =
            crate::bench::retention::retention(crate::bench::retention::RetentionBenchOptions {
                backend,
                server: options.server.clone(),
                subjects: options.subjects,
                out: options.out.clone(),
            })
            .await;
        if let Err(e) = run {
            failures.push(format!("retention {name}: {e:#}"));
        }
    }
    eprintln!("bench all: media");
    let run = crate::bench::media::media(crate::bench::media::MediaBenchOptions {
        max_calls: options.max_calls,
        step: 10,
        seconds: 5,
        churn: 200,
        capacity: None,
        video_bps: 1_500_000,
        relay_program: None,
        out: options.out.clone(),
    })
    .await;
    if let Err(e) = run {
        failures.push(format!("media: {e:#}"));
    }

    let results = Results::read(&options.out, &backends, &options.rates);
    let summary = summary(&results, &failures);
    std::fs::write(options.out.join("summary.md"), &summary)?;
    std::fs::write(options.out.join("api-latency.svg"), plot(&results))?;
    println!("{summary}");
    println!(
        "written: {} and {}",
        options.out.join("summary.md").display(),
        options.out.join("api-latency.svg").display()
    );
    anyhow::ensure!(
        failures.is_empty(),
        "{} benchmark(s) failed",
        failures.len()
    );
    Ok(())
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn api_dir(out: &Path, rate: u32) -> PathBuf {
    out.join("api").join(rate.to_string())
}

/// What the benchmarks wrote, read back from their JSON.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// Per backend, per offered load: the API report.
    api: Vec<(&'static str, Vec<(u32, Value)>)>,
    projections: Vec<(&'static str, Value)>,
    retention: Vec<(&'static str, Value)>,
    media: Option<Value>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

impl Results {
    fn read(out: &Path, backends: &[Backend], rates: &[u32]) -> Self {
        let mut results = Self::default();
        for &backend in backends {
            let name = backend_name(backend);
            let runs = rates
                .iter()
                .filter_map(|&rate| {
                    let file = api_dir(out, rate).join(format!("api-{name}.json"));
                    Some((rate, read_json(&file)?))
                })
                .collect();
            results.api.push((name, runs));
            if let Some(v) = read_json(&out.join(format!("projections-{name}.json"))) {
                results.projections.push((name, v));
            }
            if let Some(v) = read_json(&out.join(format!("retention-{name}.json"))) {
                results.retention.push((name, v));
            }
        }
        results.media = read_json(&out.join("media.json"));
        results
    }
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_f64()
}

fn route_p99(report: &Value, route: &str) -> Option<f64> {
    report
        .get("routes")?
        .as_array()?
        .iter()
        .find(|r| r.get("route").and_then(Value::as_str) == Some(route))?
        .get("p99_ms")?
        .as_f64()
}

/// The slowest read route's p99.
fn reads_p99(report: &Value) -> Option<f64> {
    READ_ROUTES
        .iter()
        .filter_map(|r| route_p99(report, r))
        .reduce(f64::max)
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "–".to_owned(),
    }
}

pub(crate) fn summary(r: &Results, failures: &[String]) -> String {
    let mut s = String::from("# Benchmark summary\n\n");
    let _ = writeln!(
        s,
        "Release build, this machine ({} cores). Each figure beside its baseline of the same run.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    s.push_str("## API (64 keep-alive clients, paced; p99 in ms)\n\n");
    s.push_str(
        "| backend | offered req/s | served req/s | book p99 | slots p99 | token p99 | schedule p99 | server RSS peak MB | target (≥ 1,200 req/s: book < 50, reads < 10) |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (backend, runs) in &r.api {
        for (rate, v) in runs {
            let met = (*rate >= API_TARGET_RATE).then(|| {
                route_p99(v, "book").is_some_and(|p| p < BOOK_P99_MS)
                    && reads_p99(v).is_some_and(|p| p < READ_P99_MS)
            });
            let _ = writeln!(
                s,
                "| {backend} | {rate} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(num(v, &["requests_per_s"])),
                fmt(route_p99(v, "book")),
                fmt(route_p99(v, "slots")),
                fmt(route_p99(v, "token")),
                fmt(route_p99(v, "schedule")),
                fmt(num(v, &["server_rss_peak_mb"])),
                if met.is_some() {
                    verdict(met)
                } else {
                    "(below the target load)"
                },
            );
        }
    }
    s.push_str(
        "\nThe baseline of the same run: the same clients, rate and mix against a server that \
         makes one store call per request and nothing else (`bench/api_baseline.rs`). Its p99 \
         in ms, and the product's p99 over it:\n\n",
    );
    s.push_str("| backend | offered req/s | book | slots | token | schedule | ratio book | ratio slots | ratio token | ratio schedule |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for (backend, runs) in &r.api {
        for (rate, v) in runs {
            let base = v.get("baseline").unwrap_or(&Value::Null);
            let ratio = |route: &str| num(base, &["ratio_p99", route]);
            let _ = writeln!(
                s,
                "| {backend} | {rate} | {} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(route_p99(base, "book")),
                fmt(route_p99(base, "slots")),
                fmt(route_p99(base, "token")),
                fmt(route_p99(base, "schedule")),
                fmt(ratio("book")),
                fmt(ratio("slots")),
                fmt(ratio("token")),
                fmt(ratio("schedule")),
            );
        }
    }
    s.push_str("\nThe plot: `api-latency.svg`.\n\n## Projections\n\n");
    s.push_str("| backend | log events | rebuild events/s | `read_all` events/s (baseline) | ratio | target ≥ 0.5 and ≥ 100k/s | live lag p99 ms | audit replay p99 ms | target < 5 ms |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for (backend, v) in &r.projections {
        let rate = num(v, &["rebuild", "events_per_s"]);
        let ratio = num(v, &["rebuild", "ratio_to_read_all"]);
        let replay = num(v, &["audit_replay", "replay_p99_ms"]);
        let _ = writeln!(
            s,
            "| {backend} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(num(v, &["log_events"])),
            fmt(rate),
            fmt(num(v, &["rebuild", "read_all_events_per_s"])),
            fmt(ratio),
            verdict(rate.zip(ratio).map(|(r, q)| r >= 100_000.0 && q >= 0.5)),
            fmt(num(v, &["live", "lag_p99_ms"])),
            fmt(replay),
            verdict(replay.map(|p| p < 5.0)),
        );
    }
    s.push_str("\n## Retention\n\n");
    s.push_str("| backend | subjects | purge/s | raw key-delete loop/s (baseline) | ratio | verify/s | target ≥ 2,000/s both | RSS during purge MB (before/max/after) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for (backend, v) in &r.retention {
        let purge = num(v, &["purge_subjects_per_second"]);
        let verify = num(v, &["verify_subjects_per_second"]);
        let _ = writeln!(
            s,
            "| {backend} | {} | {} | {} | {} | {} | {} | {}/{}/{} |",
            fmt(num(v, &["subjects"])),
            fmt(purge),
            fmt(num(v, &["baseline_key_delete_loop_per_second"])),
            fmt(num(v, &["purge_ratio_to_key_delete_loop"])),
            fmt(verify),
            verdict(purge.zip(verify).map(|(p, q)| p >= 2_000.0 && q >= 2_000.0)),
            fmt(num(v, &["rss_before_purge_mb"])),
            fmt(num(v, &["rss_max_during_purge_mb"])),
            fmt(num(v, &["rss_after_purge_mb"])),
        );
    }
    s.push_str("\n## Media\n\n");
    match &r.media {
        Some(v) => {
            let _ = writeln!(
                s,
                "Largest number of two-party calls under 1 % loss: {}; RSS per call {} MB; peak {} MB.\n\n\
                 Baseline, the same packets through a plain UDP forwarder with as many calls: {} \
                 forwarded per server CPU-second, loss {} %; the relay reaches {} of that.",
                fmt(num(v, &["largest_calls_under_1_percent_loss"])),
                fmt(num(v, &["server_rss_per_call_mb"])),
                fmt(num(v, &["server_hwm_mb"])),
                fmt(num(
                    v,
                    &["plain_udp_baseline", "forwarded_per_server_cpu_s"]
                )),
                fmt(num(v, &["plain_udp_baseline", "loss_percent"])),
                fmt(num(v, &["ratio_to_plain_udp"])),
            );
        }
        None => s.push_str("Not measured.\n"),
    }
    if !failures.is_empty() {
        s.push_str("\n## Failed runs\n\n");
        for f in failures {
            let _ = writeln!(s, "- {}", f.replace('\n', " "));
        }
    }
    s
}

/// p99 against offered load, one line per backend for bookings and for the slowest read, on a
/// logarithmic latency axis (1 ms to 10 s), with the targets as dashed lines.
pub(crate) fn plot(r: &Results) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 180.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 60.0;
    const MAX_RATE: f64 = 2_000.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |rate: f64| LEFT + rate / MAX_RATE * pw;
    // 10^0 .. 10^4 ms.
    let y = |ms: f64| TOP + ph - (ms.clamp(1.0, 10_000.0).log10() / 4.0) * ph;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"22\" font-size=\"14\">videoamt API: p99 latency against offered load</text>\n"
    );
    for decade in 0..=4 {
        let ms = 10f64.powi(decade);
        let yy = y(ms);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} ms</text>",
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            ms
        );
    }
    for rate in (0..=2_000).step_by(400) {
        let xx = x(f64::from(rate));
        let _ = writeln!(
            svg,
            "<line x1=\"{xx:.1}\" y1=\"{TOP}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{rate}</text>",
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">offered load, requests per second</text>",
        LEFT + pw / 2.0,
        H - 14.0
    );
    for (ms, label) in [
        (BOOK_P99_MS, "target book 50 ms"),
        (READ_P99_MS, "target reads 10 ms"),
    ] {
        let yy = y(ms);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{label}</text>",
            x(f64::from(API_TARGET_RATE)),
            LEFT + pw,
            LEFT + pw + 6.0,
            yy + 4.0
        );
    }
    let colours = [("sqlite", "#1f77b4"), ("postgres", "#d62728")];
    let mut legend = 0.0;
    for (backend, runs) in &r.api {
        let colour = colours
            .iter()
            .find(|(b, _)| b == backend)
            .map_or("#000", |(_, c)| c);
        for (series, dash, p99) in [
            ("book", "", route_p99 as fn(&Value, &str) -> Option<f64>),
            ("reads", "6 3", |v: &Value, _: &str| reads_p99(v)),
        ] {
            let points: Vec<String> = runs
                .iter()
                .filter_map(|(rate, v)| {
                    let ms = p99(v, series)?;
                    Some(format!("{:.1},{:.1}", x(f64::from(*rate)), y(ms)))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
                points.join(" ")
            );
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
            let ly = TOP + 60.0 + legend * 18.0;
            legend += 1.0;
            let _ = writeln!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{backend} {series} p99</text>",
                LEFT + pw + 6.0,
                LEFT + pw + 30.0,
                LEFT + pw + 36.0,
                ly + 4.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_report(book: f64, read: f64) -> Value {
        serde_json::json!({
            "requests_per_s": 1200.0,
            "server_rss_peak_mb": 70.0,
            "routes": [
                {"route": "slots", "p99_ms": read},
                {"route": "book", "p99_ms": book},
                {"route": "token", "p99_ms": read / 2.0},
                {"route": "schedule", "p99_ms": read / 3.0},
            ],
            "baseline": {
                "routes": [
                    {"route": "slots", "p99_ms": 2.0},
                    {"route": "book", "p99_ms": 10.0},
                    {"route": "token", "p99_ms": 2.0},
                    {"route": "schedule", "p99_ms": 2.0},
                ],
                "ratio_p99": {"slots": read / 2.0, "book": book / 10.0, "token": read / 4.0, "schedule": read / 6.0},
            },
        })
    }

    #[test]
    fn the_summary_judges_each_load_against_the_targets() {
        let results = Results {
            api: vec![(
                "sqlite",
                vec![
                    (600, api_report(80.0, 20.0)),
                    (1_200, api_report(30.0, 8.0)),
                    (2_000, api_report(60.0, 8.0)),
                ],
            )],
            ..Results::default()
        };
        let s = summary(&results, &[]);
        // The API table comes first, then the baseline's.
        let rows: Vec<&str> = s.lines().filter(|l| l.starts_with("| sqlite |")).collect();
        assert_eq!(rows.len(), 6, "{s}");
        assert!(
            rows[0].ends_with("(below the target load) |"),
            "{}",
            rows[0]
        );
        assert!(rows[1].ends_with("| met |"), "{}", rows[1]);
        assert!(rows[2].ends_with("| **missed** |"), "{}", rows[2]);
        assert!(
            rows[1].contains("| 30.00 | 8.00 | 4.00 | 2.67 |"),
            "{}",
            rows[1]
        );
        let baseline: Vec<&str> = s
            .lines()
            .filter(|l| l.starts_with("| sqlite | 1200 | 10.00 |"))
            .collect();
        assert_eq!(
            baseline,
            ["| sqlite | 1200 | 10.00 | 2.00 | 2.00 | 2.00 | 3.00 | 4.00 | 2.00 | 1.33 |"],
            "{s}"
        );
    }

    #[test]
    fn the_plot_has_a_point_per_load_and_series() {
        let results = Results {
            api: vec![(
                "postgres",
                vec![
                    (200, api_report(5.0, 2.0)),
                    (2_000, api_report(900.0, 500.0)),
                ],
            )],
            ..Results::default()
        };
        let svg = plot(&results);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("postgres book p99"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
