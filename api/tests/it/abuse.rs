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

/// A foreign page cannot make a clerk's browser post in the clerk's name, whatever it does
/// with the `Origin` header: a browser that says where the request comes from
/// (`Sec-Fetch-Site`) is believed, `Origin: null` alone (a sandboxed frame, a `data:` page) is
/// not this site, and the session cookie is `SameSite=Strict` so that a cross-site request
/// carries none anyway. Only a client that sends no browser headers at all (curl) gets
/// through, and it needs the cookie itself.
#[tokio::test]
async fn a_foreign_page_cannot_post_in_a_clerks_name_even_without_an_origin_header() {
    use axum::http::StatusCode;
    let room = crate::room_documents::Room::waiting().await;
    let before = room.api.last_position().await;
    let admit = format!(
        "/sachbearbeitung/termin/{}/raum/einlassen",
        room.appointment.0
    );
    let cookie = room.clerk.clone();
    for (why, headers) in [
        (
            "cross-site, no Origin",
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a sibling subdomain, no Origin",
            vec![("sec-fetch-site", "same-site")],
        ),
        ("Origin: null alone", vec![("origin", "null")]),
        (
            "Origin: null from a cross-site frame",
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
        (
            "an Origin that only ends like this host",
            vec![("origin", "http://evil-localhost"), ("host", "localhost")],
        ),
    ] {
        let mut all = vec![("cookie", cookie.as_str())];
        all.extend(headers);
        let (status, _, problem) = room.api.call("POST", &admit, None, &all).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}: {problem}");
        assert_eq!(
            room.api.last_position().await,
            before,
            "{why}: nothing written"
        );
    }
    // The cookie never travels with a cross-site request.
    let (_, headers, _) = room
        .api
        .post(
            "/api/v1/login",
            &serde_json::json!({"tenant": "ettlingen", "login": "g.kraus",
                                "password": "ein-gutes-passwort"}),
        )
        .await;
    let set_cookie = headers[axum::http::header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    // The clerk's own page posts (Sec-Fetch-Site: same-origin) admit.
    let (status, headers, _) = room
        .api
        .call(
            "POST",
            &admit,
            None,
            &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert!(
        status.is_success() || status.is_redirection(),
        "{status} {headers:?}"
    );
    assert!(room.api.last_position().await > before, "admitted");
}

/// Session fixation: a session id chosen before the login (planted by an attacker, or left
/// from an earlier login in the same browser) is never the one the login hands out; the
/// planted one opens nothing, and every login gets a fresh id.
#[tokio::test]
async fn a_login_never_takes_over_a_session_id_the_browser_brought() {
    use axum::http::{StatusCode, header};
    let room = crate::room_documents::Room::waiting().await;
    let (name, earlier) = room.clerk.split_once('=').expect("name=value");
    let planted = format!("{name}=angreifer-kennt-diese-sitzung");
    let credentials = serde_json::json!({"tenant": "ettlingen", "login": "a.becker",
                                         "password": "ein-gutes-passwort"});
    let mut issued = vec![earlier.to_owned()];
    for brought in [planted.as_str(), room.clerk.as_str()] {
        let (status, headers, body) = room
            .api
            .call(
                "POST",
                "/api/v1/login",
                Some(credentials.to_string().into_bytes()),
                &[("cookie", brought)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let set = headers[header::SET_COOKIE].to_str().expect("ascii");
        let pair = set.split(';').next().expect("a pair");
        let (_, value) = pair.split_once('=').expect("name=value");
        assert!(
            !issued.iter().any(|v| v == value) && !brought.ends_with(value),
            "a fresh id for every login: {value}"
        );
        issued.push(value.to_owned());
    }
    let (status, _, _) = room
        .api
        .call("GET", "/api/v1/me", None, &[("cookie", &planted)])
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the planted id opens nothing"
    );
    // The new ones work.
    let newest = format!("{name}={}", issued.last().expect("issued"));
    let (status, _, me) = room
        .api
        .call("GET", "/api/v1/me", None, &[("cookie", &newest)])
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
}

/// Every download and file route refuses a path that climbs out of where it reads (plain,
/// percent-encoded, doubly encoded, backslashed, absolute), with a 4xx and never a byte of
/// what lies outside: the data folder's key-encryption key is the prize here.
#[tokio::test]
async fn no_download_climbs_out_of_its_folder() {
    let room = crate::room_documents::Room::admitted().await;
    // The test server's KEK lives in memory: a canary stands where a real one would lie (in
    // the data folder) and beside it.
    let kek = b"KANARIENVOGEL-statt-des-KEK".to_vec();
    let data = room.api.state.system.data_dir.clone();
    for folder in [data.clone(), data.join("..")] {
        std::fs::create_dir_all(&folder).expect("the data folder");
        let path = folder.join("kek");
        if !path.exists() {
            std::fs::write(&path, &kek).expect("the canary");
        }
    }
    let token = room.token.clone();
    let id = room.appointment.0;
    let climbs = [
        "..%2F..%2Fkek",
        "%2e%2e%2f%2e%2e%2fkek",
        "%252e%252e%252fkek",
        "..%5C..%5Ckek",
        "%2Fetc%2Fpasswd",
        "..",
        "...",
    ];
    let mut routes: Vec<(String, bool)> = Vec::new();
    for climb in climbs {
        routes.push((format!("/termin/{token}/raum/dokumente/{climb}"), false));
        routes.push((
            format!("/sachbearbeitung/termin/{id}/raum/dokumente/{climb}"),
            true,
        ));
        routes.push((format!("/termin/{token}/raum/formular/{climb}/pdf"), false));
        routes.push((
            format!("/sachbearbeitung/termin/{id}/raum/formular/{climb}/pdf"),
            true,
        ));
        routes.push((format!("/static/{climb}"), false));
        routes.push((format!("/termin/{climb}"), false));
        routes.push((format!("/dev/outbox/{climb}/x.eml"), false));
        routes.push((format!("/dev/outbox/{}/{climb}", room.subject_id()), false));
    }
    let state = room.api.state.clone().with_dev_outbox();
    for (path, as_clerk) in routes {
        let mut request = axum::http::Request::builder().uri(&path);
        if as_clerk {
            request = request.header("cookie", &room.clerk);
        }
        let request = request.body(axum::body::Body::empty()).expect("request");
        let response = tower::ServiceExt::oneshot(videoamt_api::http::app(state.clone()), request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(
            !body.windows(kek.len()).any(|w| w == kek.as_slice()),
            "{path}: the key leaked"
        );
        assert!(
            !body.windows(5).any(|w| w == b"root:"),
            "{path}: /etc/passwd"
        );
    }
}

/// A clerk of another department of the same town, and one of another town, reach for every
/// door of a room they have no business in: its page, socket, admission, send-back, removal,
/// identity check, documents, forms, signature, payment, hand-over and end. Each answers as if
/// the appointment did not exist, and nothing is written; the room's own clerk still gets in.
#[tokio::test]
async fn a_clerk_of_another_department_or_town_reaches_nothing_of_a_room() {
    use axum::http::StatusCode;
    let room = crate::room_documents::Room::admitted().await;
    let form = room.attach().await.0;
    let trade_office = crate::room_documents::login(&room.api, "ettlingen", "g.kraus").await;
    let stuttgart = crate::room_documents::login(&room.api, "stuttgart", "s.wolf").await;
    let before = room.api.last_position().await;
    let own = format!("/sachbearbeitung/termin/{}/raum", room.appointment.0);
    let none = format!("/sachbearbeitung/termin/{}/raum", uuid::Uuid::now_v7());
    let doors: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", String::new(), None),
        ("GET", "/dokumente".into(), None),
        ("GET", "/zahlung/panel".into(), None),
        ("GET", format!("/formular/{form}/pdf"), None),
        ("POST", "/einlassen".into(), Some("")),
        ("POST", "/zurueckschicken".into(), Some("")),
        ("POST", "/entfernen".into(), Some("")),
        ("POST", "/identitaet".into(), Some("ergebnis=bestaetigt")),
        (
            "POST",
            "/formular".into(),
            Some("vorlage=antrag-personalausweis"),
        ),
        ("POST", format!("/formular/{form}"), Some("nachname=Fremd")),
        (
            "POST",
            format!("/formular/{form}/unterschrift"),
            Some("methode=touchpad"),
        ),
        ("POST", "/zahlung".into(), Some("")),
        ("POST", "/uebergabe".into(), Some("")),
        ("POST", "/beenden".into(), Some("outcome=completed")),
    ];
    for (method, door, form_body) in &doors {
        let (unknown_status, _, _) = crate::staff::browse(
            &room.api,
            method,
            &format!("{none}{door}"),
            Some(&room.clerk),
            *form_body,
        )
        .await;
        for (who, cookie) in [("g.kraus", &trade_office), ("s.wolf", &stuttgart)] {
            let (status, _, body) = crate::staff::browse(
                &room.api,
                method,
                &format!("{own}{door}"),
                Some(cookie),
                *form_body,
            )
            .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{who} {method} {door}: {body}"
            );
            assert_eq!(
                status, unknown_status,
                "{who} {method} {door}: as if there were no such appointment"
            );
            assert_eq!(
                room.api.last_position().await,
                before,
                "{who} {method} {door}: nothing written"
            );
        }
    }
    // The socket neither, over a real connection (an upgrade needs one).
    let addr = crate::room::serve(&room.api).await;
    for cookie in [&trade_office, &stuttgart] {
        let refused = crate::room::open(addr, &format!("{own}/ws"), Some(cookie)).await;
        assert_eq!(refused.err(), Some(StatusCode::NOT_FOUND));
    }
    assert_eq!(room.api.last_position().await, before, "nothing written");
    // The room's own clerk opens the page.
    let (status, _, _) =
        crate::staff::browse(&room.api, "GET", &own, Some(&room.clerk), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// POSTs the booking `body` over a connection from `peer`.
async fn book_from(
    api: &crate::router::Api,
    body: serde_json::Value,
    peer: Option<std::net::SocketAddr>,
) -> (
    axum::http::StatusCode,
    axum::http::HeaderMap,
    serde_json::Value,
) {
    api.call_from(
        peer,
        "POST",
        "/api/v1/appointments",
        Some(body.to_string().into_bytes()),
        &[],
    )
    .await
}

/// Whoever books gets no link: it goes to the mailbox given, so a booking is confirmed, and
/// its slots kept, only by whoever reads that mailbox. And nobody books in bulk: a mailbox
/// books three appointments a day at a municipality, a client address thirty (the product's
/// defaults; here the address cap is lowered to two for a short test).
#[tokio::test]
async fn a_booking_answers_without_its_link_and_mailboxes_and_addresses_have_a_daily_cap() {
    use axum::http::{StatusCode, header};
    use videoamt_api::app::settings::BookingCapSetting;

    use crate::router::{Api, assert_refused, booking};

    assert_eq!(
        BookingCapSetting::default(),
        BookingCapSetting {
            mailbox: 3,
            address: 30
        }
    );
    let mut api = Api::new().await;
    api.state = api.state.clone().with_booking_caps(BookingCapSetting {
        mailbox: 3,
        address: 1_000,
    });
    let start = |day: u8, hour: u8| format!("2026-11-{day}T{hour:02}:00:00+01:00");
    let from = |last: u8| Some(std::net::SocketAddr::from(([192, 0, 2, last], 40_000)));

    // Three bookings of one mailbox, from three addresses: each answers without the link.
    for (n, hour) in [8, 9, 10].into_iter().enumerate() {
        let (status, headers, body) =
            book_from(&api, booking(&start(24, hour)), from(n as u8 + 1)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(!headers.contains_key(header::LOCATION), "{headers:?}");
        let token = api.token_of(&body);
        let text = format!("{body} {headers:?}");
        assert!(!text.contains(&token), "the answer holds the link: {text}");
        assert!(!text.contains("/termin/"), "{text}");
    }
    // The fourth, in other letters and from yet another address: refused, nothing written.
    let mut shouted = booking(&start(24, 11));
    shouted["contact"]["email"] = "Erika@Example.ORG".into();
    let before = api.last_position().await;
    let response = book_from(&api, shouted.clone(), from(4)).await;
    let retry = response.1[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse::<u64>()
        .expect("seconds");
    assert!((1..=24 * 3600).contains(&retry), "{retry}");
    let problem = assert_refused(&api, response, StatusCode::TOO_MANY_REQUESTS, before).await;
    assert_eq!(problem["type"], "/problems/booking-cap");
    assert_eq!(problem["title"], "Zu viele Buchungen");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("telefonisch") && !d.contains("rika")),
        "{problem}"
    );
    // The same through the pages: the form again, filled in, with the reason.
    let form = format!(
        "tenant=ettlingen&anliegen=personalausweis&anliegen=meldebescheinigung&start={}\
         &name=Erika+Mustermann&email=erika%40example.org&phone=&privacy_accepted=true",
        start(24, 11).replace('+', "%2B").replace(':', "%3A")
    );
    let (status, _, html) = crate::staff::browse(&api, "POST", "/buchen", None, Some(&form)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{html}");
    assert!(
        html.contains("keine weiteren Online-Buchungen")
            && html.contains("value=\"Erika Mustermann\""),
        "{html}"
    );
    assert_eq!(api.last_position().await, before);
    // Another mailbox books; so does another municipality for the same one.
    let mut other = booking(&start(24, 11));
    other["contact"]["email"] = "max@example.org".into();
    assert_eq!(book_from(&api, other, from(4)).await.0, StatusCode::CREATED);
    let stuttgart = serde_json::json!({
        "tenant": "stuttgart",
        "services": ["gewerbeanmeldung"],
        "start": "2026-11-24T10:00:00+01:00",
        "contact": {"name": "Erika Mustermann", "email": "erika@example.org"},
        "privacy_accepted": true
    });
    let (status, _, body) = book_from(&api, stuttgart, from(4)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A day later the mailbox books again.
    api.now
        .fetch_add(24 * 3600, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        book_from(&api, shouted, from(4)).await.0,
        StatusCode::CREATED,
        "the next day"
    );

    // One address, many mailboxes: its cap (two here) ends it, and another address books.
    api.state = api.state.clone().with_booking_caps(BookingCapSetting {
        mailbox: 3,
        address: 2,
    });
    let mailbox = |n: u32| {
        let mut b = booking(&start(26, 9 + n as u8));
        b["contact"]["email"] = format!("person.{n}@example.org").into();
        b
    };
    for n in 0..2 {
        assert_eq!(
            book_from(&api, mailbox(n), from(9)).await.0,
            StatusCode::CREATED
        );
    }
    let before = api.last_position().await;
    let response = book_from(&api, mailbox(2), from(9)).await;
    assert_refused(&api, response, StatusCode::TOO_MANY_REQUESTS, before).await;
    assert_eq!(
        book_from(&api, mailbox(2), from(10)).await.0,
        StatusCode::CREATED
    );
}
