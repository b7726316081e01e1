//! The appointment detail for the clerk: concerns, status, session progress, forms and payment.
//! Documents to bring come from the tenant's catalogue when the detail is read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use videoamt_core::domain::events::{Party, SessionOutcome};
use videoamt_core::domain::{AppointmentId, DomainEvent, FormId, PaymentId, SessionId};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;
use videoamt_core::tenant::{
    BookingChannel, Cents, ClerkId, DepartmentId, FormTemplateId, PaymentMethodId, ServiceId,
    SignatureMethod, Tenant,
};

use crate::schedule::VisitStatus;
use crate::{Projection, Recorded, audit::rfc3339};

pub const NAME: &str = "appointment-detail";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppointmentDetail {
    pub appointment: Option<AppointmentId>,
    pub tenant: String,
    pub department: Option<DepartmentId>,
    pub services: Vec<ServiceId>,
    pub start: String,
    pub end: String,
    pub channel: Option<BookingChannel>,
    pub invited_by: Option<ClerkId>,
    pub status: Option<VisitStatus>,
    pub confirmed: bool,
    pub reminder_sent: bool,
    pub session: Option<SessionDetail>,
    pub forms: BTreeMap<FormId, FormDetail>,
    pub payment: Option<PaymentDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    pub session: Option<SessionId>,
    pub citizen_present: bool,
    pub privacy_notice_accepted: bool,
    pub admitted_by: Option<ClerkId>,
    pub identity_check_required: bool,
    /// "geprüft", "fehlgeschlagen" or absent.
    pub identity: Option<String>,
    pub signature_required: bool,
    pub documents: u32,
    pub feedback_score: Option<u8>,
    pub handed_over_to: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormProgress {
    InProgress,
    SignatureRequested,
    Signed,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormDetail {
    pub template: FormTemplateId,
    pub service: ServiceId,
    pub fields_changed: u32,
    pub signature: Option<SignatureMethod>,
    pub progress: FormProgress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProgress {
    Requested,
    /// A provider transaction is open: the citizen is paying.
    Pending,
    Authorized,
    Captured,
    Failed,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentDetail {
    pub payment: PaymentId,
    pub amount: Cents,
    pub method: Option<PaymentMethodId>,
    pub progress: PaymentProgress,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Detail;

fn detail_key(appointment: AppointmentId) -> DocKey {
    DocKey::new("appointment", appointment.to_string())
}

fn uuid_of(stream: &str) -> Option<uuid::Uuid> {
    stream
        .split_once('-')
        .and_then(|(_, id)| uuid::Uuid::parse_str(id).ok())
}

/// Calendar, subject and audit events say nothing the clerk's detail shows.
fn shown(event: &DomainEvent) -> bool {
    !matches!(
        event,
        DomainEvent::SlotsReserved(_)
            | DomainEvent::SlotsReleased(_)
            | DomainEvent::AuditRecordViewed(_)
            | DomainEvent::SubjectKeyIssued(_)
            | DomainEvent::PurgeScheduled(_)
            | DomainEvent::PurgeBlocked(_)
            | DomainEvent::PurgeExecuted(_)
            | DomainEvent::DeletionVerified(_)
            | DomainEvent::DeletionVerificationFailed(_)
    )
}

impl Projection for Detail {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _: &Docs) -> Vec<DocKey> {
        if !shown(event.event) {
            return vec![];
        }
        event.appointment.map(detail_key).into_iter().collect()
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        if !shown(event.event) {
            return;
        }
        let Some(appointment) = event.appointment else {
            return;
        };
        let stream = event.envelope.stream_id.as_str();
        let tenant = event.envelope.meta.tenant.as_str();
        docs.update(detail_key(appointment), |d: &mut AppointmentDetail| {
            fold(d, event.event, stream, tenant);
        });
    }
}

fn fold(d: &mut AppointmentDetail, event: &DomainEvent, stream: &str, tenant: &str) {
    use DomainEvent as E;
    let mut session = d.session.take().unwrap_or_default();
    let session = &mut session;
    match event {
        E::AppointmentBooked(e) => {
            d.appointment = Some(e.appointment);
            tenant.clone_into(&mut d.tenant);
            d.department = Some(e.department.clone());
            d.services.clone_from(&e.services);
            d.start = rfc3339(e.start);
            d.end = rfc3339(e.end);
            d.channel = Some(e.channel);
            d.invited_by.clone_from(&e.invited_by);
            d.status = Some(VisitStatus::Booked);
        }
        E::AppointmentConfirmed(_) => d.confirmed = true,
        E::AppointmentRescheduled(e) => {
            d.start = rfc3339(e.start);
            d.end = rfc3339(e.end);
            d.reminder_sent = false;
        }
        E::AppointmentCancelled(_) => d.status = Some(VisitStatus::Cancelled),
        E::ReminderSent(_) => d.reminder_sent = true,
        E::NoShowRecorded(_) => d.status = Some(VisitStatus::NoShow),
        E::SessionOpened(e) => {
            session.session = uuid_of(stream).map(SessionId);
            session.identity_check_required = e.identity_check_required;
            session.signature_required = e.signature_required;
            d.status = Some(VisitStatus::InSession);
        }
        E::ParticipantJoined(e) if e.party == Party::Citizen => session.citizen_present = true,
        E::ParticipantLeft(e) if e.party == Party::Citizen => session.citizen_present = false,
        E::PrivacyNoticeAccepted(_) => session.privacy_notice_accepted = true,
        E::AdmittedFromWaitingRoom(e) => session.admitted_by = Some(e.clerk.clone()),
        E::IdentityVerified(_) => session.identity = Some("geprüft".into()),
        E::IdentityCheckFailed(_) => session.identity = Some("fehlgeschlagen".into()),
        E::DocumentUploaded(_) => session.documents += 1,
        E::FeedbackSubmitted(e) => session.feedback_score = Some(e.score),
        E::HandedOverToCaseSystem(e) => session.handed_over_to = Some(e.target.clone()),
        E::SessionEnded(e) => {
            d.status = Some(match e.outcome {
                SessionOutcome::Completed => VisitStatus::Completed,
                SessionOutcome::Aborted => VisitStatus::Aborted,
            });
        }
        E::FormStarted(e) => {
            if let Some(form) = uuid_of(stream) {
                d.forms.insert(
                    FormId(form),
                    FormDetail {
                        template: e.template.clone(),
                        service: e.service.clone(),
                        fields_changed: 0,
                        signature: None,
                        progress: FormProgress::InProgress,
                    },
                );
            }
        }
        E::FieldChanged(_) | E::SignatureRequested(_) | E::FormSigned(_) | E::FormLocked(_) => {
            let form = uuid_of(stream).and_then(|f| d.forms.get_mut(&FormId(f)));
            if let Some(form) = form {
                match event {
                    E::FieldChanged(_) => form.fields_changed += 1,
                    E::SignatureRequested(e) => {
                        form.signature = Some(e.method);
                        form.progress = FormProgress::SignatureRequested;
                    }
                    E::FormSigned(_) => form.progress = FormProgress::Signed,
                    _ => form.progress = FormProgress::Locked,
                }
            }
        }
        E::PaymentRequested(e) => {
            if let Some(payment) = uuid_of(stream) {
                d.payment = Some(PaymentDetail {
                    payment: PaymentId(payment),
                    amount: e.amount,
                    method: None,
                    progress: PaymentProgress::Requested,
                });
            }
        }
        E::PaymentMethodChosen(e) => {
            if let Some(p) = &mut d.payment {
                p.method = Some(e.method.clone());
            }
        }
        E::PaymentTransactionCreated(_)
        | E::PaymentAuthorized(_)
        | E::PaymentCaptured(_)
        | E::PaymentFailed(_)
        | E::PaymentRefunded(_) => {
            if let Some(p) = &mut d.payment {
                p.progress = match event {
                    E::PaymentTransactionCreated(_) => PaymentProgress::Pending,
                    E::PaymentAuthorized(_) => PaymentProgress::Authorized,
                    E::PaymentCaptured(_) => PaymentProgress::Captured,
                    E::PaymentFailed(_) => PaymentProgress::Failed,
                    _ => PaymentProgress::Refunded,
                };
            }
        }
        _ => {}
    }
    if *session != SessionDetail::default() {
        d.session = Some(std::mem::take(session));
    }
}

impl AppointmentDetail {
    /// What the citizen has to have ready, from the tenant's catalogue, without repeats.
    pub fn documents_to_bring(&self, tenant: &Tenant) -> Vec<String> {
        tenant.documents_to_bring(&self.services)
    }
}

pub async fn detail(
    models: &dyn ReadModelStore,
    appointment: AppointmentId,
) -> Result<Option<AppointmentDetail>, StoreError> {
    let key = detail_key(appointment);
    Ok(models
        .get(NAME, std::slice::from_ref(&key))
        .await?
        .into_iter()
        .next()
        .and_then(|(_, v)| serde_json::from_value(v).ok()))
}
