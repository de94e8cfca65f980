//! The exit codes CI can rely on, as one type, and the one error type of the binary.

use std::fmt;

/// What the process exits with. The only exit statuses statsctl chooses (a second Ctrl-C during deploy exits
/// 130, as shells do for an interrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `plan --detailed-exitcode`: no changes. Also a closed stdout (`statsctl schema | head -1`):
    /// the reader has what it wanted.
    Ok,
    /// An error: bad input (a bad flag too), AWS failure, interrupted operation. Nothing after the failure point
    /// was changed.
    Error,
    /// The command worked and found something to act on: changes pending (`plan --detailed-exitcode`), checks
    /// failed (`preflight`), a load test that did not pass (`loadtest`).
    Attention,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Attention => 2,
        }
    }

    /// Ends the process with this status (stdout is flushed; a failed flush of a closed stdout is ignored).
    pub fn exit(self) -> ! {
        std::process::exit(self.code())
    }
}

// Short names for the variants, so that a command ends in `Ok(OK)` / `Ok(ATTENTION)`; they are `Exit`s, not
// numbers.
pub const OK: Exit = Exit::Ok;
pub const ERROR: Exit = Exit::Error;
pub const ATTENTION: Exit = Exit::Attention;

/// An error the user can act on: what failed, and a hint.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
    pub code: Exit,
    /// Already printed in full (e.g. stack-file diagnostics), or nothing to print (a closed stdout); main only
    /// sets the exit code.
    pub printed: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: Exit::Error,
            printed: false,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn printed(code: Exit) -> Self {
        CliError {
            message: String::new(),
            hint: None,
            code,
            printed: true,
        }
    }
    /// Writing a result to stdout failed. A reader that went away (`| head`) took what it wanted: stop quietly
    /// with success, as `cat` and `grep` do. Anything else (a full disk) is an error.
    pub fn stdout(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::printed(Exit::Ok)
        } else {
            CliError::new(format!("cannot write to stdout: {e}"))
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

pub type CliResult<T = Exit> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        for (exit, code) in [(Exit::Ok, 0), (Exit::Error, 1), (Exit::Attention, 2)] {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }

    #[test]
    fn only_a_closed_stdout_is_a_quiet_success() {
        use std::io::{Error, ErrorKind};
        let closed = CliError::stdout(Error::from(ErrorKind::BrokenPipe));
        assert_eq!((closed.code, closed.printed), (Exit::Ok, true));
        let full = CliError::stdout(Error::from(ErrorKind::StorageFull));
        assert_eq!((full.code, full.printed), (Exit::Error, false));
        assert!(full.message.contains("cannot write to stdout"), "{full}");
    }
}
