//! Clients of an in-memory SQLite database, kept in the process until the store changes them.
//!
//! Every token request reads its client. On a file, reads have a connection and thread of their
//! own; in memory one connection does everything, so each read waited behind the write batch
//! under way: one more trip through the store thread per request (measured: the in-memory
//! refresh grant at 4.3k/s with the read, 6.1–6.6k/s without). The database `sqlite::memory:`
//! makes belongs to its store — sqlx gives it a name of its own (`file:sqlx-in-memory-N`): no
//! CLI, no other process, no other store opens it (a *named* in-memory database, which another
//! store in the process could open, gets no cache) — and every change to a client goes through
//! the store's own `insert_client`, `set_client_secrets` and `delete_client`, so the cache is
//! exact, not a TTL: those operations evict the client on the store thread, in the same batch
//! as the change, before any later read can run.
//!
//! A read that raced a change never puts a stale client back: a miss takes the cache's
//! generation before it reads, and its answer is kept only if no change happened since.

use std::collections::HashMap;
use std::sync::Mutex;

use authz_core::oauth::Client;

/// Clients kept at most (registered clients, not request-chosen ids: unknown ids are never
/// kept, so a flood of made-up `client_id`s fills nothing).
const MAX_CLIENTS: usize = 4096;

#[derive(Default)]
pub(super) struct ClientCache(Mutex<State>);

#[derive(Default)]
struct State {
    /// Bumped by every change, so that a read begun before it is not kept.
    generation: u64,
    clients: HashMap<String, Client>,
}

/// What a miss saw before reading: hand it back to [`ClientCache::keep`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Generation(u64);

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().clients.len();
        f.debug_struct("ClientCache").field("clients", &n).finish()
    }
}

impl ClientCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (every update is one call).
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The client if kept; otherwise the generation to read under.
    pub(super) fn get(&self, id: &str) -> Result<Client, Generation> {
        let state = self.lock();
        state.clients.get(id).cloned().ok_or(Generation(state.generation))
    }

    /// Keeps what a miss read, unless a change came in since it took `seen`.
    pub(super) fn keep(&self, seen: Generation, client: &Client) {
        let mut state = self.lock();
        if state.generation == seen.0 && state.clients.len() < MAX_CLIENTS {
            state.clients.insert(client.id.clone(), client.clone());
        }
    }

    /// `id` changed (or may have): forget it, and every read under way.
    pub(super) fn changed(&self, id: &str) {
        let mut state = self.lock();
        state.generation += 1;
        state.clients.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::oauth::{ClientType, GrantType};

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            client_type: ClientType::Public,
            secrets: vec![],
            redirect_uris: vec![],
            grant_types: vec![GrantType::RefreshToken],
            roles: vec![],
            created_at: 0,
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = ClientCache::default();
        let seen = cache.get("a").unwrap_err();
        cache.changed("a");
        cache.keep(seen, &client("a"));
        assert!(cache.get("a").is_err(), "read before the change, kept after it");
        let seen = cache.get("a").unwrap_err();
        cache.keep(seen, &client("a"));
        assert_eq!(cache.get("a").unwrap().id, "a");
        // A change to another client also ends reads under way, but keeps what is kept.
        let seen = cache.get("b").unwrap_err();
        cache.changed("c");
        cache.keep(seen, &client("b"));
        assert!(cache.get("b").is_err());
        assert!(cache.get("a").is_ok());
        cache.changed("a");
        assert!(cache.get("a").is_err());
    }
}
