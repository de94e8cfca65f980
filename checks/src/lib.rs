//! Preflight: is the stack ready for the event? Each check is one pure function over `Facts` (plain data
//! observed from AWS and the database), in its own file, with a stable id; it returns findings with the evidence
//! used and, when not passing, the exact fix.

pub mod alarms_armed;
pub mod capacity;
pub mod http_answer;
pub mod loadtest_passed;
pub mod proxy_attached;
pub mod rollback_ready;
pub mod security;
pub mod service_healthy;
pub mod stack_drift;

use std::collections::BTreeMap;

use serde::Serialize;
use statsctl_core::inventory::Observed;
use statsctl_core::model::StackFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
            Status::Skip => "–",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable id, e.g. `proxy.attached`.
    pub id: &'static str,
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// The facts the verdict rests on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
    /// What to do about it, when not passing: a statsctl command or the setting to change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<String>,
    /// Tables of numbers (the capacity arithmetic).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub table: Vec<Vec<String>>,
}

impl Finding {
    pub fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            id,
            status,
            summary: summary.into(),
            evidence: vec![],
            fixes: vec![],
            table: vec![],
        }
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence.push(e.into());
        self
    }
    pub fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fixes.push(f.into());
        self
    }
}

/// A number and where it came from ("GetAccountSettings", "SHOW max_connections", "AWS table for db.r6g.large").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: impl Into<String>) -> Sourced<T> {
        Sourced {
            value,
            source: source.into(),
        }
    }
}

pub use statsctl_core::ledger::LoadTestRecord;

/// Everything the checks read. Filled by the CLI from AWS (and PostgreSQL when reachable); no SDK types.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub stack: &'a StackFile,
    pub env: &'a str,
    pub observed: &'a Observed,
    /// Subnet (name or id) → VPC id, for every subnet a function or the proxy uses.
    pub subnet_vpcs: BTreeMap<String, String>,
    /// The account's Lambda concurrency limit and unreserved part.
    pub account_concurrency: Sourced<u32>,
    pub unreserved_concurrency: Option<Sourced<u32>>,
    /// The database's max_connections.
    pub max_connections: Option<Sourced<u32>>,
    /// Connections open on the database now (pg_stat_activity), when reachable.
    pub current_connections: Option<u32>,
    /// Preflight's HTTP probes of the service (health endpoint, load-test targets).
    pub service_probes: Vec<service_healthy::Probe>,
    /// Function name → what `statsctl rollback` would return it to and whether that version still exists
    /// (`None`: nothing to go back to).
    pub previous_versions: BTreeMap<String, Option<rollback_ready::Previous>>,
    /// What the service would roll back to, and whether that revision is still registered.
    pub previous_task_definition: Option<rollback_ready::Previous>,
    /// Resources the plan would change (`stack.drift`).
    pub pending_changes: Vec<String>,
    /// The alarm names the stack requires.
    pub required_alarms: Vec<String>,
    pub loadtests: Vec<LoadTestRecord>,
    /// What is deployed now, in the ledger's terms (see `LoadTestRecord::versions`).
    pub deployed_versions: BTreeMap<String, String>,
    /// Expected viewers (the stack's, or `--viewers`).
    pub viewers: u64,
    /// Unix seconds.
    pub now: u64,
}

/// A check: a stable id, a one-line description, and the pure function.
pub struct Check {
    pub id: &'static str,
    pub about: &'static str,
    pub run: fn(&Facts) -> Vec<Finding>,
}

pub const ALL: &[Check] = &[
    Check {
        id: proxy_attached::ID,
        about: "functions and service reach the database through the proxy",
        run: proxy_attached::check,
    },
    Check {
        id: capacity::ID,
        about: "worst-case connections fit the database and the proxy pool",
        run: capacity::check,
    },
    Check {
        id: loadtest_passed::ID,
        about: "a load test at the expected audience passed for what is deployed",
        run: loadtest_passed::check,
    },
    Check {
        id: alarms_armed::ID,
        about: "every required alarm exists, notifies someone and is not in ALARM",
        run: alarms_armed::check,
    },
    Check {
        id: rollback_ready::ID,
        about: "there is something to roll back to",
        run: rollback_ready::check,
    },
    Check {
        id: stack_drift::ID,
        about: "live state matches the stack file",
        run: stack_drift::check,
    },
    Check {
        id: service_healthy::ID,
        about: "the service answers its health endpoint and load-test targets; ECS runs its desired tasks",
        run: service_healthy::check,
    },
    Check {
        id: security::ID,
        about: "database not public, TLS required, 5432 not open to the internet",
        run: security::check,
    },
];

/// The overall verdict: fail when any check fails (or warns, with `strict`).
pub fn failed(findings: &[Finding], strict: bool) -> bool {
    findings
        .iter()
        .any(|f| f.status == Status::Fail || (strict && f.status == Status::Warn))
}

/// Which checks a run includes: `--only` (empty: all), `--skip` and why.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub reason: Option<String>,
}

/// An id asked for in `--only` or `--skip` that names no check, with the closest id there is.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownCheck {
    pub id: String,
    pub closest: Option<&'static str>,
}

/// Every check's id, in the order they run.
pub fn ids() -> Vec<&'static str> {
    ALL.iter().map(|c| c.id).collect()
}

impl Selection {
    /// The first id asked for that names no check.
    pub fn unknown(&self) -> Option<UnknownCheck> {
        let ids = ids();
        let id = self
            .only
            .iter()
            .chain(&self.skip)
            .find(|id| !ids.contains(&id.as_str()))?;
        Some(UnknownCheck {
            id: id.clone(),
            closest: statsctl_core::diagnostics::closest(id, ids.iter().copied()),
        })
    }

    fn selected(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }

    fn skipped(&self, id: &str) -> bool {
        self.skip.iter().any(|o| o == id)
    }

    /// Whether check `id` runs (selected and not skipped): what it needs is worth gathering.
    pub fn runs(&self, id: &str) -> bool {
        self.selected(id) && !self.skipped(id)
    }
}

/// Runs the selected checks over `facts`, in `ALL`'s order; a skipped one is a `Skip` finding with the reason.
pub fn run(facts: &Facts, selection: &Selection) -> Vec<Finding> {
    let mut findings = Vec::new();
    for c in ALL.iter().filter(|c| selection.selected(c.id)) {
        if selection.skipped(c.id) {
            findings.push(Finding::new(
                c.id,
                Status::Skip,
                format!(
                    "skipped: {}",
                    selection.reason.as_deref().unwrap_or_default()
                ),
            ));
            continue;
        }
        findings.extend((c.run)(facts));
    }
    findings
}

/// How many findings have each status (`pass`, `warn`, `fail`, `skip`; absent when none).
pub fn summary(findings: &[Finding]) -> BTreeMap<&'static str, usize> {
    let mut summary = BTreeMap::new();
    for f in findings {
        *summary
            .entry(match f.status {
                Status::Pass => "pass",
                Status::Warn => "warn",
                Status::Fail => "fail",
                Status::Skip => "skip",
            })
            .or_insert(0) += 1;
    }
    summary
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(only: &[&str], skip: &[&str]) -> Selection {
        Selection {
            only: only.iter().map(|s| s.to_string()).collect(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            reason: Some("known flaky".into()),
        }
    }

    /// (case, only, skip, expected unknown id and suggestion)
    type UnknownCase = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        Option<(&'static str, Option<&'static str>)>,
    );

    /// (case, only, skip, check, runs)
    type RunsCase = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        bool,
    );

    #[test]
    fn unknown_ids_are_named_with_the_closest_one() {
        let cases: Vec<UnknownCase> = vec![
            ("all known", &["proxy.attached"], &["security"], None),
            ("nothing asked", &[], &[], None),
            (
                "a typo",
                &["proxy.atached"],
                &[],
                Some(("proxy.atached", Some("proxy.attached"))),
            ),
            (
                "in --skip too",
                &[],
                &["capacity.conections"],
                Some(("capacity.conections", Some("capacity.connections"))),
            ),
            ("nothing close", &["zzz"], &[], Some(("zzz", None))),
            (
                "the first unknown",
                &["security", "nope", "zzz"],
                &[],
                Some(("nope", None)),
            ),
        ];
        for (case, only, skip, want) in cases {
            let got = selection(only, skip).unknown();
            assert_eq!(
                got.as_ref().map(|u| (u.id.as_str(), u.closest)),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn only_and_skip_decide_what_runs() {
        let cases: Vec<RunsCase> = vec![
            ("everything by default", &[], &[], service_healthy::ID, true),
            (
                "only others",
                &[proxy_attached::ID],
                &[],
                service_healthy::ID,
                false,
            ),
            (
                "only this one",
                &[service_healthy::ID],
                &[],
                service_healthy::ID,
                true,
            ),
            (
                "skipped",
                &[],
                &[service_healthy::ID],
                service_healthy::ID,
                false,
            ),
            (
                "only and skipped: skipped",
                &[service_healthy::ID],
                &[service_healthy::ID],
                service_healthy::ID,
                false,
            ),
        ];
        for (case, only, skip, id, want) in cases {
            assert_eq!(selection(only, skip).runs(id), want, "{case}");
        }
    }

    #[test]
    fn skipped_checks_report_why_and_the_rest_run_in_order() {
        let stack = fixtures::stack_from("");
        let observed = Observed::default();
        let facts = Facts {
            ..crate::fixtures::facts(&stack, "dev", &observed)
        };
        let findings = run(
            &facts,
            &selection(&[stack_drift::ID, security::ID], &[security::ID]),
        );
        let got: Vec<(&str, Status)> = findings.iter().map(|f| (f.id, f.status)).collect();
        assert_eq!(
            got,
            [
                (stack_drift::ID, Status::Pass),
                (security::ID, Status::Skip)
            ]
        );
        assert_eq!(findings[1].summary, "skipped: known flaky");
        let mut no_reason = selection(&[], &[security::ID]);
        no_reason.reason = None;
        let all = run(&facts, &no_reason);
        let order: Vec<usize> = all
            .iter()
            .map(|f| ALL.iter().position(|c| c.id == f.id).unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "in ALL's order: {order:?}"
        );
        let skipped = all.iter().find(|f| f.id == security::ID).unwrap();
        assert_eq!(skipped.summary, "skipped: ");
    }

    #[test]
    fn the_summary_counts_each_status() {
        let f = |status| Finding::new("x", status, "");
        let findings = [
            f(Status::Pass),
            f(Status::Pass),
            f(Status::Fail),
            f(Status::Skip),
        ];
        let got = summary(&findings);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("fail", 1), ("pass", 2), ("skip", 1)]
        );
        assert!(summary(&[]).is_empty());
    }
}
