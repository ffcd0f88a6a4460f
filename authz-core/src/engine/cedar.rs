//! Cedar (cedar-policy): policies validated at start against a schema generated from the
//! catalog.
//!
//! **The schema** ([`SchemaBuilder::from_catalog`]): every permission is an action
//! (`Action::"model:deploy"`), every resource part of a permission an entity type (`model`),
//! and the principal is a `User`:
//!
//! ```text
//! entity User = { "subject": String, "issuer"?: String, "tenant"?: String,
//!                 "roles": Set<String>, "effective_roles": Set<String>,
//!                 "permissions": Set<String>, "scopes": Set<String>, "auth_method": String };
//! entity model = { "owner"?: String };                  // attributes you declare
//! action "model:deploy" appliesTo { principal: [User], resource: [model],
//!     context: { "method": String, "route": String, "time": Long,
//!                "environment"?: String } };            // context attributes you declare
//! ```
//!
//! Resource and context attributes are declared with [`SchemaBuilder::resource_attribute`] and
//! [`SchemaBuilder::context_attribute`]; all are optional in the schema, so policies test them
//! with `has`. An attribute of the input the schema does not declare is not passed to Cedar.
//!
//! **Policy names.** Policy `N` is the file `N.cedar` in the directory: the request is allowed
//! when that file's policies permit it and none forbids it (Cedar's semantics). A
//! `@reason("…")` annotation on a `forbid` becomes the deny's reason.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde_json::Value;

use super::{Decision, Input, LoadError, Pending, PolicyEngine};
use crate::catalog::PermissionCatalog;

/// The entity type of principals.
pub const PRINCIPAL_TYPE: &str = "User";

/// The type of a declared attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttrType {
    /// A string.
    String,
    /// A 64-bit integer.
    Long,
    /// A boolean.
    Bool,
    /// A set of strings.
    StringSet,
}

impl AttrType {
    fn cedar(self) -> &'static str {
        match self {
            AttrType::String => "String",
            AttrType::Long => "Long",
            AttrType::Bool => "Bool",
            AttrType::StringSet => "Set<String>",
        }
    }
}

/// Builds the Cedar schema from a catalog (see the module docs).
#[derive(Debug, Clone)]
pub struct SchemaBuilder {
    /// `(action, resource type)` per permission.
    actions: Vec<(String, String)>,
    resources: BTreeMap<String, Vec<(String, AttrType)>>,
    context: Vec<(String, AttrType)>,
}

impl SchemaBuilder {
    /// Actions and entity types from `catalog`, no attributes yet.
    pub fn from_catalog(catalog: &PermissionCatalog) -> Self {
        let mut resources = BTreeMap::new();
        let actions = catalog
            .permissions()
            .iter()
            .map(|p| {
                let name = p.as_str().to_string();
                let resource = name.split(':').next().unwrap_or_default().to_string();
                resources.entry(resource.clone()).or_insert_with(Vec::new);
                (name, resource)
            })
            .collect();
        Self {
            actions,
            resources,
            context: Vec::new(),
        }
    }

    /// Declares the optional attribute `name` of entity type `resource` (a resource part of a
    /// permission), read from the input's `resource.attributes`.
    pub fn resource_attribute(mut self, resource: &str, name: &str, ty: AttrType) -> Self {
        self.resources
            .entry(resource.to_string())
            .or_default()
            .push((name.to_string(), ty));
        self
    }

    /// Declares the optional context attribute `name`, read from the input's `context`.
    pub fn context_attribute(mut self, name: &str, ty: AttrType) -> Self {
        self.context.push((name.to_string(), ty));
        self
    }

    fn record(fields: &[(String, AttrType)], fixed: &str) -> String {
        let mut parts: Vec<String> = if fixed.is_empty() {
            Vec::new()
        } else {
            vec![fixed.to_string()]
        };
        parts.extend(
            fields
                .iter()
                .map(|(n, t)| format!("{}?: {}", quote(n), t.cedar())),
        );
        format!("{{ {} }}", parts.join(", "))
    }

    /// The schema in Cedar's schema syntax.
    pub fn to_cedarschema(&self) -> String {
        let mut out = format!(
            "entity {PRINCIPAL_TYPE} = {{ \"subject\": String, \"issuer\"?: String, \"tenant\"?: String, \
             \"roles\": Set<String>, \"effective_roles\": Set<String>, \"permissions\": Set<String>, \
             \"scopes\": Set<String>, \"auth_method\": String }};\n"
        );
        for (resource, attrs) in &self.resources {
            out.push_str(&format!("entity {resource} = {};\n", Self::record(attrs, "")));
        }
        let context = Self::record(
            &self.context,
            "\"method\": String, \"route\": String, \"time\": Long",
        );
        for (action, resource) in &self.actions {
            out.push_str(&format!(
                "action {} appliesTo {{ principal: [{PRINCIPAL_TYPE}], resource: [{resource}], context: {context} }};\n",
                quote(action)
            ));
        }
        out
    }

    /// The schema.
    ///
    /// # Errors
    /// A resource type that is not a valid Cedar identifier, or a reserved word.
    pub fn build(self) -> Result<CedarSchema, LoadError> {
        let text = self.to_cedarschema();
        let (schema, _warnings) = Schema::from_cedarschema_str(&text)
            .map_err(|e| LoadError::new("<schema generated from the catalog>", format!("{e}")))?;
        Ok(CedarSchema {
            schema,
            text,
            builder: self,
        })
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The generated schema, with the attribute declarations it was made from.
#[derive(Debug, Clone)]
pub struct CedarSchema {
    schema: Schema,
    text: String,
    builder: SchemaBuilder,
}

impl CedarSchema {
    /// The schema text (Cedar schema syntax).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Cedar policies from a directory of `.cedar` files, one policy name per file.
pub struct CedarEngine {
    schema: CedarSchema,
    policies: BTreeMap<String, PolicySet>,
    authorizer: Authorizer,
    principal_type: EntityTypeName,
    action_type: EntityTypeName,
}

impl std::fmt::Debug for CedarEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CedarEngine")
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `line L, column C` of a byte offset.
fn line_col(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |n| before.len() - n - 1) + 1;
    format!("line {line}, column {col}")
}

fn located(text: &str, e: &dyn miette::Diagnostic, message: String) -> String {
    match e.labels().and_then(|mut l| l.next()) {
        Some(label) => format!("{}: {message}", line_col(text, label.offset())),
        None => message,
    }
}

impl CedarEngine {
    /// Reads every `*.cedar` file of `dir` (policy name = file stem), parses it and validates it
    /// against `schema` (strict mode).
    ///
    /// # Errors
    /// The directory cannot be read or holds no `.cedar` file; a file does not parse or does not
    /// validate (the message names the file, line and column, and what is wrong).
    pub fn load(dir: impl AsRef<Path>, schema: CedarSchema) -> Result<Self, LoadError> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            LoadError::new(
                dir.display().to_string(),
                format!("cannot read the directory: {e}"),
            )
        })?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cedar"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::new(
                dir.display().to_string(),
                "no .cedar files in this directory",
            ));
        }
        let mut texts = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| LoadError::new(path.display().to_string(), format!("cannot read: {e}")))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            texts.push((name, path.display().to_string(), text));
        }
        Self::from_sources(texts, schema)
    }

    /// Like [`load`](Self::load), from `(policy name, file name for messages, text)` triples.
    ///
    /// # Errors
    /// As [`CedarEngine::load`].
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String, String)>,
        schema: CedarSchema,
    ) -> Result<Self, LoadError> {
        let validator = Validator::new(schema.schema.clone());
        let mut policies = BTreeMap::new();
        for (name, file, text) in sources {
            let set = PolicySet::from_str(&text).map_err(|e| {
                let message = located(&text, &e, format!("{e}"));
                let detail: Vec<String> = e.iter().map(|d| d.to_string()).collect();
                LoadError::new(file.clone(), format!("{message}: {}", detail.join("; ")))
            })?;
            let result = validator.validate(&set, ValidationMode::Strict);
            if !result.validation_passed() {
                let errors: Vec<String> = result
                    .validation_errors()
                    .map(|e| located(&text, e, e.to_string()))
                    .collect();
                return Err(LoadError::new(
                    file,
                    format!(
                        "does not validate against the catalog's schema: {}",
                        errors.join("; ")
                    ),
                ));
            }
            policies.insert(name, set);
        }
        tracing::info!(policies = ?policies.keys().collect::<Vec<_>>(), "cedar policies loaded");
        Ok(Self {
            schema,
            policies,
            authorizer: Authorizer::new(),
            principal_type: EntityTypeName::from_str(PRINCIPAL_TYPE).expect("a valid type name"),
            action_type: EntityTypeName::from_str("Action").expect("a valid type name"),
        })
    }

    /// The schema the policies were validated against.
    pub fn schema(&self) -> &CedarSchema {
        &self.schema
    }

    /// The declared attributes of `from`, as Cedar values; one of another type is an error.
    fn declared(
        fields: &[(String, AttrType)],
        from: &Value,
        out: &mut HashMap<String, RestrictedExpression>,
    ) -> Result<(), String> {
        let Some(obj) = from.as_object() else {
            return Ok(());
        };
        for (name, ty) in fields {
            let value = match (obj.get(name), ty) {
                (None | Some(Value::Null), _) => continue,
                (Some(Value::String(s)), AttrType::String) => RestrictedExpression::new_string(s.clone()),
                (Some(Value::Bool(b)), AttrType::Bool) => RestrictedExpression::new_bool(*b),
                (Some(Value::Number(n)), AttrType::Long) if n.is_i64() => {
                    RestrictedExpression::new_long(n.as_i64().unwrap_or_default())
                }
                (Some(Value::Array(a)), AttrType::StringSet) if a.iter().all(Value::is_string) => {
                    RestrictedExpression::new_set(
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| RestrictedExpression::new_string(s.to_string())),
                    )
                }
                _ => return Err(format!("attribute {name:?} is not a {}", ty.cedar())),
            };
            out.insert(name.clone(), value);
        }
        Ok(())
    }

    /// Evaluates policy `name` for `input` directly (what [`PolicyEngine::decide`] does).
    pub fn evaluate(&self, name: &str, input: &Input) -> Decision {
        match self.try_evaluate(name, input) {
            Ok(d) => d,
            Err(reason) => Decision::failure(format!("cedar policy {name:?}: {reason}")),
        }
    }

    fn try_evaluate(&self, name: &str, input: &Input) -> Result<Decision, String> {
        let set = self
            .policies
            .get(name)
            .ok_or_else(|| "no such policy is loaded".to_string())?;
        let builder = &self.schema.builder;
        let resource_type = input
            .resource
            .as_ref()
            .map(|r| r.kind.clone())
            .unwrap_or_else(|| input.action.split(':').next().unwrap_or_default().to_string());
        let attrs = builder
            .resources
            .get(&resource_type)
            .ok_or_else(|| format!("unknown resource type {resource_type:?}"))?;
        let resource_id = input
            .resource
            .as_ref()
            .and_then(|r| r.id.clone())
            .unwrap_or_default();
        let p = &input.principal;
        let string = |v: &str| RestrictedExpression::new_string(v.to_string());
        let strings = |v: &[String]| RestrictedExpression::new_set(v.iter().map(|s| string(s)));
        let mut principal_attrs = HashMap::from([
            ("subject".to_string(), string(&p.subject)),
            ("roles".to_string(), strings(&p.roles)),
            ("effective_roles".to_string(), strings(&p.effective_roles)),
            ("permissions".to_string(), strings(&p.permissions)),
            ("scopes".to_string(), strings(&p.scopes)),
            ("auth_method".to_string(), string(&p.auth_method)),
        ]);
        if let Some(i) = &p.issuer {
            principal_attrs.insert("issuer".into(), string(i));
        }
        if let Some(t) = &p.tenant {
            principal_attrs.insert("tenant".into(), string(t));
        }
        let mut resource_attrs = HashMap::new();
        if let Some(r) = &input.resource {
            Self::declared(attrs, &r.attributes, &mut resource_attrs).map_err(|e| format!("resource {e}"))?;
        }
        let principal =
            EntityUid::from_type_name_and_id(self.principal_type.clone(), EntityId::new(&p.subject));
        let resource = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str(&resource_type).map_err(|e| e.to_string())?,
            EntityId::new(resource_id),
        );
        // Built directly rather than parsed from JSON and checked against the schema on every
        // request: the values have the schema's shape by construction (the principal's fixed
        // attributes; declared resource and context attributes only, each of its declared type).
        let entities = Entities::from_entities(
            [
                Entity::new(principal.clone(), principal_attrs, HashSet::new()).map_err(|e| e.to_string())?,
                Entity::new(resource.clone(), resource_attrs, HashSet::new()).map_err(|e| e.to_string())?,
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
        let action = EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(&input.action));
        let mut context = HashMap::from([
            ("method".to_string(), string(&input.request.method)),
            ("route".to_string(), string(&input.request.route)),
            (
                "time".to_string(),
                RestrictedExpression::new_long(i64::try_from(input.request.time).unwrap_or(i64::MAX)),
            ),
        ]);
        Self::declared(&builder.context, &input.context, &mut context).map_err(|e| format!("context {e}"))?;
        let context = Context::from_pairs(context).map_err(|e| e.to_string())?;
        let request = Request::new(principal, action, resource, context, None).map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, set, &entities);
        let errors: Vec<String> = response.diagnostics().errors().map(|e| e.to_string()).collect();
        if response.decision() == cedar_policy::Decision::Allow {
            return Ok(Decision::allow());
        }
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| {
                set.annotation(id, "reason")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("forbidden by {id}"))
            })
            .collect();
        if !errors.is_empty() {
            return Ok(Decision::failure(format!(
                "evaluation errors: {}",
                errors.join("; ")
            )));
        }
        if reasons.is_empty() {
            reasons.push(format!("cedar policy {name:?}: no permit matched"));
        }
        Ok(Decision {
            reasons,
            ..Decision::deny("")
        })
    }
}

impl PolicyEngine for CedarEngine {
    fn decide<'a>(&'a self, policy: &'a str, input: &'a Input) -> Pending<'a> {
        Pending::ready(self.evaluate(policy, input))
    }

    fn policies(&self) -> Vec<String> {
        self.policies.keys().cloned().collect()
    }

    fn kind(&self) -> &'static str {
        "cedar"
    }
}
