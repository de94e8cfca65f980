//! The ledger's storage: records appended to the stack's ledger bucket (one object per record, written once with
//! If-None-Match) and read back newest first. The record types live in `statsctl_core::ledger`.

use serde::{Deserialize, Serialize};

use crate::{fail, Aws, AwsError, AwsResult};

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
        .map_err(|e| AwsError::new("encode a ledger record", e.to_string()))?;
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
            Err(e) if crate::code_of(&e) == Some("NoSuchBucket") => return Ok(vec![]),
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
            .map_err(|e| AwsError::new(format!("read `{k}` from the ledger"), e.to_string()))?
            .into_bytes();
        Ok::<_, AwsError>(serde_json::from_slice::<T>(&bytes).ok())
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(reads).await {
        if let Some(rec) = r? {
            out.push(rec);
        }
    }
    Ok(out)
}

/// The caller's account id and identity ARN (sts:GetCallerIdentity), for naming the ledger bucket and a lock's
/// holder.
pub async fn caller(aws: &Aws) -> AwsResult<(String, String)> {
    let id = aws
        .sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| fail("identify the AWS account (sts:GetCallerIdentity)", e))?;
    Ok((
        id.account().unwrap_or_default().to_string(),
        id.arn().unwrap_or_default().to_string(),
    ))
}

/// What a conditional write of a lock object found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPut {
    /// The object was written: the lock is ours.
    Taken,
    /// An object is already there: someone else holds the lock.
    Held,
    /// The ledger bucket does not exist yet (first deploy of the stack).
    NoBucket,
}

/// Writes `key` only if no object is there (If-None-Match: *); never waits or retries.
pub async fn put_lock(aws: &Aws, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<LockPut> {
    let r = aws
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .if_none_match("*")
        .send()
        .await;
    match r {
        Ok(_) => Ok(LockPut::Taken),
        Err(e) if crate::code_of(&e) == Some("NoSuchBucket") => Ok(LockPut::NoBucket),
        Err(e)
            if matches!(
                crate::code_of(&e),
                Some("PreconditionFailed" | "ConditionalRequestConflict")
            ) || e
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) =>
        {
            Ok(LockPut::Held)
        }
        Err(e) => Err(fail(format!("write the lock `{key}` to `{bucket}`"), e)),
    }
}

/// The lock object's body, or None when there is none (or no bucket).
pub async fn get_lock(aws: &Aws, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>> {
    get_object(aws, bucket, key, "the lock").await
}

/// An object's bytes; `None` when it (or the bucket) is not there. `what` names it in errors.
pub async fn get_object(
    aws: &Aws,
    bucket: &str,
    key: &str,
    what: &str,
) -> AwsResult<Option<Vec<u8>>> {
    let o = match aws.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e)
            if matches!(
                crate::code_of(&e),
                Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
            ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(fail(format!("read {what} `{key}` from `{bucket}`"), e)),
    };
    let bytes = o
        .body
        .collect()
        .await
        .map_err(|e| AwsError::new(format!("read {what} `{key}`"), e.to_string()))?
        .into_bytes();
    Ok(Some(bytes.to_vec()))
}

/// Deletes the lock object; a missing object or bucket (destroy may have deleted it) is not an error.
pub async fn delete_lock(aws: &Aws, bucket: &str, key: &str) -> AwsResult<()> {
    match aws.s3.delete_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(crate::code_of(&e), Some("NoSuchKey" | "NoSuchBucket")) => Ok(()),
        Err(e) => Err(fail(format!("delete the lock `{key}` from `{bucket}`"), e)),
    }
}

/// One object under a ledger prefix as stored: its key, and its bytes or why they were not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub key: String,
    pub body: Result<Vec<u8>, String>,
}

/// The keys under `prefix` (after `start_after` only), newest first (keys start with the unix-ms time they were
/// appended), each with its size in bytes. `None` when the ledger bucket does not exist yet.
pub async fn list_keys(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
) -> AwsResult<Option<Vec<(String, i64)>>> {
    let mut keys: Vec<(String, i64)> = Vec::new();
    let mut pages = aws
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_start_after(start_after.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(p) => keys.extend(
                p.contents()
                    .iter()
                    .filter_map(|o| Some((o.key()?.to_string(), o.size().unwrap_or(0)))),
            ),
            Err(e) if crate::code_of(&e) == Some("NoSuchBucket") => return Ok(None),
            Err(e) => return Err(fail(format!("list the ledger bucket `{bucket}`"), e)),
        }
    }
    keys.sort();
    keys.reverse();
    Ok(Some(keys))
}

/// The objects `keys` (with their sizes, as [`list_keys`] gives them), in that order, as bytes: for readers that
/// name a bad object rather than skip it silently (`statsctl history`). Objects over `max_bytes` are not
/// downloaded (their body is the reason).
pub async fn read_objects(
    aws: &Aws,
    bucket: &str,
    keys: &[(String, i64)],
    max_bytes: i64,
) -> AwsResult<Vec<RawRecord>> {
    use futures::StreamExt;
    // A few reads at a time: a long history must not open hundreds of connections at once.
    let reads = futures::stream::iter(keys)
        .map(|(key, size)| async move {
            let key = key.clone();
            if *size > max_bytes {
                let body = Err(format!(
                    "{size} bytes, more than a record ever holds ({max_bytes})"
                ));
                return Ok(RawRecord { key, body });
            }
            let body = get_object(aws, bucket, &key, "a ledger record")
                .await?
                .ok_or_else(|| "deleted while being read".to_string());
            Ok::<_, AwsError>(RawRecord { key, body })
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    reads.into_iter().collect()
}
