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
    let mut pids = pids;
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
