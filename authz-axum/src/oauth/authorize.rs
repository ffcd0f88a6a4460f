//! The authorization endpoint (RFC 6749 §3.1, §4.1.1–4.1.2): validates the request, shows the
//! login page, and redirects back with a code, `state` and `iss` (RFC 9207).
//!
//! Errors about the client or the redirect URI are shown on a page and **never** redirected
//! (an unverified redirect URI is an open redirector, RFC 6749 §4.1.2.1); every other error is
//! redirected to the client with `error`, `state` and `iss`.

use std::net::IpAddr;
use std::sync::Arc;

use authz_core::oauth::{
    AuthorizationCode, Client, ClientType, GrantType, KeyHash, LoginSession, TokenFamily, new_secret, pkce,
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::params::{Params, split_scope};
use super::token::user_roles;
use super::{ClientAddress, OAuthError, TokenService, password};

const SESSION_COOKIE: &str = "authz_session";
const CSRF_COOKIE: &str = "authz_csrf";

/// A validated authorization request.
struct Request {
    client: Client,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: String,
    code_challenge_method: Option<String>,
}

/// What went wrong, and how to tell.
enum Failure {
    /// Shown on a page: the client or redirect URI cannot be trusted.
    Page(StatusCode, String),
    /// Redirected to the client.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    /// The store is down.
    Unavailable,
}

impl From<authz_core::keystore::StoreError> for Failure {
    fn from(e: authz_core::keystore::StoreError) -> Self {
        tracing::warn!(error = %e, "token service store unavailable");
        Failure::Unavailable
    }
}

/// The `Cookie` value named `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The origin (`scheme://host[:port]`) of a URL, for the CSP's `form-action`.
fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        url::Origin::Tuple(..) => Some(u.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

impl TokenService {
    fn cookie_header(
        &self,
        name: &str,
        value: &str,
        path: &str,
        max_age: u64,
        same_site: &str,
    ) -> HeaderValue {
        let secure = if self.config.cookies_secure() {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// An HTML page with the authorization server's security headers.
    fn page(&self, status: StatusCode, title: &str, body: &str, form_target: Option<&str>) -> Response {
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}}\
             label{{display:block;margin:.8rem 0 .2rem}}input[type=text],input[type=password]{{width:100%;padding:.4rem;box-sizing:border-box}}\
             button{{margin-top:1rem;padding:.5rem 1.2rem}}.error{{color:#a00}}</style></head>\
             <body>{body}</body></html>\n",
            title = escape(title)
        );
        let mut r = (status, html).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        // The login form posts to us and we redirect to the client: both must be allowed.
        let form_action = match form_target.and_then(origin) {
            Some(o) => format!("'self' {o}"),
            None => "'self'".into(),
        };
        let csp = format!(
            "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        r
    }

    fn failure_response(&self, failure: Failure) -> Response {
        match failure {
            Failure::Page(status, message) => {
                tracing::info!(%status, reason = %message, "authorization request refused");
                self.page(
                    status,
                    "Authorization error",
                    &format!(
                        "<h1>Authorization error</h1><p class=\"error\">{}</p>",
                        escape(&message)
                    ),
                    None,
                )
            }
            Failure::Unavailable => {
                let mut r = self.page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "<h1>Temporarily unavailable</h1><p>Please try again in a moment.</p>",
                    None,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
            Failure::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                tracing::info!(error, reason = %description, "authorization request refused (redirected)");
                let mut pairs = vec![("error", error.to_string()), ("error_description", description)];
                if let Some(s) = state {
                    pairs.push(("state", s));
                }
                self.redirect(&redirect_uri, pairs)
            }
        }
    }

    /// 303 to `redirect_uri` with `pairs` and `iss` added to its query (RFC 9207).
    fn redirect(&self, redirect_uri: &str, mut pairs: Vec<(&'static str, String)>) -> Response {
        pairs.push(("iss", self.config.issuer.clone()));
        let Ok(mut url) = url::Url::parse(redirect_uri) else {
            return self.failure_response(Failure::Page(
                StatusCode::BAD_REQUEST,
                "invalid redirect_uri".into(),
            ));
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &pairs {
                q.append_pair(k, v);
            }
        }
        let mut r = StatusCode::SEE_OTHER.into_response();
        if let Ok(v) = HeaderValue::from_str(url.as_str()) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r.headers_mut()
            .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        r
    }

    /// Validates an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
    async fn validate(&self, params: &Params) -> Result<Request, Failure> {
        let page = |m: &str| Failure::Page(StatusCode::BAD_REQUEST, m.to_string());
        let client_id = params
            .get("client_id")
            .map_err(|_| page("client_id is repeated"))?
            .ok_or_else(|| page("client_id is required"))?;
        let client = self
            .store
            .client(client_id)
            .await?
            .ok_or_else(|| page("unknown client"))?;
        let redirect_uri = match params
            .get("redirect_uri")
            .map_err(|_| page("redirect_uri is repeated"))?
        {
            // Exact string comparison (RFC 9700 §4.1.3): no wildcards, no prefixes.
            Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_string(),
            Some(_) => return Err(page("redirect_uri is not registered for this client")),
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => return Err(page("redirect_uri is required")),
        };
        let state = params.get("state").ok().flatten().map(str::to_string);
        let redirect = |error: &'static str, description: &str| Failure::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            description: description.to_string(),
        };
        if let Err(e) = params.no_repeats() {
            return Err(redirect("invalid_request", &e.description));
        }
        match params.get("response_type").ok().flatten() {
            Some("code") => {}
            None => return Err(redirect("invalid_request", "response_type is required")),
            Some(_) => {
                return Err(redirect(
                    "unsupported_response_type",
                    "only response_type=code is supported (the implicit flow is not)",
                ));
            }
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(redirect(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            ));
        }
        let method = params.get("code_challenge_method").ok().flatten();
        let code_challenge = match params.get("code_challenge").ok().flatten() {
            Some(c) => {
                if method != Some("S256") {
                    return Err(redirect(
                        "invalid_request",
                        "code_challenge_method must be S256 (plain is not supported)",
                    ));
                }
                if !pkce::is_valid_s256_challenge(c) {
                    return Err(redirect(
                        "invalid_request",
                        "code_challenge must be 43 base64url characters (S256)",
                    ));
                }
                c.to_string()
            }
            None if client.client_type == ClientType::Public || self.config.require_pkce_for_confidential => {
                return Err(redirect(
                    "invalid_request",
                    "code_challenge is required (PKCE with S256)",
                ));
            }
            None if method.is_some() => {
                return Err(redirect(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ));
            }
            None => String::new(),
        };
        let scope = params.get("scope").ok().flatten().map(str::to_string);
        if let Some(s) = &scope
            && split_scope(s).is_err()
        {
            return Err(redirect("invalid_scope", "malformed scope"));
        }
        Ok(Request {
            client,
            redirect_uri,
            state,
            scope,
            code_challenge,
            code_challenge_method: method.map(str::to_string),
        })
    }

    /// Issues a code for `username` and redirects to the client.
    async fn issue_code(
        &self,
        req: &Request,
        username: &str,
        extra: Option<HeaderValue>,
    ) -> Result<Response, Failure> {
        let now = self.now();
        let fail = |error: &'static str, description: String| Failure::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error,
            description,
        };
        let user = self
            .store
            .user(username)
            .await?
            .ok_or_else(|| fail("access_denied", "the account no longer exists".into()))?;
        let available = user_roles(&user.roles, &req.client.roles);
        let roles = match &req.scope {
            None => available,
            Some(s) => {
                let asked = split_scope(s).map_err(|_| fail("invalid_scope", "malformed scope".into()))?;
                if let Some(bad) = asked.iter().find(|r| !available.contains(r)) {
                    return Err(fail(
                        "invalid_scope",
                        format!("scope {bad:?} is not granted to this user and client"),
                    ));
                }
                asked
            }
        };
        let family_id = new_secret()[..22].to_string();
        let code = new_secret();
        self.store
            .insert_code(
                AuthorizationCode {
                    hash: KeyHash::of(&code),
                    client_id: req.client.id.clone(),
                    redirect_uri: req.redirect_uri.clone(),
                    code_challenge: req.code_challenge.clone(),
                    subject: user.username.clone(),
                    roles: roles.clone(),
                    scope: roles,
                    family_id: family_id.clone(),
                    issued_at: now,
                    expires_at: now + self.config.code_lifetime.as_secs(),
                },
                TokenFamily {
                    id: family_id,
                    client_id: req.client.id.clone(),
                    subject: user.username.clone(),
                    created_at: now,
                    expires_at: now + self.config.refresh_absolute_lifetime.as_secs(),
                    last_used_at: now,
                    revoked_at: None,
                },
            )
            .await?;
        tracing::info!(client_id = %req.client.id, sub = %user.username, "authorization code issued");
        let mut pairs = vec![("code", code)];
        if let Some(s) = &req.state {
            pairs.push(("state", s.clone()));
        }
        let mut r = self.redirect(&req.redirect_uri, pairs);
        if let Some(c) = extra {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        Ok(r)
    }

    /// The login page for `req`, with a CSRF token bound to a cookie (double submit).
    fn login_page(
        &self,
        req: &Request,
        headers: &HeaderMap,
        status: StatusCode,
        error: Option<&str>,
    ) -> Response {
        let csrf = cookie(headers, CSRF_COOKIE)
            .filter(|c| c.len() == 43)
            .map(str::to_string)
            .unwrap_or_else(new_secret);
        let mut hidden = String::new();
        let mut field = |name: &str, value: &str| {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            ));
        };
        field("response_type", "code");
        field("client_id", &req.client.id);
        field("redirect_uri", &req.redirect_uri);
        if let Some(s) = &req.state {
            field("state", s);
        }
        if let Some(s) = &req.scope {
            field("scope", s);
        }
        if !req.code_challenge.is_empty() {
            field("code_challenge", &req.code_challenge);
        }
        if let Some(m) = &req.code_challenge_method {
            field("code_challenge_method", m);
        }
        field("csrf_token", &csrf);
        let error = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
            .unwrap_or_default();
        let body = format!(
            "<h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{error}\
             <form method=\"post\" action=\"{action}\">{hidden}\
             <label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            client = escape(&req.client.id),
            action = escape(&self.config.url(&self.config.endpoints.authorize)),
        );
        let mut r = self.page(status, "Sign in", &body, Some(&req.redirect_uri));
        let c = self.cookie_header(CSRF_COOKIE, &csrf, &self.config.endpoints.authorize, 3600, "Lax");
        r.headers_mut().append(header::SET_COOKIE, c);
        r
    }

    /// The user of a live login session, if the request carries one.
    async fn session_user(&self, headers: &HeaderMap) -> Result<Option<String>, Failure> {
        let Some(id) = cookie(headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let session = self.store.session(&KeyHash::of(id)).await?;
        Ok(session.filter(|s| self.now() < s.expires_at).map(|s| s.username))
    }

    async fn authorize(
        &self,
        params: Params,
        headers: &HeaderMap,
        address: Option<IpAddr>,
        login: bool,
    ) -> Result<Response, Failure> {
        let req = self.validate(&params).await?;
        if !login {
            let prompt = params.get("prompt").ok().flatten();
            if prompt != Some("login")
                && let Some(user) = self.session_user(headers).await?
            {
                return self.issue_code(&req, &user, None).await;
            }
            if prompt == Some("none") {
                // OpenID Connect Core §3.1.2.6: no interaction allowed, and none possible
                // without a session.
                return Err(Failure::Redirect {
                    redirect_uri: req.redirect_uri.clone(),
                    state: req.state.clone(),
                    error: "login_required",
                    description: "prompt=none and no login session".into(),
                });
            }
            return Ok(self.login_page(&req, headers, StatusCode::OK, None));
        }
        // A login form submission: CSRF first (double submit, constant time).
        let sent = params.get("csrf_token").ok().flatten().unwrap_or("");
        let expected = cookie(headers, CSRF_COOKIE).unwrap_or("");
        if expected.len() != 43 || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Failure::Page(
                StatusCode::BAD_REQUEST,
                "The sign-in form expired or did not come from this site. Go back and start again.".into(),
            ));
        }
        let username = params.get("username").ok().flatten().unwrap_or("");
        let pw = params.get("password").ok().flatten().unwrap_or("").to_string();
        if let Some(wait) = self.logins.attempt(username, address) {
            tracing::info!(user = %username, "login throttled");
            let mut r = self.login_page(
                &req,
                headers,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many sign-in attempts. Try again in {} seconds.",
                    wait.as_secs()
                )),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs()));
            return Ok(r);
        }
        let user = self.store.user(username).await?;
        // Unknown users are checked against a dummy hash: the same Argon2 work either way.
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = password::verify_blocking(pw, hash).await && user.is_some();
        if !ok {
            tracing::info!(user = %username, "login failed");
            return Ok(self.login_page(
                &req,
                headers,
                StatusCode::UNAUTHORIZED,
                Some("Invalid username or password."),
            ));
        }
        let now = self.now();
        let session_id = new_secret();
        self.store
            .insert_session(LoginSession {
                hash: KeyHash::of(&session_id),
                username: username.to_string(),
                created_at: now,
                expires_at: now + self.config.session_lifetime.as_secs(),
            })
            .await?;
        tracing::info!(user = %username, "login succeeded");
        let cookie = self.cookie_header(
            SESSION_COOKIE,
            &session_id,
            "/",
            self.config.session_lifetime.as_secs(),
            "Lax",
        );
        self.issue_code(&req, username, Some(cookie)).await
    }
}

/// `GET /authorize`: parameters in the query.
pub(crate) async fn get_authorize(
    State(service): State<Arc<TokenService>>,
    ClientAddress(address): ClientAddress,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(uri.query().unwrap_or("").as_bytes());
    match service.authorize(params, &headers, address, false).await {
        Ok(r) => r,
        Err(f) => service.failure_response(f),
    }
}

/// `POST /authorize`: an authorization request in the body (RFC 6749 §3.1 allows POST), or the
/// login form's submission (it carries `username`).
pub(crate) async fn post_authorize(
    State(service): State<Arc<TokenService>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let params = match Params::form(&headers, &body) {
        Ok(p) => p,
        Err(e) => {
            return service
                .failure_response(Failure::Page(StatusCode::BAD_REQUEST, e.description.into_owned()));
        }
    };
    let login = params.has("username") || params.has("password");
    match service.authorize(params, &headers, address, login).await {
        Ok(r) => r,
        Err(f) => service.failure_response(f),
    }
}

/// `POST /logout`: ends the login session at the authorization server (tokens already issued
/// live on; revoke them at the revocation endpoint).
pub(crate) async fn logout(State(service): State<Arc<TokenService>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = service.store.delete_session(&KeyHash::of(id)).await
    {
        return OAuthError::from(e).into_response();
    }
    let mut r = service.page(StatusCode::OK, "Signed out", "<h1>Signed out</h1>", None);
    let c = service.cookie_header(SESSION_COOKIE, "", "/", 0, "Lax");
    r.headers_mut().append(header::SET_COOKIE, c);
    r
}
