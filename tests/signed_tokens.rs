//! Signed test tokens for the benchmarks, one per algorithm family, with the matching key for
//! authz and for bare `jsonwebtoken`. Shared by `authz-core`'s benches (`jwt`, `dpop`,
//! `revocation`) and `bench-peers/src/bin/http_bench.rs` through this library, so all of them
//! measure the same tokens.

use authz_core::jwt::{Algorithm, VerificationKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The HS256 secret [`signed_tokens`] signs with (fixed, unlike the other keys): for peers
/// that take the secret themselves (`bench-peers/src/bin/http_bench.rs`).
pub const HS256_SECRET: [u8; 32] = [7; 32];

/// A token signed with a fresh key (`kid` "k1"), and that key for both verifiers.
pub struct Signed {
    /// The algorithm it is signed with.
    pub alg: Algorithm,
    /// The compact JWT.
    pub token: String,
    /// The key, for authz's verifier.
    pub ours: VerificationKey,
    /// The key, for bare `jsonwebtoken`.
    pub theirs: jsonwebtoken::DecodingKey,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn input(alg: Algorithm, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": "k1"});
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn token(input: String, sig: &[u8]) -> String {
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// `claims` signed with HS256, RS256, PS256, ES256 and EdDSA.
///
/// # Panics
/// If the OS random generator fails (no key can be made).
pub fn signed_tokens(claims: &serde_json::Value) -> Vec<Signed> {
    signed_tokens_with_jwks(claims)
        .into_iter()
        .map(|(signed, _)| signed)
        .collect()
}

/// [`signed_tokens`], each with its public key as a JWK (RFC 7517: `kid` "k1", `alg`,
/// `use: sig`) as a JWKS endpoint publishes it; `None` for HS256, whose shared secret is never
/// published.
///
/// # Panics
/// If the OS random generator fails (no key can be made).
pub fn signed_tokens_with_jwks(claims: &serde_json::Value) -> Vec<(Signed, Option<serde_json::Value>)> {
    let rng = SystemRandom::new();
    let mut out = Vec::new();
    let secret = HS256_SECRET;
    let i = input(Algorithm::HS256, claims);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        i.as_bytes(),
    );
    out.push((
        Signed {
            alg: Algorithm::HS256,
            token: token(i, tag.as_ref()),
            ours: VerificationKey::hmac(Algorithm::HS256, &secret)
                .unwrap()
                .with_kid("k1"),
            theirs: jsonwebtoken::DecodingKey::from_secret(&secret).unwrap(),
        },
        None,
    ));
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = rsa.public_key().as_ref().to_vec();
    let n = b64(rsa.public_key().modulus().big_endian_without_leading_zero());
    let e = b64(rsa.public_key().exponent().big_endian_without_leading_zero());
    for (alg, enc) in [
        (
            Algorithm::RS256,
            &signature::RSA_PKCS1_SHA256 as &'static dyn signature::RsaEncoding,
        ),
        (Algorithm::PS256, &signature::RSA_PSS_SHA256),
    ] {
        let i = input(alg, claims);
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(enc, &rng, i.as_bytes(), &mut sig).unwrap();
        out.push((
            Signed {
                alg,
                token: token(i, &sig),
                ours: VerificationKey::from_der(alg, &public).unwrap().with_kid("k1"),
                theirs: jsonwebtoken::DecodingKey::from_rsa_der(&public),
            },
            Some(serde_json::json!({
                "kty": "RSA", "kid": "k1", "use": "sig", "alg": alg.as_str(), "n": n, "e": e,
            })),
        ));
    }
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let i = input(Algorithm::ES256, claims);
    let sig = ec.sign(&rng, i.as_bytes()).unwrap();
    let point = ec.public_key().as_ref().to_vec();
    out.push((
        Signed {
            alg: Algorithm::ES256,
            token: token(i, sig.as_ref()),
            ours: VerificationKey::from_der(Algorithm::ES256, &point)
                .unwrap()
                .with_kid("k1"),
            theirs: jsonwebtoken::DecodingKey::from_ec_der(&point),
        },
        Some(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        })),
    ));
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let i = input(Algorithm::EdDSA, claims);
    let sig = ed.sign(i.as_bytes());
    let public = ed.public_key().as_ref().to_vec();
    out.push((
        Signed {
            alg: Algorithm::EdDSA,
            token: token(i, sig.as_ref()),
            ours: VerificationKey::from_der(Algorithm::EdDSA, &public)
                .unwrap()
                .with_kid("k1"),
            theirs: jsonwebtoken::DecodingKey::from_ed_der(&public),
        },
        Some(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
            "x": b64(&public),
        })),
    ));
    out
}

/// The `jsonwebtoken` algorithm of the same name.
///
/// # Panics
/// Never for an algorithm authz knows (`jsonwebtoken` knows each of them).
pub fn jwt_alg(a: Algorithm) -> jsonwebtoken::Algorithm {
    a.as_str().parse().unwrap()
}
