//! The real binary against a real PostgreSQL started here: ingest, scoreboard, errors, and the two database
//! modes under a burst at a small max_connections.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
}

impl Service {
    fn start(pg_port: u16, extra: &[(&str, &str)]) -> Service {
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
        let child = cmd.spawn().unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "service did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Service { port, child }
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
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn request(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
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
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
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
