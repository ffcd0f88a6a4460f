//! Presets for the identity providers people actually use: where each puts roles and scopes,
//! and how each one's access tokens differ from its ID tokens.
//!
//! | preset | roles from | other | refuses |
//! |---|---|---|---|
//! | `generic` | `roles` | — | ID-token hashes, `events` |
//! | `keycloak` | `/realm_access/roles` + `/resource_access/<audience>/roles` | payload `typ` must be `Bearer` | ID (`typ: ID`) and refresh tokens |
//! | `auth0` | none by default (add your namespaced claim) | `permissions` grants catalog permissions | `nonce` (ID tokens) |
//! | `entra` | `roles` (app roles) | tenant from `tid`; scopes from `scp` | `nonce` (ID tokens) |
//! | `okta` | `groups` | scopes from `scp` | `nonce` (ID tokens) |
//! | `cognito` | `cognito:groups` | audience in `client_id`; `token_use` must be `access` | ID tokens (`token_use: id`) |
//! | `google` | none | — | `nonce` (sign-in ID tokens) |
//!
//! Every preset also keeps the defaults of [`JwtVerifier`]: header `typ` absent, `JWT` or
//! `at+jwt`; `at_hash`, `c_hash`, `s_hash` and `events` refused.
//!
//! Token shapes each preset expects (from each provider's public documentation):
//!
//! - **Keycloak** access token: `{"iss":"https://kc/realms/demo","aud":"api.example.com",
//!   "typ":"Bearer","azp":"web","realm_access":{"roles":["analyst"]},
//!   "resource_access":{"api.example.com":{"roles":["deployer"]}},"scope":"openid profile"}`.
//!   Its ID token has `"typ":"ID"` (and usually `at_hash`).
//! - **Auth0** access token: `{"iss":"https://tenant.auth0.com/","aud":["api.example.com",
//!   "https://tenant.auth0.com/userinfo"],"scope":"openid read:models",
//!   "permissions":["model:run"],"https://registry.example.com/roles":["analyst"]}`. ID
//!   tokens have the client id as `aud` and a `nonce`.
//! - **Entra ID** v1 access token: `iss` `https://sts.windows.net/{tid}/`, `"ver":"1.0"`,
//!   `"scp":"Models.Read"` (space-separated string) or `"roles":["Registry.Admin"]`; v2:
//!   `iss` `https://login.microsoftonline.com/{tid}/v2.0`, `"ver":"2.0"`, `aud` the API's
//!   client id. ID tokens carry `nonce`.
//! - **Okta** access token: `{"ver":1,"iss":"https://org.okta.com/oauth2/default",
//!   "aud":"api://default","cid":"0oa…","scp":["openid","models.read"],"groups":["analyst"]}`.
//! - **Cognito** access token: `{"token_use":"access","client_id":"7abc…","scope":"…",
//!   "cognito:groups":["analyst"],"username":"…"}` (no `aud`); ID token: `"token_use":"id"`,
//!   `"aud":"7abc…"`.
//! - **Google**: Google's OAuth access tokens are opaque (not JWTs) and cannot be verified
//!   locally. The JWTs Google signs are ID tokens; this preset accepts only the
//!   service-to-service kind (`aud` = your service's URL, as Cloud Run and IAP-style callers
//!   send) and refuses the sign-in kind (`nonce`, `at_hash`).

use std::fmt;
use std::str::FromStr;

use super::algorithm::Algorithm;
use super::error::ConfigError;
use super::mapping::ClaimMapping;
use super::verifier::{JwtVerifier, JwtVerifierBuilder};

/// An identity provider preset (see the module docs for what each one sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Provider {
    /// RFC 9068-style access tokens with a `roles` claim.
    #[default]
    Generic,
    /// Keycloak.
    Keycloak,
    /// Auth0.
    Auth0,
    /// Microsoft Entra ID (Azure AD), v1 and v2 tokens.
    Entra,
    /// Okta.
    Okta,
    /// Amazon Cognito user pools.
    Cognito,
    /// Google (service-to-service ID tokens; see the module docs).
    Google,
}

/// The name is not a known provider preset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}; use one of generic, keycloak, auth0, entra, okta, cognito, google")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "generic" => Provider::Generic,
            "keycloak" => Provider::Keycloak,
            "auth0" => Provider::Auth0,
            "entra" => Provider::Entra,
            "okta" => Provider::Okta,
            "cognito" => Provider::Cognito,
            "google" => Provider::Google,
            _ => return Err(UnknownProvider(s.to_string())),
        })
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Generic => "generic",
            Provider::Keycloak => "keycloak",
            Provider::Auth0 => "auth0",
            Provider::Entra => "entra",
            Provider::Okta => "okta",
            Provider::Cognito => "cognito",
            Provider::Google => "google",
        })
    }
}

impl Provider {
    /// A verifier builder with this provider's token-kind rules. Add audiences, leeway and
    /// the rest on the returned builder.
    ///
    /// ```
    /// use authz_core::jwt::{Algorithm, Provider};
    /// let verifier = Provider::Cognito
    ///     .verifier("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", "7abcclientid", [Algorithm::RS256])
    ///     .build()?;
    /// assert_eq!(verifier.audience_claim(), "client_id");
    /// # Ok::<(), authz_core::jwt::ConfigError>(())
    /// ```
    pub fn verifier(
        self,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> JwtVerifierBuilder {
        let b = JwtVerifier::builder(issuer, audience, algorithms);
        match self {
            Provider::Generic => b,
            Provider::Keycloak => b.require_claim_value("typ", "Bearer"),
            Provider::Auth0 | Provider::Entra | Provider::Okta | Provider::Google => b.refuse_claim("nonce"),
            Provider::Cognito => b
                .audience_claim("client_id")
                .require_claim_value("token_use", "access"),
        }
    }

    /// The claim mapping of this provider for a service known by `audiences` (Keycloak reads
    /// the client roles of the client each audience names).
    pub fn mapping(self, audiences: &[String]) -> Result<ClaimMapping, ConfigError> {
        Ok(match self {
            Provider::Generic => ClaimMapping::default(),
            Provider::Keycloak => {
                let mut m = ClaimMapping::none().also_roles_from("/realm_access/roles")?;
                for aud in audiences {
                    let escaped = aud.replace('~', "~0").replace('/', "~1");
                    m = m.also_roles_from(&format!("/resource_access/{escaped}/roles"))?;
                }
                m
            }
            Provider::Auth0 => ClaimMapping::none().permissions_from("permissions")?,
            Provider::Entra => ClaimMapping::default().tenant_from("tid")?,
            Provider::Okta => ClaimMapping::none().also_roles_from("groups")?,
            Provider::Cognito => ClaimMapping::none().also_roles_from("cognito:groups")?,
            Provider::Google => ClaimMapping::none(),
        })
    }
}
