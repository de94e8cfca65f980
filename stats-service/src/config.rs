//! Configuration from environment variables: the same names in a container, on a laptop and in tests.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How requests reach PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    /// A pool of at most `size` connections, shared by all requests; a request waits up to the pool timeout.
    Pool { size: usize },
    /// No shared pool: a request that finds no idle connection opens its own, and keeps it open `idle` after the
    /// request — what Lambda containers without a proxy do (each warm container holds its own connection). The
    /// service then holds as many connections as requests were ever in flight at once, and the database refuses
    /// the rest.
    PerRequest { idle: Duration },
}

#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub db_host: String,
    pub db_port: u16,
    pub db_user: String,
    pub db_name: String,
    /// Never printed: `Debug`/`Display` show whether it is set, not what it is.
    pub db_password: Option<String>,
    pub mode: DbMode,
    /// How long a request waits for a pooled connection (pool mode) or for a connection to open.
    pub db_timeout: Duration,
    /// Largest `POST /logs` body.
    pub max_body_bytes: usize,
    /// Longest a database round trip (query, transaction, `SELECT 1`) may take once a connection is in hand.
    pub db_statement_timeout: Duration,
    /// From a request's first byte to the end of its headers: a slowloris client is cut off after this.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request (not even a first byte) is closed after this.
    pub idle_timeout: Duration,
    /// Longest the service waits for a `POST /logs` body to arrive.
    pub body_read_timeout: Duration,
    /// Most client connections open at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// On SIGTERM: how long requests in flight get to finish.
    pub drain_timeout: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("db_host", &self.db_host)
            .field("db_port", &self.db_port)
            .field("db_user", &self.db_user)
            .field("db_name", &self.db_name)
            .field("db_password", &self.db_password.as_ref().map(|_| "<set>"))
            .field("mode", &self.mode)
            .field("db_timeout", &self.db_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("db_statement_timeout", &self.db_statement_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            DbMode::Pool { size } => format!("pool of {size}"),
            DbMode::PerRequest { idle } => format!(
                "a connection per request in flight, kept {}s idle",
                idle.as_secs()
            ),
        };
        write!(
            f,
            "listening on {} (at most {} connections; header read {:?}, idle {:?}, body {:?}), database {}@{}:{}/{} ({mode}, timeout {:?}, statement timeout {:?}, password {})",
            self.listen,
            self.max_connections,
            self.header_read_timeout,
            self.idle_timeout,
            self.body_read_timeout,
            self.db_user,
            self.db_host,
            self.db_port,
            self.db_name,
            self.db_timeout,
            self.db_statement_timeout,
            if self.db_password.is_some() {
                "set"
            } else {
                "not set"
            }
        )
    }
}

/// The variables, with their defaults, as `--help`-style text.
pub const HELP: &str = "\
stats-service: game-server log ingest and live scoreboards on PostgreSQL

Endpoints:
  POST /logs?match=ID       game-server log lines (also X-Match-Id header)
  GET  /matches/ID/stats    the live scoreboard as JSON
  GET  /healthz             200 when the service can reach the database
  GET  /metrics             counters as JSON

Environment:
  PORT              port to listen on (default 8080)
  BIND              address to listen on (default 0.0.0.0)
  DB_HOST           PostgreSQL or proxy host (default 127.0.0.1)
  DB_PORT           its port (default 5432)
  DB_USER           user (default stats)
  DB_NAME           database (default stats)
  DB_PASSWORD       password (optional; never printed)
  DB_MODE           pool | per-request (default pool)
  DB_POOL_SIZE      connections in the pool (default 10)
  DB_TIMEOUT_MS     wait for a pooled or new connection (default 5000)
  DB_IDLE_TIMEOUT_MS  per-request mode: close a connection idle this long (default 300000,
                    as a warm Lambda container keeps its connection between invocations)
  DB_STATEMENT_TIMEOUT_MS  longest a query or transaction may take; then the request gets a 503,
                    the query is cancelled and its connection closed (default 5000)
  MAX_BODY_BYTES    largest POST /logs body (default 1048576)
  BODY_READ_TIMEOUT_MS  longest a POST /logs body may take to arrive; then 408 (default 30000)
  HEADER_READ_TIMEOUT_MS  from a request's first byte to the end of its headers, and from the
                    accept to the end of a connection's first request headers; then the
                    connection is closed (default 10000)
  IDLE_TIMEOUT_MS   close a keep-alive connection that sends nothing this long between requests
                    (default 75000, longer than a load balancer's 60 s idle timeout, so it
                    closes first)
  MAX_CONNECTIONS   most client connections at once; more wait in the listen backlog while
                    connections that never sent a byte, then idle keep-alive ones, are closed
                    to make room (default 4096, lowered to what the open-file limit,
                    `ulimit -n`, leaves room for)
  DRAIN_TIMEOUT_MS  on SIGTERM, how long requests in flight get to finish (default 10000)
";

/// The longest any `*_TIMEOUT_MS` may be: a day.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_map(&std::env::vars().collect())
    }

    /// Every problem at once, each naming the variable and what it accepts.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        fn num<T: std::str::FromStr>(
            errors: &mut Vec<String>,
            k: &str,
            v: Option<String>,
            default: T,
            what: &str,
        ) -> T {
            match v {
                None => default,
                Some(v) => v.parse().unwrap_or_else(|_| {
                    errors.push(format!("{k}={v:?} is not {what}"));
                    default
                }),
            }
        }
        let port: u16 = num(
            &mut errors,
            "PORT",
            get("PORT"),
            8080,
            "a port number (1-65535)",
        );
        let bind = get("BIND").unwrap_or_else(|| "0.0.0.0".into());
        let listen = match format!("{bind}:{port}").parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                errors.push(format!(
                    "BIND={bind:?} is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)"
                ));
                SocketAddr::from(([0, 0, 0, 0], port))
            }
        };
        let db_port: u16 = num(
            &mut errors,
            "DB_PORT",
            get("DB_PORT"),
            5432,
            "a port number (1-65535)",
        );
        let size: usize = num(
            &mut errors,
            "DB_POOL_SIZE",
            get("DB_POOL_SIZE"),
            10,
            "a number of connections",
        );
        if size == 0 || size > 10_000 {
            errors.push(format!("DB_POOL_SIZE={size} must be between 1 and 10000 (for no pool use DB_MODE=per-request)"));
        }
        let idle_ms: u64 = num(
            &mut errors,
            "DB_IDLE_TIMEOUT_MS",
            get("DB_IDLE_TIMEOUT_MS"),
            300_000,
            "milliseconds",
        );
        let mode = match get("DB_MODE").as_deref() {
            None | Some("pool") => DbMode::Pool {
                size: size.clamp(1, 10_000),
            },
            Some("per-request") | Some("per_request") => DbMode::PerRequest {
                idle: Duration::from_millis(idle_ms.max(1)),
            },
            Some(other) => {
                errors.push(format!("DB_MODE={other:?} is not `pool` or `per-request`"));
                DbMode::Pool { size: 1 }
            }
        };
        let timeout_ms: u64 = num(
            &mut errors,
            "DB_TIMEOUT_MS",
            get("DB_TIMEOUT_MS"),
            5000,
            "milliseconds",
        );
        let max_body_bytes: usize = num(
            &mut errors,
            "MAX_BODY_BYTES",
            get("MAX_BODY_BYTES"),
            1 << 20,
            "a byte count",
        );
        // Bounded above so no deadline computed from them can overflow.
        let mut millis = |k: &str, default: u64| -> Duration {
            let ms: u64 = num(&mut errors, k, get(k), default, "milliseconds");
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                errors.push(format!(
                    "{k}={ms} must be between 1 and {MAX_TIMEOUT_MS} milliseconds (a day)"
                ));
            }
            Duration::from_millis(ms.clamp(1, MAX_TIMEOUT_MS))
        };
        let db_statement_timeout = millis("DB_STATEMENT_TIMEOUT_MS", 5000);
        let header_read_timeout = millis("HEADER_READ_TIMEOUT_MS", 10_000);
        let idle_timeout = millis("IDLE_TIMEOUT_MS", 75_000);
        let body_read_timeout = millis("BODY_READ_TIMEOUT_MS", 30_000);
        let drain_timeout = millis("DRAIN_TIMEOUT_MS", 10_000);
        let max_connections: usize = num(
            &mut errors,
            "MAX_CONNECTIONS",
            get("MAX_CONNECTIONS"),
            4096,
            "a number of connections",
        );
        if !(1..=1_000_000).contains(&max_connections) {
            errors.push(format!(
                "MAX_CONNECTIONS={max_connections} must be between 1 and 1000000"
            ));
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors.join("\n")));
        }
        Ok(Config {
            listen,
            db_host: get("DB_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            db_port,
            db_user: get("DB_USER").unwrap_or_else(|| "stats".into()),
            db_name: get("DB_NAME").unwrap_or_else(|| "stats".into()),
            db_password: vars.get("DB_PASSWORD").filter(|v| !v.is_empty()).cloned(),
            mode,
            db_timeout: Duration::from_millis(timeout_ms.max(1)),
            max_body_bytes: max_body_bytes.max(1024),
            db_statement_timeout,
            header_read_timeout,
            idle_timeout,
            body_read_timeout,
            max_connections,
            drain_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_map(&vars(&[])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.mode, DbMode::Pool { size: 10 });
        assert_eq!(
            (c.db_host.as_str(), c.db_port, c.db_user.as_str()),
            ("127.0.0.1", 5432, "stats")
        );
    }

    #[test]
    fn modes_and_errors() {
        let c = Config::from_map(&vars(&[
            ("DB_MODE", "per-request"),
            ("PORT", "58080"),
            ("BIND", "127.0.0.1"),
        ]))
        .unwrap();
        assert_eq!(
            c.mode,
            DbMode::PerRequest {
                idle: Duration::from_secs(300)
            }
        );
        assert_eq!(c.listen, "127.0.0.1:58080".parse().unwrap());
        let c = Config::from_map(&vars(&[
            ("DB_MODE", "per_request"),
            ("DB_IDLE_TIMEOUT_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(
            c.mode,
            DbMode::PerRequest {
                idle: Duration::from_millis(1500)
            }
        );
        let e = Config::from_map(&vars(&[
            ("DB_MODE", "lots"),
            ("PORT", "99999"),
            ("DB_POOL_SIZE", "0"),
            ("DB_IDLE_TIMEOUT_MS", "soon"),
        ]))
        .unwrap_err();
        for want in [
            "DB_MODE=\"lots\"",
            "PORT=\"99999\"",
            "DB_POOL_SIZE=0",
            "DB_IDLE_TIMEOUT_MS=\"soon\"",
        ] {
            assert!(e.0.contains(want), "{want} in {e}");
        }
    }

    #[test]
    fn timeouts_and_the_connection_cap() {
        let c = Config::from_map(&vars(&[])).unwrap();
        assert_eq!(
            (
                c.db_statement_timeout,
                c.header_read_timeout,
                c.idle_timeout,
                c.body_read_timeout,
                c.drain_timeout,
                c.max_connections
            ),
            (
                Duration::from_secs(5),
                Duration::from_secs(10),
                Duration::from_secs(75),
                Duration::from_secs(30),
                Duration::from_secs(10),
                4096
            )
        );
        let c = Config::from_map(&vars(&[
            ("DB_STATEMENT_TIMEOUT_MS", "250"),
            ("HEADER_READ_TIMEOUT_MS", "1000"),
            ("IDLE_TIMEOUT_MS", "2000"),
            ("BODY_READ_TIMEOUT_MS", "3000"),
            ("DRAIN_TIMEOUT_MS", "4000"),
            ("MAX_CONNECTIONS", "64"),
        ]))
        .unwrap();
        assert_eq!(
            (
                c.db_statement_timeout,
                c.header_read_timeout,
                c.idle_timeout,
                c.body_read_timeout,
                c.drain_timeout,
                c.max_connections
            ),
            (
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(4),
                64
            )
        );
        // (variable, value, what the error must say)
        let cases = [
            (
                "DB_STATEMENT_TIMEOUT_MS",
                "0",
                "DB_STATEMENT_TIMEOUT_MS=0 must be between 1 and",
            ),
            (
                "HEADER_READ_TIMEOUT_MS",
                "soon",
                "HEADER_READ_TIMEOUT_MS=\"soon\" is not milliseconds",
            ),
            (
                "IDLE_TIMEOUT_MS",
                "86400001",
                "IDLE_TIMEOUT_MS=86400001 must be between",
            ),
            (
                "IDLE_TIMEOUT_MS",
                "18446744073709551616",
                "is not milliseconds",
            ),
            (
                "BODY_READ_TIMEOUT_MS",
                "-1",
                "BODY_READ_TIMEOUT_MS=\"-1\" is not milliseconds",
            ),
            (
                "DRAIN_TIMEOUT_MS",
                "0",
                "DRAIN_TIMEOUT_MS=0 must be between",
            ),
            (
                "MAX_CONNECTIONS",
                "0",
                "MAX_CONNECTIONS=0 must be between 1 and 1000000",
            ),
            (
                "MAX_CONNECTIONS",
                "many",
                "MAX_CONNECTIONS=\"many\" is not a number",
            ),
        ];
        for (k, v, want) in cases {
            let e = Config::from_map(&vars(&[(k, v)])).unwrap_err();
            assert!(e.0.contains(want), "{k}={v}: {e}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let c = Config::from_map(&vars(&[("DB_PASSWORD", "hunter2-secret")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c}").contains("hunter2"));
        assert!(format!("{c}").contains("password set"));
    }
}
