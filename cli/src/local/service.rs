//! The stats service run locally: how the stack says it reaches PostgreSQL (directly or through PgBouncer, in a
//! pool or a connection per request), the environment it is started with, its health wait, and the sample match
//! it is seeded with.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use statsctl_core::model::{Connections, StackFile, Via};

use super::supervisor::{
    alive, ensure_port_free, find_binary, http_call, raise_nofile, reap, spawn, tail, Proc,
};
use crate::exit::{CliError, CliResult};
use crate::output::progress;

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
    pub fn from_stack(spec: &StackFile, max_connections: u32) -> Option<ServiceSetup> {
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
            // In u64: the product of two u32s may not fit one. The share is at most max_connections, so it fits.
            proxy_pool: u32::try_from(u64::from(max_connections) * u64::from(percent) / 100)
                .unwrap_or(u32::MAX)
                .max(1),
            borrow_timeout_secs: spec
                .proxy
                .as_ref()
                .map(|p| p.connection_borrow_timeout.0.as_secs())
                .unwrap_or(30)
                .max(1),
        })
    }

    /// Every database user the stack names: its functions' and its service's.
    pub fn database_users(spec: &StackFile) -> Vec<String> {
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

    /// The port the service connects to: PostgreSQL's, or PgBouncer's (the one running with the wanted
    /// configuration, else the one it will be started on). Pure.
    pub fn db_port(&self, pg_port: u16, bouncer_running: Option<u16>, bouncer_port: u16) -> u16 {
        match (self.via_proxy, bouncer_running) {
            (false, _) => pg_port,
            (true, Some(running)) => running,
            (true, None) => bouncer_port,
        }
    }

    /// The service's environment (see stats-service's configuration); the password is added apart. Pure.
    fn env(&self, port: u16, db_port: u16) -> Vec<(&'static str, String)> {
        let mode = if self.per_request {
            "per-request"
        } else {
            "pool"
        };
        vec![
            ("PORT", port.to_string()),
            ("BIND", "127.0.0.1".into()),
            ("DB_HOST", "127.0.0.1".into()),
            ("DB_PORT", db_port.to_string()),
            ("DB_USER", self.user.clone()),
            ("DB_NAME", "stats".into()),
            ("DB_MODE", mode.into()),
            ("DB_POOL_SIZE", self.pool_size.to_string()),
            ("DB_TIMEOUT_MS", "5000".into()),
        ]
    }
}

/// Starts the stats service on `port` against the database on `db_port`; returns once `/healthz` answers 200
/// (or fails with its log's tail when it exits or `timeout` passes).
pub fn start(
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
    cmd.envs(setup.env(port, db_port))
        .env_remove("DB_PASSWORD")
        .envs(password.map(|p| ("DB_PASSWORD", p)));
    raise_nofile(&mut cmd);
    let mut proc = spawn(&mut cmd, &log, port, "stats-service", &bin)?;
    proc.detail = Some(detail.clone());
    progress(format!(
        "starting stats-service on 127.0.0.1:{port} (pid {}, {detail})…",
        proc.pid
    ));
    let start = Instant::now();
    loop {
        if let Some((200, _)) = http_call(port, "GET", "/healthz", b"") {
            return Ok(proc);
        }
        if !alive(proc.pid) {
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
pub fn seed_match(port: u16) -> CliResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(yaml: &str) -> StackFile {
        statsctl_core::loader::load_str(Path::new("t.yaml"), yaml, None, &|_: &str| None)
            .unwrap_or_else(|d| panic!("{d}"))
            .spec
    }

    const BASE: &str = r#"
stack: t
region: eu-west-1
network: { existing: { vpc_id: vpc-1, subnet_ids: [subnet-a, subnet-b] } }
database:
  cluster_id: db
  engine_version: "15.4"
  instance_class: db.t4g.medium
  database_name: stats
  master_username: admin
  credentials_secret: s
proxy: { name: p, max_connections_percent: 90 }
functions:
  stats-api:
    artifact: x
    runtime: python3.12
    handler: app.handler
    database: { via: proxy, user: api }
service:
  name: svc
  cluster: c
  image: i
  cpu: 256
  memory_mb: 512
  desired_count: 2
  max_count: 10
  port: 8080
  database: { via: proxy, user: svc, pool_size: 10 }
event: { expected_viewers: 1500, poll_interval: 15s, request_duration: 120ms, spike_factor: 3 }
"#;

    /// (case, stack, max_connections, via proxy, per request, pool size, proxy pool, borrow timeout)
    type SetupCase = (&'static str, StackFile, u32, bool, bool, u32, u32, u64);

    #[test]
    fn the_setup_follows_the_stack_and_sizes_the_pool_as_rds_proxy_does() {
        let with = |from: &str, to: &str| stack(&BASE.replace(from, to));
        let no_proxy = stack(
            &BASE
                .replace("proxy: { name: p, max_connections_percent: 90 }\n", "")
                .replace("via: proxy", "via: direct"),
        );
        let cases: Vec<SetupCase> = vec![
            ("90% of 25", stack(BASE), 25, true, false, 10, 22, 120),
            (
                "90% of 1 is still one",
                stack(BASE),
                1,
                true,
                false,
                10,
                1,
                120,
            ),
            (
                "90% of the most there is",
                stack(BASE),
                u32::MAX,
                true,
                false,
                10,
                3_865_470_565,
                120,
            ),
            (
                "no proxy: all of them, 30s",
                no_proxy,
                25,
                false,
                false,
                10,
                25,
                30,
            ),
            (
                "direct, per request",
                with(
                    "database: { via: proxy, user: svc, pool_size: 10 }",
                    "database: { via: direct, user: svc, connections: per_request }",
                ),
                25,
                false,
                true,
                1,
                22,
                120,
            ),
            (
                "the borrow timeout, at least a second",
                with(
                    "max_connections_percent: 90 }",
                    "max_connections_percent: 50, connection_borrow_timeout: 0s }",
                ),
                30,
                true,
                false,
                10,
                15,
                1,
            ),
        ];
        for (case, spec, max, via_proxy, per_request, pool_size, proxy_pool, borrow) in cases {
            let s = ServiceSetup::from_stack(&spec, max).unwrap();
            assert_eq!(
                (
                    s.via_proxy,
                    s.per_request,
                    s.pool_size,
                    s.proxy_pool,
                    s.borrow_timeout_secs
                ),
                (via_proxy, per_request, pool_size, proxy_pool, borrow),
                "{case}"
            );
            assert_eq!((s.name.as_str(), s.user.as_str()), ("svc", "svc"), "{case}");
        }
        let (head, tail) = BASE.split_once("service:\n").unwrap();
        let no_service = stack(&format!("{head}{}", &tail[tail.find("event:").unwrap()..]));
        assert_eq!(ServiceSetup::from_stack(&no_service, 25), None);
        assert_eq!(ServiceSetup::database_users(&stack(BASE)), ["api", "svc"]);
    }

    fn setup(via_proxy: bool, per_request: bool) -> ServiceSetup {
        ServiceSetup {
            name: "svc".into(),
            via_proxy,
            per_request,
            pool_size: 5,
            user: "stats_service".into(),
            proxy_pool: 22,
            borrow_timeout_secs: 30,
        }
    }

    #[test]
    fn the_route_decides_the_port_and_the_fingerprint() {
        // (case, setup, running PgBouncer's port, port, description)
        let cases = [
            (
                "direct",
                setup(false, false),
                Some(26000),
                25432,
                "direct to PostgreSQL :25432, pool of 5, as stats_service",
            ),
            (
                "via the PgBouncer that runs",
                setup(true, false),
                Some(26000),
                26000,
                "via PgBouncer :26000, pool of 5, as stats_service",
            ),
            (
                "via the PgBouncer about to start",
                setup(true, true),
                None,
                26432,
                "via PgBouncer :26432, a connection per request in flight, as stats_service",
            ),
        ];
        for (case, s, running, port, describe) in cases {
            let got = s.db_port(25432, running, 26432);
            assert_eq!(got, port, "{case}");
            assert_eq!(s.describe(got), describe, "{case}");
        }
    }

    #[test]
    fn the_environment_names_the_route_and_the_mode() {
        let env = |s: ServiceSetup| -> Vec<String> {
            s.env(28080, 26432)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        };
        assert_eq!(
            env(setup(true, false)),
            [
                "PORT=28080",
                "BIND=127.0.0.1",
                "DB_HOST=127.0.0.1",
                "DB_PORT=26432",
                "DB_USER=stats_service",
                "DB_NAME=stats",
                "DB_MODE=pool",
                "DB_POOL_SIZE=5",
                "DB_TIMEOUT_MS=5000"
            ]
        );
        assert!(env(setup(false, true)).contains(&"DB_MODE=per-request".to_string()));
        // The password is never part of it: it is added (or removed) apart.
        assert!(!env(setup(true, false))
            .iter()
            .any(|kv| kv.starts_with("DB_PASSWORD")));
    }
}
