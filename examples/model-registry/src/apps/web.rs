//! The server-side web app pattern (a "backend for frontend") at `/app/web/`: the confidential
//! client `web-app` runs authorization code + PKCE, exchanges the code **on this server** with
//! its client secret, and keeps the access and refresh tokens in a server-side session. The
//! browser holds only a random session id in an `HttpOnly; SameSite=Strict; Path=/app/web`
//! cookie; every state-changing `POST` also carries a synchronizer CSRF token kept in the
//! session. No token ever reaches the browser.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::core::oauth::{new_secret, pkce};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tokio::sync::Mutex;

use super::sessions::Expiring;
use super::{PagesConfig, cookie, escape, html};
use crate::issuer::WEB_CLIENT;

/// The session cookie (the only thing the browser holds once signed in).
pub const SESSION_COOKIE: &str = "web_session";
/// The pre-login cookie: binds a sign-in in progress (its `state` and PKCE verifier, kept here)
/// to the browser that started it.
pub const LOGIN_COOKIE: &str = "web_login";
const PATH: &str = "/app/web";
/// How long a sign-in may take, from "Sign in" to the callback.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Absolute lifetime of a web session (the refresh token's own limits apply too).
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const MAX_ENTRIES: usize = 10_000;

/// A sign-in in progress.
#[derive(Clone)]
struct Pending {
    state: String,
    verifier: String,
}

/// A signed-in browser's server-side state. Never `Debug`: it holds bearer credentials.
struct Session {
    subject: String,
    access_token: String,
    refresh_token: String,
    csrf: String,
    /// The outcome of the last action, shown once on the page.
    notice: Option<String>,
}

/// The tokens of a token-endpoint answer.
struct Tokens {
    access: String,
    refresh: String,
    expires_in: u64,
}

/// A request that did not go through, and the page that says so (no detail that helps an
/// attacker; the log has the reason).
struct Refused(StatusCode, &'static str);

/// The web app's state.
struct WebApp {
    http: reqwest::Client,
    secret: String,
    issuer: String,
    redirect_uri: String,
    authorize_url: String,
    logout_url: String,
    token_url: String,
    revoke_url: String,
    me_url: String,
    secure_cookies: bool,
    csp: String,
    pending: Expiring<Pending>,
    sessions: Expiring<Arc<Mutex<Session>>>,
}

/// The web app's routes under `/app/web/`.
pub fn router(config: &PagesConfig) -> Router {
    let service = config.service.config();
    let e = &service.endpoints;
    let authorize_url = service.url(&e.authorize);
    let form_action = match super::origin(&authorize_url) {
        Some(o) if o != config.local => format!("'self' {o}"),
        _ => "'self'".into(),
    };
    let app = Arc::new(WebApp {
        http: reqwest::Client::builder()
            // Server to server over loopback: never through a proxy, never following redirects.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client"),
        secret: config.web_secret.clone(),
        issuer: service.issuer.clone(),
        redirect_uri: format!("{}{PATH}/callback", config.local),
        logout_url: service.url(&e.logout),
        authorize_url,
        token_url: format!("{}{}", config.local, e.token),
        revoke_url: format!("{}{}", config.local, e.revoke),
        me_url: format!("{}/me", config.local),
        secure_cookies: service.cookies_secure(),
        csp: format!(
            "default-src 'none'; style-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        pending: Expiring::new_evicting(LOGIN_TTL, MAX_ENTRIES),
        sessions: Expiring::new(SESSION_TTL, MAX_ENTRIES),
    });
    Router::new()
        .route(PATH, get(|| async { Redirect::to("/app/web/") }))
        .route("/app/web/", get(home))
        .route("/app/web/style.css", get(|| async { super::style() }))
        .route("/app/web/login", get(login))
        .route("/app/web/callback", get(callback))
        .route("/app/web/api", post(call_api))
        .route("/app/web/refresh", post(refresh))
        .route("/app/web/logout", post(logout))
        .with_state(app)
}

impl WebApp {
    fn cookie(&self, name: &str, value: &str, max_age: u64, same_site: &str) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path={PATH}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"
        ))
        .expect("cookie values are base64url")
    }

    fn page(&self, status: StatusCode, body: &str) -> Response {
        html(
            status,
            "Server-side web app",
            "/app/web/style.css",
            body,
            &self.csp,
        )
    }

    fn refused(&self, r: Refused) -> Response {
        self.page(
            r.0,
            &format!(
                "<h1>Server-side web app</h1><p class=\"error\" id=\"error\">{}</p>\
                 <p><a id=\"home\" href=\"/app/web/\">Back to the web app</a></p>",
                escape(r.1)
            ),
        )
    }

    /// A `POST` to the token endpoint, authenticated with the client secret (Basic).
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, Refused> {
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(WEB_CLIENT, Some(&self.secret))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "web app: token endpoint unreachable");
                Refused(
                    StatusCode::BAD_GATEWAY,
                    "The authorization server could not be reached.",
                )
            })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            // The OAuth error code only: never the request, which carries a code or token.
            tracing::info!(%status, error = %body["error"].as_str().unwrap_or("-"),
                "web app: token request refused");
            return Err(Refused(
                StatusCode::BAD_REQUEST,
                "The authorization server refused the request. Please sign in again.",
            ));
        }
        match (body["access_token"].as_str(), body["refresh_token"].as_str()) {
            (Some(a), Some(r)) => Ok(Tokens {
                access: a.to_string(),
                refresh: r.to_string(),
                expires_in: body["expires_in"].as_u64().unwrap_or(0),
            }),
            _ => {
                tracing::warn!("web app: token response without access and refresh token");
                Err(Refused(
                    StatusCode::BAD_GATEWAY,
                    "The authorization server answered oddly.",
                ))
            }
        }
    }

    /// `GET /me` with the access token: status and body, for the page.
    async fn me(&self, access_token: &str) -> Result<(StatusCode, serde_json::Value), Refused> {
        let response = self
            .http
            .get(&self.me_url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e.without_url(), "web app: API unreachable");
                Refused(StatusCode::BAD_GATEWAY, "The API could not be reached.")
            })?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or_default()))
    }

    /// The session of a state-changing `POST`, locked, when its cookie names a live session
    /// **and** the form carries that session's CSRF token (compared in constant time). Else 403.
    async fn authorized(
        &self,
        headers: &HeaderMap,
        form: Result<Form<CsrfForm>, FormRejection>,
    ) -> Result<(String, tokio::sync::OwnedMutexGuard<Session>), Response> {
        let forbidden = || {
            self.refused(Refused(
                StatusCode::FORBIDDEN,
                "This request did not come from a page of this web app, or the session has ended.",
            ))
        };
        let id = cookie(headers, SESSION_COOKIE).ok_or_else(forbidden)?;
        let session = self.sessions.get(id).ok_or_else(forbidden)?;
        let sent = form.ok().and_then(|f| f.0.csrf_token).unwrap_or_default();
        // One action at a time per session (two refreshes at once would spend one token twice).
        let session = session.lock_owned().await;
        if session.csrf.is_empty() || !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            tracing::info!("web app: POST without a valid CSRF token refused");
            return Err(forbidden());
        }
        Ok((id.to_string(), session))
    }

    /// Clears the session cookie.
    fn clear_session_cookie(&self, r: &mut Response) {
        r.headers_mut()
            .append(header::SET_COOKIE, self.cookie(SESSION_COOKIE, "", 0, "Strict"));
    }
}

/// The form of every state-changing `POST`.
#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

/// What the authorization server sends back to the callback.
#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// What `?signed_out=` on the home page says.
#[derive(Deserialize)]
struct Home {
    signed_out: Option<String>,
}

fn see_other(location: &str) -> Response {
    let mut r = Redirect::to(location).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /app/web/`: who is signed in and the three actions, or the "Sign in" link.
async fn home(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    query: Result<Query<Home>, QueryRejection>,
) -> Response {
    let session = cookie(&headers, SESSION_COOKIE).and_then(|id| app.sessions.get(id));
    let intro = "<h1>Server-side web app</h1>\
        <p class=\"note\">The <em>server-side web app</em> row of the token-storage table: this server \
        runs the sign-in (authorization code + PKCE, client <code>web-app</code> with its secret) and \
        keeps the access and refresh tokens in its own memory. Your browser holds only a session \
        cookie (<code>HttpOnly; SameSite=Strict</code>): script cannot read it, and other sites \
        cannot make your browser send it. Every button posts a CSRF token too.</p>";
    let Some(session) = session else {
        let notice = match query.ok().and_then(|q| q.0.signed_out).as_deref() {
            Some("revoked") => "Signed out: the refresh token is revoked and the session deleted.",
            Some(_) => "Signed out here, but the refresh token could not be revoked (see the server log).",
            None => "Not signed in.",
        };
        return app.page(
            StatusCode::OK,
            &format!(
                "{intro}<p id=\"status\">{}</p>\
                 <p><a class=\"button\" id=\"signin\" href=\"/app/web/login\">Sign in</a></p>\
                 <p class=\"note\">Signing out here does not end your login at the authorization server, \
                 which would sign you straight back in without asking for the password:</p>\
                 <form method=\"post\" action=\"{}\"><button id=\"as-logout\" type=\"submit\">Sign out of the \
                 authorization server</button></form>",
                escape(notice),
                escape(&app.logout_url),
            ),
        );
    };
    let mut s = session.lock().await;
    let notice = s.notice.take().unwrap_or_default();
    let form = |action: &str, id: &str, label: &str| {
        format!(
            "<form method=\"post\" action=\"/app/web/{action}\"><input type=\"hidden\" name=\"csrf_token\" \
             value=\"{}\"><button id=\"{id}\" type=\"submit\">{label}</button></form>",
            escape(&s.csrf)
        )
    };
    let body = format!(
        "{intro}<p id=\"status\">Signed in as <strong id=\"user\">{}</strong>.</p>{}{}{}\
         <h2>Result</h2><pre id=\"result\">{}</pre>",
        escape(&s.subject),
        form("api", "call-api", "Call the API"),
        form("refresh", "refresh", "Refresh"),
        form("logout", "signout", "Sign out"),
        escape(&notice),
    );
    drop(s);
    app.page(StatusCode::OK, &body)
}

/// `GET /app/web/login`: starts authorization code + PKCE. The `state` and verifier stay on
/// this server, under a short-lived pre-login cookie.
async fn login(State(app): State<Arc<WebApp>>) -> Response {
    let state = new_secret();
    let verifier = new_secret();
    let challenge = pkce::s256_challenge(&verifier);
    let Some(id) = app.pending.insert(Pending {
        state: state.clone(),
        verifier,
    }) else {
        tracing::warn!("web app: too many sign-ins in progress");
        return app.refused(Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins in progress; try again in a minute.",
        ));
    };
    let Ok(url) = reqwest::Url::parse_with_params(
        &app.authorize_url,
        [
            ("response_type", "code"),
            ("client_id", WEB_CLIENT),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    ) else {
        return app.refused(Refused(StatusCode::INTERNAL_SERVER_ERROR, "Misconfigured."));
    };
    let mut r = see_other(url.as_str());
    // Lax, not Strict: in general the callback is a navigation from the authorization server's
    // site. The cookie only names the pending sign-in; it is useless without the browser.
    r.headers_mut().append(
        header::SET_COOKIE,
        app.cookie(LOGIN_COOKIE, &id, LOGIN_TTL.as_secs(), "Lax"),
    );
    r
}

/// `GET /app/web/callback`: checks `state` (against the pending sign-in of this browser) and
/// `iss` (RFC 9207), exchanges the code server-side, and starts the session.
async fn callback(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    query: Result<Query<Callback>, QueryRejection>,
) -> Response {
    let result = finish_login(&app, &headers, query).await;
    let mut r = match result {
        Ok(id) => {
            let mut r = see_other("/app/web/");
            r.headers_mut().append(
                header::SET_COOKIE,
                app.cookie(SESSION_COOKIE, &id, SESSION_TTL.as_secs(), "Strict"),
            );
            r
        }
        Err(refused) => app.refused(refused),
    };
    // The pending sign-in is single use, whatever happened.
    r.headers_mut()
        .append(header::SET_COOKIE, app.cookie(LOGIN_COOKIE, "", 0, "Lax"));
    r
}

async fn finish_login(
    app: &WebApp,
    headers: &HeaderMap,
    query: Result<Query<Callback>, QueryRejection>,
) -> Result<String, Refused> {
    let expired = Refused(
        StatusCode::BAD_REQUEST,
        "This sign-in expired or was not started in this browser. Please sign in again.",
    );
    let pending = cookie(headers, LOGIN_COOKIE)
        .and_then(|id| app.pending.take(id))
        .ok_or_else(|| {
            tracing::info!("web app: callback without a pending sign-in");
            expired
        })?;
    let Ok(Query(q)) = query else {
        return Err(Refused(StatusCode::BAD_REQUEST, "Malformed sign-in response."));
    };
    let state = q.state.unwrap_or_default();
    if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        tracing::info!("web app: callback with a wrong state refused");
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "The sign-in response does not belong to this sign-in. Please sign in again.",
        ));
    }
    if q.iss.as_deref() != Some(app.issuer.as_str()) {
        tracing::info!("web app: callback from an unexpected issuer refused");
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "The sign-in response came from an unexpected authorization server.",
        ));
    }
    if let Some(error) = q.error {
        // A short OAuth error code, logged as such; the page stays generic.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_lowercase() || *c == '_')
            .take(40)
            .collect();
        tracing::info!(error = %code, "web app: authorization refused");
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "The authorization server did not sign you in.",
        ));
    }
    let code = q
        .code
        .ok_or(Refused(StatusCode::BAD_REQUEST, "Malformed sign-in response."))?;
    let tokens = app
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", &pending.verifier),
        ])
        .await?;
    let (status, me) = app.me(&tokens.access).await?;
    let Some(subject) = me["subject"].as_str().filter(|_| status.is_success()) else {
        tracing::warn!(%status, "web app: the API refused a fresh access token");
        return Err(Refused(
            StatusCode::BAD_GATEWAY,
            "The API refused the new access token.",
        ));
    };
    let id = app
        .sessions
        .insert(Arc::new(Mutex::new(Session {
            subject: subject.to_string(),
            access_token: tokens.access,
            refresh_token: tokens.refresh,
            csrf: new_secret(),
            notice: Some(format!("Signed in (access token valid {} s).", tokens.expires_in)),
        })))
        .ok_or_else(|| {
            tracing::warn!("web app: too many sessions");
            Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sessions; try again later.",
            )
        })?;
    tracing::info!(sub = %subject, "web app: signed in");
    Ok(id)
}

/// `POST /app/web/api`: the server calls `GET /me` with the session's access token.
async fn call_api(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (_, mut s) = match app.authorized(&headers, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    s.notice = Some(match app.me(&s.access_token).await {
        Ok((status, body)) => format!(
            "GET /me → {status}\n{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        ),
        Err(Refused(_, message)) => message.to_string(),
    });
    see_other("/app/web/")
}

/// `POST /app/web/refresh`: the refresh-token grant; both tokens are replaced (rotation).
async fn refresh(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (id, mut s) = match app.authorized(&headers, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let refresh_token = s.refresh_token.clone();
    match app
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh_token)])
        .await
    {
        Ok(t) => {
            s.access_token = t.access;
            s.refresh_token = t.refresh;
            s.notice = Some(format!(
                "Refreshed: a new access token (valid {} s) and a new refresh token; the previous \
                 refresh token is spent.",
                t.expires_in
            ));
            see_other("/app/web/")
        }
        Err(refused) => {
            // The grant is gone (revoked, expired, or the token was reused): so is the session.
            drop(s);
            app.sessions.take(&id);
            let mut r = app.refused(refused);
            app.clear_session_cookie(&mut r);
            r
        }
    }
}

/// `POST /app/web/logout`: revokes the refresh token (its whole grant, access tokens
/// included) and deletes the session.
async fn logout(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (id, s) = match app.authorized(&headers, form).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let refresh_token = s.refresh_token.clone();
    let subject = s.subject.clone();
    drop(s);
    // The session goes first: whatever the revocation does, this browser is signed out.
    app.sessions.take(&id);
    let revoked = match app
        .http
        .post(&app.revoke_url)
        .basic_auth(WEB_CLIENT, Some(&app.secret))
        .form(&[
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            tracing::warn!(status = %r.status(), "web app: revocation refused");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "web app: revocation endpoint unreachable");
            false
        }
    };
    tracing::info!(sub = %subject, revoked, "web app: signed out");
    let mut r = see_other(if revoked {
        "/app/web/?signed_out=revoked"
    } else {
        "/app/web/?signed_out=unrevoked"
    });
    app.clear_session_cookie(&mut r);
    r
}
