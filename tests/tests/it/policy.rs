//! Policy engines behind one seam (`authz_axum::engine`): the model registry's deploy rule as
//! shipped (`examples/model-registry/policies/deploy.rego` and `deploy.cedar`) decided by
//! embedded Rego, Cedar and OPA over HTTP with identical verdicts; OPA's failure modes over real
//! loopback HTTP; the decision cache on a manual clock; hot reload; guards over HTTP; start-up
//! validation of policy names.
//!
//! **The OPA server here is not OPA**: no OPA build can be installed from the package registries
//! this project reaches, so [`DataApi`] serves OPA's Data API (`POST /v1/data/{path}` with
//! `{"input": …}`, `GET /v1/data/{path}`, `result` omitted when undefined, a `decision_id`)
//! around regorus, a Rego evaluator, on 127.0.0.1. What is tested is the client: the wire
//! format, pooling, the timeout and every failure mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authz_axum::core::clock::ManualClock;
use authz_axum::core::{Catalog as _, Policy, Principal, RoleSpec};
use authz_axum::engine::cedar::CedarEngine;
use authz_axum::engine::opa::{OpaConfig, OpaEngine};
use authz_axum::engine::rego::RegoEngine;
use authz_axum::engine::{
    CacheConfig, Cached, Decision, Input, PolicyChecked, PolicyContext, PolicyEngine, PrincipalInput,
    RequestInput, ResourceInput,
};
use authz_axum::prelude::*;
use authz_axum::testing::PrincipalLayer;
use authz_axum::{AuditedRouter, RouteTable};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::common::{captured_logs, http, init_tracing, serve};

// ---- the engines, loaded from the example's shipped policies ----------------------------------

fn shipped() -> PathBuf {
    model_registry::policy::shipped_dir()
}

fn rego() -> RegoEngine {
    RegoEngine::load(shipped()).expect("the shipped Rego policies load")
}

fn cedar() -> CedarEngine {
    CedarEngine::load(shipped(), model_registry::policy::cedar_schema().unwrap())
        .expect("the shipped Cedar policies validate against the catalog's schema")
}

fn opa_config(url: &str) -> OpaConfig {
    let mut c = OpaConfig::new(url);
    // Generous for a loaded CI machine; the slow-OPA test sets its own.
    c.timeout = Duration::from_millis(2000);
    c
}

// ---- a Data API server around a Rego evaluator (see the module docs) ---------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Normal,
    /// Accepts the request and never answers.
    Hang,
    Status500,
    Malformed,
}

#[derive(Clone)]
struct DataApiState {
    engine: Arc<Mutex<regorus::Engine>>,
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
}

struct DataApi {
    url: String,
    state: DataApiState,
}

impl DataApi {
    /// Serves the `.rego` files of `dir` plus `extra` modules.
    async fn start(dir: &Path, extra: &[(&str, &str)]) -> Self {
        let mut engine = regorus::Engine::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rego") {
                engine.add_policy_from_file(&path).unwrap();
            }
        }
        for (name, text) in extra {
            engine.add_policy(name.to_string(), text.to_string()).unwrap();
        }
        let state = DataApiState {
            engine: Arc::new(Mutex::new(engine)),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = axum::Router::new()
            .route("/v1/data/{*path}", axum::routing::post(data_post).get(data_get))
            .with_state(state.clone());
        DataApi {
            url: serve(app).await,
            state,
        }
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

fn to_json(v: &regorus::Value) -> Value {
    serde_json::from_str(&v.to_json_str().unwrap()).unwrap()
}

async fn misbehave(state: &DataApiState) -> Option<Response> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *state.mode.lock().unwrap();
    match mode {
        Mode::Normal => None,
        Mode::Hang => std::future::pending().await,
        Mode::Status500 => Some((StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()),
        Mode::Malformed => {
            Some(([("content-type", "application/json")], r#"{"result": tru"#).into_response())
        }
    }
}

async fn data_post(
    State(state): State<DataApiState>,
    axum::extract::Path(path): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let rule = format!("data.{}", path.replace('/', "."));
    let result = {
        let mut engine = state.engine.lock().unwrap();
        engine.set_input(regorus::Value::from(body["input"].clone()));
        engine.eval_rule(rule)
    };
    let id = uuid::Uuid::new_v4().to_string();
    match result {
        Ok(regorus::Value::Undefined) => Json(json!({ "decision_id": id })).into_response(),
        Ok(v) => Json(json!({ "result": to_json(&v), "decision_id": id })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn data_get(
    State(state): State<DataApiState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    let query = format!("data.{}", path.replace('/', "."));
    let results = {
        let mut engine = state.engine.lock().unwrap();
        engine.set_input(regorus::Value::new_object());
        engine.eval_query(query, false)
    };
    match results {
        Ok(r) => match r.result.first().and_then(|q| q.expressions.first()) {
            Some(e) => Json(json!({ "result": to_json(&e.value) })).into_response(),
            None => Json(json!({})).into_response(),
        },
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

// ---- the decision table -----------------------------------------------------------------------

fn input(roles: &[&str], subject: &str, owner: Option<&str>, environment: Option<&str>) -> Input {
    Input {
        principal: Arc::new(PrincipalInput {
            subject: subject.into(),
            issuer: Some("https://id.example.com".into()),
            tenant: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            effective_roles: roles.iter().map(|r| r.to_string()).collect(),
            permissions: vec!["model:deploy".into()],
            scopes: vec![],
            claims: Default::default(),
            auth_method: "jwt".into(),
        }),
        action: "model:deploy".into(),
        resource: Some(ResourceInput {
            kind: "model".into(),
            id: Some("m-1".into()),
            attributes: match owner {
                Some(o) => json!({ "owner": o, "tenant": "acme" }),
                None => Value::Null,
            },
        }),
        request: RequestInput {
            method: "POST".into(),
            route: "/models/{id}/deploy".into(),
            params: BTreeMap::from([("id".into(), "m-1".into())]),
            time: 1_767_225_600,
        },
        context: match environment {
            Some(e) => json!({ "environment": e }),
            None => Value::Null,
        },
    }
}

/// (case, effective roles, subject, model owner, environment, allowed)
type Row = (
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    bool,
);

const TABLE: &[Row] = &[
    (
        "admin to production",
        &["admin", "analyst", "viewer"],
        "root",
        Some("alice"),
        Some("production"),
        true,
    ),
    (
        "admin to staging",
        &["admin", "analyst", "viewer"],
        "root",
        Some("root"),
        Some("staging"),
        true,
    ),
    (
        "admin, model not loaded",
        &["admin", "analyst", "viewer"],
        "root",
        None,
        Some("production"),
        true,
    ),
    (
        "analyst, own model, staging",
        &["analyst", "viewer"],
        "alice",
        Some("alice"),
        Some("staging"),
        true,
    ),
    (
        "analyst, own model, production",
        &["analyst", "viewer"],
        "alice",
        Some("alice"),
        Some("production"),
        false,
    ),
    (
        "analyst, someone else's model",
        &["analyst", "viewer"],
        "alice",
        Some("bob"),
        Some("staging"),
        false,
    ),
    (
        "analyst, model not loaded",
        &["analyst", "viewer"],
        "alice",
        None,
        Some("staging"),
        false,
    ),
    (
        "analyst, no environment",
        &["analyst", "viewer"],
        "alice",
        Some("alice"),
        None,
        false,
    ),
    (
        "analyst, environment in another case",
        &["analyst"],
        "alice",
        Some("alice"),
        Some("Staging"),
        false,
    ),
    (
        "viewer, own model",
        &["viewer"],
        "alice",
        Some("alice"),
        Some("staging"),
        false,
    ),
    ("no roles", &[], "alice", Some("alice"), Some("staging"), false),
];

#[tokio::test]
async fn one_decision_table_three_engines_identical_verdicts() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let opa = OpaEngine::discover(opa_config(&api.url)).await.unwrap();
    let engines: Vec<Box<dyn PolicyEngine>> = vec![Box::new(rego()), Box::new(cedar()), Box::new(opa)];
    for engine in &engines {
        assert_eq!(engine.policies(), ["deploy"], "{}", engine.kind());
    }
    for (case, roles, subject, owner, env, expected) in TABLE {
        let input = input(roles, subject, *owner, *env);
        let verdicts: Vec<(&str, Decision)> = {
            let mut v = Vec::new();
            for e in &engines {
                v.push((e.kind(), e.decide("deploy", &input).await));
            }
            v
        };
        for (kind, d) in &verdicts {
            assert_eq!(d.allowed, *expected, "{kind}: {case}: {d}");
            assert!(!d.failed, "{kind}: {case}: a real decision, not a failure: {d}");
            if !d.allowed {
                assert!(!d.reasons.is_empty(), "{kind}: {case}: a deny says why");
            }
        }
    }
    // Facts of the wrong type never allow (Cedar refuses them against its schema: a failure).
    let mut odd = input(&["analyst"], "alice", Some("alice"), None);
    odd.context = json!({ "environment": 5 });
    for e in &engines {
        let d = e.decide("deploy", &odd).await;
        assert!(!d.allowed, "{}: {d}", e.kind());
    }
    // The Rego policy's own reasons come through.
    let d = rego()
        .decide(
            "deploy",
            &input(&["analyst"], "alice", Some("alice"), Some("production")),
        )
        .await;
    assert_eq!(d.reasons, ["analysts deploy only to staging"]);
    // An unknown policy is a deny (a failure), in every engine.
    for e in &engines {
        let d = e
            .decide("deplyo", &input(&["admin"], "root", None, Some("staging")))
            .await;
        assert!(!d.allowed && d.failed, "{}: {d}", e.kind());
    }
}

// ---- OPA over HTTP: every failure is a deny ---------------------------------------------------

const EXTRA: &[(&str, &str)] = &[
    (
        "nodefault.rego",
        "package authz.nodefault\nimport rego.v1\nallow if input.action == \"never\"\n",
    ),
    (
        "notbool.rego",
        "package authz.notbool\nimport rego.v1\nallow := \"yes\"\n",
    ),
];

#[tokio::test]
async fn opa_failure_modes_all_deny() {
    init_tracing();
    let api = DataApi::start(&shipped(), EXTRA).await;
    let admin = input(&["admin"], "root", None, Some("production"));
    let engine = OpaEngine::new(
        opa_config(&api.url),
        vec!["deploy".into(), "nodefault".into(), "notbool".into()],
    )
    .unwrap();
    let d = engine.decide("deploy", &admin).await;
    assert!(d.allowed, "{d}");
    assert!(d.decision_id.is_some(), "OPA's decision_id is kept");

    // Undefined result, non-boolean result.
    let d = engine.decide("nodefault", &admin).await;
    assert!(!d.allowed && d.failed, "{d}");
    assert!(d.reasons[0].contains("undefined"), "{d}");
    let d = engine.decide("notbool", &admin).await;
    assert!(!d.allowed && d.failed, "{d}");
    assert!(d.reasons[0].contains("not a boolean"), "{d}");

    // 500, a malformed body.
    api.set_mode(Mode::Status500);
    let d = engine.decide("deploy", &admin).await;
    assert!(!d.allowed && d.failed && d.reasons[0].contains("500"), "{d}");
    api.set_mode(Mode::Malformed);
    let d = engine.decide("deploy", &admin).await;
    assert!(!d.allowed && d.failed && d.reasons[0].contains("not JSON"), "{d}");

    // Slow: OPA takes the request and never answers; the 50 ms default timeout denies.
    api.set_mode(Mode::Hang);
    let slow = OpaEngine::new(OpaConfig::new(&api.url), vec!["deploy".into()]).unwrap();
    assert_eq!(slow.config().timeout, Duration::from_millis(50));
    let d = slow.decide("deploy", &admin).await;
    assert!(
        !d.allowed && d.failed && d.reasons[0].contains("within 50 ms"),
        "{d}"
    );

    // Down: nothing listens.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let engine = OpaEngine::new(opa_config(&down), vec!["deploy".into()]).unwrap();
    let d = engine.decide("deploy", &admin).await;
    assert!(
        !d.allowed && d.failed && d.reasons[0].contains("cannot connect"),
        "{d}"
    );
    // And discovery at start-up says what is wrong.
    let e = OpaEngine::discover(opa_config(&down)).await.unwrap_err();
    assert!(e.to_string().contains("OPA did not answer"), "{e}");
}

#[tokio::test]
async fn opa_decisions_are_cached_by_input_for_the_ttl_failures_never() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let clock = Arc::new(ManualClock::starting_now());
    let engine = Cached::new(
        OpaEngine::new(opa_config(&api.url), vec!["deploy".into()]).unwrap(),
        CacheConfig {
            ttl: Duration::from_secs(2),
            capacity: 100,
        },
        clock.clone(),
    );
    let admin = input(&["admin"], "root", None, Some("production"));
    let analyst = input(&["analyst"], "alice", Some("alice"), Some("production"));
    assert!(engine.decide("deploy", &admin).await.allowed);
    assert!(engine.decide("deploy", &admin).await.allowed);
    assert_eq!(api.hits(), 1, "the second identical input is a cache hit");
    assert!(!engine.decide("deploy", &analyst).await.allowed);
    assert_eq!(api.hits(), 2, "another input is another question");
    clock.advance(Duration::from_millis(2001));
    assert!(engine.decide("deploy", &admin).await.allowed);
    assert_eq!(api.hits(), 3, "expired after the TTL");

    // A failure is not cached: once OPA is back, the next request asks again.
    let other = input(&["admin"], "root2", None, Some("staging"));
    api.set_mode(Mode::Status500);
    assert!(engine.decide("deploy", &other).await.failed);
    api.set_mode(Mode::Normal);
    let d = engine.decide("deploy", &other).await;
    assert!(d.allowed && !d.failed, "{d}");
    assert_eq!(api.hits(), 5);

    // Inputs that differ in one small way never share an entry; an equal one, built again from
    // scratch, does.
    let admin = input(&["admin"], "root", None, Some("production"));
    let with = |f: &dyn Fn(&mut Input)| {
        let mut i = admin.clone();
        f(&mut i);
        i
    };
    let distinct = [
        with(&|i| Arc::make_mut(&mut i.principal).roles.push("viewer".into())),
        with(&|i| {
            i.request.params.insert("id".into(), "m-2".into());
        }),
        with(&|i| i.context = json!({ "environment": "production", "replicas": 1 })),
        with(&|i| i.context = json!({ "environment": "production", "replicas": 1.0 })),
    ];
    let before = api.hits();
    for (n, i) in distinct.iter().enumerate() {
        assert!(engine.decide("deploy", i).await.allowed);
        assert_eq!(api.hits(), before + n + 1, "variant {n} is its own question");
    }
    for i in distinct.iter().chain([&admin]) {
        assert!(engine.decide("deploy", &i.clone()).await.allowed);
    }
    let rebuilt = input(&["admin"], "root", None, Some("production"));
    assert!(engine.decide("deploy", &rebuilt).await.allowed);
    assert_eq!(api.hits(), before + distinct.len(), "equal inputs are hits");
}

// ---- hot reload -------------------------------------------------------------------------------

const ADMINS_ONLY: &str = "package authz.deploy\nimport rego.v1\ndefault allow := false\nallow if \"admin\" in input.principal.effective_roles\n";
const ANALYSTS_TOO: &str = "package authz.deploy\nimport rego.v1\ndefault allow := false\nallow if \"analyst\" in input.principal.effective_roles\n";
const BROKEN: &str = "package authz.deploy\nimport rego.v1\ndefault allow := false\nallow if {\n    input.principal.subject ==\n}\n";

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authz-policy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn rego_hot_reload_swaps_valid_changes_and_refuses_broken_ones() {
    init_tracing();
    let dir = scratch_dir();
    let file = dir.join("deploy.rego");
    std::fs::write(&file, ADMINS_ONLY).unwrap();
    let engine = RegoEngine::load(&dir).unwrap();
    let analyst = input(&["analyst"], "alice", None, Some("staging"));
    assert!(!engine.decide("deploy", &analyst).await.allowed);
    assert!(!engine.changed());
    assert!(
        !engine.reload_if_changed().unwrap(),
        "nothing changed, nothing reloaded"
    );

    // A valid change takes effect without a restart.
    std::fs::write(&file, ANALYSTS_TOO).unwrap();
    assert!(engine.changed());
    assert!(engine.reload_if_changed().unwrap());
    assert!(engine.decide("deploy", &analyst).await.allowed);

    // A broken one is refused with its file and line, logged, and the old policy answers.
    std::fs::write(&file, BROKEN).unwrap();
    let e = engine.reload_if_changed().unwrap_err();
    let message = e.to_string();
    assert!(message.contains("deploy.rego"), "{message}");
    assert!(message.contains("line 6, column 1"), "names the line: {message}");
    assert!(
        engine.decide("deploy", &analyst).await.allowed,
        "the previous policy keeps serving"
    );
    assert!(captured_logs().contains("rego policy change refused"));
    assert!(
        !engine.reload_if_changed().unwrap(),
        "the same broken files are not retried on every poll"
    );

    // A file that adds a second policy next to a broken one: never half loaded.
    std::fs::write(
        dir.join("run.rego"),
        "package authz.run\nimport rego.v1\ndefault allow := true\n",
    )
    .unwrap();
    assert!(engine.reload().is_err());
    assert_eq!(engine.policies(), ["deploy"]);

    // Fixed: both load.
    std::fs::write(&file, ADMINS_ONLY).unwrap();
    assert_eq!(engine.reload().unwrap(), ["deploy", "run"]);
    assert!(!engine.decide("deploy", &analyst).await.allowed);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn rego_watcher_picks_up_a_change() {
    init_tracing();
    let dir = scratch_dir();
    std::fs::write(dir.join("deploy.rego"), ADMINS_ONLY).unwrap();
    let engine = Arc::new(RegoEngine::load(&dir).unwrap());
    let watcher = engine.watch(Duration::from_millis(20));
    std::fs::write(dir.join("deploy.rego"), ANALYSTS_TOO).unwrap();
    let analyst = input(&["analyst"], "alice", None, Some("staging"));
    // Bounded wait on the watcher (no assertion on how fast).
    let mut allowed = false;
    for _ in 0..500 {
        if engine.decide("deploy", &analyst).await.allowed {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.abort();
    assert!(allowed, "the watcher reloaded the changed file");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn broken_policies_refuse_to_load_naming_file_and_line() {
    let dir = scratch_dir();
    std::fs::write(dir.join("deploy.rego"), BROKEN).unwrap();
    let e = RegoEngine::load(&dir).unwrap_err().to_string();
    assert!(
        e.ends_with("deploy.rego: line 6, column 1: expecting expression: `}`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Cedar: a policy reading an attribute the catalog's schema does not have.
    let schema = model_registry::policy::cedar_schema().unwrap();
    let e = CedarEngine::from_sources(
        [(
            "deploy".into(),
            "deploy.cedar".into(),
            "permit (principal, action == Action::\"model:deploy\", resource)\nwhen { resource.colour == \"red\" };\n"
                .into(),
        )],
        schema.clone(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("deploy.cedar: ") && e.contains("line 2, column 8"),
        "{e}"
    );
    assert!(e.contains("colour"), "{e}");
    // An action the catalog does not declare.
    let e = CedarEngine::from_sources(
        [(
            "deploy".into(),
            "deploy.cedar".into(),
            "permit (principal, action == Action::\"model:delete\", resource);\n".into(),
        )],
        schema,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model:delete"), "{e}");
}

// ---- over HTTP: the guard, PolicyChecked, 403 never 500 -----------------------------------------

authz_axum::catalog! {
    pub struct Catalog { permissions: ["model:run", "model:deploy"] }
}

#[derive(serde::Deserialize)]
struct DeployBody {
    environment: Option<String>,
}

impl PolicyContext for DeployBody {
    fn policy_context(&self) -> Value {
        json!({ "environment": self.environment.as_deref().unwrap_or("staging") })
    }
}

#[require_permission("model:deploy", policy = "deploy")]
async fn deploy(
    axum::extract::Path(id): axum::extract::Path<String>,
    PolicyChecked(Json(body)): PolicyChecked<Json<DeployBody>>,
) -> String {
    format!("{id} → {}", body.environment.unwrap_or_default())
}

/// Decided by the guard itself (no body facts: `context` is null).
#[require_permission("model:deploy", policy = "deploy")]
async fn run(axum::extract::Path(id): axum::extract::Path<String>) -> String {
    id
}

/// Stands in for a resource loader (the model's owner is `alice`), run after the guard.
struct OwnedByAlice;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for OwnedByAlice {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.insert(authz_axum::engine::ResourceAttributes(
            json!({ "owner": "alice" }),
        ));
        Ok(OwnedByAlice)
    }
}

#[require_permission("model:deploy", policy = "deploy")]
async fn deploy_loaded(
    _model: OwnedByAlice,
    PolicyChecked(Json(_body)): PolicyChecked<Json<DeployBody>>,
) -> &'static str {
    "deploying"
}

#[require_permission("model:run")]
async fn no_policy() -> &'static str {
    "ok"
}

fn rbac() -> Policy {
    Policy::builder(Arc::new(Catalog::catalog().clone()))
        .role(RoleSpec::new("viewer"))
        .role(RoleSpec::new("analyst").grants(["model:run", "model:deploy"]))
        .role(RoleSpec::new("admin").inherits("analyst"))
        .build()
        .unwrap()
}

fn routes() -> (axum::Router, RouteTable) {
    AuditedRouter::new()
        .post("/models/{id}/deploy", deploy)
        .post("/models/{id}/deploy-staging", run)
        .post("/loaded/{id}/deploy", deploy_loaded)
        .get("/plain", no_policy)
        .into_parts()
}

/// Serves the routes as `subject` with `roles`, asking `engine`.
async fn app_as(subject: &str, roles: &[&str], engine: Option<Arc<dyn PolicyEngine>>) -> String {
    let principal = Principal::for_testing(subject, roles.iter().copied(), &rbac());
    let mut layer = PrincipalLayer::new(principal);
    if let Some(e) = engine {
        layer = layer.policy_engine(e, authz_axum::core::clock::system());
    }
    serve(routes().0.layer(layer)).await
}

async fn post(url: &str, path: &str, body: Option<Value>) -> (u16, String, String) {
    // No body: `{}` (the environment defaults to staging).
    let resp = http()
        .post(format!("{url}{path}"))
        .json(&body.unwrap_or_else(|| json!({})))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, www, resp.text().await.unwrap())
}

#[tokio::test]
async fn over_http_each_engine_decides_with_the_body_environment() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let opa: Arc<dyn PolicyEngine> = Arc::new(OpaEngine::discover(opa_config(&api.url)).await.unwrap());
    let engines: Vec<Arc<dyn PolicyEngine>> = vec![Arc::new(rego()), Arc::new(cedar()), opa];
    // Models are not loaded here (resource.attributes is null): analysts never deploy.
    let cases: &[(&[&str], Option<Value>, u16)] = &[
        (&["admin"], Some(json!({"environment": "production"})), 200),
        (&["admin"], None, 200),
        (&["analyst"], Some(json!({"environment": "staging"})), 403),
        (&["viewer"], Some(json!({"environment": "staging"})), 403),
    ];
    for engine in engines {
        let table = routes().1;
        table.check_policies(Some(&*engine)).unwrap();
        for (roles, body, expected) in cases {
            let url = app_as("alice", roles, Some(engine.clone())).await;
            let (status, www, text) = post(&url, "/models/m-1/deploy", body.clone()).await;
            assert_eq!(status, *expected, "{}: {roles:?} {body:?}: {text}", engine.kind());
            if status == 403 {
                assert_eq!(www, r#"Bearer realm="api", error="insufficient_scope""#);
                assert!(
                    !text.contains("staging") && !text.contains("analyst"),
                    "no policy internals: {text}"
                );
            } else {
                assert!(text.starts_with("m-1 → "), "{text}");
            }
            // Decided by the guard itself, without body facts.
            let (status, _, _) = post(&url, "/models/m-1/deploy-staging", None).await;
            let admin = roles.contains(&"admin");
            assert_eq!(
                status,
                if admin { 200 } else { 403 },
                "{}: run as {roles:?}",
                engine.kind()
            );
        }
    }
    let logs = captured_logs();
    assert!(
        logs.lines().any(|l| l.contains("policy decision")
            && l.contains("engine=\"opa\"")
            && l.contains("decision_id=\"")
            && !l.contains("decision_id=\"\"")),
        "the decision log line carries OPA's decision_id"
    );
}

#[tokio::test]
async fn over_http_a_loaded_owner_lets_analysts_deploy_their_own_models_to_staging() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let opa: Arc<dyn PolicyEngine> = Arc::new(OpaEngine::discover(opa_config(&api.url)).await.unwrap());
    for engine in [Arc::new(rego()) as Arc<dyn PolicyEngine>, Arc::new(cedar()), opa] {
        for (subject, environment, expected) in [
            ("alice", "staging", 200),
            ("alice", "production", 403),
            ("bob", "staging", 403),
        ] {
            let url = app_as(subject, &["analyst"], Some(engine.clone())).await;
            let (status, _, _) = post(
                &url,
                "/loaded/m-1/deploy",
                Some(json!({ "environment": environment })),
            )
            .await;
            assert_eq!(status, expected, "{}: {subject} to {environment}", engine.kind());
        }
    }
}

#[tokio::test]
async fn over_http_an_engine_failure_is_403_never_500_never_a_pass() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let mut fast = OpaConfig::new(&api.url);
    fast.timeout = Duration::from_millis(50);
    let engine: Arc<dyn PolicyEngine> = Arc::new(OpaEngine::new(fast, vec!["deploy".into()]).unwrap());
    let url = app_as("root", &["admin"], Some(engine)).await;
    for mode in [Mode::Hang, Mode::Status500, Mode::Malformed] {
        api.set_mode(mode);
        for path in ["/models/m-1/deploy", "/models/m-1/deploy-staging"] {
            let (status, www, _) = post(&url, path, Some(json!({"environment": "staging"}))).await;
            assert_eq!(status, 403, "{mode:?} {path}");
            assert!(www.contains("insufficient_scope"));
        }
    }
    // OPA down.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(OpaEngine::new(opa_config(&down), vec!["deploy".into()]).unwrap());
    let url = app_as("root", &["admin"], Some(engine)).await;
    assert_eq!(post(&url, "/models/m-1/deploy", None).await.0, 403);
    // No engine installed at all: the policy routes deny, the others are untouched.
    let url = app_as("root", &["admin"], None).await;
    assert_eq!(post(&url, "/models/m-1/deploy", None).await.0, 403);
    assert_eq!(post(&url, "/models/m-1/deploy-staging", None).await.0, 403);
    let plain = http().get(format!("{url}/plain")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
}

#[tokio::test]
async fn the_engine_is_asked_only_when_the_permission_holds() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(OpaEngine::new(opa_config(&api.url), vec!["deploy".into()]).unwrap());
    let url = app_as("eve", &["viewer"], Some(engine)).await;
    assert_eq!(post(&url, "/models/m-1/deploy", None).await.0, 403);
    assert_eq!(post(&url, "/models/m-1/deploy-staging", None).await.0, 403);
    assert_eq!(
        api.hits(),
        0,
        "a missing permission is denied by the bitset alone"
    );
}

#[tokio::test]
async fn a_malformed_body_is_refused_before_any_decision() {
    init_tracing();
    let api = DataApi::start(&shipped(), &[]).await;
    let engine: Arc<dyn PolicyEngine> =
        Arc::new(OpaEngine::new(opa_config(&api.url), vec!["deploy".into()]).unwrap());
    let url = app_as("root", &["admin"], Some(engine)).await;
    let resp = http()
        .post(format!("{url}/models/m-1/deploy"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(api.hits(), 0);
}

// ---- start-up: every policy a route names must be loaded --------------------------------------

#[test]
fn unknown_policy_names_refuse_to_start_naming_them() {
    let table = routes().1;
    let e = table.check_policies(None).unwrap_err().to_string();
    assert!(
        e.contains("\"deploy\"") && e.contains("POST /models/{id}/deploy"),
        "{e}"
    );

    let dir = scratch_dir();
    std::fs::write(
        dir.join("other.rego"),
        "package authz.other\nimport rego.v1\ndefault allow := false\n",
    )
    .unwrap();
    let engine = RegoEngine::load(&dir).unwrap();
    let e = table.check_policies(Some(&engine)).unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown policy \"deploy\" (required by POST /models/{id}/deploy, POST /models/{id}/deploy-staging, \
         POST /loaded/{id}/deploy); the rego engine has: other"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        table.to_json()[0]["policy"],
        "deploy",
        "the route table shows the policy"
    );
}

#[tokio::test]
async fn the_registry_refuses_to_start_without_its_policies() {
    init_tracing();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let start = |f: &dyn Fn(&mut model_registry::Config)| {
        let mut c = model_registry::Config::with_bind(any);
        f(&mut c);
        model_registry::start(c)
    };
    let err = |r: Result<model_registry::Server, model_registry::StartError>| match r {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    let e = err(start(&|c| c.policy_engine = Some("casbin".into())).await);
    assert_eq!(e, "AUTHZ_POLICY_ENGINE=\"casbin\": expected rego, cedar or opa");
    let e = err(start(&|c| c.policy_engine = Some("opa".into())).await);
    assert!(e.contains("AUTHZ_OPA_URL"), "{e}");

    let dir = scratch_dir();
    std::fs::write(
        dir.join("other.rego"),
        "package authz.other\nimport rego.v1\ndefault allow := false\n",
    )
    .unwrap();
    let d = dir.clone();
    let e = err(start(&move |c| c.policy_dir = Some(d.clone())).await);
    assert!(
        e.contains("unknown policy \"deploy\"") && e.contains("POST /models/{id}/deploy"),
        "{e}"
    );
    std::fs::write(dir.join("deploy.rego"), BROKEN).unwrap();
    let d = dir.clone();
    let e = err(start(&move |c| c.policy_dir = Some(d.clone())).await);
    assert!(
        e.contains("AUTHZ_POLICY_DIR") && e.contains("deploy.rego") && e.contains("line 6"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Each engine starts with the shipped policies (OPA: the Data API above, discovered).
    let api = DataApi::start(&shipped(), &[]).await;
    for (engine, url) in [("rego", None), ("cedar", None), ("opa", Some(api.url.clone()))] {
        let server = start(&|c| {
            c.policy_engine = Some(engine.into());
            c.opa_url = url.clone();
        })
        .await
        .unwrap_or_else(|e| panic!("{engine}: {e}"));
        server.stop().await;
    }
}

// ---- a policy beside a resource rule: decided after the load, with the resource's attributes --

/// A model whose owner the path names (`/owned/{owner}`), loaded like any resource.
#[derive(authz_axum::Resource)]
#[resource(type = "model", owner = owner)]
struct OwnedModel {
    owner: String,
}

impl authz_axum::resource::Load<()> for OwnedModel {
    type Id = String;
    type Error = std::convert::Infallible;
    async fn load(_: &(), owner: String, _: &Principal) -> Result<Option<Self>, Self::Error> {
        Ok((owner != "nobody").then_some(OwnedModel { owner }))
    }
}

/// No body: the engine is asked right after the resource check, with `resource.attributes`.
#[require_permission("model:deploy", policy = "owner_only")]
#[authorize]
async fn owner_only(Authorized(m): Authorized<OwnedModel>) -> String {
    format!("deploying {}'s model", m.owner)
}

const OWNER_ONLY: &str = "package authz.owner_only\nimport rego.v1\ndefault allow := false\n\
                          allow if input.resource.attributes.owner == input.principal.subject\n\
                          allow if input.resource.type == \"nothing\"\n";

#[tokio::test]
async fn a_policy_beside_a_resource_rule_sees_the_loaded_resource() {
    init_tracing();
    let dir = scratch_dir();
    std::fs::write(dir.join("owner_only.rego"), OWNER_ONLY).unwrap();
    let engine: Arc<dyn PolicyEngine> = Arc::new(RegoEngine::load(&dir).unwrap());
    let (router, table) = AuditedRouter::new().post("/owned/{id}", owner_only).into_parts();
    table.check_policies(Some(&*engine)).unwrap();
    for (subject, path, expected) in [
        ("alice", "/owned/alice", 200),
        ("bob", "/owned/alice", 403),
        // A missing resource is the 404 of the resource rule: the engine is never asked.
        ("alice", "/owned/nobody", 404),
    ] {
        let principal = Principal::for_testing(subject, ["analyst"], &rbac());
        let layer =
            PrincipalLayer::new(principal).policy_engine(engine.clone(), authz_axum::core::clock::system());
        let url = serve(router.clone().layer(layer)).await;
        let (status, _, text) = post(&url, path, None).await;
        assert_eq!(status, expected, "{subject} {path}: {text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The engines' view of a principal is made once and shared by its later requests (the auth
/// layer calls `PrincipalInput::shared`); it is what `PrincipalInput::of` makes; a principal in
/// another tenant gets its own.
#[test]
fn a_principals_engine_view_is_made_once_shared_and_equal_to_a_fresh_one() {
    let policy = rbac();
    let alice = Principal::for_testing("alice", ["analyst"], &policy);
    let first = PrincipalInput::shared::<Catalog>(&alice);
    let again = PrincipalInput::shared::<Catalog>(&alice.clone());
    assert!(Arc::ptr_eq(&first, &again), "made once");
    assert_eq!(*first, PrincipalInput::of::<Catalog>(&alice));
    assert_eq!(first.permissions, ["model:run", "model:deploy"]);
    let in_acme = Principal::for_testing_in_tenant("alice", "acme", ["analyst"], &policy);
    let view = PrincipalInput::shared::<Catalog>(&in_acme);
    assert_eq!(view.tenant.as_deref(), Some("acme"));
    assert!(!Arc::ptr_eq(&first, &view));
}
