//! Checks a located YAML tree against the stack file's JSON Schema (generated from the Rust types) and turns it
//! into a JSON value. Unlike serde, which stops at the first problem, this reports every unknown key (with the
//! closest valid one), wrong type, out-of-range number and bad enum value in the file, each at its location.

use serde_json::{Map, Value};

use crate::diagnostics::{closest, Diagnostic};
use crate::duration::parse_span;
use crate::yaml_tree::{is_null_literal, Kind, Node};

pub struct SchemaCheck<'a> {
    root: &'a Value,
    pub errors: Vec<Diagnostic>,
    /// Values may still hold `${VAR}` (an environment overlay is checked before substitution, and those of other
    /// environments are never substituted): such scalars are not type-checked.
    unsubstituted: bool,
}

impl<'a> SchemaCheck<'a> {
    pub fn new(root: &'a Value) -> Self {
        SchemaCheck {
            root,
            errors: Vec::new(),
            unsubstituted: false,
        }
    }

    /// A check for an environment overlay: keys, structure and literal values are checked; scalars that still
    /// hold a `${VAR}` reference are accepted as written.
    pub fn for_overlay(root: &'a Value) -> Self {
        SchemaCheck {
            unsubstituted: true,
            ..SchemaCheck::new(root)
        }
    }

    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let mut s = schema;
        // `$ref: "#/$defs/Name"` (bounded: the generated schema has no ref cycles through a bare ref).
        for _ in 0..16 {
            match s.get("$ref").and_then(Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/")
                    .map(|p| p.split('/'))
                    .and_then(|mut parts| {
                        let first = parts.next()?;
                        let mut v = self.root.get(first)?;
                        for p in parts {
                            v = v.get(p)?;
                        }
                        Some(v)
                    }) {
                    Some(target) => s = target,
                    None => return s,
                },
                None => return s,
            }
        }
        s
    }

    fn error(
        &mut self,
        node_at: crate::diagnostics::Location,
        path: &[String],
        msg: String,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::at(node_at, msg).with_field(path);
        d.hint = hint;
        self.errors.push(d);
    }

    /// Walks `node` against `schema`; returns the JSON value (best effort when there are errors).
    pub fn check(&mut self, node: &Node, schema: &'a Value, path: &mut Vec<String>) -> Value {
        let schema = self.resolve(schema);
        if schema.as_bool() == Some(true) {
            return to_json_untyped(node);
        }
        if self.unsubstituted
            && matches!(&node.kind, Kind::Scalar { value, .. } if value.contains("${"))
        {
            return to_json_untyped(node);
        }

        // Alternatives: `anyOf`/`oneOf` (options, enums with documented variants).
        if let Some(alts) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            return self.check_alternatives(node, alts, path);
        }

        // Enumerations.
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            return self.check_enum(node, allowed, path);
        }
        if let Some(c) = schema.get("const") {
            return self.check_enum(node, std::slice::from_ref(c), path);
        }

        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if types.is_empty() {
            return to_json_untyped(node);
        }
        if types.contains(&"null") && node.is_null() {
            return Value::Null;
        }

        match &node.kind {
            Kind::Map(entries) if types.contains(&"object") => {
                self.check_object(node, entries, schema, path)
            }
            Kind::Seq(items) if types.contains(&"array") => {
                if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                    if (items.len() as u64) < min {
                        self.error(node.at, path, format!("needs at least {min} item(s)"), None);
                    }
                }
                let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    out.push(self.check(item, item_schema, path));
                    path.pop();
                }
                Value::Array(out)
            }
            Kind::Scalar { value, quoted } => {
                self.check_scalar(node, value, *quoted, &types, schema, path)
            }
            _ => {
                let expected = describe_types(&types);
                self.error(
                    node.at,
                    path,
                    format!("expected {expected}, found {}", node.describe()),
                    None,
                );
                Value::Null
            }
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(crate::yaml_tree::Key, Node)],
        schema: &'a Value,
        path: &mut Vec<String>,
    ) -> Value {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut out = Map::new();
        for (key, value) in entries {
            let prop_schema = props.and_then(|p| p.get(&key.name));
            let value_schema = match (prop_schema, additional) {
                (Some(s), _) => s,
                (None, Some(Value::Bool(false))) => {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = unknown_key_hint(&key.name, &known);
                    path.push(key.name.clone());
                    self.error(
                        key.at,
                        path,
                        format!("unknown field `{}`", key.name),
                        Some(hint),
                    );
                    path.pop();
                    continue;
                }
                (None, Some(s)) if s.is_object() => s,
                (None, _) => &Value::Bool(true),
            };
            path.push(key.name.clone());
            let v = self.check(value, value_schema, path);
            path.pop();
            out.insert(key.name.clone(), v);
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.name == name) {
                    let what = props
                        .and_then(|p| p.get(name))
                        .and_then(|s| self.resolve(s).get("description"))
                        .and_then(Value::as_str)
                        .map(|d| format!("`{name}`: {}", first_sentence(d)))
                        .unwrap_or_else(|| format!("add `{name}: …`"));
                    self.error(node.at, path, format!("missing field `{name}`"), Some(what));
                }
            }
        }
        Value::Object(out)
    }

    fn check_scalar(
        &mut self,
        node: &Node,
        value: &str,
        quoted: bool,
        types: &[&str],
        schema: &Value,
        path: &[String],
    ) -> Value {
        let plain = !quoted;
        if plain && is_null_literal(value) && !types.contains(&"string") {
            self.error(
                node.at,
                path,
                format!("expected {}, found nothing", describe_types(types)),
                None,
            );
            return Value::Null;
        }
        let shown = node.written.as_deref().unwrap_or(value);
        if types.contains(&"integer") && plain {
            if let Some(n) = parse_int(value) {
                self.check_range(node, n as f64, schema, path, shown);
                return Value::from(n);
            }
        }
        if types.contains(&"number") && plain {
            if let Some(x) = parse_float(value) {
                self.check_range(node, x, schema, path, shown);
                return serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .unwrap_or(Value::Null);
            }
        }
        if types.contains(&"boolean") && plain {
            match value {
                "true" | "True" | "TRUE" => return Value::Bool(true),
                "false" | "False" | "FALSE" => return Value::Bool(false),
                _ => {}
            }
        }
        if types.contains(&"string") {
            if schema.get("x-statsctl-kind").and_then(Value::as_str) == Some("duration") {
                if let Err(e) = parse_span(value) {
                    match &node.written {
                        // The parse error quotes the value or part of it (`unknown unit `Hunter2zz``): for a
                        // value from `${VAR}`, which may be a secret, say only what was expected.
                        Some(written) => self.error(
                            node.at,
                            path,
                            format!("invalid duration: `{written}` is not a number and a unit"),
                            Some("write e.g. `15s`, `250ms`, `5m` (units: ms, s, m, h, d)".into()),
                        ),
                        None => self.error(
                            node.at,
                            path,
                            format!("invalid duration: {e}"),
                            Some(e.hint),
                        ),
                    }
                }
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if (value.chars().count() as u64) < min {
                    self.error(node.at, path, "must not be empty".into(), None);
                }
            }
            return Value::String(value.to_string());
        }
        let hint = if quoted
            && (types.contains(&"integer")
                || types.contains(&"number")
                || types.contains(&"boolean"))
        {
            Some("remove the quotes".to_string())
        } else if types.contains(&"integer") && parse_float(value).is_some() {
            Some("use a whole number".to_string())
        } else {
            None
        };
        self.error(
            node.at,
            path,
            format!(
                "expected {}, found {}",
                describe_types(types),
                node.describe()
            ),
            hint,
        );
        Value::Null
    }

    fn check_range(&mut self, node: &Node, x: f64, schema: &Value, path: &[String], text: &str) {
        let min = schema.get("minimum").and_then(Value::as_f64);
        let max = schema.get("maximum").and_then(Value::as_f64);
        let out_of_range = min.is_some_and(|m| x < m) || max.is_some_and(|m| x > m);
        if out_of_range {
            let range = match (min, max) {
                (Some(a), Some(b)) => format!("between {} and {}", fmt_num(a), fmt_num(b)),
                (Some(a), None) => format!("at least {}", fmt_num(a)),
                (None, Some(b)) => format!("at most {}", fmt_num(b)),
                (None, None) => unreachable!("out_of_range implies a bound"),
            };
            let field = path.last().map(String::as_str).unwrap_or("value");
            self.error(
                node.at,
                path,
                format!("`{field}` is {text}, but must be {range}"),
                None,
            );
        }
    }

    fn check_enum(&mut self, node: &Node, allowed: &[Value], path: &[String]) -> Value {
        let allowed_strs: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        if let Kind::Scalar { value, .. } = &node.kind {
            if allowed_strs.contains(&value.as_str()) {
                return Value::String(value.clone());
            }
        }
        let list = allowed_strs
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match &node.kind {
            Kind::Scalar { value, .. } => closest(value, allowed_strs.iter().copied())
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("use one of {list}")),
            _ => format!("use one of {list}"),
        };
        self.error(
            node.at,
            path,
            format!("expected one of {list}, found {}", node.describe()),
            Some(hint),
        );
        Value::Null
    }

    fn check_alternatives(
        &mut self,
        node: &Node,
        alts: &'a [Value],
        path: &mut Vec<String>,
    ) -> Value {
        let resolved: Vec<&'a Value> = alts.iter().map(|a| self.resolve(a)).collect();
        let is_null_alt = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
        if node.is_null() && resolved.iter().any(|s| is_null_alt(s)) {
            return Value::Null;
        }
        // All constants: an enum with documented variants.
        let consts: Option<Vec<Value>> = resolved
            .iter()
            .filter(|s| !is_null_alt(s))
            .map(|s| {
                s.get("const").cloned().or_else(|| {
                    s.get("enum")
                        .and_then(|e| e.as_array())
                        .and_then(|e| (e.len() == 1).then(|| e[0].clone()))
                })
            })
            .collect();
        if let Some(consts) = consts {
            if !consts.is_empty() {
                return self.check_enum(node, &consts, path);
            }
        }
        // Otherwise try each non-null alternative; keep the first that fits, else report the first's errors.
        let mut first_errors = None;
        for alt in resolved.iter().filter(|s| !is_null_alt(s)) {
            let mut trial = SchemaCheck {
                unsubstituted: self.unsubstituted,
                ..SchemaCheck::new(self.root)
            };
            let v = trial.check(node, alt, path);
            if trial.errors.is_empty() {
                return v;
            }
            if first_errors.is_none() {
                first_errors = Some((v, trial.errors));
            }
        }
        match first_errors {
            Some((v, errs)) => {
                self.errors.extend(errs);
                v
            }
            None => to_json_untyped(node),
        }
    }
}

fn unknown_key_hint(name: &str, known: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("secret_value") {
        return "passwords never go in a stack file: name a Secrets Manager secret in `database.credentials_secret`"
            .into();
    }
    match closest(name, known.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if known.is_empty() => "this map takes no keys".into(),
        None => format!("valid keys here: {}", known.join(", ")),
    }
}

fn first_sentence(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s);
    line.split(". ")
        .next()
        .unwrap_or(line)
        .trim_end_matches('.')
        .to_string()
}

fn describe_types(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            "string" => "a string",
            "object" => "a map",
            "array" => "a list",
            other => other,
        })
        .collect();
    names.join(" or ")
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.is_empty()
        || !t
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    t.parse().ok()
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    let ok = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+'));
    if !ok {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A tree as JSON without a schema to guide it (YAML 1.2 core scalars).
pub fn to_json_untyped(node: &Node) -> Value {
    match &node.kind {
        Kind::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), to_json_untyped(v)))
                .collect(),
        ),
        Kind::Seq(items) => Value::Array(items.iter().map(to_json_untyped).collect()),
        Kind::Scalar {
            value,
            quoted: true,
        } => Value::String(value.clone()),
        Kind::Scalar {
            value,
            quoted: false,
        } => {
            if is_null_literal(value) {
                Value::Null
            } else if let Some(n) = parse_int(value) {
                Value::from(n)
            } else if let Some(x) = parse_float(value).and_then(serde_json::Number::from_f64) {
                Value::Number(x)
            } else if matches!(value.as_str(), "true" | "True" | "TRUE") {
                Value::Bool(true)
            } else if matches!(value.as_str(), "false" | "False" | "FALSE") {
                Value::Bool(false)
            } else {
                Value::String(value.clone())
            }
        }
    }
}
