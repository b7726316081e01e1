//! The clerks' schedule: per tenant, department and local day, the appointments with their
//! concerns, status and the clerk who took them. A clerk's day or week is the union of the
//! days of the departments they work for.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::Date;
use videoamt_core::domain::events::SessionOutcome;
use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;
use videoamt_core::tenant::{BookingChannel, ClerkId, DepartmentId, ServiceId, Tenant};

use crate::{Projection, Recorded, tenant_of};

pub const NAME: &str = "clerk-schedule";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    Booked,
    InSession,
    Completed,
    Aborted,
    Cancelled,
    NoShow,
}

impl VisitStatus {
    pub fn german(self) -> &'static str {
        match self {
            VisitStatus::Booked => "gebucht",
            VisitStatus::InSession => "läuft",
            VisitStatus::Completed => "abgeschlossen",
            VisitStatus::Aborted => "abgebrochen",
            VisitStatus::Cancelled => "abgesagt",
            VisitStatus::NoShow => "nicht erschienen",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEntry {
    pub appointment: AppointmentId,
    pub department: DepartmentId,
    /// RFC 3339 instants.
    pub start: String,
    pub end: String,
    pub services: Vec<ServiceId>,
    pub channel: BookingChannel,
    pub status: VisitStatus,
    /// Who admitted the citizen, once the session started.
    pub clerk: Option<ClerkId>,
    pub invited_by: Option<ClerkId>,
}

/// Where an appointment currently sits: the key of its entry, `{tenant}/{department}/{date}/{id}`.
/// One document per appointment, so a busy day is never rewritten as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Place {
    entry: String,
}

#[derive(Debug, Clone)]
pub struct ClerkSchedule {
    tenants: Arc<Vec<Tenant>>,
}

impl ClerkSchedule {
    pub fn new(tenants: Arc<Vec<Tenant>>) -> Self {
        Self { tenants }
    }

    /// The entry key of an appointment starting at `at`, in the event's tenant's local day.
    fn entry_at(
        &self,
        event: Recorded<'_>,
        department: &DepartmentId,
        at: time::OffsetDateTime,
        appointment: AppointmentId,
    ) -> Option<String> {
        let tenant = tenant_of(&self.tenants, &event.envelope.meta.tenant)?;
        let day = day_name(tenant.id.as_str(), department, tenant.local(at).date());
        Some(format!("{day}/{appointment}"))
    }
}

/// The name of a department's day: its entries' keys start with it and a `/`.
pub fn day_name(tenant: &str, department: &DepartmentId, date: Date) -> String {
    format!("{tenant}/{department}/{date}")
}

/// The local day of a document, for the memory bound ([`crate::memory`]): an entry's from its
/// key, a place's from the entry it names.
pub fn day_of(key: &DocKey, doc: Option<&serde_json::Value>) -> Option<Date> {
    match key.kind.as_str() {
        "entry" => crate::memory::day_in(&key.key, 2),
        "place" => crate::memory::day_in(doc?.get("entry")?.as_str()?, 2),
        _ => None,
    }
}

fn place_key(appointment: AppointmentId) -> DocKey {
    DocKey::new("place", appointment.to_string())
}

fn relevant(event: &DomainEvent) -> bool {
    use DomainEvent as E;
    matches!(
        event,
        E::AppointmentBooked(_)
            | E::AppointmentRescheduled(_)
            | E::AppointmentCancelled(_)
            | E::NoShowRecorded(_)
            | E::SessionOpened(_)
            | E::AdmittedFromWaitingRoom(_)
            | E::SessionEnded(_)
    )
}

fn entry_key(key: String) -> DocKey {
    DocKey::new("entry", key)
}

impl Projection for ClerkSchedule {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey> {
        if !relevant(event.event) || matches!(event.event, DomainEvent::AppointmentBooked(_)) {
            return vec![];
        }
        let Some(appointment) = event.appointment else {
            return vec![];
        };
        let mut keys = vec![place_key(appointment)];
        if let Some(place) = docs.get::<Place>(&place_key(appointment)) {
            keys.push(entry_key(place.entry));
        }
        keys
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        if !relevant(event.event) {
            return;
        }
        let Some(appointment) = event.appointment else {
            return;
        };
        if let DomainEvent::AppointmentBooked(e) = event.event {
            let Some(key) = self.entry_at(event, &e.department, e.start, appointment) else {
                return;
            };
            let entry = ScheduleEntry {
                appointment,
                department: e.department.clone(),
                start: crate::audit::rfc3339(e.start),
                end: crate::audit::rfc3339(e.end),
                services: e.services.clone(),
                channel: e.channel,
                status: VisitStatus::Booked,
                clerk: None,
                invited_by: e.invited_by.clone(),
            };
            docs.put(entry_key(key.clone()), entry);
            docs.put(place_key(appointment), Place { entry: key });
            return;
        }
        let Some(place) = docs.get::<Place>(&place_key(appointment)) else {
            return;
        };
        let key = entry_key(place.entry);
        let Some(mut entry) = docs.get::<ScheduleEntry>(&key) else {
            return;
        };
        match event.event {
            DomainEvent::AppointmentRescheduled(e) => {
                let Some(moved) = self.entry_at(event, &entry.department, e.start, appointment)
                else {
                    return;
                };
                entry.start = crate::audit::rfc3339(e.start);
                entry.end = crate::audit::rfc3339(e.end);
                docs.delete(key);
                docs.put(entry_key(moved.clone()), entry);
                docs.put(place_key(appointment), Place { entry: moved });
                return;
            }
            DomainEvent::AppointmentCancelled(_) => entry.status = VisitStatus::Cancelled,
            DomainEvent::NoShowRecorded(_) => entry.status = VisitStatus::NoShow,
            DomainEvent::SessionOpened(_) => entry.status = VisitStatus::InSession,
            DomainEvent::AdmittedFromWaitingRoom(a) => entry.clerk = Some(a.clerk.clone()),
            DomainEvent::SessionEnded(s) => {
                entry.status = match s.outcome {
                    SessionOutcome::Completed => VisitStatus::Completed,
                    SessionOutcome::Aborted => VisitStatus::Aborted,
                };
            }
            _ => return,
        }
        docs.put(key, entry);
    }
}

/// One day of a clerk's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayPlan {
    pub date: Date,
    pub appointments: Vec<ScheduleEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("unbekannte Sachbearbeitung {0}")]
    UnknownClerk(ClerkId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A clerk's plan for `days` days from `from`: every appointment of their departments, by start.
pub async fn for_clerk(
    models: &dyn ReadModelStore,
    tenant: &Tenant,
    clerk: &ClerkId,
    from: Date,
    days: u16,
) -> Result<Vec<DayPlan>, ScheduleError> {
    let departments = &tenant
        .clerks
        .get(clerk)
        .ok_or_else(|| ScheduleError::UnknownClerk(clerk.clone()))?
        .departments;
    Ok(for_departments(models, tenant, departments, from, days).await?)
}

/// The plan of some departments for `days` days from `from`, each day's appointments by start.
pub async fn for_departments<'a>(
    models: &dyn ReadModelStore,
    tenant: &Tenant,
    departments: impl IntoIterator<Item = &'a DepartmentId> + Clone,
    from: Date,
    days: u16,
) -> Result<Vec<DayPlan>, StoreError> {
    let dates: Vec<Date> = (0..days)
        .filter_map(|d| from.checked_add(time::Duration::days(i64::from(d))))
        .collect();
    let mut plans = Vec::with_capacity(dates.len());
    for date in dates {
        let mut appointments = Vec::new();
        for department in departments.clone() {
            let prefix = format!("{}/", day_name(tenant.id.as_str(), department, date));
            appointments.extend(
                models
                    .list(NAME, "entry", &prefix)
                    .await?
                    .into_iter()
                    .filter_map(|(_, v)| serde_json::from_value::<ScheduleEntry>(v).ok()),
            );
        }
        appointments.sort_by(|a, b| a.start.cmp(&b.start));
        plans.push(DayPlan { date, appointments });
    }
    Ok(plans)
}
