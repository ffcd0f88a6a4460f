//! Run with: cargo run -p model-registry
//!
//! An ML model registry protected by authz. Without configuration it runs its own dev issuer
//! and prints, for each demo client, a `curl` line that fetches a token and calls a route.

use clap::{Parser, Subcommand};
use model_registry::{Config, start};
use tracing_subscriber::EnvFilter;

/// The command line: serve (default), or manage API keys.
#[derive(Parser)]
#[command(
    name = "model-registry",
    version,
    about = "An ML model registry protected by authz"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Manage API keys in the key store (AUTHZ_DATABASE_URL).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print it once (bootstrap an admin key, for example).
    Create {
        /// Who the key acts as (the principal's subject).
        #[arg(long)]
        owner: String,
        /// A role of the policy; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Seconds until the key expires (never, if omitted).
        #[arg(long)]
        expires_in: Option<u64>,
        /// A description kept with the key.
        #[arg(long)]
        description: Option<String>,
    },
}

async fn keys_create(
    config: &Config,
    owner: String,
    roles: Vec<String>,
    expires_in: Option<u64>,
    description: Option<String>,
) -> Result<(), String> {
    let policy = std::sync::Arc::new(
        model_registry::load_policy(config.policy.as_deref()).map_err(|e| e.to_string())?,
    );
    if let Some(unknown) = roles.iter().find(|r| !policy.has_role(r)) {
        return Err(format!(
            "`{unknown}` is not a role of the policy (roles: {})",
            policy.role_names().collect::<Vec<_>>().join(", ")
        ));
    }
    let store = model_registry::key_store(config.database_url.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let keys = model_registry::api_keys(store, policy, authz_axum::core::clock::system());
    let now = authz_axum::core::clock::unix_seconds(std::time::SystemTime::now());
    let issued = keys
        .create(&owner, roles, expires_in.map(|s| now + s), description)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "created API key {} for {} (roles: {})",
        issued.record.id,
        issued.record.owner,
        issued.record.roles.join(", ")
    );
    println!("{}", issued.key.expose_raw());
    eprintln!("This is the only time the key is shown; only its SHA-256 is stored.");
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .init();
    if let Err(e) = model_registry::config::check_environment() {
        eprintln!("model-registry: {e}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    let config = cli.config;
    if let Some(Command::Keys {
        action:
            KeysAction::Create {
                owner,
                roles,
                expires_in,
                description,
            },
    }) = cli.command
    {
        if let Err(e) = keys_create(&config, owner, roles, expires_in, description).await {
            eprintln!("model-registry keys create: {e}");
            std::process::exit(2);
        }
        return;
    }
    let server = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("model-registry: {e}");
            std::process::exit(2);
        }
    };
    let url = server.url();
    println!("model-registry listening on {url} (issuer {})", server.issuer);
    if server.clients.is_empty() {
        println!("verifying tokens from the configured identity provider");
    } else {
        println!("\nDemo clients of the built-in dev issuer (secrets are new on every start):");
        let extract = r#"sed -E 's/.*"access_token":"([^"]+)".*/\1/'"#;
        for (client, route, expect) in [
            ("viewer-client", "GET /datasets", "200"),
            ("viewer-client", "POST /datasets", "403"),
            ("analyst-client", "POST /models/m1/run", "202"),
            ("admin-client", "POST /models/m1/deploy", "202"),
            ("clerk-client", "POST /payments", "201"),
            ("approver-client", "GET /me", "200"),
        ] {
            let c = server.client(client).expect("demo client");
            let (method, path) = route.split_once(' ').expect("route");
            println!(
                "\n# {} (roles: {}) → {route}: expect {expect}",
                c.id,
                c.roles.join(", ")
            );
            println!(
                "TOKEN=$(curl -s -u '{}:{}' -d grant_type=client_credentials {url}/oauth/token | {extract})",
                c.id, c.secret
            );
            let body = if method == "POST" {
                " -H 'content-type: application/json' -d '{}'"
            } else {
                ""
            };
            println!("curl -si -X {method}{body} -H \"Authorization: Bearer $TOKEN\" {url}{path}");
        }
        let alice = server.client("alice").expect("demo client");
        println!(
            "\n# alice holds both payment roles and picks one per token with scope=payments_clerk or \
             scope=payments_approver (secret {})",
            alice.secret
        );
        println!("\n# no token → 401\ncurl -si {url}/datasets");
    }
    // SIGTERM or Ctrl-C: stop accepting, drain in-flight requests, flush, exit 0.
    authz_axum::serve::shutdown_signal().await;
    server.stop().await;
}
