//! OPA over HTTP: each decision is a call to OPA's Data API,
//! `POST {url}/v1/data/{package}/{policy}/allow` with `{"input": …}`.
//!
//! OPA's answer `{"result": true, "decision_id": "…"}` allows. **Everything else denies**, with
//! a reason: a timeout (default 50 ms), a connection error, a non-2xx status, a body that is not
//! JSON, a `result` that is missing (the rule is undefined for this input) or not a boolean.
//! Connections are pooled (reqwest over rustls). OPA's `decision_id`, when its decision logging
//! gives one, is returned in [`Decision::decision_id`] for the decision log line.
//!
//! Put it behind [`Cached`](super::Cached) to reuse a decision for identical inputs for a
//! couple of seconds.

use std::time::Duration;

use super::{Decision, Input, LoadError, Pending, PolicyEngine};

/// How to reach OPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaConfig {
    /// OPA's base URL, e.g. `http://127.0.0.1:8181` (no path). Use `https://` across hosts.
    pub url: String,
    /// The package prefix: policy `N` is the rule `data.{package}.N.allow`. Default `authz`.
    pub package: String,
    /// How long one decision may take, connection included; past it the request is denied.
    /// Default 50 ms: a policy call sits on the request path.
    pub timeout: Duration,
    /// Idle connections kept per host. Default 32.
    pub pool_max_idle: usize,
}

impl OpaConfig {
    /// Defaults for the OPA at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into().trim_end_matches('/').to_string(),
            package: "authz".into(),
            timeout: Duration::from_millis(50),
            pool_max_idle: 32,
        }
    }
}

/// Policies evaluated by an OPA server over its Data API.
#[derive(Debug, Clone)]
pub struct OpaEngine {
    client: reqwest::Client,
    config: OpaConfig,
    policies: Vec<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl OpaEngine {
    /// An engine for `config` that serves the policies named in `policies` (no request is made).
    ///
    /// # Errors
    /// The URL is not `http(s)://…`, or a policy name is not `[a-z0-9_]+`.
    pub fn new(config: OpaConfig, policies: Vec<String>) -> Result<Self, LoadError> {
        let parsed = url::Url::parse(&config.url)
            .map_err(|e| LoadError::new(config.url.clone(), format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(LoadError::new(
                config.url.clone(),
                "expected http(s)://host[:port]",
            ));
        }
        if let Some(bad) = policies.iter().find(|p| !valid_name(p)) {
            return Err(LoadError::new(
                config.url.clone(),
                format!("policy name {bad:?}: use lowercase letters, digits and `_`"),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LoadError::new(config.url.clone(), format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            config,
            policies,
        })
    }

    /// An engine for `config` whose policies are the packages OPA has under `package` now:
    /// `GET {url}/v1/data/{package}` (given up to 10 × the decision timeout, at least 2 s).
    ///
    /// # Errors
    /// OPA cannot be reached or does not answer with an object of packages; as [`OpaEngine::new`].
    pub async fn discover(config: OpaConfig) -> Result<Self, LoadError> {
        let mut engine = Self::new(config, Vec::new())?;
        let url = format!("{}/v1/data/{}", engine.config.url, engine.config.package);
        let wait = (engine.config.timeout * 10).max(Duration::from_secs(2));
        let fail = |m: String| LoadError::new(url.clone(), m);
        let response = engine
            .client
            .get(&url)
            .timeout(wait)
            .send()
            .await
            .map_err(|e| fail(format!("OPA did not answer: {}", describe(&e, wait))))?;
        if !response.status().is_success() {
            return Err(fail(format!("OPA answered {}", response.status())));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| fail(format!("not JSON: {e}")))?;
        let Some(packages) = body.get("result").and_then(|r| r.as_object()) else {
            return Err(fail(format!(
                "no package {} is loaded in OPA (`result` is not an object)",
                engine.config.package
            )));
        };
        engine.policies = packages
            .iter()
            .filter(|(_, v)| v.get("allow").is_some())
            .map(|(k, _)| k.clone())
            .filter(|k| valid_name(k))
            .collect();
        tracing::info!(url = %engine.config.url, policies = ?engine.policies, "OPA policies discovered");
        Ok(engine)
    }

    /// The configuration.
    pub fn config(&self) -> &OpaConfig {
        &self.config
    }

    /// Asks OPA (what [`PolicyEngine::decide`] does).
    pub async fn evaluate(&self, policy: &str, input: &Input) -> Decision {
        if !valid_name(policy) {
            return Decision::failure(format!("policy name {policy:?} cannot be an OPA path"));
        }
        let url = format!(
            "{}/v1/data/{}/{policy}/allow",
            self.config.url, self.config.package
        );
        let body = format!("{{\"input\":{}}}", input.to_json());
        let sent = self
            .client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Decision::failure(format!("opa: {}", describe(&e, self.config.timeout))),
        };
        let status = response.status();
        if !status.is_success() {
            return Decision::failure(format!("opa: answered {status}"));
        }
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Decision::failure(format!("opa: {}", describe(&e, self.config.timeout))),
        };
        let body: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return Decision::failure(format!("opa: the answer is not JSON ({e})")),
        };
        let decision_id = body
            .get("decision_id")
            .and_then(|d| d.as_str())
            .map(str::to_string);
        let decision = match body.get("result") {
            Some(serde_json::Value::Bool(true)) => Decision::allow(),
            Some(serde_json::Value::Bool(false)) => {
                Decision::deny(format!("opa policy {policy:?}: allow is false"))
            }
            None => Decision::failure(format!(
                "opa policy {policy:?}: the result is undefined (no rule data.{}.{policy}.allow for this input)",
                self.config.package
            )),
            Some(other) => Decision::failure(format!(
                "opa policy {policy:?}: the result is not a boolean but {other}"
            )),
        };
        decision.with_decision_id(decision_id)
    }
}

fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} ms", timeout.as_millis())
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        // reqwest's message names the URL (which holds no secret here) and the cause.
        e.to_string()
    }
}

impl PolicyEngine for OpaEngine {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        Pending::boxed(self.evaluate(policy, input))
    }

    fn policies(&self) -> Vec<String> {
        self.policies.clone()
    }

    fn kind(&self) -> &'static str {
        "opa"
    }
}
