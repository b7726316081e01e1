//! Payment in the session room (ADR 0019): the clerk asks for the fees, the citizen pays them
//! through the payment provider, both see the state live, and the citizen gets a receipt.
//!
//! - **Before:** once the clerk has chosen "Zahlung anfordern", the citizen's room shows the
//!   amount (the session's services' fees) and "Jetzt bezahlen". The button opens the
//!   provider's page in a new tab, so that the call goes on in the room.
//! - **Between:** `POST …/raum/zahlung` opens a transaction at the provider, records it
//!   (`StartPayment`) and sends the browser there (303). An attempt that is still open is
//!   resumed instead: never two transactions at once.
//! - **After:** the return page asks the provider for the status (the query string is never
//!   read), records what it says, captures an approved payment under the payment's
//!   idempotency key and shows the receipt; a declined or abandoned attempt shows why and
//!   "Erneut versuchen". The provider's callback (`POST /zahlung/rueckmeldung`) does the same
//!   once its signature holds; a bad signature is refused (401) and records nothing.
//! - **Idempotent:** a reloaded return page, a replayed callback and the return racing the
//!   callback all end in one `PaymentCaptured`: the provider captures once per key, and the
//!   stream refuses a second capture and writes nothing for a fact it already holds.
//!
//! Only the [`PaymentProvider`](videoamt_core::payment::PaymentProvider) port is called
//! here; which provider it is (the built-in sandbox by default) is the wiring's business.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_adapters::payment::signature::SIGNATURE_HEADER;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::{Party, PaymentFailure};
use videoamt_core::domain::payment::{PaymentCommand, PaymentState, PaymentStatus};
use videoamt_core::domain::{AppointmentId, DomainError, DomainEvent, PaymentId, SessionId};
use videoamt_core::event::{Actor, TenantId};
use videoamt_core::german;
use videoamt_core::payment::{
    CreatePayment, PaymentItem, ProviderReference, ProviderStatus, Purpose,
};
use videoamt_core::tenant::{Cents, Tenant};

use super::access::{self, Room};
use crate::http::error::Error;
use crate::http::extract::PageQuery as Query;
use crate::http::html::{alert, page, problem_page};
use crate::http::{AppState, Payments};

const CITIZEN: &str = "/termin/{token}/raum/zahlung";
const CLERK: &str = "/sachbearbeitung/termin/{id}/raum/zahlung";
/// Where the provider posts its callbacks.
pub(crate) const CALLBACK: &str = "/zahlung/rueckmeldung";
/// The actor of what a callback records.
const CALLBACK_ACTOR: &str = "payment-callback";

/// The room's payment routes and the provider's callback.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(CITIZEN, post(citizen_pay))
        .route(&format!("{CITIZEN}/zurueck"), get(citizen_return))
        .route(&format!("{CITIZEN}/quittung"), get(citizen_receipt))
        .route(&format!("{CITIZEN}/panel"), get(citizen_panel))
        .route(CLERK, post(clerk_request))
        .route(&format!("{CLERK}/panel"), get(clerk_panel))
        .route(CALLBACK, post(callback))
}

// --- what the payment stream holds ---

/// A payment as the room shows it, folded from its stream.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub id: PaymentId,
    pub tenant: TenantId,
    pub appointment: AppointmentId,
    pub session: Option<SessionId>,
    pub state: PaymentState,
    /// When it was captured.
    pub captured_at: Option<OffsetDateTime>,
}

async fn load(state: &AppState, id: PaymentId) -> Result<Option<View>, Error> {
    let history = state.system.history(&id.stream()).await?;
    let Some((first, _)) = history.first() else {
        return Ok(None);
    };
    let tenant = first.meta.tenant.clone();
    let mut folded = PaymentState::default();
    let mut captured_at = None;
    for (e, event) in &history {
        if matches!(event, DomainEvent::PaymentCaptured(_)) {
            captured_at = Some(e.meta.recorded_at);
        }
        folded = folded.evolve(event);
    }
    let Some(request) = folded.request.clone() else {
        return Ok(None);
    };
    Ok(Some(View {
        id,
        tenant,
        appointment: request.appointment,
        session: request.session,
        state: folded,
        captured_at,
    }))
}

/// The session's payment; refused when the clerk has asked for none.
async fn of_room(state: &AppState, room: &Room) -> Result<View, Error> {
    let id = room
        .state
        .payment
        .ok_or(Error::Refused(DomainError::UnknownPayment))?;
    load(state, id)
        .await?
        .ok_or(Error::Refused(DomainError::UnknownPayment))
}

fn payments(state: &AppState) -> Result<&Payments, Error> {
    state.payments.as_ref().ok_or_else(|| {
        Error::from(videoamt_core::payment::PaymentError::Unavailable(
            "no payment provider configured".to_owned(),
        ))
    })
}

async fn execute(
    state: &AppState,
    view_tenant: &TenantId,
    actor: &Actor,
    appointment: AppointmentId,
    command: PaymentCommand,
) -> Result<(), Error> {
    let command: Command = command.into();
    let issued = Issued {
        tenant: view_tenant.clone(),
        actor: actor.clone(),
        correlation_id: appointment.0,
        command_id: Uuid::now_v7(),
        now: state.now(),
    };
    state
        .system
        .bus()
        .execute(&command, &issued)
        .await
        .map(|_| ())
        .map_err(Error::from)
}

/// The key the provider captures a payment under: one per payment, so that no second
/// transaction of it is ever captured either.
fn idempotency_key(payment: PaymentId) -> String {
    format!("videoamt-{payment}")
}

// --- asking the provider and recording its answer ---

/// Asks the provider about `transaction` and records what it says (nothing the stream holds
/// already); an approved payment is then captured, once.
async fn settle(
    state: &AppState,
    payments: &Payments,
    view: &View,
    transaction: &ProviderReference,
    actor: &Actor,
) -> Result<(), Error> {
    let status = payments.provider.status(transaction).await?;
    let run = |command| execute(state, &view.tenant, actor, view.appointment, command);
    let failed = |kind, reason: String| PaymentCommand::FailPayment {
        payment: view.id,
        provider_reference: Some(transaction.clone()),
        kind,
        reason,
    };
    match status {
        ProviderStatus::Open => Ok(()),
        ProviderStatus::Declined { reason } => run(failed(PaymentFailure::Declined, reason)).await,
        ProviderStatus::Abandoned => {
            let reason = "Auf der Seite des Zahlungsdienstes abgebrochen".to_owned();
            run(failed(PaymentFailure::Abandoned, reason)).await
        }
        ProviderStatus::Approved { method } | ProviderStatus::Captured { method } => {
            run(PaymentCommand::AuthorizePayment {
                payment: view.id,
                provider_reference: transaction.to_string(),
                method: Some(method),
            })
            .await?;
            capture(state, payments, view.id, transaction, actor).await
        }
    }
}

/// Captures the authorized payment at the provider, then in the log.
async fn capture(
    state: &AppState,
    payments: &Payments,
    id: PaymentId,
    transaction: &ProviderReference,
    actor: &Actor,
) -> Result<(), Error> {
    let Some(view) = load(state, id).await? else {
        return Err(Error::Refused(DomainError::UnknownPayment));
    };
    let authorized = view.state.authorized.as_deref() == Some(transaction.as_str());
    if view.state.status != PaymentStatus::Authorized || !authorized {
        return Ok(());
    }
    let requested = view.state.requested()?.amount;
    let captured = payments
        .provider
        .capture(transaction, &idempotency_key(id))
        .await?;
    if captured.amount != requested {
        return Err(Error::internal(format!(
            "payment {id}: the provider captured {} cents of {} requested",
            captured.amount.0, requested.0
        )));
    }
    let command = PaymentCommand::CapturePayment { payment: id };
    match execute(state, &view.tenant, actor, view.appointment, command).await {
        // The callback and the return page raced; the other one recorded it.
        Ok(()) | Err(Error::Refused(DomainError::AlreadyCaptured)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The current attempt settled, if one is open or approved.
async fn settle_current(
    state: &AppState,
    payments: &Payments,
    view: View,
    actor: &Actor,
) -> Result<View, Error> {
    let open = matches!(
        view.state.status,
        PaymentStatus::Pending | PaymentStatus::Authorized
    );
    match view.state.current().cloned() {
        Some(current) if open => {
            settle(state, payments, &view, &current, actor).await?;
            load(state, view.id)
                .await?
                .ok_or(Error::Refused(DomainError::UnknownPayment))
        }
        _ => Ok(view),
    }
}

// --- the citizen: pay, come back, receipt ---

/// The citizen's payment routes, under the appointment's link.
pub(crate) fn citizen_base(token: &str) -> String {
    format!("/termin/{token}/raum/zahlung")
}

/// `POST /termin/{token}/raum/zahlung`: opens a transaction and sends the browser to the
/// provider (303); an attempt still open is resumed.
async fn citizen_pay(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let paid = async {
        let room = access::citizen(&state, &token).await?;
        let url = pay(&state, &room, &token).await;
        state.hub.refresh(room.session);
        url
    };
    match paid.await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => refused(&e),
    }
}

/// Where the citizen goes next: the provider's page, or the receipt when there is nothing
/// left to pay.
async fn pay(state: &AppState, room: &Room, token: &str) -> Result<String, Error> {
    room.state.in_room()?;
    let payments = payments(state)?;
    let view = of_room(state, room).await?;
    // Never a second transaction beside one that is open or approved: ask about it first.
    let view = settle_current(state, payments, view, &room.actor).await?;
    match view.state.status {
        PaymentStatus::Captured => return Ok(format!("{}/quittung", citizen_base(token))),
        PaymentStatus::Pending => {
            if let Some(open) = view.state.attempts.last() {
                return Ok(open.redirect_url.clone());
            }
        }
        _ => {}
    }
    let request = view.state.requested()?;
    let purpose = Purpose::parse(&request.purpose)?;
    let tenant = &room.tenant;
    let items: Vec<PaymentItem> = (request.items.iter())
        .map(|i| PaymentItem {
            reference: i.service.to_string(),
            description: service_name(tenant, i.service.as_str()),
            amount: i.amount,
        })
        .collect();
    let names: Vec<&str> = items.iter().map(|i| i.description.as_str()).collect();
    let description: String = format!("{}: {}", tenant.name, names.join(", "))
        .chars()
        .take(250)
        .collect();
    let created = payments
        .provider
        .create(&CreatePayment {
            tenant: tenant.id.clone(),
            reference: view.id,
            amount: request.amount,
            purpose,
            description,
            items,
            return_url: format!("{}{}/zurueck", state.public_url, citizen_base(token)),
            notify_url: format!("{}{CALLBACK}", payments.callback_base),
            methods: tenant.payment_methods.clone(),
        })
        .await?;
    execute(
        state,
        &view.tenant,
        &room.actor,
        view.appointment,
        PaymentCommand::StartPayment {
            payment: view.id,
            provider_reference: created.provider_reference,
            redirect_url: created.redirect_url.clone(),
        },
    )
    .await?;
    Ok(created.redirect_url)
}

fn service_name(tenant: &Tenant, service: &str) -> String {
    tenant
        .service(&service.into())
        .map_or_else(|| service.to_owned(), |s| s.name.clone())
}

/// `GET /termin/{token}/raum/zahlung/zurueck`: the provider sent the browser back. What
/// happened is asked of the provider; the address's query is never read.
async fn citizen_return(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let settled = async {
        let room = access::citizen(&state, &token).await?;
        let payments = payments(&state)?;
        let view = of_room(&state, &room).await?;
        let view = settle_current(&state, payments, view, &room.actor).await;
        state.hub.refresh(room.session);
        Ok::<_, Error>((room, view?))
    };
    let (room, view) = match settled.await {
        Ok(found) => found,
        Err(e) => return refused(&e),
    };
    let base = citizen_base(&token);
    match view.state.status {
        PaymentStatus::Captured => receipt(&room, &view, false),
        PaymentStatus::Failed => {
            let body = html! {
                (failure(&view.state))
                (pay_form(&base, "Erneut versuchen", false))
                (other_tab())
            };
            page(StatusCode::OK, "Zahlung nicht abgeschlossen", body)
        }
        _ => {
            let resume = view.state.attempts.last().map(|a| a.redirect_url.clone());
            let body = html! {
                div class="notice" role="status" {
                    p {
                        "Die Zahlung ist noch nicht abgeschlossen. Bitte schließen Sie sie auf \
                         der Seite des Zahlungsdienstes ab."
                    }
                }
                @if let Some(url) = resume {
                    p { a href=(url) { "Weiter zur Zahlung" } }
                } @else {
                    (pay_form(&base, "Jetzt bezahlen", false))
                }
                (other_tab())
            };
            page(StatusCode::OK, "Zahlung läuft", body)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ReceiptQuery {
    herunterladen: Option<String>,
}

/// `GET /termin/{token}/raum/zahlung/quittung`: the receipt, to print or (`?herunterladen`)
/// to keep as a file.
async fn citizen_receipt(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<ReceiptQuery>,
) -> Response {
    let found = async {
        let room = access::citizen(&state, &token).await?;
        let view = of_room(&state, &room).await?;
        Ok::<_, Error>((room, view))
    };
    match found.await {
        Ok((room, view)) if view.state.status == PaymentStatus::Captured => {
            receipt(&room, &view, q.herunterladen.is_some())
        }
        Ok(_) => refused(&Error::not_found(
            "Eine Quittung gibt es, sobald die Zahlung abgeschlossen ist.",
        )),
        Err(e) => refused(&e),
    }
}

/// The receipt page: amount, purpose, items, method, the provider's reference and the time.
fn receipt(room: &Room, view: &View, download: bool) -> Response {
    let s = &view.state;
    let tenant = &room.tenant;
    let request = s.request.as_ref();
    let method = s.method.as_ref().map(|m| {
        tenant
            .payment_methods
            .iter()
            .find(|p| &p.id == m)
            .map_or_else(|| m.to_string(), |p| p.label.clone())
    });
    let purpose = request.map(|r| r.purpose.clone()).unwrap_or_default();
    let body = html! {
        p class="notice" role="status" { "Vielen Dank, die Zahlung ist abgeschlossen." }
        dl class="receipt" {
            dt { "Empfänger" } dd { (tenant.name) }
            dt { "Betrag" } dd { strong { (s.captured) } }
            dt { "Verwendungszweck" } dd { (purpose) }
            dt { "Zahlungsart" } dd { (method.unwrap_or_else(|| "–".to_owned())) }
            dt { "Transaktionsnummer" } dd { (s.authorized.clone().unwrap_or_default()) }
            dt { "Bezahlt am" }
            dd { (view.captured_at.map_or_else(|| "–".to_owned(), |at| german::moment(tenant.local(at)))) }
            dt { "Zahlungsnummer" } dd { (view.id) }
        }
        @if let Some(r) = request {
            table {
                caption { "Gebühren" }
                thead { tr { th scope="col" { "Anliegen" } th scope="col" { "Gebühr" } } }
                tbody {
                    @for i in &r.items {
                        tr { td { (service_name(tenant, i.service.as_str())) } td { (i.amount) } }
                    }
                }
            }
        }
        p class="no-print" {
            a href="?herunterladen=1" download { "Quittung herunterladen" }
            " · Zum Ausdrucken nutzen Sie die Druckfunktion Ihres Browsers."
        }
        (other_tab())
    };
    let mut response = page(StatusCode::OK, "Quittung", body);
    if download {
        let name = format!("Quittung-{}.html", purpose.replace(' ', "-"));
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// What a failed attempt's page and panel say.
fn failure(state: &PaymentState) -> Markup {
    let abandoned = state
        .failure
        .as_ref()
        .is_some_and(|f| f.kind == PaymentFailure::Abandoned);
    alert([if abandoned {
        "Sie haben die Zahlung abgebrochen. Es wurde nichts abgebucht. Sie können es jederzeit \
         erneut versuchen."
    } else {
        "Die Zahlung wurde abgelehnt. Es wurde nichts abgebucht. Sie können es erneut \
         versuchen, auch mit einer anderen Zahlungsart."
    }])
}

/// The citizen's button to the provider; in the room it opens a new tab, so that the call
/// goes on.
fn pay_form(base: &str, label: &str, new_tab: bool) -> Markup {
    html! {
        form method="post" action=(base) target=[new_tab.then_some("_blank")] {
            button type="submit" { (label) }
            @if new_tab {
                " (öffnet die Seite des Zahlungsdienstes in einem neuen Fenster; die \
                 Videoverbindung bleibt bestehen)"
            }
        }
    }
}

fn other_tab() -> Markup {
    html! {
        p {
            "Die Videoberatung läuft im anderen Fenster weiter; dieses Fenster können Sie \
             schließen."
        }
    }
}

/// A refusal as a German page (the payment routes are pages, not the JSON API).
fn refused(error: &Error) -> Response {
    if *error == Error::LoginRequired {
        return Redirect::to("/anmelden").into_response();
    }
    problem_page(error)
}

// --- the clerk: ask for the fees ---

/// The clerk's payment routes, under the appointment.
pub(crate) fn clerk_base(room: &Room) -> String {
    format!(
        "/sachbearbeitung/termin/{}/raum/zahlung",
        room.appointment.0
    )
}

/// `POST /sachbearbeitung/termin/{id}/raum/zahlung`: "Zahlung anfordern", the session's fees.
async fn clerk_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let requested = async {
        let room = access::clerk(&state, &headers, &id).await?;
        let command = PaymentCommand::RequestPayment {
            payment: PaymentId(Uuid::now_v7()),
            appointment: room.appointment,
            session: Some(room.session),
        };
        let done = execute(
            &state,
            &room.tenant.id,
            &room.actor,
            room.appointment,
            command,
        )
        .await;
        state.hub.refresh(room.session);
        done
    };
    match requested.await {
        Ok(()) => Redirect::to(&format!("/sachbearbeitung/termin/{id}/raum")).into_response(),
        Err(e) => refused(&e),
    }
}

// --- the panel both rooms show ---

/// What the room's payment panel shows.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Where the party's payment routes are.
    pub base: String,
    pub party: Party,
    pub payment: Option<View>,
    /// The fees of the session's services, before the clerk asks for them.
    pub fees: Cents,
    /// Whether a provider is configured.
    pub configured: bool,
}

impl Panel {
    /// Whether the payment is captured.
    pub(crate) fn paid(&self) -> bool {
        self.payment
            .as_ref()
            .is_some_and(|v| v.state.status == PaymentStatus::Captured)
    }
}

/// The panel's content for `room`'s party, whose payment routes are at `base`
/// ([`citizen_base`], [`clerk_base`]).
pub(crate) async fn panel_of(state: &AppState, room: &Room, base: String) -> Result<Panel, Error> {
    let payment = match room.state.payment {
        Some(id) => load(state, id).await?,
        None => None,
    };
    // The fees as booked: a fee changed since applies to new bookings only.
    let booking = state
        .system
        .appointment(room.appointment)
        .await?
        .and_then(|(appointment, _)| appointment.booking);
    let fees = booking
        .and_then(|b| b.fees(&room.tenant).ok())
        .map_or(Cents(0), |(_, total)| total);
    Ok(Panel {
        base,
        party: room.party,
        payment,
        fees,
        configured: state.payments.is_some(),
    })
}

/// The payment section of both room pages; the room's script replaces it with
/// `{base}/panel` when the socket reports a change.
pub(crate) fn panel(room: &Room, p: &Panel) -> Markup {
    let hidden = p.party == Party::Citizen && p.payment.is_none();
    html! {
        section class="payment" id="zahlung" data-panel={ (p.base) "/panel" }
            data-payment=(summary_key(p.payment.as_ref())) aria-labelledby="zahlung-titel"
            hidden[hidden] {
            h2 id="zahlung-titel" { "Gebühren" }
            @match (&p.payment, p.party) {
                (None, Party::Clerk) => (clerk_before(p)),
                (None, Party::Citizen) => {},
                (Some(view), Party::Clerk) => (clerk_status(room, view)),
                (Some(view), Party::Citizen) => (citizen_status(room, p, view)),
            }
        }
    }
}

fn clerk_before(p: &Panel) -> Markup {
    html! {
        @if p.fees.0 == 0 {
            p { "Für die Anliegen dieses Termins fallen keine Gebühren an." }
        } @else {
            p { "Gebühren der Anliegen: " strong { (p.fees) } }
            @if p.configured {
                form method="post" action=(p.base) {
                    button type="submit" { "Zahlung anfordern" }
                    " (die Bürgerin oder der Bürger sieht dann den Betrag und kann im Raum \
                     bezahlen)"
                }
            } @else {
                p { "Die Bezahlung ist auf diesem Server nicht eingerichtet." }
            }
        }
    }
}

fn method_label(room: &Room, state: &PaymentState) -> Option<String> {
    state.method.as_ref().map(|m| {
        room.tenant
            .payment_methods
            .iter()
            .find(|p| &p.id == m)
            .map_or_else(|| m.to_string(), |p| p.label.clone())
    })
}

fn clerk_status(room: &Room, view: &View) -> Markup {
    let s = &view.state;
    let amount = s.request.as_ref().map_or(Cents(0), |r| r.amount);
    html! {
        p role="status" {
            @match s.status {
                PaymentStatus::Captured => {
                    "Bezahlt: " strong { (s.captured) }
                    @if let Some(m) = method_label(room, s) { " mit " (m) }
                    @if let Some(at) = view.captured_at {
                        ", " (german::clock(room.tenant.local(at).time())) " Uhr"
                    }
                    @if let Some(r) = &s.authorized { " (Transaktion " (r) ")" }
                    "."
                }
                PaymentStatus::Pending | PaymentStatus::Authorized => {
                    "Angefordert: " strong { (amount) }
                    ". Die Bürgerin oder der Bürger bezahlt gerade."
                }
                PaymentStatus::Failed => {
                    "Angefordert: " strong { (amount) } ". "
                    @if s.failure.as_ref().is_some_and(|f| f.kind == PaymentFailure::Abandoned) {
                        "Die Zahlung wurde abgebrochen"
                    } @else {
                        "Die Zahlung wurde abgelehnt"
                    }
                    "; die Bürgerin oder der Bürger kann es erneut versuchen."
                }
                PaymentStatus::Requested | PaymentStatus::New => {
                    "Angefordert: " strong { (amount) } ". Noch nicht bezahlt."
                }
            }
        }
    }
}

fn citizen_status(room: &Room, p: &Panel, view: &View) -> Markup {
    let s = &view.state;
    let amount = s.request.as_ref().map_or(Cents(0), |r| r.amount);
    html! {
        @match s.status {
            PaymentStatus::Captured => {
                p role="status" {
                    "Bezahlt: " strong { (s.captured) }
                    @if let Some(m) = method_label(room, s) { " mit " (m) }
                    ". Vielen Dank."
                }
                p {
                    a href={ (p.base) "/quittung" } target="_blank" rel="noopener" {
                        "Quittung ansehen"
                    }
                    " (öffnet in neuem Fenster) · "
                    a href={ (p.base) "/quittung?herunterladen=1" } download {
                        "Quittung herunterladen"
                    }
                }
            }
            _ => {
                p { "Zu zahlen: " strong { (amount) } }
                @if let Some(r) = &s.request {
                    ul {
                        @for i in &r.items {
                            li { (service_name(&room.tenant, i.service.as_str())) ": " (i.amount) }
                        }
                    }
                }
                @match s.status {
                    PaymentStatus::Failed => {
                        (failure(s))
                        (pay_form(&p.base, "Erneut versuchen", true))
                    }
                    PaymentStatus::Pending | PaymentStatus::Authorized => {
                        p role="status" {
                            "Die Zahlung läuft auf der Seite des Zahlungsdienstes."
                        }
                        (pay_form(&p.base, "Zur Zahlung", true))
                    }
                    _ => (pay_form(&p.base, "Jetzt bezahlen", true)),
                }
            }
        }
    }
}

/// `GET /termin/{token}/raum/zahlung/panel`: the citizen's panel, for the script.
async fn citizen_panel(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let found = async {
        let room = access::citizen(&state, &token).await?;
        // No room data before admission, as for the call itself.
        room.state.in_room()?;
        let panel = panel_of(&state, &room, citizen_base(&token)).await?;
        Ok::<_, Error>(panel_markup(&room, &panel))
    };
    found.await.unwrap_or_else(|e| e.into_response())
}

/// `GET /sachbearbeitung/termin/{id}/raum/zahlung/panel`: the clerk's panel, for the script.
async fn clerk_panel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = async {
        let room = access::clerk(&state, &headers, &id).await?;
        let panel = panel_of(&state, &room, clerk_base(&room)).await?;
        Ok::<_, Error>(panel_markup(&room, &panel))
    };
    found.await.unwrap_or_else(|e| e.into_response())
}

fn panel_markup(room: &Room, panel: &Panel) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        self::panel(room, panel),
    )
        .into_response()
}

/// What the room's socket tells both sides about the payment; the script fetches the panel
/// again when it changes.
pub(crate) async fn summary(state: &AppState, room: &Room) -> serde_json::Value {
    let Some(id) = room.state.payment else {
        return serde_json::Value::Null;
    };
    match load(state, id).await {
        Ok(Some(view)) => serde_json::json!({
            "status": status_name(view.state.status),
            "attempts": view.state.attempts.len(),
        }),
        _ => serde_json::Value::Null,
    }
}

fn status_name(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::New | PaymentStatus::Requested => "requested",
        PaymentStatus::Pending => "pending",
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Captured => "captured",
        PaymentStatus::Failed => "failed",
    }
}

/// The [`summary`] a panel shows, as `status:attempts` (empty for none): the script fetches
/// the panel only when the socket's summary differs, not once more after every page load.
fn summary_key(view: Option<&View>) -> String {
    view.map_or_else(String::new, |v| {
        format!("{}:{}", status_name(v.state.status), v.state.attempts.len())
    })
}

// --- the provider's callback ---

/// `POST /zahlung/rueckmeldung`: the provider says a transaction changed. Its signature must
/// hold (else 401, nothing recorded); then the transaction's status is asked of the provider
/// and recorded like on the return page. 204 when done, a replay included.
async fn callback(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let settled = async {
        let payments = payments(&state)?;
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        let callback = payments.provider.verify_callback(&body, signature)?;
        let view = load(&state, callback.reference)
            .await?
            .ok_or(Error::Refused(DomainError::UnknownPayment))?;
        let known = (view.state.attempts.iter())
            .any(|a| a.provider_reference == callback.provider_reference);
        if !known {
            return Err(Error::Refused(DomainError::UnknownPaymentTransaction));
        }
        let actor = Actor::system(CALLBACK_ACTOR);
        let done = settle(
            &state,
            payments,
            &view,
            &callback.provider_reference,
            &actor,
        )
        .await;
        if let Some(session) = view.session {
            state.hub.refresh(session);
        }
        done
    };
    match settled.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use videoamt_core::domain::session::SessionState;
    use videoamt_core::domain::{AppointmentId, SessionId, SubjectId};
    use videoamt_core::event::ActorRole;

    use super::*;

    fn room(party: Party) -> Room {
        let tenant = videoamt_core::tenant::example_tenants()
            .expect("valid")
            .remove(0);
        Room {
            session: SessionId(Uuid::from_u128(1)),
            appointment: AppointmentId(Uuid::from_u128(2)),
            subject: SubjectId(Uuid::from_u128(3)),
            tenant,
            party,
            actor: Actor::new(ActorRole::Clerk, "a.becker").expect("a valid actor"),
            clerk: Some("a.becker".into()),
            state: SessionState::default(),
            lost_since: None,
        }
    }

    #[test]
    fn before_the_request_the_clerk_sees_the_fees_and_the_citizen_nothing() {
        let clerk = room(Party::Clerk);
        let panel = Panel {
            base: "/sachbearbeitung/termin/x/raum/zahlung".into(),
            party: Party::Clerk,
            payment: None,
            fees: Cents(4_700),
            configured: true,
        };
        let html = self::panel(&clerk, &panel).into_string();
        assert!(
            html.contains("Gebühren der Anliegen: <strong>47,00 €</strong>"),
            "{html}"
        );
        assert!(html.contains("Zahlung anfordern"), "{html}");
        // Nothing to fetch again while the socket says there is no payment either.
        assert!(html.contains(r#"data-payment="""#), "{html}");
        let citizen = room(Party::Citizen);
        let html = self::panel(
            &citizen,
            &Panel {
                party: Party::Citizen,
                base: "/termin/t/raum/zahlung".into(),
                ..panel
            },
        )
        .into_string();
        assert!(html.contains("hidden"), "{html}");
        assert!(!html.contains("Jetzt bezahlen"), "{html}");
    }
}
