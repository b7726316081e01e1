//! Free slots per tenant, department and local day, for booking.
//!
//! The document of a day is the [`CalendarState`] of its slot streams (and of its calendar-day
//! stream of schema 1), folded in global order with the deciders' `evolve`; the free starts are
//! computed from it and the tenant's opening hours with the same rule the booking decider
//! applies, so the offer and the decision cannot disagree.

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};
use videoamt_core::domain::calendar::CalendarState;
use videoamt_core::domain::{DomainError, DomainEvent, appointment::size_concerns};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;
use videoamt_core::tenant::{DepartmentId, ServiceId, Tenant};

use crate::{Projection, Recorded};

pub const NAME: &str = "free-slots";

#[derive(Debug, Clone, Copy, Default)]
pub struct FreeSlots;

/// `slot-{tenant}-{department}-{YYYY-MM-DD}-{HHMM}` and (schema 1)
/// `calendar-{tenant}-{department}-{YYYY-MM-DD}` → `{tenant}/{department}/{YYYY-MM-DD}`.
fn day_key(tenant: &str, stream: &str) -> Option<DocKey> {
    let (rest, suffix) = match stream.strip_prefix("slot-") {
        Some(rest) => (rest, "-HHMM".len()),
        None => (stream.strip_prefix("calendar-")?, 0),
    };
    let rest = rest.strip_prefix(tenant)?.strip_prefix('-')?;
    let rest = rest.get(..rest.len().checked_sub(suffix)?)?;
    let split = rest.len().checked_sub(11)?;
    let (department, date) = (rest.get(..split)?, rest.get(split + 1..)?);
    Some(DocKey::new("day", format!("{tenant}/{department}/{date}")))
}

/// The local day of a document, for the memory bound ([`crate::memory`]).
pub fn day_of(key: &DocKey, _doc: Option<&serde_json::Value>) -> Option<Date> {
    crate::memory::day_in(&key.key, 2)
}

/// The document of a department's day: its calendar, whose free starts a slot query reads.
pub fn key_of(tenant: &str, department: &DepartmentId, date: Date) -> DocKey {
    DocKey::new("day", format!("{tenant}/{department}/{date}"))
}

impl Projection for FreeSlots {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _docs: &Docs) -> Vec<DocKey> {
        match event.event {
            DomainEvent::SlotsReserved(_) | DomainEvent::SlotsReleased(_) => day_key(
                event.envelope.meta.tenant.as_str(),
                event.envelope.stream_id.as_str(),
            )
            .into_iter()
            .collect(),
            _ => vec![],
        }
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        if let Some(key) = self.keys(event, docs).pop() {
            docs.update(key, |day: &mut CalendarState| {
                *day = std::mem::take(day).evolve(event.event);
            });
        }
    }
}

/// Every start on `date` where the concerns fit, later than `now`, as instants.
pub async fn free_slots(
    models: &dyn ReadModelStore,
    tenant: &Tenant,
    services: &[ServiceId],
    date: Date,
    now: OffsetDateTime,
) -> Result<Vec<OffsetDateTime>, FreeSlotsError> {
    let first = services.first().ok_or(DomainError::NoServices)?;
    let department = tenant
        .service(first)
        .ok_or_else(|| DomainError::UnknownService(first.clone()))?
        .department
        .clone();
    let (dept, slots) = size_concerns(tenant, &department, services)?;
    let key = key_of(tenant.id.as_str(), &department, date);
    let day: CalendarState = models
        .get(NAME, std::slice::from_ref(&key))
        .await?
        .into_iter()
        .next()
        .and_then(|(_, v)| serde_json::from_value(v).ok())
        .unwrap_or_default();
    Ok(day
        .free_starts(dept, date.weekday(), slots)
        .into_iter()
        .filter_map(|minute| {
            let time =
                Time::from_hms(u8::try_from(minute / 60).ok()?, (minute % 60) as u8, 0).ok()?;
            Some(tenant.instant(PrimitiveDateTime::new(date, time)))
        })
        .filter(|start| *start > now)
        .collect())
}

#[derive(Debug, thiserror::Error)]
pub enum FreeSlotsError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_streams_and_day_streams_of_a_day_share_its_document() {
        let day = Some(DocKey::new("day", "ettlingen/buergerbuero/2026-11-24"));
        assert_eq!(
            day_key("ettlingen", "slot-ettlingen-buergerbuero-2026-11-24-0915"),
            day
        );
        assert_eq!(
            day_key("ettlingen", "calendar-ettlingen-buergerbuero-2026-11-24"),
            day
        );
        assert_eq!(
            day_key("stuttgart", "slot-ettlingen-buergerbuero-2026-11-24-0915"),
            None
        );
        assert_eq!(day_key("ettlingen", "slot-ettlingen-x"), None);
    }
}
