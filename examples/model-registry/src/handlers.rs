//! The routes. Each guard is declared on its handler and checked at compile time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use authz_axum::core::Catalog as _;
use authz_axum::core::apikey::ApiKeyRecord;
use authz_axum::core::clock::Clock;
use authz_axum::engine::{PolicyChecked, PolicyContext};
use authz_axum::prelude::*;
use authz_axum::{ApiKeys, RouteTable};
use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::Catalog;

/// Shared state of the service.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) api_keys: Arc<ApiKeys>,
    pub(crate) authenticator: Arc<authz_axum::Authenticator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) revocation_feed: Option<authz_axum::sql::revocations::FeedStatus>,
    pub(crate) datasets: RwLock<Vec<Dataset>>,
    pub(crate) reports: RwLock<HashMap<Uuid, Report>>,
    pub(crate) payments: RwLock<HashMap<Uuid, Payment>>,
    pub(crate) routes: RwLock<RouteTable>,
}

impl AppState {
    pub(crate) fn new(
        api_keys: Arc<ApiKeys>,
        clock: Arc<dyn Clock>,
        authenticator: Arc<authz_axum::Authenticator>,
        revocation_feed: Option<authz_axum::sql::revocations::FeedStatus>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                api_keys,
                authenticator,
                clock,
                revocation_feed,
                datasets: RwLock::new(vec![Dataset {
                    id: Uuid::new_v4(),
                    name: "iris".into(),
                    owner: "seed".into(),
                }]),
                reports: RwLock::new(HashMap::new()),
                payments: RwLock::new(HashMap::new()),
                routes: RwLock::new(RouteTable::default()),
            }),
        }
    }
}

#[derive(Clone, Serialize)]
pub(crate) struct Dataset {
    id: Uuid,
    name: String,
    owner: String,
}

#[derive(Clone, Serialize)]
pub(crate) struct Report {
    id: Uuid,
    owner: String,
    title: String,
}

#[derive(Clone, Serialize)]
pub(crate) struct Payment {
    id: Uuid,
    initiator: String,
    amount: u64,
    approved_by: Option<String>,
}

/// A JSON body whose fields are all optional: an empty body or `{}` is valid.
pub struct JsonBody<T>(pub T);

impl<T: PolicyContext> PolicyContext for JsonBody<T> {
    fn policy_context(&self) -> serde_json::Value {
        self.0.policy_context()
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req.headers().get(header::CONTENT_TYPE).map(|v| {
            v.to_str()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        if json_type == Some(false) {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as application/json",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|_| {
            problem(
                StatusCode::BAD_REQUEST,
                "the body is not the expected JSON object",
            )
        })
    }
}

pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = (status, format!("{body}\n")).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().expect("static"),
    );
    headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    if status == StatusCode::FORBIDDEN {
        // The same challenge as the guards' 403 (RFC 6750 §3.1).
        headers.insert(
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="model-registry", error="insufficient_scope""#
                .parse()
                .expect("static"),
        );
    }
    r
}

/// `GET /readyz`: 200 when every issuer has keys, the key store answers and the revocation
/// list is current (loaded and following the database), else 503 (with what is missing; never
/// a secret). `/healthz` only says the process is up.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let r = app.inner.authenticator.readiness().await;
    let feed = app.inner.revocation_feed.as_ref();
    let revocations_current = feed.is_none_or(|f| f.is_current());
    let ready = r.is_ready() && revocations_current;
    let body = serde_json::json!({
        "ready": ready,
        "revocations": match feed {
            None => "local",
            Some(f) if f.is_current() => "current",
            Some(_) => "not current",
        },
        "issuers": r.issuers.iter().map(|i| serde_json::json!({"iss": i.iss, "keys": i.keys})).collect::<Vec<_>>(),
        "api_key_store": r.api_key_store.map(|ok| if ok { "ok" } else { "unavailable" }),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /me`: any authenticated caller.
pub async fn me(principal: Principal) -> Json<serde_json::Value> {
    let catalog = Catalog::catalog();
    let permissions: Vec<&str> = principal
        .permissions()
        .iter()
        .map(|id| catalog.name(id))
        .collect();
    Json(serde_json::json!({
        "subject": principal.subject(),
        "issuer": principal.issuer(),
        "roles": principal.roles(),
        "effective_roles": principal.effective_roles().collect::<Vec<_>>(),
        "permissions": permissions,
        "auth_method": principal.auth_method().to_string(),
        "expires_at": principal.expires_at(),
    }))
}

/// `GET /datasets`
#[require_permission("data:read")]
pub async fn list_datasets(State(app): State<AppState>) -> Json<serde_json::Value> {
    let list = app.inner.datasets.read().expect("lock").clone();
    Json(serde_json::json!({ "datasets": list }))
}

/// Body of `POST /datasets`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewDataset {
    name: Option<String>,
}

/// `POST /datasets`
#[require_permission("data:write")]
pub async fn create_dataset(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewDataset>,
) -> impl IntoResponse {
    let dataset = Dataset {
        id: Uuid::new_v4(),
        name: body.name.unwrap_or_else(|| "untitled".into()),
        owner: principal.subject().to_string(),
    };
    app.inner.datasets.write().expect("lock").push(dataset.clone());
    (StatusCode::CREATED, Json(dataset))
}

/// Body of `POST /models/{id}/run`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RunRequest {
    input: Option<serde_json::Value>,
}

/// `POST /models/{id}/run`
#[require_permission("model:run")]
pub async fn run_model(Path(id): Path<String>, JsonBody(body): JsonBody<RunRequest>) -> impl IntoResponse {
    let run =
        serde_json::json!({ "model": id, "run": Uuid::new_v4(), "status": "queued", "input": body.input });
    (StatusCode::ACCEPTED, Json(run))
}

/// Body of `POST /models/{id}/deploy`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct DeployRequest {
    environment: Option<String>,
}

impl DeployRequest {
    /// The target environment (`staging` when the body names none).
    pub fn environment(&self) -> &str {
        self.environment.as_deref().unwrap_or("staging")
    }
}

/// `POST /models/{id}/deploy`: a high-value operation, so the token must be DPoP-bound
/// (RFC 9449) and come with a proof of its key: a stolen token alone cannot deploy. The deploy
/// policy (`policies/deploy.rego`, `.cedar`; see [`crate::policy`]) then decides with the body's
/// environment.
#[require_permission("model:deploy", policy = "deploy")]
pub async fn deploy_model(
    _bound: authz_axum::DpopBound,
    Path(id): Path<String>,
    PolicyChecked(JsonBody(body)): PolicyChecked<JsonBody<DeployRequest>>,
) -> impl IntoResponse {
    let env = body.environment().to_string();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "model": id, "environment": env, "status": "deploying" })),
    )
}

/// Body of `POST /reports`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewReport {
    title: Option<String>,
}

/// `POST /reports`: ids are random UUIDs, never sequential.
#[require_permission("report:create")]
pub async fn create_report(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewReport>,
) -> impl IntoResponse {
    let report = Report {
        id: Uuid::new_v4(),
        owner: principal.subject().to_string(),
        title: body.title.unwrap_or_else(|| "untitled".into()),
    };
    app.inner
        .reports
        .write()
        .expect("lock")
        .insert(report.id, report.clone());
    (StatusCode::CREATED, Json(serde_json::json!({ "id": report.id })))
}

/// `GET /reports/{id}`: the owner, or `report:read_any`. Anyone else gets the same 404 as for
/// a report that does not exist (no existence leak: the IDOR defence).
pub async fn get_report(
    principal: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || problem(StatusCode::NOT_FOUND, "no such report");
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let report = app.inner.reports.read().expect("lock").get(&id).cloned();
    match report {
        Some(r) if r.owner == principal.subject() || principal.can(Catalog::REPORT_READ_ANY) => {
            Json(r).into_response()
        }
        _ => not_found(),
    }
}

/// Body of `POST /payments`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewPayment {
    amount: Option<u64>,
}

/// `POST /payments`: remembers the initiator.
#[require_permission("payment:initiate")]
pub async fn create_payment(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewPayment>,
) -> impl IntoResponse {
    let payment = Payment {
        id: Uuid::new_v4(),
        initiator: principal.subject().to_string(),
        amount: body.amount.unwrap_or(0),
        approved_by: None,
    };
    app.inner
        .payments
        .write()
        .expect("lock")
        .insert(payment.id, payment.clone());
    (StatusCode::CREATED, Json(serde_json::json!({ "id": payment.id })))
}

/// `POST /payments/{id}/approve`: dynamic separation of duties, the initiator may not approve.
#[require_permission("payment:approve")]
pub async fn approve_payment(
    principal: Principal,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return problem(StatusCode::NOT_FOUND, "no such payment");
    };
    let mut payments = app.inner.payments.write().expect("lock");
    let Some(payment) = payments.get_mut(&id) else {
        return problem(StatusCode::NOT_FOUND, "no such payment");
    };
    if payment.initiator == principal.subject() {
        tracing::debug!(subject = %principal.subject(), "approval denied: separation of duties");
        return problem(
            StatusCode::FORBIDDEN,
            "separation of duties: whoever initiated a payment may not approve it",
        );
    }
    if payment.approved_by.is_some() {
        return problem(StatusCode::CONFLICT, "the payment is already approved");
    }
    payment.approved_by = Some(principal.subject().to_string());
    Json(payment.clone()).into_response()
}

/// `GET /routes`: the route → requirement table the macros recorded.
#[require_role("admin")]
pub async fn routes(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(app.inner.routes.read().expect("lock").to_json())
}

/// `GET /metrics`: Prometheus text format (admin only: counts of refusals by reason tell an
/// attacker what works). Authentication outcomes and reasons, guard decisions, decision
/// latency, token-cache counters, JWKS fetches.
#[require_role("admin")]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    authz_axum::observe::record_cache_stats(&app.inner.authenticator);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::prometheus().render(),
    )
}

/// Body of `POST /api-keys`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewApiKey {
    owner: Option<String>,
    roles: Option<Vec<String>>,
    expires_in: Option<u64>,
    description: Option<String>,
}

fn key_view(r: &ApiKeyRecord) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "owner": r.owner,
        "roles": r.roles,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "last_used_at": r.last_used_at,
        "revoked_at": r.revoked_at,
        "description": r.description,
        "rotated_from": r.rotated_from,
    })
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    r
}

fn store_unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "key store failed");
    problem(StatusCode::SERVICE_UNAVAILABLE, "the key store is unavailable")
}

/// `POST /api-keys`: issues a key; the raw key is in this response and nowhere else, ever.
#[require_role("admin")]
pub async fn create_api_key(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewApiKey>,
) -> Response {
    let owner = body.owner.unwrap_or_else(|| principal.subject().to_string());
    let roles = body.roles.unwrap_or_else(|| vec!["viewer".to_string()]);
    let expires_at = body.expires_in.map(|s| app.inner.clock.unix_seconds() + s);
    let keys = &app.inner.api_keys;
    if let Some(unknown) = roles.iter().find(|r| !keys.has_role(r)) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("`{unknown}` is not a role of the policy"),
        );
    }
    match keys.create(&owner, roles, expires_at, body.description).await {
        Ok(issued) => {
            let mut view = key_view(&issued.record);
            view["key"] = issued.key.expose_raw().into();
            no_store((StatusCode::CREATED, Json(view)).into_response())
        }
        Err(e) => store_unavailable(e),
    }
}

/// `GET /api-keys`: every key's metadata, never a secret.
#[require_role("admin")]
pub async fn list_api_keys(State(app): State<AppState>) -> Response {
    match app.inner.api_keys.list().await {
        Ok(list) => {
            Json(serde_json::json!({ "keys": list.iter().map(key_view).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => store_unavailable(e),
    }
}

/// `POST /api-keys/{id}/revoke`: the key stops working at once.
#[require_role("admin")]
pub async fn revoke_api_key(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    match app.inner.api_keys.revoke(&id).await {
        Ok(true) => Json(serde_json::json!({ "id": id, "revoked": true })).into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, "no such API key"),
        Err(e) => store_unavailable(e),
    }
}

/// Body of `POST /api-keys/{id}/rotate`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RotateRequest {
    overlap_seconds: Option<u64>,
}

/// `POST /api-keys/{id}/rotate`: a new key now; the old one keeps working for the overlap
/// window (default one hour), then stops.
#[require_role("admin")]
pub async fn rotate_api_key(
    State(app): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RotateRequest>,
) -> Response {
    let overlap = std::time::Duration::from_secs(body.overlap_seconds.unwrap_or(3600));
    match app.inner.api_keys.rotate(&id, overlap).await {
        Ok(Some(issued)) => {
            let mut view = key_view(&issued.record);
            view["key"] = issued.key.expose_raw().into();
            view["replaces"] = id.into();
            no_store((StatusCode::CREATED, Json(view)).into_response())
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such active API key"),
        Err(e) => store_unavailable(e),
    }
}
