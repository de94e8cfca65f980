//! `proxy.attached`: every client the stack routes `via: proxy` really is attached — all four facets of
//! aws-facts.md §1 (host variable = proxy endpoint, subnets in the proxy's VPC, proxy security group admits it on
//! 5432, role allows `rds-db:connect` on this proxy for its user) — and the proxy and its targets are available.

use std::collections::BTreeMap;

use statsctl_core::desired::{db_connect_resource, proxy_resource_id, Names, POSTGRES_PORT};
use statsctl_core::inventory::{Kind, Observed};
use statsctl_core::model::{DbAccess, Via};

use crate::{Facts, Finding, Status};

pub const ID: &str = "proxy.attached";

/// A client as deployed: where its host variable points, where it runs, which groups and role it has.
struct Client<'a> {
    label: String,
    db: &'a DbAccess,
    environment: BTreeMap<String, String>,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    role: String,
    fix_target: String,
}

fn split(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// Where a client's host variable leads, resolved against the live endpoints. The one place that decides it:
/// `proxy.attached` names it, `capacity.connections` budgets by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Proxy,
    Writer,
    Reader,
    /// The endpoint of this DB instance.
    Instance(String),
    /// The variable is not set (or empty).
    Unset,
    /// A host that is none of the stack's endpoints.
    Other,
}

impl Route {
    /// How the client reaches the database: through the proxy, directly, or unknown (variable not set).
    pub fn via(&self) -> Option<Via> {
        match self {
            Route::Proxy => Some(Via::Proxy),
            Route::Writer | Route::Reader | Route::Instance(_) | Route::Other => Some(Via::Direct),
            Route::Unset => None,
        }
    }

    /// The endpoint in words.
    pub fn describe(&self, host: &str) -> String {
        match self {
            Route::Proxy => format!("the proxy endpoint `{host}`"),
            Route::Writer => format!("the cluster writer endpoint `{host}`"),
            Route::Reader => format!("the cluster reader endpoint `{host}`"),
            Route::Instance(i) => format!("the instance endpoint of `{i}` (`{host}`)"),
            Route::Unset => "nothing (the variable is not set)".into(),
            Route::Other => format!("`{host}`, which is not the proxy"),
        }
    }
}

/// Resolves a host against the proxy's endpoint (empty when the proxy is unknown) and the cluster's endpoints.
pub fn resolve_route(host: &str, o: &Observed, cluster: &str, proxy_endpoint: &str) -> Route {
    if host.is_empty() {
        return Route::Unset;
    }
    if host == proxy_endpoint {
        return Route::Proxy;
    }
    if o.output(Kind::DbCluster, cluster, "endpoint") == Some(host) {
        return Route::Writer;
    }
    if o.output(Kind::DbCluster, cluster, "reader_endpoint") == Some(host) {
        return Route::Reader;
    }
    for (k, r) in &o.resources {
        if k.kind == Kind::DbInstance && r.output("endpoint") == Some(host) {
            return Route::Instance(k.name.clone());
        }
    }
    Route::Other
}

/// One database client's live route: its host variable, the value, and where that leads.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRoute {
    pub host_env: String,
    pub host: String,
    pub route: Route,
}

/// The live route of every client with database access that is deployed, keyed by the stack's name for it
/// (function key, service name). Clients not deployed are absent.
pub fn live_routes(facts: &Facts) -> BTreeMap<String, LiveRoute> {
    let stack = facts.stack;
    let o = facts.observed;
    let proxy_endpoint = stack
        .proxy
        .as_ref()
        .and_then(|p| o.output(Kind::Proxy, &p.name, "endpoint"))
        .unwrap_or_default();
    let cluster = &stack.database.cluster_id;
    let env_of = |r: Option<&statsctl_core::inventory::ObservedResource>| {
        r.and_then(|r| r.attrs.get("environment"))
            .and_then(|e| serde_json::from_str::<BTreeMap<String, String>>(e).ok())
    };
    let mut out = BTreeMap::new();
    let mut add = |key: String, host_env: &str, env: Option<BTreeMap<String, String>>| {
        let Some(env) = env else { return };
        let host = env.get(host_env).cloned().unwrap_or_default();
        let route = resolve_route(&host, o, cluster, proxy_endpoint);
        out.insert(
            key,
            LiveRoute {
                host_env: host_env.to_string(),
                host,
                route,
            },
        );
    };
    for (name, f) in &stack.functions {
        let Some(db) = &f.database else { continue };
        let live = o.get(Kind::Function, &stack.function_name(facts.env, name));
        add(name.clone(), &db.host_env, env_of(live));
    }
    if let Some(svc) = &stack.service {
        if let Some(db) = &svc.database {
            let n = Names::new(stack, facts.env);
            let task = statsctl_core::desired::service::live_service(stack, facts.env, o)
                .and_then(|_| o.get(Kind::TaskDefinition, &n.task_family(&svc.name)));
            add(svc.name.clone(), &db.host_env, env_of(task));
        }
    }
    out
}

/// Whether a policy document allows `rds-db:connect` on `resource`.
pub fn allows_connect(policy: &str, resource: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let list = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => vec![],
    };
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && list(&s["Action"])
                .iter()
                .any(|a| matches!(a.as_str(), "rds-db:connect" | "rds-db:*" | "*"))
            && list(&s["Resource"])
                .iter()
                .any(|r| wildcard_match(r, resource))
    })
}

fn wildcard_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.starts_with(head)
                && (tail.is_empty()
                    || (s.len() >= head.len()
                        && (head.len()..=s.len()).any(|i| wildcard_match(tail, &s[i..]))))
        }
    }
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let stack = facts.stack;
    let o = facts.observed;
    let Some(proxy) = &stack.proxy else {
        return vec![Finding::new(ID, Status::Skip, "the stack has no proxy")];
    };
    let n = Names::new(stack, facts.env);
    let mut clients = Vec::new();
    for (name, f) in &stack.functions {
        let Some(db) = f.database.as_ref().filter(|d| d.via == Via::Proxy) else {
            continue;
        };
        let fname = stack.function_name(facts.env, name);
        let live = o.get(Kind::Function, &fname);
        clients.push((
            live.is_some(),
            Client {
                label: format!("function {name}"),
                db,
                environment: live
                    .and_then(|r| r.attrs.get("environment"))
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default(),
                subnets: split(live.and_then(|r| r.attrs.get("subnets"))),
                security_groups: split(live.and_then(|r| r.attrs.get("security_groups"))),
                role: live
                    .and_then(|r| r.attrs.get("role"))
                    .cloned()
                    .unwrap_or_default(),
                fix_target: fname,
            },
        ));
    }
    if let Some(svc) = &stack.service {
        if let Some(db) = svc.database.as_ref().filter(|d| d.via == Via::Proxy) {
            let live =
                statsctl_core::desired::service::live_service(stack, facts.env, o).map(|(_, r)| r);
            let task = o.get(Kind::TaskDefinition, &n.task_family(&svc.name));
            clients.push((
                live.is_some() && task.is_some(),
                Client {
                    label: format!("service {}", svc.name),
                    db,
                    environment: task
                        .and_then(|r| r.attrs.get("environment"))
                        .and_then(|e| serde_json::from_str(e).ok())
                        .unwrap_or_default(),
                    subnets: split(live.and_then(|r| r.attrs.get("subnets"))),
                    security_groups: split(live.and_then(|r| r.attrs.get("security_groups"))),
                    role: task
                        .and_then(|r| r.attrs.get("task_role"))
                        .cloned()
                        .unwrap_or_default(),
                    fix_target: svc.name.clone(),
                },
            ));
        }
    }
    let Some(p) = o.get(Kind::Proxy, &proxy.name) else {
        return vec![Finding::new(
            ID,
            Status::Fail,
            format!("proxy `{}` does not exist", proxy.name),
        )
        .fix("statsctl deploy")];
    };
    let endpoint = p.output("endpoint").unwrap_or_default();
    let proxy_subnets = split(p.attrs.get("subnets"));
    let proxy_vpc = p
        .output("vpc_id")
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| {
            proxy_subnets
                .iter()
                .find_map(|s| facts.subnet_vpcs.get(s).cloned())
        })
        .unwrap_or_default();
    let proxy_groups = split(p.attrs.get("security_groups"));
    let ingress: Vec<String> = proxy_groups
        .iter()
        .flat_map(|g| split(o.get(Kind::Ingress, g).and_then(|r| r.attrs.get("rules"))))
        .collect();
    let prx = proxy_resource_id(&p.id).unwrap_or_default();

    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let mut evidence = vec![format!(
        "proxy `{}` endpoint `{endpoint}` in VPC `{proxy_vpc}`, status {}",
        proxy.name, p.state
    )];
    if p.state != "available" {
        problems.push(format!(
            "proxy `{}` is {}, not available",
            proxy.name, p.state
        ));
    }
    let target = o.get(
        Kind::ProxyTarget,
        &format!("{}/{}", proxy.name, stack.database.cluster_id),
    );
    match target {
        Some(t) if t.state == "AVAILABLE" => {
            evidence.push(format!("target `{}` AVAILABLE", stack.database.cluster_id))
        }
        Some(t) => problems.push(format!(
            "proxy target `{}` is {}",
            stack.database.cluster_id, t.state
        )),
        None => {
            problems.push(format!(
                "cluster `{}` is not registered with the proxy",
                stack.database.cluster_id
            ));
            fixes.push("statsctl deploy (registers the cluster as the proxy's target)".to_string());
        }
    }
    for (exists, c) in &clients {
        if !exists {
            problems.push(format!("{} is not deployed", c.label));
            fixes.push("statsctl deploy".into());
            continue;
        }
        let host = c
            .environment
            .get(&c.db.host_env)
            .cloned()
            .unwrap_or_default();
        let route = resolve_route(&host, o, &stack.database.cluster_id, endpoint);
        if route == Route::Proxy {
            evidence.push(format!("{}: {} = proxy endpoint", c.label, c.db.host_env));
        } else {
            problems.push(format!(
                "{}: {} points at {}",
                c.label,
                c.db.host_env,
                route.describe(&host)
            ));
            fixes.push(format!(
                "statsctl deploy (sets {} of {} to `{endpoint}`)",
                c.db.host_env, c.fix_target
            ));
        }
        if c.subnets.is_empty() {
            problems.push(format!(
                "{} runs outside any VPC and cannot reach the proxy",
                c.label
            ));
        }
        for s in &c.subnets {
            let vpc = facts
                .subnet_vpcs
                .get(s)
                .cloned()
                .unwrap_or_else(|| "an unknown VPC".into());
            if vpc != proxy_vpc {
                problems.push(format!(
                    "{}: subnet `{s}` is in `{vpc}`, the proxy is in `{proxy_vpc}`",
                    c.label
                ));
                fixes.push(format!(
                    "statsctl deploy (puts {} in the proxy's subnets)",
                    c.fix_target
                ));
            }
        }
        let admitted = c.security_groups.iter().any(|g| {
            ingress.iter().any(|r| {
                r == &format!("tcp:{POSTGRES_PORT}:sg:{g}") || r == &format!("-1:all:sg:{g}")
            })
        }) || ingress.iter().any(|r| {
            r.ends_with(":cidr:0.0.0.0/0")
                && (r.starts_with(&format!("tcp:{POSTGRES_PORT}:")) || r.starts_with("-1:"))
        });
        if !admitted {
            problems.push(format!(
                "{}: the proxy's security group does not admit {} on {POSTGRES_PORT}",
                c.label,
                c.security_groups.join(", ")
            ));
            fixes.push(format!(
                "statsctl deploy (adds the ingress rule to {})",
                proxy_groups.join(", ")
            ));
        }
        if proxy.iam_auth {
            let resource = db_connect_resource(&o.region, &o.account_id, prx, &c.db.user);
            let policies: Vec<&String> = [
                o.get(Kind::Role, &c.role)
                    .and_then(|r| r.attrs.get("policy")),
                o.get(Kind::RolePolicy, &format!("{}/rds-db-connect", c.role))
                    .and_then(|r| r.attrs.get("policy")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if policies.iter().any(|p| allows_connect(p, &resource)) {
                evidence.push(format!(
                    "{}: role `{}` allows rds-db:connect on `{resource}`",
                    c.label, c.role
                ));
            } else {
                problems.push(format!(
                    "{}: role `{}` does not allow rds-db:connect on `{resource}`",
                    c.label, c.role
                ));
                fixes.push(format!(
                    "statsctl deploy (restores the rds-db-connect policy of `{}`)",
                    c.role
                ));
            }
        }
    }
    fixes.dedup();
    let status = if problems.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    };
    let summary = if problems.is_empty() {
        format!(
            "{} client(s) reach the database through `{}`",
            clients.len(),
            proxy.name
        )
    } else {
        problems.first().cloned().unwrap_or_default()
    };
    let mut f = Finding::new(ID, status, summary);
    f.evidence = if problems.is_empty() {
        evidence
    } else {
        problems
    };
    f.fixes = fixes;
    vec![f]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_policies() {
        let r = "arn:aws:rds-db:eu-west-1:1:dbuser:prx-1/api";
        let ok = r#"{"Statement":[{"Effect":"Allow","Action":["rds-db:connect"],"Resource":["arn:aws:rds-db:eu-west-1:1:dbuser:prx-1/api"]}]}"#;
        let wild = r#"{"Statement":{"Effect":"Allow","Action":"rds-db:*","Resource":"arn:aws:rds-db:eu-west-1:1:dbuser:prx-1/*"}}"#;
        let other_proxy = r#"{"Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"arn:aws:rds-db:eu-west-1:1:dbuser:prx-2/api"}]}"#;
        let deny = r#"{"Statement":[{"Effect":"Deny","Action":"rds-db:connect","Resource":"*"}]}"#;
        let logs = r#"{"Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#;
        for (p, want) in [
            (ok, true),
            (wild, true),
            (other_proxy, false),
            (deny, false),
            (logs, false),
            ("not json", false),
        ] {
            assert_eq!(allows_connect(p, r), want, "{p}");
        }
    }

    #[test]
    fn routes_resolve_against_live_endpoints() {
        use statsctl_core::inventory::{Key, ObservedResource};
        let mut o = Observed::default();
        let mut cluster = ObservedResource::default();
        cluster
            .outputs
            .insert("endpoint".into(), "db.cluster-1".into());
        cluster
            .outputs
            .insert("reader_endpoint".into(), "db.cluster-ro-1".into());
        o.resources.insert(Key::new(Kind::DbCluster, "db"), cluster);
        let mut instance = ObservedResource::default();
        instance.outputs.insert("endpoint".into(), "db-1.x".into());
        o.resources
            .insert(Key::new(Kind::DbInstance, "db-1"), instance);
        for (host, proxy, want, via) in [
            ("p.proxy-1", "p.proxy-1", Route::Proxy, Some(Via::Proxy)),
            (
                "db.cluster-1",
                "p.proxy-1",
                Route::Writer,
                Some(Via::Direct),
            ),
            (
                "db.cluster-ro-1",
                "p.proxy-1",
                Route::Reader,
                Some(Via::Direct),
            ),
            (
                "db-1.x",
                "p.proxy-1",
                Route::Instance("db-1".into()),
                Some(Via::Direct),
            ),
            ("elsewhere", "p.proxy-1", Route::Other, Some(Via::Direct)),
            // No proxy observed: an empty endpoint never matches.
            ("", "", Route::Unset, None),
            ("db.cluster-1", "", Route::Writer, Some(Via::Direct)),
        ] {
            let r = resolve_route(host, &o, "db", proxy);
            assert_eq!(r, want, "{host}");
            assert_eq!(r.via(), via, "{host}");
        }
        assert_eq!(
            Route::Instance("db-1".into()).describe("db-1.x"),
            "the instance endpoint of `db-1` (`db-1.x`)"
        );
    }
}

/// Subnet → VPC id for the subnets observe already read (the stack's and those it references by id). Pure.
pub fn known_subnet_vpcs(o: &Observed) -> BTreeMap<String, String> {
    o.resources
        .iter()
        .chain(o.referenced.iter())
        .filter(|(k, _)| k.kind == Kind::Subnet)
        .map(|(k, r)| {
            (
                k.name.clone(),
                r.output("vpc_id").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The subnets a live client or the proxy uses whose VPC is not in `known`: preflight looks them up. Sorted,
/// each once. Pure.
pub fn unknown_subnets(o: &Observed, known: &BTreeMap<String, String>) -> Vec<String> {
    o.resources
        .values()
        .flat_map(|r| split(r.attrs.get("subnets")))
        .filter(|id| !known.contains_key(id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Which subnets preflight knows the VPC of, and which it must look up.
#[cfg(test)]
mod subnet_tests {
    use super::*;
    use statsctl_core::inventory::{Key, ObservedResource};

    #[test]
    fn subnets_observe_read_are_known_and_the_rest_are_looked_up_once() {
        let mut o = Observed::default();
        let mut ours = ObservedResource::default();
        ours.outputs.insert("vpc_id".into(), "vpc-1".into());
        o.resources.insert(Key::new(Kind::Subnet, "subnet-a"), ours);
        let mut referenced = ObservedResource::default();
        referenced.outputs.insert("vpc_id".into(), "vpc-2".into());
        o.referenced
            .insert(Key::new(Kind::Subnet, "subnet-b"), referenced);
        o.referenced.insert(
            Key::new(Kind::Subnet, "subnet-c"),
            ObservedResource::default(),
        );
        let uses = |subnets: &str| {
            let mut r = ObservedResource::default();
            r.attrs.insert("subnets".into(), subnets.into());
            r
        };
        o.resources.insert(
            Key::new(Kind::Function, "f1"),
            uses("subnet-a,subnet-z,subnet-y"),
        );
        o.resources
            .insert(Key::new(Kind::Function, "f2"), uses("subnet-z,,subnet-b"));
        o.resources.insert(Key::new(Kind::Proxy, "p"), uses(""));

        let known = known_subnet_vpcs(&o);
        assert_eq!(
            known.into_iter().collect::<Vec<_>>(),
            [
                ("subnet-a".to_string(), "vpc-1".to_string()),
                ("subnet-b".to_string(), "vpc-2".to_string()),
                ("subnet-c".to_string(), String::new()),
            ]
        );
        assert_eq!(
            unknown_subnets(&o, &known_subnet_vpcs(&o)),
            ["subnet-y", "subnet-z"]
        );
        assert!(unknown_subnets(&Observed::default(), &BTreeMap::new()).is_empty());
    }
}
