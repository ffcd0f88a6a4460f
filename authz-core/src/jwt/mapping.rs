//! From verified claims to a [`Principal`](crate::Principal): where roles, scopes, permissions,
//! tenant and custom claims come from.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::capture::Captured;

use super::error::JwtErrorKind;

type CustomParser = Arc<dyn Fn(&[u8]) -> Option<Arc<dyn Any + Send + Sync>> + Send + Sync>;

/// Where the principal's facts come from in the token's claims.
///
/// Paths are dot-separated (`realm_access.roles` for Keycloak). Defaults: roles from `roles`;
/// scopes from `scope` (space-separated string) or `scp` (string or array); no permission
/// claim, no tenant, no custom claims. A claim of the wrong type makes the token invalid (401):
/// never a panic and never a silent grant.
///
/// ```
/// use authz_core::jwt::ClaimMapping;
/// #[derive(serde::Deserialize)]
/// struct Extra { department: String }
/// let mapping = ClaimMapping::default()
///     .roles_from("realm_access.roles")
///     .tenant_from("tid")
///     .custom_claims::<Extra>();
/// ```
#[derive(Clone)]
pub struct ClaimMapping {
    roles: Vec<String>,
    permissions: Option<Vec<String>>,
    tenant: Option<Vec<String>>,
    custom: Option<(CustomParser, &'static str)>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            roles: vec!["roles".into()],
            permissions: None,
            tenant: None,
            custom: None,
        }
    }
}

impl fmt::Debug for ClaimMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimMapping")
            .field("roles", &self.roles.join("."))
            .field("permissions", &self.permissions.as_ref().map(|p| p.join(".")))
            .field("tenant", &self.tenant.as_ref().map(|p| p.join(".")))
            .field("custom", &self.custom.as_ref().map(|c| c.1))
            .finish()
    }
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

/// The value at `path`: the first segment from the captured claims, the rest by descending
/// into that (small) value.
fn lookup(claims: &Captured<'_>, path: &[String]) -> Result<Option<Value>, JwtErrorKind> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(None);
    };
    let Some(raw) = claims.get(first) else {
        return Ok(None);
    };
    let mut v: Value = serde_json::from_str(raw.get()).map_err(|_| JwtErrorKind::InvalidMappedClaim)?;
    for seg in rest {
        match v {
            Value::Object(mut m) => match m.remove(seg) {
                Some(inner) => v = inner,
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    Ok(Some(v))
}

/// A JSON value that must be a list of strings (or one string).
fn strings(v: Option<&Value>) -> Result<Vec<String>, JwtErrorKind> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or(JwtErrorKind::InvalidMappedClaim)
            })
            .collect(),
        Some(_) => Err(JwtErrorKind::InvalidMappedClaim),
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
    /// Reads roles from this claim path (default `roles`).
    pub fn roles_from(mut self, claim_path: &str) -> Self {
        self.roles = path(claim_path);
        self
    }

    /// Grants the permissions listed in this claim (names the catalog does not declare are
    /// ignored).
    pub fn permissions_from(mut self, claim_path: &str) -> Self {
        self.permissions = Some(path(claim_path));
        self
    }

    /// Reads the tenant from this claim path (a string).
    pub fn tenant_from(mut self, claim_path: &str) -> Self {
        self.tenant = Some(path(claim_path));
        self
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
        for path in std::iter::once(&self.roles)
            .chain(self.permissions.iter())
            .chain(self.tenant.iter())
        {
            if let Some(first) = path.first()
                && !out.contains(first)
            {
                out.push(first.clone());
            }
        }
        out
    }

    pub(crate) fn map(&self, claims: &Captured<'_>, payload: &[u8]) -> Result<Mapped, JwtErrorKind> {
        let roles = strings(lookup(claims, &self.roles)?.as_ref())?;
        let parse = |name: &str| -> Result<Option<Value>, JwtErrorKind> {
            claims
                .get(name)
                .map(|raw| {
                    serde_json::from_str::<Value>(raw.get()).map_err(|_| JwtErrorKind::InvalidMappedClaim)
                })
                .transpose()
        };
        let mut scopes = match parse("scope")? {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Some(_) => return Err(JwtErrorKind::InvalidMappedClaim),
        };
        if let Some(scp) = parse("scp")? {
            let list = match scp {
                Value::String(s) => s
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                other => strings(Some(&other))?,
            };
            scopes.extend(list);
        }
        let permissions = match &self.permissions {
            Some(p) => strings(lookup(claims, p)?.as_ref())?,
            None => Vec::new(),
        };
        let tenant = match &self.tenant {
            None => None,
            Some(p) => match lookup(claims, p)? {
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
