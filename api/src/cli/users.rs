//! `videoamt user`: the operator's verbs over staff accounts, the same lifecycle the admin's
//! pages use (`app::accounts`), recorded with the actor `admin:cli`. Passwords are read from
//! standard input, never from the command line; a reset prints a one-time link instead.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use time::OffsetDateTime;
use videoamt_core::domain::account::{Login, StaffRole};
use videoamt_core::event::{Actor, ActorRole};
use videoamt_core::tenant::Tenant;
use videoamt_projections::Projection;

use crate::app::System;
use crate::app::accounts::{self, AccountInfo};

/// The municipality called `tenant`, or a German error naming the known ones.
pub(crate) fn tenant<'s>(system: &'s System, tenant: &str) -> anyhow::Result<&'s Tenant> {
    system
        .tenants
        .iter()
        .find(|t| t.id.as_str() == tenant)
        .ok_or_else(|| {
            let names: Vec<&str> = system.tenants.iter().map(|t| t.id.as_str()).collect();
            anyhow::anyhow!(
                "Die Kommune {tenant:?} gibt es nicht; bekannt: {}",
                names.join(", ")
            )
        })
}

pub(crate) fn login(raw: &str) -> anyhow::Result<Login> {
    Login::parse(raw).ok_or_else(|| {
        anyhow::anyhow!(
            "Der Anmeldename {raw:?} ist ungültig: 2 bis 48 Zeichen aus a–z, 0–9, Punkt, Bindestrich und Unterstrich, beginnend mit einem Buchstaben."
        )
    })
}

pub(crate) fn role(raw: &str) -> anyhow::Result<StaffRole> {
    StaffRole::parse(raw).ok_or_else(|| {
        anyhow::anyhow!("Die Rolle {raw:?} gibt es nicht; möglich: clerk, auditor, dpo, admin")
    })
}

fn actor() -> Actor {
    Actor::new(ActorRole::Admin, "cli").expect("a fixed valid actor id")
}

/// Brings the accounts read model to the log's end: the list and the last-admin rule read it.
async fn catch_up(system: &System) -> anyhow::Result<()> {
    let projection: Vec<Arc<dyn Projection>> =
        vec![Arc::new(videoamt_projections::accounts::Accounts)];
    videoamt_projections::runner::Runner::new(system.store.clone(), system.store.clone())
        .catch_up(&projection)
        .await?;
    Ok(())
}

/// `videoamt user add`: the password comes from standard input, never from the command line
/// (where other users of the machine could read it).
pub(crate) async fn add(
    system: &System,
    tenant: &str,
    role: &str,
    departments: &[String],
    login: &str,
) -> anyhow::Result<ExitCode> {
    let t = self::tenant(system, tenant)?;
    let role = self::role(role)?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    crate::http::staff::create_account(
        system,
        t,
        login,
        role,
        departments,
        password,
        OffsetDateTime::now_utc(),
    )
    .await?;
    println!("Konto {login} ({}) in {} angelegt.", role.label(), t.name);
    Ok(ExitCode::SUCCESS)
}

fn state(tenant: &Tenant, a: &AccountInfo) -> String {
    let at = |t: OffsetDateTime| {
        let local = tenant.local(t);
        format!(
            "{} {:02}:{:02}",
            videoamt_core::german::date(local.date()),
            local.hour(),
            local.minute()
        )
    };
    let mut parts = vec![if a.active { "aktiv" } else { "deaktiviert" }.to_owned()];
    if a.directory {
        parts.push("Verzeichnisdienst".to_owned());
    }
    if let Some(until) = a.locked_until {
        parts.push(format!("gesperrt bis {}", at(until)));
    }
    if a.failed_logins > 0 {
        parts.push(format!("{} Fehlversuche", a.failed_logins));
    }
    if let Some(expires) = a.link_expires {
        parts.push(format!("Passwort offen, Link bis {}", at(expires)));
    }
    parts.join(", ")
}

/// `videoamt user list`: the municipality's accounts, as a table or JSON.
pub(crate) async fn list(system: &System, tenant: &str, json: bool) -> anyhow::Result<ExitCode> {
    let t = self::tenant(system, tenant)?;
    catch_up(system).await?;
    let infos = accounts::list(system, &t.id, OffsetDateTime::now_utc()).await?;
    let mut out = std::io::stdout().lock();
    if json {
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let rows: Vec<serde_json::Value> = infos
            .iter()
            .map(|a| {
                serde_json::json!({
                    "login": a.login,
                    "role": a.role,
                    "departments": a.departments,
                    "active": a.active,
                    "locked_until": a.locked_until.map(rfc),
                    "failed_logins": a.failed_logins,
                    "password_link_expires": a.link_expires.map(rfc),
                    "directory": a.directory,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<24} {:<16} {:<28} Zustand",
        "Anmeldename", "Rolle", "Bereiche"
    )?;
    for a in &infos {
        let departments: Vec<&str> = a.departments.iter().map(|d| d.as_str()).collect();
        let departments = if departments.is_empty() {
            "–".to_owned()
        } else {
            departments.join(",")
        };
        writeln!(
            out,
            "{:<24} {:<16} {:<28} {}",
            a.login.as_str(),
            a.role.label(),
            departments,
            state(t, a)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What `videoamt user` changes about one account.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    Disable,
    Enable,
    SetRoles {
        role: String,
        departments: Vec<String>,
    },
    Reset {
        unlock: bool,
    },
}

/// `videoamt user disable|enable|set-roles|reset`.
pub(crate) async fn change(
    system: &System,
    tenant: &str,
    login: &str,
    change: Change,
) -> anyhow::Result<ExitCode> {
    let t = self::tenant(system, tenant)?;
    let login = self::login(login)?;
    let now = OffsetDateTime::now_utc();
    let actor = actor();
    catch_up(system).await?;
    let said = match change {
        Change::Disable => {
            accounts::deactivate(system, t, &actor, login.clone(), now).await?;
            format!(
                "Konto {login} in {} deaktiviert; seine Sitzungen enden.",
                t.name
            )
        }
        Change::Enable => {
            accounts::reactivate(system, t, &actor, login.clone(), now).await?;
            format!("Konto {login} in {} wieder aktiviert.", t.name)
        }
        Change::SetRoles { role, departments } => {
            let role = self::role(&role)?;
            let departments = videoamt_core::domain::account::departments(&departments);
            accounts::change_role(system, t, &actor, login.clone(), role, departments, now).await?;
            format!("Konto {login} in {}: Rolle {}.", t.name, role.label())
        }
        Change::Reset { unlock: true } => {
            accounts::unlock(system, t, &actor, login.clone(), now).await?;
            format!("Sperre von {login} in {} aufgehoben.", t.name)
        }
        Change::Reset { unlock: false } => {
            let link = accounts::reset(system, t, &actor, login.clone(), now).await?;
            let base = system
                .settings
                .public_url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
            let local = t.local(link.expires);
            format!(
                "Das bisherige Passwort von {login} in {} gilt nicht mehr. Einmal-Link zum \
                 Festlegen eines neuen Passworts (gültig bis {} {:02}:{:02} Uhr, einmal; bitte \
                 sicher weitergeben):\n{}",
                t.name,
                videoamt_core::german::date(local.date()),
                local.hour(),
                local.minute(),
                link.url(base.trim_end_matches('/'))
            )
        }
    };
    println!("{said}");
    Ok(ExitCode::SUCCESS)
}
