//! The local PostgreSQL: the account it runs as when statsctl is root (and whether that account can reach the
//! state directory), initdb with password authentication, the generated password of every role kept in a standard
//! pgpass file, and the roles and database the stack uses.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use statsctl_core::model::ResolvedStack;
use statsctl_core::pgpass;

use super::service::ServiceSetup;
use super::supervisor::{log_file, tail, which, Proc};
use crate::exit::{CliError, CliResult};
use crate::output::progress;

/// The account PostgreSQL and PgBouncer run as when statsctl runs as root (PostgreSQL refuses root).
#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
}

/// A directory on the way to the state directory, as far as entering it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct DirAccess {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The first directory in `chain` that `uid` (member of `groups`) may not enter: the owner's, the group's or
/// everyone else's search bit decides, whichever class the account falls in first. Pure.
pub fn first_closed<'a>(chain: &'a [DirAccess], uid: u32, groups: &[u32]) -> Option<&'a DirAccess> {
    chain.iter().find(|d| {
        let bit = if d.uid == uid {
            0o100
        } else if groups.contains(&d.gid) {
            0o010
        } else {
            0o001
        };
        d.mode & bit == 0
    })
}

/// Refuses, before anything is created, a state directory below a directory `account` cannot enter: PostgreSQL
/// would fail in initdb with "Permission denied". Directories that do not exist yet are created enterable.
pub(super) fn check_reachable(dir: &Path, account: &RunAs) -> CliResult<()> {
    use std::os::unix::fs::MetadataExt;
    let abs = std::path::absolute(dir)
        .map_err(|e| CliError::new(format!("cannot resolve `{}`: {e}", dir.display())))?;
    // The state directory itself is statsctl's: it is made enterable in `create_state_dir`.
    let chain: Vec<DirAccess> = abs
        .ancestors()
        .skip(1)
        .filter_map(|d| {
            let m = fs::metadata(d).ok()?;
            Some(DirAccess {
                path: d.to_path_buf(),
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match first_closed(&chain, account.uid, &account.groups) {
        None => Ok(()),
        Some(d) => Err(CliError::new(format!(
            "PostgreSQL could not reach its data under `{}`: the `{}` account may not enter `{}` (mode {:04o}, owner uid {})",
            abs.display(),
            account.name,
            d.path.display(),
            d.mode & 0o7777,
            d.uid
        ))
        .hint(format!(
            "statsctl runs as root and PostgreSQL refuses to, so it runs as `{}`: let it through with `chmod o+x {}` (enter, not list), or choose a --dir it can reach, e.g. under /var/tmp",
            account.name,
            d.path.display()
        ))),
    }
}

/// The local cluster's roles: the superuser, `stats` (owner of the `stats` database), and a login role, member of
/// `stats`, for every database user the stack names — each with its generated password. Run on every `up`, so
/// roles the stack added since are created and every password matches the pgpass file.
pub(super) async fn ensure_roles(
    dir: &Path,
    pg_port: u16,
    roles: &[String],
    passwords: &Passwords,
) -> CliResult<()> {
    let (client, task) = connect_when_ready(
        &local_config(pg_port, ADMIN, "postgres", &passwords[ADMIN]),
        None,
        "PostgreSQL",
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| {
        if e.message.contains("password authentication failed") {
            e.hint(format!(
                "`{}` does not hold this cluster's superuser password (edited, or copied from another one); its data is throwaway: `statsctl local down --dir {1}`, remove `{1}/pg`, then `statsctl local up` again",
                pgpass_path(dir).display(),
                dir.display()
            ))
        } else {
            e.hint("`statsctl local status` shows what runs")
        }
    })?;
    // `stats` first: the others join it.
    let order = std::iter::once(OWNER).chain(
        roles
            .iter()
            .map(String::as_str)
            .filter(|r| *r != OWNER && *r != ADMIN),
    );
    for role in order {
        // Only a SCRAM verifier crosses the connection, so the password itself can never show up in the
        // server's log (which logs a failing statement) or in an error message.
        let verifier = postgres_protocol::password::scram_sha_256(passwords[role].as_bytes());
        let exists = client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(|e| CliError::new(format!("cannot query roles: {e}", e = pg_error(&e))))?
            .is_some();
        let sql = match (exists, role) {
            (true, _) => format!("ALTER ROLE \"{role}\" LOGIN PASSWORD '{verifier}'"),
            (false, OWNER) => format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{verifier}'"),
            (false, _) => {
                format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{verifier}' IN ROLE \"{OWNER}\"")
            }
        };
        client.batch_execute(&sql).await.map_err(|e| {
            CliError::new(format!(
                "cannot create or update role `{role}`: {e}",
                e = pg_error(&e)
            ))
        })?;
    }
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'stats'", &[])
        .await
        .map_err(|e| CliError::new(format!("cannot query databases: {e}", e = pg_error(&e))))?;
    if exists.is_none() {
        client
            .batch_execute("CREATE DATABASE stats OWNER stats")
            .await
            .map_err(|e| {
                CliError::new(format!(
                    "cannot create database `stats`: {e}",
                    e = pg_error(&e)
                ))
            })?;
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// A driver error with what the server said: tokio-postgres shows only "db error" for a server's refusal.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => db.to_string(),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}

/// The cluster's superuser, whose password initdb sets.
pub(super) const ADMIN: &str = "postgres";

/// Owner of the `stats` database; every stack user is a member.
pub(super) const OWNER: &str = "stats";

/// Generated passwords by role, as recorded in `<dir>/pgpass`.
pub(super) type Passwords = BTreeMap<String, String>;

/// The roles the local cluster has: the superuser, the database owner and every database user the stack names,
/// each checked to be a plain identifier (it is written into SQL and PgBouncer's auth_file).
pub(super) fn local_roles(stack: Option<&ResolvedStack>) -> CliResult<Vec<String>> {
    let mut roles = vec![ADMIN.to_string(), OWNER.to_string()];
    if let Some(stack) = stack {
        roles.extend(ServiceSetup::database_users(&stack.spec));
    }
    roles.sort();
    roles.dedup();
    for role in &roles {
        if role.is_empty() || !role.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(
                CliError::new(format!("database user `{role}` is not a plain identifier"))
                    .hint("use letters, digits and `_` in `database.user`"),
            );
        }
    }
    Ok(roles)
}

pub(crate) fn pgpass_path(dir: &Path) -> PathBuf {
    dir.join("pgpass")
}

/// The passwords recorded by an earlier `up`: the first line for each role in `<dir>/pgpass`.
pub(super) fn recorded_passwords(dir: &Path) -> Passwords {
    let text = fs::read_to_string(pgpass_path(dir)).unwrap_or_default();
    let mut out = Passwords::new();
    for e in pgpass::parse(&text) {
        if e.user != "*" {
            out.entry(e.user).or_insert(e.password);
        }
    }
    out
}

/// A new password: 24 bytes from the kernel's random source, as hex (nothing a pgpass or auth_file must escape).
pub(super) fn new_password() -> CliResult<String> {
    let mut bytes = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| CliError::new(format!("cannot read random bytes for a password: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner may read (mode 0600, handed to `owner` when given), replacing it atomically.
pub(super) fn write_private(
    path: &Path,
    contents: &str,
    owner: Option<(u32, u32)>,
) -> CliResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CliError::new(format!("cannot write `{}`: {e}", tmp.display())))?;
    f.write_all(contents.as_bytes())?;
    drop(f);
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
    }
    fs::rename(&tmp, path)?;
    Ok(())
}

/// `<dir>/pgpass`: a line per role for PostgreSQL's and PgBouncer's ports (`PGPASSFILE` for psql and libpq
/// tools, `database.sql.passfile` for preflight). Mode 0600.
pub(super) fn write_pgpass(dir: &Path, ports: &[u16], passwords: &Passwords) -> CliResult<()> {
    let mut text = String::from(
        "# statsctl local: the local PostgreSQL's and PgBouncer's roles (host:port:database:user:password)\n",
    );
    for port in ports {
        for (user, password) in passwords {
            let entry = pgpass::Entry {
                host: "127.0.0.1".into(),
                port: port.to_string(),
                database: "*".into(),
                user: user.clone(),
                password: password.clone(),
            };
            text.push_str(&entry.line());
            text.push('\n');
        }
    }
    write_private(&pgpass_path(dir), &text, None)
}

/// A connection to the local PostgreSQL or PgBouncer as `user`.
pub(super) fn local_config(
    port: u16,
    user: &str,
    dbname: &str,
    password: &str,
) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname(dbname)
        .password(password)
        .connect_timeout(Duration::from_secs(2));
    c
}

/// Connects as soon as the process accepts a query (`SELECT 1`), retrying while it starts; fails with its log's
/// tail when it exits or `timeout` passes.
pub(super) async fn connect_when_ready(
    config: &tokio_postgres::Config,
    p: Option<&Proc>,
    what: &str,
    timeout: Duration,
) -> CliResult<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let start = Instant::now();
    loop {
        let err = match config.connect(tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                match client.simple_query("SELECT 1").await {
                    Ok(_) => return Ok((client, task)),
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        let exited = p.is_some_and(|p| unsafe { libc::kill(p.pid, 0) } != 0);
        // A refused password will not be accepted later: no point waiting.
        let refused = err
            .as_db_error()
            .is_some_and(|e| e.code() == &tokio_postgres::error::SqlState::INVALID_PASSWORD);
        if start.elapsed() >= timeout || exited || refused {
            let Some(p) = p else {
                return Err(CliError::new(format!(
                    "cannot connect to {what}: {}",
                    pg_error(&err)
                )));
            };
            return Err(CliError::new(format!(
                "{what} did not become ready: {}\n{}",
                pg_error(&err),
                tail(&p.log)
            ))
            .hint(format!(
                "see {}; `statsctl local down` stops what was started",
                p.log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The directory with `initdb` and `postgres`: STATSCTL_PG_BIN, the newest /usr/lib/postgresql/*/bin, or PATH.
pub(super) fn pg_bin_dir() -> Option<PathBuf> {
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
pub(super) fn pg_run_as() -> Option<RunAs> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let cname = std::ffi::CString::new(name).ok()?;
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some(RunAs {
                name: name.to_string(),
                uid,
                gid,
                groups: account_groups(&cname, gid),
            });
        }
    }
    None
}

/// The groups an account is a member of (its primary group first), as the kernel will see them after `setgid`.
pub(super) fn account_groups(name: &std::ffi::CStr, gid: u32) -> Vec<u32> {
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many and updates `n`.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n <= before || n > 65_536 {
            return vec![gid];
        }
    }
}

pub(super) fn ids(account: Option<&RunAs>) -> Option<(u32, u32)> {
    account.map(|a| (a.uid, a.gid))
}

pub(super) fn as_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

pub(super) fn chown_tree(path: &Path, ids: Option<(u32, u32)>) -> CliResult<()> {
    let Some((uid, gid)) = ids else { return Ok(()) };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(|e| {
            CliError::new(format!(
                "cannot hand `{}` to the postgres user: {e}",
                p.display()
            ))
        })?;
        if p.is_dir() && !p.is_symlink() {
            for entry in fs::read_dir(&p)?.flatten() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

pub(super) async fn start_postgres(
    bin: &Path,
    dir: &Path,
    port: u16,
    max_connections: u32,
    account: Option<&RunAs>,
    admin_password: &str,
    timeout: Duration,
) -> CliResult<Proc> {
    use std::os::unix::fs::PermissionsExt;
    let pg_dir = dir.join("pg");
    let data = pg_dir.join("data");
    fs::create_dir_all(&pg_dir)?;
    let run_as = ids(account);
    let log = pg_dir.join("postgres.log");
    log_file(&log)?;
    chown_tree(&pg_dir, run_as)?;
    // Only PostgreSQL's account may look inside (its log, initdb's password file).
    fs::set_permissions(&pg_dir, fs::Permissions::from_mode(0o700))?;
    if !data.join("PG_VERSION").is_file() {
        progress(format!(
            "initialising a PostgreSQL cluster in {}…",
            data.display()
        ));
        // Password authentication for every connection (`-A scram-sha-256`), the superuser's password read from
        // a file only PostgreSQL's account can read, removed right after.
        let pwfile = pg_dir.join("initdb.pw");
        write_private(&pwfile, &format!("{admin_password}\n"), run_as)?;
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", ADMIN, "-A", "scram-sha-256", "--pwfile"])
            .arg(&pwfile)
            .args(["-E", "UTF8", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?);
        as_user(&mut initdb, run_as);
        let status = initdb.status();
        let _ = fs::remove_file(&pwfile);
        let status = status.map_err(|e| CliError::new(format!("cannot run initdb: {e}")))?;
        if !status.success() {
            return Err(CliError::new(format!("initdb failed:\n{}", tail(&log)))
                .hint(format!("see {}", log.display())));
        }
    }
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
        ])
        .args(["-c", &format!("max_connections={max_connections}")])
        .stdin(Stdio::null())
        .stdout(log_file(&log)?)
        .stderr(log_file(&log)?)
        .process_group(0);
    as_user(&mut cmd, run_as);
    let child = cmd
        .spawn()
        .map_err(|e| CliError::new(format!("cannot start postgres: {e}")))?;
    let proc = Proc {
        pid: child.id() as i32,
        port,
        log: log.clone(),
        max_connections: Some(max_connections),
        signature: "postgres".into(),
        detail: None,
    };
    progress(format!(
        "starting PostgreSQL on 127.0.0.1:{port} (pid {}, max_connections {max_connections})…",
        proc.pid
    ));

    // Ready when it accepts a query; `ensure_roles` then creates the roles and database the stack uses.
    let (client, task) = connect_when_ready(
        &local_config(port, ADMIN, "postgres", admin_password),
        Some(&proc),
        "PostgreSQL",
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

    #[test]
    fn passwords_round_trip_through_a_private_pgpass_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let passwords: Passwords = [("postgres", "p1"), ("stats", "p2"), ("stats_api", "p3")]
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        write_pgpass(dir.path(), &[25432, 26432], &passwords).unwrap();
        assert_eq!(recorded_passwords(dir.path()), passwords);
        let path = pgpass_path(dir.path());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        for port in [25432, 26432] {
            assert_eq!(
                pgpass::lookup(&text, "127.0.0.1", port, "stats", "stats_api").as_deref(),
                Some("p3")
            );
        }
        // Rewritten in place, still private.
        write_pgpass(dir.path(), &[25432], &passwords).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(recorded_passwords(dir.path()), passwords);
    }

    #[test]
    fn generated_passwords_are_long_distinct_and_need_no_escaping() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn without_a_stack_the_cluster_has_its_superuser_and_database_owner() {
        assert_eq!(local_roles(None).unwrap(), [ADMIN, OWNER]);
    }

    /// (case, function's user, service's user, roles or the user refused)
    type RolesCase = (
        &'static str,
        &'static str,
        &'static str,
        Result<Vec<&'static str>, &'static str>,
    );

    #[test]
    fn every_database_user_the_stack_names_gets_a_role_if_it_is_a_plain_identifier() {
        let stack = |api: &str, svc: &str| {
            let text = format!(
                r#"
stack: t
region: eu-west-1
network: {{ existing: {{ vpc_id: vpc-1, subnet_ids: [subnet-a, subnet-b] }} }}
database:
  cluster_id: db
  engine_version: "15.4"
  instance_class: db.t4g.medium
  database_name: stats
  master_username: admin
  credentials_secret: s
functions:
  stats-api:
    artifact: x
    runtime: python3.12
    handler: app.handler
    database: {{ via: direct, user: '{api}' }}
service:
  name: svc
  cluster: c
  image: i
  cpu: 256
  memory_mb: 512
  desired_count: 1
  max_count: 2
  port: 8080
  database: {{ via: direct, user: '{svc}', pool_size: 5 }}
event: {{ expected_viewers: 100, poll_interval: 15s, request_duration: 120ms, spike_factor: 3 }}
"#
            );
            statsctl_core::loader::load_str(Path::new("t.yaml"), &text, None, &|_: &str| None)
                .unwrap_or_else(|d| panic!("{d}"))
        };
        let cases: Vec<RolesCase> = vec![
            (
                "two users",
                "stats_api",
                "svc1",
                Ok(vec!["postgres", "stats", "stats_api", "svc1"]),
            ),
            (
                "one user twice",
                "api",
                "api",
                Ok(vec!["api", "postgres", "stats"]),
            ),
            (
                "the owner itself",
                "stats",
                "api",
                Ok(vec!["api", "postgres", "stats"]),
            ),
            ("a dash", "stats-api", "svc", Err("stats-api")),
            ("a quote", "api", "x\"y", Err("x\"y")),
            ("a space", "a b", "svc", Err("a b")),
        ];
        for (case, api, svc, want) in cases {
            let got = local_roles(Some(&stack(api, svc)));
            match (got, want) {
                (Ok(roles), Ok(want)) => assert_eq!(roles, want, "{case}"),
                (Err(e), Err(user)) => {
                    let text = e.to_string();
                    assert!(
                        text.contains(&format!("database user `{user}` is not a plain identifier"))
                            && text.contains("hint: use letters, digits and `_`"),
                        "{case}: {text}"
                    );
                }
                (got, want) => panic!("{case}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn first_closed_follows_the_owner_group_other_classes() {
        let dir = |path: &str, mode: u32, uid: u32, gid: u32| DirAccess {
            path: PathBuf::from(path),
            mode,
            uid,
            gid,
        };
        // (case, chain, expected first closed directory); the account is uid 101 in groups 104 and 110.
        let cases: Vec<(&str, Vec<DirAccess>, Option<&str>)> = vec![
            (
                "world-enterable path",
                vec![dir("/", 0o755, 0, 0), dir("/tmp", 0o1777, 0, 0)],
                None,
            ),
            (
                "mktemp -d as root",
                vec![
                    dir("/", 0o755, 0, 0),
                    dir("/tmp", 0o1777, 0, 0),
                    dir("/tmp/tmp.x", 0o700, 0, 0),
                ],
                Some("/tmp/tmp.x"),
            ),
            (
                "enter-only for others is enough",
                vec![dir("/srv", 0o711, 0, 0)],
                None,
            ),
            (
                "group member: the group bit decides",
                vec![dir("/srv/g", 0o750, 0, 110)],
                None,
            ),
            (
                "group member without the group bit, even if others may enter",
                vec![dir("/srv/g", 0o701, 0, 104)],
                Some("/srv/g"),
            ),
            (
                "owner: the owner bit decides",
                vec![dir("/home/pg", 0o700, 101, 104)],
                None,
            ),
            (
                "owner without the owner bit",
                vec![dir("/home/pg", 0o077, 101, 0)],
                Some("/home/pg"),
            ),
            (
                "the first closed one is named",
                vec![dir("/a", 0o700, 0, 0), dir("/a/b", 0o700, 0, 0)],
                Some("/a"),
            ),
            ("nothing exists yet", vec![], None),
        ];
        for (case, chain, want) in cases {
            let got = first_closed(&chain, 101, &[104, 110]).map(|d| d.path.to_str().unwrap());
            assert_eq!(got, want, "{case}");
        }
    }
}
