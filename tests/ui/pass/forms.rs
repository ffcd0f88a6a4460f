//! Every supported form compiles and routes.
use authz_axum::prelude::*;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};

authz_axum::catalog! {
    /// Docs on the catalog are kept.
    pub struct Catalog {
        permissions: ["data:read", "data:write", "data:export", "model:run", "model:deploy"],
        roles: ["viewer", "admin"],
    }
}

#[derive(Clone)]
struct AppState {
    name: &'static str,
}

#[derive(serde::Deserialize)]
struct Page {
    _n: Option<u32>,
}

#[require_permission("model:run")]
async fn single(Path(id): Path<String>) -> impl IntoResponse {
    id
}

#[require_permission(any("data:write", "model:deploy"))]
async fn any_of() -> StatusCode {
    StatusCode::OK
}

#[require_permission(all("data:read", not("data:export")))]
async fn all_not(Query(_p): Query<Page>) -> &'static str {
    "ok"
}

#[require_any_permission("data:write", "model:deploy")]
async fn any_sugar() {}

#[require_role("admin")]
async fn role_only(State(s): State<AppState>) -> String {
    s.name.to_string()
}

#[require_permission(any("data:write", role("admin")))]
async fn role_in_expression() {}

#[require_role("admin")]
#[require_permission("data:write")]
#[authz_axum::require_permission(not("data:export"))]
async fn stacked(principal: Principal, Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    let _ = principal.subject();
    Json(body)
}

#[require_permission("data:read")]
async fn fallible(Path(n): Path<u32>) -> Result<String, StatusCode> {
    if n == 0 { Err(StatusCode::NOT_FOUND) } else { Ok(n.to_string()) }
}

#[require_permission("data:read")]
async fn generic<T: Send + 'static>(State(_s): State<T>) -> &'static str
where
    T: Clone + Sync,
{
    "generic"
}

#[require_permission("model:deploy")]
#[axum::debug_handler]
async fn with_debug_handler(Path(id): Path<u64>) -> String {
    id.to_string()
}

#[require_permission("data:read", crate = ::authz_axum, catalog = crate::Catalog)]
async fn explicit_paths() {}

mod nested {
    use authz_axum::prelude::*;

    authz_axum::catalog! {
        pub struct Perms { permissions: ["audit:read"] }
    }

    #[require_permission("audit:read", catalog = crate::nested::Perms)]
    pub async fn audit() {}
}

fn main() {
    let _app: Router = Router::new()
        .route("/single/{id}", get(single))
        .route("/any", get(any_of))
        .route("/all", get(all_not))
        .route("/sugar", get(any_sugar))
        .route("/role", get(role_only))
        .route("/role-expr", get(role_in_expression))
        .route("/stacked", post(stacked))
        .route("/fallible/{n}", get(fallible))
        .route("/generic", get(generic::<AppState>))
        .route("/debug/{id}", get(with_debug_handler))
        .route("/explicit", get(explicit_paths))
        .route("/audit", get(nested::audit))
        .with_state(AppState { name: "state" });
    assert_eq!(Catalog::MODEL_RUN.index(), 3);
}
