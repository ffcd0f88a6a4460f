//! Verification keys and key sets.
//!
//! Every key is bound to exactly one [`Algorithm`] when it is loaded, and is parsed once: the
//! request path never re-parses key material. Key material comes only from configuration (PEM,
//! DER, JWK, a JWKS document, an HMAC secret), never from a token's header.
//!
//! ## Key sets from identity providers
//!
//! A JWKS is loaded the way panva/jose and Nimbus load one: **an unusable key is skipped, never
//! fatal to the rest** ([`KeySet::from_jwks_report`] says which and why). Skipped, each with a
//! reason: entries that are not objects (`null`), keys that are not signature keys (`use:
//! "enc"`, `key_ops` without `verify`, encryption algorithms), curves and algorithms this crate
//! does not implement (P-521, Ed448, ES512 …), certificate-only entries, RSA keys under 2048
//! bits or with the ROCA fingerprint, HMAC keys shorter than their hash, `alg`/`crv`/`kty`
//! mismatches, EC coordinates of the wrong length, and symmetric keys in a set that also holds
//! public keys (the confusion that turns a public key into an HMAC secret). A JWK without `alg`
//! is usable with every allowed algorithm of its key type (one bound key per algorithm).
//!
//! Duplicates are judged among the usable signing keys only, by `kid` **and** `alg` (an
//! encryption key sharing a signing key's `kid` is no duplicate: it was skipped first): two
//! JWKs under one `kid` + `alg` are ambiguous, and that `kid` is refused for that algorithm
//! (every key under it skipped) rather than tried one after the other — a provider that
//! publishes them is broken, Wycheproof's `rejectsDuplicateKid` expects the refusal, and trying
//! each would multiply the signature work an attacker can trigger. The set as a whole is
//! refused only when no usable key remains.

use std::fmt;

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::algorithm::{Algorithm, AlgorithmSet, KeyFamily};

/// Base64url for JWK members: padding tolerated (some providers add it), trailing bits not.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

enum Material {
    Hmac(Box<hmac::Key>),
    Public(signature::ParsedPublicKey),
}

/// A key, parsed once, bound to one algorithm.
pub struct VerificationKey {
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
    /// SHA-256 over the algorithm and the key material: equal keys, equal fingerprints.
    fingerprint: [u8; 32],
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Why a key or key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC secret shorter than the algorithm's hash.
    #[error("HMAC key for {alg} is {len} bytes; RFC 7518 §3.2 requires at least {min}")]
    ShortSecret {
        /// The algorithm.
        alg: Algorithm,
        /// Bytes given.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// An RSA modulus under 2048 bits.
    #[error("RSA key of {0} bits; at least 2048 bits are required")]
    WeakRsa(usize),
    /// An RSA modulus with the ROCA fingerprint (CVE-2017-15361).
    #[error("RSA modulus has the ROCA fingerprint (CVE-2017-15361): the private key can be recovered")]
    Roca,
    /// The key does not fit the algorithm (wrong family, curve or encoding).
    #[error("key does not match algorithm {alg}: {reason}")]
    Mismatch {
        /// The algorithm.
        alg: Algorithm,
        /// What does not fit.
        reason: String,
    },
    /// The key material could not be parsed.
    #[error("invalid key material: {0}")]
    Invalid(String),
    /// A JWK without `alg` whose algorithm cannot be inferred unambiguously.
    #[error(
        "JWK has no `alg` and the algorithm allowlist holds several {0:?} algorithms; add `alg` to the key"
    )]
    Ambiguous(KeyFamily),
    /// A JWKS problem that concerns the set as a whole.
    #[error("{0}")]
    Set(String),
}

impl VerificationKey {
    /// An HMAC secret for `alg` (which must be HS256, HS384 or HS512). The secret must be at
    /// least as long as the hash (32, 48, 64 bytes).
    pub fn hmac(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let min = alg.min_hmac_key_len();
        if alg.family() == KeyFamily::Hmac && secret.len() < min {
            return Err(KeyError::ShortSecret {
                alg,
                len: secret.len(),
                min,
            });
        }
        Self::hmac_unchecked(alg, secret)
    }

    /// Any non-empty secret (the length policy is the caller's: see `jwt::dangerous`).
    pub(crate) fn hmac_unchecked(alg: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let h = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: "an HMAC secret needs HS256, HS384 or HS512".into(),
                });
            }
        };
        if secret.is_empty() {
            return Err(KeyError::ShortSecret { alg, len: 0, min: 1 });
        }
        Ok(Self {
            kid: None,
            alg,
            material: Material::Hmac(Box::new(hmac::Key::new(h, secret))),
            fingerprint: fingerprint(alg, secret),
        })
    }

    /// A public key in PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`, or an X.509 certificate's key is not
    /// accepted: extract it first).
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let key = match alg.family() {
            KeyFamily::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(pem),
            KeyFamily::Ec => jsonwebtoken::DecodingKey::from_ec_pem(pem),
            KeyFamily::Ed => jsonwebtoken::DecodingKey::from_ed_pem(pem),
            KeyFamily::Hmac => {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: "HMAC keys are secrets, not PEM public keys".into(),
                });
            }
        }
        .map_err(|e| KeyError::Invalid(format!("PEM: {e}")))?;
        match key.kind() {
            jsonwebtoken::DecodingKeyKind::SecretOrDer(der) => Self::from_public_bytes(alg, der),
            jsonwebtoken::DecodingKeyKind::RsaModulusExponent { n, e } => Self::rsa_components(alg, n, e),
        }
    }

    /// A public key in DER: PKCS#1 `RSAPublicKey` or SubjectPublicKeyInfo for RSA, the
    /// uncompressed point or SubjectPublicKeyInfo for EC, the raw 32 bytes for Ed25519.
    pub fn from_der(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        if alg.family() == KeyFamily::Hmac {
            return Err(KeyError::Mismatch {
                alg,
                reason: "HMAC keys are secrets, not DER public keys".into(),
            });
        }
        Self::from_public_bytes(alg, der)
    }

    /// RSA public key from big-endian modulus and exponent.
    pub fn rsa_components(alg: Algorithm, n: &[u8], e: &[u8]) -> Result<Self, KeyError> {
        if alg.family() != KeyFamily::Rsa {
            return Err(KeyError::Mismatch {
                alg,
                reason: "RSA key".into(),
            });
        }
        let n = strip_zeros(n);
        let bits = bit_len(n);
        if bits < 2048 {
            return Err(KeyError::WeakRsa(bits));
        }
        if roca_fingerprint(n) {
            return Err(KeyError::Roca);
        }
        Self::from_public_bytes(alg, &pkcs1_der(n, strip_zeros(e)))
    }

    fn from_public_bytes(alg: Algorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        let params: &'static dyn signature::VerificationAlgorithm = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: "HMAC needs a secret".into(),
                });
            }
        };
        let parsed = signature::ParsedPublicKey::new(params, bytes).map_err(|e| KeyError::Mismatch {
            alg,
            reason: format!("the public key was rejected ({e})"),
        })?;
        Ok(Self {
            kid: None,
            alg,
            material: Material::Public(parsed),
            fingerprint: fingerprint(alg, bytes),
        })
    }

    /// Sets the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// SHA-256 over the algorithm name and the key material (for HMAC keys, over the secret:
    /// the fingerprint reveals nothing usable). Two keys with equal fingerprints verify the
    /// same signatures; a key set whose fingerprints changed invalidates cached tokens.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Verifies `signature` over `message` (constant time for HMAC).
    #[inline]
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Material::Public(key) => key.verify_sig(message, sig).is_ok(),
        }
    }

    /// Parses one JWK (a JSON object) into one key. `allowed` resolves a missing `alg` when
    /// the key type has exactly one allowed algorithm (several: [`KeyError::Ambiguous`]; use
    /// [`VerificationKey::from_jwk_all`] to get one key per algorithm). `Ok(None)` means the key
    /// is not a usable signature key here (another `use`, an unsupported curve or algorithm).
    pub fn from_jwk(jwk: &Value, allowed: AlgorithmSet) -> Result<Option<Self>, KeyError> {
        match parse_jwk(jwk, allowed, false) {
            Ok(mut keys) => Ok(keys.pop()),
            Err(Unusable::NotForUs(why)) => {
                tracing::debug!(reason = %why, "JWK skipped");
                Ok(None)
            }
            Err(Unusable::Refused(e)) => Err(e),
        }
    }

    /// Parses one JWK into every key it yields: one, or, for a JWK without `alg`, one per
    /// allowed algorithm of its key type (an RSA key without `alg` under an allowlist of RS256
    /// and PS256 gives an RS256 key and a PS256 key, each bound to its algorithm).
    pub fn from_jwk_all(jwk: &Value, allowed: AlgorithmSet) -> Result<Vec<Self>, KeyError> {
        match parse_jwk(jwk, allowed, true) {
            Ok(keys) => Ok(keys),
            Err(Unusable::NotForUs(_)) => Ok(Vec::new()),
            Err(Unusable::Refused(e)) => Err(e),
        }
    }
}

/// Why a JWK yields no key.
enum Unusable {
    /// Not a signature key we implement: legitimately present in a provider's set.
    NotForUs(String),
    /// A signature key that must not be used (weak, malformed, mismatched).
    Refused(KeyError),
}

impl From<KeyError> for Unusable {
    fn from(e: KeyError) -> Self {
        Unusable::Refused(e)
    }
}

fn parse_jwk(jwk: &Value, allowed: AlgorithmSet, expand: bool) -> Result<Vec<VerificationKey>, Unusable> {
    let obj = jwk
        .as_object()
        .ok_or_else(|| KeyError::Invalid("a JWK must be a JSON object".into()))?;
    let text = |name: &str| -> Result<Option<&str>, KeyError> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(KeyError::Invalid(format!("JWK member `{name}` must be a string"))),
        }
    };
    let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
        let s = text(name)?.ok_or_else(|| KeyError::Invalid(format!("JWK member `{name}` is missing")))?;
        JWK_B64
            .decode(s)
            .map_err(|_| KeyError::Invalid(format!("JWK member `{name}` is not base64url")))
    };
    let kty = text("kty")?.ok_or_else(|| KeyError::Invalid("JWK has no `kty`".into()))?;
    let kid = text("kid")?.map(str::to_string);
    if let Some(u) = text("use")?
        && u != "sig"
    {
        return Err(Unusable::NotForUs(format!("use is {u:?}, not \"sig\"")));
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops
            .as_array()
            .ok_or_else(|| KeyError::Invalid("`key_ops` must be an array".into()))?;
        if !ops.iter().any(|o| o == "verify") {
            return Err(Unusable::NotForUs("key_ops does not include \"verify\"".into()));
        }
    }
    let declared = match text("alg")? {
        None => None,
        Some(name) => match name.parse::<Algorithm>() {
            Ok(a) => Some(a),
            Err(_) => {
                return Err(Unusable::NotForUs(format!(
                    "algorithm {name:?} is not a supported JWS algorithm"
                )));
            }
        },
    };
    if let Some(a) = declared
        && !allowed.is_empty()
        && !allowed.contains(a)
    {
        // It could never verify a token here; say so rather than load a key nothing can use.
        return Err(Unusable::NotForUs(format!(
            "its algorithm {a} is not in the allowlist"
        )));
    }
    // The algorithms this key is bound to: the declared one, else every allowed one of its family.
    let algorithms = |family: KeyFamily| -> Result<Vec<Algorithm>, Unusable> {
        if let Some(a) = declared {
            if a.family() != family {
                return Err(KeyError::Mismatch {
                    alg: a,
                    reason: format!("the JWK is of type `{kty}`"),
                }
                .into());
            }
            return Ok(vec![a]);
        }
        let candidates: Vec<Algorithm> = allowed.iter().filter(|a| a.family() == family).collect();
        match candidates.len() {
            0 => Err(Unusable::NotForUs(format!(
                "the JWK has no `alg` and no {family:?} algorithm is allowed"
            ))),
            1 => Ok(candidates),
            _ if expand => Ok(candidates),
            _ => Err(KeyError::Ambiguous(family).into()),
        }
    };
    let keys: Vec<VerificationKey> = match kty {
        "oct" => {
            let secret = bytes("k")?;
            let mut out = Vec::new();
            for alg in algorithms(KeyFamily::Hmac)? {
                out.push(VerificationKey::hmac(alg, &secret)?);
            }
            out
        }
        "RSA" => {
            if obj.contains_key("crv") || obj.contains_key("x") {
                return Err(KeyError::Invalid("an RSA JWK cannot carry EC members".into()).into());
            }
            if !obj.contains_key("n") && obj.contains_key("x5c") {
                return Err(Unusable::NotForUs(
                    "certificate-only entry (x5c without n/e): certificates are not parsed".into(),
                ));
            }
            let (n, e) = (bytes("n")?, bytes("e")?);
            let mut out = Vec::new();
            for alg in algorithms(KeyFamily::Rsa)? {
                out.push(VerificationKey::rsa_components(alg, &n, &e)?);
            }
            out
        }
        "EC" => {
            let crv = text("crv")?.ok_or_else(|| KeyError::Invalid("EC JWK has no `crv`".into()))?;
            let (curve_alg, len) = match crv {
                "P-256" => (Algorithm::ES256, 32),
                "P-384" => (Algorithm::ES384, 48),
                other => return Err(Unusable::NotForUs(format!("curve {other:?} is not supported"))),
            };
            let alg = declared.unwrap_or(curve_alg);
            if alg != curve_alg {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: format!("the key is on curve {crv}"),
                }
                .into());
            }
            if declared.is_none() && !allowed.contains(alg) {
                return Err(Unusable::NotForUs(format!(
                    "the JWK has no `alg` and {alg} (curve {crv}) is not allowed"
                )));
            }
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != len || y.len() != len {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: format!(
                        "coordinates are {} and {} bytes; {crv} needs exactly {len} (RFC 7518 §6.2.1.2)",
                        x.len(),
                        y.len()
                    ),
                }
                .into());
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            vec![VerificationKey::from_public_bytes(alg, &point)?]
        }
        "OKP" => {
            let crv = text("crv")?.ok_or_else(|| KeyError::Invalid("OKP JWK has no `crv`".into()))?;
            if crv != "Ed25519" {
                return Err(Unusable::NotForUs(format!("curve {crv:?} is not supported")));
            }
            let alg = declared.unwrap_or(Algorithm::EdDSA);
            if alg.family() != KeyFamily::Ed {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: format!("the JWK is of type `{kty}`"),
                }
                .into());
            }
            let x = bytes("x")?;
            if x.len() != 32 {
                return Err(KeyError::Mismatch {
                    alg,
                    reason: "an Ed25519 key is 32 bytes".into(),
                }
                .into());
            }
            vec![VerificationKey::from_public_bytes(alg, &x)?]
        }
        other => return Err(Unusable::NotForUs(format!("key type {other:?} is not supported"))),
    };
    Ok(keys
        .into_iter()
        .map(|k| match &kid {
            Some(kid) => k.with_kid(kid.clone()),
            None => k,
        })
        .collect())
}

/// A JWK that [`KeySet::from_jwks_report`] skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Its `kid`, if it has one (as a string).
    pub kid: Option<String>,
    /// Its position in the `keys` array.
    pub index: usize,
    /// Why it cannot be used (never contains key material).
    pub reason: String,
}

impl fmt::Display for SkippedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kid {
            Some(kid) => write!(f, "key {kid:?} (#{}): {}", self.index, self.reason),
            None => write!(f, "key #{} (no kid): {}", self.index, self.reason),
        }
    }
}

/// A loaded JWKS: the usable keys and the ones skipped.
#[derive(Debug)]
pub struct JwksReport {
    /// The usable keys.
    pub keys: KeySet,
    /// What was skipped, with reasons.
    pub skipped: Vec<SkippedKey>,
}

/// Keys a verifier may use, found by `kid` and `alg`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// A set of configured keys. Strict, because these come from the operator, not from a
    /// provider: each `kid` + `alg` pair appears once, and symmetric and asymmetric keys never
    /// mix (a set that mixes them is how public keys end up used as HMAC secrets).
    pub fn new(keys: Vec<VerificationKey>) -> Result<Self, KeyError> {
        let hmac = keys.iter().filter(|k| k.alg.family() == KeyFamily::Hmac).count();
        if hmac != 0 && hmac != keys.len() {
            return Err(KeyError::Set(
                "the key set mixes symmetric (HMAC) and asymmetric keys".into(),
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = &k.kid
                && keys[..i]
                    .iter()
                    .any(|o| o.kid.as_deref() == Some(kid) && o.alg == k.alg)
            {
                return Err(KeyError::Set(format!(
                    "kid {kid:?} appears more than once for {} in the key set",
                    k.alg
                )));
            }
        }
        Ok(Self { keys })
    }

    /// Parses a JWKS document (`{"keys": [...]}`), skipping unusable keys (logged at `warn`
    /// with their `kid` and reason). See the module docs.
    ///
    /// # Errors
    /// Not JSON, no `keys` array, or no usable key at all (the message lists why each was
    /// skipped).
    pub fn from_jwks(json: &str, allowed: AlgorithmSet) -> Result<Self, KeyError> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| KeyError::Invalid(format!("JWKS is not JSON: {e}")))?;
        Self::from_jwks_value(&doc, allowed)
    }

    /// Like [`KeySet::from_jwks`], from parsed JSON.
    pub fn from_jwks_value(doc: &Value, allowed: AlgorithmSet) -> Result<Self, KeyError> {
        let report = Self::from_jwks_report(doc, allowed)?;
        for s in &report.skipped {
            tracing::warn!(kid = ?s.kid, index = s.index, reason = %s.reason, "JWKS key skipped");
        }
        Ok(report.keys)
    }

    /// Parses a JWKS and reports what it skipped instead of logging it (a remote key source
    /// logs each skipped key once, not at every refresh).
    pub fn from_jwks_report(doc: &Value, allowed: AlgorithmSet) -> Result<JwksReport, KeyError> {
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::Invalid("a JWKS must be an object with a `keys` array".into()))?;
        let mut skipped = Vec::new();
        // (index of the JWK, key)
        let mut usable: Vec<(usize, VerificationKey)> = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            let kid = jwk.get("kid").map(|k| match k {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            match parse_jwk(jwk, allowed, true) {
                Ok(keys) => usable.extend(keys.into_iter().map(|k| (i, k))),
                Err(Unusable::NotForUs(reason)) => skipped.push(SkippedKey {
                    kid,
                    index: i,
                    reason,
                }),
                Err(Unusable::Refused(e)) => skipped.push(SkippedKey {
                    kid,
                    index: i,
                    reason: e.to_string(),
                }),
            }
        }
        // Symmetric keys have no place beside public keys: keep the public ones.
        let has_public = usable.iter().any(|(_, k)| k.alg.family() != KeyFamily::Hmac);
        if has_public {
            usable.retain(|(i, k)| {
                let keep = k.alg.family() != KeyFamily::Hmac;
                if !keep {
                    skipped.push(SkippedKey {
                        kid: k.kid.clone(),
                        index: *i,
                        reason: "a symmetric (oct) key in a set of public keys".into(),
                    });
                }
                keep
            });
        }
        // A `kid` + `alg` pair named by several JWKs is ambiguous: refused for that pair (every
        // key under it), as Wycheproof's `rejectsDuplicateKid` expects.
        let mut ambiguous: Vec<(String, Algorithm)> = Vec::new();
        for (n, (i, k)) in usable.iter().enumerate() {
            if let Some(kid) = &k.kid
                && usable[..n]
                    .iter()
                    .any(|(j, o)| j != i && o.kid.as_deref() == Some(kid) && o.alg == k.alg)
                && !ambiguous.iter().any(|(a, b)| a == kid && *b == k.alg)
            {
                ambiguous.push((kid.clone(), k.alg));
            }
        }
        usable.retain(|(i, k)| {
            if let Some(kid) = &k.kid
                && ambiguous.iter().any(|(a, b)| a == kid && *b == k.alg)
            {
                skipped.push(SkippedKey {
                    kid: Some(kid.clone()),
                    index: *i,
                    reason: format!("kid {kid:?} names several {} keys: ambiguous", k.alg),
                });
                return false;
            }
            true
        });
        if usable.is_empty() {
            let why: Vec<String> = skipped.iter().map(ToString::to_string).collect();
            return Err(KeyError::Set(if why.is_empty() {
                "the JWKS holds no key".into()
            } else {
                format!("the JWKS holds no usable signature key: {}", why.join("; "))
            }));
        }
        Ok(JwksReport {
            keys: KeySet {
                keys: usable.into_iter().map(|(_, k)| k).collect(),
            },
            skipped,
        })
    }

    /// Finds the key for a token's `kid` and `alg`.
    ///
    /// With a `kid`: the key with that `kid` and `alg` ([`UnknownKeyId`](super::JwtErrorKind::UnknownKeyId)
    /// if no key has the `kid`, [`KeyAlgorithmMismatch`](super::JwtErrorKind::KeyAlgorithmMismatch)
    /// if keys have it only for other algorithms). Without a `kid`: the one key of that `alg`,
    /// if there is exactly one ([`MissingKeyId`](super::JwtErrorKind::MissingKeyId) otherwise).
    #[inline]
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerificationKey, super::JwtErrorKind> {
        use super::JwtErrorKind as E;
        match kid {
            Some(kid) => {
                let mut kid_known = false;
                for k in &self.keys {
                    if k.kid.as_deref() == Some(kid) {
                        if k.alg == alg {
                            return Ok(k);
                        }
                        kid_known = true;
                    }
                }
                Err(if kid_known {
                    E::KeyAlgorithmMismatch
                } else {
                    E::UnknownKeyId
                })
            }
            None => {
                let mut found = None;
                let mut other_alg = false;
                for k in &self.keys {
                    if k.alg == alg {
                        if found.is_some() {
                            return Err(E::MissingKeyId);
                        }
                        found = Some(k);
                    } else {
                        other_alg = true;
                    }
                }
                match found {
                    Some(k) => Ok(k),
                    None if other_alg && self.keys.len() == 1 => Err(E::KeyAlgorithmMismatch),
                    None => Err(E::MissingKeyId),
                }
            }
        }
    }

    /// Whether a key with this `kid` exists.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether every key of `self` (by `kid`, `alg` and material) is still in `newer`: when
    /// it is not, tokens verified with `self` must be verified again.
    pub fn is_subset_of(&self, newer: &KeySet) -> bool {
        self.keys.iter().all(|k| {
            newer
                .keys
                .iter()
                .any(|n| n.kid == k.kid && n.alg == k.alg && n.fingerprint == k.fingerprint)
        })
    }

    /// The keys.
    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn fingerprint(alg: Algorithm, material: &[u8]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(alg.as_str().as_bytes());
    ctx.update(&[0]);
    ctx.update(material);
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[i..]
}

fn bit_len(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017).
fn pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 0x80 {
            out.push(l as u8);
        } else {
            let bytes = l.to_be_bytes();
            let skip = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let pad = v.first().is_none_or(|&b| b & 0x80 != 0);
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// The ROCA test (Nemec et al., CCS 2017): a modulus whose residue modulo each of these small
/// primes lies in the subgroup generated by 65537 was produced by the vulnerable Infineon
/// generator.
fn roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101,
        103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |acc, &b| (acc * 256 + u32::from(b)) % p);
        let g = 65537 % p;
        let mut x = 1;
        for _ in 0..p {
            if x == residue {
                return true;
            }
            x = x * g % p;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secrets_are_refused() {
        assert!(matches!(
            VerificationKey::hmac(Algorithm::HS256, &[7; 31]),
            Err(KeyError::ShortSecret { .. })
        ));
        assert!(VerificationKey::hmac(Algorithm::HS256, &[7; 32]).is_ok());
        assert!(matches!(
            VerificationKey::hmac(Algorithm::HS512, &[7; 63]),
            Err(KeyError::ShortSecret { min: 64, .. })
        ));
        assert!(VerificationKey::hmac(Algorithm::RS256, &[7; 64]).is_err());
    }

    #[test]
    fn debug_never_shows_material() {
        let k = VerificationKey::hmac(Algorithm::HS256, b"0123456789abcdef0123456789abcdef")
            .unwrap()
            .with_kid("k1");
        let s = format!("{k:?}");
        assert!(
            s.contains("k1") && s.contains("redacted") && !s.contains("0123"),
            "{s}"
        );
    }

    #[test]
    fn ambiguous_kids_are_refused_the_rest_kept() {
        let k1 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY";
        let k2 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY";
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"a","alg":"HS256","k":"{k1}"}},{{"kty":"oct","kid":"a","alg":"HS256","k":"{k2}"}}]}}"#
        );
        let err = KeySet::from_jwks(&doc, AlgorithmSet::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("ambiguous"), "{err}");
        let doc = format!(
            r#"{{"keys":[{{"kty":"oct","kid":"a","alg":"HS256","k":"{k1}"}},{{"kty":"oct","kid":"b","alg":"HS256","k":"{k2}"}},{{"kty":"oct","kid":"a","alg":"HS384","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"}}]}}"#
        );
        assert_eq!(
            KeySet::from_jwks(&doc, AlgorithmSet::default()).unwrap().len(),
            3,
            "same kid, other alg: fine"
        );
        // Strict for configured keys.
        let key = |s: &[u8]| VerificationKey::hmac(Algorithm::HS256, s).unwrap().with_kid("a");
        assert!(KeySet::new(vec![key(&[1; 32]), key(&[2; 32])]).is_err());
    }

    #[test]
    fn der_lengths() {
        let n = vec![0xff; 256];
        let der = pkcs1_der(&n, &[1, 0, 1]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
    }

    #[test]
    fn a_key_whose_algorithm_is_not_allowed_is_skipped_with_the_reason() {
        let doc: Value = serde_json::from_str(
            r#"{"keys":[{"kty":"oct","kid":"h","alg":"HS512","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg"}]}"#,
        )
        .unwrap();
        let allowed: AlgorithmSet = [Algorithm::HS256].into_iter().collect();
        let err = KeySet::from_jwks_report(&doc, allowed).unwrap_err().to_string();
        assert!(err.contains("HS512 is not in the allowlist"), "{err}");
        let everything: AlgorithmSet = Algorithm::ALL.into_iter().collect();
        assert_eq!(KeySet::from_jwks_report(&doc, everything).unwrap().keys.len(), 1);
    }
}
