//! What the stack wants to exist, as typed data: stack file (+ environment) + the few facts only AWS knows
//! (endpoints, ids, account) → the desired resources, each a [`Spec`]. Pure. One file per family of
//! resources; [`desired`] concatenates them in dependency order.
//!
//! The function→proxy link is built here: a function that reaches the database `via: proxy` gets the proxy's
//! endpoint in its host variable, the proxy's subnets, a security group the proxy's group admits on 5432, and
//! (with IAM auth) `rds-db:connect` on the proxy's `prx-` resource id for its database user.

mod alarms;
mod database;
mod functions;
mod iam;
pub mod loadgen;
mod network;
pub mod service;

pub use crate::canonical::{comparison_name, format_number, missing_secret, missing_secret_in};
use std::collections::BTreeMap;

use serde_json::json;

use crate::facts;
use crate::inventory::{sorted_unique, Desired, Kind, Observed};
use crate::model::{DbAccess, EnvValue, SecretRef, StackFile, Via};
use crate::spec::{Ref, Spec};

/// A function's code, packaged (deterministically) before anything talks to AWS.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Base64 SHA-256 of the zip, the way Lambda reports `CodeSha256`.
    pub sha256: String,
    pub zip: Vec<u8>,
}

/// Names statsctl derives for one stack in one environment.
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(stack: &StackFile, env: &str) -> Names {
        Names {
            prefix: stack.prefix(env),
        }
    }
    pub fn vpc(&self) -> String {
        self.prefix.clone()
    }
    pub fn subnet(&self, i: usize) -> String {
        format!("{}-{}", self.prefix, i + 1)
    }
    pub fn sg(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
    pub fn function_role(&self, function: &str) -> String {
        format!("{}-fn-{function}", self.prefix)
    }
    pub fn proxy_role(&self) -> String {
        format!("{}-proxy", self.prefix)
    }
    pub fn task_role(&self) -> String {
        format!("{}-task", self.prefix)
    }
    pub fn db_connect_policy(role: &str) -> String {
        format!("{role}/rds-db-connect")
    }
    pub fn load_balancer(&self) -> String {
        self.prefix.clone()
    }
    pub fn target_group(&self) -> String {
        format!("{}-svc", self.prefix)
    }
    pub fn task_family(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }
}

pub const POSTGRES_PORT: u16 = 5432;

/// The subnets the stack runs in, as the names observed state uses for them.
pub fn subnet_names(stack: &StackFile, names: &Names) -> Vec<String> {
    match (&stack.network.existing, &stack.network.create) {
        (Some(e), _) => e.subnet_ids.clone(),
        (None, Some(c)) => (0..c.subnets.len()).map(|i| names.subnet(i)).collect(),
        (None, None) => vec![],
    }
}

/// The `prx-…` resource id in a proxy ARN (`arn:aws:rds:REGION:ACCOUNT:db-proxy:prx-…`).
pub fn proxy_resource_id(arn: &str) -> Option<&str> {
    arn.rsplit(':').next().filter(|id| id.starts_with("prx-"))
}

/// The IAM resource `rds-db:connect` needs for `user` through a proxy (aws-facts.md §1).
pub fn db_connect_resource(region: &str, account: &str, prx_id: &str, user: &str) -> String {
    format!("arn:aws:rds-db:{region}:{account}:dbuser:{prx_id}/{user}")
}

/// Every secret the stack's environment variables reference, by name or ARN as written (sorted, once each):
/// what observe resolves with `DescribeSecret`.
pub fn referenced_secrets(stack: &StackFile) -> Vec<String> {
    let functions = stack.functions.values().map(|f| &f.environment);
    let service = stack.service.iter().map(|s| &s.environment);
    sorted_unique(
        functions
            .chain(service)
            .flat_map(|vars| vars.values())
            .filter_map(|v| match v {
                EnvValue::Secret(r) => Some(r.secret.clone()),
                EnvValue::Plain(_) => None,
            }),
    )
}

/// The database's max_connections as far as the stack file and AWS's table know it (alarm thresholds).
pub fn max_connections_estimate(stack: &StackFile) -> Option<u32> {
    stack.database.max_connections.or_else(|| {
        if let Some(class) = &stack.database.instance_class {
            facts::aurora_max_connections_for_class(class).map(|t| t.max_connections)
        } else {
            stack
                .database
                .serverless
                .as_ref()
                .and_then(|s| facts::aurora_serverless_max_connections(s.min_acu, s.max_acu))
                .map(|t| t.max_connections)
        }
    })
}

/// What every family of resources is decided from.
struct Ctx<'a> {
    stack: &'a StackFile,
    env: &'a str,
    observed: &'a Observed,
    artifacts: &'a BTreeMap<String, Artifact>,
    n: Names,
    /// The subnets everything runs in, by the names observed state uses.
    subnets: Vec<String>,
    /// The VPC by the name observed state uses: an existing one's id, or the one the stack creates.
    vpc: String,
    /// `None` until the account is known (no credentials yet read).
    account: Option<&'a str>,
}

impl Ctx<'_> {
    /// Does any function reach the database `via`?
    fn functions_via(&self, via: Via) -> bool {
        self.stack
            .functions
            .values()
            .any(|f| f.database.as_ref().is_some_and(|d| d.via == via))
    }
    /// Does the service reach the database `via`?
    fn service_via(&self, via: Via) -> bool {
        self.stack
            .service
            .as_ref()
            .and_then(|s| s.database.as_ref())
            .is_some_and(|d| d.via == via)
    }

    /// The host a client using `db` is given: the proxy endpoint or the cluster's writer endpoint.
    fn db_host(&self, db: &DbAccess) -> Ref {
        let found = match db.via {
            Via::Proxy => self
                .stack
                .proxy
                .as_ref()
                .and_then(|p| self.observed.output(Kind::Proxy, &p.name, "endpoint")),
            Via::Direct => {
                self.observed
                    .output(Kind::DbCluster, &self.stack.database.cluster_id, "endpoint")
            }
        };
        Ref::or_after_apply(found)
    }

    /// The ARN of a referenced secret: from live state; the credentials secret, which deploy creates, may not
    /// exist yet (known after apply); any other secret that does not exist is marked missing.
    fn secret_arn(&self, r: &SecretRef) -> Ref {
        match self.observed.output(Kind::Secret, &r.secret, "arn") {
            Some(arn) => Ref::Known(arn.to_string()),
            None if r.secret == self.stack.database.credentials_secret => Ref::AfterApply,
            None => Ref::MissingSecret(r.secret.clone()),
        }
    }

    /// The credentials secret's ARN (deploy creates it).
    fn credentials_arn(&self) -> Ref {
        Ref::or_after_apply(self.observed.output(
            Kind::Secret,
            &self.stack.database.credentials_secret,
            "arn",
        ))
    }

    /// A function's or the service's environment split into plain variables and secret references resolved to
    /// `(variable, arn, key)`.
    fn split_environment(
        &self,
        vars: &BTreeMap<String, EnvValue>,
    ) -> (BTreeMap<String, Ref>, Secrets) {
        let mut plain = BTreeMap::new();
        let mut secrets = Vec::new();
        for (k, v) in vars {
            match v {
                EnvValue::Plain(v) => {
                    plain.insert(k.clone(), Ref::Known(v.clone()));
                }
                EnvValue::Secret(r) => secrets.push((k.clone(), self.secret_arn(r), r.key.clone())),
            }
        }
        (plain, secrets)
    }
}

/// Secret references resolved: `(variable, secret ARN, JSON key)`.
type Secrets = Vec<(String, Ref, Option<String>)>;

/// The statement letting a role read the secrets it references (none: no statement).
fn read_secrets(arns: impl IntoIterator<Item = Ref>) -> Option<serde_json::Value> {
    let arns: Vec<String> = sorted_unique(arns.into_iter().map(|a| a.render()))
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    (!arns.is_empty()).then(
        || json!({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": arns}),
    )
}

/// The ledger bucket's name: lowercase, at most 63 characters, unique per account.
pub fn ledger_bucket_name(stack: &StackFile, env: &str, account: &str) -> String {
    let mut name = format!("{}-{env}-ledger-{account}", stack.stack)
        .to_ascii_lowercase()
        .replace('_', "-");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// The ledger: load-test results and deploy history, append-only. Its name holds the account id, so it is
/// only wanted once the account is known.
fn ledger(cx: &Ctx) -> Vec<Desired> {
    // Versioning is switched on at creation but not compared: records are append-only by their unique keys
    // (written with If-None-Match), which is what the ledger relies on.
    cx.account
        .map(|account| {
            Desired::from_spec(ledger_bucket_name(cx.stack, cx.env, account), Spec::Ledger)
        })
        .into_iter()
        .collect()
}

/// Everything the stack wants, in dependency order.
pub fn desired(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
    artifacts: &BTreeMap<String, Artifact>,
) -> Vec<Desired> {
    let n = Names::new(stack, env);
    let cx = Ctx {
        stack,
        env,
        observed,
        artifacts,
        subnets: subnet_names(stack, &n),
        vpc: match (&stack.network.existing, &stack.network.create) {
            (Some(e), _) => e.vpc_id.clone(),
            _ => n.vpc(),
        },
        account: (!observed.account_id.is_empty()).then_some(observed.account_id.as_str()),
        n,
    };
    let mut out = network::desired(&cx);
    out.extend(iam::desired(&cx));
    out.extend(ledger(&cx));
    out.extend(database::desired(&cx));
    out.extend(functions::desired(&cx));
    out.extend(service::desired(&cx));
    out.extend(loadgen::desired(&cx));
    out.extend(alarms::desired(&cx));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Key, ObservedResource, KNOWN_AFTER_APPLY};

    use crate::testing::shipped;

    #[test]
    fn proxy_link_is_built_from_observed_proxy() {
        let stack = shipped("local");
        let mut observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        let before = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = before
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert!(f.get("environment").contains(KNOWN_AFTER_APPLY), "{f:?}");

        let mut proxy = ObservedResource {
            id: "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc".into(),
            ..Default::default()
        };
        proxy.outputs.insert(
            "endpoint".into(),
            "live-stats-proxy.proxy-x.us-east-1.rds.amazonaws.com".into(),
        );
        observed
            .resources
            .insert(Key::new(Kind::Proxy, "live-stats-proxy"), proxy);
        let after = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = after
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert!(
            f.get("environment")
                .contains("\"DB_HOST\":\"live-stats-proxy.proxy-x.us-east-1.rds.amazonaws.com\""),
            "{f:?}"
        );
        assert_eq!(f.get("security_groups"), "live-stats-local-fn");
        let grant = after
            .iter()
            .find(|d| {
                d.key
                    == Key::new(
                        Kind::RolePolicy,
                        "live-stats-local-fn-stats-api/rds-db-connect",
                    )
            })
            .unwrap();
        assert!(
            grant
                .get("policy")
                .contains("arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/stats_api"),
            "{grant:?}"
        );
        let proxy_sg = after
            .iter()
            .find(|d| d.key == Key::new(Kind::Ingress, "live-stats-local-proxy"))
            .unwrap();
        assert_eq!(
            proxy_sg.get("rules"),
            "tcp:5432:sg:live-stats-local-fn,tcp:5432:sg:live-stats-local-svc"
        );
    }

    #[test]
    fn secret_references_reach_lambda_and_ecs_the_aws_native_way() {
        use crate::model::{EnvValue, SecretRef};
        let reference = |secret: &str, key: Option<&str>| {
            EnvValue::Secret(SecretRef {
                secret: secret.into(),
                key: key.map(str::to_string),
            })
        };
        let mut stack = shipped("local");
        let api = stack.functions.get_mut("stats-api").unwrap();
        api.environment.insert(
            "API_TOKEN".into(),
            reference("live-stats/api-token", Some("token")),
        );
        let ingester = stack.functions.get_mut("log-ingester").unwrap();
        // The credentials secret, which deploy itself creates: known after apply, not missing.
        ingester.environment.insert(
            "DB_PASSWORD".into(),
            reference("live-stats/db-master", Some("password")),
        );
        let svc = stack.service.as_mut().unwrap();
        svc.environment
            .insert("API_TOKEN".into(), reference("live-stats/api-token", None));
        svc.environment.insert(
            "DB_USER".into(),
            reference("live-stats/api-token", Some("user")),
        );
        assert_eq!(
            referenced_secrets(&stack),
            vec!["live-stats/api-token", "live-stats/db-master"]
        );

        let arn =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:live-stats/api-token-AbCdEf";
        let mut observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        let mut secret = ObservedResource {
            id: arn.into(),
            ..Default::default()
        };
        secret.outputs.insert("arn".into(), arn.into());
        observed
            .referenced
            .insert(Key::new(Kind::Secret, "live-stats/api-token"), secret);
        let all = desired(&stack, "local", &observed, &BTreeMap::new());
        let get = |kind: Kind, name: &str| {
            all.iter()
                .find(|d| d.key == Key::new(kind, name))
                .unwrap_or_else(|| panic!("{kind:?} {name}"))
        };
        let env: BTreeMap<String, String> = serde_json::from_str(
            get(Kind::Function, "live-stats-local-stats-api").get("environment"),
        )
        .unwrap();
        assert_eq!(env["API_TOKEN_SECRET_ARN"], arn);
        assert_eq!(env["API_TOKEN_SECRET_KEY"], "token");
        assert!(!env.contains_key("API_TOKEN"), "{env:?}");
        let policy = get(Kind::Role, "live-stats-local-fn-stats-api").get("policy");
        assert!(
            policy.contains(&format!(
                r#"{{"Action":["secretsmanager:GetSecretValue"],"Effect":"Allow","Resource":["{arn}"]}}"#
            )),
            "{policy}"
        );
        let ingester_env = get(Kind::Function, "live-stats-local-log-ingester").get("environment");
        assert!(
            ingester_env.contains(&format!(
                r#""DB_PASSWORD_SECRET_ARN":"{KNOWN_AFTER_APPLY}""#
            )),
            "{ingester_env}"
        );

        let task = get(Kind::TaskDefinition, "live-stats-local-stats-service");
        assert_eq!(
            task.get("secrets"),
            format!(r#"{{"API_TOKEN":"{arn}","DB_USER":"{arn}:user::"}}"#)
        );
        // A variable delivered as a secret is not also set in plain text by the service defaults.
        assert!(!task.get("environment").contains("DB_USER"), "{task:?}");
        assert!(get(Kind::Role, "live-stats-local-task")
            .get("policy")
            .contains("secretsmanager:GetSecretValue"),);
        // Without references, no grant and an empty `secrets`.
        let plain = desired(&shipped("local"), "local", &observed, &BTreeMap::new());
        assert!(plain.iter().all(
            |d| !d.get("policy").contains("secretsmanager:GetSecretValue")
                || d.key.name == "live-stats-local-proxy"
        ));

        // A secret that does not exist is marked, and the plan blocks what uses it.
        observed.referenced.clear();
        let all = desired(&stack, "local", &observed, &BTreeMap::new());
        let f = all
            .iter()
            .find(|d| d.key == Key::new(Kind::Function, "live-stats-local-stats-api"))
            .unwrap();
        assert_eq!(
            missing_secret_in(f.get("environment")),
            Some("live-stats/api-token")
        );
        let owner = crate::inventory::Owner {
            stack: "live-stats".into(),
            env: "local".into(),
        };
        let p = crate::plan::plan(&owner, &all, &observed);
        let blocked: Vec<String> = p.blocked().iter().map(|c| c.key.to_string()).collect();
        assert!(
            blocked.contains(&"lambda_function.live-stats-local-stats-api".to_string())
                && blocked.contains(&"task_definition.live-stats-local-stats-service".to_string()),
            "{blocked:?}"
        );
        assert!(!blocked.contains(&"lambda_function.live-stats-local-log-ingester".to_string()));
    }

    #[test]
    fn numbers_are_typed_and_render_in_decimal() {
        use crate::spec::Spec;
        let mut stack = shipped("prod");
        // prod sets stats-api to 512; the base stack file says 256.
        stack.functions.get_mut("stats-api").unwrap().memory_mb = 256;
        let svc = stack.service.as_mut().unwrap();
        svc.port = 9090;
        svc.memory_mb = 2048;
        svc.load_balancer.listener_port = 8443;
        let all = desired(&stack, "prod", &Observed::default(), &BTreeMap::new());
        let get = |kind: Kind, name: &str| {
            all.iter()
                .find(|d| d.key == Key::new(kind, name))
                .unwrap_or_else(|| panic!("{kind:?} {name}"))
        };
        let api = get(Kind::Function, "live-stats-prod-stats-api");
        let Spec::Function(f) = &api.spec else {
            panic!("{api:?}")
        };
        assert_eq!((f.memory_mb, f.timeout_secs), (256, 10));
        let tg = get(Kind::TargetGroup, "live-stats-prod-svc");
        let Spec::TargetGroup(t) = &tg.spec else {
            panic!("{tg:?}")
        };
        assert_eq!(t.port, 9090);
        for (kind, name, attr, want) in [
            (
                Kind::Function,
                "live-stats-prod-stats-api",
                "memory_mb",
                "256",
            ),
            (Kind::Function, "live-stats-prod-stats-api", "timeout", "10"),
            (
                Kind::Function,
                "live-stats-prod-log-ingester",
                "memory_mb",
                "512",
            ),
            (Kind::TargetGroup, "live-stats-prod-svc", "port", "9090"),
            (Kind::Listener, "live-stats-prod:8443", "port", "8443"),
            (
                Kind::TaskDefinition,
                "live-stats-prod-stats-service",
                "memory_mb",
                "2048",
            ),
            (
                Kind::TaskDefinition,
                "live-stats-prod-stats-service",
                "port",
                "9090",
            ),
            (Kind::EcsService, "stats-service", "desired_count", "3"),
            (
                Kind::ProxyTargetGroup,
                "live-stats-proxy/default",
                "connection_borrow_timeout",
                "30",
            ),
            (
                Kind::Proxy,
                "live-stats-proxy",
                "idle_client_timeout",
                "1800",
            ),
        ] {
            assert_eq!(get(kind, name).get(attr), want, "{kind:?} {name} {attr}");
        }
        // The service's own port reaches it as PORT, from the same number.
        assert!(get(Kind::TaskDefinition, "live-stats-prod-stats-service")
            .get("environment")
            .contains(r#""PORT":"9090""#));
    }

    #[test]
    fn the_alias_key_is_function_colon_alias() {
        let stack = shipped("local");
        let all = desired(&stack, "local", &Observed::default(), &BTreeMap::new());
        let aliases: Vec<&Key> = all
            .iter()
            .map(|d| &d.key)
            .filter(|k| k.kind == Kind::Alias)
            .collect();
        assert_eq!(
            aliases,
            vec![
                &Key::alias("live-stats-local-log-ingester", "live"),
                &Key::alias("live-stats-local-stats-api", "live"),
            ]
        );
        assert_eq!(
            Key::split_alias_name("live-stats-local-stats-api:live"),
            Some(("live-stats-local-stats-api", "live"))
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            proxy_resource_id("arn:aws:rds:eu-west-1:1:db-proxy:prx-123"),
            Some("prx-123")
        );
        assert_eq!(proxy_resource_id("arn:aws:rds:eu-west-1:1:cluster:c"), None);
        assert_eq!(format_number(90.0), "90");
        assert_eq!(format_number(0.5), "0.5");
    }
}
