//! Revocation (RFC 7009) and introspection (RFC 7662).

use std::sync::Arc;

use authz_core::jwt::{Algorithm, JwtVerifier};
use authz_core::oauth::{AccessTokenRecord, ClientType, KeyHash};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::params::Params;
use super::{ClientAddress, OAuthError, TokenService, error::no_store};

/// What a presented token turned out to be.
enum Found {
    Refresh(authz_core::oauth::RefreshToken),
    Access {
        claims: serde_json::Map<String, serde_json::Value>,
        jti: String,
        exp: u64,
    },
    Nothing,
}

impl TokenService {
    /// Looks `token` up as a refresh token, then as one of our access tokens (signature and
    /// `iss` checked; expiry is the caller's business).
    async fn find(&self, token: &str, hint: Option<&str>) -> Result<Found, OAuthError> {
        // The hint only orders the lookups (RFC 7009 §2.1); both kinds are always tried.
        let access_first = hint == Some("access_token") || token.matches('.').count() == 2;
        if !access_first && let Some(r) = self.store.refresh(&KeyHash::of(token)).await? {
            return Ok(Found::Refresh(r));
        }
        if let Some(found) = self.own_access_token(token) {
            return Ok(found);
        }
        if access_first && let Some(r) = self.store.refresh(&KeyHash::of(token)).await? {
            return Ok(Found::Refresh(r));
        }
        Ok(Found::Nothing)
    }

    fn own_access_token(&self, token: &str) -> Option<Found> {
        let ring = self.keys.ring();
        // The resource server's verifier, with a far-future clock check done separately: an
        // expired token is still *ours* (revocable, and introspected as inactive).
        let verifier = JwtVerifier::builder(&self.config.issuer, &self.config.audience, [Algorithm::ES256])
            .require_type("at+jwt")
            .build()
            .ok()?;
        verifier.verify_signature(token, &ring.verification).ok()?;
        let payload = token.split('.').nth(1)?;
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).ok()?;
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload).ok()?;
        if claims.get("iss").and_then(|v| v.as_str()) != Some(self.config.issuer.as_str()) {
            return None;
        }
        let jti = claims.get("jti")?.as_str()?.to_string();
        let exp = claims.get("exp")?.as_u64()?;
        Some(Found::Access { claims, jti, exp })
    }
}

/// `POST /revoke` (RFC 7009 §2): revokes a refresh token's whole family (and the access tokens
/// issued from it), or one access token. Unknown, foreign or already-invalid tokens answer 200
/// too (§2.2), so the endpoint tells nothing about tokens the caller does not hold.
pub(crate) async fn revoke(
    State(service): State<Arc<TokenService>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result: Result<(), OAuthError> = async {
        let body = body?;
        let params = Params::form(&headers, &body)?;
        params.no_repeats()?;
        let client = service
            .authenticate_client(&headers, &params, address)
            .await?;
        let token = params.require("token")?;
        let now = service.now();
        match service.find(token, params.get("token_type_hint")?).await? {
            Found::Refresh(r) if r.client_id == client.client.id => {
                service.revoke_family(&r.family_id).await?;
                tracing::info!(client_id = %r.client_id, family = %r.family_id, "refresh token family revoked");
            }
            Found::Access { claims, jti, exp } => {
                let owner = claims.get("client_id").and_then(|v| v.as_str());
                if owner == Some(client.client.id.as_str()) && now < exp {
                    if !service.store.revoke_access(&jti, now).await? {
                        // Not recorded (client credentials): the revocation is the record.
                        service
                            .store
                            .insert_access(AccessTokenRecord {
                                jti: jti.clone(),
                                family_id: None,
                                client_id: client.client.id.clone(),
                                subject: claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
                                expires_at: exp,
                                revoked_at: Some(now),
                            })
                            .await?;
                    }
                    service.deny(&jti, exp).await?;
                    tracing::info!(client_id = %client.client.id, jti = %jti, "access token revoked");
                }
            }
            _ => {}
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /introspect` (RFC 7662 §2): for confidential clients (resource servers). An access
/// token is active while unexpired and unrevoked; a refresh token only to the client it was
/// issued to, while unspent and its family live. Anything else is `{"active": false}`.
pub(crate) async fn introspect(
    State(service): State<Arc<TokenService>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let body = body?;
        let params = Params::form(&headers, &body)?;
        params.no_repeats()?;
        let client = service.authenticate_client(&headers, &params, address).await?;
        if client.client.client_type != ClientType::Confidential {
            return Err(OAuthError::invalid_client(
                "introspection is for confidential clients",
            ));
        }
        let token = params.require("token")?;
        let now = service.now();
        let inactive = json!({ "active": false });
        Ok(match service.find(token, params.get("token_type_hint")?).await? {
            Found::Access { mut claims, jti, exp } => {
                // Revoked if its record says so (its grant's revocation, or its own).
                let live = now < exp
                    && !service.on_deny_list(&claims, &jti)
                    && service
                        .store
                        .access(&jti)
                        .await?
                        .is_none_or(|r| r.revoked_at.is_none());
                if live {
                    // RFC 9449 §6.2: a DPoP-bound token is reported as such.
                    let bound = claims.get("cnf").is_some_and(|c| c.get("jkt").is_some());
                    claims.insert("active".into(), json!(true));
                    claims.insert("token_type".into(), json!(if bound { "DPoP" } else { "Bearer" }));
                    serde_json::Value::Object(claims)
                } else {
                    inactive
                }
            }
            Found::Refresh(r) if r.client_id == client.client.id && r.spent_at.is_none() => {
                let family = service.store.family(&r.family_id).await?;
                let idle = service.config.refresh_idle_timeout.as_secs();
                match family {
                    Some(f)
                        if f.revoked_at.is_none() && now < f.expires_at && now < f.last_used_at + idle =>
                    {
                        json!({
                            "active": true,
                            "client_id": r.client_id,
                            "sub": r.subject,
                            "scope": r.scope.join(" "),
                            "iss": service.config.issuer,
                            "iat": r.issued_at,
                            "exp": f.expires_at.min(f.last_used_at + idle),
                            "token_type": "refresh_token",
                        })
                    }
                    _ => inactive,
                }
            }
            _ => inactive,
        })
    }
    .await;
    match result {
        Ok(body) => {
            let mut r = axum::Json(body).into_response();
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}
