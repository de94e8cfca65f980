//! Preflight: is the stack ready for the event? Each check is one pure function over `Facts` (plain data
//! observed from AWS and the database), in its own file, with a stable id; it returns findings with the evidence
//! used and, when not passing, the exact fix.

pub mod alarms_armed;
pub mod capacity;
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
    /// Function name → whether the version its alias pointed at before still exists (`None`: no previous).
    pub previous_versions: BTreeMap<String, Option<bool>>,
    /// The task definition revision the service used before the current one, and whether it is still registered.
    pub previous_task_definition: Option<(String, bool)>,
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

#[cfg(test)]
pub(crate) mod fixtures;
