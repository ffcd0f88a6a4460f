//! Resource-level authorization: may this principal see, and act on, *this* resource?
//!
//! The permission bitset answers "may Ada read reports?"; this module answers "may Ada read
//! report 7?" — the IDOR defence of the seed ("always check that the caller's identity matches
//! the resource owner in the authorization layer"), tenant isolation and two-person rules.
//!
//! - [`Resource`] says what a resource type is: its name, its id, and which of its attributes
//!   are the **owner** ([`Owned`]) and the **tenant**. `#[derive(Resource)]` (in `authz-axum`)
//!   writes it from `#[resource(type = "report", owner = owner, tenant = tenant)]`.
//! - [`ResourceRule`] is one handler's rule: which principals may **see** a loaded resource
//!   ([`ResourceRule::visible`]; failing it is answered exactly like a missing resource) and
//!   which may **act** on it ([`ResourceRule::allowed`]; failing it is a 403, or the same 404
//!   when the route masks). `#[authorize(..)]` generates it from the handler's declaration.
//! - [`decide`] applies a rule to a loaded resource: tenant isolation first (always, for a type
//!   that declares a tenant), then visibility, then the action. It is the one decision the
//!   extractor, the tests and the benchmarks call.
//!
//! Identities are compared as the principal's `sub` ([`Principal::subject`]), byte for byte.
//! A service that trusts several issuers whose subjects could collide should store owners as
//! issuer-qualified subjects, or scope each issuer to its own tenant.

use crate::principal::Principal;

/// A resource type the authorization layer can check.
///
/// Implement it with `#[derive(Resource)]`:
///
/// ```ignore
/// #[derive(authz_axum::Resource)]
/// #[resource(type = "report", owner = owner, tenant = tenant)]
/// struct Report { id: Uuid, owner: String, tenant: String, title: String }
/// ```
pub trait Resource: Send + Sync + 'static {
    /// The type's name in logs, policy input and route tables (`"report"`).
    const TYPE: &'static str;
    /// Whether the type declares a tenant: then [`decide`] compares [`Resource::tenant`] with
    /// the principal's tenant on every access, whatever the handler's rule says.
    const TENANT_SCOPED: bool;
    /// The tenant the resource belongs to (`None`: none recorded). Only read when
    /// [`Resource::TENANT_SCOPED`].
    fn tenant(&self) -> Option<&str>;
    /// The attributes a policy engine sees as `resource.attributes` (see
    /// `authz_core::engine::Input`): `#[derive(Resource)]` gives the declared ones,
    /// `{"owner": "ada", "tenant": "acme"}` (`null` for a missing value). Default `null`.
    fn attributes(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// The attributes object `#[derive(Resource)]` builds: each declared name with its value
/// (`null` when it names nobody).
pub fn attributes<'a>(pairs: impl IntoIterator<Item = (&'static str, Option<&'a str>)>) -> serde_json::Value {
    serde_json::Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map_or(serde_json::Value::Null, |v| v.into())))
            .collect(),
    )
}

/// A resource type with an owner: what the `owner` condition of a rule compares with the
/// caller. `#[derive(Resource)]` implements it for `#[resource(owner = field)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` declares no owner, so a rule cannot ask for its owner",
    label = "this rule compares the caller with the owner",
    note = "name the owner attribute on the type: `#[resource(type = \"..\", owner = field)]`"
)]
pub trait Owned: Resource {
    /// The owner's subject (`None`: nobody owns it, so no caller is its owner).
    fn owner(&self) -> Option<&str>;
}

/// A value that names a party of a resource (its owner, the initiator of a payment, …): a
/// subject string, or none. Implemented for `String`, `str`, `Box<str>`, `Arc<str>`,
/// `Cow<str>`, references to them and `Option` of each.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot name a party of a resource (an owner, a tenant, an initiator …)",
    label = "this attribute must hold a subject string",
    note = "store the subject as `String`, `Option<String>`, `Arc<str>`, `Box<str>` or `Cow<str>`"
)]
pub trait Party {
    /// The subject it names, if any.
    fn party(&self) -> Option<&str>;
}

impl Party for str {
    fn party(&self) -> Option<&str> {
        Some(self)
    }
}
impl Party for String {
    fn party(&self) -> Option<&str> {
        Some(self)
    }
}
impl Party for Box<str> {
    fn party(&self) -> Option<&str> {
        Some(self)
    }
}
impl Party for std::sync::Arc<str> {
    fn party(&self) -> Option<&str> {
        Some(self)
    }
}
impl Party for std::borrow::Cow<'_, str> {
    fn party(&self) -> Option<&str> {
        Some(self)
    }
}
impl<T: Party + ?Sized> Party for &T {
    fn party(&self) -> Option<&str> {
        (**self).party()
    }
}
impl<T: Party> Party for Option<T> {
    fn party(&self) -> Option<&str> {
        self.as_ref().and_then(Party::party)
    }
}

/// Whether `principal` is the party `value` names (never, when it names nobody).
#[inline]
pub fn is_party(principal: &Principal, value: &(impl Party + ?Sized)) -> bool {
    value.party() == Some(principal.subject())
}

/// Whether `principal` owns `resource`.
#[inline]
pub fn is_owner<R: Owned>(principal: &Principal, resource: &R) -> bool {
    resource.owner() == Some(principal.subject())
}

/// Whether `principal` is in `resource`'s tenant: the two tenants are equal, `None` included
/// (a principal without a tenant sees only resources without one). Always true for a type
/// that declares no tenant.
#[inline]
pub fn same_tenant<R: Resource>(principal: &Principal, resource: &R) -> bool {
    !R::TENANT_SCOPED || resource.tenant() == principal.tenant()
}

/// What a handler's rule says about a loaded resource, generated by `#[authorize(..)]`.
pub trait ResourceRule<R: Resource>: Send + Sync + 'static {
    /// Answer a caller who may see the resource but not act on it with the same 404 as a
    /// missing one (`deny = not_found`), instead of 403.
    const MASK_FORBIDDEN: bool;
    /// The sentence a 403 carries as its detail (`reason = ".."`; default: "the caller may
    /// not do this to this resource"). Never sent with a 404.
    const REASON: &'static str;
    /// The fingerprint of the catalog the rule's permission indices come from (`None` when it
    /// names no permission). A principal resolved against another catalog is refused.
    const CATALOG_FINGERPRINT: Option<u64>;
    /// Whether `principal` may see `resource` (the tenant was already checked).
    fn visible(principal: &Principal, resource: &R) -> bool;
    /// Whether `principal` may do what the route does to `resource` (it is visible).
    fn allowed(principal: &Principal, resource: &R) -> bool;
    /// The rule as text, for the route table and debug logs
    /// (`visible: any(owner, "report:read_any")`).
    fn describe() -> &'static str;
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The principal may act on the resource.
    Allow,
    /// Answer as if the resource did not exist (404): another tenant, not visible, or (on a
    /// masking route) not allowed.
    NotFound,
    /// The principal sees the resource but may not do this to it (403).
    Forbidden,
}

/// Why a [`decide`] call refused, for the debug log (never sent to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It was allowed.
    Allowed,
    /// The resource is in another tenant.
    OtherTenant,
    /// The rule's visibility condition failed.
    NotVisible,
    /// The rule's action condition failed.
    NotAllowed,
    /// The principal's permissions come from another catalog than the rule's.
    CatalogMismatch,
}

/// Applies `Rule` to a loaded `resource`: tenant, then visibility, then the action.
#[inline]
pub fn decide<R: Resource, Rule: ResourceRule<R>>(principal: &Principal, resource: &R) -> (Decision, Reason) {
    if let Some(fp) = Rule::CATALOG_FINGERPRINT
        && principal.permissions().fingerprint() != fp
    {
        return (Decision::NotFound, Reason::CatalogMismatch);
    }
    if !same_tenant(principal, resource) {
        return (Decision::NotFound, Reason::OtherTenant);
    }
    if !Rule::visible(principal, resource) {
        return (Decision::NotFound, Reason::NotVisible);
    }
    if !Rule::allowed(principal, resource) {
        let d = if Rule::MASK_FORBIDDEN {
            Decision::NotFound
        } else {
            Decision::Forbidden
        };
        return (d, Reason::NotAllowed);
    }
    (Decision::Allow, Reason::Allowed)
}
