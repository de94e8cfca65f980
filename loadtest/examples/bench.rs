//! The load generator statsctl loadtest runs (the same `statsctl_loadtest::run`), driven from the command line
//! for loadtest/bench/run.sh, built in release without the AWS SDK. Prints one JSON line: achieved rate,
//! latency percentiles from the schedule, errors, late requests and this process's peak RSS.
//!
//!   bench --target http://127.0.0.1:18999/ --viewers 5000 --poll 1s --duration 10s --pool 64

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use statsctl_core::duration::parse_span;
use statsctl_loadtest::{run, Arrival, Profile, Stage, Target};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| args.windows(2).find(|w| w[0] == k).map(|w| w[1].clone());
    let target =
        Target::parse(&get("--target").unwrap_or_else(|| "http://127.0.0.1:18999/".into()))
            .expect("--target");
    let viewers: u64 = get("--viewers")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let poll = get("--poll")
        .map(|v| parse_span(&v).expect("a duration like 10s").0)
        .unwrap_or(Duration::from_secs(1));
    let duration = get("--duration")
        .map(|v| parse_span(&v).expect("a duration like 10s").0)
        .unwrap_or(Duration::from_secs(10));
    let pool: Option<usize> = get("--pool").and_then(|v| v.parse().ok());
    let workers: usize = get("--workers")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
    // Viewers start at a uniform random phase of the poll interval: from the first interval on, the rate is
    // viewers / poll. The first interval (viewers arriving) is part of the measurement, as in a real run.
    let profile = Profile {
        targets: vec![target],
        poll_interval: poll,
        arrival: Arrival::Uniform,
        stages: vec![Stage::hold("hold", viewers, duration)],
        timeout: Duration::from_secs(5),
        pool,
        max_duration: duration + Duration::from_secs(5),
        max_requests: u64::MAX,
        seed: 1,
        workers,
        insecure: args.iter().any(|a| a == "--insecure"),
    };
    let r = run(profile, Arc::new(AtomicBool::new(false)), |_| {}).expect("load test");
    let peak_rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let out = serde_json::json!({
        "requested_rps": viewers as f64 / poll.as_secs_f64(),
        // Requests sent over the scheduled window (the run then waits for answers still in flight).
        "achieved_rps": r.sent as f64 / duration.as_secs_f64(),
        "ok_rps": r.ok as f64 / r.duration_secs.max(0.001),
        "sent": r.sent, "ok": r.ok, "failed": r.failed, "late": r.late,
        "duration_secs": r.duration_secs,
        "p50_ms": r.latency_ms.p50, "p99_ms": r.latency_ms.p99, "max_ms": r.latency_ms.max,
        "service_p50_ms": r.service_time_ms.p50, "service_p99_ms": r.service_time_ms.p99,
        "errors": r.errors,
        "peak_rss_mb": peak_rss_kb as f64 / 1024.0,
    });
    println!("{out}");
}
