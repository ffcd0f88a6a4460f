//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;

/// The outside test vectors: `$AUTHZ_VECTORS_DIR`, or `../shared/vectors` beside the checkout.
/// `None` (and a line saying so) when they are not there.
pub fn vectors_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHZ_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"));
    if dir.join("README.md").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: outside test vectors not found at {} (set AUTHZ_VECTORS_DIR); CI always has them",
            dir.display()
        );
        None
    }
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---- tracing capture -------------------------------------------------------------------------

use std::sync::{Arc, Mutex, OnceLock};

static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every tracing event of the whole test binary, at debug level and above.
pub fn init_tracing() {
    CAPTURED.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info",
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    });
}

/// Everything logged so far.
pub fn captured_logs() -> String {
    init_tracing();
    String::from_utf8_lossy(&CAPTURED.get().unwrap().lock().unwrap()).into_owned()
}

/// Remembers a credential so that the leakage test can look for it in the logs.
pub fn remember_secret(secret: &str) {
    SECRETS.lock().unwrap().push(secret.to_string());
}

/// Every credential remembered so far.
pub fn remembered_secrets() -> Vec<String> {
    SECRETS.lock().unwrap().clone()
}

// ---- a signing key and a JWKS server of our own ------------------------------------------------

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An ES256 key that signs test tokens, with its public JWK: the test kit's
/// [`TestKey`](authz_axum::testing::TestKey) plus the bookkeeping these tests need (every token
/// is remembered for the leakage test).
pub struct SigningKey {
    pub kid: String,
    key: authz_axum::testing::TestKey,
    pub jwk: serde_json::Value,
}

impl SigningKey {
    pub fn es256(kid: &str) -> Self {
        let key = authz_axum::testing::TestKey::generate(kid);
        Self {
            kid: kid.into(),
            jwk: key.public_jwk().clone(),
            key,
        }
    }

    /// Signs `claims` under an arbitrary header (for header-manipulation tests).
    pub fn sign_with_header(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let t = self.key.sign_with_header(header, claims);
        remember_secret(&t);
        t
    }

    /// This key's public half as a key set, for authenticators built in tests.
    pub fn key_set(&self) -> authz_axum::core::jwt::KeySet {
        use authz_axum::core::jwt::{KeySet, VerificationKey};
        KeySet::new(vec![
            VerificationKey::from_jwk(&self.jwk, Default::default())
                .unwrap()
                .unwrap(),
        ])
        .unwrap()
    }

    /// Signs `claims` with this key (header `typ: JWT`, `alg: ES256`, this `kid`).
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        self.sign_with_header(
            &serde_json::json!({"typ": "JWT", "alg": "ES256", "kid": self.kid}),
            claims,
        )
    }
}

/// Standard claims for `iss`/`aud`, valid for ten minutes.
pub fn claims(iss: &str, aud: &str, sub: &str, roles: &[&str]) -> serde_json::Value {
    let now = now();
    serde_json::json!({ "iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + 600, "roles": roles })
}

/// How the test JWKS server behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Up,
    Down,
    Slow(std::time::Duration),
}

struct JwksState {
    keys: Mutex<Vec<serde_json::Value>>,
    mode: Mutex<Mode>,
    hits: std::sync::atomic::AtomicUsize,
    max_age: Mutex<u64>,
}

/// A JWKS endpoint on 127.0.0.1 that tests can rotate, slow down or take down.
#[derive(Clone)]
pub struct JwksServer {
    state: Arc<JwksState>,
    pub url: String,
}

impl JwksServer {
    pub async fn start(keys: Vec<serde_json::Value>) -> Self {
        use axum::response::IntoResponse;
        let state = Arc::new(JwksState {
            keys: Mutex::new(keys),
            mode: Mutex::new(Mode::Up),
            hits: Default::default(),
            max_age: Mutex::new(300),
        });
        let s = state.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    s.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mode = *s.mode.lock().unwrap();
                    match mode {
                        Mode::Down => return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        Mode::Slow(d) => tokio::time::sleep(d).await,
                        Mode::Up => {}
                    }
                    let body = serde_json::json!({ "keys": *s.keys.lock().unwrap() });
                    let max_age = *s.max_age.lock().unwrap();
                    (
                        [("cache-control", format!("max-age={max_age}"))],
                        axum::Json(body),
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { state, url }
    }

    pub fn set_keys(&self, keys: Vec<serde_json::Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_max_age(&self, secs: u64) {
        *self.state.max_age.lock().unwrap() = secs;
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `POST /models/{id}/deploy` requires a DPoP-bound token: answered to a bearer token it is
/// 401 "requires a DPoP-bound access token" when the guard passed (the caller holds
/// `model:deploy`). This names that outcome `DEPLOY_PERMITTED` (a status no response has) and
/// passes every other status through.
pub async fn deploy_status(resp: reqwest::Response) -> u16 {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if status == 401 && body.contains("requires a DPoP-bound access token") {
        DEPLOY_PERMITTED
    } else {
        status
    }
}

/// See [`deploy_status`].
pub const DEPLOY_PERMITTED: u16 = 1202;

/// A plain HTTP client (no connection reuse surprises, no proxies).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Serves `app` on 127.0.0.1 (any free port) and returns `http://127.0.0.1:port`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A token from the model registry's dev issuer for demo client `client` (client credentials,
/// HTTP Basic), checked against RFC 6749 §5.1 on the way.
pub async fn demo_token(server: &model_registry::Server, client: &str, scope: Option<&str>) -> String {
    let c = server.client(client).expect("demo client");
    remember_secret(&c.secret);
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let resp = http()
        .post(format!("{}/oauth/token", server.url()))
        .basic_auth(&c.id, Some(&c.secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "token for {client}");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    let t = body["access_token"].as_str().unwrap().to_string();
    remember_secret(&t);
    t
}

// ---- an RSA signing key ---------------------------------------------------------------------------

/// An RSA-2048 key that signs RS256 and PS256 test tokens, with its public JWK.
pub struct RsaSigningKey {
    pub kid: String,
    pair: aws_lc_rs::rsa::KeyPair,
    /// `n` and `e`, base64url.
    pub n: String,
    pub e: String,
}

/// The contents of the DER element at the start of `der` (tag, length, value), and the rest.
fn der_element(der: &[u8]) -> (&[u8], &[u8]) {
    let len0 = der[1] as usize;
    let (len, start) = if len0 < 0x80 {
        (len0, 2)
    } else {
        let n = len0 & 0x7f;
        (
            der[2..2 + n].iter().fold(0usize, |a, &b| (a << 8) | b as usize),
            2 + n,
        )
    };
    (&der[start..start + len], &der[start + len..])
}

impl RsaSigningKey {
    pub fn generate(kid: &str) -> Self {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        // PKCS#1 RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let der = pair.public_key().as_ref().to_vec();
        let (seq, _) = der_element(&der);
        let (n, rest) = der_element(seq);
        let (e, _) = der_element(rest);
        let strip = |b: &[u8]| -> Vec<u8> { b.iter().skip_while(|&&x| x == 0).copied().collect() };
        Self {
            kid: kid.into(),
            n: URL_SAFE_NO_PAD.encode(strip(n)),
            e: URL_SAFE_NO_PAD.encode(strip(e)),
            pair,
        }
    }

    /// The public JWK, with `alg` only if given.
    pub fn jwk(&self, alg: Option<&str>) -> serde_json::Value {
        let mut jwk = serde_json::json!({"kty": "RSA", "kid": self.kid, "n": self.n, "e": self.e});
        if let Some(a) = alg {
            jwk["alg"] = a.into();
        }
        jwk
    }

    /// Signs `claims` with RS256 or PS256 under this `kid`.
    pub fn sign(&self, alg: &str, claims: &serde_json::Value) -> String {
        use aws_lc_rs::signature;
        let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let enc: &'static dyn signature::RsaEncoding = match alg {
            "RS256" => &signature::RSA_PKCS1_SHA256,
            "PS256" => &signature::RSA_PSS_SHA256,
            other => panic!("{other} is not an RSA algorithm of this helper"),
        };
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                enc,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        remember_secret(&t);
        t
    }
}

/// The policy of the identity and attack tests: viewer < analyst, two roles that deploy, and a
/// separation-of-duty pair.
pub fn payments_policy() -> Arc<authz_axum::core::Policy> {
    use authz_axum::core::{PermissionCatalog, Policy, RoleSpec};
    let catalog = Arc::new(
        PermissionCatalog::new([
            "data:read",
            "model:run",
            "model:deploy",
            "payment:initiate",
            "payment:approve",
        ])
        .unwrap(),
    );
    Arc::new(
        Policy::builder(catalog)
            .role(RoleSpec::new("viewer").grant("data:read"))
            .role(RoleSpec::new("analyst").inherits("viewer").grant("model:run"))
            .role(RoleSpec::new("deployer").grant("model:deploy"))
            .role(RoleSpec::new("admin").grant("model:deploy"))
            .role(RoleSpec::new("clerk").grant("payment:initiate"))
            .role(RoleSpec::new("approver").grant("payment:approve"))
            .separation_of_duties("payment:initiate", "payment:approve")
            .build()
            .unwrap(),
    )
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that can partition: [`Self::partition`]
/// stops forwarding on every connection open at that moment, in both directions, without
/// closing either side — what a network partition looks like from both ends (no FIN, no RST,
/// just silence); connections made afterwards pass.
pub struct PartitionProxy {
    addr: std::net::SocketAddr,
    /// Connections with an id up to this one are cut.
    cut: tokio::sync::watch::Sender<u64>,
    opened: Arc<std::sync::atomic::AtomicU64>,
}

impl PartitionProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let opened = Arc::new(AtomicU64::new(0));
        let count = opened.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let id = count.fetch_add(1, Ordering::SeqCst) + 1;
                let mut cut = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
                    loop {
                        if *cut.borrow_and_update() >= id {
                            // Partitioned: hold both sockets open and forward nothing, ever.
                            let _held = (client, server);
                            std::future::pending::<()>().await;
                            return;
                        }
                        tokio::select! {
                            n = client.read(&mut up) => match n {
                                Ok(n) if n > 0 => if server.write_all(&up[..n]).await.is_err() { return },
                                _ => return,
                            },
                            n = server.read(&mut down) => match n {
                                Ok(n) if n > 0 => if client.write_all(&down[..n]).await.is_err() { return },
                                _ => return,
                            },
                            _ = cut.changed() => {}
                        }
                    }
                });
            }
        });
        Self { addr, cut, opened }
    }

    /// A proxy in front of the server a `postgres://` URL names, and the same URL through it.
    pub async fn in_front_of(url: &str) -> (Self, String) {
        let mut through = url::Url::parse(url).unwrap();
        let upstream = through.socket_addrs(|| Some(5432)).unwrap()[0];
        let proxy = Self::start(upstream).await;
        through.set_host(Some("127.0.0.1")).unwrap();
        through.set_port(Some(proxy.addr.port())).unwrap();
        (proxy, through.to_string())
    }

    /// Partitions every connection open now.
    pub fn partition(&self) {
        self.cut
            .send_replace(self.opened.load(std::sync::atomic::Ordering::SeqCst));
    }
}
