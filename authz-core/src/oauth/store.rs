//! Where the authorization server's state lives: one trait for memory, SQLite and PostgreSQL.

use crate::keystore::StoreFuture;

use super::{
    AccessTokenRecord, AuthorizationCode, Client, ClientSecret, KeyHash, LoginSession, RefreshToken,
    SigningKeyRecord, TokenFamily, User,
};

/// What redeeming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Fresh(AuthorizationCode),
    /// The code was already spent: a replay (RFC 6749 §4.1.2 — revoke what it issued).
    Replayed(AuthorizationCode),
    /// No such code.
    Unknown,
}

/// What redeeming a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRedemption {
    /// First use: the token is now spent; its family as stored.
    Fresh(RefreshToken, TokenFamily),
    /// The token was already spent: reuse (RFC 9700 §4.14.2 — revoke the family).
    Spent(RefreshToken),
    /// No such token.
    Unknown,
}

/// What the token endpoint decides about a refresh token it has just redeemed (first use),
/// given the token and its family as the store holds them: `Some((access, next))` records the
/// new access token and the next refresh token (and moves the family's `last_used_at` to the
/// rotation's time); `None` records nothing (the presented token stays spent). Called at most
/// once, inside the store's transaction where the store has one: keep it short and free of
/// I/O.
pub type RotationDecision =
    Box<dyn FnOnce(&RefreshToken, &TokenFamily) -> Option<(AccessTokenRecord, RefreshToken)> + Send>;

/// What a refresh-token rotation ([`TokenStore::rotate_refresh`]) found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// First use: the token is now spent. `issued` says whether the decision's records were
    /// written (`false`: the decision refused, or the family was revoked meanwhile).
    Fresh {
        /// The presented token as stored (now spent).
        token: RefreshToken,
        /// Its family, as the decision saw it.
        family: TokenFamily,
        /// Whether the next tokens were recorded.
        issued: bool,
    },
    /// The token was already spent: reuse (RFC 9700 §4.14.2 — revoke the family).
    Spent(RefreshToken),
    /// No such token.
    Unknown,
}

/// Storage of the authorization server's state. Every operation that decides a race
/// (redeeming a code or a refresh token) is atomic: of two concurrent redemptions exactly one
/// is `Fresh`. Failures are [`StoreError`](crate::keystore::StoreError)s (the endpoint answers 503).
pub trait TokenStore: Send + Sync + 'static {
    /// Registers a client; an existing id is an error.
    fn insert_client(&self, client: Client) -> StoreFuture<'_, ()>;
    /// The client with this id.
    fn client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>>;
    /// Every client, by id.
    fn clients(&self) -> StoreFuture<'_, Vec<Client>>;
    /// Replaces a client's secrets (rotation); `false` if there is no such client.
    fn set_client_secrets<'a>(&'a self, id: &'a str, secrets: Vec<ClientSecret>) -> StoreFuture<'a, bool>;
    /// Deletes a client and revokes its token families; `false` if there is none.
    fn delete_client<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool>;

    /// Adds a user; an existing username is an error.
    fn insert_user(&self, user: User) -> StoreFuture<'_, ()>;
    /// The user with this name.
    fn user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<User>>;
    /// Every user, by name.
    fn users(&self) -> StoreFuture<'_, Vec<User>>;
    /// Deletes a user and ends their login sessions; `false` if there is none. Tokens already
    /// issued stay valid until revoked or expired.
    fn delete_user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, bool>;

    /// Stores a code and the family its tokens will belong to.
    fn insert_code(&self, code: AuthorizationCode, family: TokenFamily) -> StoreFuture<'_, ()>;
    /// Redeems a code: marks it spent if it was not (atomically) and says which it was.
    fn redeem_code<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, CodeRedemption>;

    /// Stores a refresh token (its family exists) and sets the family's `last_used_at` to its
    /// `issued_at`.
    fn insert_refresh(&self, token: RefreshToken) -> StoreFuture<'_, ()>;
    /// Redeems a refresh token: marks it spent if it was not (atomically).
    fn redeem_refresh<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, RefreshRedemption>;
    /// The refresh token with this hash, spent or not (revocation, introspection).
    fn refresh<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<RefreshToken>>;
    /// The family with this id.
    fn family<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TokenFamily>>;
    /// Revokes a family and every access token recorded under it; `false` if there is none or
    /// it already was.
    fn revoke_family<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool>;

    /// Stores what one grant issued — the access token's record and the next refresh token,
    /// moving the family's `last_used_at` to `now` — **only if the family is not revoked**, in
    /// one transaction: `Ok(false)` (nothing written) when it is. This closes the race where a
    /// concurrent reuse revokes the family between the grant's checks and its writes (the
    /// winner's token would otherwise outlive its revoked grant). The default runs the steps
    /// one after the other; stores that can, override it atomically (memory, SQL).
    fn record_issued<'a>(
        &'a self,
        family_id: &'a str,
        access: AccessTokenRecord,
        refresh: Option<RefreshToken>,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if self
                .family(family_id)
                .await?
                .is_none_or(|f| f.revoked_at.is_some())
            {
                return Ok(false);
            }
            self.insert_access(access).await?;
            if let Some(r) = refresh {
                self.insert_refresh(r).await?;
            }
            let _ = now;
            Ok(true)
        })
    }

    /// Rotates a refresh token (RFC 9700 §4.14.2): redeems it (atomically, as
    /// [`redeem_refresh`](Self::redeem_refresh)), asks `decide` on first use, and records what
    /// it returns — only while the family is live. Stores that can do all of it in **one
    /// transaction** (memory, SQLite, PostgreSQL here): the spend and the next tokens are then
    /// durable together or not at all (a failure never leaves the client with a spent token
    /// and nothing in its place), and a rotation is one commit. The default runs
    /// [`redeem_refresh`](Self::redeem_refresh), `decide` and
    /// [`record_issued`](Self::record_issued) one after the other.
    fn rotate_refresh<'a>(
        &'a self,
        hash: &'a KeyHash,
        now: u64,
        decide: RotationDecision,
    ) -> StoreFuture<'a, RefreshRotation> {
        Box::pin(async move {
            match self.redeem_refresh(hash, now).await? {
                RefreshRedemption::Unknown => Ok(RefreshRotation::Unknown),
                RefreshRedemption::Spent(t) => Ok(RefreshRotation::Spent(t)),
                RefreshRedemption::Fresh(token, family) => {
                    let issued = match decide(&token, &family) {
                        None => false,
                        Some((access, next)) => {
                            self.record_issued(&family.id, access, Some(next), now).await?
                        }
                    };
                    Ok(RefreshRotation::Fresh {
                        token,
                        family,
                        issued,
                    })
                }
            }
        })
    }

    /// The access tokens recorded under a family (to put them on the revocation list).
    fn family_access<'a>(&'a self, family_id: &'a str) -> StoreFuture<'a, Vec<AccessTokenRecord>>;
    /// Revokes every live family of `subject` (and their access tokens) and ends the subject's
    /// login sessions; returns how many families.
    fn revoke_subject<'a>(&'a self, subject: &'a str, now: u64) -> StoreFuture<'a, u64>;

    /// Remembers an issued access token.
    fn insert_access(&self, token: AccessTokenRecord) -> StoreFuture<'_, ()>;
    /// The access token with this `jti`.
    fn access<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, Option<AccessTokenRecord>>;
    /// Revokes one access token; `false` if unknown.
    fn revoke_access<'a>(&'a self, jti: &'a str, now: u64) -> StoreFuture<'a, bool>;

    /// Stores a login session.
    fn insert_session(&self, session: LoginSession) -> StoreFuture<'_, ()>;
    /// The session with this id hash.
    fn session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<LoginSession>>;
    /// Ends a session.
    fn delete_session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, ()>;

    /// Stores a signing key.
    fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreFuture<'_, ()>;
    /// Every signing key, oldest first.
    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>>;
    /// Sets when a key leaves the JWKS.
    fn retire_signing_key<'a>(&'a self, kid: &'a str, after: u64) -> StoreFuture<'a, ()>;

    /// Deletes what can no longer be used at `now` (expired codes, sessions, access-token
    /// records, families past their end with their tokens, retired keys); returns rows removed.
    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64>;

    /// Whether the store answers (readiness).
    fn ping(&self) -> StoreFuture<'_, ()> {
        // A space is outside the client-id grammar: no client has this id.
        Box::pin(async move { self.client(" readiness").await.map(|_| ()) })
    }
}
