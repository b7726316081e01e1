//! The municipalities the product runs for: the tenant files of a folder (`--tenants DIR`,
//! `VIDEOAMT_TENANTS`), or, without one, the two examples shipped inside the binary.
//!
//! A folder holds one `*.toml` file per municipality (other files are ignored, so a README or
//! a backup `~` file may sit beside them). Every file is checked; the errors of all files are
//! collected, each as `file:line: message`, so an operator fixes them in one go. Two files
//! naming the same tenant id are refused. Changes take effect at the next start (ADR 0020).

use std::path::{Path, PathBuf};

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
