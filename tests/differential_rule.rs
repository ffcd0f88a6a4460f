//! The one list of places where authz's JWT verifier is documented to be stricter than
//! `jsonwebtoken::decode`. Shared by the differential proptest (`tests/tests/it/differential.rs`)
//! and the fuzz target `fuzz/fuzz_targets/differential.rs` (which depends on this crate), so
//! that both apply the same rule:
//!
//! - both accept, or both refuse: agreement;
//! - authz refuses, jsonwebtoken accepts: allowed only if [`authz_is_stricter`] names a reason;
//! - authz accepts, jsonwebtoken refuses: always a failure, never an exception.
//!
//! The rule reads the token itself (not the generator's intent), so it cannot be fooled by a
//! generator that meant one thing and produced another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Registered claims authz reads on every token (its `capture::REGISTERED`; `jti` for the
/// revocation list, `cnf` for sender-constrained tokens).
const REGISTERED: [&str; 10] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "scope", "scp", "jti", "cnf",
];

/// What the two verifiers were given.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    /// The token.
    pub token: &'a str,
    /// The `kid` of the one key in authz's key set (jsonwebtoken is handed that key directly).
    pub key_kid: &'a str,
    /// The verification time, seconds since the epoch.
    pub now: u64,
    /// The leeway both verifiers were given, in seconds.
    pub leeway: u64,
}

/// authz's default size limit (`authz_core::jwt::DEFAULT_MAX_TOKEN_BYTES`).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why authz may refuse `case` although jsonwebtoken accepts it, or `None` if it may not.
/// Each reason is a documented rule of authz's verifier that jsonwebtoken does not have.
pub fn authz_is_stricter(case: &Case<'_>) -> Option<&'static str> {
    if case.token.len() > MAX_TOKEN_BYTES {
        return Some("token over 8 KiB: authz refuses it before any decoding (DEFAULT_MAX_TOKEN_BYTES)");
    }
    let mut segments = case.token.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return None;
    };
    let header = URL_SAFE_NO_PAD.decode(h).ok()?;
    if let Some(header) = members(&header) {
        if has(&header, "crit") {
            return Some(
                "`crit` header: authz implements no JWS extension, so it refuses every `crit` (RFC 7515 §4.1.11)",
            );
        }
        if has(&header, "b64") {
            return Some(
                "`b64` header: authz supports no RFC 7797 unencoded payload and refuses the parameter outright",
            );
        }
        if let Some(typ) = string(&header, "typ")
            && other_token_type(&typ)
        {
            return Some(
                "`typ` names another token type than a JWT access token (RFC 8725 §3.11, RFC 9068 §2.1)",
            );
        }
        if let Some(kid) = string(&header, "kid")
            && kid != case.key_kid
        {
            return Some(
                "`kid` names no key of the set: authz selects keys by `kid`; jsonwebtoken is handed one key and ignores `kid`",
            );
        }
    }
    let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
    if std::str::from_utf8(&payload).is_err() {
        return Some(
            "payload not UTF-8 (RFC 8725 §3.7), even inside a claim nobody reads: serde_json skips such strings unchecked",
        );
    }
    let claims = members(&payload)?;
    if REGISTERED
        .iter()
        .any(|name| claims.iter().filter(|(k, _)| k == name).count() > 1)
    {
        return Some(
            "a registered claim appears twice: authz refuses the ambiguity, jsonwebtoken ignores claims it does not read",
        );
    }
    if ["at_hash", "c_hash", "s_hash"].iter().any(|n| has(&claims, n)) {
        return Some(
            "`at_hash`/`c_hash`/`s_hash`: an OpenID Connect ID token is not an access token (RFC 8725 §3.12)",
        );
    }
    if has(&claims, "events") {
        return Some(
            "`events`: a security event token (back-channel logout) is not an access token (RFC 8417 §2.3)",
        );
    }
    if let Some(iat) = raw(&claims, "iat")
        && !serde_json::from_str::<f64>(iat)
            .is_ok_and(|t| t.is_finite() && t <= (case.now + case.leeway) as f64)
    {
        return Some(
            "`iat` not a NumericDate, or in the future: authz checks `iat`, jsonwebtoken never reads it",
        );
    }
    if raw(&claims, "sub").is_some_and(|s| serde_json::from_str::<String>(s).is_err()) {
        return Some(
            "`sub` not a string (RFC 7519 §4.1.2): jsonwebtoken checks `sub` only when told the subject to expect",
        );
    }
    if raw(&claims, "iss").is_some_and(|s| s.trim_start().starts_with('[')) {
        return Some(
            "`iss` is an array: RFC 7519 §4.1.1 makes it one StringOrURI; jsonwebtoken also accepts a list",
        );
    }
    None
}

/// A `typ` that is neither `JWT` nor `at+jwt` (case-insensitive, `application/` allowed).
fn other_token_type(typ: &str) -> bool {
    let lower = typ.to_ascii_lowercase();
    let t = lower.strip_prefix("application/").unwrap_or(&lower);
    t != "jwt" && t != "at+jwt"
}

type Members = Vec<(String, Box<RawValue>)>;

/// The members of a JSON object, in order and with duplicates, values unparsed.
fn members(json: &[u8]) -> Option<Members> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Members;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                out.push((k, map.next_value::<Box<RawValue>>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let out = (&mut de).deserialize_map(V).ok()?;
    de.end().ok()?;
    Some(out)
}

fn has(members: &Members, name: &str) -> bool {
    members.iter().any(|(k, _)| k == name)
}

fn raw<'m>(members: &'m Members, name: &str) -> Option<&'m str> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v.get())
}

fn string(members: &Members, name: &str) -> Option<String> {
    raw(members, name).and_then(|v| serde_json::from_str(v).ok())
}
