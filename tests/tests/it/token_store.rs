//! One contract suite for every `TokenStore`: memory, SQLite and PostgreSQL. Redemptions are
//! atomic (of concurrent redemptions exactly one wins), revoking a family revokes its access
//! tokens, expired rows are purged.

use std::sync::Arc;

use authz_axum::core::oauth::{
    AccessTokenRecord, AuthorizationCode, CodeRedemption, KeyHash, MemoryTokenStore, RefreshRedemption,
    RefreshRotation, RefreshToken, RotationDecision, TokenFamily, TokenStore, new_secret,
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
    // A change is seen by the very next read (a store that keeps clients evicts them).
    let rotated =
        authz_axum::oauth::rotate_client_secret(store.as_ref(), &cid, std::time::Duration::ZERO, now)
            .await
            .unwrap();
    let c = store.client(&cid).await.unwrap().unwrap();
    assert!(c.secret_matches(&rotated, now));
    assert!(!c.secret_matches(&secret, now), "old secret still kept");
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

/// A grant's family (through its code) and its first refresh token; returns the token.
async fn grant_with_refresh(store: &Arc<dyn TokenStore>, fid: &str, now: u64) -> String {
    store
        .insert_code(
            AuthorizationCode {
                hash: KeyHash::of(&new_secret()),
                client_id: "c".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: String::new(),
                subject: "ada".into(),
                roles: vec!["viewer".into()],
                scope: vec!["viewer".into()],
                family_id: fid.into(),
                issued_at: now,
                expires_at: now + 60,
            },
            family(fid, now),
        )
        .await
        .unwrap();
    let rt = new_secret();
    store
        .insert_refresh(RefreshToken {
            hash: KeyHash::of(&rt),
            family_id: fid.into(),
            client_id: "c".into(),
            subject: "ada".into(),
            roles: vec!["viewer".into()],
            scope: vec!["viewer".into()],
            issued_at: now,
            spent_at: None,
            jkt: None,
        })
        .await
        .unwrap();
    rt
}

/// A decision that issues the next token `next` and an access token `jti` (or refuses).
fn decide(next: &str, jti: &str, issue: bool) -> RotationDecision {
    let (next, jti) = (KeyHash::of(next), jti.to_string());
    Box::new(move |old: &RefreshToken, family: &TokenFamily| {
        issue.then(|| {
            (
                AccessTokenRecord {
                    jti,
                    family_id: Some(family.id.clone()),
                    client_id: old.client_id.clone(),
                    subject: old.subject.clone(),
                    expires_at: old.issued_at + 600,
                    revoked_at: None,
                },
                RefreshToken {
                    hash: next,
                    issued_at: old.issued_at + 10,
                    spent_at: None,
                    ..old.clone()
                },
            )
        })
    })
}

/// `rotate_refresh` on every store: the spend and the next tokens in one step; a refusal
/// records nothing but spends; a revoked family issues nothing; concurrent rotations of one
/// token: one winner.
async fn rotation_suite(store: Arc<dyn TokenStore>) {
    let now = 1_900_000_000;
    let tag = &new_secret()[..8];
    let fid = format!("rot-{tag}");
    let rt = grant_with_refresh(&store, &fid, now).await;

    // Issued: the old token spent, the next one and the access token recorded, last use moved.
    let next = new_secret();
    let jti = format!("rot-jti-{tag}");
    match store
        .rotate_refresh(&KeyHash::of(&rt), now + 10, decide(&next, &jti, true))
        .await
        .unwrap()
    {
        RefreshRotation::Fresh {
            token,
            family,
            issued,
        } => {
            assert!(issued);
            assert_eq!(token.spent_at, Some(now + 10));
            assert_eq!(family.id, fid);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .refresh(&KeyHash::of(&rt))
            .await
            .unwrap()
            .unwrap()
            .spent_at
            .is_some()
    );
    assert!(
        store
            .refresh(&KeyHash::of(&next))
            .await
            .unwrap()
            .unwrap()
            .spent_at
            .is_none()
    );
    assert_eq!(
        store.access(&jti).await.unwrap().unwrap().family_id.as_deref(),
        Some(fid.as_str())
    );
    assert_eq!(store.family(&fid).await.unwrap().unwrap().last_used_at, now + 10);

    // The spent one again: Spent (reuse), and the decision is not asked.
    let asked =
        Box::new(|_: &RefreshToken, _: &TokenFamily| -> Option<_> { panic!("asked for a spent token") });
    assert!(matches!(
        store
            .rotate_refresh(&KeyHash::of(&rt), now + 11, asked)
            .await
            .unwrap(),
        RefreshRotation::Spent(_)
    ));
    assert_eq!(
        store
            .rotate_refresh(&KeyHash::of("unknown"), now, decide("x", "x", true))
            .await
            .unwrap(),
        RefreshRotation::Unknown
    );

    // Refused: spent, nothing recorded.
    let refused_next = new_secret();
    let refused_jti = format!("rot-refused-{tag}");
    assert!(matches!(
        store
            .rotate_refresh(
                &KeyHash::of(&next),
                now + 20,
                decide(&refused_next, &refused_jti, false)
            )
            .await
            .unwrap(),
        RefreshRotation::Fresh { issued: false, .. }
    ));
    assert!(
        store
            .refresh(&KeyHash::of(&next))
            .await
            .unwrap()
            .unwrap()
            .spent_at
            .is_some()
    );
    assert!(
        store
            .refresh(&KeyHash::of(&refused_next))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.access(&refused_jti).await.unwrap().is_none());

    // A revoked family issues nothing, whatever the decision says.
    let fid2 = format!("rot2-{tag}");
    let rt2 = grant_with_refresh(&store, &fid2, now).await;
    assert!(store.revoke_family(&fid2, now + 1).await.unwrap());
    let after = new_secret();
    assert!(matches!(
        store
            .rotate_refresh(&KeyHash::of(&rt2), now + 2, decide(&after, "rot2-jti", true))
            .await
            .unwrap(),
        RefreshRotation::Fresh { issued: false, .. }
    ));
    assert!(store.refresh(&KeyHash::of(&after)).await.unwrap().is_none());

    // Eight rotations of one token at once: one issues, seven find it spent.
    let fid3 = format!("rot3-{tag}");
    let rt3 = grant_with_refresh(&store, &fid3, now).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, rt3) = (store.clone(), rt3.clone());
        tasks.push(tokio::spawn(async move {
            let d = decide(&new_secret(), &format!("rot3-{i}-{}", &new_secret()[..6]), true);
            store
                .rotate_refresh(&KeyHash::of(&rt3), now + 3, d)
                .await
                .unwrap()
        }));
    }
    let mut issued = 0;
    let mut spent = 0;
    for t in tasks {
        match t.await.unwrap() {
            RefreshRotation::Fresh { issued: true, .. } => issued += 1,
            RefreshRotation::Spent(_) => spent += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((issued, spent), (1, 7));
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
    rotation_suite(Arc::new(MemoryTokenStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store() {
    // A file whose path says "memory" is still a file.
    let dir = std::env::temp_dir().join(format!("authz-token-store-memory-{}", &new_secret()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("tokens.db").display());
    suite(Arc::new(SqliteTokenStore::connect(&url).await.unwrap())).await;
    rotation_suite(Arc::new(SqliteTokenStore::connect(&url).await.unwrap())).await;
    // Reopened: the schema and the data are there.
    let again = SqliteTokenStore::connect(&url).await.unwrap();
    again.ping().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_store() {
    // sqlx's named shared-cache database, opened again by the store's own connection.
    suite(Arc::new(
        SqliteTokenStore::connect("sqlite::memory:").await.unwrap(),
    ))
    .await;
    rotation_suite(Arc::new(
        SqliteTokenStore::connect("sqlite::memory:").await.unwrap(),
    ))
    .await;
}

/// A *named* in-memory database can be opened by a second store in the same process: what
/// one store changes, the other reads at once (no store keeps clients for such a database).
#[tokio::test]
async fn two_stores_on_one_named_in_memory_database() {
    let url = format!(
        "sqlite:file:authz-named-{}?mode=memory&cache=shared",
        &new_secret()[..12]
    );
    let a: Arc<dyn TokenStore> = Arc::new(SqliteTokenStore::connect(&url).await.unwrap());
    let b: Arc<dyn TokenStore> = Arc::new(SqliteTokenStore::connect(&url).await.unwrap());
    let now = 1_900_000_000;
    let made = authz_axum::oauth::register_client(
        a.as_ref(),
        authz_axum::oauth::ClientRegistration {
            id: "shared".into(),
            client_type: authz_axum::core::oauth::ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: vec![authz_axum::core::oauth::GrantType::ClientCredentials],
            roles: vec!["viewer".into()],
        },
        now,
    )
    .await
    .unwrap();
    let old = made.secret.unwrap();
    assert!(
        b.client("shared")
            .await
            .unwrap()
            .unwrap()
            .secret_matches(&old, now)
    );
    assert!(
        a.client("shared")
            .await
            .unwrap()
            .unwrap()
            .secret_matches(&old, now)
    );
    let new = authz_axum::oauth::rotate_client_secret(b.as_ref(), "shared", std::time::Duration::ZERO, now)
        .await
        .unwrap();
    let seen = a.client("shared").await.unwrap().unwrap();
    assert!(seen.secret_matches(&new, now) && !seen.secret_matches(&old, now));
    assert!(b.delete_client("shared", now).await.unwrap());
    assert!(a.client("shared").await.unwrap().is_none());
}

/// Two stores on one file are two connections, as two processes (the server and the CLI, or
/// two instances) would be: a refresh token redeemed from both at once is won exactly once,
/// and what one store answered is committed — the other reads it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_connections_on_one_file() {
    let dir = std::env::temp_dir().join(format!("authz-token-store-{}", &new_secret()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("tokens.db").display());
    let a: Arc<dyn TokenStore> = Arc::new(SqliteTokenStore::connect(&url).await.unwrap());
    let b: Arc<dyn TokenStore> = Arc::new(SqliteTokenStore::connect(&url).await.unwrap());
    let now = 1_900_000_000;
    let mut hashes = Vec::new();
    for i in 0..20 {
        let rt = grant_with_refresh(&a, &format!("fam-{i}"), now).await;
        // Answered by `a`: committed, so `b` sees it.
        assert!(b.refresh(&KeyHash::of(&rt)).await.unwrap().is_some());
        hashes.push(KeyHash::of(&rt));
    }
    // Every token redeemed 4 times through each store at once: one winner per token.
    let mut tasks = Vec::new();
    for h in &hashes {
        for store in [&a, &b, &a, &b, &a, &b, &a, &b] {
            let (store, h) = (store.clone(), *h);
            tasks.push(tokio::spawn(async move {
                (h, store.redeem_refresh(&h, now + 1).await.unwrap())
            }));
        }
    }
    let mut fresh = std::collections::HashMap::new();
    for t in tasks {
        let (h, r) = t.await.unwrap();
        if matches!(r, RefreshRedemption::Fresh(..)) {
            *fresh.entry(h.as_bytes().to_vec()).or_insert(0) += 1;
        } else {
            assert!(matches!(r, RefreshRedemption::Spent(..)), "{r:?}");
        }
    }
    assert_eq!(fresh.len(), hashes.len(), "every token won once");
    assert!(fresh.values().all(|n| *n == 1), "{fresh:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A family revoked in the same group commit as a grant's writes, in both orders: whichever the
/// store took first, the grant never records a token under a revoked family after the
/// revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_revocation_and_issuance_in_one_batch() {
    let store: Arc<dyn TokenStore> = Arc::new(SqliteTokenStore::connect("sqlite::memory:").await.unwrap());
    let now = 1_900_000_000;
    for i in 0..50 {
        let fid = format!("fam-{i}");
        grant_with_refresh(&store, &fid, now).await;
        let jti = format!("jti-{i}");
        let access = AccessTokenRecord {
            jti: jti.clone(),
            family_id: Some(fid.clone()),
            client_id: "c".into(),
            subject: "ada".into(),
            expires_at: now + 600,
            revoked_at: None,
        };
        // `join!` polls in order, so each queues first in turn: both orders, in one batch.
        let (recorded, revoked) = if i % 2 == 0 {
            tokio::join!(
                store.record_issued(&fid, access, None, now + 1),
                store.revoke_family(&fid, now + 1)
            )
        } else {
            let (revoked, recorded) = tokio::join!(
                store.revoke_family(&fid, now + 1),
                store.record_issued(&fid, access, None, now + 1)
            );
            (recorded, revoked)
        };
        assert!(revoked.unwrap());
        match store.access(&jti).await.unwrap() {
            // Recorded first: the revocation then revoked it too.
            Some(a) => {
                assert!(recorded.unwrap());
                assert_eq!(a.revoked_at, Some(now + 1));
            }
            None => assert!(!recorded.unwrap(), "not recorded, and said so"),
        }
    }
}

/// The PostgreSQL server the tests use; `None` (the test skips) only outside CI.
fn postgres_url() -> Option<String> {
    let url = std::env::var("AUTHZ_TEST_DATABASE_URL").ok();
    if url.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL store tests: .ci/run sets AUTHZ_TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: PostgreSQL token-store tests (set AUTHZ_TEST_DATABASE_URL=postgres://…)");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_store() {
    let Some(url) = postgres_url() else { return };
    suite(Arc::new(PostgresTokenStore::connect(&url).await.unwrap())).await;
    rotation_suite(Arc::new(PostgresTokenStore::connect(&url).await.unwrap())).await;
}

/// `revoke_subject` while a grant is being recorded into one of the subject's families (its
/// transaction holds the family's row lock, as `record_issued` and `rotate_refresh` take it
/// first): the access token that grant records is revoked too. Revoking the access tokens
/// before the families left it live — that statement's snapshot predated the grant's commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revoke_subject_catches_a_grant_being_recorded() {
    let Some(url) = postgres_url() else { return };
    let pg = PostgresTokenStore::connect(&url).await.unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(pg.clone());
    let now = 1_900_000_000;
    let tag = &new_secret()[..12];
    // A subject of its own: other tests share this database.
    let (subject, fid, jti) = (format!("subj-{tag}"), format!("fam-{tag}"), format!("jti-{tag}"));
    let mut fam = family(&fid, now);
    fam.subject = subject.clone();
    store
        .insert_code(
            AuthorizationCode {
                hash: KeyHash::of(&new_secret()),
                client_id: "c".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: String::new(),
                subject: subject.clone(),
                roles: vec![],
                scope: vec![],
                family_id: fid.clone(),
                issued_at: now,
                expires_at: now + 60,
            },
            fam,
        )
        .await
        .unwrap();
    // The grant, held open after recording its access token.
    let mut grant = pg.pool().begin().await.unwrap();
    let xid: String = sqlx::query_scalar("SELECT txid_current()::text")
        .fetch_one(&mut *grant)
        .await
        .unwrap();
    sqlx::query("UPDATE authz_oauth_families SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(&fid)
        .bind(now as i64)
        .execute(&mut *grant)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO authz_oauth_access_tokens (jti, family_id, client_id, subject, expires_at, revoked_at) \
         VALUES ($1, $2, 'c', $3, $4, NULL)",
    )
    .bind(&jti)
    .bind(&fid)
    .bind(&subject)
    .bind((now + 600) as i64)
    .execute(&mut *grant)
    .await
    .unwrap();
    let revoking = tokio::spawn({
        let (store, subject) = (store.clone(), subject.clone());
        async move { store.revoke_subject(&subject, now).await }
    });
    // Until the revocation waits for the grant's transaction (bounded: 10 s).
    let mut waits = false;
    for _ in 0..1000 {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' \
             AND transactionid::text = $1",
        )
        .bind(&xid)
        .fetch_one(pg.pool())
        .await
        .unwrap();
        if n > 0 {
            waits = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(waits, "revoke_subject never waited for the grant's family lock");
    grant.commit().await.unwrap();
    assert_eq!(revoking.await.unwrap().unwrap(), 1, "one family revoked");
    let token = store.access(&jti).await.unwrap().unwrap();
    assert!(
        token.revoked_at.is_some(),
        "the access token recorded while the subject was being revoked is still live"
    );
    assert!(store.family(&fid).await.unwrap().unwrap().revoked_at.is_some());
}
