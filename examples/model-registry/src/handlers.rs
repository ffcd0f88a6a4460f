//! The routes. Each guard is declared on its handler and checked at compile time.

use std::sync::{Arc, RwLock};

use authz_axum::core::Catalog as _;
use authz_axum::core::apikey::ApiKeyRecord;
use authz_axum::core::clock::Clock;
use authz_axum::engine::{PolicyChecked, PolicyContext};
use authz_axum::prelude::*;
use authz_axum::{ApiKeys, RouteTable};
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::domain::{Dataset, Db, DbError, Model, Payment, Report};

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
    /// Datasets, models, reports and payments.
    pub(crate) db: Db,
    pub(crate) routes: RwLock<RouteTable>,
}

impl AppState {
    pub(crate) fn new(
        api_keys: Arc<ApiKeys>,
        clock: Arc<dyn Clock>,
        authenticator: Arc<authz_axum::Authenticator>,
        revocation_feed: Option<authz_axum::sql::revocations::FeedStatus>,
        db: Db,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                api_keys,
                authenticator,
                clock,
                revocation_feed,
                db,
                routes: RwLock::new(RouteTable::default()),
            }),
        }
    }
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
/// a secret); `api_key_cache` says whether API keys are checked from memory (`serving`) or
/// against the store (`off`: the change feed lost the database). `/healthz` only says the
/// process is up.
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
        // Informational (not part of `ready`): "off" while the API-key change feed cannot
        // follow the database — every key check then reads the store.
        "api_key_cache": if app.inner.api_keys.cache().is_serving() { "serving" } else { "off" },
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

/// The caller's tenant: the token's `tenant` claim, the API key's tenant, or the default tenant.
fn tenant_of(principal: &Principal) -> String {
    principal
        .tenant()
        .unwrap_or(crate::domain::DEFAULT_TENANT)
        .to_string()
}

fn db_unavailable(e: DbError) -> Response {
    tracing::warn!(error = %e, "registry database failed");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the registry database is unavailable",
    )
}

/// `GET /datasets`: the datasets of the caller's tenant.
#[require_permission("data:read")]
pub async fn list_datasets(principal: Principal, State(app): State<AppState>) -> Response {
    match app.inner.db.datasets_in(&tenant_of(&principal)).await {
        Ok(list) => Json(serde_json::json!({ "datasets": list })).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// `GET /datasets/{id}`: a dataset of the caller's tenant (any other id: 404).
#[require_permission("data:read")]
#[authorize]
pub async fn get_dataset(Authorized(dataset): Authorized<Dataset>) -> Json<Dataset> {
    Json(dataset)
}

/// Body of `POST /datasets`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewDataset {
    name: Option<String>,
}

/// `POST /datasets`: in the caller's tenant, owned by the caller.
#[require_permission("data:write")]
pub async fn create_dataset(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewDataset>,
) -> Response {
    let dataset = Dataset {
        id: Uuid::new_v4().to_string(),
        name: body.name.unwrap_or_else(|| "untitled".into()),
        owner: principal.subject().to_string(),
        tenant: tenant_of(&principal),
    };
    match app.inner.db.insert_dataset(&dataset).await {
        Ok(()) => (StatusCode::CREATED, Json(dataset)).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// `GET /models`: the models of the caller's tenant.
#[require_permission("data:read")]
pub async fn list_models(principal: Principal, State(app): State<AppState>) -> Response {
    match app.inner.db.models_in(&tenant_of(&principal)).await {
        Ok(list) => Json(serde_json::json!({ "models": list })).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// `GET /models/{id}`
#[require_permission("data:read")]
#[authorize]
pub async fn get_model(Authorized(model): Authorized<Model>) -> Json<Model> {
    Json(model)
}

/// Body of `POST /models`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct NewModel {
    name: Option<String>,
}

/// `POST /models`: registers a model in the caller's tenant, owned by the caller.
#[require_permission("model:create")]
pub async fn create_model(
    principal: Principal,
    State(app): State<AppState>,
    JsonBody(body): JsonBody<NewModel>,
) -> Response {
    let model = Model {
        id: Uuid::new_v4().to_string(),
        name: body.name.unwrap_or_else(|| "untitled".into()),
        owner: principal.subject().to_string(),
        tenant: tenant_of(&principal),
    };
    match app.inner.db.insert_model(&model).await {
        Ok(()) => (StatusCode::CREATED, Json(model)).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// Body of `POST /models/{id}/run`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RunRequest {
    input: Option<serde_json::Value>,
}

/// `POST /models/{id}/run`: any model of the caller's tenant.
#[require_permission("model:run")]
#[authorize]
pub async fn run_model(
    Authorized(model): Authorized<Model>,
    JsonBody(body): JsonBody<RunRequest>,
) -> impl IntoResponse {
    let run = serde_json::json!({
        "model": model.id, "run": Uuid::new_v4(), "status": "queued", "input": body.input,
    });
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
/// (RFC 9449) and come with a proof of its key: a stolen token alone cannot deploy. The model
/// must be one of the caller's tenant; the deploy policy (`policies/deploy.rego`, `.cedar`; see
/// [`crate::policy`]) then decides with the model's owner and the body's environment.
#[require_permission("model:deploy", policy = "deploy")]
#[authorize]
pub async fn deploy_model(
    _bound: authz_axum::DpopBound,
    Authorized(model): Authorized<Model>,
    PolicyChecked(JsonBody(body)): PolicyChecked<JsonBody<DeployRequest>>,
) -> impl IntoResponse {
    let env = body.environment().to_string();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "model": model.id, "environment": env, "status": "deploying" })),
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
) -> Response {
    let report = Report {
        id: Uuid::new_v4().to_string(),
        owner: principal.subject().to_string(),
        title: body.title.unwrap_or_else(|| "untitled".into()),
        tenant: tenant_of(&principal),
    };
    match app.inner.db.insert_report(&report).await {
        Ok(()) => (StatusCode::CREATED, Json(serde_json::json!({ "id": report.id }))).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// `GET /reports/{id}`: the owner, or `report:read_any` in the same tenant. Anyone else gets
/// the same 404 as for a report that does not exist (no existence leak: the IDOR defence).
#[authorize(visible = owner_or("report:read_any"))]
pub async fn get_report(Authorized(report): Authorized<Report>) -> Json<Report> {
    Json(report)
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
) -> Response {
    let amount = body.amount.unwrap_or(0);
    if i64::try_from(amount).is_err() {
        return problem(StatusCode::BAD_REQUEST, "`amount` is too large");
    }
    let payment = Payment {
        id: Uuid::new_v4().to_string(),
        initiated_by: principal.subject().to_string(),
        amount,
        approved_by: None,
        tenant: tenant_of(&principal),
    };
    match app.inner.db.insert_payment(&payment).await {
        Ok(()) => (StatusCode::CREATED, Json(serde_json::json!({ "id": payment.id }))).into_response(),
        Err(e) => db_unavailable(e),
    }
}

/// `GET /payments/{id}`: for whoever may initiate or approve payments, in the same tenant.
#[require_any_permission("payment:initiate", "payment:approve")]
#[authorize]
pub async fn get_payment(Authorized(payment): Authorized<Payment>) -> Json<Payment> {
    Json(payment)
}

/// `POST /payments/{id}/approve`: the two-person rule (dynamic separation of duties): whoever
/// initiated a payment may not approve it, whatever roles their token carries.
#[require_permission("payment:approve")]
#[authorize(
    allow = other_than(initiated_by),
    reason = "separation of duties: whoever initiated a payment may not approve it"
)]
pub async fn approve_payment(
    principal: Principal,
    State(app): State<AppState>,
    Authorized(mut payment): Authorized<Payment>,
) -> Response {
    match app
        .inner
        .db
        .approve_payment(&payment.id, principal.subject())
        .await
    {
        Ok(true) => {
            payment.approved_by = Some(principal.subject().to_string());
            Json(payment).into_response()
        }
        Ok(false) => problem(StatusCode::CONFLICT, "the payment is already approved"),
        Err(e) => db_unavailable(e),
    }
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
    if owner.trim().is_empty() {
        return problem(StatusCode::BAD_REQUEST, "`owner` cannot be empty");
    }
    let roles = body.roles.unwrap_or_else(|| vec!["viewer".to_string()]);
    let expires_at = match body.expires_in {
        None => None,
        Some(s) => match app.inner.clock.unix_seconds().checked_add(s) {
            Some(t) if i64::try_from(t).is_ok() => Some(t),
            _ => return problem(StatusCode::BAD_REQUEST, "`expires_in` is too large"),
        },
    };
    let keys = &app.inner.api_keys;
    if let Some(unknown) = roles.iter().find(|r| !keys.has_role(r)) {
        return problem(
            StatusCode::BAD_REQUEST,
            &format!("`{unknown}` is not a role of the policy"),
        );
    }
    // Least privilege: a key never carries a role its maker does not hold (directly or by
    // inheritance), so no admin can mint, say, both halves of the two-person payment rule.
    if let Some(foreign) = roles
        .iter()
        .find(|r| !principal.effective_roles().any(|held| held == r.as_str()))
    {
        return problem(
            StatusCode::FORBIDDEN,
            &format!("a key can carry only roles its maker holds; you do not hold `{foreign}`"),
        );
    }
    let tenant = tenant_of(&principal);
    match keys
        .create_in_tenant(&owner, Some(&tenant), roles, expires_at, body.description)
        .await
    {
        Ok(issued) => {
            let mut view = key_view(&issued.record);
            view["key"] = issued.key.expose_raw().into();
            no_store((StatusCode::CREATED, Json(view)).into_response())
        }
        Err(e) => store_unavailable(e),
    }
}

/// The tenant a key record acts in (a key made without one: the default tenant, as its
/// principal is).
fn key_tenant(r: &ApiKeyRecord) -> &str {
    r.tenant.as_deref().unwrap_or(crate::domain::DEFAULT_TENANT)
}

/// `GET /api-keys`: the metadata of every key of the caller's tenant, never a secret.
#[require_role("admin")]
pub async fn list_api_keys(principal: Principal, State(app): State<AppState>) -> Response {
    let tenant = tenant_of(&principal);
    match app.inner.api_keys.list().await {
        Ok(list) => {
            let keys: Vec<_> = list
                .iter()
                .filter(|r| key_tenant(r) == tenant)
                .map(key_view)
                .collect();
            Json(serde_json::json!({ "keys": keys })).into_response()
        }
        Err(e) => store_unavailable(e),
    }
}

/// An API key as a resource of its tenant: an admin manages only the keys of their tenant.
#[derive(authz_axum::Resource)]
#[resource(type = "api_key", tenant = tenant)]
pub struct ManagedKey {
    id: String,
    tenant: String,
}

impl authz_axum::resource::Load<AppState> for ManagedKey {
    type Id = String;
    type Error = authz_axum::core::keystore::StoreError;
    async fn load(
        app: &AppState,
        id: String,
        _: &authz_axum::core::Principal,
    ) -> Result<Option<Self>, Self::Error> {
        Ok(app.inner.api_keys.store().get(&id).await?.map(|r| ManagedKey {
            tenant: key_tenant(&r).to_string(),
            id: r.id,
        }))
    }
}

/// `POST /api-keys/{id}/revoke`: the key stops working at once.
#[require_role("admin")]
#[authorize]
pub async fn revoke_api_key(
    State(app): State<AppState>,
    Authorized(key): Authorized<ManagedKey>,
) -> Response {
    match app.inner.api_keys.revoke(&key.id).await {
        Ok(true) => Json(serde_json::json!({ "id": key.id, "revoked": true })).into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, "no such resource"),
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
#[authorize]
pub async fn rotate_api_key(
    State(app): State<AppState>,
    Authorized(ManagedKey { id, .. }): Authorized<ManagedKey>,
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
