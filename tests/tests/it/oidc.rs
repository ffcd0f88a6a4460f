//! A real OpenID Connect provider (panva/oidc-provider, installed by `.ci/interop.sh`) on
//! loopback, and the model registry configured from its discovery document alone: its tokens
//! are accepted with the right roles, tokens for another audience are refused, and keys rotated
//! at the provider are picked up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use model_registry::{Config, start};
use serde_json::Value;

use crate::common::{http, init_tracing, remember_secret};

pub(crate) const AUDIENCE: &str = "urn:authz:model-registry";

/// The provider as a child process (`tests/interop/oidc_idp.mjs`), killed on drop. Shared with
/// `token_source.rs`.
pub(crate) struct Idp {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Idp {
    /// Not started yet: on a free loopback port, the script in `dir` (see [`provider_dir`]).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            port: free_port(),
            child: None,
        }
    }

    /// A private ES256 JWK named `kid`, made by the provider's own `jose`.
    pub(crate) fn keygen(&self, kid: &str) -> Value {
        let out = Command::new("node")
            .arg(self.dir.join("oidc_idp.mjs"))
            .args(["keygen", kid])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// (Re)starts the provider signing with the first of `keys`; returns when it answers.
    pub(crate) async fn start(&mut self, keys: &[&Value]) {
        self.stop();
        let file = self.dir.join(format!("keys-{}.json", self.port));
        std::fs::write(&file, serde_json::json!({ "keys": keys }).to_string()).unwrap();
        let child = Command::new("node")
            .arg(self.dir.join("oidc_idp.mjs"))
            .arg(self.port.to_string())
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..100 {
            if http()
                .get(self.discovery_url())
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider did not start on port {}", self.port);
    }

    /// Stops the provider (a later request to it is refused).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// The client secret `oidc_idp.mjs` gives `client`.
    pub(crate) fn secret(client: &str) -> String {
        format!("{client}-secret-0123456789abcdef0123456789")
    }

    async fn token(&self, client: &str, resource: Option<&str>) -> reqwest::Response {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let secret = Self::secret(client);
        http()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(client, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn access_token(&self, client: &str) -> String {
        let r = self.token(client, None).await;
        assert_eq!(r.status(), 200);
        let t = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        remember_secret(&t);
        t
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `$AUTHZ_INTEROP_DIR/node` when it has oidc-provider; else `None` and a SKIPPED line (a
/// failure on CI).
pub(crate) fn provider_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHZ_INTEROP_DIR").map(|d| Path::new(&d).join("node"));
    match dir {
        Some(d) if d.join("node_modules/oidc-provider").exists() => Some(d),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the identity-provider test (.ci/interop.sh)"
            );
            eprintln!("SKIPPED: oidc-provider interop (run `source .ci/interop.sh` first; needs node)");
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_real_identity_provider_by_configuration_alone() {
    let Some(dir) = provider_dir() else { return };
    init_tracing();
    let mut idp = Idp::new(dir);
    let k1 = idp.keygen("k1");
    idp.start(&[&k1]).await;

    // Configuration comes from the provider's discovery document.
    let discovery: Value = http()
        .get(idp.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut config = Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.issuer = Some(discovery["issuer"].as_str().unwrap().to_string());
    config.jwks_url = Some(discovery["jwks_uri"].as_str().unwrap().to_string());
    config.audience = AUDIENCE.into();
    let server = start(config).await.unwrap();
    let call = |method: reqwest::Method, path: &str, token: &str| {
        http()
            .request(method, format!("{}{path}", server.url()))
            .bearer_auth(token.to_string())
            .json(&serde_json::json!({}))
            .send()
    };

    let analyst = idp.access_token("analyst-svc").await;
    let me: Value = call(reqwest::Method::GET, "/me", &analyst)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["subject"], "analyst-svc");
    assert_eq!(me["roles"], serde_json::json!(["analyst"]));
    assert_eq!(
        call(reqwest::Method::POST, "/models/m1/run", &analyst)
            .await
            .unwrap()
            .status(),
        202
    );
    // A permission analysts lack (they hold model:deploy, narrowed by the deploy policy).
    assert_eq!(
        call(reqwest::Method::POST, "/datasets", &analyst)
            .await
            .unwrap()
            .status(),
        403
    );
    let viewer = idp.access_token("viewer-svc").await;
    assert_eq!(
        call(reqwest::Method::GET, "/datasets", &viewer)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(reqwest::Method::POST, "/models/m1/run", &viewer)
            .await
            .unwrap()
            .status(),
        403
    );
    let admin = idp.access_token("admin-svc").await;
    // Deploying needs a DPoP-bound token: this bearer token passes the guard, then is asked
    // for DPoP.
    assert_eq!(
        crate::common::deploy_status(
            call(reqwest::Method::POST, "/models/m1/deploy", &admin)
                .await
                .unwrap()
        )
        .await,
        crate::common::DEPLOY_PERMITTED
    );

    // A token the same provider issued for another resource server is refused.
    let other = idp.token("admin-svc", Some("urn:authz:other-api")).await;
    assert_eq!(other.status(), 200);
    let other = other.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    remember_secret(&other);
    assert_eq!(
        call(reqwest::Method::GET, "/datasets", &other)
            .await
            .unwrap()
            .status(),
        401
    );

    // Rotation at the provider: a new signing key appears in its JWKS; tokens signed with it
    // are accepted on first sight (one refetch), and tokens signed with the old key still work
    // while the old key is published.
    let k2 = idp.keygen("k2");
    idp.start(&[&k2, &k1]).await;
    let rotated = idp.access_token("analyst-svc").await;
    let header = rotated.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "k2", "the provider signs with the new key");
    assert_eq!(
        call(reqwest::Method::GET, "/datasets", &rotated)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(reqwest::Method::GET, "/datasets", &analyst)
            .await
            .unwrap()
            .status(),
        200
    );
    server.stop().await;
}
