//! The stack file's types: what a stack declares. The JSON Schema editors use is generated from these types,
//! and the loader validates against that same schema, so the two can never disagree.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Span;

/// One stack: the ECS stats service, the Lambda functions, the Aurora PostgreSQL cluster behind its RDS Proxy,
/// and the CloudWatch alarms watching them. `environments:` override any of it per environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackFile {
    /// Stack name: prefixes the names statsctl gives resources and is the value of their `statsctl:stack` tag.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub stack: String,
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// Tags put on every resource statsctl creates (besides its own `statsctl:*` ownership tags).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// How to reach AWS for this stack (endpoint override for the local emulator, profile, account facts).
    #[serde(default)]
    pub aws: AwsSettings,
    /// The VPC the stack lives in: an existing one by id, or one statsctl creates.
    pub network: Network,
    /// The Aurora PostgreSQL cluster.
    pub database: Database,
    /// The RDS Proxy in front of the database. Functions and the service reach the database `via: proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    /// Lambda functions, by name (the name is the function's name in AWS, prefixed with the stack name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub functions: BTreeMap<String, Function>,
    /// The ECS stats service behind a load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The audience the stack must hold: used by capacity checks and as load-test defaults.
    pub event: EventProfile,
    /// CloudWatch alarms: a default set generated from AWS's recommended alarms, plus overrides and extras.
    #[serde(default)]
    pub alarms: Alarms,
    /// How changes are shipped: one at a time, shifted gradually, baked while alarms are watched.
    #[serde(default)]
    pub rollout: Rollout,
    /// What a load test must show before `preflight` calls the stack ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadtest: Option<LoadTestCriteria>,
    /// The team's own runbooks, besides the ones statsctl ships (`statsctl runbook list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbooks: Option<RunbookSettings>,
    /// Per-environment overrides (`local`, `dev`, `prod`, …): any part of this file, deep-merged over the base.
    #[serde(default, skip_serializing)]
    #[schemars(with = "BTreeMap<String, EnvironmentOverlay>")]
    pub environments: BTreeMap<String, serde_json::Value>,
}

/// Any part of the stack file, overriding the base for one environment. Maps merge key by key; scalars and
/// lists replace.
// Only this description is kept: `loader::schema()` replaces the generated definition by a partial copy of the
// stack's own schema (every type, nothing required), so overlay keys are checked at every depth.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(extend("additionalProperties" = false))]
pub struct EnvironmentOverlay {
    stack: Option<serde_json::Value>,
    region: Option<serde_json::Value>,
    tags: Option<serde_json::Value>,
    aws: Option<serde_json::Value>,
    network: Option<serde_json::Value>,
    database: Option<serde_json::Value>,
    proxy: Option<serde_json::Value>,
    functions: Option<serde_json::Value>,
    service: Option<serde_json::Value>,
    event: Option<serde_json::Value>,
    alarms: Option<serde_json::Value>,
    rollout: Option<serde_json::Value>,
    loadtest: Option<serde_json::Value>,
}

/// The schema of `loadtest.latency`: a closed set of percentile keys (`crate::PERCENTILE_KEYS`), so a typo such
/// as `p5` is an unknown field — in the base and in every environment overlay — instead of a limit never checked.
#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(extend("additionalProperties" = false))]
pub struct LatencyLimits {
    /// Median latency limit.
    p50: Option<Span>,
    /// 90th percentile latency limit.
    p90: Option<Span>,
    /// 99th percentile latency limit.
    p99: Option<Span>,
    /// 99.9th percentile latency limit.
    #[serde(rename = "p99.9")]
    p99_9: Option<Span>,
    /// Slowest request allowed.
    max: Option<Span>,
}

/// How statsctl reaches AWS for this stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Endpoint override, e.g. the local emulator `http://127.0.0.1:4566`. `--endpoint-url` and
    /// `AWS_ENDPOINT_URL` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// AWS profile to use (`--profile` and `AWS_PROFILE` take precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The account's Lambda concurrency quota, used when `GetAccountSettings` cannot be read. AWS's default
    /// quota is 1000 (Lambda developer guide, "Lambda quotas").
    #[serde(default = "default_account_concurrency")]
    #[schemars(range(min = 1))]
    pub lambda_concurrency_limit: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            endpoint_url: None,
            profile: None,
            lambda_concurrency_limit: default_account_concurrency(),
        }
    }
}

fn default_account_concurrency() -> u32 {
    crate::facts::LAMBDA_DEFAULT_ACCOUNT_CONCURRENCY.value
}

/// Network: exactly one of `existing` or `create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Use an existing VPC and subnets, referenced by id. statsctl never modifies or deletes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingNetwork>,
    /// Create a VPC and subnets owned by the stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistingNetwork {
    /// VPC id, e.g. `vpc-0abc123`.
    pub vpc_id: String,
    /// Private subnet ids (two or more, in different availability zones, for the database and the proxy).
    #[schemars(length(min = 1))]
    pub subnet_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNetwork {
    /// The VPC's IPv4 CIDR block, e.g. `10.42.0.0/16`.
    pub cidr: String,
    /// Subnets to create in it (two or more, in different availability zones).
    #[schemars(length(min = 1))]
    pub subnets: Vec<SubnetSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// The subnet's CIDR block, inside the VPC's.
    pub cidr: String,
    /// Availability zone, e.g. `eu-west-1a`.
    pub availability_zone: String,
}

/// The Aurora PostgreSQL cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// The cluster identifier (`DBClusterIdentifier`).
    pub cluster_id: String,
    /// Aurora PostgreSQL engine version, e.g. `15.4`.
    pub engine_version: String,
    /// Provisioned writer instance class, e.g. `db.r6g.large`. Exactly one of `instance_class` or `serverless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_class: Option<String>,
    /// Aurora Serverless v2 capacity range. Exactly one of `instance_class` or `serverless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessScaling>,
    /// Number of instances (the first is the writer).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 16))]
    pub instances: u32,
    /// Name of the database created in the cluster.
    pub database_name: String,
    /// The master user's name. Its password lives only in `credentials_secret`.
    pub master_username: String,
    /// Secrets Manager secret (name or ARN) holding the master credentials. Never write a password here: if the
    /// secret does not exist, deploy creates it with a generated password.
    pub credentials_secret: String,
    /// The database's real `max_connections`, when you know it (parameter group). Otherwise preflight measures it
    /// (`SHOW max_connections`, the proxy's `MaxDatabaseConnectionsAllowed`) or uses AWS's table for the class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u32>,
    /// Connections kept back for superusers and AWS automation (PostgreSQL `superuser_reserved_connections`,
    /// default 3).
    #[serde(default = "three")]
    pub reserved_connections: u32,
    /// Whether the database may be reached from the internet. Preflight fails when true.
    #[serde(default)]
    pub publicly_accessible: bool,
    /// Where statsctl itself can reach the database with SQL (for `SHOW max_connections`, `pg_stat_activity`).
    /// Optional: without it, SQL-based checks are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlEndpoint>,
}

/// Aurora Serverless v2 scaling range, in Aurora capacity units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerlessScaling {
    /// Minimum ACUs (0 to 256, in steps of 0.5).
    #[schemars(range(min = 0.0, max = 256.0))]
    pub min_acu: f64,
    /// Maximum ACUs (1 to 256, in steps of 0.5); sets the default max_connections.
    #[schemars(range(min = 1.0, max = 256.0))]
    pub max_acu: f64,
}

/// A SQL endpoint statsctl connects to for read-only diagnostics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlEndpoint {
    pub host: String,
    #[serde(default = "pg_port")]
    pub port: u16,
    pub user: String,
    /// Database name (default: the cluster's `database_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    /// Name of an environment variable holding the password (never the password itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A standard PostgreSQL password file (`host:port:database:user:password` lines) to take the password from
    /// when `password_env` gives none; default: the `PGPASSFILE` variable. `statsctl local up` writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passfile: Option<String>,
}

/// The RDS Proxy and its default target group's pool settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    /// The proxy's name (`DBProxyName`).
    pub name: String,
    /// Percent of the database's max_connections the proxy may open (1–100; AWS default 100).
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 100))]
    pub max_connections_percent: u32,
    /// Percent of max_connections the proxy may keep idle (0–100, at most `max_connections_percent`; AWS
    /// default: half of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_idle_connections_percent: Option<u32>,
    /// How long a client waits for a pooled connection when the pool is full (0s–300s; AWS default 120s).
    #[serde(default = "borrow_timeout")]
    pub connection_borrow_timeout: Span,
    /// Idle client connections are closed after this (1s–8h; AWS default 30m).
    #[serde(default = "idle_client_timeout")]
    pub idle_client_timeout: Span,
    /// Require IAM authentication (clients need `rds-db:connect` on this proxy for their DB user).
    #[serde(default = "yes")]
    pub iam_auth: bool,
    /// Require TLS between clients and the proxy.
    #[serde(default = "yes")]
    pub require_tls: bool,
}

/// How a function or the service reaches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Through the stack's RDS Proxy (recommended for Lambda).
    Proxy,
    /// Straight to the cluster's writer endpoint.
    Direct,
}

/// How a client holds database connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connections {
    /// A pool of `pool_size` per instance.
    #[default]
    Pool,
    /// A new connection for every request.
    PerRequest,
}

impl Connections {
    pub fn is_pool(&self) -> bool {
        *self == Connections::Pool
    }
}

/// A function's or the service's database access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbAccess {
    /// `proxy` or `direct`.
    pub via: Via,
    /// The environment variable that carries the database host (deploy sets it).
    #[serde(default = "db_host_env")]
    pub host_env: String,
    /// Connections each instance (Lambda execution environment or ECS task) opens at most: its pool size.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub pool_size: u32,
    /// `pool` (default): each instance keeps at most `pool_size` connections and requests wait for one.
    /// `per_request`: every request in flight has a connection of its own (opened when none is idle, kept while
    /// warm) — the service then holds as many connections as requests were in flight at once, bounded by nothing
    /// (a Lambda execution environment serves one request at a time, so for a function it is one connection per
    /// instance).
    #[serde(default, skip_serializing_if = "Connections::is_pool")]
    pub connections: Connections,
    /// The database user it connects as.
    pub user: String,
}

/// A Lambda function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// The code: a `.zip` file or a directory (zipped reproducibly), relative to the stack file.
    pub artifact: String,
    /// Lambda runtime, e.g. `provided.al2023`, `python3.12`.
    pub runtime: String,
    /// Handler, e.g. `bootstrap` or `app.handler`.
    pub handler: String,
    /// Memory in MB (128–10240).
    #[serde(default = "memory_default")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mb: u32,
    /// Timeout (1s–15m).
    #[serde(default = "timeout_default")]
    pub timeout: Span,
    /// Reserved concurrency: reserves and caps concurrent executions. Unset: the function can use all of the
    /// account's unreserved concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    /// Environment variables (deploy adds the database host variable itself). A secret is never written here:
    /// reference it as `NAME: { secret: NAME_OR_ARN, key: JSON_KEY }`; Lambda has no secret variables, so deploy
    /// sets `NAME_SECRET_ARN` (and `NAME_SECRET_KEY`) and grants the function's role
    /// `secretsmanager:GetSecretValue` on that secret, for the code to read at start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, EnvValue>,
    /// How the function reaches the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DbAccess>,
    /// The alias traffic goes through; deploy shifts it to each new version in the `rollout:` steps (weighted routing).
    #[serde(default = "alias_default")]
    pub alias: String,
}

/// The ECS stats service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// ECS cluster name.
    pub cluster: String,
    /// Container image, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/stats-service:1.4.2`.
    pub image: String,
    /// Task CPU units (256 = 0.25 vCPU).
    #[schemars(range(min = 128))]
    pub cpu: u32,
    /// Task memory in MB.
    #[schemars(range(min = 128))]
    pub memory_mb: u32,
    /// Tasks to run normally.
    #[schemars(range(min = 0))]
    pub desired_count: u32,
    /// The most tasks autoscaling may run: the worst case for connection budgets.
    #[schemars(range(min = 1))]
    pub max_count: u32,
    /// Container port.
    pub port: u16,
    /// Health check path on the container port.
    #[serde(default = "healthz")]
    pub health_check_path: String,
    /// Environment variables (deploy adds the database host variable itself). A secret is never written here:
    /// reference it as `NAME: { secret: NAME_OR_ARN, key: JSON_KEY }`; deploy puts it in the task definition's
    /// `secrets` (`valueFrom: <secret-arn>:<key>::`), so ECS sets `NAME` from Secrets Manager when the task
    /// starts, and grants the task's role `secretsmanager:GetSecretValue` on that secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, EnvValue>,
    /// How the service reaches the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DbAccess>,
    /// The load balancer in front of it.
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// How long deploy waits for the service to reach its desired count of running tasks with one
    /// deployment (default 10m). `0s`: do not wait (an environment with no task capacity, such as the local
    /// emulator, which never starts tasks).
    #[serde(default = "steady_state_default")]
    pub steady_state_timeout: Span,
}

/// An environment variable's value: plain text, or a reference to a Secrets Manager secret. A plain value
/// under a secret-looking name (`PASSWORD`, `SECRET`, `TOKEN`, `API_KEY`, `CREDENTIALS`, …) or that looks like
/// a secret (a URL with a password) is refused: secrets are referenced, never written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    /// A reference to a Secrets Manager secret.
    Secret(SecretRef),
    /// A plain value (never a secret).
    Plain(String),
}

/// `{ secret: NAME_OR_ARN, key: JSON_KEY }`: the value of a Secrets Manager secret, resolved to its ARN by
/// `DescribeSecret` at plan time (a secret that does not exist blocks the plan). Functions get
/// `NAME_SECRET_ARN` (and `NAME_SECRET_KEY` when `key` is given) and `secretsmanager:GetSecretValue` on it; the
/// service gets `NAME` itself through the task definition's `secrets` (`valueFrom: <arn>:<key>::`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's name or ARN, e.g. `live-stats/api-token`.
    #[schemars(length(min = 1))]
    pub secret: String,
    /// The key inside a JSON secret (e.g. `password`); without it, the whole secret string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl EnvValue {
    /// The plain value, if this is not a secret reference.
    pub fn plain(&self) -> Option<&str> {
        match self {
            EnvValue::Plain(v) => Some(v),
            EnvValue::Secret(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    /// Listener port on the load balancer.
    #[serde(default = "http_port")]
    pub listener_port: u16,
    /// Internal (private) load balancer instead of internet-facing.
    #[serde(default)]
    pub internal: bool,
}

impl Default for LoadBalancer {
    fn default() -> Self {
        LoadBalancer {
            listener_port: http_port(),
            internal: false,
        }
    }
}

/// The event the stack must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventProfile {
    /// Viewers expected at peak.
    #[schemars(range(min = 1))]
    pub expected_viewers: u64,
    /// Each viewer's browser polls the stats API this often.
    pub poll_interval: Span,
    /// Sudden multiplication of load (e.g. 3 when a big B2B customer may switch on).
    #[serde(default = "one_f")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub spike_factor: f64,
    /// Expected server-side duration of one request (how long it holds a connection).
    pub request_duration: Span,
}

/// CloudWatch alarms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alarms {
    /// Where alarms notify (SNS topic ARNs). Preflight fails when an alarm notifies no one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Changes to generated alarms, by id (`statsctl plan` lists the ids).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, AlarmOverride>,
    /// Alarms besides the generated ones, by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, AlarmSpec>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmOverride {
    /// `false` drops the generated alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Absolute threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Threshold as a percent of the limit it guards (e.g. 90 for 90% of max_connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub threshold_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub evaluation_periods: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub datapoints_to_alarm: Option<u32>,
}

/// A CloudWatch metric alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    /// e.g. `AWS/RDS`.
    pub namespace: String,
    /// e.g. `DatabaseConnections`.
    pub metric: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Sum`, `Maximum`, `Minimum`, `SampleCount`, or a percentile like `p90`.
    pub statistic: String,
    pub comparison: Comparison,
    pub threshold: f64,
    #[serde(default = "minute")]
    pub period: Span,
    #[serde(default = "five")]
    #[schemars(range(min = 1))]
    pub evaluation_periods: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub datapoints_to_alarm: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
}

/// How changes are to ship: `deploy` ships one unit at a time (core/src/units.rs) and shifts traffic to each new
/// function version or service colour in these steps, watching alarms (core/src/rollout.rs decides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// `canary` (shift `canary_percent`, bake, then the rest), `linear` (`step_percent` every `step_interval`) or
    /// `all_at_once`.
    #[serde(default = "canary")]
    pub strategy: Strategy,
    /// First shift for canary rollouts (1–99).
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 99))]
    pub canary_percent: u32,
    /// Shift per step for linear rollouts (1–99).
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 99))]
    pub step_percent: u32,
    /// Time between linear steps.
    #[serde(default = "minute")]
    pub step_interval: Span,
    /// Time alarms are watched after the last shift before the change counts as done (0s–24h).
    #[serde(default = "bake_default")]
    pub bake_time: Span,
    /// Alarms watched during each shift and bake (names as the stack's alarms are named); empty means every
    /// alarm the stack owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
    /// How long the previous service colour keeps running after a rollout, so a rollback is instant.
    #[serde(default = "keep_previous_default")]
    pub keep_previous: Span,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            strategy: canary(),
            canary_percent: ten(),
            step_percent: ten(),
            step_interval: minute(),
            bake_time: bake_default(),
            watch: Vec::new(),
            keep_previous: keep_previous_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Canary,
    Linear,
    AllAtOnce,
}

/// What a passing load test must show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadTestCriteria {
    /// URLs the load test polls (only these, or `--target`, are ever loaded).
    #[schemars(length(min = 1))]
    pub targets: Vec<String>,
    /// Latency limits by percentile: keys `p50`, `p90`, `p99`, `p99.9`, `max`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "LatencyLimits")]
    pub latency: BTreeMap<String, Span>,
    /// Highest acceptable error rate, 0–1 (e.g. 0.01 for 1%).
    #[serde(default = "error_rate_default")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
    /// The test must reach expected viewers × this (e.g. 1.2 for 20% headroom).
    #[serde(default = "headroom_default")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub headroom: f64,
    /// A passing test older than this no longer counts.
    #[serde(default = "max_age_default")]
    pub max_age: Span,
    /// A test counts for preflight only when it held expected viewers × headroom at least this long without a
    /// break (measured by the engine, to the second) and reached the event's spike. Default 5m: with the default
    /// profile's two holds this long, a test fits `statsctl loadtest`'s 15-minute cap.
    #[serde(default = "min_hold_default")]
    pub min_hold: Span,
    /// Stage list as `kind:viewers:duration,…` with kind `ramp`, `hold` or `spike`, e.g.
    /// `ramp:1500:60s,hold:1500:5m,spike:4500:1s,hold:4500:1m,ramp:0:30s` (default: derived from `event`:
    /// ramp, hold, spike × spike_factor within 1s, hold, ramp down). `--stages` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<String>,
    /// When viewers poll relative to each other: `uniform` (random phase, default) or `waves:COUNT:SPREAD`
    /// (page-load waves that stay in sync, e.g. `waves:1:100ms` when a stream starts; viewers let in by a ramp or
    /// a spike join the next wave). `--arrival` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// Load-generator workers: the viewers are split into this many disjoint shards, each run by its own
    /// process (`--runner local`) or ECS task (`--runner ecs`), and their results merged exactly. 1 (default):
    /// `statsctl loadtest` generates the load itself. `--workers` overrides it.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(range(min = 1, max = 256))]
    pub workers: u32,
    /// Container image of statsctl itself for ECS load-test workers (built with `loadtest/Dockerfile`). With
    /// `workers` above 1, `deploy` registers the `<stack>-<env>-loadgen` task definition that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn hundred() -> u32 {
    100
}
fn yes() -> bool {
    true
}
fn pg_port() -> u16 {
    5432
}
fn http_port() -> u16 {
    80
}
fn memory_default() -> u32 {
    128
}
fn timeout_default() -> Span {
    Span::secs(3)
}
fn borrow_timeout() -> Span {
    Span::secs(120)
}
fn idle_client_timeout() -> Span {
    Span::secs(1800)
}
fn steady_state_default() -> Span {
    Span::secs(600)
}
fn minute() -> Span {
    Span::secs(60)
}
fn bake_default() -> Span {
    Span::secs(300)
}
fn keep_previous_default() -> Span {
    Span::secs(30 * 60)
}
fn canary() -> Strategy {
    Strategy::Canary
}
fn db_host_env() -> String {
    "DB_HOST".to_string()
}
fn alias_default() -> String {
    "live".to_string()
}
fn healthz() -> String {
    "/healthz".to_string()
}
fn error_rate_default() -> f64 {
    0.01
}
fn headroom_default() -> f64 {
    1.2
}
fn max_age_default() -> Span {
    Span::secs(7 * 86_400)
}
fn min_hold_default() -> Span {
    Span::secs(300)
}

impl StackFile {
    /// The prefix of every name statsctl derives in an environment: `<stack>-<env>`.
    pub fn prefix(&self, env: &str) -> String {
        format!("{}-{}", self.stack, env)
    }

    /// The AWS name of a function: `<stack>-<env>-<name>`.
    pub fn function_name(&self, env: &str, name: &str) -> String {
        format!("{}-{}", self.prefix(env), name)
    }
}

/// A stack after environment merge, substitution and validation: what every command works from.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedStack {
    /// The environment it was resolved for (`None` when the file has no environments).
    pub env: Option<String>,
    /// Path of the stack file.
    pub path: std::path::PathBuf,
    #[serde(flatten)]
    pub spec: StackFile,
}

/// Where `statsctl runbook` finds the team's own runbooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookSettings {
    /// A directory of runbook files (`*.yaml`), relative to the stack file.
    pub dir: String,
}
