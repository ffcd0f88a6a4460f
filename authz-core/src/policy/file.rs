//! The TOML policy file.
//!
//! ```toml
//! [roles.viewer]
//! description = "Read-only access to datasets"
//! grants = ["data:read"]
//!
//! [roles.analyst]
//! inherits = ["viewer"]
//! grants = ["model:run", "report:create"]
//!
//! [[separation_of_duties]]
//! permissions = ["payment:initiate", "payment:approve"]
//! reason = "whoever initiates a payment may not approve it"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::{Constraint, Policy, PolicyError, Problem, ProblemKind, RoleSpec};
use crate::catalog::PermissionCatalog;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RoleFile>>,
    #[serde(default)]
    separation_of_duties: Vec<Spanned<ConstraintFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    inherits: Vec<Spanned<String>>,
    #[serde(default)]
    grants: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintFile {
    permissions: Vec<String>,
    #[serde(default)]
    reason: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Policy {
    /// Loads a policy file and validates it against `catalog`.
    pub fn from_toml_file(
        path: impl AsRef<Path>,
        catalog: Arc<PermissionCatalog>,
    ) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            PolicyError::new(
                Some(path.to_path_buf()),
                vec![Problem {
                    line: None,
                    role: None,
                    kind: ProblemKind::Syntax(format!("cannot read the file: {e}")),
                }],
            )
        })?;
        Self::from_toml_str(&text, catalog, Some(path.to_path_buf()))
    }

    /// Parses a policy from TOML text; `source` names the file in error messages.
    pub fn from_toml_str(
        text: &str,
        catalog: Arc<PermissionCatalog>,
        source: Option<PathBuf>,
    ) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().to_string();
            PolicyError::new(
                source.clone(),
                vec![Problem {
                    line,
                    role: None,
                    kind: ProblemKind::Syntax(message),
                }],
            )
        })?;
        let mut builder = Policy::builder(catalog);
        builder.source = source.clone();
        let mut problems = Vec::new();
        for (name, role) in file.roles {
            let line = line_of(text, role.span().start);
            let role = role.into_inner();
            let mut spec = RoleSpec::new(name);
            spec.line = Some(line);
            spec.description = role.description;
            for g in role.grants {
                spec.grant_lines.push(Some(line_of(text, g.span().start)));
                spec.grants.push(g.into_inner());
            }
            for r in role.inherits {
                spec.inherit_lines.push(Some(line_of(text, r.span().start)));
                spec.inherits.push(r.into_inner());
            }
            builder.roles.push(spec);
        }
        for c in file.separation_of_duties {
            let line = Some(line_of(text, c.span().start));
            let c = c.into_inner();
            if c.permissions.len() != 2 {
                problems.push(Problem {
                    line,
                    role: None,
                    kind: ProblemKind::InvalidConstraint(format!(
                        "`permissions` must list exactly two permissions, found {}",
                        c.permissions.len()
                    )),
                });
                continue;
            }
            let mut it = c.permissions.into_iter();
            let (first, second) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
            builder.constraints.push(Constraint {
                first,
                second,
                reason: c.reason,
                line,
            });
        }
        if !problems.is_empty() {
            return Err(PolicyError::new(source, problems));
        }
        builder.build()
    }

    /// The policy as a TOML document that [`Policy::from_toml_str`] reads back (roles sorted by
    /// name, grants and inheritance as declared).
    pub fn to_toml(&self) -> String {
        fn list(items: &[String]) -> String {
            let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
            format!("[{}]", quoted.join(", "))
        }
        let mut out = String::new();
        // Roles sorted by name: the canonical form does not depend on declaration order.
        let mut roles: Vec<_> = self.roles.iter().collect();
        roles.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for role in roles {
            let spec = &role.spec;
            out.push_str(&format!("[roles.{}]\n", toml_string(&spec.name)));
            if let Some(d) = &spec.description {
                out.push_str(&format!("description = {}\n", toml_string(d)));
            }
            if !spec.inherits.is_empty() {
                out.push_str(&format!("inherits = {}\n", list(&spec.inherits)));
            }
            out.push_str(&format!("grants = {}\n\n", list(&spec.grants)));
        }
        for c in &self.constraints {
            out.push_str("[[separation_of_duties]]\n");
            out.push_str(&format!(
                "permissions = {}\n",
                list(&[c.first.clone(), c.second.clone()])
            ));
            if let Some(r) = &c.reason {
                out.push_str(&format!("reason = {}\n", toml_string(r)));
            }
            out.push('\n');
        }
        out
    }
}

fn toml_string(s: &str) -> String {
    // A basic TOML string with every character that needs it escaped.
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
