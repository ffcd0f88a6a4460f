//! Rejections as responses: 401 and 403 as RFC 6750 says, 503 when no key can be had, bodies in
//! `application/problem+json` (RFC 9457) that never echo the credential.

use std::fmt;
use std::sync::Arc;

use authz_core::RequirementExpr;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What went wrong, as a shaping hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectionInfo {
    /// The status about to be sent.
    pub status: StatusCode,
    /// The RFC 6750 error code, if any (`invalid_request`, `invalid_token`, `insufficient_scope`).
    pub error: Option<&'static str>,
    /// A short human title.
    pub title: &'static str,
    /// A sentence for the caller; never contains credential material.
    pub detail: String,
}

type Shaper = Arc<dyn Fn(&RejectionInfo) -> Response + Send + Sync>;

/// How rejections are rendered: the realm, and an optional hook that shapes every body.
#[derive(Clone)]
pub struct RejectionConfig {
    realm: String,
    shaper: Option<Shaper>,
    disclose_requirements: bool,
    /// Set by [`crate::AuthLayer::dpop`]: the `algs` of `DPoP` challenges.
    pub(crate) dpop_algs: Option<String>,
}

impl fmt::Debug for RejectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectionConfig")
            .field("realm", &self.realm)
            .field("shaper", &self.shaper.is_some())
            .field("disclose_requirements", &self.disclose_requirements)
            .field("dpop_algs", &self.dpop_algs)
            .finish()
    }
}

impl Default for RejectionConfig {
    fn default() -> Self {
        Self {
            realm: "api".into(),
            shaper: None,
            disclose_requirements: false,
            dpop_algs: None,
        }
    }
}

impl RejectionConfig {
    /// Rejections naming `realm` in `WWW-Authenticate`. The realm must be printable ASCII
    /// without `"` or `\`.
    pub fn new(realm: impl Into<String>) -> Result<Self, crate::ConfigError> {
        let realm = realm.into();
        if realm.is_empty()
            || !realm
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(crate::ConfigError(format!(
                "realm {realm:?} must be non-empty printable ASCII without quotes or backslashes"
            )));
        }
        Ok(Self {
            realm,
            shaper: None,
            disclose_requirements: false,
            dpop_algs: None,
        })
    }

    /// Shapes every rejection's response (status and `WWW-Authenticate` are set afterwards and
    /// cannot be changed by the hook, so the RFC 6750 contract holds).
    pub fn shape_with(mut self, f: impl Fn(&RejectionInfo) -> Response + Send + Sync + 'static) -> Self {
        self.shaper = Some(Arc::new(f));
        self
    }

    /// Names the missing permission or role in 403 bodies (default off: a 403 says only that
    /// something is missing, so callers cannot map the policy by probing). Turn on for internal
    /// services whose callers should see what to ask for.
    pub fn disclose_requirements(mut self, disclose: bool) -> Self {
        self.disclose_requirements = disclose;
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// Why a request was refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No credentials (401 without an error code, RFC 6750 §3).
    MissingCredentials(Arc<RejectionConfig>),
    /// Credentials for another scheme (`Basic …`): 401 without an error code (RFC 6750 §3).
    UnsupportedScheme(Arc<RejectionConfig>),
    /// A malformed request: several `Authorization` headers, `Bearer` without a well-formed
    /// token (400 `invalid_request`, RFC 6750 §3.1).
    InvalidRequest(Arc<RejectionConfig>, &'static str),
    /// A credential was presented and is not valid.
    InvalidToken(Arc<RejectionConfig>),
    /// Authenticated, but the requirement is not met. The text is the response's `detail`: a
    /// sentence naming what the resource requires (a permission as a permission, a role as a
    /// role), never credential material. See [`AuthRejection::unmet`].
    Forbidden(Arc<RejectionConfig>, String),
    /// No key could be obtained: the key source is down.
    KeySourceUnavailable(Arc<RejectionConfig>),
    /// A failed credential check over the failure budget (429, `Retry-After` in seconds).
    TooManyAttempts(Arc<RejectionConfig>, u64),
    /// A DPoP proof failed a check (401 `invalid_dpop_proof`, RFC 9449 §7.1); the text names
    /// the check.
    InvalidDpopProof(Arc<RejectionConfig>, &'static str),
    /// A DPoP proof lacks the current server nonce (401 `use_dpop_nonce` with a `DPoP-Nonce`
    /// header, RFC 9449 §9).
    UseDpopNonce(Arc<RejectionConfig>, String),
    /// The route requires a DPoP-bound token and got a bearer token (401 with a `DPoP`
    /// challenge).
    DpopRequired(Arc<RejectionConfig>),
    /// The resource does not exist, or the caller may not see it (404): one answer for both,
    /// byte for byte, so the response is no oracle for which ids exist.
    NotFound(Arc<RejectionConfig>),
    /// The store the resource is loaded from did not answer (503, `Retry-After`).
    StoreUnavailable(Arc<RejectionConfig>),
    /// No auth layer ran: a server configuration error.
    LayerMissing,
}

impl AuthRejection {
    /// 403 for a `requirement` the caller does not meet, with a detail that names a permission
    /// as a permission and a role as a role:
    ///
    /// - `the caller lacks the permission this resource requires: "data:write"`
    /// - `the caller lacks the role this resource requires: "admin"`
    /// - `the caller does not meet this resource's requirement: any("data:write", role("admin"))`
    ///
    /// Unless the service opted in with [`RejectionConfig::disclose_requirements`], the detail
    /// says only that a permission is missing: naming it tells every caller how the policy is
    /// built.
    pub fn unmet(config: Arc<RejectionConfig>, requirement: &RequirementExpr) -> Self {
        if !config.disclose_requirements {
            return AuthRejection::Forbidden(
                config,
                "the caller lacks a permission or role this resource requires".into(),
            );
        }
        let detail = match requirement {
            RequirementExpr::Permission(_) => {
                format!("the caller lacks the permission this resource requires: {requirement}")
            }
            RequirementExpr::Role(role) => {
                format!("the caller lacks the role this resource requires: {role:?}")
            }
            _ => format!("the caller does not meet this resource's requirement: {requirement}"),
        };
        AuthRejection::Forbidden(config, detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::MissingCredentials(_)
            | AuthRejection::UnsupportedScheme(_)
            | AuthRejection::InvalidToken(_)
            | AuthRejection::InvalidDpopProof(..)
            | AuthRejection::UseDpopNonce(..)
            | AuthRejection::DpopRequired(_) => StatusCode::UNAUTHORIZED,
            AuthRejection::InvalidRequest(..) => StatusCode::BAD_REQUEST,
            AuthRejection::Forbidden(..) => StatusCode::FORBIDDEN,
            AuthRejection::KeySourceUnavailable(_) | AuthRejection::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthRejection::NotFound(_) => StatusCode::NOT_FOUND,
            AuthRejection::TooManyAttempts(..) => StatusCode::TOO_MANY_REQUESTS,
            AuthRejection::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn info(&self) -> RejectionInfo {
        let (error, title, detail): (Option<&'static str>, &'static str, String) = match self {
            AuthRejection::MissingCredentials(_) => (
                None,
                "Unauthorized",
                "this resource needs a bearer token in the Authorization header".into(),
            ),
            AuthRejection::UnsupportedScheme(_) => (
                None,
                "Unauthorized",
                "this resource accepts only the Bearer authorization scheme".into(),
            ),
            AuthRejection::InvalidRequest(_, why) => {
                (Some("invalid_request"), "Bad Request", (*why).to_string())
            }
            AuthRejection::InvalidToken(_) => (
                Some("invalid_token"),
                "Unauthorized",
                "the access token is invalid or expired".into(),
            ),
            AuthRejection::Forbidden(_, detail) => (Some("insufficient_scope"), "Forbidden", detail.clone()),
            AuthRejection::KeySourceUnavailable(_) => (
                None,
                "Service Unavailable",
                "the credential cannot be checked right now (no signing key, or the key store does not answer); retry later"
                    .into(),
            ),
            AuthRejection::TooManyAttempts(..) => (
                None,
                "Too Many Requests",
                "too many failed credential checks; retry later with a valid credential".into(),
            ),
            AuthRejection::InvalidDpopProof(_, why) => (
                Some("invalid_dpop_proof"),
                "Unauthorized",
                format!("the DPoP proof is invalid: {why}"),
            ),
            AuthRejection::UseDpopNonce(..) => (
                Some("use_dpop_nonce"),
                "Unauthorized",
                "resend the request with a DPoP proof carrying the nonce in the DPoP-Nonce header".into(),
            ),
            AuthRejection::DpopRequired(_) => (
                Some("invalid_token"),
                "Unauthorized",
                "this resource requires a DPoP-bound access token (Authorization: DPoP, with a DPoP proof)".into(),
            ),
            AuthRejection::NotFound(_) => (None, "Not Found", "no such resource".into()),
            AuthRejection::StoreUnavailable(_) => (
                None,
                "Service Unavailable",
                "the resource cannot be loaded right now; retry later".into(),
            ),
            AuthRejection::LayerMissing => (
                None,
                "Internal Server Error",
                "no authentication ran for this route: did you add the auth layer (authz_axum::AuthLayer)?"
                    .into(),
            ),
        };
        RejectionInfo {
            status: self.status(),
            error,
            title,
            detail,
        }
    }

    fn config(&self) -> Option<&RejectionConfig> {
        match self {
            AuthRejection::MissingCredentials(c)
            | AuthRejection::UnsupportedScheme(c)
            | AuthRejection::InvalidRequest(c, _)
            | AuthRejection::InvalidToken(c)
            | AuthRejection::Forbidden(c, _)
            | AuthRejection::KeySourceUnavailable(c)
            | AuthRejection::TooManyAttempts(c, _)
            | AuthRejection::InvalidDpopProof(c, _)
            | AuthRejection::UseDpopNonce(c, _)
            | AuthRejection::DpopRequired(c)
            | AuthRejection::NotFound(c)
            | AuthRejection::StoreUnavailable(c) => Some(c),
            AuthRejection::LayerMissing => None,
        }
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.info().detail)
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let info = self.info();
        let default = RejectionConfig::default();
        let config = self.config().unwrap_or(&default);
        if matches!(self, AuthRejection::LayerMissing) {
            tracing::error!("authz: a guarded route ran without the auth layer; add AuthLayer to the router");
        }
        let mut response = match &config.shaper {
            Some(shape) => shape(&info),
            None => {
                let body = serde_json::json!({
                    "type": "about:blank",
                    "title": info.title,
                    "status": info.status.as_u16(),
                    "detail": info.detail,
                });
                // Bodies end with a newline (friendlier in a terminal, `curl` included).
                let mut r = format!("{body}\n").into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                r
            }
        };
        *response.status_mut() = info.status;
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match info.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => {
                let dpop_error = matches!(
                    self,
                    AuthRejection::InvalidDpopProof(..)
                        | AuthRejection::UseDpopNonce(..)
                        | AuthRejection::DpopRequired(_)
                );
                // RFC 9449 §7.1: DPoP errors are DPoP challenges; a service that accepts DPoP
                // offers both schemes on every 401.
                if !dpop_error {
                    let mut challenge = format!("Bearer realm=\"{}\"", config.realm);
                    if let Some(e) = info.error {
                        challenge.push_str(&format!(", error=\"{e}\""));
                    }
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        headers.append(header::WWW_AUTHENTICATE, v);
                    }
                }
                let algs = config.dpop_algs.clone().unwrap_or_else(|| "ES256".into());
                if dpop_error || (config.dpop_algs.is_some() && info.status == StatusCode::UNAUTHORIZED) {
                    let mut challenge = format!("DPoP realm=\"{}\"", config.realm);
                    if let (true, Some(e)) = (dpop_error, info.error) {
                        challenge.push_str(&format!(", error=\"{e}\""));
                    }
                    challenge.push_str(&format!(", algs=\"{algs}\""));
                    if let Ok(v) = HeaderValue::from_str(&challenge) {
                        headers.append(header::WWW_AUTHENTICATE, v);
                    }
                }
                if let AuthRejection::UseDpopNonce(_, nonce) = &self
                    && let Ok(v) = HeaderValue::from_str(nonce)
                {
                    headers.insert("dpop-nonce", v);
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                if let AuthRejection::TooManyAttempts(_, secs) = &self {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(*secs));
                }
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(requirement: RequirementExpr) -> String {
        let disclosing = RejectionConfig::default().disclose_requirements(true);
        AuthRejection::unmet(Arc::new(disclosing), &requirement).to_string()
    }

    #[test]
    fn by_default_the_requirement_is_not_disclosed() {
        let r = AuthRejection::unmet(
            Arc::new(RejectionConfig::default()),
            &RequirementExpr::Permission("data:write".into()),
        );
        assert_eq!(
            r.to_string(),
            "the caller lacks a permission or role this resource requires"
        );
    }

    #[test]
    fn a_role_is_named_as_a_role_and_a_permission_as_a_permission() {
        assert_eq!(
            detail(RequirementExpr::Permission("data:write".into())),
            r#"the caller lacks the permission this resource requires: "data:write""#
        );
        assert_eq!(
            detail(RequirementExpr::Role("admin".into())),
            r#"the caller lacks the role this resource requires: "admin""#
        );
        assert_eq!(
            detail(RequirementExpr::Any(vec![
                RequirementExpr::Permission("data:write".into()),
                RequirementExpr::Role("admin".into()),
            ])),
            r#"the caller does not meet this resource's requirement: any("data:write", role("admin"))"#
        );
    }
}
