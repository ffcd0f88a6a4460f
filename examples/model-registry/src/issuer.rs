//! The built-in dev issuer: the library's token service (`authz_axum::oauth`) with demo
//! clients and a demo user, registered afresh (new secrets, new password) on every start.

use std::sync::Arc;

use authz_axum::core::clock::Clock;
use authz_axum::core::oauth::{ClientType, GrantType, TokenStore};
use authz_axum::oauth::{ClientRegistration, TokenService, TokenServiceConfig};

use crate::StartError;

/// A demo OAuth2 client (client credentials).
#[derive(Clone)]
pub struct DemoClient {
    /// `client_id`.
    pub id: String,
    /// `client_secret`, generated at start-up.
    pub secret: String,
    /// Roles the client may receive; a token request's `scope` can narrow them.
    pub roles: Vec<String>,
    /// The tenant its tokens name (`tenant` claim; the default tenant has none).
    pub tenant: &'static str,
}

impl std::fmt::Debug for DemoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoClient")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("roles", &self.roles)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// The second demo tenant (the first is [`crate::domain::DEFAULT_TENANT`]).
pub const ACME_TENANT: &str = "acme";

/// Demo clients of [`ACME_TENANT`]; every other client and user is in the default tenant.
pub const ACME_CLIENTS: [(&str, &[&str]); 2] = [
    ("acme-analyst-client", &["analyst"]),
    ("acme-admin-client", &["admin"]),
];

/// The `tenant` claim of the dev issuer's tokens: [`ACME_TENANT`] for its demo clients; none
/// (the default tenant) for everyone else.
pub fn tenant_claims() -> authz_axum::oauth::ExtraClaims {
    authz_axum::oauth::ExtraClaims::new(|r| {
        let mut claims = serde_json::Map::new();
        if ACME_CLIENTS.iter().any(|(id, _)| *id == r.subject) {
            claims.insert("tenant".into(), ACME_TENANT.into());
        }
        claims
    })
}

/// A demo person who logs in on the authorization page.
#[derive(Clone)]
pub struct DemoUser {
    /// Username.
    pub username: String,
    /// Password, generated at start-up.
    pub password: String,
    /// Roles.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for DemoUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

/// The client id of the server-side web app demo (confidential, authorization code).
pub const WEB_CLIENT: &str = "web-app";
/// The client id of the single-page app demo (public, authorization code + PKCE).
pub const SPA_CLIENT: &str = "spa";

/// The running dev issuer and its demo credentials.
pub struct DevIssuer {
    /// The token service.
    pub service: Arc<TokenService>,
    /// Machine clients (client credentials), one per role, plus `alice` with two roles.
    pub clients: Vec<DemoClient>,
    /// The web app's client secret (kept server-side by the web app page).
    pub web_secret: String,
    /// People.
    pub users: Vec<DemoUser>,
}

fn err(e: impl std::fmt::Display) -> StartError {
    StartError(format!("dev issuer: {e}"))
}

fn random_password() -> String {
    authz_axum::core::oauth::new_secret()[..20].to_string()
}

/// Starts the token service for `issuer` (its own base URL `base`) over `store`, and
/// (re-)registers the demo clients and user.
pub async fn start(
    issuer: &str,
    audience: &str,
    base: &str,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
) -> Result<DevIssuer, StartError> {
    let mut config = TokenServiceConfig::new(issuer, audience);
    config.extra_claims = Some(tenant_claims());
    let service = TokenService::new(config, store.clone(), clock.clone())
        .await
        .map_err(err)?;
    let now = clock.unix_seconds();
    let specs: [(&str, &[&str]); 8] = [
        ("viewer-client", &["viewer"]),
        ("analyst-client", &["analyst"]),
        ("admin-client", &["admin"]),
        ("clerk-client", &["payments_clerk"]),
        ("approver-client", &["payments_approver"]),
        ("alice", &["payments_clerk", "payments_approver"]),
        ACME_CLIENTS[0],
        ACME_CLIENTS[1],
    ];
    let mut clients = Vec::new();
    let register = |id: &str,
                    client_type,
                    redirect_uris: Vec<String>,
                    grant_types: Vec<GrantType>,
                    roles: Vec<String>| {
        let store = store.clone();
        let registration = ClientRegistration {
            id: id.to_string(),
            client_type,
            redirect_uris,
            grant_types,
            roles,
        };
        async move {
            // Demo clients are made afresh on every start: new secrets, current redirect URIs.
            store.delete_client(&registration.id, now).await.map_err(err)?;
            authz_axum::oauth::register_client(store.as_ref(), registration, now)
                .await
                .map_err(err)
        }
    };
    for (id, roles) in specs {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let made = register(
            id,
            ClientType::Confidential,
            vec![],
            vec![GrantType::ClientCredentials],
            roles.clone(),
        )
        .await?;
        let tenant = if ACME_CLIENTS.iter().any(|(a, _)| *a == id) {
            ACME_TENANT
        } else {
            crate::domain::DEFAULT_TENANT
        };
        clients.push(DemoClient {
            id: id.to_string(),
            secret: made.secret.unwrap_or_default(),
            roles,
            tenant,
        });
    }
    let web = register(
        WEB_CLIENT,
        ClientType::Confidential,
        vec![format!("{base}/app/web/callback")],
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        vec![],
    )
    .await?;
    register(
        SPA_CLIENT,
        ClientType::Public,
        vec![format!("{base}/app/spa/")],
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        vec![],
    )
    .await?;
    let mut users = Vec::new();
    for (name, roles) in [("ada", vec!["analyst".to_string(), "viewer".to_string()])] {
        let password = random_password();
        store.delete_user(name).await.map_err(err)?;
        authz_axum::oauth::create_user(store.as_ref(), name, &password, roles.clone(), now)
            .await
            .map_err(err)?;
        users.push(DemoUser {
            username: name.to_string(),
            password,
            roles,
        });
    }
    Ok(DevIssuer {
        service,
        clients,
        web_secret: web.secret.unwrap_or_default(),
        users,
    })
}
