//! Adapter inputs from the desired state: every input is built from the resource's typed spec (numbers,
//! lists and maps as the stack gave them, never parsed back from the canonical string view), with every name
//! resolved to the id or ARN that exists by now. Pure: no AWS calls, so each builder is unit-tested.

use std::collections::BTreeMap;
use std::fmt::Display;

use statsctl_aws::{cloudwatch, ec2, ecs, elb, iam, lambda, rds, secrets, tags_for, AwsError};
use statsctl_core::canonical::comparison_name;
use statsctl_core::inventory::{Desired, Kind, Observed, Owner};
use statsctl_core::spec::{self, Ref, Spec, DB_ENGINE};

/// Who owns what is created and the stack's own tags: what every tagged resource carries.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub owner: &'a Owner,
    pub tags: &'a BTreeMap<String, String>,
}

impl Scope<'_> {
    /// The tags a resource named `name` is created with.
    pub fn tags_of(&self, name: &str) -> Vec<(String, String)> {
        tags_for(self.owner, self.tags, name)
    }
    /// `statsctl <stack>/<env>`: descriptions of what statsctl creates.
    fn label(&self) -> String {
        format!("statsctl {}/{}", self.owner.stack, self.owner.env)
    }
}

type Built<T> = Result<T, AwsError>;

const BUG_HINT: &str =
    "the desired state comes from the stack file: run `statsctl validate`; if it passes, report this as a bug";

fn bad(d: &Desired, attr: &str, why: impl Display) -> AwsError {
    AwsError::new(
        format!("apply {}", d.key),
        format!("attribute `{attr}` {why}"),
    )
    .hint(BUG_HINT)
}

/// The spec is of another kind than the input being built needs: a bug in whoever dispatched it.
fn mismatch(d: &Desired, want: Kind) -> AwsError {
    AwsError::new(
        format!("apply {}", d.key),
        format!(
            "its spec is of kind `{}`, not `{}`",
            d.spec.kind().label(),
            want.label()
        ),
    )
    .hint(BUG_HINT)
}

/// `attr` of `d` needs a value only AWS will know once another resource exists, and it does not yet.
pub fn not_yet(d: &Desired, attr: &str) -> AwsError {
    AwsError::new(
        format!("apply {}", d.key),
        format!("`{attr}` depends on a resource that does not exist yet"),
    )
    .hint("re-run deploy; if it persists, run `statsctl plan` and check the resources before this one")
}

/// The value of a reference, which must be known by the time its resource is applied.
fn known(d: &Desired, attr: &str, r: &Ref) -> Built<String> {
    match r {
        Ref::Known(v) => Ok(v.clone()),
        Ref::AfterApply => Err(not_yet(d, attr)),
        Ref::MissingSecret(name) => Err(AwsError::new(
            format!("apply {}", d.key),
            format!("`{attr}` names secret `{name}`, which does not exist"),
        )
        .hint("create the secret (`statsctl plan` lists what the stack references), then deploy again")),
    }
}

/// Every value of a map of references, known.
fn resolved(d: &Desired, attr: &str, m: &BTreeMap<String, Ref>) -> Built<BTreeMap<String, String>> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), known(d, attr, v)?)))
        .collect()
}

/// A count or duration as the SDK's `i32`, refused when it does not fit.
fn int<N>(d: &Desired, attr: &str, v: N) -> Built<i32>
where
    N: Copy + Display,
    i32: TryFrom<N>,
{
    i32::try_from(v).map_err(|_| bad(d, attr, format!("is {v}, more than AWS takes")))
}

/// A canonical comma list (observed state's form).
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Names → physical ids; a name statsctl does not know is already an id (an existing subnet given by id).
fn ids(observed: &Observed, kind: Kind, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| observed.id_of(kind, n).unwrap_or(n).to_string())
        .collect()
}

/// The id of a resource this one needs, which must exist by now (it comes earlier in the plan).
fn needed<'o>(observed: &'o Observed, d: &Desired, kind: Kind, name: &str) -> Built<&'o str> {
    observed.id_of(kind, name).ok_or_else(|| {
        AwsError::new(
            format!("apply {}", d.key),
            format!("its {} `{name}` does not exist", kind.label()),
        )
        .hint("re-run deploy; if it persists, run `statsctl plan` and check the resources before this one")
    })
}

fn role_arn(observed: &Observed, d: &Desired, attr: &str, role: &str) -> Built<String> {
    needed(observed, d, Kind::Role, role)?;
    observed
        .output(Kind::Role, role, "arn")
        .map(str::to_string)
        .ok_or_else(|| {
            bad(
                d,
                attr,
                format!("names role `{role}`, whose ARN is not known"),
            )
        })
}

/// The VPC's CIDR block.
pub fn vpc(d: &Desired) -> Built<String> {
    let Spec::Vpc(v) = &d.spec else {
        return Err(mismatch(d, Kind::Vpc));
    };
    Ok(v.cidr.clone())
}

pub fn subnet(
    d: &Desired,
    observed: &Observed,
    vpc_name: &str,
    s: Scope,
) -> Built<ec2::SubnetInput> {
    let Spec::Subnet(sn) = &d.spec else {
        return Err(mismatch(d, Kind::Subnet));
    };
    Ok(ec2::SubnetInput {
        name: d.key.name.clone(),
        vpc_id: needed(observed, d, Kind::Vpc, vpc_name)?.to_string(),
        cidr: sn.cidr.clone(),
        availability_zone: sn.availability_zone.clone(),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn group(d: &Desired, observed: &Observed, s: Scope) -> Built<ec2::GroupInput> {
    let Spec::SecurityGroup(g) = &d.spec else {
        return Err(mismatch(d, Kind::SecurityGroup));
    };
    Ok(ec2::GroupInput {
        name: d.key.name.clone(),
        vpc_id: needed(observed, d, Kind::Vpc, &g.vpc)?.to_string(),
        description: format!("{}: {}", s.label(), d.key.name),
        tags: s.tags_of(&d.key.name),
    })
}

/// An observed rule, `tcp:5432:sg:NAME` or `tcp:443:cidr:0.0.0.0/0` (port `all`: every port) → a rule with
/// group names resolved to ids.
pub fn rule(text: &str, observed: &Observed) -> Result<ec2::Rule, String> {
    let parts: Vec<&str> = text.splitn(4, ':').collect();
    let [protocol, port, kind, what] = parts[..] else {
        return Err(format!("malformed rule `{text}`"));
    };
    let port = match port {
        "all" => None,
        p => Some(
            p.parse()
                .map_err(|_| format!("rule `{text}` has port `{p}`, not a number or `all`"))?,
        ),
    };
    let source = match kind {
        "sg" => ec2::Source::Group(
            observed
                .id_of(Kind::SecurityGroup, what)
                .unwrap_or(what)
                .to_string(),
        ),
        "cidr" => ec2::Source::Cidr(what.to_string()),
        k => {
            return Err(format!(
                "rule `{text}` has source kind `{k}`, not `sg` or `cidr`"
            ))
        }
    };
    Ok(ec2::Rule {
        protocol: protocol.to_string(),
        port,
        source,
    })
}

/// A wanted rule → the rule to authorize, its group name resolved to an id.
fn wanted_rule(d: &Desired, r: &spec::IngressRule, observed: &Observed) -> Built<ec2::Rule> {
    let source = match &r.from {
        spec::Source::Group(g) => ec2::Source::Group(
            observed
                .id_of(Kind::SecurityGroup, g)
                .unwrap_or(g)
                .to_string(),
        ),
        spec::Source::Cidr(c) => ec2::Source::Cidr(known(d, "rules", c)?),
    };
    Ok(ec2::Rule {
        protocol: "tcp".into(),
        port: Some(i32::from(r.port)),
        source,
    })
}

/// The rules to revoke (live, not wanted: drift) and to authorize (wanted, not live). `wanted` is `None` to
/// remove every rule (the group is being deleted). Wanted and live rules meet in the canonical text form
/// observed state records.
pub fn ingress(
    name: &str,
    wanted: Option<&Desired>,
    live: Option<&str>,
    observed: &Observed,
) -> Built<ec2::IngressInput> {
    let what = || format!("set ingress of `{name}`");
    let group_id = observed
        .id_of(Kind::SecurityGroup, name)
        .ok_or_else(|| AwsError::new(what(), "the group does not exist"))?
        .to_string();
    let have = list(live.unwrap_or_default());
    let mut want = Vec::new();
    let mut authorize = Vec::new();
    if let Some(d) = wanted {
        let Spec::Ingress(i) = &d.spec else {
            return Err(mismatch(d, Kind::Ingress));
        };
        for r in &i.rules {
            let text = r.render();
            if want.contains(&text) {
                continue;
            }
            if !have.contains(&text) {
                authorize.push(wanted_rule(d, r, observed)?);
            }
            want.push(text);
        }
    }
    let revoke = have
        .iter()
        .filter(|r| !want.contains(r))
        .map(|r| rule(r, observed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AwsError::new(what(), e))?;
    Ok(ec2::IngressInput {
        name: name.to_string(),
        revoke,
        authorize,
        group_id,
    })
}

pub fn role(d: &Desired, s: Scope) -> Built<iam::RoleInput> {
    let Spec::Role(r) = &d.spec else {
        return Err(mismatch(d, Kind::Role));
    };
    Ok(iam::RoleInput {
        name: d.key.name.clone(),
        path: iam::path_for(s.owner),
        trusted_service: r.trust.clone(),
        policy: r.policy.render(),
        tags: s.tags_of(&d.key.name),
    })
}

/// The policy document of a role (its base policy) or of a role policy.
pub fn policy(d: &Desired) -> Built<String> {
    match &d.spec {
        Spec::Role(r) => Ok(r.policy.render()),
        Spec::RolePolicy(p) => Ok(p.policy.render()),
        _ => Err(mismatch(d, Kind::RolePolicy)),
    }
}

pub fn secret(d: &Desired, username: &str, s: Scope) -> Built<secrets::SecretInput> {
    if !matches!(d.spec, Spec::Secret) {
        return Err(mismatch(d, Kind::Secret));
    }
    Ok(secrets::SecretInput {
        name: d.key.name.clone(),
        username: username.to_string(),
        description: format!(
            "master credentials of the statsctl stack {}/{}",
            s.owner.stack, s.owner.env
        ),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn subnet_group(d: &Desired, observed: &Observed, s: Scope) -> Built<rds::SubnetGroupInput> {
    let Spec::DbSubnetGroup(g) = &d.spec else {
        return Err(mismatch(d, Kind::DbSubnetGroup));
    };
    Ok(rds::SubnetGroupInput {
        name: d.key.name.clone(),
        description: s.label(),
        subnet_ids: ids(observed, Kind::Subnet, &g.subnets),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn cluster(
    d: &Desired,
    observed: &Observed,
    credentials_secret: &str,
    s: Scope,
) -> Built<rds::ClusterInput> {
    let Spec::DbCluster(c) = &d.spec else {
        return Err(mismatch(d, Kind::DbCluster));
    };
    Ok(rds::ClusterInput {
        id: d.key.name.clone(),
        engine: DB_ENGINE.into(),
        engine_version: c.engine_version.clone(),
        database_name: c.database_name.clone(),
        master_username: c.master_username.clone(),
        credentials_secret: credentials_secret.to_string(),
        subnet_group: c.subnet_group.clone(),
        security_group_ids: ids(observed, Kind::SecurityGroup, &c.security_groups),
        serverless_acu: c.serverless_acu,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn instance(d: &Desired, s: Scope) -> Built<rds::InstanceInput> {
    let Spec::DbInstance(i) = &d.spec else {
        return Err(mismatch(d, Kind::DbInstance));
    };
    Ok(rds::InstanceInput {
        id: d.key.name.clone(),
        cluster: i.cluster.clone(),
        instance_class: i.instance_class.clone(),
        publicly_accessible: i.publicly_accessible,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn proxy(d: &Desired, observed: &Observed, s: Scope) -> Built<rds::ProxyInput> {
    let Spec::Proxy(p) = &d.spec else {
        return Err(mismatch(d, Kind::Proxy));
    };
    Ok(rds::ProxyInput {
        name: d.key.name.clone(),
        role_arn: role_arn(observed, d, "role", &p.role)?,
        secret_arn: known(d, "secret", &p.secret)?,
        iam_auth: p.iam_auth,
        require_tls: p.require_tls,
        idle_client_timeout_s: int(d, "idle_client_timeout", p.idle_client_timeout_secs)?,
        subnet_ids: ids(observed, Kind::Subnet, &p.subnets),
        security_group_ids: ids(observed, Kind::SecurityGroup, &p.security_groups),
        tags: s.tags_of(&d.key.name),
    })
}

/// The proxy a `proxy/…` resource name belongs to.
pub fn proxy_of(d: &Desired) -> &str {
    d.key.name.split('/').next().unwrap_or_default()
}

/// The DB cluster a proxy target registers.
pub fn proxy_target(d: &Desired) -> Built<&str> {
    let Spec::ProxyTarget(t) = &d.spec else {
        return Err(mismatch(d, Kind::ProxyTarget));
    };
    Ok(&t.cluster)
}

pub fn pool(d: &Desired) -> Built<rds::PoolInput> {
    let Spec::ProxyTargetGroup(p) = &d.spec else {
        return Err(mismatch(d, Kind::ProxyTargetGroup));
    };
    Ok(rds::PoolInput {
        proxy: proxy_of(d).to_string(),
        max_connections_percent: int(d, "max_connections_percent", p.max_connections_percent)?,
        connection_borrow_timeout_s: int(
            d,
            "connection_borrow_timeout",
            p.connection_borrow_timeout_secs,
        )?,
        // Only managed when the stack sets it.
        max_idle_connections_percent: p
            .max_idle_connections_percent
            .map(|v| int(d, "max_idle_connections_percent", v))
            .transpose()?,
    })
}

pub fn function(d: &Desired, observed: &Observed, s: Scope) -> Built<lambda::FunctionInput> {
    let Spec::Function(f) = &d.spec else {
        return Err(mismatch(d, Kind::Function));
    };
    Ok(lambda::FunctionInput {
        name: d.key.name.clone(),
        runtime: f.runtime.clone(),
        handler: f.handler.clone(),
        role_arn: role_arn(observed, d, "role", &f.role)?,
        memory_mb: int(d, "memory_mb", f.memory_mb)?,
        timeout_s: int(d, "timeout", f.timeout_secs)?,
        environment: resolved(d, "environment", &f.environment)?,
        subnet_ids: ids(observed, Kind::Subnet, &f.subnets),
        security_group_ids: ids(observed, Kind::SecurityGroup, &f.security_groups),
        tags: s.tags_of(&d.key.name),
    })
}

/// `None` (unreserved) or the number of executions to reserve.
pub fn reserved_concurrency(d: &Desired) -> Built<Option<i32>> {
    let Spec::Function(f) = &d.spec else {
        return Err(mismatch(d, Kind::Function));
    };
    f.reserved_concurrency
        .map(|c| int(d, "reserved_concurrency", c))
        .transpose()
}
/// The attributes that make up a function's configuration (an `UpdateFunctionConfiguration` call).
pub const FUNCTION_CONFIG: [&str; 8] = [
    "runtime",
    "handler",
    "memory_mb",
    "timeout",
    "role",
    "environment",
    "subnets",
    "security_groups",
];

/// What an alias's description remembers: the version it pointed at (`current`) before `version`, so a
/// rollback knows where to return. Re-pointing at the same version keeps the one remembered (`previous`).
pub fn alias_description(current: Option<&str>, previous: Option<&str>, version: &str) -> String {
    match (current, previous) {
        (Some(c), _) if c != version => format!("statsctl previous={c}"),
        (_, Some(p)) => format!("statsctl previous={p}"),
        _ => "statsctl".into(),
    }
}

/// `function:alias` → (function, alias).
pub fn alias_names(d: &Desired) -> (&str, &str) {
    d.key.name.split_once(':').unwrap_or((&d.key.name, "live"))
}

pub fn task(
    d: &Desired,
    observed: &Observed,
    container_name: &str,
    s: Scope,
) -> Built<ecs::TaskInput> {
    let Spec::TaskDefinition(t) = &d.spec else {
        return Err(mismatch(d, Kind::TaskDefinition));
    };
    let secrets = t
        .secrets
        .iter()
        .map(|(k, v)| {
            known(d, "secrets", &v.arn)?;
            Ok((k.clone(), v.render()))
        })
        .collect::<Built<_>>()?;
    Ok(ecs::TaskInput {
        family: d.key.name.clone(),
        container_name: container_name.to_string(),
        image: t.image.clone(),
        cpu: t.cpu.to_string(),
        memory_mb: t.memory_mb.to_string(),
        port: i32::from(t.port),
        role_arn: role_arn(observed, d, "task_role", &t.task_role)?,
        environment: resolved(d, "environment", &t.environment)?,
        secrets,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn service(
    d: &Desired,
    observed: &Observed,
    container: (&str, u16),
    s: Scope,
) -> Built<ecs::ServiceInput> {
    let Spec::EcsService(e) = &d.spec else {
        return Err(mismatch(d, Kind::EcsService));
    };
    Ok(ecs::ServiceInput {
        name: d.key.name.clone(),
        cluster: e.cluster.clone(),
        task_definition: known(d, "task_definition", &e.task_definition)?,
        desired_count: int(d, "desired_count", e.desired_count)?,
        subnet_ids: ids(observed, Kind::Subnet, &e.subnets),
        security_group_ids: ids(observed, Kind::SecurityGroup, &e.security_groups),
        target_group_arn: needed(observed, d, Kind::TargetGroup, &e.target_group)?.to_string(),
        container_name: container.0.to_string(),
        container_port: i32::from(container.1),
        tags: s.tags_of(&d.key.name),
    })
}

/// The load-generator task definition (`Spec::LoadgenTask`): its logs go to the region it runs in.
pub fn loadgen_task(
    d: &Desired,
    observed: &Observed,
    s: Scope,
) -> Built<statsctl_aws::loadgen::LoadgenTaskInput> {
    let Spec::LoadgenTask(t) = &d.spec else {
        return Err(mismatch(d, Kind::TaskDefinition));
    };
    Ok(statsctl_aws::loadgen::LoadgenTaskInput {
        family: d.key.name.clone(),
        container_name: statsctl_core::desired::loadgen::CONTAINER.to_string(),
        image: t.image.clone(),
        cpu: t.cpu.to_string(),
        memory_mb: t.memory_mb.to_string(),
        command: t.command.clone(),
        role_arn: role_arn(observed, d, "task_role", &t.task_role)?,
        log_group: t.log_group.clone(),
        region: observed.region.clone(),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn load_balancer(d: &Desired, observed: &Observed, s: Scope) -> Built<elb::LoadBalancerInput> {
    let Spec::LoadBalancer(lb) = &d.spec else {
        return Err(mismatch(d, Kind::LoadBalancer));
    };
    Ok(elb::LoadBalancerInput {
        name: d.key.name.clone(),
        scheme: if lb.internal {
            "internal"
        } else {
            "internet-facing"
        }
        .into(),
        subnet_ids: ids(observed, Kind::Subnet, &lb.subnets),
        security_group_ids: ids(observed, Kind::SecurityGroup, &lb.security_groups),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn target_group(d: &Desired, observed: &Observed, s: Scope) -> Built<elb::TargetGroupInput> {
    let Spec::TargetGroup(tg) = &d.spec else {
        return Err(mismatch(d, Kind::TargetGroup));
    };
    Ok(elb::TargetGroupInput {
        name: d.key.name.clone(),
        port: i32::from(tg.port),
        vpc_id: observed
            .id_of(Kind::Vpc, &tg.vpc)
            .unwrap_or_default()
            .to_string(),
        health_check_path: tg.health_check_path.clone(),
        tags: s.tags_of(&d.key.name),
    })
}

/// The listener: one target group, or several by weight (a rollout stopped mid-way, kept as found). Weights
/// were checked when the spec was built ([`spec::ListenerSpec::weighted`]: 0..=999, one above 0).
pub fn listener(d: &Desired, observed: &Observed) -> Built<elb::ListenerInput> {
    let Spec::Listener(l) = &d.spec else {
        return Err(mismatch(d, Kind::Listener));
    };
    let lb = d
        .key
        .name
        .rsplit_once(':')
        .map_or(d.key.name.as_str(), |(l, _)| l);
    let forwards = l
        .forwards()
        .iter()
        .map(|(tg, w)| {
            Ok((
                needed(observed, d, Kind::TargetGroup, tg)?.to_string(),
                w.get(),
            ))
        })
        .collect::<Built<Vec<_>>>()?;
    Ok(elb::ListenerInput {
        name: d.key.name.clone(),
        load_balancer_arn: needed(observed, d, Kind::LoadBalancer, lb)?.to_string(),
        port: i32::from(l.port),
        forwards,
    })
}

pub fn alarm(d: &Desired) -> Built<cloudwatch::AlarmInput> {
    let Spec::Alarm(a) = &d.spec else {
        return Err(mismatch(d, Kind::Alarm));
    };
    Ok(cloudwatch::AlarmInput {
        name: d.key.name.clone(),
        description: a.description.clone(),
        namespace: a.namespace.clone(),
        metric: a.metric.clone(),
        dimensions: a.dimensions.clone(),
        statistic: a.statistic.clone(),
        comparison: comparison_name(a.comparison).into(),
        threshold: a.threshold,
        period_s: int(d, "period", a.period_secs)?,
        evaluation_periods: int(d, "evaluation_periods", a.evaluation_periods)?,
        datapoints_to_alarm: int(d, "datapoints_to_alarm", a.datapoints_to_alarm)?,
        actions: a.actions.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::ObservedResource;
    use statsctl_core::model::Comparison;
    use statsctl_core::spec::{
        AlarmSpec, DbClusterSpec, EcsServiceSpec, FunctionSpec, IngressRule, IngressSpec,
        ListenerSpec, ProxySpec, ProxyTargetGroupSpec, SecretSource, TaskDefinitionSpec, VpcSpec,
    };

    fn owner() -> Owner {
        Owner {
            stack: "live".into(),
            env: "dev".into(),
        }
    }

    /// A world where the roles, subnets, groups, VPC, load balancer and target group exist.
    fn observed() -> Observed {
        let mut o = Observed::default();
        let mut add = |kind, name: &str, id: &str, outputs: &[(&str, &str)]| {
            let mut r = ObservedResource {
                id: id.into(),
                ..Default::default()
            };
            for (k, v) in outputs {
                r.outputs.insert(k.to_string(), v.to_string());
            }
            o.resources
                .insert(statsctl_core::inventory::Key::new(kind, name), r);
        };
        add(
            Kind::Role,
            "fn-role",
            "fn-role",
            &[("arn", "arn:aws:iam::1:role/fn-role")],
        );
        add(
            Kind::Role,
            "task-role",
            "task-role",
            &[("arn", "arn:task-role")],
        );
        add(Kind::Subnet, "s-a", "subnet-1", &[]);
        add(Kind::Subnet, "s-b", "subnet-2", &[]);
        add(Kind::SecurityGroup, "sg-fn", "sg-111", &[]);
        add(Kind::SecurityGroup, "sg-db", "sg-222", &[]);
        add(Kind::Vpc, "vpc", "vpc-9", &[]);
        add(Kind::LoadBalancer, "lb", "arn:lb", &[]);
        add(Kind::TargetGroup, "tg", "arn:tg", &[]);
        o
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn function_spec() -> FunctionSpec {
        FunctionSpec {
            runtime: "python3.12".into(),
            handler: "app.handler".into(),
            memory_mb: 256,
            timeout_secs: 10,
            role: "fn-role".into(),
            environment: BTreeMap::from([("A".to_string(), Ref::from("1"))]),
            subnets: strings(&["s-a", "s-b"]),
            security_groups: strings(&["sg-fn"]),
            code_sha256: Ref::from("abc"),
            reserved_concurrency: None,
        }
    }

    fn function_desired(f: FunctionSpec) -> Desired {
        Desired::from_spec("live-dev-api", Spec::Function(f))
    }

    fn scope<'a>(o: &'a Owner, tags: &'a BTreeMap<String, String>) -> Scope<'a> {
        Scope { owner: o, tags }
    }

    #[test]
    fn a_function_input_resolves_names_and_takes_typed_values() {
        let tags = BTreeMap::from([("team".to_string(), "stats".to_string())]);
        let o = owner();
        let f = function(
            &function_desired(function_spec()),
            &observed(),
            scope(&o, &tags),
        )
        .unwrap();
        assert_eq!(
            f,
            lambda::FunctionInput {
                name: "live-dev-api".into(),
                runtime: "python3.12".into(),
                handler: "app.handler".into(),
                role_arn: "arn:aws:iam::1:role/fn-role".into(),
                memory_mb: 256,
                timeout_s: 10,
                environment: BTreeMap::from([("A".to_string(), "1".to_string())]),
                subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
                security_group_ids: vec!["sg-111".into()],
                tags: tags_for(&o, &tags, "live-dev-api"),
            }
        );
        assert_eq!(
            reserved_concurrency(&function_desired(function_spec())).unwrap(),
            None
        );
        let reserved = FunctionSpec {
            reserved_concurrency: Some(50),
            ..function_spec()
        };
        assert_eq!(
            reserved_concurrency(&function_desired(reserved)).unwrap(),
            Some(50)
        );
    }

    #[test]
    fn values_an_input_cannot_take_are_errors_naming_the_resource_and_attribute() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = scope(&o, &tags);
        let obs = observed();
        let vpc = Desired::from_spec(
            "vpc",
            Spec::Vpc(VpcSpec {
                cidr: "10.0.0.0/16".into(),
            }),
        );
        let proxy_spec = ProxySpec {
            role: "fn-role".into(),
            secret: Ref::from("arn:secret"),
            iam_auth: true,
            require_tls: true,
            idle_client_timeout_secs: 1800,
            subnets: strings(&["s-a"]),
            security_groups: strings(&["sg-db"]),
        };
        let proxy_desired = |p: ProxySpec| Desired::from_spec("prx", Spec::Proxy(p));
        let with_env = |v: Ref| FunctionSpec {
            environment: BTreeMap::from([("DB_HOST".to_string(), v)]),
            ..function_spec()
        };
        let cases = [
            (
                "a spec of another kind",
                function(&vpc, &obs, s).map(drop),
                "vpc.vpc",
                "spec is of kind `vpc`, not `lambda_function`",
            ),
            (
                "an alarm built from a function spec",
                alarm(&function_desired(function_spec())).map(drop),
                "lambda_function.live-dev-api",
                "spec is of kind `lambda_function`, not `alarm`",
            ),
            (
                "timeout beyond i32",
                function(
                    &function_desired(FunctionSpec {
                        timeout_secs: u64::MAX,
                        ..function_spec()
                    }),
                    &obs,
                    s,
                )
                .map(drop),
                "lambda_function.live-dev-api",
                "`timeout` is 18446744073709551615",
            ),
            (
                "reserved concurrency beyond i32",
                reserved_concurrency(&function_desired(FunctionSpec {
                    reserved_concurrency: Some(u32::MAX),
                    ..function_spec()
                }))
                .map(drop),
                "lambda_function.live-dev-api",
                "`reserved_concurrency` is 4294967295",
            ),
            (
                "an environment value known only after apply",
                function(&function_desired(with_env(Ref::AfterApply)), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "`environment` depends on a resource that does not exist yet",
            ),
            (
                "role unknown",
                function(
                    &function_desired(FunctionSpec {
                        role: "nobody".into(),
                        ..function_spec()
                    }),
                    &obs,
                    s,
                )
                .map(drop),
                "lambda_function.live-dev-api",
                "role `nobody` does not exist",
            ),
            (
                "a proxy secret that does not exist",
                proxy(
                    &proxy_desired(ProxySpec {
                        secret: Ref::MissingSecret("live/db".into()),
                        ..proxy_spec.clone()
                    }),
                    &obs,
                    s,
                )
                .map(drop),
                "db_proxy.prx",
                "`secret` names secret `live/db`, which does not exist",
            ),
            (
                "idle timeout beyond i32",
                proxy(
                    &proxy_desired(ProxySpec {
                        idle_client_timeout_secs: 1 << 40,
                        ..proxy_spec
                    }),
                    &obs,
                    s,
                )
                .map(drop),
                "db_proxy.prx",
                "`idle_client_timeout` is 1099511627776",
            ),
            (
                "a weighted listener to a target group that does not exist",
                listener(
                    &Desired::from_spec(
                        "lb:80",
                        Spec::Listener(
                            ListenerSpec::weighted(80, &[("tg", 90), ("tg-green", 10)]).unwrap(),
                        ),
                    ),
                    &obs,
                )
                .map(drop),
                "listener.lb:80",
                "target_group `tg-green` does not exist",
            ),
            (
                "a service whose task definition is not registered yet",
                service(
                    &Desired::from_spec(
                        "stats",
                        Spec::EcsService(EcsServiceSpec {
                            cluster: "live".into(),
                            task_definition: Ref::AfterApply,
                            desired_count: 2,
                            subnets: strings(&["s-a"]),
                            security_groups: strings(&["sg-fn"]),
                            target_group: "tg".into(),
                        }),
                    ),
                    &obs,
                    ("stats", 8080),
                    s,
                )
                .map(drop),
                "ecs_service.stats",
                "`task_definition` depends on a resource that does not exist yet",
            ),
        ];
        for (name, got, resource, says) in cases {
            let e = got.expect_err(name);
            let text = e.to_string();
            assert!(text.contains(resource), "{name}: {text}");
            assert!(text.contains(says), "{name}: {text}");
            assert!(e.hint.is_some(), "{name}: no hint");
        }
    }

    #[test]
    fn other_inputs_from_typed_specs() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = scope(&o, &tags);
        let obs = observed();
        let p = pool(&Desired::from_spec(
            "prx/default",
            Spec::ProxyTargetGroup(ProxyTargetGroupSpec {
                max_connections_percent: 90,
                connection_borrow_timeout_secs: 120,
                max_idle_connections_percent: None,
            }),
        ))
        .unwrap();
        assert_eq!(
            p,
            rds::PoolInput {
                proxy: "prx".into(),
                max_connections_percent: 90,
                connection_borrow_timeout_s: 120,
                max_idle_connections_percent: None,
            }
        );
        let c = cluster(
            &Desired::from_spec(
                "db",
                Spec::DbCluster(DbClusterSpec {
                    engine_version: "16.4".into(),
                    database_name: "stats".into(),
                    master_username: "admin".into(),
                    subnet_group: "db-subnets".into(),
                    security_groups: strings(&["sg-db"]),
                    serverless_acu: Some((0.5, 4.0)),
                }),
            ),
            &obs,
            "db-creds",
            s,
        )
        .unwrap();
        assert_eq!(c.serverless_acu, Some((0.5, 4.0)));
        assert_eq!(c.security_group_ids, vec!["sg-222".to_string()]);
        assert_eq!(c.credentials_secret, "db-creds");
        assert_eq!(c.engine, DB_ENGINE);
        let l = listener(
            &Desired::from_spec("lb:80", Spec::Listener(ListenerSpec::forward(80, "tg"))),
            &obs,
        )
        .unwrap();
        assert_eq!(
            (l.load_balancer_arn.as_str(), l.port, l.forwards.clone()),
            ("arn:lb", 80, vec![("arn:tg".to_string(), 1)])
        );
        let mut with_green = obs.clone();
        with_green.resources.insert(
            statsctl_core::inventory::Key::new(Kind::TargetGroup, "tg-green"),
            ObservedResource {
                id: "arn:tg-green".into(),
                ..Default::default()
            },
        );
        let split = listener(
            &Desired::from_spec(
                "lb:80",
                Spec::Listener(
                    ListenerSpec::weighted(80, &[("tg", 90), ("tg-green", 10)]).unwrap(),
                ),
            ),
            &with_green,
        )
        .unwrap();
        assert_eq!(
            split.forwards,
            vec![("arn:tg".to_string(), 90), ("arn:tg-green".to_string(), 10)],
            "a weighted listener is applied with its weights"
        );
        let a = alarm(&Desired::from_spec(
            "a",
            Spec::Alarm(AlarmSpec {
                namespace: "AWS/Lambda".into(),
                metric: "Errors".into(),
                dimensions: BTreeMap::from([("FunctionName".to_string(), "f".to_string())]),
                statistic: "Sum".into(),
                comparison: Comparison::Greater,
                threshold: 0.5,
                period_secs: 60,
                evaluation_periods: 5,
                datapoints_to_alarm: 3,
                actions: strings(&["arn:a", "arn:b"]),
                description: "errors".into(),
            }),
        ))
        .unwrap();
        assert_eq!(
            (
                a.namespace.as_str(),
                a.metric.as_str(),
                a.comparison.as_str()
            ),
            ("AWS/Lambda", "Errors", "GreaterThanThreshold")
        );
        assert_eq!(
            (a.threshold, a.period_s, a.datapoints_to_alarm),
            (0.5, 60, 3)
        );
        assert_eq!(a.actions, vec!["arn:a".to_string(), "arn:b".to_string()]);
        let vpc = Desired::from_spec(
            "vpc",
            Spec::Vpc(VpcSpec {
                cidr: "10.0.0.0/16".into(),
            }),
        );
        assert_eq!(super::vpc(&vpc).unwrap(), "10.0.0.0/16");
        assert!(policy(&vpc).is_err(), "a VPC has no policy");
        assert!(secret(&vpc, "admin", s).is_err(), "a VPC is not a secret");
        let secret_desired = Desired::from_spec("live/db", Spec::Secret);
        assert_eq!(
            secret(&secret_desired, "admin", s).unwrap().username,
            "admin"
        );
    }

    #[test]
    fn the_service_and_its_task_definition() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = scope(&o, &tags);
        let obs = observed();
        let task_spec = TaskDefinitionSpec {
            image: "stats:1".into(),
            cpu: 256,
            memory_mb: 512,
            port: 8080,
            environment: BTreeMap::from([("DB_MODE".to_string(), Ref::from("pool"))]),
            secrets: BTreeMap::from([(
                "TOKEN".to_string(),
                SecretSource {
                    arn: Ref::from("arn:secret:t"),
                    key: Some("key".into()),
                },
            )]),
            task_role: "task-role".into(),
        };
        let task_desired =
            |t: TaskDefinitionSpec| Desired::from_spec("live-dev-stats", Spec::TaskDefinition(t));
        let t = task(&task_desired(task_spec.clone()), &obs, "stats", s).unwrap();
        assert_eq!(
            (
                t.cpu.as_str(),
                t.memory_mb.as_str(),
                t.port,
                t.role_arn.as_str()
            ),
            ("256", "512", 8080, "arn:task-role")
        );
        assert_eq!(t.container_name, "stats");
        assert_eq!(t.secrets["TOKEN"], "arn:secret:t:key::");
        assert_eq!(t.environment["DB_MODE"], "pool");
        let missing = TaskDefinitionSpec {
            secrets: BTreeMap::from([(
                "TOKEN".to_string(),
                SecretSource {
                    arn: Ref::MissingSecret("live/token".into()),
                    key: None,
                },
            )]),
            ..task_spec
        };
        let e = task(&task_desired(missing), &obs, "stats", s).unwrap_err();
        assert!(
            e.to_string().contains("task_definition.live-dev-stats"),
            "{e}"
        );
        assert!(e.to_string().contains("secret `live/token`"), "{e}");

        let svc = service(
            &Desired::from_spec(
                "stats",
                Spec::EcsService(EcsServiceSpec {
                    cluster: "live".into(),
                    task_definition: Ref::from("live-dev-stats:3"),
                    desired_count: 2,
                    subnets: strings(&["s-a"]),
                    security_groups: strings(&["sg-fn"]),
                    target_group: "tg".into(),
                }),
            ),
            &obs,
            ("stats", 8080),
            s,
        )
        .unwrap();
        assert_eq!(
            (
                svc.desired_count,
                svc.task_definition.as_str(),
                svc.target_group_arn.as_str(),
                svc.container_port
            ),
            (2, "live-dev-stats:3", "arn:tg", 8080)
        );
        assert_eq!(svc.subnet_ids, vec!["subnet-1".to_string()]);
    }

    #[test]
    fn ingress_revokes_drift_and_authorizes_what_is_missing() {
        let obs = observed();
        let ingress_desired = |rules: Vec<IngressRule>| {
            Desired::from_spec("sg-db", Spec::Ingress(IngressSpec { rules }))
        };
        let d = ingress_desired(vec![
            IngressRule {
                port: 5432,
                from: spec::Source::Group("sg-fn".into()),
            },
            IngressRule {
                port: 80,
                from: spec::Source::Cidr(Ref::from("10.0.0.0/16")),
            },
        ]);
        let i = ingress(
            "sg-db",
            Some(&d),
            Some("tcp:5432:sg:sg-fn,-1:all:cidr:0.0.0.0/0"),
            &obs,
        )
        .unwrap();
        assert_eq!(i.group_id, "sg-222");
        assert_eq!(
            i.revoke,
            vec![ec2::Rule {
                protocol: "-1".into(),
                port: None,
                source: ec2::Source::Cidr("0.0.0.0/0".into()),
            }]
        );
        assert_eq!(
            i.authorize,
            vec![ec2::Rule {
                protocol: "tcp".into(),
                port: Some(80),
                source: ec2::Source::Cidr("10.0.0.0/16".into()),
            }]
        );
        let fresh = ingress("sg-db", Some(&d), None, &obs).unwrap();
        assert_eq!(
            fresh.authorize[0].source,
            ec2::Source::Group("sg-111".into()),
            "wanted group names resolve to ids"
        );
        let none = ingress("sg-db", None, Some("tcp:5432:sg:sg-fn"), &obs).unwrap();
        assert_eq!(
            none.revoke[0].source,
            ec2::Source::Group("sg-111".into()),
            "live group names resolve to ids"
        );
        assert!(none.authorize.is_empty());
        let later = ingress_desired(vec![IngressRule {
            port: 443,
            from: spec::Source::Cidr(Ref::AfterApply),
        }]);
        let e = ingress("sg-db", Some(&later), None, &obs).unwrap_err();
        assert!(
            e.to_string().contains("`rules` depends on a resource"),
            "{e}"
        );
        assert!(rule("tcp:5432", &obs).is_err());
        assert!(rule("tcp:x:cidr:1.2.3.4/32", &obs).is_err());
        assert!(ingress("missing", Some(&d), None, &obs).is_err());
    }

    #[test]
    fn alias_descriptions_remember_the_version_before() {
        let cases = [
            (None, None, "1", "statsctl"),
            (Some("1"), None, "2", "statsctl previous=1"),
            (Some("2"), Some("1"), "3", "statsctl previous=2"),
            (Some("2"), Some("1"), "2", "statsctl previous=1"),
            (Some("2"), None, "2", "statsctl"),
        ];
        for (current, previous, version, want) in cases {
            assert_eq!(
                alias_description(current, previous, version),
                want,
                "{current:?}/{previous:?} → {version}"
            );
        }
    }
}
