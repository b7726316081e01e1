//! More than one server on one log: two `videoamt serve` processes on one PostgreSQL database
//! and one data folder, as behind a load balancer, with requests spread across them. Both run
//! every background duty; the leases let one of them do each (ADR 0023): every mail goes out
//! once, every due timer fires once, every due purge runs once. The SMTP server on loopback
//! counts what really went out.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode, header};

use crate::http;
use crate::mail::{Killed, listening, mails, smtp_server, wait_until};

pub(crate) const PASSWORD: &str = "ein-gutes-passwort";
const BOOKINGS: usize = 12;
const DUE: usize = 40;
/// Reminders due, and no-show checks due, planted before the servers start.
const TIMERS: usize = 10;

/// A scratch PostgreSQL database, a data folder and an SMTP server on loopback, for servers
/// to share.
struct Cluster {
    db: videoamt_adapters::store::postgres::ScratchDatabase,
    url: String,
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    maildir: std::path::PathBuf,
    smtp: String,
    _smtp_server: Killed,
}

impl Cluster {
    async fn new(purpose: &str) -> Option<Self> {
        use videoamt_adapters::store::postgres::{ScratchDatabase, test_server_url};
        let server = test_server_url().await?;
        let db = ScratchDatabase::create(&server, purpose)
            .await
            .expect("scratch database");
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("maildir");
        let (smtp_server, port) = smtp_server(&maildir);
        Some(Self {
            url: db.url(),
            db,
            data: dir.path().join("data"),
            _dir: dir,
            maildir,
            smtp: format!("smtp://127.0.0.1:{port}"),
            _smtp_server: smtp_server,
        })
    }

    /// `videoamt serve` on the cluster's database, data folder and SMTP server, as `role`.
    fn node(&self, role: &str) -> (Killed, String) {
        let log = self
            .data
            .with_file_name(format!("serve-{}.log", uuid::Uuid::now_v7()));
        let mut command = crate::videoamt();
        command
            .args(["--store", &self.url])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["serve", "--listen", "127.0.0.1:0", "--role", role])
            .env("VIDEOAMT_SMTP_URL", &self.smtp)
            .env("VIDEOAMT_RETENTION_INTERVAL_MS", "200")
            .env("VIDEOAMT_LEASE_SECONDS", "3")
            .env("VIDEOAMT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        listening(command, Some(&log))
    }

    /// `k.becker`, a clerk of Ettlingen's Bürgerbüro, added before the servers start.
    fn clerk_k_becker(&self) {
        add_clerk_k_becker(&self.url, &self.data);
    }

    async fn drop_now(self) {
        self.db.drop_now().await.expect("drop scratch database");
    }
}

/// Adds `k.becker` (password [`PASSWORD`]), a clerk of Ettlingen's Bürgerbüro, to the store at
/// `store` with the data folder `data`.
pub(crate) fn add_clerk_k_becker(store: &str, data: &Path) {
    let (ok, _, err) = crate::cli::user_add(
        store,
        data,
        &[
            "--tenant",
            "ettlingen",
            "--role",
            "clerk",
            "--department",
            "buergerbuero",
            "--login",
            "k.becker",
        ],
        PASSWORD,
    );
    assert!(ok, "{err}");
}

/// One SQL count on the scratch database.
async fn count(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.expect("query").get(0)
}

/// Whether the outbox has worked through the whole log.
async fn outbox_idle(url: &str) -> bool {
    count(
        url,
        "SELECT (SELECT last FROM event_position) - \
         coalesce((SELECT position FROM projection_checkpoints WHERE projection = 'mail-outbox'), 0)",
    )
    .await
        == 0
}

async fn until_async<F, Fut>(what: &str, timeout: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < timeout, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first `n` free starts a week from now in Ettlingen's Bürgerbüro.
async fn free_starts(addr: &str, n: usize) -> Vec<String> {
    let from = (time::OffsetDateTime::now_utc() + time::Duration::days(7)).date();
    let slots = http::get(
        addr,
        &format!("/api/v1/slots?tenant=ettlingen&services=personalausweis&from={from}&days=14"),
    )
    .await;
    assert_eq!(slots.status, 200, "{}", slots.body);
    let slots: serde_json::Value = serde_json::from_str(&slots.body).expect("json");
    let starts: Vec<String> = slots["days"]
        .as_array()
        .expect("days")
        .iter()
        .flat_map(|d| d["starts"].as_array().expect("starts").clone())
        .filter_map(|s| s.as_str().map(str::to_owned))
        .take(n)
        .collect();
    assert_eq!(starts.len(), n, "free starts");
    starts
}

async fn book(addr: &str, start: &str, n: usize) {
    let booking = serde_json::json!({
        "tenant": "ettlingen",
        "services": ["personalausweis"],
        "start": start,
        "contact": {"name": format!("Erika Mustermann {n}"), "email": format!("erika.{n}@example.org")},
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
}

/// A mail as the SMTP server received it.
pub(crate) struct Received {
    pub(crate) to: String,
    pub(crate) id: String,
    pub(crate) subject: String,
    /// The capability token of its `/termin/…` link, if it has one.
    pub(crate) token: Option<String>,
}

/// Every mail the SMTP server received into `maildir`.
pub(crate) fn received(maildir: &Path) -> Vec<Received> {
    mails(maildir)
        .iter()
        .map(|file| {
            let raw = std::fs::read(file).expect("mail");
            let mail = mail_parser::MessageParser::default()
                .parse(&raw)
                .expect("an RFC 5322 message");
            let to = mail
                .to()
                .and_then(|t| t.first())
                .and_then(|a| a.address())
                .expect("to")
                .to_owned();
            let text = mail.body_text(0).expect("text").into_owned();
            let token = text.split("/termin/").nth(1).and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
                    .next()
                    .map(str::to_owned)
            });
            Received {
                to,
                id: mail.message_id().expect("a Message-ID").to_owned(),
                subject: mail.subject().unwrap_or_default().to_owned(),
                token,
            }
        })
        .collect()
}

/// Logs in on `addr`: the session cookie, `name=value`.
async fn log_in(addr: &str, login: &str) -> String {
    let answer = http::post(
        addr,
        "/api/v1/login",
        "application/json",
        &serde_json::json!({"tenant": "ettlingen", "login": login, "password": PASSWORD})
            .to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let set = answer.headers[header::SET_COOKIE].to_str().expect("ascii");
    set.split(';').next().expect("a pair").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_log_share_sessions_and_live_views_and_do_each_duty_once() {
    let Some(cluster) = Cluster::new("nodes").await else {
        return;
    };
    let (url, maildir) = (cluster.url.clone(), cluster.maildir.clone());

    // Before the servers start: a clerk of the Bürgerbüro, and subjects whose purge is due.
    cluster.clerk_k_becker();
    let store = videoamt_adapters::store::StoreLocation::parse(&url)
        .expect("location")
        .open()
        .await
        .expect("open");
    crate::due_subjects_in(store.clone(), &cluster.data, DUE).await;
    // And bookings whose reminder is due, and others whose no-show check is.
    let (remind, no_shows) = {
        let kek = videoamt_adapters::keys::Kek::load(&cluster.data).expect("kek");
        let system = videoamt_api::app::System::new(
            store.clone(),
            kek,
            &cluster.data,
            videoamt_core::tenant::example_tenants().expect("valid"),
        );
        let events: Arc<dyn videoamt_core::store::EventStore> = store.clone();
        videoamt_scenarios::due::due_timers(
            &events,
            &system.keys,
            TIMERS,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .expect("due timers")
    };

    let (_a, a) = cluster.node("all");
    let (_b, b) = cluster.node("all");

    // A login on one server is a session on the other, and a logout on that one ends it on both.
    let cookie = log_in(&a, "k.becker").await;
    let me = |addr: String, cookie: String| async move {
        http::send_with(
            &addr,
            Method::GET,
            "/api/v1/me",
            None,
            "",
            &[("cookie", &cookie)],
        )
        .await
        .status
    };
    assert_eq!(me(b.clone(), cookie.clone()).await, StatusCode::OK);
    let other = log_in(&b, "k.becker").await;
    let out = http::send_with(
        &b,
        Method::POST,
        "/api/v1/logout",
        None,
        "",
        &[("cookie", &other)],
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(me(a.clone(), other).await, StatusCode::UNAUTHORIZED);

    // Bookings spread across both servers: each confirmation goes out exactly once, although
    // both run the outbox.
    let starts = free_starts(&a, BOOKINGS).await;
    for (n, start) in starts.iter().enumerate() {
        book(if n % 2 == 0 { &a } else { &b }, start, n).await;
    }
    let bookings = |got: &[Received]| got.iter().filter(|m| m.to.starts_with("erika.")).count();
    wait_until("every confirmation", Duration::from_secs(60), || {
        (bookings(&received(&maildir)) >= BOOKINGS).then_some(())
    });
    until_async(
        "the outbox at the log's end",
        Duration::from_secs(60),
        || outbox_idle(&url),
    )
    .await;
    // Both outboxes had every chance to send a second copy: one more lease period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = received(&maildir);
    let mut per_address: BTreeMap<&str, usize> = BTreeMap::new();
    for m in got.iter().filter(|m| m.to.starts_with("erika.")) {
        *per_address.entry(m.to.as_str()).or_default() += 1;
    }
    let ids: std::collections::HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
    eprintln!(
        "two nodes: {BOOKINGS} bookings, {} mails received ({} of them confirmations), {} \
         distinct Message-IDs",
        got.len(),
        bookings(&got),
        ids.len()
    );
    assert_eq!(
        bookings(&got),
        BOOKINGS,
        "one mail per booking: {per_address:?}"
    );
    assert_eq!(ids.len(), got.len(), "no mail twice");
    assert!(per_address.values().all(|n| *n == 1), "{per_address:?}");

    // The clerk's live waiting room on A shows a citizen who entered on B.
    let live = http::open(
        &a,
        Method::GET,
        "/sachbearbeitung/live",
        None,
        "",
        &[("cookie", &cookie), ("accept", "text/event-stream")],
    )
    .await;
    assert_eq!(live.status(), StatusCode::OK);
    let seen = Arc::new(Mutex::new(String::new()));
    let reading = {
        let seen = seen.clone();
        let mut body = live.into_body();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(bytes) = frame.data_ref() {
                    seen.lock()
                        .expect("lock")
                        .push_str(&String::from_utf8_lossy(bytes));
                }
            }
        })
    };
    wait_until(
        "the live view's first events",
        Duration::from_secs(20),
        || {
            seen.lock()
                .expect("lock")
                .contains("event: warteraum")
                .then_some(())
        },
    );
    let token = got
        .iter()
        .find(|m| m.to == "erika.3@example.org")
        .and_then(|m| m.token.clone())
        .expect("the mail to erika.3, with its link");
    // The waiting room shows no names: somebody waits, in the Bürgerbüro.
    assert!(seen.lock().expect("lock").contains("Niemand wartet."));
    assert!(!seen.lock().expect("lock").contains("wartet seit"));
    let entered = Instant::now();
    let answer = http::post(
        &b,
        &format!("/termin/{token}/warteraum"),
        "application/x-www-form-urlencoded",
        "privacy_accepted=on",
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    wait_until(
        "the citizen in the live waiting room",
        Duration::from_secs(20),
        || {
            let seen = seen.lock().expect("lock");
            (seen.contains("wartet seit") && seen.contains("Bürgerbüro")).then_some(())
        },
    );
    eprintln!(
        "two nodes: citizen entered on B, shown live on A after {} ms",
        entered.elapsed().as_millis()
    );
    reading.abort();

    // Every due purge ran once and was verified once, although both run the scheduler.
    until_async("every purge verified", Duration::from_secs(90), || async {
        count(
            &url,
            "SELECT count(*) FROM events WHERE event_type = 'DeletionVerified'",
        )
        .await
            >= DUE as i64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for kind in ["PurgeExecuted", "DeletionVerified"] {
        let n = count(
            &url,
            &format!("SELECT count(*) FROM events WHERE event_type = '{kind}'"),
        )
        .await;
        assert_eq!(n, DUE as i64, "{kind}");
    }
    // Every due timer fired once: one reminder each, and its mail once; one no-show each.
    until_async("every timer fired", Duration::from_secs(60), || async {
        let fired = count(
            &url,
            "SELECT count(*) FROM events WHERE event_type IN ('ReminderSent', 'NoShowRecorded')",
        )
        .await;
        let reminded = received(&maildir)
            .iter()
            .filter(|m| m.subject.starts_with("Erinnerung"))
            .count();
        fired >= 2 * TIMERS as i64 && reminded >= TIMERS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (kind, appointments) in [("ReminderSent", &remind), ("NoShowRecorded", &no_shows)] {
        for appointment in appointments {
            let n = count(
                &url,
                &format!(
                    "SELECT count(*) FROM events WHERE event_type = '{kind}' \
                     AND stream_id = 'appointment-{}'",
                    appointment.0
                ),
            )
            .await;
            assert_eq!(n, 1, "{kind} of {}", appointment.0);
        }
        let all = count(
            &url,
            &format!("SELECT count(*) FROM events WHERE event_type = '{kind}'"),
        )
        .await;
        assert_eq!(all, TIMERS as i64, "{kind}: no other");
    }
    let reminders: Vec<_> = received(&maildir)
        .into_iter()
        .filter(|m| m.subject.starts_with("Erinnerung"))
        .collect();
    let ids: std::collections::HashSet<&str> = reminders.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        (reminders.len(), ids.len()),
        (TIMERS, TIMERS),
        "one reminder mail each"
    );
    eprintln!(
        "two nodes: {TIMERS} reminders and {TIMERS} no-show checks due, each fired once; \
         {} reminder mails, {} Message-IDs",
        reminders.len(),
        ids.len()
    );

    // Each duty had one holder: one row per duty.
    assert_eq!(
        count(&url, "SELECT count(DISTINCT duty) FROM leases").await,
        2
    );
    assert_eq!(count(&url, "SELECT count(*) FROM leases").await, 2);

    drop((_a, _b));
    cluster.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_leaves_the_background_work_to_a_worker() {
    let Some(cluster) = Cluster::new("roles").await else {
        return;
    };
    let (url, maildir) = (cluster.url.clone(), cluster.maildir.clone());

    let (web_process, web) = cluster.node("web");
    let start = free_starts(&web, 1).await.remove(0);
    book(&web, &start, 1).await;
    // The web server takes no duty and sends nothing, however long it runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&url, "SELECT count(*) FROM leases").await, 0);
    assert!(mails(&maildir).is_empty());

    let (_worker_process, worker) = cluster.node("worker");
    wait_until(
        "the confirmation, sent by the worker",
        Duration::from_secs(30),
        || mails(&maildir).first().cloned(),
    );
    let health = http::get(&worker, "/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(http::get(&worker, "/readyz").await.status, StatusCode::OK);
    // A worker serves no pages and no API.
    assert_eq!(
        http::get(&worker, "/api/v1/catalogue").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        http::get(&web, "/api/v1/catalogue").await.status,
        StatusCode::OK
    );
    drop(web_process);
    cluster.drop_now().await;
}

/// The next message of `kind` on `socket`, within 30 seconds in all (pings do not count).
async fn heard(socket: &mut crate::room::Socket, kind: &str) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(30), crate::room::until(socket, kind))
        .await
        .unwrap_or_else(|_| panic!("no {kind:?} message within 30 s"))
}

/// The UDP ports the relay's answer names as its candidates.
fn candidate_ports(sdp: &str) -> Vec<u16> {
    sdp.lines()
        .filter(|l| l.starts_with("a=candidate"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect()
}

/// A party's offer over its room socket, the relay's answer, and the peer started with it.
async fn call(socket: &mut crate::room::Socket) -> (videoamt_adapters::media::peer::Peer, String) {
    use futures::SinkExt as _;
    use videoamt_adapters::media::peer::{self, PeerOptions, Traffic};
    let (offer, sdp) = peer::offer(PeerOptions::default()).expect("a peer offers");
    let message = serde_json::json!({"type": "offer", "sdp": sdp}).to_string();
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(message))
        .await
        .expect("offer sent");
    let answer = heard(socket, "answer").await;
    let sdp = answer["sdp"].as_str().expect("an SDP answer").to_owned();
    let started = offer.start(&sdp, Traffic::LIGHT).expect("the peer starts");
    (started, sdp)
}

async fn say(socket: &mut crate::room::Socket, message: serde_json::Value) {
    use futures::SinkExt as _;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            message.to_string(),
        ))
        .await
        .expect("sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_through_with_the_citizens_socket_on_one_server_and_the_clerks_on_another() {
    let Some(cluster) = Cluster::new("room_nodes").await else {
        return;
    };
    let (url, maildir) = (cluster.url.clone(), cluster.maildir.clone());
    cluster.clerk_k_becker();
    // Two servers, each with its own media relay and room hub.
    let (_a, a) = cluster.node("all");
    let (_b, b) = cluster.node("all");
    let start = free_starts(&a, 1).await.remove(0);
    book(&a, &start, 0).await;
    let token = wait_until("the confirmation", Duration::from_secs(30), || {
        received(&maildir).into_iter().find_map(|m| m.token)
    });
    let entered = http::post(
        &a,
        &format!("/termin/{token}/warteraum"),
        "application/x-www-form-urlencoded",
        "privacy_accepted=on",
    )
    .await;
    assert_eq!(entered.status, StatusCode::SEE_OTHER, "{}", entered.body);
    let appointment = http::get(&a, &format!("/api/v1/appointments/by-token/{token}")).await;
    assert_eq!(appointment.status, StatusCode::OK, "{}", appointment.body);
    let appointment: serde_json::Value = serde_json::from_str(&appointment.body).expect("json");
    let appointment = appointment["id"].as_str().expect("an id").to_owned();
    let cookie = log_in(&b, "k.becker").await;

    // The citizen's socket on A, the clerk's on B.
    let (addr_a, addr_b) = (
        a.parse().expect("A's address"),
        b.parse().expect("B's address"),
    );
    let mut citizen = crate::room::open(addr_a, &format!("/termin/{token}/raum/ws"), None)
        .await
        .expect("the citizen's socket on A");
    assert_eq!(heard(&mut citizen, "waiting").await["type"], "waiting");
    let room = format!("/sachbearbeitung/termin/{appointment}/raum");
    let mut clerk = crate::room::open(addr_b, &format!("{room}/ws"), Some(&cookie))
        .await
        .expect("the clerk's socket on B");
    let seen = heard(&mut clerk, "room").await;
    assert_eq!(seen["admitted"], false);
    // The room is A's, where its first socket arrived; B carries the clerk's socket there.
    let holders = count(
        &url,
        &format!("SELECT count(*) FROM leases WHERE duty LIKE 'room:%' AND holder = 'http://{a}'"),
    )
    .await;
    assert_eq!(holders, 1, "the room's lease is A's");

    // The clerk admits on B; the citizen's socket on A hears it.
    let admitted = http::send_with(
        &b,
        Method::POST,
        &format!("{room}/einlassen"),
        Some("application/x-www-form-urlencoded"),
        "",
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!(admitted.status, StatusCode::SEE_OTHER, "{}", admitted.body);
    loop {
        let m = heard(&mut citizen, "room").await;
        if m["admitted"] == true {
            break;
        }
    }

    // What one side's socket says reaches the other's, across the servers.
    say(
        &mut citizen,
        serde_json::json!({"type": "media", "camera": false, "microphone": true}),
    )
    .await;
    let muted = heard(&mut clerk, "peer-media").await;
    assert_eq!(
        (muted["camera"].clone(), muted["microphone"].clone()),
        (false.into(), true.into())
    );
    say(
        &mut clerk,
        serde_json::json!({"type": "quality", "packets": 900, "lost": 3, "rtt_ms": 12.5}),
    )
    .await;
    let quality = heard(&mut citizen, "peer-quality").await;
    assert_eq!(quality["lost"], 3);

    // Both legs of the call are on one relay: the two answers name the same UDP port, and
    // media flows both ways.
    let (citizen_peer, citizen_sdp) = call(&mut citizen).await;
    let (clerk_peer, clerk_sdp) = call(&mut clerk).await;
    let (ports_citizen, ports_clerk) = (candidate_ports(&citizen_sdp), candidate_ports(&clerk_sdp));
    assert!(!ports_citizen.is_empty(), "{citizen_sdp}");
    assert_eq!(ports_citizen, ports_clerk, "one relay answers both offers");
    until_async("media both ways", Duration::from_secs(30), || async {
        citizen_peer.received() > 20 && clerk_peer.received() > 20
    })
    .await;
    eprintln!(
        "room across nodes: citizen on A, clerk on B, both legs on A's relay (port {}): \
         {} packets to the citizen, {} to the clerk",
        ports_citizen[0],
        citizen_peer.received(),
        clerk_peer.received()
    );
    citizen_peer.close().await;
    clerk_peer.close().await;

    // Both sockets close, the clerk's on B: A sees both go, and with the room's last socket
    // it gives the room up.
    clerk.close(None).await.expect("closed");
    citizen.close(None).await.expect("closed");
    until_async(
        "the room's lease given up",
        Duration::from_secs(20),
        || async { count(&url, "SELECT count(*) FROM leases WHERE duty LIKE 'room:%'").await == 0 },
    )
    .await;
    drop((_a, _b));
    cluster.drop_now().await;
}
