//! Resource-level rules (`#[authorize]`, `#[derive(Resource)]`) over real HTTP: ownership
//! (IDOR), tenant isolation, the two-person rule, masking, store failures; and a property test
//! of the decision against a naive reference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use authz_axum::core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
use authz_axum::core::{Catalog as _, Policy, Principal as CorePrincipal, RoleSpec};
use authz_axum::prelude::*;
use authz_axum::resource::{Decision, Load};
use authz_axum::{Authenticator, Issuer, StaticKeys};
use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::routing::{get, post};
use proptest::prelude::*;

use crate::common::{http, init_tracing, now, remember_secret};

authz_axum::catalog! {
    pub struct Catalog {
        permissions: ["doc:read", "doc:read_any", "doc:edit", "payment:approve"],
        roles: ["auditor"],
    }
}

#[derive(Clone, Debug, serde::Serialize, authz_axum::Resource)]
#[resource(type = "doc", owner = owner, tenant = tenant)]
pub struct Doc {
    id: u32,
    owner: String,
    tenant: String,
    editors: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize, authz_axum::Resource)]
#[resource(tenant = tenant)]
pub struct Payment {
    id: u32,
    tenant: String,
    initiated_by: String,
    approved_by: Option<String>,
}

#[derive(Clone, Default)]
pub struct Store {
    docs: Arc<Mutex<HashMap<u32, Doc>>>,
    payments: Arc<Mutex<HashMap<u32, Payment>>>,
    down: Arc<AtomicBool>,
    loads: Arc<AtomicUsize>,
    body_reads: Arc<AtomicUsize>,
}

impl Load<Store> for Doc {
    type Id = u32;
    type Error = &'static str;
    async fn load(s: &Store, id: u32, _: &CorePrincipal) -> Result<Option<Self>, Self::Error> {
        s.loads.fetch_add(1, Ordering::SeqCst);
        if s.down.load(Ordering::SeqCst) {
            return Err("connection refused");
        }
        Ok(s.docs.lock().unwrap().get(&id).cloned())
    }
}

impl Load<Store> for Payment {
    type Id = u32;
    type Error = &'static str;
    async fn load(s: &Store, id: u32, _: &CorePrincipal) -> Result<Option<Self>, Self::Error> {
        Ok(s.payments.lock().unwrap().get(&id).cloned())
    }
}

/// A body extractor that counts, in its router's store, that it ran.
struct TracedBody;

impl FromRequest<Store> for TracedBody {
    type Rejection = axum::http::StatusCode;
    async fn from_request(req: Request, state: &Store) -> Result<Self, Self::Rejection> {
        state.body_reads.fetch_add(1, Ordering::SeqCst);
        let _ = axum::body::Bytes::from_request(req, state).await;
        Ok(TracedBody)
    }
}

#[require_permission("doc:read")]
#[authorize(visible = owner_or("doc:read_any"))]
async fn read_doc(Authorized(doc): Authorized<Doc>) -> String {
    format!("doc {}", doc.id)
}

fn is_editor(p: &CorePrincipal, d: &Doc) -> bool {
    d.editors.iter().any(|e| e == p.subject())
}

/// Written with `#[authorize]` above the guard: the order of the two attributes does not
/// matter; anyone who may read it sees it, only the owner or an editor may edit (403 else).
#[authorize(visible = owner_or("doc:read_any"), allow = any(owner, check(is_editor)))]
#[require_permission("doc:edit")]
async fn edit_doc(doc: Authorized<Doc>, _body: TracedBody) -> String {
    format!("edited {}", doc.id)
}

/// The same, masked: a caller who sees it but may not edit gets the 404 too.
#[require_permission("doc:edit")]
#[authorize(visible = owner_or("doc:read_any"), allow = owner, deny = not_found)]
async fn edit_doc_masked(Authorized(doc): Authorized<Doc>) -> String {
    format!("edited {}", doc.id)
}

/// No permission guard: any authenticated caller in the tenant.
#[authorize]
async fn doc_exists(Authorized(doc): Authorized<Doc>) -> String {
    format!("{} exists", doc.id)
}

#[require_permission("payment:approve")]
#[authorize(allow = all(other_than(initiated_by), not(party(approved_by))))]
async fn approve(Authorized(p): Authorized<Payment>) -> String {
    format!("approved {}", p.id)
}

const SECRET: &[u8] = b"resource-test-secret-of-32-bytes";

fn policy() -> Arc<Policy> {
    let catalog = Arc::new(Catalog::catalog().clone());
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("member").grants(["doc:read", "doc:edit"]))
            .role(RoleSpec::new("auditor").inherits("member").grant("doc:read_any"))
            .role(RoleSpec::new("approver").grant("payment:approve"))
            .build()
            .unwrap(),
    )
}

fn token(sub: &str, tenant: Option<&str>, roles: &[&str]) -> String {
    let mut claims = serde_json::json!({
        "iss": "https://issuer.test", "aud": "resources", "sub": sub,
        "exp": now() + 300, "roles": roles,
    });
    if let Some(t) = tenant {
        claims["tenant"] = t.into();
    }
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    remember_secret(&t);
    t
}

fn app(store: Store) -> Router {
    app_with(store, ClaimMapping::default().tenant_from("tenant").unwrap())
}

fn app_with(store: Store, mapping: ClaimMapping) -> Router {
    let verifier = JwtVerifier::builder("https://issuer.test", "resources", [Algorithm::HS256])
        .build()
        .unwrap();
    let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, SECRET).unwrap()]).unwrap();
    let issuer = Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping);
    let auth = Arc::new(Authenticator::builder(policy()).issuer(issuer).build().unwrap());
    Router::new()
        .route("/docs/{id}", get(read_doc).post(edit_doc))
        .route("/masked/docs/{id}", post(edit_doc_masked))
        .route("/exists/docs/{id}", get(doc_exists))
        .route("/payments/{id}/approve", post(approve))
        .route("/unrouted", get(doc_exists))
        .layer(AuthLayer::new(auth))
        .with_state(store)
}

fn seeded() -> Store {
    let store = Store::default();
    store.docs.lock().unwrap().insert(
        1,
        Doc {
            id: 1,
            owner: "ada".into(),
            tenant: "acme".into(),
            editors: vec!["eve".into()],
        },
    );
    store.payments.lock().unwrap().insert(
        7,
        Payment {
            id: 7,
            tenant: "acme".into(),
            initiated_by: "ada".into(),
            approved_by: None,
        },
    );
    store
}

/// Status, headers that matter and the body: what a caller can compare.
async fn call(method: &str, url: &str, token: &str) -> (u16, String, String) {
    let r = http()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let mut headers: Vec<String> = r
        .headers()
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    headers.sort();
    (status, headers.join("\n"), r.text().await.unwrap())
}

#[tokio::test]
async fn every_route_for_owner_other_user_other_tenant_admin_and_missing() {
    init_tracing();
    let url = crate::common::serve(app(seeded())).await;
    let owner = token("ada", Some("acme"), &["member"]);
    let other = token("bob", Some("acme"), &["member"]);
    let editor = token("eve", Some("acme"), &["member"]);
    let foreign_owner = token("ada", Some("globex"), &["auditor"]); // same sub, other tenant
    let auditor = token("carl", Some("acme"), &["auditor"]);
    let foreign_auditor = token("dora", Some("globex"), &["auditor"]);
    let no_tenant = token("ada", None, &["auditor"]);
    let missing = call("GET", &format!("{url}/docs/999"), &auditor).await;
    assert_eq!(missing.0, 404);
    // (method, path, token, status)
    let cases: Vec<(&str, &str, &String, u16)> = vec![
        ("GET", "/docs/1", &owner, 200),
        ("GET", "/docs/1", &other, 404),
        ("GET", "/docs/1", &auditor, 200),
        ("GET", "/docs/1", &foreign_owner, 404),
        ("GET", "/docs/1", &foreign_auditor, 404),
        ("GET", "/docs/1", &no_tenant, 404),
        ("GET", "/docs/999", &owner, 404),
        ("GET", "/docs/not-a-number", &owner, 404),
        ("POST", "/docs/1", &owner, 200),
        ("POST", "/docs/1", &other, 404),
        ("POST", "/docs/1", &auditor, 403),
        ("POST", "/docs/1", &editor, 404), // an editor who may not see it: still hidden
        ("POST", "/docs/1", &foreign_owner, 404),
        ("POST", "/docs/999", &auditor, 404),
        ("POST", "/masked/docs/1", &owner, 200),
        ("POST", "/masked/docs/1", &auditor, 404),
        ("POST", "/masked/docs/1", &foreign_auditor, 404),
        ("GET", "/exists/docs/1", &other, 200),
        ("GET", "/exists/docs/1", &foreign_auditor, 404),
        ("GET", "/unrouted", &owner, 404),
    ];
    for (method, path, token, want) in cases {
        let got = call(method, &format!("{url}{path}"), token).await;
        assert_eq!(got.0, want, "{method} {path}: {}", got.2);
        if want == 404 {
            // Byte-identical to a missing id: status, headers and body.
            assert_eq!(
                got, missing,
                "{method} {path} is distinguishable from a missing id"
            );
        }
    }
    // Without a credential: 401 before any load.
    let r = http().get(format!("{url}/docs/1")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_resource_is_checked_before_the_body_is_read_and_loaded_once() {
    let store = seeded();
    let url = crate::common::serve(app(store.clone())).await;
    let before = store.body_reads.load(Ordering::SeqCst);
    let loads = store.loads.load(Ordering::SeqCst);
    let (status, ..) = call(
        "POST",
        &format!("{url}/docs/1"),
        &token("bob", Some("acme"), &["member"]),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        store.body_reads.load(Ordering::SeqCst),
        before,
        "the body was read before the check"
    );
    assert_eq!(store.loads.load(Ordering::SeqCst), loads + 1);
    // A guard failure (no doc:edit) stops before the store is even asked.
    let (status, ..) = call("POST", &format!("{url}/docs/1"), &token("x", Some("acme"), &[])).await;
    assert_eq!(status, 403);
    assert_eq!(store.loads.load(Ordering::SeqCst), loads + 1);
    // The owner passes: one load, then the body is read.
    let (status, ..) = call(
        "POST",
        &format!("{url}/docs/1"),
        &token("ada", Some("acme"), &["member"]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(store.loads.load(Ordering::SeqCst), loads + 2);
    assert_eq!(store.body_reads.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn two_person_rule_the_initiator_cannot_approve() {
    let url = crate::common::serve(app(seeded())).await;
    let approve = format!("{url}/payments/7/approve");
    // The initiator, even with a second token carrying only the approver role.
    let (s, ..) = call("POST", &approve, &token("ada", Some("acme"), &["approver"])).await;
    assert_eq!(s, 403);
    // Another tenant's approver cannot see it.
    let (s, ..) = call("POST", &approve, &token("bob", Some("globex"), &["approver"])).await;
    assert_eq!(s, 404);
    // A different approver in the tenant can.
    let (s, _, body) = call("POST", &approve, &token("bob", Some("acme"), &["approver"])).await;
    assert_eq!((s, body.as_str()), (200, "approved 7"));
}

#[tokio::test]
async fn a_role_granted_in_one_tenant_grants_nothing_in_another() {
    let mapping = ClaimMapping::default()
        .tenant_from("tenant")
        .unwrap()
        .tenant_scoped_roles(true);
    let url = crate::common::serve(app_with(seeded(), mapping)).await;
    let doc = format!("{url}/docs/1"); // Ada's, in acme
    // Carl is an auditor in acme only: in acme he reads any doc.
    let t = token("carl", Some("acme"), &["acme/auditor", "globex/member"]);
    assert_eq!(call("GET", &doc, &t).await.0, 200);
    // The same assignments, acting in globex: only `member` applies there, and the doc is
    // acme's anyway.
    let t = token("carl", Some("globex"), &["acme/auditor", "globex/member"]);
    assert_eq!(call("GET", &doc, &t).await.0, 404);
    // In acme with only a globex role: no permission at all (the guard's 403).
    let t = token("carl", Some("acme"), &["globex/auditor"]);
    assert_eq!(call("GET", &doc, &t).await.0, 403);
    // An unqualified role applies in every tenant.
    let t = token("carl", Some("acme"), &["auditor"]);
    assert_eq!(call("GET", &doc, &t).await.0, 200);
}

#[tokio::test]
async fn a_store_that_is_down_is_a_503_never_a_pass() {
    let store = seeded();
    store.down.store(true, Ordering::SeqCst);
    let url = crate::common::serve(app(store)).await;
    let r = http()
        .get(format!("{url}/docs/1"))
        .bearer_auth(token("ada", Some("acme"), &["member"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!r.text().await.unwrap().contains("connection refused"));
}

// ---- the decision against a naive reference ---------------------------------------------

fn reference(
    sub: &str,
    tenant: Option<&str>,
    roles: &[&str],
    doc: &Doc,
    rule: (bool, bool), // (visible needs owner-or-read_any, allow needs owner-or-editor)
) -> Decision {
    let read_any = roles.contains(&"auditor");
    if tenant != Some(doc.tenant.as_str()) {
        return Decision::NotFound;
    }
    let owner = doc.owner == sub;
    if rule.0 && !(owner || read_any) {
        return Decision::NotFound;
    }
    if rule.1 && !(owner || doc.editors.iter().any(|e| e == sub)) {
        return Decision::Forbidden;
    }
    Decision::Allow
}

fn routes(store: Store, principal: CorePrincipal) -> Router {
    Router::new()
        .route("/docs/{id}", get(read_doc).post(edit_doc))
        .route("/exists/docs/{id}", get(doc_exists))
        .layer(authz_axum::testing::PrincipalLayer::new(principal))
        .with_state(store)
}

/// The decision as served: a request through the router (no socket), its status read back.
async fn served(app: Router, method: &str, path: &str) -> Decision {
    use tower::ServiceExt;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::from("{}"))
        .unwrap();
    match app.oneshot(req).await.unwrap().status().as_u16() {
        200 => Decision::Allow,
        404 => Decision::NotFound,
        403 => Decision::Forbidden,
        other => panic!("unexpected status {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn the_declared_rule_matches_a_naive_reference(
        sub in prop::sample::select(vec!["ada", "bob", "eve"]),
        tenant in prop::option::of(prop::sample::select(vec!["acme", "globex"])),
        roles in prop::sample::subsequence(vec!["member", "auditor", "approver"], 0..=3),
        owner in prop::sample::select(vec!["ada", "bob", "eve"]),
        doc_tenant in prop::sample::select(vec!["acme", "globex"]),
        editors in prop::sample::subsequence(vec!["ada", "bob", "eve"], 0..=3),
    ) {
        let policy = policy();
        let principal = match tenant {
            Some(t) => CorePrincipal::for_testing_in_tenant(sub, t, roles.clone(), &policy),
            None => CorePrincipal::for_testing(sub, roles.clone(), &policy),
        };
        let doc = Doc {
            id: 1,
            owner: owner.into(),
            tenant: doc_tenant.into(),
            editors: editors.iter().map(|e| e.to_string()).collect(),
        };
        let store = Store::default();
        store.docs.lock().unwrap().insert(1, doc.clone());
        let app = routes(store, principal);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let can = |p: &str| policy.resolve(roles.iter().copied()).contains_name(p);
        // The guards run first: without the route's permission, 403 whatever the resource.
        let guarded = |needs: &str, d: Decision| if can(needs) { d } else { Decision::Forbidden };
        let got = rt.block_on(served(app.clone(), "POST", "/docs/1"));
        prop_assert_eq!(got, guarded("doc:edit", reference(sub, tenant, &roles, &doc, (true, true))));
        let got = rt.block_on(served(app.clone(), "GET", "/docs/1"));
        prop_assert_eq!(got, guarded("doc:read", reference(sub, tenant, &roles, &doc, (true, false))));
        let got = rt.block_on(served(app, "GET", "/exists/docs/1"));
        prop_assert_eq!(got, reference(sub, tenant, &roles, &doc, (false, false)));
    }
}
