//! Password hashing with Argon2id (the `argon2` crate, RustCrypto; OWASP's first choice),
//! default parameters (19 MiB, 2 passes, 1 lane). Hashing runs on tokio's blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Hashes `password` into an Argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&salt_bytes()).expect("16 bytes encode");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("Argon2id with default parameters hashes any input")
}

/// Whether `password` matches the PHC string `hash` (constant time inside the crate). A
/// malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash of a random password, checked when the user does not exist so that an unknown user
/// takes as long as a wrong password.
pub(crate) async fn dummy_hash() -> String {
    let pw = authz_core::oauth::new_secret();
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .unwrap_or_default()
}

/// [`verify_password`] on the blocking pool.
pub(crate) async fn verify_blocking(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// 16 random bytes from the OS for a salt.
fn salt_bytes() -> [u8; 16] {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the OS random generator works");
    b
}
