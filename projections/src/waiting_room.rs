//! The live waiting room: per tenant and department, the sessions whose citizen is waiting,
//! since when, and whether the privacy notice is accepted.

use serde::{Deserialize, Serialize};
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::events::Party;
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;

use crate::{Projection, Recorded};

pub const NAME: &str = "waiting-room";

/// One waiting citizen, under key `{tenant}/{department}/{session}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub session: String,
    pub appointment: String,
    /// RFC 3339; empty while the citizen has not joined.
    pub waiting_since: String,
    pub privacy_notice_accepted: bool,
    pub connection_lost: bool,
    /// The last pre-call check: passed or not, and the upload in kbit/s.
    #[serde(default)]
    pub pre_call_check: Option<(bool, u32)>,
    /// Admitted once and sent back (or back after a lost connection): waiting again.
    #[serde(default)]
    pub returned: bool,
}

/// Where a session's waiting entry lives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Place {
    key: String,
    appointment: String,
    #[serde(default)]
    pre_call_check: Option<(bool, u32)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WaitingRoom;

/// Waiting is of no day: a citizen leaves the room when the session ends, so the documents
/// held are the citizens waiting now ([`crate::memory`]).
pub fn day_of(_key: &DocKey, _doc: Option<&serde_json::Value>) -> Option<time::Date> {
    None
}

fn place_key(stream: &str) -> DocKey {
    DocKey::new("place", stream)
}

impl Projection for WaitingRoom {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey> {
        let stream = event.envelope.stream_id.as_str();
        if !stream.starts_with("session-") {
            return vec![];
        }
        let mut keys = vec![place_key(stream)];
        if let Some(place) = docs.get::<Place>(&place_key(stream)) {
            keys.push(DocKey::new("waiting", place.key));
        }
        keys
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let envelope = event.envelope;
        let stream = envelope.stream_id.as_str();
        if let DomainEvent::SessionOpened(e) = event.event {
            let key = format!(
                "{}/{}/{}",
                envelope.meta.tenant,
                e.department,
                stream.trim_start_matches("session-")
            );
            docs.put(
                place_key(stream),
                Place {
                    key,
                    appointment: e.appointment.to_string(),
                    pre_call_check: None,
                },
            );
            return;
        }
        let Some(place) = docs.get::<Place>(&place_key(stream)) else {
            return;
        };
        let waiting = DocKey::new("waiting", place.key.clone());
        let at = envelope
            .meta
            .recorded_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let present = docs.get::<Waiting>(&waiting).is_some();
        match event.event {
            DomainEvent::ParticipantJoined(e) if e.party == Party::Citizen => {
                docs.update(waiting, |w: &mut Waiting| {
                    w.session = stream.trim_start_matches("session-").to_owned();
                    w.appointment.clone_from(&place.appointment);
                    w.waiting_since = at;
                    w.connection_lost = false;
                    w.pre_call_check = place.pre_call_check;
                });
            }
            DomainEvent::PrivacyNoticeAccepted(_) if present => {
                docs.update(waiting, |w: &mut Waiting| w.privacy_notice_accepted = true);
            }
            DomainEvent::ConnectionLost(e) if e.party == Party::Citizen && present => {
                docs.update(waiting, |w: &mut Waiting| w.connection_lost = true);
            }
            DomainEvent::ConnectionRestored(e) if e.party == Party::Citizen && present => {
                docs.update(waiting, |w: &mut Waiting| w.connection_lost = false);
            }
            DomainEvent::PreCallCheckRecorded(e) => {
                // Kept on the place too, so that it shows when the citizen joins later.
                let result = (e.passed, e.upload_kbit_s);
                docs.update(place_key(stream), |p: &mut Place| {
                    p.pre_call_check = Some(result)
                });
                if present {
                    docs.update(waiting, |w: &mut Waiting| w.pre_call_check = Some(result));
                }
            }
            DomainEvent::ParticipantLeft(e) if e.party == Party::Citizen => docs.delete(waiting),
            DomainEvent::RemovedFromSession(_) => docs.delete(waiting),
            DomainEvent::AdmittedFromWaitingRoom(_) => docs.delete(waiting),
            DomainEvent::SentBackToWaitingRoom(_) | DomainEvent::ReconnectGraceExpired(_)
                if !present =>
            {
                docs.put(
                    waiting,
                    Waiting {
                        session: stream.trim_start_matches("session-").to_owned(),
                        appointment: place.appointment.clone(),
                        waiting_since: at,
                        privacy_notice_accepted: true,
                        connection_lost: false,
                        pre_call_check: place.pre_call_check,
                        returned: true,
                    },
                );
            }
            DomainEvent::SessionEnded(_) => {
                docs.delete(waiting);
                docs.delete(place_key(stream));
            }
            _ => {}
        }
    }
}

/// The citizens waiting in `department` of `tenant` (joined, not yet admitted), longest
/// waiting first.
pub async fn waiting(
    models: &dyn ReadModelStore,
    tenant: &str,
    department: &str,
) -> Result<Vec<Waiting>, StoreError> {
    let prefix = format!("{tenant}/{department}/");
    let mut waiting: Vec<Waiting> = models
        .list(NAME, "waiting", &prefix)
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value::<Waiting>(v).ok())
        .filter(|w| !w.waiting_since.is_empty())
        .collect();
    // RFC 3339 in UTC: the strings sort as the instants do.
    waiting.sort_by(|a, b| a.waiting_since.cmp(&b.waiting_since));
    Ok(waiting)
}
