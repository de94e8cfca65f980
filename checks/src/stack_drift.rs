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

/// What the plan would change, one line each (`kind.name (action)`, lower case), for the check's evidence. Pure.
pub fn pending(plan: &statsctl_core::plan::Plan) -> Vec<String> {
    plan.pending()
        .map(|c| format!("{} ({:?})", c.key, c.action).to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::{Key, Kind};
    use statsctl_core::plan::{Action, Change, Plan, Summary};

    #[test]
    fn pending_changes_are_named_with_their_action_and_no_ops_left_out() {
        let change = |kind, name: &str, action| Change {
            key: Key::new(kind, name),
            action,
            changes: vec![],
            blocked: None,
        };
        let plan = Plan {
            stack: "t".into(),
            env: "dev".into(),
            changes: vec![
                change(Kind::Function, "t-dev-Stats-API", Action::Update),
                change(Kind::Alarm, "t-dev-errors", Action::NoOp),
                change(Kind::Alarm, "t-dev-latency", Action::Create),
                change(Kind::Subnet, "subnet-a", Action::Delete),
            ],
            summary: Summary::default(),
        };
        let label = |k: Kind| k.label().to_lowercase();
        assert_eq!(
            pending(&plan),
            [
                format!("{}.t-dev-stats-api (update)", label(Kind::Function)),
                format!("{}.t-dev-latency (create)", label(Kind::Alarm)),
                format!("{}.subnet-a (delete)", label(Kind::Subnet)),
            ]
        );
        let mut nothing = plan.clone();
        nothing.changes.retain(|c| c.action == Action::NoOp);
        assert!(pending(&nothing).is_empty());
    }
}
