//! The executor: applies a plan's changes one at a time in dependency order, re-deriving each resource's
//! desired attributes from what exists by then (so endpoints and ids created earlier in the run are filled
//! in), building the adapter's input from them, waiting for each to be ready, and stopping at the first failure
//! or at Ctrl-C with a record of what was and was not done. Every step is idempotent against live state, so
//! re-running after a failure or an interruption converges.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use statsctl_aws::{self as aws, Aws, AwsError, AwsResult};
use statsctl_core::desired::{desired, Names};
use statsctl_core::inventory::{
    Desired, Key, Kind, Observed, ObservedResource, Owner, KNOWN_AFTER_APPLY,
};
use statsctl_core::plan::{Action, Change, Plan};

use crate::inputs::{self, Scope};
use crate::observe::Subject;
pub use crate::wait::StepError;
use crate::wait::{self, wait_for, wait_until, Watch};

/// What the executor needs besides the AWS clients: the stack it applies, where it reports, what stops it.
pub struct Executor<'a> {
    pub subject: Subject<'a>,
    /// Progress lines for stderr.
    pub progress: &'a (dyn Fn(String) + Send + Sync),
    /// Set (by Ctrl-C) to stop: between steps, or during a readiness wait (what was sent stays sent).
    pub stop: &'a AtomicBool,
}

impl Executor<'_> {
    pub(crate) fn scope(&self) -> Scope<'_> {
        Scope {
            owner: self.subject.owner,
            tags: &self.subject.stack.tags,
        }
    }
    fn watch(&self) -> Watch<'_> {
        Watch {
            progress: self.progress,
            stop: self.stop,
        }
    }
}

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
    /// Stopped on request (Ctrl-C): between two steps, or while waiting for one to be ready.
    pub interrupted: bool,
    /// The change a Ctrl-C stopped waiting for: sent, but not seen ready. Also in `not_done`: re-running checks
    /// it against live state and finishes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<Key>,
}

/// Applies every pending change in order: a loop over [`apply_one`] with progress lines.
pub async fn apply(aws: &Aws, ex: &Executor<'_>, plan: &Plan, observed: &mut Observed) -> Outcome {
    let mut outcome = Outcome::default();
    let pending: Vec<&Change> = plan.pending().collect();
    let total = pending.len();
    for (i, change) in pending.into_iter().enumerate() {
        if outcome.failed.is_some() || outcome.interrupted {
            outcome.not_done.push(change.key.clone());
            continue;
        }
        if ex.watch().stopped() {
            outcome.interrupted = true;
            outcome.not_done.push(change.key.clone());
            continue;
        }
        let started = Instant::now();
        if change.action == Action::NoOp {
            continue;
        }
        let (doing, done) = (change.action.verb(), change.action.past());
        (ex.progress)(format!("[{}/{total}] {doing} {}…", i + 1, change.key));
        match apply_one(aws, ex, change, observed).await {
            Ok(()) => {
                let seconds = started.elapsed().as_secs_f64();
                (ex.progress)(format!(
                    "[{}/{total}] {done} {} ({seconds:.1}s)",
                    i + 1,
                    change.key
                ));
                outcome.done.push(Step {
                    key: change.key.clone(),
                    action: change.action,
                    seconds,
                });
            }
            Err(StepError::Interrupted) => {
                (ex.progress)(format!(
                    "[{}/{total}] stopped waiting for {}: it was sent and may still be in progress",
                    i + 1,
                    change.key
                ));
                outcome.interrupted = true;
                outcome.unfinished = Some(change.key.clone());
                outcome.not_done.push(change.key.clone());
            }
            Err(StepError::Failed(e)) => {
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

/// Applies the plan, then (when every change was made) reads live state back and plans again: `Some(true)` when
/// nothing is left to do. What `deploy` runs.
pub async fn apply_and_confirm(
    aws: &Aws,
    ex: &Executor<'_>,
    plan: &Plan,
    observed: &mut Observed,
) -> AwsResult<(Outcome, Option<bool>)> {
    let outcome = apply(aws, ex, plan, observed).await;
    if outcome.failed.is_some() || outcome.interrupted {
        return Ok((outcome, None));
    }
    (ex.progress)("reading back to confirm…".into());
    let (_, after, _) = ex.subject.observe_and_plan(aws).await?;
    Ok((outcome, Some(!after.has_changes())))
}

/// Applies ONE change (create, update or delete of one resource, readiness wait included) and records the
/// result in `observed`, so the next change sees it. Rollouts and runbooks compose these.
pub async fn apply_one(
    aws: &Aws,
    ex: &Executor<'_>,
    change: &Change,
    observed: &mut Observed,
) -> Result<(), StepError> {
    let key = &change.key;
    match change.action {
        Action::NoOp => Ok(()),
        Action::Delete => {
            delete_one(aws, ex, key, observed).await?;
            observed.resources.remove(key);
            Ok(())
        }
        Action::Create | Action::Update => {
            let wanted = desired(
                ex.subject.stack,
                ex.subject.env,
                observed,
                ex.subject.artifacts,
            );
            let Some(d) = wanted.into_iter().find(|d| d.key == *key) else {
                return Err(AwsError::new(
                    format!("apply {key}"),
                    "the stack no longer wants it; re-run plan",
                )
                .into());
            };
            let r = upsert(aws, ex, &d, observed).await?;
            observed.resources.insert(key.clone(), r);
            Ok(())
        }
    }
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

/// What a resource looks like once applied: the desired attributes, plus what the adapter reported.
pub(crate) fn applied(
    d: &Desired,
    owner: Option<&Owner>,
    id: String,
    state: &str,
) -> ObservedResource {
    ObservedResource {
        id,
        owner: owner.cloned(),
        state: state.to_string(),
        attrs: d.attrs.clone(),
        ..Default::default()
    }
}

fn with_output(mut r: ObservedResource, k: &str, v: impl Into<String>) -> ObservedResource {
    r.outputs.insert(k.to_string(), v.into());
    r
}

async fn upsert(
    aws: &Aws,
    ex: &Executor<'_>,
    d: &Desired,
    observed: &Observed,
) -> Result<ObservedResource, StepError> {
    if let Some(attr) = unresolved(d) {
        return Err(inputs::not_yet(d, attr).into());
    }
    let cur = observed.resources.get(&d.key);
    let exists = cur.is_some();
    let s = ex.scope();
    let owner = Some(ex.subject.owner);
    let name = d.key.name.as_str();
    let r = match (d.key.kind, cur) {
        (Kind::Vpc, None) => {
            let cidr = inputs::vpc(d)?;
            let id = aws::ec2::create_vpc(aws, name, &cidr, &s.tags_of(name)).await?;
            with_output(applied(d, owner, id, "available"), "cidr", cidr)
        }
        (Kind::Subnet, None) => {
            let vpc = Names::new(ex.subject.stack, ex.subject.env).vpc();
            let input = inputs::subnet(d, observed, &vpc, s)?;
            let id = aws::ec2::create_subnet(aws, &input).await?;
            with_output(applied(d, owner, id, "available"), "vpc_id", input.vpc_id)
        }
        (Kind::SecurityGroup, None) => {
            let id = aws::ec2::create_group(aws, &inputs::group(d, observed, s)?).await?;
            applied(d, owner, id, "exists")
        }
        (Kind::Ingress, cur) => {
            let live = cur.and_then(|c| c.attrs.get("rules")).map(String::as_str);
            let input = inputs::ingress(name, Some(d), live, observed)?;
            aws::ec2::set_ingress(aws, &input).await?;
            applied(d, owner, input.group_id, "exists")
        }
        (Kind::Role, None) => {
            let arn = aws::iam::create_role(aws, &inputs::role(d, s)?).await?;
            with_output(applied(d, owner, name.to_string(), "exists"), "arn", arn)
        }
        (Kind::Role, Some(cur)) => {
            aws::iam::put_policy(aws, name, aws::iam::BASE_POLICY, &inputs::policy(d)?).await?;
            ObservedResource {
                attrs: d.attrs.clone(),
                ..cur.clone()
            }
        }
        (Kind::RolePolicy, _) => {
            let role = name.split('/').next().unwrap_or_default();
            let policy = inputs::policy(d)?;
            aws::iam::put_policy(aws, role, aws::iam::DB_CONNECT_POLICY, &policy).await?;
            applied(d, owner, role.to_string(), "exists")
        }
        (Kind::Ledger, cur) => {
            if cur.is_none() {
                aws::s3::create_bucket(aws, name, &s.tags_of(name)).await?;
            }
            applied(d, owner, name.to_string(), "exists")
        }
        (Kind::Secret, None) => {
            let input = inputs::secret(d, &ex.subject.stack.database.master_username, s)?;
            let arn = aws::secrets::create(aws, &input).await?;
            let r = ObservedResource {
                id: arn.clone(),
                owner: owner.cloned(),
                state: "exists".into(),
                ..Default::default()
            };
            with_output(r, "arn", arn)
        }
        (Kind::DbSubnetGroup, _) => {
            let input = inputs::subnet_group(d, observed, s)?;
            let arn = aws::rds::put_subnet_group(aws, &input, exists).await?;
            applied(d, owner, arn, "Complete")
        }
        (Kind::DbCluster, _) => {
            let input = inputs::cluster(
                d,
                observed,
                &ex.subject.stack.database.credentials_secret,
                s,
            )?;
            aws::rds::put_cluster(aws, &input, exists).await?;
            let endpoint = wait_for(
                ex.watch(),
                &format!("DB cluster `{name}` to be available"),
                Duration::from_secs(3600),
                || async {
                    Ok(aws::rds::cluster_status(aws, name)
                        .await?
                        .filter(|c| c.status == "available")
                        .map(|c| c.endpoint))
                },
            )
            .await?;
            with_output(
                applied(d, owner, name.to_string(), "available"),
                "endpoint",
                endpoint,
            )
        }
        (Kind::DbInstance, _) => {
            aws::rds::put_instance(aws, &inputs::instance(d, s)?, exists).await?;
            wait_until(
                ex.watch(),
                &format!("DB instance `{name}` to be available"),
                Duration::from_secs(3600),
                || async {
                    Ok(aws::rds::instance_status(aws, name).await?.as_deref() == Some("available"))
                },
            )
            .await?;
            applied(d, owner, name.to_string(), "available")
        }
        (Kind::Proxy, _) => {
            aws::rds::put_proxy(aws, &inputs::proxy(d, observed, s)?, exists).await?;
            let p = wait_for(
                ex.watch(),
                &format!("DB proxy `{name}` to be available"),
                Duration::from_secs(1800),
                || async {
                    match aws::rds::proxy_status(aws, name).await? {
                        Some(p) if p.status == "available" => Ok(Some(p)),
                        Some(_) => Ok(None),
                        None => Err(AwsError::new(
                            format!("describe DB proxy `{name}`"),
                            "it does not exist",
                        )),
                    }
                },
            )
            .await?;
            with_output(
                applied(d, owner, p.arn, "available"),
                "endpoint",
                p.endpoint,
            )
        }
        (Kind::ProxyTargetGroup, _) => {
            let input = inputs::pool(d)?;
            let idle = aws::rds::put_pool(aws, &input).await?;
            let mut r = applied(d, None, format!("{}/default", input.proxy), "available");
            // AWS's default idle percentage when the stack sets none (not managed, but shown).
            if let Some(idle) = idle {
                r.attrs
                    .entry("max_idle_connections_percent".into())
                    .or_insert_with(|| idle.to_string());
            }
            r
        }
        (Kind::ProxyTarget, _) => {
            let proxy = inputs::proxy_of(d);
            let cluster = inputs::proxy_target(d)?;
            aws::rds::register_target(aws, proxy, cluster).await?;
            let state = wait_for(
                ex.watch(),
                &format!("proxy `{proxy}` target `{cluster}`"),
                Duration::from_secs(900),
                || async {
                    let state = aws::rds::target_state(aws, proxy).await?;
                    Ok((state == "AVAILABLE").then_some(state))
                },
            )
            .await?;
            applied(d, owner, cluster.to_string(), &state)
        }
        (Kind::Function, cur) => put_function(aws, ex, d, cur, observed).await?,
        (Kind::Alias, cur) => {
            let (function, alias) = inputs::alias_names(d);
            let version = aws::lambda::publish_version(aws, function).await?;
            let description = inputs::alias_description(
                cur.and_then(|c| c.output("version")),
                cur.and_then(|c| c.output("previous")),
                &version,
            );
            let input = aws::lambda::AliasInput {
                function: function.to_string(),
                alias: alias.to_string(),
                version: version.clone(),
                description,
                additional: None,
            };
            let arn = aws::lambda::put_alias(aws, &input, exists).await?;
            let mut r = applied(d, None, arn, &format!("→ version {version}"));
            r.attrs
                .insert("version".into(), aws::lambda::CURRENT.into());
            r.outputs.insert("version".into(), version);
            if let Some(p) = aws::lambda::previous_version(&input.description) {
                r.outputs.insert("previous".into(), p);
            }
            r
        }
        (Kind::EcsCluster, None) => {
            let arn = aws::ecs::create_cluster(aws, name, &s.tags_of(name)).await?;
            applied(d, owner, arn, "ACTIVE")
        }
        (Kind::LoadBalancer, cur) => {
            let input = inputs::load_balancer(d, observed, s)?;
            let (arn, dns) = match cur {
                None => aws::elb::create_load_balancer(aws, &input).await?,
                Some(c) => {
                    let differs = |k: &str| c.attrs.get(k).map(String::as_str) != Some(d.get(k));
                    if differs("subnets") {
                        aws::elb::set_subnets(aws, name, &c.id, &input.subnet_ids).await?;
                    }
                    if differs("security_groups") {
                        aws::elb::set_security_groups(aws, name, &c.id, &input.security_group_ids)
                            .await?;
                    }
                    (
                        c.id.clone(),
                        c.output("dns_name").unwrap_or_default().to_string(),
                    )
                }
            };
            let r = with_output(
                applied(d, owner, arn.clone(), "active"),
                "dimension",
                aws::elb::lb_dimension(&arn),
            );
            with_output(r, "dns_name", dns)
        }
        (Kind::TargetGroup, cur) => {
            let input = inputs::target_group(d, observed, s)?;
            let arn = match cur {
                None => aws::elb::create_target_group(aws, &input).await?,
                Some(c) => {
                    aws::elb::modify_target_group(aws, &c.id, &input).await?;
                    c.id.clone()
                }
            };
            with_output(
                applied(d, owner, arn.clone(), "exists"),
                "dimension",
                aws::elb::tg_dimension(&arn),
            )
        }
        (Kind::Listener, cur) => {
            let input = inputs::listener(d, observed)?;
            let arn = aws::elb::put_listener(aws, &input, cur.map(|c| c.id.as_str())).await?;
            applied(d, None, arn, "active")
        }
        (Kind::TaskDefinition, _)
            if matches!(d.spec, statsctl_core::spec::Spec::LoadgenTask(_)) =>
        {
            let input = inputs::loadgen_task(d, observed, s)?;
            let arn = aws::loadgen::register_task_definition(aws, &input).await?;
            let revision = aws::ecs::revision_ref(&arn);
            with_output(applied(d, owner, arn, "ACTIVE"), "revision_ref", revision)
        }
        (Kind::TaskDefinition, _) => {
            let container = service_name(ex);
            let input = inputs::task(d, observed, container, s)?;
            let arn = aws::ecs::register_task_definition(aws, &input).await?;
            let revision = aws::ecs::revision_ref(&arn);
            with_output(applied(d, owner, arn, "ACTIVE"), "revision_ref", revision)
        }
        (Kind::EcsService, _) => {
            let svc = ex.subject.stack.service.as_ref().ok_or_else(|| {
                AwsError::new(
                    format!("deploy service `{name}`"),
                    "the stack has no service",
                )
            })?;
            let input = inputs::service(d, observed, (&svc.name, svc.port), s)?;
            let arn = aws::ecs::put_service(aws, &input, exists).await?;
            let state = service_steady(aws, ex, &input).await?;
            applied(d, owner, arn, &state)
        }
        (Kind::Alarm, _) => {
            aws::cloudwatch::put_alarm(aws, &inputs::alarm(d)?).await?;
            applied(d, None, name.to_string(), "INSUFFICIENT_DATA")
        }
        (kind, Some(_)) => {
            return Err(AwsError::new(
                format!("update {}", d.key),
                format!("{} cannot be updated in place", kind.label()),
            )
            .into())
        }
    };
    Ok(r)
}

/// Waits until a service just put runs its desired count with one deployment, unless the environment's
/// `service.steady_state_timeout` is 0s (no task capacity, as in the local emulator); returns its state line.
pub(crate) async fn service_steady(
    aws: &Aws,
    ex: &Executor<'_>,
    input: &aws::ecs::ServiceInput,
) -> Result<String, StepError> {
    let name = input.name.as_str();
    let timeout = ex
        .subject
        .stack
        .service
        .as_ref()
        .map_or(Duration::ZERO, |s| s.steady_state_timeout.0);
    let what = format!(
        "service `{name}` to reach {} running tasks",
        input.desired_count
    );
    if timeout.is_zero() {
        (ex.progress)(format!(
            "    not waiting for {what} (service.steady_state_timeout is 0s)"
        ));
        return Ok("deployment started".to_string());
    }
    wait_for(ex.watch(), &what, timeout, || async {
        Ok(aws::ecs::service_status(aws, &input.cluster, name)
            .await?
            .filter(wait::service_steady)
            .map(|s| format!("{} running / {} desired", s.running, s.desired)))
    })
    .await
}

/// The container's name in the task definition: the stack's service name.
pub(crate) fn service_name<'s>(ex: &'s Executor<'_>) -> &'s str {
    ex.subject
        .stack
        .service
        .as_ref()
        .map_or("app", |s| s.name.as_str())
}

/// A function: created, or its code and configuration updated where they differ, each call followed by a
/// wait until Lambda has applied it; then its reserved concurrency.
async fn put_function(
    aws: &Aws,
    ex: &Executor<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> Result<ObservedResource, StepError> {
    let name = d.key.name.as_str();
    let short = name
        .strip_prefix(&format!("{}-{}-", ex.subject.stack.stack, ex.subject.env))
        .unwrap_or(name);
    let artifact = ex.subject.artifacts.get(short).ok_or_else(|| {
        AwsError::new(
            format!("deploy function `{name}`"),
            "its artifact was not packaged",
        )
    })?;
    let input = inputs::function(d, observed, ex.scope())?;
    let concurrency = inputs::reserved_concurrency(d)?;
    let what = format!("function `{name}` to be ready");
    let ready = || {
        wait_until(ex.watch(), &what, Duration::from_secs(900), || async {
            wait::function_ready(name, &aws::lambda::function_state(aws, name).await?)
        })
    };
    let arn = match cur {
        None => {
            let arn = aws::lambda::create_function(aws, &input, artifact.zip.clone()).await?;
            ready().await?;
            arn
        }
        Some(c) => {
            let differs = |k: &str| c.attrs.get(k).map(String::as_str) != Some(d.get(k));
            if differs("code_sha256") {
                aws::lambda::update_code(aws, name, artifact.zip.clone()).await?;
                ready().await?;
            }
            if inputs::FUNCTION_CONFIG.iter().any(|k| differs(k)) {
                aws::lambda::update_configuration(aws, &input).await?;
                ready().await?;
            }
            c.id.clone()
        }
    };
    let live = cur
        .and_then(|c| c.attrs.get("reserved_concurrency"))
        .map_or("unreserved", String::as_str);
    if live != d.get("reserved_concurrency") {
        aws::lambda::set_reserved_concurrency(aws, name, concurrency).await?;
    }
    Ok(with_output(
        applied(d, Some(ex.subject.owner), arn, "Active"),
        "code_sha256",
        d.get("code_sha256"),
    ))
}

/// Deletion waits on proxies and instances keep polling through errors: only "not found" ends them.
fn gone(r: AwsResult<bool>) -> AwsResult<bool> {
    Ok(r.unwrap_or(false))
}

async fn delete_one(
    aws: &Aws,
    ex: &Executor<'_>,
    key: &Key,
    observed: &Observed,
) -> Result<(), StepError> {
    let Some(cur) = observed.resources.get(key) else {
        return Ok(());
    };
    let name = key.name.as_str();
    let watch = ex.watch();
    match key.kind {
        Kind::Vpc | Kind::Subnet | Kind::SecurityGroup => {
            aws::ec2::delete(aws, key, &cur.id).await?
        }
        Kind::Ingress => {
            let live = cur.attrs.get("rules").map(String::as_str);
            aws::ec2::set_ingress(aws, &inputs::ingress(name, None, live, observed)?).await?
        }
        Kind::Role => aws::iam::delete_role(aws, name).await?,
        Kind::RolePolicy => {
            aws::iam::delete_policy(aws, &cur.id, aws::iam::DB_CONNECT_POLICY).await?
        }
        Kind::Secret => aws::secrets::delete(aws, name).await?,
        Kind::Ledger => aws::s3::delete_bucket(aws, name).await?,
        Kind::Proxy => {
            aws::rds::delete(aws, key).await?;
            wait_until(
                watch,
                &format!("DB proxy `{name}` to be deleted"),
                Duration::from_secs(1800),
                || async { gone(aws::rds::proxy_status(aws, name).await.map(|p| p.is_none())) },
            )
            .await?
        }
        Kind::DbInstance => {
            aws::rds::delete(aws, key).await?;
            wait_until(
                watch,
                &format!("DB instance `{name}` to be deleted"),
                Duration::from_secs(3600),
                || async {
                    gone(
                        aws::rds::instance_status(aws, name)
                            .await
                            .map(|i| i.is_none()),
                    )
                },
            )
            .await?
        }
        Kind::DbCluster => {
            aws::rds::delete(aws, key).await?;
            wait_until(
                watch,
                &format!("DB cluster `{name}` to be deleted"),
                Duration::from_secs(3600),
                || async { Ok(aws::rds::cluster_status(aws, name).await?.is_none()) },
            )
            .await?
        }
        Kind::DbSubnetGroup | Kind::ProxyTarget | Kind::ProxyTargetGroup => {
            aws::rds::delete(aws, key).await?
        }
        Kind::Function | Kind::Alias => aws::lambda::delete(aws, key).await?,
        Kind::EcsService => {
            aws::ecs::delete(aws, key, cur).await?;
            let cluster = cur.attrs.get("cluster").map_or("", String::as_str);
            wait_until(
                watch,
                &format!("service `{name}` to drain"),
                Duration::from_secs(900),
                || async {
                    let s = aws::ecs::service_status(aws, cluster, name).await?;
                    Ok(wait::service_drained(s.as_ref()))
                },
            )
            .await?
        }
        Kind::EcsCluster | Kind::TaskDefinition => aws::ecs::delete(aws, key, cur).await?,
        Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener => {
            aws::elb::delete(aws, key, cur).await?
        }
        Kind::Alarm => aws::cloudwatch::delete(aws, name).await?,
    }
    Ok(())
}
