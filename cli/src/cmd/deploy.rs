//! `statsctl deploy`: ships the plan one unit at a time (see `statsctl_core::units`) — direct changes, then each
//! function's new version and the service's new colour as a rollout that watches alarms and rolls that unit back
//! when one fires — records each unit in the ledger, then reads back and confirms nothing is left to do.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;
use statsctl_core::history::{self, Outcome as Ended, UnitKind, UnitRecord};
use statsctl_core::inventory::{Key, Kind, Observed};
use statsctl_core::plan::{render, Action, Change, Plan};
use statsctl_core::units::{self, Unit};
use statsctl_engine::apply::{Outcome, StepError};
use statsctl_engine::interrupt::stop_on_ctrl_c;
use statsctl_engine::lock;
use statsctl_engine::rollout::{self, Ship, Tally};

use crate::context::Global;
use crate::exit::{CliError, CliResult, Exit, OK};
use crate::output::{self, emit, progress};
use crate::session::{aws_error, refuse_blocked, Session};

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before deleting anything (needed without a terminal when the plan deletes), nor before
    /// breaking a lock with --break-lock
    #[arg(long)]
    pub yes: bool,
    /// Clear a stale lock left in the ledger bucket by a deploy or destroy that is gone (shows its holder and
    /// asks for confirmation)
    #[arg(long)]
    pub break_lock: bool,
    /// Ship only this unit (repeatable; ids as `statsctl plan` lists them, e.g. `function.stats-api`)
    #[arg(long = "unit", value_name = "ID")]
    pub units: Vec<String>,
    /// Ship even though this alarm is in ALARM now, and do not roll back for it (repeatable; the alarm's id or
    /// full name): the way to ship the fix for what is firing. Recorded in the deploy history
    #[arg(long = "ignore-alarm", value_name = "NAME")]
    pub ignore_alarms: Vec<String>,
}

/// How one unit of the deploy ended, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Shipped,
    RolledBack,
    Interrupted,
    NotAttempted,
}

#[derive(Debug, Serialize)]
pub struct UnitReport {
    #[serde(flatten)]
    unit: Unit,
    pub status: UnitStatus,
    /// The history record appended to the ledger (absent when not attempted).
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<UnitRecord>,
    /// Whether the record reached the ledger bucket.
    recorded: bool,
}

#[derive(Serialize)]
struct DeployReport<'a> {
    stack: &'a str,
    env: &'a str,
    dry_run: bool,
    plan: &'a Plan,
    /// The plan's units in shipping order (only those `--unit` picked), each with how it ended.
    units: &'a [UnitReport],
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
    /// After applying: whether a fresh plan is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    converged: Option<bool>,
    api_calls: usize,
    seconds: f64,
}

pub async fn run(g: &Global, args: DeployArgs) -> CliResult {
    let started = std::time::Instant::now();
    let s = Session::open(g, true).await?;
    if args.dry_run {
        return deploy(g, &s, &args, started, None).await;
    }
    // Installed before the locks: a Ctrl-C from here on stops through the normal path, which releases them.
    let stop = stop_on_ctrl_c();
    let _local = s.lock("statsctl deploy")?;
    let remote = s
        .remote_lock("statsctl deploy", args.break_lock, args.yes)
        .await?;
    if remote.is_none() {
        progress(
            "the ledger bucket does not exist yet (first deploy): only the local lock is held",
        );
    }
    let result = deploy(g, &s, &args, started, Some(&stop)).await;
    s.release(remote, result).await
}

/// What a deploy report adds to the session and plan.
struct Parts<'a> {
    units: &'a [UnitReport],
    outcome: Option<&'a Outcome>,
    converged: Option<bool>,
}

impl<'a> Parts<'a> {
    fn build(
        self,
        s: &'a Session,
        dry_run: bool,
        started: std::time::Instant,
        plan: &'a Plan,
    ) -> DeployReport<'a> {
        DeployReport {
            stack: &s.owner.stack,
            env: &s.env,
            dry_run,
            plan,
            units: self.units,
            outcome: self.outcome,
            converged: self.converged,
            api_calls: s.aws.calls.get(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Observe, plan and (unless a dry run, when `stop` is None) ship the plan's units, under the locks `run` holds.
async fn deploy(
    g: &Global,
    s: &Session,
    args: &DeployArgs,
    started: std::time::Instant,
    stop: Option<&std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> CliResult {
    progress(format!("reading {}/{} from AWS…", s.owner.stack, s.env));
    let (mut observed, mut p, _) = s.observe_and_plan().await?;
    let spec = &s.stack.spec;
    let pick = |p: &Plan| {
        units::select(&units::units(p, spec), &args.units).map_err(|e| {
            CliError::new(e)
                .hint("pass ids as `statsctl plan` lists them under units; nothing was changed")
        })
    };
    let mut picked = pick(&p)?;
    let ignored = ignored_alarms(spec, &s.env, &args.ignore_alarms);
    if stop.is_some() && p.has_changes() {
        // Refused before anything is touched, in-flight rollouts included.
        refuse_blocked(&p)?;
        refuse_firing(&firing_alarms(spec, &s.env, &observed), &ignored)?;
    }
    if let (Some(stop), true) = (stop, args.units.is_empty()) {
        if settle_in_flight(s, stop, &picked, &observed).await? {
            // The listener no longer splits: what the service unit ships is planned again from there.
            progress(format!(
                "reading {}/{} from AWS again…",
                s.owner.stack, s.env
            ));
            (observed, p, _) = s.observe_and_plan().await?;
            picked = pick(&p)?;
        }
    }
    let Some(stop) = stop.filter(|_| p.has_changes()) else {
        let listed: Vec<UnitReport> = picked
            .into_iter()
            .map(|unit| UnitReport {
                unit,
                status: UnitStatus::NotAttempted,
                record: None,
                recorded: false,
            })
            .collect();
        emit(
            g.output,
            &Parts {
                units: &listed,
                outcome: None,
                converged: None,
            }
            .build(s, args.dry_run, started, &p),
            |out| {
                out.push_str(&render(&p, output::color()));
                if !listed.is_empty() {
                    let ids: Vec<&str> = listed.iter().map(|u| u.unit.id.as_str()).collect();
                    out.push_str(&format!("Units, in shipping order: {}\n", ids.join(", ")));
                }
                if args.dry_run && p.has_changes() {
                    out.push_str("Dry run: nothing was changed.\n");
                }
            },
        )?;
        return Ok(OK);
    };
    if g.output == crate::output::Format::Human {
        eprint!("{}", render(&p, false));
    }
    confirm_deletes(&p, args.yes).await?;
    let Shipped {
        units: shipped,
        outcome,
        converged,
    } = ship_units(s, &p, observed, picked, &ignored, stop).await?;
    emit(
        g.output,
        &Parts {
            units: &shipped,
            outcome: Some(&outcome),
            converged,
        }
        .build(s, args.dry_run, started, &p),
        |out| {
            human_units(out, &shipped);
            human_outcome(out, &outcome, converged, &sent_back(&shipped));
        },
    )?;
    ended(
        "deploy",
        "statsctl deploy",
        &Shipped {
            units: shipped,
            outcome,
            converged,
        },
    )
}

/// What shipping a plan's units did.
pub struct Shipped {
    /// Each picked unit in shipping order, with how it ended.
    pub units: Vec<UnitReport>,
    pub outcome: Outcome,
    /// After everything shipped: whether a fresh plan has none of the shipped units left.
    pub converged: Option<bool>,
}

/// Ships `picked` (units of `p`, in order) under the locks the caller holds: each unit's changes, a rollout for
/// a new function version or task definition, its record appended to the deploy history, then a read-back. A
/// unit that does not ship stops the rest (not attempted). What `deploy` and `promote` both run.
pub async fn ship_units(
    s: &Session,
    p: &Plan,
    mut observed: Observed,
    picked: Vec<Unit>,
    ignored: &BTreeSet<String>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> CliResult<Shipped> {
    let spec = &s.stack.spec;
    let who = match lock::bucket_and_holder(&s.aws, spec, &s.env).await {
        Ok(bh) => Some(bh),
        Err(e) => {
            progress(format!(
                "cannot identify the caller ({e}): history will not be recorded"
            ));
            None
        }
    };
    let progress_fn = |line: String| progress(line);
    let ex = s.executor(&progress_fn, stop);
    let ctx = Ship {
        ignored,
        who: who.as_ref().map_or("unknown", |(_, w)| w.as_str()),
        total: picked.iter().map(|u| u.changes.len()).sum(),
    };
    let pending: Vec<&Change> = p.pending().collect();
    let mut tally = Tally::default();
    let mut shipped: Vec<UnitReport> = Vec::new();
    let count = picked.len();
    for (i, unit) in picked.into_iter().enumerate() {
        let o = &tally.outcome;
        let halted = o.failed.is_some()
            || o.interrupted
            || shipped.iter().any(|u| u.status != UnitStatus::Shipped);
        if halted {
            tally.outcome.not_done.extend(unit.changes.iter().cloned());
            shipped.push(UnitReport {
                unit,
                status: UnitStatus::NotAttempted,
                record: None,
                recorded: false,
            });
            continue;
        }
        if unit.shifts_traffic() {
            progress(format!(
                "unit {}/{count}: {} ({} rollout)",
                i + 1,
                unit.id,
                strategy_words(spec)
            ));
        } else {
            progress(format!("unit {}/{count}: {}", i + 1, unit.id));
        }
        let changes = rollout::changes_of(&unit, &pending);
        let rec = rollout::ship(
            &s.aws,
            &ex,
            &ctx,
            &unit,
            &changes,
            &mut observed,
            &mut tally,
        )
        .await;
        let recorded = match &who {
            Some((bucket, _)) => append_record(s, bucket, &rec).await,
            None => false,
        };
        let status = match rec.outcome {
            Ended::Shipped => UnitStatus::Shipped,
            Ended::RolledBack => UnitStatus::RolledBack,
            Ended::Interrupted => UnitStatus::Interrupted,
        };
        shipped.push(UnitReport {
            unit,
            status,
            record: Some(rec),
            recorded,
        });
    }
    let outcome = tally.outcome;
    let all_shipped = shipped.iter().all(|u| u.status == UnitStatus::Shipped);
    let converged = if all_shipped && outcome.failed.is_none() && !outcome.interrupted {
        (ex.progress)("reading back to confirm…".into());
        let (_, after, _) = ex
            .subject
            .observe_and_plan(&s.aws)
            .await
            .map_err(aws_error)?;
        // Only what this deploy shipped has to be gone from a fresh plan (`--unit` leaves the rest).
        let left = units::units(&after, spec);
        Some(
            !left
                .iter()
                .any(|u| shipped.iter().any(|d| d.unit.id == u.id)),
        )
    } else {
        None
    };
    Ok(Shipped {
        units: shipped,
        outcome,
        converged,
    })
}

/// The command's error for how its units ended (`what`: `deploy`, `promote`; `again`: the command that resumes),
/// or OK when everything shipped and the read-back found nothing left.
pub fn ended(what: &str, again: &str, shipped: &Shipped) -> CliResult {
    let (shipped, outcome, converged) = (&shipped.units, &shipped.outcome, shipped.converged);
    if let Some(u) = shipped.iter().find(|u| u.status == UnitStatus::RolledBack) {
        return Err(rolled_back(u, shipped, again));
    }
    if let Some(f) = &outcome.failed {
        let mut e = CliError::new(format!("{what} stopped at {}: {}", f.key, f.error));
        e.hint = Some(format!(
            "{}re-running `{again}` resumes: every step is checked against live state",
            f.hint
                .as_ref()
                .map(|h| format!("{h}; "))
                .unwrap_or_default()
        ));
        return Err(e);
    }
    if outcome.interrupted {
        let during = shipped
            .iter()
            .find(|u| u.status == UnitStatus::Interrupted)
            .and_then(|u| u.record.as_ref())
            .and_then(|r| r.detail.as_deref())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(CliError::new(format!(
            "{what} interrupted after {} of {} changes{during}",
            outcome.done.len(),
            outcome.done.len() + outcome.not_done.len()
        ))
        .hint(format!("re-run `{again}` to finish")));
    }
    if converged == Some(false) {
        return Err(CliError::new(format!(
            "{what} finished but a fresh plan still shows changes"
        ))
        .hint("run `statsctl plan` to see them; something else may be changing the stack"));
    }
    Ok(OK)
}

/// Rollouts a killed deploy left splitting traffic, before anything else: a function's alias that this deploy
/// has nothing to ship for (a unit that ships handles its own) goes back to its primary version; the service's
/// listener goes back to the colour that served before, whatever ships (a new colour cannot start while the
/// listener splits). Each is said in a progress line and recorded as a rollback. Returns whether the listener
/// was settled: the caller plans again.
pub async fn settle_in_flight(
    s: &Session,
    stop: &std::sync::atomic::AtomicBool,
    picked: &[Unit],
    observed: &Observed,
) -> CliResult<bool> {
    let spec = &s.stack.spec;
    let progress_fn = |line: String| progress(line);
    let ex = s.executor(&progress_fn, stop);
    let mut who: Option<(String, String)> = None;
    let service = statsctl_engine::colours::in_flight(&ex, observed);
    for (name, f) in &spec.functions {
        let id = format!("function.{name}");
        if picked.iter().any(|u| u.id == id) {
            continue;
        }
        if who.is_none() {
            who = Some(
                lock::bucket_and_holder(&s.aws, spec, &s.env)
                    .await
                    .map_err(aws_error)?,
            );
        }
        let ignored = BTreeSet::new();
        let ctx = Ship {
            ignored: &ignored,
            who: who.as_ref().map_or("", |(_, a)| a.as_str()),
            total: 0,
        };
        let function = spec.function_name(&s.env, name);
        let rec = rollout::settle_in_flight(&s.aws, &ex, &ctx, &id, &function, &f.alias)
            .await
            .map_err(settle_error)?;
        if let (Some(rec), Some((bucket, _))) = (rec, &who) {
            let _ = append_record(s, bucket, &rec).await;
        }
    }
    if let Some(c) = &service {
        if who.is_none() {
            who = Some(
                lock::bucket_and_holder(&s.aws, spec, &s.env)
                    .await
                    .map_err(aws_error)?,
            );
        }
        let id = format!("service.{}", c.service);
        let left = statsctl_core::plan::rollouts_in_progress(observed, spec, &s.env)
            .into_iter()
            .find(|p| p.unit == id)
            .map_or_else(
                || "the listener splits traffic".to_string(),
                |p| p.describe(),
            );
        let back_to = c.from.as_deref().unwrap_or("the previous revision");
        progress(format!(
            "{id}: a rollout was left in flight ({left}); all traffic back on {} ({back_to})",
            c.old_service
        ));
        let started_at = crate::cmd::rollback::now_ms();
        let got = statsctl_engine::colours::roll_back(&s.aws, c)
            .await
            .map_err(settle_error)?;
        if got != 0 {
            return Err(CliError::new(format!(
                "{id}: the listener still reads back {got}% on {} after sending all traffic back",
                c.new_service
            ))
            .hint("run `statsctl status` to see the weights, then deploy again"));
        }
        let rec = UnitRecord {
            env: s.env.clone(),
            unit: id,
            kind: UnitKind::Service,
            target: c.service.clone(),
            from: Some(c.to.clone()),
            to: c.from.clone(),
            started_at,
            ended_at: crate::cmd::rollback::now_ms(),
            who: who.as_ref().map_or("", |(_, a)| a.as_str()).to_string(),
            strategy: "rollback".into(),
            timeline: vec![history::WeightPoint {
                at_ms: crate::cmd::rollback::now_ms().saturating_sub(started_at),
                percent: 0,
            }],
            outcome: Ended::RolledBack,
            alarm: None,
            ignored_alarms: vec![],
            detail: Some(format!(
                "found a rollout left in flight ({left}): all traffic back on {} ({back_to}), read back",
                c.old_service
            )),
        };
        if let Some((bucket, _)) = &who {
            let _ = append_record(s, bucket, &rec).await;
        }
    }
    Ok(service.is_some())
}

fn settle_error(e: StepError) -> CliError {
    match e {
        StepError::Failed(e) => aws_error(e),
        StepError::Interrupted => {
            CliError::new("interrupted while rolling back a rollout left in flight")
                .hint("re-run `statsctl deploy`: it checks what splits traffic again")
        }
    }
}

/// Appends a unit's record to the deploy history; a failure is said, not fatal (what it records was done).
/// Whether it was recorded.
async fn append_record(s: &Session, bucket: &str, rec: &UnitRecord) -> bool {
    match statsctl_aws::ledger::append(&s.aws, bucket, history::LEDGER_KIND, &s.env, rec).await {
        Ok(_) => true,
        Err(e) => {
            progress(format!(
                "could not record {} in the deploy history: {e}",
                rec.unit
            ));
            false
        }
    }
}

/// `canary 50%, bake 5s` and the like, for the unit's progress line.
fn strategy_words(spec: &statsctl_core::model::StackFile) -> String {
    use statsctl_core::model::Strategy;
    let r = &spec.rollout;
    let bake = r.bake_time.0.as_secs();
    match r.strategy {
        Strategy::Canary => format!("canary {}%, bake {bake}s", r.canary_percent),
        Strategy::Linear => format!(
            "linear {}% every {}s, bake {bake}s",
            r.step_percent,
            r.step_interval.0.as_secs()
        ),
        Strategy::AllAtOnce => format!("all at once, bake {bake}s"),
    }
}

/// `--ignore-alarm` names as AWS names them (an id is completed with the stack's prefix).
pub fn ignored_alarms(
    spec: &statsctl_core::model::StackFile,
    env: &str,
    names: &[String],
) -> BTreeSet<String> {
    let prefix = format!("{}-{env}-", spec.stack);
    names
        .iter()
        .map(|n| {
            if n.starts_with(&prefix) {
                n.clone()
            } else {
                format!("{prefix}{n}")
            }
        })
        .collect()
}

/// Watched alarms in ALARM now, with their reasons, from what was just observed.
pub fn firing_alarms(
    spec: &statsctl_core::model::StackFile,
    env: &str,
    observed: &Observed,
) -> Vec<(String, String)> {
    rollout::watch_list(spec, env, observed)
        .into_iter()
        .filter_map(|name| {
            let r = observed.get(Kind::Alarm, &name)?;
            (r.state == "ALARM").then(|| {
                (
                    name,
                    r.output("state_reason").unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

/// Alarms already firing block a deploy (a rollback could not tell the new version's harm from the old one's),
/// unless each is named with `--ignore-alarm`. Nothing has changed when this refuses.
pub fn refuse_firing(firing: &[(String, String)], ignored: &BTreeSet<String>) -> CliResult<()> {
    let blocking: Vec<&(String, String)> = firing
        .iter()
        .filter(|(n, _)| !ignored.contains(n))
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    let list = blocking
        .iter()
        .map(|(n, why)| format!("  {n}: {why}"))
        .collect::<Vec<_>>()
        .join("\n");
    let flags = blocking
        .iter()
        .map(|(n, _)| format!("--ignore-alarm {n}"))
        .collect::<Vec<_>>()
        .join(" ");
    Err(CliError::new(format!(
        "{} watched alarm(s) in ALARM before the deploy; nothing was changed:\n{list}",
        blocking.len()
    ))
    .hint(format!(
        "wait for them to clear, or — to ship the fix for what is firing — pass {flags} (recorded in the deploy history)"
    )))
}

/// The exit-2 error of a unit that an alarm rolled back: which unit, which alarm and why, and where everything is.
fn rolled_back(u: &UnitReport, all: &[UnitReport], again: &str) -> CliError {
    let rec = u.record.as_ref();
    let (alarm, reason) = rec
        .and_then(|r| r.alarm.as_ref())
        .map_or(("an alarm", ""), |a| (a.name.as_str(), a.reason.as_str()));
    let from = rec
        .and_then(|r| r.from.as_deref())
        .unwrap_or("the previous version");
    let ids = |st: UnitStatus| {
        let v: Vec<&str> = all
            .iter()
            .filter(|x| x.status == st)
            .map(|x| x.unit.id.as_str())
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut e = CliError::new(format!(
        "unit {} rolled back: alarm {alarm} went to ALARM ({reason}); its traffic is back on version {from}. \
         Shipped before it (kept): {}. Not attempted: {}",
        u.unit.id,
        ids(UnitStatus::Shipped),
        ids(UnitStatus::NotAttempted)
    ))
    .hint(format!(
        "find out why {alarm} fired (the new version may have caused it); once fixed, `{again}` ships {} again",
        u.unit.id
    ));
    e.code = Exit::Attention;
    e
}

/// The resources a plan deletes (the plan has no replacements: an immutable change is refused instead).
fn deletions(p: &Plan) -> Vec<String> {
    p.changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.key.to_string())
        .collect()
}

/// A plan that deletes goes ahead only with `--yes` or a `y` typed at a terminal; nothing is changed otherwise.
async fn confirm_deletes(p: &Plan, yes: bool) -> CliResult<()> {
    let deleted = deletions(p);
    if deleted.is_empty() || yes {
        return Ok(());
    }
    let list = deleted.join(", ");
    let refused = |why: &str| {
        CliError::new(format!(
            "{why}: the plan deletes {} resource(s): {list}; nothing was changed",
            deleted.len()
        ))
        .hint("review the plan (`statsctl plan`), then pass --yes to confirm the deletions")
    };
    if !std::io::stdin().is_terminal() {
        return Err(refused("refusing to deploy without confirmation"));
    }
    let question = format!("Delete {list}? [y/N] ");
    match crate::session::ask(&question).await? {
        Some(a) if matches!(a.trim(), "y" | "Y" | "yes") => Ok(()),
        _ => Err(refused("not confirmed")),
    }
}

/// One line per unit: how it ended, from → to, the weights it went through.
pub fn human_units(out: &mut String, us: &[UnitReport]) {
    for u in us {
        let id = &u.unit.id;
        let Some(r) = &u.record else {
            out.push_str(&format!("{} unit {id} not attempted\n", output::dim("–")));
            continue;
        };
        // A service unit moves task definition revisions, a function unit versions.
        let word = if u.unit.kind == UnitKind::Service {
            "revision"
        } else {
            "version"
        };
        let steps: Vec<String> = r
            .timeline
            .iter()
            .map(|w| format!("{}%", w.percent))
            .collect();
        let steps = steps.join(" → ");
        let line = match (u.status, &r.from, &r.to) {
            (UnitStatus::Shipped, from, to) => {
                let moved = match (from, to) {
                    (Some(f), Some(t)) => format!(": {word} {f} → {t}"),
                    (None, Some(t)) => format!(": {word} {t}"),
                    _ => String::new(),
                };
                let steps = if steps.is_empty() {
                    steps
                } else {
                    format!(" ({steps})")
                };
                format!("{} unit {id} shipped{moved}{steps}", output::green("✓"))
            }
            (status, from, to) => {
                let back = from
                    .as_ref()
                    .map(|f| format!(" to {word} {f}"))
                    .unwrap_or_default();
                let new = to
                    .as_ref()
                    .map(|t| format!(" ({word} {t}: {steps})"))
                    .unwrap_or_default();
                if status == UnitStatus::RolledBack {
                    format!(
                        "{} unit {id} rolled back{back}{new}: alarm {}",
                        output::red("↩"),
                        r.alarm.as_ref().map_or("?", |a| a.name.as_str())
                    )
                } else {
                    format!(
                        "{} unit {id} interrupted{new}: {}",
                        output::yellow("…"),
                        r.detail.as_deref().unwrap_or("stopped")
                    )
                }
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    if !us.is_empty() {
        out.push('\n');
    }
}

/// The changes whose traffic moved and was sent back (a unit rolled back, or stopped mid-rollout): shown as such,
/// not as "not attempted".
fn sent_back(us: &[UnitReport]) -> Vec<Key> {
    us.iter()
        .filter(|u| u.status != UnitStatus::Shipped)
        .filter(|u| u.record.as_ref().is_some_and(|r| !r.timeline.is_empty()))
        .flat_map(|u| u.unit.changes.iter())
        .filter(|k| matches!(k.kind, Kind::Alias | Kind::EcsService))
        .cloned()
        .collect()
}

fn human_outcome(out: &mut String, o: &Outcome, converged: Option<bool>, back: &[Key]) {
    for step in &o.done {
        let verb = step.action.past();
        out.push_str(&format!(
            "{} {} {verb} ({:.1}s)\n",
            output::green("✓"),
            step.key,
            step.seconds
        ));
    }
    if let Some(f) = &o.failed {
        out.push_str(&format!(
            "{} {} failed: {}\n",
            output::red("✗"),
            f.key,
            f.error
        ));
    }
    for k in &o.not_done {
        if o.unfinished.as_ref() == Some(k) {
            out.push_str(&format!(
                "{} {} sent, not yet ready (stopped waiting)\n",
                output::yellow("…"),
                k
            ));
        } else if back.contains(k) {
            out.push_str(&format!(
                "{} {} rolled back: traffic on the previous version\n",
                output::yellow("↩"),
                k
            ));
        } else {
            out.push_str(&format!("{} {} not attempted\n", output::dim("–"), k));
        }
    }
    let unfinished = usize::from(o.unfinished.is_some())
        + o.not_done.iter().filter(|k| back.contains(k)).count();
    out.push_str(&format!(
        "\n{} done, {} failed, {} not attempted.",
        o.done.len(),
        usize::from(o.failed.is_some()),
        o.not_done.len() - unfinished
    ));
    if o.unfinished.is_some() {
        out.push_str(" 1 sent but not yet ready: re-run `statsctl deploy` to finish it.");
    }
    if converged == Some(true) {
        out.push_str(" Live state matches the stack file.");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use statsctl_core::inventory::{Key, Kind};
    use statsctl_core::plan::Action;
    use statsctl_engine::apply::Step;

    #[test]
    fn a_unit_an_alarm_rolled_back_names_the_alarm_and_the_command_that_ships_it_again() {
        let unit = |id: &str| Unit {
            id: id.into(),
            kind: UnitKind::Function,
            target: String::new(),
            changes: vec![],
            first_time: false,
        };
        let record = UnitRecord {
            env: "prod".into(),
            unit: "function.stats-api".into(),
            kind: UnitKind::Function,
            target: "live-stats-prod-stats-api".into(),
            from: Some("6".into()),
            to: Some("7".into()),
            started_at: 0,
            ended_at: 0,
            who: String::new(),
            strategy: "canary".into(),
            timeline: vec![],
            outcome: Ended::RolledBack,
            alarm: Some(history::FiredAlarm {
                name: "live-stats-prod-lambda-errors-stats-api".into(),
                reason: "errors above 1%".into(),
            }),
            ignored_alarms: vec![],
            detail: None,
        };
        let all = [
            UnitReport {
                unit: unit("direct"),
                status: UnitStatus::Shipped,
                record: None,
                recorded: true,
            },
            UnitReport {
                unit: unit("function.stats-api"),
                status: UnitStatus::RolledBack,
                record: Some(record),
                recorded: true,
            },
            UnitReport {
                unit: unit("service.stats-service"),
                status: UnitStatus::NotAttempted,
                record: None,
                recorded: false,
            },
        ];
        let shipped = Shipped {
            units: all.into(),
            outcome: Outcome::default(),
            converged: None,
        };
        for again in ["statsctl deploy", "statsctl promote --from dev --to prod"] {
            let e = ended("promote", again, &shipped).unwrap_err();
            assert_eq!(e.code, Exit::Attention);
            assert_eq!(
                e.message,
                "unit function.stats-api rolled back: alarm live-stats-prod-lambda-errors-stats-api went to ALARM \
                 (errors above 1%); its traffic is back on version 6. Shipped before it (kept): direct. Not \
                 attempted: service.stats-service"
            );
            let hint = e.hint.unwrap_or_default();
            assert!(
                hint.ends_with(&format!(
                    "once fixed, `{again}` ships function.stats-api again"
                )),
                "{hint}"
            );
        }
    }

    #[test]
    fn a_change_stopped_while_waiting_reads_as_sent_not_as_not_attempted() {
        let cluster = Key::new(Kind::DbCluster, "db");
        let o = Outcome {
            done: vec![Step {
                key: Key::new(Kind::Secret, "creds"),
                action: Action::Create,
                seconds: 0.1,
            }],
            not_done: vec![cluster.clone(), Key::new(Kind::DbInstance, "db-1")],
            interrupted: true,
            unfinished: Some(cluster),
            ..Default::default()
        };
        let mut out = String::new();
        human_outcome(&mut out, &o, None, &[]);
        assert!(
            out.contains("db_cluster.db sent, not yet ready (stopped waiting)"),
            "{out}"
        );
        assert!(out.contains("db_instance.db-1 not attempted"), "{out}");
        assert!(
            out.contains("1 done, 0 failed, 1 not attempted. 1 sent but not yet ready"),
            "{out}"
        );
    }
}
