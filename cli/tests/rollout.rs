//! Rollouts against the moto emulator, each test with its own: a function's new configuration ships as a canary
//! on its alias (the `local` environment: 50 %, bake 5 s) and is recorded in the ledger; an alarm set to ALARM
//! during the canary rolls the unit back (exit 2); Ctrl-C during the canary leaves the old version at 100 %; an
//! alarm already firing blocks the deploy unless `--ignore-alarm`; `--unit` with an unknown id lists the ids; a
//! service rollout's promote re-points the service's alarms to the new colour.

mod harness;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};

use harness::*;

const STATS_API: &str = "live-stats-local-stats-api";
const ALARM: &str = "live-stats-local-db-connections";

/// Changes the function's live configuration behind statsctl's back, so the next deploy has a function unit
/// (a new version from the stack's configuration).
fn drift_function(env: &LocalAws) {
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(env).await);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("ROLLOUT_TEST".into(), "drift".into());
        set_function_environment(&lambda, STATS_API, vars).await;
    });
}

/// The alias as read back: (version, additional weights).
fn alias(env: &LocalAws) -> (String, Vec<(String, f64)>) {
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(env).await);
        alias_routing(&lambda, STATS_API, "live").await
    })
}

fn set_alarm(env: &LocalAws, state: aws_sdk_cloudwatch::types::StateValue, reason: &str) {
    block_on(async {
        let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(env).await);
        cw.set_alarm_state()
            .alarm_name(ALARM)
            .state_value(state)
            .state_reason(reason)
            .send()
            .await
            .unwrap();
    });
}

/// Every deploy history record in the ledger bucket, oldest first.
fn history(env: &LocalAws) -> Vec<serde_json::Value> {
    block_on(async {
        let s3 = aws_sdk_s3::Client::new(&sdk_config(env).await);
        let buckets = s3.list_buckets().send().await.unwrap();
        let bucket = buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.starts_with("live-stats-local-ledger-"))
            .expect("the ledger bucket")
            .to_string();
        ledger_objects(&s3, &bucket, "deploys/local/").await
    })
}

/// The newest record of `unit`.
fn last_record(env: &LocalAws, unit: &str) -> serde_json::Value {
    history(env)
        .into_iter()
        .rev()
        .find(|r| r["unit"] == unit)
        .unwrap_or_else(|| panic!("no history record of {unit}"))
}

fn percents(rec: &serde_json::Value) -> Vec<u64> {
    rec["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["percent"].as_u64().unwrap())
        .collect()
}

/// Starts `deploy` in the background and reads its progress until a line contains `marker` (the canary shift);
/// returns the child and what it printed so far.
fn deploy_until(
    env: &LocalAws,
    marker: &str,
) -> (Child, BufReader<std::process::ChildStderr>, String) {
    deploy_with_until(env, &[], marker)
}

/// [`deploy_until`] with extra environment variables for the stack's substitutions.
fn deploy_with_until(
    env: &LocalAws,
    vars: &[(&str, &str)],
    marker: &str,
) -> (Child, BufReader<std::process::ChildStderr>, String) {
    let mut c = env.statsctl();
    c.arg("deploy")
        .envs(vars.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains(marker) {
            return (child, stderr, seen);
        }
        line.clear();
    }
    let _ = child.wait();
    panic!("deploy ended before `{marker}`:\n{seen}");
}

/// Waits for the child and returns (exit code, stdout, all of stderr).
fn finish(
    mut child: Child,
    mut stderr: BufReader<std::process::ChildStderr>,
    mut seen: String,
) -> (Option<i32>, String, String) {
    stderr.read_to_string(&mut seen).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stdout, seen)
}

#[test]
fn a_new_configuration_ships_as_a_canary_and_is_recorded() {
    let env = LocalAws::start();
    env.deploy();
    assert_eq!(alias(&env), ("1".to_string(), vec![]));
    let first = last_record(&env, "function.stats-api");
    assert_eq!(first["strategy"], "first_time", "{first}");
    assert_eq!(first["outcome"], "shipped", "{first}");

    drift_function(&env);
    let r = env.run(&["deploy", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("function.stats-api: 50% → version 2 (bake 5s)"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("function.stats-api: 100% → version 2"),
        "{r:?}"
    );
    assert!(r.stderr.contains("promoted version 2"), "{r:?}");
    // All traffic on the new version, no weights left; version 1 remembered for a rollback.
    assert_eq!(alias(&env), ("2".to_string(), vec![]));
    let report = r.json();
    assert_eq!(report["converged"], true, "{report}");
    let units = report["units"].as_array().unwrap();
    assert_eq!(units.len(), 1, "{report}");
    assert_eq!(units[0]["id"], "function.stats-api");
    assert_eq!(units[0]["status"], "shipped");
    assert_eq!(units[0]["recorded"], true);

    let rec = last_record(&env, "function.stats-api");
    assert_eq!(rec["outcome"], "shipped", "{rec}");
    assert_eq!(rec["strategy"], "canary", "{rec}");
    assert_eq!(rec["from"], "1", "{rec}");
    assert_eq!(rec["to"], "2", "{rec}");
    assert_eq!(percents(&rec), [50, 100], "{rec}");
    let at: Vec<u64> = rec["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["at_ms"].as_u64().unwrap())
        .collect();
    assert!(at[1] >= at[0] + 5_000, "the canary baked 5 s: {rec}");
    assert!(rec["who"].as_str().unwrap().starts_with("arn:"), "{rec}");
    assert_eq!(env.plan_json().0, 0);
}

#[test]
fn an_alarm_during_the_canary_rolls_the_unit_back_and_exits_2() {
    let env = LocalAws::start();
    env.deploy();
    drift_function(&env);
    let (child, stderr, seen) = deploy_until(&env, "function.stats-api: 50% → version 2");
    // The canary is live: half the traffic on the new version, read back through the SDK.
    let (version, weights) = alias(&env);
    assert_eq!(version, "1");
    assert_eq!(weights, vec![("2".to_string(), 0.5)]);
    set_alarm(
        &env,
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "Threshold Crossed: rollout test",
    );
    let (code, _, err) = finish(child, stderr, seen);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unit function.stats-api rolled back")
            && err.contains(ALARM)
            && err.contains("Threshold Crossed: rollout test"),
        "{err}"
    );
    assert!(err.contains("its traffic is back on version 1"), "{err}");
    assert_eq!(alias(&env), ("1".to_string(), vec![]), "{err}");
    let rec = last_record(&env, "function.stats-api");
    assert_eq!(rec["outcome"], "rolled_back", "{rec}");
    assert_eq!(rec["alarm"]["name"], ALARM, "{rec}");
    assert_eq!(percents(&rec), [50, 0], "{rec}");
}

#[test]
fn ctrl_c_during_the_canary_leaves_the_old_version_at_100() {
    let env = LocalAws::start();
    env.deploy();
    drift_function(&env);
    let (child, stderr, seen) = deploy_until(&env, "function.stats-api: 50% → version 2");
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let (code, _, err) = finish(child, stderr, seen);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("all traffic back on version 1"), "{err}");
    assert!(err.contains("deploy interrupted"), "{err}");
    assert_eq!(alias(&env), ("1".to_string(), vec![]), "{err}");
    let rec = last_record(&env, "function.stats-api");
    assert_eq!(rec["outcome"], "interrupted", "{rec}");
    // The lock went with the process, and a re-run converges (version 1 was published from exactly the
    // configuration the drift was undone to, so it is current).
    env.deploy();
    assert_eq!(env.plan_json().0, 0);
    assert_eq!(alias(&env), ("1".to_string(), vec![]));
}

#[test]
fn a_firing_alarm_blocks_the_deploy_unless_ignored_and_unknown_units_are_listed() {
    let env = LocalAws::start();
    env.deploy();
    drift_function(&env);

    let r = env.run(&["deploy", "--unit", "function.stats"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("no unit `function.stats` in the plan; its units are: function.stats-api"),
        "{r:?}"
    );

    set_alarm(
        &env,
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "Threshold Crossed: already firing",
    );
    let r = env.run(&["deploy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(ALARM) && r.stderr.contains("already firing"),
        "{r:?}"
    );
    assert!(r.stderr.contains("nothing was changed"), "{r:?}");
    assert!(
        r.stderr.contains(&format!("--ignore-alarm {ALARM}")),
        "{r:?}"
    );
    assert_eq!(alias(&env), ("1".to_string(), vec![]));
    assert_eq!(env.plan_json().0, 2, "nothing changed");

    // Shipping the fix for what is firing: the alarm is named, the unit ships, the override is recorded.
    let r = env.run(&[
        "deploy",
        "--unit",
        "function.stats-api",
        "--ignore-alarm",
        "db-connections",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(alias(&env), ("2".to_string(), vec![]));
    let rec = last_record(&env, "function.stats-api");
    assert_eq!(rec["outcome"], "shipped", "{rec}");
    assert_eq!(rec["ignored_alarms"], serde_json::json!([ALARM]), "{rec}");
}

#[test]
fn a_rollout_killed_mid_canary_is_rolled_back_by_the_next_deploy() {
    let env = LocalAws::start();
    env.deploy();
    drift_function(&env);
    let (mut child, _stderr, _) = deploy_until(&env, "function.stats-api: 50% → version 2");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(alias(&env), ("1".to_string(), vec![("2".to_string(), 0.5)]));
    // The lock object of the killed deploy stays in the ledger bucket: cleared as its holder is gone.
    let r = env.run(&["deploy", "--break-lock", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(
            "function.stats-api: a rollout was left in flight (version 2 at 50%); rolling back to version 1"
        ),
        "{r:?}"
    );
    assert_eq!(alias(&env), ("1".to_string(), vec![]));
    let rec = last_record(&env, "function.stats-api");
    assert_eq!(rec["outcome"], "rolled_back", "{rec}");
    assert_eq!(rec["strategy"], "rollback", "{rec}");
    assert_eq!(env.plan_json().0, 0);
}

const NEW_IMAGE: &str = "public.ecr.aws/live-stats/stats-service:0.2.0";

#[test]
fn a_function_change_and_a_new_image_ship_as_two_rollouts_in_order_and_history_lists_both() {
    let env = LocalAws::start();
    env.deploy();
    // Blue serves: the service's alarms watch it.
    assert_eq!(
        service_alarms_watch(&env),
        ("stats-service".into(), "live-stats-local-svc".into())
    );
    drift_function(&env);
    let r = env.run_with(
        &["deploy", "--output", "json"],
        &[("STATS_SERVICE_IMAGE", NEW_IMAGE)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let report = r.json();
    let units: Vec<(&str, &str)> = report["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].as_str().unwrap(), u["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        units,
        [
            ("function.stats-api", "shipped"),
            ("service.stats-service", "shipped")
        ],
        "{report}"
    );
    // In order: the function's canary was promoted before the service's first shift.
    let promoted = r
        .stderr
        .find("promoted version 2")
        .expect("function promoted");
    let service_shift = r
        .stderr
        .find("service.stats-service: 50% →")
        .unwrap_or_else(|| panic!("service canary: {}", r.stderr));
    assert!(promoted < service_shift, "{}", r.stderr);
    // All traffic on the green colour now, and the service's alarms watch it (not blue, which has no traffic).
    assert_eq!(
        listener_weights(&env),
        [("live-stats-local-svc-green".to_string(), 100)]
    );
    assert_eq!(
        service_alarms_watch(&env),
        (
            "stats-service-green".into(),
            "live-stats-local-svc-green".into()
        )
    );
    assert!(
        r.stderr.contains(
            "alarms now watch the green colour: ecs-cpu, ecs-memory, target-5xx, unhealthy-hosts"
        ),
        "{}",
        r.stderr
    );

    let h = env.run(&["history", "--output", "json"]);
    assert_eq!(h.code, 0, "{h:?}");
    let records = h.json();
    let records = records.as_array().unwrap();
    let newest = |unit: &str| {
        records
            .iter()
            .find(|r| r["unit"] == unit)
            .unwrap_or_else(|| panic!("{unit} in history: {records:?}"))
    };
    let f = newest("function.stats-api");
    let s = newest("service.stats-service");
    for (rec, from, to) in [
        (f, "1", "2"),
        (
            s,
            "live-stats-local-stats-service:1",
            "live-stats-local-stats-service:2",
        ),
    ] {
        assert_eq!(rec["outcome"], "shipped", "{rec}");
        assert_eq!(rec["strategy"], "canary", "{rec}");
        assert_eq!(rec["from"], from, "{rec}");
        assert_eq!(rec["to"], to, "{rec}");
        assert_eq!(percents(rec), [50, 100], "{rec}");
    }
    // Newest first: the service shipped after the function.
    let pos = |unit: &str| records.iter().position(|r| r["unit"] == unit).unwrap();
    assert!(pos("service.stats-service") < pos("function.stats-api"));
    // With the same stack (the new image), nothing is left to do.
    let plan = env.run_with(
        &["plan", "--detailed-exitcode"],
        &[("STATS_SERVICE_IMAGE", NEW_IMAGE)],
    );
    assert_eq!(plan.code, 0, "{plan:?}");
}

#[test]
fn an_alarm_during_the_service_canary_sends_the_listener_back_to_the_old_colour_and_exits_2() {
    let env = LocalAws::start();
    env.deploy();
    let (child, stderr, seen) = deploy_with_until(
        &env,
        &[("STATS_SERVICE_IMAGE", NEW_IMAGE)],
        "service.stats-service: 50% →",
    );
    // The canary is live: the listener splits 50/50 between the colours, read back from the emulator.
    assert_eq!(
        listener_weights(&env),
        [
            ("live-stats-local-svc".to_string(), 50),
            ("live-stats-local-svc-green".to_string(), 50)
        ]
    );
    set_alarm(
        &env,
        aws_sdk_cloudwatch::types::StateValue::Alarm,
        "Threshold Crossed: service rollout test",
    );
    let (code, _, err) = finish(child, stderr, seen);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("unit service.stats-service rolled back") && err.contains(ALARM),
        "{err}"
    );
    // Everything back on the blue colour, nothing on green.
    assert_eq!(
        listener_weights(&env),
        [("live-stats-local-svc".to_string(), 100)],
        "{err}"
    );
    let rec = last_record(&env, "service.stats-service");
    assert_eq!(rec["outcome"], "rolled_back", "{rec}");
    assert_eq!(rec["alarm"]["name"], ALARM, "{rec}");
    assert_eq!(percents(&rec), [50, 0], "{rec}");
}
