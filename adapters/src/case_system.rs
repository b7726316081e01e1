//! Case systems (`Fachverfahren`) the signed forms are handed over to at the end of a visit.
//!
//! - [`FolderCaseSystem`], the default: writes `{dir}/{case system}/{appointment}/akte.json`
//!   and the signed PDFs beside it, for the case system's own import. The export folder lives
//!   **outside the data folder**: the purge scrubs the data folder, and the handed-over record
//!   must outlive it. The folder is written as `….part` and renamed, so an importer never sees
//!   half a record; the reference is the folder's path relative to `dir`.
//! - [`HttpCaseSystem`] (feature `sms-http`, the same small client as the SMS gateway):
//!   `POST {url}` with the record as JSON, the PDFs base64-encoded, and
//!   `Authorization: Bearer {token}`; the answer's `reference` field is the reference. 2xx with
//!   a reference is handed over, 4xx refused, anything else worth another try.

use std::path::PathBuf;

use base64::Engine as _;
use sha2::Digest as _;
use videoamt_core::case_system::{CaseRecord, CaseSystem, CaseSystemError};

/// A name safe as one path segment: lower-case letters, digits and `-`, `.` inside only.
fn segment(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' | '.' => out.push(c),
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let out = out.trim_matches(|c| c == '-' || c == '.').to_owned();
    if out.is_empty() { "akte".into() } else { out }
}

/// The record as JSON; with `inline` the PDFs' bytes go in base64, else only their names.
fn record_json(record: &CaseRecord, inline: bool) -> serde_json::Value {
    let at = record
        .handed_over_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let pdfs: Vec<serde_json::Value> = record
        .pdfs
        .iter()
        .map(|p| {
            let mut pdf = serde_json::json!({
                "file_name": segment(&p.file_name),
                "sha256": hex(&sha2::Sha256::digest(&p.bytes)),
            });
            if inline {
                pdf["content_base64"] = base64::engine::general_purpose::STANDARD
                    .encode(&p.bytes)
                    .into();
            }
            pdf
        })
        .collect();
    serde_json::json!({
        "tenant": record.tenant,
        "appointment": record.appointment.to_string(),
        "service": { "id": record.service_id, "name": record.service_name },
        "case_system": record.case_system,
        "handed_over_at": at,
        "forms": record.forms.iter().map(|f| serde_json::json!({
            "title": f.title,
            "fields": f.fields.iter().map(|(label, value)| serde_json::json!({
                "label": label, "value": value,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pdfs": pdfs,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The default case system: an export folder for the case system's import.
#[derive(Debug, Clone)]
pub struct FolderCaseSystem {
    dir: PathBuf,
}

impl FolderCaseSystem {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait::async_trait]
impl CaseSystem for FolderCaseSystem {
    async fn hand_over(&self, record: &CaseRecord) -> Result<String, CaseSystemError> {
        let system = segment(&record.case_system);
        let appointment = record.appointment.to_string();
        let reference = format!("{system}/{appointment}");
        let parent = self.dir.join(&system);
        let target = parent.join(&appointment);
        let partial = parent.join(format!("{appointment}.part"));
        let json = serde_json::to_vec_pretty(&record_json(record, false))
            .map_err(|_| CaseSystemError::Unavailable("Akte".into()))?;
        let pdfs: Vec<(String, Vec<u8>)> = (record.pdfs.iter())
            .map(|p| (segment(&p.file_name), p.bytes.clone()))
            .collect();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // A record once handed over is never replaced: the case system may have read it.
            if target.exists() {
                return Ok(());
            }
            if partial.exists() {
                std::fs::remove_dir_all(&partial)?;
            }
            std::fs::create_dir_all(&partial)?;
            std::fs::write(partial.join("akte.json"), json)?;
            for (name, bytes) in pdfs {
                std::fs::write(partial.join(name), bytes)?;
            }
            std::fs::rename(&partial, &target)
        })
        .await
        .map_err(|_| CaseSystemError::Unavailable("Ablage abgebrochen".into()))?
        .map_err(|e| CaseSystemError::Unavailable(format!("Ablage: {}", e.kind())))?;
        Ok(reference)
    }
}

#[cfg(feature = "sms-http")]
pub use http::HttpCaseSystem;

#[cfg(feature = "sms-http")]
mod http {
    use videoamt_core::case_system::{CaseRecord, CaseSystem, CaseSystemError};

    use crate::http_post::{http_url, post_json};

    /// A case system's HTTP import interface (or a relay in front of it).
    #[derive(Clone)]
    pub struct HttpCaseSystem {
        url: hyper::Uri,
        token: String,
    }

    impl std::fmt::Debug for HttpCaseSystem {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpCaseSystem")
                .field("url", &self.url)
                .field("token", &"…")
                .finish()
        }
    }

    impl HttpCaseSystem {
        /// `url` is `http://host:port/path`.
        pub fn new(url: &str, token: impl Into<String>) -> Result<Self, String> {
            Ok(Self {
                url: http_url(url, "case system")?,
                token: token.into(),
            })
        }
    }

    #[async_trait::async_trait]
    impl CaseSystem for HttpCaseSystem {
        async fn hand_over(&self, record: &CaseRecord) -> Result<String, CaseSystemError> {
            let body = super::record_json(record, true).to_string();
            let (status, answer) = post_json(
                &self.url,
                &self.token,
                body,
                std::time::Duration::from_secs(30),
            )
            .await
            .map_err(CaseSystemError::Unavailable)?;
            match status {
                200..=299 => serde_json::from_slice::<serde_json::Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("reference")?.as_str().map(str::to_owned))
                    .filter(|r| !r.trim().is_empty())
                    .ok_or_else(|| {
                        CaseSystemError::Unavailable("Antwort ohne Aktenzeichen".into())
                    }),
                400..=499 => Err(CaseSystemError::Refused(format!("Status {status}"))),
                _ => Err(CaseSystemError::Unavailable(format!("Status {status}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use videoamt_core::case_system::{CaseForm, CasePdf};

    fn record() -> CaseRecord {
        CaseRecord {
            tenant: "ettlingen".into(),
            appointment: uuid::Uuid::nil(),
            service_id: "waffenbesitzkarte".into(),
            service_name: "Waffenbesitzkarte".into(),
            case_system: "Nationales Waffenregister".into(),
            forms: vec![CaseForm {
                title: "Antrag".into(),
                fields: vec![("Name".into(), "Erika".into())],
            }],
            pdfs: vec![CasePdf {
                file_name: "../Antrag Waffenbesitzkarte.pdf".into(),
                bytes: b"%PDF-1.7".to_vec(),
            }],
            handed_over_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn the_folder_holds_the_record_and_the_pdfs_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = FolderCaseSystem::new(dir.path());
        let reference = folder.hand_over(&record()).await.expect("handed over");
        let nil = uuid::Uuid::nil();
        assert_eq!(reference, format!("nationales-waffenregister/{nil}"));
        let written = dir.path().join(&reference);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(written.join("akte.json")).expect("json"))
                .expect("parses");
        assert_eq!(json["forms"][0]["fields"][0]["value"], "Erika");
        assert_eq!(json["pdfs"][0]["file_name"], "antrag-waffenbesitzkarte.pdf");
        let pdf = std::fs::read(written.join("antrag-waffenbesitzkarte.pdf")).expect("pdf");
        assert_eq!(pdf, b"%PDF-1.7");
        assert_eq!(folder.hand_over(&record()).await.expect("again"), reference);
        assert!(
            !dir.path()
                .join(format!("nationales-waffenregister/{nil}.part"))
                .exists()
        );
    }
}
