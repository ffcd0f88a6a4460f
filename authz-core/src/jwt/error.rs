//! JWT errors. None of them carries token material.

use std::fmt;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtError {
    kind: JwtErrorKind,
}

impl JwtError {
    /// The kind of failure.
    pub fn kind(&self) -> &JwtErrorKind {
        &self.kind
    }
}

impl JwtErrorKind {
    /// A fixed snake_case code for this kind (metrics labels, log fields): never token
    /// material, and one of a closed set.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::InvalidHeader => "invalid_header",
            Self::InvalidPayload => "invalid_payload",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::InvalidType => "invalid_type",
            Self::NotAnAccessToken => "not_an_access_token",
            Self::InvalidClaimValue => "invalid_claim_value",
            Self::UnknownKeyId => "unknown_key_id",
            Self::MissingKeyId => "missing_key_id",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::TooOld => "too_old",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidAudience => "invalid_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::MissingCustomClaim => "missing_custom_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::InvalidMappedClaim => "invalid_mapped_claim",
            Self::KeySourceUnavailable => "key_source_unavailable",
            Self::Revoked => "revoked",
        }
    }
}

impl From<JwtErrorKind> for JwtError {
    fn from(kind: JwtErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for JwtError {}

/// The kinds of token failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtErrorKind {
    /// Larger than the configured limit.
    #[error("token larger than the size limit")]
    TooLarge,
    /// Not three strict base64url segments.
    #[error("token is not a compact JWS of three base64url segments")]
    Malformed,
    /// The header is not the expected JSON (or repeats a member).
    #[error("token header is not valid JSON")]
    InvalidHeader,
    /// The payload is not a JSON object.
    #[error("token payload is not a JSON object")]
    InvalidPayload,
    /// `alg` is not allowed (or not a supported algorithm at all, like `none`).
    #[error("token algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// A `crit` (or `b64`) header: extensions this verifier does not implement.
    #[error("token header names a critical extension this verifier does not implement")]
    UnsupportedCritical,
    /// The header's `typ` names a type this verifier does not accept (RFC 8725 §3.11).
    #[error("token type (typ) is not an accepted access-token type")]
    InvalidType,
    /// The token carries a claim that only another kind of token carries (`at_hash`, `c_hash`,
    /// `s_hash` of an OpenID Connect ID token, `events` of a security event token, or a claim
    /// the issuer's configuration refuses): it is not an access token.
    #[error("token carries a claim access tokens never carry: it is another kind of token")]
    NotAnAccessToken,
    /// A claim required to hold a configured value holds another one.
    #[error("a required claim does not hold the required value")]
    InvalidClaimValue,
    /// No key has the token's `kid`.
    #[error("no key with the token's key id")]
    UnknownKeyId,
    /// No `kid`, and several keys to choose from.
    #[error("token has no key id and several keys are configured")]
    MissingKeyId,
    /// The key's algorithm differs from the token's `alg`.
    #[error("token algorithm differs from the key's algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    /// Older than the configured maximum age.
    #[error("token is older than the maximum age")]
    TooOld,
    /// `iss` is not a configured issuer.
    #[error("token issuer is not accepted")]
    InvalidIssuer,
    /// `aud` names no configured audience.
    #[error("token audience is not accepted")]
    InvalidAudience,
    /// A required registered claim is missing.
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    /// A required custom claim is missing.
    #[error("token lacks a required custom claim")]
    MissingCustomClaim,
    /// A claim has the wrong JSON type.
    #[error("token claim `{0}` has the wrong type")]
    InvalidClaim(&'static str),
    /// A mapped claim (roles, scopes, permissions, custom claims) has the wrong type.
    #[error("a mapped claim has the wrong type")]
    InvalidMappedClaim,
    /// No key could be loaded because the key source is unavailable.
    #[error("no verification key is available (key source unavailable)")]
    KeySourceUnavailable,
    /// The token is on the revocation list (its `jti`, or every token of its subject).
    #[error("token has been revoked")]
    Revoked,
}

/// A verifier configuration that would not be safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The algorithm allowlist is empty.
    #[error("the algorithm allowlist is empty: name at least one algorithm")]
    NoAlgorithms,
    /// An issuer is empty.
    #[error("the issuer is empty: tokens would be accepted from an unnamed issuer")]
    EmptyIssuer,
    /// An audience is empty.
    #[error("the audience is empty: tokens meant for any service would be accepted")]
    EmptyAudience,
    /// Leeway over the maximum.
    #[error("leeway of {0} s is over the 300 s maximum")]
    LeewayTooLarge(u64),
    /// A size limit too small to hold any token.
    #[error("a size limit of {0} bytes cannot hold a token")]
    SizeLimitTooSmall(usize),
    /// A claim name or path is empty or malformed.
    #[error("claim path {0:?} is not valid: {1}")]
    InvalidClaimPath(String, &'static str),
    /// An accepted token type is empty.
    #[error("an accepted token type (typ) is empty")]
    EmptyTokenType,
    /// Two issuers share one `iss`.
    #[error("issuer {0:?} is configured twice")]
    DuplicateIssuer(String),
    /// No issuer is configured.
    #[error("no issuer is configured: tokens could never be verified")]
    NoIssuers,
    /// The default tenant is empty.
    #[error("the default tenant is empty: name the tenant principals without one belong to")]
    EmptyDefaultTenant,
}
