//! `model-registry keys create` bootstraps a key into the SQLite store; the printed key works.

use std::process::Command;

#[tokio::test]
async fn keys_create_prints_a_working_key_once() {
    let dir = std::env::temp_dir().join(format!("mr-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args([
            "keys",
            "create",
            "--owner",
            "ops",
            "--role",
            "admin",
            "--expires-in",
            "3600",
        ])
        .env("AUTHZ_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // stdout is exactly the key and a newline: `KEY=$(model-registry keys create …)` works.
    let key = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{stdout:?}"))
        .to_string();
    assert!(
        key.starts_with("mr_") && !key.contains(char::is_whitespace),
        "{stdout:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\u{1b}'),
        "no colour when not a terminal"
    );
    let policy = std::sync::Arc::new(model_registry::load_policy(None).unwrap());
    let keys = model_registry::api_keys(
        model_registry::key_store(Some(&url)).await.unwrap(),
        policy,
        authz_axum::core::clock::system(),
    );
    let principal = keys.authenticate(&key).await.unwrap();
    assert_eq!(principal.subject(), "ops");
    assert!(principal.has_role("admin"));
    // An unknown role is refused with the roles that exist.
    let bad = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(["keys", "create", "--owner", "ops", "--role", "root"])
        .env("AUTHZ_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`root` is not a role of the policy"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// A variable that is set but empty (or blank) is a mistake: the binary refuses to start and
/// names it, instead of silently using a default.
#[test]
fn an_empty_variable_refuses_to_start_naming_it() {
    for name in [
        "AUTHZ_AUDIENCE",
        "AUTHZ_PROVIDER",
        "AUTHZ_ROLES_CLAIMS",
        "AUTHZ_ISSUERS_FILE",
    ] {
        for value in ["", "  ", "\n"] {
            let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
                .env(name, value)
                .env("AUTHZ_BIND", "127.0.0.1:0")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{name}={value:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(name) && stderr.contains("empty"),
                "{name}={value:?}: {stderr}"
            );
        }
    }
}

/// A malformed value refuses to start and names the variable.
#[test]
fn a_malformed_variable_refuses_to_start_naming_it() {
    for (name, value, says) in [
        ("AUTHZ_PROVIDER", "ping", "keycloak"),
        ("AUTHZ_SCOPE_PERMISSIONS", "yes", "true or false"),
        ("AUTHZ_DISCOVERY", "1", "true or false"),
        ("AUTHZ_REQUIRE_CLAIMS", "token_use", "name=value"),
        ("AUTHZ_ROLES_CLAIMS", "roles,,groups", "empty entry"),
        ("AUTHZ_ROLES_CLAIMS", "/bad~2pointer", "RFC 6901"),
        ("AUTHZ_TOKEN_TYPES", "at+jwt,", "empty entry"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
            .env(name, value)
            .env("AUTHZ_BIND", "127.0.0.1:0")
            .env("AUTHZ_DATABASE_URL", "sqlite::memory:")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}={value:?}: {stderr}");
        assert!(stderr.contains(says), "{name}={value:?}: {stderr}");
    }
}

/// SIGTERM with requests in flight: every one completes, pending API-key use times are
/// written, and the process exits 0.
#[tokio::test]
async fn sigterm_drains_in_flight_requests_flushes_and_exits_zero() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = std::env::temp_dir().join(format!("mr-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(["keys", "create", "--owner", "ops", "--role", "admin"])
        .env("AUTHZ_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .env("AUTHZ_BIND", "127.0.0.1:0")
        .env("AUTHZ_DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("banner: {first}"))
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    let body = br#"{"name":"ds-00"}"#;
    let mut in_flight = Vec::new();
    for _ in 0..10 {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(
            s,
            "POST /datasets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body[..8]).unwrap();
        in_flight.push(s);
    }
    // Let the server read the ten request heads (they then wait for the rest of the body).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for mut s in in_flight {
        s.write_all(&body[8..]).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 201", "an in-flight request completed");
    }
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful exit");
    let store = model_registry::key_store(Some(&url)).await.unwrap();
    let records = store.list().await.unwrap();
    assert!(
        records.iter().all(|r| r.last_used_at.is_some()),
        "use times recorded before exit"
    );
}

/// `keys list` shows metadata and never a secret; `keys revoke` stops a key.
#[tokio::test]
async fn keys_list_and_revoke() {
    let dir = std::env::temp_dir().join(format!("mr-list-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_model-registry"))
            .args(args)
            .env("AUTHZ_DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let created = run(&["keys", "create", "--owner", "ci", "--role", "viewer"]);
    let key = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let listed = run(&["keys", "list"]);
    assert!(listed.status.success());
    let listing = String::from_utf8(listed.stdout).unwrap();
    let id = key.split('_').nth(1).unwrap();
    assert!(
        listing.contains(id) && listing.contains("ci") && listing.contains("viewer"),
        "{listing}"
    );
    assert!(
        !listing.contains(&key[key.len() - 30..]),
        "no secret in the listing"
    );
    assert!(run(&["keys", "revoke", id]).status.success());
    let policy = std::sync::Arc::new(model_registry::load_policy(None).unwrap());
    let keys = model_registry::api_keys(
        model_registry::key_store(Some(&url)).await.unwrap(),
        policy,
        authz_axum::core::clock::system(),
    );
    assert!(keys.authenticate(&key).await.is_err(), "revoked");
    // A path that does not exist is an error naming it, not an empty listing.
    let missing = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(["keys", "list"])
        .env(
            "AUTHZ_DATABASE_URL",
            format!("sqlite://{}", dir.join("typo.db").display()),
        )
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("typo.db"));
    assert!(!dir.join("typo.db").exists(), "not created by keys list");
    let unknown = run(&["keys", "revoke", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("keys list"));
}

fn cli(url: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(args)
        .env("AUTHZ_DATABASE_URL", url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// `clients create` prints the secret alone on stdout; the server sharing the database issues
/// tokens to that client; `rotate-secret` and `delete` take effect; `users create` reads the
/// password from stdin and stores only its hash.
#[tokio::test]
async fn clients_and_users_are_managed_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("mr-cli-oauth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("oauth.db").display());
    let out = cli(
        &url,
        &["clients", "create", "nightly-job", "--role", "analyst"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = stdout.strip_suffix('\n').unwrap().to_string();
    assert_eq!(secret.len(), 43, "stdout is exactly the secret: {stdout:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret));
    let out = cli(
        &url,
        &[
            "clients",
            "create",
            "--id",
            "my-spa",
            "--public",
            "--redirect-uri",
            "https://app.example/cb",
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "a public client has no secret to print");
    let bad = cli(
        &url,
        &[
            "clients",
            "create",
            "x",
            "--public",
            "--grant",
            "client_credentials",
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("confidential"));
    let out = cli(
        &url,
        &["users", "create", "--username", "grace", "--role", "viewer"],
        Some("a long password\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = String::from_utf8(cli(&url, &["users", "list"], None).stdout).unwrap();
    assert!(
        list.contains("grace\tviewer") && !list.contains("a long password"),
        "{list}"
    );
    let list = String::from_utf8(cli(&url, &["clients", "list"], None).stdout).unwrap();
    assert!(
        list.contains("nightly-job\tconfidential\tclient_credentials") && list.contains("my-spa\tpublic"),
        "{list}"
    );

    // The server on the same database issues tokens to the CLI's client.
    let mut config = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(url.clone());
    let server = model_registry::start(config).await.unwrap();
    let token = |secret: String| {
        let base = server.url();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/token"))
                .basic_auth("nightly-job", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(token(secret.clone()).await.status(), 200);
    let store = server.token_service.as_ref().unwrap().store().clone();
    let grace = store.user("grace").await.unwrap().unwrap();
    assert!(authz_axum::oauth::verify_password(
        "a long password",
        &grace.password_hash
    ));

    let out = cli(
        &url,
        &["clients", "rotate-secret", "nightly-job", "--overlap", "0"],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new_secret = String::from_utf8(out.stdout).unwrap().trim_end().to_string();
    assert_eq!(
        token(secret).await.status(),
        401,
        "old secret gone with no overlap"
    );
    assert_eq!(token(new_secret.clone()).await.status(), 200);
    let out = cli(&url, &["clients", "delete", "nightly-job"], None);
    assert!(out.status.success());
    assert_eq!(token(new_secret).await.status(), 401);
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// `routes` prints the route × role matrix (Markdown, or JSON) and exits 0 only when the policy
/// lint is clean — CI runs this test, so a permission no route uses or a route no role can
/// reach fails the build.
#[test]
fn routes_prints_the_matrix_and_the_lint_is_clean() {
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .arg("routes")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "lint findings:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("| method | path | requires | roles that satisfy it |"));
    assert!(
        stdout.contains("| POST | `/models/{id}/deploy` | `\"model:deploy\"` | admin, analyst |"),
        "{stdout}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(["routes", "--json"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/models/{id}/run")
        .unwrap();
    assert_eq!(run["roles"], serde_json::json!(["admin", "analyst"]));
    // A policy with a role nobody's route needs and a permission no route requires: exit 1.
    let dir = std::env::temp_dir().join(format!("mr-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    let builtin = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policy.toml")).unwrap();
    // The approver role loses payment:approve: the approve route becomes unreachable.
    std::fs::write(
        &policy,
        builtin.replace("grants = [\"payment:approve\"]", "grants = [\"data:read\"]"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .arg("routes")
        .env("AUTHZ_POLICY", &policy)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("lint:"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// `token --client ID` prints a token the server sharing the database accepts.
#[tokio::test]
async fn token_for_a_client_works_against_the_server() {
    let dir = std::env::temp_dir().join(format!("mr-cli-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let mut config = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(url.clone());
    let server = model_registry::start(config).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_model-registry"))
        .args(["token", "--client", "analyst-client"])
        .env("AUTHZ_DATABASE_URL", &url)
        .env("AUTHZ_BIND", server.addr.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim_end().to_string();
    let resp = reqwest::Client::new()
        .post(format!("{}/models/m1/run", server.url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// A key revoked by `keys revoke` — another process on the same SQLite file — is refused by a
/// running server that was answering it from its verified-key cache, after one poll of the
/// change table the database trigger fills (every 500 ms; the bound below leaves room for a
/// loaded machine).
#[tokio::test]
async fn a_key_revoked_from_the_cli_is_refused_by_a_running_server_within_a_second() {
    let dir = std::env::temp_dir().join(format!("mr-cli-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let created = cli(
        &url,
        &["keys", "create", "--owner", "ci", "--role", "viewer"],
        None,
    );
    assert!(created.status.success());
    let key = String::from_utf8(created.stdout).unwrap().trim().to_string();
    let mut config = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.database_url = Some(url.clone());
    let server = model_registry::start(config).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let me = || {
        let request = http.get(format!("{}/me", server.url())).bearer_auth(&key);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me().await, 200);
    let hits = server.api_keys.cache().stats().hits;
    assert_eq!(me().await, 200);
    assert!(
        server.api_keys.cache().stats().hits > hits,
        "answered from the cache"
    );
    let id = key.split('_').nth(1).unwrap();
    assert!(cli(&url, &["keys", "revoke", id], None).status.success());
    let revoked = std::time::Instant::now();
    loop {
        match me().await {
            401 => break,
            s => assert_eq!(s, 200, "before the change arrives, the key still works"),
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(2),
            "refused within 2 s of the CLI's revoke"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
