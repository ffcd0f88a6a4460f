//! The input document every engine receives, and how it serializes to JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::principal::Principal;

/// What a policy engine is asked about: who, doing what, to what, in which request.
///
/// As JSON (the document Rego sees as `input`, OPA receives as `{"input": …}`, and Cedar gets
/// mapped onto its principal, action, resource and context):
///
/// ```json
/// {
///   "principal": {
///     "subject": "alice", "issuer": "https://id.example.com", "tenant": "acme",
///     "roles": ["analyst"], "effective_roles": ["analyst", "viewer"],
///     "permissions": ["data:read", "model:deploy", "model:run"],
///     "scopes": ["openid"], "claims": {}, "auth_method": "jwt"
///   },
///   "action": "model:deploy",
///   "resource": { "type": "model", "id": "m-1", "attributes": { "owner": "alice" } },
///   "request": {
///     "method": "POST", "route": "/models/{id}/deploy",
///     "params": { "id": "m-1" }, "time": 1767225600
///   },
///   "context": { "environment": "staging" }
/// }
/// ```
///
/// Nothing secret is ever in it: no token, no API key, no header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The authenticated caller. Shared: the auth layer makes a principal's view once and
    /// every request of that principal reuses it ([`PrincipalInput::shared`]); change one with
    /// `Arc::make_mut`.
    pub principal: Arc<PrincipalInput>,
    /// The permission the handler requires (`"model:deploy"`); with a requirement expression,
    /// the expression as the route table prints it.
    pub action: String,
    /// What the request acts on, when known (`null` otherwise).
    pub resource: Option<ResourceInput>,
    /// The HTTP request (never its headers or body).
    pub request: RequestInput,
    /// Facts the handler contributes from the request body (`null` when it supplies none): a
    /// small object chosen by the handler, e.g. `{"environment": "staging"}`.
    pub context: Value,
}

/// The caller, as engines see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalInput {
    /// `sub` of the token, or the API key's subject.
    pub subject: String,
    /// `iss` (absent for API keys).
    pub issuer: Option<String>,
    /// The tenant, when the issuer's mapping gives one.
    pub tenant: Option<String>,
    /// Roles held directly (from the token or key).
    pub roles: Vec<String>,
    /// Roles held directly or by inheritance.
    pub effective_roles: Vec<String>,
    /// Effective permissions, by name, in catalog order.
    pub permissions: Vec<String>,
    /// OAuth scopes presented.
    pub scopes: Vec<String>,
    /// The custom claims the authenticator captured, when they were captured as a JSON object
    /// (`serde_json::Map`); otherwise empty.
    pub claims: Map<String, Value>,
    /// `"jwt"`, `"api_key"` (or `"test"` for `Principal::for_testing`).
    pub auth_method: String,
}

impl PrincipalInput {
    /// [`PrincipalInput::of`], made once per principal and shared: the first call builds it
    /// and keeps it inside the principal (which the authenticator caches with its verified
    /// token), so later requests of the same principal allocate nothing for it.
    pub fn shared<C: Catalog>(principal: &Principal) -> Arc<Self> {
        principal.engine_view(C::FINGERPRINT, || Self::of::<C>(principal))
    }

    /// The principal's facts, with permission names from catalog `C`.
    pub fn of<C: Catalog>(principal: &Principal) -> Self {
        Self {
            subject: principal.subject().to_string(),
            issuer: principal.issuer().map(str::to_string),
            tenant: principal.tenant().map(str::to_string),
            roles: principal.roles().to_vec(),
            effective_roles: principal.effective_roles().map(str::to_string).collect(),
            permissions: principal
                .permissions()
                .iter()
                .filter_map(|id| C::PERMISSIONS.get(id.index()).map(|s| s.to_string()))
                .collect(),
            scopes: principal.scopes().to_vec(),
            claims: principal
                .claims::<Map<String, Value>>()
                .cloned()
                .unwrap_or_default(),
            auth_method: principal.auth_method().to_string(),
        }
    }
}

/// The resource a request acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceInput {
    /// Its type: the resource part of the permission (`model` for `model:deploy`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id, when the route names one (the path parameter `id`).
    pub id: Option<String>,
    /// Its attributes (`owner`, `tenant`, …) when the resource was loaded; `null` otherwise.
    pub attributes: Value,
}

/// The request, as engines see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestInput {
    /// `GET`, `POST`, …
    pub method: String,
    /// The route template as registered (`/models/{id}/deploy`), not the concrete path.
    pub route: String,
    /// The path parameters, by name.
    pub params: BTreeMap<String, String>,
    /// Seconds since the Unix epoch, from the authenticator's clock.
    pub time: u64,
}

impl Input {
    /// The document as JSON text (what OPA receives inside `{"input": …}`).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: string keys, no non-finite floats are made here.
        serde_json::to_string(self).unwrap_or_else(|_| "null".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_documented_shape() {
        let input = Input {
            principal: Arc::new(PrincipalInput {
                subject: "alice".into(),
                issuer: None,
                tenant: None,
                roles: vec!["analyst".into()],
                effective_roles: vec!["analyst".into()],
                permissions: vec![],
                scopes: vec![],
                claims: Map::new(),
                auth_method: "jwt".into(),
            }),
            action: "model:deploy".into(),
            resource: Some(ResourceInput {
                kind: "model".into(),
                id: Some("m".into()),
                attributes: Value::Null,
            }),
            request: RequestInput {
                method: "POST".into(),
                route: "/m/{id}".into(),
                params: BTreeMap::from([("id".into(), "m".into())]),
                time: 7,
            },
            context: serde_json::json!({"environment": "staging"}),
        };
        let v: Value = serde_json::from_str(&input.to_json()).unwrap();
        assert_eq!(v["resource"]["type"], "model");
        assert_eq!(v["request"]["params"]["id"], "m");
        assert_eq!(v["context"]["environment"], "staging");
        assert_eq!(v["principal"]["issuer"], Value::Null);
    }
}
