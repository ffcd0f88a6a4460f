//! Permissions: the `resource:action` grammar.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::grammar;

/// A validated permission, `resource:action` (see [`crate::grammar`]).
///
/// ```
/// use authz_core::Permission;
/// let p: Permission = "model:run".parse()?;
/// assert_eq!((p.resource(), p.action()), ("model", "run"));
/// assert!("model:run:fast".parse::<Permission>().is_err());
/// # Ok::<(), authz_core::PermissionError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    text: Arc<str>,
    colon: usize,
}

impl Permission {
    /// Parses a concrete permission; wildcards are refused.
    pub fn parse(input: &str) -> Result<Self, PermissionError> {
        let parsed = grammar::parse(input, false).map_err(|e| PermissionError::new(input, e))?;
        Ok(Self {
            text: Arc::from(input),
            colon: parsed.colon,
        })
    }

    /// The resource part (before the `:`).
    pub fn resource(&self) -> &str {
        &self.text[..self.colon]
    }

    /// The action part (after the `:`).
    pub fn action(&self) -> &str {
        &self.text[self.colon + 1..]
    }

    /// The whole permission, `resource:action`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({:?})", &*self.text)
    }
}

/// A role grant: a concrete permission or `resource:*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grant {
    /// One permission.
    One(Permission),
    /// Every action of `resource` that the catalog declares.
    AllActions(String),
}

impl Grant {
    /// Parses a grant; `resource:*` is allowed here (and only here).
    pub fn parse(input: &str) -> Result<Self, PermissionError> {
        let parsed = grammar::parse(input, true).map_err(|e| PermissionError::new(input, e))?;
        if parsed.wildcard {
            Ok(Grant::AllActions(input[..parsed.colon].to_string()))
        } else {
            Ok(Grant::One(Permission {
                text: Arc::from(input),
                colon: parsed.colon,
            }))
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::One(p) => p.fmt(f),
            Grant::AllActions(r) => write!(f, "{r}:*"),
        }
    }
}

/// A permission string that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionError {
    input: String,
    error: grammar::GrammarError,
}

impl PermissionError {
    fn new(input: &str, error: grammar::GrammarError) -> Self {
        // Cap what we echo: the input may come from a token or a file.
        let input: String = input.chars().take(128).collect();
        Self { input, error }
    }

    /// Byte offset of the problem in the input.
    pub fn offset(&self) -> usize {
        self.error.offset
    }

    /// What kind of problem it is.
    pub fn kind(&self) -> &grammar::GrammarErrorKind {
        &self.error.kind
    }
}

impl fmt::Display for PermissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error.message(&self.input))
    }
}

impl std::error::Error for PermissionError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::GrammarErrorKind as K;

    fn kind(s: &str) -> K {
        Permission::parse(s).unwrap_err().kind().clone()
    }

    #[test]
    fn accepts_the_grammar() {
        for ok in [
            "a:b",
            "model:run",
            "data.set:read-all",
            "x1:y_2",
            "report:read_any",
        ] {
            assert!(Permission::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_reason_and_offset() {
        assert_eq!(kind(""), K::Empty);
        assert_eq!(kind("model"), K::MissingColon);
        assert_eq!(kind(":run"), K::EmptyResource);
        assert_eq!(kind("model:"), K::EmptyAction);
        assert_eq!(kind("a:b:c"), K::ExtraColon);
        assert_eq!(Permission::parse("a:b:c").unwrap_err().offset(), 3);
        assert_eq!(kind("model: run"), K::Whitespace(' '));
        assert_eq!(kind("Model:run"), K::Uppercase('M'));
        assert_eq!(kind("1model:run"), K::BadStart('1'));
        assert_eq!(kind("mo$del:run"), K::InvalidChar('$'));
        assert_eq!(kind("model:*"), K::WildcardNotAllowed);
        assert_eq!(kind("model:r*"), K::MisplacedWildcard);
        assert_eq!(kind(&format!("a:{}", "b".repeat(65))), K::TooLong);
        let msg = Permission::parse("a:b:c").unwrap_err().to_string();
        assert!(msg.contains("second `:` at byte 3"), "{msg}");
    }

    #[test]
    fn grants_allow_a_resource_wildcard_only() {
        assert_eq!(
            Grant::parse("model:*").unwrap(),
            Grant::AllActions("model".into())
        );
        assert!(Grant::parse("*:run").is_err());
        assert!(Grant::parse("*:*").is_err());
        assert!(matches!(Grant::parse("model:run").unwrap(), Grant::One(_)));
    }
}
