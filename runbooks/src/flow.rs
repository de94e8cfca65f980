//! Step sequencing, pure: whether a step asks, acts, only prints, or is refused, given how the run was started
//! (`--dry-run`, `--yes`, a terminal or not), and where the run goes after an answer. The runner does what these
//! say; the rules live here so they are tested as a table and cannot drift between step kinds.

use serde::{Deserialize, Serialize};

use crate::answer::Answer;

/// How a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mode {
    /// `--dry-run`: every read runs, every change is printed and not made.
    pub dry_run: bool,
    /// `--yes`: every question is answered yes (automation).
    pub yes: bool,
    /// stdin is a terminal, so a person can answer.
    pub terminal: bool,
}

/// What to do with a step that would change something, once it has shown exactly what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Make the change without asking (`--yes`).
    Go,
    /// Print it and do not make it (`--dry-run`).
    Print,
    /// Ask the operator.
    Ask,
    /// Nobody can answer and nobody said yes: refuse, change nothing, end the run.
    Refuse,
}

/// The gate of a mutating step. A dry run wins over `--yes`: `--dry-run --yes` changes nothing.
pub fn action_gate(mode: Mode) -> Gate {
    if mode.dry_run {
        Gate::Print
    } else if mode.yes {
        Gate::Go
    } else if mode.terminal {
        Gate::Ask
    } else {
        Gate::Refuse
    }
}

/// The gate of a `decide` step. It changes nothing, so without a person to ask it takes its default (go on): a
/// later change is still gated on its own.
pub fn decide_gate(mode: Mode) -> Gate {
    if mode.terminal && !mode.yes && !mode.dry_run {
        Gate::Ask
    } else {
        Gate::Go
    }
}

/// Where the run goes after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// On to the next step.
    Continue,
    /// The operator answered no at a `decide`: the rest is not needed; the run finished.
    SkipRest,
    /// The run ends here, unfinished (declined, quit, refused, failed).
    Stop,
}

/// After the answer to an action's question: whether to make the change, and where to go next.
pub fn after_action(answer: Answer) -> (bool, Next) {
    match answer {
        Answer::Yes => (true, Next::Continue),
        Answer::Skip => (false, Next::Continue),
        Answer::No | Answer::Quit => (false, Next::Stop),
    }
}

/// After the answer to a `decide` question.
pub fn after_decide(answer: Answer) -> Next {
    match answer {
        Answer::Yes => Next::Continue,
        Answer::No | Answer::Skip => Next::SkipRest,
        Answer::Quit => Next::Stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates() {
        let m = |dry_run, yes, terminal| Mode {
            dry_run,
            yes,
            terminal,
        };
        // (mode, action gate, decide gate)
        let cases = [
            (m(false, false, true), Gate::Ask, Gate::Ask),
            (m(false, false, false), Gate::Refuse, Gate::Go),
            (m(false, true, false), Gate::Go, Gate::Go),
            (m(false, true, true), Gate::Go, Gate::Go),
            (m(true, false, false), Gate::Print, Gate::Go),
            (m(true, false, true), Gate::Print, Gate::Go),
            (m(true, true, false), Gate::Print, Gate::Go),
        ];
        for (mode, action, decide) in cases {
            assert_eq!(action_gate(mode), action, "{mode:?}");
            assert_eq!(decide_gate(mode), decide, "{mode:?}");
        }
    }

    #[test]
    fn answers_lead_on() {
        let cases = [
            (Answer::Yes, (true, Next::Continue), Next::Continue),
            (Answer::No, (false, Next::Stop), Next::SkipRest),
            (Answer::Skip, (false, Next::Continue), Next::SkipRest),
            (Answer::Quit, (false, Next::Stop), Next::Stop),
        ];
        for (answer, action, decide) in cases {
            assert_eq!(after_action(answer), action, "{answer:?}");
            assert_eq!(after_decide(answer), decide, "{answer:?}");
        }
    }
}
