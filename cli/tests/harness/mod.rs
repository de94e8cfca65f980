//! Test harness: runs the real `statsctl` binary; `LocalAws` starts a private moto emulator and PostgreSQL on
//! free ports through `statsctl local up` (so every test is isolated) and stops them on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_statsctl")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn shipped_stack() -> PathBuf {
    repo_root().join("stacks/live-stats.yaml")
}

/// A `statsctl` command with a clean, deterministic environment.
pub fn statsctl() -> Command {
    let mut c = Command::new(bin());
    c.current_dir(repo_root());
    for var in [
        "AWS_ENDPOINT_URL",
        "STATSCTL_ENV",
        "STATSCTL_STACK",
        "AWS_PROFILE",
        "NO_COLOR",
    ] {
        c.env_remove(var);
    }
    c.env("NO_COLOR", "1");
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run(mut c: Command) -> Run {
    let out: Output = c.output().expect("run statsctl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private moto + PostgreSQL (and, when asked, the stats service and PgBouncer) for one test.
pub struct LocalAws {
    pub dir: tempfile::TempDir,
    pub moto_port: u16,
    pub pg_port: u16,
    pub service_port: u16,
    pub pgbouncer_port: u16,
}

impl LocalAws {
    pub fn start() -> LocalAws {
        Self::start_with(30)
    }

    pub fn start_with(max_connections: u32) -> LocalAws {
        Self::start_opts(max_connections, false, &[])
    }

    /// With the stats service (and PgBouncer when the stack routes it via the proxy), configured by `vars`.
    pub fn start_opts(max_connections: u32, service: bool, vars: &[(&str, &str)]) -> LocalAws {
        let dir = tempfile::Builder::new()
            .prefix("statsctl-test")
            .tempdir()
            .unwrap();
        let env = LocalAws {
            dir,
            moto_port: free_port(),
            pg_port: free_port(),
            service_port: free_port(),
            pgbouncer_port: free_port(),
        };
        let r = env.local_up(max_connections, service, vars);
        assert_eq!(r.code, 0, "local up failed: {r:?}");
        env
    }

    /// `statsctl local up` for this test's ports (again: what runs is kept, a changed service restarted).
    pub fn local_up(&self, max_connections: u32, service: bool, vars: &[(&str, &str)]) -> Run {
        let mut c = self.statsctl();
        c.args(["local", "up", "--dir"])
            .arg(self.dir.path().join("local"));
        c.args([
            "--moto-port",
            &self.moto_port.to_string(),
            "--pg-port",
            &self.pg_port.to_string(),
        ]);
        c.args(["--max-connections", &max_connections.to_string()]);
        if !service {
            c.arg("--no-service");
        }
        for (k, v) in vars {
            c.env(k, v);
        }
        run(c)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    /// The pgpass file `local up` wrote (`PGPASSFILE`): every local role's generated password.
    pub fn pgpass(&self) -> PathBuf {
        self.dir.path().join("local").join("pgpass")
    }

    /// The password of a local database role, from the pgpass file.
    pub fn db_password(&self, user: &str) -> String {
        let text = std::fs::read_to_string(self.pgpass()).expect("read the pgpass file");
        statsctl_core::pgpass::lookup(&text, "127.0.0.1", self.pg_port, "stats", user)
            .unwrap_or_else(|| panic!("no password for `{user}` in the pgpass file"))
    }

    /// `statsctl` pointed at this emulator and PostgreSQL, with dummy credentials, for the `local` environment.
    pub fn statsctl(&self) -> Command {
        let mut c = statsctl();
        c.env("STATSCTL_MOTO_PORT", self.moto_port.to_string())
            .env("STATSCTL_PG_PORT", self.pg_port.to_string())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("STATSCTL_LOCK_DIR", self.dir.path().join("locks"))
            .env("STATSCTL_LOCAL_DIR", self.dir.path().join("local"))
            .env("STATSCTL_SERVICE_PORT", self.service_port.to_string())
            .env("STATSCTL_PGBOUNCER_PORT", self.pgbouncer_port.to_string())
            .env_remove("STATSCTL_LOCAL_SERVICE_VIA")
            .env_remove("STATSCTL_LOCAL_SERVICE_CONNECTIONS")
            .args(["--env", "local"]);
        c
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        let mut c = statsctl();
        c.args(["local", "down", "--dir"])
            .arg(self.dir.path().join("local"));
        let _ = c.output();
    }
}

/// An AWS SDK configuration pointed at a test's emulator, for changing things behind statsctl's back.
pub async fn sdk_config(env: &LocalAws) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(env.endpoint())
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "statsctl-tests",
        ))
        .load()
        .await
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl LocalAws {
    /// Runs `statsctl --env local ARGS…` against this emulator.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// The same, with extra environment variables (stack substitutions).
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut c = self.statsctl();
        c.args(args);
        for (k, v) in vars {
            c.env(k, v);
        }
        run(c)
    }

    /// `statsctl deploy`, asserting it succeeded.
    pub fn deploy(&self) -> Run {
        let r = self.run(&["deploy"]);
        assert_eq!(r.code, 0, "deploy failed: {r:?}");
        r
    }

    /// `plan --detailed-exitcode --output json`: (exit code, plan JSON).
    pub fn plan_json(&self) -> (i32, serde_json::Value) {
        let r = self.run(&["plan", "--detailed-exitcode", "--output", "json"]);
        assert!(r.code == 0 || r.code == 2, "plan failed: {r:?}");
        (r.code, r.json())
    }
}

/// The pending changes of a plan as `(resource, action)` pairs.
pub fn pending(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| {
            (
                format!(
                    "{}.{}",
                    c["kind"].as_str().unwrap(),
                    c["name"].as_str().unwrap()
                ),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A tiny keep-alive HTTP server on 127.0.0.1 for load tests: answers every GET with 200 (or 503 when
/// `fail` is set), after `delay`. One thread per connection; stops when dropped.
pub struct TestServer {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TestServer {
    pub fn start(delay: std::time::Duration, fail: bool) -> TestServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                };
                let stop3 = stop2.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        if stop3.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) => return,
                            Ok(_) => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) =>
                            {
                                continue
                            }
                            Err(_) => return,
                        }
                        if !line.starts_with("GET") {
                            continue;
                        }
                        // Skip headers.
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        std::thread::sleep(delay);
                        let (status, body) = if fail {
                            ("503 Service Unavailable", "{\"error\":\"db_connect\"}")
                        } else {
                            ("200 OK", "{\"score\":\"1:0\"}")
                        };
                        let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        if stream.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TestServer { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/matches/1/stats", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A function's live environment variables, read through the AWS SDK.
pub async fn function_environment(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
) -> std::collections::HashMap<String, String> {
    lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap()
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap()
}

/// Replaces a function's live environment through the AWS SDK, as someone changing it by hand would (drift).
pub async fn set_function_environment(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    vars: std::collections::HashMap<String, String>,
) {
    lambda
        .update_function_configuration()
        .function_name(name)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(vars))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// A function's alias as read back through the SDK: its version and the additional version weights (version,
/// weight), sorted.
pub async fn alias_routing(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    alias: &str,
) -> (String, Vec<(String, f64)>) {
    let a = lambda
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
        .unwrap();
    let mut weights: Vec<(String, f64)> = a
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    (
        a.function_version().unwrap_or_default().to_string(),
        weights,
    )
}

/// Every object under `prefix` in `bucket`, parsed as JSON, in key order (for ledger records: oldest first).
pub async fn ledger_objects<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Vec<T> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(&k)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        out.push(serde_json::from_slice(&body).unwrap());
    }
    out
}

/// The shipped stack's listener (on the `live-stats-local` load balancer) as ELB describes it.
pub async fn shipped_listener(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
) -> aws_sdk_elasticloadbalancingv2::types::Listener {
    let lb = elb
        .describe_load_balancers()
        .names("live-stats-local")
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    listeners.listeners()[0].clone()
}

/// The shipped stack's listener's forwards read back: (target group name, weight) for every weight above 0.
pub fn listener_weights(env: &LocalAws) -> Vec<(String, u16)> {
    block_on(async {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config(env).await);
        let mut out = Vec::new();
        for action in shipped_listener(&elb).await.default_actions() {
            if let Some(f) = action.forward_config() {
                for tg in f.target_groups() {
                    let weight = u16::try_from(tg.weight().unwrap_or(1)).unwrap();
                    let name = tg
                        .target_group_arn()
                        .unwrap_or_default()
                        .split('/')
                        .nth(1)
                        .unwrap_or_default()
                        .to_string();
                    if weight > 0 {
                        out.push((name, weight));
                    }
                }
            }
        }
        out.sort();
        out
    })
}

/// Points the shipped stack's listener (`live-stats-local`) at the colours' target groups with these weights,
/// behind statsctl's back: e.g. a canary left split by a deploy that was killed. `(target group name, weight)`.
pub fn set_listener_weights(env: &LocalAws, weights: &[(&str, i32)]) {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ForwardActionConfig, TargetGroupTuple,
    };
    block_on(async {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk_config(env).await);
        let listener = shipped_listener(&elb).await;
        let listener = listener.listener_arn().unwrap();
        let mut forward = ForwardActionConfig::builder();
        for (name, weight) in weights {
            let tgs = elb
                .describe_target_groups()
                .names(*name)
                .send()
                .await
                .unwrap();
            let arn = tgs.target_groups()[0].target_group_arn().unwrap();
            forward = forward.target_groups(
                TargetGroupTuple::builder()
                    .target_group_arn(arn)
                    .weight(*weight)
                    .build(),
            );
        }
        elb.modify_listener()
            .listener_arn(listener)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .forward_config(forward.build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

/// What the service's alarms watch, read back through the SDK: (the `ServiceName` of `ecs-cpu` and `ecs-memory`,
/// the name of the target group whose dimension — `targetgroup/<name>/<id>`, from its ARN — is the `TargetGroup`
/// of `target-5xx` and `unhealthy-hosts`). Panics when the pairs disagree or no target group has that dimension.
pub fn service_alarms_watch(env: &LocalAws) -> (String, String) {
    block_on(async {
        let conf = sdk_config(env).await;
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&conf);
        let dimension = |alarm: &str, name: &str| {
            let (cw, alarm, name) = (cw.clone(), alarm.to_string(), name.to_string());
            async move {
                let a = cw
                    .describe_alarms()
                    .alarm_names(format!("live-stats-local-{alarm}"))
                    .send()
                    .await
                    .unwrap();
                let a = a
                    .metric_alarms()
                    .first()
                    .unwrap_or_else(|| panic!("alarm {alarm}"));
                a.dimensions()
                    .iter()
                    .find(|d| d.name() == Some(name.as_str()))
                    .and_then(|d| d.value())
                    .unwrap_or_else(|| panic!("{alarm} has no {name} dimension"))
                    .to_string()
            }
        };
        let service = dimension("ecs-cpu", "ServiceName").await;
        assert_eq!(dimension("ecs-memory", "ServiceName").await, service);
        let tg = dimension("target-5xx", "TargetGroup").await;
        assert_eq!(dimension("unhealthy-hosts", "TargetGroup").await, tg);
        let groups = elb.describe_target_groups().send().await.unwrap();
        let name = groups
            .target_groups()
            .iter()
            .find(|g| {
                g.target_group_arn()
                    .and_then(|arn| arn.rsplit(':').next())
                    .is_some_and(|d| d == tg)
            })
            .and_then(|g| g.target_group_name())
            .unwrap_or_else(|| panic!("no target group has the dimension {tg}"))
            .to_string();
        (service, name)
    })
}

/// The ledger bucket the first deploy created.
pub async fn ledger_bucket(s3: &aws_sdk_s3::Client) -> String {
    s3.list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .find(|n| n.starts_with("live-stats-local-ledger-"))
        .expect("deploy created the ledger bucket")
        .to_string()
}
