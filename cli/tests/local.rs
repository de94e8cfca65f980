//! `statsctl local up | status | down` against the real moto and PostgreSQL binaries.

mod harness;

use std::net::TcpStream;
use std::time::Duration;

use harness::*;

fn alive(pid: i64) -> bool {
    // A zombie (state Z) has exited; anything else listed in /proc is still running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

fn status(env: &LocalAws) -> serde_json::Value {
    let mut c = statsctl();
    c.args(["local", "status", "--output", "json", "--dir"])
        .arg(env.dir.path().join("local"));
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

#[test]
fn up_is_idempotent_and_down_leaves_nothing_running() {
    let env = LocalAws::start_opts(25, true, &[]);
    let s = status(&env);
    let comps = s["components"].as_array().unwrap();
    let names: Vec<&str> = comps.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["moto", "postgres", "pgbouncer", "stats-service"]);
    let mut pids = vec![];
    for c in comps {
        assert_eq!(c["state"], "running", "{s}");
        pids.push(c["pid"].as_i64().unwrap());
    }
    assert_eq!(comps[1]["max_connections"], 25);
    // PgBouncer's pool is max_connections × the proxy's MaxConnectionsPercent (90%), as RDS Proxy sizes it.
    assert_eq!(comps[2]["max_connections"], 22);
    let detail = comps[3]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("via PgBouncer :{}", env.pgbouncer_port))
            && detail.contains("pool of 5")
            && detail.contains("stats_service"),
        "{detail}"
    );
    // All listen where they say; the service answers with the sample match it was seeded with.
    for port in [
        env.moto_port,
        env.pg_port,
        env.pgbouncer_port,
        env.service_port,
    ] {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
            .expect("listening");
    }
    let board = http_get(env.service_port, "/matches/1/stats");
    assert!(
        board.starts_with("HTTP/1.1 200") && board.contains("de_overpass"),
        "{board}"
    );

    // A second `up` starts nothing new.
    let r = env.local_up(25, true, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    for what in [
        "moto already running",
        "postgres already running",
        "pgbouncer already running",
        "stats-service already running",
    ] {
        assert!(r.stderr.contains(what), "{what}: {r:?}");
    }
    let s2 = status(&env);
    let pids2: Vec<i64> = s2["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids, pids2);

    // The stack now says: straight to PostgreSQL, a connection per request. Only the service restarts.
    let r = env.local_up(
        25,
        true,
        &[
            ("STATSCTL_LOCAL_SERVICE_VIA", "direct"),
            ("STATSCTL_LOCAL_SERVICE_CONNECTIONS", "per_request"),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("restarting stats-service"), "{r:?}");
    let s3 = status(&env);
    let svc = &s3["components"][3];
    assert_ne!(svc["pid"].as_i64().unwrap(), pids[3]);
    assert!(!alive(pids[3]), "the old service process still runs");
    let detail = svc["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("direct to PostgreSQL :{}", env.pg_port))
            && detail.contains("a connection per request in flight"),
        "{detail}"
    );
    assert_eq!(
        s3["components"][0]["pid"].as_i64().unwrap(),
        pids[0],
        "moto untouched"
    );
    pids.push(svc["pid"].as_i64().unwrap());

    let mut down = statsctl();
    down.args(["local", "down", "--dir"])
        .arg(env.dir.path().join("local"));
    let r = run(down);
    assert_eq!(r.code, 0, "{r:?}");
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} still running after `local down`");
    }
    for port in [
        env.moto_port,
        env.pg_port,
        env.pgbouncer_port,
        env.service_port,
    ] {
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
                .is_err(),
            "port {port} still open"
        );
    }
    let s4 = status(&env);
    for c in s4["components"].as_array().unwrap() {
        assert_eq!(c["state"], "stopped", "{s4}");
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn busy_port_is_refused_with_a_hint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl();
    c.args(["local", "up", "--dir"]).arg(dir.path());
    c.args([
        "--moto-port",
        &port.to_string(),
        "--pg-port",
        &free_port().to_string(),
        "--no-service",
    ]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&port.to_string()) && r.stderr.contains("--moto-port"),
        "{r:?}"
    );
    assert!(r.stderr.contains("hint:"), "{r:?}");
}

/// Pids of processes whose command line has `arg` as one of its arguments.
fn processes_with_arg(arg: &str) -> Vec<i64> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// `local down` for a state directory when the test ends, whatever happened, so a failing test leaves nothing.
struct DownOnDrop(std::path::PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let mut c = statsctl();
        c.args(["local", "down", "--dir"]).arg(&self.0);
        let _ = c.output();
    }
}

/// Asserts `local up` left nothing: no state directory, nothing listening on its ports, no process started for them.
fn assert_nothing_started(state_dir: &std::path::Path, ports: &[u16]) {
    assert!(
        !state_dir.exists(),
        "`{}` was created: {:?}",
        state_dir.display(),
        std::fs::read_dir(state_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    for port in ports {
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], *port).into(), Duration::from_millis(300))
                .is_err(),
            "something listens on port {port}"
        );
        let pids = processes_with_arg(&port.to_string());
        assert!(
            pids.is_empty(),
            "processes started for port {port}: {pids:?}"
        );
    }
}

#[test]
fn an_invalid_stack_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = tmp.path().join("bad.yaml");
    let shipped = std::fs::read_to_string(shipped_stack()).unwrap();
    let broken = shipped.replacen("reserved_concurrency:", "reserved_concurency:", 1);
    assert_ne!(shipped, broken);
    std::fs::write(&stack, broken).unwrap();
    let state_dir = tmp.path().join("local");
    let _down = DownOnDrop(state_dir.clone());
    let (moto, pg) = (free_port(), free_port());
    let mut c = statsctl();
    c.arg("--stack").arg(&stack);
    c.args(["local", "up", "--dir"]).arg(&state_dir);
    c.args([
        "--moto-port",
        &moto.to_string(),
        "--pg-port",
        &pg.to_string(),
        "--service-port",
        &free_port().to_string(),
        "--pgbouncer-port",
        &free_port().to_string(),
    ]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    // The loader's located error, as every command prints it.
    assert!(
        r.stderr.contains("bad.yaml:") && r.stderr.contains("reserved_concurency"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("did you mean `reserved_concurrency`"),
        "{r:?}"
    );
    assert_nothing_started(&state_dir, &[moto, pg]);
}

#[test]
fn a_dir_postgres_cannot_enter_is_refused_before_anything_starts() {
    use std::os::unix::fs::PermissionsExt;
    // What `mktemp -d` makes: only its owner may enter.
    let closed = tempfile::Builder::new()
        .prefix("statsctl-closed")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .unwrap();
    let state_dir = closed.path().join("local");
    let _down = DownOnDrop(state_dir.clone());
    let (moto, pg) = (free_port(), free_port());
    let up = || {
        let mut c = statsctl();
        c.args(["local", "up", "--no-service", "--dir"])
            .arg(&state_dir);
        c.args([
            "--moto-port",
            &moto.to_string(),
            "--pg-port",
            &pg.to_string(),
        ]);
        run(c)
    };
    let as_root = unsafe { libc::geteuid() } == 0;
    if as_root {
        // PostgreSQL runs as `postgres`, which may not enter the temporary directory: refused up front, naming
        // the directory and the fix.
        let r = up();
        assert_eq!(r.code, 1, "{r:?}");
        let closed_path = closed.path().display().to_string();
        assert!(
            r.stderr.contains(&format!("may not enter `{closed_path}`")),
            "{r:?}"
        );
        assert!(
            r.stderr.contains("hint: ") && r.stderr.contains(&format!("chmod o+x {closed_path}")),
            "{r:?}"
        );
        assert_nothing_started(&state_dir, &[moto, pg]);
        // The fix the hint gives works.
        std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o701)).unwrap();
    }
    let r = up();
    assert_eq!(r.code, 0, "{r:?}");
    let mut c = statsctl();
    c.args(["local", "status", "--output", "json", "--dir"])
        .arg(&state_dir);
    let s = run(c).json();
    assert_eq!(s["components"][1]["state"], "running", "{s}");
}

/// Connects to 127.0.0.1:`port`, database `stats`, as `user` (with `password` when given) and asks who it is.
fn connect_as(port: u16, user: &str, password: Option<&str>) -> Result<String, String> {
    block_on(async {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(port)
            .user(user)
            .dbname("stats")
            .connect_timeout(Duration::from_secs(5));
        if let Some(p) = password {
            c.password(p);
        }
        // With its cause: "invalid configuration: password missing", "db error: … password authentication failed".
        let (client, conn) =
            c.connect(tokio_postgres::NoTls).await.map_err(
                |e| match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
            )?;
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    })
}

/// Every file under `dir`, recursively, except those `skip` says.
fn files_under(
    dir: &std::path::Path,
    skip: &dyn Fn(&std::path::Path) -> bool,
) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if skip(&p) {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn every_role_needs_its_password_kept_in_a_private_pgpass_file_that_no_output_shows() {
    use std::os::unix::fs::PermissionsExt;
    let env = LocalAws::start_opts(30, true, &[]);
    let s = status(&env);
    let pgpass =
        std::path::PathBuf::from(s["pgpass"].as_str().expect("status names the pgpass file"));
    assert_eq!(pgpass, env.pgpass(), "{s}");
    let mode = std::fs::metadata(&pgpass).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "pgpass mode {mode:o}");

    // A line for every role — the superuser, the database owner, each stack user — on PostgreSQL's and
    // PgBouncer's port, in the standard format.
    let text = std::fs::read_to_string(&pgpass).unwrap();
    let roles = [
        "postgres",
        "stats",
        "stats_service",
        "stats_api",
        "log_ingester",
    ];
    let passwords: Vec<String> = roles.iter().map(|r| env.db_password(r)).collect();
    for (role, password) in roles.iter().zip(&passwords) {
        assert!(password.len() >= 32, "{role}: a short password");
        for port in [env.pg_port, env.pgbouncer_port] {
            assert_eq!(
                statsctl_core::pgpass::lookup(&text, "127.0.0.1", port, "stats", role).as_ref(),
                Some(password),
                "{role} on port {port}"
            );
        }
    }
    assert!(
        passwords
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == roles.len(),
        "each role has a password of its own"
    );

    // Without its password (or with a wrong one) nobody gets in, directly or through PgBouncer; with the pgpass
    // file's, each role does.
    for (port, role) in [
        (env.pg_port, "postgres"),
        (env.pg_port, "stats_api"),
        (env.pgbouncer_port, "stats_service"),
        (env.pgbouncer_port, "postgres"),
    ] {
        let refused = connect_as(port, role, None).expect_err("connected without a password");
        assert!(refused.contains("password"), "{role} on {port}: {refused}");
        assert!(
            connect_as(port, role, Some("not-the-password")).is_err(),
            "{role} on {port}: a wrong password was accepted"
        );
        let password = env.db_password(role);
        assert_eq!(
            connect_as(port, role, Some(&password)).as_deref(),
            Ok(role),
            "{role} on {port}"
        );
    }

    // libpq tools read the file as it is: psql (when installed, as it is with PostgreSQL) logs in with it, and
    // without it is refused.
    if let Some(psql) = ["/usr/bin/psql", "/usr/local/bin/psql"]
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
    {
        let home = tempfile::tempdir().unwrap();
        let psql_as = |port: u16, role: &str, passfile: Option<&std::path::Path>| {
            let mut c = std::process::Command::new(psql);
            c.args([
                "-w",
                "-X",
                "-tA",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                role,
            ])
            .args(["-d", "stats", "-c", "SELECT current_user"])
            .env("HOME", home.path())
            .env("PGCONNECT_TIMEOUT", "5")
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE");
            if let Some(f) = passfile {
                c.env("PGPASSFILE", f);
            }
            c.output().unwrap()
        };
        for (port, role) in [
            (env.pg_port, "log_ingester"),
            (env.pgbouncer_port, "stats_service"),
        ] {
            let out = psql_as(port, role, Some(&pgpass));
            assert!(
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == role,
                "psql as {role} on {port} with PGPASSFILE: {out:?}"
            );
            assert!(
                !psql_as(port, role, None).status.success(),
                "psql as {role} on {port} without a password"
            );
        }
    }

    // The service logs in with its password (it answers from the database), and so does preflight with the
    // superuser's, from the file the stack's `database.sql.passfile` names.
    let board = http_get(env.service_port, "/matches/1/stats");
    assert!(board.starts_with("HTTP/1.1 200"), "{board}");
    let preflight = env.run(&[
        "preflight",
        "--only",
        "capacity.connections",
        "--output",
        "json",
    ]);
    assert!(
        preflight
            .stdout
            .contains("SHOW max_connections on 127.0.0.1"),
        "{preflight:?}"
    );

    // No output, log or state file shows a password: only pgpass and PgBouncer's auth_file hold them, both 0600.
    let userlist = env.dir.path().join("local/pgbouncer/userlist.txt");
    let mode = std::fs::metadata(&userlist).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth_file mode {mode:o}");
    let again = env.local_up(30, true, &[]);
    assert_eq!(again.code, 0, "{again:?}");
    let mut human = statsctl();
    human
        .args(["local", "status", "--dir"])
        .arg(env.dir.path().join("local"));
    let human = run(human);
    assert!(
        human.stdout.contains(&pgpass.display().to_string()),
        "{human:?}"
    );
    let mut seen = vec![
        (
            "local up".to_string(),
            format!("{}{}", again.stdout, again.stderr),
        ),
        ("local status".to_string(), human.stdout + &human.stderr),
        ("local status --output json".to_string(), s.to_string()),
        (
            "preflight".to_string(),
            preflight.stdout + &preflight.stderr,
        ),
    ];
    let data = env.dir.path().join("local/pg/data");
    for f in files_under(&env.dir.path().join("local"), &|p| {
        p == pgpass || p == userlist || p.starts_with(&data)
    }) {
        seen.push((
            f.display().to_string(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned(),
        ));
    }
    assert!(
        seen.len() > 6,
        "{:?}",
        seen.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for (what, text) in &seen {
        for (role, password) in roles.iter().zip(&passwords) {
            assert!(
                !text.contains(password.as_str()),
                "{what} shows the password of {role}"
            );
        }
    }
}

#[test]
fn a_restarted_cluster_keeps_its_passwords_and_one_without_them_is_refused_up_front() {
    let env = LocalAws::start();
    let password = env.db_password("stats_api");
    let down = || {
        let mut c = statsctl();
        c.args(["local", "down", "--dir"])
            .arg(env.dir.path().join("local"));
        let r = run(c);
        assert_eq!(r.code, 0, "{r:?}");
    };

    // Stopped and started again: the same data, the same passwords.
    down();
    let r = env.local_up(30, false, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env.db_password("stats_api"), password);
    assert_eq!(
        connect_as(env.pg_port, "stats_api", Some(&password)).as_deref(),
        Ok("stats_api")
    );

    // A pgpass file that does not match the cluster (edited by hand) is named, with the way out.
    let pgpass = std::fs::read_to_string(env.pgpass()).unwrap();
    let admin = env.db_password("postgres");
    std::fs::write(env.pgpass(), pgpass.replace(&admin, "0123456789abcdef")).unwrap();
    let r = env.local_up(30, false, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("password authentication failed")
            && r.stderr
                .contains(&format!("hint: `{}` does not hold", env.pgpass().display())),
        "{r:?}"
    );
    assert!(!r.stderr.contains(&admin), "{r:?}");

    // Without the pgpass file nobody knows the superuser's password: refused before anything starts, saying how
    // to start afresh.
    down();
    std::fs::remove_file(env.pgpass()).unwrap();
    let r = env.local_up(30, false, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("has no password on record") && r.stderr.contains("hint:"),
        "{r:?}"
    );
    for port in [env.moto_port, env.pg_port] {
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
                .is_err(),
            "port {port} is open: something started"
        );
    }
    assert!(!env.pgpass().exists(), "a new pgpass file was written");
}

/// A "database" that completes PostgreSQL's startup handshake (AuthenticationOk, ReadyForQuery) for everyone and
/// then never answers a query: what a wedged server looks like to a client. Runs until the test ends.
fn silent_database() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let n = (u32::from_be_bytes(len) as usize).clamp(4, 10_000) - 4;
                let mut startup = vec![0u8; n];
                if s.read_exact(&mut startup).is_err() {
                    return;
                }
                let _ = s.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I");
                // Read and ignore every query until the client goes away.
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn preflight_does_not_wait_forever_on_a_database_that_never_answers() {
    let env = LocalAws::start();
    let silent = silent_database();
    let mut c = env.statsctl();
    // The stack's `database.sql` follows STATSCTL_PG_PORT: point it at the silent server.
    c.env("STATSCTL_PG_PORT", silent.to_string()).args([
        "preflight",
        "--only",
        "capacity.connections",
        "--output",
        "json",
    ]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    // A generous bound: without timeouts on its queries preflight never returns at all.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("preflight still waits for the silent database after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(code == 0 || code == 2, "exit {code}: {stdout}");
    // It went on without the measurement: max_connections came from elsewhere.
    assert!(!stdout.contains("SHOW max_connections"), "{stdout}");
    assert!(stdout.contains("capacity.connections"), "{stdout}");
}
