//! The form sealer (feature `seal`, ADR 0018): a signed form rendered to PDF with lopdf and
//! sealed with the municipality's electronic seal, a PAdES baseline B-B signature made with
//! RustCrypto's `cms` and `x509-cert` and a P-256 key.
//!
//! One seal identity per municipality: its PEM files in the configured folder
//! ([`SealConfig::dir`]) or, when it has none there, a self-signed demo identity generated on
//! first use in [`SealConfig::demo_dir`]. Nothing else is written: the PDF is returned, never
//! stored here, and no field value reaches a log.

mod font;
mod identity;
mod pades;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};
use videoamt_core::event::TenantId;
use videoamt_core::seal::{FormDocument, FormSealer, SealError, SealedPdf};

pub use identity::SealIdentity;

/// A municipality's configured seal: a PKCS#8 PEM P-256 key (mode 0600) and a PEM chain whose
/// first certificate is the key's, then its issuers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealFiles {
    pub key: PathBuf,
    pub chain: PathBuf,
}

impl SealFiles {
    /// A municipality's files in the folder of configured seals: `{tenant}.key.pem` and
    /// `{tenant}.chain.pem`.
    pub fn in_dir(dir: &Path, tenant: &TenantId) -> Self {
        // A tenant id is lowercase letters, digits and '-': a safe file name.
        Self {
            key: dir.join(format!("{}.key.pem", tenant.as_str())),
            chain: dir.join(format!("{}.chain.pem", tenant.as_str())),
        }
    }
}

/// Where each municipality's seal identity comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealConfig {
    /// The folder of the configured identities ([`SealFiles::in_dir`]). A municipality with
    /// either of its files there seals with them, and both must be sound; one with neither
    /// falls back to [`SealConfig::demo_dir`]. A folder that cannot be read is an error for
    /// every municipality, never a reason to seal with a demo identity.
    pub dir: Option<PathBuf>,
    /// For a municipality without files: the folder of the generated demo identities
    /// (`{tenant}.key.pem`, `{tenant}.crt.pem`), as the data folder holds the KEK. `None`: such a
    /// municipality cannot seal.
    pub demo_dir: Option<PathBuf>,
}

impl SealConfig {
    /// Demo identities for every municipality, in `dir` (the data folder's `seal/`).
    pub fn demo(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: None,
            demo_dir: Some(dir.into()),
        }
    }

    /// The municipality's configured files, if the folder holds either of them.
    pub fn files(&self, tenant: &TenantId) -> Result<Option<SealFiles>, SealError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(identity::identity_error(dir, "not a folder")),
            Err(e) => return Err(identity::identity_error(dir, e)),
        }
        let files = SealFiles::in_dir(dir, tenant);
        let exists = |path: &Path| {
            path.try_exists()
                .map_err(|e| identity::identity_error(path, e))
        };
        if exists(&files.key)? || exists(&files.chain)? {
            return Ok(Some(files));
        }
        Ok(None)
    }
}

/// The [`FormSealer`] of PAdES B-B seals. Loads each municipality's identity on first use and
/// keeps it.
pub struct PadesSealer {
    config: SealConfig,
    identities: Mutex<HashMap<TenantId, Arc<SealIdentity>>>,
}

impl std::fmt::Debug for PadesSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PadesSealer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PadesSealer {
    pub fn new(config: SealConfig) -> Self {
        Self {
            config,
            identities: Mutex::new(HashMap::new()),
        }
    }

    /// The municipality's seal identity: its configured files, else its demo identity (made
    /// for "Demo-Siegel {municipality}" when it does not exist yet). Call it at start-up to
    /// find a bad configuration before the first signature.
    pub fn identity(
        &self,
        tenant: &TenantId,
        municipality: &str,
    ) -> Result<Arc<SealIdentity>, SealError> {
        // A poisoned lock only means another thread panicked while loading; the map itself is
        // always whole.
        let mut identities = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(identity) = identities.get(tenant) {
            return Ok(identity.clone());
        }
        let identity = match (self.config.files(tenant)?, &self.config.demo_dir) {
            (Some(files), _) => SealIdentity::from_files(&files.key, &files.chain)?,
            (None, Some(dir)) => {
                let identity = SealIdentity::demo(dir, tenant, municipality)?;
                tracing::warn!(
                    tenant = tenant.as_str(),
                    dir = %dir.display(),
                    "sealing with a self-signed demo certificate, not for production"
                );
                identity
            }
            (None, None) => {
                return Err(SealError::Identity(format!(
                    "no seal configured for tenant {}",
                    tenant.as_str()
                )));
            }
        };
        let identity = Arc::new(identity);
        identities.insert(tenant.clone(), identity.clone());
        Ok(identity)
    }
}

impl FormSealer for PadesSealer {
    fn render_and_seal(&self, doc: &FormDocument) -> Result<SealedPdf, SealError> {
        let identity = self.identity(&doc.tenant, &doc.municipality)?;
        let signature = pades::signature_dictionary(&identity, doc.signed_at);
        let rendered = render::render(doc, signature)?;
        let pdf = pades::save_and_seal(rendered.doc, rendered.signature, &identity)?;
        let sha256 = Sha256::digest(&pdf).into();
        Ok(SealedPdf { pdf, sha256 })
    }
}
