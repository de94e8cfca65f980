//! The alarms family: the CloudWatch alarms the stack requires (crate::alarms decides which), as specs.

use super::{max_connections_estimate, Ctx};
use crate::alarms::{desired_alarms, AlarmContext};
use crate::inventory::{Desired, Kind};
use crate::spec::{AlarmSpec, Spec};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let ctx = AlarmContext {
        max_connections: max_connections_estimate(stack),
        load_balancer_dimension: cx
            .observed
            .output(Kind::LoadBalancer, &n.load_balancer(), "dimension")
            .map(str::to_string),
        target_group_dimension: cx
            .observed
            .output(Kind::TargetGroup, &n.target_group(), "dimension")
            .map(str::to_string),
        account_concurrency: stack.aws.lambda_concurrency_limit,
    };
    desired_alarms(stack, cx.env, &ctx)
        .into_iter()
        .map(|a| {
            Desired::from_spec(
                a.name,
                Spec::Alarm(AlarmSpec {
                    namespace: a.namespace,
                    metric: a.metric,
                    dimensions: a.dimensions,
                    statistic: a.statistic,
                    comparison: a.comparison,
                    threshold: a.threshold,
                    period_secs: a.period_secs,
                    evaluation_periods: a.evaluation_periods,
                    datapoints_to_alarm: a.datapoints_to_alarm,
                    actions: a.actions,
                    description: a.description,
                }),
            )
        })
        .collect()
}
