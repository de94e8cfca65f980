//! IAM: the roles statsctl creates (one per function, the proxy's, the service task's) with their inline
//! policies, and the separate `rds-db:connect` grant that ties a client role to the proxy.
//! Roles live under the path `/statsctl/<stack>/<env>/`: one `ListRoles` call finds everything owned.

use aws_sdk_iam::types::Tag;
use serde_json::json;

use crate::{fail, Aws, AwsError, AwsResult};
use statsctl_core::inventory::{Key, Kind, ObservedResource, Owner};

/// The inline policy holding a role's base permissions.
pub const BASE_POLICY: &str = "statsctl";
/// The inline policy granting `rds-db:connect` through the proxy.
pub const DB_CONNECT_POLICY: &str = "rds-db-connect";

pub fn path_for(owner: &Owner) -> String {
    format!("/statsctl/{}/{}/", owner.stack, owner.env)
}

/// IAM returns policy documents URL-encoded; compare them as canonical JSON.
pub fn canonical_policy(doc: &str) -> String {
    let decoded = percent_decode(doc);
    match serde_json::from_str::<serde_json::Value>(&decoded) {
        Ok(v) => v.to_string(),
        Err(_) => decoded,
    }
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn trust_policy(service: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}).to_string()
}

fn trusted_service(doc: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&percent_decode(doc)).unwrap_or_default();
    v["Statement"][0]["Principal"]["Service"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Every role under the stack's path, with its inline policies.
pub async fn observe(aws: &Aws, owner: &Owner) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let roles = aws
        .iam
        .list_roles()
        .path_prefix(path_for(owner))
        .send()
        .await
        .map_err(|e| fail("list IAM roles", e))?;
    let mut out = Vec::new();
    let lookups = roles.roles().iter().map(|role| async move {
        let name = role.role_name().to_string();
        let (base, grant) = tokio::join!(
            aws.iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(BASE_POLICY)
                .send(),
            aws.iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(DB_CONNECT_POLICY)
                .send(),
        );
        (role, name, base.ok(), grant.ok())
    });
    for (role, name, base, grant) in futures::future::join_all(lookups).await {
        let mut r = ObservedResource {
            id: name.clone(),
            owner: Some(owner.clone()),
            state: "exists".into(),
            ..Default::default()
        };
        r.outputs.insert("arn".into(), role.arn().to_string());
        r.attrs.insert(
            "trust".into(),
            role.assume_role_policy_document()
                .map(trusted_service)
                .unwrap_or_default(),
        );
        r.attrs.insert(
            "policy".into(),
            base.map(|p| canonical_policy(p.policy_document()))
                .unwrap_or_default(),
        );
        out.push((Key::new(Kind::Role, name.clone()), r));
        if let Some(g) = grant {
            let mut p = ObservedResource {
                id: name.clone(),
                owner: Some(owner.clone()),
                state: "exists".into(),
                ..Default::default()
            };
            p.attrs
                .insert("policy".into(), canonical_policy(g.policy_document()));
            out.push((
                Key::new(Kind::RolePolicy, format!("{name}/{DB_CONNECT_POLICY}")),
                p,
            ));
        }
    }
    Ok(out)
}

/// A role statsctl creates, with its base inline policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInput {
    pub name: String,
    /// `/statsctl/<stack>/<env>/` (see [`path_for`]).
    pub path: String,
    /// The service that may assume it, e.g. `lambda.amazonaws.com`.
    pub trusted_service: String,
    /// The base policy document (JSON).
    pub policy: String,
    pub tags: Vec<(String, String)>,
}

/// Creates the role and puts its base policy; returns its ARN.
pub async fn create_role(aws: &Aws, r: &RoleInput) -> AwsResult<String> {
    let name = &r.name;
    let tags: Vec<Tag> = r
        .tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    let created = aws
        .iam
        .create_role()
        .role_name(name)
        .path(&r.path)
        .assume_role_policy_document(trust_policy(&r.trusted_service))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| fail(format!("create IAM role `{name}`"), e))?;
    let arn = created
        .role()
        .map(|r| r.arn().to_string())
        .unwrap_or_default();
    put_policy(aws, name, BASE_POLICY, &r.policy).await?;
    Ok(arn)
}

pub async fn put_policy(aws: &Aws, role: &str, policy: &str, doc: &str) -> AwsResult<()> {
    if doc.contains(statsctl_core::inventory::KNOWN_AFTER_APPLY) {
        return Err(AwsError::new(
            format!("put policy `{policy}` on `{role}`"),
            "it refers to a resource that does not exist yet",
        ));
    }
    aws.iam
        .put_role_policy()
        .role_name(role)
        .policy_name(policy)
        .policy_document(doc)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("put policy `{policy}` on IAM role `{role}`"), e))
}

pub async fn delete_role(aws: &Aws, name: &str) -> AwsResult<()> {
    for policy in [BASE_POLICY, DB_CONNECT_POLICY] {
        let _ = aws
            .iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await;
    }
    aws.iam
        .delete_role()
        .role_name(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("delete IAM role `{name}`"), e))
}

pub async fn delete_policy(aws: &Aws, role: &str, policy: &str) -> AwsResult<()> {
    aws.iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("delete policy `{policy}` of `{role}`"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_compare_canonically() {
        let a = canonical_policy("%7B%22b%22%3A1%2C%22a%22%3A2%7D");
        let b = canonical_policy("{\"a\": 2, \"b\": 1}");
        assert_eq!(a, b);
        assert_eq!(
            trusted_service(&trust_policy("lambda.amazonaws.com")),
            "lambda.amazonaws.com"
        );
    }
}
