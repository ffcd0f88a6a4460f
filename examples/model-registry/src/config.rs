//! Configuration: every flag is also read from its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use authz_axum::core::clock::Clock;
use clap::Parser;

/// An ML model registry protected by authz.
#[derive(Debug, Clone, Parser)]
#[command(name = "model-registry", version, about)]
pub struct Config {
    /// Listen address.
    #[arg(long, env = "AUTHZ_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Expected `iss` of access tokens (default: the built-in dev issuer's URL).
    #[arg(long, env = "AUTHZ_ISSUER")]
    pub issuer: Option<String>,

    /// Expected `aud` of access tokens.
    #[arg(long, env = "AUTHZ_AUDIENCE", default_value = "api.example.com")]
    pub audience: String,

    /// Verify tokens with keys from this JWKS (an outside identity provider). Unset: the
    /// built-in dev issuer signs and serves its own keys.
    #[arg(long, env = "AUTHZ_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Comma-separated algorithm allowlist.
    #[arg(
        long,
        env = "AUTHZ_ALGORITHMS",
        default_value = "ES256",
        value_delimiter = ','
    )]
    pub algorithms: Vec<String>,

    /// A policy file (TOML) replacing the built-in one.
    #[arg(long, env = "AUTHZ_POLICY")]
    pub policy: Option<PathBuf>,

    /// Comma-separated origins allowed by CORS (none by default).
    #[arg(long, env = "AUTHZ_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Where API keys, the token service's state and the revocation list live: a SQLite file
    /// (created at start-up if missing) or PostgreSQL (shared by instances).
    #[arg(long, env = "AUTHZ_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: Option<String>,

    /// Identity provider preset: generic, keycloak, auth0, entra, okta, cognito or google.
    #[arg(long, env = "AUTHZ_PROVIDER")]
    pub provider: Option<String>,

    /// Comma-separated claim paths roles are read from (replacing the provider's): a literal
    /// top-level claim name, or a JSON Pointer starting with `/`.
    #[arg(long, env = "AUTHZ_ROLES_CLAIMS")]
    pub roles_claims: Option<String>,

    /// `true`: a scope that names a catalog permission grants it.
    #[arg(long, env = "AUTHZ_SCOPE_PERMISSIONS")]
    pub scope_permissions: Option<String>,

    /// Comma-separated `name=value` claims every token must carry.
    #[arg(long, env = "AUTHZ_REQUIRE_CLAIMS")]
    pub require_claims: Option<String>,

    /// The claim holding the audience (default `aud`; Cognito: `client_id`).
    #[arg(long, env = "AUTHZ_AUDIENCE_CLAIM")]
    pub audience_claim: Option<String>,

    /// Comma-separated accepted header `typ` values (default `JWT,at+jwt`; no `typ` counts as `JWT`).
    #[arg(long, env = "AUTHZ_TOKEN_TYPES")]
    pub token_types: Option<String>,

    /// `true`: keys from the issuer's OpenID Connect discovery document.
    #[arg(long, env = "AUTHZ_DISCOVERY")]
    pub discovery: Option<String>,

    /// The claim the tenant is read from (default: the provider's, e.g. Entra's `tid`; the
    /// built-in dev issuer's `tenant`). A caller without one belongs to the `default` tenant.
    #[arg(long, env = "AUTHZ_TENANT_CLAIM")]
    pub tenant_claim: Option<String>,

    /// A TOML file with one `[[issuer]]` table per trusted issuer (replaces AUTHZ_ISSUER,
    /// AUTHZ_AUDIENCE, AUTHZ_JWKS_URL and the other per-issuer variables).
    #[arg(long, env = "AUTHZ_ISSUERS_FILE")]
    pub issuers_file: Option<PathBuf>,

    /// The policy engine behind the deploy rule: `rego` (default: embedded, the files of
    /// AUTHZ_POLICY_DIR, reloaded on change), `cedar` (the files of AUTHZ_POLICY_DIR) or `opa`
    /// (an OPA server at AUTHZ_OPA_URL).
    #[arg(long, env = "AUTHZ_POLICY_ENGINE")]
    pub policy_engine: Option<String>,

    /// The directory of `.rego` / `.cedar` policies (default: the shipped
    /// examples/model-registry/policies).
    #[arg(long, env = "AUTHZ_POLICY_DIR")]
    pub policy_dir: Option<PathBuf>,

    /// OPA's base URL for AUTHZ_POLICY_ENGINE=opa, e.g. http://127.0.0.1:8181.
    #[arg(long, env = "AUTHZ_OPA_URL")]
    pub opa_url: Option<String>,

    /// The clock every expiry decision reads (tests inject one; default: the system clock).
    #[arg(skip)]
    pub clock: Option<Arc<dyn Clock>>,

    /// Timeouts, connection cap and shutdown grace (defaults: `ServeConfig::default()`).
    #[arg(skip)]
    pub serve: authz_axum::serve::ServeConfig,
}

/// Every environment variable the registry reads.
pub const ENV_VARS: [&str; 20] = [
    "AUTHZ_BIND",
    "AUTHZ_ISSUER",
    "AUTHZ_AUDIENCE",
    "AUTHZ_JWKS_URL",
    "AUTHZ_ALGORITHMS",
    "AUTHZ_POLICY",
    "AUTHZ_CORS_ORIGINS",
    "AUTHZ_DATABASE_URL",
    "AUTHZ_PROVIDER",
    "AUTHZ_ROLES_CLAIMS",
    "AUTHZ_SCOPE_PERMISSIONS",
    "AUTHZ_REQUIRE_CLAIMS",
    "AUTHZ_AUDIENCE_CLAIM",
    "AUTHZ_TOKEN_TYPES",
    "AUTHZ_DISCOVERY",
    "AUTHZ_ISSUERS_FILE",
    "AUTHZ_TENANT_CLAIM",
    "AUTHZ_POLICY_ENGINE",
    "AUTHZ_POLICY_DIR",
    "AUTHZ_OPA_URL",
];

/// Refuses a set-but-empty (or blank) variable, naming it: an empty value is a mistake, never
/// a way to ask for the default.
pub fn check_environment() -> Result<(), String> {
    for name in ENV_VARS {
        if let Some(v) = std::env::var_os(name)
            && v.to_string_lossy().trim().is_empty()
        {
            return Err(format!("{name} is set but empty; unset it to use the default"));
        }
    }
    Ok(())
}

/// The binary's default key store: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://model-registry.db";

impl Config {
    /// The defaults, as if no flag and no variable were given, listening on `bind`, except that
    /// API keys are kept in memory (`database_url: None`) unless a database is named.
    pub fn with_bind(bind: SocketAddr) -> Self {
        Config {
            bind,
            issuer: None,
            audience: "api.example.com".into(),
            jwks_url: None,
            algorithms: vec!["ES256".into()],
            policy: None,
            cors_origins: Vec::new(),
            database_url: None,
            provider: None,
            roles_claims: None,
            scope_permissions: None,
            require_claims: None,
            audience_claim: None,
            token_types: None,
            discovery: None,
            tenant_claim: None,
            issuers_file: None,
            policy_engine: None,
            policy_dir: None,
            opa_url: None,
            clock: None,
            serve: authz_axum::serve::ServeConfig::default(),
        }
    }
}
