//! `rollback.ready`: each function's alias has a previous version that still exists; the service's previous task
//! definition is still registered.

use crate::{Facts, Finding, Status};

pub const ID: &str = "rollback.ready";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    for (function, prev) in &facts.previous_versions {
        match prev {
            Some(true) => evidence.push(format!("{function}: previous version exists")),
            Some(false) => problems.push(format!(
                "{function}: the previous version recorded on its alias was deleted"
            )),
            None => problems.push(format!(
                "{function}: no previous version to roll back to (first deploy)"
            )),
        }
    }
    match &facts.previous_task_definition {
        Some((rev, true)) => evidence.push(format!(
            "service: previous task definition {rev} registered"
        )),
        Some((rev, false)) => problems.push(format!(
            "service: previous task definition {rev} is no longer registered"
        )),
        None if facts.stack.service.is_some() => {
            problems.push("service: no previous task definition revision".into())
        }
        None => {}
    }
    if problems.is_empty() {
        let mut f = Finding::new(
            ID,
            Status::Pass,
            "every function and the service can roll back",
        );
        f.evidence = evidence;
        return vec![f];
    }
    let deleted = problems
        .iter()
        .any(|p| p.contains("deleted") || p.contains("no longer"));
    let status = if deleted { Status::Fail } else { Status::Warn };
    let mut f = Finding::new(ID, status, problems[0].clone());
    f.evidence = problems;
    f = f.fix("deploy a known-good build once more before the event so the alias has a version to return to; never delete published versions the alias remembers");
    vec![f]
}
