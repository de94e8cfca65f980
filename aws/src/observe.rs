//! Observing a whole stack: every service's reads run concurrently, then ids in attributes are translated to the
//! names statsctl uses, so observed and desired compare directly. Also the live state only preflight reads (the
//! load balancer's target health).

use crate::{fail, Aws, AwsResult};
use statsctl_core::desired::service::{Colour, ColourNames};
use statsctl_core::desired::Names;
use statsctl_core::inventory::{Kind, Observed, Owner};
use statsctl_core::model::StackFile;

pub async fn observe(aws: &Aws, stack: &StackFile, env: &str) -> AwsResult<Observed> {
    let owner = Owner {
        stack: stack.stack.clone(),
        env: env.to_string(),
    };
    let n = Names::new(stack, env);
    let existing = stack
        .network
        .existing
        .as_ref()
        .map(|e| (e.vpc_id.as_str(), e.subnet_ids.as_slice()));
    let functions: Vec<(String, String)> = stack
        .functions
        .iter()
        .map(|(name, f)| (stack.function_name(env, name), f.alias.clone()))
        .collect();
    let identity = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| fail("identify the AWS account (sts:GetCallerIdentity)", e))?;
    let account = identity.account().unwrap_or_default().to_string();
    let bucket = statsctl_core::ledger::bucket_name(stack, env, &account);
    let referenced_secrets = statsctl_core::desired::referenced_secrets(stack);
    // The service's two colours (services and target groups).
    let names = ColourNames::new(stack, env);
    let colour_services: Vec<String> = names
        .iter()
        .flat_map(|x| Colour::BOTH.map(|c| x.service(c)))
        .collect();
    let colour_tgs: Vec<String> = names
        .iter()
        .flat_map(|x| Colour::BOTH.map(|c| x.target_group(c)))
        .collect();
    let (ledger, ec2, iam, secret, rds, lambda, ecs, elb, alarms, env_secrets) = tokio::join!(
        crate::s3::observe(aws, &bucket),
        crate::ec2::observe(aws, &owner, existing),
        crate::iam::observe(aws, &owner),
        crate::secrets::observe(aws, &stack.database.credentials_secret),
        crate::rds::observe(
            aws,
            &n.prefix,
            &stack.database.cluster_id,
            stack.proxy.as_ref().map(|p| p.name.as_str())
        ),
        crate::lambda::observe(aws, &n.prefix, &functions),
        async {
            match &stack.service {
                Some(s) => {
                    crate::ecs::observe(aws, &s.cluster, &colour_services, &n.task_family(&s.name))
                        .await
                }
                None => Ok(vec![]),
            }
        },
        async {
            match &stack.service {
                Some(_) => {
                    let mut found =
                        crate::elb::observe(aws, &n.load_balancer(), &colour_tgs).await?;
                    target_health(aws, &mut found).await;
                    Ok(found)
                }
                None => Ok(vec![]),
            }
        },
        crate::cloudwatch::observe(aws, &owner, &n.prefix),
        crate::secrets::observe_referenced(aws, &referenced_secrets),
    );
    let mut observed = Observed {
        account_id: account,
        region: aws.region.clone(),
        ..Default::default()
    };
    // The load generator's task definition: looked for whatever the stack says, so one the stack no longer
    // wants is still found (and removed).
    let loadgen = crate::loadgen::observe(
        aws,
        &statsctl_core::desired::loadgen::family(&stack.stack, env),
    )
    .await?;
    let (owned_ec2, referenced) = ec2?;
    for part in [
        ledger?, owned_ec2, iam?, secret?, rds?, lambda?, ecs?, elb?, alarms?, loadgen,
    ] {
        observed.resources.extend(part);
    }
    observed.referenced.extend(referenced);
    // Secrets environment variables reference: read, never managed (the credentials secret, if referenced too,
    // is also in `resources`, which `Observed::get` looks at first).
    observed.referenced.extend(env_secrets?);
    normalize(&mut observed);
    Ok(observed)
}

/// Adds the target group's `target_health` output (`healthy,unhealthy,…`, one per registered target) for
/// `service.healthy`. Best effort: when AWS cannot report it, the output is absent and the check says nothing.
async fn target_health(
    aws: &Aws,
    found: &mut [(
        statsctl_core::inventory::Key,
        statsctl_core::inventory::ObservedResource,
    )],
) {
    for (_, r) in found
        .iter_mut()
        .filter(|(k, _)| k.kind == Kind::TargetGroup)
    {
        let Ok(h) = aws
            .elb
            .describe_target_health()
            .target_group_arn(&r.id)
            .send()
            .await
        else {
            continue;
        };
        let states: Vec<String> = h
            .target_health_descriptions()
            .iter()
            .map(|d| {
                d.target_health()
                    .and_then(|t| t.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into())
            })
            .collect();
        r.outputs.insert("target_health".into(), states.join(","));
    }
}

/// Rewrites subnet and security-group ids inside attributes to statsctl's names.
pub fn normalize(observed: &mut Observed) {
    let snapshot = observed.clone();
    for r in observed.resources.values_mut() {
        for (attr, kind) in [
            ("subnets", Kind::Subnet),
            ("security_groups", Kind::SecurityGroup),
            ("vpc", Kind::Vpc),
        ] {
            if let Some(v) = r.attrs.get(attr) {
                let ids: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
                let names = snapshot.names_of(kind, ids);
                r.attrs.insert(attr.to_string(), names);
            }
        }
    }
}
