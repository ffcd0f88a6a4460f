//! Administration of clients and users (what a CLI or an admin API calls), on any
//! [`TokenStore`].

use authz_core::keystore::StoreError;
use authz_core::oauth::{Client, ClientSecret, ClientType, GrantType, KeyHash, TokenStore, User, new_secret};

use super::password::hash_password;

/// What to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// `client_id`: 1–128 characters of `[A-Za-z0-9._~-]`.
    pub id: String,
    /// Public (no secret, PKCE) or confidential (a generated secret).
    pub client_type: ClientType,
    /// Exact redirection URIs (`https`, or `http` on loopback; no fragment).
    pub redirect_uris: Vec<String>,
    /// Grant types; `client_credentials` needs a confidential client, `authorization_code` a
    /// redirect URI.
    pub grant_types: Vec<GrantType>,
    /// Roles (see [`Client::roles`]).
    pub roles: Vec<String>,
}

/// A registered client and, for a confidential one, its secret — shown once, never stored.
pub struct NewClient {
    /// The record stored.
    pub client: Client,
    /// The secret (confidential clients).
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient")
            .field("client", &self.client)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn check_redirect_uri(uri: &str) -> Result<(), StoreError> {
    let bad = |why: &str| StoreError(format!("redirect URI {uri:?} {why}"));
    let u = url::Url::parse(uri).map_err(|e| bad(&format!("is not an absolute URL: {e}")))?;
    if u.fragment().is_some() {
        return Err(bad("must not have a fragment (RFC 6749 §3.1.2)"));
    }
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(bad("must be https (http only on loopback)")),
        // Private-use schemes of native apps (RFC 8252 §7.1) contain a dot.
        s if s.contains('.') => Ok(()),
        _ => Err(bad("has an unsupported scheme")),
    }
}

/// Validates and stores a client; returns its secret once for a confidential client.
///
/// # Errors
/// A `StoreError` naming the rule broken (id grammar, redirect URI, grant/type mismatch), or
/// the store's.
pub async fn register_client(
    store: &dyn TokenStore,
    registration: ClientRegistration,
    now: u64,
) -> Result<NewClient, StoreError> {
    let r = registration;
    let id_ok = (1..=128).contains(&r.id.len())
        && r.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !id_ok {
        return Err(StoreError(format!(
            "client id {:?} must be 1–128 characters of A-Z a-z 0-9 - . _ ~",
            r.id
        )));
    }
    for uri in &r.redirect_uris {
        check_redirect_uri(uri)?;
    }
    if r.grant_types.is_empty() {
        return Err(StoreError(format!(
            "client {:?} needs at least one grant type",
            r.id
        )));
    }
    if r.client_type == ClientType::Public && r.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(StoreError(format!(
            "client {:?}: client_credentials needs a confidential client (a public client has no secret)",
            r.id
        )));
    }
    if r.grant_types.contains(&GrantType::AuthorizationCode) && r.redirect_uris.is_empty() {
        return Err(StoreError(format!(
            "client {:?}: authorization_code needs at least one redirect URI",
            r.id
        )));
    }
    // A client-credentials token's `sub` is the client id: it must never name a user too
    // (RFC 9068 §5), or the client would act as that user (ownership checks, revocations).
    if store.user(&r.id).await?.is_some() {
        return Err(StoreError(format!(
            "client id {:?} is the username of a user: client and user subjects must differ",
            r.id
        )));
    }
    let secret = (r.client_type == ClientType::Confidential).then(new_secret);
    let client = Client {
        id: r.id,
        client_type: r.client_type,
        secrets: secret
            .iter()
            .map(|s| ClientSecret {
                hash: KeyHash::of(s),
                created_at: now,
                expires_at: None,
            })
            .collect(),
        redirect_uris: r.redirect_uris,
        grant_types: r.grant_types,
        roles: r.roles,
        created_at: now,
    };
    store.insert_client(client.clone()).await?;
    Ok(NewClient { client, secret })
}

/// Rotates a confidential client's secret: the new one works at once, the current ones until
/// `now + overlap` (older ones are dropped). Returns the new secret (shown once).
///
/// # Errors
/// No such client, a public client, or the store's.
pub async fn rotate_client_secret(
    store: &dyn TokenStore,
    id: &str,
    overlap: std::time::Duration,
    now: u64,
) -> Result<String, StoreError> {
    let client = store
        .client(id)
        .await?
        .ok_or_else(|| StoreError(format!("no client {id:?}")))?;
    if client.client_type != ClientType::Confidential {
        return Err(StoreError(format!("client {id:?} is public: it has no secret")));
    }
    let until = now + overlap.as_secs();
    let secret = new_secret();
    let mut secrets: Vec<ClientSecret> = client
        .secrets
        .into_iter()
        .filter(|s| s.is_active_at(now))
        .map(|mut s| {
            s.expires_at = Some(s.expires_at.map_or(until, |e| e.min(until)));
            s
        })
        .collect();
    secrets.push(ClientSecret {
        hash: KeyHash::of(&secret),
        created_at: now,
        expires_at: None,
    });
    store.set_client_secrets(id, secrets).await?;
    Ok(secret)
}

/// Stores a user with an Argon2id hash of `password` (at least 8 characters).
///
/// # Errors
/// A short password, a malformed username, an existing user, or the store's.
pub async fn create_user(
    store: &dyn TokenStore,
    username: &str,
    password: &str,
    roles: Vec<String>,
    now: u64,
) -> Result<User, StoreError> {
    if username.is_empty()
        || username.len() > 128
        || username.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(StoreError(format!(
            "username {username:?} must be 1–128 characters without spaces or control characters"
        )));
    }
    if password.chars().count() < 8 {
        return Err(StoreError("the password must have at least 8 characters".into()));
    }
    if store.client(username).await?.is_some() {
        return Err(StoreError(format!(
            "username {username:?} is the id of a client: client and user subjects must differ"
        )));
    }
    let pw = password.to_string();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| StoreError(format!("hashing failed: {e}")))?;
    let user = User {
        username: username.to_string(),
        password_hash,
        roles,
        created_at: now,
    };
    store.insert_user(user.clone()).await?;
    Ok(user)
}
