//! `statsctl rollback`: the incident path. Points one function's alias (or the service) back at the version
//! history says was serving before the last unit, at once — no steps, no bake — under the deploy lock, and
//! appends the rollback to the deploy history.

use std::io::IsTerminal;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{ArgGroup, Args};
use serde::Serialize;
use statsctl_aws as aws;
use statsctl_core::history::{self, Outcome, UnitKind, UnitRecord, WeightPoint};
use statsctl_core::model::StackFile;
use statsctl_engine::interrupt::stop_on_ctrl_c;
use statsctl_engine::wait::StepError;

use crate::context::Global;
use crate::exit::{CliError, CliResult, OK};
use crate::output::{emit, progress};
use crate::session::{aws_error, Session};

/// How many of the newest history records a rollback reads to find its target.
pub const HISTORY_READ: usize = 500;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["function", "service"])))]
pub struct RollbackArgs {
    /// The function to roll back: its name in the stack file (e.g. stats-api) or its deployed name
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Roll back the stack's service (its task definition)
    #[arg(long)]
    pub service: bool,
    /// The version (function) or task definition revision (`family:N` or N, service) to return to; default:
    /// what history says was serving before the last unit that shipped what serves now
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Show what would be rolled back and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed without a terminal)
    #[arg(long)]
    pub yes: bool,
}

/// What is rolled back: a function's alias or the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: UnitKind,
    /// The stack file's name (`stats-api`, or the service's name).
    pub name: String,
    /// The deployed name (the function's physical name, or the service's name): history's `target`.
    pub target: String,
    /// The function's alias; empty for the service.
    pub alias: String,
}

impl Subject {
    pub(crate) fn unit(&self) -> String {
        match self.kind {
            UnitKind::Function => format!("function.{}", self.name),
            _ => format!("service.{}", self.name),
        }
    }
}

/// The function named on the command line, by its stack-file name or its deployed name. Pure.
pub fn function_subject(stack: &StackFile, env: &str, name: &str) -> Result<Subject, CliError> {
    stack
        .functions
        .iter()
        .find(|(logical, _)| *logical == name || stack.function_name(env, logical) == name)
        .map(|(logical, f)| Subject {
            kind: UnitKind::Function,
            name: logical.clone(),
            target: stack.function_name(env, logical),
            alias: f.alias.clone(),
        })
        .ok_or_else(|| {
            let known: Vec<&str> = stack.functions.keys().map(String::as_str).collect();
            CliError::new(format!("the stack has no function `{name}`")).hint(format!(
                "pass one of: {} (or its deployed name, e.g. `{}`)",
                known.join(", "),
                known
                    .first()
                    .map(|k| stack.function_name(env, k))
                    .unwrap_or_default()
            ))
        })
}

/// The stack's service as what is rolled back.
pub(crate) fn service_subject(stack: &StackFile) -> Result<Subject, CliError> {
    let svc = stack.service.as_ref().ok_or_else(|| {
        CliError::new("the stack has no service to roll back")
            .hint("roll back a function with --function NAME")
    })?;
    Ok(Subject {
        kind: UnitKind::Service,
        name: svc.name.clone(),
        target: svc.name.clone(),
        alias: String::new(),
    })
}

/// What a runbook's `rollback` action names: `service`, or a function by its stack-file or deployed name
/// (optionally written `function:NAME`). Pure.
pub(crate) fn subject_named(stack: &StackFile, env: &str, name: &str) -> Result<Subject, CliError> {
    let name = name.trim();
    if name == "service" {
        return service_subject(stack);
    }
    function_subject(stack, env, name.strip_prefix("function:").unwrap_or(name))
}

/// Where the target came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum Source {
    /// `--to`.
    Given,
    /// The history rule: the unit that shipped what serves now.
    History {
        unit: String,
        shipped_at: u64,
        who: String,
    },
}

/// The version to return to: `--to` (a bare revision number for the service becomes `family:N`), else the history
/// rule; an error naming the way out when neither answers. Pure.
pub fn choose_target(
    subject: &Subject,
    live: &str,
    to: Option<&str>,
    records: &[UnitRecord],
) -> Result<(String, Source), CliError> {
    if let Some(to) = to {
        let to = to.trim();
        let to = match (subject.kind, to.parse::<u32>(), live.rsplit_once(':')) {
            (UnitKind::Service, Ok(n), Some((family, _))) => format!("{family}:{n}"),
            _ => to.to_string(),
        };
        if to.is_empty() {
            return Err(CliError::new("--to is empty").hint("pass the version to return to"));
        }
        return Ok((to, Source::Given));
    }
    let target = history::rollback_target(records, &subject.target, live).ok_or_else(|| {
        CliError::new(format!(
            "history has no version to roll `{}` back to: no shipped unit put {live} there",
            subject.name
        ))
        .hint(
            "see what shipped with `statsctl history`, then pass the version to return to with --to VERSION; \
             nothing was changed",
        )
    })?;
    let source = records
        .iter()
        .filter(|r| {
            r.target == subject.target
                && r.outcome == Outcome::Shipped
                && r.to.as_deref() == Some(live)
        })
        .max_by_key(|r| (r.ended_at, r.started_at))
        .map(|r| Source::History {
            unit: r.unit.clone(),
            shipped_at: r.ended_at,
            who: r.who.clone(),
        })
        .unwrap_or(Source::Given);
    Ok((target, source))
}

/// `function stats-api: alias live 9 → 7 (from history: unit shipped 2026-… by …)`. Pure.
pub fn describe(subject: &Subject, live: &str, to: &str, source: &Source) -> String {
    let what = match subject.kind {
        UnitKind::Function => format!("function {}: alias {}", subject.name, subject.alias),
        _ => format!("service {}:", subject.name),
    };
    let why = match source {
        Source::Given => "given with --to".to_string(),
        Source::History {
            unit,
            shipped_at,
            who,
        } => format!(
            "from history: {unit} shipped {} by {who}",
            statsctl_engine::lock::utc(shipped_at / 1000)
        ),
    };
    format!("{what} {live} → {to} ({why})")
}

#[derive(Serialize)]
struct Report<'a> {
    stack: &'a str,
    env: &'a str,
    unit: String,
    target: &'a str,
    from: &'a str,
    to: &'a str,
    #[serde(flatten)]
    source: &'a Source,
    dry_run: bool,
    rolled_back: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    seconds: f64,
}

/// Unix milliseconds, as history records them.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub async fn run(g: &Global, args: RollbackArgs) -> CliResult {
    let started = Instant::now();
    let s = Session::open(g, false).await?;
    let subject = match &args.function {
        Some(name) => function_subject(&s.stack.spec, &s.env, name)?,
        None => service_subject(&s.stack.spec)?,
    };
    if args.dry_run {
        return rollback(g, &s, &args, &subject, started, None).await;
    }
    let stop = stop_on_ctrl_c();
    let _local = s.lock("statsctl rollback")?;
    let remote = s.remote_lock("statsctl rollback", false, args.yes).await?;
    let result = rollback(g, &s, &args, &subject, started, Some(&stop)).await;
    s.release(remote, result).await
}

/// A rollback decided, before anything changes: what serves now, where it goes and why. `statsctl rollback` and a
/// runbook's `rollback` action both find it with [`find_target`], so they always agree.
pub(crate) struct Target {
    pub subject: Subject,
    /// The version (or task definition) serving now.
    pub live: String,
    pub to: String,
    pub source: Source,
    /// [`describe`]'s line: `function stats-api: alias live 9 → 7 (from history: …)`.
    pub line: String,
    /// The caller identity, as history records it.
    pub who: String,
    /// The ledger bucket the deploy history is in.
    pub bucket: String,
}

/// Reads what serves now and the deploy history and decides the target (`to`, else the history rule). Reads
/// only; an error (no target, already there) says that nothing was changed.
pub(crate) async fn find_target(
    s: &Session,
    subject: Subject,
    to: Option<&str>,
) -> CliResult<Target> {
    let (account, who) = aws::ledger::caller(&s.aws).await.map_err(aws_error)?;
    let bucket = statsctl_core::ledger::bucket_name(&s.stack.spec, &s.env, &account);
    let live = live_version(s, &subject).await?;
    let records: Vec<UnitRecord> =
        aws::ledger::read(&s.aws, &bucket, history::LEDGER_KIND, &s.env, HISTORY_READ)
            .await
            .map_err(aws_error)?;
    let (to, source) = choose_target(&subject, &live, to, &records)?;
    if to == live {
        return Err(CliError::new(format!(
            "{}: already on {live}; nothing was changed",
            subject.unit()
        ))
        .hint("pass another version with --to VERSION (`statsctl history` lists what shipped)"));
    }
    let line = describe(&subject, &live, &to, &source);
    Ok(Target {
        subject,
        live,
        to,
        source,
        line,
        who,
        bucket,
    })
}

/// Rolls back to `t.to` through the engine (the caller holds the deploy lock and has asked) and appends the
/// rollback to the deploy history: `(what serves now, read back; the history record's key)`.
pub(crate) async fn roll_back(
    s: &Session,
    t: &Target,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> CliResult<(String, String)> {
    let subject = &t.subject;
    let to = &t.to;
    let shift_started = now_ms();
    let read_back = match subject.kind {
        UnitKind::Function => {
            statsctl_engine::rollback::function(&s.aws, &subject.target, &subject.alias, to)
                .await
                .map_err(aws_error)?
                .to
        }
        _ => {
            let progress_fn = |line: String| progress(line);
            let ex = s.executor(&progress_fn, stop);
            match statsctl_engine::rollback::service(&s.aws, &ex, &subject.target, to).await {
                Ok(r) => r,
                Err(StepError::Failed(e)) => return Err(aws_error(e)),
                Err(StepError::Interrupted) => {
                    return Err(CliError::new(format!(
                        "interrupted while waiting for service `{}` to be steady on {to}: it was pointed at {to}",
                        subject.name
                    ))
                    .hint("check it with `statsctl status`"))
                }
            }
        }
    };
    let ended = now_ms();
    let record = UnitRecord {
        env: s.env.clone(),
        unit: subject.unit(),
        kind: subject.kind,
        target: subject.target.clone(),
        from: Some(t.live.clone()),
        to: Some(read_back.clone()),
        started_at: shift_started,
        ended_at: ended,
        who: t.who.clone(),
        strategy: "rollback".into(),
        timeline: vec![WeightPoint {
            at_ms: ended.saturating_sub(shift_started),
            percent: 100,
        }],
        // A rollback's record never becomes a rollback target itself (`history::rollback_target` follows
        // shipped units only).
        outcome: Outcome::RolledBack,
        alarm: None,
        ignored_alarms: vec![],
        detail: Some(format!("statsctl rollback: {}", t.line)),
    };
    let key = aws::ledger::append(&s.aws, &t.bucket, history::LEDGER_KIND, &s.env, &record)
        .await
        .map_err(|e| {
            let mut c = aws_error(e);
            c.message = format!(
                "rolled back to {read_back}, but the history record was not written: {}",
                c.message
            );
            c
        })?;
    Ok((read_back, key))
}

/// Reads what serves now and history, decides the target, and (unless a dry run, when `stop` is None) asks and
/// rolls back, under the locks `run` holds.
async fn rollback(
    g: &Global,
    s: &Session,
    args: &RollbackArgs,
    subject: &Subject,
    started: Instant,
    stop: Option<&std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> CliResult {
    let t = find_target(s, subject.clone(), args.to.as_deref()).await?;
    let report = |rolled_back: bool, record: Option<String>| Report {
        stack: &s.owner.stack,
        env: &s.env,
        unit: subject.unit(),
        target: &subject.target,
        from: &t.live,
        to: &t.to,
        source: &t.source,
        dry_run: args.dry_run,
        rolled_back,
        record,
        seconds: started.elapsed().as_secs_f64(),
    };
    let Some(stop) = stop else {
        emit(g.output, &report(false, None), |out| {
            out.push_str(&format!("{}\nDry run: nothing was changed.\n", t.line));
        })?;
        return Ok(OK);
    };
    eprintln!("{}", t.line);
    confirm(args.yes).await?;
    let (read_back, key) = roll_back(s, &t, stop).await?;
    emit(g.output, &report(true, Some(key)), |out| {
        out.push_str(&format!(
            "✓ {}: {read_back} serving ({:.1}s); recorded in the deploy history\n",
            subject.unit(),
            started.elapsed().as_secs_f64()
        ));
    })?;
    Ok(OK)
}

/// The version (function) or revision (service) serving now, read from AWS.
pub(crate) async fn live_version(s: &Session, subject: &Subject) -> CliResult<String> {
    let not_deployed = || {
        CliError::new(format!("{} is not deployed", subject.unit()))
            .hint("deploy the stack first: there is nothing to roll back")
    };
    match subject.kind {
        UnitKind::Function => {
            let a = aws::lambda::get_alias(&s.aws, &subject.target, &subject.alias)
                .await
                .map_err(aws_error)?
                .ok_or_else(not_deployed)?;
            if let Some((v, w)) = a.weights.iter().find(|(_, w)| *w > 0.0) {
                progress(format!(
                    "alias {} is mid-rollout ({:.0}% on version {v}): the rollback sends everything to the target",
                    subject.alias,
                    w * 100.0
                ));
            }
            Ok(a.version)
        }
        _ => {
            let o = s.observe().await?;
            // What the serving colour runs (the listener's weights say which colour serves).
            statsctl_core::desired::service::live_service(&s.stack.spec, &s.env, &o)
                .and_then(|(_, r)| r.attrs.get("task_definition"))
                .filter(|t| !t.is_empty())
                .cloned()
                .ok_or_else(not_deployed)
        }
    }
}

/// Goes ahead only with `--yes` or a `y` typed at a terminal; nothing is changed otherwise.
async fn confirm(yes: bool) -> CliResult<()> {
    if yes {
        return Ok(());
    }
    let refused = |why: &str| {
        CliError::new(format!("{why}; nothing was changed")).hint(
            "pass --yes to roll back without a question (scripts, CI), or run it at a terminal",
        )
    };
    if !std::io::stdin().is_terminal() {
        return Err(refused("refusing to roll back without confirmation"));
    }
    match crate::session::ask("Roll back? [y/N] ").await? {
        Some(a) if matches!(a.trim(), "y" | "Y" | "yes") => Ok(()),
        _ => Err(refused("not confirmed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::history::Outcome::*;

    fn rec(target: &str, from: &str, to: &str, ended: u64, outcome: Outcome) -> UnitRecord {
        UnitRecord {
            env: "dev".into(),
            unit: "function.stats-api".into(),
            kind: UnitKind::Function,
            target: target.into(),
            from: Some(from.into()),
            to: Some(to.into()),
            started_at: ended - 1,
            ended_at: ended,
            who: "arn:aws:iam::1:user/ops".into(),
            strategy: "canary".into(),
            timeline: vec![],
            outcome,
            alarm: None,
            ignored_alarms: vec![],
            detail: None,
        }
    }

    fn api() -> Subject {
        Subject {
            kind: UnitKind::Function,
            name: "stats-api".into(),
            target: "f".into(),
            alias: "live".into(),
        }
    }

    #[test]
    fn the_target_is_given_or_from_history_or_refused() {
        let svc = Subject {
            kind: UnitKind::Service,
            name: "svc".into(),
            target: "svc".into(),
            alias: String::new(),
        };
        let api = api();
        let h = vec![
            rec("f", "7", "9", 2_000, Shipped),
            // A rollback's own record (9 → 7) never names a target.
            rec("f", "9", "7", 3_000, RolledBack),
        ];
        /// (case, subject, live, --to, want target, want from history)
        type Case<'a> = (
            &'a str,
            &'a Subject,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            bool,
        );
        let cases: Vec<Case> = vec![
            ("history", &api, "9", None, Some("7"), true),
            ("--to wins", &api, "9", Some("3"), Some("3"), false),
            ("after a rollback", &api, "7", None, None, false),
            ("unknown live", &api, "12", None, None, false),
            ("service N", &svc, "fam:5", Some("4"), Some("fam:4"), false),
            (
                "service ref",
                &svc,
                "fam:5",
                Some("fam:2"),
                Some("fam:2"),
                false,
            ),
            ("empty --to", &api, "9", Some(" "), None, false),
        ];
        for (case, subject, live, to, want, from_history) in cases {
            match choose_target(subject, live, to, &h) {
                Ok((t, source)) => {
                    assert_eq!(Some(t.as_str()), want, "{case}");
                    assert_eq!(
                        matches!(source, Source::History { .. }),
                        from_history,
                        "{case}"
                    );
                }
                Err(e) => assert_eq!(want, None, "{case}: {}", e.message),
            }
        }
        let e = choose_target(&api, "12", None, &h).unwrap_err();
        assert!(
            e.message.contains("no version to roll `stats-api` back to"),
            "{}",
            e.message
        );
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("--to VERSION") && hint.contains("statsctl history"),
            "{hint}"
        );
    }

    #[test]
    fn the_line_names_versions_and_where_the_target_came_from() {
        let h = vec![rec("f", "7", "9", 1_780_000_000_000, Shipped)];
        let (to, source) = choose_target(&api(), "9", None, &h).unwrap();
        assert_eq!(
            describe(&api(), "9", &to, &source),
            "function stats-api: alias live 9 → 7 (from history: function.stats-api shipped \
             2026-05-28T20:26:40Z by arn:aws:iam::1:user/ops)"
        );
        assert_eq!(
            describe(&api(), "9", "3", &Source::Given),
            "function stats-api: alias live 9 → 3 (given with --to)"
        );
    }

    #[test]
    fn a_function_is_found_by_either_name() {
        let stack = statsctl_core::loader::load_file(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml"),
            Some("dev"),
            &|_: &str| None,
        )
        .unwrap()
        .spec;
        let physical = stack.function_name("dev", "stats-api");
        for name in ["stats-api", physical.as_str()] {
            let s = function_subject(&stack, "dev", name).unwrap();
            assert_eq!(
                (s.name.as_str(), s.target.as_str()),
                ("stats-api", physical.as_str())
            );
        }
        // A runbook's target: `service`, or a function by either name, optionally `function:NAME`.
        for (given, want) in [
            ("stats-api", "function.stats-api"),
            ("function:stats-api", "function.stats-api"),
            (physical.as_str(), "function.stats-api"),
            (" service ", "service.stats-service"),
        ] {
            let s = subject_named(&stack, "dev", given).unwrap();
            assert_eq!(s.unit(), want, "{given}");
        }
        assert!(subject_named(&stack, "dev", "function:nope").is_err());
        let e = function_subject(&stack, "dev", "stats").unwrap_err();
        assert!(e.message.contains("no function `stats`"), "{}", e.message);
        assert!(e.hint.unwrap().contains("stats-api"));
    }
}
