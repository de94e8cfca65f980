//! `capacity.connections`: the connection budget, worst case and expected.
//!
//! Worst case per client: max instances (a function's reserved concurrency, else the account's unreserved
//! concurrency; the service's max task count) × its pool size. Direct clients share the database's
//! `max_connections − reserved`; proxied clients share the proxy's pool, `max_connections × MaxConnectionsPercent`.
//! Expected load: viewers / poll interval × request duration = concurrent requests, × spike factor.
//!
//! Budgets what is live, not what the stack file says: each client's route as its deployed host variable resolves
//! (`proxy_attached::live_routes`), its deployed reserved concurrency, its pool size as its deployed environment's
//! `DB_POOL_SIZE` says, the service's deployed desired count, the proxy target group's deployed
//! MaxConnectionsPercent, and (when SQL cannot measure max_connections) AWS's table for the deployed instance class
//! or capacity range; the stack's value only where the live one cannot be read, and the table says which. Not read
//! live: the service's autoscaling maximum (the stack's `max_count` is budgeted, or the live desired count when
//! higher).

use std::collections::BTreeMap;

use serde::Serialize;
use statsctl_core::facts;
use statsctl_core::inventory::{Kind, Observed};
use statsctl_core::model::{Connections, StackFile, Via};

use crate::{Facts, Finding, Sourced, Status};

pub const ID: &str = "capacity.connections";

/// Share of a limit above which the check warns.
pub const WARN_RATIO: f64 = 0.8;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientLoad {
    pub name: String,
    /// The route budgeted: the live one when it could be read.
    pub via: Via,
    /// Where `via` comes from (the live host variable, or the stack file).
    pub via_from: String,
    /// The live route differs from the stack's `via`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drifted: bool,
    pub max_instances: u64,
    /// Where `max_instances` comes from.
    pub instances_from: String,
    pub pool_size: u32,
    /// Where `pool_size` comes from (the live `DB_POOL_SIZE`, or the stack file).
    pub pool_from: String,
    pub connections: u64,
    /// Reserved concurrency (functions) or max tasks (service) currently set, if any.
    pub capped: bool,
    /// Opens a connection per request (the service): `connections` is the requests in flight at the peak.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_request: bool,
}

/// What preflight read live for one client; `None` where it could not be read, and the stack's value is used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// The route its host variable resolves to, and that in words (`DB_HOST = the cluster writer endpoint …`).
    pub via: Option<(Via, String)>,
    /// Reserved concurrency as deployed; `Some(None)`: none reserved, the account's unreserved part applies.
    pub reserved_concurrency: Option<Option<u32>>,
    /// The service's desired task count as deployed.
    pub desired_count: Option<u32>,
    /// The pool size its deployed environment sets (`DB_POOL_SIZE`), when set to a number.
    pub pool_size: Option<u32>,
}

/// The environment variable a client's pool size is deployed in (deploy sets it on the service's task
/// definition; a function has it only when its `environment` sets it).
pub const POOL_SIZE_ENV: &str = "DB_POOL_SIZE";

/// `6000` → `6,000`: budgets are read at a glance.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub clients: Vec<ClientLoad>,
    pub direct_worst: u64,
    pub proxy_worst: u64,
    pub max_connections: Option<Sourced<u32>>,
    pub reserved: u32,
    /// `max_connections − reserved`: what clients can have.
    pub db_limit: Option<u64>,
    /// `max_connections × MaxConnectionsPercent`.
    pub proxy_pool: Option<u64>,
    /// The proxy's MaxConnectionsPercent budgeted, and where it comes from.
    pub proxy_percent: Option<Sourced<u32>>,
    /// Concurrent requests at the event's peak (× spike factor): each holds one connection.
    pub expected: f64,
}

/// The route budgeted for a client: live when read, else the stack's, saying which.
fn route(stack_via: Via, live: &Live) -> (Via, String, bool) {
    match &live.via {
        Some((v, words)) => (*v, format!("live {words}"), *v != stack_via),
        None => (
            stack_via,
            "stack file (no live route: not deployed, or its host variable is not set)".into(),
            false,
        ),
    }
}

/// A pool size: the live one when set, else the stack's, saying which.
fn pool(stack_pool: u32, live: &Live) -> (u32, String) {
    match live.pool_size {
        Some(n) => (n, format!("live {POOL_SIZE_ENV}")),
        None => (
            stack_pool,
            format!("stack file (no {POOL_SIZE_ENV} in its live environment)"),
        ),
    }
}

/// The arithmetic, pure. `live` is keyed by the stack's client names (function key, service name);
/// `proxy_percent` is the proxy's MaxConnectionsPercent as read (see [`proxy_percent`]).
pub fn budget(
    stack: &StackFile,
    live: &BTreeMap<String, Live>,
    unreserved: &Sourced<u32>,
    max_connections: Option<Sourced<u32>>,
    proxy_percent: Option<Sourced<u32>>,
    viewers: u64,
) -> Budget {
    let none = Live::default();
    let mut clients = Vec::new();
    for (name, f) in &stack.functions {
        let Some(db) = &f.database else { continue };
        let l = live.get(name).unwrap_or(&none);
        let unreserved_from = |note: &str| {
            format!(
                "unreserved account concurrency ({}){note}",
                unreserved.source
            )
        };
        let (max_instances, from, capped) = match (l.reserved_concurrency, f.reserved_concurrency) {
            (Some(Some(r)), _) => (u64::from(r), "live reserved concurrency".to_string(), true),
            (Some(None), _) => (
                u64::from(unreserved.value),
                unreserved_from(": none reserved live"),
                false,
            ),
            (None, Some(r)) => (
                u64::from(r),
                "reserved concurrency from stack file (live value not read)".to_string(),
                true,
            ),
            (None, None) => (
                u64::from(unreserved.value),
                unreserved_from(": none in stack file (live value not read)"),
                false,
            ),
        };
        // An execution environment serves one request at a time: per-request connections are one per instance.
        let (pool_size, pool_from) = if db.connections == Connections::PerRequest {
            (1, "a connection per request: one per instance".to_string())
        } else {
            pool(db.pool_size, l)
        };
        let (via, via_from, drifted) = route(db.via, l);
        clients.push(ClientLoad {
            name: name.clone(),
            via,
            via_from,
            drifted,
            max_instances,
            instances_from: from,
            pool_size,
            pool_from,
            connections: max_instances * u64::from(pool_size),
            capped,
            per_request: false,
        });
    }
    if let Some(svc) = &stack.service {
        if let Some(db) = &svc.database {
            let l = live.get(&svc.name).unwrap_or(&none);
            let (via, via_from, drifted) = route(db.via, l);
            // Autoscaling's live limits are not read: the stack's max_count, unless more tasks are desired now.
            let (n, tasks_from) = match l.desired_count {
                Some(d) if d > svc.max_count => (
                    u64::from(d),
                    format!(
                        "live desired count (above the stack's max_count {})",
                        svc.max_count
                    ),
                ),
                _ => (
                    u64::from(svc.max_count),
                    "service max_count from stack file".to_string(),
                ),
            };
            if db.connections == Connections::PerRequest {
                // Nothing bounds it but the requests in flight: at worst every viewer's poll at once (page-load
                // waves keep polls in sync), spike included.
                let peak = (viewers as f64 * stack.event.spike_factor.max(1.0)).ceil() as u64;
                clients.push(ClientLoad {
                    name: svc.name.clone(),
                    via,
                    via_from,
                    drifted,
                    max_instances: n,
                    instances_from: format!("a connection per request in flight: {viewers} viewers × spike {} polling together", stack.event.spike_factor),
                    pool_size: 0,
                    pool_from: "a connection per request in flight".into(),
                    connections: peak,
                    capped: false,
                    per_request: true,
                });
            } else {
                let (pool_size, pool_from) = pool(db.pool_size, l);
                clients.push(ClientLoad {
                    name: svc.name.clone(),
                    via,
                    via_from,
                    drifted,
                    max_instances: n,
                    instances_from: tasks_from,
                    pool_size,
                    pool_from,
                    connections: n * u64::from(pool_size),
                    capped: true,
                    per_request: false,
                });
            }
        }
    }
    let sum = |via: Via| {
        clients
            .iter()
            .filter(|c| c.via == via)
            .map(|c| c.connections)
            .sum::<u64>()
    };
    let reserved = stack.database.reserved_connections;
    let db_limit = max_connections
        .as_ref()
        .map(|m| u64::from(m.value.saturating_sub(reserved)));
    let proxy_pool = match (&proxy_percent, &max_connections) {
        (Some(p), Some(m)) => Some(u64::from(m.value) * u64::from(p.value) / 100),
        _ => None,
    };
    let e = &stack.event;
    let expected = viewers as f64 / e.poll_interval.as_secs_f64().max(0.001)
        * e.request_duration.as_secs_f64()
        * e.spike_factor;
    Budget {
        direct_worst: sum(Via::Direct),
        proxy_worst: sum(Via::Proxy),
        clients,
        max_connections,
        reserved,
        db_limit,
        proxy_pool,
        proxy_percent,
        expected,
    }
}

/// The proxy's MaxConnectionsPercent: its default target group's as deployed, else the stack's, saying which.
/// `None` when the stack has no proxy. Pure.
pub fn proxy_percent(stack: &StackFile, observed: &Observed) -> Option<Sourced<u32>> {
    let p = stack.proxy.as_ref()?;
    let live = observed
        .get(Kind::ProxyTargetGroup, &format!("{}/default", p.name))
        .and_then(|g| g.attrs.get("max_connections_percent"))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| (1..=100).contains(v));
    Some(match live {
        Some(v) => Sourced::new(v, "live proxy target group"),
        None => Sourced::new(
            p.max_connections_percent,
            "stack file proxy.max_connections_percent (the proxy's target group not read)",
        ),
    })
}

/// max_connections from AWS's table, for when SQL cannot measure it (the usual case in prod): for the cluster's
/// deployed instance classes (the smallest, as the writer may be any of them), else its deployed Serverless v2
/// capacity range; the stack's class or range only when neither is observed, saying so. Pure.
pub fn table_max_connections(stack: &StackFile, observed: &Observed) -> Option<Sourced<u32>> {
    let cluster = &stack.database.cluster_id;
    let by_class = observed
        .resources
        .iter()
        .filter(|(k, r)| {
            k.kind == Kind::DbInstance
                && r.attrs.get("cluster").map(String::as_str) == Some(cluster)
        })
        .filter_map(|(k, r)| {
            let class = r.attrs.get("instance_class")?;
            let t = facts::aurora_max_connections_for_class(class)?;
            Some(Sourced::new(
                t.max_connections,
                format!("{} (live class of instance `{}`)", t.source, k.name),
            ))
        })
        .min_by_key(|t| t.value);
    if by_class.is_some() {
        return by_class;
    }
    let live_range = observed
        .get(Kind::DbCluster, cluster)
        .and_then(|c| c.attrs.get("serverless_acu"))
        .and_then(|v| v.split_once('-'))
        .and_then(|(min, max)| Some((min.parse::<f64>().ok()?, max.parse::<f64>().ok()?)));
    if let Some((min, max)) = live_range {
        if let Some(t) = facts::aurora_serverless_max_connections(min, max) {
            return Some(Sourced::new(
                t.max_connections,
                format!("{} (live capacity range of cluster `{cluster}`)", t.source),
            ));
        }
    }
    let d = &stack.database;
    let t = match (&d.instance_class, &d.serverless) {
        (Some(class), _) => facts::aurora_max_connections_for_class(class),
        (None, Some(s)) => facts::aurora_serverless_max_connections(s.min_acu, s.max_acu),
        (None, None) => None,
    }?;
    Some(Sourced::new(
        t.max_connections,
        format!(
            "{} (from stack file: no instance class or capacity range observed)",
            t.source
        ),
    ))
}

fn ratio_status(used: f64, limit: f64) -> Status {
    if used > limit {
        Status::Fail
    } else if used > limit * WARN_RATIO {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// Verdict and fixes from a budget, pure.
pub fn judge(stack: &StackFile, b: &Budget) -> Finding {
    let Some(db_limit) = b.db_limit else {
        return Finding::new(ID, Status::Skip, "the database's max_connections is unknown")
            .fix("set `database.max_connections` in the stack file, or `database.sql` so preflight can measure it");
    };
    let mut status = Status::Pass;
    let mut problems = Vec::new();
    let mut fixes = Vec::new();

    // Direct clients: their worst case must fit the database.
    if b.direct_worst > 0 {
        let s = ratio_status(b.direct_worst as f64, db_limit as f64);
        if s > Status::Pass {
            problems.push(format!(
                "direct clients can open {} connections; the database allows {}",
                thousands(b.direct_worst),
                thousands(db_limit)
            ));
            // A client the stack routes through the proxy but that is live on a database endpoint: deploy puts
            // it back, which is the fix to name first.
            for c in b
                .clients
                .iter()
                .filter(|c| c.drifted && c.via == Via::Direct)
            {
                fixes.push(format!(
                    "statsctl deploy (points {} back at the proxy, as the stack says; it is budgeted as deployed: {})",
                    c.name, c.via_from
                ));
            }
            // Cap the largest direct client so the total fits.
            if let Some(big) = b
                .clients
                .iter()
                .filter(|c| c.via == Via::Direct)
                .max_by_key(|c| c.connections)
            {
                let others = b.direct_worst - big.connections;
                let room =
                    (db_limit as f64 * if s == Status::Fail { 1.0 } else { WARN_RATIO }) as u64;
                let cap = room.saturating_sub(others) / u64::from(big.pool_size.max(1));
                if big.per_request {
                    let per_task = (room.saturating_sub(others) / big.max_instances.max(1)).max(1);
                    fixes.push(format!(
                        "give {} a pool: service.database.connections: pool with pool_size ≤ {per_task} ({} tasks × {per_task} ≤ {}), or route it `via: proxy`",
                        big.name,
                        big.max_instances,
                        room.saturating_sub(others)
                    ));
                } else if stack.functions.contains_key(&big.name) {
                    // Drifted off the proxy: deploy (named above) is the fix; the cap is the stopgap.
                    let or_route = if big.drifted {
                        ""
                    } else {
                        ", or route it `via: proxy`"
                    };
                    fixes.push(format!("set reserved concurrency of {} to ≤ {cap} (functions.{}.reserved_concurrency){or_route}", big.name, big.name));
                } else {
                    fixes.push(format!(
                        "lower service.max_count to ≤ {cap}, or route it `via: proxy`"
                    ));
                }
            }
        }
        status = status.max(s);
    }
    // Through the proxy: the event's expected concurrent requests must fit the pool.
    if let (Some(pool), true) = (b.proxy_pool, b.proxy_worst > 0) {
        let s = ratio_status(b.expected, pool as f64);
        if s > Status::Pass {
            problems.push(format!(
                "expected {:.0} concurrent requests at the spike; the proxy pool is {pool}",
                b.expected.ceil()
            ));
            let max_conn = b
                .max_connections
                .as_ref()
                .map(|m| m.value)
                .unwrap_or(1)
                .max(1);
            let needed = (b.expected
                / if s == Status::Fail { 1.0 } else { WARN_RATIO }
                / f64::from(max_conn)
                * 100.0)
                .ceil() as u64;
            if needed <= 100 {
                fixes.push(format!(
                    "raise MaxConnectionsPercent to {needed} (proxy.max_connections_percent)"
                ));
            } else {
                fixes.push("the database itself is too small for the expected load: a larger instance class or more ACUs".into());
            }
        }
        status = status.max(s);
        // At worst more clients than pooled connections: the proxy makes the rest wait (up to the borrow
        // timeout), which is its job, but worth knowing.
        if b.proxy_worst > pool && status < Status::Warn {
            status = Status::Warn;
            problems.push(format!("at worst {} clients share the proxy's {pool} pooled connections; the rest wait up to the borrow timeout", b.proxy_worst));
        }
        // The proxy's pool and direct clients share one database.
        if b.direct_worst > 0 && pool + b.direct_worst > db_limit && status < Status::Warn {
            status = Status::Warn;
            problems.push(format!(
                "proxy pool {pool} + direct {} can exceed the database's {db_limit}",
                b.direct_worst
            ));
        }
    } else if b.proxy_worst == 0 && b.direct_worst > 0 {
        let s = ratio_status(b.expected, db_limit as f64);
        if s > Status::Pass {
            problems.push(format!(
                "expected {:.0} concurrent requests; the database allows {db_limit}",
                b.expected.ceil()
            ));
        }
        status = status.max(s);
    }

    let summary = if problems.is_empty() {
        format!(
            "worst case {} direct / {} via proxy; expected {:.0} concurrent at the spike; database allows {db_limit}{}",
            b.direct_worst,
            b.proxy_worst,
            b.expected.ceil(),
            b.proxy_pool.map(|p| format!(", proxy pool {p}")).unwrap_or_default()
        )
    } else {
        problems.join("; ")
    };
    let mut f = Finding::new(ID, status, summary);
    f.fixes = fixes;
    for c in &b.clients {
        f = f.evidence(format!(
            "{}: {} ({}); {} {}",
            c.name,
            format!("{:?}", c.via).to_lowercase(),
            c.via_from,
            thousands(c.max_instances),
            c.instances_from
        ));
    }
    if let Some(m) = &b.max_connections {
        f = f.evidence(format!(
            "max_connections {} ({}), {} reserved",
            m.value, m.source, b.reserved
        ));
    }
    if let Some(p) = &b.proxy_percent {
        f = f.evidence(format!("MaxConnectionsPercent {} ({})", p.value, p.source));
    }
    f.table.push(vec![
        "client".into(),
        "via".into(),
        "max instances".into(),
        "× pool".into(),
        "= connections".into(),
        "instances from".into(),
        "pool from".into(),
    ]);
    for c in &b.clients {
        f.table.push(vec![
            c.name.clone(),
            format!("{:?}", c.via).to_lowercase(),
            c.max_instances.to_string(),
            if c.per_request {
                "per request".into()
            } else {
                c.pool_size.to_string()
            },
            c.connections.to_string(),
            c.instances_from.clone(),
            c.pool_from.clone(),
        ]);
    }
    let e = &stack.event;
    f.table.push(vec![
        "direct total".into(),
        String::new(),
        String::new(),
        String::new(),
        b.direct_worst.to_string(),
        format!("database allows {db_limit}"),
    ]);
    if let Some(p) = b.proxy_pool {
        f.table.push(vec![
            "via proxy total".into(),
            String::new(),
            String::new(),
            String::new(),
            b.proxy_worst.to_string(),
            match &b.proxy_percent {
                Some(pct) => format!(
                    "proxy pool {p} = max_connections × {}% ({}; the proxy queues the rest)",
                    pct.value, pct.source
                ),
                None => format!("proxy pool {p} (the proxy queues the rest)"),
            },
        ]);
    }
    f.table.push(vec![
        "expected".into(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.1}", b.expected),
        format!(
            "viewers / {} × {} × spike {}",
            e.poll_interval, e.request_duration, e.spike_factor
        ),
    ]);
    f
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let live = live(facts);
    let unreserved = facts.unreserved_concurrency.clone().unwrap_or_else(|| {
        // Without GetAccountSettings: the account limit less what is reserved, as deployed where it was read.
        let reserved: u32 = facts
            .stack
            .functions
            .iter()
            .filter_map(
                |(name, f)| match live.get(name).and_then(|l| l.reserved_concurrency) {
                    Some(deployed) => deployed,
                    None => f.reserved_concurrency,
                },
            )
            .sum();
        Sourced::new(
            facts.account_concurrency.value.saturating_sub(reserved),
            format!("{} − reserved {reserved}", facts.account_concurrency.source),
        )
    });
    let b = budget(
        facts.stack,
        &live,
        &unreserved,
        facts.max_connections.clone(),
        proxy_percent(facts.stack, facts.observed),
        facts.viewers,
    );
    let mut f = judge(facts.stack, &b);
    f.evidence.push(format!("{} viewers", facts.viewers));
    vec![f]
}

/// `DB_POOL_SIZE` from an observed resource's deployed environment (a canonical JSON map), when a number ≥ 1.
fn live_pool_size(r: Option<&statsctl_core::inventory::ObservedResource>) -> Option<u32> {
    let env: BTreeMap<String, String> = serde_json::from_str(r?.attrs.get("environment")?).ok()?;
    env.get(POOL_SIZE_ENV)?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
}

/// What is deployed for each client, from the observed state: drift matters most here.
fn live(facts: &Facts) -> BTreeMap<String, Live> {
    let routes = crate::proxy_attached::live_routes(facts);
    let mut out = BTreeMap::new();
    for name in facts.stack.functions.keys() {
        let observed = facts
            .observed
            .get(Kind::Function, &facts.stack.function_name(facts.env, name));
        let reserved = observed
            .and_then(|r| r.attrs.get("reserved_concurrency"))
            .map(|v| v.parse::<u32>().ok());
        out.insert(
            name.clone(),
            Live {
                via: routes.get(name).and_then(via_of),
                reserved_concurrency: reserved,
                desired_count: None,
                pool_size: live_pool_size(observed),
            },
        );
    }
    if let Some(svc) = &facts.stack.service {
        // The serving colour's count (the idle colour takes no traffic).
        let desired =
            statsctl_core::desired::service::live_service(facts.stack, facts.env, facts.observed)
                .and_then(|(_, r)| r.output("desired"))
                .and_then(|d| d.parse().ok());
        // The service's environment is its task definition's (deploy sets DB_POOL_SIZE there).
        let task = facts.observed.get(
            Kind::TaskDefinition,
            &statsctl_core::desired::Names::new(facts.stack, facts.env).task_family(&svc.name),
        );
        out.insert(
            svc.name.clone(),
            Live {
                via: routes.get(&svc.name).and_then(via_of),
                reserved_concurrency: None,
                desired_count: desired,
                pool_size: live_pool_size(task),
            },
        );
    }
    out
}

fn via_of(r: &crate::proxy_attached::LiveRoute) -> Option<(Via, String)> {
    r.route
        .via()
        .map(|v| (v, format!("{} = {}", r.host_env, r.route.describe(&r.host))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stack_from;

    struct Case {
        name: &'static str,
        yaml_patch: &'static str,
        viewers: u64,
        max_connections: u32,
        unreserved: u32,
        expect: Status,
        expect_fix: &'static str,
    }

    #[test]
    fn table() {
        let cases = [
            // The mission's incident: ~800 direct connections (unreserved concurrency × 1) on a database that
            // allows 405 − 3.
            Case {
                name: "mission: functions straight to the database",
                yaml_patch: "direct",
                viewers: 1500,
                max_connections: 405,
                unreserved: 800,
                expect: Status::Fail,
                expect_fix: "set reserved concurrency of stats-api to ≤ ",
            },
            // Through the proxy: 1500 viewers / 15 s × 0.12 s × 3 = 36 concurrent, pool 405 × 90% = 364 — but at
            // worst 950 clients could queue for those 364: a warning, not a failure.
            Case {
                name: "mission: through the proxy",
                yaml_patch: "",
                viewers: 1500,
                max_connections: 405,
                unreserved: 800,
                expect: Status::Warn,
                expect_fix: "",
            },
            // The same with a large database: every client fits the pool.
            Case {
                name: "through the proxy, pool larger than all clients",
                yaml_patch: "",
                viewers: 1500,
                max_connections: 1722,
                unreserved: 800,
                expect: Status::Pass,
                expect_fix: "",
            },
            // 50,000 viewers: 50000/15 × 0.12 × 3 = 1200 > 364.
            Case {
                name: "big audience exceeds the pool",
                yaml_patch: "",
                viewers: 50_000,
                max_connections: 405,
                unreserved: 800,
                expect: Status::Fail,
                expect_fix: "the database itself is too small",
            },
            // 10,000 viewers: 240 concurrent, pool 364: 66% → pass; with 12,500: 300 > 0.8 × 364 → warn.
            Case {
                name: "near the pool warns",
                yaml_patch: "",
                viewers: 12_500,
                max_connections: 405,
                unreserved: 800,
                expect: Status::Warn,
                expect_fix: "raise MaxConnectionsPercent to ",
            },
            Case {
                name: "pool too small, percent can be raised",
                yaml_patch: "percent10",
                viewers: 8_000,
                max_connections: 1722,
                unreserved: 800,
                expect: Status::Fail,
                expect_fix: "raise MaxConnectionsPercent to 12",
            },
            // The local incident: the service opens a connection per request, straight to a database with
            // max_connections 30: 200 viewers × spike 3 polling together is 600 connections; 27 are allowed.
            // 10 tasks share the 27: a pool of 2 each.
            Case {
                name: "service per request, direct",
                yaml_patch: "service-direct-per-request",
                viewers: 200,
                max_connections: 30,
                unreserved: 800,
                expect: Status::Fail,
                expect_fix:
                    "give svc a pool: service.database.connections: pool with pool_size ≤ 2",
            },
            // Pooled, 10 tasks × 2 = 20 of 27 fit; sharing the database with the proxy's pool is worth a warning.
            Case {
                name: "service pooled, direct",
                yaml_patch: "service-direct-pool-2",
                viewers: 200,
                max_connections: 30,
                unreserved: 800,
                expect: Status::Warn,
                expect_fix: "",
            },
            Case {
                name: "direct with caps that fit",
                yaml_patch: "direct-capped",
                viewers: 100,
                max_connections: 1722,
                unreserved: 800,
                expect: Status::Pass,
                expect_fix: "",
            },
        ];
        for c in cases {
            let stack = stack_from(c.yaml_patch);
            let b = budget(
                &stack,
                &BTreeMap::new(),
                &Sourced::new(c.unreserved, "test"),
                Some(Sourced::new(c.max_connections, "test")),
                proxy_percent(&stack, &Observed::default()),
                c.viewers,
            );
            let f = judge(&stack, &b);
            assert_eq!(f.status, c.expect, "{}: {f:#?}", c.name);
            if !c.expect_fix.is_empty() {
                assert!(
                    f.fixes.iter().any(|x| x.contains(c.expect_fix)),
                    "{}: fixes {:?}",
                    c.name,
                    f.fixes
                );
            }
        }
    }

    #[test]
    fn arithmetic() {
        let stack = stack_from("direct");
        let b = budget(
            &stack,
            &BTreeMap::new(),
            &Sourced::new(800, "test"),
            Some(Sourced::new(405, "test")),
            proxy_percent(&stack, &Observed::default()),
            1500,
        );
        // stats-api unreserved 800 × 1 + log-ingester reserved 50 × 1 + service max 10 × 10 = 950 direct.
        assert_eq!(b.direct_worst, 800 + 50 + 100);
        assert_eq!(b.db_limit, Some(402));
        assert!((b.expected - 36.0).abs() < 1e-9, "{}", b.expected);
        let f = judge(&stack, &b);
        // Capping stats-api: 402 − (50 + 100) = 252.
        assert!(
            f.fixes.iter().any(|x| x.contains("stats-api to ≤ 252")),
            "{:?}",
            f.fixes
        );
        assert_eq!(
            judge(
                &stack,
                &budget(
                    &stack,
                    &BTreeMap::new(),
                    &Sourced::new(800, "t"),
                    None,
                    proxy_percent(&stack, &Observed::default()),
                    1
                )
            )
            .status,
            Status::Skip
        );
    }

    /// Live values override the stack's; a value that cannot be read falls back to the stack, saying so.
    #[test]
    fn live_state_overrides_the_stack() {
        struct Case {
            name: &'static str,
            live: Vec<(&'static str, Live)>,
            // stats-api's budgeted route, instances, and words that must appear in where they come from.
            via: Via,
            instances: u64,
            from: &'static str,
            status: Status,
            summary: &'static str,
            fix: &'static str,
        }
        let writer = || {
            Some((
                Via::Direct,
                "DB_HOST = the cluster writer endpoint `db.cluster-1`".to_string(),
            ))
        };
        let proxy = || {
            Some((
                Via::Proxy,
                "DB_HOST = the proxy endpoint `p.proxy-1`".to_string(),
            ))
        };
        let cases = [
            Case {
                name: "the incident: stack says proxy, live host is the writer with 6000 reserved",
                live: vec![(
                    "stats-api",
                    Live {
                        via: writer(),
                        reserved_concurrency: Some(Some(6000)),
                        desired_count: None,
                        pool_size: None,
                    },
                )],
                via: Via::Direct,
                instances: 6000,
                from: "live reserved concurrency",
                status: Status::Fail,
                summary: "direct clients can open 6,000 connections; the database allows 1,719",
                fix: "statsctl deploy (points stats-api back at the proxy",
            },
            Case {
                name: "live concurrency overrides the stack's (none in the stack: 800 unreserved)",
                live: vec![(
                    "stats-api",
                    Live {
                        via: proxy(),
                        reserved_concurrency: Some(Some(40)),
                        desired_count: None,
                        pool_size: None,
                    },
                )],
                via: Via::Proxy,
                instances: 40,
                from: "live reserved concurrency",
                status: Status::Pass,
                summary: "worst case 0 direct",
                fix: "",
            },
            Case {
                name: "live says nothing is reserved: the account's unreserved part",
                live: vec![(
                    "stats-api",
                    Live {
                        via: proxy(),
                        reserved_concurrency: Some(None),
                        desired_count: None,
                        pool_size: None,
                    },
                )],
                via: Via::Proxy,
                instances: 800,
                from: "none reserved live",
                status: Status::Pass,
                summary: "",
                fix: "",
            },
            Case {
                name: "nothing live: the stack's values, saying so",
                live: vec![],
                via: Via::Proxy,
                instances: 800,
                from: "none in stack file (live value not read)",
                status: Status::Pass,
                summary: "",
                fix: "",
            },
        ];
        let stack = stack_from("");
        for c in cases {
            let no_live = c.live.is_empty();
            let live: BTreeMap<String, Live> = c
                .live
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let b = budget(
                &stack,
                &live,
                &Sourced::new(800, "test"),
                Some(Sourced::new(1722, "test")),
                proxy_percent(&stack, &Observed::default()),
                1500,
            );
            let api = b.clients.iter().find(|x| x.name == "stats-api").unwrap();
            assert_eq!(api.via, c.via, "{}", c.name);
            assert_eq!(api.max_instances, c.instances, "{}", c.name);
            assert!(api.instances_from.contains(c.from), "{}: {api:?}", c.name);
            if no_live {
                assert!(api.via_from.contains("stack file"), "{}: {api:?}", c.name);
            }
            let f = judge(&stack, &b);
            assert_eq!(f.status, c.status, "{}: {f:#?}", c.name);
            assert!(f.summary.contains(c.summary), "{}: {}", c.name, f.summary);
            assert!(
                c.fix.is_empty() || f.fixes.iter().any(|x| x.contains(c.fix)),
                "{}: {:?}",
                c.name,
                f.fixes
            );
        }
        // The service: more tasks desired live than the stack's max_count are budgeted.
        let live = BTreeMap::from([(
            "svc".to_string(),
            Live {
                via: None,
                reserved_concurrency: None,
                desired_count: Some(30),
                pool_size: None,
            },
        )]);
        let b = budget(
            &stack,
            &live,
            &Sourced::new(800, "t"),
            Some(Sourced::new(1722, "t")),
            proxy_percent(&stack, &Observed::default()),
            1500,
        );
        let svc = b.clients.iter().find(|x| x.name == "svc").unwrap();
        assert_eq!((svc.max_instances, svc.connections), (30, 300));
        assert!(svc.instances_from.contains("live desired count"), "{svc:?}");
        assert!(svc.via_from.contains("stack file"), "{svc:?}");
    }

    /// A live pool size (the deployed `DB_POOL_SIZE`) replaces the stack's; without one the stack's is used,
    /// saying so; a per-request client's pool is what its mode says, whatever the variable.
    #[test]
    fn pool_sizes_come_from_the_live_environment() {
        let stack = stack_from("");
        let live = |pool_size| Live {
            pool_size,
            ..Live::default()
        };
        for (name, client, l, want, from) in [
            (
                "live function pool",
                "stats-api",
                live(Some(3)),
                3,
                "live DB_POOL_SIZE",
            ),
            (
                "no live variable",
                "stats-api",
                live(None),
                1,
                "stack file (no DB_POOL_SIZE",
            ),
            (
                "live service pool",
                "svc",
                live(Some(4)),
                4,
                "live DB_POOL_SIZE",
            ),
            (
                "service from the stack",
                "svc",
                live(None),
                10,
                "stack file (no DB_POOL_SIZE",
            ),
        ] {
            let b = budget(
                &stack,
                &BTreeMap::from([(client.to_string(), l)]),
                &Sourced::new(800, "t"),
                Some(Sourced::new(1722, "t")),
                proxy_percent(&stack, &Observed::default()),
                1500,
            );
            let c = b.clients.iter().find(|c| c.name == client).unwrap();
            assert_eq!(c.pool_size, want, "{name}: {c:?}");
            assert_eq!(c.connections, c.max_instances * u64::from(want), "{name}");
            assert!(c.pool_from.contains(from), "{name}: {c:?}");
            let f = judge(&stack, &b);
            assert!(
                f.table.iter().any(|row| row[0] == client
                    && row[3] == want.to_string()
                    && row[6].contains(from)),
                "{name}: {:?}",
                f.table
            );
        }
        let per_request = stack_from("service-direct-per-request");
        let b = budget(
            &per_request,
            &BTreeMap::from([("svc".to_string(), live(Some(4)))]),
            &Sourced::new(800, "t"),
            Some(Sourced::new(30, "t")),
            None,
            200,
        );
        let svc = b.clients.iter().find(|c| c.name == "svc").unwrap();
        assert!(svc.per_request && svc.connections == 600, "{svc:?}");
    }

    /// MaxConnectionsPercent and the table's max_connections come from what is deployed; the stack's only where
    /// nothing is observed, saying so.
    #[test]
    fn proxy_percent_and_table_limits_from_what_is_deployed() {
        use statsctl_core::inventory::{Key, ObservedResource};
        let resource = |attrs: &[(&str, &str)]| {
            let mut r = ObservedResource::default();
            for (k, v) in attrs {
                r.attrs.insert(k.to_string(), v.to_string());
            }
            r
        };
        let stack = stack_from("");
        // MaxConnectionsPercent.
        let mut o = Observed::default();
        let p = proxy_percent(&stack, &o).unwrap();
        assert_eq!(p.value, 90);
        assert!(p.source.starts_with("stack file"), "{p:?}");
        o.resources.insert(
            Key::new(Kind::ProxyTargetGroup, "p/default"),
            resource(&[("max_connections_percent", "40")]),
        );
        assert_eq!(
            proxy_percent(&stack, &o),
            Some(Sourced::new(40, "live proxy target group"))
        );
        let b = budget(
            &stack,
            &BTreeMap::new(),
            &Sourced::new(800, "t"),
            Some(Sourced::new(1000, "t")),
            proxy_percent(&stack, &o),
            1500,
        );
        assert_eq!(b.proxy_pool, Some(400));
        let f = judge(&stack, &b);
        assert!(
            f.evidence
                .contains(&"MaxConnectionsPercent 40 (live proxy target group)".to_string()),
            "{:?}",
            f.evidence
        );
        // A value AWS would not hold (0, or not a number) is not budgeted.
        o.resources.insert(
            Key::new(Kind::ProxyTargetGroup, "p/default"),
            resource(&[("max_connections_percent", "0")]),
        );
        assert_eq!(proxy_percent(&stack, &o).unwrap().value, 90);

        // max_connections from AWS's table: the stack says db.t4g.medium.
        /// A resource as the case observes it: kind, name, and its (attribute, value) pairs.
        type Resource = (Kind, &'static str, Vec<(&'static str, &'static str)>);
        struct Case {
            name: &'static str,
            resources: Vec<Resource>,
            patch: &'static str,
            want: Option<u32>,
            from: &'static str,
        }
        let cases = [
            Case {
                name: "nothing observed: the stack's class, saying so",
                resources: vec![],
                patch: "",
                want: facts::aurora_max_connections_for_class("db.t4g.medium")
                    .map(|t| t.max_connections),
                from: "from stack file: no instance class or capacity range observed",
            },
            Case {
                name: "the live class wins",
                resources: vec![(
                    Kind::DbInstance,
                    "db-1",
                    vec![("cluster", "db"), ("instance_class", "db.r6g.large")],
                )],
                patch: "",
                want: Some(1722),
                from: "live class of instance `db-1`",
            },
            Case {
                name: "the smallest of the cluster's instances; another cluster's is not counted",
                resources: vec![
                    (
                        Kind::DbInstance,
                        "db-1",
                        vec![("cluster", "db"), ("instance_class", "db.r6g.large")],
                    ),
                    (
                        Kind::DbInstance,
                        "db-2",
                        vec![("cluster", "db"), ("instance_class", "db.t4g.medium")],
                    ),
                    (
                        Kind::DbInstance,
                        "other-1",
                        vec![("cluster", "other"), ("instance_class", "db.t4g.micro")],
                    ),
                ],
                patch: "",
                want: facts::aurora_max_connections_for_class("db.t4g.medium")
                    .map(|t| t.max_connections),
                from: "live class of instance `db-2`",
            },
            Case {
                name: "serverless: the live capacity range",
                resources: vec![
                    (
                        Kind::DbInstance,
                        "db-1",
                        vec![("cluster", "db"), ("instance_class", "db.serverless")],
                    ),
                    (Kind::DbCluster, "db", vec![("serverless_acu", "0.5-16")]),
                ],
                patch: "",
                want: facts::aurora_serverless_max_connections(0.5, 16.0)
                    .map(|t| t.max_connections),
                from: "live capacity range of cluster `db`",
            },
        ];
        for c in cases {
            let stack = stack_from(c.patch);
            let mut o = Observed::default();
            for (kind, name, attrs) in &c.resources {
                o.resources.insert(Key::new(*kind, *name), resource(attrs));
            }
            let got = table_max_connections(&stack, &o);
            assert_eq!(got.as_ref().map(|g| g.value), c.want, "{}: {got:?}", c.name);
            assert!(
                got.as_ref().is_some_and(|g| g.source.contains(c.from)),
                "{}: {got:?}",
                c.name
            );
        }
    }

    #[test]
    fn thousands_separators() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (6000, "6,000"),
            (1234567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    /// The check reads the live state from the observed inventory: route, reserved concurrency, and the
    /// unreserved fallback computed from what is deployed.
    #[test]
    fn check_reads_live_state() {
        use statsctl_core::inventory::{Key, Observed, ObservedResource};
        let stack = stack_from("");
        let mut o = Observed::default();
        let mut cluster = ObservedResource::default();
        cluster
            .outputs
            .insert("endpoint".into(), "db.cluster-1".into());
        o.resources.insert(Key::new(Kind::DbCluster, "db"), cluster);
        let mut proxy = ObservedResource::default();
        proxy.outputs.insert("endpoint".into(), "p.proxy-1".into());
        o.resources.insert(Key::new(Kind::Proxy, "p"), proxy);
        let mut api = ObservedResource::default();
        api.attrs
            .insert("environment".into(), r#"{"DB_HOST":"db.cluster-1"}"#.into());
        api.attrs
            .insert("reserved_concurrency".into(), "6000".into());
        o.resources.insert(
            Key::new(Kind::Function, stack.function_name("prod", "stats-api")),
            api,
        );
        let facts = Facts {
            account_concurrency: Sourced::new(10_000, "account"),
            max_connections: Some(Sourced::new(1722, "t")),
            ..crate::fixtures::facts(&stack, "prod", &o)
        };
        let f = &check(&facts)[0];
        assert_eq!(f.status, Status::Fail, "{f:#?}");
        assert_eq!(
            f.summary,
            "direct clients can open 6,000 connections; the database allows 1,719"
        );
        let all = format!("{:?}", f.evidence);
        assert!(
            all.contains("stats-api: direct (live DB_HOST = the cluster writer endpoint `db.cluster-1`); 6,000 live reserved concurrency"),
            "{all}"
        );
        // log-ingester is not deployed: the stack's route and concurrency, saying so.
        assert!(
            all.contains("log-ingester: proxy (stack file (no live route")
                && all.contains("50 reserved concurrency from stack file"),
            "{all}"
        );
        assert!(
            f.fixes[0].starts_with("statsctl deploy (points stats-api back at the proxy"),
            "{:?}",
            f.fixes
        );

        // Pool sizes as deployed: the function's environment, the service's task definition's.
        let mut o = o.clone();
        o.resources
            .get_mut(&Key::new(
                Kind::Function,
                stack.function_name("prod", "stats-api"),
            ))
            .unwrap()
            .attrs
            .insert(
                "environment".into(),
                r#"{"DB_HOST":"db.cluster-1","DB_POOL_SIZE":"2"}"#.into(),
            );
        let mut task = ObservedResource::default();
        task.attrs
            .insert("environment".into(), r#"{"DB_POOL_SIZE":"4"}"#.into());
        o.resources.insert(
            Key::new(
                Kind::TaskDefinition,
                statsctl_core::desired::Names::new(&stack, "prod").task_family("svc"),
            ),
            task,
        );
        let facts = Facts {
            observed: &o,
            ..facts
        };
        let f = &check(&facts)[0];
        assert_eq!(
            f.summary,
            "direct clients can open 12,000 connections; the database allows 1,719"
        );
        let row = |name: &str| f.table.iter().find(|r| r[0] == name).unwrap().clone();
        assert_eq!(row("stats-api")[3..5], ["2", "12000"], "{:?}", f.table);
        assert_eq!(row("stats-api")[6], "live DB_POOL_SIZE");
        assert_eq!(row("svc")[3..5], ["4", "40"], "{:?}", f.table);
        assert!(
            row("log-ingester")[6].starts_with("stack file"),
            "{:?}",
            f.table
        );
    }
}

/// The database's max_connections from the best source there is: measured (`SHOW max_connections`), else the
/// stack file's `database.max_connections`, else AWS's table for what is deployed (SQL not reachable, the usual
/// case in prod). Pure.
pub fn max_connections(
    measured: Option<Sourced<u32>>,
    stack: &StackFile,
    observed: &Observed,
) -> Option<Sourced<u32>> {
    measured
        .or_else(|| {
            stack
                .database
                .max_connections
                .map(|m| Sourced::new(m, "stack file database.max_connections"))
        })
        .or_else(|| table_max_connections(stack, observed))
}

/// The account's Lambda concurrency limit and its unreserved part, from GetAccountSettings (`settings`); when
/// that call failed (its error's detail), the stack file's `aws.lambda_concurrency_limit` and no unreserved
/// figure. Pure.
pub fn account_concurrency(
    settings: Result<(u32, u32), &str>,
    stack: &StackFile,
) -> (Sourced<u32>, Option<Sourced<u32>>) {
    match settings {
        Ok((limit, unreserved)) => (
            Sourced::new(limit, "GetAccountSettings"),
            Some(Sourced::new(unreserved, "GetAccountSettings")),
        ),
        Err(detail) => (
            Sourced::new(
                stack.aws.lambda_concurrency_limit,
                format!(
                    "stack file aws.lambda_concurrency_limit; GetAccountSettings unavailable ({detail})"
                ),
            ),
            None,
        ),
    }
}

/// Where preflight's numbers come from, source by source.
#[cfg(test)]
mod source_tests {
    use super::*;
    use crate::fixtures::stack_from;
    use statsctl_core::inventory::{Key, ObservedResource};

    /// (case, measured, stack, observed, expected)
    type Case<'a> = (
        &'a str,
        Option<Sourced<u32>>,
        &'a StackFile,
        &'a Observed,
        Option<Sourced<u32>>,
    );

    #[test]
    fn max_connections_prefers_measured_then_the_stack_file_then_the_table() {
        let plain = stack_from("");
        let mut declared = stack_from("");
        declared.database.max_connections = Some(400);
        let mut live = Observed::default();
        let mut instance = ObservedResource::default();
        instance.attrs.insert("cluster".into(), "db".into());
        instance
            .attrs
            .insert("instance_class".into(), "db.r6g.large".into());
        live.resources
            .insert(Key::new(Kind::DbInstance, "db-1"), instance);
        let nothing = Observed::default();
        let measured = || Some(Sourced::new(25, "SHOW max_connections on 127.0.0.1:5432"));
        let table = |o: &Observed| table_max_connections(&plain, o).unwrap();
        let cases: Vec<Case> = vec![
            ("measured wins", measured(), &declared, &live, measured()),
            (
                "the stack file's figure next",
                None,
                &declared,
                &live,
                Some(Sourced::new(400, "stack file database.max_connections")),
            ),
            (
                "the live class's table figure",
                None,
                &plain,
                &live,
                Some(table(&live)),
            ),
            (
                "the stack's class's table figure, saying so",
                None,
                &plain,
                &nothing,
                Some(table(&nothing)),
            ),
        ];
        for (case, measured, stack, observed, want) in cases {
            assert_eq!(max_connections(measured, stack, observed), want, "{case}");
        }
        assert!(table(&live).source.contains("live class"));
        assert!(table(&nothing).source.contains("from stack file"));
    }

    #[test]
    fn account_concurrency_falls_back_to_the_stack_file_saying_why() {
        let stack = stack_from("");
        let (limit, unreserved) = account_concurrency(Ok((1000, 850)), &stack);
        assert_eq!(limit, Sourced::new(1000, "GetAccountSettings"));
        assert_eq!(unreserved, Some(Sourced::new(850, "GetAccountSettings")));
        let (limit, unreserved) = account_concurrency(Err("AccessDenied"), &stack);
        assert_eq!(limit.value, stack.aws.lambda_concurrency_limit);
        assert_eq!(
            limit.source,
            "stack file aws.lambda_concurrency_limit; GetAccountSettings unavailable (AccessDenied)"
        );
        assert_eq!(unreserved, None);
    }
}
