//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients. Never the query
//! string; never two methods at once.

use std::net::IpAddr;

use authz_core::oauth::{Client, ClientType};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::params::Params;
use super::{OAuthError, TokenService};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Basic,
    Post,
    None,
}

/// A client that passed authentication.
pub(crate) struct Authenticated {
    pub(crate) client: Client,
}

fn form_decode(s: &str) -> Option<String> {
    // RFC 6749 §2.3.1: client id and secret are form-urlencoded before Basic encoding.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match pairs.as_slice() {
        [(_, v)] => Some(v.clone()),
        _ => None,
    }
}

/// `(client_id, client_secret)` from `Authorization: Basic`, `Ok(None)` without the header.
fn basic(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    if values.next().is_some() {
        return Err(OAuthError::invalid_request("Authorization is repeated"));
    }
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "client authentication is Basic or in the body (client_secret_basic, client_secret_post)",
        ));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((
        form_decode(id).ok_or_else(bad)?,
        form_decode(secret).ok_or_else(bad)?,
    )))
}

impl TokenService {
    /// Authenticates the client of a token-endpoint-style request. Failures are throttled per
    /// address and client id (429 when over budget).
    pub(crate) async fn authenticate_client(
        &self,
        headers: &HeaderMap,
        params: &Params,
        address: Option<IpAddr>,
    ) -> Result<Authenticated, OAuthError> {
        // RFC 6749 §5.2: a client that tried the Authorization header gets the Basic challenge,
        // however malformed its attempt.
        let from_basic = basic(headers).map_err(|e| {
            if e.error == "invalid_client" {
                e.with_basic_challenge(&self.config.realm)
            } else {
                e
            }
        })?;
        let post_secret = params.get("client_secret")?;
        let post_id = params.get("client_id")?;
        let (id, secret, method) = match (from_basic, post_secret) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not Basic and client_secret together",
                ));
            }
            (Some((id, secret)), None) => {
                if post_id.is_some_and(|p| p != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the Basic credentials",
                    ));
                }
                (id, Some(secret), Method::Basic)
            }
            (None, Some(secret)) => {
                let id = post_id.ok_or_else(|| OAuthError::invalid_request("client_id is required"))?;
                (id.to_string(), Some(secret.to_string()), Method::Post)
            }
            (None, None) => {
                let id =
                    post_id.ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
                (id.to_string(), None, Method::None)
            }
        };
        let now = self.now();
        let client = self.store.client(&id).await?;
        let ok = match (&client, &secret) {
            (Some(c), Some(s)) => c.client_type == ClientType::Confidential && c.secret_matches(s, now),
            (Some(c), None) => c.client_type == ClientType::Public,
            (None, Some(s)) => {
                // Same work as a known client, so timing does not tell ids apart.
                let _ = authz_core::oauth::KeyHash::of(s);
                false
            }
            (None, None) => false,
        };
        match (ok, client) {
            (true, Some(client)) => Ok(Authenticated { client }),
            _ => {
                let mut err = OAuthError::invalid_client("client authentication failed");
                if let Some(wait) = self.client_failures.record_failure(address, Some(&id)) {
                    tracing::debug!(client_id = %id, "client authentication throttled");
                    err = OAuthError::too_many_attempts(wait.as_secs());
                } else {
                    tracing::info!(client_id = %id, method = ?method, "client authentication failed");
                }
                if method == Method::Basic {
                    err = err.with_basic_challenge(&self.config.realm);
                }
                Err(err)
            }
        }
    }
}
