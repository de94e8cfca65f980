//! Distributed load tests: the coordinator (hands the profile to N workers through the run's store, starts them
//! together, waits with a deadline, merges their results exactly, and stops every worker it started on Ctrl-C,
//! deadline or failure) and the hidden worker mode (`loadtest --shard K/N --start-at MS --run-id ID
//! --run-store STORE`: runs one shard and writes its result to the store).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use statsctl_aws::Aws;
use statsctl_loadtest::part::{merge, PartResult};
use statsctl_loadtest::{run_part, Profile, Ran, Shard};

use crate::context::Global;
use crate::exit::{CliError, CliResult};
use crate::output::progress;
use crate::session::aws_error;

/// Where workers run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// Processes of this statsctl binary on this machine.
    Local,
}

/// How long a local run's workers get to start before the schedule begins.
const LOCAL_START_DELAY: Duration = Duration::from_secs(2);
/// Past the end of the schedule, the request timeout and the engine's own grace: time to write a result.
const REPORT_SLACK: Duration = Duration::from_secs(8);
/// Longest a worker waits for its start time: a start further off is a mistake, not a plan.
const MAX_START_WAIT: Duration = Duration::from_secs(600);

/// Where a run's profile and its workers' results live: the ledger bucket under `loadtest-runs/<run-id>/`, or
/// a local directory for ad-hoc runs.
pub enum Store {
    Dir(PathBuf),
    Bucket { aws: Aws, bucket: String },
}

impl Store {
    /// As a worker is told it (`--run-store`).
    pub fn arg(&self) -> String {
        match self {
            Store::Dir(dir) => dir.display().to_string(),
            Store::Bucket { bucket, .. } => format!("s3://{bucket}"),
        }
    }

    /// Where a run's objects are, for people.
    pub fn describe(&self, run_id: &str) -> String {
        match self {
            Store::Dir(dir) => dir.join(run_id).display().to_string(),
            Store::Bucket { bucket, .. } => format!(
                "s3://{bucket}/{}",
                statsctl_aws::loadgen::run_key(run_id, "")
            ),
        }
    }

    /// A worker's store from its `--run-store`: `s3://BUCKET` or a directory.
    async fn from_arg(g: &Global, text: &str) -> CliResult<Store> {
        let Some(bucket) = text.strip_prefix("s3://") else {
            return Ok(Store::Dir(PathBuf::from(text)));
        };
        if bucket.is_empty() || bucket.contains('/') {
            return Err(
                CliError::new(format!("--run-store `{text}` is not s3://BUCKET")).hint(
                    "the coordinator passes this; run `statsctl loadtest --workers N` instead",
                ),
            );
        }
        let target = statsctl_aws::Target {
            region: g
                .region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into()),
            profile: g.profile.clone(),
            endpoint_url: g.endpoint_url.clone(),
            timeouts: g.aws_timeouts()?,
        };
        Ok(Store::Bucket {
            aws: Aws::connect(&target).await,
            bucket: bucket.to_string(),
        })
    }

    async fn put(&self, run_id: &str, name: &str, body: Vec<u8>) -> CliResult<()> {
        match self {
            Store::Dir(dir) => {
                let dir = dir.join(run_id);
                std::fs::create_dir_all(&dir).map_err(|e| {
                    CliError::new(format!("cannot create `{}`: {e}", dir.display()))
                        .hint("check the directory is writable, or set STATSCTL_RUNS_DIR")
                })?;
                // Written aside and renamed: a reader never sees half a result.
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, body)
                    .and_then(|()| std::fs::rename(&tmp, dir.join(name)))
                    .map_err(|e| {
                        CliError::new(format!("cannot write `{}`: {e}", dir.join(name).display()))
                    })
            }
            Store::Bucket { aws, bucket } => statsctl_aws::loadgen::put(
                aws,
                bucket,
                &statsctl_aws::loadgen::run_key(run_id, name),
                body,
            )
            .await
            .map_err(aws_error),
        }
    }

    async fn get(&self, run_id: &str, name: &str) -> CliResult<Option<Vec<u8>>> {
        match self {
            Store::Dir(dir) => match std::fs::read(dir.join(run_id).join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CliError::new(format!(
                    "cannot read `{}`: {e}",
                    dir.join(run_id).join(name).display()
                ))),
            },
            Store::Bucket { aws, bucket } => statsctl_aws::loadgen::get(
                aws,
                bucket,
                &statsctl_aws::loadgen::run_key(run_id, name),
            )
            .await
            .map_err(aws_error),
        }
    }
}

const PROFILE: &str = "profile.json";

fn part_name(shard: Shard) -> String {
    format!("worker-{}.json", shard.index + 1)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new run id: the start in milliseconds and 48 random bits, so runs sort by time and never collide.
pub fn new_run_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    let random: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{random}", now_ms())
}

/// Run ids become paths and object keys: short, lowercase letters, digits and dashes only.
fn check_run_id(id: &str) -> CliResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CliError::new(format!("--run-id `{id}` is not a run id"))
            .hint("the coordinator passes this; run `statsctl loadtest --workers N` instead"))
    }
}

/// One worker's line in the merged result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerLine {
    pub shard: String,
    pub worker: String,
    pub scheduled: u64,
    pub ok: u64,
    pub failed: u64,
    pub late: u64,
    pub p99_ms: f64,
}

/// A distributed run, merged.
pub struct Distributed {
    pub ran: Ran,
    pub run_id: String,
    pub store: String,
    pub workers: Vec<WorkerLine>,
}

/// A worker the coordinator started.
struct Launched {
    shard: Shard,
    pid: u32,
    child: tokio::process::Child,
    /// The last line it wrote on stderr: its error, when it fails.
    last_line: Arc<Mutex<String>>,
    exited: Option<std::process::ExitStatus>,
}

impl Launched {
    fn name(&self) -> String {
        format!("worker {} (pid {})", self.shard, self.pid)
    }

    fn last_line(&self) -> String {
        self.last_line.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "ended".into(),
    }
}

/// Runs `profile` over `workers` local processes of this binary and merges their results. Every process it
/// started has ended when it returns, whatever happened.
pub async fn coordinate_local(
    g: &Global,
    mut profile: Profile,
    workers: u32,
    store: Store,
    stop: Arc<AtomicBool>,
) -> CliResult<Distributed> {
    let run_id = new_run_id();
    let stages = profile.stages.len();
    // The machine's cores shared out: N processes with a thread per core each would fight over them.
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    profile.workers = (cores / workers as usize).max(1);
    let end = statsctl_loadtest::profile::total_duration(&profile.stages).min(profile.max_duration);
    let timeout = profile.timeout;
    let body = serde_json::to_vec_pretty(&profile)
        .map_err(|e| CliError::new(format!("cannot encode the profile: {e}")))?;
    store.put(&run_id, PROFILE, body).await?;
    let start_at = now_ms() + LOCAL_START_DELAY.as_millis() as u64;
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(format!(
            "cannot find the statsctl binary to start workers: {e}"
        ))
    })?;
    progress(format!(
        "run {run_id}: {workers} workers (local processes), results in {}",
        store.describe(&run_id)
    ));
    let mut launched: Vec<Launched> = Vec::new();
    for index in 0..workers {
        let shard = Shard {
            index,
            count: workers,
        };
        let mut cmd = tokio::process::Command::new(&exe);
        if let Some(e) = &g.endpoint_url {
            cmd.args(["--endpoint-url", e]);
        }
        if let Some(p) = &g.profile {
            cmd.args(["--profile", p]);
        }
        if let Store::Bucket { aws, .. } = &store {
            cmd.args(["--region", &aws.region]);
        }
        cmd.args(["loadtest", "--shard", &shard.to_string(), "--start-at"])
            .arg(start_at.to_string())
            .args(["--run-id", &run_id, "--run-store", &store.arg()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            // A coordinator that dies unexpectedly still takes its workers with it.
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut launched).await;
                return Err(CliError::new(format!("cannot start worker {shard}: {e}"))
                    .hint("check the machine's process limit (ulimit -u) and re-run"));
            }
        };
        let pid = child.id().unwrap_or(0);
        let last_line = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let last = last_line.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncBufReadExt;
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.trim().is_empty() {
                        if let Ok(mut l) = last.lock() {
                            *l = line.chars().take(500).collect();
                        }
                    }
                }
            });
        }
        progress(format!("worker {shard}: pid {pid}"));
        launched.push(Launched {
            shard,
            pid,
            child,
            last_line,
            exited: None,
        });
    }

    let mut deadline =
        Instant::now() + LOCAL_START_DELAY + end + timeout + Duration::from_secs(2) + REPORT_SLACK;
    let mut interrupted = false;
    let failure = loop {
        if !interrupted && stop.load(Ordering::SeqCst) {
            // Ctrl-C: every worker stops and reports what it has; those that cannot are stopped below.
            interrupted = true;
            for w in launched.iter().filter(|w| w.exited.is_none()) {
                // SAFETY: signalling a child we started and have not reaped: its pid is still ours.
                unsafe {
                    libc::kill(w.pid as libc::pid_t, libc::SIGINT);
                }
            }
            deadline = deadline.min(Instant::now() + timeout + REPORT_SLACK);
        }
        let mut failed = None;
        for w in launched.iter_mut().filter(|w| w.exited.is_none()) {
            if let Ok(Some(status)) = w.child.try_wait() {
                w.exited = Some(status);
                if !status.success() {
                    let said = w.last_line();
                    failed = Some(format!(
                        "{} {}{}",
                        w.name(),
                        describe_exit(status),
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(": {said}")
                        }
                    ));
                    break;
                }
            }
        }
        if failed.is_some() {
            break failed;
        }
        if launched.iter().all(|w| w.exited.is_some()) {
            break None;
        }
        if Instant::now() >= deadline {
            let late: Vec<String> = launched
                .iter()
                .filter(|w| w.exited.is_none())
                .map(Launched::name)
                .collect();
            break Some(format!(
                "{} never reported within the run's deadline",
                late.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop_all(&mut launched).await;
    if let Some(why) = failure {
        return Err(CliError::new(format!("load test run {run_id} failed: {why}")).hint(format!(
            "nothing was recorded; the workers' results so far are in {}. Look at what the worker said, then re-run",
            store.describe(&run_id)
        )));
    }

    let mut parts = Vec::new();
    for w in &launched {
        let bytes = store
            .get(&run_id, &part_name(w.shard))
            .await?
            .ok_or_else(|| {
                CliError::new(format!(
                    "load test run {run_id} failed: {} exited without reporting a result",
                    w.name()
                ))
                .hint("nothing was recorded; re-run")
            })?;
        let part: PartResult = serde_json::from_slice(&bytes).map_err(|e| {
            CliError::new(format!(
                "load test run {run_id}: {}'s result is not readable: {e}",
                w.name()
            ))
            .hint("nothing was recorded; re-run")
        })?;
        if part.run_id != run_id || part.shard != w.shard {
            return Err(CliError::new(format!(
                "load test run {run_id}: {}'s result is for run {} shard {}",
                w.name(),
                part.run_id,
                part.shard
            ))
            .hint("nothing was recorded; re-run"));
        }
        parts.push(part);
    }
    let mut ran = merge(&parts, stages).map_err(|e| {
        CliError::new(format!("load test run {run_id}: {e}")).hint("nothing was recorded; re-run")
    })?;
    if interrupted && ran.stopped.is_none() {
        ran.stopped = Some("stopped on request".into());
    }
    let workers = parts
        .iter()
        .map(|p| {
            let latency = p
                .to_recorder()
                .map(|r| statsctl_loadtest::Percentiles::of(&r.latency).p99)
                .unwrap_or_default();
            WorkerLine {
                shard: p.shard.to_string(),
                worker: p.worker.clone(),
                scheduled: p.scheduled,
                ok: p.ok,
                failed: p.failed(),
                late: p.late,
                p99_ms: latency,
            }
        })
        .collect();
    Ok(Distributed {
        ran,
        store: store.describe(&run_id),
        run_id,
        workers,
    })
}

/// Ends every worker still running (SIGKILL) and reaps it: no process is left behind.
async fn stop_all(launched: &mut [Launched]) {
    for w in launched.iter_mut().filter(|w| w.exited.is_none()) {
        let _ = w.child.start_kill();
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), w.child.wait()).await {
            w.exited = Some(status);
        }
    }
}

/// The hidden worker mode: runs shard `shard` of the run's profile from the start time and writes its result.
pub async fn work(
    g: &Global,
    shard: &str,
    start_at: Option<u64>,
    run_id: Option<&str>,
    store: Option<&str>,
) -> CliResult {
    let usage = "workers are started by `statsctl loadtest --workers N`, which passes --shard, --start-at, --run-id and --run-store";
    let shard =
        Shard::parse(shard).map_err(|e| CliError::new(format!("--shard: {e}")).hint(usage))?;
    let (Some(start_at), Some(run_id), Some(store)) = (start_at, run_id, store) else {
        return Err(
            CliError::new("--shard needs --start-at, --run-id and --run-store").hint(usage),
        );
    };
    check_run_id(run_id)?;
    let now = now_ms();
    let wait = Duration::from_millis(start_at.saturating_sub(now));
    if wait > MAX_START_WAIT {
        return Err(CliError::new(format!(
            "--start-at is {:.0}s away; a worker waits at most {}s",
            wait.as_secs_f64(),
            MAX_START_WAIT.as_secs()
        ))
        .hint(usage));
    }
    let store = Store::from_arg(g, store).await?;
    let bytes = store.get(run_id, PROFILE).await?.ok_or_else(|| {
        CliError::new(format!(
            "run {run_id} has no profile in {}",
            store.describe(run_id)
        ))
        .hint(usage)
    })?;
    let mut profile: Profile = serde_json::from_slice(&bytes).map_err(|e| {
        CliError::new(format!("run {run_id}: the profile is not readable: {e}")).hint(usage)
    })?;
    profile.max_requests = shard.share(profile.max_requests);
    // The schedule's start on this machine's monotonic clock; a worker that starts late runs behind it, and its
    // requests' latency shows it.
    let start = if start_at >= now {
        Instant::now() + wait
    } else {
        Instant::now()
            .checked_sub(Duration::from_millis(now - start_at))
            .unwrap_or_else(Instant::now)
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let ran = tokio::task::spawn_blocking(move || run_part(profile, shard, start, stop, |_| {}))
        .await
        .map_err(|e| CliError::new(format!("worker {shard}: the load generator stopped: {e}")))?
        .map_err(|e| CliError::new(format!("worker {shard}: {e}")))?;
    let who = format!("pid {}", std::process::id());
    let part = PartResult::from_ran(run_id, shard, &who, &ran)
        .map_err(|e| CliError::new(format!("worker {shard}: {e}")))?;
    let body = serde_json::to_vec(&part)
        .map_err(|e| CliError::new(format!("worker {shard}: cannot encode the result: {e}")))?;
    store.put(run_id, &part_name(shard), body).await?;
    Ok(crate::exit::OK)
}
