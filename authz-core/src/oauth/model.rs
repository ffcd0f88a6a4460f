//! Records of the authorization server's state (what a [`TokenStore`](super::TokenStore) keeps).

use std::fmt;

use aws_lc_rs::rand::SecureRandom as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::KeyHash;

/// A new secret: 256 bits from the OS CSPRNG, base64url without padding (43 characters).
/// Used for client secrets, authorization codes, refresh tokens, session ids and CSRF tokens.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Client types (RFC 6749 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientType {
    /// Cannot keep a secret (a single-page app, a native app): no secret, PKCE mandatory.
    Public,
    /// Keeps a secret on a server: authenticates with `client_secret_basic` or
    /// `client_secret_post`.
    Confidential,
}

impl ClientType {
    /// `public` or `confidential`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Confidential => "confidential",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "confidential" => Some(Self::Confidential),
            _ => None,
        }
    }
}

/// Grant types a client may use (RFC 6749 §4). The implicit and password grants do not exist
/// here (RFC 9700 §2.1.2, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// `authorization_code` (§4.1), always with PKCE S256.
    AuthorizationCode,
    /// `refresh_token` (§6), rotated on every use.
    RefreshToken,
    /// `client_credentials` (§4.4), confidential clients only.
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, in the order metadata lists them.
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    /// The RFC name (`authorization_code`, `refresh_token`, `client_credentials`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    /// Parses an RFC name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// One secret of a confidential client. During a rotation a client has two: the new one and the
/// old one until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecret {
    /// SHA-256 of the secret.
    pub hash: KeyHash,
    /// When it was made.
    pub created_at: u64,
    /// When it stops working (`None`: until rotated).
    pub expires_at: Option<u64>,
}

impl ClientSecret {
    /// Whether the secret is accepted at `now`.
    pub fn is_active_at(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

/// A registered client (RFC 6749 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Public or confidential.
    pub client_type: ClientType,
    /// Its secrets (confidential clients; empty for public ones).
    pub secrets: Vec<ClientSecret>,
    /// Registered redirection URIs, compared by exact string match (RFC 9700 §4.1.3).
    pub redirect_uris: Vec<String>,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// Roles the client may carry: for `client_credentials` the roles of its tokens; for
    /// user grants an upper bound on the user's roles (empty: no bound).
    pub roles: Vec<String>,
    /// When it was registered.
    pub created_at: u64,
}

impl Client {
    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `presented` is one of its active secrets (constant time over every secret).
    pub fn secret_matches(&self, presented: &str, now: u64) -> bool {
        let hash = KeyHash::of(presented);
        let mut ok = false;
        for s in &self.secrets {
            ok |= s.hash.matches(&hash) & s.is_active_at(now);
        }
        ok
    }
}

/// A person who logs in at the authorization endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The login name (the tokens' `sub`).
    pub username: String,
    /// Argon2id PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// When the account was made.
    pub created_at: u64,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .finish()
    }
}

/// An authorization code (RFC 6749 §4.1.2): single use, short-lived, bound to the client, the
/// redirect URI and the PKCE challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code.
    pub hash: KeyHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The exact `redirect_uri` of the authorization request.
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256, base64url of 32 bytes).
    pub code_challenge: String,
    /// The user who authorized.
    pub subject: String,
    /// Roles the tokens will carry.
    pub roles: Vec<String>,
    /// Granted scope values.
    pub scope: Vec<String>,
    /// The token family every token issued from this code belongs to.
    pub family_id: String,
    /// When it was issued.
    pub issued_at: u64,
    /// When it stops working.
    pub expires_at: u64,
}

/// A refresh-token family: every refresh token descending from one grant (RFC 9700 §4.14.2).
/// Revoking it revokes every token in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFamily {
    /// Family id (random).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The subject.
    pub subject: String,
    /// When the grant happened.
    pub created_at: u64,
    /// Absolute end of the family, whatever its use.
    pub expires_at: u64,
    /// Last time a token of the family was issued (the idle timeout counts from here).
    pub last_used_at: u64,
    /// Set when the family is revoked (reuse detected, code replayed, revocation request).
    pub revoked_at: Option<u64>,
}

/// A refresh token (RFC 6749 §1.5): opaque, stored as its hash, spent on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub hash: KeyHash,
    /// Its family.
    pub family_id: String,
    /// The client it is bound to.
    pub client_id: String,
    /// The subject.
    pub subject: String,
    /// Roles the access tokens carry.
    pub roles: Vec<String>,
    /// Granted scope values.
    pub scope: Vec<String>,
    /// When it was issued.
    pub issued_at: u64,
    /// Set when it was exchanged (a second presentation is reuse).
    pub spent_at: Option<u64>,
    /// The DPoP key thumbprint it is bound to (RFC 9449 §5: public clients' refresh tokens):
    /// exchanging it needs a proof by that key.
    pub jkt: Option<String>,
}

/// An issued access token, remembered until it expires so that it can be revoked and
/// introspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// Its `jti`.
    pub jti: String,
    /// The family it came from (`None` for client credentials).
    pub family_id: Option<String>,
    /// The client.
    pub client_id: String,
    /// The subject.
    pub subject: String,
    /// Its `exp`.
    pub expires_at: u64,
    /// Set when revoked.
    pub revoked_at: Option<u64>,
}

/// A login session at the authorization server (its cookie holds the session id; the store only
/// its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    /// SHA-256 of the session id.
    pub hash: KeyHash,
    /// Who logged in.
    pub username: String,
    /// When.
    pub created_at: u64,
    /// When it ends.
    pub expires_at: u64,
}

/// A signing key of the token service: published in the JWKS from `created_at`, signs from
/// `signs_from`, published until `retire_after`.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// `kid`.
    pub kid: String,
    /// JWS algorithm (`ES256`).
    pub alg: String,
    /// The private key, PKCS#8 DER. This is the one secret the store must keep: protect the
    /// database accordingly.
    pub private_pkcs8: Vec<u8>,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// When it was made (and published).
    pub created_at: u64,
    /// When it starts signing (publication first, so that caches see it before tokens do).
    pub signs_from: u64,
    /// When it leaves the JWKS (`None`: still current). Set at rotation to the moment the last
    /// token it signed expires.
    pub retire_after: Option<u64>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("signs_from", &self.signs_from)
            .field("retire_after", &self.retire_after)
            .finish()
    }
}
