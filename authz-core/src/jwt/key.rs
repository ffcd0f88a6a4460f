//! Verification keys and key sets.
//!
//! Every key is bound to exactly one [`Algorithm`] when it is loaded, and is parsed once: the
//! request path never re-parses key material. Key material comes only from configuration (PEM,
//! DER, JWK, a JWKS document, an HMAC secret), never from a token's header.
//!
//! Loading a JWKS rejects what Wycheproof's `json_web_key_test.json` marks invalid: mixed
//! symmetric/asymmetric sets, duplicate `kid`s, RSA keys under 2048 bits (and ROCA-weak moduli),
//! HMAC keys shorter than their hash, and `alg`/`crv` mismatches. Keys that are not signature
//! keys (`use: "enc"`, `key_ops` without `verify`, encryption algorithms) or that use curves and
//! algorithms this crate does not implement (P-521, Ed448, ES512, ...) are skipped: they can
//! never verify a token, and a real identity provider's JWKS may legitimately contain them.

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

    /// Verifies `signature` over `message` (constant time for HMAC).
    #[inline]
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Material::Public(key) => key.verify_sig(message, sig).is_ok(),
        }
    }

    /// Parses one JWK (a JSON object). `allowed` resolves a missing `alg` when the key family
    /// has exactly one allowed algorithm. `Ok(None)` means the key is not a usable signature key
    /// and was skipped (the reason is logged at debug level).
    pub fn from_jwk(jwk: &Value, allowed: AlgorithmSet) -> Result<Option<Self>, KeyError> {
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
            let s =
                text(name)?.ok_or_else(|| KeyError::Invalid(format!("JWK member `{name}` is missing")))?;
            JWK_B64
                .decode(s)
                .map_err(|_| KeyError::Invalid(format!("JWK member `{name}` is not base64url")))
        };
        let skip = |why: String| {
            tracing::debug!(reason = %why, "JWK skipped");
            Ok(None)
        };
        let kty = text("kty")?.ok_or_else(|| KeyError::Invalid("JWK has no `kty`".into()))?;
        let kid = text("kid")?.map(str::to_string);
        if let Some(u) = text("use")?
            && u != "sig"
        {
            return skip(format!("use is {u:?}, not \"sig\""));
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops
                .as_array()
                .ok_or_else(|| KeyError::Invalid("`key_ops` must be an array".into()))?;
            if !ops.iter().any(|o| o == "verify") {
                return skip("key_ops does not include \"verify\"".into());
            }
        }
        let declared = match text("alg")? {
            None => None,
            Some(name) => match name.parse::<Algorithm>() {
                Ok(a) => Some(a),
                Err(_) => return skip(format!("algorithm {name:?} is not a supported JWS algorithm")),
            },
        };
        let infer = |family: KeyFamily| -> Result<Algorithm, KeyError> {
            let mut candidates = allowed.iter().filter(|a| a.family() == family);
            match (candidates.next(), candidates.next()) {
                (Some(a), None) => Ok(a),
                (None, _) => Err(KeyError::Set(format!(
                    "JWK of family {family:?} has no `alg`, and no such algorithm is allowed"
                ))),
                _ => Err(KeyError::Ambiguous(family)),
            }
        };
        let check_family = |alg: Algorithm, family: KeyFamily| -> Result<(), KeyError> {
            if alg.family() == family {
                Ok(())
            } else {
                Err(KeyError::Mismatch {
                    alg,
                    reason: format!("the JWK is of type `{kty}`"),
                })
            }
        };
        let key = match kty {
            "oct" => {
                let alg = match declared {
                    Some(a) => a,
                    None => infer(KeyFamily::Hmac)?,
                };
                check_family(alg, KeyFamily::Hmac)?;
                Self::hmac(alg, &bytes("k")?)?
            }
            "RSA" => {
                let alg = match declared {
                    Some(a) => a,
                    None => infer(KeyFamily::Rsa)?,
                };
                check_family(alg, KeyFamily::Rsa)?;
                if obj.contains_key("crv") || obj.contains_key("x") {
                    return Err(KeyError::Invalid("an RSA JWK cannot carry EC members".into()));
                }
                Self::rsa_components(alg, &bytes("n")?, &bytes("e")?)?
            }
            "EC" => {
                let crv = text("crv")?.ok_or_else(|| KeyError::Invalid("EC JWK has no `crv`".into()))?;
                let (curve_alg, len) = match crv {
                    "P-256" => (Algorithm::ES256, 32),
                    "P-384" => (Algorithm::ES384, 48),
                    other => return skip(format!("curve {other:?} is not supported")),
                };
                let alg = declared.unwrap_or(curve_alg);
                if alg != curve_alg {
                    return Err(KeyError::Mismatch {
                        alg,
                        reason: format!("the key is on curve {crv}"),
                    });
                }
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err(KeyError::Mismatch {
                        alg,
                        reason: format!("coordinates are not {len} bytes, as {crv} needs"),
                    });
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::from_public_bytes(alg, &point)?
            }
            "OKP" => {
                let crv = text("crv")?.ok_or_else(|| KeyError::Invalid("OKP JWK has no `crv`".into()))?;
                if crv != "Ed25519" {
                    return skip(format!("curve {crv:?} is not supported"));
                }
                let alg = declared.unwrap_or(Algorithm::EdDSA);
                check_family(alg, KeyFamily::Ed)?;
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err(KeyError::Mismatch {
                        alg,
                        reason: "an Ed25519 key is 32 bytes".into(),
                    });
                }
                Self::from_public_bytes(alg, &x)?
            }
            other => return skip(format!("key type {other:?} is not supported")),
        };
        Ok(Some(match kid {
            Some(k) => key.with_kid(k),
            None => key,
        }))
    }
}

/// Keys a verifier may use, found by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// A set of keys: `kid`s must be unique, and symmetric and asymmetric keys never mix (a
    /// set that mixes them is how public keys end up used as HMAC secrets).
    pub fn new(keys: Vec<VerificationKey>) -> Result<Self, KeyError> {
        let hmac = keys.iter().filter(|k| k.alg.family() == KeyFamily::Hmac).count();
        if hmac != 0 && hmac != keys.len() {
            return Err(KeyError::Set(
                "the key set mixes symmetric (HMAC) and asymmetric keys".into(),
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = &k.kid
                && keys[..i].iter().any(|o| o.kid.as_deref() == Some(kid))
            {
                return Err(KeyError::Set(format!(
                    "kid {kid:?} appears more than once in the key set"
                )));
            }
        }
        Ok(Self { keys })
    }

    /// Parses a JWKS document (`{"keys": [...]}`). See the module docs for what is refused.
    pub fn from_jwks(json: &str, allowed: AlgorithmSet) -> Result<Self, KeyError> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| KeyError::Invalid(format!("JWKS is not JSON: {e}")))?;
        Self::from_jwks_value(&doc, allowed)
    }

    /// Like [`KeySet::from_jwks`], from parsed JSON.
    pub fn from_jwks_value(doc: &Value, allowed: AlgorithmSet) -> Result<Self, KeyError> {
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| KeyError::Invalid("a JWKS must be an object with a `keys` array".into()))?;
        let mut kids = Vec::new();
        let mut keys = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_string);
            if let Some(k) = &kid {
                if kids.contains(k) {
                    return Err(KeyError::Set(format!(
                        "kid {k:?} appears more than once in the JWKS"
                    )));
                }
                kids.push(k.clone());
            }
            let name = kid.map_or_else(|| format!("#{i}"), |k| format!("{k:?}"));
            match VerificationKey::from_jwk(jwk, allowed) {
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(e) => return Err(KeyError::Set(format!("JWKS key {name}: {e}"))),
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Set("the JWKS holds no usable signature key".into()));
        }
        Self::new(keys)
    }

    /// Finds the key for a token's `kid` and `alg`.
    ///
    /// Without a `kid`, a set of exactly one key uses that key; a larger set refuses.
    #[inline]
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&VerificationKey, super::JwtErrorKind> {
        use super::JwtErrorKind as E;
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(E::UnknownKeyId)?,
            None if self.keys.len() == 1 => &self.keys[0],
            None => return Err(E::MissingKeyId),
        };
        if key.alg != alg {
            return Err(E::KeyAlgorithmMismatch);
        }
        Ok(key)
    }

    /// Whether a key with this `kid` exists.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
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
    fn mixed_and_duplicate_sets_are_refused() {
        let doc = r#"{"keys":[{"kty":"oct","kid":"a","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
                              {"kty":"oct","kid":"a","alg":"HS256","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#;
        assert!(
            KeySet::from_jwks(doc, AlgorithmSet::default())
                .unwrap_err()
                .to_string()
                .contains("more than once")
        );
    }

    #[test]
    fn der_lengths() {
        let n = vec![0xff; 256];
        let der = pkcs1_der(&n, &[1, 0, 1]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
    }
}
