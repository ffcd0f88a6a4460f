//! Policy load errors: every problem names the file, the line where known, the role and the
//! permission, and a policy with any problem does not load at all.

use std::fmt;
use std::path::PathBuf;

use crate::permission::PermissionError;

/// A policy that failed to load, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub(crate) source: Option<PathBuf>,
    pub(crate) problems: Vec<Problem>,
}

impl PolicyError {
    pub(crate) fn new(source: Option<PathBuf>, problems: Vec<Problem>) -> Self {
        Self { source, problems }
    }

    /// The file the policy came from, if it came from a file.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.source.as_deref()
    }

    /// Every problem found, in file order where possible.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        let origin = match &self.source {
            Some(p) => p.display().to_string(),
            None => "policy (built in code)".to_string(),
        };
        write!(
            f,
            "{origin}: the policy was not loaded ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            f.write_str("\n  ")?;
            if let (Some(path), Some(line)) = (&self.source, p.line) {
                write!(f, "{}:{line}: ", path.display())?;
            } else if let Some(line) = p.line {
                write!(f, "line {line}: ")?;
            }
            if let Some(role) = &p.role {
                write!(f, "role `{role}`: ")?;
            }
            write!(f, "{}", p.kind)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// One problem in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the policy file, where known.
    pub line: Option<usize>,
    /// The role the problem is in, if any.
    pub role: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file is not valid TOML, or not the policy schema.
    Syntax(String),
    /// A role name is not acceptable.
    InvalidRoleName(String),
    /// Two roles share a name.
    DuplicateRole,
    /// A grant does not follow the grammar.
    InvalidGrant(PermissionError),
    /// A grant names a permission the catalog does not declare.
    UnknownPermission {
        /// The permission as written.
        permission: String,
        /// The closest declared permission.
        suggestion: Option<String>,
    },
    /// `resource:*` where the catalog declares no action for `resource`.
    UnknownResource(String),
    /// The same grant twice in one role.
    DuplicateGrant(String),
    /// An inherited role that does not exist.
    UnknownRole {
        /// The role as written.
        name: String,
        /// The closest existing role.
        suggestion: Option<String>,
    },
    /// The same role inherited twice.
    DuplicateInherit(String),
    /// Roles inherit from each other in a cycle (the names, first repeated last).
    Cycle(Vec<String>),
    /// A separation-of-duty pair is not two distinct declared permissions.
    InvalidConstraint(String),
    /// A role holds both sides of a separation-of-duty pair.
    SeparationOfDuties {
        /// One side, with the inheritance path that grants it.
        first: (String, Vec<String>),
        /// The other side, with its path.
        second: (String, Vec<String>),
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::Syntax(m) => write!(f, "{m}"),
            ProblemKind::InvalidRoleName(m) => write!(f, "{m}"),
            ProblemKind::DuplicateRole => write!(f, "is declared more than once"),
            ProblemKind::InvalidGrant(e) => write!(f, "invalid grant: {e}"),
            ProblemKind::UnknownPermission {
                permission,
                suggestion,
            } => {
                write!(
                    f,
                    "grants `{permission}`, which the permission catalog does not declare"
                )?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                Ok(())
            }
            ProblemKind::UnknownResource(r) => {
                write!(
                    f,
                    "grants `{r}:*`, but the catalog declares no permission of resource `{r}`"
                )
            }
            ProblemKind::DuplicateGrant(g) => write!(f, "grants `{g}` twice"),
            ProblemKind::UnknownRole { name, suggestion } => {
                write!(f, "inherits `{name}`, which is not a role of this policy")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                Ok(())
            }
            ProblemKind::DuplicateInherit(r) => write!(f, "inherits `{r}` twice"),
            ProblemKind::Cycle(path) => write!(f, "inheritance cycle: {}", path.join(" → ")),
            ProblemKind::InvalidConstraint(m) => write!(f, "separation of duties: {m}"),
            ProblemKind::SeparationOfDuties { first, second } => write!(
                f,
                "holds both `{}` (via {}) and `{}` (via {}), which separation of duties forbids in one role",
                first.0,
                first.1.join(" → "),
                second.0,
                second.1.join(" → ")
            ),
        }
    }
}
