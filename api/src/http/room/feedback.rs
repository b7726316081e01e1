//! The feedback questionnaire after the session: marks from 1 to 5 for the FAQ's aspects (Bild
//! und Ton, Bedienung, Wartezeit, Ergebnis) and a free text, which is sealed like every
//! personal value. `FeedbackSubmitted` feeds the pilot statistics; once per session.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use maud::{Markup, html};
use serde::Deserialize;
use videoamt_core::domain::Personal;
use videoamt_core::domain::events::FeedbackAspects;
use videoamt_core::domain::session::SessionCommand;

use super::access::{self, Room};
use crate::http::AppState;
use crate::http::error::Error;
use crate::http::extract::PageForm as Form;
use crate::http::html::problem_page;

/// The longest free text kept, in characters.
const MAX_COMMENT: usize = 2_000;

/// The aspects: form field, German question.
const ASPECTS: [(&str, &str); 4] = [
    ("bild_und_ton", "Bild und Ton"),
    ("bedienung", "Bedienung"),
    ("wartezeit", "Wartezeit"),
    ("ergebnis", "Ergebnis"),
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/termin/{token}/feedback", post(submit))
}

/// The questionnaire, or the thanks once it was answered.
pub(crate) fn panel(room: &Room, token: &str) -> Markup {
    html! {
        section id="feedback" aria-labelledby="feedback-titel" {
            h2 id="feedback-titel" { "Wie war Ihr Videotermin?" }
            @if room.state.feedback_given {
                p role="status" { "Vielen Dank für Ihre Rückmeldung." }
            } @else {
                form method="post" action={ "/termin/" (token) "/feedback" } {
                    p { "1 = schlecht, 5 = sehr gut. Ihre Antworten helfen uns, die Videoberatung zu verbessern." }
                    @for (name, question) in ASPECTS {
                        fieldset {
                            legend { (question) }
                            @for mark in 1..=5u8 {
                                label {
                                    input type="radio" name=(name) value=(mark) required;
                                    " " (mark)
                                }
                                " "
                            }
                        }
                    }
                    label for="kommentar" { "Was möchten Sie uns noch sagen? (freiwillig)" }
                    textarea id="kommentar" name="kommentar" maxlength=(MAX_COMMENT) rows="4" {}
                    p { button type="submit" { "Rückmeldung senden" } }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Answers {
    bild_und_ton: Option<String>,
    bedienung: Option<String>,
    wartezeit: Option<String>,
    ergebnis: Option<String>,
    #[serde(default)]
    kommentar: String,
}

fn mark(raw: Option<&str>, question: &str) -> Result<u8, Error> {
    raw.and_then(|r| r.trim().parse::<u8>().ok())
        .filter(|m| (1..=5).contains(m))
        .ok_or_else(|| Error::InvalidData(format!("Bitte bewerten Sie „{question}“ mit 1 bis 5.")))
}

/// `POST /termin/{token}/feedback`.
async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(answers): Form<Answers>,
) -> Response {
    let result = async {
        let room = access::citizen(&state, &token).await?;
        let aspects = FeedbackAspects {
            picture_and_sound: mark(answers.bild_und_ton.as_deref(), ASPECTS[0].1)?,
            usability: mark(answers.bedienung.as_deref(), ASPECTS[1].1)?,
            waiting_time: mark(answers.wartezeit.as_deref(), ASPECTS[2].1)?,
            result: mark(answers.ergebnis.as_deref(), ASPECTS[3].1)?,
        };
        let comment = answers.kommentar.trim();
        if comment.chars().count() > MAX_COMMENT {
            return Err(Error::InvalidData(format!(
                "Der Text ist zu lang (höchstens {MAX_COMMENT} Zeichen)."
            )));
        }
        room.act(
            &state,
            SessionCommand::SubmitFeedback {
                session: room.session,
                score: aspects.overall(),
                aspects: Some(aspects),
                comment: (!comment.is_empty()).then(|| Personal::plain(comment)),
            },
        )
        .await
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/termin/{token}/warteraum")).into_response(),
        Err(e) => {
            let mut page = problem_page(&e);
            if page.status() == StatusCode::OK {
                *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            }
            page
        }
    }
}
