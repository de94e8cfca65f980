//! `statsctl local up | status | down` against the real moto and PostgreSQL binaries.

mod harness;

use std::net::TcpStream;
use std::time::Duration;

use harness::*;

fn alive(pid: i64) -> bool {
    // A zombie (state Z) has exited; anything else listed in /proc is still running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

fn status(env: &LocalAws) -> serde_json::Value {
    let mut c = statsctl();
    c.args(["local", "status", "--output", "json", "--dir"]).arg(env.dir.path().join("local"));
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()
}

#[test]
fn up_is_idempotent_and_down_leaves_nothing_running() {
    let env = LocalAws::start_with(25);
    let s = status(&env);
    let comps = s["components"].as_array().unwrap();
    assert_eq!(comps.len(), 2);
    let mut pids = vec![];
    for c in comps {
        assert_eq!(c["state"], "running", "{s}");
        pids.push(c["pid"].as_i64().unwrap());
    }
    assert_eq!(comps[1]["max_connections"], 25);
    // Both listen where they say.
    for port in [env.moto_port, env.pg_port] {
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).expect("listening");
    }

    // A second `up` starts nothing new.
    let mut again = statsctl();
    again.args(["local", "up", "--dir"]).arg(env.dir.path().join("local"));
    again.args(["--moto-port", &env.moto_port.to_string(), "--pg-port", &env.pg_port.to_string()]);
    let r = run(again);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("moto already running") && r.stderr.contains("postgres already running"), "{r:?}");
    let s2 = status(&env);
    let pids2: Vec<i64> = s2["components"].as_array().unwrap().iter().map(|c| c["pid"].as_i64().unwrap()).collect();
    assert_eq!(pids, pids2);

    let mut down = statsctl();
    down.args(["local", "down", "--dir"]).arg(env.dir.path().join("local"));
    let r = run(down);
    assert_eq!(r.code, 0, "{r:?}");
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} still running after `local down`");
    }
    for port in [env.moto_port, env.pg_port] {
        assert!(TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_err(), "port {port} still open");
    }
    let s3 = status(&env);
    for c in s3["components"].as_array().unwrap() {
        assert_eq!(c["state"], "stopped", "{s3}");
    }
}

#[test]
fn busy_port_is_refused_with_a_hint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl();
    c.args(["local", "up", "--dir"]).arg(dir.path());
    c.args(["--moto-port", &port.to_string(), "--pg-port", &free_port().to_string()]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&port.to_string()) && r.stderr.contains("--moto-port"), "{r:?}");
    assert!(r.stderr.contains("hint:"), "{r:?}");
}
