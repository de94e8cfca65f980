//! Elastic Load Balancing v2: the service's application load balancer, its two colours' target groups and the
//! listener, whose forward weights say which colour serves (set and read back here; decided in the engine).

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, ForwardActionConfig, LoadBalancerSchemeEnum, LoadBalancerTypeEnum,
    ProtocolEnum, Tag, TargetGroupTuple, TargetTypeEnum,
};

use crate::{code_of, fail, owner_from, Aws, AwsError, AwsResult};
use statsctl_core::desired::service::render_weights;
use statsctl_core::inventory::{canonical_map, join_sorted, Key, Kind, ObservedResource};

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

/// `arn:…:targetgroup/name/123` → `name`.
pub fn target_group_name(arn: &str) -> String {
    arn.split("targetgroup/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or(arn)
        .to_string()
}

/// A listener's forwards (target group ARN → weight) from its default actions: a weighted forward config, or a
/// plain forward (weight 1, as ELB reports a missing weight).
fn forwards_of(actions: &[Action]) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for a in actions {
        match a.forward_config().filter(|f| !f.target_groups().is_empty()) {
            Some(f) => out.extend(f.target_groups().iter().filter_map(|t| {
                let w = t.weight().unwrap_or(1).clamp(0, i32::from(u16::MAX));
                Some((t.target_group_arn()?.to_string(), u16::try_from(w).ok()?))
            })),
            None => out.extend(a.target_group_arn().map(|t| (t.to_string(), 1))),
        }
    }
    out
}

/// Observes the load balancer, its listeners and the target groups named `tgs` (each looked up on its own: one
/// missing name fails a combined lookup).
pub async fn observe(
    aws: &Aws,
    lb: &str,
    tgs: &[String],
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let (l, t) = tokio::join!(
        aws.elb.describe_load_balancers().names(lb).send(),
        futures::future::join_all(
            tgs.iter()
                .map(|tg| aws.elb.describe_target_groups().names(tg).send())
        )
    );
    let l = match l {
        Ok(l) => l.load_balancers().first().cloned(),
        Err(e) if not_found(code_of(&e)) => None,
        Err(e) => return Err(fail(format!("describe load balancer `{lb}`"), e)),
    };
    let mut groups = Vec::new();
    for (tg, t) in tgs.iter().zip(t) {
        match t {
            Ok(t) => groups.extend(t.target_groups().first().cloned()),
            Err(e) if not_found(code_of(&e)) => {}
            Err(e) => return Err(fail(format!("describe target group `{tg}`"), e)),
        }
    }
    let arns: Vec<String> = l
        .iter()
        .filter_map(|l| l.load_balancer_arn())
        .chain(groups.iter().filter_map(|t| t.target_group_arn()))
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
            let forwards: Vec<(String, u16)> = forwards_of(li.default_actions())
                .into_iter()
                .map(|(arn, w)| (target_group_name(&arn), w))
                .collect();
            out.push((
                Key::new(Kind::Listener, format!("{lb}:{port}")),
                listener_resource(
                    li.listener_arn().unwrap_or_default(),
                    port,
                    &forwards,
                    owners.get(&arn).cloned().flatten(),
                ),
            ));
        }
    }
    for t in &groups {
        let tg = t.target_group_name().unwrap_or_default();
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

/// A listener as observed from its forwards (target group name → weight). Only target groups with a weight
/// above 0 are attributes (a colour attached at weight 0 takes no traffic); the `weights` output keeps them all,
/// and a split shows in the state as a rollout in progress.
fn listener_resource(
    id: &str,
    port: i32,
    forwards: &[(String, u16)],
    owner: Option<statsctl_core::inventory::Owner>,
) -> ObservedResource {
    let positive: Vec<&(String, u16)> = forwards.iter().filter(|(_, w)| *w > 0).collect();
    let total: u32 = positive.iter().map(|(_, w)| u32::from(*w)).sum();
    let state = if positive.len() > 1 {
        let shares: Vec<String> = positive
            .iter()
            .map(|(t, w)| format!("{t} {}%", u32::from(*w) * 100 / total.max(1)))
            .collect();
        format!("rollout in progress: {}", shares.join(", "))
    } else {
        "active".into()
    };
    let mut r = ObservedResource {
        id: id.to_string(),
        owner,
        state,
        ..Default::default()
    };
    r.attrs.insert("port".into(), port.to_string());
    r.attrs.insert(
        "target_group".into(),
        join_sorted(positive.iter().map(|(t, _)| t.clone())),
    );
    if positive.len() > 1 {
        let weights = positive
            .iter()
            .map(|(t, w)| (t.clone(), w.to_string()))
            .collect();
        r.attrs
            .insert("target_group_weights".into(), canonical_map(&weights));
    }
    r.outputs.insert("weights".into(), render_weights(forwards));
    r
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

/// An HTTP listener forwarding to one target group, or splitting traffic between several by weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInput {
    pub name: String,
    pub load_balancer_arn: String,
    pub port: i32,
    /// Target group ARN → weight (0..=999, checked by whoever built it).
    pub forwards: Vec<(String, u16)>,
}

/// A forward action: a plain one to a single target group, a weighted forward config to several.
fn forward_action(forwards: &[(String, u16)]) -> Action {
    let b = Action::builder().r#type(ActionTypeEnum::Forward);
    match forwards {
        [(tg, _)] => b.target_group_arn(tg).build(),
        _ => b
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(
                        forwards
                            .iter()
                            .map(|(tg, w)| {
                                TargetGroupTuple::builder()
                                    .target_group_arn(tg)
                                    .weight(i32::from(*w))
                                    .build()
                            })
                            .collect(),
                    ))
                    .build(),
            )
            .build(),
    }
}

impl ListenerInput {
    fn forward(&self) -> Action {
        forward_action(&self.forwards)
    }
}

/// Sets the listener's forward weights (target group ARN → weight), every target group listed even at 0 so it
/// stays attached to the load balancer.
pub async fn set_forwards(
    aws: &Aws,
    listener_arn: &str,
    forwards: &[(String, u16)],
) -> AwsResult<()> {
    aws.elb
        .modify_listener()
        .listener_arn(listener_arn)
        .default_actions(forward_action(forwards))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail("set the listener's forward weights", e))
}

/// The listener's forwards as ELB reports them now (target group ARN → weight).
pub async fn listener_forwards(aws: &Aws, listener_arn: &str) -> AwsResult<Vec<(String, u16)>> {
    let r = aws
        .elb
        .describe_listeners()
        .listener_arns(listener_arn)
        .send()
        .await
        .map_err(|e| fail("read the listener's forward weights back", e))?;
    let li = r.listeners().first().ok_or_else(|| {
        AwsError::new(
            "read the listener's forward weights back",
            format!("listener `{listener_arn}` does not exist"),
        )
    })?;
    Ok(forwards_of(li.default_actions()))
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
