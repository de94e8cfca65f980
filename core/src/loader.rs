//! Loads a stack file: read (a regular UTF-8 file within a size cap) → parse (with locations, and caps on depth and
//! alias expansion) → pick the environment and deep-merge it over the base →
//! substitute `${VAR}` → check against the JSON Schema → deserialize → semantic validation. Every error of a
//! stage is reported together, each with file:line:column and a fix. Nothing here talks to AWS.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostics::{closest, Diagnostic, Diagnostics, Location};
use crate::model::{ResolvedStack, StackFile};
use crate::schema_check::SchemaCheck;
use crate::substitute::{substitute_tree, Vars};
use crate::yaml_tree::{self, Kind, Node, MAX_FILE_BYTES};

/// The stack file's JSON Schema (draft 2020-12), generated from the Rust types.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut schema = schemars::schema_for!(StackFile).to_value();
        add_overlay_defs(&mut schema);
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                Value::String("https://statsctl.dev/schema/stack.json".into()),
            );
        }
        schema
    })
}

/// Describes environment overlays with the real types: `$defs/EnvironmentOverlay` becomes the root's properties
/// (minus `environments`), and every definition it reaches gets a `<Name>Overlay` copy without `required`, since an
/// overlay sets only what differs. Editors then flag a typo at any depth of an overlay, and the loader checks
/// overlays against this same definition, so the two agree.
fn add_overlay_defs(schema: &mut Value) {
    let Some(defs) = schema.get("$defs").and_then(Value::as_object).cloned() else {
        return;
    };
    let mut properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    properties.remove("environments");
    let properties = properties
        .into_iter()
        .map(|(k, v)| (k, partial_schema(v)))
        .collect::<serde_json::Map<_, _>>();
    let description = defs
        .get("EnvironmentOverlay")
        .and_then(|d| d.get("description"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut overlay = serde_json::json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !description.is_null() {
        overlay["description"] = description;
    }
    let Some(out) = schema.get_mut("$defs").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, def) in defs {
        if name != "EnvironmentOverlay" {
            out.insert(format!("{name}{OVERLAY_SUFFIX}"), partial_schema(def));
        }
    }
    out.insert("EnvironmentOverlay".into(), overlay);
}

const OVERLAY_SUFFIX: &str = "Overlay";

/// A schema that accepts any part of what `s` accepts: no `required` at any depth, references to `<Name>Overlay`.
/// Only schema-valued keywords are walked; `default`, `enum`, `const` and `examples` are data and stay as they are.
fn partial_schema(mut s: Value) -> Value {
    if let Value::Object(m) = &mut s {
        m.remove("required");
        if let Some(Value::String(r)) = m.get_mut("$ref") {
            if let Some(name) = r.strip_prefix("#/$defs/") {
                *r = format!("#/$defs/{name}{OVERLAY_SUFFIX}");
            }
        }
        for (keyword, v) in m.iter_mut() {
            match keyword.as_str() {
                "properties" | "patternProperties" => {
                    if let Value::Object(props) = v {
                        for p in props.values_mut() {
                            *p = partial_schema(p.take());
                        }
                    }
                }
                "additionalProperties" | "items" | "contains" | "propertyNames" | "not" => {
                    *v = partial_schema(v.take())
                }
                "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                    if let Value::Array(alts) = v {
                        for a in alts.iter_mut() {
                            *a = partial_schema(a.take());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    s
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

/// Reads a stack file: a regular file of at most `MAX_FILE_BYTES`, in UTF-8. Anything else (a directory, a FIFO,
/// `/dev/zero`, a huge or binary file) is refused with a located error before any of it is parsed.
pub fn read_stack_file(path: &Path) -> Result<String, Diagnostics> {
    let whole_file = |message: String, hint: &str| Diagnostics {
        file: path.to_path_buf(),
        env: None,
        errors: vec![Diagnostic {
            at: None,
            field: None,
            message,
            hint: Some(hint.to_string()),
        }],
        source: String::new(),
    };
    let pass_right_file =
        "pass the right file with `--stack FILE` (default stacks/live-stats.yaml)";
    // `metadata` does not open the file: opening a FIFO would block until someone writes to it.
    let meta = std::fs::metadata(path)
        .map_err(|e| whole_file(format!("cannot read the stack file: {e}"), pass_right_file))?;
    if !meta.is_file() {
        return Err(whole_file(
            format!(
                "the stack file is not a regular file (it is {})",
                file_kind(&meta.file_type())
            ),
            "statsctl reads stack files only from regular files; pass the YAML file itself with `--stack FILE`",
        ));
    }
    let too_big = |len: u64| {
        whole_file(
            format!(
                "the stack file is {len} bytes, more than the {} MiB cap (MAX_FILE_BYTES = {MAX_FILE_BYTES} bytes)",
                MAX_FILE_BYTES >> 20
            ),
            "a stack file is a few KB; check that `--stack` names the stack file",
        )
    };
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| whole_file(format!("cannot read the stack file: {e}"), pass_right_file))?;
    // Read one byte past the cap: a file that grows after `metadata` is still refused, never read without bound.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| whole_file(format!("cannot read the stack file: {e}"), pass_right_file))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let good = e.utf8_error().valid_up_to();
        let at = utf8_error_location(bytes, good);
        Diagnostics {
            file: path.to_path_buf(),
            env: None,
            errors: vec![Diagnostic::at(
                at,
                format!(
                    "the stack file is not valid UTF-8: byte 0x{:02x} at line {}, column {}",
                    bytes[good], at.line, at.col
                ),
            )
            .with_hint("save the file as UTF-8 (YAML stack files are text)")],
            source: String::from_utf8_lossy(bytes).into_owned(),
        }
    })
}

/// The line and column (in characters, like the parser's) of the first invalid byte; `bytes[..good]` is UTF-8.
fn utf8_error_location(bytes: &[u8], good: usize) -> Location {
    let before = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    Location {
        line: before.matches('\n').count() + 1,
        col: before[line_start..].chars().count() + 1,
    }
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

/// Reads and loads a stack file for `env`.
pub fn load_file(
    path: &Path,
    env: Option<&str>,
    vars: &dyn Vars,
) -> Result<ResolvedStack, Diagnostics> {
    let text = read_stack_file(path).map_err(|mut d| {
        d.env = env.map(str::to_string);
        d
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

    // Environments: check every overlay at every depth against the partial schema (a typo in `prod` is found
    // while working on `local`), then merge the chosen one.
    let environments = root.take("environments");
    let mut env_names = Vec::new();
    let mut chosen = None;
    // Alarm override ids of the environments not chosen: checked once the chosen stack says which alarms exist.
    let mut other_overrides = Vec::new();
    if let Some((env_key, env_node)) = environments {
        match env_node.kind {
            Kind::Map(entries) => {
                let overlay_schema = &schema()["$defs"]["EnvironmentOverlay"];
                for (name, overlay) in entries {
                    env_names.push(name.name.clone());
                    if !overlay.is_null() {
                        let mut check = SchemaCheck::for_overlay(schema());
                        let mut p = vec!["environments".to_string(), name.name.clone()];
                        check.check(&overlay, overlay_schema, &mut p);
                        errors.extend(check.errors);
                        errors.extend(unknown_overlay_functions(&root, &overlay, &name.name));
                        if Some(name.name.as_str()) != env {
                            other_overrides.extend(
                                map_keys(&overlay, &["alarms", "overrides"])
                                    .into_iter()
                                    .map(|k| (name.name.clone(), k)),
                            );
                        }
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
        return Err(fail(hide_substituted(&root, errors)));
    }

    let spec: StackFile = match serde_json::from_value(value) {
        Ok(s) => s,
        // The schema check should have caught everything serde rejects; if not, still fail cleanly.
        Err(e) => {
            return Err(fail(hide_substituted(
                &root,
                vec![Diagnostic {
                    at: None,
                    field: None,
                    message: format!("invalid stack file: {e}"),
                    hint: None,
                }],
            )))
        }
    };

    // An override in another environment must name an alarm this stack generates (a typo there would otherwise
    // surface only when that environment is deployed, silently leaving the alarm as generated).
    let known_alarms = crate::alarms::generated_ids(&spec);
    for (env_name, key) in &other_overrides {
        if !known_alarms.contains(&key.name) {
            let hint = closest(&key.name, known_alarms.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("generated alarm ids: {}", known_alarms.join(", ")));
            errors.push(
                Diagnostic::at(
                    key.at,
                    format!("no generated alarm has the id `{}`", key.name),
                )
                .with_hint(hint)
                .with_field(&[
                    "environments".to_string(),
                    env_name.clone(),
                    "alarms".into(),
                    "overrides".into(),
                    key.name.clone(),
                ]),
            );
        }
    }
    if !errors.is_empty() {
        return Err(fail(hide_substituted(&root, errors)));
    }

    let problems = crate::validate::validate(&spec, env.unwrap_or("default"));
    if !problems.is_empty() {
        let errors = problems
            .into_iter()
            .map(|p| {
                Diagnostic::at(locate_field(&root, &p.path), p.message)
                    .with_hint(p.hint)
                    .with_field(&p.path)
            })
            .collect();
        return Err(fail(hide_substituted(&root, errors)));
    }

    Ok(ResolvedStack {
        env: env.map(str::to_string),
        path: path.to_path_buf(),
        spec,
    })
}

/// Errors must not echo a value that came from `${VAR}` (it may be a secret): in every error about a substituted
/// value, or about a field that contains one, the substituted text is replaced by what the file says. An error
/// about the substituted field itself (or about no field: serde's fallback) that still quotes any part of the
/// value (`unknown unit `Hunter2zz``) loses its detail: it names the `${VAR}` and the field, and keeps only a
/// hint that quotes nothing of the value.
fn hide_substituted(root: &Node, mut errors: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut substituted = Vec::new();
    collect_substituted(root, &mut Vec::new(), &mut substituted);
    if substituted.is_empty() {
        return errors;
    }
    for e in &mut errors {
        let field = e.field.clone().unwrap_or_default();
        for (path, value, written) in &substituted {
            let related = field.is_empty()
                || path == &field
                || path.starts_with(&format!("{field}."))
                || field.starts_with(&format!("{path}."));
            let value = value.trim();
            if !related || value.is_empty() {
                continue;
            }
            e.message = e.message.replace(value, written);
            if let Some(h) = &mut e.hint {
                *h = h.replace(value, written);
            }
            if (field.is_empty() || path == &field) && quotes_part_of(&e.message, value, written) {
                let name = path.rsplit('.').next().unwrap_or(path);
                e.message = format!(
                    "`{name}` is not valid: its value comes from `{written}` (not shown, it may be a secret)"
                );
                if e.hint
                    .as_deref()
                    .is_some_and(|h| quotes_part_of(h, value, written))
                {
                    e.hint = None;
                }
                if e.hint.is_none() {
                    e.hint = Some(format!(
                        "set what `{written}` stands for to a valid `{name}` (see `statsctl schema`)"
                    ));
                }
            }
        }
    }
    errors
}

/// Whether `text` (with `written` taken out) contains a piece of `value` at least four characters long (all of
/// it when shorter). Errors are short, so the check is cheap; a false alarm only makes an error less specific.
fn quotes_part_of(text: &str, value: &str, written: &str) -> bool {
    let text = text.replace(written, "");
    let chars: Vec<char> = text.chars().collect();
    let k = value.chars().count().clamp(1, 4);
    chars
        .windows(k)
        .any(|w| value.contains(&w.iter().collect::<String>()))
}

/// (dotted path, substituted value, text as written) of every scalar that substitution changed.
fn collect_substituted(
    node: &Node,
    path: &mut Vec<String>,
    out: &mut Vec<(String, String, String)>,
) {
    match &node.kind {
        Kind::Map(entries) => {
            for (k, v) in entries {
                path.push(k.name.clone());
                collect_substituted(v, path, out);
                path.pop();
            }
        }
        Kind::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                collect_substituted(v, path, out);
                path.pop();
            }
        }
        Kind::Scalar { value, .. } => {
            if let Some(written) = &node.written {
                out.push((path.join("."), value.clone(), written.clone()));
            }
        }
    }
}

/// The keys of the map at `path` under `node` (none when it is missing or not a map).
fn map_keys(node: &Node, path: &[&str]) -> Vec<yaml_tree::Key> {
    let mut node = node;
    for segment in path {
        let Kind::Map(entries) = &node.kind else {
            return Vec::new();
        };
        match entries.iter().find(|(k, _)| k.name == *segment) {
            Some((_, v)) => node = v,
            None => return Vec::new(),
        }
    }
    match &node.kind {
        Kind::Map(entries) => entries.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Functions an overlay names that the base does not define. An overlay may add a whole function (every required
/// field given, as the base model allows after merging); one that only changes settings of a name the base lacks
/// is a typo (`stats-apii`), which would otherwise fail only in that environment, or add a half-defined function.
fn unknown_overlay_functions(base: &Node, overlay: &Node, env_name: &str) -> Vec<Diagnostic> {
    let base_names: Vec<String> = map_keys(base, &["functions"])
        .into_iter()
        .map(|k| k.name)
        .collect();
    let required: Vec<&str> = schema()["$defs"]["Function"]["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some((_, functions)) = (match &overlay.kind {
        Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == "functions"),
        _ => None,
    }) else {
        return Vec::new();
    };
    let Kind::Map(entries) = &functions.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, f) in entries {
        if base_names.contains(&key.name) {
            continue;
        }
        let given: Vec<String> = map_keys(f, &[]).into_iter().map(|k| k.name).collect();
        if !required.is_empty() && required.iter().all(|r| given.iter().any(|g| g == r)) {
            continue;
        }
        let hint = match closest(&key.name, base_names.iter().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!(
                "functions in the base: {}; a new function needs {}",
                list(&base_names),
                required
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        out.push(
            Diagnostic::at(
                key.at,
                format!("environment `{env_name}` changes function `{}`, which the base does not define", key.name),
            )
            .with_hint(hint)
            .with_field(&[
                "environments".to_string(),
                env_name.to_string(),
                "functions".into(),
                key.name.clone(),
            ]),
        );
    }
    out
}

/// Where an error about `path` points: at the key when the key names a secret (its value may span lines no key
/// is on, and the snippet shows one line), else at the value.
fn locate_field(root: &Node, path: &[String]) -> Location {
    match path.last() {
        Some(last) if crate::sensitive::is_secret_key(last) => root.locate_key(path),
        _ => root.locate(path),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `timeout: ${X}` with `X` set to `value`, as the loader holds it after substitution.
    fn substituted(value: &str) -> Node {
        let mut root = yaml_tree::parse("timeout: ${X}\n").unwrap();
        let vars = |name: &str| (name == "X").then(|| value.to_string());
        substitute_tree(&mut root, &vars, &mut Vec::new(), &mut Vec::new());
        root
    }

    #[test]
    fn no_part_of_a_substituted_value_survives_an_error_about_it() {
        for (value, field, message) in [
            // serde's fallback: no field, quotes the value (or part of it) its own way.
            (
                "5Hunter2zz",
                None,
                "invalid stack file: invalid value: string \"5Hunter2zz\"",
            ),
            (
                "5Hunter2zz",
                None,
                "invalid stack file: unknown unit `Hunter2zz`",
            ),
            // An error about the field that quotes a piece of it.
            (
                "5Hunter2zz",
                Some("timeout"),
                "unknown unit `Hunter2zz` in `${X}`",
            ),
            ("'Hunter2'", Some("timeout"), "bad `Hunter2`"),
            ("15s\"Hunter2\"", Some("timeout"), "trailing `\"Hunter2\"`"),
        ] {
            let errors = vec![Diagnostic {
                at: None,
                field: field.map(str::to_string),
                message: message.to_string(),
                hint: Some(format!("not `{value}`")),
            }];
            let out = hide_substituted(&substituted(value), errors);
            let text = serde_json::to_string(&out).unwrap();
            assert!(!text.contains("Hunter2"), "{value}: {text}");
            assert!(out[0].message.contains("${X}"), "{value}: {text}");
            assert!(out[0].hint.is_some(), "{value}: {text}");
        }
        // Errors that quote nothing of the value keep their detail.
        let errors = vec![Diagnostic {
            at: None,
            field: Some("timeout".into()),
            message: "must be at most 15m, found `${X}`".into(),
            hint: Some("Lambda allows at most 15 minutes".into()),
        }];
        let out = hide_substituted(&substituted("900000000s"), errors.clone());
        assert_eq!(out[0].message, errors[0].message);
        assert_eq!(out[0].hint, errors[0].hint);
    }
}
