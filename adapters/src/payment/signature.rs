//! The callback's signature: HMAC-SHA256 over the body's exact bytes with the secret the
//! provider and videoamt share, sent as `X-Signature: sha256=<64 hex digits>` and checked in
//! constant time.

use hmac::Mac as _;
use videoamt_core::payment::PaymentError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The header a callback's signature comes in.
pub const SIGNATURE_HEADER: &str = "x-signature";
const PREFIX: &str = "sha256=";

/// The shared secret of the callbacks. `Debug` does not show it.
#[derive(Clone)]
pub struct CallbackKey(Vec<u8>);

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKey(‹secret›)")
    }
}

impl CallbackKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(secret.to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// The header value for `body`: `sha256=` and the tag in lowercase hex.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 64);
        out.push_str(PREFIX);
        for b in tag.iter() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Whether `header` is this key's signature of `body`. A missing, malformed or wrong
    /// signature is the same refusal; the tags are compared in constant time.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), PaymentError> {
        let tag = header
            .and_then(|h| h.trim().strip_prefix(PREFIX))
            .and_then(hex32)
            .ok_or(PaymentError::BadSignature)?;
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&tag)
            .map_err(|_| PaymentError::BadSignature)
    }
}

fn hex32(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether two secrets (API tokens) are equal, without an early exit that would tell how
/// much of a guess was right.
pub fn same_secret(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        let key = CallbackKey::new(b"Jefe");
        assert_eq!(
            key.sign(b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn only_the_keys_signature_of_exactly_this_body_holds() {
        let key = CallbackKey::new(b"geteiltes-geheimnis");
        let body =
            br#"{"requestId":"0192f3c4-7b1a-7cc0-8f00-000000000003","transactionId":"sbx_1"}"#;
        let signature = key.sign(body);
        assert_eq!(key.verify(body, Some(&signature)), Ok(()));
        assert_eq!(
            key.verify(
                body,
                Some(&signature.to_ascii_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(()),
            "hex digits in either case"
        );
        let mut changed = body.to_vec();
        changed[20] ^= 1;
        let other = CallbackKey::new(b"ein-anderes-geheimnis");
        let forged = other.sign(body);
        let mut flipped = signature.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        for (body, header) in [
            (&changed[..], Some(signature.as_str())),
            (body, Some(forged.as_str())),
            (body, Some(flipped.as_str())),
            (body, None),
            (body, Some("")),
            (body, Some(&signature[7..])),
            (body, Some("sha256=zz")),
        ] {
            assert_eq!(
                key.verify(body, header),
                Err(PaymentError::BadSignature),
                "{header:?}"
            );
        }
        assert!(!format!("{key:?}").contains("geheimnis"));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("token-1", "token-1"));
        assert!(!same_secret("token-1", "token-2"));
        assert!(!same_secret("token-1", "token-10"));
        assert!(!same_secret("token-1", ""));
    }
}
