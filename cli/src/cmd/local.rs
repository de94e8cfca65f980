//! `statsctl local up | status | down`: the local default — the moto AWS emulator and a throwaway PostgreSQL
//! (small max_connections, so exhaustion is real) on 127.0.0.1, and the stats service itself (directly against
//! PostgreSQL or through PgBouncer, the local stand-in for RDS Proxy, as the stack's `local` environment says).
//! This file reads the arguments and renders `status`; the supervision itself lives in `crate::local`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use statsctl_core::model::ResolvedStack;

use crate::context::Global;
use crate::exit::{CliResult, OK};
use crate::local::postgres::pgpass_path;
use crate::local::supervisor::{is_ours, read_state, Proc};
use crate::local::{self, UpOptions};
use crate::output::{self, progress};

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Start the AWS emulator, PostgreSQL, and the stats service (via PgBouncer when the stack says `via: proxy`);
    /// what already runs is left alone, a service whose configuration changed is restarted. The stack is validated
    /// first: nothing starts when it is invalid. Every database role gets a generated password, kept in
    /// `<dir>/pgpass`
    Up(UpArgs),
    /// Show what runs where, and the pgpass file with the local database roles' passwords
    Status(DirArgs),
    /// Stop what `local up` started, by its recorded pids only
    Down(DirArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DirArgs {
    /// Directory for pid files, logs and the PostgreSQL data
    #[arg(long, default_value = ".statsctl/local", env = "STATSCTL_LOCAL_DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Port of the moto AWS emulator
    #[arg(long, default_value_t = 4566, env = "STATSCTL_MOTO_PORT")]
    pub moto_port: u16,
    /// Port of PostgreSQL
    #[arg(long, default_value_t = 25432, env = "STATSCTL_PG_PORT")]
    pub pg_port: u16,
    /// PostgreSQL max_connections, 4 to 262143 (small on purpose: connection exhaustion should be reproducible;
    /// PostgreSQL keeps 3 for superusers and allows no more than 262143)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(4..=262_143))]
    pub max_connections: u32,
    /// Seconds to wait for each process to become ready
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Port of the stats service (the `local` environment's load-test target)
    #[arg(long, default_value_t = 28080, env = "STATSCTL_SERVICE_PORT")]
    pub service_port: u16,
    /// Port of PgBouncer, started when the stack's service reaches the database `via: proxy`
    #[arg(long, default_value_t = 26432, env = "STATSCTL_PGBOUNCER_PORT")]
    pub pgbouncer_port: u16,
    /// Only the emulator and PostgreSQL: do not start the stats service (or PgBouncer)
    #[arg(long)]
    pub no_service: bool,
}

#[derive(Debug, Serialize)]
struct ComponentStatus {
    name: &'static str,
    state: &'static str,
    pid: Option<i32>,
    endpoint: Option<String>,
    log: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    dir: PathBuf,
    /// The standard password file with every local role's password (`PGPASSFILE`), never the passwords.
    pgpass: Option<PathBuf>,
    components: Vec<ComponentStatus>,
}

pub async fn run(g: &Global, c: LocalCommand) -> CliResult {
    match c {
        LocalCommand::Up(args) => up(g, args).await,
        LocalCommand::Status(d) => status(g, &d.dir),
        LocalCommand::Down(d) => {
            local::down(&d.dir);
            status(g, &d.dir)
        }
    }
}

async fn up(g: &Global, args: UpArgs) -> CliResult {
    // The stack is validated before anything is created or started.
    let stack = load_stack_if_present(g)?;
    let options = UpOptions {
        dir: args.dir.dir,
        moto_port: args.moto_port,
        pg_port: args.pg_port,
        max_connections: args.max_connections,
        timeout: Duration::from_secs(args.timeout),
        service_port: args.service_port,
        pgbouncer_port: args.pgbouncer_port,
        service: !args.no_service,
    };
    local::up(&options, stack.as_ref()).await?;
    status(g, &options.dir)
}

/// The stack `local up` configures the service from, loaded and validated like every command's (its `local`
/// environment unless `--env` says otherwise); `None` when there is no stack file (then only the emulator and
/// PostgreSQL start).
fn load_stack_if_present(g: &Global) -> CliResult<Option<ResolvedStack>> {
    if !g.stack.is_file() {
        progress(format!(
            "no stack file at {}: not starting the stats service",
            g.stack.display()
        ));
        return Ok(None);
    }
    g.load_stack_for(Some(g.env.as_deref().unwrap_or("local")))
        .map(Some)
}

fn status(g: &Global, dir: &Path) -> CliResult {
    let state = read_state(dir);
    let component = |name: &'static str, p: &Option<Proc>, endpoint: &dyn Fn(u16) -> String| match p
    {
        Some(p) if is_ours(p) => ComponentStatus {
            name,
            state: "running",
            pid: Some(p.pid),
            endpoint: Some(endpoint(p.port)),
            log: Some(p.log.clone()),
            max_connections: p.max_connections,
            detail: p.detail.clone(),
        },
        Some(p) => ComponentStatus {
            name,
            state: "stopped (stale pid file)",
            pid: Some(p.pid),
            endpoint: None,
            log: Some(p.log.clone()),
            max_connections: None,
            detail: None,
        },
        None => ComponentStatus {
            name,
            state: "stopped",
            pid: None,
            endpoint: None,
            log: None,
            max_connections: None,
            detail: None,
        },
    };
    let pgpass = pgpass_path(dir);
    let report = StatusReport {
        dir: dir.to_path_buf(),
        pgpass: pgpass
            .is_file()
            .then(|| std::path::absolute(&pgpass).unwrap_or(pgpass)),
        components: vec![
            component("moto", &state.moto, &|port| {
                format!("http://127.0.0.1:{port}")
            }),
            component("postgres", &state.postgres, &|port| {
                format!("postgres://postgres@127.0.0.1:{port}/postgres")
            }),
            component("pgbouncer", &state.pgbouncer, &|port| {
                format!("postgres://stats@127.0.0.1:{port}/stats")
            }),
            component("stats-service", &state.service, &|port| {
                format!("http://127.0.0.1:{port}/matches/1/stats")
            }),
        ],
    };
    output::emit(g.output, &report, |s| {
        s.push_str(&format!(
            "{:<14} {:<26} {:<8} {}\n",
            "COMPONENT", "STATE", "PID", "ENDPOINT"
        ));
        for c in &report.components {
            let state = if c.state == "running" {
                output::green(c.state)
            } else {
                output::dim(c.state)
            };
            let pad = 26usize.saturating_sub(c.state.chars().count());
            s.push_str(&format!(
                "{:<14} {}{} {:<8} {}{}{}\n",
                c.name,
                state,
                " ".repeat(pad),
                c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                c.endpoint.clone().unwrap_or_else(|| "-".into()),
                match (c.name, c.max_connections) {
                    ("pgbouncer", Some(m)) => format!("  (pool {m})"),
                    (_, Some(m)) => format!("  (max_connections {m})"),
                    _ => String::new(),
                },
                c.detail
                    .as_ref()
                    .filter(|_| c.name == "stats-service")
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default()
            ));
        }
        if let Some(p) = &report.pgpass {
            s.push_str(&format!(
                "\npgpass file: {} (export PGPASSFILE={} for psql)\n",
                p.display(),
                p.display()
            ));
        }
    })?;
    Ok(OK)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        local: super::LocalCommand,
    }

    #[test]
    fn max_connections_is_bounded_by_what_postgresql_accepts() {
        let up = |n: &str| Cli::try_parse_from(["statsctl", "up", "--max-connections", n]);
        // (value, accepted)
        let cases = [
            ("30", true),
            ("4", true),
            ("262143", true),
            ("3", false),
            ("0", false),
            ("262144", false),
            ("4294967295", false),
        ];
        for (n, accepted) in cases {
            let parsed = up(n);
            assert_eq!(parsed.is_ok(), accepted, "{n}: {parsed:?}");
            if let Err(e) = parsed {
                assert!(e.to_string().contains("--max-connections"), "{e}");
            }
        }
    }
}
