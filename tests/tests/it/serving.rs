//! `authz_axum::serve` on 127.0.0.1: header-read timeout, idle connections, the connection
//! cap, request timeout and graceful drain. Loops are bounded in count and time.

use std::sync::Arc;
use std::time::Duration;

use authz_axum::serve::{ServeConfig, ServeReport, serve};
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use crate::common::http;

/// Serves `app` with `config` until the returned sender fires; the join handle yields the report.
async fn start(
    app: Router,
    config: ServeConfig,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<ServeReport>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve(listener, app, config, async {
            let _ = rx.await;
        })
        .await
        .unwrap()
    });
    (addr, tx, task)
}

fn ok_app() -> Router {
    Router::new().route("/ok", get(|| async { "ok" }))
}

/// Reads until the server closes the connection; `true` if it did within `bound`.
async fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_half_sent_request_and_an_idle_connection_are_closed_after_the_header_timeout() {
    let config = ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    };
    let (addr, _stop, _task) = start(ok_app(), config).await;
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    assert!(
        closed_within(&mut half, Duration::from_secs(10)).await,
        "a half-sent request head is cut off"
    );
    // A complete request, then nothing: the kept-alive connection is closed too.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)).await,
        "idle keep-alive closed"
    );
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_keep_a_new_client_out() {
    let config = ServeConfig {
        header_read_timeout: Duration::from_secs(60),
        ..ServeConfig::default()
    };
    let (addr, _stop, _task) = start(ok_app(), config).await;
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    let r = http().get(format!("http://{addr}/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
}

#[tokio::test]
async fn at_the_cap_a_new_client_waits_for_a_slot_instead_of_failing() {
    let config = ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 10,
        ..ServeConfig::default()
    };
    let (addr, _stop, task) = start(ok_app(), config).await;
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // The eleventh waits in the backlog until the header timeout frees a slot.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        http().get(format!("http://{addr}/ok")).send(),
    )
    .await
    .expect("served once a slot frees up")
    .unwrap();
    assert_eq!(r.status(), 200);
    drop(idle);
    drop(task);
}

#[tokio::test]
async fn a_request_that_takes_too_long_gets_408() {
    let app = Router::new().route(
        "/slow",
        get(|| async {
            std::future::pending::<()>().await;
            "never"
        }),
    );
    let config = ServeConfig {
        request_timeout: Duration::from_millis(200),
        ..ServeConfig::default()
    };
    let (addr, _stop, _task) = start(app, config).await;
    let r = http().get(format!("http://{addr}/slow")).send().await.unwrap();
    assert_eq!(r.status(), 408);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_lets_in_flight_requests_finish() {
    let release = Arc::new(Notify::new());
    let entered = Arc::new(tokio::sync::Semaphore::new(0));
    let app = {
        let (release, entered) = (release.clone(), entered.clone());
        Router::new().route(
            "/work",
            get(move || {
                let (release, entered) = (release.clone(), entered.clone());
                async move {
                    entered.add_permits(1);
                    release.notified().await;
                    "done"
                }
            }),
        )
    };
    let (addr, stop, task) = start(app, ServeConfig::default()).await;
    let mut in_flight = Vec::new();
    for _ in 0..10 {
        let url = format!("http://{addr}/work");
        in_flight.push(tokio::spawn(async move {
            http().get(url).send().await.map(|r| r.status().as_u16())
        }));
    }
    // All ten are inside the handler.
    let _ = tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(10))
        .await
        .expect("ten requests in flight");
    stop.send(()).unwrap();
    // No new connection is accepted once shutdown began.
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(&addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the listener is closed on shutdown");
    release.notify_waiters();
    for r in in_flight {
        assert_eq!(r.await.unwrap().unwrap(), 200, "in-flight requests complete");
    }
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("serve returns after draining")
        .unwrap();
    assert_eq!(report.unfinished, 0);
}

#[tokio::test]
async fn readiness_reports_keys_and_the_store_liveness_stays_up() {
    use crate::common::{JwksServer, Mode, SigningKey};
    crate::common::init_tracing();
    let key = SigningKey::es256("r1");
    let idp = JwksServer::start(vec![key.jwk.clone()]).await;
    idp.set_mode(Mode::Down);
    let mut config = model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap());
    config.issuer = Some("https://ready.example.com".into());
    config.jwks_url = Some(idp.url.clone());
    let clock = authz_axum::core::clock::ManualClock::starting_now();
    config.clock = Some(Arc::new(clock.clone()));
    let server = model_registry::start(config).await.unwrap();
    let get = |path: &'static str| {
        let url = format!("{}{path}", server.url());
        async move { http().get(url).send().await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200, "the process is up");
    let r = get("/readyz").await;
    assert_eq!(r.status(), 503, "no keys yet");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["issuers"][0]["keys"], 0);
    assert_eq!(body["api_key_store"], "ok");
    idp.set_mode(Mode::Up);
    server.authenticator.issuers()[0]
        .keys()
        .refresh(
            authz_axum::core::auth::RefreshReason::NoKeys,
            std::time::SystemTime::now() + Duration::from_secs(60),
        )
        .await;
    let r = get("/readyz").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ready"], true);
    assert_eq!(body["issuers"][0]["keys"], 1);
    server.stop().await;
}
