//! The routes. Each guard is declared on its handler and checked at compile time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use authz_axum::RouteTable;
use authz_axum::core::Catalog as _;
use authz_axum::prelude::*;
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
    pub(crate) datasets: RwLock<Vec<Dataset>>,
    pub(crate) reports: RwLock<HashMap<Uuid, Report>>,
    pub(crate) payments: RwLock<HashMap<Uuid, Payment>>,
    pub(crate) routes: RwLock<RouteTable>,
}

impl AppState {
    pub(crate) fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
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
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().expect("static"),
    );
    r
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
#[serde(default)]
pub struct DeployRequest {
    environment: Option<String>,
}

/// `POST /models/{id}/deploy`
#[require_permission("model:deploy")]
pub async fn deploy_model(
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DeployRequest>,
) -> impl IntoResponse {
    let env = body.environment.unwrap_or_else(|| "staging".into());
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "model": id, "environment": env, "status": "deploying" })),
    )
}

/// Body of `POST /reports`.
#[derive(Deserialize, Default)]
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
