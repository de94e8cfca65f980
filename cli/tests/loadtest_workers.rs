//! `statsctl loadtest --workers N --runner local`: worker processes run disjoint shards against a local server,
//! the coordinator merges their results exactly and records one ledger entry; a worker that never reports or is
//! killed fails the run naming it, and no worker process outlives the coordinator.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use harness::*;
use statsctl_loadtest::part::{merge, PartResult};
use statsctl_loadtest::shard::scheduled_per_second;
use statsctl_loadtest::{Arrival, LoadTestResult, Percentiles, Profile, Shard, Stage};

const STAGES: &str = "ramp:90:1s,hold:90:3s";

/// The schedule a single process would run for `STAGES` (seed 1, uniform arrival): what the workers must add up
/// to, request for request.
fn single_run_schedule(poll_secs: f64) -> u64 {
    let stages = vec![
        Stage::ramp("ramp 1", 90, Duration::from_secs(1)),
        Stage::hold("hold 2", 90, Duration::from_secs(3)),
    ];
    let profile = Profile {
        targets: vec![],
        poll_interval: Duration::from_secs_f64(poll_secs),
        arrival: Arrival::Uniform,
        stages,
        timeout: Duration::from_secs(5),
        pool: None,
        max_duration: Duration::from_secs(900),
        max_requests: 10_000_000,
        seed: 1,
        workers: 1,
        insecure: false,
    };
    scheduled_per_second(&profile, Shard::WHOLE, Duration::from_secs(4))
        .iter()
        .sum()
}

fn pid_alive(pid: i32) -> bool {
    // A zombie is not running either: it has exited and only waits to be reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn three_local_workers_merge_exactly_into_the_single_runs_schedule() {
    let server = TestServer::start(Duration::from_millis(1), false);
    let runs = tempfile::tempdir().unwrap();
    let url = server.url();
    let mut c = statsctl();
    c.env("STATSCTL_RUNS_DIR", runs.path()).args([
        "--env",
        "local",
        "loadtest",
        "--workers",
        "3",
        "--runner",
        "local",
        "--target",
        &url,
        "--stages",
        STAGES,
        "--arrival",
        "uniform",
        "--no-record",
        "--output",
        "json",
    ]);
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    let res = &j["result"];
    let workers = j["run"]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{j}");
    // Merged counts are the workers' summed, and the whole is the single run's schedule.
    for key in ["scheduled", "ok", "failed", "late"] {
        let sum: u64 = workers.iter().map(|w| w[key].as_u64().unwrap()).sum();
        assert_eq!(res[key].as_u64().unwrap(), sum, "{key}: {j}");
    }
    let poll = res["poll_interval_secs"].as_f64().unwrap();
    let whole = single_run_schedule(poll);
    assert!(whole > 0);
    assert_eq!(res["scheduled"].as_u64().unwrap(), whole, "{j}");
    assert_eq!(
        res["ok"].as_u64().unwrap() + res["failed"].as_u64().unwrap(),
        whole
    );

    // The stored worker results, in the standard serialized form, merge into exactly what was printed: the
    // percentiles come from added histograms, never averaged ones.
    let run_id = j["run"]["id"].as_str().unwrap();
    let dir = runs.path().join(run_id);
    let parts: Vec<PartResult> = (1..=3)
        .map(|k| {
            let bytes = std::fs::read(dir.join(format!("worker-{k}.json"))).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect();
    let shards: Vec<String> = parts.iter().map(|p| p.shard.to_string()).collect();
    assert_eq!(shards, ["1/3", "2/3", "3/3"]);
    let merged = merge(&parts, 2).unwrap();
    let printed: LoadTestResult = serde_json::from_value(res.clone()).unwrap();
    assert_eq!(
        Percentiles::of(&merged.recorder.latency),
        printed.latency_ms,
        "{j}"
    );
    assert_eq!(
        merged.recorder.latency.len(),
        printed.ok,
        "every answer is in the merged histogram once"
    );
    for (part, line) in parts.iter().zip(workers) {
        assert_eq!(line["scheduled"].as_u64().unwrap(), part.scheduled);
        // Each worker ran its own shard of the schedule, and nothing else.
        let own: u64 = scheduled_per_second(
            &Profile {
                targets: vec![],
                poll_interval: Duration::from_secs_f64(poll),
                arrival: Arrival::Uniform,
                stages: vec![
                    Stage::ramp("ramp 1", 90, Duration::from_secs(1)),
                    Stage::hold("hold 2", 90, Duration::from_secs(3)),
                ],
                timeout: Duration::from_secs(5),
                pool: None,
                max_duration: Duration::from_secs(900),
                max_requests: 10_000_000,
                seed: 1,
                workers: 1,
                insecure: false,
            },
            part.shard,
            Duration::from_secs(4),
        )
        .iter()
        .sum();
        assert_eq!(part.scheduled, own, "worker {}", part.shard);
    }
    // Every worker process has ended.
    for w in workers {
        let pid: i32 = w["worker"]
            .as_str()
            .unwrap()
            .trim_start_matches("pid ")
            .parse()
            .unwrap();
        assert!(!pid_alive(pid), "worker pid {pid} is still running");
    }
}

#[test]
fn a_distributed_run_is_recorded_once_with_the_merged_timeline() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::from_millis(1), false);
    let url = server.url();
    let r = env.run(&[
        "loadtest",
        "--workers",
        "2",
        "--runner",
        "local",
        "--target",
        &url,
        "--stages",
        STAGES,
        "--arrival",
        "uniform",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    // Recorded in the ledger bucket, the run's objects beside it.
    assert!(
        j["recorded"]
            .as_str()
            .unwrap()
            .starts_with("loadtests/local/"),
        "{j}"
    );
    let store = j["run"]["store"].as_str().unwrap();
    assert!(
        store.starts_with("s3://live-stats-local-ledger-") && store.contains("/loadtest-runs/"),
        "{store}"
    );
    // What the ledger keeps is the merged run: its held viewers come from the merged timeline.
    let res = &j["result"];
    let poll = res["poll_interval_secs"].as_f64().unwrap();
    assert_eq!(
        res["scheduled"].as_u64().unwrap(),
        single_run_schedule(poll)
    );
    assert_eq!(j["viewers"], 90, "{j}");
    assert_eq!(j["held_secs"], 3, "{j}");
    let timeline_requests: u64 = res["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(timeline_requests, res["scheduled"].as_u64().unwrap());
}

/// Starts a 3-worker run (a few seconds long, nothing recorded) and returns it with each worker's pid, read
/// from the coordinator's progress lines.
fn start_three_workers(
    server: &TestServer,
    runs: &std::path::Path,
    stages: &str,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    Vec<i32>,
) {
    let url = server.url();
    let mut c = statsctl();
    c.env("STATSCTL_RUNS_DIR", runs)
        .args([
            "--env",
            "local",
            "loadtest",
            "--workers",
            "3",
            "--runner",
            "local",
            "--target",
            &url,
            "--stages",
            stages,
            "--arrival",
            "uniform",
            "--timeout",
            "1s",
            "--no-record",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut pids = vec![];
    let mut line = String::new();
    while pids.len() < 3 {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the coordinator ended before starting its workers");
        }
        if let Some((_, pid)) = line.trim().split_once(": pid ") {
            pids.push(pid.parse().unwrap());
        }
    }
    (child, err, pids)
}

fn rest_of(mut err: BufReader<std::process::ChildStderr>) -> String {
    let mut s = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut s);
    s
}

#[test]
fn a_worker_that_never_reports_fails_the_run_naming_it_and_none_is_left_behind() {
    let server = TestServer::start(Duration::from_millis(1), false);
    let runs = tempfile::tempdir().unwrap();
    let (mut child, err, pids) = start_three_workers(&server, runs.path(), "hold:30:2s");
    // Worker 2 hangs: stopped, it neither reports nor exits.
    unsafe {
        libc::kill(pids[1], libc::SIGSTOP);
    }
    let status = child.wait().unwrap();
    let stderr = rest_of(err);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "worker 2/3 (pid {}) never reported within the run's deadline",
            pids[1]
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    for pid in pids {
        assert!(!pid_alive(pid), "worker pid {pid} was left running");
    }
}

#[test]
fn a_killed_worker_fails_the_run_naming_it() {
    let server = TestServer::start(Duration::from_millis(1), false);
    let runs = tempfile::tempdir().unwrap();
    let (mut child, err, pids) = start_three_workers(&server, runs.path(), "hold:30:6s");
    unsafe {
        libc::kill(pids[0], libc::SIGKILL);
    }
    let status = child.wait().unwrap();
    let stderr = rest_of(err);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "worker 1/3 (pid {}) was killed by signal 9",
            pids[0]
        )),
        "{stderr}"
    );
    for pid in pids {
        assert!(!pid_alive(pid), "worker pid {pid} was left running");
    }
}

#[test]
fn ctrl_c_stops_every_worker_and_still_reports_what_ran() {
    let server = TestServer::start(Duration::from_millis(1), false);
    let runs = tempfile::tempdir().unwrap();
    // Long enough that only Ctrl-C ends it in time.
    let (mut child, err, pids) = start_three_workers(&server, runs.path(), "hold:30:120s");
    std::thread::sleep(Duration::from_secs(4));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let stderr = rest_of(err);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "Ctrl-C did not stop the run"
    );
    // Stopped early: reported as such (the verdict is the thresholds', exit 0 or 2, never an error).
    assert!(matches!(status.code(), Some(0 | 2)), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("stopped early: stopped on request"),
        "{stdout}"
    );
    assert!(stdout.contains("3/3"), "{stdout}");
    for pid in pids {
        assert!(!pid_alive(pid), "worker pid {pid} was left running");
    }
}
