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
    /// Fargate tasks of the load-generator task definition `<stack>-<env>-loadgen` in the stats service's
    /// cluster, subnets and security groups.
    Ecs,
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
    /// Its error line on stderr (else the last line it wrote): what it said when it fails.
    last_line: Arc<Mutex<String>>,
    exited: Option<std::process::ExitStatus>,
}

impl Launched {
    fn name(&self) -> String {
        format!("worker {} (pid {})", self.shard, self.pid)
    }

    fn last_line(&self) -> String {
        self.last_line
            .lock()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default()
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
        cmd.args(worker_command(shard, start_at, &run_id, &store))
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
                    if let Ok(mut l) = last.lock() {
                        // Its error line is what it has to say (a hint follows it); else its last words.
                        if !l.starts_with("error:") && !line.trim().is_empty() {
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

    let names: Vec<(Shard, String)> = launched.iter().map(|w| (w.shard, w.name())).collect();
    gather(&store, &run_id, &names, stages, interrupted).await
}

/// Reads every worker's result from the store and merges them; a missing or unreadable one fails the run,
/// naming the worker.
async fn gather(
    store: &Store,
    run_id: &str,
    workers: &[(Shard, String)],
    stages: usize,
    interrupted: bool,
) -> CliResult<Distributed> {
    let run_id = run_id.to_string();
    let mut parts = Vec::new();
    for (shard, name) in workers {
        let bytes = store
            .get(&run_id, &part_name(*shard))
            .await?
            .ok_or_else(|| {
                CliError::new(format!(
                    "load test run {run_id} failed: {name} ended without reporting a result"
                ))
                .hint("nothing was recorded; re-run")
            })?;
        let part: PartResult = serde_json::from_slice(&bytes).map_err(|e| {
            CliError::new(format!(
                "load test run {run_id}: {name}'s result is not readable: {e}"
            ))
            .hint("nothing was recorded; re-run")
        })?;
        if part.run_id != run_id || part.shard != *shard {
            return Err(CliError::new(format!(
                "load test run {run_id}: {name}'s result is for run {} shard {}",
                part.run_id, part.shard
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

/// A worker's statsctl arguments: its shard, the start time and where the run is.
fn worker_command(shard: Shard, start_at: u64, run_id: &str, store: &Store) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "loadtest".into(),
        "--shard".into(),
        shard.to_string(),
        "--start-at".into(),
        start_at.to_string(),
        "--run-id".into(),
        run_id.into(),
        "--run-store".into(),
        store.arg(),
    ];
    if let Store::Bucket { aws, .. } = store {
        args.extend(["--region".into(), aws.region.clone()]);
    }
    args
}

/// Where ECS workers run: the stats service's cluster and network, so they load the path viewers use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsPlace {
    pub cluster: String,
    pub task_definition: String,
    pub container: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

/// The service's subnets and security groups as ids, from observed state (which names them): a name statsctl
/// knows maps to its id, an id stays an id.
pub fn ecs_place(
    observed: &statsctl_core::inventory::Observed,
    stack: &str,
    env: &str,
    service: &str,
    cluster: &str,
) -> Result<EcsPlace, String> {
    use statsctl_core::inventory::Kind;
    let svc = observed.get(Kind::EcsService, service).ok_or_else(|| {
        format!("the ECS service `{service}` does not exist; the workers run in its network")
    })?;
    let ids = |attr: &str, kind: Kind, prefix: &str| -> Vec<String> {
        svc.attrs
            .get(attr)
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .filter(|n| !n.is_empty())
            .filter_map(|n| match observed.id_of(kind, n) {
                Some(id) => Some(id.to_string()),
                None => n.starts_with(prefix).then(|| n.to_string()),
            })
            .collect()
    };
    let subnets = ids("subnets", Kind::Subnet, "subnet-");
    let security_groups = ids("security_groups", Kind::SecurityGroup, "sg-");
    if subnets.is_empty() {
        return Err(format!(
            "the ECS service `{service}` has no subnets statsctl can name"
        ));
    }
    let task_definition = statsctl_core::desired::loadgen::family(stack, env);
    if observed
        .get(Kind::TaskDefinition, &task_definition)
        .is_none()
    {
        return Err(format!(
            "the load-generator task definition `{task_definition}` is not registered; `deploy` registers it when the stack sets `loadtest.workers` above 1 and `loadtest.image`"
        ));
    }
    Ok(EcsPlace {
        cluster: cluster.to_string(),
        task_definition,
        container: statsctl_core::desired::loadgen::CONTAINER.into(),
        subnets,
        security_groups,
    })
}

/// How long ECS workers get to start (image pull, ENI attachment) before the schedule begins.
const ECS_START_DELAY: Duration = Duration::from_secs(90);
/// How often the coordinator looks for results and at the tasks.
const ECS_POLL: Duration = Duration::from_secs(2);

/// Runs `profile` over `workers` ECS tasks and merges their results from the ledger bucket. Every task it
/// started is stopped (StopTask) before it returns, whatever happened.
pub async fn coordinate_ecs(
    aws: &Aws,
    mut profile: Profile,
    workers: u32,
    store: Store,
    place: &EcsPlace,
    stop: Arc<AtomicBool>,
) -> CliResult<Distributed> {
    if !matches!(store, Store::Bucket { .. }) {
        return Err(CliError::new(
            "ECS workers report through the ledger bucket, and this run has none",
        )
        .hint("run `statsctl deploy` (it creates the ledger bucket) and drop --no-record, or use --runner local"));
    }
    let run_id = new_run_id();
    let stages = profile.stages.len();
    // 0: each task uses its own cores.
    profile.workers = 0;
    let end = statsctl_loadtest::profile::total_duration(&profile.stages).min(profile.max_duration);
    let timeout = profile.timeout;
    let body = serde_json::to_vec_pretty(&profile)
        .map_err(|e| CliError::new(format!("cannot encode the profile: {e}")))?;
    store.put(&run_id, PROFILE, body).await?;
    let start_at = now_ms() + ECS_START_DELAY.as_millis() as u64;
    progress(format!(
        "run {run_id}: {workers} workers (ECS tasks of `{}` in cluster `{}`), results in {}",
        place.task_definition,
        place.cluster,
        store.describe(&run_id)
    ));
    let mut tasks: Vec<(Shard, String)> = Vec::new();
    for index in 0..workers {
        let shard = Shard {
            index,
            count: workers,
        };
        let launch = statsctl_aws::loadgen::TaskLaunch {
            cluster: place.cluster.clone(),
            task_definition: place.task_definition.clone(),
            container: place.container.clone(),
            subnets: place.subnets.clone(),
            security_groups: place.security_groups.clone(),
            command: worker_command(shard, start_at, &run_id, &store),
            started_by: run_id.chars().take(36).collect(),
        };
        match statsctl_aws::loadgen::run_task(aws, &launch).await {
            Ok(arn) => {
                progress(format!("worker {shard}: task {arn}"));
                tasks.push((shard, arn));
            }
            Err(e) => {
                stop_tasks(aws, &place.cluster, &tasks, "load test could not start").await;
                return Err(aws_error(e));
            }
        }
    }
    let name = |shard: Shard, arn: &str| format!("worker {shard} (task {arn})");
    let mut deadline = Instant::now()
        + ECS_START_DELAY
        + end
        + timeout
        + Duration::from_secs(2)
        + REPORT_SLACK
        + Duration::from_secs(30);
    let mut interrupted = false;
    let mut reported = vec![false; tasks.len()];
    let mut last_describe = Instant::now();
    let failure = loop {
        if !interrupted && stop.load(Ordering::SeqCst) {
            // Ctrl-C: ECS sends the tasks SIGTERM; a worker stops and reports what it has.
            interrupted = true;
            stop_tasks(aws, &place.cluster, &tasks, "load test interrupted").await;
            deadline = deadline.min(Instant::now() + timeout + REPORT_SLACK);
        }
        for (i, (shard, _)) in tasks.iter().enumerate() {
            if !reported[i] {
                reported[i] = store.get(&run_id, &part_name(*shard)).await?.is_some();
            }
        }
        if reported.iter().all(|r| *r) {
            break None;
        }
        if !interrupted && last_describe.elapsed() >= Duration::from_secs(10) {
            last_describe = Instant::now();
            let arns: Vec<String> = tasks.iter().map(|(_, a)| a.clone()).collect();
            let states = statsctl_aws::loadgen::describe_tasks(aws, &place.cluster, &arns)
                .await
                .map_err(aws_error);
            if let Ok(states) = states {
                let dead = tasks.iter().enumerate().find_map(|(i, (shard, arn))| {
                    let st = states.iter().find(|t| &t.arn == arn)?;
                    (!reported[i] && st.last_status == "STOPPED").then(|| {
                        format!(
                            "{} stopped without reporting ({}{})",
                            name(*shard, arn),
                            st.stopped_reason.as_deref().unwrap_or("no reason given"),
                            st.exit_code
                                .map(|c| format!(", exit code {c}"))
                                .unwrap_or_default()
                        )
                    })
                });
                if dead.is_some() {
                    break dead;
                }
            }
        }
        if Instant::now() >= deadline {
            let late: Vec<String> = tasks
                .iter()
                .zip(&reported)
                .filter(|(_, r)| !**r)
                .map(|((shard, arn), _)| name(*shard, arn))
                .collect();
            break Some(format!(
                "{} never reported within the run's deadline",
                late.join(", ")
            ));
        }
        tokio::time::sleep(ECS_POLL).await;
    };
    stop_tasks(aws, &place.cluster, &tasks, "load test finished").await;
    if let Some(why) = failure {
        return Err(CliError::new(format!("load test run {run_id} failed: {why}")).hint(format!(
            "nothing was recorded and every task was stopped; the workers' results so far are in {}. Look at the task's logs, then re-run",
            store.describe(&run_id)
        )));
    }
    let names: Vec<(Shard, String)> = tasks
        .iter()
        .map(|(shard, arn)| (*shard, name(*shard, arn)))
        .collect();
    gather(&store, &run_id, &names, stages, interrupted).await
}

/// Stops every task of the run (a stopped one stays stopped); a task that cannot be stopped is said, with
/// what to run by hand.
async fn stop_tasks(aws: &Aws, cluster: &str, tasks: &[(Shard, String)], reason: &str) {
    for (shard, arn) in tasks {
        if let Err(e) = statsctl_aws::loadgen::stop_task(aws, cluster, arn, reason).await {
            progress(format!(
                "could not stop worker {shard} (task {arn}): {e}; stop it with `aws ecs stop-task --cluster {cluster} --task {arn}`"
            ));
        }
    }
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
        // Ctrl-C, or SIGTERM (ECS StopTask): stop, and still report what ran.
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    if profile.workers == 0 {
        profile.workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
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

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::{Key, Kind, Observed, ObservedResource};

    fn observed(subnets: &str, sgs: &str) -> Observed {
        let mut o = Observed::default();
        let mut svc = ObservedResource::default();
        svc.attrs.insert("subnets".into(), subnets.into());
        svc.attrs.insert("security_groups".into(), sgs.into());
        o.resources
            .insert(Key::new(Kind::EcsService, "stats-service"), svc);
        o.resources.insert(
            Key::new(Kind::TaskDefinition, "live-prod-loadgen"),
            ObservedResource::default(),
        );
        for (kind, name, id) in [
            (Kind::Subnet, "app-a", "subnet-0aa"),
            (Kind::Subnet, "app-b", "subnet-0bb"),
            (Kind::SecurityGroup, "service", "sg-011"),
        ] {
            o.resources.insert(
                Key::new(kind, name),
                ObservedResource {
                    id: id.into(),
                    ..Default::default()
                },
            );
        }
        o
    }

    #[test]
    fn ecs_workers_go_where_the_service_is() {
        let cases = [
            (
                "app-a,app-b",
                "service",
                Ok((vec!["subnet-0aa", "subnet-0bb"], vec!["sg-011"])),
            ),
            (
                "subnet-0cc",
                "sg-022",
                Ok((vec!["subnet-0cc"], vec!["sg-022"])),
            ),
            ("unknown", "service", Err("no subnets")),
            ("", "", Err("no subnets")),
        ];
        for (subnets, sgs, want) in cases {
            let got = ecs_place(
                &observed(subnets, sgs),
                "live",
                "prod",
                "stats-service",
                "live",
            );
            match (got, want) {
                (Ok(p), Ok((sn, sg))) => {
                    assert_eq!(p.subnets, sn, "{subnets}");
                    assert_eq!(p.security_groups, sg, "{sgs}");
                    assert_eq!(p.task_definition, "live-prod-loadgen");
                    assert_eq!(p.cluster, "live");
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{subnets}: {e}"),
                (got, want) => panic!("{subnets}: {got:?} != {want:?}"),
            }
        }
        let e = ecs_place(
            &Observed::default(),
            "live",
            "prod",
            "stats-service",
            "live",
        )
        .unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let mut no_task = observed("app-a", "service");
        no_task
            .resources
            .remove(&Key::new(Kind::TaskDefinition, "live-prod-loadgen"));
        let e = ecs_place(&no_task, "live", "prod", "stats-service", "live").unwrap_err();
        assert!(
            e.contains("`live-prod-loadgen` is not registered") && e.contains("loadtest.image"),
            "{e}"
        );
    }

    #[test]
    fn run_ids_that_are_not_ours_are_refused() {
        assert!(check_run_id(&new_run_id()).is_ok());
        for bad in ["", "../etc", "A-1", "x/y", &"1".repeat(65)] {
            assert!(check_run_id(bad).is_err(), "{bad}");
        }
    }
}
