//! Observability: one `authz` span per request with outcome, reason, subject and decision (no
//! credentials), and metrics through the `metrics` facade served by the registry at
//! `GET /metrics` (Prometheus text, admin only).

use crate::common::{captured_logs, demo_token, http, init_tracing};

#[tokio::test]
async fn decisions_are_counted_and_traced_without_credentials() {
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let url = server.url();
    let viewer = demo_token(&server, "viewer-client", None).await;
    let admin = demo_token(&server, "admin-client", None).await;
    let garbage = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    // allowed, forbidden, refused, anonymous
    assert_eq!(
        http()
            .get(format!("{url}/datasets"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(format!("{url}/datasets"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = http()
        .post(format!("{url}/datasets"))
        .bearer_auth(&viewer)
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        http()
            .get(format!("{url}/datasets"))
            .bearer_auth(garbage)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http()
            .get(format!("{url}/datasets"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Metrics: admin only.
    assert_eq!(
        http()
            .get(format!("{url}/metrics"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let resp = http()
        .get(format!("{url}/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = resp.text().await.unwrap();
    for needle in [
        r#"authz_authentications_total{outcome="authenticated",reason=""}"#,
        r#"authz_authentications_total{outcome="anonymous",reason=""}"#,
        r#"authz_authentications_total{outcome="refused",reason="invalid_signature"}"#,
        r#"authz_decisions_total{decision="allowed"}"#,
        r#"authz_decisions_total{decision="forbidden"}"#,
        "authz_authentication_duration_seconds",
        "authz_token_cache_hits",
        "authz_jwks_fetches_total",
    ] {
        assert!(body.contains(needle), "{needle} missing from\n{body}");
    }
    for secret in [&viewer, &admin, &garbage.to_string()] {
        assert!(!body.contains(secret.as_str()), "a credential in /metrics");
    }

    // The span: the guard's denial is logged inside it, with the outcome and subject.
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("request denied") && l.contains("viewer-client"))
        .expect("the denial is logged");
    assert!(
        line.contains("authz{")
            && (line.contains("outcome=\"authenticated\"") || line.contains("outcome=authenticated")),
        "{line}"
    );
    assert!(line.contains("path=/datasets"), "{line}");
    assert!(
        !logs.contains(&viewer) && !logs.contains(garbage),
        "a credential in the logs"
    );
    server.stop().await;
}
