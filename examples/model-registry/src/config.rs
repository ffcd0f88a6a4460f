//! Configuration: every flag is also read from its environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

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

    /// Where API keys are stored: a SQLite file (created on first use) or PostgreSQL.
    #[arg(long, env = "AUTHZ_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: Option<String>,
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
        }
    }
}
