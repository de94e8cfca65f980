//! `service.healthy`: the ECS service runs as many tasks as it should.

use statsctl_stacks::inventory::Kind;

use crate::{Facts, Finding, Status};

pub const ID: &str = "service.healthy";

pub fn check(facts: &Facts) -> Vec<Finding> {
    let Some(svc) = &facts.stack.service else {
        return vec![Finding::new(ID, Status::Skip, "the stack has no service")];
    };
    let Some(live) = facts.observed.get(Kind::EcsService, &svc.name) else {
        return vec![Finding::new(
            ID,
            Status::Fail,
            format!("service `{}` does not exist", svc.name),
        )
        .fix("statsctl deploy")];
    };
    let running: u64 = live
        .output("running")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let desired: u64 = live
        .output("desired")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if running >= desired && desired > 0 {
        vec![Finding::new(
            ID,
            Status::Pass,
            format!("{running}/{desired} tasks running"),
        )]
    } else {
        vec![Finding::new(ID, Status::Fail, format!("{running}/{desired} tasks running"))
            .evidence(format!("service `{}` in cluster `{}`", svc.name, svc.cluster))
            .fix(format!("look at the service's stopped tasks: aws ecs describe-services --cluster {} --services {}", svc.cluster, svc.name))]
    }
}
