//! DPoP proofs (RFC 9449): the proof-of-possession JWT a client sends in the `DPoP` header,
//! checked in full — `typ: dpop+jwt`, an asymmetric algorithm from the allowlist, a public
//! `jwk` in the header (a private one is refused), the signature with that key, `htm` and
//! `htu` against the actual request, `iat` within a window, `ath` against the access token,
//! `jti` never seen before (a bounded replay cache), and optionally a server nonce — and the
//! key's RFC 7638 thumbprint, which a bound token's `cnf.jkt` must equal.
//!
//! The replay cache is per process: a proof replayed against *another* instance within the
//! `iat` window is not detected there. Keep the window short (default 60 s), and require a
//! server nonce ([`DpopVerifier::with_nonces`]) where that matters: a nonce is bound to the
//! instance secret and to time, so a captured proof dies with its nonce.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use crate::jwt::{Algorithm, AlgorithmSet, KeyFamily, VerificationKey};

/// Why a proof was refused (RFC 9449 §7.1: `invalid_dpop_proof`, or `use_dpop_nonce` with a
/// fresh nonce to retry with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// The proof is invalid; the reason names the check (never proof material).
    #[error("invalid DPoP proof: {0}")]
    Invalid(&'static str),
    /// A (fresh) server nonce is required: retry with this one in the proof's `nonce`.
    #[error("a DPoP nonce is required")]
    UseNonce(String),
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key (base64url), to compare with
    /// `cnf.jkt`.
    pub jkt: String,
    /// The proof's `iat`.
    pub issued_at: u64,
}

/// A proof that passed every check but the replay cache (see [`DpopVerifier::commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// What the proof established.
    pub proof: VerifiedProof,
    replay_id: [u8; 16],
}

/// The request a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    /// The HTTP method, as sent (`htm` is compared exactly).
    pub method: &'a str,
    /// The request's target URI: absolute, query and fragment ignored (RFC 9449 §4.3 step 9).
    pub uri: &'a str,
    /// The access token the proof accompanies (checked against `ath`), if any.
    pub access_token: Option<&'a str>,
}

/// Stateless server nonces: `base64url(bucket ‖ HMAC(secret, bucket)[..16])`, valid in their
/// time bucket and the one after.
struct Nonces {
    key: hmac::Key,
    lifetime: u64,
}

impl Nonces {
    fn make(&self, bucket: u64) -> String {
        let tag = hmac::sign(&self.key, &bucket.to_be_bytes());
        let mut raw = bucket.to_be_bytes().to_vec();
        raw.extend_from_slice(&tag.as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn current(&self, now: u64) -> String {
        self.make(now / self.lifetime)
    }

    fn is_valid(&self, nonce: &str, now: u64) -> bool {
        let bucket = now / self.lifetime;
        [bucket, bucket.saturating_sub(1)]
            .iter()
            .any(|b| bool::from(self.make(*b).as_bytes().ct_eq(nonce.as_bytes())))
    }
}

/// Seen `(jkt, jti)` pairs in two time buckets of one window each: an entry lives at least one
/// window and at most two. Bounded: when full, new proofs are refused (fail closed) until the
/// bucket turns over.
struct ReplayCache {
    window: u64,
    capacity: usize,
    state: Mutex<Buckets>,
}

/// The current bucket's number, its ids, and the previous bucket's ids.
#[derive(Default)]
struct Buckets {
    current: u64,
    newer: HashSet<[u8; 16]>,
    older: HashSet<[u8; 16]>,
}

impl ReplayCache {
    /// `true` if fresh (and now remembered), `false` if seen or the cache is full.
    fn first_use(&self, id: [u8; 16], now: u64) -> Result<(), &'static str> {
        let bucket = now / self.window.max(1);
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Buckets {
            current,
            newer,
            older,
        } = &mut *guard;
        if bucket != *current {
            if bucket == *current + 1 {
                std::mem::swap(newer, older);
                newer.clear();
            } else {
                newer.clear();
                older.clear();
            }
            *current = bucket;
        }
        if newer.contains(&id) || older.contains(&id) {
            return Err("the proof was used before (jti replay)");
        }
        if newer.len() >= self.capacity {
            return Err("too many proofs in the window; retry");
        }
        newer.insert(id);
        Ok(())
    }
}

/// Checks DPoP proofs. One per service (it holds the replay cache).
pub struct DpopVerifier {
    algorithms: AlgorithmSet,
    max_age: u64,
    future_leeway: u64,
    max_bytes: usize,
    replay: ReplayCache,
    nonces: Option<Nonces>,
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("nonces", &self.nonces.is_some())
            .finish()
    }
}

/// Asymmetric algorithms accepted by default for proofs.
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::EdDSA,
];

impl Default for DpopVerifier {
    fn default() -> Self {
        Self::new(DEFAULT_PROOF_ALGORITHMS)
    }
}

impl DpopVerifier {
    /// A verifier accepting proofs signed with `algorithms` (symmetric ones are dropped: a
    /// proof proves possession of a *private* key), `iat` at most 60 s old and 5 s ahead, at
    /// most 100 000 proofs per window.
    pub fn new(algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        let algorithms = algorithms
            .into_iter()
            .filter(|a| a.family() != KeyFamily::Hmac)
            .collect();
        Self {
            algorithms,
            max_age: 60,
            future_leeway: 5,
            max_bytes: 8 * 1024,
            replay: ReplayCache {
                window: 65,
                capacity: 100_000,
                state: Mutex::new(Buckets::default()),
            },
            nonces: None,
        }
    }

    /// How old a proof's `iat` may be (default 60 s) and how far ahead (default 5 s).
    pub fn with_iat_window(mut self, max_age: Duration, future_leeway: Duration) -> Self {
        self.max_age = max_age.as_secs().max(1);
        self.future_leeway = future_leeway.as_secs();
        self.replay.window = self.max_age + self.future_leeway;
        self
    }

    /// Requires a server nonce (RFC 9449 §8): proofs without a current one are answered
    /// `use_dpop_nonce` with a fresh nonce. Nonces are HMACs of a time bucket of `lifetime`
    /// under `secret` (share the secret between instances to share nonces).
    pub fn with_nonces(mut self, secret: &[u8], lifetime: Duration) -> Self {
        self.nonces = Some(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            lifetime: lifetime.as_secs().max(1),
        });
        self
    }

    /// The allowed algorithms (for the `algs` parameter of a `DPoP` challenge).
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// A nonce to hand out at `now` (`DPoP-Nonce`), when nonces are required.
    pub fn nonce(&self, now: u64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(now))
    }

    /// Checks `proof` (the `DPoP` header's value) against `context` at `now` (seconds), and
    /// records its `jti` (a second use is refused): [`check`](Self::check) then
    /// [`commit`](Self::commit).
    ///
    /// # Errors
    /// [`DpopError::Invalid`] naming the check that failed; [`DpopError::UseNonce`] when a
    /// nonce is required and missing or stale.
    pub fn verify(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
        now: u64,
    ) -> Result<VerifiedProof, DpopError> {
        let checked = self.check(proof, context, now)?;
        self.commit(&checked, now)?;
        Ok(checked.proof)
    }

    /// Records a checked proof's `jti`: fails if it was seen before (a replay) or the replay
    /// cache is full. A token endpoint commits only once the grant itself checked out, so that
    /// proofs sent with worthless grants cannot fill the cache.
    ///
    /// # Errors
    /// [`DpopError::Invalid`].
    pub fn commit(&self, checked: &CheckedProof, now: u64) -> Result<(), DpopError> {
        self.replay
            .first_use(checked.replay_id, now)
            .map_err(DpopError::Invalid)
    }

    /// Every check but the replay cache (see [`commit`](Self::commit)).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn check(
        &self,
        proof: &str,
        context: &ProofContext<'_>,
        now: u64,
    ) -> Result<CheckedProof, DpopError> {
        let bad = DpopError::Invalid;
        if proof.len() > self.max_bytes {
            return Err(bad("the proof is too large"));
        }
        let mut parts = proof.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a compact JWS"));
        };
        let header: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(bad("malformed header"))?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(bad("typ must be dpop+jwt"));
        }
        let alg: Algorithm = match header.get("alg").and_then(Value::as_str) {
            // RFC 9864's fully-specified name for EdDSA over Ed25519 (what panva's dpop sends).
            Some("Ed25519") => Algorithm::EdDSA,
            Some(a) => a.parse().map_err(|_| bad("unsupported alg"))?,
            None => return Err(bad("alg missing")),
        };
        if !self.algorithms.contains(alg) {
            return Err(bad("alg is not allowed"));
        }
        if header.contains_key("crit") {
            return Err(bad("crit is not supported"));
        }
        let jwk = header
            .get("jwk")
            .and_then(Value::as_object)
            .ok_or(bad("jwk missing"))?;
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(bad("jwk holds private key material"));
        }
        let jkt = thumbprint(jwk).ok_or(bad("jwk is not a public EC, RSA or OKP key"))?;
        let mut bound = jwk.clone();
        bound.insert("alg".into(), Value::String(alg.as_str().into()));
        bound.remove("use");
        bound.remove("key_ops");
        let key = VerificationKey::from_jwk(&Value::Object(bound), [alg].into_iter().collect())
            .ok()
            .flatten()
            .ok_or(bad("jwk is not a usable key for alg"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad("malformed signature"))?;
        if !key.verify(&proof.as_bytes()[..h.len() + 1 + p.len()], &signature) {
            return Err(bad("signature does not verify"));
        }
        let claims: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(bad("malformed payload"))?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or(bad("jti missing"))?;
        if jti.is_empty() || jti.len() > 256 {
            return Err(bad("jti is empty or too long"));
        }
        if claims.get("htm").and_then(Value::as_str) != Some(context.method) {
            return Err(bad("htm does not match the request method"));
        }
        let htu = claims
            .get("htu")
            .and_then(Value::as_str)
            .ok_or(bad("htu missing"))?;
        match (normalize_uri(htu), normalize_uri(context.uri)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(bad("htu does not match the request URI")),
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_u64)
            .ok_or(bad("iat missing or not a number"))?;
        if iat.saturating_add(self.max_age) < now {
            return Err(bad("iat is too old"));
        }
        if iat > now.saturating_add(self.future_leeway) {
            return Err(bad("iat is in the future"));
        }
        match (context.access_token, claims.get("ath")) {
            (Some(token), Some(Value::String(ath))) => {
                let expected = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()));
                if !bool::from(expected.as_bytes().ct_eq(ath.as_bytes())) {
                    return Err(bad("ath does not match the access token"));
                }
            }
            (Some(_), _) => return Err(bad("ath missing")),
            (None, _) => {}
        }
        if let Some(nonces) = &self.nonces {
            match claims.get("nonce").and_then(Value::as_str) {
                Some(n) if nonces.is_valid(n, now) => {}
                _ => return Err(DpopError::UseNonce(nonces.current(now))),
            }
        }
        let mut replay_id = [0u8; 16];
        let d = digest::digest(&digest::SHA256, format!("{jkt}.{jti}").as_bytes());
        replay_id.copy_from_slice(&d.as_ref()[..16]);
        Ok(CheckedProof {
            proof: VerifiedProof { jkt, issued_at: iat },
            replay_id,
        })
    }
}

/// The RFC 7638 JWK SHA-256 thumbprint, base64url: the required members in lexicographic
/// order, no whitespace. `None` for other key types or missing members.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match s("kty")? {
        "EC" => serde_json::json!({"crv": s("crv")?, "kty": "EC", "x": s("x")?, "y": s("y")?}),
        "RSA" => serde_json::json!({"e": s("e")?, "kty": "RSA", "n": s("n")?}),
        "OKP" => serde_json::json!({"crv": s("crv")?, "kty": "OKP", "x": s("x")?}),
        _ => return None,
    };
    // serde_json's map is ordered by key (no `preserve_order`), as RFC 7638 §3 requires.
    let text = serde_json::to_string(&canonical).ok()?;
    Some(URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, text.as_bytes())))
}

/// `scheme://host[:port]/path` with scheme and host lowercased, the default port dropped, an
/// empty path as `/`, query and fragment removed (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3).
pub fn normalize_uri(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority.strip_suffix(default).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn uri_normalisation() {
        assert_eq!(
            normalize_uri("HTTPS://Server.Example.com:443/path?q=1#f").unwrap(),
            "https://server.example.com/path"
        );
        assert_eq!(normalize_uri("http://127.0.0.1:80").unwrap(), "http://127.0.0.1/");
        assert_eq!(
            normalize_uri("http://127.0.0.1:8080/a").unwrap(),
            "http://127.0.0.1:8080/a"
        );
        assert_ne!(
            normalize_uri("https://a.example/x"),
            normalize_uri("https://a.example/X")
        );
        assert!(normalize_uri("ftp://a.example/").is_none());
        assert!(normalize_uri("https://user@a.example/").is_none());
    }

    #[test]
    fn nonces_expire_after_two_buckets() {
        let v = DpopVerifier::default().with_nonces(b"secret", Duration::from_secs(60));
        let n = v.nonce(1_000).unwrap();
        let nonces = v.nonces.as_ref().unwrap();
        assert!(nonces.is_valid(&n, 1_000));
        assert!(nonces.is_valid(&n, 1_079));
        assert!(!nonces.is_valid(&n, 1_200));
        assert!(!nonces.is_valid("forged", 1_000));
    }
}

/// A client's DPoP key (ES256, P-256) that signs proofs: for clients written in Rust, tests,
/// and command-line tools. The private key stays in the value (redacted `Debug`); store it with
/// [`DpopKey::pkcs8`] and load it with [`DpopKey::from_pkcs8`].
pub struct DpopKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    pkcs8: Vec<u8>,
    jwk: Value,
    jkt: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("P-256 key generation");
        Self::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses")
    }

    /// A key from PKCS#8 DER (P-256).
    ///
    /// # Errors
    /// Not a P-256 PKCS#8 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, DpopError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| DpopError::Invalid("not a P-256 PKCS#8 key"))?;
        let point = pair.public_key().as_ref();
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        let jkt = thumbprint(jwk.as_object().expect("an object")).expect("an EC key");
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
            jwk,
            jkt,
        })
    }

    /// The private key, PKCS#8 DER (a secret: store it like one).
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint (what a bound token's `cnf.jkt` holds).
    pub fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// A proof for `method` on `uri` at `iat` (seconds), with `ath` for `access_token` and the
    /// server's `nonce` when given, and a random `jti`.
    pub fn proof(
        &self,
        method: &str,
        uri: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> String {
        use aws_lc_rs::rand::SecureRandom as _;
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut jti)
            .expect("the OS random generator works");
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let mut claims = serde_json::json!({
            "jti": URL_SAFE_NO_PAD.encode(jti), "htm": method, "htu": uri, "iat": iat,
        });
        if let Some(t) = access_token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(digest::digest(&digest::SHA256, t.as_bytes()))
                .into();
        }
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), out.as_bytes())
            .expect("ES256 signing");
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        out
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn a_proof_by_our_key_verifies_once() {
        let key = DpopKey::generate();
        let v = DpopVerifier::default();
        let proof = key.proof("GET", "https://api.example/x?y=1", Some("tok"), None, 1_000);
        let ctx = ProofContext {
            method: "GET",
            uri: "https://API.example:443/x",
            access_token: Some("tok"),
        };
        assert_eq!(v.verify(&proof, &ctx, 1_010).unwrap().jkt, key.thumbprint());
        assert!(v.verify(&proof, &ctx, 1_010).is_err(), "replay");
        let again = DpopKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        for (m, u, t, now, what) in [
            ("POST", "https://api.example/x", Some("tok"), 1_010, "htm"),
            ("GET", "https://api.example/y", Some("tok"), 1_010, "htu"),
            ("GET", "https://api.example/x", Some("other"), 1_010, "ath"),
            ("GET", "https://api.example/x", Some("tok"), 1_100, "iat too old"),
            (
                "GET",
                "https://api.example/x",
                Some("tok"),
                900,
                "iat in the future",
            ),
        ] {
            let proof = key.proof("GET", "https://api.example/x", Some("tok"), None, 1_000);
            let ctx = ProofContext {
                method: m,
                uri: u,
                access_token: t,
            };
            assert!(
                matches!(v.verify(&proof, &ctx, now), Err(DpopError::Invalid(_))),
                "{what}"
            );
        }
    }
}
