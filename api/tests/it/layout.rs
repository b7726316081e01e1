//! The crate's imports point one way (docs/ARCHITECTURE.md): `app` and `workers` import
//! neither `http` nor `cli` nor `bench`, and `http` imports neither `cli` nor `bench`. Read off
//! the sources, so a wrong import fails here and not in review.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(file, line)` of every use of `crate::{module}` below `folder`.
fn uses(folder: &str, modules: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(folder);
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(!files.is_empty(), "no sources under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for m in modules {
                if line.contains(&format!("crate::{m}::")) || line.contains(&format!("crate::{m};"))
                {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn imports_point_one_way() {
    for (folder, forbidden) in [
        ("app", &["http", "workers", "cli", "bench"][..]),
        ("workers", &["http", "cli", "bench"][..]),
        ("http", &["cli", "bench"][..]),
    ] {
        let wrong = uses(folder, forbidden);
        assert!(
            wrong.is_empty(),
            "{folder} must not import {forbidden:?}:\n{}",
            wrong.join("\n")
        );
    }
}

#[test]
fn the_check_sees_an_import_when_there_is_one() {
    // `http` does import `app`: the same scan must find that, or it proves nothing above.
    assert!(!uses("http", &["app"]).is_empty());
}
