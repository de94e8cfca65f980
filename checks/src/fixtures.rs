//! Test stacks: the mission's shape, varied by a named patch.

use statsctl_core::model::StackFile;

pub const BASE: &str = r#"
stack: t
region: eu-west-1
network: { existing: { vpc_id: vpc-1, subnet_ids: [subnet-a, subnet-b] } }
database:
  cluster_id: db
  engine_version: "15.4"
  instance_class: db.t4g.medium
  database_name: stats
  master_username: admin
  credentials_secret: s
proxy: { name: p, max_connections_percent: 90 }
functions:
  stats-api:
    artifact: x
    runtime: python3.12
    handler: app.handler
    database: { via: proxy, user: api }
  log-ingester:
    artifact: x
    runtime: python3.12
    handler: app.handler
    reserved_concurrency: 50
    database: { via: proxy, user: ingest }
service:
  name: svc
  cluster: c
  image: i
  cpu: 256
  memory_mb: 512
  desired_count: 2
  max_count: 10
  port: 8080
  database: { via: proxy, user: svc, pool_size: 10 }
event: { expected_viewers: 1500, poll_interval: 15s, request_duration: 120ms, spike_factor: 3 }
"#;

pub fn stack_from(patch: &str) -> StackFile {
    let mut text = BASE.to_string();
    match patch {
        "" => {}
        "direct" => text = text.replace("via: proxy", "via: direct"),
        "direct-capped" => {
            text = text.replace("via: proxy", "via: direct").replace("    handler: app.handler\n    database: { via: direct, user: api }", "    handler: app.handler\n    reserved_concurrency: 100\n    database: { via: direct, user: api }")
        }
        "service-direct-per-request" => text = text.replace("database: { via: proxy, user: svc, pool_size: 10 }", "database: { via: direct, user: svc, connections: per_request }"),
        "service-direct-pool-2" => text = text.replace("database: { via: proxy, user: svc, pool_size: 10 }", "database: { via: direct, user: svc, pool_size: 2 }"),
        "percent10" => text = text.replace("max_connections_percent: 90", "max_connections_percent: 10"),
        other => panic!("unknown patch {other}"),
    }
    let r =
        statsctl_core::loader::load_str(std::path::Path::new("t.yaml"), &text, None, &|_: &str| {
            None
        })
        .unwrap_or_else(|d| panic!("{d}"));
    r.spec
}

/// Facts for one check's unit test: the stack, environment and observed state given, everything else empty —
/// 1,000 account concurrency, 1,500 viewers, time 0. Tests override what they exercise with `..facts(…)`.
pub fn facts<'a>(
    stack: &'a StackFile,
    env: &'a str,
    observed: &'a statsctl_core::inventory::Observed,
) -> crate::Facts<'a> {
    crate::Facts {
        stack,
        env,
        observed,
        subnet_vpcs: std::collections::BTreeMap::new(),
        account_concurrency: crate::Sourced::new(1000, "test"),
        unreserved_concurrency: None,
        max_connections: None,
        current_connections: None,
        service_probes: vec![],
        previous_versions: std::collections::BTreeMap::new(),
        previous_task_definition: None,
        pending_changes: vec![],
        required_alarms: vec![],
        loadtests: vec![],
        deployed_versions: std::collections::BTreeMap::new(),
        viewers: 1500,
        now: 0,
    }
}
