//! Elastic Load Balancing v2: the service's application load balancer, its target group and listener.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum, Tag,
    TargetTypeEnum,
};

use crate::{code_of, fail, owner_from, Aws, AwsResult};
use statsctl_core::inventory::{join_sorted, Key, Kind, ObservedResource};

fn elb_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
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

/// The service's application load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadBalancerInput {
    pub name: String,
    /// `internal` or `internet-facing`.
    pub scheme: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub tags: Vec<(String, String)>,
}

/// Creates the load balancer; returns its ARN and DNS name.
pub async fn create_load_balancer(
    aws: &Aws,
    lb: &LoadBalancerInput,
) -> AwsResult<(String, String)> {
    let name = &lb.name;
    let r = aws
        .elb
        .create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::from(lb.scheme.as_str()))
        .set_subnets(Some(lb.subnet_ids.clone()))
        .set_security_groups(Some(lb.security_group_ids.clone()))
        .set_tags(Some(elb_tags(&lb.tags)))
        .send()
        .await
        .map_err(|e| fail(format!("create load balancer `{name}`"), e))?;
    let lb = r.load_balancers().first();
    Ok((
        lb.and_then(|l| l.load_balancer_arn())
            .unwrap_or_default()
            .to_string(),
        lb.and_then(|l| l.dns_name())
            .unwrap_or_default()
            .to_string(),
    ))
}

pub async fn set_subnets(aws: &Aws, name: &str, arn: &str, subnet_ids: &[String]) -> AwsResult<()> {
    aws.elb
        .set_subnets()
        .load_balancer_arn(arn)
        .set_subnets(Some(subnet_ids.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("set subnets of `{name}`"), e))
}

pub async fn set_security_groups(
    aws: &Aws,
    name: &str,
    arn: &str,
    group_ids: &[String],
) -> AwsResult<()> {
    aws.elb
        .set_security_groups()
        .load_balancer_arn(arn)
        .set_security_groups(Some(group_ids.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("set security groups of `{name}`"), e))
}

/// The target group the service's tasks register in (HTTP, IP targets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInput {
    pub name: String,
    pub port: i32,
    pub vpc_id: String,
    pub health_check_path: String,
    pub tags: Vec<(String, String)>,
}

/// Creates the target group; returns its ARN.
pub async fn create_target_group(aws: &Aws, tg: &TargetGroupInput) -> AwsResult<String> {
    let name = &tg.name;
    let r = aws
        .elb
        .create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(tg.port)
        .vpc_id(&tg.vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .health_check_path(&tg.health_check_path)
        .set_tags(Some(elb_tags(&tg.tags)))
        .send()
        .await
        .map_err(|e| fail(format!("create target group `{name}`"), e))?;
    Ok(r.target_groups()
        .first()
        .and_then(|t| t.target_group_arn())
        .unwrap_or_default()
        .to_string())
}

/// Sets what can change in place: the health check path.
pub async fn modify_target_group(aws: &Aws, arn: &str, tg: &TargetGroupInput) -> AwsResult<()> {
    aws.elb
        .modify_target_group()
        .target_group_arn(arn)
        .health_check_path(&tg.health_check_path)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("modify target group `{}`", tg.name), e))
}

/// An HTTP listener forwarding everything to one target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInput {
    pub name: String,
    pub load_balancer_arn: String,
    pub port: i32,
    pub target_group_arn: String,
}

impl ListenerInput {
    fn forward(&self) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&self.target_group_arn)
            .build()
    }
}

/// Creates the listener (`current` is `None`) or repoints the one with that ARN; returns its ARN.
pub async fn put_listener(
    aws: &Aws,
    l: &ListenerInput,
    current: Option<&str>,
) -> AwsResult<String> {
    let name = &l.name;
    match current {
        None => {
            let r = aws
                .elb
                .create_listener()
                .load_balancer_arn(&l.load_balancer_arn)
                .protocol(ProtocolEnum::Http)
                .port(l.port)
                .default_actions(l.forward())
                .send()
                .await
                .map_err(|e| fail(format!("create listener `{name}`"), e))?;
            Ok(r.listeners()
                .first()
                .and_then(|l| l.listener_arn())
                .unwrap_or_default()
                .to_string())
        }
        Some(arn) => {
            aws.elb
                .modify_listener()
                .listener_arn(arn)
                .default_actions(l.forward())
                .send()
                .await
                .map_err(|e| fail(format!("modify listener `{name}`"), e))?;
            Ok(arn.to_string())
        }
    }
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

/// The target group's registered targets as `(target id, health state, reason)`; `None` when there is no such
/// target group.
pub async fn target_health(
    aws: &Aws,
    target_group: &str,
) -> AwsResult<Option<Vec<(String, String, String)>>> {
    let arn = match aws
        .elb
        .describe_target_groups()
        .names(target_group)
        .send()
        .await
    {
        Ok(t) => t
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .map(str::to_string),
        Err(e) if not_found(code_of(&e)) => None,
        Err(e) => return Err(fail(format!("describe target group `{target_group}`"), e)),
    };
    let Some(arn) = arn else { return Ok(None) };
    let h = aws
        .elb
        .describe_target_health()
        .target_group_arn(&arn)
        .send()
        .await
        .map_err(|e| fail(format!("read target health of `{target_group}`"), e))?;
    Ok(Some(
        h.target_health_descriptions()
            .iter()
            .map(|d| {
                let health = d.target_health();
                (
                    d.target()
                        .and_then(|t| t.id())
                        .unwrap_or_default()
                        .to_string(),
                    health
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into()),
                    health
                        .and_then(|h| h.description())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
    ))
}
