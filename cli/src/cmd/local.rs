//! `statsctl local up | status | down`: the local default — the moto AWS emulator and a throwaway PostgreSQL
//! (small max_connections, so exhaustion is real) on 127.0.0.1, and the stats service itself (directly against
//! PostgreSQL or through PgBouncer, the local stand-in for RDS Proxy, as the stack's `local` environment says),
//! tracked by a state file with their pids and stopped only by those pids.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use statsctl_core::model::ResolvedStack;

use crate::context::Global;
use crate::exit::{CliError, CliResult, OK};
use crate::output::{self, progress};

mod postgres;
use postgres::{
    as_user, check_reachable, chown_tree, connect_when_ready, ensure_roles, ids, local_config,
    local_roles, new_password, pg_bin_dir, pg_run_as, pgpass_path, recorded_passwords,
    start_postgres, write_pgpass, write_private, Passwords, RunAs, ADMIN, OWNER,
};

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
    /// PostgreSQL max_connections (small on purpose: connection exhaustion should be reproducible)
    #[arg(long, default_value_t = 30)]
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

/// What `local up` started, persisted in `<dir>/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalState {
    pub moto: Option<Proc>,
    pub postgres: Option<Proc>,
    #[serde(default)]
    pub pgbouncer: Option<Proc>,
    #[serde(default)]
    pub service: Option<Proc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub port: u16,
    pub log: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// What the process's command line contains: checked before signalling the pid, so a recycled pid that
    /// now belongs to something else is never killed.
    pub signature: String,
    /// How it was configured (the service: database route and connection mode); a change restarts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
        LocalCommand::Down(d) => down(g, &d.dir),
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn read_state(dir: &Path) -> LocalState {
    fs::read(state_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_state(dir: &Path, s: &LocalState) -> CliResult<()> {
    let tmp = dir.join("state.json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(s).map_err(|e| CliError::new(e.to_string()))?,
    )?;
    fs::rename(tmp, state_path(dir))?;
    Ok(())
}

/// True when `pid` is alive and its command line contains `signature`.
fn is_ours(p: &Proc) -> bool {
    let alive = unsafe { libc::kill(p.pid, 0) } == 0;
    if !alive {
        return false;
    }
    match fs::read(format!("/proc/{}/cmdline", p.pid)) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(&p.signature),
        // No /proc (not Linux): trust the pid.
        Err(_) => true,
    }
}

async fn up(g: &Global, args: UpArgs) -> CliResult {
    let dir = args.dir.dir.clone();
    // Everything that can be found wrong is found before anything is created or started: a stack file that does
    // not validate, a directory PostgreSQL could not enter, a missing program, a busy port. A failed `up` leaves
    // nothing behind to clean up.
    let stack = load_stack_if_present(g)?;
    let run_as = pg_run_as();
    if let Some(account) = &run_as {
        check_reachable(&dir, account)?;
    }
    let mut state = read_state(&dir);
    let deadline = Duration::from_secs(args.timeout);
    let moto_running = state.moto.clone().filter(is_ours);
    let moto_bin = match &moto_running {
        Some(_) => None,
        None => {
            let bin = which("moto_server").ok_or_else(|| {
                CliError::new("`moto_server` is not installed")
                    .hint("install the AWS emulator: pip install 'moto[server]'")
            })?;
            ensure_port_free(args.moto_port, "--moto-port")?;
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
            ensure_port_free(args.pg_port, "--pg-port")?;
            Some(bin)
        }
    };
    let roles = local_roles(stack.as_ref())?;
    let mut passwords = recorded_passwords(&dir);
    if !passwords.contains_key(ADMIN) && dir.join("pg/data/PG_VERSION").is_file() {
        return Err(CliError::new(format!(
            "the local PostgreSQL in `{}` has no password on record in `{}`: it was made by an older statsctl that trusted every local user, or the file was removed",
            dir.join("pg").display(),
            pgpass_path(&dir).display()
        ))
        .hint(format!(
            "its data is throwaway: `statsctl local down --dir {0}`, remove `{0}/pg`, then `statsctl local up` again",
            dir.display()
        )));
    }

    create_state_dir(&dir, run_as.is_some())?;
    // A generated password per role, kept in a standard pgpass file for every port a client may use.
    for role in &roles {
        if !passwords.contains_key(role) {
            passwords.insert(role.clone(), new_password()?);
        }
    }
    let pg_port = postgres_running
        .as_ref()
        .map(|p| p.port)
        .unwrap_or(args.pg_port);
    let mut ports = vec![pg_port, args.pgbouncer_port];
    ports.extend(
        state
            .pgbouncer
            .iter()
            .filter(|p| is_ours(p))
            .map(|p| p.port),
    );
    ports.sort_unstable();
    ports.dedup();
    write_pgpass(&dir, &ports, &passwords)?;

    // moto
    match (&moto_running, moto_bin) {
        (Some(p), _) => progress(format!(
            "moto already running (pid {}, port {})",
            p.pid, p.port
        )),
        (None, moto) => {
            let moto = moto.unwrap_or_else(|| PathBuf::from("moto_server"));
            let log = dir.join("moto.log");
            let child = Command::new(&moto)
                .args(["-H", "127.0.0.1", "-p", &args.moto_port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file(&log)?)
                .stderr(log_file(&log)?)
                .process_group(0)
                .spawn()
                .map_err(|e| CliError::new(format!("cannot start `{}`: {e}", moto.display())))?;
            let proc = Proc {
                pid: child.id() as i32,
                port: args.moto_port,
                log: log.clone(),
                max_connections: None,
                signature: "moto_server".into(),
                detail: None,
            };
            state.moto = Some(proc.clone());
            write_state(&dir, &state)?;
            progress(format!(
                "starting moto on 127.0.0.1:{} (pid {})…",
                args.moto_port, proc.pid
            ));
            wait_http(&proc, deadline)?;
        }
    }

    // PostgreSQL
    match (&postgres_running, pg_bin) {
        (Some(p), _) => progress(format!(
            "postgres already running (pid {}, port {})",
            p.pid, p.port
        )),
        (None, bin) => {
            let bin = bin.unwrap_or_default();
            let proc = start_postgres(
                &bin,
                &dir,
                args.pg_port,
                args.max_connections,
                run_as.as_ref(),
                &passwords[ADMIN],
                deadline,
            )
            .await?;
            state.postgres = Some(proc);
            write_state(&dir, &state)?;
        }
    }
    tokio::time::timeout(deadline, ensure_roles(&dir, pg_port, &roles, &passwords))
        .await
        .map_err(|_| {
            CliError::new(format!(
                "the local PostgreSQL on port {pg_port} did not answer within {}s while setting up its roles",
                deadline.as_secs()
            ))
            .hint("see its log (`statsctl local status`); `statsctl local down` stops what was started")
        })??;

    if !args.no_service {
        if let Some(stack) = &stack {
            service_up(&args, stack, &dir, &mut state, &passwords, deadline).await?;
        }
    }
    status(g, &dir)
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

/// Creates the state directory. When PostgreSQL and PgBouncer run as another account (`other_account`, see
/// [`pg_run_as`]), the directories created here and the state directory itself get `o+x` (others may enter them;
/// nothing else is added); what lies above was checked by [`check_reachable`].
fn create_state_dir(dir: &Path, other_account: bool) -> CliResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let missing: Vec<PathBuf> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir)
        .map_err(|e| CliError::new(format!("cannot create `{}`: {e}", dir.display())))?;
    if !other_account {
        return Ok(());
    }
    for d in missing.iter().map(PathBuf::as_path).chain([dir]) {
        let mode = fs::metadata(d)?.permissions().mode();
        if mode & 0o001 == 0 {
            fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o001))?;
        }
    }
    Ok(())
}

/// How the stack's environment says the service reaches PostgreSQL, in local terms. Pure.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSetup {
    pub name: String,
    /// Through PgBouncer (`via: proxy`) or straight to PostgreSQL.
    pub via_proxy: bool,
    pub per_request: bool,
    pub pool_size: u32,
    pub user: String,
    /// PgBouncer's server-side pool: max_connections × the proxy's MaxConnectionsPercent, as RDS Proxy sizes it.
    pub proxy_pool: u32,
    /// PgBouncer's query_wait_timeout: the proxy's connection borrow timeout.
    pub borrow_timeout_secs: u64,
}

impl ServiceSetup {
    pub fn from_stack(
        spec: &statsctl_core::model::StackFile,
        max_connections: u32,
    ) -> Option<ServiceSetup> {
        use statsctl_core::model::{Connections, Via};
        let svc = spec.service.as_ref()?;
        let db = svc.database.as_ref()?;
        let percent = spec
            .proxy
            .as_ref()
            .map(|p| p.max_connections_percent)
            .unwrap_or(100);
        Some(ServiceSetup {
            name: svc.name.clone(),
            via_proxy: db.via == Via::Proxy,
            per_request: db.connections == Connections::PerRequest,
            pool_size: db.pool_size,
            user: db.user.clone(),
            proxy_pool: (max_connections * percent / 100).max(1),
            borrow_timeout_secs: spec
                .proxy
                .as_ref()
                .map(|p| p.connection_borrow_timeout.0.as_secs())
                .unwrap_or(30)
                .max(1),
        })
    }

    /// Every database user the stack names: its functions' and its service's.
    pub fn database_users(spec: &statsctl_core::model::StackFile) -> Vec<String> {
        let mut users: Vec<String> = spec
            .functions
            .values()
            .filter_map(|f| f.database.as_ref().map(|d| d.user.clone()))
            .chain(
                spec.service
                    .iter()
                    .filter_map(|s| s.database.as_ref().map(|d| d.user.clone())),
            )
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// One line for `local status`; also the fingerprint that decides a restart.
    pub fn describe(&self, db_port: u16) -> String {
        let route = if self.via_proxy {
            format!("via PgBouncer :{db_port}")
        } else {
            format!("direct to PostgreSQL :{db_port}")
        };
        let mode = if self.per_request {
            "a connection per request in flight".to_string()
        } else {
            format!("pool of {}", self.pool_size)
        };
        format!("{route}, {mode}, as {}", self.user)
    }
}

/// Starts (or restarts, when its configuration changed) PgBouncer and the stats service.
async fn service_up(
    args: &UpArgs,
    stack: &ResolvedStack,
    dir: &Path,
    state: &mut LocalState,
    passwords: &Passwords,
    deadline: Duration,
) -> CliResult<()> {
    let max_connections = state
        .postgres
        .as_ref()
        .and_then(|p| p.max_connections)
        .unwrap_or(args.max_connections);
    let Some(setup) = ServiceSetup::from_stack(&stack.spec, max_connections) else {
        progress("the stack has no service with database access: not starting the stats service");
        return Ok(());
    };
    let pg_port = state
        .postgres
        .as_ref()
        .map(|p| p.port)
        .unwrap_or(args.pg_port);

    // Where the service will connect, and whether what runs now already matches.
    let bouncer_want = format!(
        "pool {} of PostgreSQL :{pg_port}, wait {}s",
        setup.proxy_pool, setup.borrow_timeout_secs
    );
    let bouncer_running = state
        .pgbouncer
        .clone()
        .filter(|p| is_ours(p) && p.detail.as_deref() == Some(bouncer_want.as_str()));
    let db_port = match (&bouncer_running, setup.via_proxy) {
        (_, false) => pg_port,
        (Some(p), true) => p.port,
        (None, true) => args.pgbouncer_port,
    };
    let detail = setup.describe(db_port);
    let service_running = state.service.clone().filter(|p| {
        is_ours(p) && p.detail.as_deref() == Some(detail.as_str()) && p.port == args.service_port
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
                write_userlist(dir, passwords, pg_run_as().as_ref())?;
                unsafe {
                    libc::kill(p.pid, libc::SIGHUP);
                }
            }
            None => {
                if let Some(p) = state.pgbouncer.clone().filter(is_ours) {
                    progress(format!(
                        "restarting pgbouncer (pid {}): its configuration changed",
                        p.pid
                    ));
                    stop(&p, libc::SIGTERM);
                }
                let p = start_pgbouncer(
                    dir,
                    args.pgbouncer_port,
                    pg_port,
                    &setup,
                    passwords,
                    bouncer_want,
                    deadline,
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
            let p = start_service(
                dir,
                args.service_port,
                db_port,
                &setup,
                password,
                detail,
                deadline,
            )?;
            state.service = Some(p);
            write_state(dir, state)?;
        }
    }
    if let Some(p) = &state.service {
        seed_match(p.port)?;
    }
    Ok(())
}

/// PgBouncer's auth_file: every role with its password (PgBouncer needs it in the clear to log in to PostgreSQL
/// with SCRAM on the client's behalf). Mode 0600, owned by the account PgBouncer runs as.
fn write_userlist(
    dir: &Path,
    passwords: &Passwords,
    account: Option<&RunAs>,
) -> CliResult<PathBuf> {
    let path = dir.join("pgbouncer").join("userlist.txt");
    let text: String = passwords
        .iter()
        .map(|(user, password)| format!("\"{user}\" \"{password}\"\n"))
        .collect();
    write_private(&path, &text, ids(account))?;
    Ok(path)
}

fn find_binary(name: &str, env_var: &str, extra: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    // Next to this binary (target/debug/statsctl and target/debug/stats-service), then PATH, then known places.
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
    {
        if sibling.is_file() {
            return Some(sibling);
        }
    }
    which(name).or_else(|| extra.iter().map(PathBuf::from).find(|p| p.is_file()))
}

async fn start_pgbouncer(
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
    // Session pooling: the service's driver uses named prepared statements, which transaction pooling in
    // PgBouncer < 1.21 breaks. The server-side pool is what bounds PostgreSQL, as RDS Proxy's
    // MaxConnectionsPercent does; clients beyond it wait up to the borrow timeout.
    let ini = format!(
        "[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
         auth_type = scram-sha-256\nauth_file = {auth}\npool_mode = session\ndefault_pool_size = {pool}\nmax_db_connections = {pool}\n\
         max_client_conn = 4000\nquery_wait_timeout = {wait}\nignore_startup_parameters = extra_float_digits,options\n",
        auth = auth_file.display(),
        pool = setup.proxy_pool,
        wait = setup.borrow_timeout_secs,
    );
    let ini_path = bdir.join("pgbouncer.ini");
    fs::write(&ini_path, ini)?;
    log_file(&log)?;
    chown_tree(&bdir, run_as)?;
    let mut cmd = Command::new(&bin);
    cmd.arg(&ini_path)
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .process_group(0);
    raise_nofile(&mut cmd);
    as_user(&mut cmd, run_as);
    let child = cmd
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start `{}`: {e}", bin.display())))?;
    let proc = Proc {
        pid: child.id() as i32,
        port,
        log: log.clone(),
        max_connections: Some(setup.proxy_pool),
        signature: "pgbouncer".into(),
        detail: Some(detail),
    };
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

/// PgBouncer and the service hold a descriptor per client: lift the soft file limit towards the hard one.
fn raise_nofile(cmd: &mut Command) {
    // SAFETY: getrlimit/setrlimit are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max.min(65_536);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
}

fn start_service(
    dir: &Path,
    port: u16,
    db_port: u16,
    setup: &ServiceSetup,
    password: Option<&str>,
    detail: String,
    timeout: Duration,
) -> CliResult<Proc> {
    let bin = find_binary("stats-service", "STATSCTL_SERVICE_BIN", &[]).ok_or_else(|| {
        CliError::new("the `stats-service` binary was not found next to statsctl or on PATH")
            .hint("build it: cargo build -p stats-service (or set STATSCTL_SERVICE_BIN, or pass --no-service)")
    })?;
    ensure_port_free(port, "--service-port")?;
    let log = dir.join("stats-service.log");
    let mut cmd = Command::new(&bin);
    cmd.env("PORT", port.to_string())
        .env("BIND", "127.0.0.1")
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", db_port.to_string())
        .env("DB_USER", &setup.user)
        .env("DB_NAME", "stats")
        .env(
            "DB_MODE",
            if setup.per_request {
                "per-request"
            } else {
                "pool"
            },
        )
        .env("DB_POOL_SIZE", setup.pool_size.to_string())
        .env("DB_TIMEOUT_MS", "5000")
        .env_remove("DB_PASSWORD")
        .envs(password.map(|p| ("DB_PASSWORD", p)))
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .process_group(0);
    raise_nofile(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start `{}`: {e}", bin.display())))?;
    let proc = Proc {
        pid: child.id() as i32,
        port,
        log: log.clone(),
        max_connections: None,
        signature: "stats-service".into(),
        detail: Some(detail.clone()),
    };
    progress(format!(
        "starting stats-service on 127.0.0.1:{port} (pid {}, {detail})…",
        proc.pid
    ));
    let start = Instant::now();
    loop {
        if let Some((200, _)) = http_call(port, "GET", "/healthz", b"") {
            return Ok(proc);
        }
        if unsafe { libc::kill(proc.pid, 0) } != 0 {
            reap(proc.pid);
            return Err(CliError::new(format!(
                "stats-service exited during startup; its log says:\n{}",
                tail(&log)
            ))
            .hint(format!("see {}", log.display())));
        }
        if start.elapsed() > timeout {
            return Err(CliError::new(format!(
                "stats-service is not healthy after {}s:\n{}",
                timeout.as_secs(),
                tail(&log)
            ))
            .hint(format!(
                "see {}; `statsctl local down` stops what was started",
                log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A sample match (the stats-service test log) as match 1, so `/matches/1/stats` — the load-test target —
/// answers with a scoreboard. Left alone when match 1 already has events.
fn seed_match(port: u16) -> CliResult<()> {
    const SAMPLE: &str = include_str!("../../../stats-service/testdata/match.log");
    match http_call(port, "GET", "/matches/1/stats", b"") {
        Some((200, _)) => Ok(()),
        _ => match http_call(port, "POST", "/logs?match=1", SAMPLE.as_bytes()) {
            Some((200, _)) => {
                progress("logged a sample match as match 1: GET /matches/1/stats");
                Ok(())
            }
            other => Err(CliError::new(format!(
                "stats-service did not store the sample match: {other:?}"
            ))
            .hint("see the service's log (statsctl local status)")),
        },
    }
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn http_call(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

fn log_file(path: &Path) -> CliResult<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CliError::new(format!("cannot open log `{}`: {e}", path.display())))
}

fn ensure_port_free(port: u16, flag: &str) -> CliResult<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .map_err(|_| {
            CliError::new(format!(
                "port {port} on 127.0.0.1 is already in use by another program"
            ))
            .hint(format!(
                "stop that program, or choose another port with `{flag}`"
            ))
        })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Waits until the process answers HTTP on its port, or fails with its log's tail.
fn wait_http(p: &Proc, timeout: Duration) -> CliResult<()> {
    let start = Instant::now();
    loop {
        if let Ok(mut s) =
            TcpStream::connect_timeout(&([127, 0, 0, 1], p.port).into(), Duration::from_millis(500))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .is_ok()
            {
                let mut buf = [0u8; 12];
                if s.read(&mut buf)
                    .map(|n| buf[..n].starts_with(b"HTTP/"))
                    .unwrap_or(false)
                {
                    return Ok(());
                }
            }
        }
        if unsafe { libc::kill(p.pid, 0) } != 0 {
            return Err(CliError::new(format!(
                "the process exited during startup; its log says:\n{}",
                tail(&p.log)
            ))
            .hint(format!("see {}", p.log.display())));
        }
        if start.elapsed() > timeout {
            return Err(CliError::new(format!(
                "no answer on port {} after {}s",
                p.port,
                timeout.as_secs()
            ))
            .hint(format!(
                "see {}; `statsctl local down` stops what was started",
                p.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

fn down(g: &Global, dir: &Path) -> CliResult {
    let mut state = read_state(dir);
    // The service first (it holds connections), then PgBouncer; PostgreSQL: SIGINT is its "fast shutdown";
    // moto: SIGTERM.
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
    write_state(dir, &state).or_else(|_| Ok::<(), CliError>(()))?;
    status(g, dir)
}

/// Signals the process group, waits up to 15 s, then kills it.
fn stop(p: &Proc, signal: i32) {
    unsafe {
        // The process leads its own group (started with process_group(0)): signal the whole group so
        // children (postgres backends, moto workers) go too.
        if libc::kill(-p.pid, signal) != 0 {
            libc::kill(p.pid, signal);
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if unsafe { libc::kill(p.pid, 0) } != 0 {
            return;
        }
        reap(p.pid);
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe {
        libc::kill(-p.pid, libc::SIGKILL);
        libc::kill(p.pid, libc::SIGKILL);
    }
    reap(p.pid);
}

/// When `up` and `down` run in the same process (tests), the child is ours to reap.
fn reap(pid: i32) {
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
}
