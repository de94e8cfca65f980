//! `statsctl preflight`: is the stack ready for the event? Reads live state (and the database when reachable)
//! concurrently, probes the service over HTTP, runs every check in `statsctl_checks`, prints one line per check with
//! evidence and fixes. What to read and how to judge it is decided in `statsctl_checks`; this file only gathers
//! (AWS, SQL, probes, the ledger) and renders.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use statsctl_aws as aws;
use statsctl_checks::http_answer::{self, answer_progress, Answer, ReadEnd, PROBE_MAX_ANSWER};
use statsctl_checks::service_healthy::{self, Attempt, Outcome, Probe};
use statsctl_checks::{
    alarms_armed, capacity, failed, proxy_attached, rollback_ready, stack_drift, Facts, Finding,
    Selection, Sourced, Status,
};
use statsctl_core::inventory::Observed;
use statsctl_core::model::StackFile;

use crate::context::Global;
use crate::exit::{CliError, CliResult, ATTENTION, OK};
use crate::output::{self, emit, progress};
use crate::session::{aws_error, Session};

#[derive(Args, Debug)]
pub struct PreflightArgs {
    /// Expected viewers (default: the stack's `event.expected_viewers`)
    #[arg(long)]
    pub viewers: Option<u64>,
    /// Run only these checks (ids, e.g. proxy.attached capacity.connections)
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "ID")]
    pub only: Vec<String>,
    /// Skip these checks; needs --reason, which is shown in the report
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "ID", requires = "reason")]
    pub skip: Vec<String>,
    /// Why the skipped checks are skipped
    #[arg(long)]
    pub reason: Option<String>,
    /// Warnings fail too
    #[arg(long)]
    pub strict: bool,
    /// Print a Markdown report (to paste in the on-call channel) instead of the terminal view
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Serialize)]
struct Report {
    stack: String,
    env: String,
    viewers: u64,
    ready: bool,
    findings: Vec<Finding>,
    summary: BTreeMap<&'static str, usize>,
    api_calls: usize,
    seconds: f64,
}

pub async fn run(g: &Global, args: PreflightArgs) -> CliResult {
    let selection = Selection {
        only: args.only,
        skip: args.skip,
        reason: args.reason,
    };
    known_checks(&selection)?;
    let started = Instant::now();
    let s = Session::open(g, true).await?;
    let viewers = args.viewers.unwrap_or(s.stack.spec.event.expected_viewers);
    let findings = run_checks(&s, &selection, viewers).await?;
    let summary = statsctl_checks::summary(&findings);
    let ready = !failed(&findings, args.strict);
    let report = Report {
        stack: s.owner.stack.clone(),
        env: s.env.clone(),
        viewers,
        ready,
        findings,
        summary,
        api_calls: s.aws.calls.get(),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress(format!(
        "checked in {:.2}s with {} AWS API calls",
        report.seconds, report.api_calls
    ));
    if args.markdown && g.output == output::Format::Human {
        output::print_text(&markdown(&report))?;
    } else {
        emit(g.output, &report, |out| human(out, &report))?;
    }
    Ok(if ready { OK } else { ATTENTION })
}

/// Refuses a selection that names a check that does not exist, listing the ones that do.
pub(crate) fn known_checks(selection: &Selection) -> CliResult<()> {
    let Some(unknown) = selection.unknown() else {
        return Ok(());
    };
    let hint = unknown
        .closest
        .map(|c| format!("did you mean `{c}`? "))
        .unwrap_or_default();
    Err(
        CliError::new(format!("unknown check `{}`", unknown.id)).hint(format!(
            "{hint}checks: {}",
            statsctl_checks::ids().join(", ")
        )),
    )
}

/// Reads what the selected checks need from the live stack (AWS, the database when reachable, the service's
/// endpoints, the ledger) and runs them: what `preflight` and a runbook's `check` step share.
pub(crate) async fn run_checks(
    s: &Session,
    selection: &Selection,
    viewers: u64,
) -> CliResult<Vec<Finding>> {
    progress(format!("reading {}/{} from AWS…", s.owner.stack, s.env));
    let (observed, plan, _) = s.observe_and_plan().await?;
    let spec = &s.stack.spec;
    // The service's probes run beside the other reads (a hung service costs one answer timeout, once), and only
    // when service.healthy is to run.
    let probe = selection.runs(service_healthy::ID);
    let (extra, service_probes) = tokio::join!(gather(s, &observed), async {
        if probe {
            probe_service(spec).await
        } else {
            vec![]
        }
    });
    let extra = extra?;
    let pending = stack_drift::pending(&plan);
    let required_alarms = alarms_armed::required(spec, &s.env, &observed, &s.artifacts);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let facts = Facts {
        stack: spec,
        env: &s.env,
        observed: &observed,
        subnet_vpcs: extra.subnet_vpcs,
        account_concurrency: extra.account_concurrency,
        unreserved_concurrency: extra.unreserved,
        max_connections: extra.max_connections,
        current_connections: extra.current_connections,
        service_probes,
        previous_versions: extra.previous_versions,
        previous_task_definition: extra.previous_task_definition,
        pending_changes: pending,
        required_alarms,
        loadtests: extra.loadtests,
        deployed_versions: statsctl_core::ledger::deployed_versions(spec, &s.env, &observed),
        viewers,
        now,
    };
    Ok(statsctl_checks::run(&facts, selection))
}

struct Extra {
    subnet_vpcs: BTreeMap<String, String>,
    account_concurrency: Sourced<u32>,
    unreserved: Option<Sourced<u32>>,
    max_connections: Option<Sourced<u32>>,
    current_connections: Option<u32>,
    previous_versions: BTreeMap<String, Option<rollback_ready::Previous>>,
    previous_task_definition: Option<rollback_ready::Previous>,
    loadtests: Vec<statsctl_checks::LoadTestRecord>,
}

/// The reads beyond `observe`, all at once.
async fn gather(s: &Session, o: &Observed) -> CliResult<Extra> {
    let spec = &s.stack.spec;
    let a = &s.aws;
    // Subnets: ours are known; anything else a client or the proxy uses is looked up.
    let mut subnet_vpcs = proxy_attached::known_subnet_vpcs(o);
    let unknown = proxy_attached::unknown_subnets(o, &subnet_vpcs);
    let bucket = statsctl_core::ledger::bucket_name(spec, &s.env, &o.account_id);
    // Rollback targets follow the deploy history, as `statsctl rollback` does.
    let history = aws::ledger::read::<statsctl_core::history::UnitRecord>(
        a,
        &bucket,
        statsctl_core::history::LEDGER_KIND,
        &s.env,
        crate::cmd::rollback::HISTORY_READ,
    )
    .await
    .map_err(aws_error)?;
    let functions = rollback_ready::alias_targets(spec, &s.env, o, &history);
    let prev_task = rollback_ready::task_definition_target(spec, &s.env, o, &history);
    let (vpcs, account, versions, task_prev, sql, loadtests) = tokio::join!(
        aws::ec2::subnet_vpcs(a, unknown),
        aws::lambda::account_concurrency(a),
        futures::future::join_all(functions.iter().map(|(f, target)| async move {
            match target {
                Some(t) => aws::lambda::version_exists(a, f, &t.to)
                    .await
                    .map(|exists| {
                        let target = t.clone();
                        (f.clone(), Some(rollback_ready::Previous { target, exists }))
                    }),
                None => Ok((f.clone(), None)),
            }
        })),
        async {
            match &prev_task {
                Some(t) => aws::ecs::task_definition_active(a, &t.to)
                    .await
                    .map(|exists| {
                        Some(rollback_ready::Previous {
                            target: t.clone(),
                            exists,
                        })
                    }),
                None => Ok(None),
            }
        },
        measure_sql(spec),
        statsctl_aws::ledger::read::<statsctl_checks::LoadTestRecord>(
            a,
            &bucket,
            "loadtests",
            &s.env,
            50
        ),
    );
    subnet_vpcs.extend(vpcs.map_err(aws_error)?);
    let (account_concurrency, unreserved) = capacity::account_concurrency(
        account.as_ref().copied().map_err(|e| e.detail.as_str()),
        spec,
    );
    let mut previous_versions = BTreeMap::new();
    for v in versions {
        let (f, e) = v.map_err(aws_error)?;
        previous_versions.insert(f, e);
    }
    let (measured, current_connections) = sql;
    let max_connections = capacity::max_connections(measured, spec, o);
    Ok(Extra {
        subnet_vpcs,
        account_concurrency,
        unreserved,
        max_connections,
        current_connections,
        previous_versions,
        previous_task_definition: task_prev.map_err(aws_error)?,
        loadtests: loadtests.map_err(aws_error)?,
    })
}

/// `SHOW max_connections` and the open connection count, when the stack says where SQL can reach the database.
pub(crate) async fn measure_sql(spec: &StackFile) -> (Option<Sourced<u32>>, Option<u32>) {
    let Some(sql) = &spec.database.sql else {
        return (None, None);
    };
    let dbname = sql
        .dbname
        .as_deref()
        .unwrap_or(&spec.database.database_name);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&sql.host)
        .port(sql.port)
        .user(&sql.user)
        .dbname(dbname)
        .connect_timeout(Duration::from_secs(3));
    // The password: `password_env`'s variable, else the password file (`passfile`, `PGPASSFILE`) as libpq reads it.
    use statsctl_core::pgpass::{self, PasswordSource};
    match pgpass::password_source(sql, &|name| std::env::var(name).ok()) {
        PasswordSource::Given(p) => {
            cfg.password(p);
        }
        PasswordSource::File(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Some(p) = pgpass::lookup(&text, &sql.host, sql.port, dbname, &sql.user) {
                    cfg.password(p);
                }
            }
            Err(e) => progress(format!("cannot read the password file `{path}`: {e}")),
        },
        PasswordSource::None => {}
    }
    let (client, conn) = match tokio::time::timeout(
        Duration::from_secs(5),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    {
        Ok(Ok(c)) => c,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "no answer in 5s".to_string(),
            };
            progress(format!(
                "database not reachable at {}:{} ({why}): SQL measurements skipped",
                sql.host, sql.port
            ));
            return (None, None);
        }
    };
    tokio::spawn(conn);
    // A server that accepted the connection but does not answer must not hold preflight up.
    let answer = |sql: &'static str| {
        let client = &client;
        async move {
            tokio::time::timeout(Duration::from_secs(5), client.query_one(sql, &[]))
                .await
                .ok()
                .and_then(Result::ok)
        }
    };
    let max = answer("SHOW max_connections")
        .await
        .and_then(|r| r.get::<_, String>(0).parse::<u32>().ok());
    let current = answer("SELECT count(*)::int FROM pg_stat_activity")
        .await
        .map(|r| r.get::<_, i32>(0).max(0) as u32);
    (
        max.map(|m| {
            Sourced::new(
                m,
                format!("SHOW max_connections on {}:{}", sql.host, sql.port),
            )
        }),
        current,
    )
}

/// Requests per probed URL: a few, so one slow answer is not the whole story.
const PROBE_ATTEMPTS: usize = 3;
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A TLS handshake is a few round trips and one signature; as generous as the answer, for a loaded laptop.
const PROBE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous for a loaded laptop; a service that says nothing for this long is not answering its viewers either.
const PROBE_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Probes the service where viewers reach it: its health endpoint (`service.health_check_path` at each load-test
/// target's origin) and the load-test targets themselves, a few concurrent GETs each.
async fn probe_service(spec: &StackFile) -> Vec<Probe> {
    let urls = service_healthy::probe_urls(spec);
    // One TLS configuration for every https:// URL, with certificates verified against the machine's roots
    // (built only when some URL needs it: loading the roots reads a directory of files).
    let tls = urls
        .iter()
        .any(|(_, u)| u.starts_with("https://"))
        .then(|| statsctl_loadtest::tls::client_config(false));
    futures::future::join_all(
        urls.into_iter()
            .map(|(role, url)| probe_url(role, url, tls.as_ref())),
    )
    .await
}

type TlsConfig = Result<std::sync::Arc<rustls::ClientConfig>, String>;

async fn probe_url(role: &str, url: String, tls: Option<&TlsConfig>) -> Probe {
    let mut p = Probe {
        role: role.to_string(),
        url: service_healthy::shown(&url),
        connect_timeout_ms: PROBE_CONNECT_TIMEOUT.as_millis() as u64,
        handshake_timeout_ms: PROBE_HANDSHAKE_TIMEOUT.as_millis() as u64,
        answer_timeout_ms: PROBE_ANSWER_TIMEOUT.as_millis() as u64,
        not_probed: None,
        attempts: vec![],
    };
    let target = match statsctl_loadtest::Target::parse(&url) {
        Ok(t) if !t.host.contains('@') => t,
        Ok(_) => {
            p.not_probed = Some("a URL with credentials is not probed".into());
            return p;
        }
        Err(e) => {
            p.not_probed = Some(e);
            return p;
        }
    };
    let client = if target.tls {
        let made = match tls {
            Some(Ok(config)) => statsctl_loadtest::tls::Client::new(config.clone(), &target.host),
            Some(Err(e)) => Err(e.clone()),
            None => Err("no TLS configuration".to_string()),
        };
        match made {
            Ok(c) => Some(c),
            Err(e) => {
                // No roots to verify with: nothing this machine can say about the certificate. Named, not
                // guessed at (preflight has no insecure mode).
                p.not_probed = Some(format!(
                    "cannot verify https:// here: {}",
                    e.split(" (hint:").next().unwrap_or(&e)
                ));
                return p;
            }
        }
    } else {
        None
    };
    p.attempts = futures::future::join_all(
        (0..PROBE_ATTEMPTS).map(|_| probe_once(&target, client.as_ref())),
    )
    .await;
    p
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One `GET` with its own connect, TLS handshake (for https://) and answer timeouts, each timed apart.
async fn probe_once(
    t: &statsctl_loadtest::Target,
    tls: Option<&statsctl_loadtest::tls::Client>,
) -> Attempt {
    let mut a = Attempt {
        connect_ms: None,
        handshake_ms: None,
        first_byte_ms: None,
        answer_ms: None,
        outcome: Outcome::NoAnswer,
    };
    let started = Instant::now();
    let connected = tokio::time::timeout(
        PROBE_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((t.host.as_str(), t.port)),
    )
    .await;
    let tcp = match connected {
        Err(_) => {
            a.outcome = Outcome::ConnectTimeout;
            return a;
        }
        Ok(Err(e)) => {
            a.outcome = Outcome::ConnectFailed {
                error: e.to_string(),
            };
            return a;
        }
        Ok(Ok(s)) => s,
    };
    a.connect_ms = Some(ms(started.elapsed()));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: statsctl-preflight\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path, t.host, t.port
    );
    let Some(client) = tls else {
        let mut tcp = tcp;
        (a.first_byte_ms, a.answer_ms, a.outcome) = answer(&mut tcp, request.as_bytes()).await;
        return a;
    };
    let shaking = Instant::now();
    match tokio::time::timeout(
        PROBE_HANDSHAKE_TIMEOUT,
        client.connector.connect(client.name.clone(), tcp),
    )
    .await
    {
        Err(_) => a.outcome = Outcome::HandshakeStalled,
        Ok(Err(e)) => {
            let error = e.to_string();
            a.outcome = if statsctl_loadtest::tls::handshake_error(&e)
                == statsctl_loadtest::tls::TLS_CERTIFICATE
            {
                Outcome::CertificateRefused { error }
            } else {
                Outcome::HandshakeFailed { error }
            };
        }
        Ok(Ok(mut stream)) => {
            a.handshake_ms = Some(ms(shaking.elapsed()));
            (a.first_byte_ms, a.answer_ms, a.outcome) =
                answer(&mut stream, request.as_bytes()).await;
        }
    }
    a
}

/// Sends the request and reads the whole answer (`Connection: close`: to its Content-Length, its last chunk, or
/// the connection's end) within the answer timeout: the first byte's time, the last's, and what came back.
async fn answer<S>(stream: &mut S, request: &[u8]) -> (Option<f64>, Option<f64>, Outcome)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sent = Instant::now();
    let mut first_byte = None;
    let mut got = Vec::new();
    let mut state = Answer::Head;
    let read = tokio::time::timeout(PROBE_ANSWER_TIMEOUT, async {
        stream.write_all(request).await?;
        // TLS holds written records back until flushed.
        stream.flush().await?;
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf).await {
                // A TLS peer that closes without close_notify: the end of the answer, as for TCP.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                r => r?,
            };
            if n > 0 {
                first_byte.get_or_insert_with(|| sent.elapsed());
                got.extend_from_slice(&buf[..n]);
            }
            state = answer_progress(&got, n == 0);
            if matches!(state, Answer::Complete { .. } | Answer::Bad(_)) || n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if got.len() > PROBE_MAX_ANSWER {
                state = Answer::Bad(format!(
                    "the answer is larger than {} KiB, the most the probe reads",
                    PROBE_MAX_ANSWER / 1024
                ));
                return Ok(());
            }
        }
    })
    .await;
    let answered = matches!(state, Answer::Complete { .. }).then(|| ms(sent.elapsed()));
    let end = match read {
        Err(_) => ReadEnd::TimedOut,
        Ok(Err(e)) => ReadEnd::Failed(e.to_string()),
        Ok(Ok(())) => ReadEnd::Stopped,
    };
    let outcome = http_answer::outcome(
        end,
        first_byte.is_some(),
        state,
        PROBE_ANSWER_TIMEOUT.as_millis(),
    );
    (first_byte.map(ms), answered, outcome)
}

fn paint_status(st: Status) -> String {
    match st {
        Status::Pass => output::green(st.symbol()),
        Status::Warn => output::yellow(st.symbol()),
        Status::Fail => output::red(st.symbol()),
        Status::Skip => output::dim(st.symbol()),
    }
}

fn human(out: &mut String, r: &Report) {
    out.push_str(&format!(
        "preflight {}/{} for {} viewers\n\n",
        r.stack, r.env, r.viewers
    ));
    let width = r.findings.iter().map(|f| f.id.len()).max().unwrap_or(10);
    for f in &r.findings {
        out.push_str(&format!(
            "{} {:width$}  {}\n",
            paint_status(f.status),
            f.id,
            f.summary
        ));
        if matches!(f.status, Status::Fail | Status::Warn) {
            for e in &f.evidence {
                out.push_str(&format!("      {e}\n"));
            }
        }
        if !f.table.is_empty() && f.status != Status::Skip {
            out.push_str(&crate::output::table(&f.table, "      "));
        }
    }
    let fixes: Vec<(&str, &String)> = r
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Fail | Status::Warn))
        .flat_map(|f| f.fixes.iter().map(move |x| (f.id, x)))
        .collect();
    if !fixes.is_empty() {
        out.push_str("\nFixes:\n");
        for (id, fix) in fixes {
            out.push_str(&format!("  {id}: {fix}\n"));
        }
    }
    let n = |k: &str| r.summary.get(k).copied().unwrap_or(0);
    out.push_str(&format!(
        "\n{} — {} passed, {} warnings, {} failed, {} skipped\n",
        if r.ready {
            output::green("READY")
        } else {
            output::red("NOT READY")
        },
        n("pass"),
        n("warn"),
        n("fail"),
        n("skip")
    ));
}

fn markdown(r: &Report) -> String {
    let mut out = format!(
        "### Preflight `{}/{}` for {} viewers: {}\n\n| | check | result |\n|---|---|---|\n",
        r.stack,
        r.env,
        r.viewers,
        if r.ready {
            "**READY**"
        } else {
            "**NOT READY**"
        }
    );
    for f in &r.findings {
        out.push_str(&format!(
            "| {} | `{}` | {} |\n",
            f.status.symbol(),
            f.id,
            f.summary.replace('|', "\\|")
        ));
    }
    for f in r
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Fail | Status::Warn))
    {
        out.push_str(&format!("\n**{}**\n", f.id));
        for e in &f.evidence {
            out.push_str(&format!("- {e}\n"));
        }
        for x in &f.fixes {
            out.push_str(&format!("- fix: {x}\n"));
        }
    }
    out
}

/// The whole answer is read: a server that sends its headers and then stalls, and one that answers whole.
#[cfg(test)]
mod answer_tests {
    use super::*;
    use statsctl_checks::service_healthy::judge_probe;

    /// A plain HTTP server that writes `head` to every connection once a request arrives, then holds it open
    /// (for `hold`) without writing more.
    async fn server(head: &'static [u8], hold: Duration) -> (u16, tokio::task::JoinHandle<()>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    }
                    let _ = s.write_all(head).await;
                    tokio::time::sleep(hold).await;
                });
            }
        });
        (port, task)
    }

    #[tokio::test]
    async fn headers_then_a_stalled_body_fail() {
        let (port, task) = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"score\":",
            Duration::from_secs(30),
        )
        .await;
        let url = format!("http://127.0.0.1:{port}/matches/1/stats");
        let p = probe_url("load-test target", url.clone(), None).await;
        task.abort();
        assert!(
            p.attempts
                .iter()
                .all(|a| a.outcome == Outcome::BodyStalled { status: 200 }
                    && a.first_byte_ms.is_some()
                    && a.answer_ms.is_none()),
            "{p:?}"
        );
        let (status, line) = judge_probe(&p);
        assert_eq!(status, Status::Fail, "{line}");
        assert!(
            line.contains(&format!("load-test target `{url}` answered 200 headers but the body stalled: not complete within 2000 ms (3 of 3 requests")),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_whole_answer_passes_with_its_time() {
        // The body arrives whole and the server keeps the connection open: the length, not the close, ends it.
        let (port, task) = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"score\":\"1:0\"}",
            Duration::from_secs(30),
        )
        .await;
        let p = probe_url(
            "health endpoint",
            format!("http://127.0.0.1:{port}/healthz"),
            None,
        )
        .await;
        task.abort();
        assert!(
            p.attempts
                .iter()
                .all(|a| a.outcome == Outcome::Answered { status: 200 } && a.answer_ms.is_some()),
            "{p:?}"
        );
        let (status, line) = judge_probe(&p);
        assert_eq!(status, Status::Pass, "{line}");
        assert!(line.contains("whole answer ≤ "), "{line}");
    }
}

/// The https:// probe against TLS servers in the test: a certificate from an unknown CA (refused), a listener that
/// accepts and never answers the handshake (stalled), and the same certificate trusted (answered, timed apart).
#[cfg(test)]
mod tls_probe_tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use statsctl_checks::service_healthy::judge_probe;
    use std::sync::Arc;

    /// A certificate for 127.0.0.1 issued by a throwaway CA (both made by `openssl`), and a TLS server with it that
    /// answers every request with `answer` then closes (a thread per connection, ending with the test process).
    /// Returns the port and the CA's certificate, which no machine trusts unless told to.
    fn test_ca_server(answer: &'static [u8]) -> (u16, CertificateDer<'static>) {
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        // Temporary paths are UTF-8 here; as strings they sit in one argument list.
        let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
                .args(args)
                .output()
                .expect("openssl is needed to make a test certificate (apt-get install openssl)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (ca, ca_key, cert, key) = (
            file("ca.pem"),
            file("ca.key"),
            file("cert.pem"),
            file("key.pem"),
        );
        openssl(&[
            "-subj",
            "/CN=statsctl test CA",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
        ]);
        openssl(&[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-keyout",
            &key,
            "-out",
            &cert,
        ]);
        let certs = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let ca = CertificateDer::from_pem_file(&ca).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key).unwrap())
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut buf = Vec::new();
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls.write_all(answer).and_then(|_| tls.flush());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        (port, ca)
    }

    #[tokio::test]
    async fn a_certificate_from_an_unknown_issuer_is_refused() {
        let (port, _) = test_ca_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let url = format!("https://127.0.0.1:{port}/healthz");
        let config = statsctl_loadtest::tls::client_config(false);
        let p = probe_url("health endpoint", url.clone(), Some(&config)).await;
        assert_eq!(p.attempts.len(), PROBE_ATTEMPTS, "{p:?}");
        assert!(
            p.attempts
                .iter()
                .all(|a| matches!(a.outcome, Outcome::CertificateRefused { .. })
                    && a.connect_ms.is_some()),
            "{p:?}"
        );
        let (status, line) = judge_probe(&p);
        assert_eq!(status, Status::Fail, "{line}");
        assert!(
            line.contains(&format!(
                "health endpoint `{url}`: its TLS certificate was refused (3 of 3 requests: "
            )),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_handshake_that_never_comes_is_named_stalled() {
        // Accepts TCP connections (the kernel completes them from the backlog) and never says a word.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                open.push(s);
            }
        });
        let url = format!("https://127.0.0.1:{port}/matches/1/stats");
        let config = statsctl_loadtest::tls::client_config(false);
        let p = probe_url("load-test target", url.clone(), Some(&config)).await;
        held.abort();
        assert!(
            p.attempts
                .iter()
                .all(|a| a.outcome == Outcome::HandshakeStalled && a.connect_ms.is_some()),
            "{p:?}"
        );
        let (status, line) = judge_probe(&p);
        assert_eq!(status, Status::Fail, "{line}");
        assert!(
            line.contains(&format!("load-test target `{url}` accepted the connection but did not complete the TLS handshake within 2000 ms (3 of 3 requests")),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_trusted_certificate_is_answered_with_the_handshake_timed_apart() {
        let (port, ca) = test_ca_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        // The test's CA as the only root: the certificate is verified as a real one would be.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let url = format!("https://127.0.0.1:{port}/healthz");
        let p = probe_url("health endpoint", url, Some(&Ok(Arc::new(config)))).await;
        assert!(
            p.attempts
                .iter()
                .all(|a| a.outcome == Outcome::Answered { status: 200 }
                    && a.connect_ms.is_some()
                    && a.handshake_ms.is_some()
                    && a.first_byte_ms.is_some()),
            "{p:?}"
        );
        let (status, line) = judge_probe(&p);
        assert_eq!(status, Status::Pass, "{line}");
        assert!(
            line.contains("3/3 answered (connect ≤ ") && line.contains("TLS handshake ≤ "),
            "{line}"
        );
    }
}
