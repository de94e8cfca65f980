//! Live state and the plan against it, for one stack in one environment: what every command that decides
//! anything starts from (plan, deploy and its read-back, status, and later rollouts).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use statsctl_aws::{observe::observe, Aws, AwsResult};
use statsctl_core::desired::{desired, Artifact};
use statsctl_core::inventory::{Observed, Owner};
use statsctl_core::model::StackFile;
use statsctl_core::plan::{plan, Plan};

/// What reading live state cost: AWS API calls and wall time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measure {
    pub api_calls: usize,
    pub seconds: f64,
}

/// The stack a command works on.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub stack: &'a StackFile,
    pub env: &'a str,
    pub owner: &'a Owner,
    pub artifacts: &'a BTreeMap<String, Artifact>,
}

impl Subject<'_> {
    pub async fn observe(&self, aws: &Aws) -> AwsResult<Observed> {
        observe(aws, self.stack, self.env).await
    }

    pub fn plan(&self, observed: &Observed) -> Plan {
        let wanted = desired(self.stack, self.env, observed, self.artifacts);
        plan(self.owner, &wanted, observed)
    }

    /// Observe, then plan, measured.
    pub async fn observe_and_plan(&self, aws: &Aws) -> AwsResult<(Observed, Plan, Measure)> {
        let start = Instant::now();
        let calls = aws.calls.get();
        let observed = self.observe(aws).await?;
        let p = self.plan(&observed);
        let measure = Measure {
            api_calls: aws.calls.get() - calls,
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok((observed, p, measure))
    }
}
