//! The JWT verifier: the whole validation checklist, required by construction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::algorithm::{Algorithm, AlgorithmSet};
use super::capture::Captured;
use super::error::{ConfigError, JwtError, JwtErrorKind as E};
use super::key::KeySet;

/// Default largest accepted token, in bytes (checked before any base64 or JSON work).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway a verifier accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Verifies compact JWS tokens (RFC 7515 / 7519) against a [`KeySet`].
///
/// Built with [`JwtVerifier::builder`], which takes the three things a verifier cannot do
/// without: the issuer, the audience, and a non-empty algorithm allowlist. Then, always:
///
/// | check | behaviour |
/// |---|---|
/// | size | tokens over [`DEFAULT_MAX_TOKEN_BYTES`] (configurable) are refused before decoding |
/// | structure | exactly three strict base64url segments (no padding, no stray characters) |
/// | `alg` | must be in the allowlist **and** equal to the key's bound algorithm; `none` cannot be expressed |
/// | `crit` | any `crit` header is refused: this verifier implements no extension (RFC 7515 §4.1.11) |
/// | `jku`/`x5u`/`jwk`/`x5c` | ignored: keys come only from configuration |
/// | signature | verified with the key selected by `kid` |
/// | `exp` | required; refused at or after `exp + leeway` |
/// | `nbf` | honoured when present |
/// | `iss` | required; must equal a configured issuer |
/// | `aud` | required; a string or array that must contain a configured audience |
/// | `iat` | optional; must not lie in the future; with [`max_age`](JwtVerifierBuilder::max_age), not too old |
/// | `typ` | optional check ([`require_type`](JwtVerifierBuilder::require_type), e.g. `at+jwt`, RFC 9068) |
///
/// ```
/// use authz_core::jwt::{Algorithm, JwtVerifier};
/// let verifier = JwtVerifier::builder("https://auth.example.com", "api.example.com", [Algorithm::ES256])
///     .build()?;
/// # Ok::<(), authz_core::jwt::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    leeway: u64,
    max_token_bytes: usize,
    typ: Option<String>,
    max_age: Option<u64>,
    required_claims: Vec<String>,
}

/// Configures a [`JwtVerifier`]. Every option tightens; none turns a check off.
#[derive(Debug, Clone)]
pub struct JwtVerifierBuilder {
    inner: JwtVerifier,
}

impl JwtVerifier {
    /// Starts a verifier for tokens issued by `issuer`, meant for `audience`, signed with one of
    /// `algorithms`.
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            inner: JwtVerifier {
                issuers: vec![issuer.into()],
                audiences: vec![audience.into()],
                algorithms: algorithms.into_iter().collect(),
                leeway: DEFAULT_LEEWAY.as_secs(),
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                typ: None,
                max_age: None,
                required_claims: Vec::new(),
            },
        }
    }

    /// The allowed algorithms.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The leeway, in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The size limit, in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str, keys: &KeySet) -> Result<VerifiedToken, JwtError> {
        self.verify_at(token, keys, unix_now())
    }

    /// Reads the header only (size, structure, `alg`, `kid`, `crit`), so that a caller can find
    /// or fetch the key before [`JwtVerifier::verify`].
    pub fn peek_header(&self, token: &str) -> Result<TokenHeader, JwtError> {
        Ok(self.split(token)?.1)
    }

    fn split<'t>(&self, token: &'t str) -> Result<(Parts<'t>, TokenHeader), JwtError> {
        if token.len() > self.max_token_bytes {
            return Err(E::TooLarge.into());
        }
        let mut it = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(E::Malformed.into());
        };
        let header_json = b64(h)?;
        // JSON text is UTF-8 (RFC 8259 §8.1); serde_json does not check the strings it skips.
        let header_text = std::str::from_utf8(&header_json).map_err(|_| JwtError::from(E::InvalidHeader))?;
        let raw: RawHeader<'_> =
            serde_json::from_str(header_text).map_err(|_| JwtError::from(E::InvalidHeader))?;
        if raw.crit.is_some() {
            return Err(E::UnsupportedCritical.into());
        }
        if raw.b64.is_some() {
            // RFC 7797 unencoded payloads are not supported; `b64` without `crit` is malformed.
            return Err(E::UnsupportedCritical.into());
        }
        let alg: Algorithm = raw
            .alg
            .parse()
            .map_err(|_| JwtError::from(E::AlgorithmNotAllowed))?;
        if !self.algorithms.contains(alg) {
            return Err(E::AlgorithmNotAllowed.into());
        }
        if let Some(expected) = &self.typ {
            let ok = raw.typ.as_deref().is_some_and(|t| {
                let t = t.strip_prefix("application/").unwrap_or(t);
                t.eq_ignore_ascii_case(expected)
            });
            if !ok {
                return Err(E::InvalidType.into());
            }
        }
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok((
            Parts {
                payload: p,
                signature: s,
                signing_input,
            },
            TokenHeader { alg, kid: raw.kid },
        ))
    }

    /// Checks everything up to and including the signature (size, structure, `alg`, `crit`, key,
    /// signature) but reads no claims: for JWS whose payload is not a JWT claim set. It returns
    /// no claims, so it cannot be used to authenticate anyone.
    pub fn verify_signature(&self, token: &str, keys: &KeySet) -> Result<TokenHeader, JwtError> {
        let (parts, header) = self.split(token)?;
        let key = keys.find(header.kid.as_deref(), header.alg)?;
        let sig = b64(parts.signature)?;
        if !key.verify(parts.signing_input.as_bytes(), &sig) {
            return Err(E::InvalidSignature.into());
        }
        // The payload must still be strict base64url, even though it is not read.
        b64(parts.payload)?;
        Ok(header)
    }

    /// Verifies `token` as of `now` (seconds since the Unix epoch).
    pub fn verify_at(&self, token: &str, keys: &KeySet, now: u64) -> Result<VerifiedToken, JwtError> {
        let v = self.verify_with(token, keys, now, &[], |_, _| Ok(()))?;
        Ok(VerifiedToken {
            header: v.header,
            registered: v.registered,
            payload: v.payload,
        })
    }

    /// The request path: verifies, then hands the captured claims (registered ones plus
    /// `wanted`) and the payload bytes to `map`, without building a JSON tree.
    pub(crate) fn verify_with<R>(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
        wanted: &[String],
        map: impl FnOnce(&Captured<'_>, &[u8]) -> Result<R, JwtError>,
    ) -> Result<Verified<R>, JwtError> {
        let (parts, header) = self.split(token)?;
        let key = keys.find(header.kid.as_deref(), header.alg)?;
        let sig = b64(parts.signature)?;
        if !key.verify(parts.signing_input.as_bytes(), &sig) {
            return Err(E::InvalidSignature.into());
        }
        let payload = b64(parts.payload)?;
        let (registered, mapped) = {
            // The whole payload must be UTF-8, including claims nobody reads (found by fuzzing:
            // serde_json skips unread strings without checking their bytes).
            let text = std::str::from_utf8(&payload).map_err(|_| JwtError::from(E::InvalidPayload))?;
            let captured = Captured::parse(text, wanted, &self.required_claims)
                .map_err(|_| JwtError::from(E::InvalidPayload))?;
            let registered = self.validate_claims(&captured, now)?;
            (registered, map(&captured, &payload)?)
        };
        Ok(Verified {
            header,
            registered,
            payload,
            mapped,
        })
    }

    fn validate_claims(&self, claims: &Captured<'_>, now: u64) -> Result<RegisteredClaims, JwtError> {
        let exp = numeric_date(claims, "exp")?.ok_or(E::MissingClaim("exp"))?;
        if (now as f64) >= exp + self.leeway as f64 {
            return Err(E::Expired.into());
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && (now as f64) + (self.leeway as f64) < nbf
        {
            return Err(E::NotYetValid.into());
        }
        let iat = numeric_date(claims, "iat")?;
        if let Some(iat) = iat
            && iat > (now + self.leeway) as f64
        {
            return Err(E::IssuedInFuture.into());
        }
        if let Some(max_age) = self.max_age {
            let iat = iat.ok_or(E::MissingClaim("iat"))?;
            if (now as f64) - iat > (max_age + self.leeway) as f64 {
                return Err(E::TooOld.into());
            }
        }
        let iss: String = match claims.get("iss") {
            None => return Err(E::MissingClaim("iss").into()),
            Some(raw) => {
                serde_json::from_str(raw.get()).map_err(|_| JwtError::from(E::InvalidClaim("iss")))?
            }
        };
        if !self.issuers.contains(&iss) {
            return Err(E::InvalidIssuer.into());
        }
        let audience_ok = match claims.get("aud") {
            None => return Err(E::MissingClaim("aud").into()),
            Some(raw) => match Audience::parse(raw.get()) {
                Ok(Audience::One(a)) => self.audiences.iter().any(|x| *x == *a),
                Ok(Audience::Many(list)) => list.iter().any(|a| self.audiences.iter().any(|x| *x == **a)),
                Err(_) => return Err(E::InvalidClaim("aud").into()),
            },
        };
        if !audience_ok {
            return Err(E::InvalidAudience.into());
        }
        let sub: Option<String> = match claims.get("sub") {
            None => None,
            Some(raw) => {
                Some(serde_json::from_str(raw.get()).map_err(|_| JwtError::from(E::InvalidClaim("sub")))?)
            }
        };
        for name in &self.required_claims {
            if claims.get(name).is_none_or(|raw| raw.get() == "null") {
                return Err(E::MissingCustomClaim.into());
            }
        }
        Ok(RegisteredClaims {
            iss,
            sub,
            exp: exp.max(0.0) as u64,
            iat: iat.map(|i| i.max(0.0) as u64),
        })
    }
}

/// What [`JwtVerifier::verify_with`] produces.
pub(crate) struct Verified<R> {
    pub(crate) header: TokenHeader,
    pub(crate) registered: RegisteredClaims,
    pub(crate) payload: Vec<u8>,
    pub(crate) mapped: R,
}

/// `aud`: one string or an array of strings (parsed without serde's buffering `untagged`).
enum Audience<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'a> Audience<'a> {
    fn parse(raw: &'a str) -> Result<Self, serde_json::Error> {
        if raw.starts_with('[') {
            serde_json::from_str::<Vec<Borrowed<'a>>>(raw)
                .map(|v| Audience::Many(v.into_iter().map(|b| b.0).collect()))
        } else {
            serde_json::from_str::<Borrowed<'a>>(raw).map(|b| Audience::One(b.0))
        }
    }
}

/// A JSON string, borrowed unless it has escapes.
#[derive(Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

impl JwtVerifierBuilder {
    /// Accepts another issuer too.
    pub fn also_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.inner.issuers.push(issuer.into());
        self
    }

    /// Accepts another audience too.
    pub fn also_audience(mut self, audience: impl Into<String>) -> Self {
        self.inner.audiences.push(audience.into());
        self
    }

    /// Clock-skew allowance for `exp`, `nbf`, `iat` (default 30 s, at most 300 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.inner.leeway = leeway.as_secs();
        self
    }

    /// Largest accepted token in bytes (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.inner.max_token_bytes = bytes;
        self
    }

    /// Requires the `typ` header to be `typ` (case-insensitive, `application/` prefix allowed),
    /// e.g. `at+jwt` for RFC 9068 access tokens.
    pub fn require_type(mut self, typ: impl Into<String>) -> Self {
        self.inner.typ = Some(typ.into());
        self
    }

    /// Requires `iat` and refuses tokens issued longer ago than `max_age`.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.inner.max_age = Some(max_age.as_secs());
        self
    }

    /// Requires a non-null claim named `name`.
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.inner.required_claims.push(name.into());
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        let v = self.inner;
        if v.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if v.issuers.iter().any(|i| i.trim().is_empty()) {
            return Err(ConfigError::EmptyIssuer);
        }
        if v.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::EmptyAudience);
        }
        if v.leeway > MAX_LEEWAY.as_secs() {
            return Err(ConfigError::LeewayTooLarge(v.leeway));
        }
        if v.max_token_bytes < 64 {
            return Err(ConfigError::SizeLimitTooSmall(v.max_token_bytes));
        }
        Ok(v)
    }
}

struct Parts<'t> {
    payload: &'t str,
    signature: &'t str,
    signing_input: &'t str,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    b64: Option<IgnoredAny>,
}

/// What the verifier read from a token's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// The algorithm (already checked against the allowlist).
    pub alg: Algorithm,
    /// The key id, if any.
    pub kid: Option<String>,
}

/// The registered claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClaims {
    /// `iss`.
    pub iss: String,
    /// `sub`, if present.
    pub sub: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: u64,
    /// `iat`, if present.
    pub iat: Option<u64>,
}

/// A token whose signature and claims passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The header.
    pub header: TokenHeader,
    /// The registered claims.
    pub registered: RegisteredClaims,
    payload: Vec<u8>,
}

impl VerifiedToken {
    /// Every claim, as JSON (parsed on demand; the request path never builds this tree).
    pub fn claims(&self) -> Map<String, Value> {
        serde_json::from_slice(&self.payload).unwrap_or_default()
    }

    /// The payload's JSON bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

fn b64(segment: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| E::Malformed.into())
}

fn numeric_date(claims: &Captured<'_>, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(raw) => match serde_json::from_str::<f64>(raw.get()) {
            Ok(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(E::InvalidClaim(name).into()),
        },
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::VerificationKey;

    fn signed(payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Regression (fuzz target `claims`): invalid UTF-8 inside a claim nobody reads was accepted.
    #[test]
    fn payloads_must_be_utf8_even_in_unread_claims() {
        let verifier = JwtVerifier::builder("i", "a", [Algorithm::HS256])
            .build()
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32]).unwrap()]).unwrap();
        let good = br#"{"iss":"i","aud":"a","sub":"s","exp":4102444800,"note":"ok"}"#.to_vec();
        assert!(verifier.verify_at(&signed(&good), &keys, 1_800_000_000).is_ok());
        let mut bad = br#"{"iss":"i","aud":"a","sub":"s","exp":4102444800,"note":"model:r"#.to_vec();
        bad.extend_from_slice(b"\x8d\x8d\x8dun\"}");
        assert_eq!(
            verifier
                .verify_at(&signed(&bad), &keys, 1_800_000_000)
                .unwrap_err()
                .kind(),
            &E::InvalidPayload
        );
    }

    #[test]
    fn malformed_escapes_are_refused_even_in_unread_claims() {
        let verifier = JwtVerifier::builder("i", "a", [Algorithm::HS256])
            .build()
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32]).unwrap()]).unwrap();
        let truncated: &[u8] = br#"{"iss":"i","aud":"a","exp":4102444800,"x":"\u12"}"#;
        let unknown: &[u8] = br#"{"iss":"i","aud":"a","exp":4102444800,"x":"\q"}"#;
        for bad in [truncated, unknown] {
            assert_eq!(
                verifier
                    .verify_at(&signed(bad), &keys, 1_800_000_000)
                    .unwrap_err()
                    .kind(),
                &E::InvalidPayload
            );
        }
        // A lone surrogate is grammatical JSON (RFC 8259 §8.2): skipped where unread.
        let lone = br#"{"iss":"i","aud":"a","exp":4102444800,"x":"\ud861x"}"#;
        assert!(verifier.verify_at(&signed(lone), &keys, 1_800_000_000).is_ok());
    }

    /// Found by fuzzing, kept by design: numbers beyond f64 are valid JSON grammar; in a claim
    /// nobody reads they are skipped, in a claim that is read they invalidate the token.
    #[test]
    fn huge_numbers_are_refused_where_they_are_read() {
        let verifier = JwtVerifier::builder("i", "a", [Algorithm::HS256])
            .build()
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32]).unwrap()]).unwrap();
        let unread = br#"{"iss":"i","aud":"a","exp":4102444800,"x":{"n":4102444e800}}"#;
        assert!(verifier.verify_at(&signed(unread), &keys, 1_800_000_000).is_ok());
        let read = br#"{"iss":"i","aud":"a","exp":4102444e800}"#;
        assert_eq!(
            verifier
                .verify_at(&signed(read), &keys, 1_800_000_000)
                .unwrap_err()
                .kind(),
            &E::InvalidClaim("exp")
        );
    }
}
