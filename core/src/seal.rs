//! The form seal port: a signed form rendered to PDF and sealed with the municipality's
//! electronic seal.
//!
//! The room hands over what the PDF shows ([`FormDocument`]); the sealer renders it, seals it
//! (PAdES baseline B-B in `videoamt-adapters`, feature `seal`, ADR 0018) and returns the final
//! bytes with their SHA-256, which `FormSigned` records. A seal makes any later change to a
//! byte of the PDF detectable; it says who sealed (the municipality), not who signed: the
//! citizen's signature is the evidence drawn into the page.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::TenantId;

/// Everything the sealed PDF shows, in order. Holds personal data (the field values and the
/// signature): never logged, and its `Debug` shows only counts.
#[derive(Clone, PartialEq)]
pub struct FormDocument {
    /// Whose seal: one seal identity per municipality.
    pub tenant: TenantId,
    /// "Stadt Ettlingen".
    pub municipality: String,
    /// "Meldebescheinigung beantragen".
    pub service: String,
    /// The form's title, "Antrag auf eine Meldebescheinigung".
    pub title: String,
    /// The filled fields as the citizen saw them: (label, value), in the template's order, each
    /// value as `FieldKind::printed` gives it (a date as "14.03.1971"). A value may hold line
    /// breaks.
    pub fields: Vec<(String, String)>,
    /// The moment of signing in the municipality's UTC offset (`Tenant::zoned`): the page shows
    /// this wall-clock time with its offset, and the seal's `/M` carries it.
    pub signed_at: OffsetDateTime,
    /// How the citizen signed, in German words: "Unterschrift auf dem Touchpad".
    pub signature_method: String,
    pub evidence: SignatureEvidence,
}

/// What the page shows of the citizen's signature.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SignatureEvidence {
    /// The strokes drawn on the canvas, each a run of points from pointer-down to pointer-up,
    /// drawn into a box on the page with the canvas's aspect ratio.
    Touchpad {
        strokes: Vec<Vec<StrokePoint>>,
        /// The canvas's size in CSS pixels, the points' coordinate space (origin top left).
        width: u32,
        height: u32,
    },
    /// A confirmation line, "Unterschrieben mit Hidden-TAN am 02.12.2026 um 08:30:15 Uhr".
    /// Never the TAN itself.
    Tan { line: String },
}

/// One pointer sample: canvas coordinates in CSS pixels and milliseconds since the stroke
/// set began.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StrokePoint {
    pub x: f32,
    pub y: f32,
    pub t_ms: u32,
}

/// The sealed PDF: the bytes to store and offer, and the SHA-256 of exactly these bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPdf {
    pub pdf: Vec<u8>,
    pub sha256: [u8; 32],
}

/// Why no sealed PDF came out. All are technical; [`SealError::german`] is what people see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The municipality's seal key or certificate is missing, unreadable or does not match.
    #[error("seal identity: {0}")]
    Identity(String),
    /// The PDF could not be built.
    #[error("rendering the form: {0}")]
    Render(String),
    /// The CMS signature could not be built or did not fit its placeholder.
    #[error("sealing the PDF: {0}")]
    Seal(String),
}

impl SealError {
    /// The German sentence for the room.
    pub fn german(&self) -> &'static str {
        match self {
            Self::Identity(_) => {
                "Das elektronische Siegel der Verwaltung ist nicht verfügbar. Das Formular wurde nicht unterschrieben; bitte wenden Sie sich an die Verwaltung."
            }
            Self::Render(_) | Self::Seal(_) => {
                "Das Formular konnte nicht versiegelt werden und wurde nicht unterschrieben. Bitte versuchen Sie es erneut."
            }
        }
    }
}

/// Renders and seals signed forms. Synchronous and CPU-bound (a few milliseconds); the first
/// call for a municipality may also read or create its seal identity, so call it from a
/// blocking task. Cheap to share (`Arc<dyn FormSealer>`).
pub trait FormSealer: Send + Sync {
    fn render_and_seal(&self, doc: &FormDocument) -> Result<SealedPdf, SealError>;
}

impl fmt::Debug for FormDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormDocument")
            .field("tenant", &self.tenant)
            .field("fields", &self.fields.len())
            .field("signed_at", &self.signed_at)
            .field("evidence", &self.evidence)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SignatureEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Touchpad { strokes, .. } => write!(f, "Touchpad({} strokes)", strokes.len()),
            Self::Tan { .. } => f.write_str("Tan"),
        }
    }
}

impl fmt::Debug for SealedPdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedPdf({} bytes)", self.pdf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_field_value_or_signature() {
        let doc = FormDocument {
            tenant: TenantId::parse("ettlingen").expect("valid"),
            municipality: "Stadt Ettlingen".into(),
            service: "Meldebescheinigung".into(),
            title: "Antrag".into(),
            fields: vec![("Name".into(), "Erika Mustermann".into())],
            signed_at: OffsetDateTime::UNIX_EPOCH,
            signature_method: "Hidden-TAN".into(),
            evidence: SignatureEvidence::Tan {
                line: "Unterschrieben mit Hidden-TAN von Erika".into(),
            },
        };
        let shown = format!("{doc:?}");
        assert!(!shown.contains("Erika"), "{shown}");
        assert!(shown.contains("fields: 1"), "{shown}");
    }

    #[test]
    fn refusals_read_in_german_without_technical_detail() {
        let e = SealError::Identity("/data/seal/ettlingen.pem: permission denied".into());
        assert!(e.german().contains("Siegel"));
        assert!(!e.german().contains("/data"));
    }

    #[test]
    fn strokes_keep_their_timing_in_json() {
        let evidence = SignatureEvidence::Touchpad {
            strokes: vec![vec![StrokePoint {
                x: 1.5,
                y: 2.0,
                t_ms: 40,
            }]],
            width: 300,
            height: 100,
        };
        let json = serde_json::to_value(&evidence).expect("plain data serializes");
        assert_eq!(json["kind"], "touchpad");
        assert_eq!(json["strokes"][0][0]["t_ms"], 40);
        let back: SignatureEvidence = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, evidence);
    }
}
