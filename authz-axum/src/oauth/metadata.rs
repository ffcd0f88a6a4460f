//! Authorization server metadata (RFC 8414) and the JWKS.

use std::sync::Arc;

use authz_core::oauth::GrantType;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::TokenService;

impl TokenService {
    /// The metadata document (RFC 8414 §2), also served as `openid-configuration` for clients
    /// that discover through OpenID Connect Discovery (this server issues no ID tokens).
    pub fn metadata(&self) -> serde_json::Value {
        let c = &self.config;
        let e = &c.endpoints;
        let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
        json!({
            "issuer": c.issuer,
            "authorization_endpoint": c.url(&e.authorize),
            "token_endpoint": c.url(&e.token),
            "jwks_uri": c.url(&e.jwks),
            "revocation_endpoint": c.url(&e.revoke),
            "introspection_endpoint": c.url(&e.introspect),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
            "dpop_signing_alg_values_supported": self.dpop.algorithms().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub(crate) async fn metadata(State(service): State<Arc<TokenService>>) -> Response {
    let mut r = axum::Json(service.metadata()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// `GET /.well-known/jwks.json`: every published key, cached for `jwks_max_age`.
pub(crate) async fn jwks(State(service): State<Arc<TokenService>>) -> Response {
    let mut r = axum::Json(service.jwks()).into_response();
    let cc = format!("public, max-age={}", service.config.jwks_max_age.as_secs());
    if let Ok(v) = HeaderValue::from_str(&cc) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}
