//! Citizens' capability links. A citizen has no account: the link in their mail is the
//! credential, scoped to one appointment.
//!
//! The token is `base64url(appointment id ‖ HMAC(access key, appointment id)[..16])`, so it
//! carries 128 bits no one can guess without the key, which is derived from the KEK and never
//! stored. The log keeps only the token's SHA-256 (`CitizenAccessGranted`), so a copy of the
//! database opens nothing; the outbox worker derives the token again to put it into every mail
//! of the appointment, and a mail sent twice carries the same link.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::Mac as _;
use sha2::Digest as _;
use uuid::Uuid;
use videoamt_core::domain::AppointmentId;

const MAC_BYTES: usize = 16;
const TOKEN_BYTES: usize = 16 + MAC_BYTES;

/// Issues and checks capability tokens.
#[derive(Clone)]
pub struct AccessTokens {
    key: [u8; 32],
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessTokens(‹secret›)")
    }
}

impl AccessTokens {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, appointment: AppointmentId) -> [u8; MAC_BYTES] {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&self.key)
            .expect("any key length");
        mac.update(appointment.0.as_bytes());
        let full: [u8; 32] = mac.finalize().into_bytes().into();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// The token of `appointment`'s link.
    pub fn token(&self, appointment: AppointmentId) -> String {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..16].copy_from_slice(appointment.0.as_bytes());
        bytes[16..].copy_from_slice(&self.mac(appointment));
        B64URL.encode(bytes)
    }

    /// The appointment a token names, when the token is well-formed and was made with this
    /// key. Checked without touching the store, so guessing costs the server nothing.
    pub fn appointment_of(&self, token: &str) -> Option<AppointmentId> {
        if token.len() > 64 {
            return None;
        }
        let bytes = B64URL.decode(token).ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        let appointment = AppointmentId(Uuid::from_slice(&bytes[..16]).ok()?);
        let expected = self.mac(appointment);
        // Constant time, so the comparison leaks nothing about how much of a guess was right.
        let diff = expected
            .iter()
            .zip(&bytes[16..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(appointment)
    }
}

/// The hash the log keeps of a token (hex SHA-256).
pub fn token_hash(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(seed: u8) -> AccessTokens {
        AccessTokens::new([seed; 32])
    }

    #[test]
    fn a_token_names_its_appointment_only_under_its_key() {
        let a = AppointmentId(Uuid::from_u128(7));
        let token = tokens(1).token(a);
        assert_eq!(tokens(1).appointment_of(&token), Some(a));
        assert_eq!(tokens(2).appointment_of(&token), None);
        assert_eq!(token.len(), 43);
    }

    #[test]
    fn a_changed_character_or_a_foreign_appointment_is_refused() {
        let issuer = tokens(1);
        let token = issuer.token(AppointmentId(Uuid::from_u128(7)));
        for i in 0..token.len() {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            let forged: String = chars.into_iter().collect();
            assert_eq!(issuer.appointment_of(&forged), None, "position {i}");
        }
        assert_eq!(issuer.appointment_of(""), None);
        assert_eq!(issuer.appointment_of(&"A".repeat(500)), None);
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
