//! The load-test gate through the real binary: a tiny run is recorded as what it was and cannot make preflight's
//! `loadtest.passed` pass; a run at the required audience against the stack's own target can. And credentials in
//! a target URL are refused before anything is sent, without being printed.

mod harness;

use std::time::Duration;

use harness::*;
use statsctl_core::ledger::LoadTestRecord;

/// The local stack's target is `http://127.0.0.1:${STATSCTL_SERVICE_PORT}/matches/1/stats`: pointed at a test
/// server, a run without `--target` loads the stack's own target (lighter on the CPU than the real service).
fn stack_target(server: &TestServer) -> Vec<(&'static str, String)> {
    vec![("STATSCTL_SERVICE_PORT", server.port.to_string())]
}

fn run(env: &LocalAws, args: &[&str], vars: &[(&'static str, String)]) -> Run {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.run_with(args, &vars)
}

/// The ledger's load-test records for `local`, newest first, read as preflight reads them.
fn ledger(env: &LocalAws) -> Vec<LoadTestRecord> {
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    block_on(async {
        let aws = statsctl_aws::Aws::connect(&statsctl_aws::Target {
            region: "us-east-1".into(),
            profile: None,
            endpoint_url: Some(env.endpoint()),
            ..Default::default()
        })
        .await;
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        let bucket = buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.starts_with("live-stats-local-ledger-"))
            .expect("deploy created the ledger bucket")
            .to_string();
        statsctl_aws::ledger::read(&aws, &bucket, "loadtests", "local", 10)
            .await
            .unwrap()
    })
}

#[test]
fn a_tiny_run_cannot_pass_the_gate_and_a_run_at_the_required_audience_can() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::ZERO, false);
    let vars = stack_target(&server);
    let target = format!("http://127.0.0.1:{}/matches/1/stats", server.port);

    // 20 viewers for 6 s against the stack's own target: it passes its thresholds, and is recorded as what it was.
    let r = run(
        &env,
        &["loadtest", "--stages", "hold:20:6s", "--arrival", "uniform"],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("does not count for preflight")
            && r.stdout.contains("it held 20 viewers for")
            && r.stdout
                .contains("needs 240 (200 expected × headroom 1.2) held for 5s")
            && r.stdout.contains("needs a spike to 720"),
        "the run says it does not count, and which bar it missed: {r:?}"
    );
    let records = ledger(&env);
    assert_eq!(records.len(), 1, "{records:?}");
    let tiny = &records[0];
    assert_eq!(
        tiny.viewers, 20,
        "the viewers held, not --viewers: {tiny:?}"
    );
    assert!((5..=6).contains(&tiny.held_secs), "{tiny:?}");
    assert_eq!(tiny.peak_viewers, 20, "{tiny:?}");
    assert!(tiny.passed && !tiny.counts_for_preflight, "{tiny:?}");
    assert_eq!(tiny.targets, vec![target.clone()]);
    assert_eq!(tiny.arrival, "uniform");
    assert_eq!(tiny.stages.len(), 1);
    assert_eq!(tiny.stages[0].viewers, 20);

    let pre = run(&env, &["preflight", "--only", "loadtest.passed"], &vars);
    assert_eq!(pre.code, 2, "{pre:?}");
    assert!(
        pre.stdout.contains("it held 20 viewers for")
            && pre.stdout.contains("needs 240")
            && pre.stdout.contains("needs a spike to 720"),
        "preflight names what was missing: {pre:?}"
    );

    // The default profile at the required audience (200 × 1.2 = 240, spiking to 720), held 6 s (≥ min_hold 5s).
    let r = run(
        &env,
        &[
            "loadtest",
            "--ramp",
            "1s",
            "--hold",
            "6s",
            "--arrival",
            "uniform",
            "--output",
            "json",
        ],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["counts_for_preflight"], true, "{j}");
    assert_eq!(j["peak_viewers"], 720, "{j}");
    let records = ledger(&env);
    assert_eq!(records.len(), 2);
    let full = records.iter().find(|r| r.peak_viewers == 720).unwrap();
    assert!(
        full.counts_for_preflight && full.does_not_count.is_empty(),
        "{full:?}"
    );
    assert!(
        statsctl_core::ledger::held_secs(&full.timeline, 240) >= 5,
        "{full:?}"
    );

    let pre = run(&env, &["preflight", "--only", "loadtest.passed"], &vars);
    assert_eq!(pre.code, 0, "{pre:?}");
    assert!(pre.stdout.contains("passed at"), "{pre:?}");

    // A target outside the stack is ad hoc, and says so.
    let other = TestServer::start(Duration::ZERO, false);
    let other_url = other.url();
    let r = run(
        &env,
        &[
            "loadtest",
            "--target",
            &other_url,
            "--stages",
            "hold:20:1s",
            "--arrival",
            "uniform",
            "--output",
            "json",
        ],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["counts_for_preflight"], false, "{j}");
    assert!(
        j["does_not_count"].to_string().contains(&format!(
            "it loaded {other_url} — not the stack's `loadtest.targets`"
        )),
        "{j}"
    );
}

#[test]
fn min_hold_must_be_at_least_a_second() {
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    let from = "  min_hold: 5m\n";
    assert_eq!(text.matches(from).count(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, text.replace(from, "  min_hold: 0s\n")).unwrap();
    let mut c = statsctl();
    c.args(["validate", "--env", "prod", "--stack"]).arg(&path);
    let r = harness::run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("`min_hold` is 0s — out of range")
            && r.stderr.contains("hint: min_hold is 1s–24h"),
        "{r:?}"
    );
}

/// `./quickstart` runs `statsctl loadtest --ramp 5s --hold 12s` on the `local` environment as shipped (its page-load
/// waves included) and expects `loadtest.passed` to pass afterwards: the run must meet the bar. Only the bar is
/// asserted here; whether this machine meets the latency thresholds at that moment is the verdict's business.
#[test]
fn the_quick_starts_load_test_meets_the_bar() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::ZERO, false);
    let r = run(
        &env,
        &[
            "loadtest", "--ramp", "5s", "--hold", "12s", "--output", "json",
        ],
        &stack_target(&server),
    );
    assert!(r.code == 0 || r.code == 2, "{r:?}");
    let j = r.json();
    let missed: Vec<&str> = j["does_not_count"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m.as_str()).collect())
        .unwrap_or_default();
    assert!(
        missed.iter().all(|m| *m == "it failed its thresholds"),
        "the quick start's run meets preflight's bar: {missed:?}"
    );
    assert_eq!(j["peak_viewers"], 720, "{j}");
}
#[test]
fn credentials_in_a_target_are_refused_and_never_printed() {
    // A listener that would see any request: nothing may reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("http://ops:hunter2@127.0.0.1:{port}/matches/1/stats");
    for output in ["human", "json"] {
        let mut c = statsctl();
        c.args([
            "--env", "local", "--output", output, "loadtest", "--target", &url,
        ]);
        let r = harness::run(c);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains("has credentials in it") && r.stderr.contains("hint:"),
            "{r:?}"
        );
        assert!(
            !r.stdout.contains("hunter2") && !r.stderr.contains("hunter2"),
            "the password is never printed: {r:?}"
        );
    }
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing was sent"
    );

    // In the stack file too: refused by validation, the offending line shown masked.
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    let from = "${STATS_URL:-https://stats.example.com}/matches/1/stats";
    assert_eq!(text.matches(from).count(), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(
        &path,
        text.replace(from, "http://ops:hunter2@stats.example.com/matches/1/stats"),
    )
    .unwrap();
    let mut c = statsctl();
    c.args(["validate", "--env", "prod", "--stack"]).arg(&path);
    let r = harness::run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("has credentials in it")
            && r.stderr.contains("http://***@stats.example.com"),
        "{r:?}"
    );
    assert!(!format!("{r:?}").contains("hunter2"), "{r:?}");
}

#[test]
fn a_run_stopped_early_records_the_stage_as_it_ran_not_as_asked() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::ZERO, false);
    // Asked for 60 s, stopped by --max-duration after 3 s: the record says 3 s, never 60.
    let r = run(
        &env,
        &[
            "loadtest",
            "--stages",
            "hold:20:60s",
            "--arrival",
            "uniform",
            "--max-duration",
            "3s",
        ],
        &stack_target(&server),
    );
    assert!(r.code == 0 || r.code == 2, "{r:?}");
    let records = ledger(&env);
    assert_eq!(records.len(), 1, "{records:?}");
    let rec = &records[0];
    assert_eq!(rec.stages.len(), 1, "{rec:?}");
    assert!(
        rec.stages[0].duration_secs <= 5.0,
        "the stage ran about 3 s of its 60: {rec:?}"
    );
    assert!(rec.held_secs <= 5, "{rec:?}");
    assert!(!rec.insecure && !rec.counts_for_preflight, "{rec:?}");
}
