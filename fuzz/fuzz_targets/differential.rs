//! Differential fuzzing of authz's JWT verifier against `jsonwebtoken::decode`, with the rule of
//! the differential proptest (`tests/tests/it/differential.rs`): the verdicts must agree, except
//! where `authz_is_stricter` (the one list, in the `authz-tests` crate) documents that authz refuses more.
//! authz accepting what jsonwebtoken refuses is always a crash.
//!
//! The first byte picks what the fuzzer writes: the whole token (mode 0), the payload of a token
//! signed with the fixed key under a fixed header (mode 1), or the header of a token signed with
//! the fixed key over a valid payload (mode 2). Times come from the real clock, because
//! jsonwebtoken reads it.
#![no_main]
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authz_core::jwt::{Algorithm, JwtVerifier, KeySet, VerificationKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

use authz_tests::differential_rule::{Case, authz_is_stricter};

const SECRET: [u8; 32] = [7; 32];
const KID: &str = "k1";
const LEEWAY: u64 = 30;

struct Fixture {
    verifier: JwtVerifier,
    keys: KeySet,
    hmac: aws_lc_rs::hmac::Key,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&["i"]);
        validation.set_audience(&["a"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        Fixture {
            verifier: JwtVerifier::builder("i", "a", [Algorithm::HS256])
                .leeway(Duration::from_secs(LEEWAY))
                .build()
                .unwrap(),
            keys: KeySet::new(vec![
                VerificationKey::hmac(Algorithm::HS256, &SECRET)
                    .unwrap()
                    .with_kid(KID),
            ])
            .unwrap(),
            hmac: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &SECRET),
            decoding: jsonwebtoken::DecodingKey::from_secret(&SECRET).unwrap(),
            validation,
        }
    })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn signed(f: &Fixture, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = aws_lc_rs::hmac::sign(&f.hmac, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    loop {
        let now = now();
        let token = match mode % 3 {
            0 => match std::str::from_utf8(rest) {
                Ok(t) => t.to_string(),
                Err(_) => return,
            },
            1 => signed(f, br#"{"alg":"HS256","typ":"JWT"}"#, rest),
            _ => {
                let claims = format!(r#"{{"iss":"i","aud":"a","sub":"s","exp":{}}}"#, now + 3600);
                signed(f, rest, claims.as_bytes())
            }
        };
        let jwt = jsonwebtoken::decode::<serde::de::IgnoredAny>(token.as_bytes(), &f.decoding, &f.validation)
            .map(|_| ())
            .map_err(|e| e.into_kind());
        let authz = f
            .verifier
            .verify_at(&token, &f.keys, now)
            .map(|_| ())
            .map_err(|e| e.kind().clone());
        if self::now() != now {
            continue; // the clock ticked between the two verdicts: judge again at one instant
        }
        let case = Case {
            token: &token,
            key_kid: KID,
            now,
            leeway: LEEWAY,
        };
        match (authz, jwt) {
            (Ok(()), Err(j)) => panic!("authz ACCEPTS what jsonwebtoken refuses ({j:?}): {token}"),
            (Err(a), Ok(())) => assert!(
                authz_is_stricter(&case).is_some(),
                "authz refuses ({a:?}) what jsonwebtoken accepts, with no documented reason: {token}"
            ),
            _ => {}
        }
        return;
    }
});
