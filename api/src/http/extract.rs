//! Extractors whose rejections are problem documents (the JSON API) or German pages (the
//! pages' forms and queries), never axum's plain text. A rejection names the field and the
//! kind of value it takes, never the value sent: serde's messages quote the input
//! (`invalid type: string "…"`), so none of their text is passed on (ADR 0025).

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::http::error::Error;
use crate::http::html::problem_page;

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
        JsonRejection::JsonDataError(e) => Error::InvalidData(wrong_field::<serde_json::Error>(e)),
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
            Err(rejection) => Err(query_problem(&rejection)),
        }
    }
}

fn query_problem(rejection: &QueryRejection) -> Error {
    match rejection {
        QueryRejection::FailedToDeserializeQueryString(e) => {
            Error::bad_request(wrong_field::<serde::de::value::Error>(e))
        }
        _ => Error::bad_request("Die Suchparameter sind ungültig."),
    }
}

/// `axum::extract::Query` for pages: a rejection is a German page.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_page(&query_problem(&rejection))),
        }
    }
}

/// `axum::Form` for pages: a rejection is a German page.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(problem_page(&form_problem(&rejection))),
        }
    }
}

fn form_problem(rejection: &FormRejection) -> Error {
    match rejection {
        FormRejection::FailedToDeserializeFormBody(e) => {
            Error::InvalidData(wrong_field::<serde::de::value::Error>(e))
        }
        FormRejection::FailedToDeserializeForm(e) => {
            Error::bad_request(wrong_field::<serde::de::value::Error>(e))
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge,
        _ => Error::bad_request("Das Formular konnte nicht gelesen werden."),
    }
}

/// What a deserializer refused, in German: the field's path and the kind of value it takes,
/// found among the rejection's sources (axum keeps serde_path_to_error's error there). Only
/// names of the target type and fixed German words are used, never the message's text.
fn wrong_field<E: std::error::Error + 'static>(
    rejection: &(dyn std::error::Error + 'static),
) -> String {
    let mut source = Some(rejection);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<serde_path_to_error::Error<E>>() {
            return explain(&path_of(found.path()), &found.inner().to_string());
        }
        source = e.source();
    }
    "Die Angaben passen nicht zum erwarteten Format.".to_owned()
}

/// A name as the types of the requests spell their fields and variants. Anything else is not
/// repeated: it came from the request.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `contact.email`, `services[1]`; a segment that is not a name is shown as `…`.
fn path_of(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_name(name) { name } else { "…" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('…');
            }
        }
    }
    out
}

/// The German sentence for serde's `message` at `path`. serde's own messages have fixed
/// shapes (`missing field \`f\``, `invalid type: …, expected X`); what a type's own
/// deserializer says may hold the input and is not used.
fn explain(path: &str, message: &str) -> String {
    let message = message.rsplit_once(" at line ").map_or(message, |(m, _)| m);
    let subject = |path: &str| {
        if path.is_empty() {
            "Die Anfrage".to_owned()
        } else {
            format!("Die Angabe „{path}“")
        }
    };
    let nested = |field: &str| {
        let field = if is_name(field) { field } else { "…" };
        if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('`'))
    };
    if let Some(field) = quoted("missing field `") {
        return format!("Die Angabe „{}“ fehlt.", nested(field));
    }
    if let Some(field) = quoted("duplicate field `") {
        return format!("Die Angabe „{}“ kommt doppelt vor.", nested(field));
    }
    if message.starts_with("unknown field ") {
        return format!("{} enthält eine unbekannte Angabe.", subject(path));
    }
    let serde_shaped = [
        "invalid type: ",
        "invalid value: ",
        "invalid length ",
        "unknown variant ",
    ]
    .iter()
    .any(|p| message.starts_with(p));
    let expected = message
        .rsplit_once(", expected ")
        .filter(|_| serde_shaped)
        .and_then(|(_, e)| kind(e));
    match expected {
        Some(kind) => format!(
            "{} hat nicht das erwartete Format: erwartet wird {kind}.",
            subject(path)
        ),
        None => format!("{} hat nicht das erwartete Format.", subject(path)),
    }
}

/// serde's "expected …" (the target type's own words) as a German kind of value.
fn kind(expected: &str) -> Option<String> {
    let e = expected.trim();
    let integers = [
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "usize",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "isize",
        "an integer",
    ];
    let kind = match e {
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "Text".to_owned(),
        "a boolean" | "bool" => "true oder false".to_owned(),
        _ if integers.contains(&e) => "eine ganze Zahl".to_owned(),
        "f32" | "f64" | "a float" | "a number" => "eine Zahl".to_owned(),
        _ if e.starts_with("a sequence")
            || e.starts_with("a tuple")
            || e.starts_with("an array") =>
        {
            "eine Liste".to_owned()
        }
        _ if e.starts_with("struct ") || e == "a map" => "ein Objekt".to_owned(),
        _ if e.starts_with("one of ") || e.starts_with('`') => {
            // The variants serde lists in backticks are the type's own.
            let names: Vec<&str> = e.split('`').filter(|s| is_name(s)).collect();
            if names.is_empty() {
                return None;
            }
            format!("einer der Werte {}", names.join(", "))
        }
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serdes_messages_become_german_without_the_input() {
        assert_eq!(
            explain(
                "contact.email",
                "invalid type: string \"GEHEIM\", expected u32 at line 1 column 30"
            ),
            "Die Angabe „contact.email“ hat nicht das erwartete Format: erwartet wird eine ganze Zahl."
        );
        assert_eq!(
            explain("", "missing field `start`"),
            "Die Angabe „start“ fehlt."
        );
        let variant = explain("kind", "unknown variant `GEHEIM`, expected `a` or `b`");
        assert_eq!(
            variant,
            "Die Angabe „kind“ hat nicht das erwartete Format: erwartet wird einer der Werte a, b."
        );
        let custom = explain("tenant", "not a tenant: GEHEIM, expected something");
        assert!(!custom.contains("GEHEIM"), "{custom}");
        let unknown = explain("", "unknown field `GEHEIM`, expected `a`");
        assert!(!unknown.contains("GEHEIM"), "{unknown}");
    }
}
