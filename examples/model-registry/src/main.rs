//! Run with: cargo run -p model-registry
//!
//! An ML model registry protected by authz. Without configuration it runs its own dev issuer
//! and prints, for each demo client, a `curl` line that fetches a token and calls a route.

use clap::Parser;
use model_registry::{Config, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .init();
    let config = Config::parse();
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
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
        _ = server.wait() => {}
    }
}
