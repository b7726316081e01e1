//! Forms in the session room over a real socket and the pages, against the real SQLite store:
//! the clerk attaches a form, both parties fill it in live, a stale write wins in log order and
//! tells the party whose value it replaced, a bad value is refused per field in German and
//! writes nothing, where the other side types is shown and never recorded, the form works
//! without JavaScript, and once signed nobody can change it, over the socket or the page.

use axum::http::StatusCode;
use futures::SinkExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::FormId;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::form::FormCommand;
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::tenant::SignatureMethod;

use crate::room::{Socket, next, open, serve, until};
use crate::room_documents::Room;
use crate::staff::browse;

const TEMPLATE: &str = "antrag-personalausweis";

impl Room {
    fn clerk_room(&self) -> String {
        format!("/sachbearbeitung/termin/{}/raum", self.appointment.0)
    }

    /// The clerk attaches the identity card form; its id, read from the citizen's page.
    pub(crate) async fn attach(&self) -> FormId {
        let (status, _, body) = browse(
            &self.api,
            "POST",
            &format!("{}/formular", self.clerk_room()),
            Some(&self.clerk),
            Some(&format!("vorlage={TEMPLATE}")),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let page = self.citizen_page().await;
        let at = page
            .find("data-form=\"")
            .expect("the form on the citizen's page")
            + 11;
        FormId(Uuid::parse_str(&page[at..at + 36]).expect("a form id"))
    }

    async fn citizen_page(&self) -> String {
        let (status, _, page) = browse(
            &self.api,
            "GET",
            &format!("/termin/{}/warteraum", self.token),
            None,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }

    async fn sockets(&self) -> (Socket, Socket) {
        let addr = serve(&self.api).await;
        let citizen = open(addr, &format!("/termin/{}/raum/ws", self.token), None)
            .await
            .expect("the citizen's socket");
        let clerk = open(
            addr,
            &format!("{}/ws", self.clerk_room()),
            Some(&self.clerk),
        )
        .await
        .expect("the clerk's socket");
        (citizen, clerk)
    }

    /// The events after `position`: type and payload.
    async fn log_since(&self, position: u64) -> Vec<(String, Value)> {
        self.api
            .state
            .store
            .read_all(position, 1_000)
            .await
            .expect("read")
            .into_iter()
            .map(|e| {
                let payload: Value = e.payload.parse().expect("json");
                (e.event_type.as_str().to_owned(), payload)
            })
            .collect()
    }

    async fn position(&self) -> u64 {
        self.api.last_position().await
    }
}

async fn type_in(socket: &mut Socket, form: FormId, field: &str, value: &str, based_on: u64) {
    let message = json!({
        "type": "field", "form": form.0, "field": field, "value": value, "based_on": based_on,
    });
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .expect("sent");
}

/// The next `field` message about `field`.
async fn field(socket: &mut Socket, field: &str) -> Value {
    loop {
        let m = until(socket, "field").await;
        if m["field"] == field {
            return m;
        }
    }
}

#[tokio::test]
async fn both_parties_fill_a_form_live_and_a_stale_write_tells_whose_value_it_replaced() {
    let room = Room::admitted().await;
    let (mut citizen, mut clerk) = room.sockets().await;
    until(&mut citizen, "room").await;
    until(&mut clerk, "room").await;
    let form = room.attach().await;
    // Both sockets hear that a form came, so the pages fetch the panel.
    loop {
        if until(&mut citizen, "room").await["forms"] == 1 {
            break;
        }
    }
    let before = room.position().await;

    // The citizen types the family name: both sides get it with its version.
    type_in(&mut citizen, form, "familienname", "Mustermann", 0).await;
    for socket in [&mut citizen, &mut clerk] {
        let m = field(socket, "familienname").await;
        assert_eq!(m["value"], "Mustermann");
        assert_eq!(m["version"], 1);
        assert_eq!(m["by"], "citizen");
        assert_eq!(m["replaced_yours"], false);
    }

    // Both type the first name at once, each on the empty field (version 0). The clerk's write
    // comes first in the log, the citizen's second: the citizen's wins, and the clerk is told
    // that their value was replaced.
    type_in(&mut clerk, form, "vorname", "Erika", 0).await;
    assert_eq!(field(&mut clerk, "vorname").await["value"], "Erika");
    type_in(&mut citizen, form, "vorname", "Erica", 0).await;
    let told = loop {
        let m = field(&mut clerk, "vorname").await;
        if m["version"] == 2 {
            break m;
        }
    };
    assert_eq!(told["value"], "Erica");
    assert_eq!(told["by"], "citizen");
    assert_eq!(told["replaced_yours"], true);
    let own = loop {
        let m = field(&mut citizen, "vorname").await;
        if m["version"] == 2 {
            break m;
        }
    };
    assert_eq!(own["replaced_yours"], false);

    // A date in the wrong format: refused to the writer, per field and in German, and nothing
    // recorded.
    let after_names = room.position().await;
    type_in(&mut citizen, form, "geburtsdatum", "12.08.1964", 0).await;
    let refused = until(&mut citizen, "field-error").await;
    assert_eq!(refused["field"], "geburtsdatum");
    assert_eq!(refused["title"], "Ungültiger Wert");
    let detail = refused["detail"].as_str().expect("a detail");
    assert!(detail.contains("Geburtsdatum"), "{detail}");
    assert!(
        !detail.contains("12.08.1964"),
        "no value in messages: {detail}"
    );

    // Where the clerk types reaches the citizen, and is not recorded either.
    let focus = json!({"type": "focus", "form": form.0, "field": "geburtsdatum"});
    clerk
        .send(Message::Text(focus.to_string().into()))
        .await
        .expect("sent");
    let seen = until(&mut citizen, "peer-focus").await;
    assert_eq!(seen["field"], "geburtsdatum");
    assert_eq!(room.position().await, after_names, "no event for either");

    // The log: three changes in order, the stale one naming the clerk; values sealed.
    let changes: Vec<Value> = room
        .log_since(before)
        .await
        .into_iter()
        .filter(|(t, _)| t == "FieldChanged")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[1]["by"], "clerk");
    assert_eq!(changes[1].get("overwrote"), None);
    assert_eq!(changes[2]["by"], "citizen");
    assert_eq!(changes[2]["based_on"], 0);
    assert_eq!(changes[2]["overwrote"], "clerk");
    let raw = serde_json::to_string(&changes).expect("json");
    for typed in ["Mustermann", "Erika", "Erica"] {
        assert!(!raw.contains(typed), "{typed} is sealed in the log");
    }

    // The page shows the log's state, versions included, to whoever opens it next.
    let page = room.citizen_page().await;
    assert!(page.contains("value=\"Erica\""), "{page}");
    assert!(
        page.contains("name=\"version.vorname\" value=\"2\""),
        "{page}"
    );
}

#[tokio::test]
async fn without_javascript_the_form_saves_and_once_signed_nobody_can_change_it() {
    let room = Room::admitted().await;
    let form = room.attach().await;
    let citizen_form = format!("/termin/{}/raum/formular/{}", room.token, form.0);
    let clerk_form = format!("{}/formular/{}", room.clerk_room(), form.0);

    // A plain POST with one bad field: the good ones are kept, the bad one is named.
    let (status, _, page) = browse(
        &room.api,
        "POST",
        &citizen_form,
        None,
        Some(
            "familienname=Mustermann&version.familienname=0&vorname=Erika&version.vorname=0\
             &geburtsdatum=gestern&version.geburtsdatum=0&eid=nein",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("Ungültiger Wert") && page.contains("Geburtsdatum"),
        "{page}"
    );
    let (status, headers, _) = browse(
        &room.api,
        "POST",
        &citizen_form,
        None,
        Some("familienname=Mustermann&geburtsdatum=1964-08-12&version.geburtsdatum=0"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers["location"],
        format!("/termin/{}/warteraum", room.token)
    );
    let page = room.citizen_page().await;
    for kept in [
        "value=\"Mustermann\"",
        "value=\"Erika\"",
        "value=\"1964-08-12\"",
    ] {
        assert!(page.contains(kept), "{kept} kept: {page}");
    }

    // The citizen signs (the signing steps are the room's; here on the bus).
    let issued = Issued {
        tenant: TenantId::parse("ettlingen").expect("tenant"),
        actor: Actor::new(ActorRole::Citizen, "buerger").expect("actor"),
        correlation_id: room.appointment.0,
        command_id: Uuid::now_v7(),
        now: room.api.state.now(),
    };
    let hash = |c: char| c.to_string().repeat(64).parse().expect("64 hex digits");
    for command in [
        FormCommand::RequestSignature {
            form,
            method: SignatureMethod::HiddenTan,
        },
        FormCommand::IssueTan {
            form,
            method: SignatureMethod::HiddenTan,
            tan: Uuid::now_v7(),
            digest: hash('1'),
        },
        FormCommand::EnterTan {
            form,
            digest: hash('1'),
        },
        FormCommand::SignForm {
            form,
            method: SignatureMethod::HiddenTan,
            evidence_sha256: hash('a'),
            document_sha256: hash('b'),
            edits_seen: None,
        },
    ] {
        let command: Command = command.into();
        room.api
            .state
            .system
            .bus()
            .execute(
                &command,
                &Issued {
                    command_id: Uuid::now_v7(),
                    ..issued.clone()
                },
            )
            .await
            .expect("signed");
    }
    let locked_at = room.position().await;

    // The page shows it locked, every field read-only and no save button.
    let page = room.citizen_page().await;
    assert!(page.contains("Unterschrieben und gesperrt."), "{page}");
    assert!(!page.contains(">Speichern<"), "{page}");
    assert!(
        page.contains("value=\"Mustermann\" type=\"text\" required disabled"),
        "{page}"
    );

    // Over the socket, from either side: refused in German, nothing written.
    let (mut citizen, mut clerk) = room.sockets().await;
    until(&mut citizen, "room").await;
    until(&mut clerk, "room").await;
    for socket in [&mut citizen, &mut clerk] {
        type_in(socket, form, "vorname", "Erich", 1).await;
        let refused = until(socket, "field-error").await;
        assert_eq!(refused["title"], "Formular gesperrt");
    }
    // Over the page, the clerk included.
    for (path, cookie) in [
        (&citizen_form, None),
        (&clerk_form, Some(room.clerk.as_str())),
    ] {
        let (status, _, page) = browse(
            &room.api,
            "POST",
            path,
            cookie,
            Some("vorname=Erich&version.vorname=1"),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{page}");
        assert!(page.contains("Formular gesperrt"), "{page}");
    }
    let after: Vec<String> = room
        .log_since(locked_at)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(
        !after.iter().any(|t| t == "FieldChanged"),
        "no change after FormLocked: {after:?}"
    );
    // The sockets are still open and in the room: a refusal is not abuse.
    let ping = json!({"type": "ping"});
    citizen
        .send(Message::Text(ping.to_string().into()))
        .await
        .expect("sent");
    assert_eq!(next(&mut citizen).await.expect("open")["type"], "pong");
}
