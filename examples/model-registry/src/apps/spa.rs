//! The single-page app pattern at `/app/spa/`: static HTML and one script (`static/spa/`).
//! The page runs authorization code + PKCE itself (WebCrypto S256, random `state`) as the
//! public client `spa`, exchanges the code with `fetch`, and keeps the tokens in a JavaScript
//! variable only — never `localStorage`, `sessionStorage` or a cookie. Reloading the page
//! loses them: that is the pattern. The verifier and `state` sit in `sessionStorage` only
//! while the browser is at the authorization server, and are removed first thing on return.
//!
//! The CSP allows scripts from this origin only (no inline script), connections to this origin
//! and the authorization server, and no forms, frames or plugins; Trusted Types are required
//! (the script writes text only).

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::{PagesConfig, escape};

const INDEX: &str = include_str!("../../static/spa/index.html");
const SCRIPT: &str = include_str!("../../static/spa/app.js");

/// The SPA's routes under `/app/spa/`.
pub fn router(config: &PagesConfig) -> Router {
    let service = config.service.config();
    let logout = service.url(&service.endpoints.logout);
    let connect = match super::origin(&service.issuer) {
        Some(o) if o != config.local => format!("'self' {o}"),
        _ => "'self'".into(),
    };
    let csp: Arc<str> = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; \
         form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
         require-trusted-types-for 'script'; trusted-types 'none'"
    )
    .into();
    // The one setting the metadata document does not publish: where to end the login session.
    let index: Arc<str> = INDEX.replace("{{LOGOUT_URL}}", &escape(&logout)).into();
    let page = {
        let csp = csp.clone();
        move || {
            let (index, csp) = (index.clone(), csp.clone());
            async move { page(&index, &csp) }
        }
    };
    Router::new()
        .route("/app/spa", get(|| async { Redirect::to("/app/spa/") }))
        .route("/app/spa/", get(page))
        .route(
            "/app/spa/app.js",
            get(|| async { super::asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route("/app/spa/style.css", get(|| async { super::style() }))
}

fn page(index: &str, csp: &str) -> Response {
    let mut r = (StatusCode::OK, index.to_string()).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    super::security_headers(r.headers_mut(), csp);
    r
}
