//! Distributed load tests: the run's store in the ledger bucket (`loadtest-runs/<run-id>/…`: the profile the
//! coordinator hands out, each worker's result) and the ECS tasks that run workers. Plain inputs in, plain data
//! out: what to run and how to merge is decided in `statsctl_loadtest` and the CLI. Also the load-generator task
//! definition itself (register, observe), which `deploy` manages when the stack asks for workers.

use std::collections::BTreeMap;

use statsctl_core::inventory::{Key, Kind, ObservedResource};

use crate::{code_of, fail, owner_from, Aws, AwsError, AwsResult};

/// Where a run's objects live in the ledger bucket.
pub fn run_key(run_id: &str, name: &str) -> String {
    format!("loadtest-runs/{run_id}/{name}")
}

/// Writes one object of a run.
pub async fn put(aws: &Aws, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<()> {
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| {
            fail(format!("write `{key}` to the ledger bucket `{bucket}`"), e)
                .hint("run `statsctl deploy` first: it creates the ledger bucket")
        })?;
    Ok(())
}

/// Reads one object of a run; `None` when it is not there (yet).
pub async fn get(aws: &Aws, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>> {
    crate::ledger::get_object(aws, bucket, key, "the run's object").await
}

/// One worker task to start: the load-generator task definition in the service's network, its statsctl
/// command (shard, start time, run id) as the container's command override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLaunch {
    pub cluster: String,
    /// Family (the latest revision) or ARN.
    pub task_definition: String,
    pub container: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub command: Vec<String>,
    /// Marks the task as this run's (ECS `startedBy`, at most 36 characters).
    pub started_by: String,
}

/// Starts one Fargate task; returns its ARN.
pub async fn run_task(aws: &Aws, t: &TaskLaunch) -> AwsResult<String> {
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, ContainerOverride, LaunchType, NetworkConfiguration,
        TaskOverride,
    };
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(t.subnets.clone()))
        .set_security_groups(Some(t.security_groups.clone()))
        .assign_public_ip(AssignPublicIp::Disabled)
        .build()
        .map_err(|e| AwsError::new("build the workers' network configuration", e.to_string()))?;
    let out = aws
        .ecs
        .run_task()
        .cluster(&t.cluster)
        .task_definition(&t.task_definition)
        .count(1)
        .launch_type(LaunchType::Fargate)
        .started_by(&t.started_by)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(vpc)
                .build(),
        )
        .overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name(&t.container)
                        .set_command(Some(t.command.clone()))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            fail(
                format!("start a load-generator task of `{}`", t.task_definition),
                e,
            )
            .hint("the task definition must exist in the cluster's region (family `<stack>-<env>-loadgen`, running the statsctl image)")
        })?;
    if let Some(f) = out.failures().first() {
        return Err(AwsError::new(
            format!("start a load-generator task of `{}`", t.task_definition),
            format!(
                "ECS refused it: {} ({})",
                f.reason().unwrap_or("no reason given"),
                f.arn().unwrap_or_default()
            ),
        ));
    }
    out.tasks()
        .first()
        .and_then(|task| task.task_arn())
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::new(
                format!("start a load-generator task of `{}`", t.task_definition),
                "ECS answered without a task",
            )
        })
}

/// Stops a task (whatever its state: stopping a stopped task is harmless).
pub async fn stop_task(aws: &Aws, cluster: &str, task: &str, reason: &str) -> AwsResult<()> {
    aws.ecs
        .stop_task()
        .cluster(cluster)
        .task(task)
        .reason(reason)
        .send()
        .await
        .map_err(|e| fail(format!("stop the load-generator task `{task}`"), e))?;
    Ok(())
}

/// A worker task as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    pub arn: String,
    pub last_status: String,
    pub stopped_reason: Option<String>,
    /// The container's exit code, once it has stopped.
    pub exit_code: Option<i32>,
}

pub async fn describe_tasks(
    aws: &Aws,
    cluster: &str,
    tasks: &[String],
) -> AwsResult<Vec<TaskState>> {
    let mut out = Vec::new();
    // DescribeTasks takes at most 100 tasks a call.
    for chunk in tasks.chunks(100) {
        let r = aws
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| fail("describe the load-generator tasks", e))?;
        out.extend(r.tasks().iter().map(|t| TaskState {
            arn: t.task_arn().unwrap_or_default().to_string(),
            last_status: t.last_status().unwrap_or_default().to_string(),
            stopped_reason: t.stopped_reason().map(str::to_string),
            exit_code: t.containers().first().and_then(|c| c.exit_code()),
        }));
    }
    Ok(out)
}

/// One revision of the load-generator task definition: one container, no port, logs to CloudWatch Logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadgenTaskInput {
    pub family: String,
    pub container_name: String,
    pub image: String,
    /// As ECS takes them: CPU units and MiB.
    pub cpu: String,
    pub memory_mb: String,
    pub command: Vec<String>,
    pub role_arn: String,
    pub log_group: String,
    pub region: String,
    pub tags: Vec<(String, String)>,
}

/// Registers a new revision of the load-generator task definition; returns its ARN.
pub async fn register_task_definition(aws: &Aws, t: &LoadgenTaskInput) -> AwsResult<String> {
    use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};
    let family = &t.family;
    let logs = LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", &t.log_group)
        .options("awslogs-region", &t.region)
        .options("awslogs-stream-prefix", &t.container_name)
        // The role may create it: no separate log-group resource to manage.
        .options("awslogs-create-group", "true")
        .build()
        .map_err(|e| {
            AwsError::new(
                format!("register task definition `{family}`"),
                format!("the log configuration is incomplete: {e}"),
            )
        })?;
    let container = ContainerDefinition::builder()
        .name(&t.container_name)
        .image(&t.image)
        .essential(true)
        .set_command(Some(t.command.clone()))
        .log_configuration(logs)
        .build();
    crate::ecs::register_fargate(
        aws,
        crate::ecs::FargateTask {
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

/// The load-generator task definition's latest active revision, in the attributes its spec renders (`image`,
/// `cpu`, `memory_mb`, `command`, `task_role`, `log_group`); nothing when the family has none.
pub async fn observe(aws: &Aws, family: &str) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let t = match aws
        .ecs
        .describe_task_definition()
        .task_definition(family)
        .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
    {
        Ok(t) => t,
        // No such family.
        Err(e) if code_of(&e) == Some("ClientException") => return Ok(vec![]),
        Err(e) => return Err(fail(format!("describe task definition `{family}`"), e)),
    };
    let Some(td) = t
        .task_definition()
        .filter(|td| td.status().map(|s| s.as_str()) == Some("ACTIVE"))
    else {
        return Ok(vec![]);
    };
    let container = td.container_definitions().first();
    let mut r = ObservedResource {
        id: td.task_definition_arn().unwrap_or_default().into(),
        owner: owner_from(
            t.tags()
                .iter()
                .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
        ),
        state: format!("revision {}", td.revision()),
        ..Default::default()
    };
    let command: Vec<&str> = container
        .map(|c| c.command().iter().map(String::as_str).collect())
        .unwrap_or_default();
    let log_options: BTreeMap<String, String> = container
        .and_then(|c| c.log_configuration())
        .and_then(|l| l.options())
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for (k, v) in [
        (
            "image",
            container.and_then(|c| c.image()).unwrap_or_default().into(),
        ),
        ("cpu", td.cpu().unwrap_or_default().into()),
        ("memory_mb", td.memory().unwrap_or_default().into()),
        ("command", serde_json::json!(command).to_string()),
        (
            "task_role",
            td.task_role_arn()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .into(),
        ),
        (
            "log_group",
            log_options
                .get("awslogs-group")
                .cloned()
                .unwrap_or_default(),
        ),
    ] {
        r.attrs.insert(k.to_string(), v);
    }
    r.outputs.insert(
        "revision_ref".into(),
        crate::ecs::revision_ref(td.task_definition_arn().unwrap_or_default()),
    );
    Ok(vec![(Key::new(Kind::TaskDefinition, family), r)])
}
