//! `statsctl loadtest` against a local HTTP server the test starts, recorded in the ledger (an S3 bucket in the
//! emulator), and read back by preflight's `loadtest.passed`.

mod harness;

use std::time::Duration;

use harness::*;

fn loadtest(env: &LocalAws, server: &TestServer, extra: &[&str]) -> Run {
    let url = server.url();
    let mut args = vec![
        "loadtest",
        "--target",
        url.as_str(),
        "--stages",
        "ramp:240:1s,hold:240:3s",
        "--viewers",
        "240",
        "--arrival",
        "uniform",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn loadtest_finding(env: &LocalAws) -> serde_json::Value {
    let r = env.run(&["preflight", "--only", "loadtest.passed", "--output", "json"]);
    r.json()["findings"][0].clone()
}

#[test]
fn a_passing_load_test_turns_preflight_green_until_something_new_is_deployed() {
    let env = LocalAws::start();
    env.deploy();
    assert!(loadtest_finding(&env)["summary"]
        .as_str()
        .unwrap()
        .contains("no load test recorded"));

    // Only a run against the stack's own target counts: the local stack's is on STATSCTL_SERVICE_PORT.
    let server = TestServer::start(Duration::from_millis(2), false);
    let port = server.port.to_string();
    let vars = [("STATSCTL_SERVICE_PORT", port.as_str())];
    let finding = || {
        let r = env.run_with(
            &["preflight", "--only", "loadtest.passed", "--output", "json"],
            &vars,
        );
        r.json()["findings"][0].clone()
    };
    // The audience preflight requires: 200 × headroom 1.2 = 240 held for min_hold (5s), spiking × 3.
    let r = env.run_with(
        &[
            "loadtest",
            "--stages",
            "ramp:240:1s,hold:240:5s,spike:720:1s,hold:720:1s",
            "--arrival",
            "uniform",
            "--output",
            "json",
        ],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["verdict"]["passed"], true, "{j}");
    // 240 viewers polling every 5 s for ~6 s, then 720 for ~2 s: roughly 500 requests, all answered.
    let ok = j["result"]["ok"].as_u64().unwrap();
    assert!((300..=700).contains(&ok), "{ok}");
    assert_eq!(j["result"]["failed"], 0);
    assert!(
        j["recorded"]
            .as_str()
            .unwrap()
            .starts_with("loadtests/local/"),
        "{j}"
    );

    let f = finding();
    assert_eq!(f["status"], "pass", "{f}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("passed at 240 viewers"),
        "{f}"
    );

    // A new version of stats-api: the recorded test no longer proves what is deployed.
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        let c = lambda
            .get_function_configuration()
            .function_name("live-stats-local-stats-api")
            .send()
            .await
            .unwrap();
        let mut vars = c.environment().unwrap().variables().unwrap().clone();
        vars.insert("LOG_LEVEL".into(), "debug".into());
        lambda
            .update_function_configuration()
            .function_name("live-stats-local-stats-api")
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(vars))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    env.deploy();
    let f = finding();
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("deployed since the newest test: live-stats-local-stats-api"),
        "{f}"
    );
}

#[test]
fn failing_server_fails_the_verdict_and_records_it() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::ZERO, true);
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.svg");
    let r = loadtest(&env, &server, &["--chart", chart.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    let j = r.json();
    assert_eq!(j["verdict"]["passed"], false);
    assert!(
        j["verdict"]["violations"][0]
            .as_str()
            .unwrap()
            .starts_with("error rate"),
        "{j}"
    );
    assert!(j["result"]["errors"]["status_503"].as_u64().unwrap() > 0);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("p99 latency"));
    // Recorded as failed: preflight says so.
    let f = loadtest_finding(&env);
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"]
            .to_string()
            .contains("the newest load test failed its thresholds"),
        "{f}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let env = LocalAws::start();
    for (args, want) in [
        (
            vec![
                "loadtest",
                "--target",
                "https://example.com/",
                "--no-record",
            ],
            "only http:// targets",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--stages",
                "jump:1:1s",
                "--no-record",
            ],
            "unknown kind `jump`",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--arrival",
                "bursty",
                "--no-record",
            ],
            "is not `uniform` or `waves:COUNT:SPREAD`",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--arrival",
                "waves:x:1s",
                "--no-record",
            ],
            "`x` is not a wave count",
        ),
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
    }
}

#[test]
fn a_pool_queues_polls_and_the_wait_shows_in_latency() {
    let env = LocalAws::start();
    // 50 ms a request; 120 viewers poll in one wave. On their own connections they are answered in parallel; a
    // pool of one connection per worker answers them one after another (6 s on one core: hence the timeout),
    // and the wait is measured from the schedule.
    let server = TestServer::start(Duration::from_millis(50), false);
    let url = server.url();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "loadtest",
            "--target",
            url.as_str(),
            "--stages",
            "hold:120:1s",
            "--viewers",
            "120",
            "--arrival",
            "waves:1:10ms",
            "--timeout",
            "20s",
            "--no-record",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let r = env.run(&args);
        // 0 or 2: the queue may well break the stack's latency thresholds.
        assert!(r.code == 0 || r.code == 2, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"]["passed"], r.code == 0, "{j}");
        assert_eq!(j["result"]["failed"], 0, "{j}");
        assert_eq!(j["result"]["ok"], 120, "{j}");
        j["result"]["latency_ms"]["p99"].as_f64().unwrap()
    };
    let own = run(&[]);
    let pooled = run(&["--pool", "1"]);
    eprintln!(
        "p99: {own} ms on their own connections, {pooled} ms through a pool of one per worker"
    );
    assert!(
        pooled > 3.0 * own,
        "pooled p99 {pooled} ms vs {own} ms on the viewers' own connections"
    );
}
