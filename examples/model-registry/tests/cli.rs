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
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(key.starts_with("mr_"), "{stdout}");
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
