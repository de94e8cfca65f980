//! PgBouncer, the local stand-in for RDS Proxy: its configuration (a server-side pool sized as RDS Proxy sizes
//! it, the borrow timeout as its wait), its auth_file with every role, and starting it as PostgreSQL's account.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::postgres::{
    as_user, chown_tree, connect_when_ready, ids, local_config, pg_run_as, write_private,
    Passwords, RunAs, OWNER,
};
use super::service::ServiceSetup;
use super::supervisor::{ensure_port_free, find_binary, log_file, raise_nofile, spawn, Proc};
use crate::exit::{CliError, CliResult};
use crate::output::progress;

/// How PgBouncer is configured, in one line: recorded with its pid, so a change restarts it. Pure.
pub fn detail(setup: &ServiceSetup, pg_port: u16) -> String {
    format!(
        "pool {} of PostgreSQL :{pg_port}, wait {}s",
        setup.proxy_pool, setup.borrow_timeout_secs
    )
}

/// `pgbouncer.ini`. Pure.
fn ini(port: u16, pg_port: u16, auth_file: &Path, setup: &ServiceSetup) -> String {
    // Session pooling: the service's driver uses named prepared statements, which transaction pooling in
    // PgBouncer < 1.21 breaks. The server-side pool is what bounds PostgreSQL, as RDS Proxy's
    // MaxConnectionsPercent does; clients beyond it wait up to the borrow timeout.
    format!(
        "[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = scram-sha-256\nauth_file = {auth}\npool_mode = session\ndefault_pool_size = {pool}\nmax_db_connections = {pool}\n\
         max_client_conn = 4000\nquery_wait_timeout = {wait}\nignore_startup_parameters = extra_float_digits,options\n",
        auth = auth_file.display(),
        pool = setup.proxy_pool,
        wait = setup.borrow_timeout_secs,
    )
}

/// The auth_file's lines: every role with its password. Pure.
fn userlist(passwords: &Passwords) -> String {
    passwords
        .iter()
        .map(|(user, password)| format!("\"{user}\" \"{password}\"\n"))
        .collect()
}

/// PgBouncer's auth_file: every role with its password (PgBouncer needs it in the clear to log in to PostgreSQL
/// with SCRAM on the client's behalf). Mode 0600, owned by the account PgBouncer runs as.
pub fn write_userlist(
    dir: &Path,
    passwords: &Passwords,
    account: Option<&RunAs>,
) -> CliResult<PathBuf> {
    let path = dir.join("pgbouncer").join("userlist.txt");
    write_private(&path, &userlist(passwords), ids(account))?;
    Ok(path)
}

/// Starts PgBouncer on `port` in front of PostgreSQL on `pg_port`; returns once it lets the database owner run
/// a query through it (or fails with its log's tail after `timeout`).
pub async fn start(
    dir: &Path,
    port: u16,
    pg_port: u16,
    setup: &ServiceSetup,
    passwords: &Passwords,
    detail: String,
    timeout: Duration,
) -> CliResult<Proc> {
    let bin = find_binary("pgbouncer", "STATSCTL_PGBOUNCER_BIN", &["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]).ok_or_else(|| {
        CliError::new(format!("the stack's {} reaches the database `via: proxy`, and PgBouncer (the local stand-in for RDS Proxy) is not installed", setup.name))
            .hint("install it: apt-get install pgbouncer (or start without the service: statsctl local up --no-service)")
    })?;
    ensure_port_free(port, "--pgbouncer-port")?;
    let bdir = dir.join("pgbouncer");
    fs::create_dir_all(&bdir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&bdir, fs::Permissions::from_mode(0o700))?;
    }
    let account = pg_run_as();
    let run_as = ids(account.as_ref());
    let log = bdir.join("pgbouncer.log");
    let auth_file = write_userlist(dir, passwords, account.as_ref())?;
    let ini_path = bdir.join("pgbouncer.ini");
    fs::write(&ini_path, ini(port, pg_port, &auth_file, setup))?;
    log_file(&log)?;
    chown_tree(&bdir, run_as)?;
    let mut cmd = Command::new(&bin);
    cmd.arg(&ini_path);
    raise_nofile(&mut cmd);
    as_user(&mut cmd, run_as);
    let mut proc = spawn(&mut cmd, &log, port, "pgbouncer", &bin)?;
    proc.max_connections = Some(setup.proxy_pool);
    proc.detail = Some(detail);
    progress(format!(
        "starting PgBouncer on 127.0.0.1:{port} (pid {}, pool {} of PostgreSQL's connections)…",
        proc.pid, setup.proxy_pool
    ));
    let (client, task) = connect_when_ready(
        &local_config(port, OWNER, "stats", &passwords[OWNER]),
        Some(&proc),
        "PgBouncer",
        timeout,
    )
    .await?;
    drop(client);
    let _ = task.await;
    Ok(proc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(proxy_pool: u32, borrow_timeout_secs: u64) -> ServiceSetup {
        ServiceSetup {
            name: "svc".into(),
            via_proxy: true,
            per_request: false,
            pool_size: 5,
            user: "svc".into(),
            proxy_pool,
            borrow_timeout_secs,
        }
    }

    #[test]
    fn the_ini_bounds_postgres_by_the_proxy_pool_and_waits_the_borrow_timeout() {
        let text = ini(
            26432,
            25432,
            Path::new("/d/pgbouncer/userlist.txt"),
            &setup(22, 30),
        );
        for line in [
            "* = host=127.0.0.1 port=25432",
            "listen_addr = 127.0.0.1",
            "listen_port = 26432",
            "unix_socket_dir =",
            "auth_type = scram-sha-256",
            "auth_file = /d/pgbouncer/userlist.txt",
            "pool_mode = session",
            "default_pool_size = 22",
            "max_db_connections = 22",
            "query_wait_timeout = 30",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn the_detail_changes_with_what_needs_a_restart() {
        let cases = [
            (
                setup(22, 30),
                25432,
                "pool 22 of PostgreSQL :25432, wait 30s",
            ),
            (setup(3, 1), 25432, "pool 3 of PostgreSQL :25432, wait 1s"),
            (setup(22, 30), 5432, "pool 22 of PostgreSQL :5432, wait 30s"),
        ];
        for (s, pg_port, want) in cases {
            assert_eq!(detail(&s, pg_port), want);
        }
    }

    #[test]
    fn the_userlist_has_a_quoted_line_per_role() {
        let passwords: Passwords = [("postgres", "p1"), ("stats", "p2")]
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        assert_eq!(
            userlist(&passwords),
            "\"postgres\" \"p1\"\n\"stats\" \"p2\"\n"
        );
        assert_eq!(userlist(&Passwords::new()), "");
    }
}
