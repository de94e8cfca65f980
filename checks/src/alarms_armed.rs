//! `alarms.armed`: every alarm the stack requires exists, notifies someone, and is not in ALARM.

use statsctl_core::inventory::Kind;

use crate::{Facts, Finding, Status};

pub const ID: &str = "alarms.armed";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let mut missing = Vec::new();
    let mut silent = Vec::new();
    let mut firing = Vec::new();
    for name in &facts.required_alarms {
        match facts.observed.get(Kind::Alarm, name) {
            None => missing.push(name.clone()),
            Some(a) => {
                if a.attrs.get("actions").is_none_or(|v| v.is_empty()) {
                    silent.push(name.clone());
                }
                if a.state == "ALARM" {
                    firing.push(format!(
                        "{name}: {}",
                        a.output("state_reason").unwrap_or("in ALARM")
                    ));
                }
            }
        }
    }
    let total = facts.required_alarms.len();
    if missing.is_empty() && silent.is_empty() && firing.is_empty() {
        return vec![Finding::new(
            ID,
            Status::Pass,
            format!("{total} alarms exist, notify, and none is in ALARM"),
        )];
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing", missing.len()));
    }
    if !silent.is_empty() {
        parts.push(format!("{} notify nobody", silent.len()));
    }
    if !firing.is_empty() {
        parts.push(format!("{} in ALARM", firing.len()));
    }
    let mut f = Finding::new(
        ID,
        Status::Fail,
        format!(
            "{} of {total} alarms: {}",
            missing.len() + silent.len() + firing.len(),
            parts.join(", ")
        ),
    );
    f.evidence
        .extend(missing.iter().map(|m| format!("missing: {m}")));
    f.evidence
        .extend(silent.iter().map(|m| format!("no alarm action: {m}")));
    f.evidence
        .extend(firing.iter().map(|m| format!("in ALARM: {m}")));
    if !missing.is_empty() || !silent.is_empty() {
        f = f.fix("statsctl deploy (recreates the alarms the stack requires); set `alarms.notify` to an SNS topic");
    }
    if !firing.is_empty() {
        f = f.fix("investigate the alarms in ALARM before the event (statsctl status)");
    }
    vec![f]
}

/// The alarm names the stack requires in `env`: the alarms among its desired resources. Pure.
pub fn required(
    stack: &statsctl_core::model::StackFile,
    env: &str,
    observed: &statsctl_core::inventory::Observed,
    artifacts: &std::collections::BTreeMap<String, statsctl_core::desired::Artifact>,
) -> Vec<String> {
    statsctl_core::desired::desired(stack, env, observed, artifacts)
        .into_iter()
        .filter(|d| d.key.kind == Kind::Alarm)
        .map(|d| d.key.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::Observed;

    #[test]
    fn the_required_alarms_are_the_stacks_own_for_the_environment() {
        let stack = crate::fixtures::stack_from("");
        let none = std::collections::BTreeMap::new();
        for env in ["dev", "prod"] {
            let names = required(&stack, env, &Observed::default(), &none);
            assert!(!names.is_empty(), "{env}");
            assert!(
                names.iter().all(|n| n.starts_with(&format!("t-{env}-"))),
                "{env}: {names:?}"
            );
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "{env}: each once");
        }
    }
}
