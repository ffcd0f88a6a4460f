//! A small in-memory map of short-lived server-side entries (pending sign-ins, web sessions),
//! keyed by a random 256-bit id that only the browser's cookie carries. Entries expire; the
//! map is bounded, and a full map refuses new entries rather than evicting live ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries of type `T` under random ids, each living `ttl` from its creation.
pub struct Expiring<T> {
    entries: Mutex<HashMap<String, (Instant, T)>>,
    ttl: Duration,
    capacity: usize,
    evict_oldest: bool,
}

impl<T: Clone> Expiring<T> {
    /// An empty map whose entries live `ttl`, holding at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
            evict_oldest: false,
        }
    }

    /// Like [`new`](Self::new), but a full map drops its oldest entry instead of refusing: for
    /// entries anyone can create without credentials (pending sign-ins), so that a flood cannot
    /// lock everyone out; losing a pending sign-in costs its owner one retry.
    pub fn new_evicting(ttl: Duration, capacity: usize) -> Self {
        Self {
            evict_oldest: true,
            ..Self::new(ttl, capacity)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, T)>> {
        // A panic while holding the lock cannot leave a half-written entry: keep serving.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value` under a new random id and returns the id; `None` when the map is full of
    /// live entries.
    pub fn insert(&self, value: T) -> Option<String> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (created, _)| now.duration_since(*created) < self.ttl);
            if entries.len() >= self.capacity {
                if !self.evict_oldest {
                    return None;
                }
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (created, _))| *created)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    entries.remove(&k);
                }
            }
        }
        let id = authz_axum::core::oauth::new_secret();
        entries.insert(id.clone(), (now, value));
        Some(id)
    }

    /// The live entry under `id`.
    pub fn get(&self, id: &str) -> Option<T> {
        let mut entries = self.lock();
        match entries.get(id) {
            Some((created, v)) if created.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                entries.remove(id);
                None
            }
            None => None,
        }
    }

    /// Removes the entry under `id`; returns it when it was still live (single use).
    pub fn take(&self, id: &str) -> Option<T> {
        self.lock()
            .remove(id)
            .filter(|(created, _)| created.elapsed() < self.ttl)
            .map(|(_, v)| v)
    }

    /// How many entries are stored (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_bounded_and_expiring() {
        let m = Expiring::new(Duration::from_secs(60), 2);
        let a = m.insert(1).unwrap();
        let b = m.insert(2).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(m.insert(3).is_none(), "full of live entries");
        assert_eq!(m.get(&a), Some(1));
        assert_eq!(m.take(&a), Some(1));
        assert_eq!(m.take(&a), None);
        assert_eq!(m.get("nope"), None);

        let short = Expiring::new(Duration::ZERO, 1);
        let id = short.insert(1).unwrap();
        assert_eq!(short.get(&id), None);
        assert!(short.insert(2).is_some(), "expired entries make room");
    }
}
