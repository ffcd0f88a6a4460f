//! Embedded Rego (regorus): a directory of `.rego` files, compiled at start, reloaded on change
//! with an atomic swap.
//!
//! **Policy names.** Policy `N` is the Rego package `authz.N`; its rule `allow` must be `true`
//! to allow (`false`, undefined or anything not a boolean denies). An optional rule `reasons`
//! (a set or array of strings) explains a deny. Other packages (helpers, data) may sit beside.
//!
//! ```rego
//! package authz.deploy
//! import rego.v1
//!
//! default allow := false
//! allow if {
//!     "admin" in input.principal.effective_roles
//! }
//! reasons contains "only admins deploy" if not allow
//! ```
//!
//! **Reloading.** [`RegoEngine::reload`] reads and compiles the whole directory into a new
//! generation and swaps it in only if every file compiled: a broken file is refused with its
//! path, line and column, logged, and the previous generation keeps answering — a decision never
//! sees a half-loaded policy. [`RegoEngine::reload_if_changed`] does that only when a file's
//! size or modification time changed (or a file appeared or went), and
//! [`RegoEngine::watch`] (feature `tokio`) polls for that on an interval.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::{Decision, Input, LoadError, Pending, PolicyEngine};

/// The Rego package prefix under which policies are looked up: policy `N` is package `authz.N`.
pub const PACKAGE_PREFIX: &str = "authz";

#[derive(Clone)]
struct Compiled {
    allow: regorus::CompiledPolicy,
    reasons: Option<regorus::CompiledPolicy>,
}

/// One compiled generation of the directory.
struct Generation {
    policies: BTreeMap<String, Compiled>,
    /// `(file, size, modified)` of every `.rego` file read, to notice changes.
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

/// Rego policies from a directory, evaluated in process by regorus.
pub struct RegoEngine {
    dir: PathBuf,
    current: ArcSwap<Generation>,
}

impl std::fmt::Debug for RegoEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoEngine")
            .field("dir", &self.dir)
            .field("policies", &self.policies())
            .finish()
    }
}

fn rego_files(dir: &Path) -> Result<Vec<(PathBuf, u64, Option<SystemTime>)>, LoadError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| {
            LoadError::new(d.display().to_string(), format!("cannot read the directory: {e}"))
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| LoadError::new(d.display().to_string(), e.to_string()))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| LoadError::new(path.display().to_string(), e.to_string()))?;
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rego") {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// regorus reports `--> file:line:col`, the source line and `error: …` on separate lines; one
/// line for logs: `line L, column C: …: `source``.
fn tidy(raw: &str) -> String {
    let location = raw.lines().find_map(|l| {
        let at = l.trim().strip_prefix("--> ")?;
        let mut parts = at.rsplitn(3, ':');
        let col = parts.next()?;
        let line = parts.next()?;
        Some(format!("line {line}, column {col}"))
    });
    let error = raw.lines().find_map(|l| l.trim().strip_prefix("error: "));
    let source = raw.lines().find_map(|l| {
        let (n, code) = l.split_once(" | ")?;
        n.trim().parse::<u32>().ok().map(|_| code.trim().to_string())
    });
    match (location, error) {
        (Some(at), Some(e)) => match source {
            Some(code) if !code.is_empty() => format!("{at}: {e}: `{code}`"),
            _ => format!("{at}: {e}"),
        },
        _ => raw.trim().replace('\n', " "),
    }
}

fn compile(dir: &Path) -> Result<Generation, LoadError> {
    let files = rego_files(dir)?;
    if files.is_empty() {
        return Err(LoadError::new(
            dir.display().to_string(),
            "no .rego files in this directory",
        ));
    }
    let mut engine = regorus::Engine::new();
    for (path, _, _) in &files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        engine
            .add_policy(path.display().to_string(), text)
            .map_err(|e| LoadError::new(path.display().to_string(), tidy(&e.to_string())))?;
    }
    let packages = engine
        .get_packages()
        .map_err(|e| LoadError::new(dir.display().to_string(), e.to_string()))?;
    let prefix = format!("data.{PACKAGE_PREFIX}.");
    let mut policies = BTreeMap::new();
    for package in packages {
        let Some(name) = package.strip_prefix(&prefix) else {
            continue;
        };
        if policies.contains_key(name) {
            continue;
        }
        let allow = engine
            .compile_with_entrypoint(&format!("{package}.allow").into())
            .map_err(|e| {
                LoadError::new(
                    dir.display().to_string(),
                    format!(
                        "policy {name:?} (package {PACKAGE_PREFIX}.{name}): {}",
                        tidy(&e.to_string())
                    ),
                )
            })?;
        let reasons = engine
            .compile_with_entrypoint(&format!("{package}.reasons").into())
            .ok();
        policies.insert(name.to_string(), Compiled { allow, reasons });
    }
    Ok(Generation { policies, files })
}

impl RegoEngine {
    /// Reads and compiles every `.rego` file under `dir` (recursively).
    ///
    /// # Errors
    /// The directory cannot be read or holds no `.rego` file; a file does not parse or compile
    /// (the message names the file, line and column); a package `authz.N` has no usable `allow`.
    pub fn load(dir: impl Into<PathBuf>) -> Result<Self, LoadError> {
        let dir = dir.into();
        let generation = compile(&dir)?;
        tracing::info!(dir = %dir.display(), policies = ?generation.policies.keys().collect::<Vec<_>>(), "rego policies loaded");
        Ok(Self {
            dir,
            current: ArcSwap::from_pointee(generation),
        })
    }

    /// The directory the policies are read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads and compiles the directory again and, if everything compiled, swaps the new
    /// policies in atomically; returns the policy names now loaded.
    ///
    /// # Errors
    /// As [`RegoEngine::load`]; the error is also logged, and the previous policies keep
    /// answering.
    pub fn reload(&self) -> Result<Vec<String>, LoadError> {
        match compile(&self.dir) {
            Ok(generation) => {
                let names: Vec<String> = generation.policies.keys().cloned().collect();
                self.current.store(Arc::new(generation));
                tracing::info!(dir = %self.dir.display(), policies = ?names, "rego policies reloaded");
                Ok(names)
            }
            Err(e) => {
                tracing::error!(error = %e, "rego policy change refused; the previous policies keep answering");
                Err(e)
            }
        }
    }

    /// Whether a `.rego` file under the directory changed (size, modification time), appeared
    /// or went since the last successful load.
    pub fn changed(&self) -> bool {
        match rego_files(&self.dir) {
            Ok(files) => files != self.current.load().files,
            Err(_) => true,
        }
    }

    /// [`reload`](Self::reload) if [`changed`](Self::changed); `Ok(false)` when nothing changed.
    ///
    /// # Errors
    /// As [`RegoEngine::reload`]. A refused change is retried only once the files change again.
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        if !self.changed() {
            return Ok(false);
        }
        match self.reload() {
            Ok(_) => Ok(true),
            Err(e) => {
                // Remember the broken files, so that the same error is not logged on every poll;
                // the compiled policies stay the previous ones.
                if let Ok(files) = rego_files(&self.dir) {
                    let old = self.current.load_full();
                    self.current.store(Arc::new(Generation {
                        policies: old.policies.clone(),
                        files,
                    }));
                }
                Err(e)
            }
        }
    }

    /// Polls the directory every `interval` and reloads on change, until the returned task is
    /// aborted (or the engine dropped).
    #[cfg(feature = "tokio")]
    pub fn watch(self: &Arc<Self>, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { return };
                // Errors are logged by `reload`.
                let _ = tokio::task::spawn_blocking(move || engine.reload_if_changed()).await;
            }
        })
    }

    /// Evaluates policy `name` for `input` directly (what [`PolicyEngine::decide`] does).
    pub fn evaluate(&self, name: &str, input: &Input) -> Decision {
        let generation = self.current.load();
        let Some(policy) = generation.policies.get(name) else {
            return Decision::failure(format!("no rego policy {name:?} is loaded"));
        };
        let value = match serde_json::to_value(input) {
            Ok(v) => regorus::Value::from(v),
            Err(e) => return Decision::failure(format!("input not serializable: {e}")),
        };
        match policy.allow.eval_with_input(value.clone()) {
            Ok(regorus::Value::Bool(true)) => Decision::allow(),
            Ok(regorus::Value::Bool(false)) => {
                let mut reasons = policy
                    .reasons
                    .as_ref()
                    .and_then(|r| r.eval_with_input(value).ok())
                    .map(string_list)
                    .unwrap_or_default();
                if reasons.is_empty() {
                    reasons.push(format!("rego policy {name:?}: allow is false"));
                }
                Decision {
                    reasons,
                    ..Decision::deny("")
                }
            }
            Ok(regorus::Value::Undefined) => Decision::deny(format!(
                "rego policy {name:?}: allow is undefined (give it a default)"
            )),
            Ok(other) => Decision::failure(format!(
                "rego policy {name:?}: allow is not a boolean but {}",
                kind(&other)
            )),
            Err(e) => Decision::failure(format!("rego policy {name:?}: evaluation failed: {e}")),
        }
    }
}

fn kind(v: &regorus::Value) -> &'static str {
    match v {
        regorus::Value::Null => "null",
        regorus::Value::Bool(_) => "a boolean",
        regorus::Value::Number(_) => "a number",
        regorus::Value::String(_) => "a string",
        regorus::Value::Array(_) => "an array",
        regorus::Value::Set(_) => "a set",
        regorus::Value::Object(_) => "an object",
        regorus::Value::Undefined => "undefined",
    }
}

fn string_list(v: regorus::Value) -> Vec<String> {
    let items: Vec<regorus::Value> = match v {
        regorus::Value::Array(a) => a.iter().cloned().collect(),
        regorus::Value::Set(s) => s.iter().cloned().collect(),
        regorus::Value::String(s) => return vec![s.to_string()],
        _ => return Vec::new(),
    };
    items
        .into_iter()
        .filter_map(|i| match i {
            regorus::Value::String(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

impl PolicyEngine for RegoEngine {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        Pending::ready(self.evaluate(policy, input))
    }

    fn policies(&self) -> Vec<String> {
        self.current.load().policies.keys().cloned().collect()
    }

    fn kind(&self) -> &'static str {
        "rego"
    }
}
