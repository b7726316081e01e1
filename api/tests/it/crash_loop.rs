//! The crash loop with side effects: `videoamt serve` is killed with SIGKILL at a random moment,
//! 20 rounds on SQLite and 20 on PostgreSQL, under the whole scenario mix. Citizens book (the
//! link comes by mail from the SMTP server on loopback), enter the waiting room and are
//! admitted; the clerk checks the identity card and attaches a form, the citizen fills it in and signs it (touchpad, or a
//! Handy-TAN through the SMS sandbox); the clerk asks for the fee, the citizen pays it at a
//! payment provider that lives in a process of its own and outlives the kills (the sandbox of a
//! second `videoamt serve`), and the clerk ends the session. Meanwhile the scheduler purges due
//! subjects planted before each round and verifies every deletion.
//!
//! After every kill, with the server down: every command acknowledged so far is in the log,
//! `store verify` passes, and the read models, caught up from their checkpoints as a restart
//! catches them up, equal a rebuild from 0. After the last round one more server drains the
//! outbox and the purge, and then:
//! - every mail the SMTP server received is recorded by one `MailSent` and every `MailSent`
//!   arrived; a mail sent twice (a kill between the SMTP server's answer and the record: at
//!   least once is the honest guarantee) carries the same Message-ID both times, and no mail
//!   of one kind to one citizen ever went out under two;
//! - every Handy-TAN in the log reached the SMS sandbox exactly once under its key (its id);
//! - no payment was captured twice, neither in the log nor at the provider, and the provider
//!   took the money exactly for the payments the log records as captured;
//! - every planted subject was purged once and its deletion verified once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode, header};
use uuid::Uuid;
use videoamt_adapters::payment::wire;
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_core::domain::{DomainEvent, SubjectId};
use videoamt_core::event::RecordedEvent;
use videoamt_core::store::EventStore;
use videoamt_core::tenant::SignatureMethod;
use videoamt_projections::runner::Runner;

use crate::http::{self, Response};
use crate::mail::{Killed, files_under, free_port, listening, smtp_server};
use crate::nodes::{PASSWORD, received};

const ROUNDS: usize = 20;
/// Citizens on their way at once, each with slots of its own.
const VISITORS: usize = 3;
/// Subjects whose purge is due, planted before each round.
const DUE_PER_ROUND: usize = 5;
const PROVIDER_TOKEN: &str = "provider-api-token";
const PROVIDER_SECRET: &str = "provider-callback-geheimnis";
const STROKES: &str = r#"{"width":480,"height":160,"strokes":[[{"x":20,"y":120,"t_ms":0},{"x":60,"y":40,"t_ms":40},{"x":100,"y":110,"t_ms":80}],[{"x":120,"y":90,"t_ms":400},{"x":200,"y":80,"t_ms":460}]]}"#;

on_both_backends!(site: twenty_kills_lose_nothing_acknowledged_and_repeat_no_side_effect);

/// What the loop runs against: a store, a data folder, an SMTP server and a payment provider,
/// which stay while the server is killed and started again on the same port.
struct Site {
    name: &'static str,
    store: String,
    dir: tempfile::TempDir,
    data: PathBuf,
    maildir: PathBuf,
    smtp: String,
    _smtp_server: Killed,
    /// The payment provider's `host:port`.
    provider: String,
    _provider: Killed,
    /// The server's `host:port`, the same every round: the provider's callbacks and return
    /// links name it.
    addr: String,
    scratch: Option<videoamt_adapters::store::postgres::ScratchDatabase>,
}

mod site {
    use super::*;

    pub(super) async fn sqlite() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = format!("sqlite:{}", dir.path().join("events.db").display());
        Site::new("SQLite", store, dir, None)
    }

    pub(super) async fn postgres() -> Option<Site> {
        use videoamt_adapters::store::postgres::{ScratchDatabase, test_server_url};
        let server = test_server_url().await?;
        let db = ScratchDatabase::create(&server, "crash_loop")
            .await
            .expect("scratch database");
        let dir = tempfile::tempdir().expect("temp dir");
        Some(Site::new("PostgreSQL", db.url(), dir, Some(db)))
    }
}

impl Site {
    fn new(
        name: &'static str,
        store: String,
        dir: tempfile::TempDir,
        scratch: Option<videoamt_adapters::store::postgres::ScratchDatabase>,
    ) -> Self {
        let maildir = dir.path().join("maildir");
        let (smtp_server, port) = smtp_server(&maildir);
        // The provider: another server's payment sandbox, with the credentials the server
        // under test is given. Its transactions live in its memory, which no kill touches.
        let provider_dir = dir.path().join("provider");
        let mut command = crate::videoamt();
        command
            .args([
                "--store",
                &format!("sqlite:{}", provider_dir.join("events.db").display()),
            ])
            .arg("--data-dir")
            .arg(provider_dir.join("data"))
            .args(["serve", "--listen", "127.0.0.1:0", "--no-demo"])
            .env("VIDEOAMT_PAYMENT_TOKEN", PROVIDER_TOKEN)
            .env("VIDEOAMT_PAYMENT_SECRET", PROVIDER_SECRET)
            .env("VIDEOAMT_RATE_LIMITS", "100000,100000,1000")
            .env("VIDEOAMT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (provider_server, provider) = listening(command, None);
        Self {
            name,
            store,
            data: dir.path().join("data"),
            maildir,
            smtp: format!("smtp://127.0.0.1:{port}"),
            _smtp_server: smtp_server,
            provider,
            _provider: provider_server,
            addr: format!("127.0.0.1:{}", free_port()),
            dir,
            scratch,
        }
    }

    /// `videoamt serve` on the site, round `round`: purging every 200 ms in pages of four,
    /// so that kills land inside the purge too.
    fn serve(&self, round: usize) -> Killed {
        let log = self.dir.path().join(format!("serve-{round}.log"));
        let mut command = crate::videoamt();
        command
            .args(["--store", &self.store])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["serve", "--listen", &self.addr, "--no-demo"])
            .env("VIDEOAMT_SMTP_URL", &self.smtp)
            .env(
                "VIDEOAMT_PAYMENT_URL",
                format!("http://{}/sandbox/zahlung", self.provider),
            )
            .env("VIDEOAMT_PAYMENT_TOKEN", PROVIDER_TOKEN)
            .env("VIDEOAMT_PAYMENT_SECRET", PROVIDER_SECRET)
            .env("VIDEOAMT_RATE_LIMITS", "100000,100000,1000")
            .env("VIDEOAMT_RETENTION_INTERVAL_MS", "200")
            .env("VIDEOAMT_PURGE_PAGE", "4")
            .env("VIDEOAMT_LEASE_SECONDS", "3")
            .env("VIDEOAMT_MAIL_RETRY_MS", "200")
            .env("VIDEOAMT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let (server, addr) = listening(command, Some(&log));
        assert_eq!(addr, self.addr, "the same port every round");
        server
    }

    fn outbox(&self) -> PathBuf {
        self.data.join("outbox")
    }

    async fn open(&self) -> Arc<dyn AdminStore> {
        StoreLocation::parse(&self.store)
            .expect("location")
            .open()
            .await
            .expect("open the store")
    }
}

/// Every event of the log.
async fn whole_log(store: &Arc<dyn AdminStore>) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |e: &RecordedEvent| e.global_position);
        let page = store.read_all(after, 5_000).await.expect("read");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn decoded(e: &RecordedEvent) -> DomainEvent {
    DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload).expect("decodes")
}

/// The Message-IDs among `arrived` that the log never records as sent, leaving out the mails of
/// appointments whose data subject was purged. Such a mail may have gone out just before a
/// kill; the next server finds the contact erased and rightly sends and records nothing.
fn unrecorded(
    log: &[RecordedEvent],
    arrived: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let purged: BTreeSet<&str> = log
        .iter()
        .filter(|e| e.event_type.as_str() == "PurgeExecuted")
        .filter_map(|e| e.stream_id.as_str().strip_prefix("subject-"))
        .collect();
    let erased: BTreeSet<String> = log
        .iter()
        .filter_map(|e| match decoded(e) {
            DomainEvent::AppointmentBooked(b)
                if purged.contains(b.subject.to_string().as_str()) =>
            {
                Some(b.appointment.to_string())
            }
            _ => None,
        })
        .collect();
    arrived
        .difference(recorded)
        .filter(|id| !id.split('.').next().is_some_and(|a| erased.contains(a)))
        .cloned()
        .collect()
}

/// What the citizens and the clerk were told, and what the requests met.
#[derive(Default)]
struct Ledger {
    /// For each acknowledged command: the appointment it belongs to (the events' correlation
    /// id) and the event it must have left.
    acknowledged: Vec<(Uuid, &'static str)>,
    /// Acknowledged commands by step.
    steps: BTreeMap<&'static str, usize>,
    /// Requests the server took but never answered: it was killed under them.
    cut: usize,
    /// Answers no step expects, with what they said.
    unexpected: Vec<String>,
    started: usize,
    completed: usize,
}

impl Ledger {
    /// The answer if it has the status `expected`; else what happened is counted and the
    /// visit ends there.
    fn take(
        &mut self,
        step: &'static str,
        expected: StatusCode,
        answer: Result<Response, String>,
    ) -> Option<Response> {
        match answer {
            Ok(r) if r.status == expected => {
                *self.steps.entry(step).or_default() += 1;
                Some(r)
            }
            Ok(r) => {
                let body: String = r.body.chars().take(300).collect();
                self.unexpected
                    .push(format!("{step}: {} {body}", r.status.as_u16()));
                None
            }
            Err(e) if e.starts_with("connecting to") => None,
            Err(_) => {
                self.cut += 1;
                None
            }
        }
    }
}

/// Where a visitor's requests go.
#[derive(Clone)]
struct Target {
    addr: String,
    provider: String,
    maildir: PathBuf,
    outbox: PathBuf,
    ledger: Arc<Mutex<Ledger>>,
    clerk: Arc<Mutex<Option<String>>>,
}

const FORM: &str = "application/x-www-form-urlencoded";

impl Target {
    /// One request, given up after 20 seconds.
    async fn ask(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let (kind, text) = body.map_or((None, ""), |(k, t)| (Some(k), t));
        tokio::time::timeout(
            Duration::from_secs(20),
            http::try_send_with(addr, method, path, kind, text, headers),
        )
        .await
        .unwrap_or_else(|_| Err("no answer in 20 s".into()))
    }

    /// A command: the answer if it came with `expected`, recording that `appointment` must
    /// now have an `event`.
    async fn command(
        &self,
        step: &'static str,
        (appointment, event): (Uuid, &'static str),
        expected: StatusCode,
        (method, path): (Method, &str),
        body: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> Option<Response> {
        let answer = self.ask(&self.addr, method, path, body, headers).await;
        let mut ledger = self.ledger.lock().expect("ledger");
        let taken = ledger.take(step, expected, answer)?;
        ledger.acknowledged.push((appointment, event));
        Some(taken)
    }

    /// A read, asked again for up to 30 seconds while the server is away, as a person reloads
    /// a page.
    async fn read(&self, addr: &str, path: &str, cookie: Option<&str>) -> Option<Response> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        while Instant::now() < deadline {
            if let Ok(r) = self.ask(addr, Method::GET, path, None, &headers).await
                && r.status.is_success()
            {
                return Some(r);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    fn clerk(&self) -> Option<String> {
        self.clerk.lock().expect("clerk").clone()
    }

    /// The clerk's session, logged in once; sessions live in the store and outlast the kills.
    async fn log_in(&self) {
        let body =
            serde_json::json!({"tenant": "ettlingen", "login": "k.becker", "password": PASSWORD})
                .to_string();
        loop {
            let answer = self
                .ask(
                    &self.addr,
                    Method::POST,
                    "/api/v1/login",
                    Some(("application/json", &body)),
                    &[],
                )
                .await;
            if let Ok(r) = answer
                && r.status == StatusCode::OK
            {
                let set = r.headers[header::SET_COOKIE].to_str().expect("ascii");
                *self.clerk.lock().expect("clerk") =
                    Some(set.split(';').next().expect("a pair").to_owned());
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Free starts of Ettlingen's Bürgerbüro from `from` on, those of visitor `k`.
    async fn starts(&self, k: usize, from: time::Date) -> Vec<String> {
        let path =
            format!("/api/v1/slots?tenant=ettlingen&services=personalausweis&from={from}&days=14");
        let Some(slots) = self.read(&self.addr, &path, None).await else {
            return vec![];
        };
        let slots: serde_json::Value = serde_json::from_str(&slots.body).expect("json");
        slots["days"]
            .as_array()
            .expect("days")
            .iter()
            .flat_map(|d| d["starts"].as_array().expect("starts").clone())
            .filter_map(|s| s.as_str().map(str::to_owned))
            .enumerate()
            .filter(|(i, _)| i % VISITORS == k)
            .map(|(_, s)| s)
            .collect()
    }

    /// The capability token of the mail to `to`, waited for across restarts.
    async fn token_for(&self, to: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(token) = crate::mail::tokens_to(&self.maildir, to).into_iter().next() {
                return Some(token);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// The SMS the sandbox filed for `phone`: its text.
    fn sms_to(&self, phone: &str) -> Option<String> {
        files_under(&self.outbox)
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .find(|text| text.starts_with(&format!("An: {phone}\n")))
    }
}

/// The path and `host:port` of an absolute `Location`.
fn located(r: &Response) -> (String, String) {
    let location = r.headers[header::LOCATION].to_str().expect("ascii");
    let rest = location
        .split_once("://")
        .map_or(location, |(_, rest)| rest);
    let at = rest.find('/').expect("a path");
    (rest[..at].to_owned(), rest[at..].to_owned())
}

/// One citizen's visit from booking to the end of the session; every step a request a person
/// makes. It stops at the first answer it did not expect (a kill cut it, most likely).
async fn visit(t: &Target, n: usize, start: &str) -> Option<()> {
    t.ledger.lock().expect("ledger").started += 1;
    let email = format!("buerger.{n}@example.org");
    let phone = format!("+49 721 {:07}", 1_000_000 + n);
    let booking = serde_json::json!({
        "tenant": "ettlingen",
        "services": ["personalausweis"],
        "start": start,
        "contact": {"name": format!("Erika Mustermann {n}"), "email": email, "phone": phone},
        "privacy_accepted": true
    })
    .to_string();
    let answer = t
        .ask(
            &t.addr,
            Method::POST,
            "/api/v1/appointments",
            Some(("application/json", &booking)),
            &[],
        )
        .await;
    let booked = {
        let mut ledger = t.ledger.lock().expect("ledger");
        let booked = ledger.take("booking", StatusCode::CREATED, answer)?;
        let booked: serde_json::Value = serde_json::from_str(&booked.body).expect("json");
        let id =
            Uuid::parse_str(booked["appointment"]["id"].as_str().expect("an id")).expect("a uuid");
        ledger.acknowledged.push((id, "AppointmentBooked"));
        id
    };
    let token = t.token_for(&email).await?;
    let clerk = t.clerk()?;
    let cookie = [("cookie", clerk.as_str())];
    let json = [("accept", "application/json")];
    let citizen = format!("/termin/{token}");
    let room = format!("/sachbearbeitung/termin/{booked}/raum");
    let redirect = StatusCode::SEE_OTHER;

    t.command(
        "privacy notice",
        (booked, "PrivacyNoticeAccepted"),
        redirect,
        (Method::POST, &format!("{citizen}/warteraum")),
        Some((FORM, "privacy_accepted=on")),
        &[],
    )
    .await?;
    t.command(
        "admission",
        (booked, "AdmittedFromWaitingRoom"),
        redirect,
        (Method::POST, &format!("{room}/einlassen")),
        Some((FORM, "")),
        &cookie,
    )
    .await?;
    t.command(
        "identity checked",
        (booked, "IdentityVerified"),
        redirect,
        (Method::POST, &format!("{room}/identitaet")),
        Some((
            FORM,
            "document_type=Personalausweis&feature=Hologramm&feature=Lichtbild\
             &feature=Polycarbonat&questions=1&result=verified",
        )),
        &cookie,
    )
    .await?;
    t.command(
        "form attached",
        (booked, "FormAttached"),
        redirect,
        (Method::POST, &format!("{room}/formular")),
        Some((FORM, "vorlage=antrag-personalausweis")),
        &cookie,
    )
    .await?;
    let page = t
        .read(&t.addr, &format!("{citizen}/warteraum"), None)
        .await?;
    let at = page.body.find("data-form=\"")? + 11;
    let form = page.body.get(at..at + 36)?.to_owned();
    let citizen_form = format!("{citizen}/raum/formular/{form}");
    t.command(
        "form filled in",
        (booked, "FieldChanged"),
        redirect,
        (Method::POST, &citizen_form),
        Some((
            FORM,
            &format!("familienname=Mustermann&vorname=Erika{n}&geburtsdatum=1964-08-12"),
        )),
        &[],
    )
    .await?;
    let method = if n.is_multiple_of(2) {
        "touchpad"
    } else {
        "handy_tan"
    };
    t.command(
        "signature requested",
        (booked, "SignatureRequested"),
        redirect,
        (
            Method::POST,
            &format!("{room}/formular/{form}/unterschrift"),
        ),
        Some((FORM, &format!("methode={method}"))),
        &cookie,
    )
    .await?;
    let signature = if method == "touchpad" {
        format!(
            "striche={}",
            form_urlencoded::byte_serialize(STROKES.as_bytes()).collect::<String>()
        )
    } else {
        t.command(
            "Handy-TAN",
            (booked, "TanIssued"),
            StatusCode::OK,
            (Method::POST, &format!("{citizen_form}/tan")),
            Some((FORM, "")),
            &json,
        )
        .await?;
        let sms = t.sms_to(&phone)?;
        format!("tan={}", crate::room_signing::tan_in_sms(&sms))
    };
    t.command(
        "signature",
        (booked, "FormSigned"),
        StatusCode::OK,
        (Method::POST, &format!("{citizen_form}/unterschreiben")),
        Some((FORM, &signature)),
        &json,
    )
    .await?;

    t.command(
        "payment requested",
        (booked, "PaymentRequested"),
        redirect,
        (Method::POST, &format!("{room}/zahlung")),
        Some((FORM, "")),
        &cookie,
    )
    .await?;
    let pay = t
        .command(
            "payment started",
            (booked, "PaymentTransactionCreated"),
            redirect,
            (Method::POST, &format!("{citizen}/raum/zahlung")),
            Some((FORM, "")),
            &[],
        )
        .await?;
    // At the provider, which no kill reaches; it calls the server back and sends the citizen
    // to the return page, which captures (reloaded while the server is away).
    let (provider, page) = located(&pay);
    assert_eq!(provider, t.provider, "the provider's page");
    let decided = t
        .ask(
            &provider,
            Method::POST,
            &page,
            Some((FORM, "entscheidung=genehmigen&methode=paypal")),
            &[],
        )
        .await
        .expect("the provider answers");
    assert_eq!(decided.status, redirect, "{}", decided.body);
    let (back_to, back) = located(&decided);
    assert_eq!(back_to, t.addr, "back to the server");
    t.read(&t.addr, &back, None).await?;
    {
        let mut ledger = t.ledger.lock().expect("ledger");
        *ledger.steps.entry("payment captured").or_default() += 1;
        ledger.acknowledged.push((booked, "PaymentCaptured"));
    }
    t.command(
        "session ended",
        (booked, "SessionEnded"),
        redirect,
        (Method::POST, &format!("{room}/beenden")),
        Some((FORM, "outcome=completed")),
        &cookie,
    )
    .await?;
    t.ledger.lock().expect("ledger").completed += 1;
    Some(())
}

/// Visitor `k`: one visit after another on slots of its own, until `stop`.
async fn visitor(t: Target, k: usize, stop: Arc<AtomicBool>) {
    let mut from = (time::OffsetDateTime::now_utc() + time::Duration::days(2)).date();
    let mut starts = Vec::new();
    let mut n = k;
    while !stop.load(Ordering::Relaxed) {
        if starts.is_empty() {
            starts = t.starts(k, from).await;
            starts.reverse();
            if starts.is_empty() {
                from += time::Duration::days(14);
                continue;
            }
        }
        let start = starts.pop().expect("a start");
        if visit(&t, n, &start).await.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n += VISITORS;
    }
}

/// A random pause of 0.3 to 3 seconds.
fn random_pause() -> Duration {
    // The tail of a v7 id is random.
    let bytes = *Uuid::now_v7().as_bytes();
    let r = u16::from_le_bytes([bytes[14], bytes[15]]);
    Duration::from_millis(300 + u64::from(r) % 2_700)
}

/// With the server down: every acknowledged command has its event, `store verify` passes, and
/// the read models caught up from their checkpoints equal a rebuild. The number of events, and
/// of the `planted` subjects whose deletion is not verified yet.
async fn check_after_kill(
    site: &Site,
    acknowledged: &[(Uuid, &'static str)],
    planted: &[SubjectId],
    round: usize,
) -> (usize, usize) {
    let store = site.open().await;
    let log = whole_log(&store).await;
    let verified: BTreeSet<String> = log
        .iter()
        .filter(|e| e.event_type.as_str() == "DeletionVerified")
        .map(|e| e.stream_id.to_string())
        .collect();
    let unverified = planted
        .iter()
        .filter(|s| !verified.contains(&s.stream().to_string()))
        .count();
    let have: BTreeSet<(Uuid, &str)> = log
        .iter()
        .map(|e| (e.meta.correlation_id, e.event_type.as_str()))
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|(id, event)| !have.contains(&(*id, *event)))
        .collect();
    assert!(
        lost.is_empty(),
        "{} round {round}: acknowledged and lost: {lost:?}",
        site.name
    );

    let verify = crate::videoamt()
        .args(["--store", &site.store, "store", "verify"])
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{} round {round}: {}",
        site.name,
        String::from_utf8_lossy(&verify.stderr)
    );

    let projections = videoamt_projections::all(Arc::new(
        videoamt_core::tenant::example_tenants().expect("valid"),
    ));
    let events: Arc<dyn EventStore> = store.clone();
    let runner = Runner::new(events, store.clone());
    runner.catch_up(&projections).await.expect("catch up");
    let mut resumed = Vec::new();
    for p in &projections {
        resumed.push(store.dump(p.name()).await.expect("dump"));
    }
    runner.rebuild(&projections, |_| {}).await.expect("rebuild");
    for (p, resumed) in projections.iter().zip(resumed) {
        assert!(
            store.dump(p.name()).await.expect("dump") == resumed,
            "{} round {round}: {} caught up after the kill differs from a rebuild",
            site.name,
            p.name()
        );
    }
    (log.len(), unverified)
}

/// Every SMS the sandbox filed: its key and its number.
fn filed_sms(outbox: &Path) -> Vec<(String, String)> {
    files_under(outbox)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".sms.txt"))
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("readable");
            let mut lines = text.lines();
            let to = lines
                .next()
                .and_then(|l| l.strip_prefix("An: "))
                .expect("to");
            let key = lines
                .next()
                .and_then(|l| l.strip_prefix("Schlüssel: "))
                .expect("the key");
            (key.to_owned(), to.to_owned())
        })
        .collect()
}

/// The transaction `reference` as the provider has it.
async fn at_provider(provider: &str, reference: &str) -> wire::PaymentTransaction {
    let bearer = format!("Bearer {PROVIDER_TOKEN}");
    let answer = http::send_with(
        provider,
        Method::GET,
        &format!("/sandbox/zahlung{}/{reference}", wire::TRANSACTIONS),
        None,
        "",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    serde_json::from_str(&answer.body).expect("a transaction")
}

async fn twenty_kills_lose_nothing_acknowledged_and_repeat_no_side_effect(site: Site) {
    let began = Instant::now();
    crate::nodes::add_clerk_k_becker(&site.store, &site.data);
    let target = Target {
        addr: site.addr.clone(),
        provider: site.provider.clone(),
        maildir: site.maildir.clone(),
        outbox: site.outbox(),
        ledger: Arc::default(),
        clerk: Arc::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut planted: Vec<SubjectId> = Vec::new();
    let mut visitors = Vec::new();
    let mut events = 0;
    // Kills that left a planted subject's purge or its verification to do.
    let mut in_the_purge = 0;
    for round in 0..ROUNDS {
        {
            let store = site.open().await;
            planted.extend(crate::due_subjects_in(store, &site.data, DUE_PER_ROUND).await);
        }
        let server = site.serve(round);
        if round == 0 {
            target.log_in().await;
            for k in 0..VISITORS {
                visitors.push(tokio::spawn(visitor(target.clone(), k, stop.clone())));
            }
        }
        tokio::time::sleep(random_pause()).await;
        drop(server); // SIGKILL, and reaped
        let acknowledged = target.ledger.lock().expect("ledger").acknowledged.clone();
        let unverified;
        (events, unverified) = check_after_kill(&site, &acknowledged, &planted, round).await;
        if unverified > 0 {
            in_the_purge += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);

    // One more server finishes what the kills left: the outbox, the purge, the verification.
    let server = site.serve(ROUNDS);
    for v in visitors {
        v.await.expect("a visitor");
    }
    let store = site.open().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let head = store.last_position().await.expect("head");
        let outbox = store
            .checkpoint(videoamt_api::workers::outbox::CHECKPOINT)
            .await
            .expect("checkpoint")
            .position;
        let log = whole_log(&store).await;
        let verified = log
            .iter()
            .filter(|e| e.event_type.as_str() == "DeletionVerified")
            .count();
        // The outbox may be between a mail's delivery and its record, or the SMTP server
        // between its answer and the file: done once both sides name the same mails (a
        // delivery never recorded, or the reverse, never settles and fails below).
        let bracketed = |id: &str| id.trim_start_matches('<').trim_end_matches('>').to_owned();
        let recorded: BTreeSet<String> = log
            .iter()
            .filter_map(|e| match decoded(e) {
                DomainEvent::MailSent(m) => Some(bracketed(&m.message_id)),
                _ => None,
            })
            .collect();
        let arrived: BTreeSet<String> = received(&site.maildir)
            .iter()
            .map(|m| bracketed(&m.id))
            .collect();
        let unrecorded = unrecorded(&log, &arrived, &recorded);
        let unarrived: Vec<&String> = recorded.difference(&arrived).collect();
        if outbox == head
            && verified >= planted.len()
            && unrecorded.is_empty()
            && unarrived.is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the last server did not finish: outbox at {outbox} of {head}, {verified} of {} \
             deletions verified, mails arrived and not recorded {:?}, recorded and not arrived \
             {:?}",
            site.name,
            planted.len(),
            unrecorded,
            unarrived,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(store);
    drop(server);
    let ledger = std::mem::take(&mut *target.ledger.lock().expect("ledger"));
    let (total, unverified) = check_after_kill(&site, &ledger.acknowledged, &planted, ROUNDS).await;
    assert_eq!(unverified, 0, "{}: every deletion verified", site.name);
    let store = site.open().await;
    let log = whole_log(&store).await;

    // Mail: each arrival recorded once, each record arrived, copies under one Message-ID.
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    for e in &log {
        match decoded(e) {
            DomainEvent::MailSent(m) => *sent.entry(m.message_id).or_default() += 1,
            DomainEvent::DeliveryFailed(_) => failed += 1,
            _ => {}
        }
    }
    let mail = received(&site.maildir);
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids_per_mail: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for m in &mail {
        *copies.entry(m.id.as_str()).or_default() += 1;
        ids_per_mail
            .entry((m.to.as_str(), m.subject.as_str()))
            .or_default()
            .insert(m.id.as_str());
    }
    let bracketed = |id: &str| id.trim_start_matches('<').trim_end_matches('>').to_owned();
    let arrived: BTreeSet<String> = copies.keys().map(|id| bracketed(id)).collect();
    let recorded: BTreeSet<String> = sent.keys().map(|id| bracketed(id)).collect();
    assert_eq!(failed, 0, "{}: no mail failed", site.name);
    assert_eq!(
        unrecorded(&log, &arrived, &recorded),
        Vec::<String>::new(),
        "{}: arrived and never recorded",
        site.name
    );
    assert_eq!(
        recorded.difference(&arrived).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "{}: recorded and never arrived",
        site.name
    );
    let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{}: recorded twice: {twice:?}", site.name);
    let split: Vec<_> = ids_per_mail
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .collect();
    assert!(
        split.is_empty(),
        "{}: one mail under several Message-IDs: {split:?}",
        site.name
    );
    let duplicates = mail.len() - copies.len();

    // SMS: every Handy-TAN of the log filed once under its key; none filed twice.
    let sms = filed_sms(&site.outbox());
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, _) in &sms {
        *per_key.entry(key.as_str()).or_default() += 1;
    }
    let handy_tans: Vec<String> = log
        .iter()
        .filter_map(|e| match decoded(e) {
            DomainEvent::TanIssued(t) if t.method == SignatureMethod::HandyTan => {
                Some(t.tan.to_string())
            }
            _ => None,
        })
        .collect();
    let again: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(again.is_empty(), "{}: an SMS twice: {again:?}", site.name);
    for tan in &handy_tans {
        assert_eq!(
            per_key.get(tan.as_str()),
            Some(&1),
            "{}: the SMS of TAN {tan}",
            site.name
        );
    }
    let unrecorded = sms.len() - handy_tans.len();

    // Payments: captured at most once, in the log and at the provider, and the same ones.
    let mut captured_in_log: BTreeMap<String, usize> = BTreeMap::new();
    let mut references: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &log {
        match decoded(e) {
            DomainEvent::PaymentCaptured(_) => {
                *captured_in_log.entry(e.stream_id.to_string()).or_default() += 1;
            }
            DomainEvent::PaymentTransactionCreated(t) => references
                .entry(e.stream_id.to_string())
                .or_default()
                .push(t.provider_reference.to_string()),
            _ => {}
        }
    }
    let mut paid_at_provider = 0;
    for (payment, refs) in &references {
        let mut paid = 0;
        for reference in refs {
            let t = at_provider(&site.provider, reference).await;
            if t.payment_information.status == wire::Status::Payed {
                paid += 1;
            }
        }
        let in_log = captured_in_log.get(payment).copied().unwrap_or_default();
        assert!(
            in_log <= 1,
            "{}: {payment} captured {in_log} times",
            site.name
        );
        assert_eq!(
            paid, in_log,
            "{}: {payment}: paid at the provider against captured in the log",
            site.name
        );
        paid_at_provider += paid;
    }

    // Purges: each planted subject purged once and verified once.
    for subject in &planted {
        let stream = store.read_stream(&subject.stream(), 0).await.expect("read");
        let n = |kind: &str| {
            stream
                .iter()
                .filter(|e| e.event_type.as_str() == kind)
                .count()
        };
        assert_eq!(
            (
                n("PurgeExecuted"),
                n("DeletionVerified"),
                n("DeletionVerificationFailed")
            ),
            (1, 1, 0),
            "{} {subject}",
            site.name
        );
    }

    let acknowledged = ledger.acknowledged.len();
    eprintln!(
        "crash loop on {}: {ROUNDS} kills in {:.0} s; {acknowledged} commands acknowledged, 0 lost \
         ({:?}); {} requests cut by a kill; {} visits begun, {} to the end; {} answers no step \
         expects {:?}; log {events} events at the last kill, {total} in the end; mails: {} \
         received, {} recorded, {duplicates} duplicated (same Message-ID); SMS: {} filed, {} \
         Handy-TANs recorded, {unrecorded} filed for a TAN a kill kept from the log, 0 twice; \
         payments: {} captured in the log, {paid_at_provider} at the provider, 0 twice; {} \
         subjects purged and verified once each, {in_the_purge} kills with some of them still \
         to purge or verify",
        site.name,
        began.elapsed().as_secs_f64(),
        ledger.steps,
        ledger.cut,
        ledger.started,
        ledger.completed,
        ledger.unexpected.len(),
        ledger.unexpected.iter().take(5).collect::<Vec<_>>(),
        mail.len(),
        sent.len(),
        sms.len(),
        handy_tans.len(),
        captured_in_log.values().sum::<usize>(),
        planted.len(),
    );
    // A visit only stops early because a kill cut a request or found the server gone; a
    // refusal would be a step the server forgot or a state it lost.
    assert!(
        ledger.unexpected.is_empty(),
        "{}: answers no step expects: {:?}",
        site.name,
        ledger.unexpected
    );
    assert!(
        ledger.completed > 0 && ledger.steps.get("signature").is_some_and(|n| *n > 0),
        "{}: the mix must have reached its end: {:?}",
        site.name,
        ledger.steps
    );
    drop(store);
    if let Some(db) = site.scratch {
        db.drop_now().await.expect("drop scratch database");
    }
}
