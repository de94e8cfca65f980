//! `statsctl loadtest`: simulated viewers against the stack's stats URL(s); verdict from the stack's thresholds;
//! the result recorded in the ledger with what was deployed, for preflight's `loadtest.passed`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use statsctl_core::ledger::{self, LoadTestRecord, StageRan};
use statsctl_loadtest::{
    event_profile, run, verdict, Arrival, LoadTestResult, Profile, Stage, Target, Thresholds,
    Verdict,
};

use crate::context::Global;
use crate::exit::{CliError, CliResult, ATTENTION, OK};
use crate::output::{self, emit, progress};
use crate::session::{aws_error, Session};

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Viewers to hold (default: the event's expected viewers × loadtest.headroom, what preflight requires)
    #[arg(long)]
    pub viewers: Option<u64>,
    /// Target URL (repeatable); default: the stack's loadtest.targets. http:// or https:// (certificates verified
    /// against the system's root certificates)
    #[arg(long = "target", value_name = "URL")]
    pub targets: Vec<String>,
    /// Accept any certificate from https:// targets (a test endpoint with a self-signed certificate); the TLS
    /// handshake itself is still checked
    #[arg(long)]
    pub insecure: bool,
    /// Stages as kind:viewers:duration,… (kinds ramp, hold, spike), e.g. ramp:500:30s,hold:500:2m,spike:1500:1s
    /// (default: the stack's loadtest.stages, else derived from its event profile)
    #[arg(long)]
    pub stages: Option<String>,
    /// Ramp-up time of the default profile
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_span)]
    pub ramp: Duration,
    /// Hold time of the default profile (before and after the spike); default: 30s, or the stack's
    /// loadtest.min_hold when longer, so that the default run is one preflight counts
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub hold: Option<Duration>,
    /// Arrival pattern: `uniform`, or `waves:COUNT:SPREAD` (e.g. waves:3:200ms: page-load waves that stay in sync);
    /// default: the stack's loadtest.arrival, else uniform
    #[arg(long)]
    pub arrival: Option<String>,
    /// Share this many connections per worker instead of one keep-alive connection per viewer
    #[arg(long)]
    pub pool: Option<usize>,
    /// Per-request timeout (counted from the scheduled time)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_span)]
    pub timeout: Duration,
    /// Hard stop, whatever the stages say
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_span)]
    pub max_duration: Duration,
    /// Hard cap on requests sent
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
    /// Write an SVG chart of latency and throughput over time
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    /// Do not record the result in the ledger
    #[arg(long)]
    pub no_record: bool,
    /// Seed for viewer phases (same seed, same schedule)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    // Distributed runs (see `loadtest/dist.rs`).
    /// Split the viewers over N workers, each running a disjoint shard, and merge their results exactly
    /// (default: the stack's loadtest.workers, else 1: this process generates the load itself)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,
    /// Where workers run: `local` (processes of this binary on this machine) or `ecs` (Fargate tasks of
    /// `<stack>-<env>-loadgen` in the service's cluster and network); default: local in the `local` environment,
    /// else ecs
    #[arg(long, value_enum)]
    pub runner: Option<dist::Runner>,
    /// Directory for a distributed run's profile and worker results when it is not recorded in the ledger
    /// bucket (--no-record)
    #[arg(
        long,
        value_name = "DIR",
        env = "STATSCTL_RUNS_DIR",
        default_value = ".statsctl/runs"
    )]
    pub runs_dir: PathBuf,
    /// Worker mode (started by the coordinator): run shard K/N
    #[arg(long, hide = true, value_name = "K/N")]
    pub shard: Option<String>,
    /// Worker mode: when the schedule starts, in Unix milliseconds
    #[arg(long, hide = true)]
    pub start_at: Option<u64>,
    /// Worker mode: the run's id
    #[arg(long, hide = true)]
    pub run_id: Option<String>,
    /// Worker mode: where the run's profile is and the result goes (a directory or s3://BUCKET)
    #[arg(long, hide = true)]
    pub run_store: Option<String>,
}

mod dist;

/// The duration flags, in the one grammar of `statsctl_core::duration` (bounded: an absurd value is an error).
fn parse_span(s: &str) -> Result<Duration, String> {
    crate::context::duration_arg(s).map(|span| span.0)
}

#[derive(Serialize)]
struct Report<'a> {
    stack: &'a str,
    env: &'a str,
    /// What ran, measured: the most viewers held for the stack's `loadtest.min_hold` (or the run's longest
    /// stretch, when shorter) and for how long, and the peak; as the ledger records them.
    viewers: u64,
    held_secs: u64,
    peak_viewers: u64,
    verdict: &'a Verdict,
    thresholds: &'a Thresholds,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded: Option<String>,
    /// Whether preflight's `loadtest.passed` can count this run, and if not, why.
    counts_for_preflight: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    does_not_count: Vec<String>,
    /// A distributed run: its id, where its workers' results are, and each worker's counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<RunReport>,
    result: &'a LoadTestResult,
}

#[derive(Serialize)]
struct RunReport {
    id: String,
    store: String,
    workers: Vec<dist::WorkerLine>,
}

pub async fn run_cmd(g: &Global, args: LoadtestArgs) -> CliResult {
    if let Some(shard) = &args.shard {
        return dist::work(
            g,
            shard,
            args.start_at,
            args.run_id.as_deref(),
            args.run_store.as_deref(),
        )
        .await;
    }
    let s = Session::open(g, false).await?;
    let spec = &s.stack.spec;
    let criteria = spec.loadtest.clone();
    let headroom = criteria.as_ref().map(|c| c.headroom).unwrap_or(1.0);
    let viewers = args
        .viewers
        .unwrap_or_else(|| (spec.event.expected_viewers as f64 * headroom).ceil() as u64);
    let urls: Vec<String> = if args.targets.is_empty() {
        criteria
            .as_ref()
            .map(|c| c.targets.clone())
            .unwrap_or_default()
    } else {
        args.targets.clone()
    };
    if urls.is_empty() {
        return Err(CliError::new("no target to load")
            .hint("set `loadtest.targets` in the stack file or pass --target URL"));
    }
    refuse_credentials(&urls)?;
    let targets = urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CliError::new(format!("bad target {e}"))
                .hint("e.g. --target https://stats.example.com/matches/1/stats")
        })?;
    if args.insecure && targets.iter().any(|t| t.tls) {
        // Said up front: a test with verification off is not one against the real certificate.
        progress("--insecure: certificates of https:// targets are not verified");
    }
    let stack_stages = criteria.as_ref().and_then(|c| c.stages.clone());
    let stages = match (&args.stages, &stack_stages) {
        (Some(text), _) => stages_from(text).map_err(|e| {
            CliError::new(format!("--stages: {e}"))
                .hint("e.g. ramp:500:30s,hold:500:2m,spike:1500:1s,hold:1500:1m,ramp:0:10s")
        })?,
        (None, Some(text)) => stages_from(text).map_err(|e| {
            CliError::new(format!("loadtest.stages: {e}"))
                .hint("fix `loadtest.stages` in the stack file, or pass --stages")
        })?,
        (None, None) => {
            let min_hold = criteria.as_ref().map(|c| c.min_hold.0).unwrap_or_default();
            let hold = args
                .hold
                .unwrap_or_else(|| Duration::from_secs(30).max(min_hold));
            event_profile(viewers, spec.event.spike_factor, args.ramp, hold)
        }
    };
    let arrival_text = args
        .arrival
        .clone()
        .or_else(|| criteria.as_ref().and_then(|c| c.arrival.clone()))
        .unwrap_or_else(|| "uniform".into());
    let arrival = parse_arrival(&arrival_text)?;
    let thresholds = Thresholds {
        latency: criteria
            .as_ref()
            .map(|c| c.latency.iter().map(|(k, v)| (k.clone(), v.0)).collect())
            .unwrap_or_default(),
        max_error_rate: criteria.as_ref().map(|c| c.max_error_rate).unwrap_or(0.01),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let profile = Profile {
        targets,
        poll_interval: spec.event.poll_interval.0,
        arrival,
        stages: stages.clone(),
        timeout: args.timeout,
        pool: args.pool,
        max_duration: args.max_duration,
        max_requests: args.max_requests,
        seed: args.seed,
        workers,
        insecure: args.insecure,
    };

    // What is deployed now, recorded with the result (read before the test: the test proves what ran during it).
    let observed = if args.no_record {
        None
    } else {
        Some(s.observe().await?)
    };
    let peak = statsctl_loadtest::profile::peak_viewers(&stages);
    let total = statsctl_loadtest::profile::total_duration(&stages).min(args.max_duration);
    progress(format!(
        "load test {}/{}: up to {peak} viewers polling every {} → {} for {:.0}s",
        s.owner.stack,
        s.env,
        spec.event.poll_interval,
        urls.join(", "),
        total.as_secs_f64()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping the load test");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let worker_count = args
        .workers
        .or_else(|| criteria.as_ref().map(|c| c.workers))
        .unwrap_or(1);
    let distributed = worker_count > 1 || args.runner.is_some();
    let (result, run_report) = if distributed {
        // The ledger bucket holds the run when this run is recorded there (and the bucket exists); an ad-hoc
        // run (--no-record) keeps it in a local directory and calls no AWS API for it.
        let store = match &observed {
            Some(o) => {
                let bucket = ledger::bucket_name(spec, &s.env, &o.account_id);
                if statsctl_aws::s3::bucket_exists(&s.aws, &bucket)
                    .await
                    .map_err(aws_error)?
                {
                    dist::Store::Bucket {
                        aws: s.aws.clone(),
                        bucket,
                    }
                } else {
                    dist::Store::Dir(args.runs_dir.clone())
                }
            }
            None => dist::Store::Dir(args.runs_dir.clone()),
        };
        // Workers reach AWS the way this process does.
        let mut g = g.clone();
        if g.endpoint_url.is_none() {
            g.endpoint_url.clone_from(&spec.aws.endpoint_url);
        }
        if g.profile.is_none() {
            g.profile.clone_from(&spec.aws.profile);
        }
        // ECS outside the local environment (the emulator runs no containers), local processes in it.
        let runner = args.runner.unwrap_or(if s.env == "local" {
            dist::Runner::Local
        } else {
            dist::Runner::Ecs
        });
        let d = match runner {
            dist::Runner::Local => {
                dist::coordinate_local(&g, profile, worker_count, store, stop).await?
            }
            dist::Runner::Ecs => {
                let svc = spec.service.as_ref().ok_or_else(|| {
                    CliError::new("--runner ecs runs workers in the stats service's network, and the stack has no `service:`")
                        .hint("use --runner local")
                })?;
                let now = match &observed {
                    Some(o) => o.clone(),
                    None => s.observe().await?,
                };
                let place = dist::ecs_place(&now, &s.owner.stack, &s.env, &svc.name, &svc.cluster)
                    .map_err(|e| {
                        CliError::new(format!("--runner ecs: {e}"))
                            .hint("run `statsctl deploy` first, or use --runner local")
                    })?;
                dist::coordinate_ecs(&s.aws, profile, worker_count, store, &place, stop).await?
            }
        };
        let result = LoadTestResult::from_recorder(
            &d.ran.recorder,
            &stages,
            urls.clone(),
            spec.event.poll_interval.0.as_secs_f64(),
            d.ran.elapsed_secs,
            d.ran.stopped.clone(),
        );
        (
            result,
            Some(RunReport {
                id: d.run_id,
                store: d.store,
                workers: d.workers,
            }),
        )
    } else {
        (single(profile, stop).await?, None)
    };
    let v = verdict(&result, &thresholds);

    // What ran, from the engine's own per-second timeline (never the stages asked for: a run stopped early, or
    // one whose --stages fell short, is recorded as what it was), and whether it meets preflight's bar.
    // Each second counts the fewest viewers it held at any instant, so a level reached for a moment is not "held".
    let timeline = ledger::timeline(result.timeline.iter().map(|sec| sec.held_viewers));
    let bar = statsctl_checks::loadtest_passed::bar(spec, spec.event.expected_viewers);
    let (held_viewers, held_secs) = ledger::held(
        &timeline,
        bar.as_ref().map(|b| b.min_hold_secs).unwrap_or(1),
    );
    let mut record = LoadTestRecord {
        env: s.env.clone(),
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        viewers: held_viewers,
        held_secs,
        peak_viewers: ledger::peak(&timeline),
        timeline,
        // A stage's duration is the part of it that ran: a run stopped early (Ctrl-C, --max-duration) records the
        // stage it was in as shorter, and the stages after it as 0 s.
        stages: stages
            .iter()
            .zip(&result.stages)
            .scan(0.0f64, |start, (asked, ran)| {
                let planned = asked.duration.as_secs_f64();
                let ran_secs = (result.duration_secs - *start).clamp(0.0, planned);
                *start += planned;
                Some(StageRan {
                    name: ran.name.clone(),
                    viewers: ran.viewers,
                    duration_secs: ran_secs,
                    requests: ran.requests,
                    errors: ran.errors,
                })
            })
            .collect(),
        arrival: arrival_text.clone(),
        pool: args.pool,
        insecure: args.insecure,
        targets: urls.clone(),
        counts_for_preflight: false,
        does_not_count: vec![],
        passed: v.passed,
        versions: Default::default(),
        target: urls.join(","),
        summary: serde_json::json!({
            "latency_ms": result.latency_ms, "error_rate": result.error_rate, "throughput_rps": result.throughput_rps,
            "thresholds": thresholds, "violations": v.violations, "stopped": result.stopped,
        }),
    };
    if let (Some(run), Some(summary)) = (&run_report, record.summary.as_object_mut()) {
        summary.insert("workers".into(), run.workers.len().into());
        summary.insert("run_id".into(), run.id.clone().into());
    }
    if let Some(path) = &args.chart {
        let title = format!(
            "{}/{}: held {} viewers for {}s (peak {}), p99 {:.1} ms, {:.2}% errors",
            s.owner.stack,
            s.env,
            record.viewers,
            record.held_secs,
            record.peak_viewers,
            result.latency_ms.p99,
            result.error_rate * 100.0
        );
        std::fs::write(path, statsctl_loadtest::chart::render_svg(&result, &title))
            .map_err(|e| CliError::new(format!("cannot write `{}`: {e}", path.display())))?;
        progress(format!("chart written to {}", path.display()));
    }

    if !v.passed {
        record
            .does_not_count
            .push("it failed its thresholds".into());
    }
    match &bar {
        Some(b) => record
            .does_not_count
            .extend(statsctl_checks::loadtest_passed::missed(&record, b)),
        None => record
            .does_not_count
            .push("the stack sets no load-test criteria (`loadtest:`)".into()),
    }
    record.counts_for_preflight = record.does_not_count.is_empty();
    let recorded = match &observed {
        Some(o) => {
            record.versions = ledger::deployed_versions(spec, &s.env, o);
            let bucket = ledger::bucket_name(spec, &s.env, &o.account_id);
            Some(
                statsctl_aws::ledger::append(&s.aws, &bucket, "loadtests", &s.env, &record)
                    .await
                    .map_err(aws_error)?,
            )
        }
        None => None,
    };
    let report = Report {
        stack: &s.owner.stack,
        env: &s.env,
        viewers: record.viewers,
        verdict: &v,
        thresholds: &thresholds,
        recorded: recorded.clone(),
        held_secs: record.held_secs,
        peak_viewers: record.peak_viewers,
        counts_for_preflight: record.counts_for_preflight && recorded.is_some(),
        does_not_count: record
            .does_not_count
            .iter()
            .cloned()
            .chain(
                recorded
                    .is_none()
                    .then(|| "it was not recorded (--no-record)".to_string()),
            )
            .collect(),
        run: run_report,
        result: &result,
    };
    emit(g.output, &report, |out| human(out, &report))?;
    Ok(if v.passed { OK } else { ATTENTION })
}

/// The load generated by this process alone (no workers), with a live progress line.
async fn single(profile: Profile, stop: Arc<AtomicBool>) -> CliResult<LoadTestResult> {
    let tty = std::io::stderr().is_terminal();
    let result = tokio::task::spawn_blocking(move || {
        run(profile, stop, move |p| {
            let line = format!(
                "{:>5.0}s  {:>7} viewers  {:>8.0} req/s  p99 {:>8.1} ms  {:>6} errors",
                p.elapsed_secs, p.viewers, p.rps, p.p99_ms, p.errors
            );
            if tty {
                eprint!("\r{line}");
            } else if (p.elapsed_secs as u64).is_multiple_of(5) {
                eprintln!("{line}");
            }
        })
    })
    .await
    .map_err(|e| CliError::new(format!("the load generator stopped: {e}")))?
    .map_err(|e| CliError::new(format!("load test: {e}")))?;
    if tty {
        eprintln!();
    }
    Ok(result)
}

/// `kind:viewers:duration,…` (parsed where the stack file's `loadtest.stages` is) → the engine's stages.
fn stages_from(text: &str) -> Result<Vec<Stage>, String> {
    let specs = statsctl_core::validate::parse_stages(text)?;
    Ok(specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| Stage {
            name: format!("{} {}", s.kind, i + 1),
            duration: s.duration,
            viewers: s.viewers,
            ramp: s.kind != "hold",
        })
        .collect())
}

/// Credentials in a target URL would be sent with every request and kept in the ledger and the JSON output:
/// refused before anything is sent, naming the URL with them masked so the password is never printed.
fn refuse_credentials(urls: &[String]) -> CliResult<()> {
    for u in urls {
        if let Some(masked) = statsctl_core::sensitive::url_credentials(u) {
            return Err(CliError::new(format!(
                "target `{masked}` has credentials in it; nothing was sent"
            ))
            .hint("remove `user:password@` from the URL: load-test targets take no credentials"));
        }
    }
    Ok(())
}

fn parse_arrival(s: &str) -> CliResult<Arrival> {
    match statsctl_core::validate::parse_arrival(s) {
        Ok(None) => Ok(Arrival::Uniform),
        Ok(Some((count, spread))) => Ok(Arrival::Waves { count, spread }),
        Err(e) => Err(CliError::new(e).hint("e.g. --arrival uniform, or --arrival waves:3:200ms")),
    }
}

fn human(out: &mut String, r: &Report) {
    let res = r.result;
    let verdict = if r.verdict.passed {
        output::green("PASS")
    } else {
        output::red("FAIL")
    };
    out.push_str(&format!(
        "{verdict}  {}/{}: held {} viewers for {}s, peak {} → {}\n\n",
        r.stack,
        r.env,
        r.viewers,
        r.held_secs,
        r.peak_viewers,
        res.targets.join(", ")
    ));
    out.push_str(&format!(
        "requests   {} scheduled, {} sent, {} ok, {} failed, {} not sent in time  ({:.1} req/s over {:.1}s)\n",
        res.scheduled, res.sent, res.ok, res.failed, res.late, res.throughput_rps, res.duration_secs
    ));
    let l = &res.latency_ms;
    out.push_str(&format!("latency    p50 {:.1} ms  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}   (from each request's scheduled time)\n", l.p50, l.p90, l.p99, l.p99_9, l.max));
    let st = &res.service_time_ms;
    out.push_str(&format!(
        "service    p50 {:.1} ms  p99 {:.1}   (from the actual send)\n",
        st.p50, st.p99
    ));
    out.push_str(&format!("errors     {:.2}%", res.error_rate * 100.0));
    for (k, v) in &res.errors {
        out.push_str(&format!("  {k}: {v}"));
    }
    out.push('\n');
    out.push_str("\nstage              viewers  requests  errors    p50 ms    p99 ms\n");
    for s in &res.stages {
        out.push_str(&format!(
            "{:<18} {:>7} {:>9} {:>7} {:>9.1} {:>9.1}\n",
            s.name, s.viewers, s.requests, s.errors, s.latency_ms.p50, s.latency_ms.p99
        ));
    }
    if let Some(run) = &r.run {
        out.push_str(&format!(
            "\nworker   requests        ok  failed    late    p99 ms   (run {}, results in {})\n",
            run.id, run.store
        ));
        for w in &run.workers {
            out.push_str(&format!(
                "{:<7} {:>9} {:>9} {:>7} {:>7} {:>9.1}   {}\n",
                w.shard, w.scheduled, w.ok, w.failed, w.late, w.p99_ms, w.worker
            ));
        }
    }
    if !r.verdict.violations.is_empty() {
        out.push_str("\nthresholds not met:\n");
        for v in &r.verdict.violations {
            out.push_str(&format!("  ✗ {v}\n"));
        }
    }
    if let Some(s) = &res.stopped {
        out.push_str(&format!("\nstopped early: {s}\n"));
    }
    out.push('\n');
    if let Some(k) = &r.recorded {
        out.push_str(&format!("recorded in the ledger: {k}\n"));
    }
    if r.does_not_count.is_empty() {
        out.push_str("counts for preflight's loadtest.passed while these versions stay deployed\n");
    } else {
        out.push_str("does not count for preflight's loadtest.passed:\n");
        for m in &r.does_not_count {
            out.push_str(&format!("  ✗ {m}\n"));
        }
    }
}
