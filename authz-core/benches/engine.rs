//! The policy-engine seam, next to the bitset check, in one run:
//! `cargo bench -p authz-axum-core --bench engine --features rego,cedar,opa`.
//!
//! For each engine, the same decision (an analyst deploying their own model to staging:
//! allowed) three ways:
//! - `native`: the engine's own API with its input already in its own types (regorus
//!   `CompiledPolicy::eval_with_input`, cedar `Authorizer::is_authorized`);
//! - `direct`: authz's engine called by its inherent method (`evaluate`), which maps the
//!   [`Input`] document into the engine's types;
//! - `seam`: the same through `&dyn PolicyEngine::decide` and its `Pending` future: the seam's
//!   own cost is `seam − direct`.
//!
//! `noop`: an engine that decides nothing, direct and through the seam: the seam alone.
//!
//! OPA over HTTP: `direct` and `seam` against a minimal keep-alive HTTP responder on loopback
//! (answering `{"result":true,…}`), so the numbers are the client's, not a policy's. The cache:
//! a hit through the seam (the question hashed and compared where it lies: no key is built; the
//! principal is the cached one's shared view, as for a principal's repeated requests), the same
//! with an equal principal that is another object (compared field by field), a lookup by an
//! owned `CacheKey`, and, for comparison, serializing the input to JSON text (what
//! the key was made of before `CacheKey`).

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use authz_core::engine::cedar::{AttrType, CedarEngine, SchemaBuilder};
use authz_core::engine::opa::{OpaConfig, OpaEngine};
use authz_core::engine::rego::RegoEngine;
use authz_core::engine::{
    CacheConfig, Cached, Decision, Input, PolicyEngine, PrincipalInput, RequestInput, ResourceInput,
};
use authz_core::{PermissionCatalog, Policy, Principal, RoleSpec};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

const REGO: &str = r#"package authz.deploy
import rego.v1
default allow := false
allow if "admin" in input.principal.effective_roles
allow if {
	"analyst" in input.principal.effective_roles
	input.context.environment == "staging"
	input.resource.attributes.owner == input.principal.subject
}
"#;

const CEDAR: &str = r#"permit (principal, action == Action::"model:deploy", resource)
when { principal.effective_roles.contains("admin") };
permit (principal, action == Action::"model:deploy", resource)
when {
  principal.effective_roles.contains("analyst") &&
  context has environment && context.environment == "staging" &&
  resource has owner && resource.owner == principal.subject
};
"#;

fn input() -> Input {
    Input {
        principal: Arc::new(PrincipalInput {
            subject: "alice".into(),
            issuer: Some("https://id.example.com".into()),
            tenant: None,
            roles: vec!["analyst".into()],
            effective_roles: vec!["analyst".into(), "viewer".into()],
            permissions: vec!["data:read".into(), "model:deploy".into(), "model:run".into()],
            scopes: vec![],
            claims: Default::default(),
            auth_method: "jwt".into(),
        }),
        action: "model:deploy".into(),
        resource: Some(ResourceInput {
            kind: "model".into(),
            id: Some("m-1".into()),
            attributes: json!({ "owner": "alice" }),
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

/// Polls a future that is ready on its first poll (the embedded engines').
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}

/// A keep-alive HTTP/1.1 responder that answers every request with an allow.
fn responder() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                let body = br#"{"result":true,"decision_id":"d-1"}"#;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut buf = vec![0; length];
                    if reader.read_exact(&mut buf).is_err() {
                        return;
                    }
                    // One write: a head and a body in two segments would meet Nagle's algorithm
                    // and the client's delayed ACK (40 ms per request).
                    let mut response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(body);
                    if out.write_all(&response).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// An engine that decides nothing: what the seam itself costs.
struct Noop;

impl Noop {
    fn evaluate(&self, _: &str, _: &Input) -> Decision {
        Decision::allow()
    }
}

impl PolicyEngine for Noop {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> authz_core::engine::Pending<'a> {
        authz_core::engine::Pending::ready(self.evaluate(policy, input))
    }
    fn policies(&self) -> Vec<String> {
        vec!["deploy".into()]
    }
    fn kind(&self) -> &'static str {
        "noop"
    }
}

fn engines(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("authz-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("deploy.rego"), REGO).unwrap();
    std::fs::write(dir.join("deploy.cedar"), CEDAR).unwrap();
    let input = input();

    // The bitset check the engine sits behind.
    let catalog = Arc::new(PermissionCatalog::new(["data:read", "model:run", "model:deploy"]).unwrap());
    let policy = Policy::builder(catalog.clone())
        .role(RoleSpec::new("analyst").grants(["data:read", "model:run", "model:deploy"]))
        .build()
        .unwrap();
    let principal = Principal::for_testing("alice", ["analyst"], &policy);
    let deploy = catalog.id("model:deploy").unwrap();

    // Rego.
    let rego = RegoEngine::load(&dir).unwrap();
    let mut native = regorus::Engine::new();
    native.add_policy("deploy.rego".into(), REGO.into()).unwrap();
    let compiled = native
        .compile_with_entrypoint(&"data.authz.deploy.allow".into())
        .unwrap();
    let rego_value = regorus::Value::from(serde_json::to_value(&input).unwrap());
    assert_eq!(
        compiled.eval_with_input(rego_value.clone()).unwrap(),
        regorus::Value::from(true)
    );

    // Cedar.
    let schema = SchemaBuilder::from_catalog(&catalog)
        .resource_attribute("model", "owner", AttrType::String)
        .context_attribute("environment", AttrType::String)
        .build()
        .unwrap();
    let cedar = CedarEngine::load(&dir, schema.clone()).unwrap();
    let cedar_schema = cedar_policy::Schema::from_cedarschema_str(schema.text())
        .unwrap()
        .0;
    let cedar_set = cedar_policy::PolicySet::from_str(CEDAR).unwrap();
    let cedar_entities = cedar_policy::Entities::from_json_value(
        json!([
            { "uid": { "type": "User", "id": "alice" }, "attrs": {
                "subject": "alice", "roles": ["analyst"], "effective_roles": ["analyst", "viewer"],
                "permissions": ["data:read", "model:deploy", "model:run"], "scopes": [], "auth_method": "jwt",
                "issuer": "https://id.example.com" }, "parents": [] },
            { "uid": { "type": "model", "id": "m-1" }, "attrs": { "owner": "alice" }, "parents": [] },
        ]),
        Some(&cedar_schema),
    )
    .unwrap();
    let action = cedar_policy::EntityUid::from_str(r#"Action::"model:deploy""#).unwrap();
    let cedar_request = cedar_policy::Request::new(
        cedar_policy::EntityUid::from_str(r#"User::"alice""#).unwrap(),
        action.clone(),
        cedar_policy::EntityUid::from_str(r#"model::"m-1""#).unwrap(),
        cedar_policy::Context::from_json_value(
            json!({ "method": "POST", "route": "/models/{id}/deploy", "time": 1_767_225_600, "environment": "staging" }),
            Some((&cedar_schema, &action)),
        )
        .unwrap(),
        Some(&cedar_schema),
    )
    .unwrap();
    let authorizer = cedar_policy::Authorizer::new();
    assert_eq!(
        authorizer
            .is_authorized(&cedar_request, &cedar_set, &cedar_entities)
            .decision(),
        cedar_policy::Decision::Allow
    );

    // OPA (a loopback responder), and the cache.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = OpaConfig::new(responder());
    config.timeout = std::time::Duration::from_secs(2);
    let opa = OpaEngine::new(config, vec!["deploy".into()]).unwrap();
    assert!(rt.block_on(opa.evaluate("deploy", &input)).allowed);
    let cached = Cached::new(
        RegoEngine::load(&dir).unwrap(),
        CacheConfig::default(),
        authz_core::clock::system(),
    );
    assert!(now(cached.decide("deploy", &input)).allowed);
    let key = Cached::<RegoEngine>::key("deploy", &input);
    assert!(cached.lookup(&key).is_some());

    let seam = |e: &dyn PolicyEngine| -> Decision { now(e.decide(black_box("deploy"), black_box(&input))) };
    for (name, engine) in [("rego", &rego as &dyn PolicyEngine), ("cedar", &cedar)] {
        assert!(seam(engine).allowed, "{name}");
    }

    let mut g = c.benchmark_group("policy_engine");
    g.bench_function("bitset_check", |b| {
        b.iter(|| black_box(&principal).can(black_box(deploy)))
    });
    g.bench_function("noop/direct", |b| {
        b.iter(|| Noop.evaluate(black_box("deploy"), black_box(&input)))
    });
    g.bench_function("noop/seam", |b| b.iter(|| seam(black_box(&Noop))));
    g.bench_function("rego/native", |b| {
        b.iter(|| compiled.eval_with_input(black_box(rego_value.clone())).unwrap())
    });
    g.bench_function("rego/direct", |b| {
        b.iter(|| rego.evaluate(black_box("deploy"), black_box(&input)))
    });
    g.bench_function("rego/seam", |b| b.iter(|| seam(&rego)));
    g.bench_function("cedar/native", |b| {
        b.iter(|| {
            authorizer
                .is_authorized(black_box(&cedar_request), &cedar_set, &cedar_entities)
                .decision()
        })
    });
    g.bench_function("cedar/direct", |b| {
        b.iter(|| cedar.evaluate(black_box("deploy"), black_box(&input)))
    });
    g.bench_function("cedar/seam", |b| b.iter(|| seam(&cedar)));
    g.bench_function("opa/direct", |b| {
        b.iter(|| rt.block_on(opa.evaluate(black_box("deploy"), black_box(&input))))
    });
    g.bench_function("opa/seam", |b| {
        b.iter(|| rt.block_on((&opa as &dyn PolicyEngine).decide(black_box("deploy"), black_box(&input))))
    });
    g.bench_function("cache/hit_through_seam", |b| {
        b.iter(|| now((&cached as &dyn PolicyEngine).decide(black_box("deploy"), black_box(&input))))
    });
    // The same question from an equal principal that is another object (a second token of the
    // same user): the principal is compared field by field instead of by pointer.
    let mut twin = input.clone();
    twin.principal = Arc::new((*input.principal).clone());
    assert!(!Arc::ptr_eq(&twin.principal, &input.principal));
    g.bench_function("cache/hit_through_seam_equal_principal", |b| {
        b.iter(|| now((&cached as &dyn PolicyEngine).decide(black_box("deploy"), black_box(&twin))))
    });
    g.bench_function("cache/lookup_by_key", |b| {
        b.iter(|| cached.lookup(black_box(&key)))
    });
    // What making the key cost before `CacheKey`: the input serialized to JSON text.
    g.bench_function("cache/json_text", |b| b.iter(|| black_box(&input).to_json()));
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, engines);
criterion_main!(benches);
