//! One pass over a token's payload that keeps only the claims someone will read, borrowed from
//! the payload bytes: no JSON tree is built on the request path.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// Claims the verifier always reads.
pub(crate) const REGISTERED: [&str; 10] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "scope", "scp", "jti", "cnf",
];

/// The captured claims of one payload: each name is the reader's own (from [`REGISTERED`] or
/// the `wanted` list), never the payload's, so an entry is a pair of borrows and nothing is
/// allocated for it.
#[derive(Default)]
pub(crate) struct Captured<'p> {
    entries: SmallVec<[(&'p str, &'p RawValue); 12]>,
}

impl<'p> Captured<'p> {
    pub(crate) fn get(&self, name: &str) -> Option<&'p RawValue> {
        self.entries.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    /// [`fill`](Self::fill) into a new value.
    #[cfg(test)]
    pub(crate) fn parse(payload: &'p str, wanted: &'p [String]) -> Result<Self, serde_json::Error> {
        let mut captured = Captured::default();
        captured.fill(payload, wanted)?;
        Ok(captured)
    }

    /// Parses the payload into `self` (empty), keeping [`REGISTERED`] and the claims named in
    /// `wanted`. A captured claim that appears twice, under any spelling of its name, makes the
    /// payload invalid (two `exp`s are an ambiguity an attacker could use). On an error, `self`
    /// holds whatever was read before it and must be dropped. The request path fills the
    /// captured claims where they will be read rather than moving them out of the parser.
    pub(crate) fn fill(&mut self, payload: &'p str, wanted: &'p [String]) -> Result<(), serde_json::Error> {
        debug_assert!(self.entries.is_empty());
        let mut de = serde_json::Deserializer::from_str(payload);
        CaptureSeed { wanted, out: self }.deserialize(&mut de)?;
        de.end()
    }
}

struct CaptureSeed<'c, 'p> {
    wanted: &'p [String],
    out: &'c mut Captured<'p>,
}

impl<'de> DeserializeSeed<'de> for CaptureSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CaptureSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let entries = &mut self.out.entries;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let name = REGISTERED
                .iter()
                .copied()
                .find(|r| **r == *key)
                .or_else(|| self.wanted.iter().map(String::as_str).find(|w| **w == *key));
            if let Some(name) = name {
                if entries.iter().any(|(k, _)| *k == name) {
                    return Err(de::Error::custom("duplicate claim"));
                }
                let value: &'de RawValue = map.next_value()?;
                entries.push((name, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A claim name, borrowed unless it contains escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_only_what_is_read_and_refuses_duplicates() {
        let payload = r#"{"iss":"a","exp":1,"big":{"nested":[1,2,3]},"roles":["x"],"esc\u0061ped":2}"#;
        let wanted = ["roles".to_string()];
        let c = Captured::parse(payload, &wanted).unwrap();
        assert_eq!(c.get("iss").unwrap().get(), "\"a\"");
        assert_eq!(c.get("roles").unwrap().get(), "[\"x\"]");
        assert!(c.get("big").is_none());
        assert!(
            Captured::parse(r#"{"exp":1,"exp":99999999999}"#, &[]).is_err(),
            "two exp claims"
        );
        assert!(Captured::parse(r#"{"exp":1} trailing"#, &[]).is_err());
        assert!(Captured::parse(r#"["not","an","object"]"#, &[]).is_err());
        // A name spelled with escapes is the same name: captured, and a duplicate.
        let c = Captured::parse(r#"{"r\u006fles":["y"],"\u0069ss":"b"}"#, &wanted).unwrap();
        assert_eq!(c.get("roles").unwrap().get(), "[\"y\"]");
        assert_eq!(c.get("iss").unwrap().get(), "\"b\"");
        assert!(
            Captured::parse(r#"{"exp":1,"\u0065xp":99999999999}"#, &[]).is_err(),
            "exp twice, once escaped"
        );
        // A duplicate of a claim nobody reads is harmless and allowed.
        assert!(Captured::parse(r#"{"x":1,"x":2}"#, &[]).is_ok());
    }
}
