//! `statsctl local up | status | down`: the local default — the moto AWS emulator and a throwaway PostgreSQL
//! (small max_connections, so exhaustion is real) on 127.0.0.1, tracked by a state file with their pids and
//! stopped only by those pids.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::context::Global;
use crate::exit::{CliError, CliResult, OK};
use crate::output::{self, progress};

#[derive(Subcommand, Debug)]
pub enum LocalCommand {
    /// Start the AWS emulator and PostgreSQL (what already runs is left alone)
    Up(UpArgs),
    /// Show what runs where
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
    #[arg(long, default_value_t = 55432, env = "STATSCTL_PG_PORT")]
    pub pg_port: u16,
    /// PostgreSQL max_connections (small on purpose: connection exhaustion should be reproducible)
    #[arg(long, default_value_t = 30)]
    pub max_connections: u32,
    /// Seconds to wait for each process to become ready
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// What `local up` started, persisted in `<dir>/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalState {
    pub moto: Option<Proc>,
    pub postgres: Option<Proc>,
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
}

#[derive(Debug, Serialize)]
struct StatusReport {
    dir: PathBuf,
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
    fs::read(state_path(dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn write_state(dir: &Path, s: &LocalState) -> CliResult<()> {
    let tmp = dir.join("state.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(s).map_err(|e| CliError::new(e.to_string()))?)?;
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
    fs::create_dir_all(&dir).map_err(|e| CliError::new(format!("cannot create `{}`: {e}", dir.display())))?;
    let mut state = read_state(&dir);
    let deadline = Duration::from_secs(args.timeout);

    // moto
    match &state.moto {
        Some(p) if is_ours(p) => progress(format!("moto already running (pid {}, port {})", p.pid, p.port)),
        _ => {
            let moto = which("moto_server").ok_or_else(|| {
                CliError::new("`moto_server` is not installed").hint("install the AWS emulator: pip install 'moto[server]'")
            })?;
            ensure_port_free(args.moto_port, "--moto-port")?;
            let log = dir.join("moto.log");
            let child = Command::new(&moto)
                .args(["-H", "127.0.0.1", "-p", &args.moto_port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file(&log)?)
                .stderr(log_file(&log)?)
                .process_group(0)
                .spawn()
                .map_err(|e| CliError::new(format!("cannot start `{}`: {e}", moto.display())))?;
            let proc = Proc { pid: child.id() as i32, port: args.moto_port, log: log.clone(), max_connections: None, signature: "moto_server".into() };
            state.moto = Some(proc.clone());
            write_state(&dir, &state)?;
            progress(format!("starting moto on 127.0.0.1:{} (pid {})…", args.moto_port, proc.pid));
            wait_http(&proc, deadline)?;
        }
    }

    // PostgreSQL
    match &state.postgres {
        Some(p) if is_ours(p) => progress(format!("postgres already running (pid {}, port {})", p.pid, p.port)),
        _ => {
            let proc = start_postgres(&dir, args.pg_port, args.max_connections, deadline).await?;
            state.postgres = Some(proc);
            write_state(&dir, &state)?;
        }
    }
    status(g, &dir)
}

fn log_file(path: &Path) -> CliResult<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CliError::new(format!("cannot open log `{}`: {e}", path.display())))
}

fn ensure_port_free(port: u16, flag: &str) -> CliResult<()> {
    TcpListener::bind(("127.0.0.1", port)).map(drop).map_err(|_| {
        CliError::new(format!("port {port} on 127.0.0.1 is already in use by another program"))
            .hint(format!("stop that program, or choose another port with `{flag}`"))
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
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
        if let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], p.port).into(), Duration::from_millis(500)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_ok() {
                let mut buf = [0u8; 12];
                if s.read(&mut buf).map(|n| buf[..n].starts_with(b"HTTP/")).unwrap_or(false) {
                    return Ok(());
                }
            }
        }
        if unsafe { libc::kill(p.pid, 0) } != 0 {
            return Err(CliError::new(format!("the process exited during startup; its log says:\n{}", tail(&p.log)))
                .hint(format!("see {}", p.log.display())));
        }
        if start.elapsed() > timeout {
            return Err(CliError::new(format!("no answer on port {} after {}s", p.port, timeout.as_secs()))
                .hint(format!("see {}; `statsctl local down` stops what was started", p.log.display())));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The directory with `initdb` and `postgres`: STATSCTL_PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH.
fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STATSCTL_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    which("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
}

/// PostgreSQL refuses to run as root: when we are root, run it as `postgres` (or `nobody`).
fn pg_run_as() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let cname = std::ffi::CString::new(name).ok()?;
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    None
}

fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn chown_tree(path: &Path, ids: Option<(u32, u32)>) -> CliResult<()> {
    let Some((uid, gid)) = ids else { return Ok(()) };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .map_err(|e| CliError::new(format!("cannot hand `{}` to the postgres user: {e}", p.display())))?;
        if p.is_dir() && !p.is_symlink() {
            for entry in fs::read_dir(&p)?.flatten() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

async fn start_postgres(dir: &Path, port: u16, max_connections: u32, timeout: Duration) -> CliResult<Proc> {
    let bin = pg_bin_dir().ok_or_else(|| {
        CliError::new("PostgreSQL server binaries (initdb, postgres) are not installed")
            .hint("install them: apt-get install postgresql (or set STATSCTL_PG_BIN to their directory)")
    })?;
    ensure_port_free(port, "--pg-port")?;
    let pg_dir = dir.join("pg");
    let data = pg_dir.join("data");
    fs::create_dir_all(&pg_dir)?;
    let run_as = pg_run_as();
    if run_as.is_some() {
        // The postgres user must be able to reach its directory.
        use std::os::unix::fs::PermissionsExt;
        for d in [dir, pg_dir.as_path()] {
            let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o755));
        }
    }
    let log = pg_dir.join("postgres.log");
    log_file(&log)?;
    chown_tree(&pg_dir, run_as)?;
    if !data.join("PG_VERSION").is_file() {
        progress(format!("initialising a PostgreSQL cluster in {}…", data.display()));
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        as_user(&mut initdb, run_as);
        let status = initdb.status().map_err(|e| CliError::new(format!("cannot run initdb: {e}")))?;
        if !status.success() {
            return Err(CliError::new(format!("initdb failed:\n{}", tail(&log))).hint(format!("see {}", log.display())));
        }
    }
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off"])
        .args(["-c", &format!("max_connections={max_connections}")])
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .process_group(0);
    as_user(&mut cmd, run_as);
    let child = cmd.spawn().map_err(|e| CliError::new(format!("cannot start postgres: {e}")))?;
    let proc = Proc { pid: child.id() as i32, port, log: log.clone(), max_connections: Some(max_connections), signature: "postgres".into() };
    progress(format!("starting PostgreSQL on 127.0.0.1:{port} (pid {}, max_connections {max_connections})…", proc.pid));

    // Ready when it accepts a query; then create the application role and database the stack uses.
    let start = Instant::now();
    let conn_str = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2");
    loop {
        match tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let task = tokio::spawn(conn);
                let setup = "DO $$ BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stats') THEN CREATE ROLE stats LOGIN; END IF;
                  END $$;";
                client.batch_execute(setup).await.map_err(|e| CliError::new(format!("cannot create role `stats`: {e}")))?;
                let exists = client
                    .query_opt("SELECT 1 FROM pg_database WHERE datname = 'stats'", &[])
                    .await
                    .map_err(|e| CliError::new(format!("cannot query databases: {e}")))?;
                if exists.is_none() {
                    client
                        .batch_execute("CREATE DATABASE stats OWNER stats")
                        .await
                        .map_err(|e| CliError::new(format!("cannot create database `stats`: {e}")))?;
                }
                drop(client);
                let _ = task.await;
                return Ok(proc);
            }
            Err(_) if start.elapsed() < timeout && unsafe { libc::kill(proc.pid, 0) } == 0 => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => {
                return Err(CliError::new(format!("PostgreSQL did not become ready: {e}\n{}", tail(&log)))
                    .hint(format!("see {}; `statsctl local down` stops what was started", log.display())))
            }
        }
    }
}

fn status(g: &Global, dir: &Path) -> CliResult {
    let state = read_state(dir);
    let component = |name: &'static str, p: &Option<Proc>, endpoint: &dyn Fn(u16) -> String| match p {
        Some(p) if is_ours(p) => ComponentStatus {
            name,
            state: "running",
            pid: Some(p.pid),
            endpoint: Some(endpoint(p.port)),
            log: Some(p.log.clone()),
            max_connections: p.max_connections,
        },
        Some(p) => ComponentStatus { name, state: "stopped (stale pid file)", pid: Some(p.pid), endpoint: None, log: Some(p.log.clone()), max_connections: None },
        None => ComponentStatus { name, state: "stopped", pid: None, endpoint: None, log: None, max_connections: None },
    };
    let report = StatusReport {
        dir: dir.to_path_buf(),
        components: vec![
            component("moto", &state.moto, &|port| format!("http://127.0.0.1:{port}")),
            component("postgres", &state.postgres, &|port| format!("postgres://postgres@127.0.0.1:{port}/postgres")),
        ],
    };
    output::emit(g.output, &report, |s| {
        s.push_str(&format!("{:<10} {:<26} {:<8} {}\n", "COMPONENT", "STATE", "PID", "ENDPOINT"));
        for c in &report.components {
            let state = if c.state == "running" { output::green(c.state) } else { output::dim(c.state) };
            let pad = 26usize.saturating_sub(c.state.chars().count());
            s.push_str(&format!(
                "{:<10} {}{} {:<8} {}{}\n",
                c.name,
                state,
                " ".repeat(pad),
                c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                c.endpoint.clone().unwrap_or_else(|| "-".into()),
                c.max_connections.map(|m| format!("  (max_connections {m})")).unwrap_or_default()
            ));
        }
    })?;
    Ok(OK)
}

fn down(g: &Global, dir: &Path) -> CliResult {
    let mut state = read_state(dir);
    // PostgreSQL: SIGINT is its "fast shutdown". moto: SIGTERM.
    for (slot, signal) in [(&mut state.postgres, libc::SIGINT), (&mut state.moto, libc::SIGTERM)] {
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
