//! The permission grammar, shared verbatim by the run-time parser (`authz-core`) and the
//! compile-time checks (`authz-macros`, which keeps a byte-identical copy in its own `src/` so
//! that each crate packages on its own; `tests/tests/it/grammar_copy.rs` fails if they differ).
//!
//! This file must stay dependency-free: it is compiled inside the proc-macro crate too.
//!
//! # Grammar
//!
//! ```text
//! permission = part ":" action
//! action     = part | "*"            ; "*" only in grants, never in requirements
//! part       = lower *( lower | digit | "_" | "-" | "." )   ; 1 to 64 characters
//! lower      = "a".."z"
//! digit      = "0".."9"
//! ```
//!
//! Upper-case letters are rejected rather than folded, so that `Data:Read` and `data:read`
//! can never name two different permissions in two different places.

/// Longest accepted resource or action, in bytes.
pub const MAX_PART_LEN: usize = 64;

/// What is wrong with a permission string, and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrammarError {
    /// Byte offset of the offending character (or of the end of input).
    pub offset: usize,
    /// What is wrong.
    pub kind: GrammarErrorKind,
}

/// The kinds of grammar error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrammarErrorKind {
    /// The whole string is empty.
    Empty,
    /// There is no `:` separating resource and action.
    MissingColon,
    /// More than one `:`.
    ExtraColon,
    /// Nothing before the `:`.
    EmptyResource,
    /// Nothing after the `:`.
    EmptyAction,
    /// A whitespace character.
    Whitespace(char),
    /// An upper-case ASCII letter.
    Uppercase(char),
    /// Any other character outside the grammar.
    InvalidChar(char),
    /// A part starts with something other than a lower-case letter.
    BadStart(char),
    /// A part is longer than [`MAX_PART_LEN`].
    TooLong,
    /// `*` somewhere other than as the whole action.
    MisplacedWildcard,
    /// `resource:*` where a concrete permission is required.
    WildcardNotAllowed,
}

impl GrammarError {
    /// A sentence that says what is wrong and where, for people.
    pub fn message(&self, input: &str) -> String {
        let at = self.offset;
        match &self.kind {
            GrammarErrorKind::Empty => "a permission cannot be empty: expected `resource:action`".to_string(),
            GrammarErrorKind::MissingColon => {
                format!("`{input}` has no `:`: a permission is written `resource:action`, e.g. `model:run`")
            }
            GrammarErrorKind::ExtraColon => format!(
                "`{input}` has a second `:` at byte {at}: a permission has exactly one `:` (`resource:action`)"
            ),
            GrammarErrorKind::EmptyResource => {
                format!("`{input}` has an empty resource before the `:`: expected `resource:action`")
            }
            GrammarErrorKind::EmptyAction => {
                format!("`{input}` has an empty action after the `:`: expected `resource:action`")
            }
            GrammarErrorKind::Whitespace(c) => format!(
                "`{input}` contains whitespace ({c:?}) at byte {at}: permissions cannot contain spaces"
            ),
            GrammarErrorKind::Uppercase(c) => format!(
                "`{input}` contains the upper-case letter `{c}` at byte {at}: permissions are lower-case (`{}`)",
                input.to_ascii_lowercase()
            ),
            GrammarErrorKind::InvalidChar(c) => {
                format!("`{input}` contains {c:?} at byte {at}: allowed are `a-z`, `0-9`, `_`, `-` and `.`")
            }
            GrammarErrorKind::BadStart(c) => format!(
                "`{input}` has a part starting with {c:?} at byte {at}: resource and action must start with a letter `a-z`"
            ),
            GrammarErrorKind::TooLong => {
                format!("`{input}` has a part longer than {MAX_PART_LEN} bytes (at byte {at})")
            }
            GrammarErrorKind::MisplacedWildcard => format!(
                "`{input}` has `*` at byte {at}: a wildcard may only stand alone as the action (`resource:*`)"
            ),
            GrammarErrorKind::WildcardNotAllowed => format!(
                "`{input}` is a wildcard: requirements must name one concrete permission; wildcards are only allowed in role grants"
            ),
        }
    }
}

/// A successfully parsed permission string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Byte offset of the `:`.
    pub colon: usize,
    /// Whether the action is the wildcard `*`.
    pub wildcard: bool,
}

fn check_part(input: &str, start: usize, part: &str, allow_wildcard: bool) -> Result<bool, GrammarError> {
    if allow_wildcard && part == "*" {
        return Ok(true);
    }
    if part.len() > MAX_PART_LEN {
        return Err(GrammarError {
            offset: start + MAX_PART_LEN,
            kind: GrammarErrorKind::TooLong,
        });
    }
    let _ = input;
    for (i, c) in part.char_indices() {
        let offset = start + i;
        let kind = if c.is_whitespace() {
            Some(GrammarErrorKind::Whitespace(c))
        } else if c == '*' {
            Some(GrammarErrorKind::MisplacedWildcard)
        } else if c.is_ascii_uppercase() {
            Some(GrammarErrorKind::Uppercase(c))
        } else if i == 0 && !c.is_ascii_lowercase() {
            if c.is_ascii_digit() || c == '_' || c == '-' || c == '.' {
                Some(GrammarErrorKind::BadStart(c))
            } else {
                Some(GrammarErrorKind::InvalidChar(c))
            }
        } else if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c == '.') {
            Some(GrammarErrorKind::InvalidChar(c))
        } else {
            None
        };
        if let Some(kind) = kind {
            return Err(GrammarError { offset, kind });
        }
    }
    Ok(false)
}

/// Parses `input` as a permission or, when `allow_wildcard`, as a grant (`resource:*` allowed).
pub fn parse(input: &str, allow_wildcard: bool) -> Result<Parsed, GrammarError> {
    if input.is_empty() {
        return Err(GrammarError {
            offset: 0,
            kind: GrammarErrorKind::Empty,
        });
    }
    // Whitespace anywhere is reported first: it is the most common copy-paste mistake.
    if let Some((i, c)) = input.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(GrammarError {
            offset: i,
            kind: GrammarErrorKind::Whitespace(c),
        });
    }
    let Some(colon) = input.find(':') else {
        return Err(GrammarError {
            offset: input.len(),
            kind: GrammarErrorKind::MissingColon,
        });
    };
    if let Some(second) = input[colon + 1..].find(':') {
        return Err(GrammarError {
            offset: colon + 1 + second,
            kind: GrammarErrorKind::ExtraColon,
        });
    }
    let (resource, action) = (&input[..colon], &input[colon + 1..]);
    if resource.is_empty() {
        return Err(GrammarError {
            offset: 0,
            kind: GrammarErrorKind::EmptyResource,
        });
    }
    if action.is_empty() {
        return Err(GrammarError {
            offset: colon + 1,
            kind: GrammarErrorKind::EmptyAction,
        });
    }
    check_part(input, 0, resource, false)?;
    let wildcard = check_part(input, colon + 1, action, true)?;
    if wildcard && !allow_wildcard {
        return Err(GrammarError {
            offset: colon + 1,
            kind: GrammarErrorKind::WildcardNotAllowed,
        });
    }
    Ok(Parsed { colon, wildcard })
}

/// The Rust constant name a catalog gives a permission: `model:run` → `MODEL_RUN`.
///
/// `:`, `-` and `.` all become `_`, so `data:read-all` and `data:read_all` collide; the catalog
/// declaration rejects such pairs.
pub fn const_name(permission: &str) -> String {
    permission
        .chars()
        .map(|c| match c {
            ':' | '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// A stable 64-bit fingerprint of an ordered list of permission names (FNV-1a), so that a
/// permission set built from one catalog is never checked against another catalog's indices.
pub fn fingerprint<'a>(names: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for b in name.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `input`, if one is close enough to be a plausible typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Checks a role name: 1 to 128 characters, none of them whitespace or control characters.
pub fn check_role_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a role name cannot be empty".to_string());
    }
    if name.len() > 128 {
        return Err(format!("role name `{name}` is longer than 128 bytes"));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "role name `{name}` contains {c:?} at byte {i}: role names cannot contain whitespace or control characters"
        ));
    }
    Ok(())
}
