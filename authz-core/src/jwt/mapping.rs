//! From verified claims to a [`Principal`](crate::Principal): where roles, scopes, permissions,
//! tenant and custom claims come from.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::capture::Captured;
use super::error::{ConfigError, JwtErrorKind};

type CustomParser = Arc<dyn Fn(&[u8]) -> Option<Arc<dyn Any + Send + Sync>> + Send + Sync>;

/// Where one value sits in a token's claims.
///
/// - A path that does **not** start with `/` names one top-level claim, literally: dots,
///   slashes and colons are part of the name (`https://registry.example.com/roles` for Auth0's
///   namespaced claims, `cognito:groups`, `app.roles`).
/// - A path that starts with `/` is a JSON Pointer (RFC 6901) into the claims:
///   `/realm_access/roles` (Keycloak), `/resource_access/api.example.com/roles`. In a pointer,
///   `~1` stands for `/` and `~0` for `~`.
///
/// ```
/// use authz_core::jwt::ClaimPath;
/// assert_eq!(ClaimPath::parse("https://example.com/roles")?.claim(), "https://example.com/roles");
/// assert_eq!(ClaimPath::parse("/realm_access/roles")?.claim(), "realm_access");
/// assert!(ClaimPath::parse("/a~2b").is_err());
/// # Ok::<(), authz_core::jwt::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimPath {
    text: String,
    /// The top-level claim.
    claim: String,
    /// The rest of the pointer (`""`: the claim itself), still escaped as RFC 6901 says.
    rest: String,
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ClaimPath {
    /// Parses a claim path (see the type's docs).
    ///
    /// # Errors
    /// An empty path, an empty pointer (`/`), or a `~` not followed by `0` or `1`.
    pub fn parse(path: &str) -> Result<Self, ConfigError> {
        let bad = |why| ConfigError::InvalidClaimPath(path.to_string(), why);
        if path.is_empty() {
            return Err(bad("a claim path cannot be empty"));
        }
        let Some(pointer) = path.strip_prefix('/') else {
            return Ok(Self {
                text: path.to_string(),
                claim: path.to_string(),
                rest: String::new(),
            });
        };
        let (first, rest) = match pointer.find('/') {
            Some(i) => (&pointer[..i], &pointer[i..]),
            None => (pointer, ""),
        };
        for token in pointer.split('/') {
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    return Err(bad(
                        "in a JSON Pointer, `~` must be followed by 0 or 1 (RFC 6901 §3)",
                    ));
                }
            }
        }
        if first.is_empty() {
            return Err(bad("a JSON Pointer must name a claim after the leading `/`"));
        }
        Ok(Self {
            text: path.to_string(),
            claim: first.replace("~1", "/").replace("~0", "~"),
            rest: rest.to_string(),
        })
    }

    /// The top-level claim the path starts at.
    pub fn claim(&self) -> &str {
        &self.claim
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The strings at this path (a string or an array of strings; absent or `null`: none),
    /// appended to `out`. A top-level claim is read straight from its JSON text, without a
    /// `Value` tree.
    fn strings_into(&self, claims: &Captured<'_>, out: &mut Vec<String>) -> Result<(), JwtErrorKind> {
        if !self.rest.is_empty() {
            return strings(self.lookup(claims)?, out);
        }
        match claims.get(&self.claim) {
            None => Ok(()),
            Some(raw) => raw_strings(raw.get(), out),
        }
    }

    /// The value at this path, if present.
    fn lookup(&self, claims: &Captured<'_>) -> Result<Option<Value>, JwtErrorKind> {
        let Some(raw) = claims.get(&self.claim) else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(raw.get()).map_err(|_| JwtErrorKind::InvalidMappedClaim)?;
        if self.rest.is_empty() {
            return Ok(Some(v));
        }
        Ok(v.pointer(&self.rest).cloned())
    }
}

/// Where the principal's facts come from in the token's claims.
///
/// Defaults: roles from the claim `roles`; scopes from `scope` (space-separated string, RFC
/// 8693 §4.2) and `scp` (string or array: Entra ID, Okta); no permission claim; scopes grant
/// nothing by themselves; no tenant; no custom claims. Several role sources merge. A claim of
/// the wrong type makes the token invalid (401): never a panic and never a silent grant.
/// Claim paths are [`ClaimPath`]s: literal top-level names, or JSON Pointers starting with `/`.
///
/// ```
/// use authz_core::jwt::ClaimMapping;
/// #[derive(serde::Deserialize)]
/// struct Extra { department: String }
/// let mapping = ClaimMapping::default()
///     .roles_from("/realm_access/roles")?               // Keycloak realm roles
///     .also_roles_from("https://example.com/roles")?    // an Auth0 namespaced claim
///     .scope_permissions(true)                          // scope "model:run" grants model:run
///     .tenant_from("tid")?
///     .custom_claims::<Extra>();
/// # Ok::<(), authz_core::jwt::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClaimMapping {
    roles: Vec<ClaimPath>,
    permissions: Vec<ClaimPath>,
    tenant: Option<ClaimPath>,
    tenant_scoped_roles: bool,
    scope_permissions: bool,
    custom: Option<(CustomParser, &'static str)>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            roles: vec![ClaimPath::parse("roles").expect("a valid path")],
            permissions: Vec::new(),
            tenant: None,
            tenant_scoped_roles: false,
            scope_permissions: false,
            custom: None,
        }
    }
}

impl fmt::Debug for ClaimMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimMapping")
            .field("roles", &self.roles)
            .field("permissions", &self.permissions)
            .field("tenant", &self.tenant)
            .field("tenant_scoped_roles", &self.tenant_scoped_roles)
            .field("scope_permissions", &self.scope_permissions)
            .field("custom", &self.custom.as_ref().map(|c| c.1))
            .finish()
    }
}

/// A JSON value that must be a list of strings (or one string).
fn strings(v: Option<Value>, out: &mut Vec<String>) -> Result<(), JwtErrorKind> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            out.push(s);
            Ok(())
        }
        Some(Value::Array(items)) => {
            for i in items {
                match i {
                    Value::String(s) => out.push(s),
                    _ => return Err(JwtErrorKind::InvalidMappedClaim),
                }
            }
            Ok(())
        }
        Some(_) => Err(JwtErrorKind::InvalidMappedClaim),
    }
}

/// Like [`strings`], from JSON text.
fn raw_strings(raw: &str, out: &mut Vec<String>) -> Result<(), JwtErrorKind> {
    let bad = |_| JwtErrorKind::InvalidMappedClaim;
    match raw.as_bytes().first() {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(raw);
            AppendStrings(out).deserialize(&mut de).map_err(bad)?;
            de.end().map_err(bad)?;
        }
        Some(b'"') => out.push(serde_json::from_str::<String>(raw).map_err(bad)?),
        Some(b'n') if raw == "null" => {}
        _ => return Err(JwtErrorKind::InvalidMappedClaim),
    }
    Ok(())
}

/// A JSON array of strings, appended to `out` as it is read (no vector of its own).
struct AppendStrings<'o>(&'o mut Vec<String>);

impl<'de> DeserializeSeed<'de> for AppendStrings<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AppendStrings<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(s) = seq.next_element::<String>()? {
            self.0.push(s);
        }
        Ok(())
    }
}

/// Space-delimited scopes (`scope`, RFC 8693 §4.2; `scp` as a string) or an array (`scp`).
fn raw_scopes(raw: &str, array_allowed: bool, out: &mut Vec<String>) -> Result<(), JwtErrorKind> {
    match raw.as_bytes().first() {
        Some(b'"') => {
            let s: std::borrow::Cow<'_, str> =
                serde_json::from_str(raw).map_err(|_| JwtErrorKind::InvalidMappedClaim)?;
            out.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_string));
            Ok(())
        }
        Some(b'[') if array_allowed => raw_strings(raw, out),
        Some(b'n') if raw == "null" => Ok(()),
        _ => Err(JwtErrorKind::InvalidMappedClaim),
    }
}

/// What [`ClaimMapping::map`] extracted.
pub(crate) struct Mapped {
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) permissions: Vec<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) custom: Option<Arc<dyn Any + Send + Sync>>,
}

impl ClaimMapping {
    /// A mapping that reads no roles (scopes are always read).
    pub fn none() -> Self {
        Self {
            roles: Vec::new(),
            ..Self::default()
        }
    }

    /// Reads roles from this claim path only (replacing the default `roles`).
    pub fn roles_from(mut self, path: &str) -> Result<Self, ConfigError> {
        self.roles = vec![ClaimPath::parse(path)?];
        Ok(self)
    }

    /// Reads roles from no claim (then add sources with [`also_roles_from`](Self::also_roles_from)).
    pub fn without_roles(mut self) -> Self {
        self.roles.clear();
        self
    }

    /// Reads roles from this claim path too; every source's roles are merged.
    pub fn also_roles_from(mut self, path: &str) -> Result<Self, ConfigError> {
        let path = ClaimPath::parse(path)?;
        if !self.roles.contains(&path) {
            self.roles.push(path);
        }
        Ok(self)
    }

    /// Grants the permissions listed in this claim (a string or an array of strings; names
    /// the catalog does not declare are ignored). Auth0 RBAC puts them in `permissions`.
    pub fn permissions_from(mut self, path: &str) -> Result<Self, ConfigError> {
        let path = ClaimPath::parse(path)?;
        if !self.permissions.contains(&path) {
            self.permissions.push(path);
        }
        Ok(self)
    }

    /// When `true`, a scope that names a catalog permission (`model:run`) grants it. Default
    /// `false`: scopes are kept on the principal and grant nothing by themselves.
    pub fn scope_permissions(mut self, enabled: bool) -> Self {
        self.scope_permissions = enabled;
        self
    }

    /// Whether scopes naming catalog permissions grant them.
    pub fn grants_scope_permissions(&self) -> bool {
        self.scope_permissions
    }

    /// Reads the tenant from this claim path (a string).
    pub fn tenant_from(mut self, path: &str) -> Result<Self, ConfigError> {
        self.tenant = Some(ClaimPath::parse(path)?);
        Ok(self)
    }

    /// Role values of the form `tenant/role` are role assignments scoped to a tenant: the
    /// principal gets `role` only when its tenant (from [`tenant_from`](Self::tenant_from), or
    /// the authenticator's default tenant) is `tenant`, and nothing otherwise — a role granted
    /// in tenant A grants nothing in tenant B. Values without `/` are roles in every tenant.
    /// Default off (a `/` is then part of the role's name).
    ///
    /// `{"tenant": "acme", "roles": ["acme/admin", "globex/viewer", "auditor"]}` → roles
    /// `admin`, `auditor`.
    pub fn tenant_scoped_roles(mut self, enabled: bool) -> Self {
        self.tenant_scoped_roles = enabled;
        self
    }

    /// Keeps the roles of `roles` that apply in `tenant` (see
    /// [`tenant_scoped_roles`](Self::tenant_scoped_roles)); does nothing when that is off.
    pub(crate) fn scope_roles(&self, roles: &mut Vec<String>, tenant: Option<&str>) {
        if !self.tenant_scoped_roles {
            return;
        }
        roles.retain_mut(|r| match r.split_once('/') {
            None => true,
            Some((t, role)) if Some(t) == tenant && !role.is_empty() => {
                *r = role.to_string();
                true
            }
            Some(_) => false,
        });
        let mut seen = std::collections::HashSet::new();
        roles.retain(|r| seen.insert(r.clone()));
    }

    /// Where the tenant is read from, if anywhere.
    pub fn tenant_source(&self) -> Option<&ClaimPath> {
        self.tenant.as_ref()
    }

    /// The role sources.
    pub fn role_sources(&self) -> &[ClaimPath] {
        &self.roles
    }

    /// Deserialises all claims into `T`, available as [`Principal::claims`](crate::Principal::claims).
    /// A token whose claims do not deserialise is invalid.
    pub fn custom_claims<T: DeserializeOwned + Send + Sync + 'static>(mut self) -> Self {
        let parser: CustomParser = Arc::new(|payload: &[u8]| {
            serde_json::from_slice::<T>(payload)
                .ok()
                .map(|t| Arc::new(t) as Arc<dyn Any + Send + Sync>)
        });
        self.custom = Some((parser, std::any::type_name::<T>()));
        self
    }

    /// Top-level claims the mapping reads (besides the registered ones).
    pub(crate) fn top_level_claims(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for path in self
            .roles
            .iter()
            .chain(&self.permissions)
            .chain(self.tenant.iter())
        {
            if !out.iter().any(|c| c == path.claim()) {
                out.push(path.claim().to_string());
            }
        }
        out
    }

    pub(crate) fn map(&self, claims: &Captured<'_>, payload: &[u8]) -> Result<Mapped, JwtErrorKind> {
        let mut roles = Vec::new();
        for source in &self.roles {
            source.strings_into(claims, &mut roles)?;
        }
        if self.roles.len() > 1 {
            let mut seen = std::collections::HashSet::new();
            roles.retain(|r| seen.insert(r.clone()));
        }
        let mut scopes = Vec::new();
        if let Some(raw) = claims.get("scope") {
            raw_scopes(raw.get(), false, &mut scopes)?;
        }
        if let Some(raw) = claims.get("scp") {
            raw_scopes(raw.get(), true, &mut scopes)?;
        }
        let mut permissions = Vec::new();
        for source in &self.permissions {
            source.strings_into(claims, &mut permissions)?;
        }
        if self.scope_permissions {
            permissions.extend(scopes.iter().cloned());
        }
        let tenant = match &self.tenant {
            None => None,
            Some(p) => match p.lookup(claims)? {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(JwtErrorKind::InvalidMappedClaim),
            },
        };
        let custom = match &self.custom {
            None => None,
            Some((parse, _)) => Some(parse(payload).ok_or(JwtErrorKind::InvalidMappedClaim)?),
        };
        Ok(Mapped {
            roles,
            scopes,
            permissions,
            tenant,
            custom,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(mapping: &ClaimMapping, payload: &str) -> Result<Mapped, JwtErrorKind> {
        let wanted = mapping.top_level_claims();
        let captured = Captured::parse(payload, &wanted).unwrap();
        mapping.map(&captured, payload.as_bytes())
    }

    #[test]
    fn literal_names_keep_dots_slashes_and_colons() {
        let m = ClaimMapping::none()
            .also_roles_from("https://registry.example.com/roles")
            .unwrap()
            .also_roles_from("app.roles")
            .unwrap()
            .also_roles_from("cognito:groups")
            .unwrap();
        let out = map(
            &m,
            r#"{"https://registry.example.com/roles":["a"],"app.roles":"b","cognito:groups":["c","a"],"app":{"roles":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(out.roles, ["a", "b", "c"]);
    }

    #[test]
    fn pointers_descend_and_unescape() {
        let m = ClaimMapping::none()
            .also_roles_from("/realm_access/roles")
            .unwrap()
            .also_roles_from("/resource_access/api.example.com/roles")
            .unwrap()
            .also_roles_from("/a~1b/c~0d")
            .unwrap();
        let out = map(
            &m,
            r#"{"realm_access":{"roles":["r1"]},"resource_access":{"api.example.com":{"roles":["r2"]},"other":{"roles":["no"]}},"a/b":{"c~d":"r3"}}"#,
        )
        .unwrap();
        assert_eq!(out.roles, ["r1", "r2", "r3"]);
        assert!(ClaimPath::parse("/").is_err());
        assert!(ClaimPath::parse("").is_err());
        assert!(ClaimPath::parse("/x~").is_err());
    }

    #[test]
    fn wrong_types_refuse_and_scopes_can_grant() {
        let m = ClaimMapping::default();
        assert!(map(&m, r#"{"roles":{"a":1}}"#).is_err());
        assert!(map(&m, r#"{"roles":[1]}"#).is_err());
        assert!(map(&m, r#"{"roles":["a",null]}"#).is_err());
        assert!(map(&m, r#"{"roles":["a",["b"]]}"#).is_err());
        assert_eq!(
            map(&m, r#"{"roles":["a","b\u0063"]}"#).unwrap().roles,
            ["a", "bc"]
        );
        assert!(map(&m, r#"{"roles":[]}"#).unwrap().roles.is_empty());
        let out = map(&m, r#"{"scope":"a b","scp":["c"]}"#).unwrap();
        assert_eq!(out.scopes, ["a", "b", "c"]);
        assert!(out.permissions.is_empty());
        let out = map(&m.clone().scope_permissions(true), r#"{"scp":"model:run x"}"#).unwrap();
        assert_eq!(out.permissions, ["model:run", "x"]);
    }
}
