//! Roles and policy: role → permissions, with multiple inheritance, `resource:*` grants,
//! separation-of-duty constraints and least-privilege reports.
//!
//! A [`Policy`] is built from a [`PolicyBuilder`] (in code) or a TOML file ([`Policy::from_toml_str`],
//! [`Policy::from_toml_file`]) and is always validated against the compiled
//! [`PermissionCatalog`]: a policy with any problem does not load at all.

mod error;
mod file;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::{PolicyError, Problem, ProblemKind};

use crate::catalog::{PermissionCatalog, PermissionId};
use crate::grammar;
use crate::permission::Grant;
use crate::set::PermissionSet;

/// One role as declared (before validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSpec {
    name: String,
    inherits: Vec<String>,
    grants: Vec<String>,
    description: Option<String>,
    // 1-based lines, when the role came from a file.
    line: Option<usize>,
    inherit_lines: Vec<Option<usize>>,
    grant_lines: Vec<Option<usize>>,
}

impl RoleSpec {
    /// A role named `name` with no grants.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            inherits: Vec::new(),
            grants: Vec::new(),
            description: None,
            line: None,
            inherit_lines: Vec::new(),
            grant_lines: Vec::new(),
        }
    }

    /// Inherits every permission of `role`.
    pub fn inherits(mut self, role: impl Into<String>) -> Self {
        self.inherits.push(role.into());
        self.inherit_lines.push(None);
        self
    }

    /// Grants `permission` (`resource:action`, or `resource:*` for every declared action).
    pub fn grant(mut self, permission: impl Into<String>) -> Self {
        self.grants.push(permission.into());
        self.grant_lines.push(None);
        self
    }

    /// Grants each of `permissions`.
    pub fn grants<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for p in permissions {
            self = self.grant(p);
        }
        self
    }

    /// A human description (kept in the TOML form).
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// A separation-of-duty constraint: no role may hold both permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// One side.
    pub first: String,
    /// The other side.
    pub second: String,
    /// Why they must stay apart (documentation only).
    pub reason: Option<String>,
    line: Option<usize>,
}

/// Builds a [`Policy`] in code.
///
/// ```
/// use std::sync::Arc;
/// use authz_core::{PermissionCatalog, Policy, RoleSpec};
///
/// let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run", "payment:initiate", "payment:approve"])?);
/// let policy = Policy::builder(catalog)
///     .role(RoleSpec::new("viewer").grant("data:read"))
///     .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
///     .role(RoleSpec::new("clerk").grant("payment:initiate"))
///     .separation_of_duties("payment:initiate", "payment:approve")
///     .build()?;
/// assert!(policy.resolve(["analyst"]).contains_name("data:read"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PolicyBuilder {
    catalog: Arc<PermissionCatalog>,
    roles: Vec<RoleSpec>,
    constraints: Vec<Constraint>,
    source: Option<PathBuf>,
}

impl PolicyBuilder {
    /// Adds a role.
    pub fn role(mut self, role: RoleSpec) -> Self {
        self.roles.push(role);
        self
    }

    /// Declares that no role may hold both `first` and `second`.
    pub fn separation_of_duties(self, first: impl Into<String>, second: impl Into<String>) -> Self {
        self.constraint(Constraint {
            first: first.into(),
            second: second.into(),
            reason: None,
            line: None,
        })
    }

    /// Adds a constraint.
    pub fn constraint(mut self, constraint: Constraint) -> Self {
        self.constraints.push(constraint);
        self
    }

    /// Validates everything and builds the policy, or reports every problem found.
    pub fn build(self) -> Result<Policy, PolicyError> {
        Policy::validate(self)
    }
}

#[derive(Debug, Clone)]
struct RoleEntry {
    spec: RoleSpec,
    inherits: Vec<usize>,
    direct: PermissionSet,
    effective: PermissionSet,
    /// This role and every role it inherits from, transitively.
    closure: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    first: PermissionId,
    second: PermissionId,
}

/// A validated set of roles over one [`PermissionCatalog`].
#[derive(Debug, Clone)]
pub struct Policy {
    catalog: Arc<PermissionCatalog>,
    roles: Vec<RoleEntry>,
    by_name: HashMap<String, usize>,
    constraints: Vec<Constraint>,
    pairs: Vec<Pair>,
    source: Option<PathBuf>,
    resolved: Arc<RoleSetCache>,
}

/// Most distinct role sets whose resolution is kept.
const ROLE_SET_CACHE_ENTRIES: usize = 4096;

/// Resolutions by distinct role list (as presented, in order).
struct RoleSetCache(quick_cache::sync::Cache<RoleKey, Arc<Resolution>>);

impl fmt::Debug for RoleSetCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleSetCache({} entries)", self.0.len())
    }
}

#[derive(PartialEq, Eq)]
struct RoleKey(Box<[Box<str>]>);

impl std::hash::Hash for RoleKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for r in &self.0 {
            r.hash(state);
        }
    }
}

/// Looks a `&[S]` up without building a [`RoleKey`].
struct RoleQuery<'a, S>(&'a [S]);

impl<S: AsRef<str>> std::hash::Hash for RoleQuery<'_, S> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.0.len());
        for r in self.0 {
            r.as_ref().hash(state);
        }
    }
}

impl<S: AsRef<str>> quick_cache::Equivalent<RoleKey> for RoleQuery<'_, S> {
    fn equivalent(&self, key: &RoleKey) -> bool {
        key.0.len() == self.0.len() && key.0.iter().zip(self.0).all(|(k, q)| **k == *q.as_ref())
    }
}

/// The permissions and effective roles of a list of role names.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The effective permissions.
    pub permissions: PermissionSet,
    /// Names of the roles held, directly or by inheritance, that the policy knows.
    pub effective_roles: Vec<Arc<str>>,
    /// Separation-of-duty pairs the role combination violated; both sides were withheld.
    pub withheld: Vec<(String, String)>,
    catalog: Arc<PermissionCatalog>,
}

impl Resolution {
    /// Whether the resolution grants the permission named `name`.
    pub fn contains_name(&self, name: &str) -> bool {
        self.catalog
            .id(name)
            .is_some_and(|id| self.permissions.contains(id))
    }
}

impl Policy {
    /// Starts a policy over `catalog`.
    pub fn builder(catalog: Arc<PermissionCatalog>) -> PolicyBuilder {
        PolicyBuilder {
            catalog,
            roles: Vec::new(),
            constraints: Vec::new(),
            source: None,
        }
    }

    /// The catalog this policy was validated against.
    pub fn catalog(&self) -> &Arc<PermissionCatalog> {
        &self.catalog
    }

    /// The file this policy was loaded from, if any.
    pub fn source(&self) -> Option<&std::path::Path> {
        self.source.as_deref()
    }

    /// Names of every role, in declaration order.
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.spec.name.as_str())
    }

    /// Whether a role of that name exists.
    pub fn has_role(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The effective permissions of one role (with inheritance), if it exists.
    pub fn role_permissions(&self, name: &str) -> Option<&PermissionSet> {
        self.by_name.get(name).map(|&i| &self.roles[i].effective)
    }

    /// The separation-of-duty constraints.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// Resolves the roles a principal presents into its effective permissions.
    ///
    /// Unknown role names grant nothing (an identity provider may send roles meant for other
    /// services). If the *combination* of roles holds both sides of a separation-of-duty pair,
    /// both sides are withheld (fail closed) and reported in [`Resolution::withheld`].
    pub fn resolve<I, S>(&self, roles: I) -> Resolution
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut permissions = PermissionSet::empty(&self.catalog);
        let mut seen = SmallBits::default();
        let mut effective_roles = Vec::new();
        for name in roles {
            if let Some(&i) = self.by_name.get(name.as_ref()) {
                permissions.union_with(&self.roles[i].effective);
                for &r in &self.roles[i].closure {
                    if seen.insert(r) {
                        effective_roles.push(Arc::from(self.roles[r].spec.name.as_str()));
                    }
                }
            }
        }
        let mut withheld = Vec::new();
        for pair in &self.pairs {
            if permissions.contains(pair.first) && permissions.contains(pair.second) {
                withheld.push((
                    self.catalog.name(pair.first).to_string(),
                    self.catalog.name(pair.second).to_string(),
                ));
            }
        }
        if !withheld.is_empty() {
            for (a, b) in &withheld {
                permissions = without(&permissions, self.catalog.id(a));
                permissions = without(&permissions, self.catalog.id(b));
            }
        }
        Resolution {
            permissions,
            effective_roles,
            withheld,
            catalog: self.catalog.clone(),
        }
    }

    /// Enforces separation of duties on a finished permission set (roles plus whatever a
    /// credential granted directly): for every constraint whose both sides are in `set`, both
    /// are removed. Returns the violated pairs, by name.
    pub fn withhold_separated(&self, set: &mut PermissionSet) -> Vec<(String, String)> {
        let violated: Vec<&Pair> = self
            .pairs
            .iter()
            .filter(|p| set.contains(p.first) && set.contains(p.second))
            .collect();
        for pair in &violated {
            set.remove(pair.first);
            set.remove(pair.second);
        }
        violated
            .iter()
            .map(|p| {
                (
                    self.catalog.name(p.first).to_string(),
                    self.catalog.name(p.second).to_string(),
                )
            })
            .collect()
    }

    /// Like [`Policy::resolve`], but each distinct role list is resolved once and then shared:
    /// a principal's roles cost one hash lookup (bounded cache of 4096 role sets; beyond that,
    /// resolutions are computed without being kept).
    pub fn resolve_cached<S: AsRef<str>>(&self, roles: &[S]) -> Arc<Resolution> {
        if let Some(r) = self.resolved.0.get(&RoleQuery(roles)) {
            return r;
        }
        let resolution = Arc::new(self.resolve(roles));
        if self.resolved.0.len() < ROLE_SET_CACHE_ENTRIES {
            let key = RoleKey(roles.iter().map(|r| Box::from(r.as_ref())).collect());
            self.resolved.0.insert(key, resolution.clone());
        }
        resolution
    }

    /// Which of `roles` grant `permission`, and through which inheritance path.
    pub fn explain<I, S>(&self, roles: I, permission: &str) -> Explanation
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut via = Vec::new();
        if let Some(id) = self.catalog.id(permission) {
            for name in roles {
                if let Some(&i) = self.by_name.get(name.as_ref())
                    && let Some(path) = self.path_to(i, id)
                {
                    via.push(path);
                }
            }
        }
        let granted = !via.is_empty() && {
            let names: Vec<&str> = via.iter().map(|p| p[0].as_str()).collect();
            self.resolve(names).contains_name(permission)
        };
        Explanation {
            permission: permission.to_string(),
            granted,
            via,
        }
    }

    /// Least-privilege report: roles whose effective permissions duplicate, or strictly
    /// contain, another role's.
    pub fn redundant_roles(&self) -> Vec<Redundancy> {
        let mut out = Vec::new();
        for (i, a) in self.roles.iter().enumerate() {
            for (j, b) in self.roles.iter().enumerate() {
                if i == j {
                    continue;
                }
                if a.effective == b.effective {
                    if i < j {
                        out.push(Redundancy::Duplicate {
                            role: b.spec.name.clone(),
                            of: a.spec.name.clone(),
                        });
                    }
                } else if a.effective.is_superset(&b.effective) && !b.effective.is_empty() {
                    out.push(Redundancy::Superset {
                        role: a.spec.name.clone(),
                        of: b.spec.name.clone(),
                        inherits: a.closure.contains(&j),
                    });
                }
            }
        }
        out
    }

    /// The shortest inheritance path from role `from` to a role that grants `id` directly.
    fn path_to(&self, from: usize, id: PermissionId) -> Option<Vec<String>> {
        let mut prev: HashMap<usize, usize> = HashMap::new();
        let mut queue = VecDeque::from([from]);
        let mut seen = HashSet::from([from]);
        while let Some(r) = queue.pop_front() {
            if self.roles[r].direct.contains(id) {
                let mut path = vec![self.roles[r].spec.name.clone()];
                let mut cur = r;
                while let Some(&p) = prev.get(&cur) {
                    path.push(self.roles[p].spec.name.clone());
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            for &parent in &self.roles[r].inherits {
                if seen.insert(parent) {
                    prev.insert(parent, r);
                    queue.push_back(parent);
                }
            }
        }
        None
    }

    fn validate(builder: PolicyBuilder) -> Result<Policy, PolicyError> {
        let PolicyBuilder {
            catalog,
            roles: specs,
            constraints,
            source,
        } = builder;
        let mut problems = Vec::new();
        let problem = |line, role: Option<&str>, kind| Problem {
            line,
            role: role.map(str::to_string),
            kind,
        };

        // Names.
        let mut by_name = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if let Err(m) = grammar::check_role_name(&spec.name) {
                problems.push(problem(spec.line, None, ProblemKind::InvalidRoleName(m)));
            }
            if by_name.insert(spec.name.clone(), i).is_some() {
                problems.push(problem(spec.line, Some(&spec.name), ProblemKind::DuplicateRole));
            }
        }

        // Grants and inheritance edges.
        let mut entries = Vec::with_capacity(specs.len());
        for spec in &specs {
            let mut direct = PermissionSet::empty(&catalog);
            let mut seen_grants = HashSet::new();
            for (g, line) in spec.grants.iter().zip(&spec.grant_lines) {
                let role = Some(spec.name.as_str());
                if !seen_grants.insert(g.as_str()) {
                    problems.push(problem(*line, role, ProblemKind::DuplicateGrant(g.clone())));
                    continue;
                }
                match Grant::parse(g) {
                    Err(e) => problems.push(problem(*line, role, ProblemKind::InvalidGrant(e))),
                    Ok(Grant::One(p)) => match catalog.id(p.as_str()) {
                        Some(id) => direct.insert(id),
                        None => problems.push(problem(
                            *line,
                            role,
                            ProblemKind::UnknownPermission {
                                permission: g.clone(),
                                suggestion: catalog.suggest(g).map(str::to_string),
                            },
                        )),
                    },
                    Ok(Grant::AllActions(resource)) => {
                        let mut any = false;
                        for id in catalog.actions_of(&resource) {
                            direct.insert(id);
                            any = true;
                        }
                        if !any {
                            problems.push(problem(*line, role, ProblemKind::UnknownResource(resource)));
                        }
                    }
                }
            }
            let mut inherits = Vec::new();
            let mut seen_inherits = HashSet::new();
            for (parent, line) in spec.inherits.iter().zip(&spec.inherit_lines) {
                let role = Some(spec.name.as_str());
                if !seen_inherits.insert(parent.as_str()) {
                    problems.push(problem(
                        *line,
                        role,
                        ProblemKind::DuplicateInherit(parent.clone()),
                    ));
                    continue;
                }
                match by_name.get(parent) {
                    Some(&p) => inherits.push(p),
                    None => problems.push(problem(
                        *line,
                        role,
                        ProblemKind::UnknownRole {
                            name: parent.clone(),
                            suggestion: grammar::closest(parent, specs.iter().map(|s| s.name.as_str()))
                                .map(str::to_string),
                        },
                    )),
                }
            }
            entries.push(RoleEntry {
                spec: spec.clone(),
                inherits,
                effective: direct.clone(),
                direct,
                closure: Vec::new(),
            });
        }

        // Cycles.
        if let Some(cycle) = find_cycle(&entries) {
            let first = &entries[cycle[0]];
            problems.push(problem(
                first.spec.line,
                Some(&first.spec.name),
                ProblemKind::Cycle(cycle.iter().map(|&i| entries[i].spec.name.clone()).collect()),
            ));
        }

        // Constraints.
        let mut pairs = Vec::new();
        for c in &constraints {
            let ids = (catalog.id(&c.first), catalog.id(&c.second));
            match ids {
                (Some(a), Some(b)) if a != b => pairs.push(Pair { first: a, second: b }),
                (Some(_), Some(_)) => problems.push(problem(
                    c.line,
                    None,
                    ProblemKind::InvalidConstraint(format!("`{}` is paired with itself", c.first)),
                )),
                _ => {
                    for name in [&c.first, &c.second] {
                        if catalog.id(name).is_none() {
                            let hint = catalog
                                .suggest(name)
                                .map(|s| format!(" (did you mean `{s}`?)"))
                                .unwrap_or_default();
                            problems.push(problem(
                                c.line,
                                None,
                                ProblemKind::InvalidConstraint(format!(
                                    "`{name}` is not declared in the permission catalog{hint}"
                                )),
                            ));
                        }
                    }
                }
            }
        }

        if !problems.is_empty() {
            return Err(PolicyError::new(source, problems));
        }

        // Closure (no cycles now): effective = direct ∪ effective of every ancestor.
        for i in 0..entries.len() {
            let closure = ancestors(&entries, i);
            let mut effective = PermissionSet::empty(&catalog);
            for &r in &closure {
                effective.union_with(&entries[r].direct);
            }
            entries[i].effective = effective;
            entries[i].closure = closure;
        }

        let mut policy = Policy {
            catalog,
            roles: entries,
            by_name,
            constraints,
            pairs,
            source,
            resolved: Arc::new(RoleSetCache(quick_cache::sync::Cache::new(
                ROLE_SET_CACHE_ENTRIES,
            ))),
        };

        // Separation of duties, role by role, naming the path to each side.
        let mut problems = Vec::new();
        for (i, role) in policy.roles.iter().enumerate() {
            for pair in &policy.pairs {
                if role.effective.contains(pair.first) && role.effective.contains(pair.second) {
                    let a = policy.path_to(i, pair.first).unwrap_or_default();
                    let b = policy.path_to(i, pair.second).unwrap_or_default();
                    problems.push(Problem {
                        line: role.spec.line,
                        role: Some(role.spec.name.clone()),
                        kind: ProblemKind::SeparationOfDuties {
                            first: (policy.catalog.name(pair.first).to_string(), a),
                            second: (policy.catalog.name(pair.second).to_string(), b),
                        },
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::new(policy.source.take(), problems));
        }
        Ok(policy)
    }
}

fn without(set: &PermissionSet, id: Option<PermissionId>) -> PermissionSet {
    let mut out = set.clone();
    if let Some(id) = id {
        out.remove(id);
    }
    out
}

/// Every role reachable from `i` through inheritance, `i` first.
fn ancestors(entries: &[RoleEntry], i: usize) -> Vec<usize> {
    let mut out = vec![i];
    let mut k = 0;
    while k < out.len() {
        for &p in &entries[out[k]].inherits {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        k += 1;
    }
    out
}

/// A cycle in the inheritance graph, as role indices with the first repeated last.
fn find_cycle(entries: &[RoleEntry]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        entries: &[RoleEntry],
        i: usize,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Active;
        stack.push(i);
        for &p in &entries[i].inherits {
            match marks[p] {
                Mark::Active => {
                    let start = stack.iter().position(|&s| s == p).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(p);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(entries, p, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; entries.len()];
    for i in 0..entries.len() {
        if marks[i] == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(entries, i, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

/// A small growable bitset of role indices (no allocation for the first 128 roles).
#[derive(Default)]
struct SmallBits {
    words: smallvec::SmallVec<[u64; 2]>,
}

impl SmallBits {
    fn insert(&mut self, i: usize) -> bool {
        let w = i / 64;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (i % 64);
        let new = self.words[w] & bit == 0;
        self.words[w] |= bit;
        new
    }
}

/// Why a principal has (or lacks) a permission: see [`Policy::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The permission asked about.
    pub permission: String,
    /// Whether the roles grant it (after separation-of-duty withholding).
    pub granted: bool,
    /// One inheritance path per granting role: the role held first, the granting role last.
    pub via: Vec<Vec<String>>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.via.is_empty() {
            return write!(f, "`{}` is granted by none of the roles held", self.permission);
        }
        let paths: Vec<String> = self.via.iter().map(|p| p.join(" → ")).collect();
        let verdict = if self.granted {
            "granted"
        } else {
            "withheld (separation of duties)"
        };
        write!(f, "`{}` {verdict} via {}", self.permission, paths.join("; "))
    }
}

/// A least-privilege finding from [`Policy::redundant_roles`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redundancy {
    /// `role` grants exactly what `of` grants.
    Duplicate {
        /// The later role.
        role: String,
        /// The earlier role.
        of: String,
    },
    /// `role` grants everything `of` grants, and more.
    Superset {
        /// The larger role.
        role: String,
        /// The smaller role.
        of: String,
        /// Whether `role` gets this by inheriting `of` (expected) or by repeating its grants.
        inherits: bool,
    },
}
