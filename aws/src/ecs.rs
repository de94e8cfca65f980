//! ECS: the cluster, the service's task definition (a new revision per change) and the service itself.

use std::time::Duration;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, KeyValuePair,
    LaunchType, LoadBalancer, NetworkConfiguration, NetworkMode, PortMapping, Secret, Tag,
};

use crate::ctx::{wait_until, ApplyCtx};
use crate::{code_of, fail, owner_from, tags_for, Aws, AwsError, AwsResult};
use statsctl_core::inventory::{
    canonical_map, join_sorted, Desired, Key, Kind, Observed, ObservedResource,
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

/// `arn:…:task-definition/family:12` → `family:12`.
pub fn revision_ref(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// `arn:…:targetgroup/name/123` → `name`.
fn target_group_name(arn: &str) -> String {
    arn.split("targetgroup/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or(arn)
        .to_string()
}

pub async fn observe(
    aws: &Aws,
    cluster: &str,
    service: &str,
    family: &str,
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let (c, s, t) = tokio::join!(
        aws.ecs
            .describe_clusters()
            .clusters(cluster)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send(),
        aws.ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .include(aws_sdk_ecs::types::ServiceField::Tags)
            .send(),
        aws.ecs
            .describe_task_definition()
            .task_definition(family)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .send(),
    );
    let c = c.map_err(|e| fail(format!("describe ECS cluster `{cluster}`"), e))?;
    let cluster_active = c.clusters().iter().any(|c| c.status() == Some("ACTIVE"));
    for cl in c.clusters().iter().filter(|c| c.status() == Some("ACTIVE")) {
        let r = ObservedResource {
            id: cl.cluster_arn().unwrap_or_default().into(),
            owner: owner_from(tag_pairs(cl.tags())),
            state: "ACTIVE".into(),
            ..Default::default()
        };
        out.push((Key::new(Kind::EcsCluster, cluster), r));
    }
    match t {
        Ok(t) => {
            if let Some(td) = t
                .task_definition()
                .filter(|td| td.status().map(|s| s.as_str()) == Some("ACTIVE"))
            {
                let mut r = ObservedResource {
                    id: td.task_definition_arn().unwrap_or_default().into(),
                    owner: owner_from(tag_pairs(t.tags())),
                    state: format!("revision {}", td.revision()),
                    ..Default::default()
                };
                let container = td.container_definitions().first();
                let vars: std::collections::BTreeMap<String, String> = container
                    .map(|c| {
                        c.environment()
                            .iter()
                            .filter_map(|kv| {
                                Some((kv.name()?.to_string(), kv.value()?.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                r.attrs.insert(
                    "image".into(),
                    container.and_then(|c| c.image()).unwrap_or_default().into(),
                );
                r.attrs
                    .insert("cpu".into(), td.cpu().unwrap_or_default().into());
                r.attrs
                    .insert("memory_mb".into(), td.memory().unwrap_or_default().into());
                r.attrs.insert(
                    "port".into(),
                    container
                        .and_then(|c| c.port_mappings().first())
                        .and_then(|p| p.container_port())
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                );
                r.attrs.insert("environment".into(), canonical_map(&vars));
                // Secrets as the task definition references them (name → valueFrom); their values never
                // appear in a task definition.
                let secrets: std::collections::BTreeMap<String, String> = container
                    .map(|c| {
                        c.secrets()
                            .iter()
                            .map(|s| (s.name().to_string(), s.value_from().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                r.attrs.insert("secrets".into(), canonical_map(&secrets));
                r.attrs.insert(
                    "task_role".into(),
                    td.task_role_arn()
                        .unwrap_or_default()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .into(),
                );
                r.outputs.insert(
                    "revision_ref".into(),
                    revision_ref(td.task_definition_arn().unwrap_or_default()),
                );
                out.push((Key::new(Kind::TaskDefinition, family), r));
            }
        }
        Err(e) if code_of(&e) == Some("ClientException") => {}
        Err(e) => return Err(fail(format!("describe task definition `{family}`"), e)),
    }
    if cluster_active {
        let s = s.map_err(|e| fail(format!("describe ECS service `{service}`"), e))?;
        for svc in s.services().iter().filter(|s| s.status() == Some("ACTIVE")) {
            let mut r = ObservedResource {
                id: svc.service_arn().unwrap_or_default().into(),
                owner: owner_from(tag_pairs(svc.tags())),
                state: format!(
                    "{} running / {} desired",
                    svc.running_count(),
                    svc.desired_count()
                ),
                ..Default::default()
            };
            let net = svc
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration());
            r.attrs.insert("cluster".into(), cluster.into());
            r.attrs.insert(
                "task_definition".into(),
                revision_ref(svc.task_definition().unwrap_or_default()),
            );
            r.attrs
                .insert("desired_count".into(), svc.desired_count().to_string());
            r.attrs.insert(
                "subnets".into(),
                join_sorted(net.map(|n| n.subnets().to_vec()).unwrap_or_default()),
            );
            r.attrs.insert(
                "security_groups".into(),
                join_sorted(
                    net.map(|n| n.security_groups().to_vec())
                        .unwrap_or_default(),
                ),
            );
            r.attrs.insert(
                "target_group".into(),
                join_sorted(
                    svc.load_balancers()
                        .iter()
                        .filter_map(|l| l.target_group_arn())
                        .map(target_group_name),
                ),
            );
            r.outputs
                .insert("running".into(), svc.running_count().to_string());
            r.outputs
                .insert("desired".into(), svc.desired_count().to_string());
            out.push((Key::new(Kind::EcsService, service), r));
        }
    }
    Ok(out)
}

pub async fn create_cluster(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let r = aws
        .ecs
        .create_cluster()
        .cluster_name(name)
        .set_tags(Some(tags(ctx, name)))
        .send()
        .await
        .map_err(|e| fail(format!("create ECS cluster `{name}`"), e))?;
    Ok(ObservedResource {
        id: r
            .cluster()
            .and_then(|c| c.cluster_arn())
            .unwrap_or_default()
            .into(),
        owner: Some(ctx.owner.clone()),
        state: "ACTIVE".into(),
        ..Default::default()
    })
}

pub async fn register_task_definition(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let family = &d.key.name;
    let role_arn = observed
        .output(Kind::Role, d.get("task_role"), "arn")
        .unwrap_or_default()
        .to_string();
    let vars: std::collections::BTreeMap<String, String> =
        serde_json::from_str(d.get("environment")).unwrap_or_default();
    let secrets: std::collections::BTreeMap<String, String> =
        serde_json::from_str(d.get("secrets")).unwrap_or_default();
    let secrets = secrets
        .into_iter()
        .map(|(k, v)| Secret::builder().name(k).value_from(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            AwsError::new(
                format!("register task definition `{family}`"),
                format!("a secret reference is incomplete: {e}"),
            )
        })?;
    let service = ctx
        .stack
        .service
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "app".into());
    let container = ContainerDefinition::builder()
        .name(service)
        .image(d.get("image"))
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(d.get("port").parse().unwrap_or(8080))
                .build(),
        )
        .set_environment(Some(
            vars.into_iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .set_secrets((!secrets.is_empty()).then_some(secrets))
        .build();
    let r = aws
        .ecs
        .register_task_definition()
        .family(family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu(d.get("cpu"))
        .memory(d.get("memory_mb"))
        .task_role_arn(&role_arn)
        .execution_role_arn(&role_arn)
        .container_definitions(container)
        .set_tags(Some(tags(ctx, family)))
        .send()
        .await
        .map_err(|e| {
            fail(format!("register task definition `{family}`"), e).hint(
                "Fargate accepts only certain cpu/memory pairs, e.g. 256/512, 512/1024, 1024/2048",
            )
        })?;
    let arn = r
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap_or_default()
        .to_string();
    let mut o = ObservedResource {
        id: arn.clone(),
        owner: Some(ctx.owner.clone()),
        state: "ACTIVE".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("revision_ref".into(), revision_ref(&arn));
    Ok(o)
}

fn network(d: &Desired, observed: &Observed) -> NetworkConfiguration {
    let ids = |kind: Kind, list: &str| {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|n| observed.id_of(kind, n).unwrap_or(n).to_string())
            .collect::<Vec<_>>()
    };
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(ids(Kind::Subnet, d.get("subnets"))))
                .set_security_groups(Some(ids(Kind::SecurityGroup, d.get("security_groups"))))
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .expect("subnets are set"),
        )
        .build()
}

pub async fn put_service(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let cluster = d.get("cluster");
    let task = d.get("task_definition");
    let desired_count: i32 = d.get("desired_count").parse().unwrap_or(1);
    let tg_arn = observed
        .id_of(Kind::TargetGroup, d.get("target_group"))
        .unwrap_or_default()
        .to_string();
    let svc = ctx.stack.service.as_ref().ok_or_else(|| {
        AwsError::new(
            format!("deploy service `{name}`"),
            "the stack has no service",
        )
    })?;
    let arn = if cur.is_none() {
        let r = aws
            .ecs
            .create_service()
            .cluster(cluster)
            .service_name(name)
            .task_definition(task)
            .desired_count(desired_count)
            .launch_type(LaunchType::Fargate)
            .network_configuration(network(d, observed))
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(tg_arn)
                    .container_name(&svc.name)
                    .container_port(i32::from(svc.port))
                    .build(),
            )
            .set_tags(Some(tags(ctx, name)))
            .send()
            .await
            .map_err(|e| fail(format!("create ECS service `{name}`"), e))?;
        r.service()
            .and_then(|s| s.service_arn())
            .unwrap_or_default()
            .to_string()
    } else {
        let r = aws
            .ecs
            .update_service()
            .cluster(cluster)
            .service(name)
            .task_definition(task)
            .desired_count(desired_count)
            .network_configuration(network(d, observed))
            .send()
            .await
            .map_err(|e| fail(format!("update ECS service `{name}`"), e))?;
        r.service()
            .and_then(|s| s.service_arn())
            .unwrap_or_default()
            .to_string()
    };
    let state = std::sync::Mutex::new("deployment started".to_string());
    let timeout = svc.steady_state_timeout.0;
    if timeout.is_zero() {
        (ctx.progress)(format!("    not waiting for `{name}` to reach {desired_count} running tasks (service.steady_state_timeout is 0s)"));
    }
    wait_until(
        ctx,
        &format!("service `{name}` to reach {desired_count} running tasks"),
        timeout,
        || async {
            if timeout.is_zero() {
                return Ok(true);
            }
            let r = aws
                .ecs
                .describe_services()
                .cluster(cluster)
                .services(name)
                .send()
                .await
                .map_err(|e| fail(format!("describe ECS service `{name}`"), e))?;
            let Some(s) = r.services().first() else {
                return Ok(false);
            };
            *state.lock().unwrap_or_else(|e| e.into_inner()) = format!(
                "{} running / {} desired",
                s.running_count(),
                s.desired_count()
            );
            Ok(s.deployments().len() <= 1 && s.running_count() == s.desired_count())
        },
    )
    .await?;
    let state = state.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(ObservedResource {
        id: arn,
        owner: Some(ctx.owner.clone()),
        state,
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

pub async fn delete(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    key: &Key,
    cur: &ObservedResource,
) -> AwsResult<()> {
    let name = &key.name;
    match key.kind {
        Kind::EcsService => {
            let cluster = cur.attrs.get("cluster").cloned().unwrap_or_default();
            aws.ecs
                .delete_service()
                .cluster(&cluster)
                .service(name)
                .force(true)
                .send()
                .await
                .map_err(|e| fail(format!("delete ECS service `{name}`"), e))?;
            wait_until(
                ctx,
                &format!("service `{name}` to drain"),
                Duration::from_secs(900),
                || async {
                    let r = aws
                        .ecs
                        .describe_services()
                        .cluster(&cluster)
                        .services(name)
                        .send()
                        .await
                        .map_err(|e| fail(format!("describe ECS service `{name}`"), e))?;
                    Ok(r.services()
                        .iter()
                        .all(|s| s.status() != Some("ACTIVE") && s.status() != Some("DRAINING")))
                },
            )
            .await
        }
        Kind::TaskDefinition => aws
            .ecs
            .deregister_task_definition()
            .task_definition(&cur.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("deregister task definition `{name}`"), e)),
        Kind::EcsCluster => aws
            .ecs
            .delete_cluster()
            .cluster(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("delete ECS cluster `{name}`"), e)),
        _ => Ok(()),
    }
}

/// Whether a task definition revision (`family:N`) is still registered (ACTIVE).
pub async fn task_definition_active(aws: &Aws, revision: &str) -> AwsResult<bool> {
    match aws
        .ecs
        .describe_task_definition()
        .task_definition(revision)
        .send()
        .await
    {
        Ok(t) => Ok(t
            .task_definition()
            .and_then(|t| t.status())
            .map(|s| s.as_str())
            == Some("ACTIVE")),
        Err(e) if code_of(&e) == Some("ClientException") => Ok(false),
        Err(e) => Err(fail(format!("describe task definition `{revision}`"), e)),
    }
}
