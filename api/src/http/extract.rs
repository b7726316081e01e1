//! Extractors whose rejections are problem documents with German titles, never axum's plain
//! text.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::error::Error;

/// `axum::Json` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType,
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::TooLarge
        }
        JsonRejection::JsonSyntaxError(_) => {
            Error::bad_request("Die Anfrage ist kein gültiges JSON.")
        }
        // serde's text names the field and the expected type; it never echoes values.
        JsonRejection::JsonDataError(e) => Error::InvalidData(format!(
            "Die Angaben passen nicht zum erwarteten Format: {}",
            e.body_text()
        )),
        _ => Error::bad_request("Die Anfrage konnte nicht gelesen werden."),
    }
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Error::bad_request(
                format!("Die Suchparameter sind ungültig: {}", e.body_text()),
            )),
            Err(_) => Err(Error::bad_request("Die Suchparameter sind ungültig.")),
        }
    }
}
