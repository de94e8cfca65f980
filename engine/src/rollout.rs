//! The executor of ONE unit of a plan: applies its changes, then — for a function's new version or the service's
//! new colour — moves traffic in the steps `core::rollout::decide` chooses, reading the routing back after every
//! step, watching the stack's alarms while it holds, and sending everything back to the previous version at once
//! when an alarm fires or Ctrl-C stops it. Once a service unit's new colour is promoted, the service's alarms are
//! re-pointed to it. What it returns is the unit's history record, built from what was read back.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use statsctl_aws::{self as aws, lambda::AliasState, Aws, AwsError};
use statsctl_core::history::{FiredAlarm, Outcome as Ended, UnitKind, UnitRecord, WeightPoint};
use statsctl_core::inventory::{Key, Kind, Observed};
use statsctl_core::model::{Rollout, StackFile, Strategy};
use statsctl_core::plan::{Action, Change};
use statsctl_core::rollout::{decide, schedule, AlarmState, Decision, Progress, WatchedAlarm};
use statsctl_core::units::Unit;

use crate::apply::{apply_one, Executor, Failure, Outcome, Step, StepError};
use crate::colours::{self, Colours};
use crate::inputs;

/// The longest sleep between two looks at the alarms and the stop flag while a shift holds.
const POLL: Duration = Duration::from_millis(500);
/// How often a bake says it is still baking.
const BAKE_REPORT: Duration = Duration::from_secs(10);

/// What every unit of one deploy shares.
pub struct Ship<'a> {
    /// Alarms in ALARM the operator chose to ship through (`--ignore-alarm`): never a reason to roll back.
    pub ignored: &'a BTreeSet<String>,
    /// The caller identity, for the record.
    pub who: &'a str,
    /// Changes in the whole deploy, for `[n/total]` progress lines.
    pub total: usize,
}

/// What the units of one deploy add up to: the steps done, the failure, what was not done (as `apply` reports
/// them), and a count of the changes started, for `[n/total]` progress lines.
#[derive(Debug, Default)]
pub struct Tally {
    pub outcome: Outcome,
    pub n: usize,
}

/// One unit under way: its record, filled in as it goes, and its start on the monotonic clock (the timeline's
/// origin).
struct UnitRun {
    rec: UnitRecord,
    started: Instant,
}

impl UnitRun {
    fn mark(&mut self, percent: u32) {
        self.rec
            .timeline
            .push(point(self.started.elapsed(), percent));
    }
    fn stopped(&mut self, outcome: &Outcome) {
        self.rec.outcome = Ended::Interrupted;
        self.rec.detail = Some(stopped_detail(outcome));
    }
}

/// The unit's changes, taken from the plan (in plan order).
pub fn changes_of<'p>(unit: &Unit, pending: &[&'p Change]) -> Vec<&'p Change> {
    pending
        .iter()
        .filter(|c| unit.changes.contains(&c.key))
        .copied()
        .collect()
}

/// The alarms a rollout watches, by their AWS names: `rollout.watch` (ids or full names), or every alarm of the
/// stack that exists now.
pub fn watch_list(stack: &StackFile, env: &str, observed: &Observed) -> Vec<String> {
    let prefix = format!("{}-{env}-", stack.stack);
    if stack.rollout.watch.is_empty() {
        return observed
            .resources
            .keys()
            .filter(|k| k.kind == Kind::Alarm)
            .map(|k| k.name.clone())
            .collect();
    }
    stack
        .rollout
        .watch
        .iter()
        .map(|w| {
            if w.starts_with(&prefix) {
                w.clone()
            } else {
                format!("{prefix}{w}")
            }
        })
        .collect()
}

/// The strategy name a record carries.
fn strategy_name(r: &Rollout) -> &'static str {
    match r.strategy {
        Strategy::Canary => "canary",
        Strategy::Linear => "linear",
        Strategy::AllAtOnce => "all_at_once",
    }
}

/// The alias routing that puts `percent` of traffic on `new`: (primary version, additional version and weight).
/// The weight is checked here because the emulator accepts anything and AWS wants 0 < w < 1.
pub fn alias_routing(
    old: &str,
    new: &str,
    percent: u32,
) -> Result<(String, Option<(String, f64)>), String> {
    match percent {
        0 => Ok((old.to_string(), None)),
        100 => Ok((new.to_string(), None)),
        p if p < 100 => {
            let w = f64::from(p) / 100.0;
            if w <= 0.0 || w >= 1.0 || old == new {
                return Err(format!(
                    "weight {w} for version {new} is not a partial shift"
                ));
            }
            Ok((old.to_string(), Some((new.to_string(), w))))
        }
        p => Err(format!("{p}% is not a share of traffic (0–100)")),
    }
}

/// The percent of traffic an alias read back gives `new`, or why the routing is not a shift between `old` and
/// `new` (another version, a weight out of range, several extra versions).
pub fn routed_percent(a: &AliasState, old: &str, new: &str) -> Result<u32, String> {
    let percent = |w: f64| (w * 100.0).round() as u32;
    match a.weights.as_slice() {
        [] if a.version == new => Ok(100),
        [] if a.version == old => Ok(0),
        [(v, w)] if a.version == old && v == new && *w > 0.0 && *w < 1.0 => Ok(percent(*w)),
        [] => Err(format!(
            "all traffic on version {}, expected version {old} or {new}",
            a.version
        )),
        ws => Err(format!(
            "version {} with extra weights {}, expected version {old} with {new} weighted",
            a.version,
            ws.iter()
                .map(|(v, w)| format!("{v}={w}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A timeline point `elapsed` into the unit.
pub fn point(elapsed: Duration, percent: u32) -> WeightPoint {
    WeightPoint {
        at_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        percent,
    }
}

/// What moves traffic for one unit: a function's alias, or the service's colours.
enum Route<'a> {
    Alias {
        function: String,
        alias: String,
        old: String,
        new: String,
        description: String,
    },
    Colours(&'a Colours),
}

impl Route<'_> {
    /// Puts `percent` on the new version and returns the percent read back, failing when it differs.
    async fn set(&self, aws: &Aws, percent: u32) -> Result<u32, StepError> {
        match self {
            Route::Alias {
                function,
                alias,
                old,
                new,
                description,
            } => {
                let what = format!("shift alias `{alias}` of `{function}` to {percent}%");
                let (version, additional) = alias_routing(old, new, percent)
                    .map_err(|e| AwsError::new(what.as_str(), e))?;
                let input = aws::lambda::AliasInput {
                    function: function.clone(),
                    alias: alias.clone(),
                    version,
                    description: description.clone(),
                    additional,
                };
                aws::lambda::put_alias(aws, &input, true).await?;
                let back = aws::lambda::get_alias(aws, function, alias)
                    .await?
                    .ok_or_else(|| AwsError::new(what.as_str(), "the alias is gone"))?;
                let got = routed_percent(&back, old, new).map_err(|e| {
                    AwsError::new(what.as_str(), format!("the alias reads back as {e}"))
                })?;
                if got != percent {
                    return Err(AwsError::new(
                        what.as_str(),
                        format!("the alias reads back {got}% on version {new}"),
                    )
                    .into());
                }
                Ok(got)
            }
            Route::Colours(c) => {
                let got = colours::set_percent(aws, c, percent).await?;
                if got != percent {
                    return Err(AwsError::new(
                        format!("shift service `{}` to {percent}%", c.service),
                        format!("the listener reads back {got}% on the new colour"),
                    )
                    .into());
                }
                Ok(got)
            }
        }
    }

    /// All traffic back on the previous version; the percent on the new one read back (0 when it took).
    async fn back(&self, aws: &Aws) -> Result<u32, StepError> {
        match self {
            Route::Alias { .. } => self.set(aws, 0).await,
            Route::Colours(c) => colours::roll_back(aws, c).await,
        }
    }

    async fn promote(&self, aws: &Aws, ex: &Executor<'_>) -> Result<(), StepError> {
        match self {
            Route::Alias { .. } => self.set(aws, 100).await.map(|_| ()),
            Route::Colours(c) => colours::promote(aws, ex, c).await,
        }
    }

    fn old(&self) -> Option<&str> {
        match self {
            Route::Alias { old, .. } => Some(old),
            Route::Colours(c) => c.from.as_deref(),
        }
    }

    fn new_version(&self) -> &str {
        match self {
            Route::Alias { new, .. } => new,
            Route::Colours(c) => &c.to,
        }
    }
}

/// Ships one unit: applies its changes and, when it moves traffic, runs the rollout. Steps done, the failure and
/// what was not done go into `tally` (shared by the whole deploy). The record says what happened, from what was
/// read back.
pub async fn ship(
    aws: &Aws,
    ex: &Executor<'_>,
    ctx: &Ship<'_>,
    unit: &Unit,
    changes: &[&Change],
    observed: &mut Observed,
    tally: &mut Tally,
) -> UnitRecord {
    let mut run = UnitRun {
        rec: UnitRecord {
            env: ex.subject.env.to_string(),
            unit: unit.id.clone(),
            kind: unit.kind,
            target: unit.target.clone(),
            from: None,
            to: None,
            started_at: unix_ms(),
            ended_at: 0,
            who: ctx.who.to_string(),
            strategy: if unit.kind == UnitKind::Direct {
                "direct".into()
            } else if unit.first_time {
                "first_time".into()
            } else {
                strategy_name(&ex.subject.stack.rollout).into()
            },
            timeline: vec![],
            outcome: Ended::Shipped,
            alarm: None,
            ignored_alarms: ctx.ignored.iter().cloned().collect(),
            detail: None,
        },
        started: Instant::now(),
    };
    let shifts = unit.shifts_traffic();
    match unit.kind {
        UnitKind::Function if shifts => {
            ship_function(aws, ex, ctx, changes, observed, tally, &mut run).await
        }
        UnitKind::Service if shifts => {
            ship_service(aws, ex, ctx, changes, observed, tally, &mut run).await
        }
        _ => {
            if apply_all(aws, ex, ctx.total, changes, observed, tally)
                .await
                .is_ok()
            {
                if unit.kind != UnitKind::Direct {
                    run.rec.to = shipped_version(unit, observed);
                    run.mark(100);
                }
            } else {
                run.stopped(&tally.outcome);
            }
        }
    }
    run.rec.ended_at = unix_ms();
    run.rec
}

/// What a unit that created its function or service ended up serving, from the executor's record.
fn shipped_version(unit: &Unit, observed: &Observed) -> Option<String> {
    unit.changes.iter().find_map(|k| match k.kind {
        Kind::Alias => observed
            .output(k.kind, &k.name, "version")
            .map(str::to_string),
        Kind::TaskDefinition => observed
            .get(k.kind, &k.name)
            .map(|r| r.id.rsplit('/').next().unwrap_or(&r.id).to_string()),
        _ => None,
    })
}

fn stopped_detail(o: &Outcome) -> String {
    match &o.failed {
        Some(f) => format!("stopped at {}: {}", f.key, f.error),
        None => "stopped by Ctrl-C before all its changes were made".into(),
    }
}

/// Applies changes in order with `[n/total]` progress lines, as `apply` does; `Err` at the first failure or
/// Ctrl-C (recorded in the tally, the rest of these changes in `not_done`).
async fn apply_all(
    aws: &Aws,
    ex: &Executor<'_>,
    total: usize,
    changes: &[&Change],
    observed: &mut Observed,
    tally: &mut Tally,
) -> Result<(), ()> {
    let rest = |from: usize| {
        changes[from.min(changes.len())..]
            .iter()
            .map(|c| c.key.clone())
    };
    for (i, change) in changes.iter().enumerate() {
        let o = &mut tally.outcome;
        if ex.stop.load(Ordering::SeqCst) {
            o.interrupted = true;
        }
        if o.failed.is_some() || o.interrupted {
            o.not_done.extend(rest(i));
            return Err(());
        }
        tally.n += 1;
        let n = tally.n;
        let started = Instant::now();
        let (doing, done) = (change.action.verb(), change.action.past());
        (ex.progress)(format!("[{n}/{total}] {doing} {}…", change.key));
        match apply_one(aws, ex, change, observed).await {
            Ok(()) => {
                let seconds = started.elapsed().as_secs_f64();
                (ex.progress)(format!(
                    "[{n}/{total}] {done} {} ({seconds:.1}s)",
                    change.key
                ));
                tally.outcome.done.push(Step {
                    key: change.key.clone(),
                    action: change.action,
                    seconds,
                });
            }
            Err(StepError::Interrupted) => {
                (ex.progress)(format!(
                    "[{n}/{total}] stopped waiting for {}: it was sent and may still be in progress",
                    change.key
                ));
                let o = &mut tally.outcome;
                o.interrupted = true;
                o.unfinished = Some(change.key.clone());
                o.not_done.extend(rest(i));
                return Err(());
            }
            Err(StepError::Failed(e)) => {
                let o = &mut tally.outcome;
                o.failed = Some(Failure {
                    key: change.key.clone(),
                    action: change.action,
                    error: e.to_string(),
                    hint: e.hint.clone(),
                });
                o.not_done.extend(rest(i + 1));
                return Err(());
            }
        }
    }
    Ok(())
}

/// Records a step that did not complete: Ctrl-C (the step stays in `not_done`), or the failure with its hint (the
/// failed step is listed as failed, not also as not done).
fn fail_at(outcome: &mut Outcome, key: &Key, e: StepError) {
    match e {
        StepError::Interrupted => outcome.interrupted = true,
        StepError::Failed(e) => {
            outcome.not_done.retain(|k| k != key);
            outcome.failed = Some(Failure {
                key: key.clone(),
                action: Action::Update,
                error: e.to_string(),
                hint: e.hint.clone(),
            })
        }
    }
}

/// Records how the traffic-moving step of a unit ended: done when promoted, not done when rolled back or
/// stopped.
fn finish(
    outcome: &mut Outcome,
    key: &Key,
    run: &UnitRun,
    result: Result<(), StepError>,
    step_started: Instant,
) {
    match result {
        Ok(()) if run.rec.outcome == Ended::Shipped => outcome.done.push(Step {
            key: key.clone(),
            action: Action::Update,
            seconds: step_started.elapsed().as_secs_f64(),
        }),
        Ok(()) => outcome.not_done.push(key.clone()),
        Err(e) => {
            outcome.not_done.push(key.clone());
            fail_at(outcome, key, e);
        }
    }
}

async fn ship_function(
    aws: &Aws,
    ex: &Executor<'_>,
    ctx: &Ship<'_>,
    changes: &[&Change],
    observed: &mut Observed,
    tally: &mut Tally,
    run: &mut UnitRun,
) {
    let (alias_change, rest): (Vec<&Change>, Vec<&Change>) =
        changes.iter().partition(|c| c.key.kind == Kind::Alias);
    let Some(alias_change) = alias_change.first().copied() else {
        // Nothing behind an alias changes (the function's version is already current): apply what there is.
        if apply_all(aws, ex, ctx.total, &rest, observed, tally)
            .await
            .is_err()
        {
            run.stopped(&tally.outcome);
        }
        return;
    };
    let key = alias_change.key.clone();
    let (function, alias) = match Key::split_alias_name(&key.name) {
        Some((f, a)) => (f.to_string(), a.to_string()),
        None => (key.name.clone(), "live".to_string()),
    };
    let id = run.rec.unit.clone();
    let all_keys = || changes.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
    let live = match aws::lambda::get_alias(aws, &function, &alias).await {
        Ok(l) => l,
        Err(e) => {
            tally.outcome.not_done.extend(all_keys());
            fail_at(&mut tally.outcome, &key, e.into());
            run.stopped(&tally.outcome);
            return;
        }
    };
    // A rollout that a `kill -9` left in flight is undone first: its weighted version was published from code or
    // configuration that may not be what this deploy ships, so the honest path is back to the primary version,
    // then this unit from the start.
    if let Some(l) = live.as_ref().filter(|l| !l.weights.is_empty()) {
        match undo_in_flight(aws, ex, &id, &function, &alias, l).await {
            Ok(left) => {
                run.rec.detail = Some(format!(
                    "found a rollout left in flight ({left}): rolled it back to version {}, then shipped again",
                    l.version
                ))
            }
            Err(e) => {
                tally.outcome.not_done.extend(all_keys());
                fail_at(&mut tally.outcome, &key, e);
                run.stopped(&tally.outcome);
                return;
            }
        }
    }
    if apply_all(aws, ex, ctx.total, &rest, observed, tally)
        .await
        .is_err()
    {
        tally.outcome.not_done.push(key);
        run.stopped(&tally.outcome);
        return;
    }
    let Some(live) = live else {
        // No alias to protect: create it, pointed at a new version at once.
        run.rec.strategy = "first_time".into();
        if apply_all(aws, ex, ctx.total, &[alias_change], observed, tally)
            .await
            .is_ok()
        {
            run.rec.to = observed
                .output(Kind::Alias, &key.name, "version")
                .map(str::to_string);
            run.mark(100);
        } else {
            run.stopped(&tally.outcome);
        }
        return;
    };
    if ex.stop.load(Ordering::SeqCst) {
        tally.outcome.interrupted = true;
        tally.outcome.not_done.push(key);
        run.stopped(&tally.outcome);
        return;
    }
    tally.n += 1;
    let step_started = Instant::now();
    let new = match aws::lambda::publish_version(aws, &function).await {
        Ok(v) => v,
        Err(e) => {
            tally.outcome.not_done.push(key.clone());
            fail_at(&mut tally.outcome, &key, e.into());
            run.stopped(&tally.outcome);
            return;
        }
    };
    let old = live.version.clone();
    run.rec.from = Some(old.clone());
    run.rec.to = Some(new.clone());
    (ex.progress)(format!(
        "[{}/{}] {id}: published version {new} (serving: version {old})",
        tally.n, ctx.total
    ));
    if old == new {
        // The alias already serves exactly this code and configuration: nothing to shift.
        (ex.progress)(format!("{id}: version {new} is already serving"));
        run.mark(100);
        finish(&mut tally.outcome, &key, run, Ok(()), step_started);
        return;
    }
    let previous = aws::lambda::previous_version(&live.description);
    let route = Route::Alias {
        function,
        alias,
        old: old.clone(),
        new: new.clone(),
        description: inputs::alias_description(Some(&old), previous.as_deref(), &new),
    };
    let names = watch_list(ex.subject.stack, ex.subject.env, observed);
    let result = run_rollout(aws, ex, ctx, &route, &names, run).await;
    finish(&mut tally.outcome, &key, run, result, step_started);
    if run.rec.outcome == Ended::Shipped {
        // Later units (and the read-back) see the alias as the executor left it.
        if let Some(r) = observed.resources.get_mut(&key) {
            r.attrs
                .insert("version".into(), aws::lambda::CURRENT.into());
            r.outputs.insert("version".into(), new.clone());
            r.outputs.insert("previous".into(), old);
            r.state = format!("→ version {new}");
        }
    }
}

/// Sends all of a split alias's traffic back to its primary version (read back); the words for what was found.
async fn undo_in_flight(
    aws: &Aws,
    ex: &Executor<'_>,
    id: &str,
    function: &str,
    alias: &str,
    l: &AliasState,
) -> Result<String, StepError> {
    let left = l
        .weights
        .iter()
        .map(|(v, w)| format!("version {v} at {}%", (w * 100.0).round()))
        .collect::<Vec<_>>()
        .join(", ");
    (ex.progress)(format!(
        "{id}: a rollout was left in flight ({left}); rolling back to version {}",
        l.version
    ));
    let back = Route::Alias {
        function: function.to_string(),
        alias: alias.to_string(),
        old: l.version.clone(),
        new: l.weights.first().map_or_else(String::new, |w| w.0.clone()),
        description: l.description.clone(),
    };
    back.set(aws, 0).await?;
    Ok(left)
}

/// A function whose alias still splits traffic (a deploy killed mid-rollout) while this deploy has nothing of it
/// to ship: all traffic back on the alias's primary version, recorded as a rollback. `Ok(None)` when the alias is
/// not split or absent.
pub async fn settle_in_flight(
    aws: &Aws,
    ex: &Executor<'_>,
    ctx: &Ship<'_>,
    id: &str,
    function: &str,
    alias: &str,
) -> Result<Option<UnitRecord>, StepError> {
    let Some(l) = aws::lambda::get_alias(aws, function, alias)
        .await?
        .filter(|l| !l.weights.is_empty())
    else {
        return Ok(None);
    };
    let started_at = unix_ms();
    let left = undo_in_flight(aws, ex, id, function, alias, &l).await?;
    Ok(Some(UnitRecord {
        env: ex.subject.env.to_string(),
        unit: id.to_string(),
        kind: UnitKind::Function,
        target: function.to_string(),
        from: l.weights.first().map(|w| w.0.clone()),
        to: Some(l.version.clone()),
        started_at,
        ended_at: unix_ms(),
        who: ctx.who.to_string(),
        strategy: "rollback".into(),
        timeline: vec![WeightPoint {
            at_ms: unix_ms().saturating_sub(started_at),
            percent: 0,
        }],
        outcome: Ended::RolledBack,
        alarm: None,
        ignored_alarms: vec![],
        detail: Some(format!(
            "found a rollout left in flight ({left}) and nothing of this function to ship: all traffic back on \
             version {} (read back)",
            l.version
        )),
    }))
}

async fn ship_service(
    aws: &Aws,
    ex: &Executor<'_>,
    ctx: &Ship<'_>,
    changes: &[&Change],
    observed: &mut Observed,
    tally: &mut Tally,
    run: &mut UnitRun,
) {
    let Some(key) = changes.last().map(|c| c.key.clone()) else {
        return;
    };
    if ex.stop.load(Ordering::SeqCst) {
        tally.outcome.interrupted = true;
        tally
            .outcome
            .not_done
            .extend(changes.iter().map(|c| c.key.clone()));
        run.stopped(&tally.outcome);
        return;
    }
    let owned: Vec<Change> = changes.iter().copied().cloned().collect();
    tally.n += changes.len();
    (ex.progress)(format!(
        "[{}/{}] {}: starting the new task definition on the idle colour…",
        tally.n, ctx.total, run.rec.unit
    ));
    let step_started = Instant::now();
    let c = match colours::prepare(aws, ex, &owned, observed).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            run.rec.strategy = "first_time".into();
            run.mark(100);
            let seconds = step_started.elapsed().as_secs_f64();
            tally.outcome.done.extend(changes.iter().map(|c| Step {
                key: c.key.clone(),
                action: c.action,
                seconds,
            }));
            return;
        }
        Err(e) => {
            tally
                .outcome
                .not_done
                .extend(changes.iter().map(|c| c.key.clone()));
            fail_at(&mut tally.outcome, &key, e);
            run.stopped(&tally.outcome);
            return;
        }
    };
    run.rec.from.clone_from(&c.from);
    run.rec.to = Some(c.to.clone());
    let route = Route::Colours(&c);
    let names = watch_list(ex.subject.stack, ex.subject.env, observed);
    let result = run_rollout(aws, ex, ctx, &route, &names, run).await;
    let promoted = result.is_ok() && run.rec.outcome == Ended::Shipped;
    finish(&mut tally.outcome, &key, run, result, step_started);
    if promoted {
        // The new colour serves: the service's alarms follow it. A failure here leaves the promote standing
        // (undoing it would be a second traffic move for an alarm's sake); the unit reports it with the way on.
        match colours::repoint_alarms(aws, ex).await {
            Ok(steps) => tally.outcome.done.extend(steps),
            Err(e) => {
                run.rec.detail = Some(format!(
                    "promoted, but the service's alarms were not re-pointed to the {} colour",
                    c.new
                ));
                fail_at(&mut tally.outcome, &e.key, e.error);
            }
        }
    }
}

/// The alarms' states now, as the pure decision takes them.
async fn watched(aws: &Aws, names: &[String]) -> Result<Vec<WatchedAlarm>, StepError> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    Ok(aws::cloudwatch::alarm_states(aws, names)
        .await?
        .into_iter()
        .map(|a| WatchedAlarm {
            name: a.name,
            state: match a.state.as_str() {
                "ALARM" => AlarmState::Alarm { reason: a.reason },
                "OK" => AlarmState::Ok,
                _ => AlarmState::InsufficientData,
            },
        })
        .collect())
}

/// Sends all traffic back to the previous version (read back); the words for the record.
async fn undo(aws: &Aws, ex: &Executor<'_>, route: &Route<'_>, run: &mut UnitRun) -> String {
    let old = route.old().unwrap_or("the previous version").to_string();
    match route.back(aws).await {
        Ok(p) => {
            run.mark(p);
            (ex.progress)(format!(
                "{}: all traffic back on version {old}",
                run.rec.unit
            ));
            format!("all traffic back on version {old} (read back)")
        }
        Err(e) => {
            let why = match e {
                StepError::Failed(e) => e.to_string(),
                StepError::Interrupted => "interrupted".into(),
            };
            (ex.progress)(format!(
                "{}: could not send traffic back to version {old}: {why}",
                run.rec.unit
            ));
            format!(
                "sending traffic back to version {old} failed ({why}): routing may still be split"
            )
        }
    }
}

/// The loop of shifts, holds and alarm polls for one unit: `Ok` when promoted or rolled back (see the record's
/// outcome), `Err` when a call failed or Ctrl-C stopped it (traffic sent back first).
async fn run_rollout(
    aws: &Aws,
    ex: &Executor<'_>,
    ctx: &Ship<'_>,
    route: &Route<'_>,
    names: &[String],
    run: &mut UnitRun,
) -> Result<(), StepError> {
    let plan = schedule(&ex.subject.stack.rollout, false);
    let id = run.rec.unit.clone();
    let new = route.new_version().to_string();
    let mut progress: Option<Progress> = None;
    let mut alarms: Vec<WatchedAlarm> = Vec::new();
    let mut last_report = Instant::now();
    loop {
        if ex.stop.load(Ordering::SeqCst) {
            let detail = undo(aws, ex, route, run).await;
            run.rec.outcome = Ended::Interrupted;
            run.rec.detail = Some(format!("Ctrl-C during the rollout: {detail}"));
            return Err(StepError::Interrupted);
        }
        // Alarms matter once traffic has moved; before that, the deploy's own check has refused firing ones.
        if progress.is_some() {
            alarms = match watched(aws, names).await {
                Ok(a) => a,
                Err(e) => {
                    let detail = undo(aws, ex, route, run).await;
                    run.rec.outcome = Ended::Interrupted;
                    run.rec.detail = Some(format!("could not read the watched alarms: {detail}"));
                    return Err(e);
                }
            };
        }
        match decide(&plan, progress, run.started.elapsed(), &alarms, ctx.ignored) {
            Decision::Shift { step, percent } => {
                let hold = plan.get(step).map_or(Duration::ZERO, |s| s.hold);
                match route.set(aws, percent).await {
                    Ok(p) => {
                        run.mark(p);
                        (ex.progress)(format!(
                            "{id}: {p}% → version {new} (bake {}s)",
                            hold.as_secs()
                        ));
                        progress = Some(Progress {
                            step,
                            applied_at: run.started.elapsed(),
                        });
                        last_report = Instant::now();
                    }
                    Err(e) => {
                        let detail = undo(aws, ex, route, run).await;
                        run.rec.outcome = Ended::Interrupted;
                        run.rec.detail = Some(format!("a shift to {percent}% failed: {detail}"));
                        return Err(e);
                    }
                }
            }
            Decision::Wait { until } => {
                if last_report.elapsed() >= BAKE_REPORT {
                    let at = run.rec.timeline.last().map_or(0, |p| p.percent);
                    let left = until.saturating_sub(run.started.elapsed()).as_secs();
                    (ex.progress)(format!(
                        "{id}: baking at {at}% on version {new}, {left}s left, alarms quiet"
                    ));
                    last_report = Instant::now();
                }
                // Short slices, so an alarm or Ctrl-C is seen within a second.
                let end = Instant::now() + until.saturating_sub(run.started.elapsed()).min(POLL);
                while Instant::now() < end && !ex.stop.load(Ordering::SeqCst) {
                    let slice = end.saturating_duration_since(Instant::now());
                    tokio::time::sleep(slice.min(Duration::from_millis(100))).await;
                }
            }
            Decision::Promote => {
                if let Err(e) = route.promote(aws, ex).await {
                    let detail = undo(aws, ex, route, run).await;
                    run.rec.outcome = Ended::Interrupted;
                    run.rec.detail = Some(format!("promoting failed: {detail}"));
                    return Err(e);
                }
                let old = route.old().unwrap_or("none");
                (ex.progress)(format!(
                    "{id}: promoted version {new} (version {old} kept to roll back to)"
                ));
                run.rec.outcome = Ended::Shipped;
                return Ok(());
            }
            Decision::RollBack { alarm, reason } => {
                (ex.progress)(format!(
                    "{id}: alarm {alarm} is in ALARM ({reason}): rolling back"
                ));
                let detail = undo(aws, ex, route, run).await;
                run.rec.outcome = Ended::RolledBack;
                run.rec.alarm = Some(FiredAlarm {
                    name: alarm,
                    reason,
                });
                run.rec.detail = Some(detail);
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A share of traffic and the routing expected: (primary, extra version and weight), or words of the error.
    type RoutingCase<'a> = (u32, Result<(&'a str, Option<(&'a str, f64)>), &'a str>);

    #[test]
    fn alias_routing_for_each_share() {
        let cases: &[RoutingCase] = &[
            (0, Ok(("1", None))),
            (100, Ok(("2", None))),
            (50, Ok(("1", Some(("2", 0.5))))),
            (1, Ok(("1", Some(("2", 0.01))))),
            (99, Ok(("1", Some(("2", 0.99))))),
            (101, Err("not a share of traffic")),
        ];
        for (percent, want) in cases {
            let got = alias_routing("1", "2", *percent);
            match (got, want) {
                (Ok((v, extra)), Ok((wv, wextra))) => {
                    assert_eq!(v, *wv, "{percent}%");
                    assert_eq!(
                        extra.as_ref().map(|(v, w)| (v.as_str(), *w)),
                        *wextra,
                        "{percent}%"
                    );
                }
                (Err(e), Err(w)) => assert!(e.contains(w), "{percent}%: {e}"),
                (got, want) => panic!("{percent}%: got {got:?}, want {want:?}"),
            }
        }
        // A partial shift to the version already serving is no shift at all.
        assert!(alias_routing("2", "2", 50).is_err());
    }

    fn alias(version: &str, weights: &[(&str, f64)]) -> AliasState {
        AliasState {
            version: version.into(),
            description: String::new(),
            weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn routing_read_back() {
        let cases: &[(AliasState, Result<u32, &str>)] = &[
            (alias("2", &[]), Ok(100)),
            (alias("1", &[]), Ok(0)),
            (alias("1", &[("2", 0.5)]), Ok(50)),
            (alias("1", &[("2", 0.1)]), Ok(10)),
            // What the emulator would accept and AWS would not: refused, never taken as a shift.
            (alias("1", &[("2", 1.5)]), Err("extra weights 2=1.5")),
            (alias("1", &[("2", 0.0)]), Err("extra weights")),
            (alias("1", &[("3", 0.5)]), Err("extra weights 3=0.5")),
            (
                alias("2", &[("1", 0.5)]),
                Err("version 2 with extra weights"),
            ),
            (alias("1", &[("2", 0.2), ("3", 0.1)]), Err("2=0.2, 3=0.1")),
            (alias("7", &[]), Err("all traffic on version 7")),
        ];
        for (a, want) in cases {
            match (routed_percent(a, "1", "2"), want) {
                (Ok(p), Ok(w)) => assert_eq!(p, *w, "{a:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{a:?}: {e}"),
                (got, want) => panic!("{a:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_failed_step_is_failed_not_also_not_done_and_an_interrupted_one_stays_not_done() {
        let alias = Key::new(Kind::Alias, "f:live");
        let function = Key::new(Kind::Function, "f");
        let started = |keys: &[&Key]| Outcome {
            not_done: keys.iter().map(|k| (*k).clone()).collect(),
            ..Default::default()
        };
        let mut o = started(&[&function, &alias]);
        fail_at(&mut o, &alias, AwsError::new("shift", "boom").into());
        assert_eq!(o.not_done, std::slice::from_ref(&function));
        assert_eq!(o.failed.as_ref().map(|f| &f.key), Some(&alias));
        assert!(!o.interrupted);
        let mut o = started(&[&function, &alias]);
        fail_at(&mut o, &alias, StepError::Interrupted);
        assert_eq!(o.not_done, [function, alias]);
        assert!(o.interrupted && o.failed.is_none());
    }

    #[test]
    fn timeline_points_are_milliseconds_from_the_unit_start() {
        assert_eq!(
            point(Duration::from_millis(5_250), 50),
            WeightPoint {
                at_ms: 5_250,
                percent: 50
            }
        );
        assert_eq!(point(Duration::MAX, 100).at_ms, u64::MAX);
    }

    #[test]
    fn the_watch_list_is_rollout_watch_or_every_alarm_the_stack_has() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut stack = statsctl_core::loader::load_str(&path, &text, Some("dev"), &|_: &str| None)
            .unwrap()
            .spec;
        let mut observed = Observed::default();
        for k in [
            Key::new(Kind::Alarm, "live-stats-dev-db-connections"),
            Key::new(Kind::Alarm, "live-stats-dev-target-5xx"),
            Key::new(Kind::Function, "live-stats-dev-stats-api"),
        ] {
            observed.resources.insert(k, Default::default());
        }
        assert_eq!(
            watch_list(&stack, "dev", &observed),
            ["live-stats-dev-db-connections", "live-stats-dev-target-5xx"]
        );
        stack.rollout.watch = vec!["target-5xx".into(), "live-stats-dev-db-connections".into()];
        assert_eq!(
            watch_list(&stack, "dev", &observed),
            ["live-stats-dev-target-5xx", "live-stats-dev-db-connections"]
        );
    }
}
