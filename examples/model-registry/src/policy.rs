//! The policy engine behind `#[require_permission("model:deploy", policy = "deploy")]`, chosen
//! by `AUTHZ_POLICY_ENGINE`:
//!
//! | `AUTHZ_POLICY_ENGINE` | engine | reads |
//! |---|---|---|
//! | `rego` (default) | embedded Rego (regorus), reloaded when a file changes | `AUTHZ_POLICY_DIR/*.rego` |
//! | `cedar` | Cedar, validated against the schema generated from the catalog | `AUTHZ_POLICY_DIR/*.cedar` |
//! | `opa` | an OPA server's Data API, 50 ms timeout, 2 s decision cache | `AUTHZ_OPA_URL` |
//!
//! `AUTHZ_POLICY_DIR` defaults to the shipped `examples/model-registry/policies` (which holds
//! the deploy rule as `deploy.rego` and `deploy.cedar`).
//!
//! **The deploy environment** arrives in the body (`{"environment": "production"}`), after the
//! guard ran: the handler takes the body as `PolicyChecked<JsonBody<DeployRequest>>`, and
//! [`DeployRequest`](crate::handlers::DeployRequest)'s `PolicyContext` puts `{"environment": ..}` into the input's `context`
//! (the same default, `staging`, the handler uses). The model's owner is
//! `resource.attributes.owner`, which stays `null` until the registry stores models: until then
//! the analyst rule cannot match and only admins deploy.

use std::path::PathBuf;
use std::sync::Arc;

use authz_axum::core::Catalog as _;
use authz_axum::core::clock::Clock;
use authz_axum::engine::PolicyEngine;
use authz_axum::engine::cedar::{AttrType, CedarEngine, SchemaBuilder};
use authz_axum::engine::opa::{OpaConfig, OpaEngine};
use authz_axum::engine::rego::RegoEngine;
use authz_axum::engine::{CacheConfig, Cached};

use crate::StartError;
use crate::catalog::Catalog;
use crate::config::Config;

/// The shipped policy directory (`examples/model-registry/policies`).
pub fn shipped_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
}

/// How often the Rego directory is checked for changes.
pub const RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The Cedar schema: the catalog's actions and resource types, plus the attributes the deploy
/// rule reads.
pub fn cedar_schema() -> Result<authz_axum::engine::cedar::CedarSchema, StartError> {
    SchemaBuilder::from_catalog(Catalog::catalog())
        .resource_attribute("model", "owner", AttrType::String)
        .resource_attribute("model", "tenant", AttrType::String)
        .context_attribute("environment", AttrType::String)
        .build()
        .map_err(|e| StartError(format!("Cedar schema: {e}")))
}

/// The engine `config` asks for, and the task that reloads Rego policies on change (`None` for
/// the other engines).
///
/// # Errors
/// An unknown `AUTHZ_POLICY_ENGINE`; policies that do not load (the message names the file and
/// line); `opa` without `AUTHZ_OPA_URL`, or an OPA that does not answer at start.
pub async fn engine(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<dyn PolicyEngine>, Option<tokio::task::JoinHandle<()>>), StartError> {
    let dir = config.policy_dir.clone().unwrap_or_else(shipped_dir);
    let kind = config.policy_engine.as_deref().unwrap_or("rego").trim();
    match kind {
        "rego" => {
            let engine = Arc::new(
                RegoEngine::load(&dir).map_err(|e| StartError(format!("AUTHZ_POLICY_DIR (rego): {e}")))?,
            );
            let watcher = engine.watch(RELOAD_INTERVAL);
            Ok((engine, Some(watcher)))
        }
        "cedar" => {
            let engine = CedarEngine::load(&dir, cedar_schema()?)
                .map_err(|e| StartError(format!("AUTHZ_POLICY_DIR (cedar): {e}")))?;
            Ok((Arc::new(engine), None))
        }
        "opa" => {
            let url = config.opa_url.as_deref().ok_or_else(|| {
                StartError("AUTHZ_POLICY_ENGINE=opa needs AUTHZ_OPA_URL (e.g. http://127.0.0.1:8181)".into())
            })?;
            let engine = OpaEngine::discover(OpaConfig::new(url))
                .await
                .map_err(|e| StartError(format!("AUTHZ_OPA_URL: {e}")))?;
            Ok((Arc::new(Cached::new(engine, CacheConfig::default(), clock)), None))
        }
        other => Err(StartError(format!(
            "AUTHZ_POLICY_ENGINE={other:?}: expected rego, cedar or opa"
        ))),
    }
}

/// The deploy policy's facts from the body: `{"environment": ..}`, with the handler's default.
impl authz_axum::engine::PolicyContext for crate::handlers::DeployRequest {
    fn policy_context(&self) -> serde_json::Value {
        serde_json::json!({ "environment": self.environment() })
    }
}
