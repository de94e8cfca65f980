//! Distributed load tests: the run's store in the ledger bucket (`loadtest-runs/<run-id>/…`: the profile the
//! coordinator hands out, each worker's result) and the ECS tasks that run workers. Plain inputs in, plain data
//! out: what to run and how to merge is decided in `statsctl_loadtest` and the CLI.

use crate::{code_of, fail, Aws, AwsError, AwsResult};

/// Where a run's objects live in the ledger bucket.
pub fn run_key(run_id: &str, name: &str) -> String {
    format!("loadtest-runs/{run_id}/{name}")
}

/// Whether the bucket exists (and these credentials may see it).
pub async fn bucket_exists(aws: &Aws, bucket: &str) -> AwsResult<bool> {
    match aws.s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(code_of(&e), Some("NotFound" | "NoSuchBucket"))
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            Ok(false)
        }
        Err(e) => Err(fail(format!("look up the ledger bucket `{bucket}`"), e)),
    }
}

/// Writes one object of a run.
pub async fn put(aws: &Aws, bucket: &str, key: &str, body: Vec<u8>) -> AwsResult<()> {
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| {
            fail(format!("write `{key}` to the ledger bucket `{bucket}`"), e)
                .hint("run `statsctl deploy` first: it creates the ledger bucket")
        })?;
    Ok(())
}

/// Reads one object of a run; `None` when it is not there (yet).
pub async fn get(aws: &Aws, bucket: &str, key: &str) -> AwsResult<Option<Vec<u8>>> {
    let o = match aws.s3.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => o,
        Err(e)
            if matches!(code_of(&e), Some("NoSuchKey" | "NotFound"))
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(fail(format!("read `{key}` from `{bucket}`"), e)),
    };
    let bytes = o
        .body
        .collect()
        .await
        .map_err(|e| AwsError::new(format!("read `{key}` from `{bucket}`"), e.to_string()))?
        .into_bytes();
    Ok(Some(bytes.to_vec()))
}
