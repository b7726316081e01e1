//! The municipalities the product runs for: the tenant files of a folder (`--tenants DIR`,
//! `VIDEOAMT_TENANTS`), or, without one, the two examples shipped inside the binary.
//!
//! A folder holds one `*.toml` file per municipality (other files are ignored, so a README or
//! a backup `~` file may sit beside them). Every file is checked; the errors of all files are
//! collected, each as `file:line: message`, so an operator fixes them in one go. Two files
//! naming the same tenant id are refused. Changes take effect at the next start (ADR 0020).

use std::path::{Path, PathBuf};

use videoamt_core::directory::{ClientSecret, DirectorySignOn};
use videoamt_core::tenant::{ConfigError, Tenant, example_tenants};

/// Why a folder of tenant files was refused: every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsError(pub Vec<String>);

impl std::fmt::Display for TenantsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for TenantsError {}

/// The tenant files of `dir`, sorted by name.
fn files(dir: &Path) -> Result<Vec<PathBuf>, TenantsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        TenantsError(vec![format!(
            "{}: cannot read the tenants folder: {e}",
            dir.display()
        )])
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every tenant file of `dir`, parsed and checked, with the file each came from.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Tenant)>, TenantsError> {
    let mut tenants: Vec<(PathBuf, Tenant)> = Vec::new();
    let mut problems = Vec::new();
    let files = files(dir)?;
    if files.is_empty() {
        return Err(TenantsError(vec![format!(
            "{}: no tenant files (*.toml) in this folder",
            dir.display()
        )]));
    }
    for file in files {
        let shown = file.display().to_string();
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| ConfigError {
                file: shown.clone(),
                line: 0,
                message: format!("cannot read the file: {e}"),
            })
            .and_then(|text| Tenant::from_toml(&shown, &text));
        match parsed {
            Ok(tenant) => {
                if let Some((first, _)) = tenants.iter().find(|(_, t)| t.id == tenant.id) {
                    problems.push(format!(
                        "{shown}: the tenant id \"{}\" is also the id of {}; each municipality \
                         needs its own",
                        tenant.id.as_str(),
                        first.display()
                    ));
                } else {
                    tenants.push((file, tenant));
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(tenants)
    } else {
        Err(TenantsError(problems))
    }
}

/// The tenants of the product: those of `dir`, or the shipped examples without one.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Vec<Tenant>> {
    match dir {
        None => Ok(example_tenants()?),
        Some(dir) => Ok(load_dir(dir)?.into_iter().map(|(_, t)| t).collect()),
    }
}

/// The client secret of a municipality's directory sign-on: as the tenant file gives it, or
/// from the environment variable it names; the error names what is missing, never a value.
pub fn client_secret(sign_on: &DirectorySignOn) -> Result<String, String> {
    match &sign_on.client_secret {
        ClientSecret::Value(secret) => Ok(secret.clone()),
        ClientSecret::Env(name) => std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the environment variable {name} is not set")),
    }
}

/// What keeps the municipalities' directory sign-ons from working, one line each: a missing
/// client secret, a CA file ([`ca_file_problems`]).
pub fn sign_on_problems(tenants: &[Tenant]) -> Vec<String> {
    let mut problems: Vec<String> = tenants
        .iter()
        .filter_map(|t| {
            let sign_on = t.oidc.as_ref()?;
            client_secret(sign_on).err().map(|e| {
                format!(
                    "{}: the client secret of the [oidc] sign-on is missing: {e}",
                    t.id.as_str()
                )
            })
        })
        .collect();
    problems.extend(ca_file_problems(tenants));
    problems
}

/// The municipalities whose `[oidc] ca_file` cannot be read or holds no certificate, one line
/// each, with the path.
pub fn ca_file_problems(tenants: &[Tenant]) -> Vec<String> {
    tenants
        .iter()
        .filter_map(|t| {
            let path = t.oidc.as_ref()?.ca_file.as_deref()?;
            videoamt_adapters::oidc::ca_certificates(Path::new(path))
                .err()
                .map(|e| {
                    format!(
                        "{}: the CA file {path} of the [oidc] sign-on {e}",
                        t.id.as_str()
                    )
                })
        })
        .collect()
}

/// The appointments still to be held (booked, or in session) that the loaded configuration
/// could no longer serve as they were booked: their municipality, department or one of their
/// services is gone, or their department's slot length changed (ADR 0020). One line each, for
/// the operator; empty when the configuration fits. Reads the clerks' schedule, caught up
/// first, and the booking of each such appointment.
pub async fn outstanding_conflicts(system: &super::System) -> anyhow::Result<Vec<String>> {
    use std::sync::Arc;
    use videoamt_projections::Projection;
    use videoamt_projections::schedule::{self, ClerkSchedule, ScheduleEntry, VisitStatus};

    let projection: Arc<dyn Projection> = Arc::new(ClerkSchedule::new(system.tenants.clone()));
    videoamt_projections::runner::Runner::new(system.store.clone(), system.store.clone())
        .catch_up(&[projection])
        .await?;
    let mut conflicts = Vec::new();
    for (key, value) in system.store.list(schedule::NAME, "entry", "").await? {
        let Ok(entry) = serde_json::from_value::<ScheduleEntry>(value) else {
            continue;
        };
        if !matches!(entry.status, VisitStatus::Booked | VisitStatus::InSession) {
            continue;
        }
        let tenant_id = key.split('/').next().unwrap_or_default();
        let day = key.split('/').nth(2).unwrap_or_default();
        let what = format!(
            "{tenant_id}: appointment {} on {day} ({})",
            entry.appointment, entry.department
        );
        let Some(tenant) = system.tenants.iter().find(|t| t.id.as_str() == tenant_id) else {
            conflicts.push(format!("{what}: the municipality is no longer configured"));
            continue;
        };
        let Some(department) = tenant.department(&entry.department) else {
            conflicts.push(format!(
                "{what}: the department \"{}\" is no longer configured",
                entry.department
            ));
            continue;
        };
        for service in entry
            .services
            .iter()
            .filter(|s| tenant.service(s).is_none())
        {
            conflicts.push(format!(
                "{what}: the service \"{service}\" is no longer configured"
            ));
        }
        let booked = system
            .appointment(entry.appointment)
            .await?
            .and_then(|(appointment, _)| appointment.booking)
            .and_then(|booking| booking.terms);
        if let Some(terms) = booked
            && terms.slot_minutes != department.slot_minutes
        {
            conflicts.push(format!(
                "{what}: booked in slots of {} minutes, the department now has {}",
                terms.slot_minutes, department.slot_minutes
            ));
        }
    }
    Ok(conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use videoamt_core::tenant::EXAMPLE_TENANTS;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("written");
        }
        dir
    }

    #[test]
    fn a_folder_of_the_examples_loads_them_and_ignores_other_files() {
        let dir = folder(&[
            ("ettlingen.toml", EXAMPLE_TENANTS[0].1),
            ("stuttgart.toml", EXAMPLE_TENANTS[1].1),
            ("LIESMICH.txt", "keine Kommune"),
        ]);
        let loaded = load(Some(dir.path())).expect("loads");
        let ids: Vec<&str> = loaded.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["ettlingen", "stuttgart"]);
    }

    #[test]
    fn every_broken_file_is_named_with_its_line_and_a_duplicate_id_is_refused() {
        let broken = EXAMPLE_TENANTS[0]
            .1
            .replace("retention_months = 3", "retention_months = 0");
        let dir = folder(&[
            ("a-ettlingen.toml", EXAMPLE_TENANTS[0].1),
            ("b-kopie.toml", EXAMPLE_TENANTS[0].1),
            ("c-kaputt.toml", &broken),
            ("d-syntax.toml", "id = \"x\"\nname = \n"),
        ]);
        let problems = load_dir(dir.path()).expect_err("refused").0;
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("b-kopie.toml: the tenant id \"ettlingen\" is also the id of ")
                && problems[0].contains("a-ettlingen.toml"),
            "{}",
            problems[0]
        );
        let line = EXAMPLE_TENANTS[0]
            .1
            .lines()
            .position(|l| l.starts_with("retention_months"))
            .expect("the line")
            + 1;
        assert!(
            problems[1].contains(&format!("c-kaputt.toml:{line}: ")),
            "{}",
            problems[1]
        );
        assert!(problems[2].contains("d-syntax.toml:2: "), "{}", problems[2]);
    }

    #[test]
    fn an_empty_or_missing_folder_is_refused() {
        let empty = folder(&[]);
        assert!(load_dir(empty.path()).expect_err("empty").0[0].contains("no tenant files"));
        let missing = empty.path().join("gibt-es-nicht");
        assert!(
            load_dir(&missing).expect_err("missing").0[0]
                .contains("cannot read the tenants folder")
        );
    }
}
