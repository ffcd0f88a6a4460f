//! Hostile input at the HTTP edge, against the model registry on 127.0.0.1: every request gets
//! a 4xx in bounded time, and the service stays healthy; then a bounded mixed load where every
//! valid request succeeds and nothing is a 5xx.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use model_registry::{Config, Server, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{http, init_tracing};

async fn registry() -> Server {
    init_tracing();
    start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// Sends raw bytes (headers the HTTP client would refuse to build) and returns the status.
async fn raw_status(server: &Server, request: Vec<u8>) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(&request).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

fn request_with_auth(value: &[u8]) -> Vec<u8> {
    let mut r = b"GET /datasets HTTP/1.1\r\nhost: localhost\r\nauthorization: ".to_vec();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    r
}

fn unsigned_token(claims: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"x"}"#),
        URL_SAFE_NO_PAD.encode(claims),
        "c2ln"
    )
}

async fn healthy(server: &Server) {
    let r = http()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn hostile_requests_get_4xx_and_the_service_stays_up() {
    let server = registry().await;
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, size) in [
        ("8 KiB token", 8 * 1024 + 1),
        ("64 KiB token", 64 * 1024),
        ("1 MiB token", 1024 * 1024),
    ] {
        let mut v = b"Bearer ".to_vec();
        v.extend(std::iter::repeat_n(b'a', size));
        cases.push((name, request_with_auth(&v)));
    }
    cases.push((
        "non-UTF-8 bytes",
        request_with_auth(b"Bearer \xff\xfe\xfd.abc.def"),
    ));
    cases.push(("control characters", request_with_auth(b"Bearer a\x01b.c.d")));
    let mut many = b"GET /datasets HTTP/1.1\r\nhost: localhost\r\n".to_vec();
    for i in 0..200 {
        many.extend_from_slice(format!("authorization: Bearer t{i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"connection: close\r\n\r\n");
    cases.push(("200 Authorization headers", many));
    let bomb = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    cases.push((
        "JSON bomb in the payload",
        request_with_auth(format!("Bearer {}", unsigned_token(&bomb)).as_bytes()),
    ));
    let deep = format!(
        "{{\"iss\":\"x\",\"roles\":{}\"r\"{}}}",
        "{\"a\":".repeat(300),
        "}".repeat(300)
    );
    cases.push((
        "deeply nested claims",
        request_with_auth(format!("Bearer {}", unsigned_token(&deep)).as_bytes()),
    ));
    let roles: Vec<String> = (0..10_000).map(|i| format!("\"r{i}\"")).collect();
    let big = format!("{{\"roles\":[{}]}}", roles.join(","));
    cases.push((
        "10,000-element roles array",
        request_with_auth(format!("Bearer {}", unsigned_token(&big)).as_bytes()),
    ));
    for (name, request) in cases {
        // `None`: the server closed the connection on a request it would not parse, which is fine.
        if let Some(s) = raw_status(&server, request).await {
            assert!((400..500).contains(&s), "{name}: got {s}");
        }
        healthy(&server).await;
    }
    // A JSON bomb in a request body: the body limit answers before the handler (after auth).
    let r = http()
        .post(format!("{}/datasets", server.url()))
        .header("content-type", "application/json")
        .body(vec![b'['; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    healthy(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn bounded_mixed_load_valid_requests_all_succeed_and_no_5xx() {
    let server = registry().await;
    let token = crate::common::demo_token(&server, "viewer-client", None).await;
    let url = format!("{}/datasets", server.url());
    let client = http();
    let mut tasks = Vec::new();
    // 2,000 requests, half hostile, 16 at a time, at most 60 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for worker in 0..16 {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..125 {
                if tokio::time::Instant::now() > deadline {
                    break;
                }
                let hostile = (worker + i) % 2 == 1;
                let req = if hostile {
                    let junk = match i % 4 {
                        0 => "x".repeat(9000),
                        1 => format!("{token}x"),
                        2 => unsigned_token(r#"{"alg":"none"}"#),
                        _ => "a.b.c".to_string(),
                    };
                    client.get(&url).bearer_auth(junk)
                } else {
                    client.get(&url).bearer_auth(&token)
                };
                let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                out.push((hostile, status));
            }
            out
        }));
    }
    let mut counts = (0, 0);
    for t in tasks {
        for (hostile, status) in t.await.unwrap() {
            assert!(
                status != 0 && status < 500,
                "a {} request got {status}",
                if hostile { "hostile" } else { "valid" }
            );
            if hostile {
                // 401, or 429 once the address's failure budget is spent (never a pass).
                assert!(status == 401 || status == 429, "hostile: {status}");
                counts.1 += 1;
            } else {
                assert_eq!(status, 200);
                counts.0 += 1;
            }
        }
    }
    assert!(counts.0 >= 500 && counts.1 >= 500, "{counts:?}");
    healthy(&server).await;
    server.stop().await;
}
