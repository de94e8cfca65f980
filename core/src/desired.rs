//! What the stack wants to exist, as plain data: stack file (+ environment) + the few facts only AWS knows
//! (endpoints, ids, account) → the desired resources with their managed attributes. Pure.
//!
//! The function→proxy link is built here: a function that reaches the database `via: proxy` gets the proxy's
//! endpoint in its host variable, the proxy's subnets, a security group the proxy's group admits on 5432, and
//! (with IAM auth) `rds-db:connect` on the proxy's `prx-` resource id for its database user.

use std::collections::BTreeMap;

use serde_json::json;

use crate::alarms::{desired_alarms, AlarmContext};
use crate::facts;
use crate::inventory::{canonical_map, join_sorted, Desired, Kind, Observed, KNOWN_AFTER_APPLY};
use crate::model::{DbAccess, EnvValue, SecretRef, StackFile, Via};

/// A function's code, packaged (deterministically) before anything talks to AWS.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Base64 SHA-256 of the zip, the way Lambda reports `CodeSha256`.
    pub sha256: String,
    pub zip: Vec<u8>,
}

/// Names statsctl derives for one stack in one environment.
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(stack: &StackFile, env: &str) -> Names {
        Names {
            prefix: stack.prefix(env),
        }
    }
    pub fn vpc(&self) -> String {
        self.prefix.clone()
    }
    pub fn subnet(&self, i: usize) -> String {
        format!("{}-{}", self.prefix, i + 1)
    }
    pub fn sg(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
    pub fn function_role(&self, function: &str) -> String {
        format!("{}-fn-{function}", self.prefix)
    }
    pub fn proxy_role(&self) -> String {
        format!("{}-proxy", self.prefix)
    }
    pub fn task_role(&self) -> String {
        format!("{}-task", self.prefix)
    }
    pub fn db_connect_policy(role: &str) -> String {
        format!("{role}/rds-db-connect")
    }
    pub fn load_balancer(&self) -> String {
        self.prefix.clone()
    }
    pub fn target_group(&self) -> String {
        format!("{}-svc", self.prefix)
    }
    pub fn task_family(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }
}

pub const POSTGRES_PORT: u16 = 5432;

/// The subnets the stack runs in, as the names observed state uses for them.
pub fn subnet_names(stack: &StackFile, names: &Names) -> Vec<String> {
    match (&stack.network.existing, &stack.network.create) {
        (Some(e), _) => e.subnet_ids.clone(),
        (None, Some(c)) => (0..c.subnets.len()).map(|i| names.subnet(i)).collect(),
        (None, None) => vec![],
    }
}

/// The `prx-…` resource id in a proxy ARN (`arn:aws:rds:REGION:ACCOUNT:db-proxy:prx-…`).
pub fn proxy_resource_id(arn: &str) -> Option<&str> {
    arn.rsplit(':').next().filter(|id| id.starts_with("prx-"))
}

/// The IAM resource `rds-db:connect` needs for `user` through a proxy (aws-facts.md §1).
pub fn db_connect_resource(region: &str, account: &str, prx_id: &str, user: &str) -> String {
    format!("arn:aws:rds-db:{region}:{account}:dbuser:{prx_id}/{user}")
}

fn policy(statements: serde_json::Value) -> String {
    json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// The host a client using `db` is given: the proxy endpoint or the cluster's writer endpoint.
fn db_host(stack: &StackFile, observed: &Observed, db: &DbAccess) -> String {
    let found = match db.via {
        Via::Proxy => stack
            .proxy
            .as_ref()
            .and_then(|p| observed.output(Kind::Proxy, &p.name, "endpoint")),
        Via::Direct => observed.output(Kind::DbCluster, &stack.database.cluster_id, "endpoint"),
    };
    found.unwrap_or(KNOWN_AFTER_APPLY).to_string()
}

/// Every secret the stack's environment variables reference, by name or ARN as written (sorted, once each):
/// what observe resolves with `DescribeSecret`.
pub fn referenced_secrets(stack: &StackFile) -> Vec<String> {
    let functions = stack.functions.values().map(|f| &f.environment);
    let service = stack.service.iter().map(|s| &s.environment);
    let mut names: Vec<String> = functions
        .chain(service)
        .flat_map(|vars| vars.values())
        .filter_map(|v| match v {
            EnvValue::Secret(r) => Some(r.secret.clone()),
            EnvValue::Plain(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Stands in for the ARN of a referenced secret that does not exist: the plan blocks the resource using it.
pub fn missing_secret(name: &str) -> String {
    format!("(secret `{name}` does not exist)")
}

/// The secret a value names as missing (see [`missing_secret`]), if any.
pub fn missing_secret_in(value: &str) -> Option<&str> {
    let start = value.find("(secret `")? + "(secret `".len();
    let len = value[start..].find("` does not exist)")?;
    Some(&value[start..start + len])
}

/// The ARN of a referenced secret: from live state; the credentials secret, which deploy creates, may not
/// exist yet (known after apply); any other secret that does not exist is marked missing.
fn secret_arn(stack: &StackFile, observed: &Observed, r: &SecretRef) -> String {
    match observed.output(Kind::Secret, &r.secret, "arn") {
        Some(arn) => arn.to_string(),
        None if r.secret == stack.database.credentials_secret => KNOWN_AFTER_APPLY.to_string(),
        None => missing_secret(&r.secret),
    }
}

/// A function's or the service's environment split into plain variables and secret references resolved to
/// `(variable, arn, key)`.
fn split_environment(
    stack: &StackFile,
    observed: &Observed,
    vars: &BTreeMap<String, EnvValue>,
) -> (
    BTreeMap<String, String>,
    Vec<(String, String, Option<String>)>,
) {
    let mut plain = BTreeMap::new();
    let mut secrets = Vec::new();
    for (k, v) in vars {
        match v {
            EnvValue::Plain(v) => {
                plain.insert(k.clone(), v.clone());
            }
            EnvValue::Secret(r) => {
                secrets.push((k.clone(), secret_arn(stack, observed, r), r.key.clone()))
            }
        }
    }
    (plain, secrets)
}

/// The statement letting a role read the secrets it references (none: no statement).
fn read_secrets(arns: impl IntoIterator<Item = String>) -> Option<serde_json::Value> {
    let arns: Vec<String> = join_sorted(arns)
        .split(',')
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect();
    (!arns.is_empty()).then(
        || json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": arns}),
    )
}

/// The database's max_connections as far as the stack file and AWS's table know it (alarm thresholds).
pub fn max_connections_estimate(stack: &StackFile) -> Option<u32> {
    stack.database.max_connections.or_else(|| {
        if let Some(class) = &stack.database.instance_class {
            facts::aurora_max_connections_for_class(class).map(|t| t.max_connections)
        } else {
            stack
                .database
                .serverless
                .as_ref()
                .and_then(|s| facts::aurora_serverless_max_connections(s.min_acu, s.max_acu))
                .map(|t| t.max_connections)
        }
    })
}

/// Everything the stack wants, in dependency order.
pub fn desired(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
    artifacts: &BTreeMap<String, Artifact>,
) -> Vec<Desired> {
    let n = Names::new(stack, env);
    let mut out = Vec::new();
    let subnets = subnet_names(stack, &n);
    let subnets_attr = join_sorted(subnets.iter().cloned());
    let account = if observed.account_id.is_empty() {
        KNOWN_AFTER_APPLY
    } else {
        observed.account_id.as_str()
    };

    // Network.
    if let Some(c) = &stack.network.create {
        out.push(
            Desired::new(Kind::Vpc, n.vpc())
                .attr("cidr", c.cidr.clone())
                .immutable(&["cidr"]),
        );
        for (i, s) in c.subnets.iter().enumerate() {
            out.push(
                Desired::new(Kind::Subnet, n.subnet(i))
                    .attr("cidr", s.cidr.clone())
                    .attr("availability_zone", s.availability_zone.clone())
                    .immutable(&["cidr", "availability_zone"]),
            );
        }
    }
    let vpc_cidr = match (&stack.network.create, &stack.network.existing) {
        (Some(c), _) => c.cidr.clone(),
        (None, Some(e)) => observed
            .output(Kind::Vpc, &e.vpc_id, "cidr")
            .unwrap_or(KNOWN_AFTER_APPLY)
            .to_string(),
        (None, None) => KNOWN_AFTER_APPLY.to_string(),
    };

    // Security groups and who may reach whom.
    let fn_via = |via: Via| {
        stack
            .functions
            .values()
            .any(|f| f.database.as_ref().is_some_and(|d| d.via == via))
    };
    let svc_via = |via: Via| {
        stack
            .service
            .as_ref()
            .and_then(|s| s.database.as_ref())
            .is_some_and(|d| d.via == via)
    };
    let from_sg = |port: u16, sg: String| format!("tcp:{port}:sg:{sg}");
    let mut db_ingress = vec![];
    if stack.proxy.is_some() {
        db_ingress.push(from_sg(POSTGRES_PORT, n.sg("proxy")));
    }
    if fn_via(Via::Direct) {
        db_ingress.push(from_sg(POSTGRES_PORT, n.sg("fn")));
    }
    if svc_via(Via::Direct) {
        db_ingress.push(from_sg(POSTGRES_PORT, n.sg("svc")));
    }
    let vpc = match (&stack.network.existing, &stack.network.create) {
        (Some(e), _) => e.vpc_id.clone(),
        _ => n.vpc(),
    };
    // Groups first, then their rules: rules reference other groups, which must all exist by then.
    let mut group = |role: &str, ingress: Vec<String>| {
        out.push(
            Desired::new(Kind::SecurityGroup, n.sg(role))
                .attr("vpc", vpc.clone())
                .immutable(&["vpc"]),
        );
        out.push(Desired::new(Kind::Ingress, n.sg(role)).attr("rules", join_sorted(ingress)));
    };
    group("db", db_ingress);
    if stack.proxy.is_some() {
        let mut ingress = vec![];
        if fn_via(Via::Proxy) {
            ingress.push(from_sg(POSTGRES_PORT, n.sg("fn")));
        }
        if svc_via(Via::Proxy) {
            ingress.push(from_sg(POSTGRES_PORT, n.sg("svc")));
        }
        group("proxy", ingress);
    }
    if !stack.functions.is_empty() {
        group("fn", vec![]);
    }
    if let Some(svc) = &stack.service {
        group("svc", vec![from_sg(svc.port, n.sg("lb"))]);
        let lb_from = if svc.load_balancer.internal {
            vpc_cidr.clone()
        } else {
            "0.0.0.0/0".to_string()
        };
        group(
            "lb",
            vec![format!(
                "tcp:{}:cidr:{lb_from}",
                svc.load_balancer.listener_port
            )],
        );
    }

    // IAM roles (their base inline policy) — the database-connect grant comes after the proxy exists.
    let logs = json!({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"});
    let eni = json!({"Effect": "Allow", "Action": ["ec2:AssignPrivateIpAddresses", "ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:UnassignPrivateIpAddresses"], "Resource": "*"});
    for (name, f) in &stack.functions {
        let (_, secrets) = split_environment(stack, observed, &f.environment);
        let mut statements = vec![logs.clone(), eni.clone()];
        statements.extend(read_secrets(secrets.into_iter().map(|(_, arn, _)| arn)));
        out.push(
            Desired::new(Kind::Role, n.function_role(name))
                .attr("trust", "lambda.amazonaws.com")
                .attr("policy", policy(json!(statements)))
                .immutable(&["trust"]),
        );
    }
    let secret_arn = observed
        .output(Kind::Secret, &stack.database.credentials_secret, "arn")
        .unwrap_or(KNOWN_AFTER_APPLY)
        .to_string();
    if stack.proxy.is_some() {
        out.push(
            Desired::new(Kind::Role, n.proxy_role())
                .attr("trust", "rds.amazonaws.com")
                .attr("policy", policy(json!([{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret_arn}])))
                .immutable(&["trust"]),
        );
    }
    if let Some(svc) = &stack.service {
        // The task's role is also its execution role: the one ECS uses to fetch `secrets` at task start.
        let (_, secrets) = split_environment(stack, observed, &svc.environment);
        let mut statements = vec![logs];
        statements.extend(read_secrets(secrets.into_iter().map(|(_, arn, _)| arn)));
        out.push(
            Desired::new(Kind::Role, n.task_role())
                .attr("trust", "ecs-tasks.amazonaws.com")
                .attr("policy", policy(json!(statements)))
                .immutable(&["trust"]),
        );
    }

    // The ledger: load-test results and deploy history, append-only.
    if account != KNOWN_AFTER_APPLY {
        // Versioning is switched on at creation but not compared: records are append-only by their unique keys
        // (written with If-None-Match), which is what the ledger relies on.
        out.push(Desired::new(
            Kind::Ledger,
            crate::ledger::bucket_name(stack, env, account),
        ));
    }

    // Database.
    out.push(Desired::new(
        Kind::Secret,
        stack.database.credentials_secret.clone(),
    ));
    out.push(
        Desired::new(Kind::DbSubnetGroup, n.prefix.clone()).attr("subnets", subnets_attr.clone()),
    );
    let db = &stack.database;
    let mut cluster = Desired::new(Kind::DbCluster, db.cluster_id.clone())
        .attr("engine", "aurora-postgresql")
        .attr("engine_version", db.engine_version.clone())
        .attr("database_name", db.database_name.clone())
        .attr("master_username", db.master_username.clone())
        .attr("subnet_group", n.prefix.clone())
        .attr("security_groups", n.sg("db"))
        .immutable(&["engine", "database_name", "master_username", "subnet_group"]);
    if let Some(s) = &db.serverless {
        cluster = cluster.attr("serverless_acu", format!("{}-{}", s.min_acu, s.max_acu));
    }
    out.push(cluster);
    let class = if db.serverless.is_some() {
        "db.serverless".to_string()
    } else {
        db.instance_class.clone().unwrap_or_default()
    };
    for i in 1..=db.instances {
        out.push(
            Desired::new(Kind::DbInstance, format!("{}-{i}", db.cluster_id))
                .attr("cluster", db.cluster_id.clone())
                .attr("instance_class", class.clone())
                .attr("publicly_accessible", db.publicly_accessible.to_string())
                .immutable(&["cluster"]),
        );
    }

    // Proxy.
    let prx_id = stack
        .proxy
        .as_ref()
        .and_then(|p| observed.get(Kind::Proxy, &p.name))
        .and_then(|r| proxy_resource_id(&r.id))
        .map(str::to_string);
    if let Some(p) = &stack.proxy {
        out.push(
            Desired::new(Kind::Proxy, p.name.clone())
                .attr("engine_family", "POSTGRESQL")
                .attr("role", n.proxy_role())
                .attr("secret", secret_arn.clone())
                .attr("iam_auth", if p.iam_auth { "REQUIRED" } else { "DISABLED" })
                .attr("require_tls", p.require_tls.to_string())
                .attr(
                    "idle_client_timeout",
                    p.idle_client_timeout.as_secs().to_string(),
                )
                .attr("subnets", subnets_attr.clone())
                .attr("security_groups", n.sg("proxy"))
                .immutable(&["engine_family", "subnets"]),
        );
        let mut tg = Desired::new(Kind::ProxyTargetGroup, format!("{}/default", p.name))
            .attr(
                "max_connections_percent",
                p.max_connections_percent.to_string(),
            )
            .attr(
                "connection_borrow_timeout",
                p.connection_borrow_timeout.as_secs().to_string(),
            );
        // Only managed when the stack says: AWS picks a default otherwise, which must not read as drift.
        if let Some(idle) = p.max_idle_connections_percent {
            tg = tg.attr("max_idle_connections_percent", idle.to_string());
        }
        out.push(tg);
        out.push(
            Desired::new(Kind::ProxyTarget, format!("{}/{}", p.name, db.cluster_id))
                .attr("cluster", db.cluster_id.clone()),
        );

        // rds-db:connect for every client that goes through the proxy with IAM auth.
        if p.iam_auth {
            let mut grants: Vec<(String, &DbAccess)> = stack
                .functions
                .iter()
                .filter_map(|(name, f)| {
                    f.database
                        .as_ref()
                        .filter(|d| d.via == Via::Proxy)
                        .map(|d| (n.function_role(name), d))
                })
                .collect();
            if let Some(d) = stack
                .service
                .as_ref()
                .and_then(|s| s.database.as_ref())
                .filter(|d| d.via == Via::Proxy)
            {
                grants.push((n.task_role(), d));
            }
            for (role, d) in grants {
                let resource = match &prx_id {
                    Some(prx) if account != KNOWN_AFTER_APPLY => {
                        db_connect_resource(&observed.region, account, prx, &d.user)
                    }
                    _ => KNOWN_AFTER_APPLY.to_string(),
                };
                out.push(
                    Desired::new(Kind::RolePolicy, Names::db_connect_policy(&role))
                        .attr("policy", policy(json!([{"Effect": "Allow", "Action": ["rds-db:connect"], "Resource": [resource]}]))),
                );
            }
        }
    }

    // Functions and their aliases.
    for (name, f) in &stack.functions {
        let fname = stack.function_name(env, name);
        let (mut vars, secrets) = split_environment(stack, observed, &f.environment);
        // Lambda has no secret variables: the code reads the secret at start from the ARN (and JSON key) given.
        for (k, arn, key) in secrets {
            vars.insert(format!("{k}_SECRET_ARN"), arn);
            if let Some(key) = key {
                vars.insert(format!("{k}_SECRET_KEY"), key);
            }
        }
        if let Some(d) = &f.database {
            vars.insert(d.host_env.clone(), db_host(stack, observed, d));
        }
        let sha = artifacts
            .get(name)
            .map(|a| a.sha256.clone())
            .unwrap_or_else(|| KNOWN_AFTER_APPLY.into());
        let function = Desired::new(Kind::Function, fname.clone())
            .attr("runtime", f.runtime.clone())
            .attr("handler", f.handler.clone())
            .attr("memory_mb", f.memory_mb.to_string())
            .attr("timeout", f.timeout.as_secs().max(1).to_string())
            .attr("role", n.function_role(name))
            .attr("environment", canonical_map(&vars))
            .attr("subnets", subnets_attr.clone())
            .attr("security_groups", n.sg("fn"))
            .attr("code_sha256", sha)
            .attr(
                "reserved_concurrency",
                f.reserved_concurrency
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unreserved".into()),
            );
        // The alias must point at a version published from exactly this code and configuration; any pending
        // change to the function (other than concurrency, which is not versioned) means a new version.
        let live = observed.get(Kind::Function, &fname);
        let versioned_change = match live {
            None => true,
            Some(o) => function
                .attrs
                .iter()
                .any(|(k, v)| k != "reserved_concurrency" && o.attrs.get(k) != Some(v)),
        };
        let alias_target = if versioned_change {
            KNOWN_AFTER_APPLY
        } else {
            "published from current code and configuration"
        };
        out.push(function);
        out.push(
            Desired::new(Kind::Alias, format!("{fname}:{}", f.alias)).attr("version", alias_target),
        );
    }

    // The ECS service behind its load balancer.
    if let Some(svc) = &stack.service {
        out.push(Desired::new(Kind::EcsCluster, svc.cluster.clone()));
        out.push(
            Desired::new(Kind::LoadBalancer, n.load_balancer())
                .attr(
                    "scheme",
                    if svc.load_balancer.internal {
                        "internal"
                    } else {
                        "internet-facing"
                    },
                )
                .attr("subnets", subnets_attr.clone())
                .attr("security_groups", n.sg("lb"))
                .immutable(&["scheme"]),
        );
        out.push(
            Desired::new(Kind::TargetGroup, n.target_group())
                .attr("vpc", vpc.clone())
                .attr("port", svc.port.to_string())
                .attr("protocol", "HTTP")
                .attr("target_type", "ip")
                .attr("health_check_path", svc.health_check_path.clone())
                .immutable(&["vpc", "port", "protocol", "target_type"]),
        );
        out.push(
            Desired::new(
                Kind::Listener,
                format!("{}:{}", n.load_balancer(), svc.load_balancer.listener_port),
            )
            .attr("port", svc.load_balancer.listener_port.to_string())
            .attr("target_group", n.target_group())
            .immutable(&["port"]),
        );
        let (mut vars, secrets) = split_environment(stack, observed, &svc.environment);
        // ECS sets these from Secrets Manager when a task starts: `<arn>:<json-key>::`, or the whole secret.
        let secrets: BTreeMap<String, String> = secrets
            .into_iter()
            .map(|(k, arn, key)| match key {
                Some(key) => (k, format!("{arn}:{key}::")),
                None => (k, arn),
            })
            .collect();
        if let Some(d) = &svc.database {
            vars.insert(d.host_env.clone(), db_host(stack, observed, d));
            // What the stats service (stats-service/) reads, from the same block preflight budgets with;
            // values set in `service.environment` win.
            let mode = if d.connections == crate::model::Connections::PerRequest {
                "per-request"
            } else {
                "pool"
            };
            for (k, v) in [
                ("PORT", svc.port.to_string()),
                ("DB_USER", d.user.clone()),
                ("DB_NAME", stack.database.database_name.clone()),
                ("DB_MODE", mode.to_string()),
                ("DB_POOL_SIZE", d.pool_size.to_string()),
            ] {
                if !secrets.contains_key(k) {
                    vars.entry(k.to_string()).or_insert(v);
                }
            }
        }
        let family = n.task_family(&svc.name);
        let task = Desired::new(Kind::TaskDefinition, family.clone())
            .attr("image", svc.image.clone())
            .attr("cpu", svc.cpu.to_string())
            .attr("memory_mb", svc.memory_mb.to_string())
            .attr("port", svc.port.to_string())
            .attr("environment", canonical_map(&vars))
            .attr("secrets", canonical_map(&secrets))
            .attr("task_role", n.task_role());
        let task_current = observed
            .get(Kind::TaskDefinition, &family)
            .filter(|o| o.attrs == task.attrs);
        let revision = task_current
            .and_then(|o| o.output("revision_ref"))
            .unwrap_or(KNOWN_AFTER_APPLY)
            .to_string();
        out.push(task);
        out.push(
            Desired::new(Kind::EcsService, svc.name.clone())
                .attr("cluster", svc.cluster.clone())
                .attr("task_definition", revision)
                .attr("desired_count", svc.desired_count.to_string())
                .attr("subnets", subnets_attr.clone())
                .attr("security_groups", n.sg("svc"))
                .attr("target_group", n.target_group())
                .immutable(&["cluster", "target_group"]),
        );
    }

    // Alarms.
    let ctx = AlarmContext {
        max_connections: max_connections_estimate(stack),
        load_balancer_dimension: observed
            .output(Kind::LoadBalancer, &n.load_balancer(), "dimension")
            .map(str::to_string),
        target_group_dimension: observed
            .output(Kind::TargetGroup, &n.target_group(), "dimension")
            .map(str::to_string),
        account_concurrency: stack.aws.lambda_concurrency_limit,
    };
    for a in desired_alarms(stack, env, &ctx) {
        let dims: BTreeMap<String, String> = a.dimensions.clone();
        out.push(
            Desired::new(Kind::Alarm, a.name.clone())
                .attr("metric", format!("{}/{}", a.namespace, a.metric))
                .attr("dimensions", canonical_map(&dims))
                .attr("statistic", a.statistic.clone())
                .attr("comparison", comparison_name(a.comparison))
                .attr("threshold", format_number(a.threshold))
                .attr("period", a.period_secs.to_string())
                .attr("evaluation_periods", a.evaluation_periods.to_string())
                .attr("datapoints_to_alarm", a.datapoints_to_alarm.to_string())
                .attr("actions", join_sorted(a.actions.iter().cloned()))
                .attr("description", a.description.clone()),
        );
    }
    out
}

/// CloudWatch's name for a comparison.
pub fn comparison_name(c: crate::model::Comparison) -> &'static str {
    use crate::model::Comparison::*;
    match c {
        Greater => "GreaterThanThreshold",
        GreaterOrEqual => "GreaterThanOrEqualToThreshold",
        Less => "LessThanThreshold",
        LessOrEqual => "LessThanOrEqualToThreshold",
    }
}

/// Numbers as CloudWatch echoes them back: `90` not `90.0`.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Key, ObservedResource};
    use crate::loader::load_file;

    fn shipped(env: &str) -> StackFile {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        load_file(&path, Some(env), &|_: &str| None).unwrap().spec
    }

    #[test]
    fn proxy_link_is_built_from_observed_proxy() {
        let stack = shipped("local");
        let mut observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        let before = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = before
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert!(f.get("environment").contains(KNOWN_AFTER_APPLY), "{f:?}");

        let mut proxy = ObservedResource {
            id: "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc".into(),
            ..Default::default()
        };
        proxy.outputs.insert(
            "endpoint".into(),
            "live-stats-proxy.proxy-x.us-east-1.rds.amazonaws.com".into(),
        );
        observed
            .resources
            .insert(Key::new(Kind::Proxy, "live-stats-proxy"), proxy);
        let after = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = after
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert!(
            f.get("environment")
                .contains("\"DB_HOST\":\"live-stats-proxy.proxy-x.us-east-1.rds.amazonaws.com\""),
            "{f:?}"
        );
        assert_eq!(f.get("security_groups"), "live-stats-local-fn");
        let grant = after
            .iter()
            .find(|d| {
                d.key
                    == Key::new(
                        Kind::RolePolicy,
                        "live-stats-local-fn-stats-api/rds-db-connect",
                    )
            })
            .unwrap();
        assert!(
            grant
                .get("policy")
                .contains("arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/stats_api"),
            "{grant:?}"
        );
        let proxy_sg = after
            .iter()
            .find(|d| d.key == Key::new(Kind::Ingress, "live-stats-local-proxy"))
            .unwrap();
        assert_eq!(
            proxy_sg.get("rules"),
            "tcp:5432:sg:live-stats-local-fn,tcp:5432:sg:live-stats-local-svc"
        );
    }

    #[test]
    fn secret_references_reach_lambda_and_ecs_the_aws_native_way() {
        use crate::model::{EnvValue, SecretRef};
        let reference = |secret: &str, key: Option<&str>| {
            EnvValue::Secret(SecretRef {
                secret: secret.into(),
                key: key.map(str::to_string),
            })
        };
        let mut stack = shipped("local");
        let api = stack.functions.get_mut("stats-api").unwrap();
        api.environment.insert(
            "API_TOKEN".into(),
            reference("live-stats/api-token", Some("token")),
        );
        let ingester = stack.functions.get_mut("log-ingester").unwrap();
        // The credentials secret, which deploy itself creates: known after apply, not missing.
        ingester.environment.insert(
            "DB_PASSWORD".into(),
            reference("live-stats/db-master", Some("password")),
        );
        let svc = stack.service.as_mut().unwrap();
        svc.environment
            .insert("API_TOKEN".into(), reference("live-stats/api-token", None));
        svc.environment.insert(
            "DB_USER".into(),
            reference("live-stats/api-token", Some("user")),
        );
        assert_eq!(
            referenced_secrets(&stack),
            vec!["live-stats/api-token", "live-stats/db-master"]
        );

        let arn =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:live-stats/api-token-AbCdEf";
        let mut observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        let mut secret = ObservedResource {
            id: arn.into(),
            ..Default::default()
        };
        secret.outputs.insert("arn".into(), arn.into());
        observed
            .referenced
            .insert(Key::new(Kind::Secret, "live-stats/api-token"), secret);
        let all = desired(&stack, "local", &observed, &BTreeMap::new());
        let get = |kind: Kind, name: &str| {
            all.iter()
                .find(|d| d.key == Key::new(kind, name))
                .unwrap_or_else(|| panic!("{kind:?} {name}"))
        };
        let env: BTreeMap<String, String> = serde_json::from_str(
            get(Kind::Function, "live-stats-local-stats-api").get("environment"),
        )
        .unwrap();
        assert_eq!(env["API_TOKEN_SECRET_ARN"], arn);
        assert_eq!(env["API_TOKEN_SECRET_KEY"], "token");
        assert!(!env.contains_key("API_TOKEN"), "{env:?}");
        let policy = get(Kind::Role, "live-stats-local-fn-stats-api").get("policy");
        assert!(
            policy.contains(&format!(
                r#"{{"Action":["secretsmanager:GetSecretValue"],"Effect":"Allow","Resource":["{arn}"]}}"#
            )),
            "{policy}"
        );
        let ingester_env = get(Kind::Function, "live-stats-local-log-ingester").get("environment");
        assert!(
            ingester_env.contains(&format!(
                r#""DB_PASSWORD_SECRET_ARN":"{KNOWN_AFTER_APPLY}""#
            )),
            "{ingester_env}"
        );

        let task = get(Kind::TaskDefinition, "live-stats-local-stats-service");
        assert_eq!(
            task.get("secrets"),
            format!(r#"{{"API_TOKEN":"{arn}","DB_USER":"{arn}:user::"}}"#)
        );
        // A variable delivered as a secret is not also set in plain text by the service defaults.
        assert!(!task.get("environment").contains("DB_USER"), "{task:?}");
        assert!(get(Kind::Role, "live-stats-local-task")
            .get("policy")
            .contains("secretsmanager:GetSecretValue"),);
        // Without references, no grant and an empty `secrets`.
        let plain = desired(&shipped("local"), "local", &observed, &BTreeMap::new());
        assert!(plain.iter().all(
            |d| !d.get("policy").contains("secretsmanager:GetSecretValue")
                || d.key.name == "live-stats-local-proxy"
        ));

        // A secret that does not exist is marked, and the plan blocks what uses it.
        observed.referenced.clear();
        let all = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = all
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert_eq!(
            missing_secret_in(f.get("environment")),
            Some("live-stats/api-token")
        );
        let owner = crate::inventory::Owner {
            stack: "live-stats".into(),
            env: "local".into(),
        };
        let p = crate::plan::plan(&owner, &all, &observed);
        let blocked: Vec<String> = p.blocked().iter().map(|c| c.key.to_string()).collect();
        assert!(
            blocked.contains(&"lambda_function.live-stats-local-stats-api".to_string())
                && blocked.contains(&"task_definition.live-stats-local-stats-service".to_string()),
            "{blocked:?}"
        );
        assert!(!blocked.contains(&"lambda_function.live-stats-local-log-ingester".to_string()));
    }

    #[test]
    fn helpers() {
        assert_eq!(
            proxy_resource_id("arn:aws:rds:eu-west-1:1:db-proxy:prx-123"),
            Some("prx-123")
        );
        assert_eq!(proxy_resource_id("arn:aws:rds:eu-west-1:1:cluster:c"), None);
        assert_eq!(format_number(90.0), "90");
        assert_eq!(format_number(0.5), "0.5");
    }
}
