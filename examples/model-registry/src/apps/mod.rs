//! Two small sign-in pages that show the seed's "token storage per client type" table in
//! practice, against the built-in dev issuer:
//!
//! | page | client | where the tokens live |
//! |---|---|---|
//! | [`web`] at `/app/web/` | `web-app` (confidential) | on this server, in a session map; the browser holds an `HttpOnly; SameSite=Strict` session cookie |
//! | [`spa`] at `/app/spa/` | `spa` (public) | in a JavaScript variable; lost on reload, never in `localStorage` |
//!
//! They are public pages, not API routes: [`router`] is merged beside the token service's
//! router, outside the audited API router.

pub mod sessions;
pub mod spa;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What the pages need to know about the dev issuer.
#[derive(Clone)]
pub struct PagesConfig {
    /// The registry's own URL on loopback (`http://127.0.0.1:port`): the web app calls the
    /// token, revocation and API endpoints there, server to server.
    pub local: String,
    /// The dev issuer's token service (its issuer, endpoint paths and cookie rule).
    pub service: Arc<authz_axum::oauth::TokenService>,
    /// The web app's client secret. Never logged or shown.
    pub web_secret: String,
}

impl std::fmt::Debug for PagesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagesConfig")
            .field("local", &self.local)
            .field("web_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Both pages, at `/app/web/…` and `/app/spa/…`.
pub fn router(config: PagesConfig) -> Router {
    web::router(&config).merge(spa::router(&config))
}

/// The shared style sheet (no inline styles: the pages' CSP has no `'unsafe-inline'`).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.45}\
form{display:inline-block;margin:0 .4rem .4rem 0}button,a.button{padding:.45rem 1rem;font-size:1rem}\
pre{background:#f4f4f4;padding:.8rem;overflow:auto;min-height:1.5rem}.note{color:#555}.error{color:#a00}\n";

/// `STYLE` as a response.
pub(crate) fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// A static asset with the pages' security headers.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    security_headers(r.headers_mut(), "default-src 'none'");
    r
}

/// `Cache-Control: no-store`, `nosniff`, no framing, no referrer, and `csp`.
pub(crate) fn security_headers(h: &mut HeaderMap, csp: &str) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// An HTML page: `body` must already be escaped.
pub(crate) fn html(status: StatusCode, title: &str, style_href: &str, body: &str, csp: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"{}\"></head><body>\n{body}\n</body></html>\n",
        escape(title),
        escape(style_href),
    );
    let mut r = (status, page).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(r.headers_mut(), csp);
    r
}

/// HTML-escapes `s` (text and attribute values).
pub(crate) fn escape(s: &str) -> String {
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

/// The value of cookie `name` in the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The origin (`scheme://host[:port]`) of an absolute URL, for a CSP source list.
pub(crate) fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (!scheme.is_empty() && end > 0).then(|| &url[..scheme.len() + 3 + end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin("http://127.0.0.1:3000/authorize"),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(origin("https://a.example"), Some("https://a.example"));
        assert_eq!(origin("nope"), None);
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }
}
