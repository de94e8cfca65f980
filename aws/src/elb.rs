//! Elastic Load Balancing v2: the service's application load balancer, its target group and listener.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag,
    TargetTypeEnum,
};

use crate::ctx::ApplyCtx;
use crate::{code_of, fail, owner_from, tags_for, Aws, AwsError, AwsResult};
use statsctl_core::inventory::{join_sorted, Desired, Key, Kind, Observed, ObservedResource};

fn tags(ctx: &ApplyCtx, name: &str) -> Vec<Tag> {
    tags_for(&ctx.owner, ctx.tags, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// CloudWatch's `LoadBalancer` dimension: `app/name/id` from the ARN.
pub fn lb_dimension(arn: &str) -> String {
    arn.split(":loadbalancer/")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// CloudWatch's `TargetGroup` dimension: `targetgroup/name/id` from the ARN.
pub fn tg_dimension(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or_default().to_string()
}

fn not_found(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.contains("NotFound"))
}

pub async fn observe(aws: &Aws, lb: &str, tg: &str) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let (l, t) = tokio::join!(
        aws.elb.describe_load_balancers().names(lb).send(),
        aws.elb.describe_target_groups().names(tg).send()
    );
    let l = match l {
        Ok(l) => l.load_balancers().first().cloned(),
        Err(e) if not_found(code_of(&e)) => None,
        Err(e) => return Err(fail(format!("describe load balancer `{lb}`"), e)),
    };
    let t = match t {
        Ok(t) => t.target_groups().first().cloned(),
        Err(e) if not_found(code_of(&e)) => None,
        Err(e) => return Err(fail(format!("describe target group `{tg}`"), e)),
    };
    let arns: Vec<String> = l
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(t.iter().filter_map(|t| t.target_group_arn()))
        .map(str::to_string)
        .collect();
    let mut owners = std::collections::BTreeMap::new();
    if !arns.is_empty() {
        let tags = aws
            .elb
            .describe_tags()
            .set_resource_arns(Some(arns))
            .send()
            .await
            .map_err(|e| fail("describe load balancer tags", e))?;
        for d in tags.tag_descriptions() {
            owners.insert(
                d.resource_arn().unwrap_or_default().to_string(),
                owner_from(
                    d.tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
                ),
            );
        }
    }
    if let Some(l) = &l {
        let arn = l.load_balancer_arn().unwrap_or_default().to_string();
        let mut r = ObservedResource {
            id: arn.clone(),
            owner: owners.get(&arn).cloned().flatten(),
            state: l
                .state()
                .and_then(|s| s.code())
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            ..Default::default()
        };
        r.attrs.insert(
            "scheme".into(),
            l.scheme()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        );
        r.attrs.insert(
            "subnets".into(),
            join_sorted(l.availability_zones().iter().filter_map(|z| z.subnet_id())),
        );
        r.attrs.insert(
            "security_groups".into(),
            join_sorted(l.security_groups().iter().map(String::as_str)),
        );
        r.outputs.insert("dimension".into(), lb_dimension(&arn));
        r.outputs
            .insert("dns_name".into(), l.dns_name().unwrap_or_default().into());
        out.push((Key::new(Kind::LoadBalancer, lb), r));
        let listeners = aws
            .elb
            .describe_listeners()
            .load_balancer_arn(&arn)
            .send()
            .await
            .map_err(|e| fail(format!("describe listeners of `{lb}`"), e))?;
        for li in listeners.listeners() {
            let port = li.port().unwrap_or_default();
            let mut r = ObservedResource {
                id: li.listener_arn().unwrap_or_default().into(),
                owner: owners.get(&arn).cloned().flatten(),
                state: "active".into(),
                ..Default::default()
            };
            r.attrs.insert("port".into(), port.to_string());
            let target = li
                .default_actions()
                .iter()
                .filter_map(|a| a.target_group_arn())
                .map(|a| {
                    a.split("targetgroup/")
                        .nth(1)
                        .and_then(|s| s.split('/').next())
                        .unwrap_or(a)
                        .to_string()
                });
            r.attrs.insert("target_group".into(), join_sorted(target));
            out.push((Key::new(Kind::Listener, format!("{lb}:{port}")), r));
        }
    }
    if let Some(t) = &t {
        let arn = t.target_group_arn().unwrap_or_default().to_string();
        let mut r = ObservedResource {
            id: arn.clone(),
            owner: owners.get(&arn).cloned().flatten(),
            state: "exists".into(),
            ..Default::default()
        };
        r.attrs
            .insert("vpc".into(), t.vpc_id().unwrap_or_default().into());
        r.attrs
            .insert("port".into(), t.port().unwrap_or_default().to_string());
        r.attrs.insert(
            "protocol".into(),
            t.protocol()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        r.attrs.insert(
            "target_type".into(),
            t.target_type()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        r.attrs.insert(
            "health_check_path".into(),
            t.health_check_path().unwrap_or_default().into(),
        );
        r.outputs.insert("dimension".into(), tg_dimension(&arn));
        out.push((Key::new(Kind::TargetGroup, tg), r));
    }
    Ok(out)
}

fn ids(observed: &Observed, kind: Kind, list: &str) -> Vec<String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|n| observed.id_of(kind, n).unwrap_or(n).to_string())
        .collect()
}

pub async fn put_load_balancer(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let subnets = ids(observed, Kind::Subnet, d.get("subnets"));
    let sgs = ids(observed, Kind::SecurityGroup, d.get("security_groups"));
    let (arn, dns) = match cur {
        None => {
            let r = aws
                .elb
                .create_load_balancer()
                .name(name)
                .r#type(LoadBalancerTypeEnum::Application)
                .scheme(LoadBalancerSchemeEnum::from(d.get("scheme")))
                .set_subnets(Some(subnets))
                .set_security_groups(Some(sgs))
                .set_tags(Some(tags(ctx, name)))
                .send()
                .await
                .map_err(|e| fail(format!("create load balancer `{name}`"), e))?;
            let lb = r.load_balancers().first();
            (
                lb.and_then(|l| l.load_balancer_arn())
                    .unwrap_or_default()
                    .to_string(),
                lb.and_then(|l| l.dns_name())
                    .unwrap_or_default()
                    .to_string(),
            )
        }
        Some(c) => {
            if c.attrs.get("subnets").map(String::as_str) != Some(d.get("subnets")) {
                aws.elb
                    .set_subnets()
                    .load_balancer_arn(&c.id)
                    .set_subnets(Some(subnets))
                    .send()
                    .await
                    .map_err(|e| fail(format!("set subnets of `{name}`"), e))?;
            }
            if c.attrs.get("security_groups").map(String::as_str) != Some(d.get("security_groups"))
            {
                aws.elb
                    .set_security_groups()
                    .load_balancer_arn(&c.id)
                    .set_security_groups(Some(sgs))
                    .send()
                    .await
                    .map_err(|e| fail(format!("set security groups of `{name}`"), e))?;
            }
            (
                c.id.clone(),
                c.output("dns_name").unwrap_or_default().to_string(),
            )
        }
    };
    let mut o = ObservedResource {
        id: arn.clone(),
        owner: Some(ctx.owner.clone()),
        state: "active".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("dimension".into(), lb_dimension(&arn));
    o.outputs.insert("dns_name".into(), dns);
    Ok(o)
}

pub async fn put_target_group(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let arn = match cur {
        None => {
            let vpc = observed
                .id_of(Kind::Vpc, d.get("vpc"))
                .unwrap_or_default()
                .to_string();
            let r = aws
                .elb
                .create_target_group()
                .name(name)
                .protocol(ProtocolEnum::Http)
                .port(d.get("port").parse().unwrap_or(80))
                .vpc_id(vpc)
                .target_type(TargetTypeEnum::Ip)
                .health_check_path(d.get("health_check_path"))
                .set_tags(Some(tags(ctx, name)))
                .send()
                .await
                .map_err(|e| fail(format!("create target group `{name}`"), e))?;
            r.target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .unwrap_or_default()
                .to_string()
        }
        Some(c) => {
            aws.elb
                .modify_target_group()
                .target_group_arn(&c.id)
                .health_check_path(d.get("health_check_path"))
                .send()
                .await
                .map_err(|e| fail(format!("modify target group `{name}`"), e))?;
            c.id.clone()
        }
    };
    let mut o = ObservedResource {
        id: arn.clone(),
        owner: Some(ctx.owner.clone()),
        state: "exists".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("dimension".into(), tg_dimension(&arn));
    Ok(o)
}

pub async fn put_listener(
    aws: &Aws,
    d: &Desired,
    cur: Option<&ObservedResource>,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let lb_name = name.rsplit_once(':').map(|(l, _)| l).unwrap_or(name);
    let lb = observed.id_of(Kind::LoadBalancer, lb_name).ok_or_else(|| {
        AwsError::new(
            format!("create listener `{name}`"),
            "its load balancer does not exist",
        )
    })?;
    let tg = observed
        .id_of(Kind::TargetGroup, d.get("target_group"))
        .ok_or_else(|| {
            AwsError::new(
                format!("create listener `{name}`"),
                "its target group does not exist",
            )
        })?;
    let forward = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(tg)
        .build();
    let arn = match cur {
        None => {
            let r = aws
                .elb
                .create_listener()
                .load_balancer_arn(lb)
                .protocol(ProtocolEnum::Http)
                .port(d.get("port").parse().unwrap_or(80))
                .default_actions(forward)
                .send()
                .await
                .map_err(|e| fail(format!("create listener `{name}`"), e))?;
            r.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .unwrap_or_default()
                .to_string()
        }
        Some(c) => {
            aws.elb
                .modify_listener()
                .listener_arn(&c.id)
                .default_actions(forward)
                .send()
                .await
                .map_err(|e| fail(format!("modify listener `{name}`"), e))?;
            c.id.clone()
        }
    };
    Ok(ObservedResource {
        id: arn,
        state: "active".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

pub async fn delete(aws: &Aws, key: &Key, cur: &ObservedResource) -> AwsResult<()> {
    let what = format!("delete {key}");
    let r = match key.kind {
        Kind::Listener => aws
            .elb
            .delete_listener()
            .listener_arn(&cur.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        Kind::TargetGroup => aws
            .elb
            .delete_target_group()
            .target_group_arn(&cur.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        Kind::LoadBalancer => aws
            .elb
            .delete_load_balancer()
            .load_balancer_arn(&cur.id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        _ => Ok(()),
    };
    match r {
        Err(e) if not_found(e.code.as_deref()) => Ok(()),
        other => other,
    }
}
