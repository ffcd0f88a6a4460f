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
    /// Manage OAuth clients of the built-in token service (AUTHZ_DATABASE_URL).
    Clients {
        #[command(subcommand)]
        action: ClientsAction,
    },
    /// Manage the people who sign in at the token service's login page (AUTHZ_DATABASE_URL).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Print every route, its requirement and the roles that satisfy it (Markdown, or JSON
    /// with --json); exits 1 if the policy lint finds a permission no route uses or a route
    /// no role can reach.
    Routes {
        /// JSON rows instead of a Markdown table.
        #[arg(long)]
        json: bool,
    },
    /// Print an access token for a registered client (dev only, like `dotnet user-jwts`):
    /// signed by the token service's key in AUTHZ_DATABASE_URL, for the issuer the server uses.
    Token {
        /// The client id (its roles are the token's).
        #[arg(long)]
        client: String,
        /// Narrow to these roles (space-separated, as a token request's `scope`).
        #[arg(long)]
        scope: Option<String>,
    },
    /// DPoP (RFC 9449) for curl: make a key, sign proofs with it.
    Dpop {
        #[command(subcommand)]
        action: DpopAction,
    },
    /// Revoke tokens of the built-in token service (AUTHZ_DATABASE_URL, shared with the
    /// running servers).
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
    },
}

#[derive(Subcommand)]
enum DpopAction {
    /// Write a new P-256 private key (PKCS#8 DER) to FILE, and print its thumbprint.
    Key {
        /// Where to write the key (created with mode 0600).
        file: std::path::PathBuf,
    },
    /// Print a DPoP proof (alone on stdout) for one request.
    Proof {
        /// The key file made by `dpop key`.
        #[arg(long)]
        key: std::path::PathBuf,
        /// The request's method.
        #[arg(long, default_value = "POST")]
        method: String,
        /// The request's URL (query and fragment are ignored).
        #[arg(long)]
        url: String,
        /// The access token the request carries (adds `ath`).
        #[arg(long)]
        token: Option<String>,
        /// The server's DPoP-Nonce, when it asks for one.
        #[arg(long)]
        nonce: Option<String>,
    },
}

/// Prints the route × role matrix; returns the exit code (1 when the lint finds something).
fn routes(config: &Config, json: bool) -> i32 {
    let policy = match policy(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("model-registry routes: {e}");
            return 2;
        }
    };
    let (_, table) = model_registry::api_routes();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&table.matrix_json(&policy)).unwrap_or_default()
        );
    } else {
        print!("{}", table.matrix_markdown(&policy));
    }
    let findings = table.lint(&policy);
    for f in &findings {
        eprintln!("lint: {f}");
    }
    i32::from(!findings.is_empty())
}

/// A dev token for a registered client, signed with the key the server's token service uses.
async fn dev_token(config: &Config, client_id: &str, scope: Option<&str>) -> Result<(), String> {
    let store = token_store(config, true).await?;
    let client = store
        .client(client_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no client {client_id:?} (see `model-registry clients list`)"))?;
    let roles: Vec<String> = match scope {
        None => client.roles.clone(),
        Some(s) => {
            let asked: Vec<String> = s
                .split(' ')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(bad) = asked.iter().find(|r| !client.roles.contains(r)) {
                return Err(format!("client {client_id:?} does not have the role {bad:?}"));
            }
            asked
        }
    };
    // The issuer the server uses: AUTHZ_ISSUER, or its own address (0.0.0.0 is served as
    // 127.0.0.1).
    let issuer = config.issuer.clone().unwrap_or_else(|| {
        let mut bind = config.bind;
        if bind.ip().is_unspecified() {
            bind.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{bind}")
    });
    let mut service_config =
        authz_axum::oauth::TokenServiceConfig::new(issuer.trim_end_matches('/'), &config.audience);
    service_config.extra_claims = Some(model_registry::issuer::tenant_claims());
    let service =
        authz_axum::oauth::TokenService::new(service_config, store, authz_axum::core::clock::system())
            .await
            .map_err(|e| e.to_string())?;
    let issued = service
        .issue_access_token(&client.id, &client.id, &roles, &roles, None, None)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "a 10-minute access token for {} (roles: {}), issuer {issuer}",
        client.id,
        if roles.is_empty() {
            "-".into()
        } else {
            roles.join(", ")
        }
    );
    println!("{}", issued.token);
    Ok(())
}

fn dpop(action: DpopAction) -> Result<(), String> {
    use authz_axum::core::dpop::DpopKey;
    match action {
        DpopAction::Key { file } => {
            let key = DpopKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write as _;
            options
                .open(&file)
                .and_then(|mut f| f.write_all(key.pkcs8()))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            eprintln!(
                "wrote a P-256 DPoP key to {}; its thumbprint (cnf.jkt) follows",
                file.display()
            );
            println!("{}", key.thumbprint());
            Ok(())
        }
        DpopAction::Proof {
            key,
            method,
            url,
            token,
            nonce,
        } => {
            let der = std::fs::read(&key).map_err(|e| format!("{}: {e}", key.display()))?;
            let key = DpopKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", key.display()))?;
            println!(
                "{}",
                key.proof(&method, &url, token.as_deref(), nonce.as_deref(), unix_now())
            );
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum TokensAction {
    /// Revoke every token of a subject (a user, or a client's client-credentials tokens): its
    /// refresh-token families, and every access token issued to it up to now, refused by every
    /// server on the same database within a second. The issuer is AUTHZ_ISSUER, else
    /// http://{AUTHZ_BIND}: give the same settings as the server.
    RevokeSubject {
        /// The `sub` of the tokens.
        subject: String,
    },
}

#[derive(Subcommand)]
enum ClientsAction {
    /// Register a client; a confidential client's secret is printed once, alone on stdout.
    Create {
        /// The client id (or give it with --id).
        id: Option<String>,
        /// The client id.
        #[arg(long = "id", conflicts_with = "id")]
        id_flag: Option<String>,
        /// A public client (a single-page or native app): no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// An exact redirect URI; repeat for several.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// authorization_code, refresh_token or client_credentials; repeat for several
        /// (default: the code grant with refresh when redirect URIs are given, else client
        /// credentials).
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// A role of the policy the client may carry; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List the clients (no secrets: only their hashes are stored).
    List,
    /// Issue a new secret, printed once alone on stdout; the old one keeps working for the
    /// overlap.
    RotateSecret {
        /// The client id.
        id: String,
        /// Seconds the old secret keeps working.
        #[arg(long, default_value_t = 86_400)]
        overlap: u64,
    },
    /// Delete a client and revoke every token issued to it.
    Delete {
        /// The client id.
        id: String,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Create a user; the password is read from stdin (one line).
    Create {
        /// The login name.
        #[arg(long)]
        username: String,
        /// A role of the policy; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List the users (no passwords: only Argon2id hashes are stored).
    List,
    /// Delete a user and end their login sessions.
    Delete {
        /// The login name.
        username: String,
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
    /// List the keys (metadata only: the store holds no secret).
    List,
    /// Revoke a key by id; running servers on the same database refuse it once their change
    /// feed delivers it (PostgreSQL: at once; SQLite: their next poll, within 0.5 s).
    Revoke {
        /// The key's id (the part after the prefix, as `keys list` shows it).
        id: String,
    },
}

fn policy(config: &Config) -> Result<std::sync::Arc<authz_axum::core::Policy>, String> {
    model_registry::load_policy(config.policy.as_deref())
        .map(std::sync::Arc::new)
        .map_err(|e| e.to_string())
}

/// The key service; `existing` refuses to create a SQLite file that is not there (a typo in
/// the path would otherwise look like "no keys").
async fn key_service(config: &Config, existing: bool) -> Result<std::sync::Arc<authz_axum::ApiKeys>, String> {
    if existing
        && let Some(path) = config.database_url.as_deref().and_then(sqlite_file)
        && !path.exists()
    {
        return Err(format!(
            "AUTHZ_DATABASE_URL: the SQLite file {} does not exist (keys create makes it)",
            path.display()
        ));
    }
    let store = model_registry::key_store(config.database_url.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    Ok(model_registry::api_keys(
        store,
        policy(config)?,
        authz_axum::core::clock::system(),
    ))
}

/// Prints the raw key — and nothing else — on stdout, so `KEY=$(model-registry keys create …)`
/// captures exactly the key; everything else goes to stderr.
async fn keys_create(
    config: &Config,
    owner: String,
    roles: Vec<String>,
    expires_in: Option<u64>,
    description: Option<String>,
) -> Result<(), String> {
    let policy = policy(config)?;
    if let Some(unknown) = roles.iter().find(|r| !policy.has_role(r)) {
        return Err(format!(
            "`{unknown}` is not a role of the policy (roles: {})",
            policy.role_names().collect::<Vec<_>>().join(", ")
        ));
    }
    let keys = key_service(config, false).await?;
    let now = authz_axum::core::clock::unix_seconds(std::time::SystemTime::now());
    let issued = keys
        .create(&owner, roles, expires_in.map(|s| now + s), description)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "created API key {} for {} (roles: {}); this is the only time it is shown, only its SHA-256 is stored",
        issued.record.id,
        issued.record.owner,
        issued.record.roles.join(", ")
    );
    println!("{}", issued.key.expose_raw());
    Ok(())
}

async fn keys_list(config: &Config) -> Result<(), String> {
    let keys = key_service(config, true).await?;
    let records = keys.list().await.map_err(|e| e.to_string())?;
    let time = |t: Option<u64>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
    println!("id\towner\troles\tcreated_at\texpires_at\tlast_used_at\trevoked_at");
    for r in records {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.owner,
            r.roles.join(","),
            r.created_at,
            time(r.expires_at),
            time(r.last_used_at),
            time(r.revoked_at)
        );
    }
    Ok(())
}

async fn keys_revoke(config: &Config, id: &str) -> Result<(), String> {
    let keys = key_service(config, true).await?;
    if keys.revoke(id).await.map_err(|e| e.to_string())? {
        eprintln!("revoked API key {id}");
        Ok(())
    } else {
        Err(format!(
            "no API key with id {id:?} (see `model-registry keys list`)"
        ))
    }
}

/// The token service's store; `existing` refuses to create a SQLite file that is not there.
async fn token_store(
    config: &Config,
    existing: bool,
) -> Result<std::sync::Arc<dyn authz_axum::core::oauth::TokenStore>, String> {
    if existing
        && let Some(path) = config.database_url.as_deref().and_then(sqlite_file)
        && !path.exists()
    {
        return Err(format!(
            "AUTHZ_DATABASE_URL: the SQLite file {} does not exist (clients create or users create makes it)",
            path.display()
        ));
    }
    model_registry::token_store(config.database_url.as_deref())
        .await
        .map_err(|e| e.to_string())
}

fn check_roles(config: &Config, roles: &[String]) -> Result<(), String> {
    let policy = policy(config)?;
    if let Some(unknown) = roles.iter().find(|r| !policy.has_role(r)) {
        return Err(format!(
            "`{unknown}` is not a role of the policy (roles: {})",
            policy.role_names().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

fn unix_now() -> u64 {
    authz_axum::core::clock::unix_seconds(std::time::SystemTime::now())
}

async fn clients(config: &Config, action: ClientsAction) -> Result<(), String> {
    use authz_axum::core::oauth::{ClientType, GrantType};
    match action {
        ClientsAction::Create {
            id,
            id_flag,
            public,
            redirect_uris,
            grants,
            roles,
        } => {
            let id = id
                .or(id_flag)
                .ok_or("give the client id: clients create ID (or --id ID)")?;
            check_roles(config, &roles)?;
            let mut grant_types = Vec::new();
            for g in &grants {
                grant_types.push(GrantType::parse(g).ok_or_else(|| {
                    format!("--grant {g}: one of authorization_code, refresh_token, client_credentials")
                })?);
            }
            if grant_types.is_empty() {
                grant_types = if public || !redirect_uris.is_empty() {
                    vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
                } else {
                    vec![GrantType::ClientCredentials]
                };
            }
            let store = token_store(config, false).await?;
            let client_type = if public {
                ClientType::Public
            } else {
                ClientType::Confidential
            };
            let made = authz_axum::oauth::register_client(
                store.as_ref(),
                authz_axum::oauth::ClientRegistration {
                    id,
                    client_type,
                    redirect_uris,
                    grant_types,
                    roles,
                },
                unix_now(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let c = &made.client;
            eprintln!(
                "registered {} client {} (grants: {}; roles: {})",
                c.client_type.as_str(),
                c.id,
                c.grant_types
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if c.roles.is_empty() {
                    "-".to_string()
                } else {
                    c.roles.join(", ")
                }
            );
            if let Some(secret) = made.secret {
                eprintln!(
                    "its secret follows; this is the only time it is shown, only its SHA-256 is stored"
                );
                println!("{secret}");
            }
            Ok(())
        }
        ClientsAction::List => {
            let store = token_store(config, true).await?;
            let now = unix_now();
            println!("id\ttype\tgrants\tredirect_uris\troles\tactive_secrets");
            for c in store.clients().await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    c.id,
                    c.client_type.as_str(),
                    c.grant_types
                        .iter()
                        .map(|g| g.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    if c.redirect_uris.is_empty() {
                        "-".into()
                    } else {
                        c.redirect_uris.join(",")
                    },
                    if c.roles.is_empty() {
                        "-".into()
                    } else {
                        c.roles.join(",")
                    },
                    c.secrets.iter().filter(|s| s.is_active_at(now)).count()
                );
            }
            Ok(())
        }
        ClientsAction::RotateSecret { id, overlap } => {
            let store = token_store(config, true).await?;
            let secret = authz_axum::oauth::rotate_client_secret(
                store.as_ref(),
                &id,
                std::time::Duration::from_secs(overlap),
                unix_now(),
            )
            .await
            .map_err(|e| e.to_string())?;
            eprintln!(
                "new secret for {id} follows (shown once); the previous one works for {overlap} s more"
            );
            println!("{secret}");
            Ok(())
        }
        ClientsAction::Delete { id } => {
            let store = token_store(config, true).await?;
            if store
                .delete_client(&id, unix_now())
                .await
                .map_err(|e| e.to_string())?
            {
                // Its client-credentials tokens carry `sub` = the client id: put them on the
                // revocation list every server on this database follows.
                model_registry::revoke_subject(config, &id)
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "deleted client {id}: its refresh tokens are revoked, and its client-credentials \
                     tokens are refused by servers on the same database (issuer {}) within a second",
                    model_registry::dev_issuer_url(config)
                );
                Ok(())
            } else {
                Err(format!("no client {id:?} (see `model-registry clients list`)"))
            }
        }
    }
}

async fn users(config: &Config, action: UsersAction) -> Result<(), String> {
    match action {
        UsersAction::Create { username, roles } => {
            check_roles(config, &roles)?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| format!("reading the password from stdin: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            let store = token_store(config, false).await?;
            authz_axum::oauth::create_user(store.as_ref(), &username, password, roles, unix_now())
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("created user {username} (only an Argon2id hash of the password is stored)");
            Ok(())
        }
        UsersAction::List => {
            let store = token_store(config, true).await?;
            println!("username\troles\tcreated_at");
            for u in store.users().await.map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", u.username, u.roles.join(","), u.created_at);
            }
            Ok(())
        }
        UsersAction::Delete { username } => {
            let store = token_store(config, true).await?;
            if store.delete_user(&username).await.map_err(|e| e.to_string())? {
                eprintln!("deleted user {username}");
                Ok(())
            } else {
                Err(format!("no user {username:?} (see `model-registry users list`)"))
            }
        }
    }
}

#[tokio::main]
async fn main() {
    // Logs go to stderr (stdout is for what a command prints), in colour only on a terminal.
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Err(e) = model_registry::config::check_environment() {
        eprintln!("model-registry: {e}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    let config = cli.config;
    if let Some(Command::Clients { action }) = cli.command {
        if let Err(e) = clients(&config, action).await {
            eprintln!("model-registry clients: {e}");
            std::process::exit(2);
        }
        return;
    }
    if let Some(Command::Routes { json }) = cli.command {
        std::process::exit(routes(&config, json));
    }
    if let Some(Command::Token { client, scope }) = cli.command {
        if let Err(e) = dev_token(&config, &client, scope.as_deref()).await {
            eprintln!("model-registry token: {e}");
            std::process::exit(2);
        }
        return;
    }
    if let Some(Command::Dpop { action }) = cli.command {
        if let Err(e) = dpop(action) {
            eprintln!("model-registry dpop: {e}");
            std::process::exit(2);
        }
        return;
    }
    if let Some(Command::Tokens { action }) = cli.command {
        let TokensAction::RevokeSubject { subject } = action;
        if let Some(path) = config.database_url.as_deref().and_then(sqlite_file)
            && !path.exists()
        {
            eprintln!(
                "model-registry tokens revoke-subject: AUTHZ_DATABASE_URL: the SQLite file {} does not exist",
                path.display()
            );
            std::process::exit(2);
        }
        match model_registry::revoke_subject(&config, &subject).await {
            Ok(families) => eprintln!(
                "revoked every token of {subject} issued by {} ({families} refresh-token families); \
                 running servers on the same database refuse them within a second",
                model_registry::dev_issuer_url(&config)
            ),
            Err(e) => {
                eprintln!("model-registry tokens revoke-subject: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    if let Some(Command::Users { action }) = cli.command {
        if let Err(e) = users(&config, action).await {
            eprintln!("model-registry users: {e}");
            std::process::exit(2);
        }
        return;
    }
    if let Some(Command::Keys { action }) = cli.command {
        let (name, result) = match action {
            KeysAction::Create {
                owner,
                roles,
                expires_in,
                description,
            } => (
                "create",
                keys_create(&config, owner, roles, expires_in, description).await,
            ),
            KeysAction::List => ("list", keys_list(&config).await),
            KeysAction::Revoke { id } => ("revoke", keys_revoke(&config, &id).await),
        };
        if let Err(e) = result {
            eprintln!("model-registry keys {name}: {e}");
            std::process::exit(2);
        }
        return;
    }
    // Where API keys live, for the banner (never a URL: it may carry a password).
    let store = match config.database_url.as_deref() {
        Some(url) => match sqlite_file(url) {
            Some(path) => format!("SQLite file {}", path.display()),
            None if url.starts_with("sqlite:") => "SQLite in memory (lost on exit)".to_string(),
            None => "PostgreSQL (AUTHZ_DATABASE_URL)".to_string(),
        },
        None => "in memory (lost on exit)".to_string(),
    };
    let server = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("model-registry: {e}");
            std::process::exit(2);
        }
    };
    let url = server.url();
    println!("model-registry listening on {url} (issuer {})", server.issuer);
    println!("\nRoutes (requirement):");
    for r in server.routes.entries() {
        println!("  {:<7} {:<26} {}", r.method.as_str(), r.path, r.requirement);
    }
    println!(
        "Roles: {}",
        server
            .authenticator
            .policy()
            .role_names()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("Store (datasets, models, reports, payments, API keys, token service, revocations): {store}");
    if !server.clients.is_empty() {
        println!(
            "Tenants: {} (every caller whose token names none), {} ({}): another tenant's resources answer 404",
            model_registry::domain::DEFAULT_TENANT,
            model_registry::issuer::ACME_TENANT,
            model_registry::issuer::ACME_CLIENTS.map(|(id, _)| id).join(", ")
        );
    }
    println!(
        "Readiness: GET {url}/readyz (liveness: GET {url}/healthz); route table: GET {url}/routes (admin)"
    );
    if server.clients.is_empty() {
        println!("verifying tokens from the configured identity provider");
    } else {
        println!("\nDemo clients of the built-in dev issuer (secrets are new on every start):");
        let extract = r#"sed -E 's/.*"access_token":"([^"]+)".*/\1/'"#;
        for (client, route, expect) in [
            ("viewer-client", "GET /datasets", "200"),
            ("viewer-client", "POST /datasets", "403"),
            ("analyst-client", "POST /models/m1/run", "202"),
            (
                "acme-analyst-client",
                "POST /models/m1/run",
                "404 (tenant acme: m1 is the default tenant's; acme's model is acme-m1)",
            ),
            (
                "admin-client",
                "POST /models/m1/deploy",
                "401 (deploying needs DPoP: see below)",
            ),
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
                "TOKEN=$(curl -s -u '{}:{}' -d grant_type=client_credentials {url}/token | {extract})",
                c.id, c.secret
            );
            let body = if method == "POST" {
                " -H 'content-type: application/json' -d '{}'"
            } else {
                ""
            };
            println!("curl -si -X {method}{body} -H \"Authorization: Bearer $TOKEN\" {url}{path}");
        }
        let admin = server.client("admin-client").expect("demo client");
        let me = std::env::args().next().unwrap_or_else(|| "model-registry".into());
        println!(
            "\n# admin-client deploys with a DPoP-bound token (RFC 9449): a key, a proof per request → expect 202\n\
             test -f dpop.key || {me} dpop key dpop.key\n\
             TOKEN=$(curl -s -u '{}:{}' -H \"DPoP: $({me} dpop proof --key dpop.key --method POST --url {url}/token)\" \
             -d grant_type=client_credentials {url}/token | {extract})\n\
             curl -si -X POST -H 'content-type: application/json' -d '{{}}' -H \"Authorization: DPoP $TOKEN\" \
             -H \"DPoP: $({me} dpop proof --key dpop.key --method POST --url {url}/models/m1/deploy --token $TOKEN)\" \
             {url}/models/m1/deploy",
            admin.id, admin.secret
        );
        let alice = server.client("alice").expect("demo client");
        println!(
            "\n# alice holds both payment roles and picks one per token with scope=payments_clerk or \
             scope=payments_approver (secret {})",
            alice.secret
        );
        println!("\n# no token → 401\ncurl -si {url}/datasets");
        println!("\nPeople (authorization code + PKCE, login page at {url}/authorize):");
        for u in &server.users {
            println!(
                "  user {} / password {} (roles: {}; the password is new on every start)",
                u.username,
                u.password,
                u.roles.join(", ")
            );
        }
        println!("  server-side web app (tokens kept on the server, HttpOnly cookie): {url}/app/web/");
        println!("  single-page app (code + PKCE in the page, token in memory only):  {url}/app/spa/");
        println!(
            "  metadata: {url}/.well-known/oauth-authorization-server; revoke: POST {url}/revoke; \
             introspect: POST {url}/introspect"
        );
    }
    // SIGTERM or Ctrl-C: stop accepting, drain in-flight requests, flush, exit 0.
    authz_axum::serve::shutdown_signal().await;
    server.stop().await;
}

/// The absolute path of the SQLite file a `sqlite:` URL names.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest
        .split('?')
        .next()
        .filter(|p| !p.is_empty() && !p.contains(":memory:"))?;
    let path = std::path::Path::new(path);
    Some(std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }))
}
