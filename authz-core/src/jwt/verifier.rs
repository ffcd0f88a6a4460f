//! The JWT verifier: the whole validation checklist, required by construction.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Map, Value};
use smallvec::SmallVec;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::capture::Captured;
use super::error::{ConfigError, JwtError, JwtErrorKind as E};
use super::header::RawHeader;
use super::header_memo::HeaderMemo;
use super::key::KeySet;

/// Default largest accepted token, in bytes (checked before any base64 or JSON work).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest leeway a verifier accepts.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Header `typ` values accepted by default (compared case-insensitively, with or without the
/// `application/` prefix; a token without `typ` counts as `JWT`, RFC 7519 §5.1).
pub const DEFAULT_TOKEN_TYPES: [&str; 2] = ["JWT", "at+jwt"];
/// Claims refused by default: an OpenID Connect ID token's hashes (`at_hash`, `c_hash`,
/// `s_hash`; OpenID Connect Core §3.1.3.6, §3.3.2.11) and a security event token's `events`
/// (RFC 8417 §2.3, back-channel logout tokens). Access tokens never carry them.
pub const DEFAULT_REFUSED_CLAIMS: [&str; 4] = ["at_hash", "c_hash", "s_hash", "events"];

/// Verifies compact JWS tokens (RFC 7515 / 7519) from **one** issuer against a [`KeySet`].
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
/// | `typ` | absent, `JWT` or `at+jwt` by default ([`DEFAULT_TOKEN_TYPES`]); anything else (`id+jwt`, `logout+jwt`, `dpop+jwt` …) is refused (RFC 8725 §3.11) |
/// | `jku`/`x5u`/`jwk`/`x5c` | ignored: keys come only from configuration |
/// | signature | verified with the key selected by `kid` and `alg` |
/// | `exp` | required; refused at or after `exp + leeway` |
/// | `nbf` | honoured when present |
/// | `iss` | required; must equal the issuer |
/// | `aud` | required; a string or array that must contain a configured audience (or another claim: [`audience_claim`](JwtVerifierBuilder::audience_claim)) |
/// | `iat` | optional; must not lie in the future; with [`max_age`](JwtVerifierBuilder::max_age), not too old |
/// | token kind | `at_hash`, `c_hash`, `s_hash`, `events` refused ([`DEFAULT_REFUSED_CLAIMS`]): ID tokens and logout tokens are not access tokens |
///
/// ```
/// use authz_core::jwt::{Algorithm, JwtVerifier};
/// let verifier = JwtVerifier::builder("https://auth.example.com", "api.example.com", [Algorithm::ES256])
///     .require_claim_value("token_use", "access")
///     .build()?;
/// # Ok::<(), authz_core::jwt::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    audience_claim: String,
    algorithms: AlgorithmSet,
    leeway: u64,
    max_token_bytes: usize,
    /// Accepted `typ` values, lower case, without `application/`.
    token_types: Vec<String>,
    max_age: Option<u64>,
    required_claims: Vec<String>,
    required_values: Vec<(String, String)>,
    refused_claims: Vec<String>,
    /// Every non-registered claim the checks read (computed by `build`).
    reads: Vec<String>,
}

/// Configures a [`JwtVerifier`]. Every option tightens; none turns a check off.
#[derive(Debug, Clone)]
pub struct JwtVerifierBuilder {
    inner: JwtVerifier,
}

impl JwtVerifier {
    /// Starts a verifier for tokens issued by `issuer` (compared exactly with `iss`), meant for
    /// `audience`, signed with one of `algorithms`.
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            inner: JwtVerifier {
                issuer: issuer.into(),
                audiences: vec![audience.into()],
                audience_claim: "aud".into(),
                algorithms: algorithms.into_iter().collect(),
                leeway: DEFAULT_LEEWAY.as_secs(),
                max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
                token_types: DEFAULT_TOKEN_TYPES.iter().map(|t| normalize_type(t)).collect(),
                max_age: None,
                required_claims: Vec::new(),
                required_values: Vec::new(),
                refused_claims: DEFAULT_REFUSED_CLAIMS.iter().map(|c| c.to_string()).collect(),
                reads: Vec::new(),
            },
        }
    }

    /// The allowed algorithms.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// The accepted issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The claim holding the audience (default `aud`).
    pub fn audience_claim(&self) -> &str {
        &self.audience_claim
    }

    /// The accepted header `typ` values (lower case, without `application/`).
    pub fn token_types(&self) -> &[String] {
        &self.token_types
    }

    /// The leeway, in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The size limit, in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Until when (seconds since the epoch) a token verified with these claims stays valid:
    /// its `exp`, or sooner when [`max_age`](JwtVerifierBuilder::max_age) bounds its age.
    pub fn valid_until(&self, claims: &RegisteredClaims) -> u64 {
        match (self.max_age, claims.iat) {
            (Some(max_age), Some(iat)) => claims.exp.min(iat.saturating_add(max_age + self.leeway)),
            _ => claims.exp,
        }
    }

    /// Claims besides the registered ones that the checks read.
    pub(crate) fn reads(&self) -> &[String] {
        &self.reads
    }

    /// Verifies `token` as of `now` (seconds since the Unix epoch).
    ///
    /// The same steps as the request path of [`Authenticator`](crate::auth::Authenticator)
    /// for one issuer and fixed keys: decode → capture → header checks →
    /// key → signature → claims.
    pub fn verify_at(&self, token: &str, keys: &KeySet, now: u64) -> Result<VerifiedToken, JwtError> {
        let decoded = decode(token, self.max_token_bytes, self.algorithms)?;
        let text = decoded.payload_text()?;
        let mut captured = Captured::default();
        captured
            .fill(text, &self.reads)
            .map_err(|_| JwtError::from(E::InvalidPayload))?;
        self.check_header(&decoded)?;
        let registered = self.verify_keyed(&decoded, &captured, keys, now)?;
        Ok(VerifiedToken {
            header: decoded.header(),
            registered,
            payload: decoded.payload.clone(),
        })
    }

    /// Verifies `token` now (the system clock; the authenticator passes its injected clock's
    /// time to [`verify_at`](Self::verify_at) instead).
    pub fn verify(&self, token: &str, keys: &KeySet) -> Result<VerifiedToken, JwtError> {
        use crate::clock::Clock as _;
        self.verify_at(token, keys, crate::clock::SystemClock.unix_seconds())
    }

    /// Reads the header only (size, structure, `alg` allowed, `kid`, `crit`, `typ`).
    pub fn peek_header(&self, token: &str) -> Result<TokenHeader, JwtError> {
        let decoded = decode(token, self.max_token_bytes, self.algorithms)?;
        self.check_header(&decoded)?;
        Ok(decoded.header())
    }

    /// Checks everything up to and including the signature (size, structure, `alg`, `crit`, key,
    /// signature) but reads no claims: for JWS whose payload is not a JWT claim set. It returns
    /// no claims, so it cannot be used to authenticate anyone.
    pub fn verify_signature(&self, token: &str, keys: &KeySet) -> Result<TokenHeader, JwtError> {
        let decoded = decode(token, self.max_token_bytes, self.algorithms)?;
        self.check_header(&decoded)?;
        self.check_signature(&decoded, keys)?;
        Ok(decoded.header())
    }

    /// The header checks that belong to this issuer: `alg` in its allowlist, `typ` accepted.
    pub(crate) fn check_header(&self, d: &Decoded<'_>) -> Result<(), JwtError> {
        if d.len > self.max_token_bytes {
            return Err(E::TooLarge.into());
        }
        if !self.algorithms.contains(d.header.alg) {
            return Err(E::AlgorithmNotAllowed.into());
        }
        let typ: &[u8] = match &d.header.typ {
            None => b"jwt",
            Some(t) => t,
        };
        if !self.token_types.iter().any(|t| t.as_bytes() == typ) {
            return Err(E::InvalidType.into());
        }
        Ok(())
    }

    /// Finds the key and checks the signature.
    pub(crate) fn check_signature(&self, d: &Decoded<'_>, keys: &KeySet) -> Result<(), JwtError> {
        let key = keys.find(d.header.kid.as_deref(), d.header.alg)?;
        // 512 bytes: an RSA-4096 signature, the largest; anything longer goes to the heap.
        let sig = b64_inline::<[u8; 512]>(d.signature)?;
        if !key.verify(d.signing_input.as_bytes(), &sig) {
            return Err(E::InvalidSignature.into());
        }
        Ok(())
    }

    /// Key, signature, claims: everything after [`check_header`](Self::check_header), which
    /// the caller has run.
    pub(crate) fn verify_keyed(
        &self,
        d: &Decoded<'_>,
        captured: &Captured<'_>,
        keys: &KeySet,
        now: u64,
    ) -> Result<RegisteredClaims, JwtError> {
        self.check_signature(d, keys)?;
        self.validate_claims(captured, now)
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
        let iss = string_claim(claims, "iss")?.ok_or(E::MissingClaim("iss"))?;
        if *iss != *self.issuer {
            return Err(E::InvalidIssuer.into());
        }
        let audience_ok = match claims.get(&self.audience_claim) {
            None if self.audience_claim == "aud" => return Err(E::MissingClaim("aud").into()),
            None => return Err(E::InvalidAudience.into()),
            Some(raw) => match Audience::parse(raw.get()) {
                Ok(Audience::One(a)) => self.audiences.iter().any(|x| *x == *a),
                Ok(Audience::Many(list)) => list.iter().any(|a| self.audiences.iter().any(|x| *x == **a)),
                Err(_) if self.audience_claim == "aud" => return Err(E::InvalidClaim("aud").into()),
                Err(_) => return Err(E::InvalidAudience.into()),
            },
        };
        if !audience_ok {
            return Err(E::InvalidAudience.into());
        }
        for name in &self.refused_claims {
            if claims.get(name).is_some() {
                return Err(E::NotAnAccessToken.into());
            }
        }
        for name in &self.required_claims {
            if claims.get(name).is_none_or(|raw| raw.get() == "null") {
                return Err(E::MissingCustomClaim.into());
            }
        }
        for (name, value) in &self.required_values {
            let Some(raw) = claims.get(name) else {
                return Err(E::MissingCustomClaim.into());
            };
            let holds = match Audience::parse(raw.get()) {
                Ok(Audience::One(v)) => *v == **value,
                Ok(Audience::Many(list)) => list.iter().any(|v| **v == **value),
                Err(_) => false,
            };
            if !holds {
                return Err(E::InvalidClaimValue.into());
            }
        }
        let sub = string_claim(claims, "sub")?.map(Cow::into_owned);
        Ok(RegisteredClaims {
            iss: iss.into_owned(),
            sub,
            exp: exp.max(0.0) as u64,
            iat: iat.map(|i| i.max(0.0) as u64),
        })
    }
}

fn string_claim<'p>(claims: &Captured<'p>, name: &'static str) -> Result<Option<Cow<'p, str>>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Borrowed<'p>>(raw.get())
            .map(|b| Some(b.0))
            .map_err(|_| E::InvalidClaim(name).into()),
    }
}

/// `aud` (or a claim used like it): one string or an array of strings.
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

/// A media type without its optional `application/` prefix (RFC 7515 §4.1.9), trimmed.
fn strip_application(t: &str) -> &str {
    let t = t.trim();
    match t.get(..12) {
        Some(prefix) if t.len() > 12 && prefix.eq_ignore_ascii_case("application/") => &t[12..],
        _ => t,
    }
}

fn normalize_type(t: &str) -> String {
    strip_application(t).to_ascii_lowercase()
}

impl JwtVerifierBuilder {
    /// Accepts another audience too.
    pub fn also_audience(mut self, audience: impl Into<String>) -> Self {
        self.inner.audiences.push(audience.into());
        self
    }

    /// Reads the audience from `claim` instead of `aud` (Amazon Cognito access tokens carry
    /// `client_id` and no `aud`). The claim is then required; `aud` is not read.
    pub fn audience_claim(mut self, claim: impl Into<String>) -> Self {
        self.inner.audience_claim = claim.into();
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

    /// Accepts only these header `typ` values (case-insensitive, `application/` prefix
    /// optional); a token without `typ` counts as `JWT`. Default: [`DEFAULT_TOKEN_TYPES`].
    pub fn token_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.inner.token_types = types.into_iter().map(|t| normalize_type(t.as_ref())).collect();
        self
    }

    /// Accepts only `typ` (RFC 9068 access tokens: `at+jwt`); tokens without `typ` are refused.
    pub fn require_type(self, typ: impl AsRef<str>) -> Self {
        self.token_types([typ])
    }

    /// Requires `iat` and refuses tokens issued longer ago than `max_age`.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.inner.max_age = Some(max_age.as_secs());
        self
    }

    /// Requires a non-null claim named `name` (a top-level claim, named literally).
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.inner.required_claims.push(name.into());
        self
    }

    /// Requires the claim `name` to be the string `value`, or an array of strings holding it
    /// (`token_use=access` for Cognito, `typ=Bearer` in a Keycloak payload).
    pub fn require_claim_value(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.required_values.push((name.into(), value.into()));
        self
    }

    /// Refuses tokens that carry claim `name` at all (added to [`DEFAULT_REFUSED_CLAIMS`]); for
    /// example `nonce` where the provider puts it only in ID tokens.
    pub fn refuse_claim(mut self, name: impl Into<String>) -> Self {
        self.inner.refused_claims.push(name.into());
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        let mut v = self.inner;
        if v.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if v.issuer.trim().is_empty() {
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
        if v.token_types.is_empty() || v.token_types.iter().any(String::is_empty) {
            return Err(ConfigError::EmptyTokenType);
        }
        for name in std::iter::once(&v.audience_claim)
            .chain(&v.required_claims)
            .chain(v.required_values.iter().map(|(n, _)| n))
            .chain(&v.refused_claims)
        {
            if name.is_empty() {
                return Err(ConfigError::InvalidClaimPath(
                    name.clone(),
                    "a claim name cannot be empty",
                ));
            }
        }
        let mut reads: Vec<String> = Vec::new();
        for name in std::iter::once(&v.audience_claim)
            .chain(&v.required_claims)
            .chain(v.required_values.iter().map(|(n, _)| n))
            .chain(&v.refused_claims)
        {
            if !super::capture::REGISTERED.contains(&name.as_str()) && !reads.contains(name) {
                reads.push(name.clone());
            }
        }
        v.reads = reads;
        Ok(v)
    }
}

/// What the verifier keeps of a JOSE header that passed the structural checks (valid JSON,
/// registered types, no `crit`, no `b64`, a known `alg`) — a function of the header segment
/// alone, so it can be remembered by it ([`HeaderMemo`]).
#[derive(Debug)]
pub(crate) struct JoseHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// `typ`, lower case, without `application/` (inline: no allocation for usual values).
    typ: Option<SmallVec<[u8; 24]>>,
}

/// A token split and decoded, nothing verified: what selects the issuer and feeds its checks.
pub(crate) struct Decoded<'t> {
    len: usize,
    pub(crate) header: Arc<JoseHeader>,
    /// The header segment, to remember once the token verified; `None` when `header` came from
    /// the memo already.
    to_remember: Option<&'t str>,
    signing_input: &'t str,
    signature: &'t str,
    pub(crate) payload: Vec<u8>,
}

impl Decoded<'_> {
    /// Remembers this token's header in `memo`: call only once the token verified.
    pub(crate) fn remember_header(&self, memo: &HeaderMemo) {
        if let Some(segment) = self.to_remember {
            memo.remember(segment, &self.header);
        }
    }

    /// The payload as text (JSON is UTF-8, RFC 8259 §8.1; serde_json does not check the
    /// strings it skips, so the whole payload is checked here — found by fuzzing).
    pub(crate) fn payload_text(&self) -> Result<&str, JwtError> {
        std::str::from_utf8(&self.payload).map_err(|_| JwtError::from(E::InvalidPayload))
    }

    pub(crate) fn header(&self) -> TokenHeader {
        TokenHeader {
            alg: self.header.alg,
            kid: self.header.kid.clone(),
        }
    }
}

/// Splits and decodes a compact JWS: size limit, three strict base64url segments, a JSON
/// header without `crit`/`b64` whose `alg` is in `algorithms`, a decoded payload. Nothing here
/// is trusted yet.
pub(crate) fn decode(
    token: &str,
    max_bytes: usize,
    algorithms: AlgorithmSet,
) -> Result<Decoded<'_>, JwtError> {
    decode_remembered(token, max_bytes, algorithms, None)
}

/// [`decode`], taking the header from `memo` when a verified token had the same header segment
/// (the same answer: see [`HeaderMemo`]).
pub(crate) fn decode_remembered<'t>(
    token: &'t str,
    max_bytes: usize,
    algorithms: AlgorithmSet,
    memo: Option<&HeaderMemo>,
) -> Result<Decoded<'t>, JwtError> {
    if token.len() > max_bytes {
        return Err(E::TooLarge.into());
    }
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(d1), Some(d2), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(E::Malformed.into());
    };
    // Dots are ASCII, so these are char boundaries.
    let (h, p, s) = (&token[..d1], &token[d1 + 1..d2], &token[d2 + 1..]);
    let (header, to_remember) = match memo.and_then(|m| m.get(h)) {
        Some(header) => (header, None),
        None => (Arc::new(decode_header(h)?), Some(h)),
    };
    if !algorithms.contains(header.alg) {
        return Err(E::AlgorithmNotAllowed.into());
    }
    let payload = b64(p)?;
    Ok(Decoded {
        len: token.len(),
        header,
        to_remember,
        signing_input: &token[..h.len() + 1 + p.len()],
        signature: s,
        payload,
    })
}

/// The header segment: strict base64url, UTF-8 JSON, registered types, no `crit` or `b64`, an
/// `alg` this crate knows (the allowlist is the caller's).
fn decode_header(h: &str) -> Result<JoseHeader, JwtError> {
    // Decoded on the stack (longer than 256 bytes: the heap).
    let header_json = b64_inline::<[u8; 256]>(h)?;
    // JSON text is UTF-8 (RFC 8259 §8.1); serde_json does not check the strings it skips.
    let header_text = std::str::from_utf8(&header_json).map_err(|_| JwtError::from(E::InvalidHeader))?;
    let raw = RawHeader::parse(header_text).map_err(|_| JwtError::from(E::InvalidHeader))?;
    if raw.crit {
        return Err(E::UnsupportedCritical.into());
    }
    if raw.b64 {
        // RFC 7797 unencoded payloads are not supported; `b64` without `crit` is malformed.
        return Err(E::UnsupportedCritical.into());
    }
    let alg: Algorithm = raw
        .alg
        .parse()
        .map_err(|_| JwtError::from(E::AlgorithmNotAllowed))?;
    let typ = raw.typ.as_deref().map(|t| {
        strip_application(t)
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .collect()
    });
    Ok(JoseHeader {
        alg,
        kid: raw.kid,
        typ,
    })
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

/// [`b64`] into a buffer of `A` inline (no allocation when the decoded bytes fit): the same
/// engine, so the same strictness.
fn b64_inline<A: smallvec::Array<Item = u8>>(segment: &str) -> Result<SmallVec<A>, JwtError> {
    let mut out = SmallVec::<A>::new();
    // An upper bound: the decoder never needs more room than this.
    out.resize(base64::decoded_len_estimate(segment.len()), 0);
    let len = URL_SAFE_NO_PAD
        .decode_slice(segment, &mut out)
        .map_err(|_| JwtError::from(E::Malformed))?;
    out.truncate(len);
    Ok(out)
}

/// A NumericDate claim (RFC 7519 §2): a finite number. `exp` and `nbf` must also fit the
/// unsigned 64-bit range `jsonwebtoken` reads them into (a negative `exp` is only expired).
fn numeric_date(claims: &Captured<'_>, name: &'static str) -> Result<Option<f64>, JwtError> {
    let Some(raw) = claims.get(name) else {
        return Ok(None);
    };
    let invalid = || JwtError::from(E::InvalidClaim(name));
    let n: serde_json::Number = serde_json::from_str(raw.get()).map_err(|_| invalid())?;
    let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(invalid)?;
    let in_range = name == "iat" || n.is_u64() || (f < u64::MAX as f64 && (f >= 0.0 || name == "exp"));
    if !in_range {
        return Err(invalid());
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::VerificationKey;

    #[test]
    fn decoding_inline_is_decoding_on_the_heap() {
        let mut segments: Vec<String> = (0..700usize)
            .map(|n| URL_SAFE_NO_PAD.encode((0..n).map(|i| (i * 7 + n) as u8).collect::<Vec<u8>>()))
            .collect();
        // Not base64url, padded, a stray `=`, a length no encoding has, standard alphabet.
        for bad in [
            "a", "ab=", "abc=", "a=bc", "abcde", "ab+/", "ab c", "é", "AB==", "QQ==",
        ] {
            segments.push(bad.into());
        }
        for s in &segments {
            let heap = b64(s).map_err(|e| e.kind().clone());
            let small = b64_inline::<[u8; 64]>(s)
                .map(|v| v.to_vec())
                .map_err(|e| e.kind().clone());
            assert_eq!(small, heap, "{s:?}");
        }
    }

    /// A remembered header is the header decoding gives; the allowlist is still the caller's.
    #[test]
    fn a_remembered_header_is_the_decoded_one_and_the_allowlist_still_applies() {
        let memo = HeaderMemo::new();
        let payload = br#"{"iss":"i","aud":"a","sub":"s","exp":4102444800}"#;
        let token = signed(payload);
        let all = AlgorithmSet::from_iter([Algorithm::HS256, Algorithm::RS256]);
        let first = decode_remembered(&token, 8192, all, Some(&memo)).unwrap();
        assert!(first.to_remember.is_some());
        first.remember_header(&memo);
        let again = decode_remembered(&token, 8192, all, Some(&memo)).unwrap();
        assert!(again.to_remember.is_none(), "the second decode used the memo");
        assert!(Arc::ptr_eq(&first.header, &again.header));
        let fresh = decode(&token, 8192, all).unwrap();
        assert_eq!(
            (fresh.header.alg, &fresh.header.kid, &fresh.header.typ),
            (again.header.alg, &again.header.kid, &again.header.typ)
        );
        assert_eq!(again.payload, fresh.payload);
        // Remembered or not, an algorithm outside this caller's allowlist is refused.
        let rs_only = AlgorithmSet::from_iter([Algorithm::RS256]);
        let refused = decode_remembered(&token, 8192, rs_only, Some(&memo))
            .err()
            .unwrap();
        assert_eq!(refused.kind(), &E::AlgorithmNotAllowed);
        // So is a token over the size limit, before any lookup.
        let refused = decode_remembered(&token, 16, all, Some(&memo)).err().unwrap();
        assert_eq!(refused.kind(), &E::TooLarge);
    }

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

    #[test]
    fn token_types_compare_without_case_or_prefix_and_never_panic() {
        let verifier = JwtVerifier::builder("i", "a", [Algorithm::HS256])
            .token_types(["at+JWT", "application/Custom+jwt"])
            .build()
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &[7; 32]).unwrap()]).unwrap();
        let payload = br#"{"iss":"i","aud":"a","exp":4102444800}"#;
        let with_typ = |typ: &str| {
            let header = serde_json::json!({"alg": "HS256", "typ": typ}).to_string();
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]);
            let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
        };
        for ok in [
            "at+jwt",
            "AT+JWT",
            "Application/at+jwt",
            "custom+jwt",
            "application/custom+JWT",
        ] {
            assert!(
                verifier.verify_at(&with_typ(ok), &keys, 1_800_000_000).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "JWT",
            "application/",
            "applicatión/at+jwt",
            "ápplication/at+jwt",
            "at+jwt2",
            "",
        ] {
            assert_eq!(
                verifier
                    .verify_at(&with_typ(bad), &keys, 1_800_000_000)
                    .unwrap_err()
                    .kind(),
                &E::InvalidType,
                "{bad}"
            );
        }
        assert!(
            JwtVerifier::builder("i", "a", [Algorithm::HS256])
                .token_types(["ünïcode/x"])
                .build()
                .is_ok()
        );
    }
}
