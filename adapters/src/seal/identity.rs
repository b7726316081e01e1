//! A municipality's seal identity: its P-256 key and its certificate chain, from configured PEM
//! files or, for the embedded default, a self-signed demo certificate generated on first use.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use der::pem::LineEnding;
use der::{DecodePem as _, EncodePem as _};
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension as _};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};

use videoamt_core::event::TenantId;
use videoamt_core::seal::SealError;

/// How long a demo certificate is valid. It starts a day before it was made, so that a clock
/// set slightly back still finds the seal's time inside it.
const DEMO_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const DEMO_BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// The key and the chain that seal one municipality's forms. The key never appears in
/// `Debug`.
pub struct SealIdentity {
    key: SigningKey,
    /// The seal's certificate first, then its issuers.
    chain: Vec<Certificate>,
    demo: bool,
}

impl std::fmt::Debug for SealIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealIdentity")
            .field("subject", &self.certificate().tbs_certificate().subject())
            .field("chain", &self.chain.len())
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

pub(super) fn identity_error(path: &Path, e: impl std::fmt::Display) -> SealError {
    SealError::Identity(format!("{}: {e}", path.display()))
}

impl SealIdentity {
    /// A PKCS#8 PEM P-256 key and a PEM chain whose first certificate is the key's.
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<Self, SealError> {
        let key = SigningKey::from_pkcs8_pem(key_pem)
            .map_err(|e| SealError::Identity(format!("seal key (PKCS#8 P-256 PEM): {e}")))?;
        let chain = Certificate::load_pem_chain(chain_pem.as_bytes())
            .map_err(|e| SealError::Identity(format!("seal certificate chain (PEM): {e}")))?;
        Self::new(key, chain, false)
    }

    /// The configured key and chain files. The key file must not be readable by others. Every
    /// error names the file it is about.
    pub fn from_files(key: &Path, chain: &Path) -> Result<Self, SealError> {
        let signing = SigningKey::from_pkcs8_pem(&read_private(key)?)
            .map_err(|e| identity_error(key, format!("not a PKCS#8 P-256 key in PEM: {e}")))?;
        let chain_pem = std::fs::read_to_string(chain).map_err(|e| identity_error(chain, e))?;
        let certificates = Certificate::load_pem_chain(chain_pem.as_bytes())
            .map_err(|e| identity_error(chain, format!("not PEM certificates: {e}")))?;
        Self::new(signing, certificates, false).map_err(|e| match e {
            SealError::Identity(m) => {
                SealError::Identity(format!("{} and {}: {m}", key.display(), chain.display()))
            }
            other => other,
        })
    }

    /// The demo identity of `tenant` in `dir`: `{tenant}.key.pem` (mode 0600) and
    /// `{tenant}.crt.pem`, a self-signed certificate for "Demo-Siegel {municipality}". Both are
    /// made on first use and read afterwards; a missing certificate is made again from the
    /// key. Not for production: no trust service vouches for it.
    pub fn demo(dir: &Path, tenant: &TenantId, municipality: &str) -> Result<Self, SealError> {
        let paths = DemoPaths::new(dir, tenant);
        std::fs::create_dir_all(dir).map_err(|e| identity_error(dir, e))?;
        let key = match read_private(&paths.key) {
            Ok(pem) => SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| identity_error(&paths.key, format!("not a PKCS#8 P-256 key: {e}")))?,
            Err(_) if !paths.key.exists() => paths.create_key()?,
            Err(e) => return Err(e),
        };
        let chain = match std::fs::read_to_string(&paths.certificate) {
            Ok(pem) => Certificate::load_pem_chain(pem.as_bytes())
                .map_err(|e| identity_error(&paths.certificate, e))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                vec![paths.create_certificate(&key, municipality)?]
            }
            Err(e) => return Err(identity_error(&paths.certificate, e)),
        };
        Self::new(key, chain, true)
    }

    fn new(key: SigningKey, chain: Vec<Certificate>, demo: bool) -> Result<Self, SealError> {
        let Some(leaf) = chain.first() else {
            return Err(SealError::Identity("the certificate chain is empty".into()));
        };
        let public = key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| SealError::Identity(format!("seal key: {e}")))?;
        let certified = der::Encode::to_der(leaf.tbs_certificate().subject_public_key_info())
            .map_err(|e| SealError::Identity(format!("seal certificate: {e}")))?;
        if public.as_bytes() != certified.as_slice() {
            return Err(SealError::Identity(
                "the seal key does not belong to the chain's first certificate".into(),
            ));
        }
        Ok(Self { key, chain, demo })
    }

    /// The seal's own certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.chain[0]
    }

    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    pub(super) fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Whether this is a generated, self-signed demo identity.
    pub fn is_demo(&self) -> bool {
        self.demo
    }
}

/// Reads a file that holds a private key, refusing one that others can read (as the KEK).
fn read_private(path: &Path) -> Result<String, SealError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| identity_error(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(identity_error(
                path,
                format!("readable by others (mode {:o}); chmod 600 it", mode & 0o777),
            ));
        }
    }
    std::fs::read_to_string(path).map_err(|e| identity_error(path, e))
}

struct DemoPaths {
    key: PathBuf,
    certificate: PathBuf,
}

impl DemoPaths {
    fn new(dir: &Path, tenant: &TenantId) -> Self {
        // A tenant id is lowercase letters, digits and '-': a safe file name.
        Self {
            key: dir.join(format!("{}.key.pem", tenant.as_str())),
            certificate: dir.join(format!("{}.crt.pem", tenant.as_str())),
        }
    }

    /// The key file is the commit point: whoever creates it first wins, and a loser of the
    /// race reads the winner's key.
    fn create_key(&self) -> Result<SigningKey, SealError> {
        let key = random_key()?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SealError::Identity(format!("encoding the demo key: {e}")))?;
        match write_new(&self.key, pem.as_bytes(), 0o600) {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let pem = read_private(&self.key)?;
                SigningKey::from_pkcs8_pem(&pem).map_err(|e| identity_error(&self.key, e))
            }
            Err(e) => Err(identity_error(&self.key, e)),
        }
    }

    fn create_certificate(
        &self,
        key: &SigningKey,
        municipality: &str,
    ) -> Result<Certificate, SealError> {
        let certificate = demo_certificate(key, municipality)?;
        let pem = certificate
            .to_pem(LineEnding::LF)
            .map_err(|e| SealError::Identity(format!("encoding the demo certificate: {e}")))?;
        match write_new(&self.certificate, pem.as_bytes(), 0o644) {
            Ok(()) => Ok(certificate),
            // Another caller made one for the same key.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let pem = std::fs::read_to_string(&self.certificate)
                    .map_err(|e| identity_error(&self.certificate, e))?;
                Certificate::from_pem(pem.as_bytes())
                    .map_err(|e| identity_error(&self.certificate, e))
            }
            Err(e) => Err(identity_error(&self.certificate, e)),
        }
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn random_key() -> Result<SigningKey, SealError> {
    // A random 32-byte string is a valid P-256 scalar unless it is 0 or at least the group
    // order, which happens with probability below 2^-32; draw again then.
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| SealError::Identity(format!("no randomness for the demo key: {e}")))?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
    Err(SealError::Identity(
        "no valid demo key from the randomness".into(),
    ))
}

/// "Demo-Siegel Stadt Ettlingen": a self-signed end-entity certificate for sealing.
fn demo_certificate(key: &SigningKey, municipality: &str) -> Result<Certificate, SealError> {
    let failed = |e: &dyn std::fmt::Display| SealError::Identity(format!("demo certificate: {e}"));
    let subject = Name::from_str(&format!(
        "CN={},OU={},O={}",
        rfc4514_escape(&format!("Demo-Siegel {municipality}")),
        rfc4514_escape("Demo-Zertifikat, nicht für den Echtbetrieb"),
        rfc4514_escape(municipality),
    ))
    .map_err(|e| failed(&e))?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| failed(&e))?;
    serial[0] &= 0x7f; // positive, as RFC 5280 asks
    let serial = SerialNumber::new(&serial).map_err(|e| failed(&e))?;
    let now = SystemTime::now();
    let validity = Validity::new(
        Time::try_from(now - DEMO_BACKDATE).map_err(|e| failed(&e))?,
        Time::try_from(now + DEMO_VALIDITY).map_err(|e| failed(&e))?,
    );
    let spki = SubjectPublicKeyInfo::from_key(key.verifying_key()).map_err(|e| failed(&e))?;
    let builder = CertificateBuilder::new(SealProfile { subject }, serial, validity, spki)
        .map_err(|e| failed(&e))?;
    builder
        .build::<_, DerSignature>(key)
        .map_err(|e| failed(&e))
}

/// RFC 4514 escapes for every byte that is not an ASCII letter or digit, so that no name
/// (commas, plus signs, a leading space) is read as syntax.
fn rfc4514_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\{byte:02x}"));
        }
    }
    out
}

/// A self-signed certificate for sealing: not a CA, key usage digitalSignature and
/// nonRepudiation (contentCommitment), as a seal certificate has.
struct SealProfile {
    subject: Name,
}

impl BuilderProfile for SealProfile {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let subject = tbs.subject();
        // Each extension is made knowing the ones before it (no duplicates).
        let mut extensions = Vec::new();
        let basic = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(subject, &extensions)?;
        extensions.push(basic);
        let usage = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)
            .to_extension(subject, &extensions)?;
        extensions.push(usage);
        let authority = AuthorityKeyIdentifier {
            key_identifier: Some(ski.0.clone()),
            ..Default::default()
        }
        .to_extension(subject, &extensions)?;
        extensions.push(authority);
        let own = ski.to_extension(subject, &extensions)?;
        extensions.push(own);
        Ok(extensions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("ettlingen").expect("valid")
    }

    #[test]
    fn the_demo_identity_is_made_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SealIdentity::demo(dir.path(), &tenant(), "Stadt Ettlingen").expect("made");
        let again = SealIdentity::demo(dir.path(), &tenant(), "Stadt Ettlingen").expect("read");
        assert!(first.is_demo());
        assert_eq!(first.certificate(), again.certificate());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("ettlingen.key.pem"))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let subject = first.certificate().tbs_certificate().subject();
        let cn = subject.common_name().expect("decodes").expect("has a CN");
        assert_eq!(cn.value(), "Demo-Siegel Stadt Ettlingen");
        assert!(
            subject.to_string().contains("nicht für den Echtbetrieb"),
            "{subject}"
        );
    }

    #[test]
    fn a_lost_certificate_is_made_again_for_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = SealIdentity::demo(dir.path(), &tenant(), "Stadt Ettlingen").expect("made");
        std::fs::remove_file(dir.path().join("ettlingen.crt.pem")).expect("remove");
        let again = SealIdentity::demo(dir.path(), &tenant(), "Stadt Ettlingen").expect("remade");
        assert_ne!(first.certificate(), again.certificate());
        assert_eq!(
            first.key().verifying_key(),
            again.key().verifying_key(),
            "the key stays"
        );
    }

    #[test]
    fn names_with_syntax_characters_stay_one_common_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = "Gemeinde A, B + C; \"Süd\" \\ #1 ";
        let id = SealIdentity::demo(dir.path(), &tenant(), name).expect("made");
        let subject = id.certificate().tbs_certificate().subject();
        let cn = subject.common_name().expect("decodes").expect("has a CN");
        assert_eq!(cn.value(), format!("Demo-Siegel {name}"));
    }

    #[test]
    fn configured_files_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let demo = SealIdentity::demo(dir.path(), &tenant(), "Stadt Ettlingen").expect("made");
        let key = dir.path().join("ettlingen.key.pem");
        let chain = dir.path().join("ettlingen.crt.pem");
        let loaded = SealIdentity::from_files(&key, &chain).expect("configured");
        assert!(!loaded.is_demo());
        assert_eq!(loaded.certificate(), demo.certificate());

        // Another key with this chain is refused.
        let other = tempfile::tempdir().expect("tempdir");
        SealIdentity::demo(other.path(), &tenant(), "Stadt Ettlingen").expect("made");
        let refused = SealIdentity::from_files(&other.path().join("ettlingen.key.pem"), &chain);
        assert!(
            matches!(&refused, Err(SealError::Identity(m)) if m.contains("does not belong")),
            "{refused:?}"
        );

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let refused = SealIdentity::from_files(&key, &chain);
            assert!(
                matches!(&refused, Err(SealError::Identity(m)) if m.contains("chmod 600")),
                "{refused:?}"
            );
        }
        assert!(SealIdentity::from_pem("no key", "no chain").is_err());
    }
}
