//! The real binary against a real PostgreSQL started here: ingest, scoreboard, errors, the two database
//! modes under a burst at a small max_connections, and hostile clients and a stalled database.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pg_bin() -> PathBuf {
    if let Some(d) = std::env::var_os("STATSCTL_PG_BIN") {
        return d.into();
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (apt-get install postgresql)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    v.sort();
    v.pop()
        .expect("a PostgreSQL version under /usr/lib/postgresql")
}

/// PostgreSQL refuses root: run it as `postgres` then.
fn as_postgres(cmd: &mut Command) {
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "running as root needs a `postgres` user");
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
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

struct Pg {
    _dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Pg {
    fn start(max_connections: u32) -> Pg {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.path(), Some(uid_of("postgres")), None).unwrap();
        }
        let mut initdb = Command::new(pg_bin().join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_postgres(&mut initdb);
        assert!(initdb.status().unwrap().success(), "initdb failed");
        let port = free_port();
        let mut cmd = Command::new(pg_bin().join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
            ])
            .args([
                "-c",
                &format!("max_connections={max_connections}"),
                "-c",
                "superuser_reserved_connections=1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_postgres(&mut cmd);
        let child = cmd.spawn().unwrap();
        let pg = Pg {
            _dir: dir,
            port,
            child,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Accepting TCP is not accepting queries yet: psql-free readiness by waiting for a startup to succeed.
        std::thread::sleep(Duration::from_millis(300));
        pg
    }
}

fn uid_of(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    unsafe { (*pw).pw_uid }
}

impl Drop for Pg {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

struct Service {
    port: u16,
    child: Child,
    /// Everything the service wrote to stderr so far: read continuously, so a chatty service never blocks on a
    /// full pipe.
    log: Arc<Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(pg_port: u16, extra: &[(&str, &str)]) -> Service {
        Service::start_with_open_files(pg_port, extra, None)
    }

    /// `open_files`: the service's RLIMIT_NOFILE (soft and hard), as `ulimit -n` would set it.
    fn start_with_open_files(
        pg_port: u16,
        extra: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Service {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stats-service"));
        cmd.env_clear()
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("DB_PORT", pg_port.to_string())
            .env("DB_USER", "postgres")
            .env("DB_NAME", "postgres")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        if let Some(n) = open_files {
            unsafe {
                cmd.pre_exec(move || {
                    let r = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "service did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Service {
            port,
            child,
            log,
            log_reader: Some(log_reader),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn metrics(&self) -> Value {
        let (status, m) = self.request("GET", "/metrics", b"");
        assert_eq!(status, 200, "{m}");
        m
    }

    /// SIGTERM, then how long the service took to exit. Its whole log is in `log()` after.
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let took = t.elapsed();
        if let Some(r) = self.log_reader.take() {
            let _ = r.join();
        }
        took
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        request(self.port, method, path, body)
    }

    /// Waits until `/healthz` is 200 (the database accepts queries).
    fn wait_healthy(&self) {
        let start = Instant::now();
        loop {
            if self.request("GET", "/healthz", b"").0 == 200 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "service never became healthy"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Not after `stop`: the pid may belong to another process by now.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, body) = exchange(port, method, path, body);
    (status, body)
}

/// One request on a connection of its own: status, headers (names lowercased), body as JSON when it is.
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, HashMap<String, String>, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

/// Polls `f` until it returns `Some`, for at most `limit`: generous bounds, so a busy machine only makes a
/// passing test slower.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sample_log() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/match.log")).unwrap()
}

#[test]
fn ingest_and_scoreboard() {
    let pg = Pg::start(20);
    let svc = Service::start(pg.port, &[]);
    svc.wait_healthy();

    let (status, body) = svc.request("POST", "/logs?match=7", &sample_log());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lines"], 27, "{body}");
    assert_eq!(body["stored"], 22, "{body}");
    assert_eq!(
        body["skipped"],
        serde_json::json!({"empty": 1, "ignored": 2, "malformed": 1, "no_timestamp": 1})
    );

    let (status, board) = svc.request("GET", "/matches/7/stats", b"");
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["map"], "de_overpass");
    assert_eq!(board["score"], serde_json::json!({"ct": 1, "t": 1}));
    assert_eq!(board["rounds_played"], 2);
    assert_eq!(board["updated_at"], "2026-11-28T20:01:00.000Z");
    let players: HashMap<String, Value> = board["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
        .collect();
    // (kills, deaths, assists, damage, adr, hs%)
    let want = [
        ("alex", 2, 1, 0, 160, 80.0, 50.0),
        ("bea", 0, 2, 1, 40, 20.0, 0.0),
        ("cole", 2, 1, 0, 200, 100.0, 50.0),
        ("dana", 1, 1, 0, 100, 50.0, 0.0),
    ];
    for (name, k, d, a, dmg, adr, hs) in want {
        let p = &players[name];
        assert_eq!(
            (
                p["kills"].as_i64(),
                p["deaths"].as_i64(),
                p["assists"].as_i64(),
                p["damage"].as_i64()
            ),
            (Some(k), Some(d), Some(a), Some(dmg)),
            "{name}: {p}"
        );
        assert_eq!(
            (p["adr"].as_f64(), p["headshot_percent"].as_f64()),
            (Some(adr), Some(hs)),
            "{name}: {p}"
        );
    }
    let order: Vec<&str> = board["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["alex", "cole", "dana", "bea"],
        "sorted by kills, then fewest deaths"
    );

    // The same batch again through the X-Match-Id header, into another match: matches do not mix.
    let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    let log = sample_log();
    write!(s, "POST /logs HTTP/1.1\r\nHost: x\r\nX-Match-Id: 8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", log.len()).unwrap();
    s.write_all(&log).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let (_, board7) = svc.request("GET", "/matches/7/stats", b"");
    assert_eq!(
        board7["players"][0]["kills"], 2,
        "match 7 unchanged by match 8"
    );

    // Errors: each a status and a hint, and the service keeps serving.
    let cases: [(&str, &str, &[u8], u16, &str); 6] = [
        (
            "GET",
            "/matches/999/stats",
            b"",
            404,
            "no events logged for match 999",
        ),
        ("GET", "/matches/abc/stats", b"", 400, "not a number"),
        ("POST", "/logs", b"x", 400, "which match?"),
        ("POST", "/logs?match=zz", b"x", 400, "not a number"),
        ("DELETE", "/logs", b"", 405, "method not allowed"),
        ("GET", "/nope", b"", 404, "no such endpoint"),
    ];
    for (m, path, body, want, msg) in cases {
        let (status, v) = svc.request(m, path, body);
        assert_eq!(status, want, "{m} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap_or("").contains(msg),
            "{m} {path}: {v}"
        );
        assert!(
            !v["hint"].as_str().unwrap_or("").is_empty(),
            "{m} {path}: {v}"
        );
    }
    // Garbage bytes are lines to skip, not a crash.
    let (status, v) = svc.request(
        "POST",
        "/logs?match=9",
        &[0xff, 0xfe, b'\n', 0, 1, 2, b'\n'],
    );
    assert_eq!((status, v["stored"].as_u64()), (200, Some(0)), "{v}");
    let (status, _) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 200);
    let (_, m) = svc.request("GET", "/metrics", b"");
    assert_eq!(m["lines_stored"], 44, "{m}");
}

#[test]
fn oversized_body_is_refused() {
    let pg = Pg::start(10);
    let svc = Service::start(pg.port, &[("MAX_BODY_BYTES", "4096")]);
    let (status, v) = svc.request("POST", "/logs?match=1", &vec![b'a'; 10_000]);
    assert_eq!(status, 413, "{v}");
    assert!(v["hint"].as_str().unwrap().contains("MAX_BODY_BYTES"));
}

#[test]
fn database_down_is_503_with_a_hint() {
    let svc = Service::start(free_port(), &[("DB_TIMEOUT_MS", "500")]);
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("database unavailable"),
        "{v}"
    );
    let (status, _) = svc.request("GET", "/matches/1/stats", b"");
    assert_eq!(status, 503);
}

/// Fires `n` scoreboard requests at once (each on its own connection) and counts statuses.
fn burst(port: u16, n: usize) -> HashMap<u16, usize> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                request(port, "GET", "/matches/7/stats", b"").0
            })
        })
        .collect();
    let mut counts = HashMap::new();
    for h in handles {
        *counts.entry(h.join().unwrap()).or_default() += 1;
    }
    counts
}

#[test]
fn per_request_connections_exhaust_the_database_and_a_pool_does_not() {
    // 12 connections, one reserved for superusers; the service connects as `postgres` (a superuser), so it
    // gets all 12. Each request in flight holds a connection of its own, kept after the request as a warm Lambda
    // container keeps its own, until idle for DB_IDLE_TIMEOUT_MS.
    let pg = Pg::start(12);
    let direct = Service::start(
        pg.port,
        &[("DB_MODE", "per-request"), ("DB_IDLE_TIMEOUT_MS", "700")],
    );
    direct.wait_healthy();
    assert_eq!(
        direct.request("POST", "/logs?match=7", &sample_log()).0,
        200
    );
    let counts = burst(direct.port, 150);
    let refused = counts.get(&503).copied().unwrap_or(0);
    assert!(refused > 0, "150 simultaneous per-request connections against max_connections 12 must be refused: {counts:?}");
    let (_, m) = direct.request("GET", "/metrics", b"");
    assert!(m["db_too_many_connections"].as_u64().unwrap() > 0, "{m}");
    let held = m["db_connections_open"].as_u64().unwrap();
    assert!(
        (1..=12).contains(&held),
        "the connections stay open after the burst: {m}"
    );
    // Idle ones are closed by the reaper, as idle containers are reclaimed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, m) = direct.request("GET", "/metrics", b"");
        if m["db_connections_open"].as_u64() == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "idle per-request connections must be closed: {m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(direct);

    let pooled = Service::start(pg.port, &[("DB_MODE", "pool"), ("DB_POOL_SIZE", "4")]);
    pooled.wait_healthy();
    let counts = burst(pooled.port, 150);
    assert_eq!(
        counts.get(&200).copied(),
        Some(150),
        "a pool of 4 queues the same burst: {counts:?}"
    );
    let (_, m) = pooled.request("GET", "/metrics", b"");
    assert!(m["db_connections_opened"].as_u64().unwrap() <= 4, "{m}");
}

#[test]
fn a_nul_byte_loses_its_line_not_the_batch() {
    let pg = Pg::start(10);
    let svc = Service::start(pg.port, &[]);
    svc.wait_healthy();
    let mut log = sample_log();
    // A kill by a player whose name holds a NUL: it parses as an event, and PostgreSQL text cannot store it.
    log.extend_from_slice(
        b"11/28/2026 - 20:02:00.000 - \"ev\0e<9><STEAM_1:0:1009><CT>\" killed \"bea<3><STEAM_1:0:1002><TERRORIST>\" with \"awp\"\n",
    );
    let (status, body) = svc.request("POST", "/logs?match=3", &log);
    assert_eq!(status, 200, "the valid lines are stored: {body}");
    assert_eq!(body["lines"], 28, "{body}");
    assert_eq!(body["stored"], 22, "{body}");
    assert_eq!(body["skipped"]["nul_byte"], 1, "{body}");
    let (status, board) = svc.request("GET", "/matches/3/stats", b"");
    assert_eq!(status, 200, "{board}");
    let names: Vec<&str> = board["players"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alex", "cole", "dana", "bea"], "{board}");
    assert_eq!(svc.metrics()["lines_skipped_by_reason"]["nul_byte"], 1);
}

#[test]
fn database_errors_go_to_the_log_under_a_request_id_not_to_the_client() {
    let pg = Pg::start(10);
    // PostgreSQL answers `role "no_such_role_x7" does not exist`: the kind of detail that names users, databases
    // and hosts (and, with a wrong password, `password authentication failed for user …`).
    let svc = Service::start(pg.port, &[("DB_USER", "no_such_role_x7")]);
    let (status, headers, v) = exchange(svc.port, "GET", "/healthz", b"");
    assert_eq!(status, 503, "{v}");
    let id = headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("an x-request-id header: {headers:?}"))
        .clone();
    assert_eq!(v["request_id"], id.as_str(), "{v}");
    assert_eq!(v["error"], "database unavailable", "{v}");
    let text = v.to_string();
    assert!(
        !text.contains("no_such_role_x7") && !text.contains("does not exist"),
        "the database's words stay out of the response: {v}"
    );
    assert!(v["hint"].as_str().unwrap().contains(&id), "{v}");
    // The log has them, under the same id.
    let line = wait_for(Duration::from_secs(10), "the log line", || {
        svc.log()
            .lines()
            .find(|l| l.contains(&id))
            .map(str::to_string)
    });
    assert!(
        line.contains("no_such_role_x7") && line.contains("GET /healthz"),
        "{line}"
    );
    // Every response carries an id of its own, successes included.
    let (status, headers2, _) = exchange(svc.port, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    let id2 = &headers2["x-request-id"];
    assert!(!id2.is_empty() && *id2 != id, "{id} then {id2}");
}

/// A second session that can hold a lock on the service's tables and look at pg_stat_activity.
struct Locker {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Locker {
    fn connect(port: u16) -> Locker {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(
                &format!(
                    "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=10"
                ),
                tokio_postgres::NoTls,
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            client
        });
        Locker { rt, client }
    }

    fn execute(&self, sql: &str) {
        self.rt.block_on(self.client.batch_execute(sql)).unwrap();
    }

    fn count(&self, sql: &str) -> i64 {
        self.rt
            .block_on(self.client.query_one(sql, &[]))
            .unwrap()
            .get(0)
    }
}

const SERVICE_WAITING_ON_A_LOCK: &str = "SELECT count(*) FROM pg_stat_activity
     WHERE application_name = 'stats-service' AND wait_event_type = 'Lock'";

#[test]
fn a_client_that_hangs_up_on_a_stalled_query_leaves_nothing_in_flight() {
    let pg = Pg::start(10);
    // Long statement and drain timeouts: neither may be what ends the stalled request.
    let mut svc = Service::start(
        pg.port,
        &[
            ("DB_STATEMENT_TIMEOUT_MS", "300000"),
            ("DRAIN_TIMEOUT_MS", "300000"),
        ],
    );
    svc.wait_healthy();
    assert_eq!(svc.request("POST", "/logs?match=7", &sample_log()).0, 200);
    let locker = Locker::connect(pg.port);
    locker.execute("BEGIN; LOCK TABLE match_events IN ACCESS EXCLUSIVE MODE");

    let mut client = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    client
        .write_all(b"GET /matches/7/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // In flight: the stalled request, and the /metrics request asking.
    wait_for(Duration::from_secs(20), "the request to stall", || {
        (svc.metrics()["in_flight"] == 2 && locker.count(SERVICE_WAITING_ON_A_LOCK) == 1)
            .then_some(())
    });
    drop(client);
    wait_for(
        Duration::from_secs(20),
        "the hung-up request to leave in_flight",
        || (svc.metrics()["in_flight"] == 1).then_some(()),
    );
    // Its query was cancelled, not left waiting on the lock with its connection back in the pool.
    wait_for(
        Duration::from_secs(20),
        "the abandoned query to be cancelled",
        || (locker.count(SERVICE_WAITING_ON_A_LOCK) == 0).then_some(()),
    );
    // And the service still answers from the same pool once the lock is gone.
    locker.execute("COMMIT");
    assert_eq!(svc.request("GET", "/matches/7/stats", b"").0, 200);
    let took = svc.stop();
    assert!(
        took < Duration::from_secs(120),
        "nothing in flight, so stopping does not wait out DRAIN_TIMEOUT_MS: {took:?}"
    );
}

/// A TCP relay between the service and PostgreSQL that can stop forwarding: a database that accepts connections
/// and then never answers.
struct StallingProxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl StallingProxy {
    fn start(upstream: u16) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stalled = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (stalled.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let Ok((down, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = down.set_nonblocking(false);
                for (from, to) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    let (st, sp) = (st.clone(), sp.clone());
                    std::thread::spawn(move || pump(from, to, &st, &sp));
                }
            }
        });
        StallingProxy {
            port,
            stalled,
            stop,
        }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::Relaxed);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16384];
    while !stop.load(Ordering::Relaxed) {
        if stalled.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Read while the stall began: held, so nothing crosses once `stall(true)` has returned.
                while stalled.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_stalled_database_gets_a_503_within_the_statement_timeout() {
    let pg = Pg::start(10);
    let proxy = StallingProxy::start(pg.port);
    let svc = Service::start(
        proxy.port,
        &[
            ("DB_STATEMENT_TIMEOUT_MS", "1000"),
            ("DB_TIMEOUT_MS", "1000"),
        ],
    );
    svc.wait_healthy();
    assert_eq!(svc.request("POST", "/logs?match=7", &sample_log()).0, 200);
    proxy.stall(true);
    // The client waits up to 30 s; without a statement timeout /healthz never answers.
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"], "the database did not answer in time", "{v}");
    let (status, v) = svc.request("GET", "/matches/7/stats", b"");
    assert_eq!(status, 503, "{v}");
    assert!(svc.metrics()["db_timeouts"].as_u64().unwrap() >= 1);
    // Once the database answers again, so does the service: the stalled connections were closed, not reused.
    proxy.stall(false);
    svc.wait_healthy();
    assert_eq!(svc.request("GET", "/matches/7/stats", b"").0, 200);
}

/// Whether the server has closed `s` (nonblocking): EOF or a reset. Response bytes are read and ignored.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_and_silent_connections_are_closed_and_the_service_keeps_answering() {
    let pg = Pg::start(10);
    let svc = Service::start(
        pg.port,
        &[
            ("HEADER_READ_TIMEOUT_MS", "1000"),
            ("IDLE_TIMEOUT_MS", "3000"),
            ("BODY_READ_TIMEOUT_MS", "1000"),
        ],
    );
    svc.wait_healthy();
    // 100 clients dribble a header that never ends, 100 connect and say nothing.
    let mut dribblers: Vec<Option<TcpStream>> = Vec::new();
    let mut silent: Vec<Option<TcpStream>> = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s.set_nonblocking(true).unwrap();
        dribblers.push(Some(s));
        let s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
        s.set_nonblocking(true).unwrap();
        silent.push(Some(s));
    }
    assert_eq!(
        svc.request("GET", "/healthz", b"").0,
        200,
        "answers meanwhile"
    );
    // A keep-alive client that got its answer and then goes quiet is idle again: closed too.
    let mut done = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    done.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    done.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    done.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    done.set_nonblocking(true).unwrap();
    silent.push(Some(done));
    let start = Instant::now();
    loop {
        for slot in dribblers.iter_mut() {
            if let Some(s) = slot {
                if s.write(b"X").is_err() || closed_by_server(s) {
                    *slot = None;
                }
            }
        }
        for slot in silent.iter_mut() {
            if slot.as_mut().is_some_and(closed_by_server) {
                *slot = None;
            }
        }
        let open = |v: &[Option<TcpStream>]| v.iter().filter(|s| s.is_some()).count();
        if open(&dribblers) + open(&silent) == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "still open after 60 s: {} dribbling, {} silent, the quiet keep-alive one {}; {}",
            open(&dribblers),
            open(&silent),
            if silent.last().unwrap().is_some() {
                "too"
            } else {
                "not"
            },
            svc.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A body announced and never finished gets a 408 rather than holding the request.
    let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"POST /logs?match=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n11/28/2026",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("BODY_READ_TIMEOUT_MS"), "{out}");

    let m = svc.metrics();
    assert!(m["connections_timed_out"].as_u64().unwrap() >= 201, "{m}");
    assert_eq!(svc.request("GET", "/healthz", b"").0, 200);
}

#[test]
fn four_hundred_slowloris_under_ulimit_256_neither_starve_healthz_nor_flood_the_log() {
    let pg = Pg::start(10);
    let mut svc =
        Service::start_with_open_files(pg.port, &[("HEADER_READ_TIMEOUT_MS", "1000")], Some(256));
    svc.wait_healthy();
    let clients: Vec<TcpStream> = (0..400)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // Queued behind them in the listen backlog, and answered once the header timeout clears them out.
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 200, "{v}");
    drop(clients);
    svc.stop();
    let log = svc.log();
    assert!(
        log.contains("lowered to"),
        "the cap is lowered to fit 256 open files: {log}"
    );
    let accept_errors = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_errors <= 3,
        "{accept_errors} accept errors logged:\n{log}"
    );
}

#[test]
fn at_the_connection_cap_idle_keep_alive_connections_make_room() {
    let pg = Pg::start(10);
    let mut svc = Service::start(
        pg.port,
        &[("MAX_CONNECTIONS", "4"), ("IDLE_TIMEOUT_MS", "600000")],
    );
    svc.wait_healthy();
    // Four keep-alive clients that got their answer and keep the connection: the cap is full of idle ones.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut first = [0u8; 12];
            s.read_exact(&mut first).unwrap();
            assert_eq!(&first, b"HTTP/1.1 200");
            s
        })
        .collect();
    // A fifth client is answered, long before the ten-minute idle timeout would free a slot.
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 200, "{v}");
    drop(idle);
    svc.stop();
    assert!(
        svc.log().contains("4 connections open (MAX_CONNECTIONS)"),
        "{}",
        svc.log()
    );
}

/// Issue 15, review finding: connections that connect and send nothing, under `ulimit -n 256` with the default
/// timeouts. Before their first byte they get the header-read deadline (10 s), not the keep-alive idle one (75 s),
/// and at the cap they are the first to make room for a client that is waiting.
#[test]
fn four_hundred_silent_connections_under_ulimit_256_neither_starve_healthz_nor_stay_open() {
    let pg = Pg::start(10);
    let mut svc = Service::start_with_open_files(pg.port, &[], Some(256));
    svc.wait_healthy();
    let mut silent: Vec<Option<TcpStream>> = (0..400)
        .map(|_| Some(TcpStream::connect(("127.0.0.1", svc.port)).unwrap()))
        .collect();
    // Queued behind them in the listen backlog; `exchange` gives up after 30 s, well before the 75 s idle timeout.
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 200, "{v}");
    for s in silent.iter().flatten() {
        s.set_nonblocking(true).unwrap();
    }
    // All closed by the server (shed at the cap, or by the 10 s header timeout), long before 75 s.
    let start = Instant::now();
    loop {
        for slot in silent.iter_mut() {
            if slot.as_mut().is_some_and(closed_by_server) {
                *slot = None;
            }
        }
        let open = silent.iter().filter(|s| s.is_some()).count();
        if open == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{open} silent connections still open after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(svc.request("GET", "/healthz", b"").0, 200);
    svc.stop();
    let log = svc.log();
    assert!(
        log.contains("lowered to"),
        "the cap is lowered to fit 256 open files: {log}"
    );
    let accept_errors = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_errors <= 3,
        "{accept_errors} accept errors logged:\n{log}"
    );
}

/// At the cap, connections that never sent a byte make room before keep-alive connections between requests do:
/// dropping them loses no client anything, and a keep-alive client would have to reconnect.
#[test]
fn at_the_connection_cap_silent_connections_make_room_before_idle_keep_alive_ones() {
    let pg = Pg::start(10);
    let mut svc = Service::start(
        pg.port,
        &[
            ("MAX_CONNECTIONS", "4"),
            ("HEADER_READ_TIMEOUT_MS", "600000"),
            ("IDLE_TIMEOUT_MS", "600000"),
        ],
    );
    svc.wait_healthy();
    let keep_alive: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", svc.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut s).unwrap(), 200);
            s
        })
        .collect();
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", svc.port)).unwrap())
        .collect();
    // The cap is full; a fifth client is answered long before either ten-minute timeout would free a slot.
    let (status, v) = svc.request("GET", "/healthz", b"");
    assert_eq!(status, 200, "{v}");
    // Shedding goes on only while someone waits: the fifth needed one slot, so at least one silent connection
    // was closed (the other may have been, if it was known to be silent in the same round).
    let mut shed = 0;
    for s in silent.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        let r = s.read(&mut buf);
        if matches!(r, Ok(0))
            || r.as_ref().is_err_and(|e| {
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            })
        {
            shed += 1;
        }
    }
    assert!(
        shed >= 1,
        "a silent connection made room for the fifth client"
    );
    // The keep-alive clients kept their connections: each gets another answer on it.
    for mut s in keep_alive {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let status = read_response(&mut s).expect("the idle keep-alive connection is still open");
        assert_eq!(status, 200);
    }
    svc.stop();
}

/// Reads one whole response (head, then a `Content-Length` body) off a keep-alive connection: its status.
fn read_response(s: &mut TcpStream) -> std::io::Result<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body)?;
    Ok(head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}
