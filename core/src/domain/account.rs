//! Staff accounts of one municipality (`account-{tenant}:{login}`): clerks
//! (`Sachbearbeiter`), auditors, data-protection officers and admins. Citizens have none; they
//! hold capability links.
//!
//! Invariants:
//! - a login exists at most once per tenant; its role and departments never change;
//! - a clerk names at least one department of the tenant, every other role none;
//! - [`MAX_FAILURES`] failed logins in a row lock the account for [`LOCKOUT`]; while it is
//!   locked even the right password is refused, and that refusal writes nothing, so the lock
//!   cannot be extended or probed by guessing on;
//! - a successful login resets the count of failures (`LoginSucceeded`, written only when there
//!   were failures to reset).
//!
//! The password is checked outside (argon2id is slow on purpose and needs no state); the
//! decision only learns whether it matched.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::events::{AccountCreated, AccountLocked, LoginFailed, LoginSucceeded};
use super::{Context, Decision, DomainError, DomainEvent, Histories};
use crate::event::{ActorRole, StreamId, TenantId};
use crate::tenant::{DepartmentId, Tenant};

/// Failed logins in a row that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: Duration = Duration::minutes(15);

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
    /// Runs the municipality's installation; sees statistics, no cases.
    Admin,
}

impl StaffRole {
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

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "clerk" => Some(Self::Clerk),
            "auditor" => Some(Self::Auditor),
            "dpo" => Some(Self::Dpo),
            "admin" => Some(Self::Admin),
            _ => None,
        }
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

/// An account as its stream folds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    pub created: Option<AccountCreated>,
    /// Failed logins since the last success or lock.
    pub failures: u32,
    pub locked_until: Option<OffsetDateTime>,
}

impl AccountState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::AccountCreated(e) => self.created = Some(e.clone()),
            DomainEvent::LoginSucceeded(_) => self.failures = 0,
            DomainEvent::LoginFailed(e) => self.failures = e.failures,
            DomainEvent::AccountLocked(e) => {
                self.failures = 0;
                self.locked_until = Some(e.until);
            }
            _ => {}
        }
        self
    }

    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// The commands of an account's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// An admin creates a staff account.
    CreateAccount(AccountCreated),
    /// A login attempt; the password was checked against the account's hash outside.
    LogIn {
        account: Login,
        password_matches: bool,
    },
}

impl AccountCommand {
    fn stream(&self, tenant: &TenantId) -> StreamId {
        match self {
            Self::CreateAccount(c) => c.login.stream(tenant),
            Self::LogIn { account, .. } => account.stream(tenant),
        }
    }

    pub fn streams(&self, _loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        vec![self.stream(&ctx.tenant.id)]
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let stream = self.stream(&ctx.tenant.id);
        let state = h.fold(&stream, AccountState::evolve);
        match self {
            Self::CreateAccount(c) => create(&state, stream, ctx.tenant, c.clone()),
            Self::LogIn {
                password_matches, ..
            } => log_in(&state, stream, *password_matches, ctx.now),
        }
    }
}

fn create(
    state: &AccountState,
    stream: StreamId,
    tenant: &Tenant,
    created: AccountCreated,
) -> Result<Decision, DomainError> {
    if state.created.is_some() {
        return Err(DomainError::AccountExists);
    }
    for d in &created.departments {
        if tenant.department(d).is_none() {
            return Err(DomainError::UnknownDepartment(d.clone()));
        }
    }
    match (created.role, created.departments.is_empty()) {
        (StaffRole::Clerk, true) => return Err(DomainError::ClerkWithoutDepartment),
        (StaffRole::Auditor | StaffRole::Dpo | StaffRole::Admin, false) => {
            return Err(DomainError::DepartmentsOnlyForClerks);
        }
        _ => {}
    }
    Ok(vec![(stream, created.into())])
}

/// A login attempt whose password was checked outside.
fn log_in(
    state: &AccountState,
    stream: StreamId,
    password_matches: bool,
    now: OffsetDateTime,
) -> Result<Decision, DomainError> {
    if state.created.is_none() {
        return Err(DomainError::LoginRefused);
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
    let failures = state.failures + 1;
    let mut decision: Decision = vec![(stream.clone(), LoginFailed { failures }.into())];
    if failures >= MAX_FAILURES {
        decision.push((
            stream,
            AccountLocked {
                until: now + LOCKOUT,
            }
            .into(),
        ));
    }
    Ok(decision)
}

/// Departments as given on the command line, checked when the account is created.
pub fn departments(raw: &[String]) -> Vec<DepartmentId> {
    raw.iter().map(|d| DepartmentId::from(d.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::domain::gwt::{ettlingen, given};

    fn login() -> Login {
        Login::parse("a.becker").expect("a valid login")
    }

    fn created(role: StaffRole, departments: &[&str]) -> AccountCreated {
        AccountCreated {
            login: login(),
            role,
            departments: departments.iter().map(|d| DepartmentId::from(*d)).collect(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        }
    }

    fn stream() -> StreamId {
        login().stream(&ettlingen().id)
    }

    fn attempt(password_matches: bool) -> AccountCommand {
        AccountCommand::LogIn {
            account: login(),
            password_matches,
        }
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
    fn a_clerk_account_is_created_once() {
        let t = ettlingen();
        let command = AccountCommand::CreateAccount(created(StaffRole::Clerk, &["buergerbuero"]));
        given(t, vec![])
            .at(NOW)
            .when(command.clone())
            .then_expect(vec![(
                stream(),
                created(StaffRole::Clerk, &["buergerbuero"]).into(),
            )]);
        given(
            t,
            vec![(
                stream(),
                created(StaffRole::Clerk, &["buergerbuero"]).into(),
            )],
        )
        .at(NOW)
        .when(command)
        .then_error(DomainError::AccountExists);
    }

    #[test]
    fn departments_belong_to_clerks_and_to_the_tenant() {
        let t = ettlingen();
        let when = |c: AccountCreated| {
            given(t, vec![])
                .at(NOW)
                .when(AccountCommand::CreateAccount(c))
        };
        when(created(StaffRole::Clerk, &[])).then_error(DomainError::ClerkWithoutDepartment);
        when(created(StaffRole::Clerk, &["standesamt-mars"]))
            .then_error(DomainError::UnknownDepartment("standesamt-mars".into()));
        when(created(StaffRole::Auditor, &["buergerbuero"]))
            .then_error(DomainError::DepartmentsOnlyForClerks);
        when(created(StaffRole::Dpo, &[]))
            .then_expect(vec![(stream(), created(StaffRole::Dpo, &[]).into())]);
    }

    #[test]
    fn an_unknown_account_is_refused_like_a_wrong_password_would_be_and_writes_nothing() {
        given(ettlingen(), vec![])
            .at(NOW)
            .when(attempt(true))
            .then_error(DomainError::LoginRefused);
    }

    #[test]
    fn the_fifth_failure_in_a_row_locks_the_account() {
        let t = ettlingen();
        let mut history = vec![(
            stream(),
            created(StaffRole::Clerk, &["buergerbuero"]).into(),
        )];
        for failures in 1..MAX_FAILURES {
            given(t, history.clone())
                .at(NOW)
                .when(attempt(false))
                .then_expect(vec![(stream(), LoginFailed { failures }.into())]);
            history.push((stream(), LoginFailed { failures }.into()));
        }
        given(t, history.clone())
            .at(NOW)
            .when(attempt(false))
            .then_expect(vec![
                (
                    stream(),
                    LoginFailed {
                        failures: MAX_FAILURES,
                    }
                    .into(),
                ),
                (
                    stream(),
                    AccountLocked {
                        until: NOW + LOCKOUT,
                    }
                    .into(),
                ),
            ]);
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
        let history = vec![
            (
                stream(),
                created(StaffRole::Clerk, &["buergerbuero"]).into(),
            ),
            (stream(), LoginFailed { failures: 4 }.into()),
            (stream(), LoginSucceeded {}.into()),
        ];
        given(t, history)
            .at(NOW)
            .when(attempt(false))
            .then_expect(vec![(stream(), LoginFailed { failures: 1 }.into())]);
    }
}
