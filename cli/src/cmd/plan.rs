//! `statsctl plan`: live state vs. the stack file, as a terraform-like diff grouped into the units `deploy` ships
//! one at a time (core/src/units.rs), with any rollout left in progress shown as such.

use clap::Args;
use serde::Serialize;
use statsctl_core::plan::{
    render_units, rollouts_in_progress, unit_views, InProgress, Plan, UnitView,
};
use statsctl_core::units::units;

use crate::context::Global;
use crate::exit::{CliError, CliResult, ATTENTION, OK};
use crate::output::{self, emit, Format};
use crate::session::{Measure, Session};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Exit 0 when there is nothing to change, 2 when there is or a rollout is left in progress (1 stays "error")
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    /// The pending changes grouped as `deploy` ships them, in shipping order.
    units: Vec<UnitView>,
    /// Aliases whose traffic is split between two versions (a deploy stopped mid-rollout).
    rollouts_in_progress: &'a [InProgress],
    measured: Measure,
}

pub async fn run(g: &Global, args: PlanArgs) -> CliResult {
    let s = Session::open(g, true).await?;
    output::progress(format!("reading {}/{} from AWS…", s.owner.stack, s.env));
    let (observed, p, measured) = s.observe_and_plan().await?;
    output::progress(format!(
        "read in {:.2}s with {} AWS API calls",
        measured.seconds, measured.api_calls
    ));
    let spec = &s.stack.spec;
    let units = units(&p, spec);
    let in_progress = rollouts_in_progress(&observed, spec, &s.env);
    let report = PlanReport {
        plan: &p,
        units: unit_views(&units, &spec.rollout, &in_progress),
        rollouts_in_progress: &in_progress,
        measured,
    };
    emit(g.output, &report, |out| {
        out.push_str(&render_units(
            &p,
            &units,
            &spec.rollout,
            &in_progress,
            output::color(),
        ))
    })?;
    if g.output == Format::Human && !p.blocked().is_empty() {
        eprintln!(
            "{}",
            output::red("some changes are blocked: `statsctl deploy` will refuse this plan")
        );
    }
    // A referenced secret that does not exist is an error in the stack (or the account), not a pending change.
    let missing: Vec<&str> = {
        let mut names: Vec<&str> = p
            .changes
            .iter()
            .filter(|c| c.blocked.is_some())
            .flat_map(|c| c.changes.iter())
            .filter_map(|a| a.new.as_deref())
            .filter_map(statsctl_core::desired::missing_secret_in)
            .collect();
        names.sort();
        names.dedup();
        names
    };
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CliError::new(format!(
            "the stack references secrets that do not exist in Secrets Manager: {list}"
        ))
        .hint("create them (`aws secretsmanager create-secret --name NAME --secret-string …`) or fix the `{ secret: … }` references; nothing can be deployed until then"));
    }
    Ok(
        if args.detailed_exitcode && (p.has_changes() || !in_progress.is_empty()) {
            ATTENTION
        } else {
            OK
        },
    )
}
