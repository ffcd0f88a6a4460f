//! OpenAPI 3.1 from the route table (feature `openapi`, over [`utoipa`] 5): the same
//! declarations that guard the handlers describe them.
//!
//! ```ignore
//! let (router, table) = AuditedRouter::new()
//!     .public(Method::GET, "/healthz", healthz)
//!     .post("/models/{id}/deploy", deploy_model)      // #[require_permission("model:deploy")]
//!     .require_dpop(Method::POST, "/models/{id}/deploy")
//!     .into_parts();
//! let doc = table.openapi(&OpenApiOptions::new("model-registry", "0.1.0").api_keys("mr").dpop(true));
//! ```
//!
//! For every route of the [`RouteTable`], one operation:
//!
//! - the path as axum wrote it (`/models/{id}` is already OpenAPI's template syntax), with one
//!   required string path parameter per `{name}` (a catch-all `{*rest}` becomes `{rest}`);
//! - `security`: `[]` for public routes; otherwise any one of the schemes (`bearer`, `apiKey`
//!   when API keys are on, `dpop` when DPoP is on), or only `dpop` for routes marked with
//!   [`AuditedRouter::require_dpop`](crate::AuditedRouter::require_dpop);
//! - `x-required-permissions` (every permission the requirement names, in order, no
//!   duplicates; `[]` for public and any-authenticated routes), `x-required-roles` where the
//!   requirement names roles, and `x-requirement` (the requirement as the route table prints
//!   it, e.g. `any("data:write", role("admin"))`: the exact rule, `not(..)` included);
//! - responses: `2XX` (the handler's, not described here) and, for protected routes, the
//!   rejections the auth layer and the guards produce — 400, 401, 403 (not for routes open to
//!   any authenticated caller), 429 and 503 — as `application/problem+json` (`type`, `title`,
//!   `status`, `detail`) with their `WWW-Authenticate` / `Retry-After` headers.
//!
//! ## Security schemes
//!
//! | name | OpenAPI | what the service accepts |
//! |---|---|---|
//! | `bearer` | `http`, `scheme: bearer`, `bearerFormat: JWT` | `Authorization: Bearer <JWT>` |
//! | `apiKey` | `http`, `scheme: bearer`, `bearerFormat: <prefix>_…` | `Authorization: Bearer <prefix>_…`: the same header as a JWT |
//! | `dpop` | `http`, `scheme: DPoP` | `Authorization: DPoP <token>` and a `DPoP: <proof>` header (RFC 9449) |
//!
//! API keys are an HTTP bearer scheme rather than `type: apiKey, in: header, name:
//! Authorization`: that is what goes on the wire (`Bearer ` and the key), so a UI that fills
//! the credential in builds the right header, and validators have nothing to say about it
//! (an `apiKey` named `Authorization` makes the user type the `Bearer ` prefix, and some tools
//! ignore `Authorization` as an API key header name).
//!
//! utoipa 5's [`HttpAuthScheme`](utoipa::openapi::security::HttpAuthScheme) is a closed list
//! without `DPoP`, so the schemes are kept as JSON under the `securitySchemes` key of
//! [`Components::extensions`] (serialised flat, exactly where OpenAPI expects
//! `components.securitySchemes`), and [`Components::security_schemes`] stays empty. Add a scheme
//! of your own with [`add_security_scheme`]; one added to `Components::security_schemes` after
//! [`RouteTable::openapi`] would be serialised as a second `securitySchemes` key
//! ([`RouteTable::merge_into`] moves the ones already there).

use std::collections::BTreeMap;

use authz_core::RequirementExpr;
use axum::http::Method;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Components, ContentBuilder, InfoBuilder, OpenApiBuilder, Paths, Ref, Required};

/// The utoipa crate this module builds on (5.x), for its other types.
pub use utoipa;
/// utoipa's document type (serialise it with serde, or `to_pretty_json`).
pub use utoipa::openapi::OpenApi;

use crate::routing::{RouteEntry, RouteTable};

/// The media type of every rejection body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The key under [`Components::extensions`] that holds the security schemes (see the module
/// documentation).
const SECURITY_SCHEMES: &str = "securitySchemes";

/// What the document says beyond the route table: its title and version, and which
/// credentials the service's [`AuthLayer`](crate::AuthLayer) accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiOptions {
    title: String,
    version: String,
    description: Option<String>,
    bearer: bool,
    api_key_prefix: Option<String>,
    dpop: bool,
}

impl OpenApiOptions {
    /// `info.title` and `info.version`; bearer JWTs accepted, no API keys, no DPoP.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            version: version.into(),
            description: None,
            bearer: true,
            api_key_prefix: None,
            dpop: false,
        }
    }

    /// `info.description` (Markdown).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Whether bearer JWTs are accepted (the `bearer` scheme; on by default). Off for a service
    /// with API keys only.
    pub fn bearer(mut self, on: bool) -> Self {
        self.bearer = on;
        self
    }

    /// API keys with this prefix (`prefix_…`, as [`ApiKeys`](crate::ApiKeys) issues them) are
    /// accepted: the `apiKey` scheme.
    pub fn api_keys(mut self, prefix: impl Into<String>) -> Self {
        self.api_key_prefix = Some(prefix.into());
        self
    }

    /// DPoP-bound tokens are accepted (the layer has
    /// [`AuthLayer::dpop`](crate::AuthLayer::dpop)): the `dpop` scheme, and the DPoP challenge
    /// on 401 responses.
    pub fn dpop(mut self, on: bool) -> Self {
        self.dpop = on;
        self
    }

    /// The scheme names a protected route accepts, in document order.
    fn schemes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.bearer {
            out.push("bearer");
        }
        if self.api_key_prefix.is_some() {
            out.push("apiKey");
        }
        if self.dpop {
            out.push("dpop");
        }
        out
    }

    /// The security scheme objects, by name.
    fn scheme_objects(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        if self.bearer {
            out.insert(
                "bearer".into(),
                serde_json::json!({
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token (JWT) from one of the service's issuers: \
                        `Authorization: Bearer <JWT>`.",
                }),
            );
        }
        if let Some(prefix) = &self.api_key_prefix {
            out.insert(
                "apiKey".into(),
                serde_json::json!({
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": format!("{prefix}_…"),
                    "description": format!(
                        "An API key, sent like a bearer token in the same header: \
                         `Authorization: Bearer {prefix}_…`."
                    ),
                }),
            );
        }
        if self.dpop {
            out.insert(
                "dpop".into(),
                serde_json::json!({
                    "type": "http",
                    "scheme": "DPoP",
                    "description": "A DPoP-bound access token (RFC 9449): \
                        `Authorization: DPoP <token>` and a `DPoP` header with a proof signed \
                        by the key the token is bound to.",
                }),
            );
        }
        out
    }
}

/// Adds (or replaces) the security scheme `name`, given as its OpenAPI JSON object, where
/// [`RouteTable::openapi`] keeps them (see the module documentation).
pub fn add_security_scheme(openapi: &mut OpenApi, name: impl Into<String>, scheme: serde_json::Value) {
    schemes_mut(openapi).insert(name.into(), scheme);
}

/// The security schemes of `openapi`, as JSON objects by name: those kept by this module, and
/// any in [`Components::security_schemes`].
pub fn security_schemes(openapi: &OpenApi) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    if let Some(c) = &openapi.components {
        for (name, s) in &c.security_schemes {
            if let Ok(v) = serde_json::to_value(s) {
                out.insert(name.clone(), v);
            }
        }
        if let Some(serde_json::Value::Object(m)) =
            c.extensions.as_ref().and_then(|e| e.get(SECURITY_SCHEMES))
        {
            out.extend(m.clone());
        }
    }
    out
}

/// The schemes map under the components' extensions, created if missing; schemes already in
/// `Components::security_schemes` are moved into it (so that one `securitySchemes` key is
/// serialised).
fn schemes_mut(openapi: &mut OpenApi) -> &mut serde_json::Map<String, serde_json::Value> {
    let components = openapi.components.get_or_insert_with(Components::new);
    let native = std::mem::take(&mut components.security_schemes);
    let extensions = components.extensions.get_or_insert_with(Extensions::default);
    let slot = extensions
        .entry(SECURITY_SCHEMES.to_string())
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if !slot.is_object() {
        *slot = serde_json::Value::Object(Default::default());
    }
    let serde_json::Value::Object(map) = slot else {
        unreachable!("made an object above")
    };
    for (name, s) in native {
        if let Ok(v) = serde_json::to_value(&s) {
            map.entry(name).or_insert(v);
        }
    }
    map
}

impl RouteTable {
    /// The OpenAPI 3.1 document of these routes (see the [module documentation](self)).
    ///
    /// # Panics
    ///
    /// Never for a table an [`AuditedRouter`](crate::AuditedRouter) built. Routes whose method
    /// OpenAPI has no operation for (`CONNECT`) are left out.
    pub fn openapi(&self, options: &OpenApiOptions) -> OpenApi {
        let info = InfoBuilder::new()
            .title(options.title.clone())
            .version(options.version.clone())
            .description(options.description.clone())
            .build();
        let mut doc = OpenApiBuilder::new().info(info).paths(Paths::new()).build();
        self.merge_into(&mut doc, options);
        doc
    }

    /// Adds these routes, the security schemes, the `Problem` schema and the rejection
    /// responses to an existing document (one built with utoipa's derive macros, say). An
    /// operation already there for the same method and path is replaced.
    pub fn merge_into(&self, openapi: &mut OpenApi, options: &OpenApiOptions) {
        let schemes = options.scheme_objects();
        let map = schemes_mut(openapi);
        for (name, s) in schemes {
            map.insert(name, s);
        }
        let components = openapi.components.get_or_insert_with(Components::new);
        components
            .schemas
            .insert("Problem".into(), problem_schema().into());
        for (name, response) in rejection_responses(options) {
            components.responses.insert(name.into(), response.into());
        }
        for entry in self.entries() {
            let Some(method) = http_method(&entry.method) else {
                continue;
            };
            let dpop_only = options.dpop && self.requires_dpop(&entry.method, &entry.path);
            let (path, params) = openapi_path(&entry.path);
            let op = operation(entry, &params, options, dpop_only);
            openapi.paths.add_path_operation(path, vec![method], op);
        }
    }
}

/// The OpenAPI method, or `None` for `CONNECT` (no operation for it in OpenAPI 3.1).
fn http_method(m: &Method) -> Option<HttpMethod> {
    Some(match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

/// The path in OpenAPI's template syntax and its parameter names: axum's `{id}` is the same;
/// a catch-all `{*rest}` becomes `{rest}`.
fn openapi_path(path: &str) -> (String, Vec<(String, bool)>) {
    let mut params = Vec::new();
    let segments: Vec<String> = path
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    let (name, rest) = match name.strip_prefix('*') {
                        Some(n) => (n, true),
                        None => (name, false),
                    };
                    params.push((name.to_string(), rest));
                    format!("{{{name}}}")
                }
                None => seg.to_string(),
            },
        )
        .collect();
    (segments.join("/"), params)
}

/// `post_models_id_deploy` for `POST /models/{id}/deploy`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for part in path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        id.push('_');
        id.push_str(part);
    }
    id
}

fn walk<'a>(e: &'a RequirementExpr, f: &mut impl FnMut(&'a RequirementExpr)) {
    f(e);
    match e {
        RequirementExpr::All(v) | RequirementExpr::Any(v) => v.iter().for_each(|e| walk(e, f)),
        RequirementExpr::Not(e) => walk(e, f),
        _ => {}
    }
}

/// Permissions and roles the requirement names, each once, in order.
fn names(e: &RequirementExpr) -> (Vec<String>, Vec<String>) {
    let (mut perms, mut roles) = (Vec::<String>::new(), Vec::<String>::new());
    walk(e, &mut |e| match e {
        RequirementExpr::Permission(p) if !perms.contains(p) => perms.push(p.clone()),
        RequirementExpr::Role(r) if !roles.contains(r) => roles.push(r.clone()),
        _ => {}
    });
    (perms, roles)
}

fn operation(
    entry: &RouteEntry,
    params: &[(String, bool)],
    options: &OpenApiOptions,
    dpop_only: bool,
) -> utoipa::openapi::path::Operation {
    let requirement = &entry.requirement;
    let public = matches!(requirement, RequirementExpr::Public);
    let (perms, roles) = names(requirement);
    let schemes: Vec<&str> = if dpop_only {
        vec!["dpop"]
    } else {
        options.schemes()
    };
    let security: Vec<SecurityRequirement> = if public {
        Vec::new()
    } else {
        schemes
            .iter()
            .map(|s| SecurityRequirement::new(*s, Vec::<String>::new()))
            .collect()
    };
    let summary = match requirement {
        RequirementExpr::Public => "Public".to_string(),
        RequirementExpr::Authenticated => "Any authenticated caller".to_string(),
        r => format!("Requires {r}"),
    };
    let mut description = format!("Requirement: `{requirement}`.");
    if dpop_only {
        description.push_str(" Only a DPoP-bound access token with its proof is accepted.");
    }
    let mut extensions = Extensions::default();
    extensions.insert("x-required-permissions".into(), perms.into());
    if !roles.is_empty() {
        extensions.insert("x-required-roles".into(), roles.into());
    }
    extensions.insert("x-requirement".into(), requirement.to_string().into());

    let mut responses = ResponsesBuilder::new().response(
        "2XX",
        ResponseBuilder::new()
            .description("Success (the handler's response; not described by the route table)."),
    );
    if !public {
        let mut codes = vec!["400", "401"];
        if !matches!(requirement, RequirementExpr::Authenticated) {
            codes.push("403");
        }
        codes.extend(["429", "503"]);
        for code in codes {
            responses = responses.response(code, Ref::from_response_name(response_name(code)));
        }
    }
    let mut op = OperationBuilder::new()
        .operation_id(Some(operation_id(&entry.method, &entry.path)))
        .summary(Some(summary))
        .description(Some(description))
        .responses(responses.build())
        .securities(Some(security))
        .extensions(Some(extensions));
    for (name, rest) in params {
        let mut p = ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
        if *rest {
            p = p.description(Some("The rest of the path (may contain `/`)."));
        }
        op = op.parameter(p);
    }
    op.build()
}

/// The component name of a rejection response.
fn response_name(code: &str) -> &'static str {
    match code {
        "400" => "BadRequest",
        "401" => "Unauthorized",
        "403" => "Forbidden",
        "429" => "TooManyRequests",
        _ => "ServiceUnavailable",
    }
}

/// RFC 9457 problem details, as the rejections write them.
fn problem_schema() -> utoipa::openapi::schema::Object {
    let string = |d: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(d.to_string()))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "RFC 9457 problem details. The body never echoes the credential.",
        ))
        .property("type", string("`about:blank`."))
        .property("title", string("The status's reason phrase, e.g. `Forbidden`."))
        .property(
            "status",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .description(Some("The HTTP status code.")),
        )
        .property("detail", string("What went wrong, in a sentence."))
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .build()
}

/// The rejection responses, by component name.
fn rejection_responses(options: &OpenApiOptions) -> BTreeMap<&'static str, utoipa::openapi::Response> {
    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build()
    };
    let string_header = |d: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(d.to_string()))
            .build()
    };
    let retry_after = |d: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(d.to_string()))
            .build()
    };
    let mut challenges = "`Bearer realm=\"…\"`, with `error=\"invalid_token\"` when a credential was \
                          sent and refused (no error code when none was sent)"
        .to_string();
    if options.dpop {
        challenges.push_str(
            "; and `DPoP realm=\"…\", algs=\"…\"` (with `error=\"invalid_dpop_proof\"`, \
             `\"use_dpop_nonce\"` or `\"invalid_token\"` for DPoP failures)",
        );
    }
    let mut unauthorized = ResponseBuilder::new()
        .description(
            "No usable credential: none, another scheme, an invalid or expired token, or (DPoP) \
             an invalid proof.",
        )
        .content(PROBLEM_JSON, problem())
        .header(
            "WWW-Authenticate",
            string_header(&format!("The challenge(s): {challenges}.")),
        );
    if options.dpop {
        unauthorized = unauthorized.header(
            "DPoP-Nonce",
            string_header("With `error=\"use_dpop_nonce\"`: the nonce to put in the next proof."),
        );
    }
    BTreeMap::from([
        (
            "BadRequest",
            ResponseBuilder::new()
                .description("A malformed or repeated `Authorization` header.")
                .content(PROBLEM_JSON, problem())
                .header(
                    "WWW-Authenticate",
                    string_header("`Bearer realm=\"…\", error=\"invalid_request\"`."),
                )
                .build(),
        ),
        ("Unauthorized", unauthorized.build()),
        (
            "Forbidden",
            ResponseBuilder::new()
                .description(
                    "Authenticated, but the caller lacks a permission or role the route requires \
                     (the body names it only if the service opts in).",
                )
                .content(PROBLEM_JSON, problem())
                .header(
                    "WWW-Authenticate",
                    string_header("`Bearer realm=\"…\", error=\"insufficient_scope\"`."),
                )
                .build(),
        ),
        (
            "TooManyRequests",
            ResponseBuilder::new()
                .description("Too many failed credential checks from this client (when the service throttles them).")
                .content(PROBLEM_JSON, problem())
                .header("Retry-After", retry_after("Seconds to wait."))
                .build(),
        ),
        (
            "ServiceUnavailable",
            ResponseBuilder::new()
                .description("The credential cannot be checked right now (no signing key, or the key store does not answer).")
                .content(PROBLEM_JSON, problem())
                .header("Retry-After", retry_after("Seconds to wait (5)."))
                .build(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_operation_ids() {
        assert_eq!(
            openapi_path("/models/{id}/deploy"),
            ("/models/{id}/deploy".to_string(), vec![("id".to_string(), false)])
        );
        assert_eq!(
            openapi_path("/files/{*rest}"),
            ("/files/{rest}".to_string(), vec![("rest".to_string(), true)])
        );
        assert_eq!(
            operation_id(&Method::POST, "/models/{id}/deploy"),
            "post_models_id_deploy"
        );
        assert_eq!(operation_id(&Method::GET, "/openapi.json"), "get_openapi_json");
    }

    #[test]
    fn names_are_collected_once_in_order() {
        let e = RequirementExpr::Any(vec![
            RequirementExpr::Permission("a:b".into()),
            RequirementExpr::All(vec![
                RequirementExpr::Role("admin".into()),
                RequirementExpr::Not(Box::new(RequirementExpr::Permission("c:d".into()))),
                RequirementExpr::Permission("a:b".into()),
            ]),
        ]);
        assert_eq!(
            names(&e),
            (
                vec!["a:b".to_string(), "c:d".to_string()],
                vec!["admin".to_string()]
            )
        );
    }

    #[test]
    fn one_security_schemes_key_even_with_native_schemes() {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let mut doc = OpenApiBuilder::new().build();
        let mut c = Components::new();
        c.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
        doc.components = Some(c);
        RouteTable::default().merge_into(&mut doc, &OpenApiOptions::new("t", "1").dpop(true));
        let json = doc.to_json().unwrap();
        assert_eq!(json.matches("\"securitySchemes\"").count(), 1, "{json}");
        let schemes = security_schemes(&doc);
        let names: Vec<&str> = schemes.keys().map(String::as_str).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(schemes.contains_key("basic") && schemes.contains_key("dpop"));
        assert_eq!(schemes["dpop"]["scheme"], "DPoP");
    }
}
