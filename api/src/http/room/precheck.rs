//! The pre-call check (`/termin/{token}/technik`): browser support, camera and microphone with
//! a preview and a level meter, and the upload measured against this server. The browser
//! reports what it found; the server measures the upload itself and records only whether the
//! check passed and the measured figure (`PreCallCheckRecorded`).

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use maud::html;
use serde::{Deserialize, Serialize};
use videoamt_core::domain::session::SessionCommand;

use super::access;
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::PageQuery as Query;
use crate::http::html::{problem_page, shell};

/// The most a measurement may send: enough for a few seconds at the minimum rates, and a
/// bound on what one request costs the server.
pub(crate) const MAX_MEASURE_BYTES: usize = 16 * 1024 * 1024;

/// `GET /termin/{token}/technik`.
pub(crate) async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let found = match crate::http::citizen::service::by_token(&state, &token).await {
        Ok(found) => found,
        Err(e) => return problem_page(&e),
    };
    let t = &found.tenant;
    let support = format!("{} ({})", t.support.phone, t.support.hours);
    let min = t.min_upload_mbit;
    let body = html! {
        div id="technik" data-measure={ "/termin/" (token) "/technik/messung" }
            data-min-kbit=(u64::from(min) * 1000) {
            p {
                "Hier prüfen Sie vor dem Termin, ob Browser, Kamera, Mikrofon und Ihre \
                 Internetverbindung für die Videoberatung reichen. Gespeichert wird nur, ob die \
                 Prüfung bestanden ist, und die gemessene Upload-Geschwindigkeit."
            }
            noscript {
                p class="field-error" {
                    "Für die Videoberatung braucht Ihr Browser JavaScript. Bitte schalten Sie \
                     es ein. Fragen beantworten wir unter " (support) "."
                }
            }
            ol class="checks" {
                li id="check-browser" {
                    strong { "Browser: " } span class="result" { "wird geprüft …" }
                    p class="advice" hidden {
                        "Ihr Browser unterstützt keine Videoverbindung (WebRTC). Bitte nutzen Sie \
                         einen aktuellen Chrome, Edge, Firefox oder Safari."
                    }
                }
                li id="check-geraete" {
                    strong { "Kamera und Mikrofon: " } span class="result" { "noch nicht geprüft" }
                    p class="advice" hidden {
                        "Bitte erlauben Sie den Zugriff auf Kamera und Mikrofon: Klicken Sie in \
                         der Adresszeile auf das Kamera-Symbol und wählen Sie „Zulassen“. \
                         Schließen Sie andere Programme, die die Kamera nutzen, und laden Sie die \
                         Seite neu."
                    }
                    div class="videos" {
                        video id="vorschau" autoplay playsinline muted aria-label="Ihr Kamerabild" {}
                    }
                    label for="pegel" { "Mikrofonpegel" }
                    meter id="pegel" min="0" max="100" value="0" { "0" }
                }
                li id="check-upload" {
                    strong { "Internetverbindung: " } span class="result" { "noch nicht gemessen" }
                    p class="advice" hidden {
                        "Ihre Verbindung ist langsamer als die nötigen " (min) " Mbit/s. Beenden \
                         Sie Downloads und andere Videos, gehen Sie näher an den WLAN-Router oder \
                         nutzen Sie ein Netzwerkkabel, und prüfen Sie erneut."
                    }
                }
            }
            p { button type="button" id="pruefen" { "Technik prüfen" } }
            div id="ergebnis" role="status" aria-live="polite" {}
            p class="notice" {
                "Hilfe bei technischen Fragen: " (support)
            }
        }
        p { a href={ "/termin/" (token) } { "Zurück zum Termin" } }
    };
    shell(StatusCode::OK, "Technik-Check", None, &["technik.js"], body)
}

#[derive(Debug, Deserialize)]
pub(crate) struct MeasureQuery {
    /// The browser supports WebRTC and getUserMedia (`1`) or not.
    #[serde(default)]
    browser: u8,
    /// Camera and microphone were allowed and deliver (`1`) or not.
    #[serde(default)]
    geraete: u8,
}

#[derive(Debug, Serialize)]
pub(crate) struct Measured {
    passed: bool,
    upload_kbit_s: u32,
    min_kbit_s: u32,
}

/// `POST /termin/{token}/technik/messung`: the body is filler the browser sends as fast as it
/// can; the server times it from the request's arrival to its last byte.
pub(crate) async fn measure(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<MeasureQuery>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                bytes += chunk.len();
                if bytes > MAX_MEASURE_BYTES {
                    return Error::TooLarge.into_response();
                }
            }
            Err(_) => return Error::BadRequest("Die Messung brach ab.".into()).into_response(),
        }
    }
    let micros = started.elapsed().as_micros().max(1);
    let kbit = u128::try_from(bytes).unwrap_or(u128::MAX) * 8 * 1000 / micros;
    let upload_kbit_s = u32::try_from(kbit).unwrap_or(u32::MAX);
    let room = match access::citizen_opening(&state, &token).await {
        Ok(room) => room,
        Err(e) => return e.into_response(),
    };
    let min_kbit_s = room.tenant.min_upload_mbit.saturating_mul(1000);
    let passed = q.browser == 1 && q.geraete == 1 && upload_kbit_s >= min_kbit_s;
    let recorded = room
        .act(
            &state,
            SessionCommand::RecordPreCallCheck {
                session: room.session,
                passed,
                upload_kbit_s,
            },
        )
        .await;
    state.hub.refresh(room.session);
    match recorded {
        Ok(()) => Json(Measured {
            passed,
            upload_kbit_s,
            min_kbit_s,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}
