//! The token service (`authz_axum::oauth`) driven over real HTTP by an OAuth client library no
//! one here wrote (the `oauth2` crate): authorization code + PKCE through the login page, code
//! replay, refresh rotation and reuse detection, revocation, introspection, client
//! credentials, metadata — and the model registry accepting the tokens it issues.

use std::collections::HashMap;

use authz_axum::core::oauth::{ClientType, GrantType};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, RevocationUrl, Scope,
    TokenIntrospectionResponse as _, TokenResponse as _, TokenUrl,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{http, init_tracing, remember_secret};

async fn registry() -> model_registry::Server {
    init_tracing();
    model_registry::start(model_registry::Config::with_bind("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// An HTTP client that does not follow redirects (the redirect *is* the response).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn spa_client(server: &model_registry::Server) -> Client {
    let url = server.url();
    BasicClient::new(ClientId::new("spa".into()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::new(format!("{url}/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{url}/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(format!("{url}/app/spa/")).unwrap())
        .set_revocation_url(RevocationUrl::new(format!("{url}/revoke")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(format!("{url}/introspect")).unwrap())
}

/// Reads `name="…" value="…"` pairs of the login form's inputs and its `action`.
fn form_fields(html: &str) -> (String, HashMap<String, String>) {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let action = html.split("action=\"").nth(1).unwrap().split('"').next().unwrap();
    let mut fields = HashMap::new();
    for input in html.split("<input").skip(1) {
        let attr = |a: &str| {
            input
                .split(&format!("{a}=\""))
                .nth(1)
                .map(|v| unescape(v.split('"').next().unwrap()))
        };
        if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
            fields.insert(name, value);
        }
    }
    (unescape(action), fields)
}

fn cookie_pair(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// What the login page answered.
struct Login {
    status: StatusCode,
    location: Option<url::Url>,
    body: String,
    session_cookie: Option<String>,
    set_cookies: Vec<String>,
    headers: reqwest::header::HeaderMap,
}

/// The browser's part: open `authorize_url`, fill in the form, submit it.
async fn login(authorize_url: &url::Url, username: &str, password: &str) -> Login {
    let client = no_redirects();
    let page = client.get(authorize_url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200, "login page");
    let csrf = cookie_pair(&page, "authz_csrf").expect("CSRF cookie");
    let (action, mut fields) = form_fields(&page.text().await.unwrap());
    fields.insert("username".into(), username.into());
    fields.insert("password".into(), password.into());
    let resp = client
        .post(&action)
        .header("cookie", csrf)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let location = resp
        .headers()
        .get("location")
        .map(|l| url::Url::parse(l.to_str().unwrap()).unwrap());
    let session_cookie = cookie_pair(&resp, "authz_session");
    let set_cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let headers = resp.headers().clone();
    Login {
        status: resp.status(),
        location,
        body: resp.text().await.unwrap(),
        session_cookie,
        set_cookies,
        headers,
    }
}

/// Signs `ada` in for `client_id` (its one registered redirect URI) with `challenge` (S256) and
/// returns the code.
pub(crate) async fn login_for_code(
    server: &model_registry::Server,
    client_id: &str,
    challenge: &str,
) -> String {
    let url = url::Url::parse(&format!(
        "{}/authorize?response_type=code&client_id={client_id}&code_challenge={challenge}&code_challenge_method=S256&state=s",
        server.url()
    ))
    .unwrap();
    let ada = &server.users[0];
    let l = login(&url, &ada.username, &ada.password).await;
    assert_eq!(l.status, StatusCode::SEE_OTHER, "{}", l.body);
    query(&l.location.unwrap())["code"].clone()
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Authorization code + PKCE for the SPA as `ada`: returns (code, verifier).
pub async fn authorize_spa(server: &model_registry::Server, scopes: &[&str]) -> (String, PkceCodeVerifier) {
    let client = spa_client(server);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new(s.to_string()));
    }
    let (url, state) = req.url();
    let ada = &server.users[0];
    remember_secret(&ada.password);
    let login = login(&url, &ada.username, &ada.password).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let session = login
        .set_cookies
        .iter()
        .find(|c| c.starts_with("authz_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "loopback http: no Secure ({session})"
    );
    let back = login.location.unwrap();
    assert!(back.as_str().starts_with(&format!("{}/app/spa/", server.url())));
    let q = query(&back);
    assert_eq!(q["state"], *state.secret(), "state returned");
    assert_eq!(q["iss"], server.issuer, "RFC 9207 iss");
    (q["code"].clone(), verifier)
}

pub(crate) async fn me(server: &model_registry::Server, token: &str) -> reqwest::Response {
    http()
        .get(format!("{}/me", server.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn grant_error<T: std::fmt::Debug>(
    r: Result<
        T,
        RequestTokenError<oauth2::HttpClientError<reqwest::Error>, oauth2::basic::BasicErrorResponse>,
    >,
) -> BasicErrorResponseType {
    match r {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

#[tokio::test]
async fn authorization_code_with_pkce_end_to_end() {
    let server = registry().await;
    let http_client = no_redirects();
    let client = spa_client(&server);
    let (code, verifier) = authorize_spa(&server, &[]).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let access = tokens.access_token().secret().clone();
    remember_secret(&access);
    assert!(tokens.refresh_token().is_some(), "the spa client may refresh");
    assert_eq!(tokens.expires_in().unwrap().as_secs(), 600);
    // RFC 9068 header and claims.
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    for c in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
        "roles",
    ] {
        assert!(claims.get(c).is_some(), "claim {c} in {claims}");
    }
    assert_eq!(claims["client_id"], "spa");
    assert_eq!(claims["sub"], "ada");
    // The registry's API accepts it.
    let resp = me(&server, &access).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["subject"], "ada", "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let server = registry().await;
    let http_client = no_redirects();
    let client = spa_client(&server);
    let (code, verifier) = authorize_spa(&server, &[]).await;
    let verifier_again = PkceCodeVerifier::new(verifier.secret().clone());
    let first = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier_again)
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(replay), BasicErrorResponseType::InvalidGrant);
    // The refresh token of the first exchange is dead now.
    let refresh = client
        .exchange_refresh_token(first.refresh_token().unwrap())
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(refresh), BasicErrorResponseType::InvalidGrant);
    // And so is the access token, for introspection.
    let web = server.token_service.as_ref().unwrap();
    let record = web
        .store()
        .access(&jti(first.access_token().secret()))
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some(), "the code's access token is revoked");
    server.stop().await;
}

fn jti(token: &str) -> String {
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn pkce_is_enforced() {
    let server = registry().await;
    let http_client = no_redirects();
    let client = spa_client(&server);
    // A wrong verifier (well-formed).
    let (code, _) = authorize_spa(&server, &[]).await;
    let r = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new("a".repeat(43)))
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(r), BasicErrorResponseType::InvalidGrant);
    // No verifier at all.
    let (code, _) = authorize_spa(&server, &[]).await;
    let r = client
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(r), BasicErrorResponseType::InvalidGrant);
    // A verifier outside the grammar (42 characters).
    let (code, v) = authorize_spa(&server, &[]).await;
    let short = v.secret()[..42].to_string();
    let r = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(short))
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(r), BasicErrorResponseType::InvalidGrant);

    // At the authorization endpoint: no challenge, `plain`, a malformed challenge — each
    // redirected back with invalid_request (the client and redirect URI are valid).
    let base = format!(
        "{}/authorize?response_type=code&client_id=spa&state=xyz",
        server.url()
    );
    for (extra, what) in [
        ("", "no code_challenge"),
        (
            "&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghijabc&code_challenge_method=plain",
            "plain",
        ),
        (
            "&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghijabc",
            "method absent = plain",
        ),
        (
            "&code_challenge=short&code_challenge_method=S256",
            "malformed challenge",
        ),
    ] {
        let resp = no_redirects().get(format!("{base}{extra}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{what}");
        let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q = query(&loc);
        assert_eq!(q["error"], "invalid_request", "{what}");
        assert_eq!(q["state"], "xyz");
        assert_eq!(q["iss"], server.issuer);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_authorization_endpoint_refuses_what_it_must() {
    let server = registry().await;
    let url = server.url();
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let get = |q: String| {
        let url = url.clone();
        async move {
            no_redirects()
                .get(format!("{url}/authorize?{q}"))
                .send()
                .await
                .unwrap()
        }
    };
    // The implicit flow, and any other response type: unsupported_response_type, redirected.
    for rt in ["token", "id_token", "code%20token"] {
        let resp = get(format!(
            "response_type={rt}&client_id=spa&code_challenge={challenge}&code_challenge_method=S256"
        ))
        .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(query(&loc)["error"], "unsupported_response_type", "{rt}");
        assert!(loc.fragment().is_none());
    }
    // A redirect URI not registered exactly: a page, never a redirect (no open redirector).
    for bad in [
        "https://evil.example/cb",
        &format!("{}/app/spa/x", server.url()),
        &format!("{}/app/spa", server.url()),
        &format!("{}/app/spa/?a=1", server.url()),
    ] {
        let resp = get(format!(
            "response_type=code&client_id=spa&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        ))
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(resp.headers().get("location").is_none(), "{bad}");
    }
    // An unknown client: a page.
    let resp = get("response_type=code&client_id=nobody".into()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    // A machine client may not use the code grant: unauthorized_client (it has no redirect
    // URI, so it is a page).
    let resp = get(format!(
        "response_type=code&client_id=viewer-client&code_challenge={challenge}&code_challenge_method=S256"
    ))
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // A repeated parameter: invalid_request.
    let resp = get(format!(
        "response_type=code&client_id=spa&state=a&state=b&code_challenge={challenge}&code_challenge_method=S256"
    ))
    .await;
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&loc)["error"], "invalid_request");
    // The login page carries the security headers.
    let resp = get(format!(
        "response_type=code&client_id=spa&code_challenge={challenge}&code_challenge_method=S256"
    ))
    .await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let csrf = h["set-cookie"].to_str().unwrap();
    assert!(csrf.contains("HttpOnly") && csrf.contains("SameSite"), "{csrf}");
    assert!(!csrf.contains("Secure"), "no Secure on loopback http: {csrf}");
    server.stop().await;
}

#[tokio::test]
async fn login_failures_look_alike_and_are_throttled() {
    let server = registry().await;
    let client = spa_client(&server);
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let wrong = login(&url, "ada", "not-the-password").await;
    let unknown = login(&url, "nobody-here", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.location.is_none() && wrong.session_cookie.is_none());
    let strip = |b: &str| b.split("csrf_token").next().unwrap().to_string();
    assert_eq!(
        strip(&wrong.body),
        strip(&unknown.body),
        "same page for unknown user and wrong password"
    );
    assert!(!wrong.body.contains("not-the-password"));
    // No CSRF cookie: refused before the password is looked at.
    let page = no_redirects().get(url.as_str()).send().await.unwrap();
    let (action, mut fields) = form_fields(&page.text().await.unwrap());
    fields.insert("username".into(), "ada".into());
    fields.insert("password".into(), server.users[0].password.clone());
    let resp = no_redirects().post(&action).form(&fields).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
    // Five attempts per account and address at once, then 429 with Retry-After — even with the
    // right password (the budget is checked before the password).
    let mut throttled = None;
    for _ in 0..6 {
        let r = login(&url, "ada", "still-wrong").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(r);
            break;
        }
    }
    let r = throttled.expect("throttled within the budget");
    assert!(r.headers.get("retry-after").is_some());
    let again = login(&url, "ada", &server.users[0].password).await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;
}

#[tokio::test]
async fn refresh_rotation_and_reuse_detection() {
    let server = registry().await;
    let http_client = no_redirects();
    let client = spa_client(&server);
    let (code, verifier) = authorize_spa(&server, &[]).await;
    let t0 = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let r0 = t0.refresh_token().unwrap().clone();
    let t1 = client
        .exchange_refresh_token(&r0)
        .request_async(&http_client)
        .await
        .unwrap();
    let r1 = t1.refresh_token().unwrap().clone();
    assert_ne!(r0.secret(), r1.secret(), "rotated on use");
    assert_eq!(me(&server, t1.access_token().secret()).await.status(), 200);
    // The spent r0 presented again (a thief, or the client after a lost response): refused,
    // and the whole family dies — the live descendant r1 included.
    let reuse = client
        .exchange_refresh_token(&r0)
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(reuse), BasicErrorResponseType::InvalidGrant);
    let live = client
        .exchange_refresh_token(&r1)
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(live), BasicErrorResponseType::InvalidGrant);
    // A refresh token is bound to its client: the web app cannot use the SPA's.
    let (code, verifier) = authorize_spa(&server, &[]).await;
    let t = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let (web, _) = confidential(&server, "other-app", vec![GrantType::RefreshToken], &[]).await;
    let stolen = web
        .exchange_refresh_token(t.refresh_token().unwrap())
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(stolen), BasicErrorResponseType::InvalidGrant);
    // A refresh may narrow the scope, never widen it.
    let (code, verifier) = authorize_spa(&server, &["viewer"]).await;
    let t = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let wider = client
        .exchange_refresh_token(t.refresh_token().unwrap())
        .add_scope(Scope::new("analyst".into()))
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(wider), BasicErrorResponseType::InvalidScope);
    server.stop().await;
}

pub type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
>;

/// Registers a confidential client (a resource server, say) and returns it configured.
async fn confidential(
    server: &model_registry::Server,
    id: &str,
    grants: Vec<GrantType>,
    roles: &[&str],
) -> (Client, String) {
    let svc = server.token_service.as_ref().unwrap();
    let made = authz_axum::oauth::register_client(
        svc.store().as_ref(),
        authz_axum::oauth::ClientRegistration {
            id: id.into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: grants,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        },
        crate::common::now(),
    )
    .await
    .unwrap();
    let secret = made.secret.unwrap();
    remember_secret(&secret);
    let url = server.url();
    let client = BasicClient::new(ClientId::new(id.into()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{url}/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{url}/token")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(format!("{url}/introspect")).unwrap())
        .set_revocation_url(RevocationUrl::new(format!("{url}/revoke")).unwrap());
    (client, secret)
}

async fn revoke(server: &model_registry::Server, token: &str, hint: &str) {
    let resp = http()
        .post(format!("{}/revoke", server.url()))
        .form(&[("client_id", "spa"), ("token", token), ("token_type_hint", hint)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn revocation_and_introspection() {
    let server = registry().await;
    let http_client = no_redirects();
    let spa = spa_client(&server);
    let (rs, rs_secret) = confidential(
        &server,
        "resource-server",
        vec![GrantType::ClientCredentials],
        &[],
    )
    .await;
    let (code, verifier) = authorize_spa(&server, &["viewer"]).await;
    let t = spa
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    // Introspection by an authenticated resource server.
    let info = rs
        .introspect(t.access_token())
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(info.active());
    assert_eq!(info.username().or(info.sub()), Some("ada"));
    assert_eq!(info.client_id().map(|c| c.as_str()), Some("spa"));
    assert_eq!(info.scopes().unwrap()[0].as_str(), "viewer");
    let junk = rs
        .introspect(&oauth2::AccessToken::new("not-a-token".into()))
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(!junk.active());
    // Someone else's refresh token is not introspectable by the resource server.
    let other = rs
        .introspect(&oauth2::AccessToken::new(
            t.refresh_token().unwrap().secret().clone(),
        ))
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(!other.active());
    // A public client cannot introspect.
    let resp = http()
        .post(format!("{}/introspect", server.url()))
        .form(&[
            ("client_id", "spa"),
            ("token", t.access_token().secret().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Revoking the access token: introspection says inactive.
    // (The oauth2 crate refuses a revocation URL that is not https, so these are plain
    // RFC 7009 requests.)
    revoke(&server, t.access_token().secret(), "access_token").await;
    let info = rs
        .introspect(t.access_token())
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(!info.active(), "revoked access token");
    // Revoking the refresh token kills the family.
    revoke(&server, t.refresh_token().unwrap().secret(), "refresh_token").await;
    let r = spa
        .exchange_refresh_token(t.refresh_token().unwrap())
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(r), BasicErrorResponseType::InvalidGrant);
    // A client-credentials token (not recorded when issued) is revoked by its own client.
    let cc = rs
        .exchange_client_credentials()
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(
        rs.introspect(cc.access_token())
            .request_async(&http_client)
            .await
            .unwrap()
            .active()
    );
    // Another client cannot revoke it…
    revoke(&server, cc.access_token().secret(), "access_token").await;
    assert!(
        rs.introspect(cc.access_token())
            .request_async(&http_client)
            .await
            .unwrap()
            .active()
    );
    // …its own client can.
    let resp = http()
        .post(format!("{}/revoke", server.url()))
        .basic_auth("resource-server", Some(&rs_secret))
        .form(&[("token", cc.access_token().secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        !rs.introspect(cc.access_token())
            .request_async(&http_client)
            .await
            .unwrap()
            .active()
    );
    // Unknown tokens and other clients' tokens: 200, nothing revoked (RFC 7009 §2.2).
    let resp = http()
        .post(format!("{}/revoke", server.url()))
        .form(&[("client_id", "spa"), ("token", "unknown")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn client_credentials_basic_and_post() {
    let server = registry().await;
    let http_client = no_redirects();
    let (basic, _) = confidential(
        &server,
        "svc-analyst",
        vec![GrantType::ClientCredentials],
        &["analyst"],
    )
    .await;
    let t = basic
        .exchange_client_credentials()
        .request_async(&http_client)
        .await
        .unwrap();
    assert!(
        t.refresh_token().is_none(),
        "no refresh token for client credentials (RFC 6749 §4.4.3)"
    );
    let resp = http()
        .post(format!("{}/models/m1/run", server.url()))
        .bearer_auth(t.access_token().secret())
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let post = basic.clone().set_auth_type(AuthType::RequestBody);
    post.exchange_client_credentials()
        .request_async(&http_client)
        .await
        .unwrap();
    // Asking for a role the client does not have.
    let r = basic
        .exchange_client_credentials()
        .add_scope(Scope::new("admin".into()))
        .request_async(&http_client)
        .await;
    assert_eq!(grant_error(r), BasicErrorResponseType::InvalidScope);
    // A wrong secret: invalid_client, 401 with a Basic challenge.
    let resp = http()
        .post(format!("{}/token", server.url()))
        .basic_auth("svc-analyst", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Credentials in the query string: refused.
    let resp = http()
        .post(format!(
            "{}/token?client_id=svc-analyst&client_secret=x",
            server.url()
        ))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Two methods at once: refused.
    let resp = http()
        .post(format!("{}/token", server.url()))
        .basic_auth("svc-analyst", Some("x"))
        .form(&[("grant_type", "client_credentials"), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // Unknown grant types, and the password grant that does not exist here.
    for g in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let resp = http()
            .post(format!("{}/token", server.url()))
            .form(&[("grant_type", g), ("client_id", "spa")])
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "unsupported_grant_type", "{g}");
    }
    // A public client cannot use client credentials.
    let resp = http()
        .post(format!("{}/token", server.url()))
        .form(&[("grant_type", "client_credentials"), ("client_id", "spa")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    server.stop().await;
}

#[tokio::test]
async fn secret_rotation_keeps_the_old_secret_for_the_overlap() {
    let server = registry().await;
    let svc = server.token_service.as_ref().unwrap();
    let (old, _) = confidential(
        &server,
        "svc-rotating",
        vec![GrantType::ClientCredentials],
        &["viewer"],
    )
    .await;
    let now = crate::common::now();
    let new_secret = authz_axum::oauth::rotate_client_secret(
        svc.store().as_ref(),
        "svc-rotating",
        std::time::Duration::from_secs(3600),
        now,
    )
    .await
    .unwrap();
    remember_secret(&new_secret);
    let http_client = no_redirects();
    old.exchange_client_credentials()
        .request_async(&http_client)
        .await
        .expect("old secret within the overlap");
    let new = old.clone().set_client_secret(ClientSecret::new(new_secret));
    new.exchange_client_credentials()
        .request_async(&http_client)
        .await
        .expect("new secret");
    // After the overlap only the new one works (the store decides with its own clock).
    let client = svc.store().client("svc-rotating").await.unwrap().unwrap();
    assert_eq!(client.secrets.len(), 2);
    assert!(client.secrets[0].expires_at.is_some_and(|e| e <= now + 3600));
    server.stop().await;
}

#[tokio::test]
async fn metadata_documents() {
    let server = registry().await;
    let url = server.url();
    let m: Value = http()
        .get(format!("{url}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["issuer"], server.issuer);
    assert_eq!(m["authorization_endpoint"], format!("{url}/authorize"));
    assert_eq!(m["token_endpoint"], format!("{url}/token"));
    assert_eq!(m["revocation_endpoint"], format!("{url}/revoke"));
    assert_eq!(m["introspection_endpoint"], format!("{url}/introspect"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let oidc: Value = http()
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], m["issuer"]);
    let jwks: Value = http()
        .get(m["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert!(k.get("d").is_none(), "no private part in the JWKS");
        assert_eq!(k["alg"], "ES256");
    }
    server.stop().await;
}

/// Signing-key rotation on an injected clock: the new key is published before it signs; the
/// old one stays until its last token has expired; a resource server that fetched the JWKS
/// at any moment verifies every token issued at that moment.
#[tokio::test]
async fn signing_keys_rotate_publish_first_retire_last() {
    use authz_axum::core::clock::ManualClock;
    use authz_axum::core::oauth::MemoryTokenStore;
    use authz_axum::oauth::{TokenService, TokenServiceConfig};
    use std::time::Duration;

    let clock = std::sync::Arc::new(ManualClock::starting_now());
    let store = std::sync::Arc::new(MemoryTokenStore::new());
    let config = TokenServiceConfig::new("http://127.0.0.1:1", "api");
    let svc = TokenService::new(config.clone(), store.clone(), clock.clone())
        .await
        .unwrap();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    let kids = |svc: &TokenService| -> Vec<String> {
        svc.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    let t0 = svc
        .issue_access_token("c", "s", &[], &[], None, None)
        .await
        .unwrap();
    let old = kid(&t0.token);
    assert_eq!(kids(&svc), vec![old.clone()]);

    let new = svc.rotate_signing_key().await.unwrap();
    assert_eq!(kids(&svc), vec![old.clone(), new.clone()], "published at once");
    let t1 = svc
        .issue_access_token("c", "s", &[], &[], None, None)
        .await
        .unwrap();
    assert_eq!(
        kid(&t1.token),
        old,
        "the old key signs until the publication delay has passed"
    );

    clock.advance(config.key_publish_ahead + Duration::from_secs(1));
    let t2 = svc
        .issue_access_token("c", "s", &[], &[], None, None)
        .await
        .unwrap();
    assert_eq!(kid(&t2.token), new, "the new key signs after the delay");
    assert!(
        kids(&svc).contains(&old),
        "the old key stays while its tokens live"
    );

    clock.advance(config.access_token_lifetime + Duration::from_secs(120));
    svc.maintain().await.unwrap();
    assert_eq!(
        kids(&svc),
        vec![new.clone()],
        "retired once its last token expired"
    );

    // A second instance on the same store sees the same keys, and signs with the same key.
    let other = TokenService::new(config.clone(), store.clone(), clock.clone())
        .await
        .unwrap();
    assert_eq!(kids(&other), vec![new.clone()]);
    let t3 = other
        .issue_access_token("c", "s", &[], &[], None, None)
        .await
        .unwrap();
    assert_eq!(kid(&t3.token), new);

    // Automatic rotation once the key is older than the period.
    clock.advance(config.key_rotation_period);
    svc.maintain().await.unwrap();
    assert_eq!(kids(&svc).len(), 2);
}

#[tokio::test]
async fn settings_are_checked_naming_the_field() {
    use authz_axum::core::oauth::MemoryTokenStore;
    use authz_axum::oauth::{TokenService, TokenServiceConfig};
    use std::time::Duration;

    let store = || std::sync::Arc::new(MemoryTokenStore::new());
    let clock = authz_axum::core::clock::system;
    let mut c = TokenServiceConfig::new("https://as.example", "api");
    c.access_token_lifetime = Duration::from_secs(3600);
    let e = TokenService::new(c.clone(), store(), clock())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("access_token_lifetime") && e.contains("allow_long_access_tokens"),
        "{e}"
    );
    c.allow_long_access_tokens = true;
    TokenService::new(c, store(), clock())
        .await
        .expect("a long lifetime with the opt-in");
    let mut c = TokenServiceConfig::new("https://as.example", "api");
    c.code_lifetime = Duration::from_secs(120);
    assert!(
        TokenService::new(c, store(), clock())
            .await
            .unwrap_err()
            .to_string()
            .contains("code_lifetime")
    );
    let e = TokenService::new(
        TokenServiceConfig::new("http://as.example", "api"),
        store(),
        clock(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("https"), "{e}");
    let mut c = TokenServiceConfig::new("https://as.example", "api");
    c.key_publish_ahead = c.jwks_max_age;
    assert!(
        TokenService::new(c, store(), clock())
            .await
            .unwrap_err()
            .to_string()
            .contains("key_publish_ahead")
    );
}

/// No code, refresh token, access token, client secret or password in any log line of the flows.
#[tokio::test]
async fn no_code_token_secret_or_password_in_the_logs() {
    let server = registry().await;
    let http_client = no_redirects();
    let client = spa_client(&server);
    let (code, verifier) = authorize_spa(&server, &[]).await;
    let t = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let r1 = client
        .exchange_refresh_token(t.refresh_token().unwrap())
        .request_async(&http_client)
        .await
        .unwrap();
    // Reuse (logged as a warning), a wrong password, a wrong client secret.
    let _ = client
        .exchange_refresh_token(t.refresh_token().unwrap())
        .request_async(&http_client)
        .await;
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let _ = login(&url, "ada", "hunter2-wrong-password").await;
    let c = server.client("viewer-client").unwrap().clone();
    let _ = http()
        .post(format!("{}/token", server.url()))
        .basic_auth(&c.id, Some("not-the-secret-at-all"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let logs = crate::common::captured_logs();
    let secrets = [
        code,
        t.access_token().secret().clone(),
        t.refresh_token().unwrap().secret().clone(),
        r1.refresh_token().unwrap().secret().clone(),
        r1.access_token().secret().clone(),
        server.users[0].password.clone(),
        c.secret.clone(),
        "hunter2-wrong-password".into(),
        "not-the-secret-at-all".into(),
    ];
    for s in &secrets {
        remember_secret(s);
        assert!(!logs.contains(s.as_str()), "a credential is in the logs");
    }
    assert!(
        logs.contains("refresh token reused"),
        "reuse is logged (without the token)"
    );
    server.stop().await;
}
