//! `statsctl deploy`: apply the plan in dependency order, then read back and confirm nothing is left to do.

use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;
use statsctl_core::plan::{render, Action, Plan};
use statsctl_engine::apply::{apply_and_confirm, Outcome};
use statsctl_engine::interrupt::stop_on_ctrl_c;

use crate::context::Global;
use crate::exit::{CliError, CliResult, OK};
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
}

#[derive(Serialize)]
struct DeployReport<'a> {
    stack: &'a str,
    env: &'a str,
    dry_run: bool,
    plan: &'a Plan,
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

/// Observe, plan and (unless a dry run, when `stop` is None) apply, under the locks `run` holds.
async fn deploy(
    g: &Global,
    s: &Session,
    args: &DeployArgs,
    started: std::time::Instant,
    stop: Option<&std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> CliResult {
    progress(format!("reading {}/{} from AWS…", s.owner.stack, s.env));
    let (mut observed, p, _) = s.observe_and_plan().await?;
    fn report<'a>(
        s: &'a Session,
        dry_run: bool,
        started: std::time::Instant,
        outcome: Option<&'a Outcome>,
        converged: Option<bool>,
        plan: &'a Plan,
    ) -> DeployReport<'a> {
        DeployReport {
            stack: &s.owner.stack,
            env: &s.env,
            dry_run,
            plan,
            outcome,
            converged,
            api_calls: s.aws.calls.get(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
    let Some(stop) = stop.filter(|_| p.has_changes()) else {
        emit(
            g.output,
            &report(s, args.dry_run, started, None, None, &p),
            |out| {
                out.push_str(&render(&p, output::color()));
                if args.dry_run && p.has_changes() {
                    out.push_str("Dry run: nothing was changed.\n");
                }
            },
        )?;
        return Ok(OK);
    };
    refuse_blocked(&p)?;
    if g.output == crate::output::Format::Human {
        eprint!("{}", render(&p, false));
    }
    confirm_deletes(&p, args.yes).await?;
    let progress_fn = |line: String| progress(line);
    let ex = s.executor(&progress_fn, stop);
    let (outcome, converged) = apply_and_confirm(&s.aws, &ex, &p, &mut observed)
        .await
        .map_err(aws_error)?;
    emit(
        g.output,
        &report(s, args.dry_run, started, Some(&outcome), converged, &p),
        |out| human_outcome(out, &outcome, converged),
    )?;
    if let Some(f) = &outcome.failed {
        let mut e = CliError::new(format!("deploy stopped at {}: {}", f.key, f.error));
        e.hint = Some(format!(
            "{}re-running `statsctl deploy` resumes: every step is checked against live state",
            f.hint
                .as_ref()
                .map(|h| format!("{h}; "))
                .unwrap_or_default()
        ));
        return Err(e);
    }
    if outcome.interrupted {
        return Err(CliError::new(format!(
            "deploy interrupted after {} of {} changes",
            outcome.done.len(),
            outcome.done.len() + outcome.not_done.len()
        ))
        .hint("re-run `statsctl deploy` to finish"));
    }
    if converged == Some(false) {
        return Err(
            CliError::new("deploy finished but a fresh plan still shows changes")
                .hint("run `statsctl plan` to see them; something else may be changing the stack"),
        );
    }
    Ok(OK)
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

fn human_outcome(out: &mut String, o: &Outcome, converged: Option<bool>) {
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
        } else {
            out.push_str(&format!("{} {} not attempted\n", output::dim("–"), k));
        }
    }
    let unfinished = usize::from(o.unfinished.is_some());
    out.push_str(&format!(
        "\n{} done, {} failed, {} not attempted.",
        o.done.len(),
        usize::from(o.failed.is_some()),
        o.not_done.len() - unfinished
    ));
    if unfinished > 0 {
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
        human_outcome(&mut out, &o, None);
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
