//! The retention report: per tenant and data subject, when the retention period started, when
//! the purge is due, and when it was executed and verified. No personal data: ids and dates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use videoamt_core::domain::events::{FinalState, PurgeExecuted};
use videoamt_core::domain::{AppointmentId, DomainEvent, SubjectId};
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;

use crate::{Projection, Recorded};

pub const NAME: &str = "retention-report";

/// How long after its due time a purge may still be pending before it counts as overdue: the
/// scheduler runs continuously, so a day late means something is wrong.
pub const GRACE: Duration = Duration::days(1);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubjectRetention {
    pub subject: Option<SubjectId>,
    pub tenant: String,
    pub appointment: Option<AppointmentId>,
    pub final_state: Option<FinalState>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub final_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub due: Option<OffsetDateTime>,
    /// Why the due purge waits, while it does.
    #[serde(default)]
    pub blocked: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub executed_at: Option<OffsetDateTime>,
    /// What the purge removed.
    #[serde(default)]
    pub purge: Option<PurgeExecuted>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    /// What the verifier checked.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Where the last failed verification found traces (cleared by a passing one).
    #[serde(default)]
    pub failed_places: Vec<String>,
}

/// Where a subject stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionState {
    /// The appointment has not reached its final state yet.
    Active,
    Scheduled,
    Due,
    Overdue,
    /// Due, but held back until a case-system handover happens.
    Blocked,
    Executed,
    Verified,
}

impl RetentionState {
    pub fn german(self) -> &'static str {
        match self {
            RetentionState::Active => "aktiv",
            RetentionState::Scheduled => "geplant",
            RetentionState::Due => "fällig",
            RetentionState::Overdue => "überfällig",
            RetentionState::Blocked => "zurückgestellt",
            RetentionState::Executed => "gelöscht",
            RetentionState::Verified => "geprüft",
        }
    }
}

impl SubjectRetention {
    pub fn state(&self, now: OffsetDateTime) -> RetentionState {
        match (self.verified_at, self.executed_at, self.due) {
            (Some(_), _, _) => RetentionState::Verified,
            (None, Some(_), _) => RetentionState::Executed,
            (None, None, None) => RetentionState::Active,
            (None, None, Some(_)) if self.blocked.is_some() => RetentionState::Blocked,
            (None, None, Some(due)) if now < due => RetentionState::Scheduled,
            (None, None, Some(due)) if now < due + GRACE => RetentionState::Due,
            (None, None, Some(_)) => RetentionState::Overdue,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionReport;

fn subject_key(tenant: &str, stream: &str) -> Option<DocKey> {
    let subject = stream.strip_prefix("subject-")?;
    Some(DocKey::new("subject", format!("{tenant}/{subject}")))
}

impl Projection for RetentionReport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _docs: &Docs) -> Vec<DocKey> {
        subject_key(
            event.envelope.meta.tenant.as_str(),
            event.envelope.stream_id.as_str(),
        )
        .into_iter()
        .collect()
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let Some(key) = self.keys(event, docs).pop() else {
            return;
        };
        let at = event.envelope.meta.recorded_at;
        let tenant = event.envelope.meta.tenant.as_str();
        docs.update(key, |r: &mut SubjectRetention| match event.event {
            DomainEvent::SubjectKeyIssued(e) => {
                r.subject = Some(e.subject);
                r.appointment = Some(e.appointment);
                tenant.clone_into(&mut r.tenant);
            }
            DomainEvent::PurgeScheduled(e) => {
                r.final_state = Some(e.final_state);
                r.final_at = Some(e.final_at);
                r.due = Some(e.due);
            }
            DomainEvent::PurgeBlocked(e) => {
                r.blocked = Some(e.reason.clone());
                r.retry_at = Some(e.retry_at);
            }
            DomainEvent::PurgeExecuted(e) => {
                r.executed_at = Some(at);
                r.purge = Some(e.clone());
                r.blocked = None;
                r.retry_at = None;
            }
            DomainEvent::DeletionVerified(e) => {
                r.verified_at = Some(at);
                r.checks.clone_from(&e.checks);
                r.failed_places.clear();
            }
            DomainEvent::DeletionVerificationFailed(e) => r.failed_places.clone_from(&e.places),
            _ => {}
        });
    }
}

/// The counts of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TenantCounts {
    pub tenant: String,
    pub counts: BTreeMap<RetentionState, u64>,
}

/// Every subject of a tenant (all tenants when `None`), ordered by tenant and due date.
pub async fn subjects(
    models: &dyn ReadModelStore,
    tenant: Option<&str>,
) -> Result<Vec<SubjectRetention>, StoreError> {
    let prefix = tenant.map(|t| format!("{t}/")).unwrap_or_default();
    let mut rows: Vec<SubjectRetention> = models
        .list(NAME, "subject", &prefix)
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect();
    rows.sort_by(|a, b| (&a.tenant, a.due).cmp(&(&b.tenant, b.due)));
    Ok(rows)
}

/// Counts per tenant and state at `now`.
pub fn counts(rows: &[SubjectRetention], now: OffsetDateTime) -> Vec<TenantCounts> {
    let mut by_tenant: BTreeMap<&str, BTreeMap<RetentionState, u64>> = BTreeMap::new();
    for row in rows {
        *by_tenant
            .entry(&row.tenant)
            .or_default()
            .entry(row.state(now))
            .or_default() += 1;
    }
    by_tenant
        .into_iter()
        .map(|(tenant, counts)| TenantCounts {
            tenant: tenant.to_owned(),
            counts,
        })
        .collect()
}
