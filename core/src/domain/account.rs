//! Staff accounts of one municipality (`account-{tenant}:{login}`): clerks
//! (`Sachbearbeiter`), auditors, data-protection officers and admins. Citizens have none; they
//! hold capability links.
//!
//! Invariants:
//! - a login exists at most once per tenant;
//! - a clerk names at least one department of the tenant, every other role none; an admin may
//!   change role and departments later ([`AccountRoleChanged`]), under the same rule;
//! - every wrong password is recorded ([`LoginFailed`], counting the failures in a row), but
//!   failures never lock the account: a lock anybody can cause by guessing is a way to keep a
//!   clerk out. The server throttles the source instead: [`MAX_FAILURES`] failures at one login
//!   from one client (its /64) refuse that client's next attempts there for [`LOCKOUT`], in
//!   memory, while the holder logs in from their own desk (ADR 0025). An
//!   [`AccountLocked`](super::events::AccountLocked) of an older log still holds until its
//!   `until`, refusing like a wrong password, writing nothing;
//! - an admin lifts a lock and the throttles of an account that has failures in a row
//!   ([`AccountUnlocked`]); so does a new password ([`AccountState::login_epoch`]);
//! - a successful login resets the count of failures (`LoginSucceeded`, written only when there
//!   were failures to reset);
//! - a password is set by its holder only: with the old one ([`PasswordChanged`]) or through a
//!   one-time link an admin had issued ([`PasswordLinkIssued`], which voids the password so
//!   far), valid for [`PASSWORD_LINK_LIFETIME`] and used once ([`PasswordLinkUsed`]); the log
//!   keeps only the link's digest;
//! - a deactivated account cannot log in, and every change of password or activity ends the
//!   sessions opened before it ([`Account::sessions_epoch`]);
//! - a directory account ([`AccountCommand::DirectorySignIn`]) has no password here: its
//!   role and departments are what the tenant's mapping grants its directory groups at each
//!   sign-in, so neither its holder nor an admin changes them, and its password stays the
//!   directory's; a local account of the same name is never taken over;
//! - the municipality keeps at least one active admin: deactivating or demoting the last one
//!   is refused. Removals of an admin append [`AdminRemoved`] to the municipality's
//!   `accounts-{tenant}` stream, so two of them can never both pass against the same count
//!   (ADR 0021).
//!
//! Passwords are checked outside (argon2id is slow on purpose and needs no state); the
//! decision only learns whether one matched, and gets new ones as hashes.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::events::{
    AccountCreated, AccountDeactivated, AccountHistoryViewed, AccountReactivated,
    AccountRoleChanged, AccountUnlocked, AdminRemoved, DirectoryRefusal, DirectorySignInRefused,
    LoginFailed, LoginSucceeded, PasswordChanged, PasswordLinkIssued, PasswordLinkUsed,
};
use super::{Context, Decision, DomainError, DomainEvent, Histories};
use crate::event::{ActorRole, StreamId, TenantId};
use crate::tenant::{DepartmentId, Tenant};

/// Failed logins at one login from one client after which the server refuses that client's
/// attempts there (ADR 0025).
pub const MAX_FAILURES: u32 = 5;
/// How long the server counts a client's failures at a login, and refuses it when they reached
/// [`MAX_FAILURES`]; and how long an `AccountLocked` of an older log held.
pub const LOCKOUT: Duration = Duration::minutes(15);
/// How long a one-time link to set a password stays valid.
pub const PASSWORD_LINK_LIFETIME: Duration = Duration::hours(72);

/// What a staff member may do; citizens are not staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Works appointments of their departments (`Sachbearbeiter`).
    Clerk,
    /// Reads histories, never writes (`Prüfer`).
    Auditor,
    /// Sees deletion evidence, never personal data (`Datenschutzbeauftragte`).
    Dpo,
    /// Runs the municipality's installation: its accounts and statistics, no cases.
    Admin,
}

impl StaffRole {
    pub const ALL: [StaffRole; 4] = [Self::Clerk, Self::Auditor, Self::Dpo, Self::Admin];

    pub fn actor_role(self) -> ActorRole {
        match self {
            Self::Clerk => ActorRole::Clerk,
            Self::Auditor => ActorRole::Auditor,
            Self::Dpo => ActorRole::Dpo,
            Self::Admin => ActorRole::Admin,
        }
    }

    /// The German name shown on pages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Clerk => "Sachbearbeitung",
            Self::Auditor => "Prüfung",
            Self::Dpo => "Datenschutz",
            Self::Admin => "Verwaltung",
        }
    }

    /// The name on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clerk => "clerk",
            Self::Auditor => "auditor",
            Self::Dpo => "dpo",
            Self::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// A login name: 2 to 48 characters of `a-z`, `0-9`, `.`, `-`, `_`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Login(String);

impl Login {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (2..=48).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account's stream in `tenant`.
    pub fn stream(&self, tenant: &TenantId) -> StreamId {
        StreamId::parse(&format!("account-{}:{}", tenant.as_str(), self.0))
            .expect("a tenant slug and a checked login always make a valid stream id")
    }
}

impl std::fmt::Display for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The municipality's stream of its staff as a whole (`accounts-{tenant}`): where removals of
/// an admin meet, so that the last one cannot be removed twice over.
pub fn roster_stream(tenant: &TenantId) -> StreamId {
    StreamId::of("accounts", tenant.as_str())
        .expect("a lowercase category and a tenant slug always make a valid stream id")
}

/// An argon2id PHC string; `Debug` does not print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(‹redacted›)")
    }
}

/// An account as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: Login,
    pub role: StaffRole,
    pub departments: Vec<DepartmentId>,
    /// `None` while the password is to be set through a one-time link.
    pub password_hash: Option<PasswordHash>,
    /// The one-time link not yet used, if any.
    pub link: Option<PasswordLinkIssued>,
    pub active: bool,
    /// Signs in through the municipality's directory, which keeps its password and decides
    /// its role; it has no password here.
    pub directory: bool,
    /// Counts the changes that end the sessions opened before them: a new password, a
    /// password link, a deactivation. A session remembers the count it was opened at.
    pub sessions_epoch: u32,
}

impl Account {
    /// An active admin.
    pub fn is_active_admin(&self) -> bool {
        self.active && self.role == StaffRole::Admin
    }
}

/// An account as its stream folds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    pub account: Option<Account>,
    /// Failed logins since the last success, lock or unlock.
    pub failures: u32,
    /// Until when an `AccountLocked` (only in older logs) holds.
    pub locked_until: Option<OffsetDateTime>,
    /// Counts the events after which earlier guesses no longer matter: an admin's unlock
    /// ([`AccountUnlocked`]) and every new password. The server's throttle keys include it, so
    /// each starts every client's count afresh.
    pub login_epoch: u32,
}

impl AccountState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        if let DomainEvent::AccountCreated(e) = event {
            self.account = Some(Account {
                login: e.login.clone(),
                role: e.role,
                departments: e.departments.clone(),
                password_hash: e.password_hash.clone(),
                link: None,
                active: true,
                directory: e.directory,
                sessions_epoch: 0,
            });
            return self;
        }
        match event {
            DomainEvent::LoginSucceeded(_) => self.failures = 0,
            DomainEvent::LoginFailed(e) => self.failures = e.failures,
            DomainEvent::AccountLocked(e) => {
                self.failures = 0;
                self.locked_until = Some(e.until);
            }
            DomainEvent::AccountUnlocked(_) => {
                self.failures = 0;
                self.locked_until = None;
                self.login_epoch += 1;
            }
            // A new password through the link starts over, the lock included: it was about
            // guesses at the old one.
            DomainEvent::PasswordLinkUsed(_) => {
                self.failures = 0;
                self.locked_until = None;
                self.login_epoch += 1;
            }
            DomainEvent::PasswordChanged(_) => self.login_epoch += 1,
            _ => {}
        }
        if let Some(a) = self.account.as_mut() {
            match event {
                DomainEvent::PasswordChanged(e) => {
                    a.password_hash = Some(e.password_hash.clone());
                    a.sessions_epoch += 1;
                }
                DomainEvent::PasswordLinkIssued(e) => {
                    a.password_hash = None;
                    a.link = Some(e.clone());
                    a.sessions_epoch += 1;
                }
                DomainEvent::PasswordLinkUsed(e) => {
                    a.password_hash = Some(e.password_hash.clone());
                    a.link = None;
                    a.sessions_epoch += 1;
                }
                DomainEvent::AccountDeactivated(_) => {
                    a.active = false;
                    a.link = None;
                    a.sessions_epoch += 1;
                }
                DomainEvent::AccountReactivated(_) => a.active = true,
                DomainEvent::AccountRoleChanged(e) => {
                    a.role = e.role;
                    a.departments.clone_from(&e.departments);
                }
                _ => {}
            }
        }
        self
    }

    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// How a new account gets its first password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstPassword {
    /// Given by the operator (`videoamt user add`), as its hash.
    Hash(PasswordHash),
    /// Set by the account holder through this one-time link.
    Link(PasswordLinkIssued),
}

/// The commands of an account's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// An admin creates a staff account.
    CreateAccount {
        login: Login,
        role: StaffRole,
        departments: Vec<DepartmentId>,
        password: FirstPassword,
    },
    /// A login attempt; the password was checked against the account's hash outside.
    LogIn {
        account: Login,
        password_matches: bool,
    },
    /// The account holder changes their password; the old one was checked outside.
    ChangePassword {
        account: Login,
        old_password_matches: bool,
        password_hash: PasswordHash,
    },
    /// The account holder sets a password through the one-time link with this digest.
    SetPasswordByLink {
        account: Login,
        digest: String,
        password_hash: PasswordHash,
    },
    /// An admin resets the password: the old one stops working, a new link is issued.
    IssuePasswordLink {
        account: Login,
        link: PasswordLinkIssued,
    },
    /// An admin lifts a lock (of an older log) and the server's throttles of the account's
    /// logins, after failed logins.
    Unlock { account: Login },
    /// An admin deactivates an account. `admins` are the municipality's other admin accounts
    /// as a read model knows them: their streams are read to count who is left (ADR 0021).
    Deactivate { account: Login, admins: Vec<Login> },
    /// An admin reactivates a deactivated account.
    Reactivate { account: Login },
    /// An admin gives an account another role or other departments; `admins` as for
    /// [`AccountCommand::Deactivate`].
    ChangeRole {
        account: Login,
        role: StaffRole,
        departments: Vec<DepartmentId>,
        admins: Vec<Login>,
    },
    /// The municipality's directory vouched for `account` (its ID token was checked outside)
    /// and its groups grant `grant` under the tenant's mapping, or nothing. Creates the
    /// directory account on its first sign-in and keeps its role and departments as the
    /// directory grants them; `admins` as for [`AccountCommand::Deactivate`].
    DirectorySignIn {
        account: Login,
        grant: Option<(StaffRole, Vec<DepartmentId>)>,
        admins: Vec<Login>,
    },
    /// Before an auditor is shown the history of `account`.
    RecordHistoryView { account: Login },
}

impl AccountCommand {
    fn account(&self) -> &Login {
        match self {
            Self::CreateAccount { login, .. } => login,
            Self::LogIn { account, .. }
            | Self::ChangePassword { account, .. }
            | Self::SetPasswordByLink { account, .. }
            | Self::IssuePasswordLink { account, .. }
            | Self::Unlock { account }
            | Self::Deactivate { account, .. }
            | Self::Reactivate { account }
            | Self::ChangeRole { account, .. }
            | Self::DirectorySignIn { account, .. }
            | Self::RecordHistoryView { account } => account,
        }
    }

    /// The account's stream; for a command that may remove an admin, once the account is
    /// loaded and is an active admin, also the roster and the other admins' streams.
    pub fn streams(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        let tenant = &ctx.tenant.id;
        let stream = self.account().stream(tenant);
        let admins = match self {
            Self::Deactivate { admins, .. } => admins,
            Self::ChangeRole { role, admins, .. } if *role != StaffRole::Admin => admins,
            // A refusal is kept on the roster: the account may not exist. So is an audit read.
            Self::DirectorySignIn { grant: None, .. } | Self::RecordHistoryView { .. } => {
                return vec![stream, roster_stream(tenant)];
            }
            Self::DirectorySignIn {
                grant: Some((role, _)),
                admins,
                ..
            } if *role != StaffRole::Admin => admins,
            _ => return vec![stream],
        };
        if !loaded.contains(&stream) || !self.removes_admin(loaded, &stream) {
            return vec![stream];
        }
        let mut streams = vec![stream, roster_stream(tenant)];
        streams.extend(
            admins
                .iter()
                .filter(|a| *a != self.account())
                .map(|a| a.stream(tenant)),
        );
        streams
    }

    fn removes_admin(&self, h: &Histories, stream: &StreamId) -> bool {
        h.fold(stream, AccountState::evolve)
            .account
            .is_some_and(|a| a.is_active_admin())
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let stream = self.account().stream(&ctx.tenant.id);
        let state = h.fold(&stream, AccountState::evolve);
        let existing = || state.account.as_ref().ok_or(DomainError::UnknownAccount);
        let one = |event: DomainEvent| Ok(vec![(stream.clone(), event)]);
        match self {
            Self::CreateAccount {
                login,
                role,
                departments,
                password,
            } => {
                if state.account.is_some() {
                    return Err(DomainError::AccountExists);
                }
                check_role(ctx.tenant, *role, departments)?;
                let created = AccountCreated {
                    login: login.clone(),
                    role: *role,
                    departments: departments.clone(),
                    password_hash: match password {
                        FirstPassword::Hash(hash) => Some(hash.clone()),
                        FirstPassword::Link(_) => None,
                    },
                    directory: false,
                };
                let mut decision: Decision = vec![(stream.clone(), created.into())];
                if let FirstPassword::Link(link) = password {
                    decision.push((stream, link.clone().into()));
                }
                Ok(decision)
            }
            Self::LogIn {
                password_matches, ..
            } => log_in(&state, stream.clone(), *password_matches, ctx.now),
            Self::ChangePassword {
                old_password_matches,
                password_hash,
                ..
            } => {
                let account = existing()?;
                if account.directory {
                    return Err(DomainError::DirectoryAccount);
                }
                if !account.active {
                    return Err(DomainError::AccountDisabled);
                }
                if !old_password_matches {
                    return Err(DomainError::WrongPassword);
                }
                one(PasswordChanged {
                    password_hash: password_hash.clone(),
                }
                .into())
            }
            Self::SetPasswordByLink {
                digest,
                password_hash,
                ..
            } => {
                let account = existing().map_err(|_| DomainError::PasswordLinkInvalid)?;
                let link = account
                    .link
                    .as_ref()
                    .filter(|l| &l.digest == digest && account.active)
                    .ok_or(DomainError::PasswordLinkInvalid)?;
                if ctx.now >= link.expires {
                    return Err(DomainError::PasswordLinkExpired);
                }
                one(PasswordLinkUsed {
                    password_hash: password_hash.clone(),
                }
                .into())
            }
            Self::IssuePasswordLink { link, .. } => {
                if existing()?.directory {
                    return Err(DomainError::DirectoryAccount);
                }
                if !existing()?.active {
                    return Err(DomainError::AccountDisabled);
                }
                one(link.clone().into())
            }
            Self::Unlock { .. } => {
                existing()?;
                // Only failures can have throttled anybody; without them there is nothing to
                // lift, and an unlock would only be noise in the account's history.
                if !state.is_locked(ctx.now) && state.failures == 0 {
                    return Err(DomainError::NotLocked);
                }
                one(AccountUnlocked {}.into())
            }
            Self::Reactivate { .. } => {
                if existing()?.active {
                    return Err(DomainError::NotDeactivated);
                }
                one(AccountReactivated {}.into())
            }
            Self::Deactivate { .. } => {
                let account = existing()?;
                if !account.active {
                    return Err(DomainError::AlreadyDeactivated);
                }
                let mut decision = vec![(stream.clone(), AccountDeactivated {}.into())];
                decision.extend(self.admin_removed(h, ctx, account)?);
                Ok(decision)
            }
            Self::ChangeRole {
                role, departments, ..
            } => {
                let account = existing()?;
                if account.directory {
                    return Err(DomainError::DirectoryAccount);
                }
                check_role(ctx.tenant, *role, departments)?;
                self.role_changed(h, ctx, account, *role, departments)
            }
            Self::RecordHistoryView { account } => {
                existing()?;
                Ok(vec![(
                    roster_stream(&ctx.tenant.id),
                    AccountHistoryViewed {
                        account: account.clone(),
                    }
                    .into(),
                )])
            }
            Self::DirectorySignIn { account, grant, .. } => {
                let Some((role, departments)) = grant else {
                    return Ok(vec![(
                        roster_stream(&ctx.tenant.id),
                        DirectorySignInRefused {
                            login: account.clone(),
                            reason: DirectoryRefusal::NoGrant,
                        }
                        .into(),
                    )]);
                };
                check_role(ctx.tenant, *role, departments)?;
                let Some(existing) = &state.account else {
                    return one(AccountCreated {
                        login: account.clone(),
                        role: *role,
                        departments: departments.clone(),
                        password_hash: None,
                        directory: true,
                    }
                    .into());
                };
                if !existing.directory {
                    return Err(DomainError::LocalAccountExists);
                }
                if !existing.active {
                    return Err(DomainError::AccountDisabled);
                }
                self.role_changed(h, ctx, existing, *role, departments)
            }
        }
    }

    /// `account` gets `role` and `departments` (already checked): nothing when it has them,
    /// else `AccountRoleChanged`, and `AdminRemoved` when an active admin stops being one.
    fn role_changed(
        &self,
        h: &Histories,
        ctx: &Context<'_>,
        account: &Account,
        role: StaffRole,
        departments: &[DepartmentId],
    ) -> Result<Decision, DomainError> {
        if role == account.role && departments == account.departments.as_slice() {
            return Ok(vec![]);
        }
        let mut decision = vec![(
            account.login.stream(&ctx.tenant.id),
            AccountRoleChanged {
                role,
                departments: departments.to_vec(),
            }
            .into(),
        )];
        if role != StaffRole::Admin {
            decision.extend(self.admin_removed(h, ctx, account)?);
        }
        Ok(decision)
    }

    /// When `account` is an active admin, the fact that it stops being one, with the admins
    /// left; refused when none would be.
    fn admin_removed(
        &self,
        h: &Histories,
        ctx: &Context<'_>,
        account: &Account,
    ) -> Result<Option<(StreamId, DomainEvent)>, DomainError> {
        if !account.is_active_admin() {
            return Ok(None);
        }
        let (Self::Deactivate { admins, .. }
        | Self::ChangeRole { admins, .. }
        | Self::DirectorySignIn { admins, .. }) = self
        else {
            return Ok(None);
        };
        let mut remaining: Vec<Login> = admins
            .iter()
            .filter(|a| *a != &account.login)
            .filter(|a| {
                h.fold(&a.stream(&ctx.tenant.id), AccountState::evolve)
                    .account
                    .is_some_and(|other| other.is_active_admin())
            })
            .cloned()
            .collect();
        remaining.sort();
        remaining.dedup();
        if remaining.is_empty() {
            return Err(DomainError::LastAdmin);
        }
        Ok(Some((
            roster_stream(&ctx.tenant.id),
            AdminRemoved {
                account: account.login.clone(),
                remaining,
            }
            .into(),
        )))
    }
}

/// A clerk names at least one department of the tenant, every other role none.
fn check_role(
    tenant: &Tenant,
    role: StaffRole,
    departments: &[DepartmentId],
) -> Result<(), DomainError> {
    for d in departments {
        if tenant.department(d).is_none() {
            return Err(DomainError::UnknownDepartment(d.clone()));
        }
    }
    match (role, departments.is_empty()) {
        (StaffRole::Clerk, true) => Err(DomainError::ClerkWithoutDepartment),
        (StaffRole::Auditor | StaffRole::Dpo | StaffRole::Admin, false) => {
            Err(DomainError::DepartmentsOnlyForClerks)
        }
        _ => Ok(()),
    }
}

/// A login attempt whose password was checked outside.
fn log_in(
    state: &AccountState,
    stream: StreamId,
    password_matches: bool,
    now: OffsetDateTime,
) -> Result<Decision, DomainError> {
    let Some(account) = &state.account else {
        return Err(DomainError::LoginRefused);
    };
    // No password yet (a link is pending): nothing could have matched, nothing to count.
    if account.password_hash.is_none() {
        return Err(DomainError::LoginRefused);
    }
    // Only who knows the password learns that the account is deactivated.
    if !account.active {
        return Err(if password_matches {
            DomainError::AccountDisabled
        } else {
            DomainError::LoginRefused
        });
    }
    if state.is_locked(now) {
        return Err(DomainError::AccountLocked);
    }
    if password_matches {
        // Only a success that resets failures is a fact worth keeping; recording every login
        // would make concurrent logins of one account race for its stream.
        if state.failures == 0 {
            return Ok(vec![]);
        }
        return Ok(vec![(stream, LoginSucceeded {}.into())]);
    }
    // No lock however many fail: the server throttles where they come from (ADR 0025).
    let failures = state.failures.saturating_add(1);
    Ok(vec![(stream, LoginFailed { failures }.into())])
}

/// Departments as given on the command line or a form, checked when the command is decided.
pub fn departments(raw: &[String]) -> Vec<DepartmentId> {
    raw.iter().map(|d| DepartmentId::from(d.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::events::AccountLocked;
    use crate::domain::gwt::{ettlingen, given};

    fn login() -> Login {
        named("a.becker")
    }

    fn named(login: &str) -> Login {
        Login::parse(login).expect("a valid login")
    }

    fn hash(n: u8) -> PasswordHash {
        PasswordHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA{n}"))
    }

    fn created(role: StaffRole, departments: &[&str]) -> AccountCreated {
        created_as(login(), role, departments)
    }

    fn created_as(login: Login, role: StaffRole, departments: &[&str]) -> AccountCreated {
        AccountCreated {
            login,
            role,
            departments: departments.iter().map(|d| DepartmentId::from(*d)).collect(),
            password_hash: Some(hash(0)),
            directory: false,
        }
    }

    fn create(c: AccountCreated) -> AccountCommand {
        AccountCommand::CreateAccount {
            login: c.login,
            role: c.role,
            departments: c.departments,
            password: FirstPassword::Hash(c.password_hash.expect("a hash")),
        }
    }

    fn stream() -> StreamId {
        login().stream(&ettlingen().id)
    }

    fn stream_of(login: &str) -> StreamId {
        named(login).stream(&ettlingen().id)
    }

    fn roster() -> StreamId {
        roster_stream(&ettlingen().id)
    }

    fn attempt(password_matches: bool) -> AccountCommand {
        AccountCommand::LogIn {
            account: login(),
            password_matches,
        }
    }

    fn link(digest: &str) -> PasswordLinkIssued {
        PasswordLinkIssued {
            digest: digest.to_owned(),
            expires: NOW + PASSWORD_LINK_LIFETIME,
        }
    }

    fn clerk() -> Decision {
        vec![(
            stream(),
            created(StaffRole::Clerk, &["buergerbuero"]).into(),
        )]
    }

    const NOW: OffsetDateTime = datetime!(2026-11-30 08:00 UTC);

    #[test]
    fn logins_are_checked_slugs() {
        assert!(Login::parse("m.mueller-2").is_some());
        for bad in [
            "",
            "a",
            "A.becker",
            "1abc",
            "a b",
            "a/b",
            "ä.becker",
            &"a".repeat(49),
        ] {
            assert!(Login::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for role in StaffRole::ALL {
            assert_eq!(StaffRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(StaffRole::parse("chef"), None);
    }

    #[test]
    fn a_clerk_account_is_created_once() {
        let t = ettlingen();
        let command = create(created(StaffRole::Clerk, &["buergerbuero"]));
        given(t, vec![])
            .at(NOW)
            .when(command.clone())
            .then_expect(clerk());
        given(t, clerk())
            .at(NOW)
            .when(command)
            .then_error(DomainError::AccountExists);
    }

    #[test]
    fn departments_belong_to_clerks_and_to_the_tenant() {
        let t = ettlingen();
        let when = |c: AccountCreated| given(t, vec![]).at(NOW).when(create(c));
        when(created(StaffRole::Clerk, &[])).then_error(DomainError::ClerkWithoutDepartment);
        when(created(StaffRole::Clerk, &["standesamt-mars"]))
            .then_error(DomainError::UnknownDepartment("standesamt-mars".into()));
        when(created(StaffRole::Auditor, &["buergerbuero"]))
            .then_error(DomainError::DepartmentsOnlyForClerks);
        when(created(StaffRole::Dpo, &[]))
            .then_expect(vec![(stream(), created(StaffRole::Dpo, &[]).into())]);
    }

    #[test]
    fn an_account_made_by_an_admin_has_no_password_until_its_link_is_used_once() {
        let t = ettlingen();
        let without = AccountCreated {
            password_hash: None,
            ..created(StaffRole::Clerk, &["buergerbuero"])
        };
        let history = given(t, vec![])
            .at(NOW)
            .when(AccountCommand::CreateAccount {
                login: login(),
                role: StaffRole::Clerk,
                departments: vec!["buergerbuero".into()],
                password: FirstPassword::Link(link("d1")),
            })
            .decision();
        assert_eq!(
            history,
            vec![(stream(), without.into()), (stream(), link("d1").into())]
        );
        // No password to match, nothing to count.
        given(t, history.clone())
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::LoginRefused);
        let set = |digest: &str| AccountCommand::SetPasswordByLink {
            account: login(),
            digest: digest.to_owned(),
            password_hash: hash(1),
        };
        given(t, history.clone())
            .at(NOW)
            .when(set("d2"))
            .then_error(DomainError::PasswordLinkInvalid);
        given(t, history.clone())
            .at(NOW + PASSWORD_LINK_LIFETIME)
            .when(set("d1"))
            .then_error(DomainError::PasswordLinkExpired);
        let used = given(t, history.clone())
            .at(NOW + PASSWORD_LINK_LIFETIME - Duration::SECOND)
            .when(set("d1"))
            .decision();
        assert_eq!(
            used,
            vec![(
                stream(),
                PasswordLinkUsed {
                    password_hash: hash(1)
                }
                .into()
            )]
        );
        let mut history = history;
        history.extend(used);
        // Used once: the same link again is refused, and the account logs in.
        given(t, history.clone())
            .at(NOW)
            .when(set("d1"))
            .then_error(DomainError::PasswordLinkInvalid);
        given(t, history).at(NOW).when(attempt(true)).then_nothing();
        // A link for an account that does not exist names nothing.
        given(t, vec![])
            .at(NOW)
            .when(set("d1"))
            .then_error(DomainError::PasswordLinkInvalid);
    }

    #[test]
    fn the_holder_changes_the_password_only_with_the_old_one() {
        let t = ettlingen();
        let change = |old_password_matches| AccountCommand::ChangePassword {
            account: login(),
            old_password_matches,
            password_hash: hash(2),
        };
        given(t, clerk())
            .at(NOW)
            .when(change(false))
            .then_error(DomainError::WrongPassword);
        given(t, clerk())
            .at(NOW)
            .when(change(true))
            .then_expect(vec![(
                stream(),
                PasswordChanged {
                    password_hash: hash(2),
                }
                .into(),
            )]);
        given(t, vec![])
            .at(NOW)
            .when(change(true))
            .then_error(DomainError::UnknownAccount);
    }

    #[test]
    fn a_reset_voids_the_password_and_the_earlier_link_and_ends_sessions() {
        let t = ettlingen();
        let reset = |digest: &str| AccountCommand::IssuePasswordLink {
            account: login(),
            link: link(digest),
        };
        given(t, clerk())
            .at(NOW)
            .when(reset("d1"))
            .then_expect(vec![(stream(), link("d1").into())]);
        let mut history = clerk();
        history.push((stream(), link("d1").into()));
        history.push((stream(), link("d2").into()));
        let state = history
            .iter()
            .map(|(_, e)| e)
            .fold(AccountState::default(), AccountState::evolve);
        let account = state.account.expect("created");
        assert_eq!(
            account.password_hash, None,
            "the old password stops working"
        );
        assert_eq!(account.sessions_epoch, 2);
        given(t, history.clone())
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::LoginRefused);
        given(t, history)
            .at(NOW)
            .when(AccountCommand::SetPasswordByLink {
                account: login(),
                digest: "d1".into(),
                password_hash: hash(1),
            })
            .then_error(DomainError::PasswordLinkInvalid);
    }

    #[test]
    fn a_deactivated_account_cannot_log_in_until_it_is_reactivated() {
        let t = ettlingen();
        let deactivate = AccountCommand::Deactivate {
            account: login(),
            admins: vec![],
        };
        given(t, clerk())
            .at(NOW)
            .when(deactivate.clone())
            .then_expect(vec![(stream(), AccountDeactivated {}.into())]);
        let mut history = clerk();
        history.push((stream(), AccountDeactivated {}.into()));
        // Only who knows the password learns that the account is deactivated.
        given(t, history.clone())
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::AccountDisabled);
        given(t, history.clone())
            .at(NOW)
            .when(attempt(false))
            .then_error(DomainError::LoginRefused);
        given(t, history.clone())
            .at(NOW)
            .when(deactivate)
            .then_error(DomainError::AlreadyDeactivated);
        given(t, history.clone())
            .at(NOW)
            .when(AccountCommand::IssuePasswordLink {
                account: login(),
                link: link("d1"),
            })
            .then_error(DomainError::AccountDisabled);
        let reactivate = AccountCommand::Reactivate { account: login() };
        given(t, clerk())
            .at(NOW)
            .when(reactivate.clone())
            .then_error(DomainError::NotDeactivated);
        given(t, history.clone())
            .at(NOW)
            .when(reactivate)
            .then_expect(vec![(stream(), AccountReactivated {}.into())]);
        history.push((stream(), AccountReactivated {}.into()));
        given(t, history.clone())
            .at(NOW)
            .when(attempt(true))
            .then_nothing();
        // The sessions of before the deactivation stay ended.
        let state = history
            .iter()
            .map(|(_, e)| e)
            .fold(AccountState::default(), AccountState::evolve);
        assert_eq!(state.account.map(|a| a.sessions_epoch), Some(1));
    }

    #[test]
    fn roles_and_departments_change_under_the_rule_of_their_creation() {
        let t = ettlingen();
        let change = |role, departments: &[&str]| AccountCommand::ChangeRole {
            account: login(),
            role,
            departments: departments.iter().map(|d| DepartmentId::from(*d)).collect(),
            admins: vec![],
        };
        given(t, clerk())
            .at(NOW)
            .when(change(
                StaffRole::Clerk,
                &["buergerbuero", "gewerbebehoerde"],
            ))
            .then_expect(vec![(
                stream(),
                AccountRoleChanged {
                    role: StaffRole::Clerk,
                    departments: vec!["buergerbuero".into(), "gewerbebehoerde".into()],
                }
                .into(),
            )]);
        given(t, clerk())
            .at(NOW)
            .when(change(StaffRole::Auditor, &[]))
            .then_expect(vec![(
                stream(),
                AccountRoleChanged {
                    role: StaffRole::Auditor,
                    departments: vec![],
                }
                .into(),
            )]);
        given(t, clerk())
            .at(NOW)
            .when(change(StaffRole::Clerk, &[]))
            .then_error(DomainError::ClerkWithoutDepartment);
        given(t, clerk())
            .at(NOW)
            .when(change(StaffRole::Admin, &["buergerbuero"]))
            .then_error(DomainError::DepartmentsOnlyForClerks);
        given(t, clerk())
            .at(NOW)
            .when(change(StaffRole::Clerk, &["standesamt-mars"]))
            .then_error(DomainError::UnknownDepartment("standesamt-mars".into()));
        // The same again changes nothing.
        given(t, clerk())
            .at(NOW)
            .when(change(StaffRole::Clerk, &["buergerbuero"]))
            .then_nothing();
        given(t, vec![])
            .at(NOW)
            .when(change(StaffRole::Dpo, &[]))
            .then_error(DomainError::UnknownAccount);
    }

    #[test]
    fn the_last_active_admin_can_be_neither_deactivated_nor_demoted() {
        let t = ettlingen();
        let admin = |login: &str| {
            (
                stream_of(login),
                created_as(named(login), StaffRole::Admin, &[]).into(),
            )
        };
        let deactivate = |admins: &[&str]| AccountCommand::Deactivate {
            account: named("a.becker"),
            admins: admins.iter().map(|a| named(a)).collect(),
        };
        let demote = |admins: &[&str]| AccountCommand::ChangeRole {
            account: named("a.becker"),
            role: StaffRole::Auditor,
            departments: vec![],
            admins: admins.iter().map(|a| named(a)).collect(),
        };
        // Alone: refused both ways, whatever the read model names.
        for admins in [&[][..], &["a.becker"][..], &["b.niemand"][..]] {
            given(t, vec![admin("a.becker")])
                .at(NOW)
                .when(deactivate(admins))
                .then_error(DomainError::LastAdmin);
            given(t, vec![admin("a.becker")])
                .at(NOW)
                .when(demote(admins))
                .then_error(DomainError::LastAdmin);
        }
        // Another admin that is deactivated, or no admin any more, does not count: their
        // streams are read, not the read model believed.
        let mut others = vec![admin("a.becker"), admin("c.weber"), admin("d.klein")];
        others.push((stream_of("c.weber"), AccountDeactivated {}.into()));
        others.push((
            stream_of("d.klein"),
            AccountRoleChanged {
                role: StaffRole::Dpo,
                departments: vec![],
            }
            .into(),
        ));
        given(t, others.clone())
            .at(NOW)
            .when(deactivate(&["c.weber", "d.klein"]))
            .then_error(DomainError::LastAdmin);
        // With one more active admin it passes, and the removal meets the others on the
        // municipality's roster stream.
        others.push(admin("e.frank"));
        let removed = AdminRemoved {
            account: named("a.becker"),
            remaining: vec![named("e.frank")],
        };
        given(t, others.clone())
            .at(NOW)
            .when(deactivate(&["c.weber", "d.klein", "e.frank"]))
            .then_expect(vec![
                (stream(), AccountDeactivated {}.into()),
                (roster(), removed.clone().into()),
            ]);
        given(t, others.clone())
            .at(NOW)
            .when(demote(&["e.frank"]))
            .then_expect(vec![
                (
                    stream(),
                    AccountRoleChanged {
                        role: StaffRole::Auditor,
                        departments: vec![],
                    }
                    .into(),
                ),
                (roster(), removed.into()),
            ]);
        // The other way round the last admin is gone once the first removal is recorded.
        let mut after = others;
        after.push((stream(), AccountDeactivated {}.into()));
        given(t, after)
            .at(NOW)
            .when(AccountCommand::Deactivate {
                account: named("e.frank"),
                admins: vec![named("a.becker")],
            })
            .then_error(DomainError::LastAdmin);
        // Removing a clerk never reads the roster.
        given(t, clerk())
            .at(NOW)
            .when(deactivate(&[]))
            .then_expect(vec![(stream(), AccountDeactivated {}.into())]);
    }

    fn directory_sign_in(grant: Option<(StaffRole, &[&str])>) -> AccountCommand {
        AccountCommand::DirectorySignIn {
            account: login(),
            grant: grant.map(|(role, departments)| {
                (
                    role,
                    departments.iter().map(|d| DepartmentId::from(*d)).collect(),
                )
            }),
            admins: vec![],
        }
    }

    fn from_directory(role: StaffRole, departments: &[&str]) -> AccountCreated {
        AccountCreated {
            password_hash: None,
            directory: true,
            ..created(role, departments)
        }
    }

    #[test]
    fn a_directory_sign_in_creates_the_account_and_keeps_its_role_as_the_directory_grants() {
        let t = ettlingen();
        given(t, vec![])
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["buergerbuero"],
            ))))
            .then_expect(vec![(
                stream(),
                from_directory(StaffRole::Clerk, &["buergerbuero"]).into(),
            )]);
        let known = vec![(
            stream(),
            from_directory(StaffRole::Clerk, &["buergerbuero"]).into(),
        )];
        // The same grant again records nothing: sign-ins are not kept, as with passwords.
        given(t, known.clone())
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["buergerbuero"],
            ))))
            .then_nothing();
        // The directory moved the person: the account follows.
        given(t, known.clone())
            .at(NOW)
            .when(directory_sign_in(Some((StaffRole::Auditor, &[]))))
            .then_expect(vec![(
                stream(),
                AccountRoleChanged {
                    role: StaffRole::Auditor,
                    departments: vec![],
                }
                .into(),
            )]);
        // No mapped group: refused, and the refusal is kept on the roster with the login only.
        given(t, known.clone())
            .at(NOW)
            .when(directory_sign_in(None))
            .then_expect(vec![(
                roster(),
                DirectorySignInRefused {
                    login: login(),
                    reason: DirectoryRefusal::NoGrant,
                }
                .into(),
            )]);
        // A deactivated directory account stays out, whatever the directory says.
        let mut deactivated = known.clone();
        deactivated.push((stream(), AccountDeactivated {}.into()));
        given(t, deactivated)
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["buergerbuero"],
            ))))
            .then_error(DomainError::AccountDisabled);
        // A local account of the same name is not taken over.
        given(t, clerk())
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["buergerbuero"],
            ))))
            .then_error(DomainError::LocalAccountExists);
        // A grant against the tenant's rules is refused, not half applied.
        given(t, vec![])
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["standesamt-mars"],
            ))))
            .then_error(DomainError::UnknownDepartment("standesamt-mars".into()));
    }

    #[test]
    fn a_directory_account_has_no_password_here_and_its_role_is_the_directorys() {
        let t = ettlingen();
        let known = vec![(
            stream(),
            from_directory(StaffRole::Clerk, &["buergerbuero"]).into(),
        )];
        given(t, known.clone())
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::LoginRefused);
        given(t, known.clone())
            .at(NOW)
            .when(AccountCommand::ChangePassword {
                account: login(),
                old_password_matches: true,
                password_hash: hash(1),
            })
            .then_error(DomainError::DirectoryAccount);
        given(t, known.clone())
            .at(NOW)
            .when(AccountCommand::IssuePasswordLink {
                account: login(),
                link: link("d1"),
            })
            .then_error(DomainError::DirectoryAccount);
        given(t, known.clone())
            .at(NOW)
            .when(AccountCommand::ChangeRole {
                account: login(),
                role: StaffRole::Admin,
                departments: vec![],
                admins: vec![],
            })
            .then_error(DomainError::DirectoryAccount);
        // Deactivation is the municipality's own, and works.
        given(t, known)
            .at(NOW)
            .when(AccountCommand::Deactivate {
                account: login(),
                admins: vec![],
            })
            .then_expect(vec![(stream(), AccountDeactivated {}.into())]);
    }

    #[test]
    fn the_directory_cannot_demote_the_last_admin_either() {
        let t = ettlingen();
        let admin = vec![(stream(), from_directory(StaffRole::Admin, &[]).into())];
        given(t, admin.clone())
            .at(NOW)
            .when(directory_sign_in(Some((
                StaffRole::Clerk,
                &["buergerbuero"],
            ))))
            .then_error(DomainError::LastAdmin);
        let mut two = admin;
        two.push((
            stream_of("e.frank"),
            created_as(named("e.frank"), StaffRole::Admin, &[]).into(),
        ));
        given(t, two)
            .at(NOW)
            .when(AccountCommand::DirectorySignIn {
                account: login(),
                grant: Some((StaffRole::Auditor, vec![])),
                admins: vec![named("e.frank")],
            })
            .then_expect(vec![
                (
                    stream(),
                    AccountRoleChanged {
                        role: StaffRole::Auditor,
                        departments: vec![],
                    }
                    .into(),
                ),
                (
                    roster(),
                    AdminRemoved {
                        account: login(),
                        remaining: vec![named("e.frank")],
                    }
                    .into(),
                ),
            ]);
    }

    #[test]
    fn an_audit_read_of_an_account_is_recorded_on_the_roster_first() {
        let t = ettlingen();
        given(t, clerk())
            .at(NOW)
            .when(AccountCommand::RecordHistoryView { account: login() })
            .then_expect(vec![(
                roster(),
                AccountHistoryViewed { account: login() }.into(),
            )]);
        given(t, vec![])
            .at(NOW)
            .when(AccountCommand::RecordHistoryView { account: login() })
            .then_error(DomainError::UnknownAccount);
    }

    #[test]
    fn an_admin_lifts_a_lock_of_an_older_log_and_only_a_lock() {
        let t = ettlingen();
        let mut history = clerk();
        history.push((
            stream(),
            LoginFailed {
                failures: MAX_FAILURES,
            }
            .into(),
        ));
        history.push((
            stream(),
            AccountLocked {
                until: NOW + LOCKOUT,
            }
            .into(),
        ));
        let unlock = AccountCommand::Unlock { account: login() };
        given(t, history.clone())
            .at(NOW)
            .when(unlock.clone())
            .then_expect(vec![(stream(), AccountUnlocked {}.into())]);
        given(t, clerk())
            .at(NOW)
            .when(unlock)
            .then_error(DomainError::NotLocked);
        history.push((stream(), AccountUnlocked {}.into()));
        given(t, history).at(NOW).when(attempt(true)).then_nothing();
    }

    #[test]
    fn an_admin_lifts_the_throttles_after_failures_and_each_unlock_is_counted() {
        let t = ettlingen();
        let mut history = clerk();
        let unlock = AccountCommand::Unlock { account: login() };
        given(t, history.clone())
            .at(NOW)
            .when(unlock.clone())
            .then_error(DomainError::NotLocked);
        history.push((stream(), LoginFailed { failures: 1 }.into()));
        given(t, history.clone())
            .at(NOW)
            .when(unlock.clone())
            .then_expect(vec![(stream(), AccountUnlocked {}.into())]);
        history.push((stream(), AccountUnlocked {}.into()));
        given(t, history.clone())
            .at(NOW)
            .when(unlock)
            .then_error(DomainError::NotLocked);
        let state = history
            .iter()
            .fold(AccountState::default(), |s, (_, e)| s.evolve(e));
        assert_eq!((state.failures, state.login_epoch), (0, 1));
    }

    #[test]
    fn no_password_hash_is_printed() {
        let command = AccountCommand::ChangePassword {
            account: login(),
            old_password_matches: true,
            password_hash: hash(7),
        };
        let printed = format!("{command:?} {:?}", created(StaffRole::Dpo, &[]));
        assert!(!printed.contains("argon2"), "{printed}");
    }

    #[test]
    fn an_unknown_account_is_refused_like_a_wrong_password_would_be_and_writes_nothing() {
        given(ettlingen(), vec![])
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::LoginRefused);
    }

    #[test]
    fn failures_are_counted_and_never_lock_the_account() {
        let t = ettlingen();
        let mut history = clerk();
        for failures in 1..=MAX_FAILURES * 2 {
            given(t, history.clone())
                .at(NOW)
                .when(attempt(false))
                .then_expect(vec![(stream(), LoginFailed { failures }.into())]);
            history.push((stream(), LoginFailed { failures }.into()));
        }
        // However many failed, the right password opens the account: no lock to wield.
        given(t, history)
            .at(NOW)
            .when(attempt(true))
            .then_expect(vec![(stream(), LoginSucceeded {}.into())]);
    }

    #[test]
    fn a_lock_of_an_older_log_holds_until_its_time_and_then_the_count_starts_again() {
        let t = ettlingen();
        let mut history = clerk();
        history.push((
            stream(),
            LoginFailed {
                failures: MAX_FAILURES,
            }
            .into(),
        ));
        history.push((
            stream(),
            AccountLocked {
                until: NOW + LOCKOUT,
            }
            .into(),
        ));
        // Locked: the right password is refused too, and nothing is written.
        given(t, history.clone())
            .at(NOW + LOCKOUT - Duration::SECOND)
            .when(attempt(true))
            .then_error(DomainError::AccountLocked);
        // After the lock the count starts again.
        given(t, history.clone())
            .at(NOW + LOCKOUT)
            .when(attempt(false))
            .then_expect(vec![(stream(), LoginFailed { failures: 1 }.into())]);
        // The lock reset the count, so a success has nothing to record.
        given(t, history)
            .at(NOW + LOCKOUT)
            .when(attempt(true))
            .then_nothing();
    }

    #[test]
    fn a_success_without_failures_records_nothing() {
        let history = vec![(stream(), created(StaffRole::Admin, &[]).into())];
        given(ettlingen(), history)
            .at(NOW)
            .when(attempt(true))
            .then_nothing();
    }

    #[test]
    fn a_success_resets_the_count() {
        let t = ettlingen();
        let mut history = clerk();
        history.push((stream(), LoginFailed { failures: 4 }.into()));
        history.push((stream(), LoginSucceeded {}.into()));
        given(t, history)
            .at(NOW)
            .when(attempt(false))
            .then_expect(vec![(stream(), LoginFailed { failures: 1 }.into())]);
    }
}
