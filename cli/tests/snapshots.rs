//! Snapshot tests (insta) that pin the human output of `plan`, `preflight`, `validate` errors and `loadtest`
//! summaries, byte for byte, with only what changes run to run (ports, temp dirs, times, ids) scrubbed.
//!
//! Why snapshots and not `contains`: a reshape of the code underneath must keep these outputs identical, and a
//! snapshot shows every line that moved. Update them on purpose with `cargo insta review`, or
//! `INSTA_UPDATE=always cargo nextest run --workspace -E 'binary(snapshots)'` and read the diff before committing.

mod harness;

use std::time::Duration;

use harness::*;

const STATS_API: &str = "live-stats-local-stats-api";

/// A run as one text: exit code, stdout, stderr — all three are part of what a user sees.
fn shown(r: &Run) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        r.code, r.stdout, r.stderr
    )
}

/// `text` as a regex that matches it literally (for filters of values known at run time: ports, paths).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Filters for what a run against a private emulator varies in: its ports and temp dir (exact values), then
/// the shapes that are never the same twice.
fn local_filters(env: &LocalAws) -> Vec<(String, String)> {
    let mut f = vec![(
        literal(&env.dir.path().display().to_string()),
        "[TMP]".to_string(),
    )];
    for (port, name) in [
        (env.moto_port, "MOTO_PORT"),
        (env.pg_port, "PG_PORT"),
        (env.service_port, "SERVICE_PORT"),
        (env.pgbouncer_port, "PGBOUNCER_PORT"),
    ] {
        f.push((
            format!(r"127\.0\.0\.1:{port}\b"),
            format!("127.0.0.1:[{name}]"),
        ));
    }
    f.extend(
        [
            // Timing and the number of AWS calls (retries on a busy machine add some) on stderr.
            (
                r"(read|checked) in \d+\.\d+s with \d+ AWS API calls",
                "$1 in [SECS] with [N] AWS API calls",
            ),
            // The emulator's generated part of a proxy endpoint.
            (r"\.db-proxy-[a-z0-9]+\.", ".db-proxy-[ID]."),
            // The account id in the ledger bucket's name comes from STS, not from the stack file.
            (r"-ledger-\d{12}\b", "-ledger-[ACCOUNT]"),
            // The hash of a function's code pins the code under functions/, not how plan shows it.
            (
                r#"code_sha256( +)= "[A-Za-z0-9+/=]+""#,
                r#"code_sha256$1= "[SHA256]""#,
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
    );
    f.extend(common_filters());
    f
}

/// Shapes that differ on every run wherever they appear.
fn common_filters() -> Vec<(String, String)> {
    vec![(
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?".to_string(),
        "[TIMESTAMP]".to_string(),
    )]
}

fn settings(filters: &[(String, String)]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    for (from, to) in filters {
        s.add_filter(from, to.as_str());
    }
    s
}

fn set_memory(env: &LocalAws, name: &str, memory_mb: i32) {
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(env).await);
        lambda
            .update_function_configuration()
            .function_name(name)
            .memory_size(memory_mb)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn plan_fresh_then_drifted() {
    let env = LocalAws::start();
    let filters = local_filters(&env);
    let fresh = env.run(&["plan"]);
    settings(&filters).bind(|| insta::assert_snapshot!("plan_fresh", shown(&fresh)));

    env.deploy();
    // Drift made the way people make it: the function's memory changed by hand, through the SDK.
    set_memory(&env, STATS_API, 1024);
    let drifted = env.run(&["plan"]);
    settings(&filters).bind(|| insta::assert_snapshot!("plan_drifted", shown(&drifted)));
}

#[test]
fn preflight_deployed_then_broken() {
    let env = LocalAws::start();
    env.deploy();
    let filters = local_filters(&env);
    let deployed = env.run(&["preflight"]);
    settings(&filters).bind(|| insta::assert_snapshot!("preflight_deployed", shown(&deployed)));

    // Broken the way the incidents were: an alarm deleted, another one firing.
    block_on(async {
        let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(&env).await);
        cw.delete_alarms()
            .alarm_names("live-stats-local-db-connections")
            .send()
            .await
            .unwrap();
        cw.set_alarm_state()
            .alarm_name("live-stats-local-lambda-errors-stats-api")
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason("Threshold Crossed: 12 errors")
            .send()
            .await
            .unwrap();
    });
    let broken = env.run(&["preflight"]);
    settings(&filters).bind(|| insta::assert_snapshot!("preflight_broken", shown(&broken)));
}

/// A small complete stack, so these snapshots pin the diagnostics' format and not the shipped stack's line
/// numbers; each case below breaks one line of it.
const SMALL_STACK: &str = "\
stack: demo
region: eu-west-1
network:
  create:
    cidr: 10.42.0.0/16
    subnets:
      - { cidr: 10.42.1.0/24, availability_zone: eu-west-1a }
      - { cidr: 10.42.2.0/24, availability_zone: eu-west-1b }
database:
  cluster_id: demo-db
  engine_version: \"15.4\"
  instance_class: db.r6g.large
  database_name: stats
  master_username: stats_admin
  credentials_secret: demo/db-master
proxy:
  name: demo-proxy
  max_connections_percent: 90
functions:
  stats-api:
    artifact: ./fn
    runtime: python3.12
    handler: app.handler
    memory_mb: 256
    timeout: 10s
    reserved_concurrency: 30
    database: { via: proxy, host_env: DB_HOST, pool_size: 1, user: stats_api }
event:
  expected_viewers: 100
  poll_interval: 15s
  spike_factor: 3
  request_duration: 120ms
rollout:
  strategy: canary
environments:
  prod:
    functions:
      stats-api: { memory_mb: 512 }
    event: { expected_viewers: 300 }
";

/// `statsctl validate --stack stack.yaml [--env ENV]` run in a temp dir, so the diagnostics name a path that
/// is the same on every run.
fn validate(text: &str, env: Option<&str>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stack.yaml"), text).unwrap();
    let mut c = statsctl();
    c.current_dir(dir.path())
        .args(["validate", "--stack", "stack.yaml"]);
    if let Some(e) = env {
        c.args(["--env", e]);
    }
    c.env_remove("SURELY_UNSET_VAR");
    run(c)
}

/// `SMALL_STACK` with `from` (which must occur exactly once) replaced by `to`.
fn small_with(from: &str, to: &str) -> String {
    assert_eq!(
        SMALL_STACK.matches(from).count(),
        1,
        "`{from}` must occur once"
    );
    SMALL_STACK.replacen(from, to, 1)
}

#[test]
fn the_small_stack_is_valid_and_resolves() {
    // Every error snapshot below breaks exactly one thing of a stack that is valid.
    let r = validate(SMALL_STACK, None);
    assert_eq!(r.code, 0, "{r:?}");
    // The resolved stack, defaults filled in and the overlay applied, as `validate --env` prints it.
    let r = validate(SMALL_STACK, Some("prod"));
    settings(&common_filters()).bind(|| insta::assert_snapshot!("validate_resolved", shown(&r)));
}

#[test]
fn validate_errors() {
    let cases: &[(&str, String, Option<&str>)] = &[
        (
            "validate_unknown_key",
            small_with("reserved_concurrency: 30", "reserved_concurency: 30"),
            Some("prod"),
        ),
        (
            "validate_wrong_type",
            small_with("reserved_concurrency: 30", "reserved_concurrency: lots"),
            Some("prod"),
        ),
        (
            "validate_bad_duration",
            small_with("poll_interval: 15s", "poll_interval: 15 seconds"),
            Some("prod"),
        ),
        (
            "validate_bad_enum",
            small_with("strategy: canary", "strategy: canery"),
            Some("prod"),
        ),
        (
            "validate_overlay_typo",
            small_with(
                "      stats-api: { memory_mb: 512 }",
                "      stats-apii: { memory_mb: 512 }",
            ),
            Some("prod"),
        ),
        (
            "validate_overlay_unknown_section",
            small_with(
                "    event: { expected_viewers: 300 }",
                "    evnt: { expected_viewers: 300 }",
            ),
            None,
        ),
        (
            "validate_unset_variable",
            small_with("cluster_id: demo-db", "cluster_id: ${SURELY_UNSET_VAR}"),
            Some("prod"),
        ),
        (
            "validate_invalid_yaml",
            small_with("database_name: stats", "database_name: stats: oops"),
            Some("prod"),
        ),
        (
            "validate_several_errors",
            small_with("reserved_concurrency: 30", "reserved_concurency: 30")
                .replacen(
                    "max_connections_percent: 90",
                    "max_connections_percent: 150",
                    1,
                )
                .replacen("pool_size: 1", "pool_size: -1", 1),
            Some("prod"),
        ),
    ];
    let filters = common_filters();
    for (name, text, env) in cases {
        let r = validate(text, *env);
        settings(&filters).bind(|| insta::assert_snapshot!(*name, shown(&r)));
    }
}

/// Load-test summaries hold latencies, rates and durations measured on a busy machine: those are scrubbed;
/// the labels, the verdict, the seeded schedule's counts and the reasons from the stack file are kept.
fn loadtest_filters(server: &TestServer) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> = [
        (
            r"\(\d+\.\d req/s over \d+\.\ds\)",
            "([RATE] req/s over [SECS]s)",
        ),
        // The latency and service-time lines: p50 … max.
        (r"\b(p50|p90|p99\.9|p99|max) \d+\.\d\b", "$1 [MS]"),
        // The per-stage table's p50 and p99 columns.
        (
            r"(?m)^((?:ramp|hold|spike) \d+ .*?) +\d+\.\d +\d+\.\d$",
            "$1  [P50 MS]  [P99 MS]",
        ),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .into();
    f.push((
        format!(r"127\.0\.0\.1:{}\b", server.port),
        "127.0.0.1:[PORT]".to_string(),
    ));
    f.extend(common_filters());
    f
}

fn loadtest_human(server: &TestServer) -> Run {
    let url = server.url();
    let mut c = statsctl();
    // The stack's own target (named in the reasons) is on its default port, whatever this shell has set.
    for var in [
        "STATSCTL_SERVICE_PORT",
        "STATSCTL_MOTO_PORT",
        "STATSCTL_PG_PORT",
        "STATSCTL_LOCAL_DIR",
    ] {
        c.env_remove(var);
    }
    c.args([
        "loadtest",
        "--env",
        "local",
        "--no-record",
        "--target",
        url.as_str(),
        "--stages",
        "ramp:40:1s,hold:40:1s",
        "--viewers",
        "40",
        "--arrival",
        "uniform",
    ]);
    run(c)
}

#[test]
fn loadtest_summaries() {
    let ok = TestServer::start(Duration::from_millis(1), false);
    let r = loadtest_human(&ok);
    settings(&loadtest_filters(&ok)).bind(|| insta::assert_snapshot!("loadtest_passed", shown(&r)));

    let failing = TestServer::start(Duration::ZERO, true);
    let r = loadtest_human(&failing);
    settings(&loadtest_filters(&failing))
        .bind(|| insta::assert_snapshot!("loadtest_failed", shown(&r)));
}
