//! RDS: the DB subnet group, the Aurora PostgreSQL cluster and its instances, the RDS Proxy, its default target
//! group's pool settings and the cluster's registration as its target.

use aws_sdk_rds::types::{
    AuthScheme, ConnectionPoolConfiguration, EngineFamily, IamAuthMode,
    ServerlessV2ScalingConfiguration, Tag, UserAuthConfig,
};

use crate::{code_of, fail, owner_from, Aws, AwsResult};
use statsctl_core::inventory::{join_sorted, Key, Kind, ObservedResource, Owner};

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

fn tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A DB subnet group: the subnets the cluster and proxy live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetGroupInput {
    pub name: String,
    pub description: String,
    pub subnet_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// Creates the subnet group (`exists == false`) or sets its subnets; returns its ARN.
pub async fn put_subnet_group(aws: &Aws, g: &SubnetGroupInput, exists: bool) -> AwsResult<String> {
    let name = &g.name;
    let group = if exists {
        aws.rds
            .modify_db_subnet_group()
            .db_subnet_group_name(name)
            .set_subnet_ids(Some(g.subnet_ids.clone()))
            .send()
            .await
            .map_err(|e| fail(format!("modify DB subnet group `{name}`"), e))?
            .db_subnet_group()
            .cloned()
    } else {
        aws.rds
            .create_db_subnet_group()
            .db_subnet_group_name(name)
            .db_subnet_group_description(&g.description)
            .set_subnet_ids(Some(g.subnet_ids.clone()))
            .set_tags(Some(tags(&g.tags)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB subnet group `{name}`"), e))?
            .db_subnet_group()
            .cloned()
    };
    Ok(group
        .and_then(|g| g.db_subnet_group_arn().map(str::to_string))
        .unwrap_or_default())
}

/// A cluster's status and endpoint as `DescribeDBClusters` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub status: String,
    pub endpoint: String,
}

/// `None`: no such cluster.
pub async fn cluster_status(aws: &Aws, id: &str) -> AwsResult<Option<ClusterStatus>> {
    match aws
        .rds
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(r) => Ok(r.db_clusters().first().map(|c| ClusterStatus {
            status: c.status().unwrap_or_default().to_string(),
            endpoint: c.endpoint().unwrap_or_default().to_string(),
        })),
        Err(e) if not_found(code_of(&e)) => Ok(None),
        Err(e) => Err(fail(format!("describe DB cluster `{id}`"), e)),
    }
}

/// The Aurora cluster. The master password is read from `credentials_secret` here, at creation only, and goes
/// nowhere but into the `CreateDBCluster` call.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInput {
    pub id: String,
    pub engine: String,
    pub engine_version: String,
    pub database_name: String,
    pub master_username: String,
    pub credentials_secret: String,
    pub subnet_group: String,
    pub security_group_ids: Vec<String>,
    /// Serverless v2 capacity range in ACUs (min, max).
    pub serverless_acu: Option<(f64, f64)>,
    pub tags: Vec<(String, String)>,
}

impl ClusterInput {
    fn scaling(&self) -> Option<ServerlessV2ScalingConfiguration> {
        self.serverless_acu.map(|(min, max)| {
            ServerlessV2ScalingConfiguration::builder()
                .min_capacity(min)
                .max_capacity(max)
                .build()
        })
    }
}

/// Creates the cluster (`exists == false`) or applies its groups and capacity; returns at once: it is usable
/// when [`cluster_status`] says `available`.
pub async fn put_cluster(aws: &Aws, c: &ClusterInput, exists: bool) -> AwsResult<()> {
    let id = &c.id;
    if exists {
        aws.rds
            .modify_db_cluster()
            .db_cluster_identifier(id)
            .set_vpc_security_group_ids(Some(c.security_group_ids.clone()))
            .set_serverless_v2_scaling_configuration(c.scaling())
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB cluster `{id}`"), e))?;
        return Ok(());
    }
    let password = crate::secrets::password(aws, &c.credentials_secret).await?;
    aws.rds
        .create_db_cluster()
        .db_cluster_identifier(id)
        .engine(&c.engine)
        .engine_version(&c.engine_version)
        .database_name(&c.database_name)
        .master_username(&c.master_username)
        .master_user_password(password)
        .db_subnet_group_name(&c.subnet_group)
        .set_vpc_security_group_ids(Some(c.security_group_ids.clone()))
        .set_serverless_v2_scaling_configuration(c.scaling())
        .storage_encrypted(true)
        .set_tags(Some(tags(&c.tags)))
        .send()
        .await
        .map_err(|e| fail(format!("create DB cluster `{id}`"), e).hint("check `database.engine_version` is an Aurora PostgreSQL version offered in the region"))?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInput {
    pub id: String,
    pub cluster: String,
    pub instance_class: String,
    pub publicly_accessible: bool,
    pub tags: Vec<(String, String)>,
}

/// Creates the instance (`exists == false`) or modifies it; returns at once (see [`instance_status`]).
pub async fn put_instance(aws: &Aws, i: &InstanceInput, exists: bool) -> AwsResult<()> {
    let id = &i.id;
    if exists {
        aws.rds
            .modify_db_instance()
            .db_instance_identifier(id)
            .db_instance_class(&i.instance_class)
            .publicly_accessible(i.publicly_accessible)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB instance `{id}`"), e))?;
    } else {
        aws.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .db_cluster_identifier(&i.cluster)
            .db_instance_class(&i.instance_class)
            .engine("aurora-postgresql")
            .publicly_accessible(i.publicly_accessible)
            .set_tags(Some(tags(&i.tags)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB instance `{id}`"), e).hint("check `database.instance_class` is offered for Aurora PostgreSQL in the region"))?;
    }
    Ok(())
}

/// An instance's status (`available`, `creating`…); `None`: no such instance.
pub async fn instance_status(aws: &Aws, id: &str) -> AwsResult<Option<String>> {
    match aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(r) => Ok(r
            .db_instances()
            .first()
            .map(|i| i.db_instance_status().unwrap_or_default().to_string())),
        Err(e) if not_found(code_of(&e)) => Ok(None),
        Err(e) => Err(fail(format!("describe DB instance `{id}`"), e)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInput {
    pub name: String,
    pub role_arn: String,
    pub secret_arn: String,
    pub iam_auth: bool,
    pub require_tls: bool,
    pub idle_client_timeout_s: i32,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// Creates the proxy (`exists == false`) or modifies it; returns at once (see [`proxy_status`]).
pub async fn put_proxy(aws: &Aws, p: &ProxyInput, exists: bool) -> AwsResult<()> {
    let name = &p.name;
    let auth = UserAuthConfig::builder()
        .auth_scheme(AuthScheme::Secrets)
        .secret_arn(&p.secret_arn)
        .iam_auth(if p.iam_auth {
            IamAuthMode::Required
        } else {
            IamAuthMode::Disabled
        })
        .build();
    if exists {
        aws.rds
            .modify_db_proxy()
            .db_proxy_name(name)
            .auth(auth)
            .role_arn(&p.role_arn)
            .set_security_groups(Some(p.security_group_ids.clone()))
            .require_tls(p.require_tls)
            .idle_client_timeout(p.idle_client_timeout_s)
            .send()
            .await
            .map_err(|e| fail(format!("modify DB proxy `{name}`"), e))?;
    } else {
        aws.rds
            .create_db_proxy()
            .db_proxy_name(name)
            .engine_family(EngineFamily::Postgresql)
            .auth(auth)
            .role_arn(&p.role_arn)
            .set_vpc_subnet_ids(Some(p.subnet_ids.clone()))
            .set_vpc_security_group_ids(Some(p.security_group_ids.clone()))
            .require_tls(p.require_tls)
            .idle_client_timeout(p.idle_client_timeout_s)
            .set_tags(Some(tags(&p.tags)))
            .send()
            .await
            .map_err(|e| fail(format!("create DB proxy `{name}`"), e))?;
    }
    Ok(())
}

/// A proxy as `DescribeDBProxies` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyStatus {
    pub arn: String,
    pub endpoint: String,
    pub status: String,
}

/// `None`: no such proxy.
pub async fn proxy_status(aws: &Aws, name: &str) -> AwsResult<Option<ProxyStatus>> {
    match aws
        .rds
        .describe_db_proxies()
        .db_proxy_name(name)
        .send()
        .await
    {
        Ok(r) => Ok(r.db_proxies().first().map(|p| ProxyStatus {
            arn: p.db_proxy_arn().unwrap_or_default().to_string(),
            endpoint: p.endpoint().unwrap_or_default().to_string(),
            status: p
                .status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        })),
        Err(e) if not_found(code_of(&e)) => Ok(None),
        Err(e) => Err(fail(format!("describe DB proxy `{name}`"), e)),
    }
}

/// The pool settings of a proxy's default target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInput {
    pub proxy: String,
    pub max_connections_percent: i32,
    pub connection_borrow_timeout_s: i32,
    /// `None`: AWS's default.
    pub max_idle_connections_percent: Option<i32>,
}

/// Sets the pool; returns the idle percentage AWS now applies (its default when the input has none).
pub async fn put_pool(aws: &Aws, p: &PoolInput) -> AwsResult<Option<i32>> {
    let proxy = &p.proxy;
    let pool = ConnectionPoolConfiguration::builder()
        .max_connections_percent(p.max_connections_percent)
        .connection_borrow_timeout(p.connection_borrow_timeout_s)
        .set_max_idle_connections_percent(p.max_idle_connections_percent);
    let r = aws
        .rds
        .modify_db_proxy_target_group()
        .db_proxy_name(proxy)
        .target_group_name("default")
        .connection_pool_config(pool.build())
        .send()
        .await
        .map_err(|e| fail(format!("set the connection pool of DB proxy `{proxy}`"), e))?;
    Ok(r.db_proxy_target_group()
        .and_then(|g| g.connection_pool_config())
        .map(|c| c.max_idle_connections_percent().unwrap_or_default()))
}

pub async fn register_target(aws: &Aws, proxy: &str, cluster: &str) -> AwsResult<()> {
    aws.rds
        .register_db_proxy_targets()
        .db_proxy_name(proxy)
        .db_cluster_identifiers(cluster)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(
                format!("register DB cluster `{cluster}` with proxy `{proxy}`"),
                e,
            )
        })
}

/// The health state of the proxy's (first) target: `AVAILABLE`, `REGISTERING`…; empty when it has none.
pub async fn target_state(aws: &Aws, proxy: &str) -> AwsResult<String> {
    let r = aws
        .rds
        .describe_db_proxy_targets()
        .db_proxy_name(proxy)
        .send()
        .await
        .map_err(|e| fail(format!("describe targets of proxy `{proxy}`"), e))?;
    Ok(r.targets()
        .iter()
        .filter_map(|t| t.target_health().and_then(|h| h.state()))
        .map(|s| s.as_str().to_string())
        .next()
        .unwrap_or_default())
}

/// Starts deleting; returns at once (the executor waits until [`proxy_status`], [`instance_status`] or
/// [`cluster_status`] find nothing). Already gone is success.
pub async fn delete(aws: &Aws, key: &Key) -> AwsResult<()> {
    let name = key.name.as_str();
    let r = match key.kind {
        Kind::Proxy => aws
            .rds
            .delete_db_proxy()
            .db_proxy_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("delete DB proxy `{name}`"), e)),
        Kind::DbInstance => aws
            .rds
            .delete_db_instance()
            .db_instance_identifier(name)
            .skip_final_snapshot(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("delete DB instance `{name}`"), e)),
        Kind::DbCluster => aws
            .rds
            .delete_db_cluster()
            .db_cluster_identifier(name)
            .skip_final_snapshot(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("delete DB cluster `{name}`"), e)),
        Kind::DbSubnetGroup => aws
            .rds
            .delete_db_subnet_group()
            .db_subnet_group_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("delete DB subnet group `{name}`"), e)),
        // Deleting the proxy removes its target group and registrations.
        _ => Ok(()),
    };
    match r {
        Err(e) if not_found(e.code.as_deref()) => Ok(()),
        other => other,
    }
}

/// Ownership of resources found by name, for status display of ones that are not ours.
pub fn is_owned(r: &ObservedResource, owner: &Owner) -> bool {
    r.owner.as_ref() == Some(owner)
}
