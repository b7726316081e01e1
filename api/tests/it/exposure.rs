//! What `videoamt serve` offers only for trying it on one machine, the published demo password
//! and `/dev/outbox`, against a server others can reach: a listener on every interface, or an
//! https public URL (ADR 0026). Through the real binary.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use crate::mail::Killed;
use crate::{http, videoamt};

/// What a server prints on standard output, read line by line.
type Output = BufReader<std::process::ChildStdout>;

/// The README's demo password.
const PUBLISHED: &str = "videoamt-demo";

/// The line `serve` prints after the listening line when it generated the demo password.
const SHOWN: &str = "Passwort aller Demo-Konten, nur jetzt angezeigt";

/// A `videoamt serve` on a fresh embedded store in `dir` listening on `listen`, with `env`
/// beside an empty mail configuration: the child, the loopback address to reach it at, the
/// first `lines` lines it printed (the listening line first), and the rest of its standard
/// output, to read on.
fn serve(
    dir: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
    lines: usize,
) -> (Killed, String, Vec<String>, Output) {
    let mut command = videoamt();
    command
        .arg("--store")
        .arg(format!("sqlite:{}", dir.join("events.db").display()))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["serve", "--listen", listen])
        .args(args)
        .env_remove("VIDEOAMT_SMTP_URL")
        .env_remove("VIDEOAMT_PUBLIC_URL")
        .env_remove("VIDEOAMT_DEV_OUTBOX")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = Killed(command.spawn().expect("spawn serve"));
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut printed = vec![];
    for _ in 0..lines {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        printed.push(line.trim_end().to_owned());
    }
    let first = printed.first().cloned().unwrap_or_default();
    let bound = first
        .strip_prefix("videoamt listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let port = bound.rsplit(':').next().expect("a port");
    (child, format!("127.0.0.1:{port}"), printed, out)
}

/// The status of a login of Ettlingen's clerk `a.becker` with `password`.
async fn log_in(addr: &str, password: &str) -> u16 {
    let body = serde_json::json!({
        "tenant": "ettlingen", "login": "a.becker", "password": password
    });
    http::post(addr, "/api/v1/login", "application/json", &body.to_string())
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_server_gives_the_demo_accounts_a_password_of_its_own_shown_once() {
    for (listen, env) in [
        ("0.0.0.0:0", &[][..]),
        (
            "127.0.0.1:0",
            &[("VIDEOAMT_PUBLIC_URL", "https://amt.example")][..],
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, addr, _, mut out) = serve(dir.path(), listen, &[], env, 1);
        assert_eq!(
            log_in(&addr, PUBLISHED).await,
            401,
            "{listen} {env:?}: the README's password opens nothing here"
        );
        // The line after the listening line.
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        let password = line
            .trim_end()
            .strip_prefix(SHOWN)
            .and_then(|rest| rest.rsplit(": ").next())
            .unwrap_or_else(|| panic!("{listen} {env:?}: the password line, not {line:?}"))
            .to_owned();
        assert!(password.len() >= 20 && password != PUBLISHED, "{password}");
        assert_eq!(log_in(&addr, &password).await, 200, "{listen} {env:?}");
        drop(server);
        let log = std::fs::read_to_string(dir.path().join("data/logs/videoamt.log"))
            .expect("the server's log");
        assert!(log.contains("demo accounts created"), "{log}");
        assert!(!log.contains(&password), "the password is never logged");

        // Shown once: a second start finds its accounts and prints no password.
        let (mut again, addr, _, mut out) = serve(dir.path(), listen, &[], env, 1);
        assert_eq!(log_in(&addr, &password).await, 200);
        again.0.kill().expect("stop");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("the rest of its output");
        assert!(!rest.contains(SHOWN) && !rest.contains(&password), "{rest}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_first_command_keeps_the_published_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, addr, lines, _) = serve(dir.path(), "127.0.0.1:0", &[], &[], 1);
    assert!(lines[0].starts_with("videoamt listening on http://127.0.0.1:"));
    assert_eq!(log_in(&addr, PUBLISHED).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_outbox_is_listed_only_on_a_local_server() {
    // The embedded default mode on loopback lists it, as the README says.
    let dir = tempfile::tempdir().expect("temp dir");
    let (local, addr, _, _) = serve(dir.path(), "127.0.0.1:0", &["--no-demo"], &[], 1);
    assert_eq!(http::get(&addr, "/dev/outbox").await.status, 200);
    drop(local);

    // On every interface the same mode leaves it off, and says so in the log.
    let dir = tempfile::tempdir().expect("temp dir");
    let (open, addr, _, _) = serve(dir.path(), "0.0.0.0:0", &["--no-demo"], &[], 1);
    assert_eq!(http::get(&addr, "/dev/outbox").await.status, 404);
    assert_eq!(http::get(&addr, "/healthz").await.status, 200);
    drop(open);
    let log = std::fs::read_to_string(dir.path().join("data/logs/videoamt.log")).expect("log");
    assert!(
        log.contains("dev outbox off") && log.contains("is not on loopback"),
        "{log}"
    );

    // So does an https public URL in front of a loopback listener.
    let dir = tempfile::tempdir().expect("temp dir");
    let https = [("VIDEOAMT_PUBLIC_URL", "https://amt.example")];
    let (proxied, addr, _, _) = serve(dir.path(), "127.0.0.1:0", &["--no-demo"], &https, 1);
    assert_eq!(http::get(&addr, "/dev/outbox").await.status, 404);
    drop(proxied);

    // Asked for on a server others reach, `serve` does not start.
    for (listen, env) in [("0.0.0.0:0", &[][..]), ("127.0.0.1:0", &https[..])] {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = videoamt()
            .arg("--store")
            .arg(format!("sqlite:{}", dir.path().join("events.db").display()))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", listen, "--no-demo", "--dev-outbox"])
            .env_remove("VIDEOAMT_SMTP_URL")
            .env_remove("VIDEOAMT_PUBLIC_URL")
            .envs(env.iter().copied())
            .output()
            .expect("run serve");
        assert_eq!(out.status.code(), Some(1), "{listen} {env:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("listening"), "nothing is served: {stdout}");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(
            message.contains("--dev-outbox (VIDEOAMT_DEV_OUTBOX) lists every mail")
                && message.contains("leave --dev-outbox out"),
            "{listen} {env:?}: {message}"
        );
    }

    // Asked for on loopback, it is there even beside a mail server.
    let dir = tempfile::tempdir().expect("temp dir");
    let smtp = [("VIDEOAMT_SMTP_URL", "smtp://127.0.0.1:9")];
    let (asked, addr, _, _) = serve(
        dir.path(),
        "127.0.0.1:0",
        &["--no-demo", "--dev-outbox"],
        &smtp,
        1,
    );
    assert_eq!(http::get(&addr, "/dev/outbox").await.status, 200);
    drop(asked);
}
