//! TAN codes for signatures: six random digits, and the keyed digest that is all the log
//! keeps of them (`TanIssued::digest`). The key comes from the KEK, so a digest cannot be
//! checked against the million possible codes by anyone who reads the log but not the key.

use hmac::Mac as _;
use uuid::Uuid;
use videoamt_core::domain::FormId;
use videoamt_core::domain::document::Sha256;
use videoamt_core::keys::KeyError;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Makes and checks TAN codes under the server's TAN key.
#[derive(Clone)]
pub struct TanCodes {
    key: [u8; 32],
}

impl std::fmt::Debug for TanCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TanCodes(‹secret›)")
    }
}

/// A new TAN: its id, the code to show or send, and the digest to record.
pub struct NewTan {
    pub id: Uuid,
    pub code: String,
    pub digest: Sha256,
}

impl std::fmt::Debug for NewTan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTan")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TanCodes {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// Six uniformly random digits for `form`.
    pub fn issue(&self, form: FormId) -> Result<NewTan, KeyError> {
        // Rejection sampling: 4,294,000,000 is the largest multiple of a million below 2^32.
        let value = loop {
            let mut bytes = [0u8; 4];
            getrandom::fill(&mut bytes)
                .map_err(|e| KeyError::Kek(format!("no randomness: {e}")))?;
            let n = u32::from_le_bytes(bytes);
            if n < 4_294_000_000 {
                break n % 1_000_000;
            }
        };
        let id = Uuid::now_v7();
        let code = format!("{value:06}");
        let digest = self.digest(form, id, &code);
        Ok(NewTan { id, code, digest })
    }

    /// The digest of `code` as typed in, for the TAN `id` of `form`. Spaces are ignored.
    pub fn digest(&self, form: FormId, id: Uuid, code: &str) -> Sha256 {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.key).expect("any key");
        mac.update(b"videoamt tan v1\0");
        mac.update(form.0.as_bytes());
        mac.update(id.as_bytes());
        mac.update(code.as_bytes());
        Sha256::from_bytes(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_only_their_own_digest_matches() {
        let codes = TanCodes::new([7; 32]);
        let form = FormId(Uuid::from_u128(1));
        let tan = codes.issue(form).expect("random");
        assert_eq!(tan.code.len(), 6);
        assert!(tan.code.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(codes.digest(form, tan.id, &tan.code), tan.digest);
        let spaced = format!("{} {}", &tan.code[..3], &tan.code[3..]);
        assert_eq!(codes.digest(form, tan.id, &spaced), tan.digest);
        let wrong = if tan.code == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert_ne!(codes.digest(form, tan.id, wrong), tan.digest);
        // Another form, TAN or key gives another digest for the same code.
        assert_ne!(
            codes.digest(FormId(Uuid::from_u128(2)), tan.id, &tan.code),
            tan.digest
        );
        assert_ne!(codes.digest(form, Uuid::now_v7(), &tan.code), tan.digest);
        assert_ne!(
            TanCodes::new([8; 32]).digest(form, tan.id, &tan.code),
            tan.digest
        );
        assert!(!format!("{tan:?} {codes:?}").contains(&tan.code));
        // Uniform enough: 2,000 codes spread over the first digit.
        let mut first = [0u32; 10];
        for _ in 0..2_000 {
            let c = codes.issue(form).expect("random").code;
            first[usize::from(c.as_bytes()[0] - b'0')] += 1;
        }
        assert!(first.iter().all(|&n| (120..=280).contains(&n)), "{first:?}");
    }
}
