//! Integration tests of the permission model through the public API, with property tests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use authz_core::policy::ProblemKind;
use authz_core::{PermissionCatalog, Policy, Principal, Redundancy, RoleSpec};
use proptest::prelude::*;

fn catalog(names: &[&str]) -> Arc<PermissionCatalog> {
    Arc::new(PermissionCatalog::new(names).expect("valid catalog"))
}

fn seed() -> Arc<PermissionCatalog> {
    catalog(&[
        "data:read",
        "data:write",
        "model:run",
        "model:deploy",
        "report:create",
        "payment:initiate",
        "payment:approve",
    ])
}

#[test]
fn multiple_inheritance_and_wildcards() {
    let policy = Policy::builder(seed())
        .role(RoleSpec::new("viewer").grant("data:read"))
        .role(RoleSpec::new("runner").grant("model:run"))
        .role(
            RoleSpec::new("analyst")
                .inherits("viewer")
                .inherits("runner")
                .grant("report:create"),
        )
        .role(
            RoleSpec::new("admin")
                .inherits("analyst")
                .grants(["data:*", "model:*"]),
        )
        .build()
        .unwrap();
    let admin = policy.resolve(["admin"]);
    for p in [
        "data:read",
        "data:write",
        "model:run",
        "model:deploy",
        "report:create",
    ] {
        assert!(admin.contains_name(p), "{p}");
    }
    assert!(!admin.contains_name("payment:initiate"));
    let analyst = policy.resolve(["analyst"]);
    assert!(analyst.contains_name("model:run") && !analyst.contains_name("model:deploy"));
    let names: Vec<&str> = analyst.effective_roles.iter().map(|r| &**r).collect();
    assert_eq!(names, ["analyst", "viewer", "runner"]);
    // Unknown roles grant nothing.
    assert!(policy.resolve(["root"]).permissions.is_empty());
}

#[test]
fn cycles_are_named() {
    let err = Policy::builder(seed())
        .role(RoleSpec::new("a").inherits("b"))
        .role(RoleSpec::new("b").inherits("c"))
        .role(RoleSpec::new("c").inherits("a"))
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("inheritance cycle: a → b → c → a"), "{text}");
}

#[test]
fn separation_of_duties_names_role_pair_and_paths() {
    let err = Policy::builder(seed())
        .role(RoleSpec::new("clerk").grant("payment:initiate"))
        .role(RoleSpec::new("approver").grant("payment:approve"))
        .role(RoleSpec::new("supervisor").inherits("clerk").inherits("approver"))
        .separation_of_duties("payment:initiate", "payment:approve")
        .build()
        .unwrap_err();
    let problem = &err.problems()[0];
    assert_eq!(problem.role.as_deref(), Some("supervisor"));
    match &problem.kind {
        ProblemKind::SeparationOfDuties { first, second } => {
            assert_eq!(
                first,
                &(
                    "payment:initiate".to_string(),
                    vec!["supervisor".into(), "clerk".into()]
                )
            );
            assert_eq!(
                second,
                &(
                    "payment:approve".to_string(),
                    vec!["supervisor".into(), "approver".into()]
                )
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("via supervisor → clerk"), "{err}");
}

#[test]
fn principal_combining_conflicting_roles_gets_neither_side() {
    let policy = Policy::builder(seed())
        .role(RoleSpec::new("clerk").grant("payment:initiate"))
        .role(RoleSpec::new("approver").grant("payment:approve"))
        .role(RoleSpec::new("viewer").grant("data:read"))
        .separation_of_duties("payment:initiate", "payment:approve")
        .build()
        .unwrap();
    let r = policy.resolve(["clerk", "approver", "viewer"]);
    assert!(!r.contains_name("payment:initiate") && !r.contains_name("payment:approve"));
    assert!(r.contains_name("data:read"));
    assert_eq!(
        r.withheld,
        vec![("payment:initiate".to_string(), "payment:approve".to_string())]
    );
}

#[test]
fn toml_errors_name_file_line_role_and_permission() {
    let text = "[roles.viewer]\ngrants = [\"data:read\"]\n\n[roles.analyst]\ninherits = [\"viewr\"]\ngrants = [\n  \"model:runn\",\n  \"data:read\",\n]\n";
    let err = Policy::from_toml_str(text, seed(), Some("policy.toml".into())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("policy.toml:7: role `analyst`: grants `model:runn`, which the permission catalog does not declare (did you mean `model:run`?)"), "{msg}");
    assert!(msg.contains("policy.toml:5: role `analyst`: inherits `viewr`, which is not a role of this policy (did you mean `viewer`?)"), "{msg}");
    assert_eq!(err.problems().len(), 2);

    let dup = Policy::from_toml_str(
        "[roles.a]\ngrants = []\n[roles.a]\ngrants = []\n",
        seed(),
        Some("p.toml".into()),
    )
    .unwrap_err();
    assert!(dup.to_string().contains("p.toml:3"), "{dup}");

    let unknown_field =
        Policy::from_toml_str("[roles.a]\ngrant = [\"data:read\"]\n", seed(), None).unwrap_err();
    assert!(unknown_field.to_string().contains("line 2"), "{unknown_field}");

    let twice = Policy::from_toml_str(
        "[roles.a]\ngrants = [\"data:read\", \"data:read\"]\n",
        seed(),
        None,
    )
    .unwrap_err();
    assert!(twice.to_string().contains("grants `data:read` twice"), "{twice}");

    let bad_wild = Policy::from_toml_str("[roles.a]\ngrants = [\"nothing:*\"]\n", seed(), None).unwrap_err();
    assert!(
        bad_wild
            .to_string()
            .contains("no permission of resource `nothing`"),
        "{bad_wild}"
    );
}

#[test]
fn policy_file_is_read_and_missing_file_is_named() {
    let dir = std::env::temp_dir().join(format!("authz-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[roles.viewer]\ngrants = [\"data:read\"]\n").unwrap();
    let policy = Policy::from_toml_file(&path, seed()).unwrap();
    assert_eq!(policy.source(), Some(path.as_path()));
    let missing = Policy::from_toml_file(dir.join("nope.toml"), seed()).unwrap_err();
    assert!(missing.to_string().contains("nope.toml"), "{missing}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explain_and_redundancy() {
    let policy = Policy::builder(seed())
        .role(RoleSpec::new("viewer").grant("data:read"))
        .role(RoleSpec::new("reader").grant("data:read"))
        .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
        .role(RoleSpec::new("power").grants(["data:read", "model:run", "model:deploy"]))
        .build()
        .unwrap();
    let p = Principal::for_testing("u", ["analyst", "reader"], &policy);
    let e = policy.explain(p.roles(), "data:read");
    assert!(e.granted);
    assert_eq!(
        e.via,
        vec![
            vec!["analyst".to_string(), "viewer".into()],
            vec!["reader".into()]
        ]
    );
    assert!(!policy.explain(p.roles(), "model:deploy").granted);
    let findings = policy.redundant_roles();
    assert!(findings.contains(&Redundancy::Duplicate {
        role: "reader".into(),
        of: "viewer".into()
    }));
    assert!(findings.contains(&Redundancy::Superset {
        role: "power".into(),
        of: "analyst".into(),
        inherits: false
    }));
    assert!(findings.contains(&Redundancy::Superset {
        role: "analyst".into(),
        of: "viewer".into(),
        inherits: true
    }));
}

#[test]
fn constraints_must_name_declared_permissions() {
    let err = Policy::builder(seed())
        .separation_of_duties("payment:initate", "payment:approve")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("did you mean `payment:initiate`"),
        "{err}"
    );
}

// ---- property tests --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Model {
    permissions: Vec<String>,
    /// role i: (parents, all < i so the graph is acyclic, grants as permission indices)
    roles: Vec<(Vec<usize>, Vec<usize>)>,
}

fn model() -> impl Strategy<Value = Model> {
    (1usize..150, 1usize..25).prop_flat_map(|(np, nr)| {
        let roles = (0..nr)
            .map(|i| {
                let parents = if i == 0 {
                    Just(vec![]).boxed()
                } else {
                    prop::collection::vec(0..i, 0..3).boxed()
                };
                (parents, prop::collection::vec(0..np, 0..6))
            })
            .collect::<Vec<_>>();
        roles.prop_map(move |roles| Model {
            permissions: (0..np).map(|i| format!("res{}:act{}", i % 7, i)).collect(),
            roles: roles
                .into_iter()
                .map(|(mut p, mut g)| {
                    p.sort_unstable();
                    p.dedup();
                    g.sort_unstable();
                    g.dedup();
                    (p, g)
                })
                .collect(),
        })
    })
}

fn build(m: &Model) -> Policy {
    let catalog = Arc::new(PermissionCatalog::new(&m.permissions).unwrap());
    let mut b = Policy::builder(catalog);
    for (i, (parents, grants)) in m.roles.iter().enumerate() {
        let mut r = RoleSpec::new(format!("role{i}"));
        for p in parents {
            r = r.inherits(format!("role{p}"));
        }
        for g in grants {
            r = r.grant(m.permissions[*g].clone());
        }
        b = b.role(r);
    }
    b.build().unwrap()
}

/// The naive closure: permissions of a role = its grants ∪ its parents' closures.
fn naive(m: &Model) -> HashMap<String, HashSet<String>> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (i, (parents, grants)) in m.roles.iter().enumerate() {
        let mut set: HashSet<String> = grants.iter().map(|g| m.permissions[*g].clone()).collect();
        for p in parents {
            set.extend(out[&format!("role{p}")].iter().cloned());
        }
        out.insert(format!("role{i}"), set);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bitset_agrees_with_naive_strings(m in model(), held in prop::collection::vec(0usize..25, 0..4)) {
        let policy = build(&m);
        let table = naive(&m);
        let roles: Vec<String> = held.iter().filter(|&&r| r < m.roles.len()).map(|r| format!("role{r}")).collect();
        let principal = Principal::for_testing("u", roles.clone(), &policy);
        for (i, name) in m.permissions.iter().enumerate() {
            let expected = roles.iter().any(|r| table[r].contains(name));
            let id = policy.catalog().id(name).unwrap();
            prop_assert_eq!(principal.can(id), expected, "permission {} (#{})", name, i);
        }
    }

    #[test]
    fn toml_round_trips(m in model()) {
        let policy = build(&m);
        let again = Policy::from_toml_str(&policy.to_toml(), policy.catalog().clone(), None).unwrap();
        for i in 0..m.roles.len() {
            let name = format!("role{i}");
            prop_assert_eq!(policy.role_permissions(&name), again.role_permissions(&name));
        }
        prop_assert_eq!(again.to_toml(), policy.to_toml());
    }

    #[test]
    fn every_sod_violation_is_caught(m in model(), a in 0usize..150, b in 0usize..150) {
        prop_assume!(a < m.permissions.len() && b < m.permissions.len() && a != b);
        let (pa, pb) = (m.permissions[a].clone(), m.permissions[b].clone());
        let table = naive(&m);
        let violators: HashSet<String> =
            table.iter().filter(|(_, s)| s.contains(&pa) && s.contains(&pb)).map(|(r, _)| r.clone()).collect();
        let catalog = Arc::new(PermissionCatalog::new(&m.permissions).unwrap());
        let toml = build(&m).to_toml();
        let toml = format!("{toml}[[separation_of_duties]]\npermissions = [\"{pa}\", \"{pb}\"]\n");
        match Policy::from_toml_str(&toml, catalog, None) {
            Ok(_) => prop_assert!(violators.is_empty(), "missed {:?}", violators),
            Err(e) => {
                let named: HashSet<String> = e.problems().iter().filter_map(|p| p.role.clone()).collect();
                prop_assert_eq!(named, violators);
            }
        }
    }
}

// ---- separation of duties over every source of a permission -----------------------------------

mod sod_sources {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use authz_core::apikey::ApiKeyFormat;
    use authz_core::auth::{ApiKeys, Authenticator, Issuer, StaticKeys};
    use authz_core::jwt::{Algorithm, ClaimMapping, JwtVerifier, KeySet, VerificationKey};
    use authz_core::keystore::MemoryKeyStore;
    use authz_core::{Policy, RoleSpec};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    /// Everything here is in memory: the futures never wait.
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("an in-memory future waited"),
        }
    }

    const SECRET: [u8; 32] = [9; 32];
    const SIDES: [&str; 2] = ["payment:initiate", "payment:approve"];

    fn sign(claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &SECRET);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    fn setup() -> (Arc<Policy>, Authenticator, Arc<ApiKeys>) {
        let policy = Arc::new(
            Policy::builder(super::seed())
                .role(RoleSpec::new("clerk").grant("payment:initiate"))
                .role(RoleSpec::new("approver").grant("payment:approve"))
                .role(RoleSpec::new("runner").grant("model:run"))
                .separation_of_duties("payment:initiate", "payment:approve")
                .build()
                .unwrap(),
        );
        let verifier = JwtVerifier::builder("https://sod.test", "api", [Algorithm::HS256])
            .build()
            .unwrap();
        let keys = KeySet::new(vec![VerificationKey::hmac(Algorithm::HS256, &SECRET).unwrap()]).unwrap();
        let mapping = ClaimMapping::default()
            .permissions_from("permissions")
            .unwrap()
            .scope_permissions(true);
        let api_keys = ApiKeys::new(
            ApiKeyFormat::new("sod").unwrap(),
            Arc::new(MemoryKeyStore::new()),
            policy.clone(),
        );
        let auth = Authenticator::builder(policy.clone())
            .issuer(Issuer::new(verifier, StaticKeys::new(keys)).with_mapping(mapping))
            .api_keys(api_keys.clone())
            .build()
            .unwrap();
        (policy, auth, api_keys)
    }

    /// Which sources grant which side: (role, permission claim, scope) × (initiate, approve).
    fn source() -> impl Strategy<Value = [[bool; 2]; 3]> {
        any::<[[bool; 2]; 3]>()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Reference: a side is held iff some source grants it, unless both are, then neither.
        #[test]
        fn the_final_set_never_holds_both_sides(grants in source(), runner in any::<bool>(), via_key in any::<bool>()) {
            let (policy, auth, api_keys) = setup();
            let mut roles: Vec<&str> = Vec::new();
            let mut perms: Vec<&str> = Vec::new();
            let mut scopes: Vec<&str> = Vec::new();
            for side in 0..2 {
                if grants[0][side] { roles.push(["clerk", "approver"][side]); }
                if grants[1][side] { perms.push(SIDES[side]); }
                if grants[2][side] { scopes.push(SIDES[side]); }
            }
            if runner { roles.push("runner"); }
            let principal = if via_key {
                // API keys carry roles only.
                let issued = ready(api_keys.create("owner", roles.iter().map(|r| r.to_string()).collect(), None, None)).unwrap();
                ready(auth.authenticate(issued.key.expose_raw())).unwrap()
            } else {
                let claims = serde_json::json!({
                    "iss": "https://sod.test", "aud": "api", "sub": "s", "exp": 4_102_444_800u64,
                    "roles": roles, "permissions": perms, "scope": scopes.join(" "),
                });
                ready(auth.authenticate(&sign(&claims))).unwrap()
            };
            let granted = |side: usize| {
                grants[0][side] || (!via_key && (grants[1][side] || grants[2][side]))
            };
            let both = granted(0) && granted(1);
            for (side, name) in SIDES.iter().enumerate() {
                let id = policy.catalog().id(name).unwrap();
                prop_assert_eq!(principal.can(id), granted(side) && !both, "side {}", name);
            }
            let run = policy.catalog().id("model:run").unwrap();
            prop_assert_eq!(principal.can(run), runner, "unrelated permissions are untouched");
        }
    }
}
