//! `rollback.ready`: what `statsctl rollback` would return each function and the service to still exists. The
//! target follows the same rule as `rollback` (`core::history::rollback_target`: the version serving before the
//! last shipped unit that put the live one there); only when history has no such unit does it fall back to the
//! alias description's `previous=N` (the service: revision − 1), and says so.

use statsctl_core::desired::Names;
use statsctl_core::history::{rollback_target, UnitRecord};
use statsctl_core::inventory::{Key, Kind, Observed};
use statsctl_core::model::StackFile;

use crate::{Facts, Finding, Status};

pub const ID: &str = "rollback.ready";

/// Where a rollback target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    /// The deploy history (the rule `statsctl rollback` follows).
    History,
    /// History has no unit that shipped the live version: the alias description's `previous=N`.
    AliasDescription,
    /// History has no unit that shipped the live revision: the revision before it.
    RevisionMinusOne,
}

/// What a function or the service would roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The version (function) or revision (`family:N`, service) serving now.
    pub live: String,
    pub to: String,
    pub source: TargetSource,
}

/// A rollback target and whether it still exists (the version is published, the revision ACTIVE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub target: Target,
    pub exists: bool,
}

fn source_words(t: &Target) -> String {
    match t.source {
        TargetSource::History => "from history".to_string(),
        TargetSource::AliasDescription => format!(
            "from the alias description: history has no unit that shipped version {}",
            t.live
        ),
        TargetSource::RevisionMinusOne => format!(
            "the revision before: history has no unit that shipped {}",
            t.live
        ),
    }
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    let mut deleted = false;
    for (function, prev) in &facts.previous_versions {
        match prev {
            Some(Previous { target, exists }) => {
                let line = format!(
                    "{function}: version {} rolls back to version {} ({})",
                    target.live,
                    target.to,
                    source_words(target)
                );
                if *exists {
                    evidence.push(line);
                } else {
                    deleted = true;
                    problems.push(format!("{line}, which was deleted"));
                }
            }
            None => problems.push(format!(
                "{function}: no previous version to roll back to (first deploy)"
            )),
        }
    }
    match &facts.previous_task_definition {
        Some(Previous { target, exists }) => {
            let line = format!(
                "service: {} rolls back to {} ({})",
                target.live,
                target.to,
                source_words(target)
            );
            if *exists {
                evidence.push(line);
            } else {
                deleted = true;
                problems.push(format!("{line}, which is no longer registered"));
            }
        }
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
    let status = if deleted { Status::Fail } else { Status::Warn };
    let mut f = Finding::new(ID, status, problems[0].clone());
    // What can roll back is said too: the on-call reading a warning sees where each target came from.
    f.evidence = problems;
    f.evidence.extend(evidence);
    if deleted {
        f = f.fix("`statsctl rollback --to VERSION` can still return to a version that exists (`statsctl history` lists what shipped); before the event, deploy a known-good build again so there is a version to return to, and never delete published versions or task definitions history may name");
    } else {
        f = f.fix("deploy a known-good build once more before the event so the alias has a version to return to; never delete published versions the alias remembers");
    }
    vec![f]
}

/// What each function would roll back to: its deployed name and the target (`None`: not deployed, or nothing to
/// go back to). History first, the alias description's `previous=N` when history has no answer. Pure.
pub fn alias_targets(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
    history: &[UnitRecord],
) -> Vec<(String, Option<Target>)> {
    stack
        .functions
        .iter()
        .map(|(name, f)| {
            let function = stack.function_name(env, name);
            let alias = Key::alias_name(&function, &f.alias);
            let target = observed
                .output(Kind::Alias, &alias, "version")
                .and_then(|live| {
                    let (to, source) = match rollback_target(history, &function, live) {
                        Some(to) => (to, TargetSource::History),
                        None => (
                            observed
                                .output(Kind::Alias, &alias, "previous")
                                .filter(|p| *p != live)?
                                .to_string(),
                            TargetSource::AliasDescription,
                        ),
                    };
                    Some(Target {
                        live: live.to_string(),
                        to,
                        source,
                    })
                });
            (function, target)
        })
        .collect()
}

/// What the service would roll back to: from history for the revision it runs, else the revision before. Pure.
pub fn task_definition_target(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
    history: &[UnitRecord],
) -> Option<Target> {
    let svc = stack.service.as_ref()?;
    // The serving colour's revision: after a blue/green rollout, green's, while blue idles on the previous one.
    let live = statsctl_core::desired::service::live_service(stack, env, observed)
        .and_then(|(_, r)| r.attrs.get("task_definition"))
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            observed.output(
                Kind::TaskDefinition,
                &Names::new(stack, env).task_family(&svc.name),
                "revision_ref",
            )
        })?;
    let (to, source) = match rollback_target(history, &svc.name, live) {
        Some(to) => (to, TargetSource::History),
        None => (previous_revision(live)?, TargetSource::RevisionMinusOne),
    };
    Some(Target {
        live: live.to_string(),
        to,
        source,
    })
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
    use statsctl_core::history::{Outcome, UnitKind};
    use statsctl_core::inventory::ObservedResource;
    use std::collections::BTreeMap;

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

    fn shipped(kind: UnitKind, target: &str, from: &str, to: &str, ended: u64) -> UnitRecord {
        UnitRecord {
            env: "dev".into(),
            unit: "u".into(),
            kind,
            target: target.into(),
            from: Some(from.into()),
            to: Some(to.into()),
            started_at: ended - 1,
            ended_at: ended,
            who: "arn:aws:iam::1:user/ops".into(),
            strategy: "canary".into(),
            timeline: vec![],
            outcome: Outcome::Shipped,
            alarm: None,
            ignored_alarms: vec![],
            detail: None,
        }
    }

    fn resource(outputs: &[(&str, &str)], attrs: &[(&str, &str)]) -> ObservedResource {
        let mut r = ObservedResource::default();
        for (k, v) in outputs {
            r.outputs.insert(k.to_string(), v.to_string());
        }
        for (k, v) in attrs {
            r.attrs.insert(k.to_string(), v.to_string());
        }
        r
    }

    fn target(live: &str, to: &str, source: TargetSource) -> Option<Target> {
        Some(Target {
            live: live.into(),
            to: to.into(),
            source,
        })
    }

    #[test]
    fn a_function_rolls_back_where_history_says_else_where_the_alias_remembers() {
        use TargetSource::*;
        let stack = stack_from("");
        let api = stack.function_name("dev", "stats-api");
        let alias = Key::alias_name(&api, &stack.functions["stats-api"].alias);
        let alias_at = |outputs: &[(&str, &str)]| {
            let mut o = Observed::default();
            o.resources
                .insert(Key::new(Kind::Alias, &alias), resource(outputs, &[]));
            o
        };
        let f = UnitKind::Function;
        // (case, alias outputs, history, expected target for stats-api)
        let cases: Vec<(&str, Observed, Vec<UnitRecord>, Option<Target>)> = vec![
            ("not deployed", Observed::default(), vec![], None),
            (
                "history beats the description (2 was the bad build)",
                alias_at(&[("version", "3"), ("previous", "2")]),
                vec![shipped(f, &api, "1", "3", 10)],
                target("3", "1", History),
            ),
            (
                "no history: the description",
                alias_at(&[("version", "3"), ("previous", "2")]),
                vec![],
                target("3", "2", AliasDescription),
            ),
            (
                "history of another function only",
                alias_at(&[("version", "3"), ("previous", "2")]),
                vec![shipped(f, "other", "1", "3", 10)],
                target("3", "2", AliasDescription),
            ),
            (
                "nothing remembered: a first deploy",
                alias_at(&[("version", "1")]),
                vec![],
                None,
            ),
            (
                "the description names the live version",
                alias_at(&[("version", "2"), ("previous", "2")]),
                vec![],
                None,
            ),
        ];
        for (case, observed, history, want) in cases {
            let targets = alias_targets(&stack, "dev", &observed, &history);
            assert_eq!(targets.len(), stack.functions.len(), "{case}");
            let got = targets
                .into_iter()
                .find(|(name, _)| *name == api)
                .unwrap()
                .1;
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn the_service_rolls_back_where_history_says_else_to_the_revision_before() {
        use TargetSource::*;
        let stack = stack_from("");
        let family = Names::new(&stack, "dev").task_family("svc");
        let rev = |n: u32| format!("{family}:{n}");
        let serving = |n: u32| {
            let mut o = Observed::default();
            o.resources.insert(
                Key::new(Kind::EcsService, "svc"),
                resource(&[], &[("task_definition", &rev(n))]),
            );
            o
        };
        let green_serves = |blue: u32, green: u32| {
            let names = statsctl_core::desired::service::ColourNames::new(&stack, "dev").unwrap();
            let mut o = serving(blue);
            o.resources.insert(
                Key::new(Kind::EcsService, "svc-green"),
                resource(&[], &[("task_definition", &rev(green))]),
            );
            let green_tg = names.target_group(statsctl_core::desired::service::Colour::Green);
            o.resources.insert(
                Key::new(Kind::Listener, &names.listener),
                resource(&[("weights", &format!("{green_tg}=100"))], &[]),
            );
            o
        };
        let s = UnitKind::Service;
        let cases: Vec<(&str, Observed, Vec<UnitRecord>, Option<Target>)> = vec![
            ("nothing deployed", Observed::default(), vec![], None),
            (
                "history",
                serving(5),
                vec![shipped(s, "svc", &rev(2), &rev(5), 10)],
                target(&rev(5), &rev(2), History),
            ),
            (
                "no history",
                serving(5),
                vec![],
                target(&rev(5), &rev(4), RevisionMinusOne),
            ),
            ("the first revision", serving(1), vec![], None),
            (
                // After a blue/green rollout: green serves revision 5, blue idles on 2. Green's is the live one.
                "green serves",
                green_serves(2, 5),
                vec![shipped(s, "svc", &rev(2), &rev(5), 10)],
                target(&rev(5), &rev(2), History),
            ),
        ];
        for (case, observed, history, want) in cases {
            assert_eq!(
                task_definition_target(&stack, "dev", &observed, &history),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn the_verdict_names_the_target_and_where_it_came_from() {
        use TargetSource::*;
        let stack = stack_from("");
        let observed = Observed::default();
        let prev = |live: &str, to: &str, source, exists| {
            Some(Previous {
                target: Target {
                    live: live.into(),
                    to: to.into(),
                    source,
                },
                exists,
            })
        };
        let svc_ok = prev("t-dev-svc:5", "t-dev-svc:2", History, true);
        // (case, stats-api's target, service's target, status, a line that must be there)
        let cases = [
            (
                "all from history",
                prev("9", "7", History, true),
                svc_ok.clone(),
                Status::Pass,
                "f: version 9 rolls back to version 7 (from history)",
            ),
            (
                "the history target was deleted",
                prev("9", "7", History, false),
                svc_ok.clone(),
                Status::Fail,
                "f: version 9 rolls back to version 7 (from history), which was deleted",
            ),
            (
                "fallback said so",
                prev("9", "8", AliasDescription, true),
                svc_ok.clone(),
                Status::Pass,
                "f: version 9 rolls back to version 8 (from the alias description: history has no unit that shipped version 9)",
            ),
            (
                "first deploy",
                None,
                svc_ok,
                Status::Warn,
                "f: no previous version to roll back to (first deploy)",
            ),
            (
                "service revision gone",
                prev("9", "7", History, true),
                prev("t-dev-svc:5", "t-dev-svc:4", RevisionMinusOne, false),
                Status::Fail,
                "service: t-dev-svc:5 rolls back to t-dev-svc:4 (the revision before: history has no unit that shipped t-dev-svc:5), which is no longer registered",
            ),
        ];
        for (case, function, service, status, line) in cases {
            let facts = Facts {
                previous_versions: BTreeMap::from([("f".to_string(), function)]),
                previous_task_definition: service,
                ..crate::fixtures::facts(&stack, "dev", &observed)
            };
            let f = &check(&facts)[0];
            assert_eq!(f.status, status, "{case}: {f:?}");
            assert!(f.evidence.iter().any(|e| e == line), "{case}: {f:?}");
        }
    }
}
