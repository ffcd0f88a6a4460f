//! The permission catalog: every permission an application knows, each with a dense index.
//!
//! Applications declare their catalog once, at compile time, with the `catalog!` macro of
//! `authz-axum` (which implements [`Catalog`]); the run-time [`PermissionCatalog`] built from it
//! is what policies are validated against.

use std::collections::HashMap;
use std::fmt;

use crate::grammar;
use crate::permission::{Permission, PermissionError};

/// The dense index of a permission in its catalog.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PermissionId(u32);

impl PermissionId {
    /// The id with index `index`. Only meaningful for the catalog that issued it.
    pub const fn new(index: usize) -> Self {
        Self(index as u32)
    }

    /// The index.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A catalog declared in Rust at compile time (implemented by the `catalog!` macro).
pub trait Catalog: Send + Sync + 'static {
    /// The permissions, in index order.
    const PERMISSIONS: &'static [&'static str];
    /// Roles declared in code (checked by `#[require_role]`); may be empty.
    const ROLES: &'static [&'static str];
    /// [`grammar::fingerprint`] of [`Catalog::PERMISSIONS`].
    const FINGERPRINT: u64;

    /// The run-time catalog (built once, then shared).
    fn catalog() -> &'static PermissionCatalog;
}

/// A validated list of permissions with dense indices.
#[derive(Clone)]
pub struct PermissionCatalog {
    permissions: Vec<Permission>,
    roles: Vec<String>,
    by_name: HashMap<String, PermissionId>,
    fingerprint: u64,
}

impl PermissionCatalog {
    /// Builds a catalog; every name must follow the grammar and appear once.
    pub fn new<I, S>(permissions: I) -> Result<Self, CatalogError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        let mut by_name = HashMap::new();
        let mut by_const: HashMap<String, String> = HashMap::new();
        for name in permissions {
            let name = name.as_ref();
            let permission = Permission::parse(name).map_err(CatalogError::Grammar)?;
            if by_name
                .insert(name.to_string(), PermissionId::new(list.len()))
                .is_some()
            {
                return Err(CatalogError::Duplicate(name.to_string()));
            }
            if let Some(other) = by_const.insert(grammar::const_name(name), name.to_string()) {
                return Err(CatalogError::Collision(other, name.to_string()));
            }
            list.push(permission);
        }
        let fingerprint = grammar::fingerprint(list.iter().map(Permission::as_str));
        Ok(Self {
            permissions: list,
            roles: Vec::new(),
            by_name,
            fingerprint,
        })
    }

    /// The run-time form of a compile-time [`Catalog`].
    pub fn from_static<C: Catalog>() -> Self {
        let mut catalog = Self::new(C::PERMISSIONS)
            .expect("the catalog! macro validated these permissions at compile time");
        catalog.roles = C::ROLES.iter().map(|r| r.to_string()).collect();
        debug_assert_eq!(catalog.fingerprint, C::FINGERPRINT);
        catalog
    }

    /// Roles declared with the catalog (may be empty).
    pub fn declared_roles(&self) -> &[String] {
        &self.roles
    }

    /// The id of `name`, if declared.
    pub fn id(&self, name: &str) -> Option<PermissionId> {
        self.by_name.get(name).copied()
    }

    /// The permission with index `id`.
    pub fn permission(&self, id: PermissionId) -> Option<&Permission> {
        self.permissions.get(id.index())
    }

    /// Name of permission `id` (or `"<unknown>"`).
    pub fn name(&self, id: PermissionId) -> &str {
        self.permission(id).map_or("<unknown>", Permission::as_str)
    }

    /// Every permission, in index order.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    /// Ids of every action declared for `resource`.
    pub fn actions_of(&self, resource: &str) -> impl Iterator<Item = PermissionId> + '_ {
        let resource = resource.to_string();
        self.permissions
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.resource() == resource)
            .map(|(i, _)| PermissionId::new(i))
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        self.permissions.len()
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.permissions.is_empty()
    }

    /// The catalog's fingerprint (see [`grammar::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The declared permission closest to `name`, for "did you mean" messages.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        grammar::closest(name, self.permissions.iter().map(Permission::as_str))
    }
}

impl fmt::Debug for PermissionCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.permissions.iter().map(Permission::as_str))
            .finish()
    }
}

/// Why a catalog could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A name does not follow the grammar.
    #[error("invalid permission in catalog: {0}")]
    Grammar(PermissionError),
    /// A name appears twice.
    #[error("permission `{0}` is declared twice in the catalog")]
    Duplicate(String),
    /// Two names map to the same constant name.
    #[error("permissions `{0}` and `{1}` would both be named `{c}` in Rust; rename one", c = grammar::const_name(.1))]
    Collision(String, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_indices_and_lookup() {
        let c = PermissionCatalog::new(["data:read", "data:write", "model:run"]).unwrap();
        assert_eq!(c.id("model:run"), Some(PermissionId::new(2)));
        assert_eq!(c.id("model:runn"), None);
        assert_eq!(c.suggest("model:runn"), Some("model:run"));
        assert_eq!(c.actions_of("data").count(), 2);
    }

    #[test]
    fn rejects_duplicates_and_collisions() {
        assert_eq!(
            PermissionCatalog::new(["a:b", "a:b"]).unwrap_err(),
            CatalogError::Duplicate("a:b".into())
        );
        let err = PermissionCatalog::new(["data:read-all", "data:read_all"]).unwrap_err();
        assert!(err.to_string().contains("DATA_READ_ALL"), "{err}");
        assert!(PermissionCatalog::new(["nope"]).is_err());
    }
}
