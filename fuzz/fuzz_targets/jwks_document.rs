//! The JWKS loader: any document, never a panic; a loaded set has unique kids and never mixes
//! symmetric and asymmetric keys.
#![no_main]
use authz_core::jwt::{Algorithm, KeyFamily, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = KeySet::from_jwks(text, Algorithm::ALL.into_iter().collect()) {
        let hmac = set
            .keys()
            .iter()
            .filter(|k| k.algorithm().family() == KeyFamily::Hmac)
            .count();
        assert!(hmac == 0 || hmac == set.len());
        let mut kids: Vec<_> = set.keys().iter().filter_map(|k| k.kid()).collect();
        let n = kids.len();
        kids.sort_unstable();
        kids.dedup();
        assert_eq!(kids.len(), n);
    }
});
