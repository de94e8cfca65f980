//! The local stack `statsctl local` supervises on 127.0.0.1: the moto AWS emulator, a throwaway PostgreSQL, and
//! the stats service (through PgBouncer, the local stand-in for RDS Proxy, when the stack says `via: proxy`).
//! `up` and `down` here decide what to start, restart or stop from the recorded state; the pieces live in one
//! file each, the pid bookkeeping in `supervisor`.

pub mod moto;
pub mod pgbouncer;
pub mod postgres;
pub mod service;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::time::Duration;

use statsctl_core::model::ResolvedStack;

use crate::exit::{CliError, CliResult};
use crate::output::progress;
use postgres::{
    check_reachable, ensure_roles, local_roles, new_password, pg_bin_dir, pg_run_as, pgpass_path,
    recorded_passwords, start_postgres, write_pgpass, Passwords, ADMIN,
};
use service::ServiceSetup;
use supervisor::{
    create_state_dir, ensure_port_free, is_ours, read_state, stop, which, write_state, LocalState,
};

/// What `local up` is asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The state directory: pid file, logs, PostgreSQL's data, the pgpass file.
    pub dir: PathBuf,
    pub moto_port: u16,
    pub pg_port: u16,
    pub max_connections: u32,
    /// How long each process may take to become ready.
    pub timeout: Duration,
    pub service_port: u16,
    pub pgbouncer_port: u16,
    /// Start the stats service (and PgBouncer) when the stack has one.
    pub service: bool,
}

/// The ports the pgpass file lists: PostgreSQL's, PgBouncer's, and that of a PgBouncer still running elsewhere
/// (until it is restarted, clients reach it there). Sorted, each once. Pure.
fn pgpass_ports(pg_port: u16, pgbouncer_port: u16, running_bouncer: Option<u16>) -> Vec<u16> {
    let mut ports = vec![pg_port, pgbouncer_port];
    ports.extend(running_bouncer);
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Starts what does not run yet and restarts the service (and PgBouncer) when its configuration changed. Every
/// thing that can be found wrong — a directory PostgreSQL could not enter, a missing program, a busy port, a
/// cluster without its passwords — is found before anything is created or started, so a failed `up` leaves
/// nothing behind to clean up.
pub async fn up(o: &UpOptions, stack: Option<&ResolvedStack>) -> CliResult<()> {
    let dir = &o.dir;
    let run_as = pg_run_as();
    if let Some(account) = &run_as {
        check_reachable(dir, account)?;
    }
    let mut state = read_state(dir);
    let moto_running = state.moto.clone().filter(is_ours);
    let moto_bin = match &moto_running {
        Some(_) => None,
        None => {
            let bin = which("moto_server").ok_or_else(|| {
                CliError::new("`moto_server` is not installed")
                    .hint("install the AWS emulator: pip install 'moto[server]'")
            })?;
            ensure_port_free(o.moto_port, "--moto-port")?;
            Some(bin)
        }
    };
    let postgres_running = state.postgres.clone().filter(is_ours);
    let pg_bin = match &postgres_running {
        Some(_) => None,
        None => {
            let bin = pg_bin_dir().ok_or_else(|| {
                CliError::new("PostgreSQL server binaries (initdb, postgres) are not installed").hint(
                    "install them: apt-get install postgresql (or set STATSCTL_PG_BIN to their directory)",
                )
            })?;
            ensure_port_free(o.pg_port, "--pg-port")?;
            Some(bin)
        }
    };
    let roles = local_roles(stack)?;
    let mut passwords = recorded_passwords(dir);
    if !passwords.contains_key(ADMIN) && dir.join("pg/data/PG_VERSION").is_file() {
        return Err(CliError::new(format!(
            "the local PostgreSQL in `{}` has no password on record in `{}`: it was made by an older statsctl that trusted every local user, or the file was removed",
            dir.join("pg").display(),
            pgpass_path(dir).display()
        ))
        .hint(format!(
            "its data is throwaway: `statsctl local down --dir {0}`, remove `{0}/pg`, then `statsctl local up` again",
            dir.display()
        )));
    }

    create_state_dir(dir, run_as.is_some())?;
    // A generated password per role, kept in a standard pgpass file for every port a client may use.
    for role in &roles {
        if !passwords.contains_key(role) {
            passwords.insert(role.clone(), new_password()?);
        }
    }
    let pg_port = postgres_running
        .as_ref()
        .map(|p| p.port)
        .unwrap_or(o.pg_port);
    let running_bouncer = state
        .pgbouncer
        .as_ref()
        .filter(|p| is_ours(p))
        .map(|p| p.port);
    write_pgpass(
        dir,
        &pgpass_ports(pg_port, o.pgbouncer_port, running_bouncer),
        &passwords,
    )?;

    match (&moto_running, moto_bin) {
        (Some(p), _) => progress(format!(
            "moto already running (pid {}, port {})",
            p.pid, p.port
        )),
        (None, bin) => {
            let bin = bin.unwrap_or_else(|| PathBuf::from("moto_server"));
            moto::start(&bin, dir, o.moto_port, o.timeout, |p| {
                state.moto = Some(p.clone());
                write_state(dir, &state)
            })?;
        }
    }

    match (&postgres_running, pg_bin) {
        (Some(p), _) => progress(format!(
            "postgres already running (pid {}, port {})",
            p.pid, p.port
        )),
        (None, bin) => {
            let bin = bin.unwrap_or_default();
            let proc = start_postgres(
                &bin,
                dir,
                o.pg_port,
                o.max_connections,
                run_as.as_ref(),
                &passwords[ADMIN],
                o.timeout,
            )
            .await?;
            state.postgres = Some(proc);
            write_state(dir, &state)?;
        }
    }
    tokio::time::timeout(o.timeout, ensure_roles(dir, pg_port, &roles, &passwords))
        .await
        .map_err(|_| {
            CliError::new(format!(
                "the local PostgreSQL on port {pg_port} did not answer within {}s while setting up its roles",
                o.timeout.as_secs()
            ))
            .hint("see its log (`statsctl local status`); `statsctl local down` stops what was started")
        })??;

    if o.service {
        if let Some(stack) = stack {
            service_up(o, stack, &mut state, &passwords).await?;
        }
    }
    Ok(())
}

/// Starts (or restarts, when its configuration changed) PgBouncer and the stats service.
async fn service_up(
    o: &UpOptions,
    stack: &ResolvedStack,
    state: &mut LocalState,
    passwords: &Passwords,
) -> CliResult<()> {
    let dir = &o.dir;
    let max_connections = state
        .postgres
        .as_ref()
        .and_then(|p| p.max_connections)
        .unwrap_or(o.max_connections);
    let Some(setup) = ServiceSetup::from_stack(&stack.spec, max_connections) else {
        progress("the stack has no service with database access: not starting the stats service");
        return Ok(());
    };
    let pg_port = state.postgres.as_ref().map(|p| p.port).unwrap_or(o.pg_port);

    // Where the service will connect, and whether what runs now already matches.
    let bouncer_want = pgbouncer::detail(&setup, pg_port);
    let bouncer_running = state
        .pgbouncer
        .clone()
        .filter(|p| is_ours(p) && p.detail.as_deref() == Some(bouncer_want.as_str()));
    let db_port = setup.db_port(
        pg_port,
        bouncer_running.as_ref().map(|p| p.port),
        o.pgbouncer_port,
    );
    let detail = setup.describe(db_port);
    let service_running = state.service.clone().filter(|p| {
        is_ours(p) && p.detail.as_deref() == Some(detail.as_str()) && p.port == o.service_port
    });
    if service_running.is_none() {
        // Stop the old service first: it may hold every connection PostgreSQL allows (that is what
        // per-request mode does), and PgBouncer could not log in to get ready.
        if let Some(p) = state.service.clone().filter(is_ours) {
            progress(format!(
                "restarting stats-service (pid {}): now {detail}",
                p.pid
            ));
            stop(&p, libc::SIGTERM);
            state.service = None;
            write_state(dir, state)?;
        }
    }

    if setup.via_proxy {
        match bouncer_running {
            Some(p) => {
                progress(format!(
                    "pgbouncer already running (pid {}, port {})",
                    p.pid, p.port
                ));
                // A role the stack added since: PgBouncer rereads its auth_file on SIGHUP.
                pgbouncer::write_userlist(dir, passwords, pg_run_as().as_ref())?;
                supervisor::signal(p.pid, libc::SIGHUP);
            }
            None => {
                if let Some(p) = state.pgbouncer.clone().filter(is_ours) {
                    progress(format!(
                        "restarting pgbouncer (pid {}): its configuration changed",
                        p.pid
                    ));
                    stop(&p, libc::SIGTERM);
                }
                let p = pgbouncer::start(
                    dir,
                    o.pgbouncer_port,
                    pg_port,
                    &setup,
                    passwords,
                    bouncer_want,
                    o.timeout,
                )
                .await?;
                state.pgbouncer = Some(p);
                write_state(dir, state)?;
            }
        }
    }

    match service_running {
        Some(p) => progress(format!(
            "stats-service already running (pid {}, port {}, {detail})",
            p.pid, p.port
        )),
        None => {
            let password = passwords.get(&setup.user).map(String::as_str);
            let p = service::start(
                dir,
                o.service_port,
                db_port,
                &setup,
                password,
                detail,
                o.timeout,
            )?;
            state.service = Some(p);
            write_state(dir, state)?;
        }
    }
    if let Some(p) = &state.service {
        service::seed_match(p.port)?;
    }
    Ok(())
}

/// Stops what `up` started, by its recorded pids only: the service first (it holds connections), then
/// PgBouncer; PostgreSQL with SIGINT (its "fast shutdown"); moto with SIGTERM.
pub fn down(dir: &Path) {
    let mut state = read_state(dir);
    for (slot, signal) in [
        (&mut state.service, libc::SIGTERM),
        (&mut state.pgbouncer, libc::SIGTERM),
        (&mut state.postgres, libc::SIGINT),
        (&mut state.moto, libc::SIGTERM),
    ] {
        if let Some(p) = slot.take() {
            if is_ours(&p) {
                progress(format!("stopping {} (pid {})…", p.signature, p.pid));
                stop(&p, signal);
            }
        }
    }
    // Nothing recorded runs any more; a directory that cannot be written to has nothing to forget.
    let _ = write_state(dir, &state);
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pgpass_file_covers_every_port_a_client_may_use() {
        // (case, PostgreSQL's port, PgBouncer's port, a running PgBouncer's port, expected)
        let cases = [
            ("both", 25432, 26432, None, vec![25432, 26432]),
            (
                "a running PgBouncer elsewhere",
                25432,
                26432,
                Some(27000),
                vec![25432, 26432, 27000],
            ),
            (
                "the running PgBouncer is the one asked for",
                25432,
                26432,
                Some(26432),
                vec![25432, 26432],
            ),
            (
                "sorted",
                30000,
                26432,
                Some(20000),
                vec![20000, 26432, 30000],
            ),
            ("one port for both", 25432, 25432, None, vec![25432]),
        ];
        for (case, pg, bouncer, running, want) in cases {
            assert_eq!(super::pgpass_ports(pg, bouncer, running), want, "{case}");
        }
    }
}
