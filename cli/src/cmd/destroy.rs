//! `statsctl destroy`: delete what the stack owns in one environment — never the database without
//! `--delete-data`, never anything without confirmation (`--yes` for CI).

use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;
use statsctl_core::desired::Names;
use statsctl_core::inventory::Key;
use statsctl_core::plan::{destroy_plan, render, Plan};
use statsctl_engine::apply::{apply, Outcome};
use statsctl_engine::interrupt::stop_on_ctrl_c;

use crate::context::Global;
use crate::exit::{CliError, CliResult, OK};
use crate::output::{self, emit, progress};
use crate::session::Session;

#[derive(Args, Debug)]
pub struct DestroyArgs {
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Also delete the database cluster, its instances and its credentials secret (data is lost)
    #[arg(long)]
    pub delete_data: bool,
    /// Print what would be deleted and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Clear a stale lock left in the ledger bucket by a deploy or destroy that is gone (shows its holder and
    /// asks for confirmation, or --yes)
    #[arg(long)]
    pub break_lock: bool,
}

#[derive(Serialize)]
struct DestroyReport<'a> {
    plan: &'a Plan,
    kept: &'a [Key],
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
}

pub async fn run(g: &Global, args: DestroyArgs) -> CliResult {
    if g.env.is_none() {
        return Err(CliError::new("destroy needs an explicit environment").hint("pass --env NAME"));
    }
    let s = Session::open(g, false).await?;
    if args.dry_run {
        return destroy(g, &s, &args).await;
    }
    let _local = s.lock("statsctl destroy")?;
    let remote = s
        .remote_lock("statsctl destroy", args.break_lock, args.yes)
        .await?;
    let result = destroy(g, &s, &args).await;
    s.release(remote, result).await
}

/// Observe, plan and (unless a dry run or not confirmed) delete, under the locks `run` holds.
async fn destroy(g: &Global, s: &Session, args: &DestroyArgs) -> CliResult {
    let observed = s.observe().await?;
    let names = Names::new(&s.stack.spec, &s.env);
    let (p, kept) = destroy_plan(&s.owner, &observed, args.delete_data, &names.sg("db"));
    let describe = |out: &mut String, outcome: Option<&Outcome>| {
        out.push_str(&render(&p, output::color()));
        if !kept.is_empty() {
            out.push_str(&format!(
                "Kept (they hold data; add --delete-data to delete them): {}\n",
                kept.iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(o) = outcome {
            out.push_str(&format!(
                "{} deleted, {} not attempted{}\n",
                o.done.len(),
                o.not_done.len(),
                if o.failed.is_some() { ", 1 failed" } else { "" }
            ));
        }
    };
    if args.dry_run || p.changes.is_empty() {
        emit(
            g.output,
            &DestroyReport {
                plan: &p,
                kept: &kept,
                outcome: None,
            },
            |out| describe(out, None),
        )?;
        return Ok(OK);
    }
    if !args.yes {
        eprint!("{}", render(&p, false));
        if !std::io::stdin().is_terminal() {
            return Err(CliError::new("refusing to destroy without confirmation")
                .hint("pass --yes to confirm non-interactively"));
        }
        let question = format!(
            "Type `{}/{}` to delete these {} resources: ",
            s.owner.stack,
            s.env,
            p.changes.len()
        );
        let answer = crate::session::ask(&question).await?.unwrap_or_default();
        if answer.trim() != format!("{}/{}", s.owner.stack, s.env) {
            return Err(CliError::new("not confirmed; nothing was deleted"));
        }
    }
    let stop = stop_on_ctrl_c();
    let progress_fn = |line: String| progress(line);
    let mut observed = observed;
    let outcome = apply(&s.aws, &s.executor(&progress_fn, &stop), &p, &mut observed).await;
    emit(
        g.output,
        &DestroyReport {
            plan: &p,
            kept: &kept,
            outcome: Some(&outcome),
        },
        |out| describe(out, Some(&outcome)),
    )?;
    if let Some(f) = &outcome.failed {
        let mut e = CliError::new(format!("destroy stopped at {}: {}", f.key, f.error));
        e.hint = Some(
            f.hint
                .clone()
                .unwrap_or_else(|| "re-run `statsctl destroy` to continue".into()),
        );
        return Err(e);
    }
    // Stopped by Ctrl-C: some resources are left, so this is not success.
    if outcome.interrupted {
        return Err(CliError::new(format!(
            "destroy interrupted after {} of {} deletions",
            outcome.done.len(),
            outcome.done.len() + outcome.not_done.len()
        ))
        .hint("re-run `statsctl destroy` to delete the rest"));
    }
    Ok(OK)
}
