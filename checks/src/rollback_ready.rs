//! `rollback.ready`: each function's alias has a previous version that still exists; the service's previous task
//! definition is still registered.

use statsctl_core::desired::Names;
use statsctl_core::inventory::{Kind, Observed};
use statsctl_core::model::StackFile;

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

/// What each function would roll back to: its deployed name and the version its alias recorded as `previous`
/// (`None`: nothing recorded, a first deploy). Preflight asks AWS whether each still exists. Pure.
pub fn alias_targets(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
) -> Vec<(String, Option<String>)> {
    stack
        .functions
        .iter()
        .map(|(name, f)| {
            let function = stack.function_name(env, name);
            let previous = observed
                .output(
                    Kind::Alias,
                    &statsctl_core::inventory::Key::alias_name(&function, &f.alias),
                    "previous",
                )
                .map(str::to_string);
            (function, previous)
        })
        .collect()
}

/// The task definition the service would roll back to: the revision before the one deployed. Pure.
pub fn task_definition_target(stack: &StackFile, env: &str, observed: &Observed) -> Option<String> {
    let svc = stack.service.as_ref()?;
    let deployed = observed.output(
        Kind::TaskDefinition,
        &Names::new(stack, env).task_family(&svc.name),
        "revision_ref",
    )?;
    previous_revision(deployed)
}

/// `family:N` → `family:N-1`; nothing before revision 1, nor for a reference that is not `family:N`. Pure.
pub fn previous_revision(revision_ref: &str) -> Option<String> {
    let (family, n) = revision_ref.rsplit_once(':')?;
    let n: u32 = n.parse().ok()?;
    (n > 1).then(|| format!("{family}:{}", n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stack_from;
    use statsctl_core::inventory::{Key, ObservedResource};

    #[test]
    fn the_previous_revision_is_one_before_the_deployed_one() {
        let cases = [
            ("t-dev-svc:7", Some("t-dev-svc:6")),
            ("t-dev-svc:2", Some("t-dev-svc:1")),
            ("t-dev-svc:1", None),
            ("t-dev-svc:0", None),
            (
                "arn:aws:ecs:eu-west-1:1:task-definition/f:12",
                Some("arn:aws:ecs:eu-west-1:1:task-definition/f:11"),
            ),
            ("t-dev-svc", None),
            ("t-dev-svc:x", None),
            ("t-dev-svc:-3", None),
            ("", None),
        ];
        for (deployed, want) in cases {
            assert_eq!(previous_revision(deployed).as_deref(), want, "{deployed}");
        }
    }

    fn with_output(kind: Kind, name: &str, output: &str, value: &str) -> Observed {
        let mut r = ObservedResource::default();
        r.outputs.insert(output.into(), value.into());
        let mut o = Observed::default();
        o.resources.insert(Key::new(kind, name), r);
        o
    }

    #[test]
    fn targets_come_from_what_the_alias_and_the_service_record() {
        let stack = stack_from("");
        let api = stack.function_name("dev", "stats-api");
        let alias = stack.functions["stats-api"].alias.clone();
        let observed = with_output(Kind::Alias, &format!("{api}:{alias}"), "previous", "3");
        let targets = alias_targets(&stack, "dev", &observed);
        assert_eq!(targets.len(), stack.functions.len());
        assert!(
            targets.contains(&(api, Some("3".to_string()))),
            "{targets:?}"
        );
        assert!(
            targets.contains(&(stack.function_name("dev", "log-ingester"), None)),
            "{targets:?}"
        );

        let family = Names::new(&stack, "dev").task_family("svc");
        // (case, observed, expected)
        let cases = [
            ("nothing deployed", Observed::default(), None),
            (
                "revision 4 deployed",
                with_output(
                    Kind::TaskDefinition,
                    &family,
                    "revision_ref",
                    &format!("{family}:4"),
                ),
                Some(format!("{family}:3")),
            ),
            (
                "the first revision",
                with_output(
                    Kind::TaskDefinition,
                    &family,
                    "revision_ref",
                    &format!("{family}:1"),
                ),
                None,
            ),
        ];
        for (case, observed, want) in cases {
            assert_eq!(
                task_definition_target(&stack, "dev", &observed),
                want,
                "{case}"
            );
        }
    }
}
