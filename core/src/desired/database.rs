//! The database family: the credentials secret, the Aurora cluster and its instances, the RDS Proxy in front
//! of it, and `rds-db:connect` for every client that goes through the proxy with IAM auth.

use serde_json::json;

use super::{db_connect_resource, proxy_resource_id, Ctx, Names};
use crate::inventory::{Desired, Kind};
use crate::model::{DbAccess, Via};
use crate::spec::{
    DbClusterSpec, DbInstanceSpec, DbSubnetGroupSpec, Policy, ProxySpec, ProxyTargetGroupSpec,
    ProxyTargetSpec, Ref, RolePolicySpec, Spec,
};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let db = &stack.database;
    let mut out = vec![
        Desired::from_spec(db.credentials_secret.clone(), Spec::Secret),
        Desired::from_spec(
            n.prefix.clone(),
            Spec::DbSubnetGroup(DbSubnetGroupSpec {
                subnets: cx.subnets.clone(),
            }),
        ),
        Desired::from_spec(
            db.cluster_id.clone(),
            Spec::DbCluster(DbClusterSpec {
                engine_version: db.engine_version.clone(),
                database_name: db.database_name.clone(),
                master_username: db.master_username.clone(),
                subnet_group: n.prefix.clone(),
                security_groups: vec![n.sg("db")],
                serverless_acu: db.serverless.as_ref().map(|s| (s.min_acu, s.max_acu)),
            }),
        ),
    ];
    let class = if db.serverless.is_some() {
        "db.serverless".to_string()
    } else {
        db.instance_class.clone().unwrap_or_default()
    };
    for i in 1..=db.instances {
        out.push(Desired::from_spec(
            format!("{}-{i}", db.cluster_id),
            Spec::DbInstance(DbInstanceSpec {
                cluster: db.cluster_id.clone(),
                instance_class: class.clone(),
                publicly_accessible: db.publicly_accessible,
            }),
        ));
    }
    out.extend(proxy(cx));
    out
}

fn proxy(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let Some(p) = &stack.proxy else {
        return vec![];
    };
    let tg = ProxyTargetGroupSpec {
        max_connections_percent: p.max_connections_percent,
        connection_borrow_timeout_secs: p.connection_borrow_timeout.as_secs(),
        max_idle_connections_percent: p.max_idle_connections_percent,
    };
    let mut out = vec![
        Desired::from_spec(
            p.name.clone(),
            Spec::Proxy(ProxySpec {
                role: n.proxy_role(),
                secret: cx.credentials_arn(),
                iam_auth: p.iam_auth,
                require_tls: p.require_tls,
                idle_client_timeout_secs: p.idle_client_timeout.as_secs(),
                subnets: cx.subnets.clone(),
                security_groups: vec![n.sg("proxy")],
            }),
        ),
        Desired::from_spec(format!("{}/default", p.name), Spec::ProxyTargetGroup(tg)),
        Desired::from_spec(
            format!("{}/{}", p.name, stack.database.cluster_id),
            Spec::ProxyTarget(ProxyTargetSpec {
                cluster: stack.database.cluster_id.clone(),
            }),
        ),
    ];
    if !p.iam_auth {
        return out;
    }

    // rds-db:connect for every client that goes through the proxy with IAM auth.
    let prx_id = cx
        .observed
        .get(Kind::Proxy, &p.name)
        .and_then(|r| proxy_resource_id(&r.id));
    let mut grants: Vec<(String, &DbAccess)> = stack
        .functions
        .iter()
        .filter_map(|(name, f)| {
            f.database
                .as_ref()
                .filter(|d| d.via == Via::Proxy)
                .map(|d| (n.function_role(name), d))
        })
        .collect();
    if let Some(d) = stack
        .service
        .as_ref()
        .and_then(|s| s.database.as_ref())
        .filter(|d| d.via == Via::Proxy)
    {
        grants.push((n.task_role(), d));
    }
    for (role, d) in grants {
        let resource = match (prx_id, cx.account) {
            (Some(prx), Some(account)) => Ref::Known(db_connect_resource(
                &cx.observed.region,
                account,
                prx,
                &d.user,
            )),
            _ => Ref::AfterApply,
        };
        out.push(Desired::from_spec(
            Names::db_connect_policy(&role),
            Spec::RolePolicy(RolePolicySpec {
                policy: Policy {
                    statements: vec![
                        json!({"Effect": "Allow", "Action": ["rds-db:connect"], "Resource": [resource.render()]}),
                    ],
                },
            }),
        ));
    }
    out
}
