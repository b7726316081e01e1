//! The staff-session port: signed-in staff and sign-ons under way, kept where every process
//! serving the log sees them (ADR 0023). A browser holds a random cookie value; the store
//! knows only its SHA-256, so a copy of the table opens no session.
//!
//! The account itself stays in the log: a session names the account and the account's
//! `sessions_epoch` when it was opened, and every request checks both against the account's
//! stream, so a deactivation, a lock or a new password ends it at once, on every process.

use time::OffsetDateTime;

use crate::domain::account::Login;
use crate::event::TenantId;
use crate::store::StoreError;

/// The SHA-256 of a cookie value.
pub type SessionKey = [u8; 32];

/// An open session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub tenant: TenantId,
    pub login: Login,
    /// The account's `sessions_epoch` when the session was opened (or carried over).
    pub epoch: u32,
    /// Signed in through the municipality's directory.
    pub directory: bool,
    /// The end of the session's lifetime, however active it is.
    pub expires: OffsetDateTime,
    /// The last request seen, to the minute: the idle timeout counts from it.
    pub seen: OffsetDateTime,
}

#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    async fn open_session(&self, key: SessionKey, record: SessionRecord) -> Result<(), StoreError>;

    /// The session, if it is open (expired ones may still be returned: the caller decides).
    async fn session(&self, key: SessionKey) -> Result<Option<SessionRecord>, StoreError>;

    /// Notes a request at `seen`.
    async fn touch_session(&self, key: SessionKey, seen: OffsetDateTime) -> Result<(), StoreError>;

    /// Keeps a session open across its holder's own change that ended the account's other
    /// sessions (a new password).
    async fn carry_session_over(&self, key: SessionKey, epoch: u32) -> Result<(), StoreError>;

    async fn close_session(&self, key: SessionKey) -> Result<(), StoreError>;

    /// Forgets sessions that expired or idled out before `now - idle`; returns how many.
    async fn close_stale_sessions(
        &self,
        now: OffsetDateTime,
        idle: time::Duration,
    ) -> Result<u64, StoreError>;

    /// Keeps a sign-on under way (its state, as text) until `expires`.
    async fn put_sign_on(
        &self,
        key: SessionKey,
        state: String,
        expires: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Takes a sign-on's state, once: a second take finds nothing, as does one after `now`
    /// passed its expiry.
    async fn take_sign_on(
        &self,
        key: SessionKey,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError>;
}
