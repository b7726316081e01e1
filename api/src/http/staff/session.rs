//! Staff logins: accounts in the log (`account-{tenant}:{login}`, decided by
//! `core::domain::account`), passwords checked with argon2id, and sessions kept in the store
//! behind an HttpOnly, SameSite=Strict cookie (`__Host-`, Secure behind https).
//!
//! A session is a random cookie value; the store keeps only its SHA-256, the account it
//! belongs to and its times (ADR 0023). So every process serving the log knows it, a restart
//! keeps it, and ending it (logout, idle timeout, a lock or deactivation) holds everywhere.

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
use videoamt_core::staff_session::{SessionKey, SessionRecord};
use videoamt_core::tenant::{DepartmentId, Tenant};

use crate::http::AppState;
use crate::http::error::Error;
use crate::http::middleware::guard::Client;

/// The session cookie's name over plain HTTP (a development or loopback server).
pub const COOKIE: &str = "videoamt_sitzung";
/// The session cookie's name behind https.
pub const HOST_COOKIE: &str = "__Host-videoamt_sitzung";
/// How long a session lasts after login: one working day.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);
/// A session unused for this long is over, by default (`VIDEOAMT_SESSION_IDLE_MINUTES`).
pub const IDLE_TIMEOUT: Duration = Duration::minutes(30);
/// How stale a session's last-seen time may get before a request writes it again.
const SEEN_EVERY: Duration = Duration::minutes(1);

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

/// Signed-in staff: the sessions themselves live in the store (ADR 0023), so that every
/// process serving the log knows them; this keeps the cookie's name and the accounts' states
/// as far as their streams were read.
#[derive(Debug)]
pub struct Sessions {
    /// `__Host-videoamt_sitzung` behind https, else [`COOKIE`].
    cookie: &'static str,
    /// A session nobody used for this long is over.
    idle: Duration,
    /// Each account's state and the stream version to read on from.
    accounts: Mutex<HashMap<StreamId, (AccountState, StreamVersion)>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(false, IDLE_TIMEOUT)
    }
}

/// The key a session is kept under: the SHA-256 digest of its cookie.
pub(crate) fn key(cookie: &str) -> SessionKey {
    sha2::Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    /// `https`: the public URL is https, so the cookie can carry the `__Host-` prefix (Secure,
    /// no Domain, Path=/: no other host and no plain-HTTP page can set or overwrite it).
    pub fn new(https: bool, idle: Duration) -> Self {
        Self {
            cookie: if https { HOST_COOKIE } else { COOKIE },
            idle,
            accounts: Mutex::default(),
        }
    }

    /// The session cookie's name on this server.
    pub fn cookie_name(&self) -> &'static str {
        self.cookie
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }
}

async fn open(
    state: &AppState,
    staff: &Staff,
    epoch: u32,
    now: OffsetDateTime,
) -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("no randomness for a session: {e}")))?;
    let cookie = B64URL.encode(bytes);
    // Whoever opens a session sweeps the stale ones: the table stays as small as the staff
    // signed in, without a timer of its own.
    state
        .store
        .close_stale_sessions(now, state.sessions.idle)
        .await?;
    let record = SessionRecord {
        tenant: staff.tenant.clone(),
        login: staff.login.clone(),
        epoch,
        directory: staff.directory,
        expires: staff.expires,
        seen: now,
    };
    state.store.open_session(key(&cookie), record).await?;
    Ok(cookie)
}

/// Keeps this session open across a change its own holder made (a new password), which
/// ends the account's other sessions.
pub(crate) async fn carry_over(state: &AppState, cookie: &str, epoch: u32) -> Result<(), Error> {
    Ok(state.store.carry_session_over(key(cookie), epoch).await?)
}

/// The session cookie's value, if the request carries one.
pub fn cookie_of<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    cookie_named(headers, state.sessions.cookie)
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
    match cookie_of(state, headers) {
        Some(cookie) => session(state, cookie).await,
        None => Ok(None),
    }
}

/// The staff member of an open session, with the role and departments the account has now.
/// The session is over after its lifetime, after [`Sessions::idle_timeout`] without a
/// request, and as soon as the account is deactivated, locked, or its sessions ended (a reset
/// or new password): the account's stream is read on every call (only what is new since the
/// last), so whichever process recorded the change, the next request sees it (ADR 0021,
/// ADR 0023).
pub async fn session(state: &AppState, cookie: &str) -> Result<Option<Staff>, Error> {
    let key = key(cookie);
    let Some(open) = state.store.session(key).await? else {
        return Ok(None);
    };
    let now = state.now();
    if open.expires <= now || now - open.seen >= state.sessions.idle {
        state.store.close_session(key).await?;
        return Ok(None);
    }
    let current = account_now(state, &open.tenant, &open.login).await?;
    let locked = current.is_locked(now);
    match current.account {
        Some(a) if a.active && !locked && a.sessions_epoch == open.epoch => {
            // The idle clock moves at most once a minute: one write per minute of work, not
            // one per request.
            if now - open.seen >= SEEN_EVERY {
                state.store.touch_session(key, now).await?;
            }
            Ok(Some(Staff {
                tenant: open.tenant,
                login: open.login,
                role: a.role,
                departments: a.departments.into_iter().collect(),
                expires: open.expires,
                directory: open.directory,
            }))
        }
        _ => {
            state.store.close_session(key).await?;
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
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        state.sessions.cookie,
        SESSION_LIFETIME.whole_seconds()
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn cleared_cookie(state: &AppState) -> String {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        state.sessions.cookie
    )
}

/// Ends the session of this request, if any.
pub async fn log_out(headers: &HeaderMap, state: &AppState) -> Result<(), Error> {
    if let Some(cookie) = cookie_of(state, headers) {
        state.store.close_session(key(cookie)).await?;
    }
    Ok(())
}

/// Checks a password off the async threads: argon2id takes tens of milliseconds on purpose.
/// Without a hash it spends the same time and matches nothing.
async fn matches(password: &str, hash: Option<&PasswordHash>) -> Result<bool, Error> {
    Ok(crate::app::accounts::verify(password, hash).await?)
}

/// A login attempt from `client`. Every password checked against an existing account is
/// recorded (`LoginSucceeded` after failures, `LoginFailed`); an unknown account writes nothing.
/// Failures throttle the client at this login, never the account ([`LoginThrottle`], ADR
/// 0025). Whatever was wrong (an unknown municipality or login, a wrong password, a throttled
/// client, a lock of an older log), the answer is the same refusal; only the right password
/// of a deactivated account learns that it is deactivated. Answers with the new session's
/// cookie value.
///
/// [`LoginThrottle`]: crate::http::staff::throttle::LoginThrottle
pub async fn log_in(
    state: &AppState,
    client: Client,
    tenant: &str,
    login: &str,
    password: &str,
) -> Result<(String, Staff), Error> {
    let refused = || Error::Refused(videoamt_core::domain::DomainError::LoginRefused);
    let typed = login.trim();
    let found = crate::http::citizen::service::tenant(state, tenant).zip(Login::parse(typed));
    let account = match &found {
        Some((tenant, login)) => Some(account_now(state, &tenant.id, login).await?),
        None => None,
    };
    let now = state.now();
    let clock = std::time::Duration::try_from(now - OffsetDateTime::UNIX_EPOCH).unwrap_or_default();
    let epoch = account.as_ref().map_or(0, |a| a.login_epoch);
    let attempt = state.login_throttle.attempt(tenant, typed, client, epoch);
    // A throttled client learns nothing more, whether the login exists or not.
    if state.login_throttle.throttled(&attempt, clock) {
        return Err(refused());
    }
    let fail = || {
        state.login_throttle.failed(&attempt, clock);
        refused()
    };
    let (Some((tenant, login)), Some(account)) = (found, account) else {
        matches(password, None).await?;
        return Err(fail());
    };
    let Some(created) = account.account.clone() else {
        matches(password, None).await?;
        return Err(fail());
    };
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
    match state.system.bus().execute(&command, &issued).await {
        Ok(_) if ok => {}
        Ok(_) => return Err(fail()),
        // Whoever does not know the password learns nothing, a lock included.
        Err(videoamt_adapters::bus::BusError::Refused(
            videoamt_core::domain::DomainError::LoginRefused
            | videoamt_core::domain::DomainError::AccountLocked,
        )) => return Err(fail()),
        Err(e) => return Err(e.into()),
    }
    state.login_throttle.succeeded(&attempt);
    open_session(state, &tenant.id, login, &created, now).await
}

/// Opens a session for `account`, as it is now.
async fn open_session(
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
    let cookie = open(state, &staff, account.sessions_epoch, now).await?;
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
        Some(a) if a.active && a.directory => {
            open_session(state, tenant, login, &a, state.now()).await
        }
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
        assert_eq!(cookie_named(&h, COOKIE), Some("abc-DEF_1"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "videoamt_sitzungX=abc".parse().expect("a header value"),
        );
        assert_eq!(cookie_named(&h, COOKIE), None);
    }
}
