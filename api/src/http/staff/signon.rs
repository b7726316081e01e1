//! Staff sign-on through the municipality's directory: OpenID Connect's authorization code
//! flow with PKCE, beside the local passwords (ADR 0022).
//!
//! `GET /anmelden/verzeichnis/{tenant}` starts it: the nonce and PKCE verifier are kept in the
//! store under the SHA-256 of the state (so any process serving the log can finish it), bound
//! to the browser by a random cookie (SameSite=Lax, so that it comes back on the provider's
//! redirect), for [`PENDING_LIFETIME`], and are used once. `GET /anmelden/verzeichnis/rueckkehr` finishes it: state and cookie must match, the
//! code is redeemed, the ID token checked against the nonce and the server's clock, the groups
//! mapped by the tenant's `[oidc]` grants, and the sign-in decided by the account's stream
//! (`DirectorySignIn`). Only then is a session opened, as after a password.
//!
//! The session cookie is SameSite=Strict, and a browser does not send it on a navigation that
//! began at another site, the provider's redirect included: the return page therefore answers
//! with a page that moves on by itself (`Refresh`), a navigation from this site.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use maud::html;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};
use videoamt_core::directory::{Authorization, Directory, DirectoryError};
use videoamt_core::domain::account::Login;
use videoamt_core::event::TenantId;

use crate::app::accounts::{self, AccountError};
use crate::http::AppState;
use crate::http::error::{Error, SignOnProblem};
use crate::http::extract::PageQuery as Query;
use crate::http::html::{moving_on, problem_page};

/// The cookie that binds a started sign-on to its browser.
pub const BINDING_COOKIE: &str = "videoamt_anmeldung";
/// How long a started sign-on waits for the browser to come back.
pub const PENDING_LIFETIME: Duration = Duration::minutes(10);
/// Where the provider sends the browser back to, under the public URL.
pub const RETURN_PATH: &str = "/anmelden/verzeichnis/rueckkehr";

/// A sign-on on its way through the provider, as the store keeps it under the SHA-256 of its
/// `state` (which is not kept itself).
#[derive(Serialize, Deserialize)]
struct Pending {
    tenant: TenantId,
    url: String,
    nonce: String,
    pkce_verifier: String,
    /// SHA-256 of the binding cookie's value, hex.
    binding: String,
}

/// The municipalities' providers. The sign-ons under way are in the store (ADR 0023), so the
/// provider may send the browser back to any process serving the log.
#[derive(Default)]
pub struct SignOns {
    directories: HashMap<TenantId, Arc<dyn Directory>>,
}

impl std::fmt::Debug for SignOns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignOns")
            .field("directories", &self.directories.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SignOns {
    pub fn new(directories: HashMap<TenantId, Arc<dyn Directory>>) -> Self {
        Self { directories }
    }

    /// Whether `tenant` signs staff in through a directory.
    pub fn offers(&self, tenant: &TenantId) -> bool {
        self.directories.contains_key(tenant)
    }

    fn directory(&self, tenant: &TenantId) -> Option<Arc<dyn Directory>> {
        self.directories.get(tenant).cloned()
    }
}

async fn keep(
    state: &AppState,
    tenant: TenantId,
    started: &Authorization,
    binding: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let pending = Pending {
        tenant,
        url: started.url.clone(),
        nonce: started.nonce.clone(),
        pkce_verifier: started.pkce_verifier.clone(),
        binding: hex(&digest(binding)),
    };
    let text = serde_json::to_string(&pending)
        .map_err(|e| Error::internal(format!("sign-on state not written: {e}")))?;
    state
        .store
        .put_sign_on(digest(&started.state), text, now + PENDING_LIFETIME)
        .await?;
    Ok(())
}

/// The sign-on started under `state` in the browser holding `binding`, taken out: a state is
/// good for one return only, and for [`PENDING_LIFETIME`].
async fn take(
    state: &AppState,
    returned: &str,
    binding: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<(TenantId, Authorization)>, Error> {
    let Some(text) = state.store.take_sign_on(digest(returned), now).await? else {
        return Ok(None);
    };
    let pending: Pending = serde_json::from_str(&text)
        .map_err(|e| Error::internal(format!("sign-on state unreadable: {e}")))?;
    let bound = binding.is_some_and(|b| hex(&digest(b)) == pending.binding);
    Ok(bound.then(|| {
        (
            pending.tenant,
            Authorization {
                url: pending.url,
                state: returned.to_owned(),
                nonce: pending.nonce,
                pkce_verifier: pending.pkce_verifier,
            },
        )
    }))
}

fn digest(value: &str) -> [u8; 32] {
    sha2::Sha256::digest(value.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn refused(problem: SignOnProblem, cause: Option<String>) -> Response {
    problem_page(&Error::SignOn { problem, cause })
}

/// A provider's failure as the page says it; the cause goes to the log.
fn provider_failed(e: &DirectoryError) -> Response {
    let problem = match e {
        DirectoryError::Unreachable(_) => SignOnProblem::Unreachable,
        DirectoryError::Protocol(_) => SignOnProblem::Provider,
        DirectoryError::Token(_) => SignOnProblem::TokenRefused,
    };
    refused(problem, Some(e.to_string()))
}

fn callback_url(state: &AppState) -> String {
    format!("{}{RETURN_PATH}", state.public_url)
}

fn binding_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{BINDING_COOKIE}={value}; Path=/anmelden/verzeichnis; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    )
}

fn binding_of(headers: &HeaderMap) -> Option<&str> {
    crate::http::staff::session::cookie_named(headers, BINDING_COOKIE)
}

/// `GET /anmelden/verzeichnis/{tenant}`: off to the municipality's provider.
pub(crate) async fn start(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    let Some((tenant, directory)) = TenantId::parse(&tenant)
        .ok()
        .and_then(|t| state.sign_ons.directory(&t).map(|d| (t, d)))
    else {
        return refused(SignOnProblem::NotOffered, None);
    };
    let started = match directory.start(&callback_url(&state)).await {
        Ok(started) => started,
        Err(e) => return provider_failed(&e),
    };
    let mut bytes = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut bytes) {
        return problem_page(&Error::internal(format!(
            "no randomness for a sign-on: {e}"
        )));
    }
    let binding = B64URL.encode(bytes);
    let url = started.url.clone();
    if let Err(e) = keep(&state, tenant, &started, &binding, state.now()).await {
        return problem_page(&e);
    }
    (
        [(
            header::SET_COOKIE,
            binding_cookie(&state, &binding, PENDING_LIFETIME.whole_seconds()),
        )],
        Redirect::to(&url),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct Return {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /anmelden/verzeichnis/rueckkehr`: back from the provider.
pub(crate) async fn finish(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(back): Query<Return>,
) -> Response {
    let now = state.now();
    let pending = match back.state.as_deref() {
        Some(returned) => match take(&state, returned, binding_of(&headers), now).await {
            Ok(pending) => pending,
            Err(e) => return problem_page(&e),
        },
        None => None,
    };
    let answer = match (pending, back.error, back.code) {
        (None, _, _) => refused(SignOnProblem::Invalid, None),
        // The provider's error code (`access_denied`, `login_required`, …), never a token.
        (Some(_), Some(error), _) => refused(
            SignOnProblem::Cancelled,
            Some(format!("the identity provider answered {error:?}")),
        ),
        (Some(_), None, None) => refused(SignOnProblem::Invalid, None),
        (Some(pending), None, Some(code)) => signed_on(&state, pending, &code, now).await,
    };
    // The binding is spent either way; appended, so that a session cookie stays.
    let mut answer = answer;
    if let Ok(cleared) = binding_cookie(&state, "", 0).parse() {
        answer.headers_mut().append(header::SET_COOKIE, cleared);
    }
    answer
}

async fn signed_on(
    state: &AppState,
    (tenant_id, started): (TenantId, Authorization),
    code: &str,
    now: OffsetDateTime,
) -> Response {
    let Some(directory) = state.sign_ons.directory(&tenant_id) else {
        return refused(SignOnProblem::NotOffered, None);
    };
    let Some(tenant) = state.tenants.iter().find(|t| t.id == tenant_id) else {
        return refused(SignOnProblem::NotOffered, None);
    };
    let Some(mapping) = tenant.oidc.as_ref() else {
        return refused(SignOnProblem::NotOffered, None);
    };
    let identity = match directory
        .finish(&started, code, &callback_url(state), now)
        .await
    {
        Ok(identity) => identity,
        Err(e) => return provider_failed(&e),
    };
    let Some(login) = identity
        .login
        .as_deref()
        .and_then(|l| Login::parse(&l.trim().to_lowercase()))
    else {
        return refused(SignOnProblem::BadLogin, None);
    };
    let grant = mapping.grant(&identity.groups);
    let granted = grant.is_some();
    match accounts::directory_sign_in(&state.system, tenant, login.clone(), grant, now).await {
        Ok(()) => {}
        Err(AccountError::Bus(e)) => return problem_page(&Error::from(e)),
        Err(e) => return problem_page(&Error::internal(e)),
    }
    if !granted {
        return refused(SignOnProblem::NoGrant, None);
    }
    let (cookie, staff) =
        match crate::http::staff::session::open_directory_session(state, &tenant.id, login).await {
            Ok(opened) => opened,
            Err(e) => return problem_page(&e),
        };
    let home = crate::http::staff::pages::home(staff.role);
    let body = html! {
        p { "Sie sind angemeldet als " strong { (staff.login.as_str()) } "." }
        p { a href=(home) { "Weiter" } }
    };
    let mut response = moving_on("Angemeldet", body, home);
    if let Ok(value) = crate::http::staff::session::session_cookie(state, &cookie).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Where logging out of a directory session goes: the provider's end-session endpoint, which
/// brings the browser back to the login page; `None` without one, or when it does not answer
/// (the local session is ended all the same).
pub(crate) async fn end_session(state: &AppState, tenant: &TenantId) -> Option<String> {
    let directory = state.sign_ons.directory(tenant)?;
    match directory
        .end_session(&format!("{}/anmelden", state.public_url))
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "the identity provider's end-session URL is unknown");
            None
        }
    }
}
