//! Extractors whose rejections are problem documents with German titles, never axum's plain
//! text.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::error::Problem;

/// `axum::Json` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
            "Falsches Datenformat",
        )
        .with_detail("Bitte senden Sie die Daten als JSON (Content-Type: application/json)."),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/too-large",
                "Anfrage zu groß",
            )
            .with_detail(format!(
                "Eine Anfrage darf höchstens {} KiB groß sein.",
                crate::http::MAX_BODY_BYTES / 1024
            ))
        }
        JsonRejection::JsonSyntaxError(_) => {
            Problem::bad_request("Die Anfrage ist kein gültiges JSON.")
        }
        JsonRejection::JsonDataError(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/invalid-input",
            "Ungültige Eingaben",
        )
        // serde's text names the field and the expected type; it never echoes values.
        .with_detail(format!(
            "Die Angaben passen nicht zum erwarteten Format: {}",
            e.body_text()
        )),
        _ => Problem::bad_request("Die Anfrage konnte nicht gelesen werden."),
    }
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "/problems/bad-request",
                "Ungültige Anfrage",
            )
            .with_detail(format!(
                "Die Suchparameter sind ungültig: {}",
                e.body_text()
            ))),
            Err(_) => Err(Problem::bad_request("Die Suchparameter sind ungültig.")),
        }
    }
}
