//! Tokens minted by other JOSE libraries (PyJWT from PyPI, `jose` from npm; see
//! `.ci/interop.sh`), for every algorithm the verifier supports, valid and invalid.

use authz_core::jwt::{Algorithm, AlgorithmSet, JwtVerifier, KeySet, VerificationKey};

use crate::common::read_json;

#[test]
fn tokens_from_other_jose_libraries() {
    let Some(dir) = std::env::var_os("AUTHZ_INTEROP_DIR") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the interop test: .ci/run sources .ci/interop.sh"
        );
        eprintln!(
            "SKIPPED: tokens from PyJWT and jose (run `source .ci/interop.sh` first; needs python3 and node)"
        );
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        files += 1;
        let doc = read_json(&path);
        let library = doc["library"].as_str().unwrap();
        let verifier = JwtVerifier::builder(
            doc["issuer"].as_str().unwrap(),
            doc["audience"].as_str().unwrap(),
            Algorithm::ALL,
        )
        .build()
        .unwrap();
        let jwks = doc["keys"]["keys"].as_array().unwrap();
        let mut algorithms = std::collections::HashSet::new();
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let kid = case["kid"].as_str().unwrap();
            let jwk = jwks.iter().find(|k| k["kid"] == kid).unwrap();
            // One key per set: HMAC and asymmetric keys never share a set.
            let key = VerificationKey::from_jwk(jwk, AlgorithmSet::default())
                .unwrap_or_else(|e| panic!("{library}: key {kid}: {e}"))
                .unwrap_or_else(|| panic!("{library}: key {kid} skipped"));
            let keys = KeySet::new(vec![key]).unwrap();
            let verdict = verifier.verify(case["token"].as_str().unwrap(), &keys);
            assert_eq!(
                verdict.is_ok(),
                case["valid"].as_bool().unwrap(),
                "{library}: {name}: {verdict:?}"
            );
            if verdict.is_ok() {
                algorithms.insert(case["alg"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(
            algorithms.len(),
            Algorithm::ALL.len(),
            "{library}: every algorithm verified"
        );
        eprintln!("{library}: all verdicts agree");
    }
    assert!(
        files >= 2,
        "expected tokens from PyJWT and jose in {}",
        dir.display()
    );
}
