//! preflight against the emulator and a real PostgreSQL: deploy the shipped stack, break it the way the
//! incidents did — each through the AWS SDK directly — and check preflight names the exact problem.

mod harness;

use harness::*;

const STATS_API: &str = "live-stats-local-stats-api";

fn preflight(env: &LocalAws, extra: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec!["preflight", "--output", "json"];
    args.extend_from_slice(extra);
    let r = env.run(&args);
    assert!(r.code == 0 || r.code == 2, "{r:?}");
    let j = r.json();
    (r, j)
}

fn finding<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {report}"))
}

fn text(f: &serde_json::Value) -> String {
    format!("{} {} {}", f["summary"], f["evidence"], f["fixes"])
}

#[test]
fn healthy_stack_passes_the_link_checks_and_reports_in_three_formats() {
    let env = LocalAws::start();
    env.deploy();
    let (r, j) = preflight(&env, &[]);
    for id in ["proxy.attached", "alarms.armed", "stack.drift", "security"] {
        assert_eq!(
            finding(&j, id)["status"],
            "pass",
            "{id}: {}",
            finding(&j, id)
        );
    }
    // Until load tests are recorded, this one cannot pass: and so preflight says not ready (exit 2).
    assert_eq!(finding(&j, "loadtest.passed")["status"], "fail");
    assert!(text(finding(&j, "loadtest.passed")).contains("no load test recorded"));
    assert_eq!(r.code, 2);
    assert_eq!(j["ready"], false);
    // max_connections was measured on the real PostgreSQL (30 − 3 reserved).
    let cap = finding(&j, "capacity.connections");
    assert!(text(cap).contains("SHOW max_connections"), "{cap}");
    assert!(cap["summary"].as_str().unwrap().contains("27"), "{cap}");

    // --only / --skip with a reason; unknown ids get a did-you-mean.
    let (r, j) = preflight(&env, &["--only", "proxy.attached", "security"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(j["findings"].as_array().unwrap().len(), 2);
    let (_, j) = preflight(
        &env,
        &[
            "--skip",
            "loadtest.passed",
            "--reason",
            "first event of the season",
        ],
    );
    assert!(finding(&j, "loadtest.passed")["summary"]
        .as_str()
        .unwrap()
        .contains("first event of the season"));
    let bad = env.run(&["preflight", "--only", "proxy.attach"]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("did you mean `proxy.attached`?"),
        "{bad:?}"
    );

    let human = env.run(&["preflight"]);
    assert!(
        human.stdout.contains("✓ proxy.attached")
            && human.stdout.contains("✗ loadtest.passed")
            && human.stdout.contains("NOT READY"),
        "{human:?}"
    );
    assert!(
        human.stdout.contains("statsctl loadtest --env local"),
        "fixes are listed: {human:?}"
    );
    let md = env.run(&["preflight", "--markdown"]);
    assert!(md.stdout.contains("| ✓ | `proxy.attached` |"), "{md:?}");
}

#[test]
fn broken_proxy_links_are_named() {
    let env = LocalAws::start();
    env.deploy();
    let (_, before) = preflight(&env, &["--only", "proxy.attached"]);
    assert_eq!(finding(&before, "proxy.attached")["status"], "pass");

    // 1. The host variable points at the cluster endpoint (the incident).
    let cluster_endpoint = block_on(async {
        let conf = sdk_config(&env).await;
        let rds = aws_sdk_rds::Client::new(&conf);
        let c = rds
            .describe_db_clusters()
            .db_cluster_identifier("live-stats-db")
            .send()
            .await
            .unwrap();
        let endpoint = c.db_clusters()[0].endpoint().unwrap().to_string();
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("DB_HOST".into(), endpoint.clone());
        set_function_environment(&lambda, STATS_API, vars).await;
        endpoint
    });
    let (r, j) = preflight(&env, &["--only", "proxy.attached"]);
    assert_eq!(r.code, 2);
    let f = finding(&j, "proxy.attached");
    assert_eq!(f["status"], "fail");
    assert!(text(f).contains(&format!("function stats-api: DB_HOST points at the cluster writer endpoint `{cluster_endpoint}`")), "{f}");
    assert!(text(f).contains("statsctl deploy"), "{f}");
    env.deploy();

    // 2. The rds-db:connect grant removed.
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&env).await);
        iam.delete_role_policy()
            .role_name("live-stats-local-fn-stats-api")
            .policy_name("rds-db-connect")
            .send()
            .await
            .unwrap();
    });
    let (_, j) = preflight(&env, &["--only", "proxy.attached"]);
    let f = finding(&j, "proxy.attached");
    assert!(text(f).contains("function stats-api: role `live-stats-local-fn-stats-api` does not allow rds-db:connect on `arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-"), "{f}");
    env.deploy();

    // 3. The function moved into a subnet of another VPC.
    let (other_vpc, other_subnet) = block_on(async {
        let conf = sdk_config(&env).await;
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let vpc = ec2
            .create_vpc()
            .cidr_block("10.99.0.0/16")
            .send()
            .await
            .unwrap()
            .vpc()
            .unwrap()
            .vpc_id()
            .unwrap()
            .to_string();
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.99.1.0/24")
            .availability_zone("us-east-1a")
            .send()
            .await
            .unwrap()
            .subnet()
            .unwrap()
            .subnet_id()
            .unwrap()
            .to_string();
        let sg = ec2
            .create_security_group()
            .group_name("elsewhere")
            .description("x")
            .vpc_id(&vpc)
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        let lambda = aws_sdk_lambda::Client::new(&conf);
        lambda
            .update_function_configuration()
            .function_name(STATS_API)
            .vpc_config(
                aws_sdk_lambda::types::VpcConfig::builder()
                    .subnet_ids(&subnet)
                    .security_group_ids(&sg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        (vpc, subnet)
    });
    let (_, j) = preflight(&env, &["--only", "proxy.attached"]);
    let f = finding(&j, "proxy.attached");
    assert!(text(f).contains(&format!("function stats-api: subnet `{other_subnet}` is in `{other_vpc}`, the proxy is in `vpc-")), "{f}");
    assert!(
        text(f).contains("does not admit"),
        "its new security group is not admitted either: {f}"
    );
    env.deploy();
    let (_, j) = preflight(&env, &["--only", "proxy.attached"]);
    assert_eq!(
        finding(&j, "proxy.attached")["status"],
        "pass",
        "deploy repairs the link"
    );
}

#[test]
fn alarms_and_rollback_problems_are_named() {
    let env = LocalAws::start();
    env.deploy();
    // A second version, so the alias has a previous one (1).
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        lambda
            .put_function_concurrency()
            .function_name(STATS_API)
            .reserved_concurrent_executions(7)
            .send()
            .await
            .unwrap();
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("LOG_LEVEL".into(), "debug".into());
        set_function_environment(&lambda, STATS_API, vars).await;
    });
    env.deploy();
    let (_, j) = preflight(&env, &["--only", "rollback.ready", "alarms.armed"]);
    assert!(
        !text(finding(&j, "rollback.ready")).contains("stats-api: no previous"),
        "{j}"
    );

    block_on(async {
        let conf = sdk_config(&env).await;
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
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
        let lambda = aws_sdk_lambda::Client::new(&conf);
        lambda
            .delete_function()
            .function_name(STATS_API)
            .qualifier("1")
            .send()
            .await
            .unwrap();
    });
    let (r, j) = preflight(&env, &["--only", "rollback.ready", "alarms.armed"]);
    assert_eq!(r.code, 2);
    let alarms = finding(&j, "alarms.armed");
    assert_eq!(alarms["status"], "fail");
    assert!(
        text(alarms).contains("missing: live-stats-local-db-connections"),
        "{alarms}"
    );
    assert!(
        text(alarms).contains(
            "in ALARM: live-stats-local-lambda-errors-stats-api: Threshold Crossed: 12 errors"
        ),
        "{alarms}"
    );
    let rollback = finding(&j, "rollback.ready");
    assert_eq!(rollback["status"], "fail");
    // Whether the target came from history or (without any) the alias description, it is named and gone.
    assert!(
        text(rollback).contains(&format!("{STATS_API}: version 2 rolls back to version 1 ("))
            && text(rollback).contains("which was deleted"),
        "{rollback}"
    );
}

#[test]
fn reserved_concurrency_beyond_max_connections_fails_capacity() {
    // The incident's shape: a function straight to the database.
    let env = LocalAws::start();
    let dir = tempfile::tempdir().unwrap();
    let text_in = std::fs::read_to_string(shipped_stack()).unwrap();
    let direct = text_in.replace(
        "database: { via: proxy, host_env: DB_HOST, pool_size: 1, user: log_ingester }",
        "database: { via: direct, host_env: DB_HOST, pool_size: 1, user: log_ingester }",
    );
    assert_ne!(direct, text_in);
    std::fs::create_dir_all(dir.path().join("stacks")).unwrap();
    let path = dir.path().join("stacks/live-stats.yaml");
    std::fs::write(&path, direct).unwrap();
    std::os::unix::fs::symlink(repo_root().join("functions"), dir.path().join("functions"))
        .unwrap();
    let stack = path.to_str().unwrap();
    let r = env.run(&["--stack", stack, "deploy"]);
    assert_eq!(r.code, 0, "{r:?}");
    let ok = env.run(&[
        "--stack",
        stack,
        "preflight",
        "--only",
        "capacity.connections",
        "--output",
        "json",
    ]);
    assert_eq!(ok.code, 0, "warnings do not fail preflight: {ok:?}");
    assert_ne!(ok.json()["findings"][0]["status"], "fail", "{ok:?}");
    assert_eq!(
        env.run(&[
            "--stack",
            stack,
            "preflight",
            "--only",
            "capacity.connections",
            "--strict"
        ])
        .code,
        2,
        "--strict fails on warnings"
    );

    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        lambda
            .put_function_concurrency()
            .function_name("live-stats-local-log-ingester")
            .reserved_concurrent_executions(400)
            .send()
            .await
            .unwrap();
    });
    let r = env.run(&[
        "--stack",
        stack,
        "preflight",
        "--only",
        "capacity.connections",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    let f = &r.json()["findings"][0];
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("direct clients can open 400 connections; the database allows 27"),
        "{f}"
    );
    assert!(
        f["fixes"][0]
            .as_str()
            .unwrap()
            .contains("set reserved concurrency of log-ingester to ≤ 27"),
        "{f}"
    );
    // The arithmetic is shown as a table in the human view.
    let human = env.run(&[
        "--stack",
        stack,
        "preflight",
        "--only",
        "capacity.connections",
    ]);
    assert!(
        human.stdout.contains("log-ingester     direct") || human.stdout.contains("log-ingester"),
        "{human:?}"
    );
    assert!(
        human.stdout.contains("400") && human.stdout.contains("database allows 27"),
        "{human:?}"
    );
}

#[test]
fn a_function_live_on_the_cluster_endpoint_is_budgeted_as_direct() {
    // The stack says `via: proxy`; live, the function points at the cluster writer with 6000 reserved.
    let env = LocalAws::start();
    env.deploy();
    block_on(async {
        let conf = sdk_config(&env).await;
        let rds = aws_sdk_rds::Client::new(&conf);
        let c = rds
            .describe_db_clusters()
            .db_cluster_identifier("live-stats-db")
            .send()
            .await
            .unwrap();
        let endpoint = c.db_clusters()[0].endpoint().unwrap().to_string();
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("DB_HOST".into(), endpoint);
        set_function_environment(&lambda, STATS_API, vars).await;
        lambda
            .put_function_concurrency()
            .function_name(STATS_API)
            .reserved_concurrent_executions(6000)
            .send()
            .await
            .unwrap();
    });
    let (r, j) = preflight(&env, &["--only", "capacity.connections"]);
    assert_eq!(r.code, 2, "{r:?}");
    let f = finding(&j, "capacity.connections");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("direct clients can open 6,000 connections; the database allows 27"),
        "{f}"
    );
    assert!(
        text(f).contains("stats-api: direct (live DB_HOST = the cluster writer endpoint"),
        "the live route is the evidence: {f}"
    );
    assert!(
        text(f).contains("statsctl deploy (points stats-api back at the proxy"),
        "{f}"
    );
    // Deploy restores the stack's route and concurrency: the budget is back through the proxy.
    env.deploy();
    let (_, j) = preflight(&env, &["--only", "capacity.connections"]);
    let f = finding(&j, "capacity.connections");
    assert_ne!(f["status"], "fail", "{f}");
    assert!(
        text(f).contains("stats-api: proxy (live DB_HOST = the proxy endpoint"),
        "{f}"
    );
}

/// A peer that accepts connections and never answers (the app-store incident): holds every connection open,
/// reads nothing, writes nothing; stops accepting when dropped.
struct SilentServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentServer {
    fn start() -> SilentServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: at most 2 minutes, whatever happens to the test.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while !stop2.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        SilentServer { port, stop }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_service_that_accepts_but_never_answers_is_named() {
    let env = LocalAws::start();
    env.deploy();
    let silent = SilentServer::start();
    let port = silent.port.to_string();
    // The local environment finds its service through ${STATSCTL_SERVICE_PORT} in loadtest.targets.
    let r = env.run_with(
        &["preflight", "--only", "service.healthy", "--output", "json"],
        &[("STATSCTL_SERVICE_PORT", &port)],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let j = r.json();
    let f = finding(&j, "service.healthy");
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["summary"].as_str().unwrap().contains(&format!(
            "health endpoint `http://127.0.0.1:{port}/healthz` accepted the connection but did not answer within 2000 ms"
        )),
        "{f}"
    );
    assert!(
        text(f).contains(&format!(
            "load-test target `http://127.0.0.1:{port}/matches/1/stats` accepted the connection but did not answer"
        )),
        "{f}"
    );
    // The emulator runs no tasks: that is reported as not observable, not as a failure.
    assert!(
        text(f).contains("ECS task counts not observable here"),
        "{f}"
    );
    assert!(!text(f).contains("tasks running"), "{f}");
    assert!(text(f).contains("waiting on its database pool"), "{f}");

    // Nothing listening at all is a different finding.
    drop(silent);
    let closed = free_port().to_string();
    let r = env.run_with(
        &["preflight", "--only", "service.healthy", "--output", "json"],
        &[("STATSCTL_SERVICE_PORT", &closed)],
    );
    let f = finding(&r.json(), "service.healthy").clone();
    assert_eq!(f["status"], "fail", "{f}");
    assert!(text(&f).contains(": no connection (3 of 3 requests"), "{f}");
}

#[test]
fn after_the_quick_starts_load_test_a_full_preflight_is_ready() {
    // What ./quickstart does, with this test's ports: the real service through PgBouncer, deploy, load test,
    // then every check.
    let env = LocalAws::start_opts(30, true, &[]);
    env.deploy();
    let r = env.run(&[
        "loadtest", "--ramp", "5s", "--hold", "12s", "--output", "json",
    ]);
    assert_eq!(r.code, 0, "the quick start's load test passes: {r:?}");
    let r = env.run(&["preflight", "--output", "json"]);
    let j = r.json();
    assert_eq!(r.code, 0, "{}", serde_json::to_string_pretty(&j).unwrap());
    assert_eq!(j["ready"], true);
    let f = finding(&j, "service.healthy");
    assert_eq!(f["status"], "pass", "{f}");
    assert!(
        text(f).contains("health endpoint") && text(f).contains("3/3 answered"),
        "{f}"
    );
}

/// The connection budget follows what is deployed: the proxy's MaxConnectionsPercent and a function's
/// DB_POOL_SIZE, each changed behind statsctl's back, show up in preflight's capacity table, labelled live.
#[test]
fn the_capacity_table_follows_live_pool_sizes_and_max_connections_percent() {
    let env = LocalAws::start();
    env.deploy();
    let table = |env: &LocalAws| {
        let (_, j) = preflight(env, &["--only", "capacity.connections"]);
        let f = finding(&j, "capacity.connections").clone();
        let rows: Vec<Vec<String>> = f["table"]
            .as_array()
            .unwrap_or_else(|| panic!("no table: {f}"))
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .collect();
        (f, rows)
    };
    let row = |rows: &[Vec<String>], name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
            .clone()
    };
    let (f, rows) = table(&env);
    // As deployed from the stack: 90% of the measured 30; the service's pool from its task definition (deploy
    // sets DB_POOL_SIZE there), the functions' from the stack file (deploy does not set it on functions).
    let proxy = row(&rows, "via proxy total");
    assert!(
        proxy[5].starts_with("proxy pool 27 = max_connections × 90% (live proxy target group"),
        "{proxy:?}"
    );
    assert_eq!(
        row(&rows, "stats-service")[6],
        "live DB_POOL_SIZE",
        "{rows:?}"
    );
    let api = row(&rows, "stats-api");
    assert_eq!(api[3], "1", "{api:?}");
    assert!(api[6].starts_with("stack file (no DB_POOL_SIZE"), "{api:?}");
    assert!(
        text(&f).contains("MaxConnectionsPercent 90 (live proxy target group)"),
        "{f}"
    );

    block_on(async {
        let conf = sdk_config(&env).await;
        aws_sdk_rds::Client::new(&conf)
            .modify_db_proxy_target_group()
            .db_proxy_name("live-stats-proxy")
            .target_group_name("default")
            .connection_pool_config(
                aws_sdk_rds::types::ConnectionPoolConfiguration::builder()
                    .max_connections_percent(50)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("DB_POOL_SIZE".into(), "3".into());
        set_function_environment(&lambda, STATS_API, vars).await;
    });

    let (f, rows) = table(&env);
    let proxy = row(&rows, "via proxy total");
    assert!(
        proxy[5].starts_with("proxy pool 15 = max_connections × 50% (live proxy target group"),
        "{proxy:?}"
    );
    let api = row(&rows, "stats-api");
    assert_eq!(api[3], "3", "{api:?}");
    assert_eq!(api[6], "live DB_POOL_SIZE", "{api:?}");
    let instances: u64 = api[2].parse().unwrap();
    assert_eq!(api[4], (instances * 3).to_string(), "{api:?}");
    assert!(
        text(&f).contains("MaxConnectionsPercent 50 (live proxy target group)"),
        "{f}"
    );
}
