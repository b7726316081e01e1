//! Payment in the session room against the built-in sandbox, over real HTTP on a loopback
//! port: the room calls the HTTP adapter, which calls the sandbox, which posts its signed
//! callback back to the room, all in this server. Approved, declined, abandoned and retried;
//! a forged callback refused and a replayed one and a reloaded return page capturing
//! nothing more; a purpose over 27 characters refused; the amount shown is the services'
//! fees; both sockets hear the payment's state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tower::ServiceExt as _;
use videoamt_adapters::payment::signature::CallbackKey;
use videoamt_api::app::Settings;
use videoamt_api::http::app;
use videoamt_core::domain::{DomainEvent, PaymentId};
use videoamt_core::tenant::Cents;

use crate::room_documents::Room;
use crate::router::assert_refused;

const TOKEN: &str = "sandbox-api-token";
const SECRET: &str = "sandbox-callback-geheimnis";

/// An admitted citizen and a clerk in a room whose server is also served on a loopback port,
/// with the built-in sandbox as its payment provider.
struct Paying {
    room: Room,
    addr: SocketAddr,
}

/// A response with its body as text.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Page {
    /// The path of the `Location` header, without this server's scheme and host.
    fn location(&self) -> String {
        let location = self.headers[header::LOCATION].to_str().expect("ascii");
        match location.split_once("://") {
            Some((_, rest)) => rest[rest.find('/').expect("a path")..].to_owned(),
            None => location.to_owned(),
        }
    }
}

impl Paying {
    async fn admitted() -> Self {
        Self::serve(Room::admitted().await).await
    }

    /// `room`'s server also on a loopback port, paying through the built-in sandbox.
    async fn serve(mut room: Room) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("bound");
        let own = format!("http://{addr}");
        let settings = Settings {
            payment_token: Some(TOKEN.to_owned()),
            payment_secret: Some(SECRET.to_owned()),
            ..Settings::default()
        };
        let mut state = room.api.state.clone();
        state.system.settings = Arc::new(settings);
        room.api.state = state
            .with_public_url(&own)
            .with_payments(&own)
            .expect("the built-in sandbox");
        let served =
            app(room.api.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, served).await });
        Self { room, addr }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>, cookie: bool) -> Page {
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        if cookie {
            request = request.header("cookie", &self.room.clerk);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let response = app(self.room.api.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        Page {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn citizen(&self, rest: &str) -> String {
        format!("/termin/{}{rest}", self.room.token)
    }

    fn clerk(&self, rest: &str) -> String {
        format!("/sachbearbeitung/termin/{}{rest}", self.room.appointment.0)
    }

    /// The clerk's "Zahlung anfordern".
    async fn clerk_requests(&self) {
        let page = self
            .call("POST", &self.clerk("/raum/zahlung"), Some(""), true)
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        assert_eq!(page.location(), self.clerk("/raum"));
    }

    /// The citizen's "Jetzt bezahlen": the path of the sandbox's page it sends to.
    async fn pay(&self) -> String {
        let page = self
            .call("POST", &self.citizen("/raum/zahlung"), Some(""), false)
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        let to = page.location();
        assert!(to.starts_with("/sandbox/zahlung/bezahlen/sbx_"), "{to}");
        to
    }

    /// A decision on the sandbox's page: the path of the return page it sends back to.
    async fn decide(&self, sandbox_page: &str, decision: &str, method: Option<&str>) -> String {
        let body = match method {
            Some(m) => format!("entscheidung={decision}&methode={m}"),
            None => format!("entscheidung={decision}"),
        };
        let page = self.call("POST", sandbox_page, Some(&body), false).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        let back = page.location();
        assert_eq!(back, self.citizen("/raum/zahlung/zurueck"));
        back
    }

    async fn last_position(&self) -> u64 {
        self.room.api.last_position().await
    }

    /// The types of the events after `position`, in order.
    async fn events_since(&self, position: u64) -> Vec<String> {
        self.decoded_since(position)
            .await
            .iter()
            .map(|e| e.event_type().to_owned())
            .collect()
    }

    async fn decoded_since(&self, position: u64) -> Vec<DomainEvent> {
        let recorded = self
            .room
            .api
            .state
            .store
            .read_all(position, 1_000)
            .await
            .expect("read");
        recorded
            .iter()
            .map(|e| {
                DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
                    .expect("decodes")
            })
            .collect()
    }

    /// The session's payment, once the clerk asked for it.
    async fn payment(&self) -> PaymentId {
        let history = self
            .room
            .api
            .state
            .system
            .history(&self.room.session.stream())
            .await
            .expect("readable");
        history
            .iter()
            .find_map(|(_, e)| match e {
                DomainEvent::PaymentAttached(a) => Some(a.payment),
                _ => None,
            })
            .expect("a payment was asked for")
    }

    /// Posts a callback as the provider would, signed with `secret`.
    async fn callback(&self, payment: PaymentId, transaction: &str, secret: &str) -> Page {
        let body = json!({"requestId": payment.0, "transactionId": transaction}).to_string();
        let signature = CallbackKey::new(secret.as_bytes()).sign(body.as_bytes());
        let request = Request::post("/zahlung/rueckmeldung")
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .body(Body::from(body))
            .expect("request");
        let response = app(self.room.api.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        Page {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// The payment section of a room page.
fn payment_section(html: &str) -> &str {
    let start = html.find(r#"id="zahlung""#).expect("a payment section");
    let end = html[start..].find("</section>").expect("closed") + start;
    &html[start..end]
}

fn count(events: &[String], kind: &str) -> usize {
    events.iter().filter(|e| *e == kind).count()
}

#[tokio::test]
async fn approved_in_the_sandbox_the_payment_is_captured_once_with_a_receipt() {
    let p = Paying::admitted().await;
    let before = p.last_position().await;
    // Before the clerk asks, the citizen's room shows no payment.
    let page = p.call("GET", &p.citizen("/warteraum"), None, false).await;
    assert!(!payment_section(&page.text).contains("Jetzt bezahlen"));
    let page = p.call("GET", &p.clerk("/raum"), None, true).await;
    assert!(
        payment_section(&page.text).contains("Gebühren der Anliegen: <strong>47,00 €</strong>"),
        "{}",
        page.text
    );

    p.clerk_requests().await;
    // The amount shown is the booked services' fees, in German notation.
    let tenant = p
        .room
        .api
        .state
        .tenants
        .iter()
        .find(|t| t.id.as_str() == "ettlingen")
        .expect("Ettlingen");
    let fees: u64 = ["personalausweis", "meldebescheinigung"]
        .iter()
        .map(|s| tenant.service(&(*s).into()).expect("a service").fee.0)
        .sum();
    let shown = Cents(fees).to_string();
    assert_eq!(shown, "47,00 €");
    let page = p.call("GET", &p.citizen("/warteraum"), None, false).await;
    let section = payment_section(&page.text);
    assert!(
        section.contains(&format!("Zu zahlen: <strong>{shown}</strong>")),
        "{section}"
    );
    assert!(section.contains("Jetzt bezahlen"), "{section}");
    assert!(
        section.contains(r#"target="_blank""#),
        "the call goes on: {section}"
    );

    let sandbox_page = p.pay().await;
    let page = p.call("GET", &sandbox_page, None, false).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains("<title>Zahlungs-Sandbox – keine echte Zahlung – Videoberatung</title>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Es wird nichts abgebucht"));
    assert!(page.text.contains(&shown));
    for method in ["Kreditkarte", "PayPal", "Wero"] {
        assert!(page.text.contains(method), "{method}");
    }
    assert!(!page.text.to_lowercase().contains("giropay"));

    let back = p.decide(&sandbox_page, "genehmigen", Some("paypal")).await;
    let receipt = p.call("GET", &back, None, false).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    let transaction = sandbox_page.rsplit('/').next().expect("an id");
    let purpose = format!(
        "Videotermin {}",
        &p.room
            .appointment
            .0
            .simple()
            .to_string()
            .to_ascii_uppercase()[24..]
    );
    for part in [
        "<h1>Quittung</h1>",
        "<strong>47,00 €</strong>",
        "PayPal",
        purpose.as_str(),
        transaction,
        "Bezahlt am",
        "Quittung herunterladen",
    ] {
        assert!(receipt.text.contains(part), "{part}: {}", receipt.text);
    }

    let events = p.events_since(before).await;
    assert_eq!(
        events,
        [
            "PaymentRequested",
            "PaymentAttached",
            "PaymentTransactionCreated",
            "PaymentMethodChosen",
            "PaymentAuthorized",
            "PaymentCaptured",
        ]
    );
    assert_eq!(count(&events, "PaymentCaptured"), 1);

    // The receipt is a file to keep, too; the clerk sees the payment done.
    let download = p
        .call(
            "GET",
            &p.citizen("/raum/zahlung/quittung?herunterladen=1"),
            None,
            false,
        )
        .await;
    assert_eq!(download.status, StatusCode::OK);
    let disposition = download.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .expect("ascii");
    assert_eq!(
        disposition,
        format!(
            "attachment; filename=\"Quittung-{}.html\"",
            purpose.replace(' ', "-")
        )
    );
    let clerk = p
        .call("GET", &p.clerk("/raum/zahlung/panel"), None, true)
        .await;
    assert!(
        clerk
            .text
            .contains("Bezahlt: <strong>47,00 €</strong> mit PayPal"),
        "{}",
        clerk.text
    );

    // After the end of the session the citizen's page still leads to the receipt.
    let end = p
        .call(
            "POST",
            &p.clerk("/raum/beenden"),
            Some("outcome=aborted"),
            true,
        )
        .await;
    assert_eq!(end.status, StatusCode::SEE_OTHER, "{}", end.text);
    let page = p.call("GET", &p.citizen("/warteraum"), None, false).await;
    let section = payment_section(&page.text);
    assert!(section.contains("Quittung herunterladen"), "{section}");
    assert!(!section.contains("Jetzt bezahlen"), "{section}");
}

#[tokio::test]
async fn declined_then_abandoned_then_approved_on_the_third_attempt() {
    let p = Paying::admitted().await;
    p.clerk_requests().await;
    let before = p.last_position().await;

    let first = p.pay().await;
    let back = p.decide(&first, "ablehnen", None).await;
    let page = p.call("GET", &back, None, false).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text
            .contains("Die Zahlung wurde abgelehnt. Es wurde nichts abgebucht."),
        "{}",
        page.text
    );
    assert!(page.text.contains("Erneut versuchen"));
    assert!(!page.text.contains("Quittung"));
    // No receipt for an unpaid payment.
    let receipt = p
        .call("GET", &p.citizen("/raum/zahlung/quittung"), None, false)
        .await;
    assert_eq!(receipt.status, StatusCode::NOT_FOUND);

    let second = p.pay().await;
    assert_ne!(second, first, "a new transaction");
    let back = p.decide(&second, "abbrechen", None).await;
    let page = p.call("GET", &back, None, false).await;
    assert!(
        page.text.contains("Sie haben die Zahlung abgebrochen."),
        "{}",
        page.text
    );
    assert!(page.text.contains("Erneut versuchen"));
    // The citizen's room says the same, with the button to try again.
    let room = p.call("GET", &p.citizen("/warteraum"), None, false).await;
    let section = payment_section(&room.text);
    assert!(section.contains("abgebrochen"), "{section}");
    assert!(section.contains("Erneut versuchen"), "{section}");

    let third = p.pay().await;
    let back = p.decide(&third, "genehmigen", Some("wero")).await;
    let page = p.call("GET", &back, None, false).await;
    assert!(page.text.contains("<h1>Quittung</h1>"), "{}", page.text);
    assert!(page.text.contains("Wero"));

    // A decided transaction cannot be decided again, and nothing more is recorded.
    let position = p.last_position().await;
    let again = p
        .call(
            "POST",
            &first,
            Some("entscheidung=genehmigen&methode=paypal"),
            false,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text.contains("bereits entschieden"));
    assert_eq!(p.last_position().await, position);

    let events = p.events_since(before).await;
    assert_eq!(
        events,
        [
            "PaymentTransactionCreated",
            "PaymentFailed",
            "PaymentTransactionCreated",
            "PaymentFailed",
            "PaymentTransactionCreated",
            "PaymentMethodChosen",
            "PaymentAuthorized",
            "PaymentCaptured",
        ]
    );
    let kinds: Vec<_> = p
        .decoded_since(before)
        .await
        .into_iter()
        .filter_map(|e| match e {
            DomainEvent::PaymentFailed(f) => Some((f.kind, f.provider_reference)),
            _ => None,
        })
        .collect();
    let id = |path: &str| path.rsplit('/').next().map(str::to_owned);
    assert_eq!(
        kinds
            .iter()
            .map(|(k, r)| (*k, r.as_ref().map(|r| r.to_string())))
            .collect::<Vec<_>>(),
        [
            (
                videoamt_core::domain::events::PaymentFailure::Declined,
                id(&first)
            ),
            (
                videoamt_core::domain::events::PaymentFailure::Abandoned,
                id(&second)
            ),
        ]
    );
}

#[tokio::test]
async fn a_forged_callback_is_refused_and_records_nothing() {
    let p = Paying::admitted().await;
    p.clerk_requests().await;
    let sandbox_page = p.pay().await;
    let transaction = sandbox_page.rsplit('/').next().expect("an id").to_owned();
    let payment = p.payment().await;
    let before = p.last_position().await;

    // Signed with a guessed secret: 401, nothing written.
    let forged = p.callback(payment, &transaction, "geraten").await;
    let problem = assert_refused(
        &p.room.api,
        (
            forged.status,
            forged.headers,
            serde_json::from_str(&forged.text).unwrap_or(Value::Null),
        ),
        StatusCode::UNAUTHORIZED,
        before,
    )
    .await;
    assert_eq!(problem["title"], "Signatur ungültig");
    // Without a signature at all: the same.
    let request = Request::post("/zahlung/rueckmeldung")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"requestId": payment.0, "transactionId": transaction}).to_string(),
        ))
        .expect("request");
    let response = app(p.room.api.state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A genuine callback about a transaction of no attempt: refused, nothing written.
    let stranger = p.callback(payment, "sbx_fremd", SECRET).await;
    assert_eq!(stranger.status, StatusCode::CONFLICT, "{}", stranger.text);
    // A genuine callback while the citizen has not decided: the provider says "open", so
    // nothing is recorded. A callback alone proves nothing.
    let early = p.callback(payment, &transaction, SECRET).await;
    assert_eq!(early.status, StatusCode::NO_CONTENT, "{}", early.text);
    assert_eq!(p.last_position().await, before, "nothing written");

    // The payment goes on as if nothing had happened.
    let back = p
        .decide(&sandbox_page, "genehmigen", Some("kreditkarte"))
        .await;
    let page = p.call("GET", &back, None, false).await;
    assert!(page.text.contains("<h1>Quittung</h1>"), "{}", page.text);
}

#[tokio::test]
async fn a_replayed_callback_and_a_reloaded_return_page_capture_once() {
    let p = Paying::admitted().await;
    p.clerk_requests().await;
    let declined = p.pay().await;
    p.decide(&declined, "ablehnen", None).await;
    let sandbox_page = p.pay().await;
    let transaction = sandbox_page.rsplit('/').next().expect("an id").to_owned();
    let back = p.decide(&sandbox_page, "genehmigen", Some("paypal")).await;
    let payment = p.payment().await;
    let captured = p.last_position().await;

    for _ in 0..3 {
        let replay = p.callback(payment, &transaction, SECRET).await;
        assert_eq!(replay.status, StatusCode::NO_CONTENT, "{}", replay.text);
        let reload = p.call("GET", &back, None, false).await;
        assert!(reload.text.contains("<h1>Quittung</h1>"), "{}", reload.text);
    }
    // The declined attempt's callback, replayed after the capture, changes nothing either.
    let old = declined.rsplit('/').next().expect("an id");
    let late = p.callback(payment, old, SECRET).await;
    assert_eq!(late.status, StatusCode::NO_CONTENT, "{}", late.text);
    // Pressing "Jetzt bezahlen" again leads to the receipt, not to a second transaction.
    let again = p
        .call("POST", &p.citizen("/raum/zahlung"), Some(""), false)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), p.citizen("/raum/zahlung/quittung"));
    assert_eq!(p.last_position().await, captured, "nothing more recorded");

    let all = p.events_since(0).await;
    assert_eq!(count(&all, "PaymentCaptured"), 1, "{all:?}");
    assert_eq!(count(&all, "PaymentAuthorized"), 1, "{all:?}");

    // At the provider, too, the payment was captured once: the payment's key answers the
    // first capture again, and never captures another transaction.
    let capture = |transaction: String, key: String| {
        let state = p.room.api.state.clone();
        async move {
            let request = Request::post(format!(
                "/sandbox/zahlung/api/v1/paymenttransaction/{transaction}/capture"
            ))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("idempotency-key", key)
            .body(Body::empty())
            .expect("request");
            let response = app(state).oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let key = format!("videoamt-{payment}");
    let (status, answer) = capture(transaction.clone(), key.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["capturedAmountCents"], 4_700);
    assert_eq!(answer["paymentInformation"]["status"], "PAYED");
    let (status, answer) = capture(old.to_owned(), key).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["type"], "/problems/payment-key-used");
}

#[tokio::test]
async fn the_provider_refuses_a_purpose_over_27_characters_and_a_wrong_token() {
    let p = Paying::admitted().await;
    let before = p.last_position().await;
    let request = |purpose: &str, token: &str| {
        let body = json!({
            "requestId": "0192f3c4-7b1a-7cc0-8f00-000000000003",
            "tenant": "ettlingen",
            "currency": "EUR",
            "grossAmountCents": 1_000,
            "purpose": purpose,
            "description": "Stadt Ettlingen: Meldebescheinigung",
            "redirectUrl": "http://127.0.0.1/zurueck",
            "notifyUrl": "http://127.0.0.1/rueckmeldung",
            "paymentMethods": [{"id": "paypal", "label": "PayPal"}],
            "items": [{"reference": "meldebescheinigung", "description": "Meldebescheinigung",
                "quantity": 1, "totalCents": 1_000}],
        });
        let state = p.room.api.state.clone();
        let token = token.to_owned();
        async move {
            let request = Request::post("/sandbox/zahlung/api/v1/paymenttransaction")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_string()))
                .expect("request");
            let response = app(state).oneshot(request).await.expect("infallible");
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body");
            (
                status,
                headers,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let long = "Gebuehr Videotermin 3F2A9C1B";
    assert_eq!(long.chars().count(), 28);
    let problem = assert_refused(
        &p.room.api,
        request(long, TOKEN).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;
    assert_eq!(problem["title"], "Verwendungszweck ungültig");
    assert_eq!(
        problem["detail"],
        "Der Verwendungszweck darf höchstens 27 Zeichen lang sein; dieser hat 28 Zeichen."
    );
    let problem = assert_refused(
        &p.room.api,
        request("Gebühr Videotermin", TOKEN).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        before,
    )
    .await;
    assert_eq!(problem["title"], "Verwendungszweck ungültig");
    let problem = assert_refused(
        &p.room.api,
        request("Videotermin 3F2A9C1B", "geraten").await,
        StatusCode::UNAUTHORIZED,
        before,
    )
    .await;
    assert_eq!(problem["title"], "Zugang zum Zahlungsdienst verweigert");
    let (status, _, created) = request(&long[1..], TOKEN).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "27 characters are fine: {created}"
    );
    assert_eq!(created["paymentInformation"]["status"], "INITIAL");
}

/// The next room state message whose payment is `status`, skipping others.
async fn payment_state(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    status: &str,
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("readable");
        if let Message::Text(text) = message {
            let m: Value = serde_json::from_str(&text).expect("JSON");
            if m["type"] == "room" && m["payment"]["status"] == status {
                return m;
            }
        }
    }
}

#[tokio::test]
async fn both_sides_hear_the_payment_state_on_their_sockets() {
    let p = Paying::admitted().await;
    let open = |path: String, cookie: Option<String>| {
        let addr = p.addr;
        async move {
            let mut request = format!("ws://{addr}{path}")
                .into_client_request()
                .expect("request");
            request
                .headers_mut()
                .insert("origin", format!("http://{addr}").parse().expect("header"));
            if let Some(c) = cookie {
                request
                    .headers_mut()
                    .insert("cookie", c.parse().expect("header"));
            }
            tokio_tungstenite::connect_async(request)
                .await
                .expect("the socket opens")
                .0
        }
    };
    let mut citizen = open(p.citizen("/raum/ws"), None).await;
    let mut clerk = open(p.clerk("/raum/ws"), Some(p.room.clerk.clone())).await;

    p.clerk_requests().await;
    for socket in [&mut citizen, &mut clerk] {
        let m = payment_state(socket, "requested").await;
        assert_eq!(m["payment"]["attempts"], 0);
    }
    let sandbox_page = p.pay().await;
    for socket in [&mut citizen, &mut clerk] {
        payment_state(socket, "pending").await;
    }
    p.decide(&sandbox_page, "genehmigen", Some("wero")).await;
    for socket in [&mut citizen, &mut clerk] {
        let m = payment_state(socket, "captured").await;
        assert_eq!(m["payment"]["attempts"], 1);
    }
    // The panel the script then fetches shows the receipt's link to the citizen.
    let panel = p
        .call("GET", &p.citizen("/raum/zahlung/panel"), None, false)
        .await;
    assert_eq!(panel.status, StatusCode::OK);
    assert!(
        panel
            .text
            .contains("Bezahlt: <strong>47,00 €</strong> mit Wero"),
        "{}",
        panel.text
    );
    assert!(panel.text.contains("Quittung ansehen"));
}

/// The tenant file changes after the booking: the ID card costs 42 € instead of 37 €, and the
/// server starts again with it. The session asks for, and the receipt shows, what was booked:
/// 47 €, not 52 € (ADR 0020).
#[tokio::test]
async fn a_fee_raised_after_the_booking_leaves_the_amount_and_the_receipt_as_booked() {
    let mut room = Room::admitted().await;
    let (file, text) = videoamt_core::tenant::EXAMPLE_TENANTS[0];
    let dearer = text.replace("fee_cents = 3700", "fee_cents = 4200");
    assert_ne!(dearer, text, "the ID card's fee is in the file");
    let mut tenants = videoamt_core::tenant::example_tenants().expect("valid");
    tenants[0] = videoamt_core::tenant::Tenant::from_toml(file, &dearer).expect("valid");
    room.api.restart_with(tenants);
    room.clerk = crate::room_documents::login(&room.api, "ettlingen", "a.becker").await;
    let p = Paying::serve(room).await;
    let before = p.last_position().await;

    let page = p.call("GET", &p.clerk("/raum"), None, true).await;
    assert!(
        payment_section(&page.text).contains("Gebühren der Anliegen: <strong>47,00 €</strong>"),
        "{}",
        page.text
    );
    p.clerk_requests().await;
    let sandbox_page = p.pay().await;
    let back = p
        .decide(&sandbox_page, "genehmigen", Some("kreditkarte"))
        .await;
    let receipt = p.call("GET", &back, None, false).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    assert!(
        receipt.text.contains("<h1>Quittung</h1>")
            && receipt.text.contains("<strong>47,00 €</strong>")
            && !receipt.text.contains("52,00"),
        "{}",
        receipt.text
    );
    let captured: Vec<Cents> = p
        .decoded_since(before)
        .await
        .iter()
        .filter_map(|e| match e {
            DomainEvent::PaymentCaptured(c) => Some(c.amount),
            _ => None,
        })
        .collect();
    assert_eq!(captured, [Cents(4_700)]);
}
