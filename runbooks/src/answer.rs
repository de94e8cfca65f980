//! What an operator types at a runbook's prompt: `y`, `N` (the default), `skip` or `quit`.

use serde::{Deserialize, Serialize};

/// The answer to "do this change?" (or, at a `decide` step, "go on?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Do it.
    Yes,
    /// Do not, and stop here: the steps after a declined fix assume it was made. The default (an empty line).
    No,
    /// Do not do this step, and go on with the next.
    Skip,
    /// Stop the run now.
    Quit,
}

/// The prompt's choices, as shown after the question.
pub const CHOICES: &str = "[y/N/skip/quit]";

impl Answer {
    /// As the transcript records it.
    pub fn word(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Skip => "skip",
            Answer::Quit => "quit",
        }
    }
}

/// Reads one typed line. Case and surrounding spaces do not matter; anything unknown is an error naming the
/// choices, so a typo is asked again instead of being taken as an answer.
pub fn parse(line: &str) -> Result<Answer, String> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(Answer::Yes),
        "" | "n" | "no" => Ok(Answer::No),
        "s" | "skip" => Ok(Answer::Skip),
        "q" | "quit" => Ok(Answer::Quit),
        other => Err(format!(
            "`{other}` is not an answer: type y (do it), n (no, stop here; the default), skip (go on without it) or quit"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let cases: &[(&str, Result<Answer, &str>)] = &[
            ("y", Ok(Answer::Yes)),
            ("YES\n", Ok(Answer::Yes)),
            ("  y  ", Ok(Answer::Yes)),
            ("", Ok(Answer::No)),
            ("\n", Ok(Answer::No)),
            ("N", Ok(Answer::No)),
            ("no", Ok(Answer::No)),
            ("skip", Ok(Answer::Skip)),
            ("s", Ok(Answer::Skip)),
            ("Quit", Ok(Answer::Quit)),
            ("q", Ok(Answer::Quit)),
            ("yep", Err("`yep` is not an answer")),
            ("ja", Err("type y")),
        ];
        for (line, want) in cases {
            match (parse(line), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{line:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{line:?}: {e}"),
                (got, w) => panic!("{line:?}: got {got:?}, want {w:?}"),
            }
        }
    }
}
