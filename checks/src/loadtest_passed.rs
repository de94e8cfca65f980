//! `loadtest.passed`: a recorded load test for this environment passed, for exactly the deployed versions, at
//! ≥ expected viewers × headroom, no older than the stack's max age.

use crate::{Facts, Finding, Status};

pub const ID: &str = "loadtest.passed";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let Some(criteria) = &facts.stack.loadtest else {
        return vec![Finding::new(
            ID,
            Status::Skip,
            "the stack sets no load-test criteria (`loadtest:`)",
        )];
    };
    let needed = (facts.viewers as f64 * criteria.headroom).ceil() as u64;
    let max_age = criteria.max_age.as_secs();
    let fix = format!("statsctl loadtest --env {} --viewers {needed}", facts.env);
    let mine: Vec<_> = facts
        .loadtests
        .iter()
        .filter(|r| r.env == facts.env)
        .collect();
    if mine.is_empty() {
        return vec![Finding::new(ID, Status::Fail, "no load test recorded").fix(fix)];
    }
    let good = mine
        .iter()
        .filter(|r| {
            r.passed
                && r.viewers >= needed
                && facts.now.saturating_sub(r.finished_at) <= max_age
                && r.versions == facts.deployed_versions
        })
        .max_by_key(|r| r.finished_at);
    if let Some(r) = good {
        return vec![Finding::new(
            ID,
            Status::Pass,
            format!(
                "passed at {} viewers {} ago, for the deployed versions",
                r.viewers,
                age(facts.now.saturating_sub(r.finished_at))
            ),
        )];
    }
    // Say why the newest one does not count.
    let newest = mine.iter().max_by_key(|r| r.finished_at).copied();
    let mut f = Finding::new(
        ID,
        Status::Fail,
        "no passing load test for what is deployed",
    );
    if let Some(r) = newest {
        if !r.passed {
            f = f.evidence("the newest load test failed its thresholds");
        }
        if r.viewers < needed {
            f = f.evidence(format!(
                "the newest ran {} viewers; needed {} ({} × headroom {})",
                r.viewers, needed, facts.viewers, criteria.headroom
            ));
        }
        if facts.now.saturating_sub(r.finished_at) > max_age {
            f = f.evidence(format!(
                "the newest is {} old; max age {}",
                age(facts.now.saturating_sub(r.finished_at)),
                criteria.max_age
            ));
        }
        if r.versions != facts.deployed_versions {
            let changed: Vec<String> = facts
                .deployed_versions
                .iter()
                .filter(|(k, v)| r.versions.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            f = f.evidence(format!(
                "deployed since the newest test: {}",
                changed.join(", ")
            ));
        }
    }
    vec![f.fix(fix)]
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stack_from;
    use crate::{LoadTestRecord, Sourced};
    use statsctl_stacks::inventory::Observed;
    use std::collections::BTreeMap;

    #[test]
    fn table() {
        let mut stack = stack_from("");
        stack.loadtest = Some(
            serde_json::from_value(
                serde_json::json!({"targets": ["http://x"], "headroom": 1.2, "max_age": "7d"}),
            )
            .unwrap(),
        );
        let observed = Observed::default();
        let deployed: BTreeMap<String, String> = [("f".to_string(), "sha-2".to_string())].into();
        let rec = |viewers, passed, age: u64, sha: &str| LoadTestRecord {
            env: "prod".into(),
            finished_at: 1_000_000 - age,
            viewers,
            passed,
            versions: [("f".to_string(), sha.to_string())].into(),
            target: String::new(),
            summary: serde_json::Value::Null,
        };
        let cases = vec![
            ("none", vec![], Status::Fail, "no load test recorded"),
            (
                "good",
                vec![rec(1800, true, 3600, "sha-2")],
                Status::Pass,
                "passed at 1800",
            ),
            (
                "too few viewers",
                vec![rec(1500, true, 3600, "sha-2")],
                Status::Fail,
                "needed 1800",
            ),
            (
                "failed",
                vec![rec(2000, false, 3600, "sha-2")],
                Status::Fail,
                "failed its thresholds",
            ),
            (
                "too old",
                vec![rec(2000, true, 8 * 86_400, "sha-2")],
                Status::Fail,
                "max age",
            ),
            (
                "other version",
                vec![rec(2000, true, 60, "sha-1")],
                Status::Fail,
                "deployed since the newest test: f",
            ),
        ];
        for (name, records, want, text) in cases {
            let facts = Facts {
                stack: &stack,
                env: "prod",
                observed: &observed,
                subnet_vpcs: BTreeMap::new(),
                account_concurrency: Sourced::new(1000, "t"),
                unreserved_concurrency: None,
                max_connections: None,
                current_connections: None,
                service_probes: vec![],
                previous_versions: BTreeMap::new(),
                previous_task_definition: None,
                pending_changes: vec![],
                required_alarms: vec![],
                loadtests: records,
                deployed_versions: deployed.clone(),
                viewers: 1500,
                now: 1_000_000,
            };
            let f = &check(&facts)[0];
            assert_eq!(f.status, want, "{name}: {f:?}");
            let all = format!("{} {:?}", f.summary, f.evidence);
            assert!(all.contains(text), "{name}: {all}");
        }
    }
}
