//! The load-generator family: when the stack asks for distributed load tests (`loadtest.workers` > 1 and
//! `loadtest.image`), the task definition `loadtest --runner ecs` runs one task of per worker, and its role
//! (write the run's store in the ledger bucket, write logs, pull the image). No workers or no image: nothing.

use serde_json::json;

use super::{ledger_bucket_name, Ctx};
use crate::inventory::Desired;
use crate::model::StackFile;
use crate::spec::{LoadgenTaskSpec, Policy, Ref, RoleSpec, Spec};

/// The container's name in the load-generator task definition: what `RunTask` overrides the command of.
pub const CONTAINER: &str = "loadgen";

/// Fargate CPU units per worker: 2 vCPU. The generator runs one event loop per core, and a worker of two
/// cores holds ~100k req/s against a fast target (README "Benchmark"), so `workers` scales the load.
pub const CPU: u32 = 2048;
/// MiB per worker: the smallest Fargate pairs with 2 vCPU. A viewer costs well under a kilobyte and the
/// histograms a few MB, so this holds millions of viewers per worker.
pub const MEMORY_MB: u32 = 4096;

/// The one name of the load-generator task definition family (and of its role): `<stack>-<env>-loadgen`, by
/// the stack's name (`stack:` in the stack file).
pub fn family(stack: &str, env: &str) -> String {
    format!("{stack}-{env}-loadgen")
}

/// Where the workers' logs go.
pub fn log_group(stack: &str, env: &str) -> String {
    format!("/statsctl/{}", family(stack, env))
}

/// The task definition's own command: worker mode without a run, which refuses with a hint. `loadtest
/// --runner ecs` always overrides it per task (shard, start time, run id, store); a task started by hand with
/// the default does nothing but say so.
pub fn default_command() -> Vec<String> {
    ["loadtest", "--shard", "1/1"].map(String::from).to_vec()
}

/// Whether the stack asks for ECS load-generator workers.
pub fn wanted(stack: &StackFile) -> bool {
    stack
        .loadtest
        .as_ref()
        .is_some_and(|l| l.workers > 1 && l.image.as_deref().is_some_and(|i| !i.is_empty()))
}

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, env) = (cx.stack, cx.env);
    let image = match &stack.loadtest {
        Some(l) if wanted(stack) => l.image.clone().unwrap_or_default(),
        _ => return vec![],
    };
    let name = family(&stack.stack, env);
    // The run's store only: profile in, results out (`loadtest-runs/<run-id>/…`), nothing else in the ledger.
    let bucket = Ref::or_after_apply(
        cx.account
            .map(|a| ledger_bucket_name(stack, env, a))
            .as_deref(),
    )
    .render();
    let statements = vec![
        json!({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": format!("arn:aws:s3:::{bucket}/loadtest-runs/*")}),
        json!({"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}),
        // The role is also the execution role: it pulls the image when it is in ECR.
        json!({"Effect": "Allow", "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer"], "Resource": "*"}),
    ];
    vec![
        Desired::from_spec(
            name.clone(),
            Spec::Role(RoleSpec {
                trust: "ecs-tasks.amazonaws.com".into(),
                policy: Policy { statements },
            }),
        ),
        Desired::from_spec(
            name.clone(),
            Spec::LoadgenTask(LoadgenTaskSpec {
                image,
                cpu: CPU,
                memory_mb: MEMORY_MB,
                command: default_command(),
                task_role: name,
                log_group: log_group(&stack.stack, env),
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::{Key, Kind, Observed};

    use crate::testing::shipped;

    fn with(workers: u32, image: Option<&str>) -> StackFile {
        let mut stack = shipped("local");
        let l = stack
            .loadtest
            .as_mut()
            .expect("the shipped stack has a loadtest block");
        l.workers = workers;
        l.image = image.map(str::to_string);
        stack
    }

    #[test]
    fn only_a_stack_with_workers_and_an_image_gets_the_loadgen_family() {
        let observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        for (workers, image, wanted) in [
            (1, None, false),
            (1, Some("statsctl:0.1.0"), false),
            (3, None, false),
            (3, Some(""), false),
            (3, Some("statsctl:0.1.0"), true),
            (
                256,
                Some("123.dkr.ecr.us-east-1.amazonaws.com/statsctl:1"),
                true,
            ),
        ] {
            let stack = with(workers, image);
            let all = super::super::desired(&stack, "local", &observed, &BTreeMap::new());
            let family = "live-stats-local-loadgen";
            let td = all
                .iter()
                .find(|d| d.key == Key::new(Kind::TaskDefinition, family));
            let role = all.iter().find(|d| d.key == Key::new(Kind::Role, family));
            assert_eq!(td.is_some(), wanted, "{workers} {image:?}");
            assert_eq!(role.is_some(), wanted, "{workers} {image:?}");
            let (Some(td), Some(role)) = (td, role) else {
                continue;
            };
            assert_eq!(td.get("image"), image.unwrap());
            assert_eq!(td.get("command"), r#"["loadtest","--shard","1/1"]"#);
            assert_eq!((td.get("cpu"), td.get("memory_mb")), ("2048", "4096"));
            assert_eq!(td.get("task_role"), family);
            assert_eq!(td.get("log_group"), "/statsctl/live-stats-local-loadgen");
            assert_eq!(role.get("trust"), "ecs-tasks.amazonaws.com");
            assert!(
                role.get("policy")
                    .contains("arn:aws:s3:::live-stats-local-ledger-123456789012/loadtest-runs/*"),
                "{role:?}"
            );
            // The role comes first: the task definition names it.
            let at = |d: &Desired| all.iter().position(|x| x.key == d.key).unwrap();
            assert!(at(role) < at(td));
            // The service's task definition is untouched by it.
            assert!(all.iter().any(|d| d.key
                == Key::new(Kind::TaskDefinition, "live-stats-local-stats-service")
                && matches!(d.spec, Spec::TaskDefinition(_))));
        }
        assert_eq!(
            family(&with(3, None).stack, "prod"),
            "live-stats-prod-loadgen"
        );
    }

    #[test]
    fn the_loadgen_task_definition_ships_directly_not_as_the_service() {
        let stack = with(3, Some("statsctl:0.1.0"));
        let observed = Observed {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            ..Default::default()
        };
        let all = super::super::desired(&stack, "local", &observed, &BTreeMap::new());
        let owner = crate::inventory::Owner {
            stack: "live-stats".into(),
            env: "local".into(),
        };
        let plan = crate::plan::plan(&owner, &all, &observed);
        let units = crate::units::units(&plan, &stack);
        let holding = |key: &Key| {
            units
                .iter()
                .find(|u| u.changes.contains(key))
                .map(|u| u.id.clone())
        };
        assert_eq!(
            holding(&Key::new(Kind::TaskDefinition, "live-stats-local-loadgen")).as_deref(),
            Some(crate::units::DIRECT)
        );
        assert_eq!(
            holding(&Key::new(
                Kind::TaskDefinition,
                "live-stats-local-stats-service"
            ))
            .as_deref(),
            Some("service.stats-service")
        );
    }
}
