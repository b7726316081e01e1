//! The page layout and the parts every page shares. Pages are maud templates: every value
//! put into one is escaped unless it is itself a template's output, so no page is assembled
//! from strings by hand.

pub(crate) mod charts;
pub(crate) mod format;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::http::error::{Error, Problem};

pub(crate) const STYLESHEET: &str = include_str!("../../../assets/videoamt.css");

/// A whole page around `body`.
pub(crate) fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    shell(status, title, None, &[], body)
}

/// A page with a navigation and scripts (`scripts`: paths under `/static/`, loaded as
/// modules; never inline, as the CSP allows only `script-src 'self'`).
pub(crate) fn shell(
    status: StatusCode,
    title: &str,
    nav: Option<Markup>,
    scripts: &[&str],
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="de" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Videoberatung" }
                link rel="stylesheet" href="/static/videoamt.css";
                @for script in scripts {
                    script type="module" src={ "/static/" (script) } {}
                }
            }
            body class=[nav.is_some().then_some("wide")] {
                header {
                    a class="skip" href="#inhalt" { "Zum Inhalt springen" }
                    p class="brand" { "Videoberatung" }
                    @if let Some(nav) = nav { (nav) }
                }
                main id="inhalt" {
                    h1 { (title) }
                    (body)
                }
                footer {
                    p {
                        "Videoberatung Ihrer Kommune. Ihre Daten werden nach Ablauf der \
                         Aufbewahrungsfrist gelöscht."
                    }
                }
            }
        }
    };
    (status, markup).into_response()
}

/// A page that moves on to `next` by itself (`Refresh`), with a link for the reader: a
/// navigation that starts on this site, where a redirect would still count as the other
/// site's (the Strict session cookie) or a form's (`form-action 'self'`), ADR 0022.
pub(crate) fn moving_on(title: &str, body: Markup, next: &str) -> Response {
    let mut response = page(StatusCode::OK, title, body);
    if let Ok(value) = format!("0; url={next}").parse() {
        response.headers_mut().insert("refresh", value);
    }
    response
}

/// Messages in an alert box, one paragraph each.
pub(crate) fn alert<'a>(messages: impl IntoIterator<Item = &'a str>) -> Markup {
    html! {
        div class="error" role="alert" {
            @for message in messages { p { (message) } }
        }
    }
}

/// A refusal's German detail and its field messages, in an alert box.
pub(crate) fn problem_alert(problem: &Problem) -> Markup {
    alert(
        std::iter::once(problem.detail.as_deref().unwrap_or(problem.title))
            .chain(problem.errors.iter().map(|e| e.message.as_str())),
    )
}

/// A refusal as a page: the problem's German title and detail, with its status.
pub(crate) fn problem_page(error: &Error) -> Response {
    let problem = error.problem();
    error.mark(page(error.status(), problem.title, problem_alert(&problem)))
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
