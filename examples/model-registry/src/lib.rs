//! The model registry as a library, so that tests can start it in-process on `127.0.0.1:0`.
//! The binary (`src/main.rs`) is a thin wrapper around [`start`].

pub mod apps;
pub mod catalog;
pub mod config;
pub mod docs;
pub mod domain;
pub mod handlers;
pub mod issuer;
pub mod issuers;
pub mod policy;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use authz_axum::core::apikey::ApiKeyFormat;
use authz_axum::core::clock::{self, Clock};
use authz_axum::core::jwt::Algorithm;
use authz_axum::core::keystore::{KeyStore, MemoryKeyStore};
use authz_axum::core::oauth::{MemoryTokenStore, TokenStore};
use authz_axum::core::revocation::{RevocationList, Revocations};
use authz_axum::core::{Catalog as _, Policy};
use authz_axum::cors::CorsPolicy;
use authz_axum::sql::revocations::{FeedConfig, FeedStatus, RevocationFeed};
use authz_axum::{ApiKeys, AuditedRouter, AuthLayer, Authenticator, RejectionConfig};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use config::Config;
pub use issuer::{DemoClient, DemoUser};

use crate::catalog::Catalog;
use crate::handlers::AppState;

/// The prefix of this service's API keys (`mr_…`).
pub const API_KEY_PREFIX: &str = "mr";

/// Connects the key store `url` names (or an in-memory store for `None`).
pub async fn key_store(url: Option<&str>) -> Result<Arc<dyn KeyStore>, StartError> {
    match url {
        None => Ok(Arc::new(MemoryKeyStore::new())),
        Some(url) => authz_axum::sql::connect(url)
            .await
            .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL: {e}"))),
    }
}

/// Connects the token service's store: the same database as API keys (or memory for `None`).
pub async fn token_store(url: Option<&str>) -> Result<Arc<dyn TokenStore>, StartError> {
    match url {
        None => Ok(Arc::new(MemoryTokenStore::new())),
        Some(url) => authz_axum::oauth::sql::connect(url)
            .await
            .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL: {e}"))),
    }
}

/// The revocation list every instance on `url` shares (see
/// [`authz_axum::sql::revocations`]): `Revocations::shared` over the database, and the feed
/// that has loaded every live revocation into `list` and keeps it current. `None`: this process
/// only (`Revocations::local`, no feed).
///
/// # Errors
/// The database cannot be reached or migrated (a later outage only makes the feed not current).
pub async fn revocations(
    url: Option<&str>,
    list: Arc<RevocationList>,
    clock: Arc<dyn Clock>,
) -> Result<(Arc<Revocations>, Option<RevocationFeed>), StartError> {
    match url {
        None => Ok((Arc::new(Revocations::local(list)), None)),
        Some(url) => {
            let db = authz_axum::sql::revocations::connect(url)
                .await
                .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL (revocations): {e}")))?;
            let feed = db.follow(list.clone(), clock, FeedConfig::default()).await;
            Ok((Arc::new(Revocations::shared(list, db.store())), Some(feed)))
        }
    }
}

/// The `iss` of the built-in dev issuer of a server started with `config`: `AUTHZ_ISSUER`, else
/// `http://{AUTHZ_BIND}` (an unspecified address as `127.0.0.1`, as [`start`] does).
pub fn dev_issuer_url(config: &Config) -> String {
    match &config.issuer {
        Some(i) => i.trim().to_string(),
        None => {
            let mut bind = config.bind;
            if bind.ip().is_unspecified() {
                bind.set_ip(Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{bind}")
        }
    }
}

/// Revokes every token of `subject` issued by the dev issuer of the servers on
/// `config.database_url` (what `model-registry tokens revoke-subject` runs): its refresh-token
/// families in the token store, and every access token issued to it up to now on the shared
/// revocation list, which running instances apply within a second (PostgreSQL: at once; SQLite:
/// at their next poll). Returns the families revoked.
///
/// # Errors
/// No database URL (an in-memory list would reach no server); the database's.
pub async fn revoke_subject(config: &Config, subject: &str) -> Result<u64, StartError> {
    let url = config.database_url.as_deref().ok_or_else(|| {
        StartError("AUTHZ_DATABASE_URL is required: the revocation must reach the running servers".into())
    })?;
    let store = token_store(Some(url)).await?;
    let db = authz_axum::sql::revocations::connect(url)
        .await
        .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL (revocations): {e}")))?;
    let service = authz_axum::oauth::TokenService::new(
        authz_axum::oauth::TokenServiceConfig::new(dev_issuer_url(config), &config.audience),
        store,
        clock::system(),
    )
    .await
    .map_err(|e| StartError(e.to_string()))?;
    service.publish_revocations_to(Arc::new(Revocations::shared(
        Arc::new(RevocationList::new()),
        db.store(),
    )));
    service
        .revoke_subject(subject)
        .await
        .map_err(|e| StartError(e.to_string()))
}

/// The API key service over `store`, reading expiry from `clock`.
pub fn api_keys(store: Arc<dyn KeyStore>, policy: Arc<Policy>, clock: Arc<dyn Clock>) -> Arc<ApiKeys> {
    ApiKeys::with_clock(
        ApiKeyFormat::new(API_KEY_PREFIX).expect("valid prefix"),
        store,
        policy,
        clock,
    )
}

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Why the service did not start; the message names the setting.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running service.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The `iss` it expects.
    pub issuer: String,
    /// The built-in dev issuer's demo clients (empty with an outside identity provider).
    pub clients: Vec<DemoClient>,
    /// The built-in dev issuer's demo users (log in on its authorization page).
    pub users: Vec<DemoUser>,
    /// The built-in dev issuer's token service (`None` with an outside identity provider).
    pub token_service: Option<Arc<authz_axum::oauth::TokenService>>,
    /// The authenticator (for its cache counters).
    pub authenticator: Arc<Authenticator>,
    /// What revokes tokens here: the list the authenticator consults, shared through
    /// `AUTHZ_DATABASE_URL` when set.
    pub revocations: Arc<Revocations>,
    /// The revocation feed's status (`None` without a database: the list is this process's).
    pub revocation_feed: Option<FeedStatus>,
    /// The API-key change feed's status (`None` without a database: keys live in this
    /// process, and its verified-key cache needs no feed).
    pub api_key_feed: Option<FeedStatus>,
    /// The API keys (their verified-key cache's counters).
    pub api_keys: Arc<ApiKeys>,
    /// Every route with its requirement.
    pub routes: authz_axum::RouteTable,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://{addr}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The demo client with this id.
    pub fn client(&self, id: &str) -> Option<&DemoClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// Stops accepting, lets in-flight requests finish (within the shutdown grace), records
    /// pending API-key use times, and returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops (it stops on Ctrl-C in the binary).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads the policy: `path` if given, else the built-in `policy.toml`.
pub fn load_policy(path: Option<&std::path::Path>) -> Result<Policy, StartError> {
    let catalog = Arc::new(Catalog::catalog().clone());
    let policy = match path {
        Some(p) => Policy::from_toml_file(p, catalog),
        None => Policy::from_toml_str(
            include_str!("../policy.toml"),
            catalog,
            Some("examples/model-registry/policy.toml (built in)".into()),
        ),
    };
    policy.map_err(|e| StartError(e.to_string()))
}

/// The process's Prometheus recorder (installed once as the `metrics` facade's global
/// recorder, shared by every server the process starts).
pub fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_ok() {
            authz_axum::observe::describe();
        }
        handle
    })
}

/// The API's routes with their requirements (what `start` serves, before its state is given).
pub fn api_routes() -> (Router<AppState>, authz_axum::RouteTable) {
    AuditedRouter::new()
        .public(Method::GET, "/healthz", handlers::healthz)
        .public(Method::GET, "/readyz", handlers::readyz)
        // The API's description, generated from this table (see `docs`).
        .public(Method::GET, "/openapi.json", docs::openapi_json)
        .public(Method::GET, "/docs", docs::page)
        .public(Method::GET, "/docs/docs.js", docs::script)
        .public(Method::GET, "/docs/docs.css", docs::style)
        .get("/me", handlers::me)
        .get("/datasets", handlers::list_datasets)
        .post("/datasets", handlers::create_dataset)
        .get("/datasets/{id}", handlers::get_dataset)
        .get("/models", handlers::list_models)
        .post("/models", handlers::create_model)
        .get("/models/{id}", handlers::get_model)
        .post("/models/{id}/run", handlers::run_model)
        .post("/models/{id}/deploy", handlers::deploy_model)
        // Its handler takes `DpopBound`: only DPoP-bound tokens (the OpenAPI security says so).
        .require_dpop(Method::POST, "/models/{id}/deploy")
        .post("/reports", handlers::create_report)
        .get("/reports/{id}", handlers::get_report)
        .post("/payments", handlers::create_payment)
        .get("/payments/{id}", handlers::get_payment)
        .post("/payments/{id}/approve", handlers::approve_payment)
        .get("/routes", handlers::routes)
        .get("/metrics", handlers::metrics)
        .post("/api-keys", handlers::create_api_key)
        .get("/api-keys", handlers::list_api_keys)
        .post("/api-keys/{id}/revoke", handlers::revoke_api_key)
        .post("/api-keys/{id}/rotate", handlers::rotate_api_key)
        .checked_in_handlers(["report:read_any"])
        .into_parts()
}

/// Binds, builds and starts the service; returns once it accepts requests and (with the dev
/// issuer) its own keys are loaded.
pub async fn start(config: Config) -> Result<Server, StartError> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| StartError(format!("AUTHZ_BIND {}: cannot listen: {e}", config.bind)))?;
    let mut addr = listener.local_addr().map_err(|e| StartError(e.to_string()))?;
    let local = if addr.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let clock = config.clock.clone().unwrap_or_else(clock::system);
    let settings = match &config.issuers_file {
        Some(path) => {
            if config.issuer.is_some() || config.jwks_url.is_some() || config.discovery.is_some() {
                return Err(StartError(
                    "AUTHZ_ISSUERS_FILE names every issuer: unset AUTHZ_ISSUER, AUTHZ_JWKS_URL and AUTHZ_DISCOVERY"
                        .into(),
                ));
            }
            issuers::IssuerSettings::from_file(path)?
        }
        None => vec![issuers::IssuerSettings::from_config(
            &config,
            &format!("http://{local}"),
        )?],
    };
    let dev = settings
        .iter()
        .find(|s| s.keys == issuers::KeySource::Dev)
        .cloned();
    if let Some(d) = &dev
        && !d.algorithms.contains(&Algorithm::ES256)
    {
        return Err(StartError(
            "the built-in dev issuer signs with ES256: keep ES256 in AUTHZ_ALGORITHMS".into(),
        ));
    }
    let policy = Arc::new(load_policy(config.policy.as_deref())?);
    let dev_jwks = format!("http://{local}/.well-known/jwks.json");
    // With a database, the API-key change feed keeps the verified-key cache current (and
    // switches it off while the database cannot be followed); in memory it always serves.
    let key_db = match config.database_url.as_deref() {
        None => None,
        Some(url) => Some(
            authz_axum::sql::open(url)
                .await
                .map_err(|e| StartError(format!("AUTHZ_DATABASE_URL: {e}")))?,
        ),
    };
    let key_store: Arc<dyn KeyStore> = match &key_db {
        Some(db) => db.store(),
        None => Arc::new(MemoryKeyStore::new()),
    };
    let keys = api_keys(key_store, policy.clone(), clock.clone());
    keys.start_flusher(std::time::Duration::from_secs(5));
    let key_feed = match &key_db {
        Some(db) => Some(db.follow(&keys, FeedConfig::default()).await),
        None => None,
    };
    let key_feed_status = key_feed.as_ref().map(authz_axum::sql::KeyFeed::status);
    // One deny-list, consulted for every token; with a database it is loaded (before the server
    // accepts requests) and kept current by the feed, whether or not the dev issuer runs here.
    let revocation_list = Arc::new(RevocationList::new());
    let (revocations, feed) = revocations(
        config.database_url.as_deref(),
        revocation_list.clone(),
        clock.clone(),
    )
    .await?;
    let feed_status = feed.as_ref().map(RevocationFeed::status);
    let mut builder = Authenticator::builder(policy.clone())
        .default_tenant(domain::DEFAULT_TENANT)
        .clock(clock.clone())
        .api_keys(keys.clone())
        .revocations(revocation_list);
    let mut remotes = Vec::new();
    for s in &settings {
        let (issuer, remote) = s.build(clock.clone(), &dev_jwks).await?;
        builder = builder.issuer(issuer);
        remotes.extend(remote.map(|r| (s.keys.clone(), r)));
    }
    let authenticator = Arc::new(
        builder
            .build()
            .map_err(|e| StartError(format!("token verification settings: {e}")))?,
    );

    let db = domain::Db::connect(config.database_url.as_deref()).await?;
    let state = AppState::new(
        keys.clone(),
        clock.clone(),
        authenticator.clone(),
        feed_status.clone(),
        db,
    );
    let (api, table) = api_routes();
    prometheus();
    for finding in table.lint(&policy) {
        tracing::warn!(%finding, "policy lint");
    }
    // The policy engine; every policy a route names must be loaded, or the service refuses to
    // start (naming it).
    let (engine, policy_watcher) = policy::engine(&config, clock.clone()).await?;
    table
        .check_policies(Some(&*engine))
        .map_err(|e| StartError(format!("AUTHZ_POLICY_ENGINE: {e}")))?;
    *state.inner.routes.write().expect("lock") = table.clone();

    // The API runs behind the auth layer; the token service and the sign-in pages do their
    // own client and user authentication (Basic at /token is not an API credential).
    let auth_layer = AuthLayer::new(authenticator.clone())
        // DPoP-bound tokens (RFC 9449): required on the deploy route.
        .dpop(
            // htu is checked against the names this service answers to, never a Host
            // header the client picks.
            authz_axum::DpopSettings::new(authz_axum::core::dpop::DpopVerifier::default())
                .with_origin(format!("http://{local}"))
                .with_origin(format!("http://localhost:{}", local.port())),
        )
        .policy_engine(engine)
        .throttle_failures(Arc::new(authz_axum::throttle::FailedAttempts::new(
            authz_axum::throttle::ThrottleConfig::default(),
        )))
        .with_rejections(RejectionConfig::new("model-registry").map_err(|e| StartError(e.to_string()))?);
    let mut app: Router = api.with_state(state).layer(auth_layer);
    let mut clients = Vec::new();
    let mut users = Vec::new();
    let mut token_service = None;
    if let Some(d) = &dev {
        let store = token_store(config.database_url.as_deref()).await?;
        let dev_issuer = issuer::start(
            &d.issuer,
            &d.audiences[0],
            &format!("http://{local}"),
            store,
            clock.clone(),
        )
        .await?;
        clients = dev_issuer.clients;
        users = dev_issuer.users;
        let service = dev_issuer.service;
        service.publish_revocations_to(revocations.clone());
        // The two sign-in pages (public pages, not API routes: outside the audited router).
        let pages = apps::router(apps::PagesConfig {
            local: format!("http://{local}"),
            service: service.clone(),
            web_secret: dev_issuer.web_secret,
        });
        app = app
            .merge(service.router())
            // The path the dev issuer used before the token service (kept for old scripts).
            .route("/oauth/token", service.token_endpoint())
            .merge(pages);
        token_service = Some(service);
    }
    let mut app = app.layer(DefaultBodyLimit::max(BODY_LIMIT));
    if !config.cors_origins.is_empty() {
        let cors = CorsPolicy::new()
            .allow_origins(
                config
                    .cors_origins
                    .iter()
                    .map(|o| o.trim())
                    .filter(|o| !o.is_empty())
                    .map(str::to_string),
            )
            .build()
            .map_err(|e| StartError(format!("AUTHZ_CORS_ORIGINS: {e}")))?;
        app = app.layer(cors);
    }
    let app = app.layer(authz_axum::sensitive_headers_layer());

    // Key rotation, cleanup of expired rows; stopped with the server.
    let maintenance = token_service
        .as_ref()
        .map(|s| s.spawn_maintenance(std::time::Duration::from_secs(60)));
    let (tx, rx) = oneshot::channel::<()>();
    let flush = keys.clone();
    let serve_config = config.serve.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        match authz_axum::serve::serve(listener, app, serve_config, shutdown).await {
            Ok(report) if report.unfinished > 0 => {
                tracing::warn!(unfinished = report.unfinished, "stopped with requests unfinished")
            }
            Ok(_) => tracing::info!("all in-flight requests completed"),
            Err(e) => tracing::error!(error = %e, "server stopped"),
        }
        if let Some(m) = maintenance {
            m.abort();
        }
        if let Some(w) = policy_watcher {
            w.abort();
        }
        if let Some(feed) = feed {
            feed.stop().await;
        }
        if let Some(feed) = key_feed {
            feed.stop().await;
        }
        // Nothing recorded during the last requests is lost.
        if let Err(e) = flush.flush_last_used().await {
            tracing::warn!(error = %e, "could not record the last API key use times");
        }
    });
    addr.set_ip(local.ip());
    for (source, remote) in &remotes {
        if let Err(e) = remote.start().await {
            if *source == issuers::KeySource::Dev {
                return Err(StartError(format!(
                    "the dev issuer's own JWKS could not be loaded: {e}"
                )));
            }
            tracing::warn!(error = %e, url = %remote.url(), "JWKS not loaded yet: requests get 503 until it is");
        }
    }
    Ok(Server {
        addr,
        issuer: settings[0].issuer.clone(),
        clients,
        users,
        token_service,
        authenticator,
        revocations,
        revocation_feed: feed_status,
        api_key_feed: key_feed_status,
        api_keys: keys,
        routes: table,
        shutdown: Some(tx),
        task,
    })
}
