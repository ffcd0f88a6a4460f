//! The model registry's resources in a real database (in-memory SQLite, a SQLite file, and
//! PostgreSQL when `AUTHZ_TEST_DATABASE_URL` names one), over real HTTP: every resource route
//! for the owner, another user, another tenant, an admin and a missing id; 404s for "another
//! tenant" byte-identical to "missing"; the two-person rule; API keys carry their tenant.

use std::net::SocketAddr;

use model_registry::{Config, Server, start};
use serde_json::Value;

use crate::common::{demo_token as token, http, init_tracing, remember_secret};

async fn registry(database_url: Option<String>) -> Server {
    init_tracing();
    let mut config = Config::with_bind("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    config.database_url = database_url;
    start(config).await.expect("model-registry starts")
}

/// Status, the headers a client could compare (not `date`), body.
type Seen = (u16, String, String);

async fn call(server: &Server, method: &str, path: &str, token: &str) -> Seen {
    let mut req = http()
        .request(method.parse().unwrap(), format!("{}{path}", server.url()))
        .bearer_auth(token);
    if method == "POST" {
        req = req.header("content-type", "application/json").body("{}");
    }
    let r = req.send().await.unwrap();
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

async fn created_id(server: &Server, path: &str, token: &str) -> String {
    let (status, _, body) = call(server, "POST", path, token).await;
    assert_eq!(status, 201, "POST {path}: {body}");
    serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn every_resource_route(database_url: Option<String>) {
    let server = registry(database_url).await;
    let viewer = token(&server, "viewer-client", None).await;
    let analyst = token(&server, "analyst-client", None).await;
    let admin = token(&server, "admin-client", None).await;
    let clerk = token(&server, "clerk-client", None).await;
    let approver = token(&server, "approver-client", None).await;
    let acme_analyst = token(&server, "acme-analyst-client", None).await;
    let acme_admin = token(&server, "acme-admin-client", None).await;
    // An approver of tenant acme: an API key made by the operator (acme's admin cannot: a key
    // carries only roles its maker holds).
    let issued = server
        .authenticator
        .api_keys()
        .unwrap()
        .create_in_tenant(
            "acme-approver",
            Some("acme"),
            vec!["payments_approver".into()],
            None,
            None,
        )
        .await
        .unwrap();
    let acme_approver = issued.key.expose_raw().to_string();
    remember_secret(&acme_approver);
    let mint = |token: &String, body: Value| {
        http()
            .post(format!("{}/api-keys", server.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // Least privilege and input checks at key creation.
    let refused = mint(&acme_admin, serde_json::json!({ "roles": ["payments_approver"] }))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "a key with a role its maker lacks");
    for bad in [
        serde_json::json!({ "expires_in": u64::MAX }),
        serde_json::json!({ "owner": " " }),
    ] {
        let r = mint(&admin, bad.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let (status, _, _) = {
        let r = http()
            .post(format!("{}/payments", server.url()))
            .bearer_auth(&clerk)
            .json(&serde_json::json!({ "amount": u64::MAX }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), (), ())
    };
    assert_eq!(status, 400, "an amount the database cannot hold");

    let dataset = created_id(&server, "/datasets", &admin).await;
    let model = created_id(&server, "/models", &analyst).await;
    let report = created_id(&server, "/reports", &analyst).await;
    let payment = created_id(&server, "/payments", &clerk).await;
    let acme_model = created_id(&server, "/models", &acme_analyst).await;
    let missing = "00000000-0000-4000-8000-000000000000";

    // (method, path with {id}, id, [owner, another user, another tenant, admin], missing id as)
    type Row<'a> = (&'a str, &'a str, &'a str, [(&'a String, u16); 4], &'a String);
    let routes: Vec<Row<'_>> = vec![
        (
            "GET",
            "/datasets/{id}",
            &dataset,
            [(&admin, 200), (&viewer, 200), (&acme_admin, 404), (&admin, 200)],
            &viewer,
        ),
        (
            "GET",
            "/models/{id}",
            &model,
            [
                (&analyst, 200),
                (&viewer, 200),
                (&acme_analyst, 404),
                (&admin, 200),
            ],
            &viewer,
        ),
        (
            "POST",
            "/models/{id}/run",
            &model,
            [
                (&analyst, 202),
                (&viewer, 403),
                (&acme_analyst, 404),
                (&admin, 202),
            ],
            &analyst,
        ),
        (
            "GET",
            "/reports/{id}",
            &report,
            [(&analyst, 200), (&viewer, 404), (&acme_admin, 404), (&admin, 200)],
            &admin,
        ),
        (
            "GET",
            "/payments/{id}",
            &payment,
            [
                (&clerk, 200),
                (&approver, 200),
                (&acme_approver, 404),
                (&admin, 403),
            ],
            &approver,
        ),
        (
            "GET",
            "/models/{id}",
            &acme_model,
            [
                (&acme_analyst, 200),
                (&acme_admin, 200),
                (&analyst, 404),
                (&admin, 404),
            ],
            &acme_analyst,
        ),
    ];
    for (method, template, id, cases, missing_as) in routes {
        let path = template.replace("{id}", id);
        let absent = call(&server, method, &template.replace("{id}", missing), missing_as).await;
        assert_eq!(absent.0, 404, "{method} {template} with a missing id");
        for (who, (token, want)) in ["owner", "another user", "another tenant", "admin"]
            .iter()
            .zip(cases)
        {
            let got = call(&server, method, &path, token).await;
            assert_eq!(got.0, want, "{method} {template} as {who}: {}", got.2);
            if want == 404 {
                assert_eq!(
                    got, absent,
                    "{method} {template} as {who} differs from a missing id"
                );
            }
        }
    }
    // The seeded demo models are per tenant too.
    assert_eq!(call(&server, "POST", "/models/m1/run", &analyst).await.0, 202);
    assert_eq!(
        call(&server, "POST", "/models/m1/run", &acme_analyst).await.0,
        404
    );
    assert_eq!(
        call(&server, "POST", "/models/acme-m1/run", &acme_analyst)
            .await
            .0,
        202
    );
    // Lists hold only the caller's tenant.
    let (_, _, body) = call(&server, "GET", "/models", &acme_analyst).await;
    let ids: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&acme_model) && ids.contains(&"acme-m1".to_string()));
    assert!(
        !ids.contains(&model) && !ids.contains(&"m1".to_string()),
        "{ids:?}"
    );

    // The two-person rule: the acme approver cannot even see the payment; the initiator,
    // with a token carrying only the approver role, may not approve; another approver may,
    // once.
    let approve = format!("/payments/{payment}/approve");
    assert_eq!(call(&server, "POST", &approve, &acme_approver).await.0, 404);
    let alice_clerk = token(&server, "alice", Some("payments_clerk")).await;
    let alice_approver = token(&server, "alice", Some("payments_approver")).await;
    let alices = created_id(&server, "/payments", &alice_clerk).await;
    let alices_approve = format!("/payments/{alices}/approve");
    let own = call(&server, "POST", &alices_approve, &alice_approver).await;
    assert_eq!(own.0, 403);
    assert!(own.2.contains("separation of duties"), "{}", own.2);
    assert_eq!(call(&server, "POST", &alices_approve, &approver).await.0, 200);
    assert_eq!(call(&server, "POST", &alices_approve, &approver).await.0, 409);

    // API keys are managed per tenant: acme's admin cannot see or revoke the default tenant's.
    let r = http()
        .post(format!("{}/api-keys", server.url()))
        .bearer_auth(&admin)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let default_key: Value = r.json().await.unwrap();
    remember_secret(default_key["key"].as_str().unwrap());
    let revoke = format!("/api-keys/{}/revoke", default_key["id"].as_str().unwrap());
    assert_eq!(call(&server, "POST", &revoke, &acme_admin).await.0, 404);
    let (_, _, list) = call(&server, "GET", "/api-keys", &acme_admin).await;
    assert!(!list.contains(default_key["id"].as_str().unwrap()));
    assert_eq!(call(&server, "POST", &revoke, &admin).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn resources_in_memory_sqlite() {
    every_resource_route(None).await;
}

#[tokio::test]
async fn resources_in_a_sqlite_file_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("authz-registry-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("registry.db").display());
    every_resource_route(Some(url.clone())).await;
    // A report written before a restart is still there, still the owner's only.
    let server = registry(Some(url.clone())).await;
    let analyst = token(&server, "analyst-client", None).await;
    let id = created_id(&server, "/reports", &analyst).await;
    server.stop().await;
    let server = registry(Some(url)).await;
    let analyst = token(&server, "analyst-client", None).await;
    let viewer = token(&server, "viewer-client", None).await;
    assert_eq!(
        call(&server, "GET", &format!("/reports/{id}"), &analyst).await.0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("/reports/{id}"), &viewer).await.0,
        404
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn resources_in_postgres() {
    let Ok(url) = std::env::var("AUTHZ_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: PostgreSQL registry tests (set AUTHZ_TEST_DATABASE_URL=postgres://…)");
        return;
    };
    every_resource_route(Some(url)).await;
}
