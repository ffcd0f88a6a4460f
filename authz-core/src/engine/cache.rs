//! [`Cached`]: a short-lived decision cache in front of any engine.
//!
//! The key of a decision is [`CacheKey`]: the policy name and the whole [`Input`] in a compact,
//! canonical binary encoding (length-prefixed strings, tagged values; see [`CacheKey`]). A hit
//! finds its entry by a hash of those bytes and is confirmed by comparing **all** of them with
//! the stored key, so a decision is only ever reused for an input equal to the one decided — a
//! hash collision can cost a probe, never a wrong answer.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use super::{Decision, Input, Pending, PolicyEngine};
use crate::clock::Clock;

/// How [`Cached`] caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a decision is reused. Default: 2 s. Longer means a policy change (or a changed
    /// fact outside the input) takes longer to show; the input's `request.time` is part of the
    /// key, so a cached decision is never reused for another second of the clock anyway.
    pub ttl: Duration,
    /// Most decisions kept (least recently used dropped first). Default: 10 000.
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(2),
            capacity: 10_000,
        }
    }
}

/// The cache key of a policy name and an [`Input`]: a canonical binary encoding of both, built
/// without serializing the input to JSON.
///
/// The encoding is prefix-free field by field, in the order of [`Input`]'s fields: every string
/// is its length (LEB128) then its UTF-8 bytes; an `Option` is a `0` byte, or `1` and the value;
/// a list is its length then its items; `request.time` is 8 bytes; a JSON [`Value`] is a tag
/// (`n`ull, `f`alse, `t`rue, `N`umber, `s`tring, `a`rray, `o`bject) then, for a number, its JSON
/// text and a `0` byte; for an array, its length and items; for an object, its length and its
/// `(key, value)` pairs **in the map's own order** (the order they serialize in). So two keys are
/// equal exactly when the policy names are equal and the inputs are structurally equal field by
/// field — in particular, two inputs that serialize to different JSON never have the same key
/// (`1` and `1.0`, `0.0` and `-0.0` are different numbers here). Two objects with the same
/// members in another order may have different keys (another cache entry, never a wrong one).
///
/// Opaque: the bytes are for comparing, not for storing or parsing; the encoding may change
/// between versions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Vec<u8>);

impl CacheKey {
    /// The key of `policy` and `input`.
    pub fn new(policy: &str, input: &Input) -> Self {
        let mut bytes = Vec::with_capacity(256);
        encode(&mut bytes, policy, input);
        CacheKey(bytes)
    }

    /// The encoded bytes (opaque; see [`CacheKey`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("bytes", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// Appends the key of `policy` and `input` to `out` (the encoding [`CacheKey`] describes).
fn encode(out: &mut Vec<u8>, policy: &str, input: &Input) {
    let mut k = Encoder(out);
    k.str(policy);
    let p = &input.principal;
    k.str(&p.subject);
    k.opt_str(p.issuer.as_deref());
    k.opt_str(p.tenant.as_deref());
    k.strs(&p.roles);
    k.strs(&p.effective_roles);
    k.strs(&p.permissions);
    k.strs(&p.scopes);
    k.map(&p.claims);
    k.str(&p.auth_method);
    k.str(&input.action);
    match &input.resource {
        None => k.byte(0),
        Some(r) => {
            k.byte(1);
            k.str(&r.kind);
            k.opt_str(r.id.as_deref());
            k.value(&r.attributes);
        }
    }
    let r = &input.request;
    k.str(&r.method);
    k.str(&r.route);
    k.len(r.params.len());
    for (name, value) in &r.params {
        k.str(name);
        k.str(value);
    }
    k.0.extend_from_slice(&r.time.to_le_bytes());
    k.value(&input.context);
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    #[inline(always)]
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    #[inline(always)]
    /// LEB128: 7 bits a byte, the high bit set on every byte but the last.
    fn len(&mut self, mut n: usize) {
        while n >= 0x80 {
            self.0.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    #[inline(always)]
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    #[inline(always)]
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.byte(0),
            Some(s) => {
                self.byte(1);
                self.str(s);
            }
        }
    }

    #[inline(always)]
    fn strs(&mut self, list: &[String]) {
        self.len(list.len());
        for s in list {
            self.str(s);
        }
    }

    fn map(&mut self, map: &Map<String, Value>) {
        self.len(map.len());
        for (name, value) in map {
            self.str(name);
            self.value(value);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.byte(b'n'),
            Value::Bool(false) => self.byte(b'f'),
            Value::Bool(true) => self.byte(b't'),
            Value::Number(n) => {
                self.byte(b'N');
                // The number exactly as it serializes (digits, `-`, `.`, `e`, `E`, `+`: never a
                // 0 byte), whatever serde_json's features; then the 0 that ends it. Writing
                // into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *self.0, n);
                self.byte(0);
            }
            Value::String(s) => {
                self.byte(b's');
                self.str(s);
            }
            Value::Array(items) => {
                self.byte(b'a');
                self.len(items.len());
                for item in items {
                    self.value(item);
                }
            }
            Value::Object(map) => {
                self.byte(b'o');
                self.map(map);
            }
        }
    }
}

/// Wraps an engine with a decision cache keyed by the policy name and the whole input document
/// ([`CacheKey`]), entries expiring after [`CacheConfig::ttl`] on the injected clock.
///
/// An entry keeps its full key; a lookup hashes the key to find the entry (quick_cache's
/// hasher, randomly seeded per process) and compares every byte of it before answering, so a
/// cached decision is returned only for an equal input and policy.
///
/// Only real decisions are cached: a [`Decision::failed`] one (timeout, engine down) is not, so
/// the next request asks again.
pub struct Cached<E> {
    inner: E,
    /// Key bytes → the decision and when it expires (`None`: a TTL past the end of time).
    cache: quick_cache::sync::Cache<Box<[u8]>, (Decision, Option<SystemTime>)>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
}

impl<E> std::fmt::Debug for Cached<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("entries", &self.cache.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<E: PolicyEngine> Cached<E> {
    /// `inner` behind a cache configured by `config`, reading time from `clock`.
    pub fn new(inner: E, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            cache: quick_cache::sync::Cache::new(config.capacity.max(1)),
            clock,
            ttl: config.ttl,
        }
    }

    /// The wrapped engine.
    pub fn get_ref(&self) -> &E {
        &self.inner
    }

    /// The cache key of `policy` and `input` (the same as [`CacheKey::new`]).
    pub fn key(policy: &str, input: &Input) -> CacheKey {
        CacheKey::new(policy, input)
    }

    /// The cached decision for `key`, if there is one for exactly this key and it is still
    /// fresh (younger than the TTL on the clock).
    pub fn lookup(&self, key: &CacheKey) -> Option<Decision> {
        self.lookup_bytes(key.as_bytes())
    }

    /// The entry whose key is exactly `key` (hash to find it, every byte compared to confirm),
    /// if it is still fresh.
    fn lookup_bytes(&self, key: &[u8]) -> Option<Decision> {
        let (decision, expires) = self.cache.get(key)?;
        // Compared as `SystemTime`s: no conversion to milliseconds on the hit path.
        expires
            .is_none_or(|expires| self.clock.now() < expires)
            .then_some(decision)
    }

    /// How many decisions are kept now (expired ones included until they are replaced or
    /// evicted).
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// `true` when no decision is kept.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Drops every cached decision (after a policy change, say).
    pub fn clear(&self) {
        self.cache.clear();
    }
}

thread_local! {
    /// Where a lookup builds its key: reused, so a hit allocates nothing.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A scratch buffer that grew past this (an input with large claims) is not kept.
const SCRATCH_KEEP: usize = 16 * 1024;

impl<E: PolicyEngine> PolicyEngine for Cached<E> {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        // The key is built in this thread's scratch buffer; on a miss it is copied out to be
        // stored with the decision.
        let find = |bytes: &mut Vec<u8>| {
            bytes.clear();
            encode(bytes, policy, input);
            let found = self
                .lookup_bytes(bytes)
                .ok_or_else(|| Box::<[u8]>::from(&bytes[..]));
            if bytes.capacity() > SCRATCH_KEEP {
                *bytes = Vec::new();
            }
            found
        };
        let found = SCRATCH
            .try_with(|scratch| match scratch.try_borrow_mut() {
                Ok(mut bytes) => find(&mut bytes),
                // Re-entered on this thread (a clock that decides?): a buffer of its own.
                Err(_) => find(&mut Vec::new()),
            })
            // The thread is exiting and its scratch buffer is gone.
            .unwrap_or_else(|_| find(&mut Vec::new()));
        let key = match found {
            Ok(hit) => return Pending::ready(hit),
            Err(key) => key,
        };
        let pending = self.inner.decide(policy, input);
        Pending::boxed(async move {
            let decision = pending.await;
            if !decision.failed {
                let expires = self.clock.now().checked_add(self.ttl);
                self.cache.insert(key, (decision.clone(), expires));
            }
            decision
        })
    }

    fn policies(&self) -> Vec<String> {
        self.inner.policies()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;
    use crate::engine::{PrincipalInput, RequestInput, ResourceInput};

    /// Allows everything, counting the questions it is asked; `fail` makes every answer a
    /// failure.
    #[derive(Default)]
    struct Counting {
        asked: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl PolicyEngine for Counting {
        fn decide<'a>(&'a self, _: &'a str, _: &'a Input) -> Pending<'a> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Pending::ready(if self.fail.load(Ordering::SeqCst) {
                Decision::failure("down")
            } else {
                Decision::allow()
            })
        }
        fn policies(&self) -> Vec<String> {
            vec!["deploy".into(), "run".into()]
        }
        fn kind(&self) -> &'static str {
            "counting"
        }
    }

    fn now<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("not ready"),
        }
    }

    fn input() -> Input {
        Input {
            principal: PrincipalInput {
                subject: "alice".into(),
                issuer: Some("https://id.example.com".into()),
                tenant: None,
                roles: vec!["analyst".into()],
                effective_roles: vec!["analyst".into(), "viewer".into()],
                permissions: vec!["data:read".into(), "model:deploy".into()],
                scopes: vec![],
                claims: Map::new(),
                auth_method: "jwt".into(),
            },
            action: "model:deploy".into(),
            resource: Some(ResourceInput {
                kind: "model".into(),
                id: Some("m-1".into()),
                attributes: json!({ "owner": "alice", "size": 1 }),
            }),
            request: RequestInput {
                method: "POST".into(),
                route: "/models/{id}/deploy".into(),
                params: BTreeMap::from([("id".into(), "m-1".into())]),
                time: 1_767_225_600,
            },
            context: json!({ "environment": "staging" }),
        }
    }

    /// The input and, by name, variants that each differ from it (or from each other) in one
    /// small way — including ways a naive concatenation or `PartialEq` would confuse.
    fn variants() -> Vec<(&'static str, Input)> {
        let base = input();
        let with = |f: &dyn Fn(&mut Input)| {
            let mut i = base.clone();
            f(&mut i);
            i
        };
        vec![
            ("base", base.clone()),
            ("one more role", with(&|i| i.principal.roles.push("admin".into()))),
            ("another role", with(&|i| i.principal.roles[0] = "admin".into())),
            (
                "roles split differently",
                with(&|i| i.principal.roles = vec!["anal".into(), "yst".into()]),
            ),
            ("an empty role", with(&|i| i.principal.roles.push(String::new()))),
            (
                "role moved to effective_roles",
                with(&|i| {
                    i.principal.roles.clear();
                    i.principal.effective_roles.insert(0, "analyst".into());
                }),
            ),
            ("no issuer", with(&|i| i.principal.issuer = None)),
            (
                "empty issuer",
                with(&|i| i.principal.issuer = Some(String::new())),
            ),
            (
                "empty tenant",
                with(&|i| i.principal.tenant = Some(String::new())),
            ),
            ("another subject", with(&|i| i.principal.subject = "alicf".into())),
            (
                "a claim",
                with(&|i| {
                    i.principal.claims.insert("dept".into(), json!("ml"));
                }),
            ),
            (
                "another param",
                with(&|i| {
                    i.request.params.insert("id".into(), "m-2".into());
                }),
            ),
            (
                "a param under another name",
                with(&|i| {
                    i.request.params = BTreeMap::from([("model".into(), "m-1".into())]);
                }),
            ),
            ("another second", with(&|i| i.request.time += 1)),
            (
                "another context value",
                with(&|i| i.context = json!({ "environment": "production" })),
            ),
            ("context null", with(&|i| i.context = Value::Null)),
            ("context empty", with(&|i| i.context = json!({}))),
            ("context string \"null\"", with(&|i| i.context = json!("null"))),
            (
                "1 as a float",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(1.0)),
            ),
            (
                "1 as a string",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!("1")),
            ),
            (
                "-1",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(-1)),
            ),
            (
                "0.0",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(0.0)),
            ),
            (
                "-0.0",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(-0.0)),
            ),
            (
                "u64::MAX",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(u64::MAX)),
            ),
            (
                "[1] vs 1",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!([1])),
            ),
            (
                "true",
                with(&|i| i.resource.as_mut().unwrap().attributes["size"] = json!(true)),
            ),
            (
                "no resource id",
                with(&|i| i.resource.as_mut().unwrap().id = None),
            ),
            ("no resource", with(&|i| i.resource = None)),
            ("another action", with(&|i| i.action = "model:run".into())),
            ("another method", with(&|i| i.request.method = "PUT".into())),
        ]
    }

    #[test]
    fn keys_differ_exactly_when_the_json_differs() {
        let variants = variants();
        for (a_name, a) in &variants {
            for (b_name, b) in &variants {
                let same_json = a.to_json() == b.to_json();
                let same_key = CacheKey::new("deploy", a) == CacheKey::new("deploy", b);
                assert_eq!(same_key, same_json, "{a_name} / {b_name}");
                assert_eq!(same_key, a_name == b_name, "{a_name} / {b_name}");
            }
            assert_ne!(
                CacheKey::new("deploy", a),
                CacheKey::new("run", a),
                "the policy is part of the key"
            );
            assert_ne!(CacheKey::new("deployx", a), CacheKey::new("deploy", a));
        }
    }

    #[test]
    fn distinct_inputs_never_share_an_entry_equal_ones_do() {
        let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        let cached = Cached::new(Counting::default(), CacheConfig::default(), clock);
        let variants = variants();
        for (_, v) in &variants {
            assert!(now(cached.decide("deploy", v)).allowed);
        }
        assert_eq!(cached.get_ref().asked.load(Ordering::SeqCst), variants.len());
        assert_eq!(cached.len(), variants.len(), "one entry each");

        // Equal inputs — clones, and one built again from scratch — are hits.
        for (_, v) in &variants {
            assert!(now(cached.decide("deploy", &v.clone())).allowed);
        }
        assert!(now(cached.decide("deploy", &input())).allowed);
        assert_eq!(cached.get_ref().asked.load(Ordering::SeqCst), variants.len());
        assert_eq!(cached.len(), variants.len());
        assert!(
            cached
                .lookup(&Cached::<Counting>::key("deploy", &input()))
                .is_some()
        );

        // The same input under another policy is another question.
        assert!(now(cached.decide("run", &input())).allowed);
        assert_eq!(cached.get_ref().asked.load(Ordering::SeqCst), variants.len() + 1);
    }

    #[test]
    fn entries_expire_on_the_injected_clock_and_failures_are_not_kept() {
        let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        let config = CacheConfig {
            ttl: Duration::from_millis(1500),
            capacity: 10,
        };
        let cached = Cached::new(Counting::default(), config, clock.clone());
        let asked = || cached.get_ref().asked.load(Ordering::SeqCst);
        now(cached.decide("deploy", &input()));
        clock.advance(Duration::from_millis(1499));
        now(cached.decide("deploy", &input()));
        assert_eq!(asked(), 1, "fresh until the TTL");
        clock.advance(Duration::from_millis(1));
        now(cached.decide("deploy", &input()));
        assert_eq!(asked(), 2, "expired at the TTL");

        cached.clear();
        cached.get_ref().fail.store(true, Ordering::SeqCst);
        assert!(now(cached.decide("deploy", &input())).failed);
        assert!(cached.is_empty(), "a failure is not cached");
        cached.get_ref().fail.store(false, Ordering::SeqCst);
        assert!(now(cached.decide("deploy", &input())).allowed);
        assert_eq!(asked(), 4);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        let config = CacheConfig {
            ttl: Duration::from_secs(60),
            capacity: 8,
        };
        let cached = Cached::new(Counting::default(), config, clock);
        for t in 0..100 {
            let mut i = input();
            i.request.time = t;
            now(cached.decide("deploy", &i));
        }
        assert!(cached.len() <= 8, "{}", cached.len());
    }

    /// Any JSON value (numbers as integers, negative integers and floats).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            prop::num::f64::NORMAL.prop_map(|f| json!(f)),
            prop_oneof![Just(0.0), Just(-0.0), Just(1.0)].prop_map(|f: f64| json!(f)),
            "[a-c\"\\\\\u{0}é]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{0,2}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Over arbitrary context documents: the keys are equal exactly when the inputs
        /// serialize to the same JSON.
        #[test]
        fn keys_are_equal_iff_the_json_is(a in json_value(), b in json_value()) {
            let (mut x, mut y) = (input(), input());
            x.context = a;
            y.context = b;
            prop_assert_eq!(
                CacheKey::new("deploy", &x) == CacheKey::new("deploy", &y),
                x.to_json() == y.to_json()
            );
            prop_assert_eq!(CacheKey::new("deploy", &x), CacheKey::new("deploy", &x.clone()));
        }
    }
}
