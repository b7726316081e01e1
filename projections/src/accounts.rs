//! The staff accounts of each municipality, by login, with their role: which accounts there
//! are, for the admin's list and for the last-admin rule, which reads the streams of the admins
//! named here (ADR 0021). What an account is now (active, locked, its departments) is read from
//! its stream; this read model only has to know that it exists.

use serde::{Deserialize, Serialize};
use videoamt_core::domain::DomainEvent;
use videoamt_core::domain::account::StaffRole;
use videoamt_core::readmodel::{DocKey, Docs, ReadModelStore};
use videoamt_core::store::StoreError;

use crate::{Projection, Recorded};

pub const NAME: &str = "accounts";

/// One account, under key `{tenant}/{login}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub login: String,
    pub role: StaffRole,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Accounts;

fn key(event: Recorded<'_>) -> Option<DocKey> {
    let stream = event.envelope.stream_id.as_str();
    let (_, login) = stream.strip_prefix("account-")?.split_once(':')?;
    Some(DocKey::new(
        "account",
        format!("{}/{login}", event.envelope.meta.tenant),
    ))
}

impl Projection for Accounts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn keys(&self, event: Recorded<'_>, _docs: &Docs) -> Vec<DocKey> {
        match event.event {
            DomainEvent::AccountCreated(_) | DomainEvent::AccountRoleChanged(_) => {
                key(event).into_iter().collect()
            }
            _ => vec![],
        }
    }

    fn apply(&self, event: Recorded<'_>, docs: &mut Docs) {
        let Some(key) = key(event) else {
            return;
        };
        match event.event {
            DomainEvent::AccountCreated(e) => docs.put(
                key,
                Listed {
                    login: e.login.to_string(),
                    role: e.role,
                },
            ),
            DomainEvent::AccountRoleChanged(e) => {
                if let Some(mut listed) = docs.get::<Listed>(&key) {
                    listed.role = e.role;
                    docs.put(key, listed);
                }
            }
            _ => {}
        }
    }
}

/// The accounts of `tenant` as far as the projection has seen the log, by login.
pub async fn listed(models: &dyn ReadModelStore, tenant: &str) -> Result<Vec<Listed>, StoreError> {
    Ok(models
        .list(NAME, "account", &format!("{tenant}/"))
        .await?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value::<Listed>(v).ok())
        .collect())
}
