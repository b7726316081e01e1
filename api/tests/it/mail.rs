//! Mail through a real SMTP server on loopback (aiosmtpd, installed by `scripts/test`), sent by
//! the outbox worker of a real `videoamt serve`, read back and parsed.

use std::io::BufRead as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders as _;

use super::http;
use super::videoamt;

pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub(crate) fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < timeout, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An SMTP server on loopback that files every message into the maildir `dir`.
pub(crate) fn smtp_server(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd is needed (scripts/test installs it)");
    let child = Killed(child);
    wait_until("the SMTP server", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (child, port)
}

/// `videoamt serve` on a fresh embedded store (with the demo data and accounts if `demo`),
/// sending mail to `smtp`; returns its address (`host:port`).
pub(crate) fn server(
    dir: &Path,
    smtp: &str,
    demo: bool,
    extra_env: &[(&str, &str)],
) -> (Killed, String) {
    let mut command = videoamt();
    command
        .args([
            "--store",
            &format!("sqlite:{}", dir.join("events.db").display()),
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(if demo { &[][..] } else { &["--no-demo"][..] })
        .env("VIDEOAMT_SMTP_URL", smtp)
        .env("VIDEOAMT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    listening(command, None)
}

/// Spawns `command`, a `videoamt … serve` with piped stdout, and waits for its first line:
/// the address it listens on (`host:port`). `log`: where its standard error goes, shown if it
/// ends before it listens.
pub(crate) fn listening(mut command: Command, log: Option<&Path>) -> (Killed, String) {
    let mut child = command.spawn().expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read");
    let addr = line
        .trim()
        .strip_prefix("videoamt listening on http://")
        .unwrap_or_else(|| {
            let log = log.map(std::fs::read_to_string).and_then(Result::ok);
            panic!("unexpected first line {line:?}; standard error:\n{log:?}")
        })
        .to_owned();
    (Killed(child), addr)
}

/// Every file under `dir`, at any depth: an SMTP server's maildir, or a server's outbox
/// folder, which files each data subject's mails in a folder of its own.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut open = vec![dir.to_path_buf()];
    while let Some(folder) = open.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                open.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The address the mail `file` went to, and the capability tokens of its `/termin/…` links.
fn tokens_in(file: &Path) -> (String, Vec<String>) {
    let Some((to, text)) = std::fs::read(file).ok().and_then(|raw| {
        let mail = mail_parser::MessageParser::default().parse(&raw)?;
        let to = mail.to()?.first()?.address()?.to_owned();
        Some((to, mail.body_text(0)?.into_owned()))
    }) else {
        return (String::new(), vec![]);
    };
    let tokens = text
        .split("/termin/")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
                .next()
                .map(str::to_owned)
        })
        .collect();
    (to, tokens)
}

/// Every capability token in the mails under `dir` (an SMTP server's maildir, or a server's
/// outbox folder) to `to`.
pub(crate) fn tokens_to(dir: &Path, to: &str) -> std::collections::BTreeSet<String> {
    files_under(dir)
        .iter()
        .map(|file| tokens_in(file))
        .filter(|(address, _)| address == to)
        .flat_map(|(_, tokens)| tokens)
        .collect()
}

/// The capability token of `appointment`'s link, as its citizen gets it: from the mail under
/// `dir` (an SMTP server's maildir, or a server's outbox folder) whose link names that
/// appointment. A token begins with the appointment's id (ADR 0010). Waits for the mail.
pub(crate) fn token_by_mail(dir: &Path, appointment: &str) -> String {
    use base64::Engine as _;
    let names = |token: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|bytes| uuid::Uuid::from_slice(bytes.get(..16)?).ok())
            .is_some_and(|id| id.to_string() == appointment)
    };
    wait_until(
        &format!("the mail with the link of {appointment}"),
        Duration::from_secs(30),
        || {
            files_under(dir)
                .iter()
                .flat_map(|file| tokens_in(file).1)
                .find(|token| names(token))
        },
    )
}

pub(crate) fn mails(maildir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
}

fn events_of_type(dir: &Path, kind: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("events.db")).expect("open");
    db.query_row(
        "SELECT count(*) FROM events WHERE event_type = ?1",
        [kind],
        |r| r.get(0),
    )
    .expect("count")
}

/// The first free start a week from now, for two concerns in Ettlingen's Bürgerbüro.
async fn free_start(addr: &str) -> String {
    let from = (time::OffsetDateTime::now_utc() + time::Duration::days(7)).date();
    let slots = http::get(
        addr,
        &format!(
            "/api/v1/slots?tenant=ettlingen&services=personalausweis,meldebescheinigung&from={from}&days=7"
        ),
    )
    .await;
    assert_eq!(slots.status, 200, "{}", slots.body);
    let slots: serde_json::Value = serde_json::from_str(&slots.body).expect("json");
    slots["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["starts"].as_array().expect("starts").clone())
        .next()
        .and_then(|s| s.as_str().map(str::to_owned))
        .expect("a free start within a week")
}

/// Books `start` on `addr`; returns the appointment's id.
async fn book(addr: &str, start: &str) -> String {
    let booking = serde_json::json!({
        "tenant": "ettlingen",
        "services": ["personalausweis", "meldebescheinigung"],
        "start": start,
        "contact": {"name": "Jürgen Müller-Lüdenscheidt", "email": "juergen@example.org"},
        "privacy_accepted": true
    });
    let booked = http::post(
        addr,
        "/api/v1/appointments",
        "application/json",
        &booking.to_string(),
    )
    .await;
    assert_eq!(booked.status, 201, "{}", booked.body);
    let booked: serde_json::Value = serde_json::from_str(&booked.body).expect("json");
    assert!(booked.get("token").is_none(), "the link goes by mail only");
    booked["appointment"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn property<'a>(
    event: &'a ical::parser::ical::component::IcalEvent,
    name: &str,
) -> &'a ical::property::Property {
    event
        .properties
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// The calendar entry's start or end as the instant it names (TZID resolved with the zone
/// database), checked to be given in Europe/Berlin.
fn instant(p: &ical::property::Property) -> time::OffsetDateTime {
    use time_tz::PrimitiveDateTimeExt as _;
    let tzid = p
        .params
        .as_ref()
        .and_then(|ps| ps.iter().find(|(k, _)| k == "TZID"))
        .map(|(_, v)| v[0].clone());
    assert_eq!(tzid.as_deref(), Some("Europe/Berlin"), "{p:?}");
    let local = time::PrimitiveDateTime::parse(
        p.value.as_deref().expect("value"),
        time::macros::format_description!("[year][month][day]T[hour][minute][second]"),
    )
    .expect("local date-time");
    local
        .assume_timezone(time_tz::timezones::db::europe::BERLIN)
        .take_first()
        .expect("exists")
}

#[tokio::test]
async fn confirmation_and_cancellation_mails_arrive_over_smtp_in_german_with_working_links() {
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("maildir");
    let (_smtp, port) = smtp_server(&maildir);
    let (_server, addr) = server(dir.path(), &format!("smtp://127.0.0.1:{port}"), false, &[]);

    let start = free_start(&addr).await;
    let appointment = book(&addr, &start).await;
    let token = token_by_mail(&maildir, &appointment);
    let first = wait_until("the confirmation mail", Duration::from_secs(30), || {
        mails(&maildir).first().cloned()
    });
    let raw = std::fs::read(&first).expect("mail");
    let mail = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("an RFC 5322 message");

    // German, to the citizen, with everything to have ready.
    let subject = mail.subject().expect("subject");
    assert!(subject.starts_with("Ihr Videotermin: "), "{subject}");
    let to = mail.to().and_then(|t| t.first()).expect("to");
    assert_eq!(to.address(), Some("juergen@example.org"));
    let text = mail.body_text(0).expect("text").into_owned();
    for expected in [
        "Guten Tag Jürgen Müller-Lüdenscheidt,",
        "Bitte halten Sie bereit:",
        "Technische Voraussetzungen:",
        "Mbit/s im Upload",
        "Hotline",
        "Termin absagen:",
        "Termin verlegen:",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    let catalogue: serde_json::Value =
        serde_json::from_str(&http::get(&addr, "/api/v1/catalogue").await.body).expect("json");
    let support = catalogue[0]["support"]["phone"].as_str().expect("phone");
    assert!(text.contains(support), "support line {support} missing");

    // Every link works against the running server.
    let links: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with("http://"))
        .collect();
    assert_eq!(links.len(), 4, "{text}");
    for link in &links {
        let path = link
            .strip_prefix(&format!("http://{addr}"))
            .unwrap_or_else(|| panic!("{link} does not point to the server"));
        assert!(path.contains(&token), "{link}");
        let page = http::get(&addr, path).await;
        assert_eq!(page.status, 200, "{link}: {page:?}");
        assert!(page.body.contains("<html lang=\"de\">"), "{link}");
    }

    // The calendar entry parses and names the booked start and end in Europe/Berlin.
    let ics = mail
        .attachments()
        .find(|a| a.attachment_name() == Some("termin.ics"))
        .expect("termin.ics attached");
    let calendar = ical::IcalParser::new(std::io::BufReader::new(ics.contents()))
        .next()
        .expect("one calendar")
        .expect("valid RFC 5545");
    let event = calendar.events.first().expect("one event");
    let booked_start =
        time::OffsetDateTime::parse(&start, &time::format_description::well_known::Rfc3339)
            .expect("rfc3339");
    assert_eq!(instant(property(event, "DTSTART")), booked_start);
    assert_eq!(
        instant(property(event, "DTEND")),
        booked_start + time::Duration::minutes(30)
    );

    // Cancelling through the link's form brings the cancellation mail with a cancelled entry.
    let cancelled = http::post(
        &addr,
        &format!("/termin/{token}/absagen"),
        "application/x-www-form-urlencoded",
        "reason=",
    )
    .await;
    assert_eq!(cancelled.status, 303, "{cancelled:?}");
    let second = wait_until("the cancellation mail", Duration::from_secs(30), || {
        let all = mails(&maildir);
        (all.len() == 2).then(|| all[1].clone())
    });
    let raw = std::fs::read(&second).expect("mail");
    let mail = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("message");
    assert!(
        mail.subject()
            .expect("subject")
            .starts_with("Ihr Videotermin wurde abgesagt")
    );
    let ics = mail
        .attachments()
        .find(|a| a.attachment_name() == Some("termin.ics"))
        .expect("termin.ics");
    let ics = String::from_utf8_lossy(ics.contents());
    assert!(
        ics.contains("METHOD:CANCEL") && ics.contains("STATUS:CANCELLED"),
        "{ics}"
    );

    // Both are recorded once in the log.
    wait_until("two MailSent events", Duration::from_secs(10), || {
        (events_of_type(dir.path(), "MailSent") == 2).then_some(())
    });
    assert_eq!(events_of_type(dir.path(), "DeliveryFailed"), 0);
}

#[tokio::test]
async fn an_unreachable_mail_server_ends_in_delivery_failed_after_the_retries() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Nobody listens on this port.
    let port = free_port();
    let (_server, addr) = server(
        dir.path(),
        &format!("smtp://127.0.0.1:{port}"),
        false,
        &[
            ("VIDEOAMT_MAIL_ATTEMPTS", "3"),
            ("VIDEOAMT_MAIL_RETRY_MS", "50"),
        ],
    );
    let start = free_start(&addr).await;
    book(&addr, &start).await;
    wait_until("DeliveryFailed", Duration::from_secs(30), || {
        (events_of_type(dir.path(), "DeliveryFailed") == 1).then_some(())
    });
    let db = rusqlite::Connection::open(dir.path().join("events.db")).expect("open");
    let payload: String = db
        .query_row(
            "SELECT payload FROM events WHERE event_type = 'DeliveryFailed'",
            [],
            |r| r.get(0),
        )
        .expect("payload");
    let failed: serde_json::Value = serde_json::from_str(&payload).expect("json");
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["kind"], "confirmation");
    assert!(
        !payload.contains("example.org"),
        "no address in the event: {payload}"
    );
    assert_eq!(events_of_type(dir.path(), "MailSent"), 0);
}
