//! The JOSE header (RFC 7515 §4), parsed in one pass and as strictly as `jsonwebtoken` parses
//! it: every registered parameter with its registered type, no parameter twice, and any other
//! member valid JSON down to its numbers and escapes. Only `alg`, `kid` and `typ` are kept;
//! `crit` and `b64` are noted (the verifier refuses both); `jku`, `x5u`, `jwk` and `x5c` are
//! type-checked and ignored — keys never come from a token.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// What the verifier reads from a header.
pub(crate) struct RawHeader<'a> {
    pub(crate) alg: Cow<'a, str>,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<Cow<'a, str>>,
    pub(crate) crit: bool,
    pub(crate) b64: bool,
    jwk: bool,
}

/// Registered parameters whose value must be a string.
const STRINGS: [&str; 11] = [
    "alg", "typ", "cty", "kid", "jku", "x5u", "x5t", "x5t#S256", "enc", "zip", "url",
];

impl<'a> RawHeader<'a> {
    pub(crate) fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let header = (&mut de).deserialize_map(HeaderVisitor)?;
        de.end()?;
        if header.jwk {
            // A rare member with a deep registered shape: judged by jsonwebtoken's own `Jwk`.
            serde_json::from_str::<jsonwebtoken::Header>(text)?;
        }
        Ok(header)
    }
}

struct HeaderVisitor;

#[derive(serde::Deserialize)]
struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut alg = None;
        let mut kid = None;
        let mut typ = None;
        let mut crit = false;
        let mut b64 = false;
        let mut jwk = false;
        // Registered parameters seen so far (each may appear once).
        let mut seen: smallvec::SmallVec<[Cow<'de, str>; 8]> = smallvec::SmallVec::new();
        while let Some(Borrowed(key)) = map.next_key::<Borrowed<'de>>()? {
            let registered =
                STRINGS.contains(&&*key) || matches!(&*key, "crit" | "b64" | "x5c" | "jwk" | "nonce");
            if registered {
                if seen.contains(&key) {
                    return Err(de::Error::custom("a header parameter appears twice"));
                }
                seen.push(key.clone());
            }
            match &*key {
                // `null` stands for an absent optional parameter, as in jsonwebtoken.
                "alg" => alg = Some(map.next_value::<Borrowed<'de>>()?.0),
                "typ" => typ = map.next_value::<Option<Borrowed<'de>>>()?.map(|b| b.0),
                "kid" => kid = map.next_value::<Option<String>>()?,
                k if STRINGS.contains(&k) || k == "nonce" => {
                    map.next_value::<Option<Borrowed<'de>>>()?;
                }
                "x5c" => {
                    map.next_value::<Option<Vec<Borrowed<'de>>>>()?;
                }
                "crit" => {
                    crit = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "b64" => {
                    b64 = true;
                    map.next_value::<IgnoredAny>()?;
                }
                "jwk" => {
                    // A JWK (RFC 7517): never used, but it must be one.
                    jwk = map
                        .next_value::<Option<serde_json::Map<String, serde_json::Value>>>()?
                        .is_some();
                }
                _ => {
                    // Any other member must be valid JSON in full (numbers in range, escapes
                    // complete), as a `serde_json::Value` would parse it.
                    map.next_value::<serde_json::Value>()?;
                }
            }
        }
        let alg = alg.ok_or_else(|| de::Error::missing_field("alg"))?;
        Ok(RawHeader {
            alg,
            kid,
            typ,
            crit,
            b64,
            jwk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_parameters_are_typed_and_appear_once() {
        assert!(RawHeader::parse(r#"{"alg":"HS256","kid":"k","typ":"JWT","cty":"x","x5c":["a"]}"#).is_ok());
        for bad in [
            r#"{"alg":"HS256","cty":5}"#,
            r#"{"alg":"HS256","x5c":"MIIB"}"#,
            r#"{"alg":"HS256","jwk":"not-a-jwk"}"#,
            r#"{"alg":"HS256","cty":"JWT","cty":"JWT"}"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
            r#"{"alg":"HS256","x":1e999}"#,
            r#"{"alg":"HS256","x":"\ud800x"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":"HS256"} x"#,
        ] {
            assert!(RawHeader::parse(bad).is_err(), "{bad}");
        }
        // Unregistered members may repeat (jsonwebtoken keeps the last one); `null` is absent.
        assert!(RawHeader::parse(r#"{"alg":"HS256","x":1,"x":2}"#).is_ok());
        let h = RawHeader::parse(r#"{"alg":"HS256","typ":null,"kid":null,"x5c":null}"#).unwrap();
        assert!(h.typ.is_none() && h.kid.is_none());
    }
}
