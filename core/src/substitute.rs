//! `${VAR}` and `${VAR:-default}` substitution in stack-file values; `$$` writes a literal `$`.

use crate::diagnostics::{Diagnostic, Location};
use crate::yaml_tree::{Kind, Node};

/// Where substitution takes variables from (the process environment in the CLI, a table in tests).
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Substitutes variables in every scalar value of the tree (not in keys), collecting every error.
pub fn substitute_tree(
    node: &mut Node,
    vars: &dyn Vars,
    path: &mut Vec<String>,
    errors: &mut Vec<Diagnostic>,
) {
    match &mut node.kind {
        Kind::Map(entries) => {
            for (key, value) in entries.iter_mut() {
                path.push(key.name.clone());
                substitute_tree(value, vars, path, errors);
                path.pop();
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_tree(item, vars, path, errors);
                path.pop();
            }
        }
        Kind::Scalar { value, quoted } => {
            if !value.contains('$') {
                return;
            }
            match substitute(value, vars) {
                Ok(v) => {
                    if v != *value {
                        // Keep what the file says: errors about this value show it instead of the substituted
                        // text, which may be a secret.
                        node.written = Some(std::mem::replace(value, v));
                    }
                }
                Err((offset, message, hint)) => {
                    // Point at the `$` itself when the scalar sits on one line.
                    let mut at = node.at;
                    if !value.contains('\n') {
                        at = Location {
                            line: at.line,
                            col: at.col + offset + usize::from(*quoted),
                        };
                    }
                    errors.push(Diagnostic::at(at, message).with_hint(hint).with_field(path));
                }
            }
        }
    }
}

/// Substitutes one string. On error: (char offset of the `$`, message, hint).
pub fn substitute(text: &str, vars: &dyn Vars) -> Result<String, (usize, String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                out.push('$');
                i += 2;
            }
            Some('{') => {
                let start = i;
                let close = chars[i + 2..]
                    .iter()
                    .position(|&c| c == '}')
                    .map(|p| p + i + 2)
                    .ok_or_else(|| {
                        (
                            start,
                            "unterminated `${`".to_string(),
                            "close it with `}`, or write `$$` for a literal `$`".to_string(),
                        )
                    })?;
                let inner: String = chars[i + 2..close].iter().collect();
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner.as_str(), None),
                };
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    return Err((
                        start,
                        format!("`${{{inner}}}` is not a valid variable reference"),
                        "write `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and `_`".into(),
                    ));
                }
                match vars
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .or_else(|| default.map(str::to_string))
                {
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err((
                            start,
                            format!("environment variable `{name}` is not set"),
                            format!(
                            "set it (`export {name}=…`) or give a default: `${{{name}:-value}}`"
                        ),
                        ))
                    }
                }
                i = close + 1;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Result<&str, usize>)] = &[
            ("plain", Ok("plain")),
            ("${HOST}", Ok("db.local")),
            (
                "postgres://${HOST}:5432/x",
                Ok("postgres://db.local:5432/x"),
            ),
            ("${PORT:-5432}", Ok("5432")),
            ("${HOST:-other}", Ok("db.local")),
            ("${EMPTY:-fallback}", Ok("fallback")),
            ("${PORT:-}", Ok("")),
            ("cost $$5", Ok("cost $5")),
            ("a $ b", Ok("a $ b")),
            ("x${MISSING}", Err(1)),
            ("${HOST", Err(0)),
            ("${}", Err(0)),
            ("${1BAD}", Err(0)),
            ("${A-B}", Err(0)),
        ];
        for (input, want) in cases {
            let got = substitute(input, &vars);
            match want {
                Ok(s) => assert_eq!(got.as_deref().map_err(|e| e.1.clone()), Ok(*s), "{input}"),
                Err(off) => assert_eq!(got.map_err(|e| e.0), Err(*off), "{input}"),
            }
        }
    }
}
