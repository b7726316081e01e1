//! The one error type of the HTTP edge. Every way a request can fail is a variant of
//! [`Error`], documented with the status it is answered with; `From` impls for the bus, the
//! store and the read models let handlers use `?`. JSON handlers answer with an RFC 9457
//! problem document ([`Problem`]), pages with the same text as a German page. Internal
//! failures are logged once, by the request middleware, with the route template.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use videoamt_adapters::bus::BusError;
use videoamt_adapters::payment::wire;
use videoamt_core::case_system::CaseSystemError;
use videoamt_core::domain::DomainError;
use videoamt_core::payment::PaymentError;
use videoamt_core::readmodel::ReadModelError;
use videoamt_core::sms::SmsError;
use videoamt_core::store::StoreError;

/// One invalid input field, for forms to show beside the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name in the request (`contact.email`).
    pub field: String,
    /// What is wrong, in German.
    pub message: String,
}

/// A problem document (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; relative to the server.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short German summary the citizen or clerk can read.
    pub title: &'static str,
    pub status: u16,
    /// What happened in this case, in German; never internal details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The invalid fields, when the request had any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before trying again (also sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

/// Why a request failed. Internal causes are kept for the log and never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// 400 Bad Request: the body, query or path is not what the operation takes.
    BadRequest(String),
    /// 401 Unauthorized: no valid staff session.
    LoginRequired,
    /// 403 Forbidden: logged in, but not for this role, department or municipality.
    Forbidden,
    /// 403 Forbidden: a state-changing request from another origin.
    ForeignOrigin,
    /// 404 Not Found: no such address or record; the detail says what.
    NotFound(String),
    /// 404 Not Found: a capability link that is malformed, forged or names nothing; one answer
    /// for all, so a guess learns nothing.
    InvalidLink,
    /// 410 Gone: the link's appointment is closed and its data deleted or due for deletion.
    ExpiredLink,
    /// 403 Forbidden: the visit is over; the link still reads, but changes nothing. `aftercare`:
    /// it was the feedback or the payment, which stay open a day longer.
    LinkReadOnly { aftercare: bool },
    /// 413 Content Too Large: above [`crate::http::MAX_BODY_BYTES`].
    TooLarge,
    /// 415 Unsupported Media Type: a JSON operation was sent something else.
    UnsupportedMediaType,
    /// 413 Content Too Large: an uploaded document above the upload cap, in bytes
    /// (`VIDEOAMT_UPLOAD_MAX_BYTES`).
    FileTooLarge(u64),
    /// 415 Unsupported Media Type: an uploaded document that is, by its bytes, none of the
    /// allowed types (an executable, an archive, text); the German detail says what.
    FileTypeRefused(&'static str),
    /// 422 Unprocessable Content: an uploaded document whose bytes are not what its name or
    /// declared type says (a PNG sent as a PDF); the German detail says what.
    FileTypeMismatch(String),
    /// 422 Unprocessable Content: an allowed type that carries what the room does not pass
    /// on (a PDF with a script, an embedded file, or streams that inflate without end).
    FileContentRefused(&'static str),
    /// 422 Unprocessable Content: well-formed, but fields are invalid; each named with a
    /// German message for forms to show beside the field.
    InvalidFields(Vec<FieldError>),
    /// 422 Unprocessable Content: well-formed JSON whose values do not fit the schema.
    InvalidData(String),
    /// 408 Request Timeout: the request was not answered within the request timeout
    /// (`VIDEOAMT_REQUEST_TIMEOUT_SECONDS`), its body included.
    RequestTimeout,
    /// 429 Too Many Requests: wait this many seconds (also sent as `Retry-After`).
    TooManyRequests(u64),
    /// 429 Too Many Requests: the day's online bookings for this e-mail address or client
    /// address are used up ([`crate::http::citizen::caps`]); the next is possible in this many
    /// seconds (also sent as `Retry-After`).
    BookingCap(u64),
    /// 429 Too Many Requests: the staff session has as many live streams open as it may
    /// ([`crate::http::staff::streams::PER_SESSION`]); closing one frees its place.
    TooManyLiveStreams,
    /// The workflow refused. Its status comes from [`refusal`]: 401, 403, 404, 409, 410, 422 or
    /// 423.
    Refused(DomainError),
    /// The payment provider, or a request to or from it, failed. The status comes from
    /// [`payment_problem`]: 400, 401 (a callback's bad signature, a wrong token), 404, 409,
    /// 422 (a purpose over 27 characters) or 502 (the provider unreachable or answering
    /// nonsense; the cause is logged).
    Payment(PaymentError),
    /// 502 Bad Gateway: the case system (`target`, as the tenant names it) did not take the
    /// handover, and nothing was recorded; the German detail names it and says what to do. The
    /// cause is logged.
    CaseSystem {
        target: String,
        error: CaseSystemError,
    },
    /// 502 Bad Gateway: the SMS gateway did not take the Handy-TAN, and no TAN was recorded;
    /// the German detail says what to do. The cause is logged.
    Sms(SmsError),
    /// A sign-on through the municipality's directory did not come through (ADR 0022); the
    /// status and the German text come from the [`SignOnProblem`], the cause (never a token)
    /// is logged.
    SignOn {
        problem: SignOnProblem,
        cause: Option<String>,
    },
    /// 503 Service Unavailable: the store does not answer. The cause is logged.
    Unavailable(String),
    /// 500 Internal Server Error: anything else the caller cannot fix. The cause is logged.
    Internal(String),
}

/// Why a sign-on through the municipality's directory was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOnProblem {
    /// 404: the municipality signs in with passwords only.
    NotOffered,
    /// 503: the provider does not answer.
    Unreachable,
    /// 502: the provider answers, but not as OpenID Connect says.
    Provider,
    /// 400: the browser came back with a `state` that is unknown, used, expired or not this
    /// browser's, or without a code.
    Invalid,
    /// 401: the person cancelled at the provider, or the provider refused.
    Cancelled,
    /// 401: the ID token failed a check (signature, issuer, audience, nonce, expiry).
    TokenRefused,
    /// 403: the login claim is missing or not a login name here.
    BadLogin,
    /// 403: none of the person's groups is mapped to a role.
    NoGrant,
}

impl SignOnProblem {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotOffered => (
                StatusCode::NOT_FOUND,
                "/problems/sign-on-not-offered",
                "Keine Anmeldung über den Verzeichnisdienst",
            ),
            Self::Unreachable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/sign-on-unreachable",
                "Anmeldedienst nicht erreichbar",
            ),
            Self::Provider => (
                StatusCode::BAD_GATEWAY,
                "/problems/sign-on-provider",
                "Anmeldedienst antwortet fehlerhaft",
            ),
            Self::Invalid => (
                StatusCode::BAD_REQUEST,
                "/problems/sign-on-invalid",
                "Anmeldung ungültig",
            ),
            Self::Cancelled => (
                StatusCode::UNAUTHORIZED,
                "/problems/sign-on-cancelled",
                "Anmeldung abgebrochen",
            ),
            Self::TokenRefused => (
                StatusCode::UNAUTHORIZED,
                "/problems/sign-on-token-refused",
                "Anmeldung nicht bestätigt",
            ),
            Self::BadLogin => (
                StatusCode::FORBIDDEN,
                "/problems/sign-on-bad-login",
                "Anmeldename nicht verwendbar",
            ),
            Self::NoGrant => (
                StatusCode::FORBIDDEN,
                "/problems/sign-on-no-grant",
                "Keine Berechtigung für die Videoberatung",
            ),
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Self::NotOffered => {
                "Diese Kommune meldet ihre Mitarbeitenden nicht über einen Verzeichnisdienst an. Bitte melden Sie sich mit Anmeldename und Passwort an."
            }
            Self::Unreachable => {
                "Der Verzeichnisdienst der Kommune antwortet gerade nicht. Bitte versuchen Sie es in einigen Minuten erneut, oder melden Sie sich mit Anmeldename und Passwort an, falls Sie ein solches Konto haben."
            }
            Self::Provider => {
                "Der Verzeichnisdienst der Kommune hat unerwartet geantwortet. Bitte versuchen Sie es erneut; bleibt es dabei, wenden Sie sich an die IT Ihrer Kommune."
            }
            Self::Invalid => {
                "Diese Anmeldung ist ungültig oder abgelaufen. Bitte starten Sie die Anmeldung erneut auf der Anmeldeseite."
            }
            Self::Cancelled => {
                "Die Anmeldung beim Verzeichnisdienst wurde abgebrochen oder abgelehnt. Bitte starten Sie sie erneut auf der Anmeldeseite."
            }
            Self::TokenRefused => {
                "Der Verzeichnisdienst hat die Anmeldung nicht gültig bestätigt (abgelaufen oder verändert). Bitte melden Sie sich erneut an."
            }
            Self::BadLogin => {
                "Der Verzeichnisdienst nennt keinen Anmeldenamen, den diese Videoberatung verwenden kann (2 bis 48 Zeichen aus a–z, 0–9, Punkt, Bindestrich und Unterstrich). Bitte wenden Sie sich an die IT Ihrer Kommune."
            }
            Self::NoGrant => {
                "Ihr Konto im Verzeichnisdienst gehört zu keiner Gruppe, die für die Videoberatung freigegeben ist. Bitte wenden Sie sich an die Verwaltung Ihrer Kommune."
            }
        }
    }
}

/// The cause of a 500 or 503, handed from the response to the request middleware, which logs
/// it once with the route template.
#[derive(Debug, Clone)]
pub(crate) struct LoggedCause(pub String);

impl Error {
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(detail.into())
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest(detail.into())
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        Self::InvalidFields(errors)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::Unavailable(cause.to_string())
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.problem_parts().0
    }

    fn problem_parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/bad-request",
                "Ungültige Anfrage",
            ),
            Self::LoginRequired => (
                StatusCode::UNAUTHORIZED,
                "/problems/login-required",
                "Anmeldung erforderlich",
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "/problems/forbidden",
                "Keine Berechtigung",
            ),
            Self::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                "/problems/foreign-origin",
                "Anfrage von fremder Herkunft abgelehnt",
            ),
            Self::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "/problems/not-found",
                "Nicht gefunden",
            ),
            Self::InvalidLink => (
                StatusCode::NOT_FOUND,
                "/problems/invalid-link",
                "Der Link ist ungültig",
            ),
            Self::ExpiredLink => (
                StatusCode::GONE,
                "/problems/expired-link",
                "Der Link ist abgelaufen",
            ),
            Self::LinkReadOnly { .. } => (
                StatusCode::FORBIDDEN,
                "/problems/link-read-only",
                "Der Termin ist vorbei",
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/too-large",
                "Anfrage zu groß",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Falsches Datenformat",
            ),
            Self::FileTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/file-too-large",
                "Datei zu groß",
            ),
            Self::FileTypeRefused(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/file-type-refused",
                "Dateityp nicht angenommen",
            ),
            Self::FileTypeMismatch(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/file-type-mismatch",
                "Dateiinhalt passt nicht zum Dateityp",
            ),
            Self::FileContentRefused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/file-content-refused",
                "Dateiinhalt nicht angenommen",
            ),
            Self::InvalidFields(_) | Self::InvalidData(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-input",
                "Ungültige Eingaben",
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "/problems/request-timeout",
                "Zeitüberschreitung",
            ),
            Self::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/rate-limited",
                "Zu viele Anfragen",
            ),
            Self::BookingCap(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/booking-cap",
                "Zu viele Buchungen",
            ),
            Self::TooManyLiveStreams => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/too-many-live-streams",
                "Zu viele Live-Ansichten",
            ),
            Self::Refused(e) => refusal(e),
            Self::Payment(e) => payment_problem(e),
            Self::CaseSystem { .. } => (
                StatusCode::BAD_GATEWAY,
                "/problems/case-system",
                "Übergabe an das Fachverfahren fehlgeschlagen",
            ),
            Self::Sms(_) => (
                StatusCode::BAD_GATEWAY,
                "/problems/sms",
                "SMS nicht gesendet",
            ),
            Self::SignOn { problem, .. } => problem.parts(),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/store-unavailable",
                "Der Dienst ist vorübergehend nicht verfügbar",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal",
                "Interner Fehler",
            ),
        }
    }

    /// The problem document: German title and detail, never an internal cause.
    pub fn problem(&self) -> Problem {
        let (status, kind, title) = self.problem_parts();
        let detail = match self {
            Self::BadRequest(d) | Self::NotFound(d) | Self::InvalidData(d) => d.clone(),
            Self::LoginRequired => "Bitte melden Sie sich an.".to_owned(),
            Self::Forbidden => {
                "Diese Funktion oder dieser Termin ist für Ihr Konto nicht freigegeben.".to_owned()
            }
            Self::ForeignOrigin => {
                "Änderungen sind nur über die Seiten dieses Dienstes möglich.".to_owned()
            }
            Self::InvalidLink => {
                "Bitte verwenden Sie den vollständigen Link aus Ihrer Terminbestätigung.".to_owned()
            }
            Self::ExpiredLink => {
                "Dieser Termin ist abgeschlossen; die Daten wurden gelöscht oder werden gelöscht."
                    .to_owned()
            }
            Self::LinkReadOnly { aftercare: false } => {
                "Über diesen Link können Sie Ihre Unterlagen weiter ansehen und herunterladen, \
                 aber nichts mehr ändern. Für ein neues Anliegen buchen Sie bitte einen neuen \
                 Termin."
                    .to_owned()
            }
            Self::LinkReadOnly { aftercare: true } => {
                "Bewertung und Zahlung sind bis einen Tag nach dem Termin möglich. Bitte wenden \
                 Sie sich an das Amt."
                    .to_owned()
            }
            Self::TooLarge => format!(
                "Eine Anfrage darf höchstens {} KiB groß sein.",
                crate::http::MAX_BODY_BYTES / 1024
            ),
            Self::UnsupportedMediaType => {
                "Bitte senden Sie die Daten als JSON (Content-Type: application/json).".to_owned()
            }
            Self::FileTooLarge(max) => format!(
                "Eine Datei darf höchstens {} groß sein.",
                crate::http::html::format::bytes(*max)
            ),
            Self::FileTypeRefused(d) => (*d).to_owned(),
            Self::FileTypeMismatch(d) => d.clone(),
            Self::FileContentRefused(d) => (*d).to_owned(),
            Self::InvalidFields(_) => "Bitte prüfen Sie die markierten Angaben.".to_owned(),
            Self::RequestTimeout => {
                "Die Anfrage hat zu lange gedauert. Bitte versuchen Sie es erneut.".to_owned()
            }
            Self::TooManyRequests(s) => {
                format!("Bitte warten Sie {s} Sekunden und versuchen Sie es dann erneut.")
            }
            Self::BookingCap(s) => format!(
                "Mit diesen Angaben sind heute keine weiteren Online-Buchungen möglich. Bitte \
                 versuchen Sie es in {} erneut oder vereinbaren Sie Ihren Termin telefonisch.",
                match s.div_ceil(3600) {
                    1 => "einer Stunde".to_owned(),
                    hours => format!("{hours} Stunden"),
                }
            ),
            Self::TooManyLiveStreams => format!(
                "Mit einer Anmeldung sind höchstens {} Live-Ansichten zugleich geöffnet. Bitte \
                 schließen Sie eine andere Ansicht (einen Tab oder ein Fenster mit dem \
                 Terminplan).",
                crate::http::staff::streams::PER_SESSION
            ),
            Self::Refused(e) => e.to_string(),
            Self::Payment(e) => e.to_string(),
            Self::CaseSystem { target, error } => error.german(target),
            Self::Sms(error) => error.german().to_owned(),
            Self::SignOn { problem, .. } => problem.detail().to_owned(),
            Self::Unavailable(_) => "Bitte versuchen Sie es in einigen Minuten erneut.".to_owned(),
            Self::Internal(_) => {
                "Die Anfrage konnte nicht bearbeitet werden. Bitte versuchen Sie es später erneut."
                    .to_owned()
            }
        };
        Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: Some(detail),
            errors: match self {
                Self::InvalidFields(errors) => errors.clone(),
                _ => vec![],
            },
            retry_after: match self {
                Self::TooManyRequests(s) | Self::BookingCap(s) => Some(*s),
                _ => None,
            },
        }
    }

    /// Marks `response` with the internal cause, if any, for the middleware to log.
    pub(crate) fn mark(&self, mut response: Response) -> Response {
        let cause = match self {
            Self::Internal(cause) | Self::Unavailable(cause) => Some(cause.clone()),
            Self::Payment(e) => e.cause().map(str::to_owned),
            Self::CaseSystem { target, error } => Some(format!("{target}: {error}")),
            Self::Sms(error) => Some(error.to_string()),
            Self::SignOn { cause, .. } => cause.clone(),
            _ => None,
        };
        if let Some(cause) = cause {
            response.extensions_mut().insert(LoggedCause(cause));
        }
        response
    }
}

/// Status, problem type and German title of each refusal of the workflow. No `_` arm: a new
/// refusal does not compile until it is given its own answer here.
pub fn refusal(error: &DomainError) -> (StatusCode, &'static str, &'static str) {
    use DomainError as D;
    const CONFLICT: StatusCode = StatusCode::CONFLICT;
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    const NOT_FOUND: StatusCode = StatusCode::NOT_FOUND;
    match error {
        // accounts
        D::AccountExists => (
            CONFLICT,
            "/problems/account-exists",
            "Konto existiert bereits",
        ),
        D::ClerkWithoutDepartment => (
            INVALID,
            "/problems/department-missing",
            "Bereich der Sachbearbeitung fehlt",
        ),
        D::DepartmentsOnlyForClerks => (
            INVALID,
            "/problems/departments-only-for-clerks",
            "Bereiche nur für die Sachbearbeitung",
        ),
        D::LoginRefused => (
            StatusCode::UNAUTHORIZED,
            "/problems/login-refused",
            "Anmeldung fehlgeschlagen",
        ),
        D::AccountLocked => (
            StatusCode::LOCKED,
            "/problems/account-locked",
            "Konto vorübergehend gesperrt",
        ),
        D::UnknownAccount => (NOT_FOUND, "/problems/unknown-account", "Unbekanntes Konto"),
        D::AccountDisabled => (
            StatusCode::FORBIDDEN,
            "/problems/account-disabled",
            "Konto deaktiviert",
        ),
        D::AlreadyDeactivated => (
            CONFLICT,
            "/problems/already-deactivated",
            "Konto bereits deaktiviert",
        ),
        D::NotDeactivated => (
            CONFLICT,
            "/problems/not-deactivated",
            "Konto nicht deaktiviert",
        ),
        D::NotLocked => (CONFLICT, "/problems/not-locked", "Konto nicht gesperrt"),
        D::LastAdmin => (CONFLICT, "/problems/last-admin", "Letztes Verwaltungskonto"),
        D::DirectoryAccount => (
            CONFLICT,
            "/problems/directory-account",
            "Konto des Verzeichnisdienstes",
        ),
        D::LocalAccountExists => (
            CONFLICT,
            "/problems/local-account-exists",
            "Konto mit Passwort vorhanden",
        ),
        D::WrongPassword => (
            INVALID,
            "/problems/wrong-password",
            "Bisheriges Passwort falsch",
        ),
        D::PasswordLinkInvalid => (
            NOT_FOUND,
            "/problems/password-link-invalid",
            "Link zum Setzen des Passworts ungültig",
        ),
        D::PasswordLinkExpired => (
            StatusCode::GONE,
            "/problems/password-link-expired",
            "Link zum Setzen des Passworts abgelaufen",
        ),
        // booking
        D::NoServices => (INVALID, "/problems/no-service", "Kein Anliegen gewählt"),
        D::UnknownService(_) => (INVALID, "/problems/unknown-service", "Unbekanntes Anliegen"),
        D::UnknownDepartment(_) => (
            INVALID,
            "/problems/unknown-department",
            "Unbekannter Bereich",
        ),
        D::ServiceOfOtherDepartment(_) => (
            INVALID,
            "/problems/other-department",
            "Anliegen eines anderen Bereichs",
        ),
        D::NotOfferedOnline(_) => (
            INVALID,
            "/problems/not-offered-online",
            "Anliegen nicht per Video",
        ),
        D::DuplicateService(_) => (
            INVALID,
            "/problems/duplicate-service",
            "Anliegen doppelt gewählt",
        ),
        D::NotCombinable(..) => (
            INVALID,
            "/problems/not-combinable",
            "Anliegen nicht kombinierbar",
        ),
        D::OnlineBookingNotOffered => (
            INVALID,
            "/problems/invitation-only",
            "Termine nur auf Einladung",
        ),
        D::ChannelNotOffered => (
            INVALID,
            "/problems/channel-not-offered",
            "Buchungsweg nicht angeboten",
        ),
        D::SlotInPast | D::OutsideOpeningHours => {
            (INVALID, "/problems/invalid-slot", "Zeitpunkt nicht buchbar")
        }
        D::SlotTaken | D::AlreadyBooked => {
            (CONFLICT, "/problems/slot-taken", "Termin nicht mehr frei")
        }
        D::AccessExpiresTooEarly => (
            INVALID,
            "/problems/access-too-short",
            "Zugangslink zu kurz gültig",
        ),
        // appointment life cycle
        D::UnknownAppointment => (
            NOT_FOUND,
            "/problems/unknown-appointment",
            "Termin nicht gefunden",
        ),
        D::AlreadyCancelled | D::AppointmentFinished => (
            CONFLICT,
            "/problems/appointment-closed",
            "Termin kann nicht mehr geändert werden",
        ),
        D::NotYetStarted => (
            CONFLICT,
            "/problems/not-yet-started",
            "Termin hat noch nicht begonnen",
        ),
        // session
        D::UnknownSession => (
            NOT_FOUND,
            "/problems/unknown-session",
            "Videositzung nicht gefunden",
        ),
        D::SessionAlreadyOpen => (
            CONFLICT,
            "/problems/session-open",
            "Videositzung besteht bereits",
        ),
        D::SessionEnded => (CONFLICT, "/problems/session-ended", "Videositzung beendet"),
        D::CitizenNotWaiting => (
            CONFLICT,
            "/problems/citizen-not-waiting",
            "Niemand im Warteraum",
        ),
        D::PrivacyNoticeNotAccepted => (
            CONFLICT,
            "/problems/privacy-notice",
            "Datenschutzhinweis nicht bestätigt",
        ),
        D::AlreadyAdmitted => (
            CONFLICT,
            "/problems/already-admitted",
            "Bereits eingelassen",
        ),
        D::NotAdmitted => (CONFLICT, "/problems/not-admitted", "Noch nicht eingelassen"),
        D::RemovedFromSession => (
            StatusCode::FORBIDDEN,
            "/problems/removed-from-session",
            "Aus der Sitzung entfernt",
        ),
        D::IdentityNotVerified => (
            CONFLICT,
            "/problems/identity-not-verified",
            "Identität nicht geprüft",
        ),
        D::UnknownDocumentType => (
            INVALID,
            "/problems/unknown-document-type",
            "Ausweisart nicht angenommen",
        ),
        D::UnknownSecurityFeature => (
            INVALID,
            "/problems/unknown-security-feature",
            "Unbekanntes Sicherheitsmerkmal",
        ),
        D::TooFewSecurityFeatures => (
            INVALID,
            "/problems/too-few-security-features",
            "Zu wenige Sicherheitsmerkmale geprüft",
        ),
        D::SignatureMissing => (
            CONFLICT,
            "/problems/signature-missing",
            "Unterschrift fehlt",
        ),
        D::UnknownDocument => (
            NOT_FOUND,
            "/problems/unknown-document",
            "Dokument nicht gefunden",
        ),
        D::MediaTypeNotAllowed => (
            INVALID,
            "/problems/media-type-not-allowed",
            "Dateityp nicht erlaubt",
        ),
        D::InvalidSha256 => (INVALID, "/problems/invalid-sha256", "Ungültige Prüfsumme"),
        D::ScoreOutOfRange => (INVALID, "/problems/score", "Bewertung ungültig"),
        D::FeedbackAlreadyGiven => (
            CONFLICT,
            "/problems/feedback-given",
            "Feedback bereits abgegeben",
        ),
        D::FeedbackBeforeEnd => (
            CONFLICT,
            "/problems/feedback-too-early",
            "Feedback erst nach dem Gespräch",
        ),
        // forms
        D::UnknownForm => (
            NOT_FOUND,
            "/problems/unknown-form",
            "Formular nicht gefunden",
        ),
        D::UnknownTemplate => (
            INVALID,
            "/problems/unknown-template",
            "Unbekannte Formularvorlage",
        ),
        D::FormAlreadyStarted => (
            CONFLICT,
            "/problems/form-started",
            "Formular besteht bereits",
        ),
        D::FormLocked => (CONFLICT, "/problems/form-locked", "Formular gesperrt"),
        D::UnknownField(_) => (INVALID, "/problems/unknown-field", "Unbekanntes Feld"),
        D::InvalidFieldValue { .. } => (INVALID, "/problems/invalid-value", "Ungültiger Wert"),
        D::RequiredFieldEmpty(_) => (INVALID, "/problems/required-field", "Pflichtfeld leer"),
        D::SignatureMethodNotOffered(_) => (
            INVALID,
            "/problems/signature-method",
            "Unterschriftsart nicht angeboten",
        ),
        D::SignatureNotRequested => (
            CONFLICT,
            "/problems/signature-not-requested",
            "Keine Unterschrift angefordert",
        ),
        D::NoTan => (CONFLICT, "/problems/no-tan", "Keine TAN"),
        D::TanExpired => (CONFLICT, "/problems/tan-expired", "TAN abgelaufen"),
        D::TanUsed => (CONFLICT, "/problems/tan-used", "TAN bereits verwendet"),
        D::TanLocked => (CONFLICT, "/problems/tan-locked", "TAN gesperrt"),
        D::TanNotAccepted => (CONFLICT, "/problems/tan-not-accepted", "TAN fehlt"),
        D::FormChangedWhileSigning => (
            CONFLICT,
            "/problems/form-changed",
            "Formular inzwischen geändert",
        ),
        // payment
        D::NothingToPay => (CONFLICT, "/problems/nothing-to-pay", "Keine Gebühren"),
        D::PaymentAlreadyRequested => (
            CONFLICT,
            "/problems/payment-requested",
            "Zahlung besteht bereits",
        ),
        D::UnknownPayment => (
            NOT_FOUND,
            "/problems/unknown-payment",
            "Zahlung nicht gefunden",
        ),
        D::PaymentMethodNotOffered => (
            INVALID,
            "/problems/payment-method",
            "Zahlungsart nicht angeboten",
        ),
        D::PaymentMethodMissing => (
            CONFLICT,
            "/problems/payment-method-missing",
            "Zahlungsart fehlt",
        ),
        D::PaymentNotAuthorized => (
            CONFLICT,
            "/problems/payment-not-authorized",
            "Zahlung nicht freigegeben",
        ),
        D::AlreadyCaptured => (
            CONFLICT,
            "/problems/already-captured",
            "Zahlung bereits eingezogen",
        ),
        D::PaymentClosed => (
            CONFLICT,
            "/problems/payment-closed",
            "Zahlung abgeschlossen",
        ),
        D::RefundTooHigh => (INVALID, "/problems/refund-too-high", "Erstattung zu hoch"),
        D::PaymentInProgress => (
            CONFLICT,
            "/problems/payment-in-progress",
            "Zahlung läuft bereits",
        ),
        D::UnknownPaymentTransaction => (
            CONFLICT,
            "/problems/payment-transaction",
            "Transaktion gehört nicht zur Zahlung",
        ),
        // data subject
        D::UnknownSubject => (
            NOT_FOUND,
            "/problems/unknown-subject",
            "Betroffene Person nicht gefunden",
        ),
        D::PurgeNotDue(_) => (CONFLICT, "/problems/purge-not-due", "Löschung nicht fällig"),
        D::PurgeNotScheduled => (
            CONFLICT,
            "/problems/purge-not-scheduled",
            "Löschung nicht angesetzt",
        ),
        D::AlreadyPurged => (CONFLICT, "/problems/already-purged", "Bereits gelöscht"),
        D::NotYetPurged => (
            CONFLICT,
            "/problems/not-yet-purged",
            "Löschung nicht ausgeführt",
        ),
    }
}

/// Status, problem type and German title of each payment failure. The types the provider's
/// protocol names are the protocol's own ([`wire`]), so that the HTTP adapter reads the
/// sandbox's refusals by them.
pub fn payment_problem(error: &PaymentError) -> (StatusCode, &'static str, &'static str) {
    use PaymentError as P;
    match error {
        P::PurposeTooLong(_) | P::PurposeInvalid => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/payment-purpose",
            "Verwendungszweck ungültig",
        ),
        P::InvalidRequest(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/payment-request",
            "Zahlung unvollständig",
        ),
        P::InvalidReference => (
            StatusCode::BAD_REQUEST,
            "/problems/payment-reference",
            "Transaktionsnummer ungültig",
        ),
        P::BadSignature => (
            StatusCode::UNAUTHORIZED,
            "/problems/payment-signature",
            "Signatur ungültig",
        ),
        P::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            "/problems/payment-unauthorized",
            "Zugang zum Zahlungsdienst verweigert",
        ),
        P::UnknownTransaction => (
            StatusCode::NOT_FOUND,
            wire::PROBLEM_UNKNOWN,
            "Transaktion unbekannt",
        ),
        P::NotApproved => (
            StatusCode::CONFLICT,
            wire::PROBLEM_NOT_APPROVED,
            "Zahlung nicht genehmigt",
        ),
        P::KeyUsed => (
            StatusCode::CONFLICT,
            wire::PROBLEM_KEY_USED,
            "Zahlung anderweitig eingezogen",
        ),
        P::Unavailable(_) => (
            StatusCode::BAD_GATEWAY,
            "/problems/payment-unavailable",
            "Zahlungsdienst nicht erreichbar",
        ),
        P::Protocol(_) => (
            StatusCode::BAD_GATEWAY,
            "/problems/payment-protocol",
            "Zahlungsdienst antwortet unerwartet",
        ),
    }
}

impl From<PaymentError> for Error {
    fn from(e: PaymentError) -> Self {
        Self::Payment(e)
    }
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        Self::Refused(e)
    }
}

impl From<BusError> for Error {
    fn from(e: BusError) -> Self {
        match e {
            BusError::Refused(e) => Self::Refused(e),
            BusError::Store(e) => Self::Unavailable(e.to_string()),
            // The bus queues commands on the same streams; what still collides after all its
            // tries is another process's load, which the caller can only wait out.
            BusError::Contention(n) => Self::Unavailable(format!("contention after {n} attempts")),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<ReadModelError> for Error {
    fn from(e: ReadModelError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<crate::app::accounts::AccountError> for Error {
    fn from(e: crate::app::accounts::AccountError) -> Self {
        use crate::app::accounts::AccountError as A;
        use videoamt_adapters::passwords::PasswordError as P;
        match e {
            A::Bus(e) => e.into(),
            A::Store(e) => e.into(),
            // The rules of a new password are the caller's to name beside its field.
            A::Password(e @ (P::TooShort | P::TooLong)) => Self::invalid_fields(vec![FieldError {
                field: "password".to_owned(),
                message: e.to_string(),
            }]),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::app::system::LoadError> for Error {
    fn from(e: crate::app::system::LoadError) -> Self {
        match e {
            crate::app::system::LoadError::Store(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let response = self.problem().into_response();
        self.mark(response)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use videoamt_core::tenant::SignatureMethod;

    use super::*;

    /// One of each refusal. The exhaustive match in [`refusal`] makes a new variant fail to
    /// compile; this list makes it fail here until it is given a German title.
    fn every_refusal() -> Vec<DomainError> {
        use DomainError as D;
        let service = || "personalausweis".into();
        vec![
            D::AccountExists,
            D::ClerkWithoutDepartment,
            D::DepartmentsOnlyForClerks,
            D::LoginRefused,
            D::AccountLocked,
            D::UnknownAccount,
            D::AccountDisabled,
            D::AlreadyDeactivated,
            D::NotDeactivated,
            D::NotLocked,
            D::LastAdmin,
            D::DirectoryAccount,
            D::LocalAccountExists,
            D::WrongPassword,
            D::PasswordLinkInvalid,
            D::PasswordLinkExpired,
            D::NoServices,
            D::UnknownService(service()),
            D::UnknownDepartment("buergerbuero".into()),
            D::ServiceOfOtherDepartment(service()),
            D::NotOfferedOnline(service()),
            D::DuplicateService(service()),
            D::NotCombinable(service(), service()),
            D::OnlineBookingNotOffered,
            D::ChannelNotOffered,
            D::SlotInPast,
            D::OutsideOpeningHours,
            D::SlotTaken,
            D::AlreadyBooked,
            D::AccessExpiresTooEarly,
            D::UnknownAppointment,
            D::AlreadyCancelled,
            D::AppointmentFinished,
            D::NotYetStarted,
            D::UnknownSession,
            D::SessionAlreadyOpen,
            D::SessionEnded,
            D::CitizenNotWaiting,
            D::PrivacyNoticeNotAccepted,
            D::AlreadyAdmitted,
            D::NotAdmitted,
            D::RemovedFromSession,
            D::IdentityNotVerified,
            D::UnknownDocumentType,
            D::UnknownSecurityFeature,
            D::TooFewSecurityFeatures,
            D::SignatureMissing,
            D::UnknownDocument,
            D::MediaTypeNotAllowed,
            D::InvalidSha256,
            D::ScoreOutOfRange,
            D::FeedbackAlreadyGiven,
            D::FeedbackBeforeEnd,
            D::UnknownForm,
            D::UnknownTemplate,
            D::FormAlreadyStarted,
            D::FormLocked,
            D::UnknownField("name".into()),
            D::InvalidFieldValue {
                field: "name".into(),
                reason: "zu lang",
            },
            D::RequiredFieldEmpty("name".into()),
            D::SignatureMethodNotOffered(SignatureMethod::Touchpad),
            D::SignatureNotRequested,
            D::NoTan,
            D::TanExpired,
            D::TanUsed,
            D::TanLocked,
            D::TanNotAccepted,
            D::FormChangedWhileSigning,
            D::NothingToPay,
            D::PaymentAlreadyRequested,
            D::UnknownPayment,
            D::PaymentMethodNotOffered,
            D::PaymentMethodMissing,
            D::PaymentNotAuthorized,
            D::AlreadyCaptured,
            D::PaymentClosed,
            D::RefundTooHigh,
            D::PaymentInProgress,
            D::UnknownPaymentTransaction,
            D::UnknownSubject,
            D::PurgeNotDue("2027-03-01".into()),
            D::PurgeNotScheduled,
            D::AlreadyPurged,
            D::NotYetPurged,
        ]
    }

    #[test]
    fn every_refusal_has_its_own_german_answer() {
        let refusals = every_refusal();
        let mut kinds = std::collections::BTreeMap::new();
        for e in &refusals {
            let problem = Error::Refused(e.clone()).problem();
            assert!(
                matches!(problem.status, 401 | 403 | 404 | 409 | 410 | 422 | 423),
                "{e:?}: {}",
                problem.status
            );
            // German, not the generic fallback the old catch-all arm gave.
            assert_ne!(problem.title, "Anfrage nicht möglich", "{e:?}");
            assert!(
                problem.title.chars().next().is_some_and(char::is_uppercase),
                "{e:?}"
            );
            assert!(problem.kind.starts_with("/problems/"), "{e:?}");
            assert_eq!(problem.detail.as_deref(), Some(e.to_string().as_str()));
            kinds
                .entry(problem.kind)
                .or_insert_with(Vec::new)
                .push(e.clone());
        }
        // Only refusals that mean the same to a citizen share an answer.
        for (kind, shared) in &kinds {
            assert!(shared.len() <= 2, "{kind} answers {shared:?}");
        }
        assert!(kinds.len() >= 50, "{} kinds", kinds.len());
    }

    #[test]
    fn internal_causes_stay_out_of_the_document() {
        let error = Error::internal("connection reset by 10.0.0.7");
        let problem = error.problem();
        assert_eq!(problem.status, 500);
        assert!(
            !serde_json::to_string(&problem)
                .unwrap_or_default()
                .contains("10.0.0.7")
        );
        let response = error.into_response();
        assert_eq!(
            response
                .extensions()
                .get::<LoggedCause>()
                .map(|c| c.0.as_str()),
            Some("connection reset by 10.0.0.7")
        );
    }

    #[test]
    fn every_payment_failure_has_a_german_answer_and_keeps_its_cause_out() {
        let failures = [
            PaymentError::PurposeTooLong(28),
            PaymentError::PurposeInvalid,
            PaymentError::InvalidRequest("x"),
            PaymentError::InvalidReference,
            PaymentError::BadSignature,
            PaymentError::Unauthorized,
            PaymentError::UnknownTransaction,
            PaymentError::NotApproved,
            PaymentError::KeyUsed,
            PaymentError::Unavailable("connect 10.0.0.9: refused".into()),
            PaymentError::Protocol("10.0.0.9 said 418".into()),
        ];
        for e in failures {
            let error = Error::from(e.clone());
            let problem = error.problem();
            assert!(problem.kind.starts_with("/problems/payment-"), "{e:?}");
            assert!(problem.title.chars().next().is_some_and(char::is_uppercase));
            let json = serde_json::to_string(&problem).unwrap_or_default();
            assert!(!json.contains("10.0.0.9"), "{json}");
            let logged = error
                .into_response()
                .extensions()
                .get::<LoggedCause>()
                .is_some();
            assert_eq!(logged, e.cause().is_some(), "{e:?}");
        }
        assert_eq!(
            Error::from(PaymentError::BadSignature).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Error::from(PaymentError::PurposeTooLong(28)).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn a_failed_handover_names_the_case_system_and_keeps_its_cause_out() {
        let error = Error::CaseSystem {
            target: "Nationales Waffenregister".into(),
            error: CaseSystemError::Unavailable("connect 10.0.0.9: refused".into()),
        };
        let problem = error.problem();
        assert_eq!(problem.status, 502);
        let detail = problem.detail.clone().unwrap_or_default();
        assert!(detail.contains("„Nationales Waffenregister“"), "{detail}");
        let json = serde_json::to_string(&problem).unwrap_or_default();
        assert!(!json.contains("10.0.0.9"), "{json}");
        let response = error.into_response();
        let logged = response.extensions().get::<LoggedCause>();
        assert!(
            logged.is_some_and(|c| c.0.contains("10.0.0.9")),
            "{logged:?}"
        );
    }

    #[test]
    fn contention_is_never_a_conflict_for_the_caller() {
        let error = Error::from(BusError::Contention(32));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
