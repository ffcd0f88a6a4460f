//! [`Cached`]: a short-lived decision cache in front of any engine.
//!
//! The key of a decision is [`CacheKey`]: the policy name and the whole [`Input`]. A lookup
//! hashes the question *in place* — no key is built, nothing is copied or allocated — finds the
//! candidate entries by that hash, and confirms one by comparing the question with the stored
//! key **field by field, every field** (see [`CacheKey`] for what "equal" means), so a decision is
//! only ever reused for an input equal to the one decided: a hash collision can cost a probe,
//! never a wrong answer.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Number, Value};

use super::{Decision, Input, Pending, PolicyEngine, PrincipalInput};
use crate::clock::Clock;

/// How [`Cached`] caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a decision is reused (read on [`Clock::now_coarse`], so up to one timer tick —
    /// 1–10 ms — longer on the system clock). Default: 2 s. Longer means a policy change (or a changed
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

/// The cache key of a policy name and an [`Input`]: both, owned.
///
/// Two keys are equal exactly when the policy names are equal and the inputs are equal field
/// by field, where two JSON values are equal only when they serialize to the same JSON text:
/// `1` and `1.0`, `0.0` and `-0.0` are different numbers here (unlike `serde_json`'s own
/// `PartialEq`, which takes `0.0 == -0.0`), and an object's members are compared **in the map's
/// own order** (the order they serialize in) — two objects with the same members in another
/// order are different keys (another cache entry, never a wrong one). So two inputs that
/// serialize to different JSON never share a key.
///
/// The hash covers the few fields that tell requests apart — subject, action, path parameters
/// (the resource's id is one), time, and the handler's `context` — including everything a
/// caller controls (path and body), so no caller can make many questions share a hash; equality
/// covers every field.
#[derive(Clone)]
pub struct CacheKey {
    policy: Box<str>,
    input: Input,
}

impl CacheKey {
    /// The key of `policy` and `input` (a copy of both).
    pub fn new(policy: &str, input: &Input) -> Self {
        CacheKey {
            policy: policy.into(),
            input: input.clone(),
        }
    }

    /// The policy name.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The input document.
    pub fn input(&self) -> &Input {
        &self.input
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        same_question(&self.policy, &self.input, &other.policy, &other.input)
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_question(&self.input, state);
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheKey")
            .field("policy", &self.policy)
            .field("action", &self.input.action)
            .finish_non_exhaustive()
    }
}

/// A question as it is asked: borrowed, hashed and compared where it lies.
struct Question<'a> {
    policy: &'a str,
    input: &'a Input,
}

impl Hash for Question<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_question(self.input, state);
    }
}

impl quick_cache::Equivalent<CacheKey> for Question<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        same_question(self.policy, self.input, &key.policy, &key.input)
    }
}

/// The hash of a question: the fields that tell requests apart (see [`CacheKey`]). Equal
/// questions ([`same_question`]) hash the same: every field hashed here is compared there, and
/// numbers are hashed by the same identity they are compared by. Strings go in as their length
/// and bytes (no separator byte: the length keeps the fields apart).
#[inline]
fn hash_question<H: Hasher>(input: &Input, state: &mut H) {
    hash_str(&input.principal.subject, state);
    hash_str(&input.action, state);
    let r = &input.request;
    state.write_usize(r.params.len());
    for (name, value) in &r.params {
        hash_str(name, state);
        hash_str(value, state);
    }
    state.write_u64(r.time);
    hash_value(&input.context, state);
}

#[inline(always)]
fn hash_str<H: Hasher>(s: &str, state: &mut H) {
    state.write_usize(s.len());
    state.write(s.as_bytes());
}

fn hash_value<H: Hasher>(v: &Value, state: &mut H) {
    match v {
        Value::Null => state.write_u8(b'n'),
        Value::Bool(b) => state.write_u8(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            state.write_u8(b'N');
            match number_identity(n) {
                NumberIdentity::Integer(i) => state.write_u128(i as u128),
                NumberIdentity::Float(bits) => {
                    state.write_u8(b'.');
                    state.write_u64(bits);
                }
            }
        }
        Value::String(s) => {
            state.write_u8(b's');
            hash_str(s, state);
        }
        Value::Array(items) => {
            state.write_u8(b'a');
            state.write_usize(items.len());
            for item in items {
                hash_value(item, state);
            }
        }
        Value::Object(map) => {
            state.write_u8(b'o');
            state.write_usize(map.len());
            for (name, value) in map {
                hash_str(name, state);
                hash_value(value, state);
            }
        }
    }
}

/// `true` when the two questions are the same: equal policy names, and inputs equal field by
/// field (JSON values as [`value_eq`] compares them). Cheapest and likeliest differences first.
fn same_question(pa: &str, a: &Input, pb: &str, b: &Input) -> bool {
    let (r, s) = (&a.request, &b.request);
    r.time == s.time
        && str_eq(pa, pb)
        && str_eq(&a.action, &b.action)
        && str_eq(&r.route, &s.route)
        && str_eq(&r.method, &s.method)
        && r.params.len() == s.params.len()
        && r.params
            .iter()
            .zip(&s.params)
            .all(|((m, v), (n, w))| str_eq(m, n) && str_eq(v, w))
        && match (&a.resource, &b.resource) {
            (None, None) => true,
            (Some(m), Some(n)) => {
                str_eq(&m.kind, &n.kind)
                    && opt_str_eq(m.id.as_deref(), n.id.as_deref())
                    && value_eq(&m.attributes, &n.attributes)
            }
            _ => false,
        }
        && value_eq(&a.context, &b.context)
        // The same shared view (the same principal's requests): equal without a look inside.
        && (Arc::ptr_eq(&a.principal, &b.principal) || same_principal(&a.principal, &b.principal))
}

/// Field by field.
fn same_principal(x: &PrincipalInput, y: &PrincipalInput) -> bool {
    str_eq(&x.subject, &y.subject)
        && opt_str_eq(x.tenant.as_deref(), y.tenant.as_deref())
        && opt_str_eq(x.issuer.as_deref(), y.issuer.as_deref())
        && str_eq(&x.auth_method, &y.auth_method)
        && strs_eq(&x.roles, &y.roles)
        && strs_eq(&x.effective_roles, &y.effective_roles)
        && strs_eq(&x.permissions, &y.permissions)
        && strs_eq(&x.scopes, &y.scopes)
        && map_eq(&x.claims, &y.claims)
}

/// String equality. The strings of an input are mostly short (names, roles, ids, routes): up
/// to 32 bytes they are compared in line with overlapping word loads that together cover every
/// byte, instead of a call to `memcmp` per string; longer ones go to `memcmp`.
#[inline(always)]
fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // Positions 0, n/2 and n-1 are every byte of a string of 1 to 3.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => (word32(a, 0) ^ word32(b, 0)) | (word32(a, n - 4) ^ word32(b, n - 4)) == 0,
        8..=16 => (word64(a, 0) ^ word64(b, 0)) | (word64(a, n - 8) ^ word64(b, n - 8)) == 0,
        17..=32 => {
            (word64(a, 0) ^ word64(b, 0))
                | (word64(a, 8) ^ word64(b, 8))
                | (word64(a, n - 16) ^ word64(b, n - 16))
                | (word64(a, n - 8) ^ word64(b, n - 8))
                == 0
        }
        _ => a == b,
    }
}

/// The 8 bytes of `s` at `at` (the caller checked `at + 8 <= s.len()`).
#[inline(always)]
fn word64(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default())
}

/// The 4 bytes of `s` at `at` (the caller checked `at + 4 <= s.len()`).
#[inline(always)]
fn word32(s: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default())
}

#[inline(always)]
fn opt_str_eq(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => str_eq(a, b),
        _ => false,
    }
}

#[inline(always)]
fn strs_eq(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| str_eq(a, b))
}

/// JSON values equal exactly when they serialize to the same text (see [`CacheKey`]).
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => number_identity(x) == number_identity(y),
        (Value::String(x), Value::String(y)) => str_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| value_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => map_eq(x, y),
        _ => false,
    }
}

/// Members pairwise in the maps' own order.
fn map_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((m, x), (n, y))| str_eq(m, n) && value_eq(x, y))
}

/// What a number is, for equality and hashing: an integer by its value, a float by its bits
/// (serde_json writes a float's shortest round-tripping text, a function of its bits, and
/// always with a `.` or an exponent, so no float prints like an integer).
#[derive(PartialEq, Eq)]
enum NumberIdentity {
    Integer(i128),
    Float(u64),
}

fn number_identity(n: &Number) -> NumberIdentity {
    if let Some(u) = n.as_u64() {
        NumberIdentity::Integer(i128::from(u))
    } else if let Some(i) = n.as_i64() {
        NumberIdentity::Integer(i128::from(i))
    } else {
        // Neither integer: a float (never NaN or infinite in a `Value`).
        NumberIdentity::Float(n.as_f64().map_or(0, f64::to_bits))
    }
}

/// Wraps an engine with a decision cache keyed by the policy name and the whole input document
/// ([`CacheKey`]), entries expiring after [`CacheConfig::ttl`] on the injected clock.
///
/// A lookup hashes the question where it lies (foldhash, randomly seeded per
/// process), and compares it with a candidate's stored key field by field before answering, so
/// a cached decision is returned only for an equal input and policy; a hit allocates nothing.
///
/// Only real decisions are cached: a [`Decision::failed`] one (timeout, engine down) is not, so
/// the next request asks again.
pub struct Cached<E> {
    inner: E,
    /// The question → the decision and when it expires (`None`: a TTL past the end of time).
    cache: quick_cache::sync::Cache<
        CacheKey,
        (Decision, Option<SystemTime>),
        quick_cache::UnitWeighter,
        foldhash::fast::RandomState,
    >,
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
            cache: quick_cache::sync::Cache::with(
                config.capacity.max(1),
                config.capacity.max(1) as u64,
                quick_cache::UnitWeighter,
                foldhash::fast::RandomState::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
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
        self.lookup_question(&Question {
            policy: &key.policy,
            input: &key.input,
        })
    }

    /// The entry for exactly this question, if it is still fresh.
    fn lookup_question(&self, question: &Question<'_>) -> Option<Decision> {
        let (decision, expires) = self.cache.get(question)?;
        // Compared as `SystemTime`s: no conversion to milliseconds on the hit path. The coarse
        // reading lags by at most a timer tick: an entry may serve that much past its TTL.
        expires
            .is_none_or(|expires| self.clock.now_coarse() < expires)
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

impl<E: PolicyEngine> PolicyEngine for Cached<E> {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        if let Some(hit) = self.lookup_question(&Question { policy, input }) {
            return Pending::ready(hit);
        }
        let pending = self.inner.decide(policy, input);
        Pending::boxed(async move {
            let decision = pending.await;
            if !decision.failed {
                let expires = self.clock.now().checked_add(self.ttl);
                self.cache
                    .insert(CacheKey::new(policy, input), (decision.clone(), expires));
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
            principal: Arc::new(PrincipalInput {
                subject: "alice".into(),
                issuer: Some("https://id.example.com".into()),
                tenant: None,
                roles: vec!["analyst".into()],
                effective_roles: vec!["analyst".into(), "viewer".into()],
                permissions: vec!["data:read".into(), "model:deploy".into()],
                scopes: vec![],
                claims: Map::new(),
                auth_method: "jwt".into(),
            }),
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
            (
                "one more role",
                with(&|i| Arc::make_mut(&mut i.principal).roles.push("admin".into())),
            ),
            (
                "another role",
                with(&|i| Arc::make_mut(&mut i.principal).roles[0] = "admin".into()),
            ),
            (
                "roles split differently",
                with(&|i| Arc::make_mut(&mut i.principal).roles = vec!["anal".into(), "yst".into()]),
            ),
            (
                "an empty role",
                with(&|i| Arc::make_mut(&mut i.principal).roles.push(String::new())),
            ),
            (
                "role moved to effective_roles",
                with(&|i| {
                    Arc::make_mut(&mut i.principal).roles.clear();
                    Arc::make_mut(&mut i.principal)
                        .effective_roles
                        .insert(0, "analyst".into());
                }),
            ),
            (
                "no issuer",
                with(&|i| Arc::make_mut(&mut i.principal).issuer = None),
            ),
            (
                "empty issuer",
                with(&|i| Arc::make_mut(&mut i.principal).issuer = Some(String::new())),
            ),
            (
                "empty tenant",
                with(&|i| Arc::make_mut(&mut i.principal).tenant = Some(String::new())),
            ),
            (
                "another subject",
                with(&|i| Arc::make_mut(&mut i.principal).subject = "alicf".into()),
            ),
            (
                "a claim",
                with(&|i| {
                    Arc::make_mut(&mut i.principal)
                        .claims
                        .insert("dept".into(), json!("ml"));
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
            if CacheKey::new("deploy", &x) == CacheKey::new("deploy", &y) {
                prop_assert_eq!(hash_of("deploy", &x), hash_of("deploy", &y));
            }
        }

        /// The same over resource attributes, which equality compares but the hash skips.
        #[test]
        fn attributes_are_compared_as_json(a in json_value(), b in json_value()) {
            let (mut x, mut y) = (input(), input());
            x.resource.as_mut().unwrap().attributes = a;
            y.resource.as_mut().unwrap().attributes = b;
            prop_assert_eq!(
                CacheKey::new("deploy", &x) == CacheKey::new("deploy", &y),
                x.to_json() == y.to_json()
            );
        }
    }

    /// The hash an owned key and a borrowed question both give (they must agree, or a lookup
    /// would miss what was inserted).
    fn hash_of(policy: &str, input: &Input) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let build = BuildHasherDefault::<DefaultHasher>::default();
        let owned = build.hash_one(CacheKey::new(policy, input));
        let borrowed = build.hash_one(Question { policy, input });
        assert_eq!(owned, borrowed, "key and question hash alike");
        owned
    }

    #[test]
    fn strings_are_equal_exactly_when_every_byte_is() {
        for n in 0..=40usize {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(str_eq(&a, &a.clone()), "{n}");
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!str_eq(&a, &b), "{n} bytes, differing at {at}");
            }
            assert!(!str_eq(&a, &format!("{a}a")), "{n} vs {} bytes", n + 1);
        }
    }

    #[test]
    fn equal_keys_hash_alike() {
        let variants = variants();
        for (a_name, a) in &variants {
            for (b_name, b) in &variants {
                if CacheKey::new("deploy", a) == CacheKey::new("deploy", b) {
                    assert_eq!(hash_of("deploy", a), hash_of("deploy", b), "{a_name} / {b_name}");
                }
            }
        }
        // A copy made by parsing the input's own JSON is the same question.
        let parsed: Input = serde_json::from_str(&input().to_json()).unwrap();
        assert_eq!(
            CacheKey::new("deploy", &parsed),
            CacheKey::new("deploy", &input())
        );
        assert_eq!(hash_of("deploy", &parsed), hash_of("deploy", &input()));
    }
}
