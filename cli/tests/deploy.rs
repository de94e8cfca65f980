//! plan / deploy / status / destroy of the shipped stack against the moto emulator, each test with its own
//! emulator: create from nothing, no-op second run, drift made with the AWS SDK and repaired, failures midway
//! and re-runs that converge, input errors that send nothing, the deploy lock, and destroy.

mod harness;

use harness::*;

const STATS_API: &str = "live-stats-local-stats-api";

#[test]
fn create_from_nothing_then_nothing_to_do() {
    let env = LocalAws::start();
    let (code, plan) = env.plan_json();
    assert_eq!(code, 2, "an empty account has everything to create");
    let creates = pending(&plan);
    assert!(creates.iter().all(|(_, a)| a == "create"), "{creates:?}");
    for expected in [
        "vpc.live-stats-local",
        "db_cluster.live-stats-db",
        "db_proxy.live-stats-proxy",
        "db_proxy_target.live-stats-proxy/live-stats-db",
        "lambda_function.live-stats-local-stats-api",
        "lambda_alias.live-stats-local-stats-api:live",
        "iam_role_policy.live-stats-local-fn-stats-api/rds-db-connect",
        "ecs_service.stats-service",
        "alarm.live-stats-local-db-connections",
    ] {
        assert!(
            creates.iter().any(|(r, _)| r == expected),
            "missing {expected} in {creates:?}"
        );
    }

    let r = env.deploy();
    assert!(
        r.stdout.contains("Live state matches the stack file"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("creating db_cluster.live-stats-db"),
        "progress goes to stderr: {r:?}"
    );

    // Second deploy: nothing to do, and plan agrees with exit code 0.
    let again = env.deploy();
    assert!(again.stdout.contains("No changes."), "{again:?}");
    let (code, plan) = env.plan_json();
    assert_eq!(code, 0, "{plan}");
    assert!(pending(&plan).is_empty());
    assert!(
        plan["measured"]["api_calls"].as_u64().unwrap() > 10,
        "{plan}"
    );

    // The function→proxy link is in place: host variable = proxy endpoint, grant on the prx- id.
    let status = env.run(&["status", "--output", "json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let s = status.json();
    let rows = s["resources"].as_array().unwrap();
    let proxy_endpoint = rows.iter().find(|r| r["kind"] == "db_proxy").unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    let alias = rows
        .iter()
        .find(|r| r["name"] == format!("{STATS_API}:live"))
        .unwrap();
    assert_eq!(alias["detail"], "version 1", "{alias}");
    block_on(async {
        let conf = sdk_config(&env).await;
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let f = lambda
            .get_function_configuration()
            .function_name(STATS_API)
            .send()
            .await
            .unwrap();
        assert_eq!(
            f.environment().unwrap().variables().unwrap()["DB_HOST"],
            proxy_endpoint
        );
        let iam = aws_sdk_iam::Client::new(&conf);
        let p = iam
            .get_role_policy()
            .role_name("live-stats-local-fn-stats-api")
            .policy_name("rds-db-connect")
            .send()
            .await
            .unwrap();
        let doc = p.policy_document().replace("%3A", ":").replace("%2F", "/");
        assert!(
            doc.contains("rds-db:connect")
                && doc.contains(":dbuser:prx-")
                && doc.contains("/stats_api"),
            "{doc}"
        );
    });

    // Human status shows versions and states.
    let human = env.run(&["status"]);
    assert!(
        human.stdout.contains("→ version 1") && human.stdout.contains("0 with pending changes"),
        "{human:?}"
    );
}

#[test]
fn drift_is_shown_exactly_and_repaired() {
    let env = LocalAws::start();
    env.deploy();
    block_on(async {
        let conf = sdk_config(&env).await;
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert(
            "DB_HOST".into(),
            "live-stats-db.cluster-abc.us-east-1.rds.amazonaws.com".into(),
        );
        set_function_environment(&lambda, STATS_API, vars).await;
        lambda
            .put_function_concurrency()
            .function_name(STATS_API)
            .reserved_concurrent_executions(900)
            .send()
            .await
            .unwrap();
    });
    let (code, plan) = env.plan_json();
    assert_eq!(code, 2);
    // Exactly the function (two attributes) and its alias, which must move to a version with the fix.
    assert_eq!(
        pending(&plan),
        vec![
            (format!("lambda_function.{STATS_API}"), "update".into()),
            (format!("lambda_alias.{STATS_API}:live"), "update".into())
        ]
    );
    let f = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "lambda_function" && c["action"] == "update")
        .unwrap();
    let attrs: Vec<&str> = f["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attr"].as_str().unwrap())
        .collect();
    assert_eq!(attrs, vec!["environment", "reserved_concurrency"]);
    let human = env.run(&["plan"]);
    assert!(
        human.stdout.contains(
            "environment.DB_HOST = \"live-stats-db.cluster-abc.us-east-1.rds.amazonaws.com\" →"
        ),
        "{human:?}"
    );
    assert!(
        human
            .stdout
            .contains("reserved_concurrency = \"900\" → \"20\""),
        "{human:?}"
    );

    env.deploy();
    let (code, plan) = env.plan_json();
    assert_eq!(code, 0, "{plan}");
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        let c = lambda
            .get_function_concurrency()
            .function_name(STATS_API)
            .send()
            .await
            .unwrap();
        assert_eq!(c.reserved_concurrent_executions(), Some(20));
        let a = lambda
            .get_alias()
            .function_name(STATS_API)
            .name("live")
            .send()
            .await
            .unwrap();
        assert_eq!(a.function_version(), Some("2"));
        assert!(
            a.description().unwrap().contains("previous=1"),
            "the alias remembers the version to roll back to"
        );
    });
}

#[test]
fn missing_artifact_is_an_input_error_and_sends_nothing() {
    let env = LocalAws::start();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(shipped_stack()).unwrap().replace(
        "artifact: ../functions/log-ingester",
        "artifact: ../functions/missing-ingester",
    );
    let path = dir.path().join("stacks/live-stats.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::os::unix::fs::symlink(repo_root().join("functions"), dir.path().join("functions"))
        .unwrap();
    let r = env.run(&["--stack", path.to_str().unwrap(), "deploy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("function `log-ingester`") && r.stderr.contains("missing-ingester"),
        "{r:?}"
    );
    assert!(r.stderr.contains("nothing was sent to AWS"), "{r:?}");
    // Nothing was created.
    let (_, plan) = env.plan_json();
    assert!(pending(&plan).iter().all(|(_, a)| a == "create"), "{plan}");
}

#[test]
fn failure_midway_then_rerun_converges() {
    let env = LocalAws::start();
    // Someone else's role with the name deploy needs, outside statsctl's path: AWS refuses the create midway,
    // after the network, secret and other roles exist.
    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&env).await);
        iam.create_role()
            .role_name("live-stats-local-task")
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
            .send()
            .await
            .unwrap();
    });
    let r = env.run(&["deploy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("deploy stopped at iam_role.live-stats-local-task"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("✓ vpc.live-stats-local created") && r.stdout.contains("not attempted"),
        "done and not done are both reported: {r:?}"
    );
    assert!(
        r.stderr.contains("re-running `statsctl deploy` resumes"),
        "{r:?}"
    );
    let (_, plan) = env.plan_json();
    let left = pending(&plan);
    assert!(
        !left.iter().any(|(r, _)| r == "vpc.live-stats-local"),
        "what was done stays done: {left:?}"
    );

    block_on(async {
        let iam = aws_sdk_iam::Client::new(&sdk_config(&env).await);
        iam.delete_role()
            .role_name("live-stats-local-task")
            .send()
            .await
            .unwrap();
    });
    let r = env.deploy();
    assert!(
        r.stdout.contains("Live state matches the stack file"),
        "{r:?}"
    );
    let (code, _) = env.plan_json();
    assert_eq!(code, 0);
}

#[test]
fn killed_deploy_resumes() {
    use std::io::{BufRead, BufReader};
    let env = LocalAws::start();
    let mut c = env.statsctl();
    c.arg("deploy")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut created = 0;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("] created ") {
            created += 1;
            if created == 8 {
                child.kill().unwrap();
                break;
            }
        }
    }
    let _ = child.wait();
    assert_eq!(created, 8, "deploy made progress before it was killed");
    let (code, plan) = env.plan_json();
    assert_eq!(code, 2);
    assert!(!pending(&plan).is_empty());
    // No stale lock: the kernel released it with the process.
    env.deploy();
    assert_eq!(env.plan_json().0, 0);
}

#[test]
fn a_second_deploy_is_refused_while_one_runs() {
    use std::os::fd::AsRawFd;
    let env = LocalAws::start();
    let lock_dir = env.dir.path().join("locks");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_dir.join("live-stats-local.lock"))
        .unwrap();
    std::fs::write(
        lock_dir.join("live-stats-local.lock"),
        "statsctl deploy (pid 4242)",
    )
    .unwrap();
    assert_eq!(
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let r = env.run(&["deploy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("another statsctl is changing live-stats/local")
            && r.stderr.contains("pid 4242"),
        "{r:?}"
    );
    let (_, plan) = env.plan_json();
    assert!(
        pending(&plan).iter().all(|(_, a)| a == "create"),
        "nothing was changed"
    );
    // Dry runs change nothing and need no lock.
    let dry = env.run(&["deploy", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains("Dry run: nothing was changed."),
        "{dry:?}"
    );
    drop(file);
}

#[test]
fn destroy_keeps_data_unless_asked() {
    let env = LocalAws::start();
    env.deploy();
    let refused = env.run(&["destroy"]);
    assert_eq!(refused.code, 1, "no terminal, no --yes: {refused:?}");
    assert!(refused.stderr.contains("--yes"), "{refused:?}");

    let r = env.run(&["destroy", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("Kept (they hold data") && r.stdout.contains("db_cluster.live-stats-db"),
        "{r:?}"
    );
    block_on(async {
        let conf = sdk_config(&env).await;
        let rds = aws_sdk_rds::Client::new(&conf);
        assert_eq!(
            rds.describe_db_clusters()
                .db_cluster_identifier("live-stats-db")
                .send()
                .await
                .unwrap()
                .db_clusters()
                .len(),
            1
        );
        let lambda = aws_sdk_lambda::Client::new(&conf);
        assert!(
            lambda
                .get_function()
                .function_name(STATS_API)
                .send()
                .await
                .is_err(),
            "functions are gone"
        );
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        assert!(cw
            .describe_alarms()
            .alarm_name_prefix("live-stats-local-")
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty());
    });

    let r = env.run(&["destroy", "--yes", "--delete-data"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (_, plan) = env.plan_json();
    assert!(
        pending(&plan).iter().all(|(_, a)| a == "create"),
        "everything is gone: {plan}"
    );
    assert_eq!(pending(&plan).len(), 54);
}

/// Ctrl-C (SIGINT) during a deploy: the call under way completes, the rest is not attempted, the deploy says it
/// was interrupted and releases its lock, and a re-run converges.
#[test]
fn interrupted_deploy_stops_and_resumes() {
    use std::io::{BufRead, BufReader, Read};
    let env = LocalAws::start();
    let mut c = env.statsctl();
    c.args(["deploy", "--output", "json"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("] created ") {
            let pid = i32::try_from(child.id()).unwrap();
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
            break;
        }
        line.clear();
    }
    stderr.read_to_string(&mut seen).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(seen.contains("deploy interrupted after"), "{seen}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcome"]["interrupted"], true, "{report}");
    assert!(
        !report["outcome"]["not_done"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert!(report["outcome"]["failed"].is_null(), "{report}");
    // The lock went with the process; a re-run does the rest.
    assert_eq!(env.deploy().code, 0);
    assert_eq!(env.plan_json().0, 0);
}

/// Ctrl-C during destroy leaves resources behind: that is an error saying so, never exit 0, and a re-run
/// deletes the rest.
#[test]
fn interrupted_destroy_is_not_success_and_resumes() {
    use std::io::{BufRead, BufReader, Read};
    let env = LocalAws::start();
    env.deploy();
    let mut c = env.statsctl();
    c.args(["destroy", "--yes", "--delete-data"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("] deleted ") {
            let pid = i32::try_from(child.id()).unwrap();
            assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
            break;
        }
        line.clear();
    }
    stderr.read_to_string(&mut seen).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(seen.contains("destroy interrupted after"), "{seen}");
    let (_, plan) = env.plan_json();
    let changes = plan["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["action"] == "no_op"),
        "something is left: {plan}"
    );
    let r = env.run(&["destroy", "--yes", "--delete-data"]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// A service canary left split (a deploy killed mid-rollout, made here behind statsctl's back after a rollout
/// and a rollback left both colours): plan and status call it a rollout in progress, not a settled stack, and
/// the next deploy sends all traffic back to the colour that served before, records it, and converges.
#[test]
fn a_service_canary_left_split_is_shown_and_settled_by_the_next_deploy() {
    let env = LocalAws::start();
    env.deploy();
    let image = [(
        "STATS_SERVICE_IMAGE",
        "public.ecr.aws/live-stats/stats-service:0.2.0",
    )];
    let r = env.run_with(&["deploy", "--yes"], &image);
    assert_eq!(r.code, 0, "{r:?}");
    // Green serves 0.2.0; roll back to blue (kept, so at once), then ship 0.2.0 again and "kill" it at 10%.
    let r = env.run(&["rollback", "--service", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    set_listener_weights(
        &env,
        &[
            ("live-stats-local-svc", 90),
            ("live-stats-local-svc-green", 10),
        ],
    );

    let r = env.run_with(&["plan", "--detailed-exitcode"], &image);
    assert_eq!(r.code, 2, "a split listener is not a settled stack: {r:?}");
    assert!(
        r.stdout.contains(
            "unit service.stats-service — rollout in progress (revision live-stats-local-stats-service:2 \
             (stats-service-green) at 10%; revision live-stats-local-stats-service:1 (stats-service) serves the rest)"
        ),
        "{r:?}"
    );
    let r = env.run_with(&["status"], &image);
    assert!(
        r.stdout
            .contains("(rollout in progress: revision live-stats-local-stats-service:2"),
        "{r:?}"
    );

    // The deploy that was killed, run again: first the split goes back, then 0.2.0 ships again as a canary.
    let r = env.run_with(&["deploy", "--yes"], &image);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(
            "service.stats-service: a rollout was left in flight (revision live-stats-local-stats-service:2 \
             (stats-service-green) at 10%); all traffic back on stats-service (live-stats-local-stats-service:1)"
        ),
        "{r:?}"
    );
    let r = env.run_with(&["plan", "--detailed-exitcode"], &image);
    assert_eq!(r.code, 0, "{r:?}");
    let h = env.run(&["history", "--output", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    let h = h.json();
    // Newest first: the canary that shipped 0.2.0 again, and before it the rollback of the split.
    let service: Vec<&serde_json::Value> = h
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unit"] == "service.stats-service")
        .collect();
    assert!(service.len() >= 2, "{h}");
    let (again, rec) = (service[0], service[1]);
    assert_eq!(again["strategy"], "canary", "{again}");
    assert_eq!(again["outcome"], "shipped", "{again}");
    assert_eq!(again["to"], "live-stats-local-stats-service:2", "{again}");
    assert_eq!(rec["strategy"], "rollback", "{rec}");
    assert_eq!(rec["outcome"], "rolled_back", "{rec}");
    assert_eq!(rec["to"], "live-stats-local-stats-service:1", "{rec}");
    assert!(
        rec["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("found a rollout left in flight"),
        "{rec}"
    );
}
