//! CORS that cannot be made permissive by accident: explicit origins only, never `*` with
//! credentials, and an unlisted origin is never reflected.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::ConfigError;

/// Builds a [`CorsLayer`] from an explicit list of origins.
///
/// ```
/// let cors = authz_axum::cors::CorsPolicy::new()
///     .allow_origin("https://app.example.com")
///     .allow_credentials(true)
///     .build()?;
/// # Ok::<(), authz_axum::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    origins: Vec<String>,
    credentials: bool,
}

impl CorsPolicy {
    /// No origin allowed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `origin` (`scheme://host[:port]`, no path).
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allows each of `origins`.
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.origins.extend(origins.into_iter().map(Into::into));
        self
    }

    /// Lets browsers send credentials (cookies, `Authorization`) cross-origin.
    pub fn allow_credentials(mut self, yes: bool) -> Self {
        self.credentials = yes;
        self
    }

    /// Checks the origins and builds the layer. A wildcard is refused outright: with
    /// credentials the spec forbids it, and without them an API that reads `Authorization`
    /// should still name its callers.
    pub fn build(self) -> Result<CorsLayer, ConfigError> {
        let mut values = Vec::new();
        for origin in &self.origins {
            if origin.trim() == "*" {
                return Err(ConfigError(if self.credentials {
                    "CORS: a wildcard origin with credentials is refused (the Fetch spec forbids it); list the origins"
                        .into()
                } else {
                    "CORS: a wildcard origin is refused; list the origins that may call this API".into()
                }));
            }
            let url =
                url::Url::parse(origin).map_err(|e| ConfigError(format!("CORS origin {origin:?}: {e}")))?;
            let valid = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && !origin.ends_with('/');
            if !valid {
                return Err(ConfigError(format!(
                    "CORS origin {origin:?} must be exactly `scheme://host[:port]` (no path, no trailing slash)"
                )));
            }
            values.push(
                HeaderValue::from_str(origin)
                    .map_err(|_| ConfigError(format!("CORS origin {origin:?} is not a header value")))?,
            );
        }
        Ok(CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_credentials(self.credentials)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::WWW_AUTHENTICATE, HeaderName::from_static("retry-after")])
            .max_age(Duration::from_secs(600)))
    }
}
