//! `statsctl`: parses the command line and dispatches; the work lives in the library crates.

mod cmd;
mod context;
mod exit;
mod local;
mod output;
mod session;

use clap::{CommandFactory, Parser, Subcommand};

use crate::context::Global;
use crate::exit::{CliError, CliResult, Exit};

/// `0.1.0 (<git commit>)`: the commit from `build.rs`, "unknown" when built outside a git checkout.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("STATSCTL_GIT_COMMIT"),
    ")"
);

/// The ops control plane for a live-event statistics stack on AWS: provision it from stack files, ship changes
/// one at a time, and check before the event that it will hold.
#[derive(Parser, Debug)]
#[command(name = "statsctl", version = VERSION, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok · 1 error · 2 changes pending / checks failed / load test failed / a rollout rolled back / a runbook found a problem it could not fix"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant (loadtest's flags) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Check a stack file (all environments, or one with --env) and print the resolved stack
    Validate(cmd::validate::ValidateArgs),
    /// Print the stack file's JSON Schema (for editor completion and validation)
    Schema,
    /// Show what would change to make AWS match the stack file (terraform-plan style)
    Plan(cmd::plan::PlanArgs),
    /// Create or update the stack in dependency order until AWS matches the stack file
    Deploy(cmd::deploy::DeployArgs),
    /// Point a function's alias (or the service) back at the version history says served before, at once
    Rollback(cmd::rollback::RollbackArgs),
    /// Deploy to one environment exactly the artifacts live in another, once its preflight (load test included) is ready
    Promote(cmd::promote::PromoteArgs),
    /// Check, before the event, that the stack will hold: proxy attachment, connection budget, alarms, rollback…
    Preflight(cmd::preflight::PreflightArgs),
    /// Simulated viewers against the stats API; verdict from the stack's thresholds; recorded for preflight
    Loadtest(cmd::loadtest::LoadtestArgs),
    /// Show every resource of the stack with its live state and versions
    Status,
    /// List what deploys shipped, rolled back or left interrupted, unit by unit, newest first
    History(cmd::history::HistoryArgs),
    /// Delete what the stack owns in an environment (the database only with --delete-data)
    Destroy(cmd::destroy::DestroyArgs),
    /// Start, inspect or stop the local AWS emulator, PostgreSQL, PgBouncer and the stats service on 127.0.0.1
    #[command(subcommand)]
    Local(cmd::local::LocalCommand),
    /// The on-call's runbooks: list them, show one, run one (each change shown and asked for first; a transcript
    /// kept)
    #[command(subcommand)]
    Runbook(cmd::runbook::RunbookCommand),
    /// Print a shell completion script, e.g. `statsctl completions bash > ~/.local/share/bash-completion/completions/statsctl`
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), e.g. `statsctl man > statsctl.1 && man ./statsctl.1`
    Man,
}

/// The shells `statsctl completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// A completion script for `shell`, generated from the same definition as `--help`.
fn completions(shell: Shell) -> CliResult {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(generator, &mut Cli::command(), "statsctl", &mut script);
    output::print_generated(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Ok)
}

/// The man page of statsctl: its commands, options and exit codes, from the same definition as `--help`.
fn man_page() -> CliResult {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| CliError::new(format!("cannot render the man page: {e}")))?;
    output::print_generated(&String::from_utf8_lossy(&page))?;
    Ok(Exit::Ok)
}

fn main() {
    // clap exits 2 on a bad argument, which statsctl documents as "attention" (changes pending, checks
    // failed): bad input is 1 here. --help and --version still exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                Exit::Error.exit()
            } else {
                Exit::Ok.exit()
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            Exit::Error.exit()
        }
    };
    let exit = match runtime.block_on(run(cli)) {
        Ok(exit) => exit,
        Err(e) => {
            if !e.printed {
                eprintln!("{e}");
            }
            e.code
        }
    };
    exit.exit()
}

async fn run(cli: Cli) -> CliResult {
    let g = cli.global;
    match cli.command {
        Command::Validate(args) => cmd::validate::run(&g, args),
        Command::Schema => cmd::validate::schema(),
        Command::Plan(a) => cmd::plan::run(&g, a).await,
        Command::Deploy(a) => cmd::deploy::run(&g, a).await,
        Command::Rollback(a) => cmd::rollback::run(&g, a).await,
        Command::Promote(a) => cmd::promote::run(&g, a).await,
        Command::Status => cmd::status::run(&g).await,
        Command::History(a) => cmd::history::run(&g, a).await,
        Command::Preflight(a) => cmd::preflight::run(&g, a).await,
        Command::Loadtest(a) => cmd::loadtest::run_cmd(&g, a).await,
        Command::Destroy(a) => cmd::destroy::run(&g, a).await,
        Command::Local(c) => cmd::local::run(&g, c).await,
        Command::Runbook(c) => cmd::runbook::run(&g, c).await,
        Command::Completions { shell } => completions(shell),
        Command::Man => man_page(),
    }
}
