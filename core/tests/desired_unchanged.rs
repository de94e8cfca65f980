//! Pins `desired()`'s canonical attributes for the shipped stack (and a variant exercising the other branches)
//! against a fixture captured before desired state became typed: the typed spec must render exactly the strings
//! plan output and the observed-side comparison have always used.
//!
//! Regenerate (only when the canonical format is meant to change): `STATSCTL_BLESS=1 cargo nextest run
//! --workspace -E 'binary(desired_unchanged)'`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use statsctl_core::desired::{desired, Artifact};
use statsctl_core::inventory::{Key, Kind, Observed, ObservedResource};
use statsctl_core::loader::load_file;
use statsctl_core::model::{
    EnvValue, ExistingNetwork, SecretRef, ServerlessScaling, StackFile, Via,
};

const FIXTURE: &str = "tests/testdata/desired_shipped.json";

fn shipped(env: &str, vars: &BTreeMap<&str, &str>) -> StackFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
    let lookup = |k: &str| vars.get(k).map(|v| v.to_string());
    load_file(&path, Some(env), &lookup).unwrap().spec
}

/// Everything the shipped stack does not exercise: an existing network, a serverless cluster, an internal load
/// balancer, clients that connect directly, secret references (found, missing, the credentials secret).
fn variant() -> StackFile {
    let mut vars = BTreeMap::new();
    vars.insert("STATSCTL_LOCAL_SERVICE_VIA", "direct");
    vars.insert("STATSCTL_LOCAL_SERVICE_CONNECTIONS", "per_request");
    let mut s = shipped("local", &vars);
    s.network.create = None;
    s.network.existing = Some(ExistingNetwork {
        vpc_id: "vpc-0abc".into(),
        subnet_ids: vec!["subnet-b".into(), "subnet-a".into()],
    });
    s.database.instance_class = None;
    s.database.serverless = Some(ServerlessScaling {
        min_acu: 0.5,
        max_acu: 8.0,
    });
    s.proxy.as_mut().unwrap().max_idle_connections_percent = None;
    s.proxy.as_mut().unwrap().iam_auth = false;
    let secret = |name: &str, key: Option<&str>| {
        EnvValue::Secret(SecretRef {
            secret: name.into(),
            key: key.map(str::to_string),
        })
    };
    let api = s.functions.get_mut("stats-api").unwrap();
    api.reserved_concurrency = None;
    api.environment.insert(
        "API_TOKEN".into(),
        secret("live-stats/api-token", Some("t")),
    );
    api.environment
        .insert("GONE".into(), secret("live-stats/missing", None));
    let ingester = s.functions.get_mut("log-ingester").unwrap();
    ingester.database.as_mut().unwrap().via = Via::Direct;
    ingester.environment.insert(
        "DB_PASSWORD".into(),
        secret("live-stats/db-master", Some("password")),
    );
    let svc = s.service.as_mut().unwrap();
    svc.load_balancer.internal = true;
    svc.environment
        .insert("API_TOKEN".into(), secret("live-stats/api-token", None));
    svc.environment.insert(
        "DB_USER".into(),
        secret("live-stats/api-token", Some("user")),
    );
    s
}

fn output(o: &mut Observed, kind: Kind, name: &str, id: &str, outputs: &[(&str, &str)]) {
    let r = o.resources.entry(Key::new(kind, name)).or_default();
    r.id = id.into();
    for (k, v) in outputs {
        r.outputs.insert(k.to_string(), v.to_string());
    }
}

/// Live state after a first deploy: ids, endpoints and dimensions known; the functions and the task definition
/// as the stack wants them (so the alias and the service point at what is live).
fn deployed(stack: &StackFile, env: &str, artifacts: &BTreeMap<String, Artifact>) -> Observed {
    let mut o = Observed {
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        ..Default::default()
    };
    let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:";
    output(
        &mut o,
        Kind::Secret,
        "live-stats/db-master",
        "s1",
        &[("arn", &format!("{arn}db-master-AbC"))],
    );
    o.referenced.insert(
        Key::new(Kind::Secret, "live-stats/api-token"),
        ObservedResource {
            id: "s2".into(),
            outputs: [("arn".to_string(), format!("{arn}api-token-XyZ"))].into(),
            ..Default::default()
        },
    );
    o.referenced.insert(
        Key::new(Kind::Vpc, "vpc-0abc"),
        ObservedResource {
            id: "vpc-0abc".into(),
            outputs: [("cidr".to_string(), "10.9.0.0/16".to_string())].into(),
            ..Default::default()
        },
    );
    output(
        &mut o,
        Kind::Proxy,
        "live-stats-proxy",
        "arn:aws:rds:eu-west-1:123456789012:db-proxy:prx-0abc",
        &[(
            "endpoint",
            "live-stats-proxy.proxy-x.eu-west-1.rds.amazonaws.com",
        )],
    );
    output(
        &mut o,
        Kind::DbCluster,
        "live-stats-db",
        "live-stats-db",
        &[(
            "endpoint",
            "live-stats-db.cluster-x.eu-west-1.rds.amazonaws.com",
        )],
    );
    let prefix = stack.prefix(env);
    output(
        &mut o,
        Kind::LoadBalancer,
        &prefix,
        "lb",
        &[("dimension", "app/lb/0123")],
    );
    output(
        &mut o,
        Kind::TargetGroup,
        &format!("{prefix}-svc"),
        "tg",
        &[("dimension", "targetgroup/tg/0456")],
    );
    // Second pass: functions and task definition live exactly as wanted.
    let wanted = desired(stack, env, &o, artifacts);
    for d in &wanted {
        if matches!(d.key.kind, Kind::Function | Kind::TaskDefinition) {
            let r = o.resources.entry(d.key.clone()).or_default();
            r.id = format!("id-{}", d.key.name);
            r.attrs = d.attrs.clone();
            r.outputs
                .insert("revision_ref".into(), format!("{}:7", d.key.name));
        }
    }
    o
}

fn snapshot(
    stack: &StackFile,
    env: &str,
    observed: &Observed,
    artifacts: &BTreeMap<String, Artifact>,
) -> Value {
    let all = desired(stack, env, observed, artifacts);
    Value::Array(
        all.iter()
            .map(|d| {
                json!({
                    "key": d.key.to_string(),
                    "attrs": d.attrs,
                    "immutable": d.immutable,
                })
            })
            .collect(),
    )
}

fn all_snapshots() -> Value {
    let mut out = serde_json::Map::new();
    let artifacts: BTreeMap<String, Artifact> = [(
        "stats-api".to_string(),
        Artifact {
            sha256: "c2hhMjU2LW9mLXRoZS16aXA=".into(),
            zip: vec![],
        },
    )]
    .into();
    let none = BTreeMap::new();
    for env in ["local", "dev", "prod"] {
        let stack = shipped(env, &BTreeMap::new());
        out.insert(
            format!("{env}/empty"),
            snapshot(&stack, env, &Observed::default(), &none),
        );
        let live = deployed(&stack, env, &artifacts);
        out.insert(
            format!("{env}/deployed"),
            snapshot(&stack, env, &live, &artifacts),
        );
    }
    let stack = variant();
    out.insert(
        "variant/empty".into(),
        snapshot(&stack, "local", &Observed::default(), &none),
    );
    let live = deployed(&stack, "local", &artifacts);
    out.insert(
        "variant/deployed".into(),
        snapshot(&stack, "local", &live, &artifacts),
    );
    Value::Object(out)
}

#[test]
fn desired_renders_the_same_canonical_attributes_as_before_typed_specs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let now = serde_json::to_string_pretty(&all_snapshots()).unwrap() + "\n";
    if std::env::var_os("STATSCTL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let before = std::fs::read_to_string(&path).unwrap();
    // Compare resource by resource so a failure names the first one that moved.
    let before_v: Value = serde_json::from_str(&before).unwrap();
    let now_v: Value = serde_json::from_str(&now).unwrap();
    for (scenario, want) in before_v.as_object().unwrap() {
        let got = &now_v[scenario];
        let (want, got) = (want.as_array().unwrap(), got.as_array().unwrap());
        for (w, g) in want.iter().zip(got) {
            assert_eq!(g, w, "{scenario}: {} changed", w["key"]);
        }
        assert_eq!(got.len(), want.len(), "{scenario}: number of resources");
    }
    assert_eq!(now, before);
}
