//! The runbooks shipped in the binary: `runbooks/shipped/NAME.yaml`, embedded at build time, so an on-call
//! engineer has them without a checkout. A unit test loads every one, so a broken file fails the build's tests,
//! never an incident.

/// (name, YAML text) of every shipped runbook, in the order `runbook list` shows them.
pub fn shipped() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "db-connections-exhausted",
            include_str!("../shipped/db-connections-exhausted.yaml"),
        ),
        (
            "kill-idle-connections",
            include_str!("../shipped/kill-idle-connections.yaml"),
        ),
        (
            "lambda-bypassing-proxy",
            include_str!("../shipped/lambda-bypassing-proxy.yaml"),
        ),
        ("bad-deploy", include_str!("../shipped/bad-deploy.yaml")),
        (
            "accepting-but-not-answering",
            include_str!("../shipped/accepting-but-not-answering.yaml"),
        ),
        (
            "scale-for-event",
            include_str!("../shipped/scale-for-event.yaml"),
        ),
        ("pre-event", include_str!("../shipped/pre-event.yaml")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::runbook::{load_str, references, Action, Reference, Runbook, StepKind};
    use std::collections::BTreeSet;
    use std::path::Path;

    fn all() -> Vec<Runbook> {
        shipped()
            .into_iter()
            .map(|(name, text)| {
                load_str(Path::new(&format!("runbooks/shipped/{name}.yaml")), text)
                    .unwrap_or_else(|e| panic!("shipped runbook `{name}` does not load:\n{e}"))
            })
            .collect()
    }

    /// Every shipped runbook loads with no errors, under the name its file has.
    #[test]
    fn every_shipped_runbook_loads_under_its_file_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shipped");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut embedded: Vec<String> = shipped()
            .iter()
            .map(|(name, _)| format!("{name}.yaml"))
            .collect();
        embedded.sort();
        assert_eq!(
            files, embedded,
            "every file under runbooks/shipped/ is embedded, once"
        );
        for ((name, _), rb) in shipped().iter().zip(all()) {
            assert_eq!(&rb.name, name, "`name:` matches the file name");
            assert!(!rb.title.is_empty() && !rb.when.is_empty(), "{name}");
        }
    }

    /// Each runbook the issue lists is shipped.
    #[test]
    fn the_runbooks_the_issue_lists_exist() {
        let names: BTreeSet<&str> = shipped().iter().map(|(n, _)| *n).collect();
        for want in [
            "db-connections-exhausted",
            "kill-idle-connections",
            "lambda-bypassing-proxy",
            "bad-deploy",
            "accepting-but-not-answering",
            "scale-for-event",
            "pre-event",
        ] {
            assert!(names.contains(want), "`{want}` is not shipped");
        }
    }

    /// An action's references name a parameter or an earlier step with an id (load_str checks this too; this
    /// pins it for the shipped files, so a reordering that breaks one fails here), check steps name checks that
    /// exist, and metric steps name a part of the stack statsctl knows.
    #[test]
    fn references_checks_and_metrics_resolve() {
        let check_ids = statsctl_checks::ids();
        for rb in all() {
            let mut earlier: BTreeSet<&str> = BTreeSet::new();
            for step in &rb.steps {
                match &step.kind {
                    StepKind::Action(a) => {
                        for r in references(&action_text(a)) {
                            match r {
                                Ok(Reference::Param(p)) => assert!(
                                    rb.params.contains_key(&p),
                                    "{}: `{}` uses a parameter `{p}` it does not declare",
                                    rb.name,
                                    step.title
                                ),
                                Ok(Reference::Step { id, .. }) => assert!(
                                    earlier.contains(id.as_str()),
                                    "{}: `{}` uses step `{id}`, which is not an earlier step",
                                    rb.name,
                                    step.title
                                ),
                                Err(e) => panic!("{}: `{}`: {e}", rb.name, step.title),
                            }
                        }
                    }
                    StepKind::Check(ids) => {
                        for id in ids {
                            assert!(
                                check_ids.contains(&id.as_str()),
                                "{}: `{}` runs an unknown check `{id}`",
                                rb.name,
                                step.title
                            );
                        }
                    }
                    StepKind::Metric(m) => {
                        crate::metric::Of::parse(&m.of)
                            .unwrap_or_else(|e| panic!("{}: `{}`: {e}", rb.name, step.title));
                    }
                    _ => {}
                }
                if let Some(id) = &step.id {
                    earlier.insert(id);
                }
            }
        }
    }

    /// What the issue asks of the two connection runbooks: the holder is a step field their actions use, and
    /// kill-idle-connections defaults to every application user, never the admin.
    #[test]
    fn connection_runbooks_use_what_earlier_steps_found() {
        let rbs = all();
        let by_name = |n: &str| rbs.iter().find(|r| r.name == n).unwrap();
        let exhausted = by_name("db-connections-exhausted");
        let actions: Vec<String> = exhausted
            .steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Action(a) => Some(action_text(a)),
                _ => None,
            })
            .collect();
        assert!(
            actions
                .iter()
                .any(|a| a.contains("{{steps.holders.usename}}")),
            "{actions:?}"
        );
        assert!(
            actions.iter().any(|a| a.contains("{{steps.budget.")),
            "{actions:?}"
        );

        let kill = by_name("kill-idle-connections");
        assert_eq!(
            kill.params["user"].default_from,
            Some(statsctl_core::runbook::StackValue::AppUsers)
        );
        assert_eq!(kill.params["older_than"].default.as_deref(), Some("5m"));
        assert!(kill.steps.iter().any(|s| matches!(
            &s.kind,
            StepKind::Action(Action::TerminateIdleConnections { user, .. }) if user == "{{steps.idle.usename}}"
        )));
    }

    fn action_text(a: &Action) -> String {
        // The serialized form holds every text of the action, references included.
        format!("{a:?}")
    }
}
