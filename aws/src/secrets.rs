//! Secrets Manager: the database credentials secret, and the secrets environment variables reference. statsctl
//! references the credentials by name and only creates them (with a generated password) when they do not
//! exist; that value never leaves this module except into the API call that creates the cluster. Referenced
//! secrets are only described (name → ARN), never read.

use crate::{code_of, fail, Aws, AwsResult};
use statsctl_core::inventory::{Key, Kind, ObservedResource};

pub async fn observe(aws: &Aws, name: &str) -> AwsResult<Vec<(Key, ObservedResource)>> {
    match aws.secrets.describe_secret().secret_id(name).send().await {
        Ok(s) => {
            let owner = crate::owner_from(
                s.tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
            );
            let mut r = ObservedResource {
                id: s.arn().unwrap_or_default().into(),
                state: "exists".into(),
                owner,
                ..Default::default()
            };
            r.outputs.insert("arn".into(), r.id.clone());
            Ok(vec![(Key::new(Kind::Secret, name), r)])
        }
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(vec![]),
        Err(e) => Err(fail(format!("describe secret `{name}`"), e)),
    }
}

/// The secrets environment variables reference (name or ARN as written), each resolved with `DescribeSecret`
/// concurrently; one that does not exist is simply absent, and the plan decides what that means.
pub async fn observe_referenced(
    aws: &Aws,
    names: &[String],
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let lookups = names.iter().map(|name| async move {
        match aws.secrets.describe_secret().secret_id(name).send().await {
            Ok(s) => {
                let mut r = ObservedResource {
                    id: s.arn().unwrap_or_default().into(),
                    state: "exists".into(),
                    ..Default::default()
                };
                r.outputs.insert("arn".into(), r.id.clone());
                Ok(Some((Key::new(Kind::Secret, name.clone()), r)))
            }
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(fail(format!("describe secret `{name}`"), e)),
        }
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(lookups).await {
        out.extend(r?);
    }
    Ok(out)
}

/// 32 random characters from /dev/urandom, from an alphabet every client library accepts unquoted.
fn generate_password() -> std::io::Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 64];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    // Rejection sampling keeps the distribution uniform.
    let limit = 256 - (256 % ALPHABET.len());
    Ok(raw
        .iter()
        .filter(|b| (**b as usize) < limit)
        .take(32)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// The database credentials secret statsctl creates when it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInput {
    pub name: String,
    pub username: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
}

/// Creates the secret with a generated password; returns its ARN (never the value).
pub async fn create(aws: &Aws, s: &SecretInput) -> AwsResult<String> {
    let name = &s.name;
    let password = generate_password().map_err(|e| {
        crate::AwsError::new(
            format!("create secret `{name}`"),
            format!("no randomness: {e}"),
        )
    })?;
    let value = serde_json::json!({ "username": s.username, "password": password }).to_string();
    let tags: Vec<aws_sdk_secretsmanager::types::Tag> = s
        .tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
        })
        .collect();
    let r = aws
        .secrets
        .create_secret()
        .name(name)
        .description(&s.description)
        .secret_string(value)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| fail(format!("create secret `{name}`"), e))?;
    Ok(r.arn().unwrap_or_default().into())
}

/// The master password, for creating the cluster (`rds::put_cluster`). Never logged or returned further.
pub async fn password(aws: &Aws, name: &str) -> AwsResult<String> {
    let v = aws
        .secrets
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| fail(format!("read secret `{name}`"), e))?;
    let s = v.secret_string().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(s).unwrap_or_default();
    Ok(parsed["password"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| s.to_string()))
}

pub async fn delete(aws: &Aws, name: &str) -> AwsResult<()> {
    aws.secrets
        .delete_secret()
        .secret_id(name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("delete secret `{name}`"), e))
}
