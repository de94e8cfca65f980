//! Process supervision for `statsctl local`: the state file of what runs (pids, ports, logs), spawning into a
//! process group with a log, readiness waits bounded by a timeout, and stopping by recorded pid only — never a
//! process whose command line no longer matches what was started.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::exit::{CliError, CliResult};

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

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

/// The recorded state; empty when there is none (or it cannot be read: then nothing is ours to stop).
pub fn read_state(dir: &Path) -> LocalState {
    fs::read(state_path(dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Replaces the state file atomically, so a reader never sees half of it.
pub fn write_state(dir: &Path, s: &LocalState) -> CliResult<()> {
    let tmp = dir.join("state.json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(s).map_err(|e| CliError::new(e.to_string()))?,
    )?;
    fs::rename(tmp, state_path(dir))?;
    Ok(())
}

/// True while `pid` exists (signal 0 checks without signalling).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// True when `pid` is alive and its command line contains `signature`.
pub fn is_ours(p: &Proc) -> bool {
    if !alive(p.pid) {
        return false;
    }
    match fs::read(format!("/proc/{}/cmdline", p.pid)) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(&p.signature),
        // No /proc (not Linux): trust the pid.
        Err(_) => true,
    }
}

/// Sends `signal` to a process (PgBouncer rereads its auth_file on SIGHUP).
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: a plain kill(2) on a pid this state file recorded and `is_ours` confirmed.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Spawns `cmd` as the leader of its own process group (so `stop` reaches its children too) with stdin closed
/// and stdout and stderr appended to `log`; the pid is recorded with `signature` to recognise it later.
pub fn spawn(
    cmd: &mut Command,
    log: &Path,
    port: u16,
    signature: &str,
    what: &Path,
) -> CliResult<Proc> {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log_file(log)?)
        .stderr(log_file(log)?)
        .process_group(0)
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start `{}`: {e}", what.display())))?;
    Ok(Proc {
        // Pids fit in i32 (pid_t); std hands them out as u32.
        pid: child.id() as i32,
        port,
        log: log.to_path_buf(),
        max_connections: None,
        signature: signature.into(),
        detail: None,
    })
}

/// Signals the process group, waits up to 15 s, then kills it.
pub fn stop(p: &Proc, signal: i32) {
    // SAFETY: plain kill(2) calls on a recorded pid whose command line was checked by the caller.
    unsafe {
        // The process leads its own group (started with process_group(0)): signal the whole group so
        // children (postgres backends, moto workers) go too.
        if libc::kill(-p.pid, signal) != 0 {
            libc::kill(p.pid, signal);
        }
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if !alive(p.pid) {
            return;
        }
        reap(p.pid);
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: as above.
    unsafe {
        libc::kill(-p.pid, libc::SIGKILL);
        libc::kill(p.pid, libc::SIGKILL);
    }
    reap(p.pid);
}

/// When `up` and `down` run in the same process (tests), the child is ours to reap.
pub fn reap(pid: i32) {
    // SAFETY: WNOHANG never blocks; a pid that is not our child just returns an error.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
}

/// PgBouncer and the service hold a descriptor per client: lift the soft file limit towards the hard one.
pub fn raise_nofile(cmd: &mut Command) {
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

/// Creates the state directory. When PostgreSQL and PgBouncer run as another account (`other_account`), the
/// directories created here and the state directory itself get `o+x` (others may enter them; nothing else is
/// added); what lies above was checked by `postgres::check_reachable`.
pub fn create_state_dir(dir: &Path, other_account: bool) -> CliResult<()> {
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

pub fn log_file(path: &Path) -> CliResult<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| CliError::new(format!("cannot open log `{}`: {e}", path.display())))
}

pub fn ensure_port_free(port: u16, flag: &str) -> CliResult<()> {
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

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A program: `env_var` when set, next to this binary, on PATH, then the `extra` places.
pub fn find_binary(name: &str, env_var: &str, extra: &[&str]) -> Option<PathBuf> {
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

/// The last lines of a log, to show why a process did not start.
pub fn tail(path: &Path) -> String {
    last_lines(&fs::read_to_string(path).unwrap_or_default(), 8)
}

/// The last `n` lines of `text`. Pure.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until the process answers HTTP on its port, or fails with its log's tail.
pub fn wait_http(p: &Proc, timeout: Duration) -> CliResult<()> {
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
        if !alive(p.pid) {
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

/// One HTTP/1.1 request on its own connection to 127.0.0.1: (status, body). Bounded by a connect and a read
/// timeout.
pub fn http_call(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    parse_answer(&out)
}

/// `HTTP/1.1 200 OK\r\n…\r\n\r\nbody` → (200, body). Pure.
fn parse_answer(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    type AnswerCase = (&'static [u8], Option<(u16, &'static str)>);

    #[test]
    fn answers_are_read_as_status_and_body() {
        // (answer, status and body)
        let cases: Vec<AnswerCase> = vec![
            (
                b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n{\"x\":1}",
                Some((200, "{\"x\":1}")),
            ),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", Some((404, ""))),
            (b"HTTP/1.1 500 Oops\r\n", Some((500, ""))),
            (b"HTTP/1.1 abc\r\n\r\n", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            let got = parse_answer(bytes);
            assert_eq!(
                got.as_ref().map(|(s, b)| (*s, b.as_str())),
                want,
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_log_tail_is_its_last_lines() {
        let cases = [
            ("", 8, ""),
            ("a\nb\nc", 8, "a\nb\nc"),
            ("a\nb\nc\n", 2, "b\nc"),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10",
                8,
                "3\n4\n5\n6\n7\n8\n9\n10",
            ),
        ];
        for (text, n, want) in cases {
            assert_eq!(last_lines(text, n), want, "{text:?}");
        }
    }

    #[test]
    fn the_state_file_round_trips_and_a_missing_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_state(dir.path()).moto.is_none());
        let p = Proc {
            pid: 42,
            port: 4566,
            log: dir.path().join("moto.log"),
            max_connections: None,
            signature: "moto_server".into(),
            detail: Some("d".into()),
        };
        let state = LocalState {
            moto: Some(p),
            ..LocalState::default()
        };
        write_state(dir.path(), &state).unwrap();
        let back = read_state(dir.path());
        let moto = back.moto.unwrap();
        assert_eq!(
            (moto.pid, moto.port, moto.signature.as_str()),
            (42, 4566, "moto_server")
        );
        assert!(back.postgres.is_none() && back.service.is_none());
        // A state file from before PgBouncer and the service existed still reads.
        fs::write(
            dir.path().join("state.json"),
            r#"{"moto":null,"postgres":{"pid":7,"port":25432,"log":"x","signature":"postgres"}}"#,
        )
        .unwrap();
        assert_eq!(read_state(dir.path()).postgres.unwrap().pid, 7);
    }

    #[test]
    fn a_process_whose_command_line_does_not_match_is_not_ours() {
        let me = Proc {
            pid: std::process::id() as i32,
            port: 0,
            log: PathBuf::new(),
            max_connections: None,
            signature: "no-such-program-signature".into(),
            detail: None,
        };
        assert!(!is_ours(&me));
    }
}
