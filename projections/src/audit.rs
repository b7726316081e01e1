//! The audit timeline: per appointment, every event of all its streams (appointment, calendar
//! entries, subject, session, forms, payments) in global order, with actor, time and a German
//! summary for the auditor.

use serde::{Deserialize, Serialize};
use videoamt_core::domain::DomainEvent;
use videoamt_core::readmodel::{DocKey, Docs};

use crate::{Projection, Recorded};

pub const NAME: &str = "audit-timeline";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub appointment: String,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub position: u64,
    pub stream: String,
    pub event_type: String,
    pub actor: String,
    pub recorded_at: String,
    pub summary: String,
}

/// Which appointment a stream belongs to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Owner {
    appointment: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTimeline;

fn owner_key(stream: &str) -> DocKey {
    DocKey::new("stream", stream)
}

pub fn timeline_key(appointment: &str) -> DocKey {
    DocKey::new("timeline", appointment)
}

/// The appointment an event names in its payload, for streams that are not the appointment's.
fn named_appointment(event: &DomainEvent) -> Option<String> {
    match event {
        DomainEvent::SlotsReserved(e) => Some(e.appointment.to_string()),
        DomainEvent::SlotsReleased(e) => Some(e.appointment.to_string()),
        DomainEvent::SubjectKeyIssued(e) => Some(e.appointment.to_string()),
        DomainEvent::SessionOpened(e) => Some(e.appointment.to_string()),
        DomainEvent::PaymentRequested(e) => Some(e.appointment.to_string()),
        _ => None,
    }
}

impl AuditTimeline {
    fn appointment_of(&self, event: Recorded<'_>, docs: &Docs) -> Option<String> {
        let stream = event.envelope.stream_id.as_str();
        if let Some(id) = stream.strip_prefix("appointment-") {
            return Some(id.to_owned());
        }
        // Calendar events name their appointment; a calendar day is shared, so never indexed.
        if let Some(named) = named_appointment(event.event) {
            return Some(named);
        }
        if let DomainEvent::FormStarted(e) = event.event {
            let owner: Option<Owner> = docs.get(&owner_key(&e.session.stream().to_string()));
            return owner.map(|o| o.appointment);
        }
        docs.get::<Owner>(&owner_key(stream)).map(|o| o.appointment)
    }
}

impl Projection for AuditTimeline {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey> {
        let stream = event.envelope.stream_id.as_str();
        let mut keys = vec![owner_key(stream)];
        if let DomainEvent::FormStarted(e) = event.event {
            keys.push(owner_key(&e.session.stream().to_string()));
        }
        if let Some(appointment) = self.appointment_of(event, docs) {
            keys.push(timeline_key(&appointment));
        }
        keys
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let Some(appointment) = self.appointment_of(event, docs) else {
            return;
        };
        let envelope = event.envelope;
        let stream = envelope.stream_id.as_str();
        if !stream.starts_with("appointment-") && !stream.starts_with("calendar-") {
            docs.put(
                owner_key(stream),
                &Owner {
                    appointment: appointment.clone(),
                },
            );
        }
        let entry = Entry {
            position: envelope.global_position,
            stream: stream.to_owned(),
            event_type: envelope.event_type.as_str().to_owned(),
            actor: format!(
                "{}:{}",
                envelope.meta.actor.role.as_str(),
                envelope.meta.actor.id
            ),
            recorded_at: envelope
                .meta
                .recorded_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            summary: summary(event.event),
        };
        docs.update(timeline_key(&appointment), |t: &mut Timeline| {
            t.appointment.clone_from(&appointment);
            t.entries.push(entry);
        });
    }
}

/// A German one-liner for the auditor. Never personal data: names, values and comments are
/// left out, only what happened.
pub fn summary(event: &DomainEvent) -> String {
    use DomainEvent as E;
    match event {
        E::AppointmentBooked(e) => format!(
            "Termin gebucht: {} Anliegen ({})",
            e.services.len(),
            e.services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        E::AppointmentConfirmed(_) => "Terminbestätigung versandt".into(),
        E::AppointmentRescheduled(_) => "Termin verlegt".into(),
        E::AppointmentCancelled(_) => "Termin abgesagt".into(),
        E::ReminderSent(_) => "Erinnerung versandt".into(),
        E::NoShowRecorded(_) => "Nicht erschienen".into(),
        E::SessionLinked(_) => "Videositzung zugeordnet".into(),
        E::AppointmentCompleted(_) => "Termin abgeschlossen".into(),
        E::SlotsReserved(e) => format!("{} Zeitfenster reserviert", e.slots),
        E::SlotsReleased(_) => "Zeitfenster freigegeben".into(),
        E::SessionOpened(_) => "Videositzung eröffnet".into(),
        E::ParticipantJoined(_) => "Teilnahme beigetreten".into(),
        E::ParticipantLeft(_) => "Teilnahme verlassen".into(),
        E::ConnectionLost(_) => "Verbindung unterbrochen".into(),
        E::ConnectionRestored(_) => "Verbindung wiederhergestellt".into(),
        E::PrivacyNoticeAccepted(_) => "Datenschutzhinweis bestätigt".into(),
        E::AdmittedFromWaitingRoom(_) => "Aus dem Warteraum eingelassen".into(),
        E::IdentityVerified(e) => format!("Identität geprüft ({})", e.document_type),
        E::IdentityCheckFailed(e) => {
            format!("Identitätsprüfung fehlgeschlagen ({})", e.document_type)
        }
        E::DocumentUploaded(_) => "Dokument hochgeladen".into(),
        E::DocumentShared(_) => "Dokument geteilt".into(),
        E::DocumentDownloaded(_) => "Dokument heruntergeladen".into(),
        E::FormAttached(e) => format!("Formular {} geöffnet", e.template),
        E::FeedbackSubmitted(_) => "Feedback abgegeben".into(),
        E::HandedOverToCaseSystem(e) => format!("An Fachverfahren {} übergeben", e.target),
        E::SessionEnded(_) => "Videositzung beendet".into(),
        E::FormStarted(e) => format!("Formular {} begonnen", e.template),
        E::FieldChanged(e) => format!("Feld {} geändert", e.field),
        E::SignatureRequested(_) => "Unterschrift angefordert".into(),
        E::FormSigned(_) => "Formular unterschrieben".into(),
        E::FormLocked(_) => "Formular gesperrt".into(),
        E::PaymentRequested(e) => format!("Zahlung angefordert: {}", e.amount),
        E::PaymentMethodChosen(e) => format!("Zahlungsart gewählt: {}", e.method),
        E::PaymentAuthorized(_) => "Zahlung freigegeben".into(),
        E::PaymentCaptured(e) => format!("Zahlung eingezogen: {}", e.amount),
        E::PaymentFailed(_) => "Zahlung fehlgeschlagen".into(),
        E::PaymentRefunded(e) => format!("Erstattet: {}", e.amount),
        E::SubjectKeyIssued(_) => "Schlüssel für personenbezogene Daten erzeugt".into(),
        E::PurgeScheduled(e) => format!("Löschung angesetzt zum {}", e.due.date()),
        E::PurgeExecuted(_) => "Personenbezogene Daten gelöscht".into(),
        E::DeletionVerified(_) => "Löschung geprüft".into(),
    }
}
