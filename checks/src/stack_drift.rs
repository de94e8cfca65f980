//! `stack.drift`: no difference between the stack file and live state (the plan is empty).

use crate::{Facts, Finding, Status};

pub const ID: &str = "stack.drift";

pub fn check(facts: &Facts) -> Vec<Finding> {
    if facts.pending_changes.is_empty() {
        return vec![Finding::new(
            ID,
            Status::Pass,
            "live state matches the stack file",
        )];
    }
    let mut f = Finding::new(
        ID,
        Status::Fail,
        format!(
            "{} resource(s) differ from the stack file",
            facts.pending_changes.len()
        ),
    );
    f.evidence = facts.pending_changes.clone();
    vec![f.fix("statsctl plan (to see the differences), then statsctl deploy")]
}
