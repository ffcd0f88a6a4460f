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
