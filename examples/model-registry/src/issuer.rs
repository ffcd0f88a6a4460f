//! The built-in dev issuer: an ES256 key generated at start-up, its JWKS and discovery
//! document, and an OAuth2 client-credentials token endpoint (RFC 6749 §4.4) for demo clients.

use authz_axum::core::clock::Clock;
use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Lifetime of issued access tokens (the seed's 5–15 minutes).
pub const TOKEN_LIFETIME_SECS: u64 = 600;

/// A demo OAuth2 client.
#[derive(Clone)]
pub struct DemoClient {
    /// `client_id`.
    pub id: String,
    /// `client_secret`, generated at start-up.
    pub secret: String,
    /// Roles the client may receive; a token request's `scope` can narrow them.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for DemoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

struct RegisteredClient {
    secret_hash: [u8; 32],
    roles: Vec<String>,
}

/// The dev issuer.
pub struct DevIssuer {
    issuer: String,
    audience: String,
    clock: Arc<dyn Clock>,
    failures: authz_axum::throttle::FailedAttempts,
    kid: String,
    signing_key: jsonwebtoken::EncodingKey,
    jwks: serde_json::Value,
    clients: HashMap<String, RegisteredClient>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DevIssuer {
    /// A new issuer named `issuer`, issuing tokens for `audience`, with one demo client per
    /// role (plus `alice`, who holds both payment roles and must pick one per token).
    pub fn new(issuer: String, audience: String, clock: Arc<dyn Clock>) -> (Self, Vec<DemoClient>) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("fresh key parses");
        let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
        let (x, y) = (&point[1..33], &point[33..65]);
        let kid = URL_SAFE_NO_PAD.encode(&sha256(&point)[..12]);
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }]
        });
        let signing_key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let specs: [(&str, &[&str]); 6] = [
            ("viewer-client", &["viewer"]),
            ("analyst-client", &["analyst"]),
            ("admin-client", &["admin"]),
            ("clerk-client", &["payments_clerk"]),
            ("approver-client", &["payments_approver"]),
            ("alice", &["payments_clerk", "payments_approver"]),
        ];
        let demo: Vec<DemoClient> = specs
            .iter()
            .map(|(id, roles)| DemoClient {
                id: id.to_string(),
                secret: random_secret(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
            })
            .collect();
        let clients = demo
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    RegisteredClient {
                        secret_hash: sha256(c.secret.as_bytes()),
                        roles: c.roles.clone(),
                    },
                )
            })
            .collect();
        (
            Self {
                issuer,
                audience,
                clock,
                failures: authz_axum::throttle::FailedAttempts::new(Default::default()),
                kid,
                signing_key,
                jwks,
                clients,
            },
            demo,
        )
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// Checks a client's credentials in constant time (an unknown id costs the same).
    fn authenticate_client(&self, id: &str, secret: &str) -> Option<&RegisteredClient> {
        let presented = sha256(secret.as_bytes());
        match self.clients.get(id) {
            Some(c) if bool::from(c.secret_hash.ct_eq(&presented)) => Some(c),
            Some(_) => None,
            None => {
                let _ = [0u8; 32].ct_eq(&presented);
                None
            }
        }
    }

    /// Signs an access token for `subject` with `roles`.
    pub fn issue(&self, subject: &str, roles: &[String]) -> String {
        let now = self.clock.unix_seconds();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let claims = serde_json::json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "client_id": subject,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "jti": uuid::Uuid::new_v4().to_string(),
            "roles": roles,
        });
        jsonwebtoken::encode(&header, &claims, &self.signing_key).expect("ES256 signing with a fresh key")
    }
}

/// `GET /.well-known/openid-configuration`
pub async fn discovery(State(issuer): State<Arc<DevIssuer>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "issuer": issuer.issuer,
        "jwks_uri": format!("{}/.well-known/jwks.json", issuer.issuer),
        "token_endpoint": format!("{}/oauth/token", issuer.issuer),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

/// `GET /.well-known/jwks.json`
pub async fn jwks(State(issuer): State<Arc<DevIssuer>>) -> Response {
    let mut r = Json(issuer.jwks.clone()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// The token request's form fields (RFC 6749 §4.4.2).
#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &'static str, description: &'static str, basic: bool) -> Response {
    let mut r = (
        status,
        Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"model-registry\""),
        );
    }
    r
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, rest) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
    let unescape = |s: &str| form_urlencoded_decode(s);
    Ok(Some((unescape(id), unescape(secret))))
}

fn form_urlencoded_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `POST /oauth/token`: the client-credentials grant. Client authentication by HTTP Basic or
/// by form fields (never both); secrets compared in constant time; responses `no-store`.
pub async fn token(
    State(issuer): State<Arc<DevIssuer>>,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(req): Form<TokenRequest>,
) -> Response {
    let basic = match basic_credentials(&headers) {
        Ok(b) => b,
        Err(()) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed client authentication",
                true,
            );
        }
    };
    let used_basic = basic.is_some();
    let (id, secret) = match (basic, req.client_id, req.client_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method, not both",
                false,
            );
        }
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication required",
                true,
            );
        }
    };
    let Some(client) = issuer.authenticate_client(&id, &secret) else {
        tracing::debug!(client_id = %id, "token request refused: bad client credentials");
        let address = connect.map(|c| c.0.0.ip());
        if let Some(wait) = issuer.failures.record_failure(address, Some(&id)) {
            // Over the failure budget: 429 (RFC 6585 §4) with Retry-After; a client presenting
            // its right secret is never throttled.
            let mut r = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_client",
                "too many failed client authentications; retry later",
                false,
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from(wait.as_secs().max(1)),
            );
            return r;
        }
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
            used_basic,
        );
    };
    if req.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
            false,
        );
    }
    let roles: Vec<String> = match req.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => client.roles.clone(),
        Some(scope) => {
            let asked: Vec<String> = scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if asked.iter().any(|r| !client.roles.contains(r)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the client may not receive that role",
                    false,
                );
            }
            asked
        }
    };
    let access_token = issuer.issue(&id, &roles);
    let mut r = Json(serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "scope": roles.join(" "),
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}
