//! RDS: the DB subnet group, the Aurora PostgreSQL cluster and its instances, the RDS Proxy, its default target
//! group's pool settings and the cluster's registration as its target.

use std::time::Duration;

use aws_sdk_rds::types::{
    AuthScheme, ConnectionPoolConfiguration, EngineFamily, IamAuthMode,
    ServerlessV2ScalingConfiguration, Tag, UserAuthConfig,
};

use crate::ctx::{wait_until, ApplyCtx};
use crate::{code_of, fail, owner_from, tags_for, Aws, AwsError, AwsResult};
use statsctl_core::inventory::{
    join_sorted, Desired, Key, Kind, Observed, ObservedResource, Owner,
};

fn tags(ctx: &ApplyCtx, name: &str) -> Vec<Tag> {
    tags_for(&ctx.owner, ctx.tags, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_pairs(t: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    t.iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
}

fn not_found(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.ends_with("NotFoundFault") || c.ends_with("NotFound"))
}

/// The name at the end of an ARN (`…:role/path/name` → `name`, `…:secret:name-AbCdEf` stays whole).
fn arn_tail(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

pub async fn observe(
    aws: &Aws,
    subnet_group: &str,
    cluster_id: &str,
    proxy: Option<&str>,
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let (sg, cluster, instances) = tokio::join!(
        aws.rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(subnet_group)
            .send(),
        aws.rds
            .describe_db_clusters()
            .db_cluster_identifier(cluster_id)
            .send(),
        aws.rds
            .describe_db_instances()
            .filters(
                aws_sdk_rds::types::Filter::builder()
                    .name("db-cluster-id")
                    .values(cluster_id)
                    .build()
            )
            .send(),
    );
    match sg {
        Ok(r) => {
            for g in r.db_subnet_groups() {
                let arn = g.db_subnet_group_arn().unwrap_or_default().to_string();
                let t = aws
                    .rds
                    .list_tags_for_resource()
                    .resource_name(&arn)
                    .send()
                    .await
                    .map_err(|e| {
                        fail(format!("list tags of DB subnet group `{subnet_group}`"), e)
                    })?;
                let mut o = ObservedResource {
                    id: arn,
                    owner: owner_from(tag_pairs(t.tag_list())),
                    state: g.subnet_group_status().unwrap_or_default().into(),
                    ..Default::default()
                };
                o.attrs.insert(
                    "subnets".into(),
                    join_sorted(g.subnets().iter().filter_map(|s| s.subnet_identifier())),
                );
                out.push((Key::new(Kind::DbSubnetGroup, subnet_group), o));
            }
        }
        Err(e) if not_found(code_of(&e)) => {}
        Err(e) => {
            return Err(fail(
                format!("describe DB subnet group `{subnet_group}`"),
                e,
            ))
        }
    }
    match cluster {
        Ok(r) => {
            for c in r.db_clusters() {
                let mut o = ObservedResource {
                    id: c.db_cluster_arn().unwrap_or_default().into(),
                    owner: owner_from(tag_pairs(c.tag_list())),
                    state: c.status().unwrap_or_default().into(),
                    ..Default::default()
                };
                o.attrs
                    .insert("engine".into(), c.engine().unwrap_or_default().into());
                o.attrs.insert(
                    "engine_version".into(),
                    c.engine_version().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "database_name".into(),
                    c.database_name().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "master_username".into(),
                    c.master_username().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "subnet_group".into(),
                    c.db_subnet_group().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "security_groups".into(),
                    join_sorted(
                        c.vpc_security_groups()
                            .iter()
                            .filter_map(|g| g.vpc_security_group_id()),
                    ),
                );
                if let Some(s) = c.serverless_v2_scaling_configuration() {
                    o.attrs.insert(
                        "serverless_acu".into(),
                        format!(
                            "{}-{}",
                            s.min_capacity().unwrap_or_default(),
                            s.max_capacity().unwrap_or_default()
                        ),
                    );
                }
                o.outputs
                    .insert("endpoint".into(), c.endpoint().unwrap_or_default().into());
                o.outputs.insert(
                    "reader_endpoint".into(),
                    c.reader_endpoint().unwrap_or_default().into(),
                );
                o.outputs.insert(
                    "publicly_accessible".into(),
                    c.publicly_accessible().unwrap_or(false).to_string(),
                );
                out.push((Key::new(Kind::DbCluster, cluster_id), o));
            }
        }
        Err(e) if not_found(code_of(&e)) => {}
        Err(e) => return Err(fail(format!("describe DB cluster `{cluster_id}`"), e)),
    }
    match instances {
        Ok(r) => {
            for i in r.db_instances() {
                let id = i.db_instance_identifier().unwrap_or_default().to_string();
                let mut o = ObservedResource {
                    id: i.db_instance_arn().unwrap_or_default().into(),
                    owner: owner_from(tag_pairs(i.tag_list())),
                    state: i.db_instance_status().unwrap_or_default().into(),
                    ..Default::default()
                };
                o.attrs.insert(
                    "cluster".into(),
                    i.db_cluster_identifier().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "instance_class".into(),
                    i.db_instance_class().unwrap_or_default().into(),
                );
                o.attrs.insert(
                    "publicly_accessible".into(),
                    i.publicly_accessible().unwrap_or(false).to_string(),
                );
                o.outputs.insert(
                    "endpoint".into(),
                    i.endpoint()
                        .and_then(|e| e.address())
                        .unwrap_or_default()
                        .into(),
                );
                out.push((Key::new(Kind::DbInstance, id), o));
            }
        }
        Err(e) if not_found(code_of(&e)) => {}
        Err(e) => {
            return Err(fail(
                format!("describe instances of DB cluster `{cluster_id}`"),
                e,
            ))
        }
    }
    if let Some(name) = proxy {
        out.extend(observe_proxy(aws, name).await?);
    }
    Ok(out)
}

async fn observe_proxy(aws: &Aws, name: &str) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let r = match aws
        .rds
        .describe_db_proxies()
        .db_proxy_name(name)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if not_found(code_of(&e)) => return Ok(out),
        Err(e) => return Err(fail(format!("describe DB proxy `{name}`"), e)),
    };
    let Some(p) = r.db_proxies().first() else {
        return Ok(out);
    };
    let arn = p.db_proxy_arn().unwrap_or_default().to_string();
    let (t, tg, targets) = tokio::join!(
        aws.rds.list_tags_for_resource().resource_name(&arn).send(),
        aws.rds
            .describe_db_proxy_target_groups()
            .db_proxy_name(name)
            .send(),
        aws.rds
            .describe_db_proxy_targets()
            .db_proxy_name(name)
            .send(),
    );
    let t = t.map_err(|e| fail(format!("list tags of DB proxy `{name}`"), e))?;
    let owner = owner_from(tag_pairs(t.tag_list()));
    let mut o = ObservedResource {
        id: arn,
        owner: owner.clone(),
        state: p
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    let auth = p.auth().first();
    o.attrs.insert(
        "engine_family".into(),
        p.engine_family().unwrap_or_default().into(),
    );
    o.attrs.insert(
        "role".into(),
        arn_tail(p.role_arn().unwrap_or_default()).into(),
    );
    o.attrs.insert(
        "secret".into(),
        auth.and_then(|a| a.secret_arn()).unwrap_or_default().into(),
    );
    o.attrs.insert(
        "iam_auth".into(),
        auth.and_then(|a| a.iam_auth())
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    );
    o.attrs.insert(
        "require_tls".into(),
        p.require_tls().unwrap_or(false).to_string(),
    );
    o.attrs.insert(
        "idle_client_timeout".into(),
        p.idle_client_timeout().unwrap_or_default().to_string(),
    );
    o.attrs.insert(
        "subnets".into(),
        join_sorted(p.vpc_subnet_ids().iter().map(String::as_str)),
    );
    o.attrs.insert(
        "security_groups".into(),
        join_sorted(p.vpc_security_group_ids().iter().map(String::as_str)),
    );
    o.outputs
        .insert("endpoint".into(), p.endpoint().unwrap_or_default().into());
    o.outputs
        .insert("vpc_id".into(), p.vpc_id().unwrap_or_default().into());
    out.push((Key::new(Kind::Proxy, name), o));
    if let Ok(tg) = tg {
        for g in tg
            .target_groups()
            .iter()
            .filter(|g| g.is_default().unwrap_or(false) || g.target_group_name() == Some("default"))
        {
            let mut r = ObservedResource {
                id: g.target_group_arn().unwrap_or_default().into(),
                owner: owner.clone(),
                state: g.status().unwrap_or_default().into(),
                ..Default::default()
            };
            if let Some(c) = g.connection_pool_config() {
                r.attrs.insert(
                    "max_connections_percent".into(),
                    c.max_connections_percent().unwrap_or_default().to_string(),
                );
                r.attrs.insert(
                    "max_idle_connections_percent".into(),
                    c.max_idle_connections_percent()
                        .unwrap_or_default()
                        .to_string(),
                );
                r.attrs.insert(
                    "connection_borrow_timeout".into(),
                    c.connection_borrow_timeout()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            out.push((
                Key::new(Kind::ProxyTargetGroup, format!("{name}/default")),
                r,
            ));
        }
    }
    if let Ok(targets) = targets {
        for t in targets.targets() {
            if t.r#type().map(|x| x.as_str()) == Some("TRACKED_CLUSTER") {
                let cluster = t.rds_resource_id().unwrap_or_default().to_string();
                let state = t
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default();
                let mut r = ObservedResource {
                    id: cluster.clone(),
                    owner: owner.clone(),
                    state,
                    ..Default::default()
                };
                r.attrs.insert("cluster".into(), cluster.clone());
                out.push((Key::new(Kind::ProxyTarget, format!("{name}/{cluster}")), r));
            }
        }
    }
    Ok(out)
}

fn ids(observed: &Observed, kind: Kind, names: &str) -> Vec<String> {
    names
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|n| observed.id_of(kind, n).unwrap_or(n).to_string())
        .collect()
}

pub async fn put_subnet_group(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let subnets = ids(observed, Kind::Subnet, d.get("subnets"));
    let desc = format!("statsctl {}/{}", ctx.owner.stack, ctx.owner.env);
    let arn = if cur.is_none() {
        let r = aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(name)
            .db_subnet_group_description(desc)
            .set_subnet_ids(Some(subnets))
            .set_tags(Some(tags(ctx, name)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB subnet group `{name}`"), e))?;
        r.db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
            .unwrap_or_default()
            .to_string()
    } else {
        let r = aws
            .rds
            .modify_db_subnet_group()
            .db_subnet_group_name(name)
            .set_subnet_ids(Some(subnets))
            .send()
            .await
            .map_err(|e| fail(format!("modify DB subnet group `{name}`"), e))?;
        r.db_subnet_group()
            .and_then(|g| g.db_subnet_group_arn())
            .unwrap_or_default()
            .to_string()
    };
    Ok(ObservedResource {
        id: arn,
        owner: Some(ctx.owner.clone()),
        state: "Complete".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

async fn cluster_state(aws: &Aws, id: &str) -> AwsResult<Option<(String, String)>> {
    match aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(r) => Ok(r.db_clusters().first().map(|c| {
            (
                c.status().unwrap_or_default().to_string(),
                c.endpoint().unwrap_or_default().to_string(),
            )
        })),
        Err(e) if not_found(code_of(&e)) => Ok(None),
        Err(e) => Err(fail(format!("describe DB cluster `{id}`"), e)),
    }
}

fn scaling(d: &Desired) -> Option<ServerlessV2ScalingConfiguration> {
    let (min, max) = d.attrs.get("serverless_acu")?.split_once('-')?;
    Some(
        ServerlessV2ScalingConfiguration::builder()
            .min_capacity(min.parse().ok()?)
            .max_capacity(max.parse().ok()?)
            .build(),
    )
}

pub async fn put_cluster(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let id = &d.key.name;
    let sgs = ids(observed, Kind::SecurityGroup, d.get("security_groups"));
    if cur.is_none() {
        let password =
            crate::secrets::password(aws, &ctx.stack.database.credentials_secret).await?;
        aws.rds
            .create_db_cluster()
            .db_cluster_identifier(id)
            .engine(d.get("engine"))
            .engine_version(d.get("engine_version"))
            .database_name(d.get("database_name"))
            .master_username(d.get("master_username"))
            .master_user_password(password)
            .db_subnet_group_name(d.get("subnet_group"))
            .set_vpc_security_group_ids(Some(sgs))
            .set_serverless_v2_scaling_configuration(scaling(d))
            .storage_encrypted(true)
            .set_tags(Some(tags(ctx, id)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB cluster `{id}`"), e).hint("check `database.engine_version` is an Aurora PostgreSQL version offered in the region"))?;
    } else {
        aws.rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .set_vpc_security_group_ids(Some(sgs))
            .set_serverless_v2_scaling_configuration(scaling(d))
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB cluster `{id}`"), e))?;
    }
    let endpoint = std::sync::Mutex::new(String::new());
    wait_until(
        ctx,
        &format!("DB cluster `{id}` to be available"),
        Duration::from_secs(3600),
        || async {
            let s = cluster_state(aws, id).await?;
            if let Some((status, ep)) = &s {
                *endpoint.lock().unwrap_or_else(|e| e.into_inner()) = ep.clone();
                return Ok(status == "available");
            }
            Ok(false)
        },
    )
    .await?;
    let endpoint = endpoint.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut o = ObservedResource {
        id: id.clone(),
        owner: Some(ctx.owner.clone()),
        state: "available".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("endpoint".into(), endpoint);
    Ok(o)
}

pub async fn put_instance(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
) -> AwsResult<ObservedResource> {
    let id = &d.key.name;
    let public = d.get("publicly_accessible") == "true";
    if cur.is_none() {
        aws.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(d.get("cluster"))
            .db_instance_class(d.get("instance_class"))
            .engine("aurora-postgresql")
            .publicly_accessible(public)
            .set_tags(Some(tags(ctx, id)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB instance `{id}`"), e).hint("check `database.instance_class` is offered for Aurora PostgreSQL in the region"))?;
    } else {
        aws.rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .db_instance_class(d.get("instance_class"))
            .publicly_accessible(public)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB instance `{id}`"), e))?;
    }
    wait_until(
        ctx,
        &format!("DB instance `{id}` to be available"),
        Duration::from_secs(3600),
        || async {
            let r = aws
                .rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(|e| fail(format!("describe DB instance `{id}`"), e))?;
            Ok(r.db_instances()
                .first()
                .and_then(|i| i.db_instance_status())
                == Some("available"))
        },
    )
    .await?;
    Ok(ObservedResource {
        id: id.clone(),
        owner: Some(ctx.owner.clone()),
        state: "available".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

pub async fn put_proxy(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let sgs = ids(observed, Kind::SecurityGroup, d.get("security_groups"));
    let role_arn = observed
        .output(Kind::Role, d.get("role"), "arn")
        .unwrap_or_default()
        .to_string();
    let iam = if d.get("iam_auth") == "REQUIRED" {
        IamAuthMode::Required
    } else {
        IamAuthMode::Disabled
    };
    let auth = UserAuthConfig::builder()
        .auth_scheme(AuthScheme::Secrets)
        .secret_arn(d.get("secret"))
        .iam_auth(iam)
        .build();
    let idle: i32 = d.get("idle_client_timeout").parse().unwrap_or(1800);
    let tls = d.get("require_tls") == "true";
    if cur.is_none() {
        aws.rds
            .create_db_proxy()
            .db_proxy_name(name)
            .engine_family(EngineFamily::Postgresql)
            .auth(auth)
            .role_arn(role_arn)
            .set_vpc_subnet_ids(Some(ids(observed, Kind::Subnet, d.get("subnets"))))
            .set_vpc_security_group_ids(Some(sgs))
            .require_tls(tls)
            .idle_client_timeout(idle)
            .set_tags(Some(tags(ctx, name)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB proxy `{name}`"), e))?;
    } else {
        aws.rds
            .modify_db_proxy()
            .db_proxy_name(name)
            .auth(auth)
            .role_arn(role_arn)
            .set_security_groups(Some(sgs))
            .require_tls(tls)
            .idle_client_timeout(idle)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB proxy `{name}`"), e))?;
    }
    let found = std::sync::Mutex::new(None);
    wait_until(
        ctx,
        &format!("DB proxy `{name}` to be available"),
        Duration::from_secs(1800),
        || async {
            let r = aws
                .rds
                .describe_db_proxies()
                .db_proxy_name(name)
                .send()
                .await
                .map_err(|e| fail(format!("describe DB proxy `{name}`"), e))?;
            let p = r.db_proxies().first();
            *found.lock().unwrap_or_else(|e| e.into_inner()) = p.map(|p| {
                (
                    p.db_proxy_arn().unwrap_or_default().to_string(),
                    p.endpoint().unwrap_or_default().to_string(),
                )
            });
            Ok(p.and_then(|p| p.status()).map(|s| s.as_str()) == Some("available"))
        },
    )
    .await?;
    let (arn, endpoint) = found
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default();
    let mut o = ObservedResource {
        id: arn,
        owner: Some(ctx.owner.clone()),
        state: "available".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("endpoint".into(), endpoint);
    Ok(o)
}

pub async fn put_target_group(aws: &Aws, d: &Desired) -> AwsResult<ObservedResource> {
    let proxy = d.key.name.split('/').next().unwrap_or_default();
    let mut pool = ConnectionPoolConfiguration::builder()
        .max_connections_percent(d.get("max_connections_percent").parse().unwrap_or(100))
        .connection_borrow_timeout(d.get("connection_borrow_timeout").parse().unwrap_or(120));
    if let Some(idle) = d
        .attrs
        .get("max_idle_connections_percent")
        .and_then(|v| v.parse().ok())
    {
        pool = pool.max_idle_connections_percent(idle);
    }
    let r = aws
        .rds
        .modify_db_proxy_target_group()
        .db_proxy_name(proxy)
        .target_group_name("default")
        .connection_pool_config(pool.build())
        .send()
        .await
        .map_err(|e| fail(format!("set the connection pool of DB proxy `{proxy}`"), e))?;
    let mut attrs = d.attrs.clone();
    if let Some(c) = r
        .db_proxy_target_group()
        .and_then(|g| g.connection_pool_config())
    {
        attrs
            .entry("max_idle_connections_percent".into())
            .or_insert_with(|| {
                c.max_idle_connections_percent()
                    .unwrap_or_default()
                    .to_string()
            });
    }
    Ok(ObservedResource {
        id: format!("{proxy}/default"),
        state: "available".into(),
        attrs,
        ..Default::default()
    })
}

pub async fn register_target(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
) -> AwsResult<ObservedResource> {
    let proxy = d.key.name.split('/').next().unwrap_or_default();
    let cluster = d.get("cluster");
    aws.rds
        .register_db_proxy_targets()
        .db_proxy_name(proxy)
        .db_cluster_identifiers(cluster)
        .send()
        .await
        .map_err(|e| {
            fail(
                format!("register DB cluster `{cluster}` with proxy `{proxy}`"),
                e,
            )
        })?;
    let state = std::sync::Mutex::new(String::new());
    wait_until(
        ctx,
        &format!("proxy `{proxy}` target `{cluster}`"),
        Duration::from_secs(900),
        || async {
            let r = aws
                .rds
                .describe_db_proxy_targets()
                .db_proxy_name(proxy)
                .send()
                .await
                .map_err(|e| fail(format!("describe targets of proxy `{proxy}`"), e))?;
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            *state = r
                .targets()
                .iter()
                .filter_map(|t| t.target_health().and_then(|h| h.state()))
                .map(|s| s.as_str().to_string())
                .next()
                .unwrap_or_default();
            Ok(*state == "AVAILABLE")
        },
    )
    .await?;
    let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(ObservedResource {
        id: cluster.into(),
        owner: Some(ctx.owner.clone()),
        state,
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

pub async fn delete(aws: &Aws, ctx: &ApplyCtx<'_>, key: &Key) -> AwsResult<()> {
    let name = key.name.as_str();
    let gone = |r: Result<(), AwsError>| match r {
        Err(e) if e.code.as_deref().is_some_and(|c| not_found(Some(c))) => Ok(()),
        other => other,
    };
    match key.kind {
        Kind::Proxy => {
            gone(
                aws.rds
                    .delete_db_proxy()
                    .db_proxy_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| fail(format!("delete DB proxy `{name}`"), e)),
            )?;
            wait_until(ctx, &format!("DB proxy `{name}` to be deleted"), Duration::from_secs(1800), || async {
                Ok(matches!(aws.rds.describe_db_proxies().db_proxy_name(name).send().await, Err(ref e) if not_found(code_of(e))))
            })
            .await
        }
        Kind::DbInstance => {
            gone(
                aws.rds
                    .delete_db_instance()
                    .db_instance_identifier(name)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| fail(format!("delete DB instance `{name}`"), e)),
            )?;
            wait_until(ctx, &format!("DB instance `{name}` to be deleted"), Duration::from_secs(3600), || async {
                Ok(matches!(aws.rds.describe_db_instances().db_instance_identifier(name).send().await, Err(ref e) if not_found(code_of(e))))
            })
            .await
        }
        Kind::DbCluster => {
            gone(
                aws.rds
                    .delete_db_cluster()
                    .db_cluster_identifier(name)
                    .skip_final_snapshot(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| fail(format!("delete DB cluster `{name}`"), e)),
            )?;
            wait_until(
                ctx,
                &format!("DB cluster `{name}` to be deleted"),
                Duration::from_secs(3600),
                || async { Ok(cluster_state(aws, name).await?.is_none()) },
            )
            .await
        }
        Kind::DbSubnetGroup => gone(
            aws.rds
                .delete_db_subnet_group()
                .db_subnet_group_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| fail(format!("delete DB subnet group `{name}`"), e)),
        ),
        // Deleting the proxy removes its target group and registrations.
        _ => Ok(()),
    }
}

/// Ownership of resources found by name, for status display of ones that are not ours.
pub fn is_owned(r: &ObservedResource, owner: &Owner) -> bool {
    r.owner.as_ref() == Some(owner)
}
