//! Error responses of the token, revocation and introspection endpoints (RFC 6749 §5.2):
//! a JSON body `{"error", "error_description"}`, always `Cache-Control: no-store`.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An OAuth error response. The description never contains a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// The RFC 6749 §5.2 error code (`invalid_request`, `invalid_client`, `invalid_grant`, …).
    pub error: &'static str,
    /// A human-readable description (`error_description`).
    pub description: Cow<'static, str>,
    /// `Some(realm)`: answer with `WWW-Authenticate: Basic realm=…` (the client tried Basic).
    pub basic_realm: Option<String>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// A `DPoP-Nonce` to send (RFC 9449 §8).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_realm: None,
            retry_after: None,
            dpop_nonce: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    /// 400 `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description)
    }

    /// 400 `invalid_scope`.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// 400 `invalid_dpop_proof` (RFC 9449 §5).
    pub fn invalid_dpop_proof(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// 400 `use_dpop_nonce` with the nonce to retry with in `DPoP-Nonce` (RFC 9449 §8).
    pub fn use_dpop_nonce(nonce: String) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "use_dpop_nonce",
            "resend with the DPoP-Nonce value in the proof",
        );
        e.dpop_nonce = Some(nonce);
        e
    }

    /// 429 `slow_down`-style throttling (RFC 6585), with `Retry-After`.
    pub fn too_many_attempts(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_request",
            "too many failed attempts; retry later",
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }

    /// 503 `temporarily_unavailable`: the store does not answer.
    pub fn unavailable() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the authorization server's store is unavailable; retry later",
        );
        e.retry_after = Some(5);
        e
    }

    /// Adds the Basic challenge (RFC 6749 §5.2: required when the client used Basic).
    pub fn with_basic_challenge(mut self, realm: &str) -> Self {
        self.basic_realm = Some(realm.to_string());
        self
    }
}

impl From<axum::extract::rejection::BytesRejection> for OAuthError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        // 413 for a body over the limit, 400 otherwise: in RFC 6749 §5.2 form either way.
        Self::new(
            e.status(),
            "invalid_request",
            "the request body could not be read (at most 16 KiB)",
        )
    }
}

/// 405 in RFC 6749 §5.2 form for the POST-only endpoints.
pub(crate) async fn method_not_allowed() -> Response {
    let mut r = OAuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "this endpoint accepts POST only",
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

impl From<authz_core::keystore::StoreError> for OAuthError {
    fn from(e: authz_core::keystore::StoreError) -> Self {
        tracing::warn!(error = %e, "token service store unavailable");
        Self::unavailable()
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub(crate) fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.error, "error_description": self.description });
        let mut r = (self.status, axum::Json(body)).into_response();
        no_store(&mut r);
        if let Some(realm) = &self.basic_realm {
            let realm = realm.replace(['"', '\\'], "");
            if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(n) = &self.dpop_nonce
            && let Ok(v) = HeaderValue::from_str(n)
        {
            r.headers_mut().insert("dpop-nonce", v);
        }
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
