//! `statsctl plan`: live state vs. the stack file, as a terraform-like diff.

use clap::Args;
use serde::Serialize;
use statsctl_stacks::plan::{render, Plan};

use crate::context::Global;
use crate::exit::{CliResult, ATTENTION, OK};
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
    Ok(if args.detailed_exitcode && p.has_changes() {
        ATTENTION
    } else {
        OK
    })
}
