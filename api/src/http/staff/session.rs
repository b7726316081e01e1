//! Staff logins: accounts in the log (`account-{tenant}:{login}`, decided by
//! `core::domain::account`), passwords checked with argon2id, and sessions held in the
//! server's memory behind an HttpOnly, SameSite=Strict cookie (Secure behind https).
//!
//! A session lives in memory only, so a restart logs everybody out: nothing of it can leak
//! from the database, and ending it is immediate.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::account::{
    AccountCommand, AccountState, Login, PasswordHash, StaffRole,
};
use videoamt_core::domain::command::Command;
use videoamt_core::event::{Actor, ActorRole, StreamId, StreamVersion, TenantId};
use videoamt_core::tenant::{DepartmentId, Tenant};

use crate::http::AppState;
use crate::http::error::Error;

/// The session cookie's name.
pub const COOKIE: &str = "videoamt_sitzung";
/// How long a session lasts after login: one working day.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);

/// A logged-in staff member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub tenant: TenantId,
    pub login: Login,
    pub role: StaffRole,
    /// A clerk's departments; empty for the other roles.
    pub departments: BTreeSet<DepartmentId>,
    pub expires: OffsetDateTime,
    /// Signed in through the municipality's directory: logging out ends the provider's
    /// session too, and there is no password to change here.
    pub directory: bool,
}

impl Staff {
    /// Who acts, as recorded in the events this person causes.
    pub fn actor(&self) -> Actor {
        Actor::new(self.role.actor_role(), self.login.as_str())
            .expect("a checked login is a valid actor id")
    }

    /// Refuses with 403 unless the person has `role`.
    pub fn require(&self, role: StaffRole) -> Result<(), Error> {
        self.require_any(&[role])
    }

    /// Refuses with 403 unless the person has one of `roles`.
    pub fn require_any(&self, roles: &[StaffRole]) -> Result<(), Error> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    pub fn tenant<'a>(&self, state: &'a AppState) -> Result<&'a Tenant, Error> {
        state
            .tenants
            .iter()
            .find(|t| t.id == self.tenant)
            .ok_or(Error::Forbidden)
    }

    /// A clerk works only on their departments' appointments.
    pub fn may_work_on(&self, department: &DepartmentId) -> bool {
        self.role == StaffRole::Clerk && self.departments.contains(department)
    }
}

/// A session as it was opened: who, and the account's `sessions_epoch` then.
#[derive(Debug, Clone)]
struct Open {
    staff: Staff,
    epoch: u32,
}

/// Open sessions by the SHA-256 of their cookie value, and the accounts they belong to as far
/// as their streams were read.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Open>>,
    /// Each account's state and the stream version to read on from.
    accounts: Mutex<HashMap<StreamId, (AccountState, StreamVersion)>>,
}

fn key(cookie: &str) -> [u8; 32] {
    sha2::Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    fn open(&self, staff: Staff, epoch: u32) -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal(format!("no randomness for a session: {e}")))?;
        let cookie = B64URL.encode(bytes);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = staff.expires - SESSION_LIFETIME;
        open.retain(|_, s| s.staff.expires > now);
        open.insert(key(&cookie), Open { staff, epoch });
        Ok(cookie)
    }

    fn get(&self, cookie: &str, now: OffsetDateTime) -> Option<Open> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&key(cookie))
            .filter(|s| s.staff.expires > now)
            .cloned()
    }

    fn close(&self, cookie: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&key(cookie));
    }

    /// Keeps this session open across a change its own holder made (a new password), which
    /// ends the account's other sessions.
    pub(crate) fn carry_over(&self, cookie: &str, epoch: u32) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = open.get_mut(&key(cookie)) {
            s.epoch = epoch;
        }
    }
}

/// The session cookie's value, if the request carries one.
pub fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, COOKIE)
}

/// The value of the cookie `name`, if the request carries one.
pub(crate) fn cookie_named<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The staff member a request's cookie belongs to; `None` without a valid session.
pub async fn staff_of(headers: &HeaderMap, state: &AppState) -> Result<Option<Staff>, Error> {
    match cookie_of(headers) {
        Some(cookie) => session(state, cookie).await,
        None => Ok(None),
    }
}

/// The staff member of an open, unexpired session, with the role and departments the account
/// has now. The account's stream is read on every call (only what is new since the last), so
/// a deactivation, a reset or a new password ends the session at its next request, whichever
/// process recorded it (ADR 0021).
pub async fn session(state: &AppState, cookie: &str) -> Result<Option<Staff>, Error> {
    let Some(open) = state.sessions.get(cookie, state.now()) else {
        return Ok(None);
    };
    let current = account_now(state, &open.staff.tenant, &open.staff.login).await?;
    match current.account {
        Some(a) if a.active && a.sessions_epoch == open.epoch => Ok(Some(Staff {
            role: a.role,
            departments: a.departments.into_iter().collect(),
            ..open.staff
        })),
        _ => {
            state.sessions.close(cookie);
            Ok(None)
        }
    }
}

/// An account's state now: the cached fold, brought up to the end of its stream.
pub(crate) async fn account_now(
    state: &AppState,
    tenant: &TenantId,
    login: &Login,
) -> Result<AccountState, Error> {
    let stream = login.stream(tenant);
    let (mut account, from) = {
        let accounts = state
            .sessions
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        accounts.get(&stream).cloned().unwrap_or_default()
    };
    let new = state.store.read_stream(&stream, from).await?;
    let Some(last) = new.last().map(|e| e.stream_version) else {
        return Ok(account);
    };
    for e in &new {
        let event = DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
            .map_err(|e| Error::internal(format!("account event unreadable: {e}")))?;
        account = account.evolve(&event);
    }
    let mut accounts = state
        .sessions
        .accounts
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Another request may have read further meanwhile; keep whichever is newer.
    if accounts.get(&stream).is_none_or(|(_, at)| *at <= last) {
        accounts.insert(stream, (account.clone(), last + 1));
    }
    Ok(account)
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        staff_of(&parts.headers, state)
            .await?
            .ok_or(Error::LoginRequired)
    }
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(state: &AppState, value: &str) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.whole_seconds()
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Ends the session of this request, if any.
pub fn log_out(headers: &HeaderMap, state: &AppState) {
    if let Some(cookie) = cookie_of(headers) {
        state.sessions.close(cookie);
    }
}

/// Checks a password off the async threads: argon2id takes tens of milliseconds on purpose.
/// Without a hash it spends the same time and matches nothing.
async fn matches(password: &str, hash: Option<&PasswordHash>) -> Result<bool, Error> {
    Ok(crate::app::accounts::verify(password, hash).await?)
}

/// A login attempt: every attempt on an existing account is recorded (`LoginSucceeded`,
/// `LoginFailed`, the fifth failure in a row also `AccountLocked`); an unknown account or a
/// locked one writes nothing. Answers with the new session's cookie value.
pub async fn log_in(
    state: &AppState,
    tenant: &str,
    login: &str,
    password: &str,
) -> Result<(String, Staff), Error> {
    let tenant = crate::http::citizen::service::tenant(state, tenant);
    let login = Login::parse(login.trim());
    let (Some(tenant), Some(login)) = (tenant, login) else {
        matches(password, None).await?;
        return Err(Error::Refused(
            videoamt_core::domain::DomainError::LoginRefused,
        ));
    };
    let account = account_now(state, &tenant.id, &login).await?;
    let Some(created) = account.account.clone() else {
        matches(password, None).await?;
        return Err(Error::Refused(
            videoamt_core::domain::DomainError::LoginRefused,
        ));
    };
    let now = state.now();
    if account.is_locked(now) {
        return Err(Error::Refused(
            videoamt_core::domain::DomainError::AccountLocked,
        ));
    }
    let ok = matches(password, created.password_hash.as_ref()).await?;
    let actor = Actor::new(created.role.actor_role(), login.as_str())
        .expect("a checked login is a valid actor id");
    let issued = Issued {
        tenant: tenant.id.clone(),
        actor,
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now,
    };
    let command: Command = AccountCommand::LogIn {
        account: login.clone(),
        password_matches: ok,
    }
    .into();
    state
        .system
        .bus()
        .execute(&command, &issued)
        .await
        .map_err(Error::from)?;
    if !ok {
        // The failure just recorded may have been the one that locked the account.
        let after = account_now(state, &tenant.id, &login).await?;
        return Err(if after.is_locked(now) {
            Error::Refused(videoamt_core::domain::DomainError::AccountLocked)
        } else {
            Error::Refused(videoamt_core::domain::DomainError::LoginRefused)
        });
    }
    open_session(state, &tenant.id, login, &created, now)
}

/// Opens a session for `account`, as it is now.
fn open_session(
    state: &AppState,
    tenant: &TenantId,
    login: Login,
    account: &videoamt_core::domain::account::Account,
    now: OffsetDateTime,
) -> Result<(String, Staff), Error> {
    let staff = Staff {
        tenant: tenant.clone(),
        login,
        role: account.role,
        departments: account.departments.iter().cloned().collect(),
        expires: now + SESSION_LIFETIME,
        directory: account.directory,
    };
    let cookie = state.sessions.open(staff.clone(), account.sessions_epoch)?;
    Ok((cookie, staff))
}

/// Opens a session for the directory account `login` of `tenant`, whose sign-in was just
/// recorded: as its stream says now, so a deactivation in between keeps it out.
pub(crate) async fn open_directory_session(
    state: &AppState,
    tenant: &TenantId,
    login: Login,
) -> Result<(String, Staff), Error> {
    let account = account_now(state, tenant, &login).await?;
    match account.account {
        Some(a) if a.active && a.directory => open_session(state, tenant, login, &a, state.now()),
        Some(a) if !a.directory => Err(Error::Refused(
            videoamt_core::domain::DomainError::LocalAccountExists,
        )),
        _ => Err(Error::Refused(
            videoamt_core::domain::DomainError::AccountDisabled,
        )),
    }
}

/// Creates an account (the admin's `videoamt user add`): the password is hashed here and
/// only its hash is recorded.
pub async fn create_account(
    system: &crate::app::System,
    tenant: &Tenant,
    login: &str,
    role: StaffRole,
    departments: &[String],
    password: &str,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let login = Login::parse(login).ok_or_else(|| {
        anyhow::anyhow!(
            "Der Anmeldename {login:?} ist ungültig: 2 bis 48 Zeichen aus a–z, 0–9, Punkt, Bindestrich und Unterstrich, beginnend mit einem Buchstaben."
        )
    })?;
    let actor = Actor::new(ActorRole::Admin, "cli")?;
    crate::app::accounts::create_with_password(
        system,
        tenant,
        &actor,
        login,
        role,
        videoamt_core::domain::account::departments(departments),
        password,
        now,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "theme=dark; videoamt_sitzung=abc-DEF_1; other=x"
                .parse()
                .expect("a header value"),
        );
        assert_eq!(cookie_of(&h), Some("abc-DEF_1"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "videoamt_sitzungX=abc".parse().expect("a header value"),
        );
        assert_eq!(cookie_of(&h), None);
    }
}
