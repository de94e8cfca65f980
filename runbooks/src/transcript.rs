//! The record of one run, for the postmortem: who ran which runbook when, with what parameters, what each step
//! looked at (rows, findings), each question and its answer, each change (before → after, read back), and how
//! the run ended. Rendered as Markdown (`.statsctl/transcripts/`) and stored as JSON in the ledger; both only
//! after [`Transcript::masked`], so a password or a DSN with credentials never reaches either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statsctl_core::sensitive;

/// The ledger prefix transcripts are appended under (`runbooks/<env>/…`).
pub const LEDGER_KIND: &str = "runbooks";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub runbook: String,
    pub title: String,
    /// The file it came from, or `(built in)`.
    pub source: String,
    pub stack: String,
    pub env: String,
    /// The caller identity (ARN) the run used, or why it is unknown.
    pub who: String,
    /// UTC, `2026-11-28T23:15:00Z`.
    pub started: String,
    pub dry_run: bool,
    pub yes: bool,
    pub params: BTreeMap<String, String>,
    pub steps: Vec<StepRecord>,
    /// How the run ended, in words (`finished`, `stopped at step 3: …`).
    pub ended: String,
    pub result: RunResult,
}

/// What the run comes to; the exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// Every step ran (or the operator decided the rest was not needed), and nothing wrong was left: exit 0.
    Finished,
    /// Finished, but a check or a read-back found a problem it could not fix: exit 2.
    Problem,
    /// Stopped: an error, a refused or declined change, or quit: exit 1.
    Stopped,
}

impl RunResult {
    pub fn exit_code(self) -> i32 {
        match self {
            RunResult::Finished => 0,
            RunResult::Problem => 2,
            RunResult::Stopped => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based, as the run printed it.
    pub number: usize,
    pub title: String,
    pub why: String,
    /// `check`, `metric`, `sql`, `action`, `note`, `decide`.
    pub kind: String,
    pub status: StepStatus,
    /// What the step found or said, one line each (findings, notes, errors, what a dry run would do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The answer and who gave it (`yes (--yes)`, `no (typed)`, `go on (default)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran; nothing wrong found (a change made and read back as taken).
    Done,
    /// Ran and found a problem (a failed check, a change that did not take).
    Problem,
    /// A change shown and not made (`--dry-run`).
    DryRun,
    /// Not run: the operator skipped it, or a `decide` skipped the rest.
    Skipped,
    /// A change the operator declined (the run stopped there).
    Declined,
    /// A change refused: no terminal to ask and no `--yes`.
    Refused,
    /// The operator quit here.
    Quit,
    /// Could not look (database unreachable, a read not available): the run goes on.
    Unavailable,
    /// An error: the run stopped here.
    Failed,
}

impl StepStatus {
    fn word(self) -> &'static str {
        match self {
            StepStatus::Done => "done",
            StepStatus::Problem => "PROBLEM",
            StepStatus::DryRun => "dry run: not changed",
            StepStatus::Skipped => "skipped",
            StepStatus::Declined => "declined",
            StepStatus::Refused => "REFUSED",
            StepStatus::Quit => "quit",
            StepStatus::Unavailable => "unavailable",
            StepStatus::Failed => "FAILED",
        }
    }
}

/// Rows a step read, as text; `truncated` when there were more than the runner keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    #[serde(default)]
    pub truncated: bool,
}

/// One change: what, the value before (read live), the value asked for, and what reading it back showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub what: String,
    pub before: String,
    pub after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<String>,
    /// Whether the read-back shows the change took; `None` when it was not made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took: Option<bool>,
}

/// What a run comes to from its steps: any step that stopped it → stopped; else any problem → problem.
pub fn result_of(steps: &[StepRecord]) -> RunResult {
    use StepStatus::*;
    if steps
        .iter()
        .any(|s| matches!(s.status, Declined | Refused | Quit | Failed))
    {
        RunResult::Stopped
    } else if steps.iter().any(|s| s.status == Problem) {
        RunResult::Problem
    } else {
        RunResult::Finished
    }
}

impl Transcript {
    /// The same transcript with every secret masked: parameters and table cells by their name, every text by
    /// the stack's one masking (`key: value` lines, URL passwords, PEM keys).
    pub fn masked(&self) -> Transcript {
        let mut t = self.clone();
        for (k, v) in t.params.iter_mut() {
            *v = sensitive::mask_value(k, v);
        }
        for s in &mut t.steps {
            if let Some(table) = &mut s.table {
                for (i, c) in table.columns.iter().enumerate() {
                    for row in &mut table.rows {
                        if let Some(cell) = row.get_mut(i) {
                            *cell = sensitive::mask_value(c, cell);
                        }
                    }
                }
            }
        }
        let Ok(mut v) = serde_json::to_value(&t) else {
            return t;
        };
        sensitive::redact_json(&mut v);
        redact_strings(&mut v);
        serde_json::from_value(v).unwrap_or(t)
    }

    /// The Markdown a person reads in the postmortem.
    pub fn markdown(&self) -> String {
        let mut out = format!("# Runbook `{}`: {}\n\n", self.runbook, self.title);
        let mode = match (self.dry_run, self.yes) {
            (true, _) => "dry run (nothing changed)",
            (false, true) => "run with --yes",
            (false, false) => "run, confirmed step by step",
        };
        let rows = [
            ("stack", format!("{}/{}", self.stack, self.env)),
            ("who", self.who.clone()),
            ("started", self.started.clone()),
            ("mode", mode.to_string()),
            ("source", self.source.clone()),
            ("ended", self.ended.clone()),
            ("result", format!("{:?}", self.result).to_lowercase()),
        ];
        out.push_str("| | |\n|---|---|\n");
        for (k, v) in rows {
            out.push_str(&format!("| {k} | {} |\n", cell(&v)));
        }
        if !self.params.is_empty() {
            out.push_str("\n**Parameters**\n\n");
            for (k, v) in &self.params {
                out.push_str(&format!("- `{k}` = `{v}`\n"));
            }
        }
        for s in &self.steps {
            out.push_str(&format!(
                "\n## {}. {} ({}) — {}\n\n_{}_\n",
                s.number,
                s.title,
                s.kind,
                s.status.word(),
                s.why
            ));
            if !s.lines.is_empty() {
                out.push('\n');
                for l in &s.lines {
                    out.push_str(&format!("- {l}\n"));
                }
            }
            if let Some(t) = &s.table {
                out.push('\n');
                out.push_str(&markdown_table(t));
            }
            if let Some(c) = &s.change {
                out.push_str(&format!(
                    "\n**Change:** {}: `{}` → `{}`\n",
                    c.what, c.before, c.after
                ));
                if let Some(r) = &c.read_back {
                    let took = match c.took {
                        Some(true) => " (took)",
                        Some(false) => " (**did not take**)",
                        None => "",
                    };
                    out.push_str(&format!("\n**Read back:** {r}{took}\n"));
                }
            }
            if let Some(q) = &s.question {
                out.push_str(&format!(
                    "\n**Asked:** {q} — **answer:** {}\n",
                    s.answer.as_deref().unwrap_or("(none)")
                ));
            }
        }
        out
    }
}

fn redact_strings(v: &mut Value) {
    match v {
        Value::String(s) => *s = sensitive::redact_line(s),
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(map) => map.values_mut().for_each(redact_strings),
        _ => {}
    }
}

/// A Markdown table cell: pipes escaped, one line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn markdown_table(t: &Table) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        t.columns
            .iter()
            .map(String::as_str)
            .map(cell)
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(t.columns.len().max(1))
    );
    for r in &t.rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter()
                .map(String::as_str)
                .map(cell)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    if t.rows.is_empty() {
        out.push_str("\n(no rows)\n");
    }
    if t.truncated {
        out.push_str(&format!("\n(first {} rows shown)\n", t.rows.len()));
    }
    out
}

/// The transcript's file name: `<utc>-<runbook>.md`, with the colons of the time left out so it is a valid name
/// everywhere.
pub fn file_name(started: &str, runbook: &str) -> String {
    let stamp: String = started.chars().filter(|c| *c != ':').collect();
    format!("{stamp}-{runbook}.md")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(number: usize, status: StepStatus) -> StepRecord {
        StepRecord {
            number,
            title: format!("step {number}"),
            why: "because".into(),
            kind: "sql".into(),
            status,
            lines: vec![],
            table: None,
            question: None,
            answer: None,
            change: None,
        }
    }

    #[test]
    fn results_from_steps() {
        use StepStatus::*;
        let cases: &[(&[StepStatus], RunResult)] = &[
            (&[Done, Done], RunResult::Finished),
            (&[Done, Skipped, Unavailable, DryRun], RunResult::Finished),
            (&[Done, Problem], RunResult::Problem),
            (&[Problem, Refused], RunResult::Stopped),
            (&[Declined], RunResult::Stopped),
            (&[Quit], RunResult::Stopped),
            (&[Done, Failed], RunResult::Stopped),
            (&[], RunResult::Finished),
        ];
        for (statuses, want) in cases {
            let steps: Vec<StepRecord> = statuses
                .iter()
                .enumerate()
                .map(|(i, s)| step(i + 1, *s))
                .collect();
            assert_eq!(result_of(&steps), *want, "{statuses:?}");
        }
        assert_eq!(RunResult::Finished.exit_code(), 0);
        assert_eq!(RunResult::Problem.exit_code(), 2);
        assert_eq!(RunResult::Stopped.exit_code(), 1);
    }

    fn transcript() -> Transcript {
        let mut rows = step(1, StepStatus::Done);
        rows.table = Some(Table {
            columns: vec!["pid".into(), "usename".into(), "password".into()],
            rows: vec![vec![
                "42".into(),
                "stats_api".into(),
                "hunter2hunter2".into(),
            ]],
            truncated: true,
        });
        rows.lines = vec!["DSN postgres://stats_api:s3cret@db:5432/stats".into()];
        let mut change = step(2, StepStatus::Done);
        change.kind = "action".into();
        change.question = Some("terminate 1 connection?".into());
        change.answer = Some("yes (--yes)".into());
        change.change = Some(ChangeRecord {
            what: "connections of `stats_api` idle longer than 1s".into(),
            before: "1".into(),
            after: "0".into(),
            read_back: Some("0 left".into()),
            took: Some(true),
        });
        Transcript {
            runbook: "kill-idle-connections".into(),
            title: "Terminate idle connections".into(),
            source: "(built in)".into(),
            stack: "live-stats".into(),
            env: "local".into(),
            who: "arn:aws:iam::123456789012:user/ops".into(),
            started: "2026-11-28T23:15:00Z".into(),
            dry_run: false,
            yes: true,
            params: [
                ("user".to_string(), "stats_api".to_string()),
                ("db_password".to_string(), "hunter2hunter2".to_string()),
            ]
            .into(),
            steps: vec![rows, change],
            ended: "finished".into(),
            result: RunResult::Finished,
        }
    }

    #[test]
    fn masked_transcripts_hold_no_secret() {
        let t = transcript().masked();
        let md = t.markdown();
        let json = serde_json::to_string(&t).unwrap();
        for text in [&md, &json] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        // What is not secret stays readable.
        assert_eq!(t.params["user"], "stats_api");
        assert_eq!(t.steps[0].table.as_ref().unwrap().rows[0][1], "stats_api");
        assert!(
            md.contains("postgres://stats_api:***@db:5432/stats"),
            "{md}"
        );
    }

    #[test]
    fn markdown_shows_rows_answers_and_changes() {
        let md = transcript().masked().markdown();
        for want in [
            "# Runbook `kill-idle-connections`: Terminate idle connections",
            "| who | arn:aws:iam::123456789012:user/ops |",
            "| mode | run with --yes |",
            "- `user` = `stats_api`",
            "## 1. step 1 (sql) — done",
            "| pid | usename | password |",
            "| 42 | stats_api | (sensitive) |",
            "(first 1 rows shown)",
            "## 2. step 2 (action) — done",
            "**Change:** connections of `stats_api` idle longer than 1s: `1` → `0`",
            "**Read back:** 0 left (took)",
            "**Asked:** terminate 1 connection? — **answer:** yes (--yes)",
        ] {
            assert!(md.contains(want), "missing {want:?} in\n{md}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(
            file_name("2026-11-28T23:15:00Z", "kill-idle-connections"),
            "2026-11-28T231500Z-kill-idle-connections.md"
        );
    }
}
