//! RFC 9457 problem documents: every error the API sends, with a German title.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use videoamt_adapters::bus::BusError;
use videoamt_core::domain::DomainError;

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

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: None,
            errors: vec![],
            retry_after: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The store is not answering; the operator finds the cause in the log.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "/problems/store-unavailable",
            "Der Dienst ist vorübergehend nicht verfügbar",
        )
        .with_detail("Bitte versuchen Sie es in einigen Minuten erneut.")
    }

    /// Something failed that the caller cannot fix; logged without request data.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/problems/internal",
            "Interner Fehler",
        )
        .with_detail(
            "Die Anfrage konnte nicht bearbeitet werden. Bitte versuchen Sie es später erneut.",
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "/problems/bad-request",
            "Ungültige Anfrage",
        )
        .with_detail(detail)
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/invalid-input",
            "Ungültige Eingaben",
        )
        .with_detail("Bitte prüfen Sie die markierten Angaben.");
        p.errors = errors;
        p
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/not-found",
            "Nicht gefunden",
        )
        .with_detail(detail)
    }

    /// A capability link that is malformed, forged or names nothing: one answer for all, so a
    /// guess learns nothing.
    pub fn invalid_link() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/invalid-link",
            "Der Link ist ungültig",
        )
        .with_detail("Bitte verwenden Sie den vollständigen Link aus Ihrer Terminbestätigung.")
    }

    pub fn expired_link() -> Self {
        Self::new(
            StatusCode::GONE,
            "/problems/expired-link",
            "Der Link ist abgelaufen",
        )
        .with_detail(
            "Dieser Termin ist abgeschlossen; die Daten wurden gelöscht oder werden gelöscht.",
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "/problems/rate-limited",
            "Zu viele Anfragen",
        )
        .with_detail(format!(
            "Bitte warten Sie {retry_after} Sekunden und versuchen Sie es dann erneut."
        ));
        p.retry_after = Some(retry_after);
        p
    }

    /// A staff page or endpoint without a valid session.
    pub fn login_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "/problems/login-required",
            "Anmeldung erforderlich",
        )
        .with_detail("Bitte melden Sie sich an.")
    }

    /// Logged in, but this is not for this role, department or municipality.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "/problems/forbidden",
            "Keine Berechtigung",
        )
        .with_detail("Diese Funktion oder dieser Termin ist für Ihr Konto nicht freigegeben.")
    }

    /// Unknown login or wrong password: one answer for both.
    pub fn login_refused() -> Self {
        Self::refused(&DomainError::LoginRefused)
    }

    pub fn foreign_origin() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "/problems/foreign-origin",
            "Anfrage von fremder Herkunft abgelehnt",
        )
        .with_detail("Änderungen sind nur über die Seiten dieses Dienstes möglich.")
    }

    /// A refusal of the workflow: its German message is the detail.
    pub fn refused(error: &DomainError) -> Self {
        use DomainError as D;
        let (status, kind, title) = match error {
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
            D::AccountExists => (
                StatusCode::CONFLICT,
                "/problems/account-exists",
                "Konto existiert bereits",
            ),
            D::SlotTaken | D::AlreadyBooked => (
                StatusCode::CONFLICT,
                "/problems/slot-taken",
                "Termin nicht mehr frei",
            ),
            D::UnknownAppointment => (
                StatusCode::NOT_FOUND,
                "/problems/unknown-appointment",
                "Termin nicht gefunden",
            ),
            D::AlreadyCancelled | D::AppointmentFinished => (
                StatusCode::CONFLICT,
                "/problems/appointment-closed",
                "Termin kann nicht mehr geändert werden",
            ),
            D::UnknownService(_) | D::UnknownDepartment(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/unknown-service",
                "Unbekanntes Anliegen",
            ),
            D::SlotInPast | D::OutsideOpeningHours => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-slot",
                "Zeitpunkt nicht buchbar",
            ),
            _ => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/refused",
                "Anfrage nicht möglich",
            ),
        };
        Self::new(status, kind, title).with_detail(error.to_string())
    }

    /// A failed command: refusals as such, everything else logged (without request data) and
    /// answered without internals.
    pub fn from_bus(error: BusError) -> Self {
        match error {
            BusError::Refused(e) => Self::refused(&e),
            BusError::Contention(_) => Self::new(
                StatusCode::CONFLICT,
                "/problems/contention",
                "Gleichzeitige Änderung",
            )
            .with_detail(
                "Die Daten wurden gerade anderweitig geändert. Bitte versuchen Sie es erneut.",
            ),
            BusError::Store(e) => {
                tracing::error!(error = %e, "store failed during a command");
                Self::store_unavailable()
            }
            other => {
                tracing::error!(error = %other, "command failed");
                Self::internal()
            }
        }
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
