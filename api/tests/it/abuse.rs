//! Abuse cases (issue 19, point 4) not covered beside the feature they attack: each is an
//! attacker's move and what the server does about it. `docs/security.md` maps them to ASVS.

use std::process::Stdio;

use super::videoamt;

/// `serve` with the settings `env`, on an empty embedded store: its exit status and stderr.
fn serve_with(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("events.db").display());
    let mut command = videoamt();
    command
        .args(["--store", &store, "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn serve");
    // A serve that accepted the setting would run for ever: give up on it (and fail the test
    // with what it printed) instead of hanging.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("serve ends");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every URL an operator configures for a service the server calls (SMS gateway, case
/// system, payment provider) is refused at start when it names a cloud metadata service or a
/// link-local address: the server never becomes the attacker's client for the credentials
/// such a service hands out. (The exchange itself refuses names that resolve there:
/// `adapters/src/http.rs`.)
#[test]
fn a_configured_url_pointing_at_a_metadata_service_stops_serve() {
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "SMS gateway URL",
            &[
                (
                    "VIDEOAMT_SMS_URL",
                    "http://169.254.169.254/latest/meta-data/",
                ),
                ("VIDEOAMT_SMS_TOKEN", "t"),
            ],
        ),
        (
            "case system URL",
            &[
                (
                    "VIDEOAMT_CASE_SYSTEM_URL",
                    "http://metadata.google.internal/computeMetadata/v1/",
                ),
                ("VIDEOAMT_CASE_SYSTEM_TOKEN", "t"),
            ],
        ),
        (
            "payment provider's URL",
            &[
                ("VIDEOAMT_PAYMENT_URL", "http://[fd00:ec2::254]/latest"),
                ("VIDEOAMT_PAYMENT_TOKEN", "t"),
                ("VIDEOAMT_PAYMENT_SECRET", "s"),
            ],
        ),
        (
            "SMS gateway URL",
            &[
                ("VIDEOAMT_SMS_URL", "http://[::ffff:169.254.169.254]:80/"),
                ("VIDEOAMT_SMS_TOKEN", "t"),
            ],
        ),
    ];
    for (what, env) in cases {
        let (status, stderr) = serve_with(env);
        assert!(!status.success(), "{what}: serve must not start: {stderr}");
        assert!(
            stderr.contains("not allowed (link-local or metadata service)"),
            "{what}: {stderr}"
        );
    }
}
