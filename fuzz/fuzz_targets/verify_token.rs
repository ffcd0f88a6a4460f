//! The whole verification path (size, header, key lookup, signature, claims, mapping,
//! principal) with a fixed key set: any input, never a panic, never a principal.
#![no_main]
use std::sync::{Arc, OnceLock};

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use authz_core::auth::{Authenticator, Issuer, StaticKeys};
use authz_core::clock::ManualClock;
use authz_core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    auth: Authenticator,
    verifier: JwtVerifier,
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
        let verifier = JwtVerifier::builder("https://fuzz.test", "fuzz", Algorithm::ALL)
            .build()
            .unwrap();
        let mapping = ClaimMapping::default()
            .roles_from("/realm_access/roles")
            .unwrap()
            .permissions_from("perms")
            .unwrap()
            .tenant_from("tid")
            .unwrap();
        let keys = KeySet::new(vec![
            VerificationKey::hmac(Algorithm::HS256, &[7; 32])
                .unwrap()
                .with_kid("k1"),
        ])
        .unwrap();
        let auth = authenticator(policy, verifier.clone(), mapping, keys, 1_800_000_000);
        Fixture { auth, verifier }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    // Nobody can sign with the secret, so nothing the fuzzer builds may authenticate.
    assert!(ready(f.auth.authenticate(token)).is_err());
    let _ = f.verifier.peek_header(token);
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
