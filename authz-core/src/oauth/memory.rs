//! The authorization server's state in memory (tests, demos, one instance). Lost on restart.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::keystore::{StoreError, StoreFuture};

use super::{
    AccessTokenRecord, AuthorizationCode, Client, ClientSecret, CodeRedemption, KeyHash, LoginSession,
    RefreshRedemption, RefreshToken, SigningKeyRecord, TokenFamily, TokenStore, User,
};

#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, Client>,
    users: HashMap<String, User>,
    codes: HashMap<[u8; 32], (AuthorizationCode, Option<u64>)>,
    families: HashMap<String, TokenFamily>,
    refresh: HashMap<[u8; 32], RefreshToken>,
    access: HashMap<String, AccessTokenRecord>,
    sessions: HashMap<[u8; 32], LoginSession>,
    keys: Vec<SigningKeyRecord>,
}

impl State {
    /// What a grant issued, only while the family is live (`false`, nothing written, otherwise).
    fn record_issued(
        &mut self,
        family_id: &str,
        access: AccessTokenRecord,
        refresh: Option<RefreshToken>,
        now: u64,
    ) -> bool {
        match self.families.get_mut(family_id) {
            Some(f) if f.revoked_at.is_none() => f.last_used_at = f.last_used_at.max(now),
            _ => return false,
        }
        self.access.insert(access.jti.clone(), access);
        if let Some(r) = refresh {
            self.refresh.insert(*r.hash.as_bytes(), r);
        }
        true
    }

    fn revoke_family(&mut self, id: &str, now: u64) -> bool {
        let Some(f) = self.families.get_mut(id) else {
            return false;
        };
        if f.revoked_at.is_some() {
            return false;
        }
        f.revoked_at = Some(now);
        for a in self.access.values_mut() {
            if a.family_id.as_deref() == Some(id) && a.revoked_at.is_none() {
                a.revoked_at = Some(now);
            }
        }
        true
    }
}

/// Every record in one mutex-guarded map set: each operation is atomic.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    state: Mutex<State>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, StoreError>,
    ) -> StoreFuture<'_, T> {
        let r = self
            .state
            .lock()
            .map_err(|_| StoreError("lock poisoned".into()))
            .and_then(|mut s| f(&mut s));
        Box::pin(std::future::ready(r))
    }
}

fn duplicate(what: &str, id: &str) -> StoreError {
    StoreError(format!("{what} {id:?} exists already"))
}

impl TokenStore for MemoryTokenStore {
    fn insert_client(&self, client: Client) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            if s.clients.contains_key(&client.id) {
                return Err(duplicate("client", &client.id));
            }
            s.clients.insert(client.id.clone(), client);
            Ok(())
        })
    }

    fn client<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Client>> {
        self.with(|s| Ok(s.clients.get(id).cloned()))
    }

    fn clients(&self) -> StoreFuture<'_, Vec<Client>> {
        self.with(|s| {
            let mut v: Vec<Client> = s.clients.values().cloned().collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(v)
        })
    }

    fn set_client_secrets<'a>(&'a self, id: &'a str, secrets: Vec<ClientSecret>) -> StoreFuture<'a, bool> {
        self.with(move |s| Ok(s.clients.get_mut(id).map(|c| c.secrets = secrets).is_some()))
    }

    fn delete_client<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.with(move |s| {
            if s.clients.remove(id).is_none() {
                return Ok(false);
            }
            let families: Vec<String> = s
                .families
                .values()
                .filter(|f| f.client_id == id)
                .map(|f| f.id.clone())
                .collect();
            for f in families {
                s.revoke_family(&f, now);
            }
            for a in s.access.values_mut() {
                if a.client_id == id && a.revoked_at.is_none() {
                    a.revoked_at = Some(now);
                }
            }
            Ok(true)
        })
    }

    fn insert_user(&self, user: User) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            if s.users.contains_key(&user.username) {
                return Err(duplicate("user", &user.username));
            }
            s.users.insert(user.username.clone(), user);
            Ok(())
        })
    }

    fn user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<User>> {
        self.with(|s| Ok(s.users.get(username).cloned()))
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        self.with(|s| {
            let mut v: Vec<User> = s.users.values().cloned().collect();
            v.sort_by(|a, b| a.username.cmp(&b.username));
            Ok(v)
        })
    }

    fn delete_user<'a>(&'a self, username: &'a str) -> StoreFuture<'a, bool> {
        self.with(move |s| {
            s.sessions.retain(|_, x| x.username != username);
            Ok(s.users.remove(username).is_some())
        })
    }

    fn insert_code(&self, code: AuthorizationCode, family: TokenFamily) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            s.families.insert(family.id.clone(), family);
            s.codes.insert(*code.hash.as_bytes(), (code, None));
            Ok(())
        })
    }

    fn redeem_code<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, CodeRedemption> {
        self.with(move |s| {
            Ok(match s.codes.get_mut(hash.as_bytes()) {
                None => CodeRedemption::Unknown,
                Some((code, used @ None)) => {
                    *used = Some(now);
                    CodeRedemption::Fresh(code.clone())
                }
                Some((code, Some(_))) => CodeRedemption::Replayed(code.clone()),
            })
        })
    }

    fn insert_refresh(&self, token: RefreshToken) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            let family = s
                .families
                .get_mut(&token.family_id)
                .ok_or_else(|| StoreError(format!("no family {:?}", token.family_id)))?;
            family.last_used_at = family.last_used_at.max(token.issued_at);
            s.refresh.insert(*token.hash.as_bytes(), token);
            Ok(())
        })
    }

    fn redeem_refresh<'a>(&'a self, hash: &'a KeyHash, now: u64) -> StoreFuture<'a, RefreshRedemption> {
        self.with(move |s| {
            let Some(token) = s.refresh.get_mut(hash.as_bytes()) else {
                return Ok(RefreshRedemption::Unknown);
            };
            if token.spent_at.is_some() {
                return Ok(RefreshRedemption::Spent(token.clone()));
            }
            token.spent_at = Some(now);
            let token = token.clone();
            let family = s
                .families
                .get(&token.family_id)
                .cloned()
                .ok_or_else(|| StoreError(format!("no family {:?}", token.family_id)))?;
            Ok(RefreshRedemption::Fresh(token, family))
        })
    }

    fn refresh<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<RefreshToken>> {
        self.with(|s| Ok(s.refresh.get(hash.as_bytes()).cloned()))
    }

    fn family<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TokenFamily>> {
        self.with(|s| Ok(s.families.get(id).cloned()))
    }

    fn revoke_family<'a>(&'a self, id: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.with(move |s| Ok(s.revoke_family(id, now)))
    }

    fn record_issued<'a>(
        &'a self,
        family_id: &'a str,
        access: AccessTokenRecord,
        refresh: Option<RefreshToken>,
        now: u64,
    ) -> StoreFuture<'a, bool> {
        self.with(move |s| Ok(s.record_issued(family_id, access, refresh, now)))
    }

    /// Under the one lock: the spend, the decision and the records together. The decision is
    /// asked before anything changes, so a panic in it leaves the store as it was (an error).
    fn rotate_refresh<'a>(
        &'a self,
        hash: &'a KeyHash,
        now: u64,
        decide: super::RotationDecision,
    ) -> StoreFuture<'a, super::RefreshRotation> {
        use super::RefreshRotation;
        self.with(move |s| {
            let Some(token) = s.refresh.get(hash.as_bytes()) else {
                return Ok(RefreshRotation::Unknown);
            };
            if token.spent_at.is_some() {
                return Ok(RefreshRotation::Spent(token.clone()));
            }
            let mut token = token.clone();
            token.spent_at = Some(now);
            let family = s
                .families
                .get(&token.family_id)
                .cloned()
                .ok_or_else(|| StoreError(format!("no family {:?}", token.family_id)))?;
            let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(&token, &family)))
                .map_err(|_| StoreError("the rotation's decision panicked".into()))?;
            s.refresh.insert(*token.hash.as_bytes(), token.clone());
            let issued =
                next.is_some_and(|(access, next)| s.record_issued(&family.id, access, Some(next), now));
            Ok(RefreshRotation::Fresh {
                token,
                family,
                issued,
            })
        })
    }

    fn family_access<'a>(&'a self, family_id: &'a str) -> StoreFuture<'a, Vec<AccessTokenRecord>> {
        self.with(move |s| {
            Ok(s.access
                .values()
                .filter(|a| a.family_id.as_deref() == Some(family_id))
                .cloned()
                .collect())
        })
    }

    fn revoke_subject<'a>(&'a self, subject: &'a str, now: u64) -> StoreFuture<'a, u64> {
        self.with(move |s| {
            let ids: Vec<String> = s
                .families
                .values()
                .filter(|f| f.subject == subject && f.revoked_at.is_none())
                .map(|f| f.id.clone())
                .collect();
            for id in &ids {
                s.revoke_family(id, now);
            }
            // A stolen login session would mint new tokens: end them too.
            s.sessions.retain(|_, x| x.username != subject);
            Ok(ids.len() as u64)
        })
    }

    fn insert_access(&self, token: AccessTokenRecord) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            s.access.insert(token.jti.clone(), token);
            Ok(())
        })
    }

    fn access<'a>(&'a self, jti: &'a str) -> StoreFuture<'a, Option<AccessTokenRecord>> {
        self.with(|s| Ok(s.access.get(jti).cloned()))
    }

    fn revoke_access<'a>(&'a self, jti: &'a str, now: u64) -> StoreFuture<'a, bool> {
        self.with(move |s| {
            Ok(match s.access.get_mut(jti) {
                Some(a) => {
                    a.revoked_at.get_or_insert(now);
                    true
                }
                None => false,
            })
        })
    }

    fn insert_session(&self, session: LoginSession) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            s.sessions.insert(*session.hash.as_bytes(), session);
            Ok(())
        })
    }

    fn session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, Option<LoginSession>> {
        self.with(|s| Ok(s.sessions.get(hash.as_bytes()).cloned()))
    }

    fn delete_session<'a>(&'a self, hash: &'a KeyHash) -> StoreFuture<'a, ()> {
        self.with(|s| {
            s.sessions.remove(hash.as_bytes());
            Ok(())
        })
    }

    fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreFuture<'_, ()> {
        self.with(move |s| {
            if s.keys.iter().any(|k| k.kid == key.kid) {
                return Err(duplicate("signing key", &key.kid));
            }
            s.keys.push(key);
            Ok(())
        })
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        self.with(|s| Ok(s.keys.clone()))
    }

    fn retire_signing_key<'a>(&'a self, kid: &'a str, after: u64) -> StoreFuture<'a, ()> {
        self.with(move |s| {
            for k in s.keys.iter_mut().filter(|k| k.kid == kid) {
                k.retire_after = Some(after);
            }
            Ok(())
        })
    }

    fn purge_expired(&self, now: u64) -> StoreFuture<'_, u64> {
        self.with(move |s| {
            let before = s.codes.len()
                + s.sessions.len()
                + s.access.len()
                + s.families.len()
                + s.refresh.len()
                + s.keys.len();
            s.codes.retain(|_, (c, _)| c.expires_at > now);
            s.sessions.retain(|_, x| x.expires_at > now);
            s.access.retain(|_, a| a.expires_at > now);
            s.families.retain(|_, f| f.expires_at > now);
            let families = &s.families;
            s.refresh.retain(|_, r| families.contains_key(&r.family_id));
            s.keys.retain(|k| k.retire_after.is_none_or(|r| r > now));
            let after = s.codes.len()
                + s.sessions.len()
                + s.access.len()
                + s.families.len()
                + s.refresh.len()
                + s.keys.len();
            Ok((before - after) as u64)
        })
    }
}
