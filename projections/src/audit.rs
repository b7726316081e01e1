//! The audit timeline: per appointment, every event of all its streams (appointment, calendar
//! entries, subject, session, forms, payments) in global order, with actor, time and a German
//! summary for the auditor.
//!
//! The read model is the merge itself: which global positions belong to the appointment. The
//! entries (stream, type, actor, time, summary) are made from those events when the timeline is
//! read, in one query by position. Copying them into the model would store every event a second
//! time (about 230 bytes per event), make the rebuild write that much, and freeze the German
//! wording of the summaries until the next rebuild.

use serde::{Deserialize, Serialize};

use videoamt_core::domain::events::{DecodeError, Party, PaymentFailure, SessionOutcome};
use videoamt_core::domain::record::AppointmentRecord;
use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::event::GlobalPosition;
use videoamt_core::event::RecordedEvent;
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::{EventStore, StoreError};
use videoamt_core::tenant::Tenant;

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

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditTimeline;

impl Entry {
    /// The timeline entry of one event of the record, worded with the names of `tenant` (the
    /// record's municipality) where given.
    pub fn of(envelope: &RecordedEvent, event: &DomainEvent, tenant: Option<&Tenant>) -> Self {
        Self {
            position: envelope.global_position,
            stream: envelope.stream_id.as_str().to_owned(),
            event_type: envelope.event_type.as_str().to_owned(),
            actor: format!(
                "{}:{}",
                envelope.meta.actor.role.as_str(),
                envelope.meta.actor.id
            ),
            recorded_at: rfc3339(envelope.meta.recorded_at),
            summary: summary(event, tenant),
        }
    }
}

/// Positions per document of a timeline. A piece holds positions only (8 bytes each), so a
/// window this wide keeps most visits in one row, and a piece of even a very long record stays
/// small; narrower windows (4,096 once) cost a row per few events.
const WINDOW: u64 = 1 << 20;

/// A timeline is stored in pieces: one document per appointment and window of `WINDOW` global
/// positions, keyed `{appointment}/{first position of the window:020}`, holding the positions
/// of the appointment's events in that window. Appending rewrites only the current piece, one
/// row holds the events of a visit that happen close together, the key order is the global
/// order, and the pieces depend on positions alone, so a rebuild in other batch sizes writes
/// the same documents.
fn entries_key(appointment: AppointmentId, position: u64) -> DocKey {
    let window = position / WINDOW * WINDOW;
    DocKey::new("entries", format!("{appointment}/{window:020}"))
}

impl Projection for AuditTimeline {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _: &Docs) -> Vec<DocKey> {
        event
            .appointment
            .map(|appointment| entries_key(appointment, event.envelope.global_position))
            .into_iter()
            .collect()
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let Some(appointment) = event.appointment else {
            return;
        };
        let position = event.envelope.global_position;
        docs.update(
            entries_key(appointment, position),
            |positions: &mut Vec<GlobalPosition>| positions.push(position),
        );
    }
}

/// In UTC, so that the strings sort as the instants do.
pub(crate) fn rfc3339(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The positions of one appointment's events, as far as the projection has seen the log, in
/// order; `None` when it has none.
pub async fn positions(
    models: &dyn ReadModelStore,
    appointment: AppointmentId,
) -> Result<Option<Vec<GlobalPosition>>, StoreError> {
    let rows = models
        .list(NAME, "entries", &format!("{appointment}/"))
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    // The pieces come in key order, which is the global order.
    Ok(Some(
        rows.into_iter()
            .filter_map(|(_, value)| serde_json::from_value::<Vec<GlobalPosition>>(value).ok())
            .flatten()
            .collect(),
    ))
}

/// The timeline of one appointment as far as the projection has seen the log; `None` when it
/// has no entry.
pub async fn timeline(
    events: &dyn EventStore,
    models: &dyn ReadModelStore,
    appointment: AppointmentId,
    tenant: Option<&Tenant>,
) -> Result<Option<Timeline>, ReplayError> {
    let Some(positions) = positions(models, appointment).await? else {
        return Ok(None);
    };
    let entries = read_entries(events, &positions, tenant, |_, _| {}).await?;
    Ok(Some(Timeline {
        appointment: appointment.to_string(),
        entries,
    }))
}

/// Reads the events at `positions` and makes their entries; `each` sees every event too.
async fn read_entries(
    events: &dyn EventStore,
    positions: &[GlobalPosition],
    tenant: Option<&Tenant>,
    mut each: impl FnMut(&RecordedEvent, &DomainEvent),
) -> Result<Vec<Entry>, ReplayError> {
    let recorded = events.read_positions(positions).await?;
    let mut entries = Vec::with_capacity(recorded.len());
    for envelope in &recorded {
        let event = DomainEvent::from_payload(
            envelope.event_type.as_str(),
            envelope.schema_version,
            &envelope.payload,
        )
        .map_err(|source| ReplayError::Decode {
            position: envelope.global_position,
            source,
        })?;
        each(envelope, &event);
        entries.push(Entry::of(envelope, &event, tenant));
    }
    Ok(entries)
}

fn mail_name(kind: videoamt_core::domain::events::MailKind) -> &'static str {
    use videoamt_core::domain::events::MailKind;
    match kind {
        MailKind::Confirmation => "Terminbestätigung",
        MailKind::Reminder => "Erinnerung",
        MailKind::Cancellation => "Absagebestätigung",
    }
}

/// A German one-liner for the auditor. Never personal data: names, values and comments are
/// left out, only what happened. Services, forms, fields and payment methods are named as the
/// municipality names them, dates are local; without `tenant` ids are left out and dates are
/// UTC (and say so).
pub fn summary(event: &DomainEvent, tenant: Option<&Tenant>) -> String {
    use DomainEvent as E;
    use videoamt_core::german;
    let day = |t: time::OffsetDateTime| match tenant {
        Some(tenant) => german::date(tenant.local(t).date()),
        None => format!(
            "{} (UTC)",
            german::date(t.to_offset(time::UtcOffset::UTC).date())
        ),
    };
    let form = |template: &videoamt_core::tenant::FormTemplateId| {
        tenant.and_then(|t| t.forms.get(template)).map_or_else(
            || "Formular".to_owned(),
            |f| format!("Formular „{}“", f.title),
        )
    };
    let field = |id: &str| {
        // Templates share fields (every form asks for the name): one label is one label.
        let labels: std::collections::BTreeSet<&str> = tenant
            .into_iter()
            .flat_map(|t| t.forms.values())
            .filter_map(|f| f.field(id))
            .map(|f| f.label.as_str())
            .collect();
        let labels: Vec<&str> = labels.into_iter().collect();
        match labels.as_slice() {
            [label] => format!("Feld „{label}“ geändert"),
            _ => "Formularfeld geändert".to_owned(),
        }
    };
    match event {
        E::AccountCreated(e) if e.directory => format!(
            "Konto bei der ersten Anmeldung über den Verzeichnisdienst angelegt ({})",
            e.role.label()
        ),
        E::AccountCreated(e) => format!("Konto angelegt ({})", e.role.label()),
        E::LoginSucceeded(_) => "Anmeldung".into(),
        E::LoginFailed(e) => format!(
            "Anmeldung fehlgeschlagen ({}. Versuch in Folge)",
            e.failures
        ),
        E::AccountLocked(_) => "Konto vorübergehend gesperrt".into(),
        // Never the hash, nor the link's digest: that a password changed is all there is.
        E::PasswordChanged(_) => "Passwort geändert".into(),
        E::PasswordLinkIssued(_) => {
            "Einmal-Link zum Setzen des Passworts ausgestellt, bisheriges Passwort ungültig".into()
        }
        E::PasswordLinkUsed(_) => "Passwort über den Einmal-Link gesetzt".into(),
        E::AccountDeactivated(_) => "Konto deaktiviert".into(),
        E::AccountReactivated(_) => "Konto wieder aktiviert".into(),
        E::AccountRoleChanged(e) => {
            let names: Vec<String> = e
                .departments
                .iter()
                .map(|d| {
                    tenant
                        .and_then(|t| t.department(d))
                        .map_or_else(|| d.to_string(), |d| d.name.clone())
                })
                .collect();
            if names.is_empty() {
                format!("Rolle geändert: {}", e.role.label())
            } else {
                format!("Rolle geändert: {} ({})", e.role.label(), names.join(", "))
            }
        }
        E::AccountUnlocked(_) => "Sperre des Kontos aufgehoben".into(),
        E::DirectorySignInRefused(e) => format!(
            "Anmeldung über den Verzeichnisdienst abgelehnt: {} gehört keiner freigegebenen Gruppe an",
            e.login
        ),
        E::AccountHistoryViewed(e) => format!("Kontoverlauf von {} eingesehen", e.account),
        E::AdminRemoved(e) => format!(
            "Verwaltungskonto {} entfernt, verbleibend: {}",
            e.account,
            e.remaining
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        E::AppointmentBooked(e) => {
            // What was booked, as it was then: the names and fees of the booking's terms
            // (today's configuration for a version 1 booking).
            let terms = match tenant {
                Some(t) => e.terms(t),
                None => e.terms.as_deref().cloned(),
            };
            match terms.filter(|t| !t.services.is_empty()) {
                Some(terms) => {
                    let names: Vec<&str> = terms.services.iter().map(|s| s.name.as_str()).collect();
                    let fee =
                        videoamt_core::tenant::Cents(terms.services.iter().map(|s| s.fee.0).sum());
                    format!(
                        "Termin gebucht: {} Anliegen ({}), Gebühren {}",
                        names.len(),
                        names.join(", "),
                        fee
                    )
                }
                None => format!("Termin gebucht: {} Anliegen", e.services.len()),
            }
        }
        E::AppointmentConfirmed(_) => "Termin bestätigt".into(),
        E::AppointmentRescheduled(_) => "Termin verlegt".into(),
        E::AppointmentCancelled(_) => "Termin abgesagt".into(),
        E::ReminderSent(_) => "Erinnerung fällig".into(),
        E::CitizenAccessGranted(_) => "Zugangslink ausgestellt".into(),
        E::MailSent(e) => format!("{} versandt", mail_name(e.kind)),
        E::DeliveryFailed(e) => format!(
            "{} nicht zustellbar nach {} Versuchen ({})",
            mail_name(e.kind),
            e.attempts,
            e.reason
        ),
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
        E::PreCallCheckRecorded(e) => german::pre_call_check(e.passed, e.upload_kbit_s),
        E::SentBackToWaitingRoom(_) => "In den Warteraum zurückgeschickt".into(),
        E::RemovedFromSession(_) => "Aus der Sitzung entfernt".into(),
        E::ReconnectGraceExpired(e) => match e.party {
            videoamt_core::domain::events::Party::Citizen => {
                "Verbindung nicht rechtzeitig wiederhergestellt: zurück im Warteraum".into()
            }
            videoamt_core::domain::events::Party::Clerk => {
                "Verbindung der Sachbearbeitung nicht rechtzeitig wiederhergestellt".into()
            }
        },
        E::IdentityVerified(e) => format!(
            "Identität geprüft ({}{})",
            e.document_type,
            if e.questions_asked {
                ", mit Kontrollfragen"
            } else {
                ""
            }
        ),
        E::IdentityCheckFailed(e) => format!(
            "Identitätsprüfung fehlgeschlagen ({}{})",
            e.document_type,
            if e.questions_asked {
                ", mit Kontrollfragen"
            } else {
                ""
            }
        ),
        E::DocumentUploaded(_) => "Dokument hochgeladen".into(),
        E::DocumentShared(_) => "Dokument geteilt".into(),
        E::DocumentDownloaded(_) => "Dokument heruntergeladen".into(),
        E::FormAttached(e) => format!("{} geöffnet", form(&e.template)),
        E::PaymentAttached(_) => "Zahlung in der Videositzung angefordert".into(),
        E::FeedbackSubmitted(_) => "Feedback abgegeben".into(),
        E::HandedOverToCaseSystem(e) => format!("An Fachverfahren {} übergeben", e.target),
        E::SessionEnded(e) => match e.outcome {
            SessionOutcome::Completed => "Videositzung beendet: Anliegen erledigt".into(),
            SessionOutcome::Aborted => "Videositzung beendet: technisch abgebrochen".into(),
        },
        E::FormStarted(e) => format!("{} begonnen", form(&e.template)),
        E::FieldChanged(e) => match e.overwrote {
            None => field(&e.field),
            Some(Party::Citizen) => format!(
                "{}, Eingabe der Bürgerin oder des Bürgers ersetzt",
                field(&e.field)
            ),
            Some(Party::Clerk) => {
                format!("{}, Eingabe der Sachbearbeitung ersetzt", field(&e.field))
            }
        },
        E::SignatureRequested(_) => "Unterschrift angefordert".into(),
        E::FormSigned(_) => "Formular unterschrieben".into(),
        E::FormLocked(_) => "Formular gesperrt".into(),
        E::TanIssued(e) => match e.method {
            videoamt_core::tenant::SignatureMethod::HandyTan => "TAN per SMS gesendet".into(),
            _ => "TAN angezeigt".into(),
        },
        E::TanRejected(e) => format!("Falsche TAN eingegeben ({}. Versuch)", e.attempts),
        E::TanAccepted(_) => "TAN bestätigt".into(),
        E::PaymentRequested(e) => format!("Zahlung angefordert: {}", e.amount),
        E::PaymentMethodChosen(e) => tenant
            .and_then(|t| t.payment_methods.iter().find(|m| m.id == e.method))
            .map_or_else(
                || "Zahlungsart gewählt".to_owned(),
                |m| format!("Zahlungsart gewählt: {}", m.label),
            ),
        E::PaymentTransactionCreated(e) => {
            format!(
                "Zahlung beim Zahlungsdienst begonnen ({})",
                e.provider_reference
            )
        }
        E::PaymentAuthorized(_) => "Zahlung freigegeben".into(),
        E::PaymentCaptured(e) => format!("Zahlung eingezogen: {}", e.amount),
        E::PaymentFailed(e) => match e.kind {
            PaymentFailure::Declined => "Zahlung abgelehnt".into(),
            PaymentFailure::Abandoned => "Zahlung abgebrochen".into(),
        },
        E::PaymentRefunded(e) => format!("Erstattet: {}", e.amount),
        E::SubjectKeyIssued(_) => "Schlüssel für personenbezogene Daten erzeugt".into(),
        E::PurgeScheduled(e) => format!("Löschung angesetzt zum {}", day(e.due)),
        E::PurgeBlocked(e) => format!(
            "Löschung zurückgestellt bis {}: {}",
            day(e.retry_at),
            e.reason
        ),
        E::PurgeExecuted(_) => "Personenbezogene Daten gelöscht".into(),
        E::DeletionVerified(_) => "Löschung geprüft".into(),
        E::DeletionVerificationFailed(e) => {
            format!(
                "Löschprüfung fehlgeschlagen: {} Fundstellen",
                e.places.len()
            )
        }
        E::AuditRecordViewed(e) => match e.as_of {
            Some(position) => format!("Prüfakte eingesehen (Stand Position {position})"),
            None => "Prüfakte eingesehen".into(),
        },
    }
}

/// An appointment's record as of a global position: the timeline up to there and the state of
/// every stream, folded with the deciders' own `evolve`.
#[derive(Debug, Clone)]
pub struct Replay {
    pub appointment: AppointmentId,
    pub as_of: GlobalPosition,
    pub head: GlobalPosition,
    pub timeline: Vec<Entry>,
    pub record: AppointmentRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("Termin {0} ist nicht bekannt")]
    UnknownAppointment(AppointmentId),
    #[error("Position {position} liegt hinter dem Ende des Protokolls ({head})")]
    BeyondEnd {
        position: GlobalPosition,
        head: GlobalPosition,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("event at position {position} cannot be read: {source}")]
    Decode {
        position: GlobalPosition,
        source: DecodeError,
    },
}

/// Time travel: the record of `appointment` as of `as_of` (the log's end when `None`). The
/// audit timeline names the events; they are read from the log itself, not the read model.
pub async fn replay(
    events: &dyn EventStore,
    models: &dyn ReadModelStore,
    appointment: AppointmentId,
    as_of: Option<GlobalPosition>,
    tenant: Option<&Tenant>,
) -> Result<Replay, ReplayError> {
    // Two independent reads: one round trip's time instead of two.
    let (head, positions) =
        futures::try_join!(events.last_position(), positions(models, appointment))?;
    let as_of = as_of.unwrap_or(head);
    if as_of > head {
        return Err(ReplayError::BeyondEnd {
            position: as_of,
            head,
        });
    }
    let mut positions = positions.ok_or(ReplayError::UnknownAppointment(appointment))?;
    positions.retain(|p| *p <= as_of);
    let mut record = AppointmentRecord::default();
    let timeline = read_entries(events, &positions, tenant, |envelope, event| {
        record = std::mem::take(&mut record).evolve(appointment, &envelope.stream_id, event);
    })
    .await?;
    Ok(Replay {
        appointment,
        as_of,
        head,
        timeline,
        record,
    })
}

/// The state of a record in German lines for auditors: facts in words, with the names of
/// departments and services and times as people read them; no internal ids, and personal
/// values (names, field contents) are not shown. Times are in the municipality's zone when
/// `tenant` is given, else in UTC (and say so).
pub fn describe(record: &AppointmentRecord, tenant: Option<&Tenant>) -> Vec<String> {
    use videoamt_core::german;
    let local = |t: time::OffsetDateTime| match tenant {
        Some(tenant) => tenant.local(t),
        None => {
            let utc = t.to_offset(time::UtcOffset::UTC);
            time::PrimitiveDateTime::new(utc.date(), utc.time())
        }
    };
    let zone = if tenant.is_some() { "" } else { " (UTC)" };
    let at = |t: time::OffsetDateTime| format!("{}{zone}", german::moment(local(t)));
    use videoamt_core::domain::appointment::Status;
    let mut lines = Vec::new();
    let status = match record.appointment.status {
        Status::New => "unbekannt",
        Status::Booked => "gebucht",
        Status::Cancelled => "abgesagt",
        Status::NoShow => "nicht erschienen",
        Status::Completed => "abgeschlossen",
    };
    lines.push(format!("Termin: {status}"));
    if let Some(b) = &record.appointment.booking {
        let department = tenant
            .and_then(|t| t.department(&b.department))
            .map_or(b.department.as_str(), |d| d.name.as_str());
        let services: Vec<&str> = b
            .services
            .iter()
            .map(|s| {
                tenant
                    .and_then(|t| t.service(s))
                    .map_or(s.as_str(), |s| s.name.as_str())
            })
            .collect();
        lines.push(format!(
            "  Fachbereich {department}, Anliegen {}, Beginn {}, Ende {}",
            services.join(", "),
            at(b.start),
            at(b.end)
        ));
        lines.push(format!(
            "  bestätigt: {}, Erinnerung versandt: {}",
            ja(record.appointment.confirmed),
            ja(record.appointment.reminder_sent)
        ));
    }
    match record.reservation {
        Some(r) => lines.push(format!(
            "Zeitfenster: {} reserviert ab {} Uhr",
            r.slots,
            german::minute_of_day(r.first_minute).map_or_else(String::new, german::clock)
        )),
        None => lines.push("Zeitfenster: keine".into()),
    }
    if let Some((_, s)) = &record.session {
        lines.push(format!(
            "Videositzung: Datenschutzhinweis {}, eingelassen {}, Identität geprüft {}, \
             {} Dokument(e), beendet {}",
            ja(s.privacy_accepted),
            ja(s.admitted),
            ja(s.identity_verified),
            s.documents.len(),
            ja(s.ended.is_some())
        ));
    }
    for (n, f) in record.forms.values().enumerate() {
        lines.push(format!(
            "Formular {}: {} Feld(er) ausgefüllt, unterschrieben {}, gesperrt {}",
            n + 1,
            f.values.len(),
            ja(f.signed),
            ja(f.locked)
        ));
    }
    for (n, p) in record.payments.values().enumerate() {
        use videoamt_core::domain::payment::PaymentStatus as P;
        let status = match p.status {
            P::New => "neu",
            P::Requested => "angefordert",
            P::Pending => "beim Zahlungsdienst",
            P::Authorized => "freigegeben",
            P::Captured => "eingezogen",
            P::Failed => "fehlgeschlagen",
        };
        lines.push(format!(
            "Zahlung {}: {status}, eingezogen {}, erstattet {}",
            n + 1,
            p.captured,
            p.refunded
        ));
    }
    let subject = &record.subject;
    lines.push(format!(
        "Löschung: angesetzt {}, ausgeführt {}, geprüft {}",
        subject.scheduled.as_ref().map_or("nein".to_owned(), |s| {
            format!("zum {}{zone}", german::date(local(s.due).date()))
        }),
        ja(subject.purged),
        ja(subject.verified)
    ));
    lines.push(format!(
        "Einsichtnahmen in die Prüfakte: {}",
        record.audit_views
    ));
    lines
}

fn ja(yes: bool) -> &'static str {
    if yes { "ja" } else { "nein" }
}

#[cfg(test)]
mod summary_tests {
    use time::macros::datetime;
    use videoamt_core::domain::FormId;
    use videoamt_core::domain::events::{
        AppointmentBooked, FinalState, FormAttached, PurgeScheduled,
    };

    use super::*;

    fn ettlingen() -> Tenant {
        videoamt_core::tenant::example_tenants()
            .expect("examples are valid")
            .into_iter()
            .find(|t| t.id.as_str() == "ettlingen")
            .expect("ettlingen")
    }

    #[test]
    fn the_timeline_names_what_the_municipality_calls_it_and_shows_no_ids() {
        let tenant = ettlingen();
        let booked: AppointmentBooked = serde_json::from_str(include_str!(
            "../../core/tests/samples/AppointmentBooked.v1.json"
        ))
        .expect("the stored sample");
        let names: Vec<&str> = booked
            .services
            .iter()
            .map(|s| tenant.services[s].name.as_str())
            .collect();
        let event = DomainEvent::AppointmentBooked(booked.clone());
        assert_eq!(
            summary(&event, Some(&tenant)),
            format!(
                "Termin gebucht: 2 Anliegen ({}), Gebühren 47,00 €",
                names.join(", ")
            )
        );
        assert_eq!(summary(&event, None), "Termin gebucht: 2 Anliegen");

        // A version 2 booking shows its own terms, whatever the configuration says today.
        let mut changed = tenant.clone();
        let id = videoamt_core::tenant::ServiceId::from("personalausweis");
        let service = changed.services.get_mut(&id).expect("the service");
        service.fee = videoamt_core::tenant::Cents(9_900);
        service.name = "Personalausweis (neu)".into();
        let booked: AppointmentBooked = serde_json::from_str(include_str!(
            "../../core/tests/samples/AppointmentBooked.v2.json"
        ))
        .expect("the stored sample");
        let event = DomainEvent::AppointmentBooked(booked);
        let then = "Termin gebucht: 2 Anliegen (Personalausweis beantragen, Meldebescheinigung), \
                    Gebühren 47,00 €";
        assert_eq!(summary(&event, Some(&changed)), then);
        assert_eq!(summary(&event, None), then);

        let template = tenant.forms.keys().next().expect("a form template").clone();
        let attached = DomainEvent::FormAttached(FormAttached {
            form: FormId(uuid::Uuid::nil()),
            template: template.clone(),
        });
        let title = &tenant.forms[&template].title;
        assert_eq!(
            summary(&attached, Some(&tenant)),
            format!("Formular „{title}“ geöffnet")
        );
        assert_eq!(summary(&attached, None), "Formular geöffnet");

        let purge = DomainEvent::PurgeScheduled(PurgeScheduled {
            final_state: FinalState::Completed,
            final_at: datetime!(2026-11-30 23:30 UTC),
            due: datetime!(2027-02-28 23:30 UTC),
        });
        // 23:30 UTC is already the next day in Ettlingen.
        assert_eq!(
            summary(&purge, Some(&tenant)),
            "Löschung angesetzt zum 01.03.2027"
        );
        assert_eq!(
            summary(&purge, None),
            "Löschung angesetzt zum 28.02.2027 (UTC)"
        );
    }

    #[test]
    fn account_changes_read_in_german_without_hashes_or_digests() {
        let tenant = ettlingen();
        let read = |name: &str, text: &str| {
            let payload = videoamt_core::event::Payload::from_json(text.to_owned()).expect("JSON");
            DomainEvent::from_payload(name, 1, &payload).expect("the stored sample")
        };
        let cases = [
            (
                read(
                    "PasswordChanged",
                    include_str!("../../core/tests/samples/PasswordChanged.v1.json"),
                ),
                "Passwort geändert",
            ),
            (
                read(
                    "PasswordLinkIssued",
                    include_str!("../../core/tests/samples/PasswordLinkIssued.v1.json"),
                ),
                "Einmal-Link zum Setzen des Passworts ausgestellt, bisheriges Passwort ungültig",
            ),
            (
                read(
                    "PasswordLinkUsed",
                    include_str!("../../core/tests/samples/PasswordLinkUsed.v1.json"),
                ),
                "Passwort über den Einmal-Link gesetzt",
            ),
            (
                read(
                    "AccountRoleChanged",
                    include_str!("../../core/tests/samples/AccountRoleChanged.v1.json"),
                ),
                "Rolle geändert: Sachbearbeitung (Bürgerbüro, Gewerbebehörde)",
            ),
            (
                read(
                    "AdminRemoved",
                    include_str!("../../core/tests/samples/AdminRemoved.v1.json"),
                ),
                "Verwaltungskonto a.becker entfernt, verbleibend: c.weber",
            ),
            (read("AccountDeactivated", "{}"), "Konto deaktiviert"),
            (read("AccountReactivated", "{}"), "Konto wieder aktiviert"),
            (
                read("AccountUnlocked", "{}"),
                "Sperre des Kontos aufgehoben",
            ),
        ];
        for (event, expected) in cases {
            let said = summary(&event, Some(&tenant));
            assert_eq!(said, expected);
            assert!(
                !said.contains("argon2") && !said.contains("ba7816"),
                "{said}"
            );
        }
    }
}
