//! Token verification benchmarks: `cargo bench -p authz-core --bench jwt`.
//!
//! Per algorithm, in one run: the raw signature check with a key parsed once (the floor),
//! bare `jsonwebtoken::decode` of the same token (the baseline), authz's verifier, authz's full
//! path to a `Principal`, and the verified-token cache hit.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use authz_core::jwt::{Algorithm, JwtAuthenticator, JwtVerifier, KeySet, VerificationKey};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api.example.com";

struct Case {
    alg: Algorithm,
    token: String,
    ours: VerificationKey,
    theirs: jsonwebtoken::DecodingKey,
}

fn token_input(alg: &str) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": "k1"});
    let claims = serde_json::json!({
        "sub": "user_42", "iss": ISS, "aud": AUD, "exp": 4_102_444_800u64, "iat": 1_709_896_400u64,
        "roles": ["analyst", "viewer"],
    });
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn cases() -> Vec<Case> {
    let rng = SystemRandom::new();
    let mut out = Vec::new();
    // HS256
    let secret = [7u8; 32];
    let input = token_input("HS256");
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    out.push(Case {
        alg: Algorithm::HS256,
        token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
        ours: VerificationKey::hmac(Algorithm::HS256, &secret)
            .unwrap()
            .with_kid("k1"),
        theirs: jsonwebtoken::DecodingKey::from_secret(&secret).unwrap(),
    });
    // RS256 and PS256
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = rsa.public_key().as_ref().to_vec();
    for (alg, name, enc) in [
        (
            Algorithm::RS256,
            "RS256",
            &signature::RSA_PKCS1_SHA256 as &'static dyn signature::RsaEncoding,
        ),
        (Algorithm::PS256, "PS256", &signature::RSA_PSS_SHA256),
    ] {
        let input = token_input(name);
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(enc, &rng, input.as_bytes(), &mut sig).unwrap();
        out.push(Case {
            alg,
            token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig)),
            ours: VerificationKey::from_der(alg, &public).unwrap().with_kid("k1"),
            theirs: jsonwebtoken::DecodingKey::from_rsa_der(&public),
        });
    }
    // ES256
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let input = token_input("ES256");
    let sig = ec.sign(&rng, input.as_bytes()).unwrap();
    let point = ec.public_key().as_ref().to_vec();
    out.push(Case {
        alg: Algorithm::ES256,
        token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
        ours: VerificationKey::from_der(Algorithm::ES256, &point)
            .unwrap()
            .with_kid("k1"),
        theirs: jsonwebtoken::DecodingKey::from_ec_der(&point),
    });
    // EdDSA
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let input = token_input("EdDSA");
    let sig = ed.sign(input.as_bytes());
    let public = ed.public_key().as_ref().to_vec();
    out.push(Case {
        alg: Algorithm::EdDSA,
        token: format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
        ours: VerificationKey::from_der(Algorithm::EdDSA, &public)
            .unwrap()
            .with_kid("k1"),
        theirs: jsonwebtoken::DecodingKey::from_ed_der(&public),
    });
    out
}

fn jwt_alg(a: Algorithm) -> jsonwebtoken::Algorithm {
    a.as_str().parse().unwrap()
}

fn verification(c: &mut Criterion) {
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run"]).unwrap());
    let policy = Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
            .build()
            .unwrap(),
    );
    for case in cases() {
        let Case {
            alg,
            token,
            ours,
            theirs,
        } = case;
        let keys = KeySet::new(vec![ours]).unwrap();
        let verifier = JwtVerifier::builder(ISS, AUD, [alg]).build().unwrap();
        let auth = JwtAuthenticator::new(verifier.clone(), policy.clone());
        let mut validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &theirs, &validation).is_ok());
        assert!(auth.authenticate(&token, &keys).is_ok());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let key = &keys.keys()[0];

        let mut g = c.benchmark_group(format!("verify/{alg}"));
        g.bench_function("raw_signature_check", |b| {
            b.iter(|| key.verify(black_box(input.as_bytes()), black_box(&sig)))
        });
        g.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &theirs, &validation).unwrap()
            })
        });
        g.bench_function("authz_verifier", |b| {
            b.iter(|| verifier.verify(black_box(&token), &keys).unwrap())
        });
        g.bench_function("authz_full_path_uncached", |b| {
            b.iter(|| {
                auth.authenticate_uncached(black_box(&token), &keys, 1_800_000_000)
                    .unwrap()
            })
        });
        g.bench_function("authz_cache_hit", |b| {
            b.iter(|| auth.authenticate(black_box(&token), &keys).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, verification);
criterion_main!(benches);
