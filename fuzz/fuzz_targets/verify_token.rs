//! The whole verification path (size, header, key lookup, signature, claims, mapping,
//! principal) with a fixed key set: any input, never a panic, never a principal.
#![no_main]
use std::sync::{Arc, OnceLock};

use authz_core::jwt::{Algorithm, ClaimMapping, JwtAuthenticator, JwtVerifier, KeySet, VerificationKey};
use authz_core::{PermissionCatalog, Policy, RoleSpec};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    auth: JwtAuthenticator,
    keys: KeySet,
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
            .roles_from("realm_access.roles")
            .permissions_from("perms")
            .tenant_from("tid");
        let auth = JwtAuthenticator::new(verifier, policy)
            .with_mapping(mapping)
            .with_cache_entries(0);
        let keys = KeySet::new(vec![
            VerificationKey::hmac(Algorithm::HS256, &[7; 32])
                .unwrap()
                .with_kid("k1"),
        ])
        .unwrap();
        Fixture { auth, keys }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    // Nobody can sign with the secret, so nothing the fuzzer builds may authenticate.
    assert!(
        f.auth
            .authenticate_uncached(token, &f.keys, 1_800_000_000)
            .is_err()
    );
    let _ = f.auth.verifier().peek_header(token);
});
