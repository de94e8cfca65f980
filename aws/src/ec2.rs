//! EC2: the VPC and subnets (when the stack creates them), security groups and their ingress rules.

use aws_sdk_ec2::types::{
    Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};

use crate::{fail, owner_from, Aws, AwsResult, TAG_ENV, TAG_NAME, TAG_STACK};
use statsctl_core::inventory::{join_sorted, Key, Kind, ObservedResource, Owner};

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

fn tag_spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
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

/// Creates a VPC; returns its id.
pub async fn create_vpc(
    aws: &Aws,
    name: &str,
    cidr: &str,
    tags: &[(String, String)],
) -> AwsResult<String> {
    let r = aws
        .ec2
        .create_vpc()
        .cidr_block(cidr)
        .tag_specifications(tag_spec(ResourceType::Vpc, tags))
        .send()
        .await
        .map_err(|e| fail(format!("create VPC `{name}`"), e))?;
    Ok(r.vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetInput {
    pub name: String,
    pub vpc_id: String,
    pub cidr: String,
    pub availability_zone: String,
    pub tags: Vec<(String, String)>,
}

/// Creates a subnet; returns its id.
pub async fn create_subnet(aws: &Aws, s: &SubnetInput) -> AwsResult<String> {
    let name = &s.name;
    let r = aws
        .ec2
        .create_subnet()
        .vpc_id(&s.vpc_id)
        .cidr_block(&s.cidr)
        .availability_zone(&s.availability_zone)
        .tag_specifications(tag_spec(ResourceType::Subnet, &s.tags))
        .send()
        .await
        .map_err(|e| fail(format!("create subnet `{name}`"), e).hint("the CIDR must lie inside the VPC's and not overlap another subnet; the zone must be in the region"))?;
    Ok(r.subnet()
        .and_then(|s| s.subnet_id())
        .unwrap_or_default()
        .to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub name: String,
    pub vpc_id: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

/// Creates a security group (no rules: see [`set_ingress`]); returns its id.
pub async fn create_group(aws: &Aws, g: &GroupInput) -> AwsResult<String> {
    let name = &g.name;
    let r = aws
        .ec2
        .create_security_group()
        .group_name(name)
        .description(&g.description)
        .vpc_id(&g.vpc_id)
        .tag_specifications(tag_spec(ResourceType::SecurityGroup, &g.tags))
        .send()
        .await
        .map_err(|e| fail(format!("create security group `{name}`"), e))?;
    Ok(r.group_id().unwrap_or_default().into())
}

/// Where an ingress rule admits traffic from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A security group, by id.
    Group(String),
    Cidr(String),
}

/// One ingress rule: protocol, port (`None`: every port) and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub protocol: String,
    pub port: Option<i32>,
    pub source: Source,
}

impl Rule {
    fn permission(&self) -> IpPermission {
        let mut p = IpPermission::builder().ip_protocol(&self.protocol);
        if let Some(port) = self.port {
            p = p.from_port(port).to_port(port);
        }
        match &self.source {
            Source::Group(id) => {
                p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(id).build())
            }
            Source::Cidr(cidr) => p = p.ip_ranges(IpRange::builder().cidr_ip(cidr).build()),
        }
        p.build()
    }
}

/// The rules to take away from and add to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressInput {
    /// The group's name, for messages.
    pub name: String,
    pub group_id: String,
    pub revoke: Vec<Rule>,
    pub authorize: Vec<Rule>,
}

/// Revokes then authorizes the given rules.
pub async fn set_ingress(aws: &Aws, i: &IngressInput) -> AwsResult<()> {
    let name = &i.name;
    // One at a time: a rule naming a group that no longer exists cannot be revoked (and no longer admits
    // anything), which must not stop the others.
    for rule in &i.revoke {
        match aws
            .ec2
            .revoke_security_group_ingress()
            .group_id(&i.group_id)
            .ip_permissions(rule.permission())
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if crate::code_of(&e) == Some("InvalidGroup.NotFound") => {}
            Err(e) => return Err(fail(format!("revoke ingress rules of `{name}`"), e)),
        }
    }
    if !i.authorize.is_empty() {
        aws.ec2
            .authorize_security_group_ingress()
            .group_id(&i.group_id)
            .set_ip_permissions(Some(i.authorize.iter().map(Rule::permission).collect()))
            .send()
            .await
            .map_err(|e| fail(format!("authorize ingress rules of `{name}`"), e))?;
    }
    Ok(())
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
