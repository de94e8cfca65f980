//! The ledger: an S3 bucket the stack owns (`<stack>-<env>-ledger-<account>`), used as an append-only record
//! store. Every record is its own object under `<kind>/<env>/<unix-ms>-<random>.json`, written once and never
//! overwritten (the bucket is versioned besides), so concurrent writers cannot lose each other's records.
//! Load tests write `loadtests/`; deploy history will use `deploys/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aws::{fail, Aws, AwsResult};
use crate::desired::Names;
use crate::inventory::{Kind, Observed};
use crate::model::StackFile;

/// The ledger bucket's name: lowercase, at most 63 characters, unique per account.
pub fn bucket_name(stack: &StackFile, env: &str, account: &str) -> String {
    let mut name = format!("{}-{env}-ledger-{account}", stack.stack)
        .to_ascii_lowercase()
        .replace('_', "-");
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// A recorded load test: what preflight's `loadtest.passed` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadTestRecord {
    pub env: String,
    /// Unix seconds.
    pub finished_at: u64,
    /// Viewers held (before any spike).
    pub viewers: u64,
    pub passed: bool,
    /// What was deployed while it ran (see `deployed_versions`).
    pub versions: BTreeMap<String, String>,
    #[serde(default)]
    pub target: String,
    /// The measured summary, thresholds and violations, for people reading the ledger.
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// What is deployed, in the ledger's terms: each function → `<code sha256> v<version behind its alias>`, and
/// `service:<name>` → its image. A new version of anything changes this map.
pub fn deployed_versions(stack: &StackFile, env: &str, o: &Observed) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (name, f) in &stack.functions {
        let fname = stack.function_name(env, name);
        if let Some(sha) = o
            .get(Kind::Function, &fname)
            .and_then(|r| r.attrs.get("code_sha256"))
        {
            let version = o
                .output(Kind::Alias, &format!("{fname}:{}", f.alias), "version")
                .unwrap_or("?");
            v.insert(fname, format!("{sha} v{version}"));
        }
    }
    if let Some(svc) = &stack.service {
        if let Some(image) = o
            .get(
                Kind::TaskDefinition,
                &Names::new(stack, env).task_family(&svc.name),
            )
            .and_then(|r| r.attrs.get("image"))
        {
            v.insert(format!("service:{}", svc.name), image.clone());
        }
    }
    v
}

fn random_suffix() -> String {
    use std::io::Read;
    let mut b = [0u8; 6];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appends one record; returns its key.
pub async fn append<T: Serialize>(
    aws: &Aws,
    bucket: &str,
    kind: &str,
    env: &str,
    record: &T,
) -> AwsResult<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let key = format!("{kind}/{env}/{now:015}-{}.json", random_suffix());
    let body = serde_json::to_vec_pretty(record)
        .map_err(|e| crate::aws::AwsError::new("encode a ledger record", e.to_string()))?;
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/json")
        .body(body.into())
        .if_none_match("*")
        .send()
        .await
        .map_err(|e| {
            fail(format!("write `{key}` to the ledger bucket `{bucket}`"), e)
                .hint("run `statsctl deploy` first: it creates the ledger bucket")
        })?;
    Ok(key)
}

/// The newest `limit` records of a kind for an environment (newest first). A missing bucket reads as empty.
pub async fn read<T: for<'de> Deserialize<'de>>(
    aws: &Aws,
    bucket: &str,
    kind: &str,
    env: &str,
    limit: usize,
) -> AwsResult<Vec<T>> {
    let prefix = format!("{kind}/{env}/");
    let mut keys = Vec::new();
    let mut pages = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => keys.extend(
                p.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            ),
            Err(e) if crate::aws::code_of(&e) == Some("NoSuchBucket") => return Ok(vec![]),
            Err(e) => return Err(fail(format!("list the ledger bucket `{bucket}`"), e)),
        }
    }
    keys.sort();
    keys.reverse();
    keys.truncate(limit);
    let reads = keys.iter().map(|k| async move {
        let o = aws
            .s3
            .get_object()
            .bucket(bucket)
            .key(k)
            .send()
            .await
            .map_err(|e| fail(format!("read `{k}` from the ledger"), e))?;
        let bytes = o
            .body
            .collect()
            .await
            .map_err(|e| {
                crate::aws::AwsError::new(format!("read `{k}` from the ledger"), e.to_string())
            })?
            .into_bytes();
        Ok::<_, crate::aws::AwsError>(serde_json::from_slice::<T>(&bytes).ok())
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(reads).await {
        if let Some(rec) = r? {
            out.push(rec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_names_fit_s3_rules() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("live-stats.yaml");
        let stack = crate::loader::load_file(&path, Some("prod"), &|_: &str| None)
            .unwrap()
            .spec;
        let n = super::bucket_name(&stack, "prod", "123456789012");
        assert_eq!(n, "live-stats-prod-ledger-123456789012");
        assert!(
            n.len() <= 63
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
