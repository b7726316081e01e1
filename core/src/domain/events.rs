//! Every domain event type, its payload and its schema version. `docs/events.md` lists the
//! same; a test keeps the two in step.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::account::{Login, PasswordHash, StaffRole};
use super::document::{MediaType, Sha256};
use super::identity::{DocumentType, SecurityFeature};
use super::{
    AppointmentId, DocumentId, DomainError, FormId, PaymentId, Personal, SessionId, SubjectId,
};
use crate::event::{InvalidInput, Payload};
use crate::payment::ProviderReference;
use crate::tenant::{
    BookingChannel, Cents, ClerkId, DepartmentId, FormTemplateId, PaymentMethodId, ServiceId,
    SignatureMethod, Tenant,
};

/// Contact details of the citizen who booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: Personal,
    pub email: Personal,
    pub phone: Option<Personal>,
}

/// Who called off an appointment, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    /// Through the link in the confirmation mail.
    CitizenByLink,
    /// By a clerk, e.g. after a call.
    Clerk,
    /// The system, e.g. when a slot hold expired.
    System,
}

/// Which side of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Citizen,
    Clerk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionOutcome {
    /// The concerns were dealt with.
    Completed,
    /// Broken off (e.g. device failure); a new appointment is needed.
    Aborted,
}

/// The state an appointment ended in, which starts its retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalState {
    Completed,
    Cancelled,
    NoShow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeItem {
    pub service: ServiceId,
    pub amount: Cents,
}

// --- account ---

/// A staff account, created by an admin. The password is stored only as an argon2id PHC
/// string, and not at all when the account holder sets it through a one-time link
/// ([`PasswordLinkIssued`], recorded with this event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub login: Login,
    pub role: StaffRole,
    /// The departments a clerk works for; empty for every other role.
    pub departments: Vec<DepartmentId>,
    /// `None` (new in version 2) while the password is to be set through a one-time link,
    /// and always for a directory account.
    pub password_hash: Option<PasswordHash>,
    /// New in version 3: created by a sign-on through the municipality's directory (OpenID
    /// Connect), which keeps its password and decides its role. `false` in older versions.
    #[serde(default)]
    pub directory: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSucceeded {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailed {
    /// Failures in a row, this one included.
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLocked {
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

/// The account holder changed their password, giving the old one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub password_hash: PasswordHash,
}

/// A one-time link to set the password was issued (with a new account, or as a reset by an
/// admin). The password so far stops working, and so does any earlier link. Only the SHA-256
/// of the link's token is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLinkIssued {
    /// Hex SHA-256 of the link's token.
    pub digest: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// The account holder set a new password through the one-time link, which is used up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLinkUsed {
    pub password_hash: PasswordHash,
}

/// An admin deactivated the account: it cannot log in, and its open sessions end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDeactivated {}

/// An admin reactivated a deactivated account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountReactivated {}

/// An admin gave the account another role or other departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRoleChanged {
    pub role: StaffRole,
    /// The departments a clerk works for; empty for every other role.
    pub departments: Vec<DepartmentId>,
}

/// An admin lifted the lock after too many failed logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUnlocked {}

/// An active admin account stopped being one (deactivated or given another role), on the
/// municipality's `accounts-{tenant}` stream: `remaining` are the active admins left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRemoved {
    pub account: Login,
    pub remaining: Vec<Login>,
}

/// Somebody the municipality's directory vouched for was refused, on the municipality's
/// `accounts-{tenant}` stream: the login name and why, never a token or another claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySignInRefused {
    pub login: Login,
    pub reason: DirectoryRefusal,
}

/// An auditor was shown the history of `account`, on the municipality's `accounts-{tenant}`
/// stream; recorded before anything is shown, as `AuditRecordViewed` is for an appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountHistoryViewed {
    pub account: Login,
}

/// Why a directory sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryRefusal {
    /// None of the person's groups is mapped to a role.
    NoGrant,
}

// --- appointment ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentBooked {
    pub appointment: AppointmentId,
    pub subject: SubjectId,
    pub department: DepartmentId,
    pub services: Vec<ServiceId>,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    pub channel: BookingChannel,
    /// The clerk who invited, for the clerk-invitation channel.
    pub invited_by: Option<ClerkId>,
    pub contact: Contact,
    /// What the municipality's configuration said at booking about what is decided later:
    /// the services' names, fees and durations and the department's slot length. A changed
    /// configuration applies to new bookings only (ADR 0020). New in version 2; a version 1
    /// booking has none and reads today's configuration.
    /// Boxed: it would make every event as large as the largest.
    #[serde(default)]
    pub terms: Option<Box<BookingTerms>>,
}

/// The configuration a booking was made under ([`AppointmentBooked::terms`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingTerms {
    pub department_name: String,
    pub slot_minutes: u16,
    /// In the order of [`AppointmentBooked::services`].
    pub services: Vec<BookedService>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookedService {
    pub service: ServiceId,
    pub name: String,
    pub fee: Cents,
    pub duration_minutes: u16,
}

impl BookingTerms {
    /// The terms `tenant`'s configuration gives today for `services` of `department`; `None`
    /// when one of them is unknown.
    pub fn of(tenant: &Tenant, department: &DepartmentId, services: &[ServiceId]) -> Option<Self> {
        let dept = tenant.department(department)?;
        let services = services
            .iter()
            .map(|id| {
                tenant.service(id).map(|s| BookedService {
                    service: id.clone(),
                    name: s.name.clone(),
                    fee: s.fee,
                    duration_minutes: s.duration_minutes,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            department_name: dept.name.clone(),
            slot_minutes: dept.slot_minutes,
            services,
        })
    }
}

impl AppointmentBooked {
    /// The terms of the booking: as recorded, or for a version 1 booking today's configuration.
    pub fn terms(&self, tenant: &Tenant) -> Option<BookingTerms> {
        self.terms
            .as_deref()
            .cloned()
            .or_else(|| BookingTerms::of(tenant, &self.department, &self.services))
    }

    /// The fee items (services with a fee) and their sum, as booked.
    pub fn fees(&self, tenant: &Tenant) -> Result<(Vec<FeeItem>, Cents), DomainError> {
        let terms = self.terms(tenant).ok_or_else(|| {
            match self.services.iter().find(|s| tenant.service(s).is_none()) {
                Some(s) => DomainError::UnknownService(s.clone()),
                None => DomainError::UnknownDepartment(self.department.clone()),
            }
        })?;
        let mut items = Vec::new();
        let mut total = Cents(0);
        for s in &terms.services {
            if s.fee.0 > 0 {
                items.push(FeeItem {
                    service: s.service.clone(),
                    amount: s.fee,
                });
            }
            total = total.checked_add(s.fee).ok_or(DomainError::NothingToPay)?;
        }
        Ok((items, total))
    }

    /// The services' names as booked (their ids where neither the booking nor today's
    /// configuration knows them).
    pub fn service_names(&self, tenant: &Tenant) -> Vec<String> {
        match &self.terms {
            Some(terms) => terms.services.iter().map(|s| s.name.clone()).collect(),
            None => self
                .services
                .iter()
                .map(|id| {
                    tenant
                        .service(id)
                        .map_or_else(|| id.to_string(), |s| s.name.clone())
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentConfirmed {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentRescheduled {
    #[serde(with = "time::serde::rfc3339")]
    pub previous_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentCancelled {
    pub by: CancelledBy,
    pub reason: Option<Personal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderSent {}

/// The citizen's capability link for this appointment was issued. Only a SHA-256 hash of the
/// token is kept (hex); the token itself exists in the citizen's mail and browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenAccessGranted {
    pub token_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// Which mail of an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Confirmation,
    Reminder,
    Cancellation,
}

impl MailKind {
    /// The stored name (as in the payload).
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Reminder => "reminder",
            MailKind::Cancellation => "cancellation",
        }
    }
}

/// A mail of the appointment was handed to the mail server (or written to the outbox folder).
/// `message_id` is the idempotency key: a mail sent again after a crash carries the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSent {
    pub kind: MailKind,
    pub message_id: String,
}

/// A mail could not be delivered after the last try. `reason` is the server's reply code and
/// class, never the address or the server's text (which may quote the address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailed {
    pub kind: MailKind,
    pub message_id: String,
    pub attempts: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoShowRecorded {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLinked {
    pub session: SessionId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentCompleted {
    pub outcome: SessionOutcome,
}

// --- calendar ---

/// The appointment holds `slots` consecutive slots from `first_minute` on. Written to the stream
/// of each of those slots (to the calendar-day stream in schema 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsReserved {
    pub appointment: AppointmentId,
    /// Minutes after local midnight of the first slot.
    pub first_minute: u16,
    pub slots: u16,
}

/// The appointment gave back the slot of the stream (in schema 1: all it held that day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsReleased {
    pub appointment: AppointmentId,
}

// --- session ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOpened {
    pub appointment: AppointmentId,
    /// The appointment's data subject, whose key seals what the session records. Absent only
    /// in sessions opened before sealing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    pub department: DepartmentId,
    pub services: Vec<ServiceId>,
    pub identity_check_required: bool,
    pub signature_required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJoined {
    pub party: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLeft {
    pub party: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionLost {
    pub party: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRestored {
    pub party: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyNoticeAccepted {}

/// The citizen's pre-call check: whether the browser, camera, microphone and line passed, and
/// the measured upload. Nothing else about the device is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCallCheckRecorded {
    pub passed: bool,
    /// Upload measured against this server, in kbit/s; 0 when it could not be measured.
    pub upload_kbit_s: u32,
}

/// The clerk sent an admitted citizen back to the waiting room; media stops until the next
/// admission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentBackToWaitingRoom {
    pub clerk: ClerkId,
}

/// The clerk removed the citizen from the session; the link no longer enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedFromSession {
    pub clerk: ClerkId,
}

/// A party whose connection was lost did not come back within the grace period. A citizen is
/// back in the waiting room and needs admitting again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectGraceExpired {
    pub party: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmittedFromWaitingRoom {
    pub clerk: ClerkId,
}

/// The clerk saw the ID document on camera. Never an image; only what was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityVerified {
    pub document_type: DocumentType,
    /// The clerk asked control questions (date of birth, place of issue, …); what was asked
    /// and answered is not kept. New in version 2; a version 1 check reads as `false`.
    #[serde(default)]
    pub questions_asked: bool,
    /// Older checks may name fewer categories than a check needs today.
    pub features_checked: Vec<SecurityFeature>,
    pub clerk: ClerkId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityCheckFailed {
    pub document_type: DocumentType,
    /// As in [`IdentityVerified::questions_asked`].
    #[serde(default)]
    pub questions_asked: bool,
    /// The clerk's free text; it may describe the person.
    pub reason: Personal,
    pub clerk: ClerkId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentUploaded {
    pub document: DocumentId,
    pub by: Party,
    pub file_name: Personal,
    pub media_type: MediaType,
    pub size_bytes: u64,
    pub sha256: Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentShared {
    pub document: DocumentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentDownloaded {
    pub document: DocumentId,
    pub by: Party,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormAttached {
    pub form: FormId,
    pub template: FormTemplateId,
}

/// The clerk asked for the session's fees: the payment `payment` belongs to this session,
/// and the citizen pays it in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAttached {
    pub payment: PaymentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackSubmitted {
    /// The overall mark, 1 (poor) to 5 (very good); with aspects, their rounded mean.
    pub score: u8,
    /// The marks for the FAQ's aspects. New in version 2; a version 1 feedback has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspects: Option<FeedbackAspects>,
    pub comment: Option<Personal>,
}

/// The citizen's marks, 1 to 5, for what the FAQ asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackAspects {
    /// Bild und Ton.
    pub picture_and_sound: u8,
    /// Bedienung.
    pub usability: u8,
    /// Wartezeit.
    pub waiting_time: u8,
    /// Ergebnis.
    pub result: u8,
}

impl FeedbackAspects {
    pub fn all(&self) -> [u8; 4] {
        [
            self.picture_and_sound,
            self.usability,
            self.waiting_time,
            self.result,
        ]
    }

    /// The overall mark: the mean, rounded half up.
    pub fn overall(&self) -> u8 {
        let sum: u16 = self.all().iter().map(|&m| u16::from(m)).sum();
        u8::try_from((sum * 2 + 4) / 8).unwrap_or(5)
    }
}

/// Data that must be kept is handed to the specialised procedure (`Fachverfahren`) before the
/// purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedOverToCaseSystem {
    pub target: String,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub outcome: SessionOutcome,
}

// --- form ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormStarted {
    pub session: SessionId,
    /// The data subject whose key seals the form's values (see [`SessionOpened::subject`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    pub template: FormTemplateId,
    pub service: ServiceId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChanged {
    pub field: String,
    /// `None` clears the field (so that clearing is visible without opening a sealed value).
    pub value: Option<Personal>,
    pub by: Party,
    /// The field's version the writer saw when typing (0: never written; each `FieldChanged`
    /// of the field is one version). New in version 2; `None` where the writer did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub based_on: Option<u64>,
    /// The other party, when this write replaced a value of theirs that the writer had not
    /// seen (a stale write, applied all the same: last writer wins in log order). New in
    /// version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overwrote: Option<Party>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureRequested {
    pub method: SignatureMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormSigned {
    pub method: SignatureMethod,
    /// SHA-256 of the signature evidence (strokes, TAN exchange).
    pub evidence_sha256: Sha256,
    /// SHA-256 of the rendered PDF that was signed.
    pub document_sha256: Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormLocked {}

/// A one-time code for a TAN signature: shown only in the citizen's own view (Hidden-TAN) or
/// sent to the citizen's phone (Handy-TAN). Never the code itself: `digest` is a keyed hash of
/// it (the server's TAN key, the form and `tan`), so the log does not give it away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TanIssued {
    pub tan: Uuid,
    pub method: SignatureMethod,
    pub digest: Sha256,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A code was typed in that is not the TAN `tan`; `attempts` wrong ones so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TanRejected {
    pub tan: Uuid,
    pub attempts: u8,
}

/// The TAN `tan` was typed in correctly; it is used up, and the form may be signed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TanAccepted {
    pub tan: Uuid,
}

// --- payment ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequested {
    pub appointment: AppointmentId,
    /// The session the fees were asked for in, whose room the citizen pays in. New in version
    /// 2; a version 1 request was made outside a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    pub amount: Cents,
    /// The `Verwendungszweck`. From version 2 on it is at most 27 characters (a
    /// [`crate::payment::Purpose`]); a version 1 purpose may be longer and is not sent to a
    /// provider.
    pub purpose: String,
    pub items: Vec<FeeItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodChosen {
    pub method: PaymentMethodId,
}

/// A payment transaction was opened at the provider for the payment: one attempt to pay. The
/// citizen is sent to `redirect_url`; a failed attempt may be followed by another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentTransactionCreated {
    pub provider_reference: ProviderReference,
    pub redirect_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAuthorized {
    pub provider_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub amount: Cents,
}

/// How an attempt to pay ended without the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentFailure {
    /// The provider refused, e.g. a declined card.
    #[default]
    Declined,
    /// The citizen broke off on the provider's page.
    Abandoned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFailed {
    /// The transaction that failed; none for a failure outside a transaction (and in
    /// version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<ProviderReference>,
    /// New in version 2; a version 1 failure reads as declined.
    #[serde(default)]
    pub kind: PaymentFailure,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub amount: Cents,
}

// --- subject ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectKeyIssued {
    pub subject: SubjectId,
    pub appointment: AppointmentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeScheduled {
    pub final_state: FinalState,
    #[serde(with = "time::serde::rfc3339")]
    pub final_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeExecuted {
    pub keys_destroyed: u32,
    pub blobs_deleted: u32,
    pub outbox_items_scrubbed: u32,
}

/// The purge was due but may not run yet: data that must be kept has not been handed over to
/// the case system. The purge is tried again at `retry_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeBlocked {
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub retry_at: OffsetDateTime,
}

/// The verifier found traces of a purged subject. `places` names tables, folders and files,
/// never the values found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionVerificationFailed {
    pub places: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionVerified {
    pub checks: Vec<String>,
}

// --- audit ---

/// An auditor read an appointment's record: its timeline, or its state as of a position (time
/// travel). Auditors are themselves audited; who and when are in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecordViewed {
    pub appointment: AppointmentId,
    /// The global position the state was shown as of; `None` for the current record.
    pub as_of: Option<u64>,
}

impl DomainEvent {
    /// Every personal value of the payload, for sealing before the event is stored.
    pub fn personal_mut(&mut self) -> Vec<&mut Personal> {
        match self {
            DomainEvent::AppointmentBooked(e) => {
                let c = &mut e.contact;
                let mut v = vec![&mut c.name, &mut c.email];
                v.extend(c.phone.as_mut());
                v
            }
            DomainEvent::AppointmentCancelled(e) => e.reason.as_mut().into_iter().collect(),
            DomainEvent::IdentityCheckFailed(e) => vec![&mut e.reason],
            DomainEvent::DocumentUploaded(e) => vec![&mut e.file_name],
            DomainEvent::FeedbackSubmitted(e) => e.comment.as_mut().into_iter().collect(),
            DomainEvent::FieldChanged(e) => e.value.as_mut().into_iter().collect(),
            _ => vec![],
        }
    }
}

/// Why a payload could not be read as the event its type names.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version}")]
    UnknownVersion { event_type: String, version: u16 },
    #[error("{event_type} payload does not match its schema: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
}

macro_rules! domain_events {
    ($($variant:ident = $version:literal),* $(,)?) => {
        /// Every fact of the workflow.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum DomainEvent {
            $($variant($variant)),*
        }

        $(
            impl From<$variant> for DomainEvent {
                fn from(e: $variant) -> Self {
                    DomainEvent::$variant(e)
                }
            }
        )*

        impl DomainEvent {
            /// Every event type with its current schema version.
            pub const CATALOGUE: &'static [(&'static str, u16)] = &[$((stringify!($variant), $version)),*];

            pub fn event_type(&self) -> &'static str {
                match self { $(DomainEvent::$variant(_) => stringify!($variant)),* }
            }

            pub fn schema_version(&self) -> u16 {
                match self { $(DomainEvent::$variant(_) => $version),* }
            }

            pub fn to_payload(&self) -> Result<Payload, InvalidInput> {
                match self { $(DomainEvent::$variant(e) => Payload::from_value(e)),* }
            }

            /// Reads a stored event. Older schema versions are upcast here, when they exist.
            pub fn from_payload(event_type: &str, version: u16, payload: &Payload) -> Result<Self, DecodeError> {
                match event_type {
                    $(stringify!($variant) => {
                        let payload = if version == $version {
                            payload
                        } else if version < $version {
                            upcast(event_type, version, payload).ok_or_else(|| {
                                DecodeError::UnknownVersion { event_type: event_type.to_owned(), version }
                            })?
                        } else {
                            return Err(DecodeError::UnknownVersion { event_type: event_type.to_owned(), version });
                        };
                        payload
                            .parse::<$variant>()
                            .map(DomainEvent::$variant)
                            .map_err(|source| DecodeError::Payload { event_type: event_type.to_owned(), source })
                    })*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }
    };
}

/// Brings the payload of an older schema version to the current shape; `None` for a version
/// that was never written.
fn upcast<'p>(event_type: &str, version: u16, payload: &'p Payload) -> Option<&'p Payload> {
    match (event_type, version) {
        // Version 1 went to the calendar-day stream, version 2 goes to each slot stream (ADR
        // 0012). The payload is the same; readers tell the two apart by the stream.
        ("SlotsReserved" | "SlotsReleased", 1) => Some(payload),
        // Version 2 adds `questions_asked`; a version 1 check reads as asked nothing.
        ("IdentityVerified" | "IdentityCheckFailed", 1) => Some(payload),
        // Version 2 adds `based_on` and `overwrote`; a version 1 change based on nothing known
        // and overwrote no one.
        ("FieldChanged", 1) => Some(payload),
        // Version 2 adds the aspects; a version 1 feedback has only its overall mark.
        ("FeedbackSubmitted", 1) => Some(payload),
        // Version 2 adds the session a payment was requested in (none in version 1) and
        // bounds the purpose to 27 characters; a failure names its transaction and whether it
        // was declined or abandoned (a version 1 failure reads as declined, without one).
        ("PaymentRequested" | "PaymentFailed", 1) => Some(payload),
        // Version 2 adds the terms the booking was made under; a version 1 booking has none
        // and reads today's configuration.
        ("AppointmentBooked", 1) => Some(payload),
        // Version 2 allows an account without a password (set through a one-time link); a
        // version 1 account always has its hash.
        // Version 3 adds `directory`; older accounts are local ones.
        ("AccountCreated", 1 | 2) => Some(payload),
        _ => None,
    }
}

domain_events! {
    AccountCreated = 3,
    LoginSucceeded = 1,
    LoginFailed = 1,
    AccountLocked = 1,
    PasswordChanged = 1,
    PasswordLinkIssued = 1,
    PasswordLinkUsed = 1,
    AccountDeactivated = 1,
    AccountReactivated = 1,
    AccountRoleChanged = 1,
    AccountUnlocked = 1,
    AdminRemoved = 1,
    DirectorySignInRefused = 1,
    AccountHistoryViewed = 1,
    AppointmentBooked = 2,
    AppointmentConfirmed = 1,
    AppointmentRescheduled = 1,
    AppointmentCancelled = 1,
    ReminderSent = 1,
    CitizenAccessGranted = 1,
    MailSent = 1,
    DeliveryFailed = 1,
    NoShowRecorded = 1,
    SessionLinked = 1,
    AppointmentCompleted = 1,
    SlotsReserved = 2,
    SlotsReleased = 2,
    SessionOpened = 1,
    ParticipantJoined = 1,
    ParticipantLeft = 1,
    ConnectionLost = 1,
    ConnectionRestored = 1,
    PrivacyNoticeAccepted = 1,
    AdmittedFromWaitingRoom = 1,
    PreCallCheckRecorded = 1,
    SentBackToWaitingRoom = 1,
    RemovedFromSession = 1,
    ReconnectGraceExpired = 1,
    IdentityVerified = 2,
    IdentityCheckFailed = 2,
    DocumentUploaded = 1,
    DocumentShared = 1,
    DocumentDownloaded = 1,
    FormAttached = 1,
    PaymentAttached = 1,
    FeedbackSubmitted = 2,
    HandedOverToCaseSystem = 1,
    SessionEnded = 1,
    FormStarted = 1,
    FieldChanged = 2,
    SignatureRequested = 1,
    FormSigned = 1,
    FormLocked = 1,
    TanIssued = 1,
    TanRejected = 1,
    TanAccepted = 1,
    PaymentRequested = 2,
    PaymentMethodChosen = 1,
    PaymentTransactionCreated = 1,
    PaymentAuthorized = 1,
    PaymentCaptured = 1,
    PaymentFailed = 2,
    PaymentRefunded = 1,
    SubjectKeyIssued = 1,
    PurgeScheduled = 1,
    PurgeBlocked = 1,
    PurgeExecuted = 1,
    DeletionVerified = 1,
    DeletionVerificationFailed = 1,
    AuditRecordViewed = 1,
}
