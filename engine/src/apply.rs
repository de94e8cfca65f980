//! The executor: applies a plan's changes one at a time in dependency order, re-deriving each resource's
//! desired attributes from what exists by then (so endpoints and ids created earlier in the run are filled
//! in), waiting for each to be ready, and stopping at the first failure with a record of what was and was not
//! done. Every step is idempotent against live state, so re-running after a failure converges.

use std::time::Instant;

use serde::Serialize;

pub use statsctl_aws::ctx::ApplyCtx;
use statsctl_aws::{self as aws, Aws, AwsError, AwsResult};
use statsctl_core::desired::{desired, Names};
use statsctl_core::inventory::{Desired, Key, Kind, Observed, ObservedResource, KNOWN_AFTER_APPLY};
use statsctl_core::plan::{Action, Plan};

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub key: Key,
    pub action: Action,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub key: Key,
    pub action: Action,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The result of applying a plan: done, failed (at most one: apply stops there), and not attempted.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Outcome {
    pub done: Vec<Step>,
    pub failed: Option<Failure>,
    pub not_done: Vec<Key>,
    /// Stopped on request (Ctrl-C) between two steps.
    pub interrupted: bool,
}

pub async fn apply(aws: &Aws, ctx: &ApplyCtx<'_>, plan: &Plan, observed: &mut Observed) -> Outcome {
    let mut outcome = Outcome::default();
    let pending: Vec<_> = plan.pending().cloned().collect();
    let total = pending.len();
    for (i, change) in pending.iter().enumerate() {
        if outcome.failed.is_some() || outcome.interrupted {
            outcome.not_done.push(change.key.clone());
            continue;
        }
        if ctx.stop.load(std::sync::atomic::Ordering::SeqCst) {
            outcome.interrupted = true;
            outcome.not_done.push(change.key.clone());
            continue;
        }
        let started = Instant::now();
        if change.action == Action::NoOp {
            continue;
        }
        let verb = change.action.verb();
        (ctx.progress)(format!("[{}/{}] {verb} {}…", i + 1, total, change.key));
        let result = match change.action {
            Action::Delete => delete_one(aws, ctx, &change.key, observed)
                .await
                .map(|()| None),
            _ => {
                let wanted = desired(ctx.stack, ctx.env, observed, ctx.artifacts);
                match wanted.into_iter().find(|d| d.key == change.key) {
                    Some(d) => upsert(aws, ctx, &d, observed).await.map(Some),
                    None => Err(AwsError::new(
                        format!("apply {}", change.key),
                        "the stack no longer wants it; re-run plan",
                    )),
                }
            }
        };
        match result {
            Ok(new_state) => {
                match new_state {
                    Some(r) => {
                        observed.resources.insert(change.key.clone(), r);
                    }
                    None => {
                        observed.resources.remove(&change.key);
                    }
                }
                let seconds = started.elapsed().as_secs_f64();
                let past = change.action.past();
                (ctx.progress)(format!(
                    "[{}/{}] {past} {} ({seconds:.1}s)",
                    i + 1,
                    total,
                    change.key
                ));
                outcome.done.push(Step {
                    key: change.key.clone(),
                    action: change.action,
                    seconds,
                });
            }
            Err(e) => {
                outcome.failed = Some(Failure {
                    key: change.key.clone(),
                    action: change.action,
                    error: e.to_string(),
                    hint: e.hint.clone(),
                });
            }
        }
    }
    outcome
}

/// Values only known once a dependency exists must be known by the time a resource is applied.
fn unresolved(d: &Desired) -> Option<&str> {
    d.attrs
        .iter()
        .find(|(k, v)| {
            v.contains(KNOWN_AFTER_APPLY) && !matches!(k.as_str(), "version" | "task_definition")
        })
        .map(|(k, _)| k.as_str())
}

async fn upsert(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    if let Some(attr) = unresolved(d) {
        return Err(AwsError::new(format!("apply {}", d.key), format!("`{attr}` depends on a resource that does not exist yet")).hint("re-run deploy; if it persists, run `statsctl plan` and check the resources before this one"));
    }
    let current = observed.resources.get(&d.key);
    let n = Names::new(ctx.stack, ctx.env);
    match (d.key.kind, current) {
        (Kind::Vpc, None) => aws::ec2::create_vpc(aws, ctx, d).await,
        (Kind::Subnet, None) => aws::ec2::create_subnet(aws, ctx, d, observed, &n.vpc()).await,
        (Kind::SecurityGroup, None) => aws::ec2::create_group(aws, ctx, d, observed).await,
        (Kind::Ingress, cur) => aws::ec2::set_ingress(aws, d, cur, observed, &ctx.owner).await,
        (Kind::Role, None) => aws::iam::create_role(aws, ctx, d).await,
        (Kind::Role, Some(cur)) => {
            aws::iam::put_policy(aws, &d.key.name, aws::iam::BASE_POLICY, d.get("policy")).await?;
            Ok(ObservedResource {
                attrs: d.attrs.clone(),
                ..cur.clone()
            })
        }
        (Kind::RolePolicy, _) => {
            let role = d.key.name.split('/').next().unwrap_or_default();
            aws::iam::put_policy(aws, role, aws::iam::DB_CONNECT_POLICY, d.get("policy")).await?;
            Ok(ObservedResource {
                id: role.to_string(),
                owner: Some(ctx.owner.clone()),
                state: "exists".into(),
                attrs: d.attrs.clone(),
                ..Default::default()
            })
        }
        (Kind::Ledger, cur) => aws::s3::put_bucket(aws, ctx, d, cur).await,
        (Kind::Secret, None) => {
            aws::secrets::create(aws, ctx, d, &ctx.stack.database.master_username).await
        }
        (Kind::DbSubnetGroup, cur) => aws::rds::put_subnet_group(aws, ctx, d, cur, observed).await,
        (Kind::DbCluster, cur) => aws::rds::put_cluster(aws, ctx, d, cur, observed).await,
        (Kind::DbInstance, cur) => aws::rds::put_instance(aws, ctx, d, cur).await,
        (Kind::Proxy, cur) => aws::rds::put_proxy(aws, ctx, d, cur, observed).await,
        (Kind::ProxyTargetGroup, _) => aws::rds::put_target_group(aws, d).await,
        (Kind::ProxyTarget, _) => aws::rds::register_target(aws, ctx, d).await,
        (Kind::Function, cur) => aws::lambda::put_function(aws, ctx, d, cur, observed).await,
        (Kind::Alias, cur) => aws::lambda::put_alias(aws, d, cur).await,
        (Kind::EcsCluster, None) => aws::ecs::create_cluster(aws, ctx, d).await,
        (Kind::LoadBalancer, cur) => aws::elb::put_load_balancer(aws, ctx, d, cur, observed).await,
        (Kind::TargetGroup, cur) => aws::elb::put_target_group(aws, ctx, d, cur, observed).await,
        (Kind::Listener, cur) => aws::elb::put_listener(aws, d, cur, observed).await,
        (Kind::TaskDefinition, _) => {
            aws::ecs::register_task_definition(aws, ctx, d, observed).await
        }
        (Kind::EcsService, cur) => aws::ecs::put_service(aws, ctx, d, cur, observed).await,
        (Kind::Alarm, _) => aws::cloudwatch::put_alarm(aws, d).await,
        (kind, Some(_)) => Err(AwsError::new(
            format!("update {}", d.key),
            format!("{} cannot be updated in place", kind.label()),
        )),
    }
}

async fn delete_one(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    key: &Key,
    observed: &Observed,
) -> AwsResult<()> {
    let Some(cur) = observed.resources.get(key) else {
        return Ok(());
    };
    match key.kind {
        Kind::Vpc | Kind::Subnet | Kind::SecurityGroup => aws::ec2::delete(aws, key, &cur.id).await,
        Kind::Ingress => {
            let empty = Desired::new(Kind::Ingress, key.name.clone()).attr("rules", "");
            aws::ec2::set_ingress(aws, &empty, Some(cur), observed, &ctx.owner)
                .await
                .map(|_| ())
        }
        Kind::Role => aws::iam::delete_role(aws, &key.name).await,
        Kind::RolePolicy => {
            aws::iam::delete_policy(aws, &cur.id, aws::iam::DB_CONNECT_POLICY).await
        }
        Kind::Secret => aws::secrets::delete(aws, &key.name).await,
        Kind::Ledger => aws::s3::delete_bucket(aws, &key.name).await,
        Kind::DbSubnetGroup
        | Kind::DbCluster
        | Kind::DbInstance
        | Kind::Proxy
        | Kind::ProxyTarget
        | Kind::ProxyTargetGroup => aws::rds::delete(aws, ctx, key).await,
        Kind::Function | Kind::Alias => aws::lambda::delete(aws, key).await,
        Kind::EcsCluster | Kind::TaskDefinition | Kind::EcsService => {
            aws::ecs::delete(aws, ctx, key, cur).await
        }
        Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
            aws::elb::delete(aws, key, cur).await
        }
        Kind::Alarm => aws::cloudwatch::delete(aws, &key.name).await,
    }
}
