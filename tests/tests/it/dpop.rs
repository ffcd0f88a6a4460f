//! DPoP (RFC 9449) with proofs minted by an implementation no one here wrote (panva's `dpop`
//! from npm; malformed variants signed with `jose`): the token service binds tokens to the
//! proof's key, the deploy route requires a proof, and every wrong field is refused.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{http, init_tracing, remember_secret};

fn minter_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHZ_INTEROP_DIR").map(|d| PathBuf::from(d).join("node"));
    match dir {
        Some(d) if d.join("node_modules/dpop").exists() && d.join("dpop_mint.mjs").exists() => Some(d),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the DPoP interop test (.ci/interop.sh)"
            );
            eprintln!("SKIPPED: DPoP interop (run `source .ci/interop.sh` first; needs node)");
            None
        }
    }
}

/// panva's `dpop` behind a line protocol.
struct Minter {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Minter {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new("node")
            .arg(dir.join("dpop_mint.mjs"))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout }
    }

    fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(v.get("error").is_none(), "{v}");
        v
    }

    fn key(&mut self, alg: &str) -> (u64, String) {
        let v = self.call(json!({"op": "key", "alg": alg}));
        (v["key"].as_u64().unwrap(), v["jkt"].as_str().unwrap().to_string())
    }

    fn proof(&mut self, key: u64, htm: &str, htu: &str, token: Option<&str>) -> String {
        let v = self.call(json!({"op": "proof", "key": key, "htm": htm, "htu": htu, "token": token}));
        v["proof"].as_str().unwrap().to_string()
    }

    fn forge(&mut self, key: u64, kind: &str, htm: &str, htu: &str, token: Option<&str>) -> String {
        let v = self
            .call(json!({"op": "forge", "key": key, "kind": kind, "htm": htm, "htu": htu, "token": token}));
        v["proof"].as_str().unwrap().to_string()
    }
}

impl Drop for Minter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap()
}

/// A DPoP-bound client-credentials token for `client`, bound to `key`.
async fn bound_token(
    server: &model_registry::Server,
    minter: &mut Minter,
    key: u64,
    client: &str,
) -> reqwest::Response {
    let c = server.client(client).unwrap();
    remember_secret(&c.secret);
    let token_url = format!("{}/token", server.url());
    let proof = minter.proof(key, "POST", &token_url, None);
    http()
        .post(&token_url)
        .basic_auth(&c.id, Some(&c.secret))
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn deploy(
    server: &model_registry::Server,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut req = http()
        .post(format!("{}/models/m1/deploy", server.url()))
        .header("authorization", format!("{scheme} {token}"))
        .json(&json!({}));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn proofs_from_panva_dpop_bind_tokens_and_guard_the_deploy_route() {
    let Some(dir) = minter_dir() else { return };
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut minter = Minter::start(&dir);
    let deploy_url = format!("{}/models/m1/deploy", server.url());
    for alg in ["ES256", "RS256", "PS256", "Ed25519"] {
        let (key, jkt) = minter.key(alg);
        let resp = bound_token(&server, &mut minter, key, "admin-client").await;
        assert_eq!(resp.status(), 200, "{alg}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP", "{alg}");
        let token = body["access_token"].as_str().unwrap().to_string();
        remember_secret(&token);
        assert_eq!(
            claims(&token)["cnf"]["jkt"],
            jkt,
            "{alg}: cnf.jkt is the proof key's thumbprint"
        );
        let proof = minter.proof(key, "POST", &deploy_url, Some(&token));
        let resp = deploy(&server, "DPoP", &token, Some(&proof)).await;
        assert_eq!(resp.status(), 202, "{alg}: a right proof deploys");
        // The same proof again: a replay.
        let resp = deploy(&server, "DPoP", &token, Some(&proof)).await;
        assert_eq!(resp.status(), 401, "{alg}: replayed proof");
        assert!(challenge(&resp).contains("DPoP") && challenge(&resp).contains("invalid_dpop_proof"));
    }

    // After DPoP, the deploy policy (embedded Rego by default) decides with the body's
    // environment and the loaded model's owner: an admin deploys to production; an analyst may
    // not deploy `m1`, which is not theirs.
    for (client, environment, expected) in [
        ("admin-client", "production", 202),
        ("analyst-client", "staging", 403),
        ("analyst-client", "production", 403),
    ] {
        let (key, _) = minter.key("ES256");
        let body: Value = bound_token(&server, &mut minter, key, client)
            .await
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        let proof = minter.proof(key, "POST", &deploy_url, Some(&token));
        let resp = http()
            .post(&deploy_url)
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .json(&json!({ "environment": environment }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "{client} to {environment}");
        if expected == 403 {
            assert!(challenge(&resp).contains("insufficient_scope"));
        }
    }

    // The analyst's own model (registered through the API): to staging yes, to production no.
    let bearer = crate::common::demo_token(&server, "analyst-client", None).await;
    let own: Value = http()
        .post(format!("{}/models", server.url()))
        .bearer_auth(&bearer)
        .json(&json!({ "name": "mine" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let own_url = format!("{}/models/{}/deploy", server.url(), own["id"].as_str().unwrap());
    for (environment, expected) in [("staging", 202), ("production", 403)] {
        let (key, _) = minter.key("ES256");
        let body: Value = bound_token(&server, &mut minter, key, "analyst-client")
            .await
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        let proof = minter.proof(key, "POST", &own_url, Some(&token));
        let resp = http()
            .post(&own_url)
            .header("authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
            .json(&json!({ "environment": environment }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected, "analyst's own model to {environment}");
    }

    let (key, _) = minter.key("ES256");
    let body: Value = bound_token(&server, &mut minter, key, "admin-client")
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_string();
    remember_secret(&token);
    let (other_key, _) = minter.key("ES256");
    let other_token: Value = bound_token(&server, &mut minter, other_key, "admin-client")
        .await
        .json()
        .await
        .unwrap();
    let other_token = other_token["access_token"].as_str().unwrap().to_string();
    // Each field wrong in turn.
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no proof", None),
        (
            "another method",
            Some(minter.proof(key, "GET", &deploy_url, Some(&token))),
        ),
        (
            "another URL",
            Some(minter.proof(
                key,
                "POST",
                &format!("{}/models/m2/deploy", server.url()),
                Some(&token),
            )),
        ),
        (
            "another token's ath",
            Some(minter.proof(key, "POST", &deploy_url, Some(&other_token))),
        ),
        ("no ath", Some(minter.proof(key, "POST", &deploy_url, None))),
        (
            "another key",
            Some(minter.proof(other_key, "POST", &deploy_url, Some(&token))),
        ),
        (
            "old iat",
            Some(minter.forge(key, "old_iat", "POST", &deploy_url, Some(&token))),
        ),
        (
            "future iat",
            Some(minter.forge(key, "future_iat", "POST", &deploy_url, Some(&token))),
        ),
        (
            "typ JWT",
            Some(minter.forge(key, "wrong_typ", "POST", &deploy_url, Some(&token))),
        ),
        (
            "private key in jwk",
            Some(minter.forge(key, "private_jwk", "POST", &deploy_url, Some(&token))),
        ),
        (
            "no jwk",
            Some(minter.forge(key, "no_jwk", "POST", &deploy_url, Some(&token))),
        ),
        (
            "no jti",
            Some(minter.forge(key, "no_jti", "POST", &deploy_url, Some(&token))),
        ),
        (
            "HS256",
            Some(minter.forge(key, "hs256", "POST", &deploy_url, Some(&token))),
        ),
        (
            "bad signature",
            Some(minter.forge(key, "bad_signature", "POST", &deploy_url, Some(&token))),
        ),
    ];
    for (what, proof) in cases {
        let resp = deploy(&server, "DPoP", &token, proof.as_deref()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        let c = challenge(&resp);
        assert!(c.starts_with("DPoP") || c.contains("| DPoP"), "{what}: {c}");
        assert!(c.contains("error=\"invalid_dpop_proof\""), "{what}: {c}");
        let body = resp.text().await.unwrap();
        assert!(!body.contains(&token), "{what}: the body echoes the token");
    }
    // The control: a jose-signed proof made the same way with nothing wrong is accepted, so
    // the cases above fail for their field, not for being hand-made.
    let control = minter.forge(key, "none", "POST", &deploy_url, Some(&token));
    assert_eq!(
        deploy(&server, "DPoP", &token, Some(&control)).await.status(),
        202
    );
    // A bound token as Bearer: refused.
    let resp = deploy(&server, "Bearer", &token, None).await;
    assert_eq!(resp.status(), 401);
    assert!(challenge(&resp).contains("invalid_token"));
    // A bound token on another route as Bearer: refused too (binding holds everywhere).
    let resp = http()
        .get(format!("{}/me", server.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A bearer (unbound) token on the DPoP-only route: 401 with a DPoP challenge.
    let bearer = crate::common::demo_token(&server, "admin-client", None).await;
    let resp = deploy(&server, "Bearer", &bearer, None).await;
    assert_eq!(resp.status(), 401);
    assert!(challenge(&resp).contains("DPoP"), "{}", challenge(&resp));
    // The DPoP scheme with an unbound token: refused.
    let proof = minter.proof(key, "POST", &deploy_url, Some(&bearer));
    assert_eq!(deploy(&server, "DPoP", &bearer, Some(&proof)).await.status(), 401);
    // An unbound token still works where DPoP is not required.
    let resp = http()
        .get(format!("{}/me", server.url()))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A bound token on another route with its proof.
    let me = format!("{}/me", server.url());
    let proof = minter.proof(key, "GET", &me, Some(&token));
    let resp = http()
        .get(&me)
        .header("authorization", format!("DPoP {token}"))
        .header("DPoP", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // At the token endpoint: a bad proof is invalid_dpop_proof (400).
    let c = server.client("admin-client").unwrap();
    let token_url = format!("{}/token", server.url());
    let resp = http()
        .post(&token_url)
        .basic_auth(&c.id, Some(&c.secret))
        .header(
            "DPoP",
            minter.proof(key, "POST", &format!("{}/other", server.url()), None),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_dpop_proof");
    server.stop().await;
}

/// A public client's refresh token is bound to its DPoP key (RFC 9449 §5): refreshing needs a
/// proof by that key.
#[tokio::test]
async fn public_clients_get_dpop_bound_refresh_tokens() {
    let Some(dir) = minter_dir() else { return };
    init_tracing();
    let server = model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut minter = Minter::start(&dir);
    let (key, jkt) = minter.key("ES256");
    let (other, _) = minter.key("ES256");
    // Authorization code + PKCE through the login page.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let code = crate::token_service::login_for_code(&server, "spa", challenge).await;
    let token_url = format!("{}/token", server.url());
    let redirect = format!("{}/app/spa/", server.url());
    let exchange = |proof: Option<String>, form: Vec<(&'static str, String)>| {
        let url = token_url.clone();
        async move {
            let mut req = http().post(&url).form(&form);
            if let Some(p) = proof {
                req = req.header("DPoP", p);
            }
            req.send().await.unwrap()
        }
    };
    let resp = exchange(
        Some(minter.proof(key, "POST", &token_url, None)),
        vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", "spa".into()),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.into()),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt);
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    remember_secret(&refresh);
    let form = |rt: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", "spa".into()),
            ("refresh_token", rt.to_string()),
        ]
    };
    // Without a proof, or with another key's: refused (and the stolen token is spent).
    let resp = exchange(
        Some(minter.proof(other, "POST", &token_url, None)),
        form(&refresh),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_dpop_proof");

    // A second grant, refreshed with the right key: works and stays bound.
    let code = crate::token_service::login_for_code(&server, "spa", challenge).await;
    let body: Value = exchange(
        Some(minter.proof(key, "POST", &token_url, None)),
        vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", "spa".into()),
            ("code", code),
            ("redirect_uri", format!("{}/app/spa/", server.url())),
            ("code_verifier", verifier.into()),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let resp = exchange(None, form(&refresh)).await;
    assert_eq!(resp.status(), 400, "no proof");
    let body: Value = exchange(
        Some(minter.proof(key, "POST", &token_url, None)),
        vec![
            ("grant_type", "authorization_code".into()),
            ("client_id", "spa".into()),
            (
                "code",
                crate::token_service::login_for_code(&server, "spa", challenge).await,
            ),
            ("redirect_uri", format!("{}/app/spa/", server.url())),
            ("code_verifier", verifier.into()),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let resp = exchange(Some(minter.proof(key, "POST", &token_url, None)), form(&refresh)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], jkt);
    server.stop().await;
}
