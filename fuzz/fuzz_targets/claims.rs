//! The claims half of verification: the fuzzer writes the payload, the target signs it with
//! the fixed key (so the signature check passes), and the claim checks, the claim mapping and
//! the principal must cope with anything: never a panic, and a principal only for claims that
//! really satisfy every check.
#![no_main]
use std::sync::{Arc, OnceLock};

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::clock::ManualClock;
use authz_core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [7; 32];
const NOW: u64 = 1_800_000_000;

struct Fixture {
    auth: Authenticator,
    key: aws_lc_rs::hmac::Key,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run"]).unwrap());
        let policy = Arc::new(
            Policy::builder(catalog)
                .role(RoleSpec::new("viewer").grant("data:read"))
                .build()
                .unwrap(),
        );
        let verifier = JwtVerifier::builder("i", "a", [Algorithm::HS256])
            .require_claim("tid")
            .build()
            .unwrap();
        let mapping = ClaimMapping::default()
            .roles_from("/realm_access/roles")
            .unwrap()
            .permissions_from("perms")
            .unwrap()
            .tenant_from("tid")
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &SECRET).unwrap()]).unwrap();
        Fixture {
            auth: authenticator(policy, verifier, mapping, keys, NOW),
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &SECRET),
        }
    })
}

fuzz_target!(|payload: &[u8]| {
    let f = fixture();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = aws_lc_rs::hmac::sign(&f.key, input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    if let Ok(p) = ready(f.auth.authenticate(&token)) {
        // Accepted: then the payload really is an object with the right iss, aud, a future exp,
        // a string sub and a non-null tid.
        let text = std::str::from_utf8(payload).expect("accepted payloads are UTF-8");
        let v: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            // RFC 8259's grammar allows lone surrogate escapes (`"\ud800"`) and numbers of any
            // size (`1e800`), which serde_json's `Value` refuses; in a claim nobody reads they are
            // harmless, and in a claim that is read they make the token invalid (see the
            // verifier's unit tests).
            Err(e)
                if ["surrogate", "unicode", "hex escape", "number out of range"]
                    .iter()
                    .any(|m| e.to_string().contains(m)) =>
            {
                return;
            }
            Err(e) => panic!("accepted payload is not JSON: {e}"),
        };
        assert_eq!(v["iss"], "i");
        assert!(v["exp"].as_f64().is_some_and(|e| e + 30.0 > NOW as f64));
        assert!(!v["tid"].is_null());
        assert_eq!(p.subject(), v["sub"].as_str().unwrap());
    }
});

/// The production future, polled once: with static keys it never waits.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("static keys never wait"),
    }
}

fn authenticator(policy: Arc<Policy>, verifier: JwtVerifier, mapping: ClaimMapping, keys: KeySet, now: u64) -> Authenticator {
    Authenticator::builder(policy)
        .issuer(Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping))
        .clock(Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(now))))
        .cache_entries(0)
        .build()
        .unwrap()
}
