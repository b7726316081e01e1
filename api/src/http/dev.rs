//! `/dev/outbox`: the mails and text messages the embedded default mode wrote instead of
//! sending them (the SMS sandbox files its messages in the same folder). The mails hold the
//! appointments' links, so it exists only on a server nobody else reaches, for trying the
//! product on one machine: `serve` sets it for `--dev-outbox` or the embedded default mode (no
//! SMTP server configured), and only on a local server (ADR 0026).

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use maud::html;

use super::html::page;
use crate::http::AppState;
use crate::http::error::Error;

fn outbox(state: &AppState) -> Option<&PathBuf> {
    state.dev_outbox.as_ref()
}

/// What the outbox holds, by file name: a mail or a text message.
const KINDS: [(&str, &str); 2] = [(".eml", "Mail"), (".sms.txt", "SMS")];

fn kind(file: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(suffix, _)| file.ends_with(suffix))
        .map(|(_, kind)| *kind)
}

/// Every mail and SMS under `dir/{subject}/`, newest first: (subject, file, bytes).
fn list(dir: &Path) -> Vec<(String, String, u64, std::time::SystemTime)> {
    let mut out = vec![];
    let Ok(subjects) = std::fs::read_dir(dir) else {
        return out;
    };
    for subject in subjects.flatten() {
        let Ok(files) = std::fs::read_dir(subject.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if kind(&name).is_none() {
                continue;
            }
            let meta = file.metadata().ok();
            out.push((
                subject.file_name().to_string_lossy().into_owned(),
                name,
                meta.as_ref().map_or(0, std::fs::Metadata::len),
                meta.and_then(|m| m.modified().ok())
                    .unwrap_or(std::time::UNIX_EPOCH),
            ));
        }
    }
    out.sort_by(|a, b| b.3.cmp(&a.3).then_with(|| a.1.cmp(&b.1)));
    out
}

pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let Some(dir) = outbox(&state).cloned() else {
        return Error::not_found("Diese Adresse gibt es nicht.").into_response();
    };
    let mails = tokio::task::spawn_blocking(move || list(&dir))
        .await
        .unwrap_or_default();
    let body = html! {
        p class="notice" {
            "Ohne Mailserver (" code { "VIDEOAMT_SMTP_URL" } ") legt der Dienst die Mails hier ab, \
             statt sie zu versenden; ohne SMS-Gateway (" code { "VIDEOAMT_SMS_URL" } ") ebenso \
             die SMS mit der Handy-TAN."
        }
        @if mails.is_empty() {
            p { "Noch keine Mails und keine SMS." }
        } @else {
            table {
                caption { "Abgelegte Mails und SMS, neueste zuerst" }
                thead {
                    tr { th scope="col" { "Art" } th scope="col" { "Datei" } th scope="col" { "Größe" } }
                }
                tbody {
                    @for (subject, file, bytes, _) in &mails {
                        tr {
                            td { (kind(file).unwrap_or("")) }
                            td { a href={ "/dev/outbox/" (subject) "/" (file) } { (file) } }
                            td { (bytes) " Bytes" }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, "Postausgang (Entwicklung)", body)
}

fn safe(part: &str, suffix: &str) -> bool {
    !part.is_empty()
        && part.len() <= 200
        && part.ends_with(suffix)
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        && !part.starts_with('.')
}

pub(crate) async fn mail(
    State(state): State<AppState>,
    UrlPath((subject, file)): UrlPath<(String, String)>,
) -> Response {
    let Some(dir) = outbox(&state) else {
        return Error::not_found("Diese Adresse gibt es nicht.").into_response();
    };
    if !safe(&subject, "") || !safe(&file, "") || kind(&file).is_none() {
        return Error::not_found("Diese Mail gibt es nicht.").into_response();
    }
    let path = dir.join(&subject).join(&file);
    let read = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("read aborted")));
    match read {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => Error::not_found("Diese Mail gibt es nicht.").into_response(),
    }
}
