//! [`Principal`]: the verified caller.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::catalog::PermissionId;
use crate::policy::{Policy, Resolution};
use crate::set::PermissionSet;

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A verified bearer JWT.
    Jwt,
    /// An API key.
    ApiKey,
    /// Built by [`Principal::for_testing`]; never produced by an authenticator.
    Test,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Test => "test",
        })
    }
}

/// A verified caller: who it is, what roles and scopes it presented, and what it may do.
///
/// A `Principal` exists only after verification: it is built by an authenticator in this crate
/// (JWT or API key), or by [`Principal::for_testing`], which says what it is. Cloning is cheap
/// (one reference count).
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    subject: String,
    issuer: Option<String>,
    tenant: Option<String>,
    roles: Vec<String>,
    resolved: Arc<Resolution>,
    /// The effective permissions: the roles' (shared resolution) plus any the credential adds.
    /// Kept inline so that a check is one bit test with no pointer chase.
    permissions: PermissionSet,
    scopes: Vec<String>,
    expires_at: Option<u64>,
    auth_method: AuthMethod,
    claims: Option<Arc<dyn Any + Send + Sync>>,
    token: TokenFacts,
    /// The policy engines' view of this principal (`engine::PrincipalInput`) with the catalog
    /// fingerprint it was built for: made on the first policy decision and shared by every
    /// later one (a principal is cached with its verified token).
    engine_view: std::sync::OnceLock<(u64, Arc<crate::engine::PrincipalInput>)>,
}

/// Facts of the verified token a principal came from (empty for API keys and test principals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// `jti` (RFC 7519 §4.1.7), the key of the revocation list.
    pub jti: Option<String>,
    /// `iat`, seconds since the epoch.
    pub issued_at: Option<u64>,
    /// `cnf.jkt` (RFC 9449 §6.1): the SHA-256 thumbprint (RFC 7638) of the key the token is
    /// bound to. `Some`: the token is DPoP-bound and must come with a proof signed by that key.
    pub jkt: Option<String>,
}

/// The verified facts an authenticator hands to [`Principal::new`].
pub(crate) struct PrincipalParts {
    pub(crate) subject: String,
    pub(crate) issuer: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) extra_permissions: Vec<PermissionId>,
    pub(crate) expires_at: Option<u64>,
    pub(crate) auth_method: AuthMethod,
    pub(crate) claims: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) token: TokenFacts,
}

impl Principal {
    pub(crate) fn new(parts: PrincipalParts, policy: &Policy) -> Self {
        let resolved = policy.resolve_cached(&parts.roles);
        if !resolved.withheld.is_empty() {
            tracing::warn!(
                subject = %parts.subject,
                withheld = ?resolved.withheld,
                "the principal's roles combine both sides of a separation-of-duty pair; both sides withheld"
            );
        }
        let mut permissions = resolved.permissions.clone();
        if !parts.extra_permissions.is_empty() {
            for id in parts.extra_permissions {
                permissions.insert(id);
            }
            // Pairs the roles already violated stay withheld: a direct grant of one side must
            // not bring it back (found by the source-combination property test).
            for name in resolved.withheld.iter().flat_map(|(a, b)| [a, b]) {
                if let Some(id) = policy.catalog().id(name) {
                    permissions.remove(id);
                }
            }
            // Separation of duties holds on the final set, whatever granted each side (roles,
            // permission claims, scopes): both sides of a violated pair are withheld.
            let withheld = policy.withhold_separated(&mut permissions);
            if !withheld.is_empty() {
                tracing::warn!(
                    subject = %parts.subject,
                    withheld = ?withheld,
                    "the credential grants both sides of a separation-of-duty pair; both sides withheld"
                );
            }
        }
        Principal(Arc::new(Inner {
            subject: parts.subject,
            issuer: parts.issuer,
            tenant: parts.tenant,
            roles: parts.roles,
            resolved,
            permissions,
            scopes: parts.scopes,
            expires_at: parts.expires_at,
            auth_method: parts.auth_method,
            claims: parts.claims,
            token: parts.token,
            engine_view: std::sync::OnceLock::new(),
        }))
    }

    /// Facts of the token this principal came from: `jti`, `iat`, and the DPoP key binding
    /// (`cnf.jkt`). Empty for API keys.
    pub fn token(&self) -> &TokenFacts {
        &self.0.token
    }

    /// A principal for tests and demos, with `roles` resolved through `policy`.
    ///
    /// Never use this to turn unverified input into a principal: its
    /// [`auth_method`](Principal::auth_method) is [`AuthMethod::Test`].
    pub fn for_testing<I, S>(subject: impl Into<String>, roles: I, policy: &Policy) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(
            PrincipalParts {
                subject: subject.into(),
                issuer: None,
                tenant: None,
                roles: roles.into_iter().map(Into::into).collect(),
                scopes: Vec::new(),
                extra_permissions: Vec::new(),
                expires_at: None,
                auth_method: AuthMethod::Test,
                claims: None,
                token: TokenFacts::default(),
            },
            policy,
        )
    }

    /// A test principal (see [`Principal::for_testing`]) in `tenant`.
    pub fn for_testing_in_tenant<I, S>(
        subject: impl Into<String>,
        tenant: impl Into<String>,
        roles: I,
        policy: &Policy,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::for_testing(subject, roles, policy).in_tenant(tenant)
    }

    /// The same principal in `tenant` (the authenticator's default tenant).
    pub(crate) fn in_tenant(self, tenant: impl Into<String>) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|arc| (*arc).clone());
        inner.tenant = Some(tenant.into());
        // The engines' view names the tenant: made again for the changed principal.
        inner.engine_view = std::sync::OnceLock::new();
        Principal(Arc::new(inner))
    }

    /// The engines' view of this principal for the catalog with `fingerprint`: the one made
    /// for it before, or `build`'s (kept for the next request when none was made yet).
    pub(crate) fn engine_view(
        &self,
        fingerprint: u64,
        build: impl FnOnce() -> crate::engine::PrincipalInput,
    ) -> Arc<crate::engine::PrincipalInput> {
        if let Some((made_for, view)) = self.0.engine_view.get() {
            if *made_for == fingerprint {
                return view.clone();
            }
            return Arc::new(build());
        }
        let view = Arc::new(build());
        // Another request may have set it meanwhile: both views are equal.
        let _ = self.0.engine_view.set((fingerprint, view.clone()));
        view
    }

    /// The subject (`sub`, or an API key's owner).
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The issuer (`iss`), for JWTs.
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// The tenant, when the claim mapping names one.
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    /// Roles as presented by the credential.
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// Whether the principal holds `role`, directly or by inheritance in the policy.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.resolved.effective_roles.iter().any(|r| &**r == role)
    }

    /// Roles held directly or by inheritance, that the policy knows.
    pub fn effective_roles(&self) -> impl Iterator<Item = &str> {
        self.0.resolved.effective_roles.iter().map(|r| &**r)
    }

    /// OAuth scopes presented (`scope` / `scp`).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// The effective permission set.
    #[inline]
    pub fn permissions(&self) -> &PermissionSet {
        &self.0.permissions
    }

    /// Whether the principal may do `permission`: one bit test.
    #[inline]
    pub fn can(&self, permission: PermissionId) -> bool {
        self.permissions().contains(permission)
    }

    /// Expiry as seconds since the Unix epoch, if the credential expires.
    pub fn expires_at(&self) -> Option<u64> {
        self.0.expires_at
    }

    /// Whether the credential has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        let now = crate::clock::unix_seconds(now);
        self.0.expires_at.is_some_and(|exp| now >= exp)
    }

    /// How the principal authenticated.
    pub fn auth_method(&self) -> AuthMethod {
        self.0.auth_method
    }

    /// The custom claims, deserialised into the type the authenticator was configured with.
    pub fn claims<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.claims.as_deref().and_then(|c| c.downcast_ref::<T>())
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("tenant", &self.0.tenant)
            .field("roles", &self.0.roles)
            .field("scopes", &self.0.scopes)
            .field("permissions", self.permissions())
            .field("expires_at", &self.0.expires_at)
            .field("auth_method", &self.0.auth_method)
            .finish_non_exhaustive()
    }
}
