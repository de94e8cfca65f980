//! `statsctl runbook run NAME`: runs a runbook's steps in order. Reads (`sql`, `check`, `metric`) run and show
//! their evidence; a `note` prints; a `decide` asks and may skip the rest; an `action` first shows exactly what it
//! will change (read live), then asks `y/N/skip/quit` (or takes `--yes`, or, with `--dry-run`, prints and skips),
//! takes the deploy lock for the change, makes it, and reads it back. Every run leaves a masked transcript under
//! `.statsctl/transcripts/` and in the ledger bucket. When to ask, act or refuse is `statsctl_runbooks::flow`'s
//! rule; this file only does the I/O.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use statsctl_aws as aws;
use statsctl_checks::Status;
use statsctl_core::duration::parse_span;
use statsctl_core::inventory::{Key, Kind, Observed};
use statsctl_core::plan::Change;
use statsctl_core::runbook::{bind_params_for_stack, resolve, Action, Found, Step, StepKind};
use statsctl_runbooks::answer::{self, Answer, CHOICES};
use statsctl_runbooks::flow::{self, Gate, Mode, Next};
use statsctl_runbooks::transcript::{
    self, ChangeRecord, RunResult, StepRecord, StepStatus, Table, Transcript,
};

use super::{reads, Sources};
use crate::context::Global;
use crate::exit::{CliError, CliResult, Exit};
use crate::output::{self, progress};
use crate::session::Session;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The runbook's name (see `statsctl runbook list`)
    pub name: String,
    /// A parameter, `NAME=VALUE` (repeatable); `statsctl runbook show NAME` lists them
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run every read; print every change and make none
    #[arg(long)]
    pub dry_run: bool,
    /// Answer yes to every question (for automation); without it and without a terminal, changes are refused
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub sources: Sources,
}

/// Rows an `sql` step keeps (and fetches: the query runs behind a cursor).
const MAX_ROWS: usize = 100;
/// What one `sql` step may take, server side.
const STATEMENT_TIMEOUT: &str = "5s";
/// What any one database exchange may take, client side: a server that accepted and went silent.
const DB_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read-back waits for terminated connections to disappear.
const READ_BACK_FOR: Duration = Duration::from_secs(5);
/// Idle connections one action shows and terminates at most.
const MAX_TERMINATE: i64 = 500;

pub async fn run(g: &Global, a: RunArgs) -> CliResult {
    let rb = super::find(g, &a.sources, &a.name)?;
    let mut given = Vec::new();
    let mut errors = Vec::new();
    for p in &a.params {
        match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                given.push((k.trim().to_string(), v.to_string()))
            }
            _ => errors.push(format!("--param `{p}` is not NAME=VALUE")),
        }
    }
    // Parameters with `default_from` take their default from the stack, so it is loaded before anything runs
    // (a broken stack file is reported here, with nothing run).
    let stack = g.load_stack()?;
    let params = match bind_params_for_stack(&rb, &given, &stack.spec) {
        Ok(p) if errors.is_empty() => p,
        Ok(_) => BTreeMap::new(),
        Err(e) => {
            errors.extend(e);
            BTreeMap::new()
        }
    };
    if !errors.is_empty() {
        return Err(CliError::new(format!(
            "cannot run `{}`:\n  {}",
            rb.name,
            errors.join("\n  ")
        ))
        .hint(format!(
            "`statsctl runbook show {}` lists its parameters; nothing was run",
            rb.name
        )));
    }
    let needs_artifacts = rb
        .steps
        .iter()
        .any(|s| matches!(s.kind, StepKind::Action(Action::RouteThroughProxy { .. })));
    let s = Session::open(g, needs_artifacts).await?;
    let mode = Mode {
        dry_run: a.dry_run,
        yes: a.yes,
        terminal: std::io::stdin().is_terminal(),
    };
    let (who, bucket) = match aws::ledger::caller(&s.aws).await {
        Ok((account, arn)) => (
            arn,
            Some(statsctl_core::desired::ledger_bucket_name(
                &s.stack.spec,
                &s.env,
                &account,
            )),
        ),
        Err(e) => (format!("unknown ({e})"), None),
    };
    let started = now_secs();
    let mut r = Runner {
        g,
        s: &s,
        mode,
        db: Db::NotTried,
        found: Found {
            params: params.clone(),
            ..Default::default()
        },
    };
    r.say(&format!(
        "runbook {} — {}\n{}/{} · {} · {}\n",
        rb.name,
        rb.title,
        s.owner.stack,
        s.env,
        who,
        if mode.dry_run {
            "dry run: nothing will be changed"
        } else if mode.yes {
            "--yes: changes are made without asking"
        } else {
            "changes are asked for one by one"
        }
    ));
    let mut steps = Vec::new();
    let mut ended = "finished".to_string();
    let total = rb.steps.len();
    for (i, step) in rb.steps.iter().enumerate() {
        r.say(&format!(
            "\n── {}/{total} {} [{}]\n   why: {}\n",
            i + 1,
            step.title,
            step.kind.label(),
            step.why
        ));
        let (record, next) = r.step(i + 1, step).await;
        let status_line = format!("   → {}\n", status_word(record.status));
        r.say(&status_line);
        let number = record.number;
        steps.push(record);
        match next {
            Next::Continue => {}
            Next::SkipRest => {
                ended = format!("finished: the rest was skipped at step {number}");
                for (j, rest) in rb.steps.iter().enumerate().skip(i + 1) {
                    steps.push(r.record(j + 1, rest, StepStatus::Skipped));
                }
                break;
            }
            Next::Stop => {
                ended = format!("stopped at step {number}");
                break;
            }
        }
    }
    let result = transcript::result_of(&steps);
    let t = Transcript {
        runbook: rb.name.clone(),
        title: rb.title.clone(),
        source: rb.source.display().to_string(),
        stack: s.owner.stack.clone(),
        env: s.env.clone(),
        who,
        started: statsctl_engine::lock::utc(started),
        dry_run: mode.dry_run,
        yes: mode.yes,
        params,
        steps,
        ended,
        result,
    }
    .masked();
    keep(&s, &t, bucket.as_deref()).await;
    if g.output == output::Format::Json {
        output::emit(g.output, &t, |_| {})?;
    } else {
        r.say(&format!("\n{}: {}\n", t.runbook, t.ended));
    }
    match result {
        RunResult::Finished => Ok(Exit::Ok),
        RunResult::Problem => {
            eprintln!("attention: a step found a problem the runbook could not fix (see above)");
            Ok(Exit::Attention)
        }
        RunResult::Stopped => {
            let last = t.steps.last();
            let why = last
                .and_then(|s| s.lines.last().cloned())
                .unwrap_or_default();
            let status = last.map(|s| s.status);
            let hint = match status {
                Some(StepStatus::Refused) => {
                    "run it at a terminal to answer each question, or pass --yes; --dry-run shows what it would do"
                }
                Some(StepStatus::Failed) => "fix the cause above and run it again: every step reads live state first",
                _ => "run it again when ready; the transcript records where it stopped",
            };
            Err(CliError::new(format!("runbook `{}` {}: {why}", t.runbook, t.ended)).hint(hint))
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn status_word(s: StepStatus) -> String {
    match s {
        StepStatus::Done => output::green("done"),
        StepStatus::Problem => output::red("problem found"),
        StepStatus::DryRun => output::yellow("dry run: not changed"),
        StepStatus::Skipped => output::dim("skipped"),
        StepStatus::Declined => output::yellow("declined: not changed; the run stops here"),
        StepStatus::Refused => output::red("refused: not changed"),
        StepStatus::Quit => output::yellow("quit"),
        StepStatus::Unavailable => output::yellow("could not look"),
        StepStatus::Failed => output::red("failed"),
    }
}

/// Where transcripts go: `STATSCTL_TRANSCRIPT_DIR`, else `.statsctl/transcripts` in the project the stack file
/// belongs to (the directory above `stacks/`), as the local lock lives in `.statsctl/locks`.
fn transcript_dir(stack_path: &std::path::Path) -> PathBuf {
    if let Some(d) = std::env::var_os("STATSCTL_TRANSCRIPT_DIR") {
        return PathBuf::from(d);
    }
    stack_path
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(std::path::Path::new(""))
        .join(".statsctl/transcripts")
}

/// Writes the transcript (already masked) to its file and appends it to the ledger; a failure of either is said
/// on stderr and does not change the run's result (the run itself already happened).
async fn keep(s: &Session, t: &Transcript, bucket: Option<&str>) {
    let dir = transcript_dir(&s.stack.path);
    let path = dir.join(transcript::file_name(&t.started, &t.runbook));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, t.markdown())) {
        Ok(()) => progress(format!("transcript: {}", path.display())),
        Err(e) => progress(format!(
            "could not write the transcript `{}`: {e}",
            path.display()
        )),
    }
    let Some(bucket) = bucket else {
        progress("transcript not added to the ledger: the caller identity is unknown");
        return;
    };
    match aws::ledger::append(&s.aws, bucket, transcript::LEDGER_KIND, &s.env, t).await {
        Ok(key) => progress(format!(
            "transcript added to the ledger: s3://{bucket}/{key}"
        )),
        Err(e) => progress(format!(
            "transcript not added to the ledger ({e}); it is kept in the file above"
        )),
    }
}

/// The database connection for `sql` steps and connection actions: opened at the first need, once.
enum Db {
    NotTried,
    Up(tokio_postgres::Client),
    Down(String),
}

struct Runner<'a> {
    g: &'a Global,
    s: &'a Session,
    mode: Mode,
    db: Db,
    found: Found,
}

/// A change ready to be made: what the operator is shown, and what to do.
struct Prepared {
    change: ChangeRecord,
    table: Option<Table>,
    lines: Vec<String>,
    apply: Apply,
}

enum Apply {
    Terminate {
        user: String,
        pids: Vec<i32>,
    },
    Reserve {
        function: String,
        value: Option<i32>,
    },
    Scale {
        cluster: String,
        service: String,
        count: i32,
    },
    Route {
        keys: Vec<Key>,
        changes: Vec<Change>,
        observed: Box<Observed>,
    },
    /// Found the way `statsctl rollback` finds it (boxed: it is the largest of these).
    Rollback(Box<crate::cmd::rollback::Target>),
    StopTasks {
        cluster: String,
        service: String,
        tasks: Vec<String>,
    },
}

/// What preparing an action came to besides a change to make.
enum NotReady {
    /// Nothing to change (already as wanted, nothing idle…): the step is done.
    Nothing(String),
    /// Could not prepare: the run stops.
    Failed(String),
}

impl Runner<'_> {
    /// Prints a piece of the run for people: on stdout, or stderr with `--output json` (stdout is the JSON).
    fn say(&self, text: &str) {
        if self.g.output == output::Format::Json {
            eprint!("{}", statsctl_core::sensitive::redact_text(text));
        } else {
            let _ = output::print_text(text);
        }
    }

    fn record(&self, number: usize, step: &Step, status: StepStatus) -> StepRecord {
        StepRecord {
            number,
            title: step.title.clone(),
            why: step.why.clone(),
            kind: step.kind.label().to_string(),
            status,
            lines: vec![],
            table: None,
            question: None,
            answer: None,
            change: None,
        }
    }

    fn line(&self, rec: &mut StepRecord, text: String) {
        self.say(&format!("   {text}\n"));
        rec.lines.push(text);
    }

    async fn step(&mut self, number: usize, step: &Step) -> (StepRecord, Next) {
        let mut rec = self.record(number, step, StepStatus::Done);
        let next = match &step.kind {
            StepKind::Note(text) => {
                let shown = resolve(text, &self.found).unwrap_or_else(|_| text.clone());
                for l in shown.trim().lines() {
                    self.line(&mut rec, l.to_string());
                }
                Next::Continue
            }
            StepKind::Decide(q) => self.decide(&mut rec, q).await,
            StepKind::Sql(sql) => {
                self.sql_step(&mut rec, step, sql).await;
                next_of(rec.status)
            }
            StepKind::Check(ids) => {
                self.check_step(&mut rec, step, ids).await;
                next_of(rec.status)
            }
            StepKind::History(n) => {
                match crate::cmd::history::newest_lines(self.s, *n as usize).await {
                    Ok(lines) => {
                        for l in lines {
                            self.line(&mut rec, l);
                        }
                    }
                    Err(e) => {
                        rec.status = StepStatus::Unavailable;
                        self.line(
                            &mut rec,
                            format!("could not read the deploy history: {}", e.message),
                        );
                    }
                }
                next_of(rec.status)
            }
            StepKind::Metric(m) => {
                match reads::metric(self.s, m).await {
                    Ok(series) => {
                        let mut fields = BTreeMap::new();
                        for (i, x) in series.iter().enumerate() {
                            let f = |v: Option<f64>| {
                                v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
                            };
                            let limit = x
                                .limit
                                .map(|l| format!(" (limit {l:.0})"))
                                .unwrap_or_default();
                            self.line(
                                &mut rec,
                                format!(
                                    "{}: min {} avg {} max {}{limit} {} ({} points)",
                                    x.label,
                                    f(x.min),
                                    f(x.avg),
                                    f(x.max),
                                    x.sparkline,
                                    x.points
                                ),
                            );
                            if i == 0 {
                                fields.insert("min".to_string(), f(x.min));
                                fields.insert("avg".to_string(), f(x.avg));
                                fields.insert("max".to_string(), f(x.max));
                            }
                        }
                        if series.is_empty() {
                            self.line(&mut rec, "no datapoints in the window".into());
                        }
                        self.remember(step, fields);
                    }
                    Err(e) => {
                        rec.status = StepStatus::Unavailable;
                        self.line(
                            &mut rec,
                            format!("could not read the metric: {}", e.message),
                        );
                    }
                }
                Next::Continue
            }
            StepKind::Action(a) => self.action_step(&mut rec, a).await,
        };
        (rec, next)
    }

    fn remember(&mut self, step: &Step, fields: BTreeMap<String, String>) {
        if let Some(id) = &step.id {
            self.found.steps.insert(id.clone(), fields);
        }
    }

    async fn decide(&mut self, rec: &mut StepRecord, q: &str) -> Next {
        let q = resolve(q, &self.found).unwrap_or_else(|_| q.to_string());
        rec.question = Some(q.clone());
        match flow::decide_gate(self.mode) {
            Gate::Ask => {
                let a = self.ask(&format!("   {q} {CHOICES} ")).await;
                rec.answer = Some(format!("{} (typed)", a.word()));
                let next = flow::after_decide(a);
                match next {
                    Next::SkipRest => self.line(rec, "the rest of the runbook is skipped".into()),
                    Next::Stop => rec.status = StepStatus::Quit,
                    Next::Continue => {}
                }
                next
            }
            _ => {
                let why = if self.mode.yes {
                    "--yes"
                } else if self.mode.dry_run {
                    "dry run"
                } else {
                    "no terminal to ask"
                };
                self.line(rec, format!("{q} → going on (the default; {why})"));
                rec.answer = Some(format!("go on (default: {why})"));
                Next::Continue
            }
        }
    }

    /// Asks until the answer is one of the choices; Ctrl-C or a closed stdin is `quit`.
    async fn ask(&self, question: &str) -> Answer {
        for _ in 0..5 {
            match crate::session::ask(question).await {
                Ok(Some(line)) => match answer::parse(&line) {
                    Ok(a) => return a,
                    Err(e) => eprintln!("   {e}"),
                },
                _ => return Answer::Quit,
            }
        }
        Answer::Quit
    }

    async fn db(&mut self) -> Result<&tokio_postgres::Client, String> {
        if matches!(self.db, Db::NotTried) {
            self.db = match connect(&self.s.stack.spec).await {
                Ok(c) => Db::Up(c),
                Err(e) => Db::Down(e),
            };
        }
        match &self.db {
            Db::Up(c) => Ok(c),
            Db::Down(e) => Err(e.clone()),
            Db::NotTried => Err("not connected".into()),
        }
    }

    async fn sql_step(&mut self, rec: &mut StepRecord, step: &Step, sql: &str) {
        let sql = match statsctl_runbooks::sql::resolve_sql(sql, &self.found) {
            Ok(s) => s,
            Err(e) => {
                rec.status = StepStatus::Failed;
                self.line(rec, e);
                return;
            }
        };
        if !statsctl_core::runbook::read_only(&sql) {
            rec.status = StepStatus::Failed;
            self.line(
                rec,
                "the query is not one read-only statement; not run".into(),
            );
            return;
        }
        let client = match self.db().await {
            Ok(c) => c,
            Err(e) => {
                rec.status = StepStatus::Unavailable;
                self.line(
                    rec,
                    format!("database not reachable ({e}): this step is skipped, the run goes on"),
                );
                return;
            }
        };
        match read_only_query(client, &sql).await {
            Ok(table) => {
                self.say(&render_table(&table));
                if let Some(first) = table.rows.first() {
                    let fields = table
                        .columns
                        .iter()
                        .cloned()
                        .zip(first.iter().cloned())
                        .collect();
                    self.remember(step, fields);
                }
                rec.table = Some(table);
            }
            Err(e) => {
                rec.status = StepStatus::Unavailable;
                self.line(rec, format!("the query failed: {e}"));
                if e.contains("no answer") {
                    self.db = Db::Down(e);
                }
            }
        }
    }

    async fn check_step(&mut self, rec: &mut StepRecord, step: &Step, ids: &[String]) {
        // The audience the step budgets for: its `viewers` (a parameter, typically), else the stack's.
        let viewers = match &step.viewers {
            None => self.s.stack.spec.event.expected_viewers,
            Some(v) => {
                match resolve(v, &self.found)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .filter(|n| *n > 0)
                {
                    Some(n) => n,
                    None => {
                        rec.status = StepStatus::Problem;
                        self.line(
                        rec,
                        format!("viewers `{v}` is not a whole number above 0: the checks did not run"),
                    );
                        return;
                    }
                }
            }
        };
        if step.viewers.is_some() {
            self.line(rec, format!("for {viewers} viewers"));
        }
        match reads::checks(self.g, self.s, ids, viewers).await {
            Ok(findings) => {
                let mut fields = BTreeMap::new();
                for f in &findings {
                    self.line(
                        rec,
                        format!("{} {}  {}", f.status.symbol(), f.id, f.summary),
                    );
                    if matches!(f.status, Status::Fail | Status::Warn) {
                        for e in &f.evidence {
                            self.line(rec, format!("    {e}"));
                        }
                        for x in &f.fixes {
                            self.line(rec, format!("    fix: {x}"));
                        }
                    }
                    fields.insert(f.id.to_string(), format!("{:?}", f.status).to_lowercase());
                }
                if findings.iter().any(|f| f.status == Status::Fail) {
                    rec.status = StepStatus::Problem;
                }
                self.remember(step, fields);
            }
            Err(e) => {
                rec.status = StepStatus::Unavailable;
                self.line(rec, format!("could not run the checks: {}", e.message));
            }
        }
    }

    async fn action_step(&mut self, rec: &mut StepRecord, a: &Action) -> Next {
        let a = match resolve_action(a, &self.found) {
            Ok(a) => a,
            Err(e) => {
                rec.status = StepStatus::Failed;
                self.line(rec, format!("cannot say what to change: {e}"));
                return Next::Stop;
            }
        };
        let p = match self.prepare(&a).await {
            Ok(p) => p,
            Err(NotReady::Nothing(why)) => {
                self.line(rec, why);
                return Next::Continue;
            }
            Err(NotReady::Failed(why)) => {
                rec.status = StepStatus::Failed;
                self.line(rec, why);
                return Next::Stop;
            }
        };
        // Exactly what it will do, before any question.
        if let Some(t) = &p.table {
            self.say(&render_table(t));
        }
        for l in &p.lines {
            self.line(rec, l.clone());
        }
        let c = &p.change;
        self.line(
            rec,
            format!("will change: {}: {} → {}", c.what, c.before, c.after),
        );
        rec.table = p.table.clone();
        rec.change = Some(p.change.clone());
        let question = format!("{}?", a.describe());
        rec.question = Some(question.clone());
        match flow::action_gate(self.mode) {
            Gate::Print => {
                rec.status = StepStatus::DryRun;
                rec.answer = Some("not asked (dry run)".into());
                return Next::Continue;
            }
            Gate::Refuse => {
                rec.status = StepStatus::Refused;
                rec.answer = Some("none: no terminal and no --yes".into());
                self.line(
                    rec,
                    "refused: no terminal to ask and no --yes; nothing was changed".into(),
                );
                return Next::Stop;
            }
            Gate::Go => rec.answer = Some("yes (--yes)".into()),
            Gate::Ask => {
                let answer = self.ask(&format!("   {question} {CHOICES} ")).await;
                rec.answer = Some(format!("{} (typed)", answer.word()));
                let (go, next) = flow::after_action(answer);
                if !go {
                    rec.status = match answer {
                        Answer::Skip => StepStatus::Skipped,
                        Answer::Quit => StepStatus::Quit,
                        _ => StepStatus::Declined,
                    };
                    return next;
                }
            }
        }
        match self.change(&p.apply).await {
            Ok((read_back, took)) => {
                if let Some(c) = &mut rec.change {
                    c.read_back = Some(read_back.clone());
                    c.took = Some(took);
                }
                self.line(
                    rec,
                    format!(
                        "read back: {read_back}{}",
                        if took { " (took)" } else { " (did NOT take)" }
                    ),
                );
                if !took {
                    rec.status = StepStatus::Problem;
                }
                Next::Continue
            }
            Err(e) => {
                rec.status = StepStatus::Failed;
                self.line(rec, e);
                Next::Stop
            }
        }
    }

    /// Makes the change under the deploy lock (local, then the ledger's lock object, as deploy takes them) and
    /// reads it back: `(what the read-back shows, whether it took)`.
    async fn change(&mut self, apply: &Apply) -> Result<(String, bool), String> {
        let command = "statsctl runbook run";
        let _local = self.s.lock(command).map_err(cli_text)?;
        let remote = self
            .s
            .remote_lock(command, false, false)
            .await
            .map_err(cli_text)?;
        let done = self.make(apply).await;
        let done = match done {
            Ok(()) => self.read_back(apply).await,
            Err(e) => Err(e),
        };
        self.s.release(remote, Ok(done)).await.map_err(cli_text)?
    }

    async fn prepare(&mut self, a: &Action) -> Result<Prepared, NotReady> {
        let spec = &self.s.stack.spec;
        let env = self.s.env.clone();
        let aws_err = |e: aws::AwsError| NotReady::Failed(e.to_string());
        match a {
            Action::TerminateIdleConnections { user, older_than } => {
                let age = parse_span(older_than).map_err(|e| {
                    NotReady::Failed(format!(
                        "older_than `{older_than}`: {} ({})",
                        e.message, e.hint
                    ))
                })?;
                let admins = admin_users(spec);
                if admins.iter().any(|u| u == user) {
                    return Err(NotReady::Failed(format!(
                        "`{user}` is the stack's admin user: its connections are never terminated by a runbook"
                    )));
                }
                let client = self
                    .db()
                    .await
                    .map_err(|e| NotReady::Failed(format!("database not reachable ({e}): cannot show the connections, so nothing is terminated")))?;
                let superuser = timed(
                    client.query_opt("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[user]),
                )
                .await
                .map_err(NotReady::Failed)?
                .map(|r| r.get::<_, bool>(0));
                match superuser {
                    None => {
                        return Err(NotReady::Failed(format!(
                            "there is no database user `{user}`"
                        )))
                    }
                    Some(true) => {
                        return Err(NotReady::Failed(format!(
                            "`{user}` is a superuser: its connections are never terminated by a runbook"
                        )))
                    }
                    Some(false) => {}
                }
                let secs = age.as_secs_f64();
                let rows = timed(client.query(
                    "SELECT pid, usename::text, coalesce(application_name, '')::text, \
                     coalesce(client_addr::text, 'local'), date_trunc('second', now() - state_change)::text \
                     FROM pg_stat_activity \
                     WHERE usename = $1 AND state = 'idle' AND state_change < now() - make_interval(secs => $2) \
                       AND pid <> pg_backend_pid() \
                     ORDER BY state_change LIMIT $3",
                    &[user, &secs, &MAX_TERMINATE],
                ))
                .await
                .map_err(NotReady::Failed)?;
                if rows.is_empty() {
                    return Err(NotReady::Nothing(format!(
                        "`{user}` has no connection idle longer than {older_than}: nothing to terminate"
                    )));
                }
                let pids: Vec<i32> = rows.iter().map(|r| r.get::<_, i32>(0)).collect();
                let table = Table {
                    columns: ["pid", "user", "application", "client", "idle for"]
                        .map(String::from)
                        .to_vec(),
                    rows: rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.get::<_, i32>(0).to_string(),
                                r.get(1),
                                r.get(2),
                                r.get(3),
                                r.get(4),
                            ]
                        })
                        .collect(),
                    truncated: rows.len() as i64 == MAX_TERMINATE,
                };
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("connections of `{user}` idle longer than {older_than}"),
                        before: format!("{} open", pids.len()),
                        after: "0 (pg_terminate_backend on each pid above)".into(),
                        read_back: None,
                        took: None,
                    },
                    table: Some(table),
                    lines: vec![format!(
                        "{} idle connection(s) of `{user}` will be terminated (pids {})",
                        pids.len(),
                        pids.iter()
                            .map(i32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )],
                    apply: Apply::Terminate {
                        user: user.clone(),
                        pids,
                    },
                })
            }
            Action::SetReservedConcurrency { function, value } => {
                let (name, _) = function_name(spec, &env, function).map_err(NotReady::Failed)?;
                let wanted: Option<i32> = match value.trim() {
                    "none" | "unreserved" => None,
                    v => Some(v.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        NotReady::Failed(format!(
                            "reserved concurrency `{v}` is not a whole number ≥ 0 (or `none`)"
                        ))
                    })?),
                };
                let now = aws::lambda::reserved_concurrency(&self.s.aws, &name)
                    .await
                    .map_err(aws_err)?;
                if now == wanted {
                    return Err(NotReady::Nothing(format!(
                        "`{name}` already has reserved concurrency {}: nothing to change",
                        shown_reserved(now)
                    )));
                }
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("reserved concurrency of `{name}`"),
                        before: shown_reserved(now),
                        after: shown_reserved(wanted),
                        read_back: None,
                        took: None,
                    },
                    table: None,
                    lines: vec![],
                    apply: Apply::Reserve {
                        function: name,
                        value: wanted,
                    },
                })
            }
            Action::ScaleService { desired } => {
                let Some(svc) = &spec.service else {
                    return Err(NotReady::Failed("the stack has no service to scale".into()));
                };
                let count: i32 = desired
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0 && i64::from(*n) <= i64::from(svc.max_count))
                    .ok_or_else(|| {
                        NotReady::Failed(format!(
                            "desired count `{desired}` is not a whole number from 0 to the service's max_count ({})",
                            svc.max_count
                        ))
                    })?;
                // The colour serving viewers: after a blue/green rollout, green; blue idles with no traffic.
                let name = super::reads::serving(self.s)
                    .await
                    .map_err(|e| NotReady::Failed(cli_text(e)))?
                    .map_or_else(|| svc.name.clone(), |v| v.service);
                let now = aws::ecs::service_status(&self.s.aws, &svc.cluster, &name)
                    .await
                    .map_err(aws_err)?
                    .ok_or_else(|| {
                        NotReady::Failed(format!(
                            "the service `{name}` does not exist in cluster `{}`: run `statsctl deploy` first",
                            svc.cluster
                        ))
                    })?;
                if now.desired == count {
                    return Err(NotReady::Nothing(format!(
                        "`{name}` already wants {count} task(s) ({} running): nothing to change",
                        now.running
                    )));
                }
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("desired task count of `{name}`"),
                        before: format!("{} ({} running)", now.desired, now.running),
                        after: count.to_string(),
                        read_back: None,
                        took: None,
                    },
                    table: None,
                    lines: vec![],
                    apply: Apply::Scale {
                        cluster: svc.cluster.clone(),
                        service: name,
                        count,
                    },
                })
            }
            Action::RouteThroughProxy { function } => {
                let (name, short) =
                    function_name(spec, &env, function).map_err(NotReady::Failed)?;
                let role = statsctl_core::desired::Names::new(spec, &env).function_role(&short);
                let (observed, plan, _) = self
                    .s
                    .observe_and_plan()
                    .await
                    .map_err(|e| NotReady::Failed(e.message))?;
                let changes = route_changes(&plan.changes, &name, &role);
                if changes.is_empty() {
                    return Err(NotReady::Nothing(format!(
                        "`{name}` already has the stack's configuration (host variable, subnets, security group, \
                         rds-db:connect): nothing to change"
                    )));
                }
                if let Some(b) = changes.iter().find_map(|c| c.blocked.as_deref()) {
                    return Err(NotReady::Failed(format!("cannot change `{name}`: {b}")));
                }
                let mut lines = Vec::new();
                for c in &changes {
                    for a in &c.changes {
                        let (old, new) = statsctl_core::sensitive::mask_change(
                            a.old.as_deref(),
                            a.new.as_deref(),
                        );
                        lines.push(format!(
                            "{} {}: {} → {}",
                            c.key,
                            a.attr,
                            old.unwrap_or_else(|| "(none)".into()),
                            new.unwrap_or_else(|| "(none)".into())
                        ));
                    }
                }
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("configuration of `{name}`"),
                        before: "as live (above)".into(),
                        after: "the stack's own values (above)".into(),
                        read_back: None,
                        took: None,
                    },
                    table: None,
                    lines,
                    apply: Apply::Route {
                        keys: changes.iter().map(|c| c.key.clone()).collect(),
                        changes,
                        observed: Box::new(observed),
                    },
                })
            }
            Action::Rollback { target } => {
                // The same subject and target `statsctl rollback` finds: history's rule, read live.
                let failed = |e: CliError| NotReady::Failed(cli_text(e));
                let subject =
                    crate::cmd::rollback::subject_named(spec, &env, target).map_err(failed)?;
                let t = crate::cmd::rollback::find_target(self.s, subject, None)
                    .await
                    .map_err(failed)?;
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("what {} serves", t.subject.unit()),
                        before: t.live.clone(),
                        after: t.to.clone(),
                        read_back: None,
                        took: None,
                    },
                    table: None,
                    lines: vec![t.line.clone()],
                    apply: Apply::Rollback(Box::new(t)),
                })
            }
            Action::ReplaceUnresponsiveTasks {} => {
                let Some(svc) = &spec.service else {
                    return Err(NotReady::Failed("the stack has no service".into()));
                };
                // The serving colour's target group and tasks (see ScaleService).
                let serving = super::reads::serving(self.s)
                    .await
                    .map_err(|e| NotReady::Failed(cli_text(e)))?
                    .ok_or_else(|| NotReady::Failed("the stack has no service".into()))?;
                let (tg, name) = (serving.target_group, serving.service);
                let targets = aws::elb::target_health(&self.s.aws, &tg)
                    .await
                    .map_err(aws_err)?
                    .ok_or_else(|| {
                        NotReady::Failed(format!(
                            "the target group `{tg}` does not exist: run `statsctl deploy` first"
                        ))
                    })?;
                let bad: Vec<&(String, String, String)> =
                    targets.iter().filter(|t| t.1 == "unhealthy").collect();
                if bad.is_empty() {
                    return Err(NotReady::Nothing(if targets.is_empty() {
                        format!("no target is registered in `{tg}` (the emulator registers none): nothing to replace")
                    } else {
                        format!(
                            "{} target(s) in `{tg}`, none unhealthy: nothing to replace",
                            targets.len()
                        )
                    }));
                }
                let tasks = aws::ecs::task_addresses(&self.s.aws, &svc.cluster, &name)
                    .await
                    .map_err(aws_err)?;
                let stop: Vec<String> = tasks
                    .iter()
                    .filter(|(_, ip)| bad.iter().any(|b| &b.0 == ip))
                    .map(|(arn, _)| arn.clone())
                    .collect();
                if stop.is_empty() {
                    return Err(NotReady::Failed(format!(
                        "{} unhealthy target(s) in `{tg}` match no task of `{name}`: replace them by hand",
                        bad.len(),
                    )));
                }
                Ok(Prepared {
                    change: ChangeRecord {
                        what: format!("unresponsive tasks of `{name}`"),
                        before: format!("{} unhealthy", bad.len()),
                        after: format!("{} stopped; the service starts replacements", stop.len()),
                        read_back: None,
                        took: None,
                    },
                    table: Some(Table {
                        columns: ["target", "state", "reason"].map(String::from).to_vec(),
                        rows: bad
                            .iter()
                            .map(|(a, b, c)| vec![a.clone(), b.clone(), c.clone()])
                            .collect(),
                        truncated: false,
                    }),
                    lines: stop.iter().map(|t| format!("will stop {t}")).collect(),
                    apply: Apply::StopTasks {
                        cluster: svc.cluster.clone(),
                        service: name,
                        tasks: stop,
                    },
                })
            }
        }
    }

    async fn make(&mut self, apply: &Apply) -> Result<(), String> {
        let aws = &self.s.aws;
        match apply {
            Apply::Terminate { user, pids } => {
                let client = self.db().await?;
                // Only those still idle: one that became busy since it was shown is left alone.
                timed(client.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE pid = ANY($1) AND usename = $2 AND state = 'idle'",
                    &[pids, user],
                ))
                .await
                .map(|_| ())
            }
            Apply::Reserve { function, value } => {
                aws::lambda::set_reserved_concurrency(aws, function, *value)
                    .await
                    .map_err(|e| e.to_string())
            }
            Apply::Scale {
                cluster,
                service,
                count,
            } => aws::ecs::set_desired_count(aws, cluster, service, *count)
                .await
                .map_err(|e| e.to_string()),
            Apply::Route {
                changes, observed, ..
            } => {
                let stop = statsctl_engine::interrupt::stop_on_ctrl_c();
                let report = |line: String| progress(line);
                let ex = self.s.executor(&report, &stop);
                let mut observed = (**observed).clone();
                for c in changes {
                    statsctl_engine::apply::apply_one(aws, &ex, c, &mut observed)
                        .await
                        .map_err(|e| match e {
                            statsctl_engine::apply::StepError::Failed(e) => e.to_string(),
                            statsctl_engine::apply::StepError::Interrupted => {
                                format!("interrupted while applying {}: re-run to finish", c.key)
                            }
                        })?;
                }
                Ok(())
            }
            Apply::Rollback(t) => {
                let stop = statsctl_engine::interrupt::stop_on_ctrl_c();
                let (_, key) = crate::cmd::rollback::roll_back(self.s, t, &stop)
                    .await
                    .map_err(cli_text)?;
                progress(format!("rollback recorded in the deploy history: {key}"));
                Ok(())
            }
            Apply::StopTasks { cluster, tasks, .. } => {
                for t in tasks {
                    aws::ecs::stop_task(aws, cluster, t, "statsctl runbook: target unresponsive")
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    async fn read_back(&mut self, apply: &Apply) -> Result<(String, bool), String> {
        let aws = &self.s.aws;
        match apply {
            Apply::Terminate { pids, .. } => {
                let client = self.db().await?;
                // pg_terminate_backend signals; the backends leave pg_stat_activity a moment later.
                let started = std::time::Instant::now();
                loop {
                    let left: i64 = timed(client.query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                        &[pids],
                    ))
                    .await?
                    .get(0);
                    if left == 0 || started.elapsed() > READ_BACK_FOR {
                        return Ok((
                            format!("{left} of the {} connection(s) still open", pids.len()),
                            left == 0,
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Apply::Reserve { function, value } => {
                let now = aws::lambda::reserved_concurrency(aws, function)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((
                    format!(
                        "reserved concurrency of `{function}` is {}",
                        shown_reserved(now)
                    ),
                    now == *value,
                ))
            }
            Apply::Scale {
                cluster,
                service,
                count,
            } => {
                let now = aws::ecs::service_status(aws, cluster, service)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(match now {
                    Some(st) => (
                        format!(
                            "`{service}` wants {} task(s), {} running",
                            st.desired, st.running
                        ),
                        st.desired == *count,
                    ),
                    None => (format!("`{service}` is gone"), false),
                })
            }
            Apply::Route { keys, .. } => {
                let (_, plan, _) = self.s.observe_and_plan().await.map_err(|e| e.message)?;
                let left: Vec<String> = plan
                    .pending()
                    .filter(|c| keys.contains(&c.key))
                    .map(|c| c.key.to_string())
                    .collect();
                Ok(if left.is_empty() {
                    ("live configuration matches the stack".into(), true)
                } else {
                    (
                        format!("still differs from the stack: {}", left.join(", ")),
                        false,
                    )
                })
            }
            Apply::Rollback(t) => {
                let now = crate::cmd::rollback::live_version(self.s, &t.subject)
                    .await
                    .map_err(cli_text)?;
                Ok((format!("{} serves {now}", t.subject.unit()), now == t.to))
            }
            Apply::StopTasks {
                cluster,
                service,
                tasks,
            } => {
                let now = aws::ecs::task_addresses(aws, cluster, service)
                    .await
                    .map_err(|e| e.to_string())?;
                let left = tasks
                    .iter()
                    .filter(|t| now.iter().any(|(a, _)| a == *t))
                    .count();
                Ok((
                    format!("{left} of the {} stopped task(s) still listed", tasks.len()),
                    left == 0,
                ))
            }
        }
    }
}

/// `sql` and `check` steps that fail stop nothing (evidence is missing, the run goes on); an error does.
fn next_of(status: StepStatus) -> Next {
    if status == StepStatus::Failed {
        Next::Stop
    } else {
        Next::Continue
    }
}

/// A command's error as one line of the run: the message and its hint.
fn cli_text(e: CliError) -> String {
    match e.hint {
        Some(h) => format!("{} (hint: {h})", e.message),
        None => e.message,
    }
}

/// The users whose connections a runbook never terminates: the one statsctl itself connects as and the
/// cluster's master user.
fn admin_users(spec: &statsctl_core::model::StackFile) -> Vec<String> {
    let mut out = vec![spec.database.master_username.clone()];
    if let Some(sql) = &spec.database.sql {
        out.push(sql.user.clone());
    }
    out
}

fn shown_reserved(n: Option<i32>) -> String {
    n.map(|n| n.to_string())
        .unwrap_or_else(|| "none (unreserved)".into())
}

/// A function of the stack, by its name in the stack file (`stats-api`) or in AWS (`live-stats-prod-stats-api`):
/// `(name in AWS, name in the stack file)`.
fn function_name(
    spec: &statsctl_core::model::StackFile,
    env: &str,
    given: &str,
) -> Result<(String, String), String> {
    let given = given.strip_prefix("function:").unwrap_or(given);
    if spec.functions.contains_key(given) {
        return Ok((spec.function_name(env, given), given.to_string()));
    }
    if let Some(short) = spec
        .functions
        .keys()
        .find(|k| spec.function_name(env, k) == given)
    {
        return Ok((given.to_string(), short.clone()));
    }
    Err(format!(
        "`{given}` is not a function of the stack; it has: {}",
        spec.functions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The pending changes that put a function's stack configuration back: the function itself, its alias (the
/// version traffic goes through) and its role's `rds-db:connect` policy.
fn route_changes(changes: &[Change], function: &str, role: &str) -> Vec<Change> {
    changes
        .iter()
        .filter(|c| c.action != statsctl_core::plan::Action::NoOp)
        .filter(|c| match c.key.kind {
            Kind::Function => c.key.name == function,
            Kind::Alias => c.key.name.split(':').next() == Some(function),
            Kind::RolePolicy => c.key.name.split('/').next() == Some(role),
            _ => false,
        })
        .cloned()
        .collect()
}

/// The action with its references replaced by what earlier steps found and the parameters.
fn resolve_action(a: &Action, found: &Found) -> Result<Action, String> {
    let r = |t: &str| resolve(t, found);
    Ok(match a {
        Action::SetReservedConcurrency { function, value } => Action::SetReservedConcurrency {
            function: r(function)?,
            value: r(value)?,
        },
        Action::RouteThroughProxy { function } => Action::RouteThroughProxy {
            function: r(function)?,
        },
        Action::TerminateIdleConnections { user, older_than } => Action::TerminateIdleConnections {
            user: r(user)?,
            older_than: r(older_than)?,
        },
        Action::ScaleService { desired } => Action::ScaleService {
            desired: r(desired)?,
        },
        Action::Rollback { target } => Action::Rollback { target: r(target)? },
        Action::ReplaceUnresponsiveTasks {} => Action::ReplaceUnresponsiveTasks {},
    })
}

/// One database exchange with the client-side bound.
async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(DB_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(db_error(&e)),
        Err(_) => Err(format!(
            "no answer from the database in {}s",
            DB_TIMEOUT.as_secs()
        )),
    }
}

fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_string(),
        None => e.to_string(),
    }
}

/// Connects to the stack's `database.sql` endpoint as preflight does: password from `password_env`, else the
/// password file.
async fn connect(spec: &statsctl_core::model::StackFile) -> Result<tokio_postgres::Client, String> {
    let Some(sql) = &spec.database.sql else {
        return Err("the stack has no `database.sql` endpoint".into());
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
        .application_name("statsctl-runbook")
        .connect_timeout(Duration::from_secs(3));
    use statsctl_core::pgpass::{self, PasswordSource};
    match pgpass::password_source(sql, &|name| std::env::var(name).ok()) {
        PasswordSource::Given(p) => {
            cfg.password(p);
        }
        PasswordSource::File(path) => {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Some(p) = pgpass::lookup(&text, &sql.host, sql.port, dbname, &sql.user) {
                    cfg.password(p);
                }
            }
        }
        PasswordSource::None => {}
    }
    let (client, conn) = match tokio::time::timeout(
        Duration::from_secs(5),
        cfg.connect(tokio_postgres::NoTls),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Err(format!(
                "{}:{}: {}",
                sql.host,
                sql.port,
                std::error::Error::source(&e)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| e.to_string())
            ))
        }
        Err(_) => return Err(format!("{}:{}: no answer in 5s", sql.host, sql.port)),
    };
    tokio::spawn(conn);
    Ok(client)
}

/// Runs one read-only statement in a read-only transaction with a statement timeout, fetching at most
/// `MAX_ROWS` rows through a cursor (SHOW returns one row and needs none). Values come back as text, whatever
/// their type.
async fn read_only_query(client: &tokio_postgres::Client, sql: &str) -> Result<Table, String> {
    use tokio_postgres::SimpleQueryMessage;
    let sql = sql.trim().trim_end_matches(';').trim();
    timed(client.batch_execute(&format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"
    )))
    .await?;
    let show = sql
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("show"));
    let result = async {
        if show {
            timed(client.simple_query(sql)).await
        } else {
            timed(
                client.batch_execute(&format!("DECLARE statsctl_rows NO SCROLL CURSOR FOR {sql}")),
            )
            .await?;
            timed(client.simple_query(&format!("FETCH {} FROM statsctl_rows", MAX_ROWS + 1))).await
        }
    }
    .await;
    let _ = timed(client.batch_execute("ROLLBACK")).await;
    let mut table = Table {
        columns: vec![],
        rows: vec![],
        truncated: false,
    };
    for m in result? {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                table.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if table.columns.is_empty() {
                    table.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                }
                if table.rows.len() == MAX_ROWS {
                    table.truncated = true;
                    continue;
                }
                table.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").to_string())
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(table)
}

/// Rows as an aligned text table, indented under the step.
fn render_table(t: &Table) -> String {
    let mut all = vec![t.columns.clone()];
    all.extend(t.rows.iter().cloned());
    let mut out = crate::output::table(&all, "   ");
    if t.rows.is_empty() {
        out.push_str("   (no rows)\n");
    }
    if t.truncated {
        out.push_str(&format!("   (first {} rows shown)\n", t.rows.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::Key;
    use statsctl_core::plan::Action as Do;

    fn stack() -> statsctl_core::model::StackFile {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml"),
        )
        .unwrap();
        let vars = |_: &str| None;
        statsctl_core::loader::load_str(
            std::path::Path::new("live-stats.yaml"),
            &text,
            Some("prod"),
            &vars,
        )
        .unwrap()
        .spec
    }

    #[test]
    fn functions_by_stack_or_aws_name() {
        let spec = stack();
        /// (name given, the function's (stack name, physical name) or the error).
        type Case<'a> = (&'a str, Result<(&'a str, &'a str), &'a str>);
        let cases: &[Case] = &[
            ("stats-api", Ok(("live-stats-prod-stats-api", "stats-api"))),
            (
                "function:stats-api",
                Ok(("live-stats-prod-stats-api", "stats-api")),
            ),
            (
                "live-stats-prod-log-ingester",
                Ok(("live-stats-prod-log-ingester", "log-ingester")),
            ),
            (
                "live-stats-dev-stats-api",
                Err("not a function of the stack"),
            ),
            ("stats", Err("it has: log-ingester, stats-api")),
        ];
        for (given, want) in cases {
            match (function_name(&spec, "prod", given), want) {
                (Ok((aws, short)), Ok((wa, ws))) => {
                    assert_eq!((aws.as_str(), short.as_str()), (*wa, *ws))
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{given}: {e}"),
                (got, w) => panic!("{given}: got {got:?}, want {w:?}"),
            }
        }
        assert_eq!(admin_users(&spec), vec!["stats_admin".to_string()]);
    }

    #[test]
    fn routing_a_function_back_takes_its_own_changes_only() {
        let change = |kind, name: &str, action| Change {
            key: Key::new(kind, name),
            action,
            changes: vec![],
            blocked: None,
        };
        let f = "live-stats-prod-stats-api";
        let role = "live-stats-prod-fn-stats-api";
        let plan = vec![
            change(Kind::Function, f, Do::Update),
            change(Kind::Alias, &format!("{f}:live"), Do::Update),
            change(
                Kind::RolePolicy,
                &format!("{role}/rds-db-connect"),
                Do::Create,
            ),
            change(Kind::Function, "live-stats-prod-log-ingester", Do::Update),
            change(
                Kind::RolePolicy,
                "live-stats-prod-fn-log-ingester/rds-db-connect",
                Do::Create,
            ),
            change(Kind::Alias, "live-stats-prod-stats-api-v2:live", Do::Update),
            change(Kind::Function, f, Do::NoOp),
        ];
        let got: Vec<String> = route_changes(&plan, f, role)
            .iter()
            .map(|c| c.key.to_string())
            .collect();
        assert_eq!(
            got,
            vec![
                format!("lambda_function.{f}"),
                format!("lambda_alias.{f}:live"),
                format!("iam_role_policy.{role}/rds-db-connect"),
            ]
        );
    }
}
