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
    // Pass or fail is the thresholds' (latency on a busy machine varies); the counts below are exact.
    assert!(matches!(r.code, 0 | 2), "{r:?}");
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
    // Percentiles are histogram values and compare exactly; the mean is a float that went through JSON, whose
    // shortest form may differ in the last digit.
    let (mut want, got) = (
        Percentiles::of(&merged.recorder.latency),
        printed.latency_ms,
    );
    assert!(
        (want.mean - got.mean).abs() <= 1e-9 * want.mean.abs(),
        "{j}"
    );
    want.mean = got.mean;
    assert_eq!(want, got, "{j}");
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
    // Pass or fail is the thresholds' (latency on a busy machine varies); the counts below are exact.
    assert!(matches!(r.code, 0 | 2), "{r:?}");
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

/// A recording proxy in front of the emulator: forwards every request to it, one request a connection, and keeps
/// the bodies of ECS calls by operation (`X-Amz-Target`), so a test sees exactly what statsctl asked for.
struct Recorder {
    port: u16,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

fn record_ecs_calls(upstream: String) -> Recorder {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = calls.clone();
    let upstream = upstream.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut client) = stream else { continue };
            let kept = kept.clone();
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                let mut target = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("x-amz-target:") {
                        target = v.trim().rsplit('.').next().unwrap_or_default().to_string();
                    }
                    if lower.starts_with("connection:") {
                        continue;
                    }
                    if line == "\r\n" {
                        head.push_str("Connection: close\r\n\r\n");
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if !target.is_empty() {
                    if let Ok(json) = serde_json::from_slice(&body) {
                        kept.lock().unwrap().push((target.clone(), json));
                    }
                }
                let Ok(mut up) = std::net::TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = up.write_all(head.as_bytes());
                let _ = up.write_all(&body);
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer);
                if !target.is_empty() {
                    answer = fix_ecs_answer(answer);
                }
                let _ = client.write_all(&answer);
            });
        }
    });
    Recorder { port, calls }
}

/// This emulator answers a task's containers' `cpu` and `memory` as numbers where ECS sends strings, which the
/// AWS SDK rightly refuses: rewritten here so the calls can be checked end to end.
fn fix_ecs_answer(answer: Vec<u8>) -> Vec<u8> {
    let Some(split) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer;
    };
    let (head, body) = (&answer[..split], &answer[split + 4..]);
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return answer;
    };
    let fix = |task: &mut serde_json::Value| {
        if let Some(serde_json::Value::Array(containers)) = task.get_mut("containers") {
            for c in containers {
                for key in ["cpu", "memory"] {
                    if let Some(v) = c.get_mut(key) {
                        if v.is_number() {
                            *v = serde_json::Value::String(v.to_string());
                        }
                    }
                }
            }
        }
    };
    if let Some(serde_json::Value::Array(list)) = json.get_mut("tasks") {
        list.iter_mut().for_each(fix);
    }
    if let Some(task) = json.get_mut("task") {
        fix(task);
    }
    let body = serde_json::to_vec(&json).unwrap();
    let head: String = String::from_utf8_lossy(head)
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let mut out = format!("{head}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend(body);
    out
}

#[test]
fn ecs_workers_are_tasks_in_the_services_network_and_ctrl_c_stops_them() {
    use aws_sdk_ecs::types::{Compatibility, ContainerDefinition};
    let env = LocalAws::start();
    env.deploy();
    // A load-generator task definition registered by hand (the shipped local stack asks for no workers, so deploy
    // registers none), without awsvpc only because this emulator fails RunTask of awsvpc tasks (HTTP 500): here
    // the run must get as far as Ctrl-C. The requests are checked as sent.
    block_on(async {
        let ecs = aws_sdk_ecs::Client::new(&sdk_config(&env).await);
        ecs.register_task_definition()
            .family("live-stats-local-loadgen")
            .requires_compatibilities(Compatibility::Ec2)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("loadgen")
                    .image("statsctl:test")
                    .memory(512)
                    .essential(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let server = TestServer::start(Duration::from_millis(1), false);
    let url = server.url();
    let proxy = record_ecs_calls(env.endpoint());
    let mut c = env.statsctl();
    c.args([
        "--endpoint-url",
        &format!("http://127.0.0.1:{}", proxy.port),
        "loadtest",
        "--workers",
        "2",
        "--runner",
        "ecs",
        "--target",
        &url,
        "--stages",
        "hold:10:2s",
        "--arrival",
        "uniform",
        "--timeout",
        "1s",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut tasks = vec![];
    let mut seen = String::new();
    while tasks.len() < 2 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the coordinator ended before starting its tasks:\n{seen}");
        }
        seen.push_str(&line);
        if let Some((_, arn)) = line.trim().split_once(": task ") {
            tasks.push(arn.to_string());
        }
    }
    // The emulator never runs the containers: Ctrl-C, and every task must be stopped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let stderr = rest_of(err);
    assert_eq!(status.code(), Some(1), "{seen}{stderr}");
    for (k, arn) in tasks.iter().enumerate() {
        assert!(
            stderr.contains(&format!("worker {}/2 (task {arn})", k + 1)),
            "{stderr}"
        );
    }
    assert!(stderr.contains("never reported"), "{stderr}");

    block_on(async {
        let conf = sdk_config(&env)
            .await
            .into_builder()
            .endpoint_url(format!("http://127.0.0.1:{}", proxy.port))
            .build();
        let ecs = aws_sdk_ecs::Client::new(&conf);
        let cluster = tasks[0].split('/').nth(1).unwrap().to_string();
        let svc = ecs
            .describe_services()
            .cluster(&cluster)
            .services("stats-service")
            .send()
            .await
            .unwrap();
        let net = svc.services()[0]
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .unwrap()
            .clone();
        let calls = proxy.calls.lock().unwrap().clone();
        let run_tasks: Vec<&serde_json::Value> = calls
            .iter()
            .filter(|(op, _)| op == "runtask")
            .map(|(_, body)| body)
            .collect();
        assert_eq!(run_tasks.len(), 2, "one RunTask a worker: {calls:?}");
        let mut shards = vec![];
        for req in run_tasks {
            assert_eq!(req["taskDefinition"], "live-stats-local-loadgen", "{req}");
            assert_eq!(req["count"], 1, "{req}");
            assert_eq!(req["launchType"], "FARGATE", "{req}");
            assert_eq!(req["cluster"], cluster.as_str(), "{req}");
            // In the service's network.
            let vpc = &req["networkConfiguration"]["awsvpcConfiguration"];
            let list = |v: &serde_json::Value| -> Vec<String> {
                let mut l: Vec<String> = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
                l.sort();
                l
            };
            let mut want_subnets = net.subnets().to_vec();
            want_subnets.sort();
            let mut want_sgs = net.security_groups().to_vec();
            want_sgs.sort();
            assert_eq!(list(&vpc["subnets"]), want_subnets, "{req}");
            assert_eq!(list(&vpc["securityGroups"]), want_sgs, "{req}");
            // The command carries the shard, the start time, the run id and the store.
            let o = &req["overrides"]["containerOverrides"][0];
            assert_eq!(o["name"], "loadgen");
            let cmd: Vec<String> = o["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            let after = |flag: &str| {
                cmd.iter()
                    .position(|a| a == flag)
                    .map(|i| cmd[i + 1].clone())
                    .unwrap_or_else(|| panic!("no {flag} in {cmd:?}"))
            };
            assert_eq!(cmd[0], "loadtest");
            shards.push(after("--shard"));
            assert!(after("--start-at").parse::<u64>().is_ok());
            assert_eq!(after("--run-id"), req["startedBy"].as_str().unwrap());
            assert!(after("--run-store").starts_with("s3://live-stats-local-ledger-"));
        }
        // Both stopped: StopTask for each, and the emulator says so.
        let stopped: Vec<String> = calls
            .iter()
            .filter(|(op, _)| op == "stoptask")
            .map(|(_, body)| body["task"].as_str().unwrap().to_string())
            .collect();
        for arn in &tasks {
            assert!(stopped.contains(arn), "{arn} not stopped: {stopped:?}");
        }
        let described = ecs
            .describe_tasks()
            .cluster(&cluster)
            .set_tasks(Some(tasks.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(described.tasks().len(), 2);
        for t in described.tasks() {
            assert_eq!(t.last_status(), Some("STOPPED"), "{t:?}");
        }
        shards.sort();
        assert_eq!(shards, ["1/2", "2/2"]);
    });
}

#[test]
fn loadtest_workers_in_the_stack_file_is_validated() {
    let shipped = std::fs::read_to_string(shipped_stack()).unwrap();
    assert!(shipped.contains("  min_hold: 5m\n"));
    let dir = tempfile::tempdir().unwrap();
    let check = |workers: &str| {
        let path = dir.path().join("stack.yaml");
        std::fs::write(
            &path,
            shipped.replacen(
                "  min_hold: 5m\n",
                &format!("  min_hold: 5m\n  workers: {workers}\n  image: statsctl:0.1.0\n"),
                1,
            ),
        )
        .unwrap();
        let mut c = statsctl();
        c.arg("--stack")
            .arg(&path)
            .args(["validate", "--env", "prod"]);
        run(c)
    };
    let r = check("4");
    assert_eq!(r.code, 0, "{r:?}");
    for bad in ["0", "257"] {
        let r = check(bad);
        assert_eq!(r.code, 1, "{bad}: {r:?}");
        assert!(
            r.stderr.contains(&format!(
                "`workers` is {bad}, but must be between 1 and 256"
            )),
            "{r:?}"
        );
    }
    // And on the command line, before anything runs.
    let mut c = statsctl();
    c.args([
        "--env",
        "local",
        "loadtest",
        "--workers",
        "0",
        "--no-record",
    ]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--workers"), "{r:?}");
}

#[test]
fn worker_mode_refuses_bad_input_before_anything_runs() {
    let runs = tempfile::tempdir().unwrap();
    let store = runs.path().display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["--shard", "4/3"], "is not a shard like 2/3"),
        (
            &["--shard", "1/3"],
            "--shard needs --start-at, --run-id and --run-store",
        ),
        (
            &[
                "--shard",
                "1/3",
                "--start-at",
                "1",
                "--run-id",
                "../etc",
                "--run-store",
                &store,
            ],
            "--run-id `../etc` is not a run id",
        ),
        (
            &[
                "--shard",
                "1/3",
                "--start-at",
                "99999999999999",
                "--run-id",
                "r-1",
                "--run-store",
                &store,
            ],
            "a worker waits at most 600s",
        ),
        (
            &[
                "--shard",
                "1/3",
                "--start-at",
                "1",
                "--run-id",
                "r-1",
                "--run-store",
                &store,
            ],
            "run r-1 has no profile in",
        ),
    ];
    for (args, want) in cases {
        let mut c = statsctl();
        c.arg("loadtest").args(args);
        let r = run(c);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
        assert!(r.stderr.contains("hint:"), "{args:?}: {r:?}");
    }
    // Nothing was written for the run.
    assert!(!runs.path().join("r-1").exists());
}

/// The shipped stack with `loadtest.workers: 3` and an image, in a temp directory (its functions linked beside it).
fn stack_with_workers(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(shipped_stack()).unwrap();
    assert!(shipped.contains("  min_hold: 5m\n"));
    let text = shipped.replacen(
        "  min_hold: 5m\n",
        "  min_hold: 5m\n  workers: 3\n  image: statsctl:0.1.0\n",
        1,
    );
    let path = dir.join("stacks/live-stats.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::os::unix::fs::symlink(repo_root().join("functions"), dir.join("functions")).unwrap();
    path
}

#[test]
fn deploy_registers_the_loadgen_task_definition_the_ecs_runner_runs_and_destroy_removes_it() {
    let env = LocalAws::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_with_workers(dir.path());
    let stack = stack.to_str().unwrap();
    let family = "live-stats-local-loadgen";

    let plan = env.run(&["--stack", stack, "plan", "--output", "json"]);
    assert!(plan.code == 0 || plan.code == 2, "{plan:?}");
    let wanted = pending(&plan.json());
    for key in [
        format!("task_definition.{family}"),
        format!("iam_role.{family}"),
    ] {
        assert!(
            wanted.contains(&(key.clone(), "create".into())),
            "{key}: {wanted:?}"
        );
    }
    let r = env.run(&["--stack", stack, "deploy"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Read back as registered: family, image, command, logs, role, Fargate sizes.
    block_on(async {
        let ecs = aws_sdk_ecs::Client::new(&sdk_config(&env).await);
        let td = ecs
            .describe_task_definition()
            .task_definition(family)
            .send()
            .await
            .unwrap();
        let td = td.task_definition().unwrap();
        assert_eq!(td.family(), Some(family));
        assert_eq!((td.cpu(), td.memory()), (Some("2048"), Some("4096")));
        assert!(
            td.task_role_arn().unwrap().ends_with(&format!("/{family}")),
            "{td:?}"
        );
        let c = &td.container_definitions()[0];
        assert_eq!(c.name(), Some("loadgen"));
        assert_eq!(c.image(), Some("statsctl:0.1.0"));
        assert_eq!(c.command(), ["loadtest", "--shard", "1/1"]);
        let logs = c.log_configuration().unwrap();
        assert_eq!(
            logs.options()
                .unwrap()
                .get("awslogs-group")
                .map(String::as_str),
            Some("/statsctl/live-stats-local-loadgen")
        );
    });
    // Deployed means nothing left to do: what observe reads back is what the stack wants.
    let again = env.run(&[
        "--stack",
        stack,
        "plan",
        "--detailed-exitcode",
        "--output",
        "json",
    ]);
    assert_eq!(again.code, 0, "{:?}", pending(&again.json()));

    // `loadtest --runner ecs` runs tasks of that family (the emulator refuses to run awsvpc tasks: the requests
    // are what is checked, and the run fails cleanly).
    let server = TestServer::start(Duration::from_millis(1), false);
    let proxy = record_ecs_calls(env.endpoint());
    let r = env.run(&[
        "--stack",
        stack,
        "--endpoint-url",
        &format!("http://127.0.0.1:{}", proxy.port),
        "loadtest",
        "--runner",
        "ecs",
        "--target",
        &server.url(),
        "--stages",
        "hold:10:2s",
        "--timeout",
        "1s",
    ]);
    let calls = proxy.calls.lock().unwrap().clone();
    let run_tasks: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|(op, _)| op == "runtask")
        .map(|(_, body)| body)
        .collect();
    assert!(!run_tasks.is_empty(), "{r:?}\n{calls:?}");
    for req in run_tasks {
        assert_eq!(req["taskDefinition"], family, "{req}");
        assert_eq!(req["overrides"]["containerOverrides"][0]["name"], "loadgen");
        let cmd = &req["overrides"]["containerOverrides"][0]["command"];
        assert_eq!(cmd[0], "loadtest", "{req}");
        assert!(
            cmd.as_array().unwrap().iter().any(|a| a == "1/3"),
            "three workers from the stack file: {req}"
        );
    }

    // Destroy deregisters it with the rest.
    let r = env.run(&["--stack", stack, "destroy", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&format!("task_definition.{family}")),
        "{r:?}"
    );
    block_on(async {
        let ecs = aws_sdk_ecs::Client::new(&sdk_config(&env).await);
        let active = ecs
            .describe_task_definition()
            .task_definition(family)
            .send()
            .await
            .ok()
            .and_then(|t| t.task_definition().and_then(|t| t.status()).cloned());
        assert_ne!(
            active,
            Some(aws_sdk_ecs::types::TaskDefinitionStatus::Active),
            "still registered"
        );
    });
}
