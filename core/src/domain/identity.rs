//! What the clerk checks on an ID document held up to the camera (DESIGN §9): the document's
//! type and its security features. Never an image; a visual check as at the counter, neither
//! a BaFin video-ident nor an eID.
//!
//! Both are written and read under their German names, the names the stored events use.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// A closed list of values, each stored and shown under one German name.
macro_rules! named {
    (
        $(#[$doc:meta])*
        pub enum $name:ident ($unknown:expr) {
            $($(#[$variant_doc:meta])* $variant:ident = $label:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_doc])* #[serde(rename = $label)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The German name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(raw: &str) -> Result<Self, DomainError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == raw)
                    .ok_or($unknown)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// The identity documents a clerk accepts on camera.
    pub enum DocumentType(DomainError::UnknownDocumentType) {
        Personalausweis = "Personalausweis",
        VorlaeufigerPersonalausweis = "Vorläufiger Personalausweis",
        Reisepass = "Reisepass",
        Kinderreisepass = "Kinderreisepass",
        /// The electronic residence permit (eAT).
        Aufenthaltstitel = "Aufenthaltstitel",
        /// A travel document for refugees or stateless persons.
        Reiseausweis = "Reiseausweis",
        /// A passport of another state.
        AuslaendischerReisepass = "Ausländischer Reisepass",
    }
}

named! {
    /// What the clerk checked on the document.
    pub enum SecurityFeature(DomainError::UnknownSecurityFeature) {
        Hologramm = "Hologramm",
        Kinegramm = "Kinegramm",
        /// The holographic portrait of the German ID card.
        Identigram = "Identigram",
        /// A tilt image (CLI/MLI) that changes with the viewing angle.
        Kippbild = "Kippbild",
        Lichtbild = "Lichtbild",
        Lasergravur = "Lasergravur",
        Unterschrift = "Unterschrift",
        Polycarbonat = "Polycarbonat",
        Sicherheitspapier = "Sicherheitspapier",
        Wasserzeichen = "Wasserzeichen",
        Melierfasern = "Melierfasern",
        Guillochen = "Guillochen",
        Mikroschrift = "Mikroschrift",
        Irisdruck = "Irisdruck",
        UvDruck = "UV-Druck",
        /// The validity date: worth checking, but no security feature.
        Gueltigkeit = "Gültigkeit",
    }
}

/// The categories a check must span (DESIGN §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeatureCategory {
    /// Hologram, kinegram and other optically variable features.
    OpticallyVariable,
    /// What is written into the document for its holder: photo, engraved data, signature.
    Personalisation,
    Material,
    SecurityPrint,
}

impl FeatureCategory {
    /// The German name shown to the clerk.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpticallyVariable => "Hologramm/Kinegramm",
            Self::Personalisation => "Personalisierung",
            Self::Material => "Material",
            Self::SecurityPrint => "Sicherheitsdruck",
        }
    }
}

/// Distinct categories a passed identity check must cover.
pub const MIN_CATEGORIES: usize = 3;

impl SecurityFeature {
    /// `None` for what is checked but is no security feature (the validity date).
    pub fn category(self) -> Option<FeatureCategory> {
        use FeatureCategory::*;
        match self {
            Self::Hologramm | Self::Kinegramm | Self::Identigram | Self::Kippbild => {
                Some(OpticallyVariable)
            }
            Self::Lichtbild | Self::Lasergravur | Self::Unterschrift => Some(Personalisation),
            Self::Polycarbonat
            | Self::Sicherheitspapier
            | Self::Wasserzeichen
            | Self::Melierfasern => Some(Material),
            Self::Guillochen | Self::Mikroschrift | Self::Irisdruck | Self::UvDruck => {
                Some(SecurityPrint)
            }
            Self::Gueltigkeit => None,
        }
    }

    /// A passed check names security features of at least [`MIN_CATEGORIES`] categories.
    pub fn enough(features: &[Self]) -> Result<(), DomainError> {
        let categories: BTreeSet<_> = features.iter().filter_map(|f| f.category()).collect();
        if categories.len() < MIN_CATEGORIES {
            return Err(DomainError::TooFewSecurityFeatures);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SecurityFeature::*;

    #[test]
    fn document_types_are_read_by_their_german_names() {
        assert_eq!("Personalausweis".parse(), Ok(DocumentType::Personalausweis));
        assert_eq!(
            "Ausländischer Reisepass".parse(),
            Ok(DocumentType::AuslaendischerReisepass)
        );
        for bad in ["", "personalausweis", "Führerschein", " Reisepass"] {
            assert_eq!(
                bad.parse::<DocumentType>(),
                Err(DomainError::UnknownDocumentType),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_name_round_trips_through_serde_as_the_same_string() {
        for &t in DocumentType::ALL {
            let json = serde_json::to_string(&t).expect("encodes");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
            assert_eq!(
                serde_json::from_str::<DocumentType>(&json).expect("decodes"),
                t
            );
            assert_eq!(t.as_str().parse(), Ok(t));
        }
        for &f in SecurityFeature::ALL {
            let json = serde_json::to_string(&f).expect("encodes");
            assert_eq!(json, format!("\"{}\"", f.as_str()));
            assert_eq!(
                serde_json::from_str::<SecurityFeature>(&json).expect("decodes"),
                f
            );
            assert_eq!(f.as_str().parse(), Ok(f));
        }
        assert!(serde_json::from_str::<SecurityFeature>("\"Glanz\"").is_err());
        assert_eq!(
            "Glanz".parse::<SecurityFeature>(),
            Err(DomainError::UnknownSecurityFeature)
        );
    }

    #[test]
    fn a_check_needs_three_features_of_different_categories() {
        assert_eq!(
            SecurityFeature::enough(&[Hologramm, Lichtbild, Guillochen]),
            Ok(())
        );
        assert_eq!(
            SecurityFeature::enough(&[Kinegramm, Polycarbonat, Mikroschrift, Lichtbild]),
            Ok(())
        );
        for too_few in [
            &[][..],
            &[Hologramm, Lichtbild],
            // Three features, two categories.
            &[Hologramm, Kinegramm, Lichtbild],
            // The validity date is checked but counts for no category.
            &[Hologramm, Lichtbild, Gueltigkeit],
        ] {
            assert_eq!(
                SecurityFeature::enough(too_few),
                Err(DomainError::TooFewSecurityFeatures),
                "{too_few:?}"
            );
        }
    }

    #[test]
    fn every_category_has_features() {
        for category in [
            FeatureCategory::OpticallyVariable,
            FeatureCategory::Personalisation,
            FeatureCategory::Material,
            FeatureCategory::SecurityPrint,
        ] {
            assert!(
                SecurityFeature::ALL
                    .iter()
                    .any(|f| f.category() == Some(category)),
                "{}",
                category.label()
            );
        }
    }
}
