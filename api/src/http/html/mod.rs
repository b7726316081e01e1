//! The page layout and the formatting every page shares.

pub(crate) mod charts;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::error::Error;

pub(crate) const STYLESHEET: &str = include_str!("../../../assets/videoamt.css");

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    shell(status, title, "", "", body)
}

/// A page with a navigation (`nav`, already HTML) and scripts (`scripts`: paths under
/// `/static/`, loaded as modules; never inline).
pub(crate) fn shell(
    status: StatusCode,
    title: &str,
    nav: &str,
    scripts: &str,
    body: &str,
) -> Response {
    let wide = if nav.is_empty() {
        ""
    } else {
        " class=\"wide\""
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} – Videoberatung</title>\
         <link rel=\"stylesheet\" href=\"/static/videoamt.css\">{scripts}</head><body{wide}>\
         <header><a class=\"skip\" href=\"#inhalt\">Zum Inhalt springen</a>\
         <p class=\"brand\">Videoberatung</p>{nav}</header>\
         <main id=\"inhalt\"><h1>{t}</h1>{body}</main>\
         <footer><p>Videoberatung Ihrer Kommune. Ihre Daten werden nach Ablauf der \
         Aufbewahrungsfrist gelöscht.</p></footer></body></html>",
        t = esc(title)
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// A refusal as a page: the problem's German title and detail, with its status.
pub(crate) fn problem_page(error: &Error) -> Response {
    let problem = error.problem();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut body = format!(
        "<div class=\"error\" role=\"alert\"><p>{}</p>",
        esc(problem.detail.as_deref().unwrap_or(problem.title))
    );
    for e in &problem.errors {
        body.push_str(&format!("<p>{}</p>", esc(&e.message)));
    }
    body.push_str("</div>");
    error.mark(page(status, problem.title, &body))
}

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub(crate) fn local(rfc: &str) -> String {
    // "2026-11-24T09:00:00+01:00" -> "24.11.2026, 09:00 Uhr"
    let (date, rest) = rfc.split_once('T').unwrap_or((rfc, ""));
    let mut parts = date.split('-');
    let (y, m, d) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    format!("{d}.{m}.{y}, {} Uhr", rest.get(..5).unwrap_or(""))
}

pub(crate) fn euro(cents: u64) -> String {
    format!("{},{:02} €", cents / 100, cents % 100)
}
