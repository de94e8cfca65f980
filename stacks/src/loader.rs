//! Loads a stack file: parse (with locations) → pick the environment and deep-merge it over the base →
//! substitute `${VAR}` → check against the JSON Schema → deserialize → semantic validation. Every error of a
//! stage is reported together, each with file:line:column and a fix. Nothing here talks to AWS.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostics::{closest, Diagnostic, Diagnostics, Location};
use crate::model::{ResolvedStack, StackFile};
use crate::schema_check::SchemaCheck;
use crate::substitute::{substitute_tree, Vars};
use crate::yaml_tree::{self, Kind, Node};

/// The stack file's JSON Schema (draft 2020-12), generated from the Rust types.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(StackFile).to_value();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String("https://statsctl.dev/schema/stack.json".into()),
            );
        }
        schema
    })
}

/// The environment names a stack file defines (in file order), without validating the rest.
pub fn environment_names(text: &str) -> Vec<String> {
    match yaml_tree::parse(text) {
        Ok(root) => match root.get("environments").map(|n| &n.kind) {
            Some(Kind::Map(entries)) => entries.iter().map(|(k, _)| k.name.clone()).collect(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

/// Reads and loads a stack file for `env`.
pub fn load_file(
    path: &Path,
    env: Option<&str>,
    vars: &dyn Vars,
) -> Result<ResolvedStack, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| Diagnostics {
        file: path.to_path_buf(),
        env: env.map(str::to_string),
        errors: vec![Diagnostic {
            at: None,
            field: None,
            message: format!("cannot read the stack file: {e}"),
            hint: Some(
                "pass the right file with `--stack FILE` (default stacks/live-stats.yaml)".into(),
            ),
        }],
        source: String::new(),
    })?;
    load_str(path, &text, env, vars)
}

/// Loads a stack from text; `path` is used for messages and to resolve relative artifact paths.
pub fn load_str(
    path: &Path,
    text: &str,
    env: Option<&str>,
    vars: &dyn Vars,
) -> Result<ResolvedStack, Diagnostics> {
    let fail = |errors: Vec<Diagnostic>| Diagnostics {
        file: path.to_path_buf(),
        env: env.map(str::to_string),
        errors,
        source: text.to_string(),
    };

    let mut root = yaml_tree::parse(text).map_err(fail)?;
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(fail(vec![Diagnostic::at(
            root.at,
            format!(
                "a stack file is a map of settings, found {}",
                root.describe()
            ),
        )
        .with_hint("start with `stack: <name>`; see stacks/live-stats.yaml")]));
    }

    let mut errors = Vec::new();

    // Environments: check every overlay's top-level keys (a typo in `prod` is found while working on `local`),
    // then merge the chosen one.
    let environments = root.take("environments");
    let mut env_names = Vec::new();
    let mut chosen = None;
    if let Some((env_key, env_node)) = environments {
        match env_node.kind {
            Kind::Map(entries) => {
                let overlay_schema = &schema()["$defs"]["EnvironmentOverlay"];
                for (name, overlay) in entries {
                    env_names.push(name.name.clone());
                    if !overlay.is_null() {
                        let mut check = SchemaCheck::new(schema());
                        let mut p = vec!["environments".to_string(), name.name.clone()];
                        check.check(&overlay, overlay_schema, &mut p);
                        errors.extend(check.errors);
                    }
                    if Some(name.name.as_str()) == env {
                        chosen = Some(overlay);
                    }
                }
            }
            _ if env_node.is_null() => {}
            _ => errors.push(
                Diagnostic::at(
                    env_node.at,
                    "`environments` must be a map of environment names to overrides",
                )
                .with_hint("e.g. `environments: {local: {...}, prod: {...}}`"),
            ),
        }
        if env.is_none() && !env_names.is_empty() {
            errors.push(
                Diagnostic::at(
                    env_key.at,
                    format!(
                        "this stack defines environments {}; choose one",
                        list(&env_names)
                    ),
                )
                .with_hint("pass `--env NAME` (or set STATSCTL_ENV)"),
            );
        }
    }
    if let Some(wanted) = env {
        match chosen {
            Some(overlay) => {
                if !overlay.is_null() {
                    yaml_tree::merge(&mut root, overlay);
                }
            }
            None => {
                let hint = match closest(wanted, env_names.iter().map(String::as_str)) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None if env_names.is_empty() => {
                        "this stack file has no `environments:` section".to_string()
                    }
                    None => format!("environments in this file: {}", list(&env_names)),
                };
                errors.push(Diagnostic {
                    at: None,
                    field: None,
                    message: format!("no environment `{wanted}` in this stack file"),
                    hint: Some(hint),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(fail(errors));
    }

    substitute_tree(&mut root, vars, &mut Vec::new(), &mut errors);

    let mut check = SchemaCheck::new(schema());
    let value = check.check(&root, schema(), &mut Vec::new());
    errors.extend(check.errors);
    if !errors.is_empty() {
        return Err(fail(errors));
    }

    let spec: StackFile = match serde_json::from_value(value) {
        Ok(s) => s,
        // The schema check should have caught everything serde rejects; if not, still fail cleanly.
        Err(e) => {
            return Err(fail(vec![Diagnostic {
                at: None,
                field: None,
                message: format!("invalid stack file: {e}"),
                hint: None,
            }]))
        }
    };

    let problems = crate::validate::validate(&spec, env.unwrap_or("default"));
    if !problems.is_empty() {
        return Err(fail(
            problems
                .into_iter()
                .map(|p| {
                    Diagnostic::at(locate_field(&root, &p.path), p.message)
                        .with_hint(p.hint)
                        .with_field(&p.path)
                })
                .collect(),
        ));
    }

    Ok(ResolvedStack {
        env: env.map(str::to_string),
        path: path.to_path_buf(),
        spec,
    })
}

fn locate_field(root: &Node, path: &[String]) -> Location {
    root.locate(path)
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ResolvedStack {
    /// The directory relative paths in the stack file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The environment name used in resource names and tags (`default` when the file has none).
    pub fn env_name(&self) -> &str {
        self.env.as_deref().unwrap_or("default")
    }
}
