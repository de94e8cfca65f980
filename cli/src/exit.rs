//! The one error type of the binary, and the exit codes CI can rely on.

use std::fmt;

/// Success; for `plan --detailed-exitcode`: no changes.
pub const OK: i32 = 0;
/// An error: bad input, AWS failure, interrupted operation. Nothing after the failure point was changed.
pub const ERROR: i32 = 1;
/// The command worked and found something to act on: changes pending (`plan --detailed-exitcode`), checks
/// failed (`preflight`), a load test that did not pass (`loadtest`), a rollout that rolled back (`deploy`).
pub const ATTENTION: i32 = 2;

/// An error the user can act on: what failed, and a hint.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: i32,
    /// Already printed in full (e.g. stack-file diagnostics); main only sets the exit code.
    pub printed: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: ERROR,
            printed: false,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn printed(code: i32) -> Self {
        CliError {
            message: String::new(),
            hint: None,
            code,
            printed: true,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  (hint: {h})")?;
        }
        Ok(())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(format!("i/o error: {e}"))
    }
}

pub type CliResult<T = i32> = Result<T, CliError>;
