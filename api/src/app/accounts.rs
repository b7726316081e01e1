//! The lifecycle of staff accounts, shared by the admin's pages and API and by `videoamt
//! user`: listing a municipality's accounts, creating one with a one-time link, resets,
//! lockout lifts, deactivation and reactivation, role changes, and setting a password through
//! a link. Who may do it is decided by the caller (`http::staff::desk`, or the operator at the
//! command line); what may happen, by `core::domain::account`.

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::access::token_hash;
use videoamt_adapters::bus::{BusError, Issued};
use videoamt_adapters::passwords::{self, PasswordError};
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::account::{
    AccountCommand, AccountState, FirstPassword, Login, PASSWORD_LINK_LIFETIME, PasswordHash,
    StaffRole,
};
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::{DecodeError, PasswordLinkIssued};
use videoamt_core::event::{Actor, TenantId};
use videoamt_core::store::StoreError;
use videoamt_core::tenant::{DepartmentId, Tenant};
use videoamt_projections::accounts;

use super::System;

/// Other admins whose streams one removal reads at most; more would only be more of the same
/// answer, and the bus bounds the streams of a command.
const MAX_ADMIN_CANDIDATES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The workflow refused, or the bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A new password breaks the rules (too short, too long), or could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an account event cannot be read: {0}")]
    Decode(#[from] DecodeError),
    #[error("the password check failed: {0}")]
    Task(String),
}

/// An account as its stream says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub login: Login,
    pub role: StaffRole,
    pub departments: Vec<DepartmentId>,
    pub active: bool,
    /// Locked until then by an `AccountLocked` of an older log (ADR 0025).
    pub locked_until: Option<OffsetDateTime>,
    /// Failed logins since the last success or unlock; an admin may lift the throttles they
    /// caused.
    pub failed_logins: u32,
    /// The password is still to be set through the link that expires then.
    pub link_expires: Option<OffsetDateTime>,
    /// Signs in through the municipality's directory, which keeps its password and role.
    pub directory: bool,
}

impl AccountInfo {
    fn of(state: &AccountState, now: OffsetDateTime) -> Option<Self> {
        let a = state.account.as_ref()?;
        Some(Self {
            login: a.login.clone(),
            role: a.role,
            departments: a.departments.clone(),
            active: a.active,
            locked_until: state.locked_until.filter(|_| state.is_locked(now)),
            failed_logins: state.failures,
            link_expires: a.link.as_ref().map(|l| l.expires),
            directory: a.directory,
        })
    }
}

/// A one-time link to set a password, to pass on; shown once, never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedLink {
    pub token: String,
    pub expires: OffsetDateTime,
}

impl std::fmt::Debug for IssuedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLink")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl IssuedLink {
    /// The page the link opens, under `base` (scheme, host and port, no trailing slash).
    pub fn url(&self, base: &str) -> String {
        format!("{base}/konto/passwort/{}", self.token)
    }
}

/// One account's state now, folded from its stream.
pub async fn state(
    system: &System,
    tenant: &TenantId,
    login: &Login,
) -> Result<AccountState, AccountError> {
    let history = system
        .history(&login.stream(tenant))
        .await
        .map_err(|e| match e {
            super::system::LoadError::Store(e) => AccountError::Store(e),
            super::system::LoadError::Decode(e) => AccountError::Decode(e),
        })?;
    Ok(history
        .iter()
        .fold(AccountState::default(), |a, (_, e)| a.evolve(e)))
}

/// One account as it is now; `None` when there is no such account in `tenant`.
pub async fn info(
    system: &System,
    tenant: &TenantId,
    login: &Login,
    now: OffsetDateTime,
) -> Result<Option<AccountInfo>, AccountError> {
    Ok(AccountInfo::of(&state(system, tenant, login).await?, now))
}

/// The accounts of `tenant`, by login: which there are from the accounts read model, what each
/// is now from its stream (all read in one round trip).
pub async fn list(
    system: &System,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<Vec<AccountInfo>, AccountError> {
    let listed = accounts::listed(system.store.as_ref(), tenant.as_str()).await?;
    let logins: Vec<Login> = listed
        .iter()
        .filter_map(|l| Login::parse(&l.login))
        .collect();
    let streams: Vec<_> = logins.iter().map(|l| l.stream(tenant)).collect();
    let read = system.store.read_streams(&streams).await?;
    let mut infos = Vec::with_capacity(read.len());
    for recorded in read {
        let mut state = AccountState::default();
        for e in &recorded {
            let event =
                DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)?;
            state = state.evolve(&event);
        }
        infos.extend(AccountInfo::of(&state, now));
    }
    Ok(infos)
}

/// The admins of `tenant` as the accounts read model knows them: the candidates whose streams
/// the last-admin rule reads.
async fn admins(system: &System, tenant: &TenantId) -> Result<Vec<Login>, AccountError> {
    Ok(accounts::listed(system.store.as_ref(), tenant.as_str())
        .await?
        .into_iter()
        .filter(|l| l.role == StaffRole::Admin)
        .filter_map(|l| Login::parse(&l.login))
        .take(MAX_ADMIN_CANDIDATES)
        .collect())
}

async fn execute(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    command: AccountCommand,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let issued = Issued {
        tenant: tenant.id.clone(),
        actor: actor.clone(),
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now,
    };
    system
        .bus()
        .execute(&Command::Account(command), &issued)
        .await?;
    Ok(())
}

/// A new link for `login`, valid for 72 hours from `now`, and what the log keeps of it.
fn new_link(
    tenant: &Tenant,
    login: &Login,
    now: OffsetDateTime,
) -> Result<(IssuedLink, PasswordLinkIssued), AccountError> {
    let token = passwords::link_token(&tenant.id, login)?;
    let expires = now + PASSWORD_LINK_LIFETIME;
    let recorded = PasswordLinkIssued {
        digest: token_hash(&token),
        expires,
    };
    Ok((IssuedLink { token, expires }, recorded))
}

/// argon2id runs at most this many at once: one per core. Each takes 19 MiB and a core for
/// tens of milliseconds; more at once would only share the cores slower, hold more memory and
/// crowd the blocking pool that file and store work shares. Logins beyond it wait their turn.
static ARGON2: std::sync::LazyLock<Argon2Pool> = std::sync::LazyLock::new(|| {
    Argon2Pool::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
});

/// The permits for argon2id, and how many run (for the test that the cap holds).
struct Argon2Pool {
    permits: tokio::sync::Semaphore,
    #[cfg(test)]
    cap: usize,
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Argon2Pool {
    fn new(cap: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(cap),
            #[cfg(test)]
            cap,
            running: std::sync::atomic::AtomicUsize::new(0),
            most: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &'static self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AccountError> {
        use std::sync::atomic::Ordering::SeqCst;
        let permit =
            (self.permits.acquire().await).map_err(|e| AccountError::Task(e.to_string()))?;
        let done = tokio::task::spawn_blocking(move || {
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            let result = work();
            self.running.fetch_sub(1, SeqCst);
            result
        })
        .await
        .map_err(|e| AccountError::Task(e.to_string()));
        drop(permit);
        done
    }
}

/// Hashes a new password off the async threads, after checking the rules.
pub async fn hash(password: &str) -> Result<PasswordHash, AccountError> {
    let password = password.to_owned();
    let phc = ARGON2.run(move || passwords::hash(&password)).await??;
    Ok(PasswordHash::new(phc))
}

/// Whether `password` is the account's, checked off the async threads.
pub async fn verify(password: &str, hash: Option<&PasswordHash>) -> Result<bool, AccountError> {
    let password = password.to_owned();
    let hash = hash.map(|h| h.as_str().to_owned());
    ARGON2
        .run(move || match hash {
            Some(hash) => passwords::verify(&password, &hash),
            None => {
                passwords::verify_nothing(&password);
                false
            }
        })
        .await
}

/// An admin creates an account whose holder sets the password through the returned link.
pub async fn create(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    role: StaffRole,
    departments: Vec<DepartmentId>,
    now: OffsetDateTime,
) -> Result<IssuedLink, AccountError> {
    let (link, recorded) = new_link(tenant, &login, now)?;
    let command = AccountCommand::CreateAccount {
        login,
        role,
        departments,
        password: FirstPassword::Link(recorded),
    };
    execute(system, tenant, actor, command, now).await?;
    Ok(link)
}

/// The operator creates an account with a password they give (`videoamt user add`); only
/// its hash is recorded.
#[allow(clippy::too_many_arguments)]
pub async fn create_with_password(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    role: StaffRole,
    departments: Vec<DepartmentId>,
    password: &str,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let command = AccountCommand::CreateAccount {
        login,
        role,
        departments,
        password: FirstPassword::Hash(hash(password).await?),
    };
    execute(system, tenant, actor, command, now).await
}

/// An admin resets the password: the old one stops working, the returned link sets a new one.
pub async fn reset(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    now: OffsetDateTime,
) -> Result<IssuedLink, AccountError> {
    let (link, recorded) = new_link(tenant, &login, now)?;
    let command = AccountCommand::IssuePasswordLink {
        account: login,
        link: recorded,
    };
    execute(system, tenant, actor, command, now).await?;
    Ok(link)
}

/// An admin lifts the lock after too many failed logins.
pub async fn unlock(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    execute(
        system,
        tenant,
        actor,
        AccountCommand::Unlock { account: login },
        now,
    )
    .await
}

/// An admin deactivates an account; refused for the municipality's last active admin.
pub async fn deactivate(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let admins = admins(system, &tenant.id).await?;
    let command = AccountCommand::Deactivate {
        account: login,
        admins,
    };
    execute(system, tenant, actor, command, now).await
}

/// The municipality's directory vouched for `login`, whose groups grant `grant` (or nothing,
/// which is recorded as a refusal): creates the directory account on its first sign-in and
/// keeps its role as granted. The directory is the actor: the person is not signed in yet.
pub async fn directory_sign_in(
    system: &System,
    tenant: &Tenant,
    login: Login,
    grant: Option<(StaffRole, Vec<DepartmentId>)>,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let admins = admins(system, &tenant.id).await?;
    let actor = Actor::new(videoamt_core::event::ActorRole::System, "verzeichnis")
        .expect("a fixed actor id is valid");
    let command = AccountCommand::DirectorySignIn {
        account: login,
        grant,
        admins,
    };
    execute(system, tenant, &actor, command, now).await
}

/// The history of `login` for the auditor `viewer`, recorded first (`AccountHistoryViewed`, which
/// is then part of it): every event of the account's stream and those of the municipality's
/// roster that name it, in log order, worded for a person. An unknown account is refused by the
/// command (`UnknownAccount`), and then nothing is written.
pub async fn history(
    system: &System,
    tenant: &Tenant,
    viewer: &Actor,
    login: &Login,
    now: OffsetDateTime,
) -> Result<Vec<videoamt_projections::audit::Entry>, AccountError> {
    let command = AccountCommand::RecordHistoryView {
        account: login.clone(),
    };
    execute(system, tenant, viewer, command, now).await?;
    let streams = [
        login.stream(&tenant.id),
        videoamt_core::domain::account::roster_stream(&tenant.id),
    ];
    let mut entries = Vec::new();
    for recorded in system.store.read_streams(&streams).await?.iter().flatten() {
        let event = DomainEvent::from_payload(
            recorded.event_type.as_str(),
            recorded.schema_version,
            &recorded.payload,
        )?;
        let names_it = match &event {
            DomainEvent::AdminRemoved(e) => e.account == *login,
            DomainEvent::DirectorySignInRefused(e) => e.login == *login,
            DomainEvent::AccountHistoryViewed(e) => e.account == *login,
            _ => recorded.stream_id == streams[0],
        };
        if names_it {
            entries.push(videoamt_projections::audit::Entry::of(
                recorded,
                &event,
                Some(tenant),
            ));
        }
    }
    entries.sort_by_key(|e| e.position);
    Ok(entries)
}

/// An admin reactivates a deactivated account.
pub async fn reactivate(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    execute(
        system,
        tenant,
        actor,
        AccountCommand::Reactivate { account: login },
        now,
    )
    .await
}

/// An admin gives an account another role or other departments; refused when it would take
/// the municipality's last active admin away.
pub async fn change_role(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: Login,
    role: StaffRole,
    departments: Vec<DepartmentId>,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let admins = admins(system, &tenant.id).await?;
    let command = AccountCommand::ChangeRole {
        account: login,
        role,
        departments,
        admins,
    };
    execute(system, tenant, actor, command, now).await
}

/// The account holder changes their password with the old one; the account's sessions
/// count on from the returned epoch.
pub async fn change_password(
    system: &System,
    tenant: &Tenant,
    actor: &Actor,
    login: &Login,
    old: &str,
    new: &str,
    now: OffsetDateTime,
) -> Result<u32, AccountError> {
    let hash = hash(new).await?;
    let before = state(system, &tenant.id, login).await?;
    let current = before
        .account
        .as_ref()
        .and_then(|a| a.password_hash.as_ref());
    let old_password_matches = verify(old, current).await?;
    let command = AccountCommand::ChangePassword {
        account: login.clone(),
        old_password_matches,
        password_hash: hash,
    };
    execute(system, tenant, actor, command, now).await?;
    let after = state(system, &tenant.id, login).await?;
    Ok(after.account.map_or(0, |a| a.sessions_epoch))
}

/// The account holder sets a password through the one-time link `token`; the link is used up.
pub async fn set_by_link(
    system: &System,
    tenant: &Tenant,
    login: Login,
    token: &str,
    password: &str,
    now: OffsetDateTime,
) -> Result<(), AccountError> {
    let hash = hash(password).await?;
    let actor = {
        let state = state(system, &tenant.id, &login).await?;
        let role = state.account.map_or(StaffRole::Clerk, |a| a.role);
        Actor::new(role.actor_role(), login.as_str()).expect("a checked login is a valid actor id")
    };
    let command = AccountCommand::SetPasswordByLink {
        account: login,
        digest: token_hash(token),
        password_hash: hash,
    };
    execute(system, tenant, &actor, command, now).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2_runs_at_most_once_per_core_however_many_log_in() {
        let hash = hash("ein-gutes-passwort").await.expect("hashed");
        let attempts: Vec<_> = (0..ARGON2.cap * 4)
            .map(|_| {
                let hash = hash.clone();
                tokio::spawn(async move { verify("ein-falsches-passwort", Some(&hash)).await })
            })
            .collect();
        for attempt in attempts {
            let matched = attempt.await.expect("joined").expect("checked");
            assert!(!matched);
        }
        let most = ARGON2.most.load(SeqCst);
        assert!(
            (1..=ARGON2.cap).contains(&most),
            "{most} at once, cap {}",
            ARGON2.cap
        );
    }
}
