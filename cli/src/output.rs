//! Rendering: every command result is one value that prints as text for people or as JSON for machines.
//! Results go to stdout; progress and logs go to stderr. Everything printed here goes through the stack
//! layer's one masking (`statsctl_core::sensitive`), so no command can print a secret by forgetting to — except
//! what statsctl generates from its own definition (completions, man page), which holds no user data.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use statsctl_core::sensitive;

use crate::exit::{CliError, CliResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Prints `value` as JSON, or its human rendering. A closed stdout ends the command quietly with exit 0
/// (`CliError::stdout`).
pub fn emit<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce(&mut String),
) -> CliResult<()> {
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(value)
                .map_err(|e| CliError::new(format!("cannot render the result as JSON: {e}")))?;
            sensitive::redact_json(&mut v);
            let mut text = serde_json::to_string_pretty(&v)
                .map_err(|e| CliError::new(format!("cannot render the result as JSON: {e}")))?;
            text.push('\n');
            write_stdout(&text)
        }
        Format::Human => {
            let mut s = String::new();
            human(&mut s);
            print_text(&s)
        }
    }
}

/// Prints text on stdout as it is, masked like everything else (see the module comment).
pub fn print_text(text: &str) -> CliResult<()> {
    write_stdout(&sensitive::redact_text(text))
}

/// Prints text statsctl generated from its own definition (a completion script, the man page) as it is: it holds
/// no user data, and masking could alter a script line that looks like `key: value`.
pub fn print_generated(text: &str) -> CliResult<()> {
    write_stdout(text)
}

/// The one place that writes to stdout: errors come back (never the panic of `println!`), a closed stdout
/// as a quiet exit 0.
fn write_stdout(text: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::stdout)
}

/// Whether to use colour on stdout (a terminal, and NO_COLOR unset).
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

pub fn paint(text: &str, code: &str) -> String {
    if color() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}
pub fn green(t: &str) -> String {
    paint(t, "32")
}
pub fn red(t: &str) -> String {
    paint(t, "31")
}
pub fn yellow(t: &str) -> String {
    paint(t, "33")
}
pub fn dim(t: &str) -> String {
    paint(t, "2")
}

/// A progress line on stderr (never on stdout, so `--output json` stays parseable).
pub fn progress(msg: impl AsRef<str>) {
    eprintln!("{}", sensitive::redact_text(msg.as_ref()));
}

/// Rows as aligned text columns (two spaces apart), each line indented; trailing spaces trimmed.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(&format!("{indent}{}\n", cells.join("  ").trim_end()));
    }
    out
}
