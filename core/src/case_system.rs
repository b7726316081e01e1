//! The case-system port (issue 17, end of the session): data that must be kept beyond the
//! purge — the signed forms and their values — goes to the specialised procedure
//! (`Fachverfahren`) before the session's data is scrubbed. A folder adapter writes an export
//! folder that lives outside the data folder (the purge scrubs the data folder); an HTTP
//! adapter posts the same record. The reference the case system answers with is recorded in
//! `HandedOverToCaseSystem`, which lets the purge go ahead.

use time::OffsetDateTime;

/// One signed form as handed over: its title and its fields' labels and values.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseForm {
    pub title: String,
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for CaseForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseForm")
            .field("fields", &self.fields.len())
            .finish_non_exhaustive()
    }
}

/// One signed PDF: the file name it is handed over under and its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CasePdf {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for CasePdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CasePdf")
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Everything one visit hands over. Holds personal data (field values, PDFs): never logged,
/// and its `Debug` shows only whose visit it is and how much it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub tenant: String,
    pub appointment: uuid::Uuid,
    pub service_id: String,
    pub service_name: String,
    /// The case system's name as the tenant names it (`Service::case_system`).
    pub case_system: String,
    pub forms: Vec<CaseForm>,
    pub pdfs: Vec<CasePdf>,
    pub handed_over_at: OffsetDateTime,
}

impl std::fmt::Debug for CaseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseRecord")
            .field("tenant", &self.tenant)
            .field("appointment", &self.appointment)
            .field("service_id", &self.service_id)
            .field("case_system", &self.case_system)
            .field("forms", &self.forms.len())
            .field("pdfs", &self.pdfs.len())
            .finish_non_exhaustive()
    }
}

/// Why a handover did not happen. The texts hold status codes and error kinds, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseSystemError {
    #[error("Fachverfahren gestört: {0}")]
    Unavailable(String),
    #[error("Fachverfahren lehnt ab: {0}")]
    Refused(String),
}

impl CaseSystemError {
    /// The German sentences for the clerk: that the handover to `target` (the case system's
    /// name) failed, that nothing was recorded, and what to do.
    pub fn german(&self, target: &str) -> String {
        match self {
            Self::Unavailable(_) => format!(
                "Die Übergabe an „{target}“ ist fehlgeschlagen: Das Fachverfahren ist gerade nicht \
                 erreichbar. Es wurde nichts als übergeben vermerkt. Bitte versuchen Sie die \
                 Übergabe gleich noch einmal."
            ),
            Self::Refused(_) => format!(
                "„{target}“ hat die Übergabe abgelehnt. Es wurde nichts als übergeben vermerkt. \
                 Bitte wenden Sie sich an die Betreuung des Fachverfahrens und versuchen Sie es \
                 danach noch einmal."
            ),
        }
    }
}

#[async_trait::async_trait]
pub trait CaseSystem: Send + Sync {
    /// Hands the record over; the answer is the case system's reference for it.
    async fn hand_over(&self, record: &CaseRecord) -> Result<String, CaseSystemError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_debug_of_a_record_shows_no_personal_data() {
        let record = CaseRecord {
            tenant: "ettlingen".into(),
            appointment: uuid::Uuid::nil(),
            service_id: "waffenbesitzkarte".into(),
            service_name: "Waffenbesitzkarte".into(),
            case_system: "Nationales Waffenregister".into(),
            forms: vec![CaseForm {
                title: "Antrag".into(),
                fields: vec![("Name".into(), "Erika Mustermann".into())],
            }],
            pdfs: vec![CasePdf {
                file_name: "antrag.pdf".into(),
                bytes: b"%PDF-geheim".to_vec(),
            }],
            handed_over_at: OffsetDateTime::UNIX_EPOCH,
        };
        let debug = format!("{record:?}");
        assert!(
            !debug.contains("Mustermann") && !debug.contains("geheim"),
            "{debug}"
        );
        assert!(debug.contains("waffenbesitzkarte"));
        let unavailable = CaseSystemError::Unavailable("Status 500".into());
        let refused = CaseSystemError::Refused("Status 400".into());
        for e in [&unavailable, &refused] {
            let german = e.german("Nationales Waffenregister");
            assert!(german.contains("„Nationales Waffenregister“"), "{german}");
            assert!(german.contains("nichts als übergeben vermerkt"), "{german}");
            assert!(!german.contains("Status"), "{german}");
        }
        assert_ne!(unavailable.german("x"), refused.german("x"));
    }
}
