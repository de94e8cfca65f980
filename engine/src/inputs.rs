//! Adapter inputs from the desired state: every attribute the stack wants, read through `Desired::get` and
//! parsed with an error naming the resource and attribute (never a silent default), and every name resolved to
//! the id or ARN that exists by now. Pure: no AWS calls, so each builder is unit-tested with tables.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use statsctl_aws::{cloudwatch, ec2, ecs, elb, iam, lambda, rds, secrets, tags_for, AwsError};
use statsctl_core::inventory::{Desired, Kind, Observed, Owner};

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

/// A number attribute, parsed or refused.
fn num<T>(d: &Desired, attr: &str) -> Built<T>
where
    T: FromStr,
    T::Err: Display,
{
    let v = d.get(attr);
    v.parse()
        .map_err(|e| bad(d, attr, format!("is `{v}`, not a number ({e})")))
}

fn flag(d: &Desired, attr: &str) -> Built<bool> {
    match d.get(attr) {
        "true" => Ok(true),
        "false" => Ok(false),
        v => Err(bad(d, attr, format!("is `{v}`, not true or false"))),
    }
}

/// A JSON object of strings (environment variables, dimensions); empty means none.
fn map(d: &Desired, attr: &str) -> Built<BTreeMap<String, String>> {
    match d.get(attr) {
        "" => Ok(BTreeMap::new()),
        v => serde_json::from_str(v)
            .map_err(|e| bad(d, attr, format!("is not a JSON object of strings ({e})"))),
    }
}

/// A canonical comma list.
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Names → physical ids; a name statsctl does not know is already an id (an existing subnet given by id).
fn ids(observed: &Observed, kind: Kind, names: &str) -> Vec<String> {
    list(names)
        .into_iter()
        .map(|n| observed.id_of(kind, &n).map(str::to_string).unwrap_or(n))
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

fn role_arn(observed: &Observed, d: &Desired, attr: &str) -> Built<String> {
    let role = d.get(attr);
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

pub fn vpc(d: &Desired) -> String {
    d.get("cidr").to_string()
}

pub fn subnet(
    d: &Desired,
    observed: &Observed,
    vpc_name: &str,
    s: Scope,
) -> Built<ec2::SubnetInput> {
    Ok(ec2::SubnetInput {
        name: d.key.name.clone(),
        vpc_id: needed(observed, d, Kind::Vpc, vpc_name)?.to_string(),
        cidr: d.get("cidr").into(),
        availability_zone: d.get("availability_zone").into(),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn group(d: &Desired, observed: &Observed, s: Scope) -> Built<ec2::GroupInput> {
    Ok(ec2::GroupInput {
        name: d.key.name.clone(),
        vpc_id: needed(observed, d, Kind::Vpc, d.get("vpc"))?.to_string(),
        description: format!("{}: {}", s.label(), d.key.name),
        tags: s.tags_of(&d.key.name),
    })
}

/// `tcp:5432:sg:NAME` or `tcp:443:cidr:0.0.0.0/0` (port `all`: every port) → a rule with group names
/// resolved to ids.
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

/// The rules to revoke (live, not wanted: drift) and to authorize (wanted, not live). `wanted` is `None` to
/// remove every rule (the group is being deleted).
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
    let want = list(wanted.map(|d| d.get("rules")).unwrap_or_default());
    let have = list(live.unwrap_or_default());
    let rules = |from: &[String], not_in: &[String]| {
        from.iter()
            .filter(|r| !not_in.contains(r))
            .map(|r| rule(r, observed))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::new(what(), e))
    };
    Ok(ec2::IngressInput {
        name: name.to_string(),
        revoke: rules(&have, &want)?,
        authorize: rules(&want, &have)?,
        group_id,
    })
}

pub fn role(d: &Desired, s: Scope) -> iam::RoleInput {
    iam::RoleInput {
        name: d.key.name.clone(),
        path: iam::path_for(s.owner),
        trusted_service: d.get("trust").into(),
        policy: d.get("policy").into(),
        tags: s.tags_of(&d.key.name),
    }
}

pub fn secret(d: &Desired, username: &str, s: Scope) -> secrets::SecretInput {
    secrets::SecretInput {
        name: d.key.name.clone(),
        username: username.to_string(),
        description: format!(
            "master credentials of the statsctl stack {}/{}",
            s.owner.stack, s.owner.env
        ),
        tags: s.tags_of(&d.key.name),
    }
}

pub fn subnet_group(d: &Desired, observed: &Observed, s: Scope) -> rds::SubnetGroupInput {
    rds::SubnetGroupInput {
        name: d.key.name.clone(),
        description: s.label(),
        subnet_ids: ids(observed, Kind::Subnet, d.get("subnets")),
        tags: s.tags_of(&d.key.name),
    }
}

pub fn cluster(
    d: &Desired,
    observed: &Observed,
    credentials_secret: &str,
    s: Scope,
) -> Built<rds::ClusterInput> {
    let serverless_acu = match d.get("serverless_acu") {
        "" => None,
        v => {
            let range = v
                .split_once('-')
                .and_then(|(min, max)| Some((min.parse::<f64>().ok()?, max.parse::<f64>().ok()?)));
            Some(range.ok_or_else(|| bad(d, "serverless_acu", format!("is `{v}`, not MIN-MAX")))?)
        }
    };
    Ok(rds::ClusterInput {
        id: d.key.name.clone(),
        engine: d.get("engine").into(),
        engine_version: d.get("engine_version").into(),
        database_name: d.get("database_name").into(),
        master_username: d.get("master_username").into(),
        credentials_secret: credentials_secret.to_string(),
        subnet_group: d.get("subnet_group").into(),
        security_group_ids: ids(observed, Kind::SecurityGroup, d.get("security_groups")),
        serverless_acu,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn instance(d: &Desired, s: Scope) -> Built<rds::InstanceInput> {
    Ok(rds::InstanceInput {
        id: d.key.name.clone(),
        cluster: d.get("cluster").into(),
        instance_class: d.get("instance_class").into(),
        publicly_accessible: flag(d, "publicly_accessible")?,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn proxy(d: &Desired, observed: &Observed, s: Scope) -> Built<rds::ProxyInput> {
    let iam_auth = match d.get("iam_auth") {
        "REQUIRED" => true,
        "DISABLED" => false,
        v => {
            return Err(bad(
                d,
                "iam_auth",
                format!("is `{v}`, not REQUIRED or DISABLED"),
            ))
        }
    };
    Ok(rds::ProxyInput {
        name: d.key.name.clone(),
        role_arn: role_arn(observed, d, "role")?,
        secret_arn: d.get("secret").into(),
        iam_auth,
        require_tls: flag(d, "require_tls")?,
        idle_client_timeout_s: num(d, "idle_client_timeout")?,
        subnet_ids: ids(observed, Kind::Subnet, d.get("subnets")),
        security_group_ids: ids(observed, Kind::SecurityGroup, d.get("security_groups")),
        tags: s.tags_of(&d.key.name),
    })
}

/// The proxy a `proxy/…` resource name belongs to.
pub fn proxy_of(d: &Desired) -> &str {
    d.key.name.split('/').next().unwrap_or_default()
}

pub fn pool(d: &Desired) -> Built<rds::PoolInput> {
    Ok(rds::PoolInput {
        proxy: proxy_of(d).to_string(),
        max_connections_percent: num(d, "max_connections_percent")?,
        connection_borrow_timeout_s: num(d, "connection_borrow_timeout")?,
        // Only managed when the stack sets it.
        max_idle_connections_percent: match d.get("max_idle_connections_percent") {
            "" => None,
            _ => Some(num(d, "max_idle_connections_percent")?),
        },
    })
}

pub fn function(d: &Desired, observed: &Observed, s: Scope) -> Built<lambda::FunctionInput> {
    Ok(lambda::FunctionInput {
        name: d.key.name.clone(),
        runtime: d.get("runtime").into(),
        handler: d.get("handler").into(),
        role_arn: role_arn(observed, d, "role")?,
        memory_mb: num(d, "memory_mb")?,
        timeout_s: num(d, "timeout")?,
        environment: map(d, "environment")?,
        subnet_ids: ids(observed, Kind::Subnet, d.get("subnets")),
        security_group_ids: ids(observed, Kind::SecurityGroup, d.get("security_groups")),
        tags: s.tags_of(&d.key.name),
    })
}

/// `unreserved` → `None`, else the number of executions to reserve.
pub fn reserved_concurrency(d: &Desired) -> Built<Option<i32>> {
    match d.get("reserved_concurrency") {
        "unreserved" => Ok(None),
        _ => num(d, "reserved_concurrency").map(Some),
    }
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
    Ok(ecs::TaskInput {
        family: d.key.name.clone(),
        container_name: container_name.to_string(),
        image: d.get("image").into(),
        cpu: num::<u32>(d, "cpu")?.to_string(),
        memory_mb: num::<u32>(d, "memory_mb")?.to_string(),
        port: num(d, "port")?,
        role_arn: role_arn(observed, d, "task_role")?,
        environment: map(d, "environment")?,
        secrets: map(d, "secrets")?,
        tags: s.tags_of(&d.key.name),
    })
}

pub fn service(
    d: &Desired,
    observed: &Observed,
    container: (&str, u16),
    s: Scope,
) -> Built<ecs::ServiceInput> {
    Ok(ecs::ServiceInput {
        name: d.key.name.clone(),
        cluster: d.get("cluster").into(),
        task_definition: d.get("task_definition").into(),
        desired_count: num(d, "desired_count")?,
        subnet_ids: ids(observed, Kind::Subnet, d.get("subnets")),
        security_group_ids: ids(observed, Kind::SecurityGroup, d.get("security_groups")),
        target_group_arn: needed(observed, d, Kind::TargetGroup, d.get("target_group"))?
            .to_string(),
        container_name: container.0.to_string(),
        container_port: i32::from(container.1),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn load_balancer(d: &Desired, observed: &Observed, s: Scope) -> elb::LoadBalancerInput {
    elb::LoadBalancerInput {
        name: d.key.name.clone(),
        scheme: d.get("scheme").into(),
        subnet_ids: ids(observed, Kind::Subnet, d.get("subnets")),
        security_group_ids: ids(observed, Kind::SecurityGroup, d.get("security_groups")),
        tags: s.tags_of(&d.key.name),
    }
}

pub fn target_group(d: &Desired, observed: &Observed, s: Scope) -> Built<elb::TargetGroupInput> {
    Ok(elb::TargetGroupInput {
        name: d.key.name.clone(),
        port: num(d, "port")?,
        vpc_id: observed
            .id_of(Kind::Vpc, d.get("vpc"))
            .unwrap_or_default()
            .to_string(),
        health_check_path: d.get("health_check_path").into(),
        tags: s.tags_of(&d.key.name),
    })
}

pub fn listener(d: &Desired, observed: &Observed) -> Built<elb::ListenerInput> {
    let lb = d
        .key
        .name
        .rsplit_once(':')
        .map_or(d.key.name.as_str(), |(l, _)| l);
    Ok(elb::ListenerInput {
        name: d.key.name.clone(),
        load_balancer_arn: needed(observed, d, Kind::LoadBalancer, lb)?.to_string(),
        port: num(d, "port")?,
        target_group_arn: needed(observed, d, Kind::TargetGroup, d.get("target_group"))?
            .to_string(),
    })
}

pub fn alarm(d: &Desired) -> Built<cloudwatch::AlarmInput> {
    // Namespaces contain a slash themselves (`AWS/Lambda`): the metric is after the last one.
    let metric = d.get("metric");
    let (namespace, metric) = metric
        .rsplit_once('/')
        .ok_or_else(|| bad(d, "metric", format!("is `{metric}`, not NAMESPACE/METRIC")))?;
    Ok(cloudwatch::AlarmInput {
        name: d.key.name.clone(),
        description: d.get("description").into(),
        namespace: namespace.into(),
        metric: metric.into(),
        dimensions: map(d, "dimensions")?,
        statistic: d.get("statistic").into(),
        comparison: d.get("comparison").into(),
        threshold: num(d, "threshold")?,
        period_s: num(d, "period")?,
        evaluation_periods: num(d, "evaluation_periods")?,
        datapoints_to_alarm: num(d, "datapoints_to_alarm")?,
        actions: list(d.get("actions")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::ObservedResource;

    fn owner() -> Owner {
        Owner {
            stack: "live".into(),
            env: "dev".into(),
        }
    }

    /// A world where the role, subnets, groups, VPC, load balancer and target group exist.
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
        add(Kind::Subnet, "s-a", "subnet-1", &[]);
        add(Kind::Subnet, "s-b", "subnet-2", &[]);
        add(Kind::SecurityGroup, "sg-fn", "sg-111", &[]);
        add(Kind::SecurityGroup, "sg-db", "sg-222", &[]);
        add(Kind::Vpc, "vpc", "vpc-9", &[]);
        add(Kind::LoadBalancer, "lb", "arn:lb", &[]);
        add(Kind::TargetGroup, "tg", "arn:tg", &[]);
        o
    }

    fn function_desired() -> Desired {
        Desired::new(Kind::Function, "live-dev-api")
            .attr("runtime", "python3.12")
            .attr("handler", "app.handler")
            .attr("memory_mb", "256")
            .attr("timeout", "10")
            .attr("role", "fn-role")
            .attr("environment", r#"{"A":"1"}"#)
            .attr("subnets", "s-a,s-b")
            .attr("security_groups", "sg-fn")
            .attr("reserved_concurrency", "unreserved")
    }

    #[test]
    fn a_function_input_resolves_names_and_parses_numbers() {
        let tags = BTreeMap::from([("team".to_string(), "stats".to_string())]);
        let o = owner();
        let s = Scope {
            owner: &o,
            tags: &tags,
        };
        let f = function(&function_desired(), &observed(), s).unwrap();
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
        assert_eq!(reserved_concurrency(&function_desired()).unwrap(), None);
        let reserved = function_desired().attr("reserved_concurrency", "50");
        assert_eq!(reserved_concurrency(&reserved).unwrap(), Some(50));
    }

    #[test]
    fn bad_values_are_errors_naming_the_resource_and_attribute() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = Scope {
            owner: &o,
            tags: &tags,
        };
        let obs = observed();
        let proxy_desired = Desired::new(Kind::Proxy, "prx")
            .attr("role", "fn-role")
            .attr("iam_auth", "REQUIRED")
            .attr("require_tls", "true")
            .attr("idle_client_timeout", "1800");
        let alarm_desired = Desired::new(Kind::Alarm, "live-dev-errors")
            .attr("metric", "AWS/Lambda/Errors")
            .attr("threshold", "1")
            .attr("period", "60")
            .attr("evaluation_periods", "5")
            .attr("datapoints_to_alarm", "5");
        let cases = [
            (
                "memory not a number",
                function(&function_desired().attr("memory_mb", "lots"), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "`memory_mb` is `lots`",
            ),
            (
                "memory missing",
                function(&function_desired().attr("memory_mb", ""), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "`memory_mb` is ``",
            ),
            (
                "timeout not a whole number",
                function(&function_desired().attr("timeout", "1.5"), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "`timeout`",
            ),
            (
                "environment not JSON",
                function(&function_desired().attr("environment", "A=1"), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "`environment` is not a JSON object",
            ),
            (
                "reserved concurrency",
                reserved_concurrency(&function_desired().attr("reserved_concurrency", "many"))
                    .map(drop),
                "lambda_function.live-dev-api",
                "`reserved_concurrency` is `many`",
            ),
            (
                "role unknown",
                function(&function_desired().attr("role", "nobody"), &obs, s).map(drop),
                "lambda_function.live-dev-api",
                "role `nobody` does not exist",
            ),
            (
                "idle timeout",
                proxy(
                    &proxy_desired.clone().attr("idle_client_timeout", "30m"),
                    &obs,
                    s,
                )
                .map(drop),
                "db_proxy.prx",
                "`idle_client_timeout` is `30m`",
            ),
            (
                "tls flag",
                proxy(&proxy_desired.attr("require_tls", "yes"), &obs, s).map(drop),
                "db_proxy.prx",
                "`require_tls` is `yes`",
            ),
            (
                "alarm period",
                alarm(&alarm_desired.clone().attr("period", "1m")).map(drop),
                "alarm.live-dev-errors",
                "`period` is `1m`",
            ),
            (
                "alarm metric",
                alarm(&alarm_desired.attr("metric", "Errors")).map(drop),
                "alarm.live-dev-errors",
                "`metric` is `Errors`",
            ),
            (
                "pool percent",
                pool(
                    &Desired::new(Kind::ProxyTargetGroup, "prx/default")
                        .attr("max_connections_percent", "ninety")
                        .attr("connection_borrow_timeout", "120"),
                )
                .map(drop),
                "db_proxy_target_group.prx/default",
                "`max_connections_percent` is `ninety`",
            ),
        ];
        for (name, got, resource, attr) in cases {
            let e = got.expect_err(name);
            let text = e.to_string();
            assert!(text.contains(resource), "{name}: {text}");
            assert!(text.contains(attr), "{name}: {text}");
            assert!(e.hint.is_some(), "{name}: no hint");
        }
    }

    #[test]
    fn other_inputs_from_desired_attributes() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = Scope {
            owner: &o,
            tags: &tags,
        };
        let obs = observed();
        let p = pool(
            &Desired::new(Kind::ProxyTargetGroup, "prx/default")
                .attr("max_connections_percent", "90")
                .attr("connection_borrow_timeout", "120"),
        )
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
            &Desired::new(Kind::DbCluster, "db")
                .attr("security_groups", "sg-db")
                .attr("serverless_acu", "0.5-4"),
            &obs,
            "db-creds",
            s,
        )
        .unwrap();
        assert_eq!(c.serverless_acu, Some((0.5, 4.0)));
        assert_eq!(c.security_group_ids, vec!["sg-222".to_string()]);
        assert_eq!(c.credentials_secret, "db-creds");
        let bad_acu = cluster(
            &Desired::new(Kind::DbCluster, "db").attr("serverless_acu", "4"),
            &obs,
            "db-creds",
            s,
        );
        assert!(bad_acu
            .unwrap_err()
            .to_string()
            .contains("`serverless_acu` is `4`"));
        let l = listener(
            &Desired::new(Kind::Listener, "lb:80")
                .attr("port", "80")
                .attr("target_group", "tg"),
            &obs,
        )
        .unwrap();
        assert_eq!(
            (
                l.load_balancer_arn.as_str(),
                l.port,
                l.target_group_arn.as_str()
            ),
            ("arn:lb", 80, "arn:tg")
        );
        let a = alarm(
            &Desired::new(Kind::Alarm, "a")
                .attr("metric", "AWS/Lambda/Errors")
                .attr("dimensions", r#"{"FunctionName":"f"}"#)
                .attr("threshold", "0.5")
                .attr("period", "60")
                .attr("evaluation_periods", "5")
                .attr("datapoints_to_alarm", "3")
                .attr("actions", "arn:a,arn:b"),
        )
        .unwrap();
        assert_eq!(
            (a.namespace.as_str(), a.metric.as_str()),
            ("AWS/Lambda", "Errors")
        );
        assert_eq!(a.threshold.to_string(), "0.5");
        assert_eq!(a.actions, vec!["arn:a".to_string(), "arn:b".to_string()]);
    }

    #[test]
    fn the_service_and_its_task_definition() {
        let o = owner();
        let tags = BTreeMap::new();
        let s = Scope {
            owner: &o,
            tags: &tags,
        };
        let mut obs = observed();
        obs.resources.insert(
            statsctl_core::inventory::Key::new(Kind::Role, "task-role"),
            ObservedResource {
                id: "task-role".into(),
                outputs: BTreeMap::from([("arn".to_string(), "arn:task-role".to_string())]),
                ..Default::default()
            },
        );
        let task_desired = Desired::new(Kind::TaskDefinition, "live-dev-stats")
            .attr("image", "stats:1")
            .attr("cpu", "256")
            .attr("memory_mb", "512")
            .attr("port", "8080")
            .attr("environment", r#"{"DB_MODE":"pool"}"#)
            .attr("secrets", r#"{"TOKEN":"arn:secret:t:key::"}"#)
            .attr("task_role", "task-role");
        let t = task(&task_desired, &obs, "stats", s).unwrap();
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
        let e = task(&task_desired.attr("port", "http"), &obs, "stats", s).unwrap_err();
        assert!(
            e.to_string().contains("task_definition.live-dev-stats"),
            "{e}"
        );
        assert!(e.to_string().contains("`port` is `http`"), "{e}");

        let service_desired = Desired::new(Kind::EcsService, "stats")
            .attr("cluster", "live")
            .attr("task_definition", "live-dev-stats:3")
            .attr("desired_count", "2")
            .attr("subnets", "s-a")
            .attr("security_groups", "sg-fn")
            .attr("target_group", "tg");
        let svc = service(&service_desired, &obs, ("stats", 8080), s).unwrap();
        assert_eq!(
            (
                svc.desired_count,
                svc.target_group_arn.as_str(),
                svc.container_port
            ),
            (2, "arn:tg", 8080)
        );
        assert_eq!(svc.subnet_ids, vec!["subnet-1".to_string()]);
        let e = service(
            &service_desired.attr("desired_count", "-"),
            &obs,
            ("stats", 8080),
            s,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ecs_service.stats"), "{e}");
        assert!(e.to_string().contains("`desired_count` is `-`"), "{e}");
    }

    #[test]
    fn ingress_revokes_drift_and_authorizes_what_is_missing() {
        let obs = observed();
        let d = Desired::new(Kind::Ingress, "sg-db")
            .attr("rules", "tcp:5432:sg:sg-fn,tcp:80:cidr:10.0.0.0/16");
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
        let none = ingress("sg-db", None, Some("tcp:5432:sg:sg-fn"), &obs).unwrap();
        assert_eq!(
            none.revoke[0].source,
            ec2::Source::Group("sg-111".into()),
            "group names resolve to ids"
        );
        assert!(none.authorize.is_empty());
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
