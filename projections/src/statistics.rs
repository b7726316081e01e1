//! Pilot statistics per tenant, department and ISO week of the appointment: sessions (by
//! outcome: completed or technically aborted) and no-shows, median and p90 of the session duration and of the booking lead time, the shares of
//! sessions with identity check, signature and payment, and the feedback scores.
//!
//! A visit counts in the week of its (last) start, once it is final: the session ended, or the
//! citizen did not come. Facts arriving later (feedback, a payment captured afterwards) update
//! the visit in place; each week keeps its visits by appointment, so an update never counts
//! twice. Cancelled appointments are not visits.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use videoamt_core::domain::events::SessionOutcome;
use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;
use videoamt_core::tenant::{DepartmentId, Tenant};

use crate::{Projection, Recorded, tenant_of};

pub const NAME: &str = "pilot-statistics";

/// What is known about one appointment so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Facts {
    department: Option<DepartmentId>,
    #[serde(with = "time::serde::rfc3339::option")]
    start: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    booked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    admitted_at: Option<OffsetDateTime>,
    /// The row the visit is counted in once final: `{tenant}/{department}/{week}/{id}`.
    bucket: Option<String>,
    visit: Visit,
}

/// One visit as counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub outcome: Option<SessionOutcome>,
    pub no_show: bool,
    /// From admission out of the waiting room to the end of the session.
    pub duration_seconds: Option<i64>,
    /// From the booking to the (last) start of the appointment.
    pub lead_seconds: i64,
    pub identity_checked: bool,
    pub signed: bool,
    pub paid: bool,
    pub feedback: Option<u8>,
}

/// The visits of one department's week, by appointment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeekVisits {
    pub visits: BTreeMap<AppointmentId, Visit>,
}

#[derive(Debug, Clone)]
pub struct PilotStatistics {
    tenants: Arc<Vec<Tenant>>,
}

impl PilotStatistics {
    pub fn new(tenants: Arc<Vec<Tenant>>) -> Self {
        Self { tenants }
    }

    fn bucket_of(
        &self,
        event: Recorded<'_>,
        facts: &Facts,
        appointment: AppointmentId,
    ) -> Option<String> {
        if let Some(bucket) = &facts.bucket {
            return Some(bucket.clone());
        }
        let tenant = tenant_of(&self.tenants, &event.envelope.meta.tenant)?;
        let date = tenant.local(facts.start?).date();
        let (year, week, _) = date.to_iso_week_date();
        Some(format!(
            "{}/{}/{year}-W{week:02}/{appointment}",
            tenant.id,
            facts.department.as_ref()?
        ))
    }
}

fn facts_key(appointment: AppointmentId) -> DocKey {
    DocKey::new("visit", appointment.to_string())
}

fn relevant(event: &DomainEvent) -> bool {
    use DomainEvent as E;
    matches!(
        event,
        E::AppointmentBooked(_)
            | E::AppointmentRescheduled(_)
            | E::NoShowRecorded(_)
            | E::SessionOpened(_)
            | E::AdmittedFromWaitingRoom(_)
            | E::IdentityVerified(_)
            | E::FeedbackSubmitted(_)
            | E::SessionEnded(_)
            | E::FormStarted(_)
            | E::FormSigned(_)
            | E::PaymentRequested(_)
            | E::PaymentCaptured(_)
    )
}

/// Whether the event makes the visit final, so it starts counting.
fn finalizes(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::NoShowRecorded(_) | DomainEvent::SessionEnded(_)
    )
}

impl Projection for PilotStatistics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, docs: &Docs) -> Vec<DocKey> {
        if !relevant(event.event) {
            return vec![];
        }
        let Some(appointment) = event.appointment else {
            return vec![];
        };
        let mut keys = vec![facts_key(appointment)];
        if let Some(facts) = docs.get::<Facts>(&facts_key(appointment))
            && (facts.bucket.is_some() || finalizes(event.event))
        {
            keys.extend(
                self.bucket_of(event, &facts, appointment)
                    .map(|b| DocKey::new("row", b)),
            );
        }
        keys
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        use DomainEvent as E;
        if !relevant(event.event) {
            return;
        }
        let Some(appointment) = event.appointment else {
            return;
        };
        let at = event.envelope.meta.recorded_at;
        let mut facts: Facts = docs.get(&facts_key(appointment)).unwrap_or_default();
        let visit = &mut facts.visit;
        match event.event {
            E::AppointmentBooked(e) => {
                facts.department = Some(e.department.clone());
                facts.start = Some(e.start);
                facts.booked_at = Some(at);
            }
            E::AppointmentRescheduled(e) => facts.start = Some(e.start),
            E::NoShowRecorded(_) => visit.no_show = true,
            E::AdmittedFromWaitingRoom(_) => {
                facts.admitted_at.get_or_insert(at);
            }
            E::IdentityVerified(_) => visit.identity_checked = true,
            E::FeedbackSubmitted(e) => visit.feedback = Some(e.score),
            E::SessionEnded(e) => {
                visit.outcome = Some(e.outcome);
                visit.duration_seconds = facts.admitted_at.map(|a| (at - a).whole_seconds());
            }
            E::FormSigned(_) => visit.signed = true,
            E::PaymentCaptured(_) => visit.paid = true,
            _ => {}
        }
        if let (Some(start), Some(booked)) = (facts.start, facts.booked_at) {
            facts.visit.lead_seconds = (start - booked).whole_seconds();
        }
        if (facts.bucket.is_some() || finalizes(event.event))
            && let Some(bucket) = self.bucket_of(event, &facts, appointment)
        {
            docs.put(DocKey::new("row", bucket.clone()), facts.visit.clone());
            facts.bucket = Some(bucket);
        }
        docs.put(facts_key(appointment), facts);
    }
}

/// One line of the statistics: a department's ISO week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekRow {
    pub tenant: String,
    pub department: String,
    /// `YYYY-Www`.
    pub week: String,
    pub sessions: u64,
    /// Of the sessions: ended with the concern done, and technically aborted.
    pub completed: u64,
    pub aborted: u64,
    pub no_shows: u64,
    pub duration_median_minutes: Option<f64>,
    pub duration_p90_minutes: Option<f64>,
    pub lead_median_hours: Option<f64>,
    pub lead_p90_hours: Option<f64>,
    /// Shares of the sessions, 0.0–1.0.
    pub identity_check_share: Option<f64>,
    pub signature_share: Option<f64>,
    pub payment_share: Option<f64>,
    /// How many gave each score, 1 to 5.
    pub feedback: [u64; 5],
}

/// The median; for an even count the mean of the two middle values.
pub fn median(values: &[i64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2] as f64),
        _ => Some((v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0),
    }
}

/// The nearest-rank percentile: the smallest value with at least `p`% of values at or below.
/// The one percentile of the product: statistics and benchmarks both use it.
pub fn nearest_rank<T: Ord + Copy>(values: &[T], p: u32) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return None;
    }
    let rank = (v.len() * p as usize).div_ceil(100).clamp(1, v.len());
    Some(v[rank - 1])
}

/// [`nearest_rank`] of seconds, as the statistics show them.
pub fn percentile(values: &[i64], p: u32) -> Option<f64> {
    nearest_rank(values, p).map(|v| v as f64)
}

impl WeekVisits {
    pub fn row(&self, tenant: &str, department: &str, week: &str) -> WeekRow {
        let held: Vec<&Visit> = self
            .visits
            .values()
            .filter(|v| v.outcome.is_some())
            .collect();
        let durations: Vec<i64> = held.iter().filter_map(|v| v.duration_seconds).collect();
        let leads: Vec<i64> = self.visits.values().map(|v| v.lead_seconds).collect();
        let share = |f: fn(&Visit) -> bool| {
            (!held.is_empty())
                .then(|| held.iter().filter(|v| f(v)).count() as f64 / held.len() as f64)
        };
        let mut feedback = [0u64; 5];
        for score in held.iter().filter_map(|v| v.feedback) {
            if let Some(slot) = feedback.get_mut(usize::from(score).wrapping_sub(1)) {
                *slot += 1;
            }
        }
        WeekRow {
            tenant: tenant.to_owned(),
            department: department.to_owned(),
            week: week.to_owned(),
            sessions: held.len() as u64,
            completed: held
                .iter()
                .filter(|v| v.outcome == Some(SessionOutcome::Completed))
                .count() as u64,
            aborted: held
                .iter()
                .filter(|v| v.outcome == Some(SessionOutcome::Aborted))
                .count() as u64,
            no_shows: self.visits.values().filter(|v| v.no_show).count() as u64,
            duration_median_minutes: median(&durations).map(|s| s / 60.0),
            duration_p90_minutes: percentile(&durations, 90).map(|s| s / 60.0),
            lead_median_hours: median(&leads).map(|s| s / 3600.0),
            lead_p90_hours: percentile(&leads, 90).map(|s| s / 3600.0),
            identity_check_share: share(|v| v.identity_checked),
            signature_share: share(|v| v.signed),
            payment_share: share(|v| v.paid),
            feedback,
        }
    }
}

/// Every week row of a tenant (all tenants when `None`), by tenant, department and week.
pub async fn rows(
    models: &dyn ReadModelStore,
    tenant: Option<&str>,
) -> Result<Vec<WeekRow>, StoreError> {
    let prefix = tenant.map(|t| format!("{t}/")).unwrap_or_default();
    let mut weeks: BTreeMap<(String, String, String), WeekVisits> = BTreeMap::new();
    for (key, value) in models.list(NAME, "row", &prefix).await? {
        let Ok(visit) = serde_json::from_value::<Visit>(value) else {
            continue;
        };
        let parts: Vec<&str> = key.splitn(4, '/').collect();
        let [t, d, w, id] = parts[..] else {
            continue;
        };
        let Ok(id) = uuid::Uuid::parse_str(id) else {
            continue;
        };
        weeks
            .entry((t.to_owned(), d.to_owned(), w.to_owned()))
            .or_default()
            .visits
            .insert(AppointmentId(id), visit);
    }
    Ok(weeks
        .into_iter()
        .map(|((t, d, w), week)| week.row(&t, &d, &w))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7]), Some(7.0));
        assert_eq!(median(&[9, 1, 5]), Some(5.0));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2.5));
    }

    #[test]
    fn p90_is_nearest_rank() {
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 90), Some(9.0));
        let eleven: Vec<i64> = (1..=11).collect();
        // ceil(0.9 * 11) = 10th smallest.
        assert_eq!(percentile(&eleven, 90), Some(10.0));
        assert_eq!(percentile(&[42], 90), Some(42.0));
        assert_eq!(percentile(&[], 90), None);
    }
}
