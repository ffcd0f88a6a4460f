//! What the tower-level benches share: the bench issuer (HS256 tokens of
//! `https://bench.test` for audience `bench`) and its tokens.

use authz_axum::core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use authz_axum::{Issuer, StaticKeys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The bench issuer's HS256 secret.
const SECRET: &[u8] = b"a-bench-secret-of-at-least-32-bytes!!";

/// The bench issuer: HS256 tokens of `https://bench.test` for audience `bench`.
pub(crate) fn issuer() -> Issuer {
    let verifier = JwtVerifier::builder("https://bench.test", "bench", [Algorithm::HS256])
        .build()
        .unwrap();
    let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap()]).unwrap();
    Issuer::new(verifier, StaticKeys::new(keys))
}

/// `claims` signed by the bench issuer (header `{"alg":"HS256","typ":"JWT"}`); give them `iss`
/// `https://bench.test` and `aud` `bench`.
pub(crate) fn hs256(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}
