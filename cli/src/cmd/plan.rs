//! `statsctl plan`: live state vs. the stack file, as a terraform-like diff.

use clap::Args;
use serde::Serialize;
use statsctl_core::plan::{render, Plan};

use crate::context::Global;
use crate::exit::{CliError, CliResult, ATTENTION, OK};
use crate::output::{self, emit, Format};
use crate::session::{Measure, Session};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Exit 0 when there is nothing to change, 2 when there is (1 stays "error")
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Serialize)]
struct PlanReport<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    measured: Measure,
}

pub async fn run(g: &Global, args: PlanArgs) -> CliResult {
    let s = Session::open(g, true).await?;
    output::progress(format!("reading {}/{} from AWS…", s.owner.stack, s.env));
    let (_, p, measured) = s.observe_and_plan().await?;
    output::progress(format!(
        "read in {:.2}s with {} AWS API calls",
        measured.seconds, measured.api_calls
    ));
    emit(g.output, &PlanReport { plan: &p, measured }, |out| {
        out.push_str(&render(&p, output::color()))
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
    Ok(if args.detailed_exitcode && p.has_changes() {
        ATTENTION
    } else {
        OK
    })
}
