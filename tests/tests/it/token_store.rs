//! One contract suite for every `TokenStore`: memory, SQLite and PostgreSQL. Redemptions are
//! atomic (of concurrent redemptions exactly one wins), revoking a family revokes its access
//! tokens, expired rows are purged.

use std::sync::Arc;

use authz_axum::core::oauth::{
    AccessTokenRecord, AuthorizationCode, CodeRedemption, KeyHash, MemoryTokenStore, RefreshRedemption,
    RefreshToken, TokenFamily, TokenStore, new_secret,
};
use authz_axum::oauth::sql::{PostgresTokenStore, SqliteTokenStore};

fn family(id: &str, now: u64) -> TokenFamily {
    TokenFamily {
        id: id.into(),
        client_id: "c".into(),
        subject: "ada".into(),
        created_at: now,
        expires_at: now + 1000,
        last_used_at: now,
        revoked_at: None,
    }
}

async fn suite(store: Arc<dyn TokenStore>) {
    let now = 1_900_000_000;
    let tag = &new_secret()[..8];
    let fid = format!("fam-{tag}");
    // Codes: one Fresh, then Replayed; unknown is Unknown.
    let code = new_secret();
    store
        .insert_code(
            AuthorizationCode {
                hash: KeyHash::of(&code),
                client_id: "c".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: "x".repeat(43),
                subject: "ada".into(),
                roles: vec!["viewer".into()],
                scope: vec!["viewer".into()],
                family_id: fid.clone(),
                issued_at: now,
                expires_at: now + 60,
            },
            family(&fid, now),
        )
        .await
        .unwrap();
    let h = KeyHash::of(&code);
    let (a, b) = tokio::join!(store.redeem_code(&h, now), store.redeem_code(&h, now));
    let fresh = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(CodeRedemption::Fresh(_))))
        .count();
    let replayed = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Ok(CodeRedemption::Replayed(_))))
        .count();
    assert_eq!((fresh, replayed), (1, 1), "exactly one redemption wins");
    assert_eq!(
        store.redeem_code(&KeyHash::of("nope"), now).await.unwrap(),
        CodeRedemption::Unknown
    );

    // Refresh tokens: insert moves last_used_at; concurrent redemptions: one Fresh.
    let rt = new_secret();
    store
        .insert_refresh(RefreshToken {
            hash: KeyHash::of(&rt),
            family_id: fid.clone(),
            client_id: "c".into(),
            subject: "ada".into(),
            roles: vec!["viewer".into()],
            scope: vec!["viewer".into()],
            issued_at: now + 5,
            spent_at: None,
            jkt: None,
        })
        .await
        .unwrap();
    assert_eq!(store.family(&fid).await.unwrap().unwrap().last_used_at, now + 5);
    let h = KeyHash::of(&rt);
    let results = futures_join(store.clone(), h, now + 6).await;
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, RefreshRedemption::Fresh(..)))
            .count(),
        1
    );
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, RefreshRedemption::Spent(..)))
            .count(),
        7
    );
    assert!(store.refresh(&h).await.unwrap().unwrap().spent_at.is_some());

    // Access tokens under the family are revoked with it.
    let jti = format!("jti-{tag}");
    store
        .insert_access(AccessTokenRecord {
            jti: jti.clone(),
            family_id: Some(fid.clone()),
            client_id: "c".into(),
            subject: "ada".into(),
            expires_at: now + 600,
            revoked_at: None,
        })
        .await
        .unwrap();
    assert!(store.revoke_family(&fid, now + 7).await.unwrap());
    assert!(
        !store.revoke_family(&fid, now + 8).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        store.family(&fid).await.unwrap().unwrap().revoked_at,
        Some(now + 7)
    );
    assert_eq!(
        store.access(&jti).await.unwrap().unwrap().revoked_at,
        Some(now + 7)
    );

    // Purge: everything of the family is gone once it ends.
    let removed = store.purge_expired(now + 2000).await.unwrap();
    assert!(removed >= 4, "removed {removed}");
    assert!(store.family(&fid).await.unwrap().is_none());
    assert!(store.refresh(&h).await.unwrap().is_none());
    assert!(store.access(&jti).await.unwrap().is_none());

    // Clients, users, secrets, deletion.
    let cid = format!("client-{tag}");
    let made = authz_axum::oauth::register_client(
        store.as_ref(),
        authz_axum::oauth::ClientRegistration {
            id: cid.clone(),
            client_type: authz_axum::core::oauth::ClientType::Confidential,
            redirect_uris: vec!["https://app.example/cb".into(), "http://127.0.0.1:9/cb".into()],
            grant_types: vec![authz_axum::core::oauth::GrantType::AuthorizationCode],
            roles: vec!["viewer".into()],
        },
        now,
    )
    .await
    .unwrap();
    let secret = made.secret.unwrap();
    let c = store.client(&cid).await.unwrap().unwrap();
    assert_eq!(c, made.client);
    assert!(c.secret_matches(&secret, now));
    assert!(!c.secret_matches("wrong", now));
    assert!(
        store.insert_client(c.clone()).await.is_err(),
        "duplicate id refused"
    );
    let uname = format!("user-{tag}");
    authz_axum::oauth::create_user(
        store.as_ref(),
        &uname,
        "correct horse",
        vec!["viewer".into()],
        now,
    )
    .await
    .unwrap();
    let u = store.user(&uname).await.unwrap().unwrap();
    assert!(authz_axum::oauth::verify_password(
        "correct horse",
        &u.password_hash
    ));
    assert!(!authz_axum::oauth::verify_password(
        "wrong horse",
        &u.password_hash
    ));
    assert!(!format!("{u:?}").contains(&u.password_hash));
    assert!(store.delete_user(&uname).await.unwrap());
    assert!(store.delete_client(&cid, now).await.unwrap());
    assert!(store.client(&cid).await.unwrap().is_none());
    store.ping().await.unwrap();
}

async fn futures_join(store: Arc<dyn TokenStore>, h: KeyHash, now: u64) -> Vec<RefreshRedemption> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.redeem_refresh(&h, now).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store() {
    suite(Arc::new(MemoryTokenStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store() {
    let dir = std::env::temp_dir().join(format!("authz-token-store-{}", &new_secret()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("tokens.db").display());
    suite(Arc::new(SqliteTokenStore::connect(&url).await.unwrap())).await;
    // Reopened: the schema and the data are there.
    let again = SqliteTokenStore::connect(&url).await.unwrap();
    again.ping().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store() {
    let Ok(url) = std::env::var("AUTHZ_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL store tests: .ci/run sets AUTHZ_TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: PostgreSQL token-store tests (set AUTHZ_TEST_DATABASE_URL=postgres://…)");
        return;
    };
    suite(Arc::new(PostgresTokenStore::connect(&url).await.unwrap())).await;
}
