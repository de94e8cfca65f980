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

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {}", d.message)?;
            match d.at {
                Some(at) => {
                    writeln!(f, "  --> {}:{}:{}", self.file.display(), at.line, at.col)?;
                    if let Some(text) = at.line.checked_sub(1).and_then(|i| lines.get(i)) {
                        let gutter = at.line.to_string().len();
                        writeln!(f, "{:gutter$} |", "")?;
                        let text = mask_secret_value(text);
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

/// A source line as it may be shown: the value of a key that names a password, token or secret key is masked, so
/// a secret typed into a stack file by mistake is not echoed into terminals and CI logs by the error about it.
pub fn mask_secret_value(line: &str) -> String {
    // A URL with credentials in it (`http://user:password@host`) is masked up to its `@`.
    if let Some(i) = line.find("://") {
        let start = line[..i]
            .rfind(|c: char| c.is_whitespace() || "\"'[{(,".contains(c))
            .map_or(0, |j| j + 1);
        let end = line[i..]
            .find(|c: char| c.is_whitespace() || "\"']}),".contains(c))
            .map_or(line.len(), |j| i + j);
        if let Some(masked) = crate::validate::url_credentials(&line[start..end]) {
            return format!("{}{masked}{}", &line[..start], &line[end..]);
        }
    }
    let trimmed = line.trim_start().trim_start_matches("- ");
    let Some((key, value)) = trimmed.split_once(':') else {
        return line.to_string();
    };
    let key_l = key
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    let sensitive = [
        "password",
        "passwd",
        "token",
        "secret_key",
        "private_key",
        "api_key",
        "access_key",
    ]
    .iter()
    .any(|s| key_l.contains(s));
    if !sensitive || value.trim().is_empty() {
        return line.to_string();
    }
    let value_start = line.len() - value.len();
    format!("{}: ********", &line[..value_start - 1])
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
