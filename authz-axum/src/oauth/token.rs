//! The token endpoint (RFC 6749 §3.2): `authorization_code` (§4.1.3, with PKCE per RFC 7636
//! §4.6), `refresh_token` (§6, rotated per RFC 9700 §4.14.2) and `client_credentials` (§4.4).

use std::sync::Arc;

use authz_core::oauth::{
    AccessTokenRecord, ClientType, CodeRedemption, GrantType, KeyHash, RefreshRotation, RefreshToken,
    RotationDecision, TokenFamily, new_secret, pkce,
};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::client_auth::Authenticated;
use super::params::{Params, split_scope};
use super::{ClientAddress, OAuthError, TokenService, error::no_store};

/// `POST /token`.
pub(crate) async fn token(
    State(service): State<Arc<TokenService>>,
    ClientAddress(address): ClientAddress,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return OAuthError::from(e).into_response(),
    };
    match service.token_request(&uri, &headers, &body, address).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The token request's DPoP proof, checked but not yet recorded.
#[derive(Clone, Copy)]
struct Dpop<'a> {
    proof: Option<&'a authz_core::dpop::CheckedProof>,
}

impl<'a> Dpop<'a> {
    fn jkt(self) -> Option<&'a str> {
        self.proof.map(|p| p.proof.jkt.as_str())
    }
}

/// What a refresh's decision found: the access token's record and the scope it issued, or why
/// it refused.
type Decided = Result<(AccessTokenRecord, Vec<String>), OAuthError>;

/// The checks of a refresh (RFC 6749 §6, RFC 9700 §4.14.2, RFC 9449 §5) on the redeemed token
/// and its family; owned, because the store runs them inside its transaction.
struct RotationCheck {
    client_id: String,
    jkt: Option<String>,
    scope: Option<String>,
    now: u64,
    idle_timeout: u64,
}

impl RotationCheck {
    /// The scope (and roles) of the next tokens, or why there are none.
    fn run(&self, old: &RefreshToken, family: &TokenFamily) -> Result<Vec<String>, OAuthError> {
        if old.client_id != self.client_id {
            return Err(OAuthError::invalid_grant(
                "refresh token was issued to another client",
            ));
        }
        if family.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("grant revoked"));
        }
        if self.now >= family.expires_at {
            return Err(OAuthError::invalid_grant("grant expired (absolute lifetime)"));
        }
        if self.now >= family.last_used_at + self.idle_timeout {
            return Err(OAuthError::invalid_grant("grant expired (idle)"));
        }
        if let Some(bound) = &old.jkt
            && self.jkt.as_deref() != Some(bound.as_str())
        {
            // The token is spent now; a thief without the key gets nothing.
            return Err(OAuthError::invalid_dpop_proof(
                "this refresh token is bound to a DPoP key: send a proof signed with it",
            ));
        }
        // A refresh may narrow the scope, never widen it (RFC 6749 §6).
        narrow(&old.scope, self.scope.as_deref())
    }
}

fn dpop_error(e: authz_core::dpop::DpopError) -> OAuthError {
    match e {
        authz_core::dpop::DpopError::Invalid(why) => OAuthError::invalid_dpop_proof(why),
        authz_core::dpop::DpopError::UseNonce(n) => OAuthError::use_dpop_nonce(n),
    }
}

/// The roles a grant may carry: `available`, narrowed to the requested `scope` (each value a
/// role name; asking for one not available is `invalid_scope`).
fn narrow(available: &[String], scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    match scope {
        None => Ok(available.to_vec()),
        Some(s) => {
            let asked = split_scope(s)?;
            if let Some(bad) = asked.iter().find(|r| !available.contains(r)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {bad:?} is not granted to this client or user"
                )));
            }
            Ok(asked)
        }
    }
}

/// A user's roles, bounded by the client's when the client has any.
pub(crate) fn user_roles(user: &[String], client: &[String]) -> Vec<String> {
    user.iter()
        .filter(|r| client.is_empty() || client.contains(r))
        .cloned()
        .collect()
}

impl TokenService {
    async fn token_request(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        address: Option<std::net::IpAddr>,
    ) -> Result<Response, OAuthError> {
        if uri.query().is_some_and(|q| !q.is_empty()) {
            // RFC 6749 §3.2 / §2.3.1: parameters and credentials go in the body, never the URI.
            return Err(OAuthError::invalid_request(
                "token requests carry their parameters in the body, not the query string",
            ));
        }
        let params = Params::form(headers, body)?;
        params.no_repeats()?;
        let client = self.authenticate_client(headers, &params, address).await?;
        let grant = params.require("grant_type")?;
        let grant = GrantType::parse(grant).ok_or_else(|| {
            OAuthError::unsupported_grant_type(format!(
                "grant_type {grant:?} is not supported (authorization_code, refresh_token, client_credentials)"
            ))
        })?;
        if !client.client.allows(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client may not use the {} grant",
                grant.as_str()
            )));
        }
        let proof = self.dpop_proof(headers, uri.path())?;
        let dpop = Dpop {
            proof: proof.as_ref(),
        };
        let jkt = dpop.jkt();
        let mut response = match grant {
            GrantType::AuthorizationCode => self.code_grant(&client, &params, jkt, dpop).await?,
            GrantType::RefreshToken => self.refresh_grant(&client, &params, jkt, dpop).await?,
            GrantType::ClientCredentials => {
                self.client_credentials_grant(&client, &params, jkt, dpop).await?
            }
        }
        .into_response();
        no_store(&mut response);
        Ok(response)
    }

    /// The key thumbprint of the request's DPoP proof (RFC 9449 §5), if it has one.
    fn dpop_proof(
        &self,
        headers: &HeaderMap,
        request_path: &str,
    ) -> Result<Option<authz_core::dpop::CheckedProof>, OAuthError> {
        let mut proofs = headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Ok(None),
            (Some(p), None) => p
                .to_str()
                .map_err(|_| OAuthError::invalid_dpop_proof("malformed DPoP header"))?,
            (Some(_), Some(_)) => return Err(OAuthError::invalid_dpop_proof("send exactly one DPoP header")),
        };
        // RFC 9449 §4.3 (9): the URI of *this* request (a second mount of the endpoint has
        // another path), on the issuer's origin.
        let uri = format!("{}{}", self.issuer_origin(), request_path);
        let context = authz_core::dpop::ProofContext {
            method: "POST",
            uri: &uri,
            access_token: None,
        };
        // Checked now; its jti is recorded only once the grant checked out (`commit_proof`), so
        // proofs sent with worthless grants cannot fill the replay cache.
        match self.dpop.check(proof, &context, self.now()) {
            Ok(p) => Ok(Some(p)),
            Err(authz_core::dpop::DpopError::Invalid(why)) => Err(OAuthError::invalid_dpop_proof(why)),
            Err(authz_core::dpop::DpopError::UseNonce(n)) => Err(OAuthError::use_dpop_nonce(n)),
        }
    }

    /// Records the proof's `jti` (the replay check) once the grant checked out.
    fn commit_proof(&self, dpop: Dpop<'_>) -> Result<(), OAuthError> {
        match dpop.proof {
            None => Ok(()),
            Some(p) => self.dpop.commit(p, self.now()).map_err(dpop_error),
        }
    }

    async fn client_credentials_grant(
        &self,
        client: &Authenticated,
        params: &Params,
        jkt: Option<&str>,
        dpop: Dpop<'_>,
    ) -> Result<axum::Json<serde_json::Value>, OAuthError> {
        let c = &client.client;
        if c.client_type != ClientType::Confidential {
            return Err(OAuthError::unauthorized_client(
                "client_credentials needs a confidential client",
            ));
        }
        let roles = narrow(&c.roles, params.get("scope")?)?;
        self.commit_proof(dpop)?;
        let issued = self
            .issue_access_token(&c.id, &c.id, &roles, &roles, None, jkt)
            .await?;
        tracing::info!(client_id = %c.id, jti = %issued.jti, grant = "client_credentials", "access token issued");
        Ok(axum::Json(self.token_response(
            &issued,
            &roles,
            None,
            jkt.is_some(),
        )))
    }

    async fn code_grant(
        &self,
        client: &Authenticated,
        params: &Params,
        jkt: Option<&str>,
        dpop: Dpop<'_>,
    ) -> Result<axum::Json<serde_json::Value>, OAuthError> {
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params.get("code_verifier")?;
        let now = self.now();
        let c = &client.client;
        let code = match self.store.redeem_code(&KeyHash::of(code), now).await? {
            CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("unknown or expired code")),
            CodeRedemption::Replayed(code) => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                let revoked = self.revoke_family(&code.family_id).await?;
                tracing::warn!(client_id = %code.client_id, family = %code.family_id, revoked,
                    "authorization code replayed: its tokens are revoked");
                return Err(OAuthError::invalid_grant(
                    "code already used; its tokens are revoked",
                ));
            }
            CodeRedemption::Fresh(code) => code,
        };
        if code.client_id != c.id {
            return Err(OAuthError::invalid_grant("code was issued to another client"));
        }
        if now >= code.expires_at {
            return Err(OAuthError::invalid_grant("code expired"));
        }
        if code.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        match verifier {
            // No challenge was sent (a confidential client, PKCE not required): a verifier now
            // would be a downgrade attempt (RFC 9700 §2.1.1).
            Some(_) if code.code_challenge.is_empty() => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier without a code_challenge",
                ));
            }
            None if code.code_challenge.is_empty() => {}
            Some(v) if pkce::verify_s256(v, &code.code_challenge) => {}
            Some(v) if !pkce::is_valid_verifier(v) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier must be 43–128 unreserved characters",
                ));
            }
            Some(_) => {
                return Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ));
            }
            None => return Err(OAuthError::invalid_grant("code_verifier is required (PKCE)")),
        }
        let family = self
            .store
            .family(&code.family_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("unknown or expired code"))?;
        if family.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("grant revoked"));
        }
        self.commit_proof(dpop)?;
        let (issued, record) = self.sign_access_token(
            &c.id,
            &code.subject,
            &code.roles,
            &code.scope,
            Some(&family.id),
            jkt,
        )?;
        let refresh = c.allows(GrantType::RefreshToken).then(|| {
            let token = new_secret();
            let record = RefreshToken {
                hash: KeyHash::of(&token),
                family_id: family.id.clone(),
                client_id: c.id.clone(),
                subject: code.subject.clone(),
                roles: code.roles.clone(),
                scope: code.scope.clone(),
                issued_at: now,
                spent_at: None,
                // RFC 9449 §5: a public client's refresh token is bound to its DPoP key.
                jkt: jkt
                    .filter(|_| c.client_type == ClientType::Public)
                    .map(str::to_string),
            };
            (token, record)
        });
        let (refresh, refresh_record) = refresh.map_or((None, None), |(t, r)| (Some(t), Some(r)));
        // The access token's record and the refresh token: one transaction, and only while
        // the family is live (a concurrent replay may have revoked it since the checks above).
        if !self
            .store
            .record_issued(&family.id, record, refresh_record, now)
            .await?
        {
            return Err(OAuthError::invalid_grant("grant revoked"));
        }
        tracing::info!(client_id = %c.id, sub = %code.subject, jti = %issued.jti, grant = "authorization_code",
            "access token issued");
        Ok(axum::Json(self.token_response(
            &issued,
            &code.scope,
            refresh.as_deref(),
            jkt.is_some(),
        )))
    }

    async fn refresh_grant(
        &self,
        client: &Authenticated,
        params: &Params,
        jkt: Option<&str>,
        dpop: Dpop<'_>,
    ) -> Result<axum::Json<serde_json::Value>, OAuthError> {
        let presented = params.require("refresh_token")?;
        let now = self.now();
        let c = &client.client;
        // Everything the checks need, owned: the store runs them inside its transaction, so
        // the spend, the checks and the next tokens are one commit (RFC 9700 §4.14.2).
        let check = RotationCheck {
            client_id: c.id.clone(),
            jkt: jkt.map(str::to_string),
            scope: params.get("scope")?.map(str::to_string),
            now,
            idle_timeout: self.config.refresh_idle_timeout.as_secs(),
        };
        let next_refresh = new_secret();
        // The access token's `jti` and `exp` now; its subject and family once the token is read.
        let template = self.new_access_record(&c.id, "", None, now);
        // What the decision found, for after the commit: the record and scope it issued, or
        // why it refused.
        let decided = Arc::new(std::sync::Mutex::new(None::<Decided>));
        let decision = {
            let decided = Arc::clone(&decided);
            let (verifier, proof) = (Arc::clone(&self.dpop), dpop.proof.cloned());
            let next_hash = KeyHash::of(&next_refresh);
            Box::new(move |old: &RefreshToken, family: &TokenFamily| {
                let checked = check.run(old, family).and_then(|scope| {
                    // The proof's jti is recorded only once the grant checked out.
                    if let Some(p) = &proof {
                        verifier.commit(p, now).map_err(dpop_error)?;
                    }
                    Ok(scope)
                });
                let found = checked.map(|scope| {
                    let access = AccessTokenRecord {
                        family_id: Some(family.id.clone()),
                        subject: old.subject.clone(),
                        ..template
                    };
                    (access, scope)
                });
                let next = found.as_ref().ok().map(|(access, scope)| {
                    let refresh = RefreshToken {
                        hash: next_hash,
                        family_id: family.id.clone(),
                        client_id: old.client_id.clone(),
                        subject: old.subject.clone(),
                        roles: scope.clone(),
                        scope: scope.clone(),
                        issued_at: now,
                        spent_at: None,
                        jkt: old.jkt.clone(),
                    };
                    (access.clone(), refresh)
                });
                *decided.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found);
                next
            }) as RotationDecision
        };
        let rotation = self
            .store
            .rotate_refresh(&KeyHash::of(presented), now, decision)
            .await?;
        let found = decided
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let (record, scope) = match (rotation, found) {
            (RefreshRotation::Unknown, _) => return Err(OAuthError::invalid_grant("unknown refresh token")),
            (RefreshRotation::Spent(old), _) => {
                if old.client_id == c.id {
                    // RFC 9700 §4.14.2: reuse means theft — revoke the family, the live
                    // descendant included.
                    let revoked = self.revoke_family(&old.family_id).await?;
                    tracing::warn!(client_id = %c.id, family = %old.family_id, revoked,
                        "refresh token reused: its family is revoked");
                }
                return Err(OAuthError::invalid_grant(
                    "refresh token already used; the grant is revoked",
                ));
            }
            (RefreshRotation::Fresh { issued: true, .. }, Some(Ok(issued))) => issued,
            (RefreshRotation::Fresh { token, .. }, found) => {
                if token.client_id != c.id {
                    // Bound to its client (RFC 6749 §6). Another client presenting it is not
                    // reuse by the holder, but the token is spent now: revoke, it has leaked.
                    self.revoke_family(&token.family_id).await?;
                }
                // Refused by the checks, or (a store without one transaction) the family was
                // revoked between the check and the write.
                return Err(match found {
                    Some(Err(why)) => why,
                    _ => OAuthError::invalid_grant("grant revoked"),
                });
            }
        };
        // Recorded and committed with the spend: sign what was recorded.
        let issued = self.sign_recorded(&record, &scope, &scope, jkt)?;
        tracing::info!(client_id = %c.id, sub = %record.subject, jti = %issued.jti, grant = "refresh_token",
            "access token issued; refresh token rotated");
        Ok(axum::Json(self.token_response(
            &issued,
            &scope,
            Some(&next_refresh),
            jkt.is_some(),
        )))
    }

    fn token_response(
        &self,
        issued: &super::IssuedAccessToken,
        scope: &[String],
        refresh: Option<&str>,
        dpop: bool,
    ) -> serde_json::Value {
        let mut body = json!({
            "access_token": issued.token,
            // RFC 9449 §5: a bound token's type is DPoP.
            "token_type": if dpop { "DPoP" } else { "Bearer" },
            "expires_in": self.config.access_token_lifetime.as_secs(),
            "scope": scope.join(" "),
        });
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        body
    }
}
