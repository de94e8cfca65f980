//! The alarms a stack must have: AWS's recommended alarms (CloudWatch "Best practice recommended alarms"),
//! with thresholds computed from the stack itself, then the stack file's overrides and extras. Pure.
//!
//! The service's alarms watch the colour that serves (its ECS service and target group, as the caller observed
//! them), not always blue: after a rollout promotes green, alarms on blue would watch a service with no traffic
//! and, once it is scaled down, no tasks — silent during the event.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::Kind;
use crate::model::{AlarmSpec, Comparison, StackFile};
use crate::plan::{Action, Change, Plan};

/// An alarm as statsctl wants it to exist in CloudWatch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredAlarm {
    /// Stable id within the stack (`db-connections`, `lambda-errors-stats-api`, …); overrides use it.
    pub id: String,
    /// CloudWatch alarm name: `<stack>-<env>-<id>`.
    pub name: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub comparison: Comparison,
    pub threshold: f64,
    pub period_secs: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub actions: Vec<String>,
    pub description: String,
}

/// Facts alarms need that the stack file alone does not hold.
#[derive(Debug, Clone, Default)]
pub struct AlarmContext {
    /// The database's max_connections (measured or from AWS's table).
    pub max_connections: Option<u32>,
    /// ALB dimension value `app/name/id`, once the load balancer exists.
    pub load_balancer_dimension: Option<String>,
    /// Target group dimension value `targetgroup/name/id`: the serving colour's.
    pub target_group_dimension: Option<String>,
    /// The serving colour's ECS service; `None`: the stack's service name (blue).
    pub service_name: Option<String>,
    /// The account's Lambda concurrency quota.
    pub account_concurrency: u32,
}

struct Gen {
    id: String,
    /// `Some(limit)`: `threshold` is a percent of `limit` (`None` inside: the limit is unknown here).
    percent_of: Option<Option<f64>>,
    namespace: &'static str,
    metric: &'static str,
    dimensions: Vec<(&'static str, String)>,
    statistic: &'static str,
    comparison: Comparison,
    threshold: f64,
    datapoints: u32,
    description: String,
}

fn generated(stack: &StackFile, env: &str, ctx: &AlarmContext) -> Vec<Gen> {
    let mut out = Vec::new();
    let max_conn = ctx.max_connections.map(f64::from);
    out.push(Gen {
        id: "db-connections".into(),
        percent_of: Some(max_conn),
        namespace: "AWS/RDS",
        metric: "DatabaseConnections",
        dimensions: vec![("DBClusterIdentifier", stack.database.cluster_id.clone())],
        statistic: "Average",
        comparison: Comparison::Greater,
        threshold: 90.0,
        datapoints: 5,
        description: "database connections above 90% of max_connections".into(),
    });
    if let Some(proxy) = &stack.proxy {
        let proxy_cap = max_conn.map(|m| m * f64::from(proxy.max_connections_percent) / 100.0);
        out.push(Gen {
            id: "proxy-db-connections".into(),
            percent_of: Some(proxy_cap),
            namespace: "AWS/RDS",
            metric: "DatabaseConnections",
            dimensions: vec![("ProxyName", proxy.name.clone())],
            statistic: "Maximum",
            comparison: Comparison::Greater,
            threshold: 90.0,
            datapoints: 5,
            description:
                "proxy→database connections above 90% of what MaxConnectionsPercent allows".into(),
        });
        // Clients the stack can open through the proxy at worst; a surge past 90% of it means the budget
        // the stack was designed for is being used up.
        let client_budget = proxy_client_budget(stack, ctx.account_concurrency);
        out.push(Gen {
            id: "proxy-client-connections".into(),
            percent_of: Some(Some(client_budget as f64)),
            namespace: "AWS/RDS",
            metric: "ClientConnections",
            dimensions: vec![("ProxyName", proxy.name.clone())],
            statistic: "Maximum",
            comparison: Comparison::Greater,
            threshold: 90.0,
            datapoints: 5,
            description:
                "client connections to the proxy above 90% of the stack's worst-case budget".into(),
        });
    }
    for (name, f) in &stack.functions {
        let fname = stack.function_name(env, name);
        let dims = vec![("FunctionName", fname.clone())];
        out.push(Gen {
            id: format!("lambda-errors-{name}"),
            percent_of: None,
            namespace: "AWS/Lambda",
            metric: "Errors",
            dimensions: dims.clone(),
            statistic: "Sum",
            comparison: Comparison::Greater,
            threshold: 0.0,
            datapoints: 3,
            description: format!("`{fname}` returned errors"),
        });
        out.push(Gen {
            id: format!("lambda-throttles-{name}"),
            percent_of: None,
            namespace: "AWS/Lambda",
            metric: "Throttles",
            dimensions: dims.clone(),
            statistic: "Sum",
            comparison: Comparison::GreaterOrEqual,
            threshold: 1.0,
            datapoints: 5,
            description: format!("`{fname}` is throttled"),
        });
        let cap = f.reserved_concurrency.unwrap_or(ctx.account_concurrency);
        out.push(Gen {
            id: format!("lambda-concurrency-{name}"),
            percent_of: Some(Some(f64::from(cap))),
            namespace: "AWS/Lambda",
            metric: "ConcurrentExecutions",
            dimensions: dims.clone(),
            statistic: "Maximum",
            comparison: Comparison::Greater,
            threshold: 90.0,
            datapoints: 10,
            description: format!("`{fname}` concurrency above 90% of its cap ({cap})"),
        });
        out.push(Gen {
            id: format!("lambda-duration-{name}"),
            percent_of: Some(Some(f.timeout.0.as_millis() as f64)),
            namespace: "AWS/Lambda",
            metric: "Duration",
            dimensions: dims,
            statistic: "p90",
            comparison: Comparison::Greater,
            threshold: 90.0,
            datapoints: 15,
            description: format!("`{fname}` p90 duration near its timeout ({})", f.timeout),
        });
    }
    if !stack.functions.is_empty() {
        out.push(Gen {
            id: "lambda-account-concurrency".into(),
            percent_of: Some(Some(f64::from(ctx.account_concurrency))),
            namespace: "AWS/Lambda",
            metric: "ClaimedAccountConcurrency",
            dimensions: vec![],
            statistic: "Maximum",
            comparison: Comparison::Greater,
            threshold: 90.0,
            datapoints: 10,
            description: "account Lambda concurrency above 90% of the quota".into(),
        });
    }
    if let Some(svc) = &stack.service {
        let service = ctx.service_name.as_deref().unwrap_or(&svc.name);
        let dims = vec![
            ("ClusterName", svc.cluster.clone()),
            ("ServiceName", service.to_string()),
        ];
        for (id, metric) in [
            ("ecs-cpu", "CPUUtilization"),
            ("ecs-memory", "MemoryUtilization"),
        ] {
            out.push(Gen {
                id: id.into(),
                percent_of: None,
                namespace: "AWS/ECS",
                metric,
                dimensions: dims.clone(),
                statistic: "Average",
                comparison: Comparison::Greater,
                threshold: 80.0,
                datapoints: 5,
                description: format!("service `{service}` {metric} above 80%"),
            });
        }
        let lb_dims = |tg_only: bool| {
            let mut d = vec![(
                "LoadBalancer",
                ctx.load_balancer_dimension
                    .clone()
                    .unwrap_or_else(|| crate::canonical::KNOWN_AFTER_APPLY.into()),
            )];
            if !tg_only {
                d.push((
                    "TargetGroup",
                    ctx.target_group_dimension
                        .clone()
                        .unwrap_or_else(|| crate::canonical::KNOWN_AFTER_APPLY.into()),
                ));
            }
            d
        };
        // 5% of expected traffic per minute: viewers / poll interval × 60 s.
        let per_minute = stack.event.expected_viewers as f64
            / stack.event.poll_interval.as_secs_f64().max(0.001)
            * 60.0;
        out.push(Gen {
            id: "target-5xx".into(),
            percent_of: Some(Some(per_minute)),
            namespace: "AWS/ApplicationELB",
            metric: "HTTPCode_Target_5XX_Count",
            dimensions: lb_dims(false),
            statistic: "Sum",
            comparison: Comparison::Greater,
            threshold: 5.0,
            datapoints: 5,
            description: "target 5XX responses above 5% of expected traffic".into(),
        });
        out.push(Gen {
            id: "unhealthy-hosts".into(),
            percent_of: None,
            namespace: "AWS/ApplicationELB",
            metric: "UnHealthyHostCount",
            dimensions: lb_dims(false),
            statistic: "Maximum",
            comparison: Comparison::Greater,
            threshold: 0.0,
            datapoints: 5,
            description: "a target accepts connections but fails health checks".into(),
        });
    }
    out
}

/// The generated alarms that watch the serving colour (its ECS service or its target group): re-pointed when
/// traffic changes colour.
pub const SERVICE_ALARM_IDS: [&str; 4] = ["ecs-cpu", "ecs-memory", "target-5xx", "unhealthy-hosts"];

/// From a plan made after traffic changed colour: the updates of the service alarms whose dimensions change (what
/// the colour change causes), by id, in plan order. Nothing else is taken: other pending alarm changes (a
/// `deploy --unit` may have left some) are the next deploy's, and a blocked change is never applied. Pure.
pub fn colour_alarm_updates<'p>(
    plan: &'p Plan,
    stack: &StackFile,
) -> Vec<(&'static str, &'p Change)> {
    let prefix = format!("{}-{}-", stack.stack, plan.env);
    plan.pending()
        .filter(|c| c.key.kind == Kind::Alarm && c.action == Action::Update && c.blocked.is_none())
        .filter(|c| c.changes.iter().any(|a| a.attr == "dimensions"))
        .filter_map(|c| {
            let id = c.key.name.strip_prefix(&prefix)?;
            SERVICE_ALARM_IDS
                .into_iter()
                .find(|s| *s == id)
                .map(|s| (s, c))
        })
        .collect()
}

/// Worst-case client connections through the proxy: Σ max concurrency × pool size over what goes via proxy.
pub fn proxy_client_budget(stack: &StackFile, account_concurrency: u32) -> u64 {
    use crate::model::Via;
    let mut total = 0u64;
    for f in stack.functions.values() {
        if let Some(db) = f.database.as_ref().filter(|d| d.via == Via::Proxy) {
            total += u64::from(f.reserved_concurrency.unwrap_or(account_concurrency))
                * u64::from(db.pool_size);
        }
    }
    if let Some(svc) = &stack.service {
        if let Some(db) = svc.database.as_ref().filter(|d| d.via == Via::Proxy) {
            total += u64::from(svc.max_count) * u64::from(db.pool_size);
        }
    }
    total
}

/// The ids of the generated alarms (independent of live facts), for validating `alarms.overrides`.
pub fn generated_ids(stack: &StackFile) -> Vec<String> {
    generated(
        stack,
        "default",
        &AlarmContext {
            account_concurrency: 1000,
            ..Default::default()
        },
    )
    .into_iter()
    .map(|g| g.id)
    .collect()
}

/// The complete desired alarm set for a stack in an environment.
pub fn desired_alarms(stack: &StackFile, env: &str, ctx: &AlarmContext) -> Vec<DesiredAlarm> {
    let prefix = format!("{}-{}", stack.stack, env);
    let mut out = Vec::new();
    for g in generated(stack, env, ctx) {
        let ov = stack
            .alarms
            .overrides
            .get(&g.id)
            .cloned()
            .unwrap_or_default();
        if ov.enabled == Some(false) {
            continue;
        }
        let percent = ov.threshold_percent.unwrap_or(g.threshold);
        let threshold = match (ov.threshold, g.percent_of) {
            (Some(t), _) => t,
            (None, Some(Some(limit))) => (limit * percent / 100.0).floor().max(1.0),
            // A percent of an unknown limit cannot be computed: leave the alarm out rather than guess.
            (None, Some(None)) => continue,
            (None, None) => g.threshold,
        };
        let period = ov.period.map(|p| p.as_secs() as u32).unwrap_or(60).max(10);
        let evaluation_periods = ov.evaluation_periods.unwrap_or(g.datapoints);
        let datapoints = ov
            .datapoints_to_alarm
            .unwrap_or(g.datapoints)
            .min(evaluation_periods);
        out.push(DesiredAlarm {
            name: format!("{prefix}-{}", g.id),
            id: g.id,
            namespace: g.namespace.into(),
            metric: g.metric.into(),
            dimensions: g
                .dimensions
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            statistic: g.statistic.into(),
            comparison: g.comparison,
            threshold,
            period_secs: period,
            evaluation_periods,
            datapoints_to_alarm: datapoints,
            actions: stack.alarms.notify.clone(),
            description: g.description,
        });
    }
    for (id, spec) in &stack.alarms.extra {
        out.push(from_spec(&prefix, id, spec, &stack.alarms.notify));
    }
    out
}

fn from_spec(prefix: &str, id: &str, spec: &AlarmSpec, notify: &[String]) -> DesiredAlarm {
    DesiredAlarm {
        id: id.to_string(),
        name: format!("{prefix}-{id}"),
        namespace: spec.namespace.clone(),
        metric: spec.metric.clone(),
        dimensions: spec.dimensions.clone(),
        statistic: spec.statistic.clone(),
        comparison: spec.comparison,
        threshold: spec.threshold,
        period_secs: spec.period.as_secs().max(10) as u32,
        evaluation_periods: spec.evaluation_periods,
        datapoints_to_alarm: spec
            .datapoints_to_alarm
            .unwrap_or(spec.evaluation_periods)
            .min(spec.evaluation_periods),
        actions: notify.to_vec(),
        description: format!("stack alarm `{id}`"),
    }
}
