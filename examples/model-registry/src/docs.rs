//! The API's description, generated from the route table (`authz_axum::openapi`): the OpenAPI
//! 3.1 document at `GET /openapi.json`, and an API reference page at `GET /docs` that renders it
//! in the browser (static HTML and one script of ours, `static/docs/`: no CDN, no inline
//! script; the CSP allows scripts, styles and connections to this origin only).

use authz_axum::RouteTable;
use authz_axum::openapi::{OpenApi, OpenApiOptions};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::handlers::AppState;

const INDEX: &str = include_str!("../static/docs/index.html");
const SCRIPT: &str = include_str!("../static/docs/docs.js");
const STYLE: &str = include_str!("../static/docs/docs.css");

/// The page's CSP: everything from this origin only, no inline script or style, no forms or
/// frames, Trusted Types required (the script writes text only).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'; \
                   require-trusted-types-for 'script'; trusted-types 'none'";

/// What the registry's `AuthLayer` accepts: bearer JWTs, `mr_…` API keys, DPoP-bound tokens.
pub fn options() -> OpenApiOptions {
    OpenApiOptions::new("model-registry", env!("CARGO_PKG_VERSION"))
        .description(
            "An ML model registry protected by authz. Every operation lists the permissions its \
             handler's `#[require_permission]` declares (`x-required-permissions`), the roles \
             (`x-required-roles`) and the whole rule (`x-requirement`); the document is generated \
             from the same route table that `model-registry routes` prints.",
        )
        .api_keys(crate::API_KEY_PREFIX)
        .dpop(true)
}

/// The OpenAPI document of `table`.
pub fn openapi(table: &RouteTable) -> OpenApi {
    table.openapi(&options())
}

/// `GET /openapi.json` (public).
pub async fn openapi_json(State(app): State<AppState>) -> Json<OpenApi> {
    let table = app.inner.routes.read().expect("lock").clone();
    Json(openapi(&table))
}

/// `GET /docs` (public): the API reference page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /docs/docs.js` (public): the page's script.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /docs/docs.css` (public): the page's style sheet.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    crate::apps::security_headers(r.headers_mut(), CSP);
    r
}
