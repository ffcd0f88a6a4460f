//! A security review's attacks on the authentication pipeline. Each test is one attack and
//! asserts the secure behaviour. Five of them were findings when written (cache past
//! `max_age`, an empty `sub`, a flapping JWKS resetting the unknown-`kid` cool-down, an outside
//! `AUTHZ_ISSUER` served by the dev issuer, the generation moving before the keys); they were
//! fixed and are regression tests now.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authz_axum::core::Policy;
use authz_axum::core::auth::{AuthError, Authenticator, Issuer, StaticKeys};
use authz_axum::core::clock::{Clock, ManualClock};
use authz_axum::core::jwt::{
    Algorithm, AlgorithmSet, ClaimMapping, ClaimPath, JwtErrorKind as E, JwtVerifier, KeySet, Provider,
    VerificationKey,
};
use authz_axum::jwks::{JwksOptions, RemoteJwks};
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::common::{RsaSigningKey, SigningKey, http, init_tracing};

const AUD: &str = "api.attack.test";
const ISS_A: &str = "https://a.attack.test";
const ISS_B: &str = "https://b.attack.test";
const SECRET_A: [u8; 32] = [0xA1; 32];
const SECRET_B: [u8; 32] = [0xB2; 32];

fn policy() -> Arc<Policy> {
    crate::common::payments_policy()
}

fn names(p: &authz_axum::core::Principal, policy: &Policy) -> Vec<String> {
    let mut out: Vec<String> = policy
        .catalog()
        .permissions()
        .iter()
        .map(|perm| perm.to_string())
        .filter(|n| policy.catalog().id(n).is_some_and(|id| p.can(id)))
        .collect();
    out.sort();
    out
}

/// A compact JWS over these exact header and payload texts, HMAC-SHA256 with `secret`.
fn hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hmac_keys(secret: &[u8]) -> StaticKeys {
    StaticKeys::new(
        KeySet::new(vec![
            VerificationKey::hmac(Algorithm::HS256, secret)
                .unwrap()
                .with_kid("k1"),
        ])
        .unwrap(),
    )
}

fn hs_verifier(iss: &str) -> authz_axum::core::jwt::JwtVerifierBuilder {
    JwtVerifier::builder(iss, AUD, [Algorithm::HS256])
}

const H: &str = r#"{"alg":"HS256","kid":"k1"}"#;

fn payload(iss: &str, now: u64, extra: &str) -> String {
    format!(
        r#"{{"iss":"{iss}","aud":"{AUD}","sub":"u1","iat":{now},"exp":{}{extra}}}"#,
        now + 3600
    )
}

fn kind(r: Result<authz_axum::core::Principal, AuthError>) -> E {
    match r {
        Err(AuthError::InvalidToken(k)) => k,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

// ---- the verified-token cache ----------------------------------------------------------------

fn max_age_auth(clock: &ManualClock, cache_entries: usize) -> Authenticator {
    let verifier = hs_verifier(ISS_A)
        .max_age(Duration::from_secs(60))
        .build()
        .unwrap();
    Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, hmac_keys(&SECRET_A)))
        .clock(Arc::new(clock.clone()))
        .cache_entries(cache_entries)
        .build()
        .unwrap()
}

/// Control: without the cache, a token older than `max_age` (+ leeway) is refused.
#[tokio::test]
async fn max_age_refuses_an_old_token_without_the_cache() {
    let clock = ManualClock::starting_now();
    let auth = max_age_auth(&clock, 0);
    let now = secs(clock.now());
    let token = hs256(H, &payload(ISS_A, now, r#","roles":["analyst"]"#), &SECRET_A);
    assert!(auth.authenticate(&token).await.is_ok());
    clock.advance(Duration::from_secs(600));
    assert_eq!(kind(auth.authenticate(&token).await), E::TooOld);
}

/// Attack: present a token once while it is young; the cache then keeps serving it long after
/// `max_age` has passed (the cache entry lives until `exp`, `max_age` is never re-checked).
#[tokio::test]
async fn cache_must_not_serve_a_token_past_max_age() {
    let clock = ManualClock::starting_now();
    let auth = max_age_auth(&clock, 100);
    let now = secs(clock.now());
    let token = hs256(H, &payload(ISS_A, now, r#","roles":["analyst"]"#), &SECRET_A);
    assert!(auth.authenticate(&token).await.is_ok(), "young token");
    clock.advance(Duration::from_secs(600)); // max_age 60 s + 30 s leeway long gone; exp in 50 min
    assert_eq!(
        kind(auth.authenticate(&token).await),
        E::TooOld,
        "served from the cache although max_age refuses it"
    );
}

/// A cached token is never served at or past `exp` (even though verification allows `leeway`).
#[tokio::test]
async fn cache_never_serves_at_or_past_exp_even_with_fractional_exp() {
    let clock = ManualClock::starting_now();
    let verifier = hs_verifier(ISS_A).leeway(Duration::ZERO).build().unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, hmac_keys(&SECRET_A)))
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let now = secs(clock.now());
    let p = format!(
        r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"u","exp":{}.9}}"#,
        now + 10
    );
    let token = hs256(H, &p, &SECRET_A);
    assert!(auth.authenticate(&token).await.is_ok());
    clock.advance(Duration::from_secs(11)); // past exp (now+10.9)
    assert_eq!(kind(auth.authenticate(&token).await), E::Expired);
}

/// A clock whose coarse reading lags by 9.5 s (the verified-token cache covers up to ten seconds
/// of lag: a tick is milliseconds, more only if the machine stalled), counting reads of `now`.
#[derive(Debug)]
struct LaggingCoarseClock(ManualClock, AtomicUsize);

impl Clock for LaggingCoarseClock {
    fn now(&self) -> SystemTime {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.now()
    }
    fn now_coarse(&self) -> SystemTime {
        self.0.now() - Duration::from_millis(9_500)
    }
}

/// Far from `exp` the cache answers from the coarse clock alone (the exact clock is not read);
/// near `exp` the exact clock decides, and a token is never served at `exp` although the coarse
/// clock still reads 9.5 s before it.
#[tokio::test]
async fn cache_never_serves_at_exp_when_the_coarse_clock_lags() {
    let manual = ManualClock::starting_now();
    let clock = Arc::new(LaggingCoarseClock(manual.clone(), AtomicUsize::new(0)));
    let verifier = hs_verifier(ISS_A).leeway(Duration::ZERO).build().unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, hmac_keys(&SECRET_A)))
        .clock(clock.clone())
        .build()
        .unwrap();
    // Whole seconds, so that `exp` falls exactly on a tick of the manual clock.
    let start = secs(manual.now()) + 1;
    manual.set(UNIX_EPOCH + Duration::from_secs(start));
    let exp = start + 60;
    let token = hs256(H, &payload_exp(exp), &SECRET_A);
    assert!(auth.authenticate(&token).await.is_ok());
    // 30 s before exp: a hit, and the exact clock is not read.
    manual.advance(Duration::from_secs(30));
    let exact_reads = clock.1.load(Ordering::Relaxed);
    assert!(auth.authenticate(&token).await.is_ok());
    assert_eq!(auth.cache_stats().hits, 1, "far from exp, answered by the cache");
    assert_eq!(
        clock.1.load(Ordering::Relaxed),
        exact_reads,
        "far from exp, the coarse clock decides"
    );
    // 100 ms before exp: the coarse clock reads exp − 9.6 s, `now` decides: still valid, a hit.
    manual.set(UNIX_EPOCH + Duration::from_secs(exp) - Duration::from_millis(100));
    assert!(auth.authenticate(&token).await.is_ok());
    assert_eq!(auth.cache_stats().hits, 2);
    assert!(
        clock.1.load(Ordering::Relaxed) > exact_reads,
        "near exp, the exact clock decides"
    );
    // At exp the coarse clock still reads exp − 9.5 s: the token must be refused regardless.
    manual.set(UNIX_EPOCH + Duration::from_secs(exp));
    assert_eq!(kind(auth.authenticate(&token).await), E::Expired);
}

fn payload_exp(exp: u64) -> String {
    format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"u","exp":{exp}}}"#)
}

/// Attack: get a header remembered through one issuer's valid token, then present tokens with
/// that same header segment to an issuer whose `typ` rule or allowlist refuses it. The memo only
/// skips decoding; each issuer's header checks still run, cache on or off.
#[tokio::test]
async fn a_remembered_header_is_still_judged_by_each_issuer() {
    const ISS_C: &str = "https://c.example";
    for cache_entries in [0, 100] {
        let auth = Authenticator::builder(policy())
            .issuer(Issuer::new(
                hs_verifier(ISS_A).build().unwrap(),
                hmac_keys(&SECRET_A),
            ))
            .issuer(Issuer::new(
                hs_verifier(ISS_B).require_type("at+jwt").build().unwrap(),
                hmac_keys(&SECRET_B),
            ))
            .issuer(Issuer::new(
                JwtVerifier::builder(ISS_C, AUD, [Algorithm::HS384])
                    .build()
                    .unwrap(),
                hmac_keys(&SECRET_B),
            ))
            .cache_entries(cache_entries)
            .build()
            .unwrap();
        let now = crate::common::now();
        let header = r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#;
        let a = hs256(header, &payload(ISS_A, now, ""), &SECRET_A);
        assert!(auth.authenticate(&a).await.is_ok(), "issuer A takes typ JWT");
        for _ in 0..2 {
            let b = hs256(header, &payload(ISS_B, now, ""), &SECRET_B);
            assert_eq!(
                kind(auth.authenticate(&b).await),
                E::InvalidType,
                "issuer B requires at+jwt"
            );
            let c = hs256(header, &payload(ISS_C, now, ""), &SECRET_B);
            assert_eq!(
                kind(auth.authenticate(&c).await),
                E::AlgorithmNotAllowed,
                "issuer C takes HS384 only"
            );
        }
        // A second token of issuer A with the remembered header: verified in full (a forged
        // signature is still refused).
        let forged = hs256(header, &payload(ISS_A, now, r#","roles":["admin"]"#), &SECRET_B);
        assert_eq!(kind(auth.authenticate(&forged).await), E::InvalidSignature);
        let other = hs256(header, &payload(ISS_A, now, r#","x":1"#), &SECRET_A);
        assert!(auth.authenticate(&other).await.is_ok());
    }
}

// ---- issuer isolation ------------------------------------------------------------------------

fn two_issuers() -> Authenticator {
    Authenticator::builder(policy())
        .issuer(Issuer::new(
            hs_verifier(ISS_A).max_token_bytes(512).build().unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .issuer(Issuer::new(
            hs_verifier(ISS_B).build().unwrap(),
            hmac_keys(&SECRET_B),
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_issuers_key_never_signs_for_another() {
    let auth = two_issuers();
    let now = crate::common::now();
    // Issuer A's secret, issuer B's name.
    let forged = hs256(H, &payload(ISS_B, now, ""), &SECRET_A);
    assert_eq!(kind(auth.authenticate(&forged).await), E::InvalidSignature);
    // Both right: accepted, and the principal names its issuer.
    let good = hs256(H, &payload(ISS_B, now, ""), &SECRET_B);
    assert_eq!(auth.authenticate(&good).await.unwrap().issuer(), Some(ISS_B));
    // Two `iss` (one escaped) to select one issuer and be checked against the other.
    let two = hs256(
        H,
        &format!(
            r#"{{"iss":"{ISS_B}","i\u0073s":"{ISS_A}","aud":"{AUD}","sub":"u","exp":{}}}"#,
            now + 60
        ),
        &SECRET_A,
    );
    assert_eq!(kind(auth.authenticate(&two).await), E::InvalidPayload);
    // An escaped `iss` selects the same issuer its unescaped text names.
    let escaped = hs256(
        H,
        &format!(
            r#"{{"iss":"https:\/\/b.attack.test","aud":"{AUD}","sub":"u","exp":{}}}"#,
            now + 60
        ),
        &SECRET_B,
    );
    assert!(auth.authenticate(&escaped).await.is_ok());
    // Unknown issuer, no issuer.
    let unknown = hs256(H, &payload("https://c.attack.test", now, ""), &SECRET_A);
    assert_eq!(kind(auth.authenticate(&unknown).await), E::InvalidIssuer);
    let none = hs256(
        H,
        &format!(r#"{{"aud":"{AUD}","sub":"u","exp":{}}}"#, now + 60),
        &SECRET_A,
    );
    assert_eq!(kind(auth.authenticate(&none).await), E::MissingClaim("iss"));
}

#[tokio::test]
async fn the_smallest_issuer_size_limit_and_allowlist_still_apply_to_its_tokens() {
    let auth = two_issuers();
    let now = crate::common::now();
    let padding = format!(r#","pad":"{}""#, "x".repeat(600));
    // B accepts 8 KiB; A only 512 bytes: a big token naming A is refused before any key work.
    let big_a = hs256(H, &payload(ISS_A, now, &padding), &SECRET_A);
    assert_eq!(kind(auth.authenticate(&big_a).await), E::TooLarge);
    let big_b = hs256(H, &payload(ISS_B, now, &padding), &SECRET_B);
    assert!(auth.authenticate(&big_b).await.is_ok());

    // An ES256 issuer beside an HS256 one: an HS256 token naming the ES256 issuer is refused
    // by that issuer's allowlist, whatever the union allows.
    let es = SigningKey::es256("e1");
    let es_keys = KeySet::new(vec![
        VerificationKey::from_jwk(&es.jwk, AlgorithmSet::default())
            .unwrap()
            .unwrap(),
    ])
    .unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            hs_verifier(ISS_A).build().unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .issuer(Issuer::new(
            JwtVerifier::builder(ISS_B, AUD, [Algorithm::ES256])
                .build()
                .unwrap(),
            StaticKeys::new(es_keys),
        ))
        .build()
        .unwrap();
    let cross = hs256(
        r#"{"alg":"HS256","kid":"e1"}"#,
        &payload(ISS_B, now, ""),
        &SECRET_A,
    );
    assert_eq!(kind(auth.authenticate(&cross).await), E::AlgorithmNotAllowed);
}

// ---- algorithm confusion ---------------------------------------------------------------------

/// RSA public key (JWK without `alg`) under an allowlist holding RS256 *and* HS256: an HS256
/// token "signed" with the public key's bytes must find no HMAC key.
#[tokio::test]
async fn public_key_bytes_never_become_an_hmac_secret() {
    let rsa = RsaSigningKey::generate("r1");
    let allowed: AlgorithmSet = [Algorithm::RS256, Algorithm::HS256].into_iter().collect();
    let jwks = json!({"keys": [rsa.jwk(None)]}).to_string();
    let keys = StaticKeys::from_jwks(&jwks, allowed).unwrap();
    assert!(
        keys.key_set()
            .keys()
            .iter()
            .all(|k| k.algorithm() == Algorithm::RS256)
    );
    let verifier = JwtVerifier::builder(ISS_A, AUD, [Algorithm::RS256, Algorithm::HS256])
        .build()
        .unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(verifier, keys))
        .build()
        .unwrap();
    let now = crate::common::now();
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).unwrap();
    for secret in [rsa.n.as_bytes(), &n[..], rsa.jwk(None).to_string().as_bytes()] {
        let t = hs256(r#"{"alg":"HS256","kid":"r1"}"#, &payload(ISS_A, now, ""), secret);
        assert_eq!(kind(auth.authenticate(&t).await), E::KeyAlgorithmMismatch);
        let t = hs256(r#"{"alg":"HS256"}"#, &payload(ISS_A, now, ""), secret);
        assert!(auth.authenticate(&t).await.is_err());
    }
    // A symmetric key published beside it is dropped, never used.
    let jwks =
        json!({"keys": [rsa.jwk(None), {"kty":"oct","kid":"o1","k": URL_SAFE_NO_PAD.encode(SECRET_A)}]})
            .to_string();
    let keys = StaticKeys::from_jwks(&jwks, allowed).unwrap();
    assert!(!keys.key_set().contains_kid("o1"));
    // The RS256 token itself verifies.
    let ok = rsa.sign("RS256", &serde_json::from_str(&payload(ISS_A, now, "")).unwrap());
    assert!(auth.authenticate(&ok).await.is_ok());
}

// ---- token kinds -----------------------------------------------------------------------------

#[tokio::test]
async fn id_and_logout_tokens_are_refused_however_spelled() {
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            hs_verifier(ISS_A).build().unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .build()
        .unwrap();
    let now = crate::common::now();
    for extra in [
        r#","at_hash":"x""#,
        r#","at\u005fhash":"x""#,
        r#","c_hash":null"#,
        r#","s_hash":1"#,
        r#","\u0065vents":{"http://schemas.openid.net/event/backchannel-logout":{}}"#,
    ] {
        let t = hs256(H, &payload(ISS_A, now, extra), &SECRET_A);
        assert_eq!(kind(auth.authenticate(&t).await), E::NotAnAccessToken, "{extra}");
    }
    for typ in [
        "id+jwt",
        "logout+jwt",
        "application/logout+jwt",
        "secevent+jwt",
        "dpop+jwt",
        "JWT\u{0}",
        "jwt ,at+jwt",
        "application/application/at+jwt",
    ] {
        let header = json!({"alg": "HS256", "kid": "k1", "typ": typ}).to_string();
        let t = hs256(&header, &payload(ISS_A, now, ""), &SECRET_A);
        assert_eq!(kind(auth.authenticate(&t).await), E::InvalidType, "{typ:?}");
    }
    // Headers the verifier must not honour: crit, b64, and a key shipped in the token.
    for header in [
        r#"{"alg":"HS256","kid":"k1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","kid":"k1","b64":false}"#,
        r#"{"alg":"none"}"#,
        r#"{"alg":"HS256","kid":"k1","kid":"k2"}"#,
    ] {
        let t = hs256(header, &payload(ISS_A, now, ""), &SECRET_A);
        assert!(auth.authenticate(&t).await.is_err(), "{header}");
    }
    // Keycloak: its ID token (payload typ "ID") and refresh token; a typ array is only a list.
    let kc = Authenticator::builder(policy())
        .issuer(Issuer::new(
            Provider::Keycloak
                .verifier(ISS_A, AUD, [Algorithm::HS256])
                .build()
                .unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .build()
        .unwrap();
    for (typ, ok) in [
        (r#""Bearer""#, true),
        (r#""ID""#, false),
        (r#""Refresh""#, false),
        (r#""bearer""#, false),
        (r#"null"#, false),
        (r#"{"v":"Bearer"}"#, false),
    ] {
        let t = hs256(H, &payload(ISS_A, now, &format!(r#","typ":{typ}"#)), &SECRET_A);
        assert_eq!(kc.authenticate(&t).await.is_ok(), ok, "{typ}");
    }
}

// ---- claim paths -----------------------------------------------------------------------------

#[tokio::test]
async fn claim_paths_escape_as_rfc_6901_says() {
    // Parsing.
    assert_eq!(ClaimPath::parse("/a~01").unwrap().claim(), "a~1");
    assert_eq!(ClaimPath::parse("/~1~0/x").unwrap().claim(), "/~");
    assert_eq!(ClaimPath::parse("a~b/c").unwrap().claim(), "a~b/c", "literal");
    for bad in ["", "/", "/~", "/a~2", "/a/~", "/a/b~x", "//x"] {
        assert!(ClaimPath::parse(bad).is_err(), "{bad:?}");
    }
    // Reading: escapes in the first segment and in the rest; look-alikes not confused.
    let mapping = ClaimMapping::none()
        .also_roles_from("/res~1v1/api~1v1/roles")
        .unwrap()
        .also_roles_from("/t~0x/a~01")
        .unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(hs_verifier(ISS_A).build().unwrap(), hmac_keys(&SECRET_A)).with_mapping(mapping))
        .build()
        .unwrap();
    let now = crate::common::now();
    let extra = r#","res/v1":{"api/v1":{"roles":["analyst"]},"api~1v1":{"roles":["admin"]}},"res~1v1":{"api/v1":{"roles":["admin"]}},"t~x":{"a~1":"viewer","a/":"admin"}"#;
    let p = auth
        .authenticate(&hs256(H, &payload(ISS_A, now, extra), &SECRET_A))
        .await
        .unwrap();
    assert_eq!(p.roles(), ["analyst", "viewer"]);
    // A pointed-to claim of the wrong shape is a 401, never a panic nor a silent grant.
    for extra in [
        r#","res/v1":{"api/v1":{"roles":[1]}}"#,
        r#","res/v1":{"api/v1":{"roles":{"admin":true}}}"#,
        r#","res/v1":[1,2]"#,
    ] {
        let r = auth
            .authenticate(&hs256(H, &payload(ISS_A, now, extra), &SECRET_A))
            .await;
        match r {
            Err(AuthError::InvalidToken(E::InvalidMappedClaim)) => {}
            Ok(p) => assert!(p.roles().is_empty(), "{extra}: {p:?}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
    // Keycloak: an audience with `/` and `~` reads exactly its own client's roles.
    let aud = "https://api.example.com/v1~x";
    let mapping = Provider::Keycloak.mapping(&[aud.to_string()]).unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(
            Issuer::new(
                Provider::Keycloak
                    .verifier(ISS_A, aud, [Algorithm::HS256])
                    .build()
                    .unwrap(),
                hmac_keys(&SECRET_A),
            )
            .with_mapping(mapping),
        )
        .build()
        .unwrap();
    let p = format!(
        r#"{{"iss":"{ISS_A}","aud":"{aud}","sub":"u","exp":{},"typ":"Bearer","resource_access":{{"{aud}":{{"roles":["analyst"]}},"https:":{{"":{{"api.example.com":{{"v1~x":{{"roles":["admin"]}}}}}}}}}}}}"#,
        now + 60
    );
    let p = auth.authenticate(&hs256(H, &p, &SECRET_A)).await.unwrap();
    assert_eq!(p.roles(), ["analyst"]);
}

/// Duplicated claims that select roles or scopes: refused, never "last one wins".
#[tokio::test]
async fn duplicate_read_claims_are_refused() {
    let mapping = ClaimMapping::default()
        .also_roles_from("/realm_access/roles")
        .unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(hs_verifier(ISS_A).build().unwrap(), hmac_keys(&SECRET_A)).with_mapping(mapping))
        .build()
        .unwrap();
    let now = crate::common::now();
    for extra in [
        r#","roles":["viewer"],"roles":["admin"]"#,
        r#","roles":["viewer"],"r\u006fles":["admin"]"#,
        r#","scope":"a","scope":"model:deploy""#,
        r#","realm_access":{},"realm_access":{"roles":["admin"]}"#,
        r#","sub":"other""#,
        r#","exp":1"#,
    ] {
        let t = hs256(H, &payload(ISS_A, now, extra), &SECRET_A);
        assert_eq!(kind(auth.authenticate(&t).await), E::InvalidPayload, "{extra}");
    }
}

// ---- separation of duties --------------------------------------------------------------------

/// One side from the realm roles, the other from the client roles (two role sources), the
/// other from a scope, or from a permissions claim: never both.
#[tokio::test]
async fn separation_of_duties_across_role_sources() {
    let policy = policy();
    let mapping = Provider::Keycloak
        .mapping(&[AUD.to_string()])
        .unwrap()
        .permissions_from("/ext/perms")
        .unwrap()
        .scope_permissions(true);
    let auth = Authenticator::builder(policy.clone())
        .issuer(
            Issuer::new(
                Provider::Keycloak
                    .verifier(ISS_A, AUD, [Algorithm::HS256])
                    .build()
                    .unwrap(),
                hmac_keys(&SECRET_A),
            )
            .with_mapping(mapping),
        )
        .build()
        .unwrap();
    let now = crate::common::now();
    let cases = [
        r#","realm_access":{"roles":["clerk"]},"resource_access":{"api.attack.test":{"roles":["approver"]}}"#,
        r#","realm_access":{"roles":["clerk"]},"scope":"payment:approve""#,
        r#","realm_access":{"roles":["clerk"]},"ext":{"perms":["payment:approve"]}"#,
        r#","scope":"payment:initiate","ext":{"perms":"payment:approve"}"#,
        r#","realm_access":{"roles":["clerk","approver"]},"scope":"payment:initiate payment:approve""#,
    ];
    for extra in cases {
        let t = hs256(
            H,
            &payload(ISS_A, now, &format!(r#","typ":"Bearer"{extra}"#)),
            &SECRET_A,
        );
        let p = auth.authenticate(&t).await.unwrap();
        let got = names(&p, &policy);
        assert!(
            !(got.contains(&"payment:initiate".to_string()) && got.contains(&"payment:approve".to_string())),
            "{extra}: {got:?}"
        );
        assert!(
            !got.contains(&"payment:approve".to_string()) && !got.contains(&"payment:initiate".to_string()),
            "both sides withheld: {extra}: {got:?}"
        );
    }
}

// ---- the subject -----------------------------------------------------------------------------

/// RFC 9068 §2.2: `sub` is REQUIRED and identifies the principal. An empty `sub` identifies
/// nobody, yet becomes a principal whose `subject()` is "" (a value ownership checks may
/// compare with empty owners).
#[tokio::test]
async fn an_empty_subject_is_refused() {
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            hs_verifier(ISS_A).build().unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .build()
        .unwrap();
    let now = crate::common::now();
    let t = hs256(
        H,
        &format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"","exp":{}}}"#, now + 60),
        &SECRET_A,
    );
    assert!(auth.authenticate(&t).await.is_err());
}

#[tokio::test]
async fn subject_and_audience_shapes() {
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            hs_verifier(ISS_A).build().unwrap(),
            hmac_keys(&SECRET_A),
        ))
        .build()
        .unwrap();
    let now = crate::common::now();
    let exp = now + 60;
    for (body, want) in [
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","exp":{exp}}}"#),
            E::MissingClaim("sub"),
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":7,"exp":{exp}}}"#),
            E::InvalidClaim("sub"),
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":null,"exp":{exp}}}"#),
            E::InvalidClaim("sub"),
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":[],"sub":"u","exp":{exp}}}"#),
            E::InvalidAudience,
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":[1,"{AUD}"],"sub":"u","exp":{exp}}}"#),
            E::InvalidClaim("aud"),
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":" {AUD}","sub":"u","exp":{exp}}}"#),
            E::InvalidAudience,
        ),
        (
            format!(r#"{{"iss":"{ISS_A}/","aud":"{AUD}","sub":"u","exp":{exp}}}"#),
            E::InvalidIssuer,
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"u","exp":"{exp}"}}"#),
            E::InvalidClaim("exp"),
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"u","exp":1e400}}"#),
            E::InvalidPayload,
        ),
        (
            format!(r#"{{"iss":"{ISS_A}","aud":"{AUD}","sub":"u","exp":{exp},"nbf":-1}}"#),
            E::InvalidClaim("nbf"),
        ),
    ] {
        let t = hs256(H, &body, &SECRET_A);
        let got = kind(auth.authenticate(&t).await);
        // 1e400 is grammatical JSON that overflows: refused where read, however classified.
        if body.contains("1e400") {
            assert!(
                matches!(got, E::InvalidPayload | E::InvalidClaim("exp")),
                "{body}: {got:?}"
            );
        } else {
            assert_eq!(got, want, "{body}");
        }
    }
}

// ---- the bearer header -----------------------------------------------------------------------

#[test]
fn bearer_header_parsing() {
    use authz_axum::{BearerError, bearer_token};
    let one = |v: &[u8]| {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        bearer_token(&h).map(|t| t.map(str::to_string))
    };
    assert_eq!(one(b"Bearer a.b.c"), Ok(Some("a.b.c".into())));
    assert_eq!(one(b"bEaReR a.b.c"), Ok(Some("a.b.c".into())));
    assert_eq!(one(b"Bearer   a.b.c"), Ok(Some("a.b.c".into())));
    for bad in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Bearer a.b.c ",
        b"Bearer a b",
        b"Bearer a,b",
        b"Bearer ====",
        b"Bearer a.b.c\t",
        b"Bearer \"a.b.c\"",
        b"Bearer a.b.c=x",
        b"Bearer \xc3\xa9",
    ] {
        assert_eq!(
            one(bad),
            Err(BearerError::Malformed),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for other in [
        &b"Basic dXNlcjpwYXNz"[..],
        b"Bearer\ta.b.c",
        b"Bearerx a",
        b"DPoP a.b.c",
        b"token",
    ] {
        assert_eq!(
            one(other),
            Err(BearerError::UnsupportedScheme),
            "{:?}",
            String::from_utf8_lossy(other)
        );
    }
    let mut h = HeaderMap::new();
    h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
    h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a.b.c"));
    assert_eq!(bearer_token(&h), Err(BearerError::Repeated));
}

// ---- JWKS fetch storms -----------------------------------------------------------------------

/// A JWKS endpoint whose answer alternates between two sets (an IdP cluster mid-rotation whose
/// nodes disagree, behind a load balancer). Returns its URL and its hit counter.
async fn flapping_jwks(a: Vec<Value>, b: Vec<Value>) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let h = h.clone();
            let (a, b) = (a.clone(), b.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let keys = if n.is_multiple_of(2) { a } else { b };
                (
                    [("cache-control", "max-age=300")],
                    axum::Json(json!({ "keys": keys })),
                )
            }
        }),
    );
    let base = crate::common::serve(app).await;
    (format!("{base}/jwks.json"), hits)
}

/// Attack: random `kid`s against a provider whose JWKS answers flap. Every fetch "finds new
/// keys", which resets the unknown-`kid` cool-down, so every request with a random `kid`
/// fetches the JWKS (and bumps the generation, emptying the token cache each time). The
/// documented bound is one unknown-`kid` fetch per cool-down.
#[tokio::test]
async fn random_kids_against_a_flapping_jwks_stay_within_the_cooldown() {
    init_tracing();
    let k1 = SigningKey::es256("k1");
    let k2 = SigningKey::es256("k2");
    let k3 = SigningKey::es256("k3");
    let (url, hits) = flapping_jwks(
        vec![k1.jwk.clone(), k2.jwk.clone()],
        vec![k1.jwk.clone(), k3.jwk.clone()],
    )
    .await;
    let clock = ManualClock::starting_now();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let jwks = RemoteJwks::new(
        &url,
        [Algorithm::ES256].into_iter().collect(),
        JwksOptions {
            clock: shared.clone(),
            timeout: Duration::from_secs(2),
            ..JwksOptions::default()
        },
    )
    .unwrap();
    jwks.start().await.unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            JwtVerifier::builder(ISS_A, AUD, [Algorithm::ES256])
                .build()
                .unwrap(),
            jwks.clone(),
        ))
        .clock(shared)
        .build()
        .unwrap();
    let now = secs(clock.now());
    let claims: Value = serde_json::from_str(&payload(ISS_A, now, "")).unwrap();
    let before = hits.load(Ordering::SeqCst);
    for i in 0..30 {
        let t = k1.sign_with_header(&json!({"alg": "ES256", "kid": format!("random-{i}")}), &claims);
        assert!(auth.authenticate(&t).await.is_err());
    }
    let fetched = hits.load(Ordering::SeqCst) - before;
    // The clock never moved: at most one cool-down's worth (one fetch, and one more after a
    // fetch that genuinely found new keys).
    assert!(
        fetched <= 2,
        "{fetched} JWKS fetches for 30 requests within one cool-down"
    );
}

/// Control: against a stable JWKS, random `kid`s fetch at most once per cool-down.
#[tokio::test]
async fn random_kids_against_a_stable_jwks_fetch_once() {
    init_tracing();
    let k1 = SigningKey::es256("k1");
    let (url, hits) = flapping_jwks(vec![k1.jwk.clone()], vec![k1.jwk.clone()]).await;
    let clock = ManualClock::starting_now();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let jwks = RemoteJwks::new(
        &url,
        [Algorithm::ES256].into_iter().collect(),
        JwksOptions {
            clock: shared.clone(),
            ..JwksOptions::default()
        },
    )
    .unwrap();
    jwks.start().await.unwrap();
    let auth = Authenticator::builder(policy())
        .issuer(Issuer::new(
            JwtVerifier::builder(ISS_A, AUD, [Algorithm::ES256])
                .build()
                .unwrap(),
            jwks,
        ))
        .clock(shared)
        .build()
        .unwrap();
    let now = secs(clock.now());
    let claims: Value = serde_json::from_str(&payload(ISS_A, now, "")).unwrap();
    let before = hits.load(Ordering::SeqCst);
    for i in 0..30 {
        let t = k1.sign_with_header(&json!({"alg": "ES256", "kid": format!("r{i}")}), &claims);
        assert_eq!(kind(auth.authenticate(&t).await), E::UnknownKeyId);
    }
    assert_eq!(hits.load(Ordering::SeqCst) - before, 1);
    // Tokens that fail a header check cause no fetch at all.
    for header in [
        json!({"alg": "ES256", "kid": "zz", "typ": "id+jwt"}),
        json!({"alg": "ES256", "kid": "zz", "crit": ["x"]}),
    ] {
        let t = k1.sign_with_header(&header, &claims);
        assert!(auth.authenticate(&t).await.is_err());
    }
    clock.advance(Duration::from_secs(6));
    let t = k1.sign_with_header(&json!({"alg": "ES256", "kid": "zz", "typ": "id+jwt"}), &claims);
    assert!(auth.authenticate(&t).await.is_err());
    assert_eq!(hits.load(Ordering::SeqCst) - before, 1);
}

// ---- configuration ---------------------------------------------------------------------------

/// Misconfiguration: `AUTHZ_ISSUER` names an outside provider, but neither `AUTHZ_JWKS_URL`
/// nor `AUTHZ_DISCOVERY` is set. The registry starts anyway, with its built-in dev issuer
/// minting tokens *under the outside issuer's name* for demo clients — the operator believes
/// Keycloak is trusted; in fact the service's own token endpoint is.
#[tokio::test]
async fn an_outside_issuer_without_keys_refuses_to_start() {
    init_tracing();
    let mut config = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.issuer = Some("https://kc.example.com/realms/prod".into());
    match model_registry::start(config).await {
        Err(e) => assert!(e.to_string().contains("AUTHZ_JWKS_URL"), "{e}"),
        Ok(server) => {
            let demo = !server.clients.is_empty();
            let token = if demo {
                let c = &server.clients[0];
                let resp = http()
                    .post(format!("{}/oauth/token", server.url()))
                    .basic_auth(&c.id, Some(&c.secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                resp.json::<Value>().await.unwrap()["access_token"]
                    .as_str()
                    .map(str::to_string)
            } else {
                None
            };
            server.stop().await;
            panic!("started; dev issuer active: {demo}; it minted a token under the outside iss: {token:?}");
        }
    }
}

// ---- the key generation and the token cache under rotation -----------------------------------

/// Attack (race): `RemoteJwks::fetch` bumps the generation *before* it stores the new key
/// set. A request that reads the generation in between reads the new generation but the old
/// keys, verifies a token with the key being removed, and caches it under the new generation:
/// the cache then serves that token until `exp` although its key is gone. Requests verify
/// tokens signed by key `a` on one thread while the other removes `a` (and adds it back)
/// over and over; after each removal, no token may still authenticate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_key_never_leaves_a_fresh_cache_entry_behind() {
    use std::sync::atomic::AtomicBool;
    let a = SigningKey::es256("a");
    let b = SigningKey::es256("b");
    let idp = crate::common::JwksServer::start(vec![a.jwk.clone(), b.jwk.clone()]).await;
    let clock = ManualClock::starting_now();
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let jwks = RemoteJwks::new(
        &idp.url,
        [Algorithm::ES256].into_iter().collect(),
        JwksOptions {
            clock: shared.clone(),
            ..JwksOptions::default()
        },
    )
    .unwrap();
    jwks.start().await.unwrap();
    let auth = Arc::new(
        Authenticator::builder(policy())
            .issuer(Issuer::new(
                JwtVerifier::builder(ISS_A, AUD, [Algorithm::ES256])
                    .build()
                    .unwrap(),
                jwks.clone(),
            ))
            .clock(shared)
            .build()
            .unwrap(),
    );
    let now = secs(clock.now());
    let tokens: Arc<Vec<String>> = Arc::new(
        (0..400)
            .map(|i| {
                let c: Value = serde_json::from_str(&payload(ISS_A, now, &format!(r#","n":{i}"#))).unwrap();
                a.sign(&c)
            })
            .collect(),
    );
    let mut stale = Vec::new();
    for round in 0..1000 {
        idp.set_keys(vec![a.jwk.clone(), b.jwk.clone()]);
        jwks.refresh_now().await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let verifier = {
            let (auth, tokens, stop) = (auth.clone(), tokens.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Acquire) && i < tokens.len() {
                    let _ = auth.authenticate(&tokens[i]).await;
                    i += 1;
                }
                i
            })
        };
        tokio::task::yield_now().await;
        idp.set_keys(vec![b.jwk.clone()]);
        jwks.refresh_now().await.unwrap();
        stop.store(true, Ordering::Release);
        let used = verifier.await.unwrap();
        for t in &tokens[..used] {
            if auth.authenticate(t).await.is_ok() {
                stale.push(round);
            }
        }
        if !stale.is_empty() {
            break;
        }
    }
    assert!(
        stale.is_empty(),
        "after key `a` was removed, a token it signed still authenticated (round {stale:?})"
    );
}
