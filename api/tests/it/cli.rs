use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::{http, videoamt};

fn sqlite_store(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("events.db").display())
}

fn run(store: &str, args: &[&str]) -> std::process::Output {
    videoamt()
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("run videoamt")
}

#[test]
fn stats_and_verify_report_a_sound_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(&dir);
    assert!(
        run(&store, &["store", "probe", "--count", "5"])
            .status
            .success()
    );

    let stats = run(&store, &["store", "stats", "--json"]);
    assert!(stats.status.success());
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON stats");
    assert_eq!(json["events"], 5);
    assert_eq!(json["streams"], 1);
    assert_eq!(json["last_position"], 5);
    assert!(json["size_bytes"].as_u64().expect("size") > 0);

    let verify = run(&store, &["store", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("OK, 5 events checked"));
}

#[test]
fn verify_fails_with_a_clear_message_on_a_damaged_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(&dir);
    assert!(
        run(&store, &["store", "probe", "--count", "3"])
            .status
            .success()
    );
    {
        // Damage it the way only raw SQL can: a row past a gap, a stream that does not start
        // at 0, and a missing guard.
        let conn = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
        conn.execute_batch(
            "INSERT INTO events SELECT 10, 'probe-other', 4, randomblob(16), event_type, \
             schema_version, tenant, correlation_id, causation_id, actor_role, actor_id, \
             recorded_at, payload FROM events WHERE global_position = 1;
             DROP TRIGGER events_append_only_delete;",
        )
        .expect("raw damage");
    }
    let verify = run(&store, &["store", "verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let message = String::from_utf8_lossy(&verify.stderr);
    assert!(
        message.contains("store verify: FAILED, 3 problem(s)"),
        "{message}"
    );
    assert!(
        message.contains("not gap-free: 4 events span positions 1..=10"),
        "{message}"
    );
    assert!(
        message.contains("stream probe-other is not contiguous from 0"),
        "{message}"
    );
    assert!(
        message.contains("append-only trigger events_append_only_delete is missing"),
        "{message}"
    );
}

#[test]
fn an_unknown_store_is_a_clear_error() {
    let out = run("mysql://localhost/x", &["store", "stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected `sqlite:PATH` or `postgres://…`")
    );
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = videoamt()
        .args([
            "--store",
            &sqlite_store(&dir),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("videoamt listening on http://")
        .expect("address line");

    let health = http::get(addr, "/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body, "ok");
    assert_eq!(http::get(addr, "/readyz").await.status, 200);

    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "serve must exit 0 after Ctrl-C, got {status}"
    );

    // The empty embedded store was filled with demo visits, once.
    let events = |store: &str| -> u64 {
        let stats = run(store, &["store", "stats", "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
        json["events"].as_u64().expect("count")
    };
    let store = sqlite_store(&dir);
    let seeded = events(&store);
    assert!(seeded >= 3_000, "{seeded} demo events");
    let mut again = videoamt()
        .args(["--store", &store, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(again.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    again.kill().expect("stop");
    again.wait().expect("reap");
    assert_eq!(
        events(&store),
        seeded,
        "a store with events gets no more demo data"
    );
}

/// `videoamt user add` with `password` on standard input: (success, stdout, stderr).
pub(crate) fn user_add(
    store: &str,
    data: &std::path::Path,
    args: &[&str],
    password: &str,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = videoamt()
        .arg("--store")
        .arg(store)
        .arg("--data-dir")
        .arg(data)
        .args(["user", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run videoamt");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_add_creates_accounts_that_log_in_and_refuses_bad_ones_in_german() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(&dir);
    let data = dir.path().join("data");
    let clerk = [
        "--tenant",
        "ettlingen",
        "--role",
        "clerk",
        "--department",
        "buergerbuero",
        "--login",
        "t.test",
    ];
    let (ok, out, err) = user_add(&store, &data, &clerk, "ein-gutes-passwort");
    assert!(ok, "{err}");
    assert!(
        out.contains("Konto t.test (Sachbearbeitung) in Stadt Ettlingen angelegt."),
        "{out}"
    );
    for (args, password, message) in [
        (
            &clerk[..],
            "ein-gutes-passwort",
            "Dieses Konto gibt es bereits.",
        ),
        (
            &[
                "--tenant",
                "ettlingen",
                "--role",
                "clerk",
                "--login",
                "x.kurz",
                "--department",
                "buergerbuero",
            ][..],
            "kurz",
            "mindestens 12 Zeichen",
        ),
        (
            &[
                "--tenant",
                "ettlingen",
                "--role",
                "clerk",
                "--login",
                "x.ohne",
            ][..],
            "ein-gutes-passwort",
            "mindestens einen Bereich",
        ),
        (
            &[
                "--tenant",
                "ettlingen",
                "--role",
                "dpo",
                "--login",
                "x.dsb",
                "--department",
                "buergerbuero",
            ][..],
            "ein-gutes-passwort",
            "Nur Konten der Sachbearbeitung haben Bereiche.",
        ),
        (
            &[
                "--tenant",
                "ettlingen",
                "--role",
                "chef",
                "--login",
                "x.chef",
            ][..],
            "ein-gutes-passwort",
            "Die Rolle \"chef\" gibt es nicht",
        ),
        (
            &["--tenant", "atlantis", "--role", "dpo", "--login", "x.dsb"][..],
            "ein-gutes-passwort",
            "Die Kommune \"atlantis\" gibt es nicht",
        ),
        (
            &[
                "--tenant",
                "ettlingen",
                "--role",
                "dpo",
                "--login",
                "Ungültig",
            ][..],
            "ein-gutes-passwort",
            "Der Anmeldename \"Ungültig\" ist ungültig",
        ),
    ] {
        let (ok, _, err) = user_add(&store, &data, args, password);
        assert!(!ok, "{args:?} must be refused");
        assert!(err.contains(message), "{args:?}: {err}");
    }

    // The account logs in with the password given on standard input, and only with it.
    let location = videoamt_adapters::store::StoreLocation::parse(&store).expect("store");
    let system = videoamt_api::app::System::open(&location, &data, Default::default())
        .await
        .expect("open");
    let state = videoamt_api::http::AppState::new(system);
    let here =
        videoamt_api::http::middleware::guard::Client::of(std::net::Ipv4Addr::LOCALHOST.into());
    let (_, staff) = videoamt_api::http::staff::log_in(
        &state,
        here,
        "ettlingen",
        "t.test",
        "ein-gutes-passwort",
    )
    .await
    .expect("the password works");
    assert_eq!(staff.departments.len(), 1);
    let refused = videoamt_api::http::staff::log_in(
        &state,
        here,
        "ettlingen",
        "t.test",
        "ein-anderes-passwort",
    )
    .await;
    assert_eq!(refused.expect_err("a wrong password").status(), 401);
    // Only the hash is stored: the password is in no row of the log.
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    let payloads: Vec<String> = db
        .prepare("SELECT payload FROM events")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("payloads");
    assert!(payloads.iter().any(|p| p.contains("$argon2id$")));
    assert!(payloads.iter().all(|p| !p.contains("ein-gutes-passwort")));
}

/// `videoamt user VERB ARGS…`: (success, stdout, stderr).
fn user(store: &str, data: &std::path::Path, verb: &str, args: &[&str]) -> (bool, String, String) {
    let out = videoamt()
        .arg("--store")
        .arg(store)
        .arg("--data-dir")
        .arg(data)
        .args(["user", verb])
        .args(args)
        .output()
        .expect("run videoamt");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_verbs_list_disable_enable_set_roles_and_reset_accounts_in_german() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = sqlite_store(&dir);
    let data = dir.path().join("data");
    let password = "ein-gutes-passwort";
    let (ok, _, err) = user_add(
        &store,
        &data,
        &[
            "--tenant",
            "ettlingen",
            "--role",
            "admin",
            "--login",
            "chef",
        ],
        password,
    );
    assert!(ok, "{err}");
    let clerk = [
        "--tenant",
        "ettlingen",
        "--role",
        "clerk",
        "--department",
        "buergerbuero",
        "--login",
        "t.test",
    ];
    let (ok, _, err) = user_add(&store, &data, &clerk, password);
    assert!(ok, "{err}");
    let who = ["--tenant", "ettlingen", "--login", "t.test"];

    let (ok, out, err) = user(&store, &data, "list", &["--tenant", "ettlingen"]);
    assert!(ok, "{err}");
    assert!(out.contains("Anmeldename"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("t.test"))
        .expect("listed");
    assert!(
        line.contains("Sachbearbeitung") && line.contains("buergerbuero") && line.contains("aktiv"),
        "{line}"
    );
    let (ok, out, _) = user(&store, &data, "list", &["--tenant", "ettlingen", "--json"]);
    assert!(ok);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");

    let location = videoamt_adapters::store::StoreLocation::parse(&store).expect("store");
    let system = videoamt_api::app::System::open(&location, &data, Default::default())
        .await
        .expect("open");
    let state = videoamt_api::http::AppState::new(system);
    let log_in = |password: &'static str| {
        let state = state.clone();
        async move {
            let here = videoamt_api::http::middleware::guard::Client::of(
                std::net::Ipv4Addr::LOCALHOST.into(),
            );
            videoamt_api::http::staff::log_in(&state, here, "ettlingen", "t.test", password)
                .await
                .map(|_| ())
                .map_err(|e| e.status().as_u16())
        }
    };
    assert_eq!(log_in("ein-gutes-passwort").await, Ok(()));

    // Disabled, it cannot log in; the last admin cannot be disabled.
    let (ok, out, err) = user(&store, &data, "disable", &who);
    assert!(ok, "{err}");
    assert!(
        out.contains("Konto t.test in Stadt Ettlingen deaktiviert"),
        "{out}"
    );
    assert_eq!(log_in("ein-gutes-passwort").await, Err(403));
    let (ok, _, err) = user(&store, &data, "disable", &who);
    assert!(!ok);
    assert!(err.contains("Das Konto ist bereits deaktiviert."), "{err}");
    let (ok, _, err) = user(
        &store,
        &data,
        "disable",
        &["--tenant", "ettlingen", "--login", "chef"],
    );
    assert!(!ok);
    assert!(
        err.contains("das letzte aktive Konto der Verwaltung"),
        "{err}"
    );
    let (ok, _, err) = user(
        &store,
        &data,
        "set-roles",
        &["--tenant", "ettlingen", "--login", "chef", "--role", "dpo"],
    );
    assert!(!ok);
    assert!(
        err.contains("das letzte aktive Konto der Verwaltung"),
        "{err}"
    );
    let (ok, _, err) = user(&store, &data, "enable", &who);
    assert!(ok, "{err}");
    assert_eq!(log_in("ein-gutes-passwort").await, Ok(()));

    // Roles under the rule of their creation.
    let mut set = who.to_vec();
    set.extend(["--role", "clerk"]);
    let (ok, _, err) = user(&store, &data, "set-roles", &set);
    assert!(!ok);
    assert!(err.contains("mindestens einen Bereich"), "{err}");
    let mut set = who.to_vec();
    set.extend(["--role", "auditor"]);
    let (ok, _, err) = user(&store, &data, "set-roles", &set);
    assert!(ok, "{err}");
    let (_, out, _) = user(&store, &data, "list", &["--tenant", "ettlingen"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("t.test"))
        .expect("listed");
    assert!(line.contains("Prüfung"), "{line}");

    // Reset prints a one-time link and the old password stops working.
    let (ok, out, err) = user(&store, &data, "reset", &who);
    assert!(ok, "{err}");
    assert!(out.contains("gilt nicht mehr"), "{out}");
    let at = out.find("/konto/passwort/").expect("a link");
    let token = out[at + "/konto/passwort/".len()..].trim().to_owned();
    assert_eq!(log_in("ein-gutes-passwort").await, Err(401));
    let response = {
        use tower::ServiceExt as _;
        videoamt_api::http::app(state.clone())
            .oneshot(
                axum::http::Request::post(format!("/konto/passwort/{token}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(axum::body::Body::from(
                        "new_password=ein-neues-passwort&new_password_repeat=ein-neues-passwort",
                    ))
                    .expect("request"),
            )
            .await
            .expect("infallible")
    };
    assert_eq!(response.status(), 200);
    assert_eq!(log_in("ein-neues-passwort").await, Ok(()));

    // `--unlock` lifts the throttle after failed logins, and only then.
    let mut unlock = who.to_vec();
    unlock.push("--unlock");
    let (ok, _, err) = user(&store, &data, "reset", &unlock);
    assert!(!ok);
    assert!(err.contains("Das Konto ist nicht gesperrt."), "{err}");
    for _ in 0..5 {
        let _ = log_in("falsches-passwort").await;
    }
    assert_eq!(
        log_in("ein-neues-passwort").await,
        Err(401),
        "throttled here, answered like a wrong password"
    );
    let (ok, out, err) = user(&store, &data, "reset", &unlock);
    assert!(ok, "{err}");
    assert!(out.contains("Sperre von t.test"), "{out}");
    assert_eq!(log_in("ein-neues-passwort").await, Ok(()));

    // Unknown accounts and municipalities are named in German.
    let (ok, _, err) = user(
        &store,
        &data,
        "enable",
        &["--tenant", "ettlingen", "--login", "niemand"],
    );
    assert!(!ok);
    assert!(err.contains("Dieses Konto gibt es nicht."), "{err}");
    let (ok, _, err) = user(&store, &data, "list", &["--tenant", "atlantis"]);
    assert!(!ok);
    assert!(
        err.contains("Die Kommune \"atlantis\" gibt es nicht"),
        "{err}"
    );
}

/// With `VIDEOAMT_METRICS_LISTEN`, `serve` names the metrics listener on the line after the
/// public one; the metrics are there, and the public listener answers 404 for them.
#[tokio::test]
async fn serve_prints_and_serves_the_internal_metrics_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = videoamt()
        .args([
            "--store",
            &sqlite_store(&dir),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-demo",
        ])
        .env("VIDEOAMT_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut first, mut second) = (String::new(), String::new());
    stdout.read_line(&mut first).expect("read");
    stdout.read_line(&mut second).expect("read");
    let addr = first
        .trim()
        .strip_prefix("videoamt listening on http://")
        .expect("address line")
        .to_owned();
    let metrics = second
        .trim()
        .strip_prefix("videoamt metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("metrics line: {second:?}"))
        .to_owned();
    let scraped = http::get(&metrics, "/metrics").await;
    let public = http::get(&addr, "/metrics").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert!(
        scraped.body.contains("videoamt_projection_lag_events"),
        "{}",
        scraped.body
    );
    assert_eq!(public.status, 404, "{public:?}");
}
