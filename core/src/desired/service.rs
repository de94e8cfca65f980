//! The service family: the ECS cluster, the load balancer with its target group and listener, the task
//! definition (environment from the same database block preflight budgets with) and the service.

use std::collections::BTreeMap;

use super::Ctx;
use crate::inventory::{Desired, Kind};
use crate::model::Connections;
use crate::spec::{
    EcsServiceSpec, ListenerSpec, LoadBalancerSpec, Ref, SecretSource, Spec, TargetGroupSpec,
    TaskDefinitionSpec,
};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let Some(svc) = &stack.service else {
        return vec![];
    };
    let mut out = vec![
        Desired::from_spec(svc.cluster.clone(), Spec::EcsCluster),
        Desired::from_spec(
            n.load_balancer(),
            Spec::LoadBalancer(LoadBalancerSpec {
                internal: svc.load_balancer.internal,
                subnets: cx.subnets.clone(),
                security_groups: vec![n.sg("lb")],
            }),
        ),
        Desired::from_spec(
            n.target_group(),
            Spec::TargetGroup(TargetGroupSpec {
                vpc: cx.vpc.clone(),
                port: svc.port,
                health_check_path: svc.health_check_path.clone(),
            }),
        ),
        Desired::from_spec(
            format!("{}:{}", n.load_balancer(), svc.load_balancer.listener_port),
            Spec::Listener(ListenerSpec::forward(
                svc.load_balancer.listener_port,
                n.target_group(),
            )),
        ),
    ];
    let (mut vars, secrets) = cx.split_environment(&svc.environment);
    // ECS sets these from Secrets Manager when a task starts.
    let secrets: BTreeMap<String, SecretSource> = secrets
        .into_iter()
        .map(|(k, arn, key)| (k, SecretSource { arn, key }))
        .collect();
    if let Some(d) = &svc.database {
        vars.insert(d.host_env.clone(), cx.db_host(d));
        // What the stats service (stats-service/) reads, from the same block preflight budgets with;
        // values set in `service.environment` win.
        let mode = if d.connections == Connections::PerRequest {
            "per-request"
        } else {
            "pool"
        };
        for (k, v) in [
            ("PORT", svc.port.to_string()),
            ("DB_USER", d.user.clone()),
            ("DB_NAME", stack.database.database_name.clone()),
            ("DB_MODE", mode.to_string()),
            ("DB_POOL_SIZE", d.pool_size.to_string()),
        ] {
            if !secrets.contains_key(k) {
                vars.entry(k.to_string()).or_insert(Ref::Known(v));
            }
        }
    }
    let family = n.task_family(&svc.name);
    let task = Desired::from_spec(
        family.clone(),
        Spec::TaskDefinition(TaskDefinitionSpec {
            image: svc.image.clone(),
            cpu: svc.cpu,
            memory_mb: svc.memory_mb,
            port: svc.port,
            environment: vars,
            secrets,
            task_role: n.task_role(),
        }),
    );
    // The service runs the registered revision that matches exactly; any change registers a new one.
    let revision = cx
        .observed
        .get(Kind::TaskDefinition, &family)
        .filter(|o| o.attrs == task.attrs)
        .and_then(|o| o.output("revision_ref"));
    let service = Desired::from_spec(
        svc.name.clone(),
        Spec::EcsService(EcsServiceSpec {
            cluster: svc.cluster.clone(),
            task_definition: Ref::or_after_apply(revision),
            desired_count: svc.desired_count,
            subnets: cx.subnets.clone(),
            security_groups: vec![n.sg("svc")],
            target_group: n.target_group(),
        }),
    );
    out.push(task);
    out.push(service);
    out
}
