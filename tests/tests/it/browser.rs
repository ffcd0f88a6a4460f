//! The two sign-in pages of the model registry (`/app/web/`, `/app/spa/`) in a real browser:
//! `tests/browser/flows.mjs` drives Debian's Chromium with playwright-core (both installed by
//! `.ci/browser.sh`, which exports `AUTHZ_BROWSER_DIR`) against a registry started here. It
//! signs in as the demo user on the login page, calls the API, refreshes, signs out, and checks
//! after every step that no token is in the browser's storage, cookies or page. It also opens
//! the API reference page (`/docs`) and checks that it shows the operations from
//! `/openapi.json` with no console error.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use model_registry::{Config, start};

use crate::common::{init_tracing, remember_secret};

/// How long the browser flows may take before they are killed.
const LIMIT: Duration = Duration::from_secs(120);

/// `$AUTHZ_BROWSER_DIR` when it has playwright-core; else `None` and a SKIPPED line (a failure
/// on CI).
fn browser_dir() -> Option<PathBuf> {
    match std::env::var_os("AUTHZ_BROWSER_DIR").map(PathBuf::from) {
        Some(d) if d.join("node_modules/playwright-core").exists() => Some(d),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the browser tests (.ci/browser.sh)"
            );
            eprintln!(
                "SKIPPED: sign-in pages in a browser (run `source .ci/browser.sh` first; needs node and chromium)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_pages_in_a_real_browser() {
    let Some(dir) = browser_dir() else { return };
    init_tracing();
    // The repository's script, next to playwright-core (node resolves imports from the script).
    let script = dir.join("flows.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/flows.mjs"),
        &script,
    )
    .unwrap();
    let server = start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let user = server.users.first().expect("the dev issuer's demo user").clone();
    remember_secret(&user.password);

    let child = tokio::process::Command::new("node")
        .arg(&script)
        .arg(server.url())
        .arg(&user.username)
        .arg(&user.password)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A run over the limit is dropped below, and the browser with it.
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    // The registry serves the browser meanwhile, on this runtime.
    let output = tokio::time::timeout(LIMIT, child.wait_with_output()).await;
    let (status, out, err) = match output {
        Ok(o) => {
            let o = o.expect("node's output");
            (
                Some(o.status),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        }
        Err(_) => (None, String::new(), String::new()),
    };
    println!("{out}");
    if !err.trim().is_empty() {
        println!("stderr:\n{err}");
    }
    server.stop().await;
    for text in [&out, &err] {
        assert!(
            !text.contains(&user.password),
            "the browser flows printed the password"
        );
    }
    match status {
        None => panic!("the browser flows did not finish within {LIMIT:?}"),
        Some(s) => assert!(s.success(), "the browser flows failed ({s})"),
    }
}

/// The web app's callback without a browser: every way a sign-in response can be wrong is
/// refused with a page, and the pending sign-in is single use.
#[tokio::test]
async fn the_web_app_callback_fails_closed() {
    init_tracing();
    let server = start(Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let url = server.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    // "Sign in": a pre-login cookie, and a redirect to /authorize with state and PKCE.
    let login = client.get(format!("{url}/app/web/login")).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.starts_with("web_login="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/app/web"));
    let pre_login = set_cookie.split(';').next().unwrap().to_string();
    let location = url::Url::parse(login.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/authorize");
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "web-app");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{url}/app/web/callback"));
    let state = q["state"].clone();

    let callback = |cookie: Option<String>, query: String| {
        let mut r = client.get(format!("{url}/app/web/callback?{query}"));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let iss = url::form_urlencoded::byte_serialize(server.issuer.as_bytes()).collect::<String>();
    // No pre-login cookie (a response injected into another browser): refused.
    let r = callback(None, format!("code=c&state={state}&iss={iss}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Wrong state: refused, and the pending sign-in is spent.
    let r = callback(
        Some(pre_login.clone()),
        format!("code=c&state=x{state}&iss={iss}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["cache-control"] == "no-store");
    let r = callback(Some(pre_login.clone()), format!("code=c&state={state}&iss={iss}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a pending sign-in is single use");
    // A fresh sign-in answered by another issuer (RFC 9207 mix-up): refused.
    let login = client.get(format!("{url}/app/web/login")).send().await.unwrap();
    let pre_login = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let location = url::Url::parse(login.headers()["location"].to_str().unwrap()).unwrap();
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let r = callback(
        Some(pre_login),
        format!("code=c&state={state}&iss=https%3A%2F%2Fevil.example"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("unexpected authorization server"), "{body}");
    // State-changing POSTs without a session (or a CSRF token) are 403.
    for path in ["api", "refresh", "logout"] {
        let r = client
            .post(format!("{url}/app/web/{path}"))
            .form(&[("csrf_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    server.stop().await;
}
