//! ECS: the cluster, the service's task definition (a new revision per change) and the service's two colours
//! (two ECS services, each in its own target group), with the tags that record a colour's start and keep time.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, KeyValuePair,
    LaunchType, LoadBalancer, NetworkConfiguration, NetworkMode, PortMapping, Secret, Tag,
};

use crate::{code_of, fail, owner_from, Aws, AwsError, AwsResult};
use statsctl_core::desired::service::{keep_expired, KEEP_EXPIRED, KEEP_UNTIL_TAG, STARTED_TAG};
use statsctl_core::inventory::{canonical_map, join_sorted, Key, Kind, ObservedResource};

fn ecs_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
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

use crate::elb::target_group_name;

/// Now, in Unix seconds (0 on a clock before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Observes the cluster, the task definition family's latest revision and the services named `services` (the
/// service's colours; one not found is left out).
pub async fn observe(
    aws: &Aws,
    cluster: &str,
    services: &[String],
    family: &str,
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let service = services.join(", ");
    let service = service.as_str();
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
            .set_services(Some(services.to_vec()))
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
            let tag = |k: &str| {
                tag_pairs(svc.tags())
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            };
            if let Some(started) = tag(STARTED_TAG) {
                r.outputs.insert("started".into(), started);
            }
            let keep_until = tag(KEEP_UNTIL_TAG);
            r.outputs.insert(
                KEEP_EXPIRED.into(),
                keep_expired(
                    keep_until.as_deref().and_then(|t| t.parse().ok()),
                    unix_now(),
                )
                .to_string(),
            );
            if let Some(k) = keep_until {
                r.outputs.insert("keep_until".into(), k);
            }
            let name = svc.service_name().unwrap_or_default();
            out.push((Key::new(Kind::EcsService, name), r));
        }
    }
    Ok(out)
}

pub async fn create_cluster(aws: &Aws, name: &str, tags: &[(String, String)]) -> AwsResult<String> {
    let r = aws
        .ecs
        .create_cluster()
        .cluster_name(name)
        .set_tags(Some(ecs_tags(tags)))
        .send()
        .await
        .map_err(|e| fail(format!("create ECS cluster `{name}`"), e))?;
    Ok(r.cluster()
        .and_then(|c| c.cluster_arn())
        .unwrap_or_default()
        .into())
}

/// One Fargate task definition revision with a single container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInput {
    pub family: String,
    pub container_name: String,
    pub image: String,
    /// As ECS takes them: CPU units and MiB, e.g. `256` and `512`.
    pub cpu: String,
    pub memory_mb: String,
    pub port: i32,
    pub role_arn: String,
    pub environment: BTreeMap<String, String>,
    /// Variable → `valueFrom` (a secret ARN, optionally `:json-key::`).
    pub secrets: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
}

/// Registers a new revision; returns its ARN.
pub async fn register_task_definition(aws: &Aws, t: &TaskInput) -> AwsResult<String> {
    let family = &t.family;
    let secrets = t
        .secrets
        .iter()
        .map(|(k, v)| Secret::builder().name(k).value_from(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            AwsError::new(
                format!("register task definition `{family}`"),
                format!("a secret reference is incomplete: {e}"),
            )
        })?;
    let container = ContainerDefinition::builder()
        .name(&t.container_name)
        .image(&t.image)
        .essential(true)
        .port_mappings(PortMapping::builder().container_port(t.port).build())
        .set_environment(Some(
            t.environment
                .iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .set_secrets((!secrets.is_empty()).then_some(secrets))
        .build();
    register_fargate(
        aws,
        FargateTask {
            family,
            cpu: &t.cpu,
            memory_mb: &t.memory_mb,
            role_arn: &t.role_arn,
            tags: &t.tags,
        },
        container,
    )
    .await
}

/// A Fargate task definition's settings besides its one container.
pub struct FargateTask<'a> {
    pub family: &'a str,
    pub cpu: &'a str,
    pub memory_mb: &'a str,
    /// Task and execution role.
    pub role_arn: &'a str,
    pub tags: &'a [(String, String)],
}

/// Registers a Fargate (awsvpc) task definition with one container; returns the new revision's ARN. The service's
/// and the load generator's task definitions both go through here.
pub async fn register_fargate(
    aws: &Aws,
    t: FargateTask<'_>,
    container: ContainerDefinition,
) -> AwsResult<String> {
    let family = t.family;
    let r = aws
        .ecs
        .register_task_definition()
        .family(family)
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu(t.cpu)
        .memory(t.memory_mb)
        .task_role_arn(t.role_arn)
        .execution_role_arn(t.role_arn)
        .container_definitions(container)
        .set_tags(Some(ecs_tags(t.tags)))
        .send()
        .await
        .map_err(|e| {
            fail(format!("register task definition `{family}`"), e).hint(
                "Fargate accepts only certain cpu/memory pairs, e.g. 256/512, 512/1024, 1024/2048",
            )
        })?;
    Ok(r.task_definition()
        .and_then(|t| t.task_definition_arn())
        .unwrap_or_default()
        .to_string())
}

/// The service behind the load balancer's target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInput {
    pub name: String,
    pub cluster: String,
    /// `family:revision` or an ARN.
    pub task_definition: String,
    pub desired_count: i32,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i32,
    pub tags: Vec<(String, String)>,
}

impl ServiceInput {
    fn network(&self) -> AwsResult<NetworkConfiguration> {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(self.subnet_ids.clone()))
            .set_security_groups(Some(self.security_group_ids.clone()))
            .assign_public_ip(AssignPublicIp::Disabled)
            .build()
            .map_err(|e| {
                AwsError::new(format!("deploy ECS service `{}`", self.name), e.to_string())
            })?;
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }
}

/// Creates the service (`exists == false`) or updates its task definition, count and network; returns its ARN
/// at once: it is steady when [`service_status`] says so.
pub async fn put_service(aws: &Aws, s: &ServiceInput, exists: bool) -> AwsResult<String> {
    let name = &s.name;
    let service = if exists {
        aws.ecs
            .update_service()
            .cluster(&s.cluster)
            .service(name)
            .task_definition(&s.task_definition)
            .desired_count(s.desired_count)
            .network_configuration(s.network()?)
            .send()
            .await
            .map_err(|e| fail(format!("update ECS service `{name}`"), e))?
            .service()
            .cloned()
    } else {
        aws.ecs
            .create_service()
            .cluster(&s.cluster)
            .service_name(name)
            .task_definition(&s.task_definition)
            .desired_count(s.desired_count)
            .launch_type(LaunchType::Fargate)
            .network_configuration(s.network()?)
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(&s.target_group_arn)
                    .container_name(&s.container_name)
                    .container_port(s.container_port)
                    .build(),
            )
            .set_tags(Some(ecs_tags(&s.tags)))
            .send()
            .await
            .map_err(|e| fail(format!("create ECS service `{name}`"), e))?
            .service()
            .cloned()
    };
    Ok(service
        .and_then(|s| s.service_arn().map(str::to_string))
        .unwrap_or_default())
}

/// Sets tags on a service (by ARN): a colour's start time and keep time.
pub async fn tag_service(aws: &Aws, arn: &str, tags: &[(String, String)]) -> AwsResult<()> {
    aws.ecs
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(ecs_tags(tags)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("tag ECS service `{arn}`"), e))
}

/// A service as `DescribeServices` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// `ACTIVE`, `DRAINING`, `INACTIVE`.
    pub status: String,
    pub running: i32,
    pub desired: i32,
    /// Deployments under way (1 when steady).
    pub deployments: usize,
}

/// `None`: no such service in the cluster.
pub async fn service_status(
    aws: &Aws,
    cluster: &str,
    name: &str,
) -> AwsResult<Option<ServiceStatus>> {
    let r = aws
        .ecs
        .describe_services()
        .cluster(cluster)
        .services(name)
        .send()
        .await
        .map_err(|e| fail(format!("describe ECS service `{name}`"), e))?;
    Ok(r.services().first().map(|s| ServiceStatus {
        status: s.status().unwrap_or_default().to_string(),
        running: s.running_count(),
        desired: s.desired_count(),
        deployments: s.deployments().len(),
    }))
}

/// Starts deleting; a service drains afterwards (the executor waits on [`service_status`]).
pub async fn delete(aws: &Aws, key: &Key, cur: &ObservedResource) -> AwsResult<()> {
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
                .map(|_| ())
                .map_err(|e| fail(format!("delete ECS service `{name}`"), e))
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

/// A task definition revision (`family:N`) as DescribeTaskDefinition has it; `None` when there is no such
/// revision.
async fn describe_revision(
    aws: &Aws,
    revision: &str,
) -> AwsResult<Option<aws_sdk_ecs::types::TaskDefinition>> {
    match aws
        .ecs
        .describe_task_definition()
        .task_definition(revision)
        .send()
        .await
    {
        Ok(t) => Ok(t.task_definition),
        Err(e) if code_of(&e) == Some("ClientException") => Ok(None),
        Err(e) => Err(fail(format!("describe task definition `{revision}`"), e)),
    }
}

/// Whether a task definition revision (`family:N`) is still registered (ACTIVE).
pub async fn task_definition_active(aws: &Aws, revision: &str) -> AwsResult<bool> {
    Ok(describe_revision(aws, revision)
        .await?
        .and_then(|t| t.status)
        .is_some_and(|s| s.as_str() == "ACTIVE"))
}

/// Sets only the service's desired task count (`UpdateService`); returns at once: the tasks start or stop
/// afterwards ([`service_status`] reads it back).
pub async fn set_desired_count(aws: &Aws, cluster: &str, name: &str, count: i32) -> AwsResult<()> {
    aws.ecs
        .update_service()
        .cluster(cluster)
        .service(name)
        .desired_count(count)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            fail(
                format!("set the desired count of ECS service `{name}` to {count}"),
                e,
            )
        })
}

/// The service's running tasks as `(task ARN, private IPv4 address)`: the address is what the load balancer's
/// target group registers for an `awsvpc` task.
pub async fn task_addresses(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> AwsResult<Vec<(String, String)>> {
    let listed = aws
        .ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .send()
        .await
        .map_err(|e| fail(format!("list the tasks of ECS service `{service}`"), e))?;
    let arns = listed.task_arns().to_vec();
    if arns.is_empty() {
        return Ok(vec![]);
    }
    let described = aws
        .ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .map_err(|e| fail(format!("describe the tasks of ECS service `{service}`"), e))?;
    Ok(described
        .tasks()
        .iter()
        .map(|t| {
            let ip = t
                .attachments()
                .iter()
                .flat_map(|a| a.details())
                .find(|d| d.name() == Some("privateIPv4Address"))
                .and_then(|d| d.value())
                .unwrap_or_default();
            (t.task_arn().unwrap_or_default().to_string(), ip.to_string())
        })
        .collect())
}

/// Stops one task (`StopTask`) with a reason ECS records; the service starts a replacement.
pub async fn stop_task(aws: &Aws, cluster: &str, task: &str, reason: &str) -> AwsResult<()> {
    aws.ecs
        .stop_task()
        .cluster(cluster)
        .task(task)
        .reason(reason)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("stop ECS task `{task}`"), e))
}

/// Points the service at `revision` (`family:N`) and nothing else (UpdateService with only the task definition);
/// returns the revision the service reads back. Used by `rollback`: the executor waits on [`service_status`].
pub async fn set_task_definition(
    aws: &Aws,
    cluster: &str,
    service: &str,
    revision: &str,
) -> AwsResult<String> {
    let updated = aws
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(revision)
        .send()
        .await
        .map_err(|e| fail(format!("point ECS service `{service}` at `{revision}`"), e))?;
    Ok(revision_ref(
        updated
            .service()
            .and_then(|s| s.task_definition())
            .unwrap_or_default(),
    ))
}

/// The image of the first container of a task definition revision (`family:N`); `None` when it is not
/// registered.
pub async fn task_definition_image(aws: &Aws, revision: &str) -> AwsResult<Option<String>> {
    Ok(describe_revision(aws, revision).await?.and_then(|t| {
        t.container_definitions()
            .first()
            .and_then(|c| c.image())
            .map(str::to_string)
    }))
}
