//! API keys: generated from the OS CSPRNG, recognisable, checksummed, stored only as hashes.
//!
//! # Format
//!
//! ```text
//! azk_5Jq3VwT0ZkBcRf9a_tQ5e…(43 base62 characters of secret)…Xy12Ab
//! └┬┘ └──────┬───────┘ └──────────────┬────────────────────┘└──┬─┘
//! prefix  key id (16 base62,          secret (43 base62 = 256 bits)   CRC-32 of everything
//!         public, the lookup key)                                     before it (6 base62)
//! ```
//!
//! - The prefix (`[a-z][a-z0-9]{1,15}`, default `azk`) lets secret scanners recognise a leaked
//!   key and lets the server tell an API key from a JWT without guessing: a JWT is three
//!   base64url segments separated by dots, a key has no dot and starts with `prefix_`.
//! - The checksum lets the server refuse a mistyped or truncated key without a database lookup.
//! - Only `SHA-256(key)` is stored. A slow password hash (bcrypt, Argon2) exists to make guessing
//!   low-entropy *passwords* expensive; a key carries 256 bits from the CSPRNG, so guessing is
//!   already infeasible and a fast hash loses nothing while keeping verification cheap. The
//!   stored hash is compared in constant time.

use crate::clock::Clock as _;
use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use subtle::ConstantTimeEq;

use crate::policy::Policy;
use crate::principal::{AuthMethod, Principal, PrincipalParts};

const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The shape of this application's keys (their prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyFormat {
    prefix: String,
}

impl Default for ApiKeyFormat {
    fn default() -> Self {
        Self { prefix: "azk".into() }
    }
}

/// Why a presented key was refused. Callers only ever see a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// Not this application's key format, or the checksum does not match.
    #[error("the API key is malformed")]
    Malformed,
    /// No key with that id.
    #[error("no such API key")]
    Unknown,
    /// The id exists but the secret does not match.
    #[error("the API key does not match")]
    Mismatch,
    /// Revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// Expired.
    #[error("the API key has expired")]
    Expired,
    /// The prefix is not acceptable.
    #[error("API key prefix must be 2 to 16 characters of a-z and 0-9, starting with a letter")]
    BadPrefix,
}

fn base62(bytes: &[u8], len: usize) -> String {
    // Big-endian base conversion of `bytes` into exactly `len` digits.
    let mut num: Vec<u8> = bytes.to_vec();
    let mut out = vec![b'0'; len];
    for slot in out.iter_mut().rev() {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = BASE62[rem as usize];
    }
    String::from_utf8(out).expect("base62 is ASCII")
}

fn random(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random generator works");
    buf
}

/// The six check characters of a key body (`prefix_id_secret`): CRC-32 in base62. Not a
/// secret: it only catches typos without a lookup.
pub fn checksum(body: &str) -> String {
    base62(&crc32fast::hash(body.as_bytes()).to_be_bytes(), CHECKSUM_LEN)
}

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new key: the raw key (shown once) and what is stored.
pub struct GeneratedKey {
    /// The public key id.
    pub id: String,
    /// `SHA-256` of the raw key: the only thing stored.
    pub hash: KeyHash,
    raw: String,
}

impl GeneratedKey {
    /// The raw key, to show the caller once. Never log or store it.
    pub fn expose_raw(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .field("raw", &"<redacted>")
            .finish()
    }
}

/// A presented key that passed the format and checksum checks.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    id: &'a str,
    raw: &'a str,
}

impl<'a> ParsedKey<'a> {
    /// The key id (the lookup key).
    pub fn id(&self) -> &'a str {
        self.id
    }

    /// The whole presented key (hashed, never kept).
    pub(crate) fn raw(&self) -> &'a str {
        self.raw
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ApiKeyFormat {
    /// Keys starting with `prefix_`.
    pub fn new(prefix: impl Into<String>) -> Result<Self, ApiKeyError> {
        let prefix = prefix.into();
        let ok = (2..=16).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self { prefix })
        } else {
            Err(ApiKeyError::BadPrefix)
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `presented` claims to be one of our keys (starts with `prefix_`). Such a
    /// credential is then judged only as an API key: never retried as a JWT.
    pub fn claims(&self, presented: &str) -> bool {
        presented.len() > self.prefix.len()
            && presented.starts_with(&self.prefix)
            && presented.as_bytes()[self.prefix.len()] == b'_'
    }

    /// A new key from the OS CSPRNG: 256 bits of secret.
    pub fn generate(&self) -> GeneratedKey {
        let id = base62(&random(12), ID_LEN);
        let secret = base62(&random(32), SECRET_LEN);
        let body = format!("{}_{id}_{secret}", self.prefix);
        let raw = format!("{body}{}", checksum(&body));
        GeneratedKey {
            hash: KeyHash::of(&raw),
            id,
            raw,
        }
    }

    /// Checks the structure and checksum, without any lookup.
    pub fn parse<'a>(&self, presented: &'a str) -> Result<ParsedKey<'a>, ApiKeyError> {
        let expected = self.prefix.len() + 1 + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
        if !self.claims(presented) || presented.len() != expected || !presented.is_ascii() {
            return Err(ApiKeyError::Malformed);
        }
        let rest = &presented[self.prefix.len() + 1..];
        let (id, rest) = rest.split_at(ID_LEN);
        let Some(rest) = rest.strip_prefix('_') else {
            return Err(ApiKeyError::Malformed);
        };
        let (secret, sum) = rest.split_at(SECRET_LEN);
        if !is_base62(id) || !is_base62(secret) || !is_base62(sum) {
            return Err(ApiKeyError::Malformed);
        }
        let body = &presented[..presented.len() - CHECKSUM_LEN];
        if checksum(body) != sum {
            return Err(ApiKeyError::Malformed);
        }
        Ok(ParsedKey { id, raw: presented })
    }
}

/// `SHA-256` of a raw key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a raw key.
    pub fn of(raw: &str) -> Self {
        let d = digest::digest(&digest::SHA256, raw.as_bytes());
        let mut out = [0; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// From stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &KeyHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

/// What is stored about a key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public id.
    pub id: String,
    /// Who the key acts as (the principal's subject).
    pub owner: String,
    /// Roles the key carries.
    pub roles: Vec<String>,
    /// Scopes the key carries.
    pub scopes: Vec<String>,
    /// `SHA-256` of the key.
    pub hash: KeyHash,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// When the key stops working, if ever.
    pub expires_at: Option<u64>,
    /// Last successful use (updated in batches, not on every request).
    pub last_used_at: Option<u64>,
    /// When the key was revoked.
    pub revoked_at: Option<u64>,
    /// A human description.
    pub description: Option<String>,
    /// The key this one replaced by rotation.
    pub rotated_from: Option<String>,
    /// The tenant the key acts in (the principal's [`Principal::tenant`]); `None`: none, or
    /// the authenticator's default tenant.
    pub tenant: Option<String>,
}

impl ApiKeyRecord {
    /// A record for a freshly generated key.
    pub fn new(
        key: &GeneratedKey,
        owner: impl Into<String>,
        roles: Vec<String>,
        expires_at: Option<u64>,
    ) -> Self {
        Self {
            id: key.id.clone(),
            owner: owner.into(),
            roles,
            scopes: Vec::new(),
            hash: key.hash,
            created_at: crate::clock::SystemClock.unix_seconds(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
            description: None,
            rotated_from: None,
            tenant: None,
        }
    }

    /// Whether the key is usable at `now`.
    pub fn is_active_at(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Checks a presented key against its stored record and, if it is valid, makes the principal.
///
/// Order: revoked → expired → hash (constant time). The caller found `record` by
/// [`ParsedKey::id`].
pub fn authenticate(
    key: ParsedKey<'_>,
    record: Option<&ApiKeyRecord>,
    policy: &Policy,
    now: u64,
) -> Result<Principal, ApiKeyError> {
    authenticate_hashed(key, &KeyHash::of(key.raw), record, policy, now)
}

/// [`authenticate`] with the presented key's hash already computed.
pub(crate) fn authenticate_hashed(
    key: ParsedKey<'_>,
    presented: &KeyHash,
    record: Option<&ApiKeyRecord>,
    policy: &Policy,
    now: u64,
) -> Result<Principal, ApiKeyError> {
    let Some(record) = record else {
        // Same work as a real comparison, so that unknown ids are not faster.
        let _ = presented.matches(&KeyHash([0; 32]));
        return Err(ApiKeyError::Unknown);
    };
    let matches = presented.matches(&record.hash) && record.id == key.id;
    if !matches {
        return Err(ApiKeyError::Mismatch);
    }
    if record.revoked_at.is_some() {
        return Err(ApiKeyError::Revoked);
    }
    if record.expires_at.is_some_and(|e| now >= e) {
        return Err(ApiKeyError::Expired);
    }
    Ok(Principal::new(
        PrincipalParts {
            subject: record.owner.clone(),
            issuer: None,
            tenant: record.tenant.clone(),
            roles: record.roles.clone(),
            scopes: record.scopes.clone(),
            extra_permissions: Vec::new(),
            expires_at: record.expires_at,
            auth_method: AuthMethod::ApiKey,
            claims: None,
            token: crate::principal::TokenFacts::default(),
        },
        policy,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_typos_do_not() {
        let f = ApiKeyFormat::default();
        let k = f.generate();
        let raw = k.expose_raw();
        assert_eq!(raw.len(), 3 + 1 + 16 + 1 + 43 + 6);
        assert!(raw.starts_with("azk_"));
        assert_eq!(f.parse(raw).unwrap().id(), k.id);
        // Every single-character substitution is caught by the checksum or the structure.
        for i in 4..raw.len() {
            let mut b = raw.as_bytes().to_vec();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(b).unwrap();
            assert!(f.parse(&typo).is_err(), "position {i}");
        }
        assert!(f.parse(&raw[..raw.len() - 1]).is_err());
        assert!(f.parse("eyJhbGciOiJIUzI1NiJ9.e30.sig").is_err());
        assert!(!f.claims("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        assert_ne!(f.generate().expose_raw(), raw);
        assert!(!format!("{k:?}").contains(raw));
    }

    #[test]
    fn prefixes() {
        assert!(ApiKeyFormat::new("mr").is_ok());
        for bad in ["", "a", "Mr", "9x", "has_underscore", "waytoolongprefix17"] {
            assert!(ApiKeyFormat::new(bad).is_err(), "{bad}");
        }
    }
}
