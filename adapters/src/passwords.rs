//! Staff passwords: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane), stored as a
//! PHC string in `AccountCreated`, `PasswordChanged` or `PasswordLinkUsed`. Salts come from the
//! OS (`getrandom`), and so do the one-time links that let an account holder set a password.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use videoamt_core::domain::account::Login;
use videoamt_core::event::TenantId;

/// The shortest password an account may get.
pub const MIN_LENGTH: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("Das Passwort muss mindestens {MIN_LENGTH} Zeichen lang sein.")]
    TooShort,
    #[error("Das Passwort darf höchstens 256 Zeichen lang sein.")]
    TooLong,
    #[error("no randomness for the salt: {0}")]
    Random(getrandom::Error),
    #[error("argon2 failed: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("the OWASP parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password after checking its length.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if chars > 256 {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(PasswordError::Random)?;
    argon2()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string; a malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    password.len() <= 1024 && argon2().verify_password(password.as_bytes(), phc).is_ok()
}

/// Spends the time of one verification without an account, so that an unknown login takes as
/// long to refuse as a wrong password.
pub fn verify_nothing(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("kein-konto-nur-zeit").unwrap_or_default());
    let _ = verify(password, phc);
}

/// Random bytes in a one-time password link.
const LINK_SECRET_BYTES: usize = 32;

/// A new one-time link token for `login` of `tenant`:
/// `base64url(tenant ‖ 0 ‖ login ‖ 0 ‖ 256 random bits)`. Tenant and login say whose link it is
/// and are no secret; the random bits are. The log keeps only the token's SHA-256
/// (`access::token_hash`), so a copy of the database sets no password.
pub fn link_token(tenant: &TenantId, login: &Login) -> Result<String, PasswordError> {
    let mut secret = [0u8; LINK_SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(PasswordError::Random)?;
    let mut bytes = Vec::with_capacity(tenant.as_str().len() + login.as_str().len() + 34);
    bytes.extend_from_slice(tenant.as_str().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(login.as_str().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&secret);
    Ok(B64URL.encode(bytes))
}

/// Whose account a link token names, when it is shaped like one; whether it is the account's
/// current link only the account's stream can say.
pub fn link_account(token: &str) -> Option<(TenantId, Login)> {
    if token.len() > 256 {
        return None;
    }
    let bytes = B64URL.decode(token).ok()?;
    let mut parts = bytes.splitn(3, |b| *b == 0);
    let tenant = std::str::from_utf8(parts.next()?).ok()?;
    let login = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next()?.len() != LINK_SECRET_BYTES {
        return None;
    }
    Some((TenantId::parse(tenant).ok()?, Login::parse(login)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let a = hash("richtig-langes-passwort").expect("hashes");
        let b = hash("richtig-langes-passwort").expect("hashes");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(verify("richtig-langes-passwort", &a));
        assert!(!verify("richtig-langes-passworT", &a));
        assert!(!verify("richtig-langes-passwort", "not a phc string"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(hash("zu-kurz"), Err(PasswordError::TooShort)));
        assert!(matches!(
            hash(&"x".repeat(300)),
            Err(PasswordError::TooLong)
        ));
    }

    #[test]
    fn a_link_token_names_its_account_and_carries_256_random_bits() {
        let tenant = TenantId::parse("ettlingen").expect("slug");
        let login = Login::parse("a.becker").expect("login");
        let a = link_token(&tenant, &login).expect("token");
        let b = link_token(&tenant, &login).expect("token");
        assert_ne!(a, b);
        assert_eq!(link_account(&a), Some((tenant, login)));
        for bad in ["", "AAAA", &a[..a.len() - 2], &"A".repeat(300)] {
            assert_eq!(link_account(bad), None, "{bad:?}");
        }
    }
}
