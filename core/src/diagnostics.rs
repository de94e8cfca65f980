//! Stack-file errors: each names file:line:column, what is wrong, and how to fix it; all are collected and shown
//! together with the offending source line.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Where in the file; `None` for errors about the file as a whole.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub at: Option<Location>,
    /// The dotted path of the field, e.g. `functions.stats-api.reserved_concurrency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn at(at: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            at: Some(at),
            field: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
    pub fn with_field(mut self, path: &[String]) -> Diagnostic {
        if !path.is_empty() {
            self.field = Some(path.join("."));
        }
        self
    }
}

/// All problems found in one stack file.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostics {
    pub file: PathBuf,
    /// The environment being resolved, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub errors: Vec<Diagnostic>,
    #[serde(skip)]
    pub source: String,
}

impl std::error::Error for Diagnostics {}

/// Errors shown in text. A file with 100,000 unknown keys would otherwise print 100,000 snippets (megabytes, for
/// the same mistake); `--output json` still lists every one.
pub const MAX_SHOWN_ERRORS: usize = 100;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if i == MAX_SHOWN_ERRORS {
                writeln!(
                    f,
                    "… and {} more errors not shown (`--output json` lists every one)",
                    self.errors.len() - i
                )?;
                break;
            }
            writeln!(f, "error: {}", d.message)?;
            match d.at {
                Some(at) => {
                    writeln!(f, "  --> {}:{}:{}", self.file.display(), at.line, at.col)?;
                    if let Some(text) = at.line.checked_sub(1).and_then(|i| lines.get(i)) {
                        let gutter = at.line.to_string().len();
                        writeln!(f, "{:gutter$} |", "")?;
                        let text = if hides_secret_value(d.field.as_deref(), text) {
                            masked_line(text)
                        } else {
                            crate::sensitive::redact_line(&mask_secret_value(text))
                        };
                        let text = text.as_str();
                        writeln!(f, "{} | {}", at.line, text)?;
                        let caret_pad: String = text
                            .chars()
                            .take(at.col.saturating_sub(1))
                            .map(|c| if c == '\t' { '\t' } else { ' ' })
                            .collect();
                        writeln!(f, "{:gutter$} | {}^", "", caret_pad)?;
                    }
                }
                None => writeln!(f, "  --> {}", self.file.display())?,
            }
            if let Some(env) = &self.env {
                if d.at.is_some() {
                    writeln!(f, "  = environment: {env}")?;
                }
            }
            if let Some(hint) = &d.hint {
                writeln!(f, "  = hint: {hint}")?;
            }
        }
        let n = self.errors.len();
        write!(
            f,
            "\n{} error{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.file.display()
        )?;
        if let Some(env) = &self.env {
            write!(f, " (environment `{env}`)")?;
        }
        writeln!(f)
    }
}

/// Whether the snippet line of an error about `field` may hold part of a secret that line-by-line masking cannot
/// see: the field ends in a secret-looking key that is not on the line (the line continues a block scalar
/// `DB_PASSWORD: >-`, or is the `: value` of an explicit `? DB_PASSWORD` key).
fn hides_secret_value(field: Option<&str>, line: &str) -> bool {
    let Some(last) = field.and_then(|f| f.rsplit('.').next()) else {
        return false;
    };
    (crate::sensitive::is_secret_key(last) || is_sensitive_key(last)) && !line.contains(last)
}

/// A line shown as its indentation and a mask, so the caret still lines up.
fn masked_line(line: &str) -> String {
    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    format!("{indent}********")
}

/// A source line as it may be shown: the value of every key that names a password, token or secret key is masked
/// — in block style (`password: x`) and inside flow maps (`db: {user: u, password: x}`) — so a secret typed into a
/// stack file by mistake is not echoed into terminals and CI logs by the error about it.
pub fn mask_secret_value(line: &str) -> String {
    mask_secret_keys(&mask_url_credentials(line))
}

/// A URL with credentials in it (`http://user:password@host`) is masked up to its `@`.
fn mask_url_credentials(line: &str) -> String {
    if let Some(i) = line.find("://") {
        // After the separator: it may be a multi-byte character (U+0085 is whitespace and two bytes long).
        let start = line[..i]
            .char_indices()
            .rev()
            .find(|&(_, c)| c.is_whitespace() || "\"'[{(,".contains(c))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let end = line[i..]
            .find(|c: char| c.is_whitespace() || "\"']}),".contains(c))
            .map_or(line.len(), |j| i + j);
        if let Some(masked) = crate::sensitive::url_credentials(&line[start..end]) {
            return format!("{}{masked}{}", &line[..start], &line[end..]);
        }
    }
    line.to_string()
}

/// The values of secret-named keys, in block style and inside flow maps.
fn mask_secret_keys(line: &str) -> String {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0; // bytes of `line` already in `out`
    let mut flow_depth = 0usize;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        // Quotes only keep brackets inside strings from counting as flow nesting. Every `:` is looked at, even
        // inside a string that may never close: masking too much is harmless, too little leaks.
        match (c, quote) {
            (_, Some(q)) if c == q => quote = None,
            (_, Some(_)) => {}
            ('"' | '\'', None) if opens_quote(&chars, i) => quote = Some(c),
            _ => {}
        }
        match c {
            '{' | '[' if quote.is_none() => flow_depth += 1,
            '}' | ']' if quote.is_none() => flow_depth = flow_depth.saturating_sub(1),
            ':' if is_sensitive_key(key_before(&line[..at])) => {
                let end = value_end(&chars, i + 1, flow_depth > 0).unwrap_or(line.len());
                let end = at + 1 + line[at + 1..end].trim_end().len();
                if end > at + 1 {
                    out.push_str(&line[copied..=at]);
                    out.push_str(" ********");
                    copied = end;
                    // Continue after the masked value (its brackets and quotes are gone from view anyway).
                    i = chars.partition_point(|(b, _)| *b < end);
                    quote = None;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    out
}

/// A quote starts a quoted scalar only where a scalar can start; elsewhere (`don't`) it is an ordinary character.
fn opens_quote(chars: &[(usize, char)], i: usize) -> bool {
    i == 0 || matches!(chars[i - 1].1, ' ' | '\t' | '{' | '[' | ',' | ':' | '-')
}

/// The key that ends right before a `:`: a quoted name, or the run of name characters.
fn key_before(before: &str) -> &str {
    let before = before.trim_end();
    if let Some(q) = before.chars().last().filter(|c| *c == '"' || *c == '\'') {
        let inner = &before[..before.len() - 1];
        return match inner.rfind(q) {
            Some(open) => &inner[open + 1..],
            None => inner,
        };
    }
    let start = before
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace() || matches!(c, '{' | '[' | ',' | '"' | '\''))
        // The separator may be multi-byte whitespace (U+0085): skip all of it.
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    &before[start..]
}

fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "token",
        "secret_key",
        "private_key",
        "api_key",
        "access_key",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// Byte offset where a value starting at `chars[from]` ends: the end of the line in block style; in a flow
/// collection, the `,` or closing bracket of the enclosing collection (quotes and nested brackets skipped).
fn value_end(chars: &[(usize, char)], from: usize, in_flow: bool) -> Option<usize> {
    if !in_flow {
        return None;
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, &(at, c)) in chars.iter().enumerate().skip(from) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' if opens_quote(chars, i) => quote = Some(c),
            '{' | '[' => depth += 1,
            '}' | ']' if depth == 0 => return Some(at),
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => return Some(at),
            _ => {}
        }
    }
    None
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_credentials_after_a_multi_byte_separator_are_masked_without_panicking() {
        // Found by loader_never_panics: a two-byte whitespace (U+0085) before a URL used to split a character.
        assert_eq!(
            mask_url_credentials("±zV\\Lu\u{85}O://{~PgÉ"),
            "±zV\\Lu\u{85}O://{~PgÉ"
        );
        assert_eq!(
            mask_url_credentials("x\u{85}http://u:pw@host/ y"),
            "x\u{85}http://***@host/ y"
        );
    }

    use super::*;

    #[test]
    fn secret_values_are_masked_in_snippets() {
        for (line, shown) in [
            ("  password: hunter2", "  password: ********"),
            ("  db_password: \"x y\"", "  db_password: ********"),
            ("    API_TOKEN: abc", "    API_TOKEN: ********"),
            ("  password_env: PGPASSWORD", "  password_env: ********"),
            (
                "  credentials_secret: live-stats/db",
                "  credentials_secret: live-stats/db",
            ),
            ("  password:", "  password:"),
            ("  memory_mb: 256", "  memory_mb: 256"),
            ("no colon here", "no colon here"),
            // Flow maps: only the secret's value is hidden, the rest of the line stays readable.
            (
                "  database: { user: app, password: hunter2 }",
                "  database: { user: app, password: ******** }",
            ),
            ("x: {password: hunter2}", "x: {password: ********}"),
            (
                "x: {\"db_password\": \"a, b}\", port: 5432}",
                "x: {\"db_password\": ********, port: 5432}",
            ),
            ("- {token: abc, name: t}", "- {token: ********, name: t}"),
            (
                "  sql: {host: h, password: [a, b], user: u}",
                "  sql: {host: h, password: ********, user: u}",
            ),
            ("  url: http://example.com", "  url: http://example.com"),
            (
                "  name: ünïcode: password: x",
                "  name: ünïcode: password: ********",
            ),
            (
                "  note: don't, password: x",
                "  note: don't, password: ********",
            ),
            ("\u{85}:x", "\u{85}:x"),
            ("a\u{85}password: x", "a\u{85}password: ********"),
            (
                "    - http://ops:hunter2@stats.example.com/x",
                "    - http://***@stats.example.com/x",
            ),
            (
                "  targets: [\"http://u:p@h:1/\"]",
                "  targets: [\"http://***@h:1/\"]",
            ),
            ("  - http://h/x", "  - http://h/x"),
        ] {
            assert_eq!(mask_secret_value(line), shown, "{line}");
        }
    }

    #[test]
    fn closest_key() {
        let keys = ["reserved_concurrency", "runtime", "handler", "memory_mb"];
        assert_eq!(
            closest("reserved_concurency", keys),
            Some("reserved_concurrency")
        );
        assert_eq!(closest("memory", keys), Some("memory_mb"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn many_errors_are_summarised_after_the_first_hundred() {
        let d = Diagnostics {
            file: "s.yaml".into(),
            env: None,
            source: "a: 1\n".into(),
            errors: (0..MAX_SHOWN_ERRORS + 5)
                .map(|i| Diagnostic::at(Location { line: 1, col: 1 }, format!("problem {i}")))
                .collect(),
        };
        let text = d.to_string();
        assert!(
            text.contains(&format!("problem {}", MAX_SHOWN_ERRORS - 1)),
            "{text}"
        );
        assert!(
            !text.contains(&format!("problem {MAX_SHOWN_ERRORS}")),
            "{text}"
        );
        assert!(text.contains("… and 5 more errors not shown"), "{text}");
        assert!(
            text.contains(&format!("{} errors in s.yaml", MAX_SHOWN_ERRORS + 5)),
            "{text}"
        );
    }

    #[test]
    fn renders_snippet() {
        let d = Diagnostics {
            file: "s.yaml".into(),
            env: None,
            source: "a: 1\nbb: 2\n".into(),
            errors: vec![
                Diagnostic::at(Location { line: 2, col: 1 }, "unknown field `bb`")
                    .with_hint("did you mean `b`?"),
            ],
        };
        let text = d.to_string();
        assert!(text.contains("--> s.yaml:2:1"), "{text}");
        assert!(text.contains("2 | bb: 2"), "{text}");
        assert!(text.contains("= hint: did you mean `b`?"), "{text}");
    }
}
