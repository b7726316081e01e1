//! PAdES baseline B-B: a detached CMS SignedData over the PDF's byte range, written into the
//! signature dictionary's `/Contents` placeholder in place.
//!
//! The PDF is saved once with `/ByteRange [0 9999999999 9999999999 9999999999]` and
//! `/Contents <00…>`; the byte range is everything but that hexadecimal string (angle brackets
//! included). Both are patched to the same width, so no offset moves and the cross-reference
//! table stays right.

use der::asn1::{OctetString, SetOfVec};
use der::oid::db::{rfc5911, rfc5912};
use der::{Any, Encode as _, Sequence};
use lopdf::{Document, Object, ObjectId, StringFormat, dictionary};
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use time::OffsetDateTime;
use videoamt_core::seal::SealError;

use super::identity::SealIdentity;

/// Wide enough for any byte offset of a form's PDF.
const BYTE_RANGE_PLACEHOLDER: i64 = 9_999_999_999;

/// What the signed attributes and the signature add to the chain's certificates in the CMS
/// structure, with room to spare (an ECDSA P-256 SignedData without certificates is about 400
/// bytes).
const CMS_OVERHEAD: usize = 2048;

fn seal_error(e: impl std::fmt::Display) -> SealError {
    SealError::Seal(e.to_string())
}

/// The signature dictionary to put into the document before saving, with the placeholders
/// for a CMS of up to `capacity` bytes.
pub(super) fn signature_dictionary(identity: &SealIdentity, at: OffsetDateTime) -> Object {
    let capacity = contents_capacity(identity);
    Object::Dictionary(dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => vec![
            Object::Integer(0),
            Object::Integer(BYTE_RANGE_PLACEHOLDER),
            Object::Integer(BYTE_RANGE_PLACEHOLDER),
            Object::Integer(BYTE_RANGE_PLACEHOLDER),
        ],
        "Contents" => Object::String(vec![0; capacity], StringFormat::Hexadecimal),
        // B-B carries the signing time here, never as a signed attribute.
        "M" => Object::string_literal(pdf_date(at)),
        "Reason" => Object::string_literal("Elektronisches Siegel der Verwaltung"),
    })
}

fn contents_capacity(identity: &SealIdentity) -> usize {
    let certificates: usize = identity
        .chain()
        .iter()
        .map(|c| c.encoded_len().map_or(4096, |l| u32::from(l) as usize))
        .sum();
    (certificates + CMS_OVERHEAD).next_multiple_of(1024)
}

/// "D:20261202083015+01'00'".
pub(super) fn pdf_date(at: OffsetDateTime) -> String {
    let offset = at.offset();
    let (hours, minutes, _) = offset.as_hms();
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}{}{:02}'{:02}'",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        if offset.is_negative() { '-' } else { '+' },
        hours.unsigned_abs(),
        minutes.unsigned_abs(),
    )
}

/// Saves `doc`, whose object `signature` is the dictionary from [`signature_dictionary`],
/// and seals the saved bytes.
pub(super) fn save_and_seal(
    mut doc: Document,
    signature: ObjectId,
    identity: &SealIdentity,
) -> Result<Vec<u8>, SealError> {
    let mut pdf = Vec::new();
    doc.save_to(&mut pdf)
        .map_err(|e| SealError::Render(format!("saving the PDF: {e}")))?;
    let placeholders = Placeholders::find(&pdf, signature)?;
    let range = placeholders.byte_range(pdf.len());
    placeholders.write_byte_range(&mut pdf, range)?;
    let digest = Sha256::new()
        .chain_update(&pdf[..range[1]])
        .chain_update(&pdf[range[2]..])
        .finalize();
    let cms = signed_data(identity, &digest)?;
    placeholders.write_contents(&mut pdf, &cms)?;
    Ok(pdf)
}

/// Where the signature dictionary's placeholders are in the saved file.
struct Placeholders {
    /// Between `[` and `]` of `/ByteRange`.
    byte_range: std::ops::Range<usize>,
    /// The `<…>` of `/Contents`, brackets included.
    contents: std::ops::Range<usize>,
}

impl Placeholders {
    /// Finds them in the signature dictionary's own object, located through the
    /// cross-reference table, so that no text elsewhere in the file can be mistaken for them.
    fn find(pdf: &[u8], signature: ObjectId) -> Result<Self, SealError> {
        let saved =
            Document::load_mem(pdf).map_err(|e| seal_error(format!("reading back: {e}")))?;
        let offset = match saved.reference_table.get(signature.0) {
            Some(lopdf::xref::XrefEntry::Normal { offset, .. }) => *offset as usize,
            _ => return Err(seal_error("the signature dictionary is not in the xref")),
        };
        let object = &pdf[offset..];
        let end = find(object, b"endobj").ok_or_else(|| seal_error("unterminated object"))?;
        let object = &object[..end];

        let key = find(object, b"/ByteRange").ok_or_else(|| seal_error("no /ByteRange"))?;
        let open = key + find(&object[key..], b"[").ok_or_else(|| seal_error("no ["))?;
        let close = open + find(&object[open..], b"]").ok_or_else(|| seal_error("no ]"))?;
        let byte_range = offset + open + 1..offset + close;

        let key = find(object, b"/Contents").ok_or_else(|| seal_error("no /Contents"))?;
        let open = key + find(&object[key..], b"<").ok_or_else(|| seal_error("no <"))?;
        let close = open + find(&object[open..], b">").ok_or_else(|| seal_error("no >"))?;
        let contents = offset + open..offset + close + 1;
        if !pdf[contents.start + 1..contents.end - 1]
            .iter()
            .all(|&b| b == b'0')
        {
            return Err(seal_error("/Contents is not the zero placeholder"));
        }
        Ok(Self {
            byte_range,
            contents,
        })
    }

    fn byte_range(&self, len: usize) -> [usize; 4] {
        [
            0,
            self.contents.start,
            self.contents.end,
            len - self.contents.end,
        ]
    }

    fn write_byte_range(&self, pdf: &mut [u8], range: [usize; 4]) -> Result<(), SealError> {
        let text = format!("{} {} {} {}", range[0], range[1], range[2], range[3]);
        let slot = &mut pdf[self.byte_range.clone()];
        if text.len() > slot.len() {
            return Err(seal_error("the byte range does not fit its placeholder"));
        }
        slot.fill(b' ');
        slot[..text.len()].copy_from_slice(text.as_bytes());
        Ok(())
    }

    fn write_contents(&self, pdf: &mut [u8], cms: &[u8]) -> Result<(), SealError> {
        let slot = &mut pdf[self.contents.start + 1..self.contents.end - 1];
        if cms.len() * 2 > slot.len() {
            return Err(seal_error(format!(
                "the CMS signature ({} bytes) does not fit its placeholder ({} bytes)",
                cms.len(),
                slot.len() / 2
            )));
        }
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for (i, byte) in cms.iter().enumerate() {
            slot[2 * i] = HEX[usize::from(byte >> 4)];
            slot[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Ok(())
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// ESSCertIDv2 (RFC 5035): the seal certificate's SHA-256, so that the signature names its
/// certificate and no other can be substituted. `hashAlgorithm` is absent because SHA-256 is
/// its DEFAULT.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<IssuerSerial>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035), the attribute PAdES B-B requires besides contentType and
/// messageDigest. No policies.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

fn signing_certificate_v2(certificate: &Certificate) -> Result<Attribute, SealError> {
    let der = certificate.to_der().map_err(seal_error)?;
    let tbs = certificate.tbs_certificate();
    let value = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(Sha256::digest(&der).to_vec()).map_err(seal_error)?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                serial_number: tbs.serial_number().clone(),
            }),
        }],
    };
    let mut values = SetOfVec::new();
    values
        .insert(Any::encode_from(&value).map_err(seal_error)?)
        .map_err(seal_error)?;
    Ok(Attribute {
        oid: rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2,
        values,
    })
}

/// The detached CMS SignedData (DER) over `digest`, with the chain's certificates.
fn signed_data(identity: &SealIdentity, digest: &[u8]) -> Result<Vec<u8>, SealError> {
    let sha256 = AlgorithmIdentifierOwned {
        oid: rfc5912::ID_SHA_256,
        parameters: None,
    };
    let content = EncapsulatedContentInfo {
        econtent_type: rfc5911::ID_DATA,
        econtent: None,
    };
    let leaf = identity.certificate();
    let signer = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: leaf.tbs_certificate().issuer().clone(),
        serial_number: leaf.tbs_certificate().serial_number().clone(),
    });
    // The builder adds contentType and messageDigest, and no signing-time (B-B forbids it).
    let mut signer_info = SignerInfoBuilder::new(signer, sha256.clone(), &content, Some(digest))
        .map_err(seal_error)?;
    signer_info
        .add_signed_attribute(signing_certificate_v2(leaf)?)
        .map_err(seal_error)?;
    let mut builder = SignedDataBuilder::new(&content);
    builder.add_digest_algorithm(sha256).map_err(seal_error)?;
    for certificate in identity.chain() {
        builder
            .add_certificate(CertificateChoices::Certificate(certificate.clone()))
            .map_err(seal_error)?;
    }
    builder
        .add_signer_info::<SigningKey, DerSignature>(signer_info, identity.key())
        .map_err(seal_error)?;
    builder
        .build()
        .map_err(seal_error)?
        .to_der()
        .map_err(seal_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn pdf_dates_carry_the_local_offset() {
        assert_eq!(
            pdf_date(datetime!(2026-12-02 08:30:15 +01:00)),
            "D:20261202083015+01'00'"
        );
        assert_eq!(
            pdf_date(datetime!(2026-07-01 23:05:00 -03:30)),
            "D:20260701230500-03'30'"
        );
    }
}
