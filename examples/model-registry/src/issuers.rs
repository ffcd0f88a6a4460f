//! Which issuers the registry trusts, from the environment (one issuer) or from
//! `AUTHZ_ISSUERS_FILE` (several, each isolated), and how each becomes an
//! [`authz_axum::Issuer`].
//!
//! An issuers file has one `[[issuer]]` table per issuer, with the fields the environment
//! variables name (lower case, without `AUTHZ_`):
//!
//! ```toml
//! [[issuer]]
//! issuer = "https://kc.example.com/realms/demo"
//! audience = "api.example.com"            # or ["api.example.com", "registry"]
//! discovery = true                        # or jwks_url = "https://…/certs"
//! algorithms = ["RS256"]
//! provider = "keycloak"                   # generic|keycloak|auth0|entra|okta|cognito|google
//! roles_claims = ["/realm_access/roles"]  # replaces the provider's role claims
//! scope_permissions = false
//! require_claims = ["typ=Bearer"]
//! audience_claim = "aud"
//! token_types = ["JWT", "at+jwt"]
//! tenant_claim = "tenant"                 # default: the provider's (Entra: tid), else none
//! ```

use std::path::Path;
use std::sync::Arc;

use authz_axum::Issuer;
use authz_axum::core::auth::KeyProvider;
use authz_axum::core::clock::Clock;
use authz_axum::core::jwt::{Algorithm, AlgorithmSet, JwtVerifier, Provider};
use authz_axum::jwks::{JwksOptions, RemoteJwks};
use serde::Deserialize;

use crate::StartError;
use crate::config::Config;

/// Where the keys of an issuer come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS URL.
    Jwks(String),
    /// The `jwks_uri` of the issuer's OpenID Connect discovery document.
    Discovery,
    /// The built-in dev issuer (its own JWKS on this server).
    Dev,
}

/// One issuer's settings, validated.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// Where its keys come from.
    pub keys: KeySource,
    /// Algorithm allowlist.
    pub algorithms: Vec<Algorithm>,
    /// Provider preset.
    pub provider: Provider,
    /// Role claim paths replacing the preset's (None: the preset's).
    pub roles_claims: Option<Vec<String>>,
    /// Scopes naming catalog permissions grant them.
    pub scope_permissions: bool,
    /// `name=value` claims required.
    pub require_claims: Vec<(String, String)>,
    /// The audience claim (None: the preset's, `aud` by default).
    pub audience_claim: Option<String>,
    /// Accepted header `typ` values (None: the defaults).
    pub token_types: Option<Vec<String>>,
    /// The claim path the tenant is read from (None: the provider's preset, e.g. Entra's `tid`;
    /// `tenant` for the dev issuer). A token without it belongs to the default tenant.
    pub tenant_claim: Option<String>,
}

/// Names a setting in error messages: an environment variable, or a field of a file's table.
pub(crate) trait Origin {
    fn name(&self, field: &str) -> String;
}

struct Env;

impl Origin for Env {
    fn name(&self, field: &str) -> String {
        format!("AUTHZ_{}", field.to_ascii_uppercase())
    }
}

/// A non-empty, trimmed list from a comma-separated value.
fn list(origin: &dyn Origin, field: &str, value: &str) -> Result<Vec<String>, StartError> {
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(StartError(format!(
            "{}: {value:?} has an empty entry; give a comma-separated list",
            origin.name(field)
        )));
    }
    Ok(items)
}

/// Claim paths, each checked (a literal name, or an RFC 6901 pointer).
fn claim_paths(origin: &dyn Origin, items: Vec<String>) -> Result<Vec<String>, StartError> {
    for item in &items {
        authz_axum::core::jwt::ClaimPath::parse(item)
            .map_err(|e| StartError(format!("{}: {e}", origin.name("roles_claims"))))?;
    }
    Ok(items)
}

fn boolean(origin: &dyn Origin, field: &str, value: &str) -> Result<bool, StartError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(StartError(format!(
            "{}: {other:?} is not true or false",
            origin.name(field)
        ))),
    }
}

fn non_empty(origin: &dyn Origin, field: &str, value: &str) -> Result<String, StartError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(StartError(format!("{} is empty", origin.name(field))));
    }
    Ok(v.to_string())
}

pub(crate) fn algorithms(origin: &dyn Origin, names: &[String]) -> Result<Vec<Algorithm>, StartError> {
    let algs = names
        .iter()
        .map(|n| n.trim())
        .map(|n| {
            n.parse::<Algorithm>()
                .map_err(|e| StartError(format!("{}: {n:?}: {e}", origin.name("algorithms"))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if algs.is_empty() {
        return Err(StartError(format!("{} is empty", origin.name("algorithms"))));
    }
    Ok(algs)
}

fn claim_values(origin: &dyn Origin, items: &[String]) -> Result<Vec<(String, String)>, StartError> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() && !v.trim().is_empty() => {
                Ok((n.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(StartError(format!(
                "{}: {item:?} must be name=value",
                origin.name("require_claims")
            ))),
        })
        .collect()
}

fn provider(origin: &dyn Origin, value: &str) -> Result<Provider, StartError> {
    value
        .parse()
        .map_err(|e| StartError(format!("{}: {e}", origin.name("provider"))))
}

impl IssuerSettings {
    /// The one issuer the environment (or the command line) describes. `dev_issuer` is the
    /// built-in dev issuer's URL, used when neither `AUTHZ_JWKS_URL` nor `AUTHZ_DISCOVERY`
    /// names an outside provider.
    pub fn from_config(config: &Config, dev_issuer: &str) -> Result<Self, StartError> {
        let o: &dyn Origin = &Env;
        let discovery = match &config.discovery {
            Some(v) => boolean(o, "discovery", v)?,
            None => false,
        };
        let jwks_url = config
            .jwks_url
            .as_deref()
            .map(|v| non_empty(o, "jwks_url", v))
            .transpose()?;
        let keys = match (jwks_url, discovery) {
            (Some(_), true) => {
                return Err(StartError(
                    "AUTHZ_JWKS_URL and AUTHZ_DISCOVERY=true both name the keys; set one".into(),
                ));
            }
            (Some(url), false) => KeySource::Jwks(url),
            (None, true) => KeySource::Discovery,
            (None, false) => KeySource::Dev,
        };
        let issuer = match (&config.issuer, &keys) {
            (Some(i), KeySource::Dev) if i.trim() != dev_issuer => {
                // Without keys from the named provider, the built-in dev issuer would mint
                // tokens under that provider's name: refuse instead.
                return Err(StartError(format!(
                    "AUTHZ_ISSUER is {:?} but neither AUTHZ_JWKS_URL nor AUTHZ_DISCOVERY=true says where its keys are; \
                     set one (or unset AUTHZ_ISSUER to use the built-in dev issuer)",
                    i.trim()
                )));
            }
            (Some(i), _) => non_empty(o, "issuer", i)?,
            (None, KeySource::Dev) => dev_issuer.to_string(),
            (None, _) => {
                return Err(StartError(
                    "AUTHZ_ISSUER is required when AUTHZ_JWKS_URL or AUTHZ_DISCOVERY names an outside provider"
                        .into(),
                ));
            }
        };
        Ok(Self {
            issuer,
            audiences: vec![non_empty(o, "audience", &config.audience)?],
            keys,
            algorithms: {
                if config.algorithms.iter().any(|a| a.trim().is_empty()) {
                    return Err(StartError(format!(
                        "{}: {:?} has an empty entry; give a comma-separated list",
                        o.name("algorithms"),
                        config.algorithms.join(",")
                    )));
                }
                algorithms(o, &config.algorithms)?
            },
            provider: config
                .provider
                .as_deref()
                .map(|p| provider(o, p))
                .transpose()?
                .unwrap_or_default(),
            roles_claims: config
                .roles_claims
                .as_deref()
                .map(|v| list(o, "roles_claims", v).and_then(|l| claim_paths(o, l)))
                .transpose()?,
            scope_permissions: match &config.scope_permissions {
                Some(v) => boolean(o, "scope_permissions", v)?,
                None => false,
            },
            require_claims: match &config.require_claims {
                Some(v) => claim_values(o, &list(o, "require_claims", v)?)?,
                None => Vec::new(),
            },
            audience_claim: config
                .audience_claim
                .as_deref()
                .map(|v| non_empty(o, "audience_claim", v))
                .transpose()?,
            token_types: config
                .token_types
                .as_deref()
                .map(|v| list(o, "token_types", v))
                .transpose()?,
            tenant_claim: config
                .tenant_claim
                .as_deref()
                .map(|v| non_empty(o, "tenant_claim", v))
                .transpose()?,
        })
    }

    /// Every issuer of an issuers file (see the module docs). Errors name the file, the line
    /// and the field.
    pub fn from_file(path: &Path) -> Result<Vec<Self>, StartError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError(format!("AUTHZ_ISSUERS_FILE {shown}: cannot read it: {e}")))?;
        let file: IssuersFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!(":{}", line_of(&text, s.start)))
                .unwrap_or_default();
            let hint = if e.message().contains("expected a sequence") {
                " (write [[issuer]] with double brackets: one table per issuer)"
            } else {
                ""
            };
            StartError(format!("AUTHZ_ISSUERS_FILE {shown}{line}: {}{hint}", e.message()))
        })?;
        if file.issuer.is_empty() {
            return Err(StartError(format!(
                "AUTHZ_ISSUERS_FILE {shown}: no [[issuer]] table; add one per trusted issuer"
            )));
        }
        let mut out = Vec::new();
        for table in file.issuer {
            let at = FileOrigin {
                file: shown.to_string(),
                line: line_of(&text, table.issuer.span().start),
            };
            out.push(table.validate(&at)?);
        }
        for (i, s) in out.iter().enumerate() {
            if out[..i].iter().any(|o| o.issuer == s.issuer) {
                return Err(StartError(format!(
                    "AUTHZ_ISSUERS_FILE {shown}: issuer {:?} appears twice",
                    s.issuer
                )));
            }
        }
        Ok(out)
    }

    /// Builds the issuer: its verifier (with the preset's token-kind rules), its mapping and
    /// its key source (discovery is fetched now; a JWKS is fetched by `start`).
    pub async fn build(
        &self,
        clock: Arc<dyn Clock>,
        dev_jwks: &str,
    ) -> Result<(Issuer, Option<RemoteJwks>), StartError> {
        let at = |what: &str| format!("issuer {}: {what}", self.issuer);
        let mut b = self.provider.verifier(
            self.issuer.clone(),
            self.audiences[0].clone(),
            self.algorithms.iter().copied(),
        );
        for aud in &self.audiences[1..] {
            b = b.also_audience(aud.clone());
        }
        if let Some(claim) = &self.audience_claim {
            b = b.audience_claim(claim.clone());
        }
        for (name, value) in &self.require_claims {
            b = b.require_claim_value(name.clone(), value.clone());
        }
        if let Some(types) = &self.token_types {
            b = b.token_types(types);
        }
        let verifier: JwtVerifier = b.build().map_err(|e| StartError(at(&e.to_string())))?;
        let mut mapping = self
            .provider
            .mapping(&self.audiences)
            .map_err(|e| StartError(at(&e.to_string())))?;
        if let Some(paths) = &self.roles_claims {
            // Replace the preset's role sources; keep what else it reads (permissions, tenant).
            mapping = mapping.without_roles();
            for p in paths {
                mapping = mapping
                    .also_roles_from(p)
                    .map_err(|e| StartError(at(&format!("roles claims: {e}"))))?;
            }
        }
        mapping = mapping.scope_permissions(self.scope_permissions);
        // The tenant: the claim named, else the provider's; the dev issuer's tokens name it in
        // `tenant`. An outside provider's tokens are not re-read for a claim nobody named (a
        // `tenant` claim meaning something else there must not move callers between tenants).
        let tenant_claim = match (&self.tenant_claim, mapping.tenant_source(), &self.keys) {
            (Some(c), _, _) => Some(c.as_str()),
            (None, None, KeySource::Dev) => Some("tenant"),
            _ => None,
        };
        if let Some(claim) = tenant_claim {
            mapping = mapping
                .tenant_from(claim)
                .map_err(|e| StartError(at(&format!("tenant claim: {e}"))))?;
        }
        if self.provider == Provider::Auth0 && self.roles_claims.is_none() {
            tracing::warn!(
                issuer = %self.issuer,
                "auth0 has no standard roles claim: only the `permissions` claim grants anything; \
                 set AUTHZ_ROLES_CLAIMS to your namespaced roles claim"
            );
        }
        let allowed: AlgorithmSet = self.algorithms.iter().copied().collect();
        let options = JwksOptions {
            clock,
            ..JwksOptions::default()
        };
        let remote = match &self.keys {
            KeySource::Jwks(url) => RemoteJwks::new(url, allowed, options)
                .map_err(|e| StartError(format!("AUTHZ_JWKS_URL: {e}")))?,
            KeySource::Dev => RemoteJwks::new(dev_jwks, allowed, options)
                .map_err(|e| StartError(format!("dev issuer JWKS: {e}")))?,
            KeySource::Discovery => RemoteJwks::discover(&self.issuer, allowed, options)
                .await
                .map_err(|e| StartError(format!("AUTHZ_DISCOVERY: {e}")))?,
        };
        let provider: Arc<dyn KeyProvider> = Arc::new(remote.clone());
        Ok((
            Issuer::with_provider(verifier, provider).with_mapping(mapping),
            Some(remote),
        ))
    }
}

struct FileOrigin {
    file: String,
    line: usize,
}

impl Origin for FileOrigin {
    fn name(&self, field: &str) -> String {
        format!("AUTHZ_ISSUERS_FILE {}:{}: `{field}`", self.file, self.line)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    #[serde(default)]
    issuer: Vec<IssuerTable>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerTable {
    issuer: toml::Spanned<String>,
    audience: OneOrMany,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    discovery: bool,
    algorithms: Vec<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    roles_claims: Option<Vec<String>>,
    #[serde(default)]
    scope_permissions: bool,
    #[serde(default)]
    require_claims: Vec<String>,
    #[serde(default)]
    audience_claim: Option<String>,
    #[serde(default)]
    token_types: Option<Vec<String>>,
    #[serde(default)]
    tenant_claim: Option<String>,
}

impl IssuerTable {
    fn validate(self, o: &FileOrigin) -> Result<IssuerSettings, StartError> {
        let issuer = non_empty(o, "issuer", self.issuer.get_ref())?;
        let audiences = match self.audience {
            OneOrMany::One(a) => vec![non_empty(o, "audience", &a)?],
            OneOrMany::Many(list) => list
                .iter()
                .map(|a| non_empty(o, "audience", a))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if audiences.is_empty() {
            return Err(StartError(format!("{} is empty", o.name("audience"))));
        }
        let keys = match (self.jwks_url, self.discovery) {
            (Some(_), true) => {
                return Err(StartError(format!(
                    "{}: give either jwks_url or discovery = true",
                    o.name("jwks_url")
                )));
            }
            (Some(url), false) => KeySource::Jwks(non_empty(o, "jwks_url", &url)?),
            (None, true) => KeySource::Discovery,
            (None, false) => {
                return Err(StartError(format!(
                    "{}: each issuer needs jwks_url or discovery = true",
                    o.name("jwks_url")
                )));
            }
        };
        let trimmed = |field: &str, items: Vec<String>| -> Result<Vec<String>, StartError> {
            items.iter().map(|i| non_empty(o, field, i)).collect()
        };
        Ok(IssuerSettings {
            issuer,
            audiences,
            keys,
            algorithms: algorithms(o, &self.algorithms)?,
            provider: self
                .provider
                .as_deref()
                .map(|p| provider(o, p))
                .transpose()?
                .unwrap_or_default(),
            roles_claims: self
                .roles_claims
                .map(|r| trimmed("roles_claims", r))
                .transpose()?,
            scope_permissions: self.scope_permissions,
            require_claims: claim_values(o, &trimmed("require_claims", self.require_claims)?)?,
            audience_claim: self
                .audience_claim
                .map(|a| non_empty(o, "audience_claim", &a))
                .transpose()?,
            token_types: self.token_types.map(|t| trimmed("token_types", t)).transpose()?,
            tenant_claim: self
                .tenant_claim
                .map(|a| non_empty(o, "tenant_claim", &a))
                .transpose()?,
        })
    }
}
