//! `docs/events.md` and the stored payload samples agree with the code.

use std::collections::{BTreeMap, BTreeSet};

use videoamt_core::domain::DomainEvent;
use videoamt_core::event::Payload;

const CATALOGUE_DOC: &str = include_str!("../../../docs/events.md");
/// Event types of the log that are not domain events (operator and benchmark tools).
const OPERATIONAL: [&str; 2] = ["ProbeAppended", "BenchAppended"];

fn sample_path(name: &str, version: u16) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/samples/{name}.v{version}.json"))
}

fn sample(name: &str, version: u16) -> Payload {
    let path = sample_path(name, version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Payload::from_json(text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Entry {
    version: u16,
    fields: BTreeSet<String>,
}

/// Every `### \`Name\`` entry with its schema version and field list.
fn documented() -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    for block in CATALOGUE_DOC.split("\n### ").skip(1) {
        let name = block
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('`')
            .to_owned();
        let line = |label: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("{name}: no line {label}"))
                .trim()
                .to_owned()
        };
        let version = line("- **Schema version:**")
            .parse()
            .unwrap_or_else(|_| panic!("{name}: version"));
        let fields = line("- **Fields:**");
        let fields = if fields == "none" {
            BTreeSet::new()
        } else {
            fields
                .split(',')
                .map(|f| f.trim().trim_matches('`').to_owned())
                .collect()
        };
        assert!(
            entries
                .insert(name.clone(), Entry { version, fields })
                .is_none(),
            "{name} twice"
        );
    }
    entries
}

#[test]
fn every_version_ever_written_has_a_sample_that_still_reads() {
    for &(name, current) in DomainEvent::CATALOGUE {
        for version in 1..=current {
            let payload = sample(name, version);
            let event = DomainEvent::from_payload(name, version, &payload)
                .unwrap_or_else(|e| panic!("sample {name} v{version} no longer reads: {e}"));
            assert_eq!(event.event_type(), name);
            if version == current {
                let again = event.to_payload().expect("encodes");
                assert!(
                    again.same_json(&payload),
                    "{name}: sample does not round-trip"
                );
            }
        }
    }
    // No sample for a type or version the code does not know.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples");
    for file in std::fs::read_dir(dir).expect("samples folder") {
        let file = file
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        let (name, version) = file
            .strip_suffix(".json")
            .and_then(|f| f.rsplit_once(".v"))
            .unwrap_or_else(|| panic!("sample file name {file} is not Name.vN.json"));
        let version: u16 = version.parse().expect("version number");
        let known = DomainEvent::CATALOGUE
            .iter()
            .any(|&(n, v)| n == name && version <= v);
        assert!(known, "sample {file} names an unknown type or version");
    }
}

#[test]
fn the_catalogue_lists_every_event_type_with_its_version_and_fields() {
    let doc = documented();
    let in_code: BTreeMap<&str, u16> = DomainEvent::CATALOGUE.iter().copied().collect();
    let in_doc: BTreeSet<&str> = doc
        .keys()
        .map(String::as_str)
        .filter(|n| !OPERATIONAL.contains(n))
        .collect();
    let missing: Vec<_> = in_code.keys().filter(|n| !in_doc.contains(*n)).collect();
    let extra: Vec<_> = in_doc
        .iter()
        .filter(|n| !in_code.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/events.md misses {missing:?}, has extra {extra:?}"
    );
    for (name, version) in in_code {
        let entry = &doc[name];
        assert_eq!(
            entry.version, version,
            "{name}: schema version in docs/events.md"
        );
        let payload: serde_json::Value = sample(name, version).parse().expect("JSON");
        let fields: BTreeSet<String> = payload
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(entry.fields, fields, "{name}: fields in docs/events.md");
    }
    for name in OPERATIONAL {
        assert!(doc.contains_key(name), "{name} is documented");
    }
}
