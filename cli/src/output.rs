//! Rendering: every command result is one value that prints as text for people or as JSON for machines.
//! Results go to stdout; progress and logs go to stderr. Everything printed here goes through the stack
//! layer's one masking (`statsctl_core::sensitive`), so no command can print a secret by forgetting to.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use statsctl_core::sensitive;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Prints `value` as JSON, or its human rendering.
pub fn emit<T: Serialize>(
    format: Format,
    value: &T,
    human: impl FnOnce(&mut String),
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(value)?;
            sensitive::redact_json(&mut v);
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)
        }
        Format::Human => {
            let mut s = String::new();
            human(&mut s);
            out.write_all(sensitive::redact_text(&s).as_bytes())
        }
    }
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
