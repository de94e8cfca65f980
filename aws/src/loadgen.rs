//! Distributed load tests: the run's store in the ledger bucket (`loadtest-runs/<run-id>/…`: the profile the
//! coordinator hands out, each worker's result) and the ECS tasks that run workers. Plain inputs in, plain data
//! out: what to run and how to merge is decided in `statsctl_loadtest` and the CLI.

use crate::{fail, Aws, AwsError, AwsResult};

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
