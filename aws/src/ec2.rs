//! EC2: the VPC and subnets (when the stack creates them), security groups and their ingress rules.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};

use crate::ctx::ApplyCtx;
use crate::{fail, owner_from, tags_for, Aws, AwsError, AwsResult, TAG_ENV, TAG_NAME, TAG_STACK};
use statsctl_core::inventory::{
    join_sorted, Desired, Key, Kind, Observed, ObservedResource, Owner,
};

fn owned_filters(owner: &Owner) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{TAG_STACK}"))
            .values(&owner.stack)
            .build(),
        Filter::builder()
            .name(format!("tag:{TAG_ENV}"))
            .values(&owner.env)
            .build(),
    ]
}

fn tag_pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
}

fn tag_name(tags: &[Tag]) -> Option<String> {
    tag_pairs(tags)
        .find(|(k, _)| *k == TAG_NAME)
        .map(|(_, v)| v.to_string())
}

fn tag_spec(ctx: &ApplyCtx, kind: ResourceType, name: &str) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags_for(&ctx.owner, ctx.tags, name) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

/// Owned VPCs, subnets, security groups (+ their rules); the referenced VPC/subnets of an existing network.
pub async fn observe(
    aws: &Aws,
    owner: &Owner,
    existing: Option<(&str, &[String])>,
) -> AwsResult<(Vec<(Key, ObservedResource)>, Vec<(Key, ObservedResource)>)> {
    let (vpcs, subnets, groups) = tokio::join!(
        aws.ec2
            .describe_vpcs()
            .set_filters(Some(owned_filters(owner)))
            .send(),
        aws.ec2
            .describe_subnets()
            .set_filters(Some(owned_filters(owner)))
            .send(),
        aws.ec2
            .describe_security_groups()
            .set_filters(Some(owned_filters(owner)))
            .send(),
    );
    let vpcs = vpcs.map_err(|e| fail("describe VPCs", e))?;
    let subnets = subnets.map_err(|e| fail("describe subnets", e))?;
    let groups = groups.map_err(|e| fail("describe security groups", e))?;
    let mut out = Vec::new();
    let mut vpc_names = std::collections::BTreeMap::new();
    for v in vpcs.vpcs() {
        let Some(name) = tag_name(v.tags()) else {
            continue;
        };
        let id = v.vpc_id().unwrap_or_default().to_string();
        vpc_names.insert(id.clone(), name.clone());
        let mut r = ObservedResource {
            id,
            owner: owner_from(tag_pairs(v.tags())),
            state: v
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            ..Default::default()
        };
        r.attrs
            .insert("cidr".into(), v.cidr_block().unwrap_or_default().into());
        r.outputs
            .insert("cidr".into(), v.cidr_block().unwrap_or_default().into());
        out.push((Key::new(Kind::Vpc, name), r));
    }
    for s in subnets.subnets() {
        let Some(name) = tag_name(s.tags()) else {
            continue;
        };
        let mut r = ObservedResource {
            id: s.subnet_id().unwrap_or_default().into(),
            owner: owner_from(tag_pairs(s.tags())),
            state: s
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            ..Default::default()
        };
        r.attrs
            .insert("cidr".into(), s.cidr_block().unwrap_or_default().into());
        r.attrs.insert(
            "availability_zone".into(),
            s.availability_zone().unwrap_or_default().into(),
        );
        r.outputs
            .insert("vpc_id".into(), s.vpc_id().unwrap_or_default().into());
        out.push((Key::new(Kind::Subnet, name), r));
    }
    let mut referenced = Vec::new();
    if let Some((vpc_id, subnet_ids)) = existing {
        let (v, s) = tokio::join!(
            aws.ec2.describe_vpcs().vpc_ids(vpc_id).send(),
            aws.ec2
                .describe_subnets()
                .set_subnet_ids(Some(subnet_ids.to_vec()))
                .send(),
        );
        let v = v.map_err(|e| {
            fail(format!("describe the stack's VPC `{vpc_id}`"), e)
                .hint("check `network.existing.vpc_id`")
        })?;
        for vpc in v.vpcs() {
            let mut r = ObservedResource {
                id: vpc_id.to_string(),
                state: "referenced".into(),
                ..Default::default()
            };
            r.outputs
                .insert("cidr".into(), vpc.cidr_block().unwrap_or_default().into());
            referenced.push((Key::new(Kind::Vpc, vpc_id), r));
            vpc_names.insert(vpc_id.to_string(), vpc_id.to_string());
        }
        let s = s.map_err(|e| {
            fail("describe the stack's subnets", e).hint("check `network.existing.subnet_ids`")
        })?;
        for sn in s.subnets() {
            let id = sn.subnet_id().unwrap_or_default().to_string();
            let mut r = ObservedResource {
                id: id.clone(),
                state: "referenced".into(),
                ..Default::default()
            };
            r.outputs
                .insert("vpc_id".into(), sn.vpc_id().unwrap_or_default().into());
            referenced.push((Key::new(Kind::Subnet, id), r));
        }
    }
    // Group ids → names first: rules name the groups they admit.
    let group_names: std::collections::BTreeMap<String, String> = groups
        .security_groups()
        .iter()
        .filter_map(|g| Some((g.group_id()?.to_string(), tag_name(g.tags())?)))
        .collect();
    for g in groups.security_groups() {
        let Some(name) = tag_name(g.tags()) else {
            continue;
        };
        let owner = owner_from(tag_pairs(g.tags()));
        let id = g.group_id().unwrap_or_default().to_string();
        let mut r = ObservedResource {
            id: id.clone(),
            owner: owner.clone(),
            state: "exists".into(),
            ..Default::default()
        };
        let vpc = g.vpc_id().unwrap_or_default();
        r.attrs.insert(
            "vpc".into(),
            vpc_names
                .get(vpc)
                .cloned()
                .unwrap_or_else(|| vpc.to_string()),
        );
        out.push((Key::new(Kind::SecurityGroup, name.clone()), r));
        let mut rules = Vec::new();
        for p in g.ip_permissions() {
            let port = p
                .from_port()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "all".into());
            let proto = p.ip_protocol().unwrap_or("-1");
            for pair in p.user_id_group_pairs() {
                let gid = pair.group_id().unwrap_or_default();
                rules.push(format!(
                    "{proto}:{port}:sg:{}",
                    group_names
                        .get(gid)
                        .cloned()
                        .unwrap_or_else(|| gid.to_string())
                ));
            }
            for range in p.ip_ranges() {
                rules.push(format!(
                    "{proto}:{port}:cidr:{}",
                    range.cidr_ip().unwrap_or_default()
                ));
            }
        }
        let mut ingress = ObservedResource {
            id,
            owner,
            state: "exists".into(),
            ..Default::default()
        };
        ingress.attrs.insert("rules".into(), join_sorted(rules));
        out.push((Key::new(Kind::Ingress, name), ingress));
    }
    Ok((out, referenced))
}

pub async fn create_vpc(aws: &Aws, ctx: &ApplyCtx<'_>, d: &Desired) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let r = aws
        .ec2
        .create_vpc()
        .cidr_block(d.get("cidr"))
        .tag_specifications(tag_spec(ctx, ResourceType::Vpc, name))
        .send()
        .await
        .map_err(|e| fail(format!("create VPC `{name}`"), e))?;
    let id = r
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    let mut o = ObservedResource {
        id,
        owner: Some(ctx.owner.clone()),
        state: "available".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("cidr".into(), d.get("cidr").into());
    Ok(o)
}

pub async fn create_subnet(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    observed: &Observed,
    vpc_name: &str,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let vpc_id = observed.id_of(Kind::Vpc, vpc_name).ok_or_else(|| {
        AwsError::new(format!("create subnet `{name}`"), "its VPC does not exist")
    })?;
    let r = aws
        .ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block(d.get("cidr"))
        .availability_zone(d.get("availability_zone"))
        .tag_specifications(tag_spec(ctx, ResourceType::Subnet, name))
        .send()
        .await
        .map_err(|e| fail(format!("create subnet `{name}`"), e).hint("the CIDR must lie inside the VPC's and not overlap another subnet; the zone must be in the region"))?;
    let id = r
        .subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_string();
    let mut o = ObservedResource {
        id,
        owner: Some(ctx.owner.clone()),
        state: "available".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    };
    o.outputs.insert("vpc_id".into(), vpc_id.into());
    Ok(o)
}

pub async fn create_group(
    aws: &Aws,
    ctx: &ApplyCtx<'_>,
    d: &Desired,
    observed: &Observed,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let vpc_id = observed.id_of(Kind::Vpc, d.get("vpc")).ok_or_else(|| {
        AwsError::new(
            format!("create security group `{name}`"),
            "its VPC does not exist",
        )
    })?;
    let r = aws
        .ec2
        .create_security_group()
        .group_name(name)
        .description(format!(
            "statsctl {}/{}: {name}",
            ctx.owner.stack, ctx.owner.env
        ))
        .vpc_id(vpc_id)
        .tag_specifications(tag_spec(ctx, ResourceType::SecurityGroup, name))
        .send()
        .await
        .map_err(|e| fail(format!("create security group `{name}`"), e))?;
    Ok(ObservedResource {
        id: r.group_id().unwrap_or_default().into(),
        owner: Some(ctx.owner.clone()),
        state: "exists".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

fn permission(rule: &str, observed: &Observed) -> Result<IpPermission, String> {
    let parts: Vec<&str> = rule.splitn(4, ':').collect();
    let [proto, port, kind, what] = parts[..] else {
        return Err(format!("malformed rule `{rule}`"));
    };
    let mut p = IpPermission::builder().ip_protocol(proto);
    if let Ok(port) = port.parse::<i32>() {
        p = p.from_port(port).to_port(port);
    }
    match kind {
        "sg" => {
            let gid = observed.id_of(Kind::SecurityGroup, what).unwrap_or(what);
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(gid).build());
        }
        _ => p = p.ip_ranges(IpRange::builder().cidr_ip(what).build()),
    }
    Ok(p.build())
}

/// Makes a group's ingress exactly the desired rules: revokes extra ones (drift), authorizes missing ones.
pub async fn set_ingress(
    aws: &Aws,
    d: &Desired,
    current: Option<&ObservedResource>,
    observed: &Observed,
    owner: &Owner,
) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    let gid = observed
        .id_of(Kind::SecurityGroup, name)
        .ok_or_else(|| {
            AwsError::new(
                format!("set ingress of `{name}`"),
                "the group does not exist",
            )
        })?
        .to_string();
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let want = split(d.get("rules"));
    let have = current
        .map(|c| split(c.attrs.get("rules").map(String::as_str).unwrap_or("")))
        .unwrap_or_default();
    let bad = |e: String| AwsError::new(format!("set ingress of `{name}`"), e);
    let extra: Vec<IpPermission> = have
        .iter()
        .filter(|r| !want.contains(r))
        .map(|r| permission(r, observed))
        .collect::<Result<_, _>>()
        .map_err(bad)?;
    let missing: Vec<IpPermission> = want
        .iter()
        .filter(|r| !have.contains(r))
        .map(|r| permission(r, observed))
        .collect::<Result<_, _>>()
        .map_err(|e| AwsError::new(format!("set ingress of `{name}`"), e))?;
    // One at a time: a rule naming a group that no longer exists cannot be revoked (and no longer admits
    // anything), which must not stop the others.
    for rule in extra {
        match aws
            .ec2
            .revoke_security_group_ingress()
            .group_id(&gid)
            .ip_permissions(rule)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if crate::code_of(&e) == Some("InvalidGroup.NotFound") => {}
            Err(e) => return Err(fail(format!("revoke ingress rules of `{name}`"), e)),
        }
    }
    if !missing.is_empty() {
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(&gid)
            .set_ip_permissions(Some(missing))
            .send()
            .await
            .map_err(|e| fail(format!("authorize ingress rules of `{name}`"), e))?;
    }
    Ok(ObservedResource {
        id: gid,
        owner: Some(owner.clone()),
        state: "exists".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
}

pub async fn delete(aws: &Aws, key: &Key, id: &str) -> AwsResult<()> {
    let what = format!("delete {key}");
    match key.kind {
        Kind::Vpc => aws
            .ec2
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        Kind::Subnet => aws
            .ec2
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        Kind::SecurityGroup => aws
            .ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(what, e)),
        _ => Ok(()),
    }
}

/// The VPC of each subnet id (subnets statsctl does not know by name: someone moved a function elsewhere).
pub async fn subnet_vpcs(
    aws: &Aws,
    ids: Vec<String>,
) -> AwsResult<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let r = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids))
        .send()
        .await
        .map_err(|e| fail("describe subnets", e))?;
    for s in r.subnets() {
        out.insert(
            s.subnet_id().unwrap_or_default().to_string(),
            s.vpc_id().unwrap_or_default().to_string(),
        );
    }
    Ok(out)
}
