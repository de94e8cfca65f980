//! S3: the ledger bucket (see `ledger`).

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Tag, Tagging,
    VersioningConfiguration,
};

use crate::{code_of, fail, owner_from, Aws, AwsResult};
use statsctl_core::inventory::{Key, Kind, ObservedResource};

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

pub async fn observe(aws: &Aws, bucket: &str) -> AwsResult<Vec<(Key, ObservedResource)>> {
    if !bucket_exists(aws, bucket).await? {
        return Ok(vec![]);
    }
    let tags = aws.s3.get_bucket_tagging().bucket(bucket).send().await;
    let owner = tags
        .ok()
        .and_then(|t| owner_from(t.tag_set().iter().map(|t| (t.key(), t.value()))));
    Ok(vec![(
        Key::new(Kind::Ledger, bucket),
        ObservedResource {
            id: bucket.to_string(),
            owner,
            state: "exists".into(),
            ..Default::default()
        },
    )])
}

/// Creates the ledger bucket, tagged and versioned.
pub async fn create_bucket(aws: &Aws, name: &str, tags: &[(String, String)]) -> AwsResult<()> {
    let mut req = aws.s3.create_bucket().bucket(name);
    if aws.region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(aws.region.as_str()))
                .build(),
        );
    }
    req.send()
        .await
        .map_err(|e| fail(format!("create the ledger bucket `{name}`"), e))?;
    let tags: Vec<Tag> = tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    let tagging = Tagging::builder()
        .set_tag_set(Some(tags))
        .build()
        .map_err(|e| crate::AwsError::new(format!("tag `{name}`"), e.to_string()))?;
    aws.s3
        .put_bucket_tagging()
        .bucket(name)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| fail(format!("tag the ledger bucket `{name}`"), e))?;
    aws.s3
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail(format!("enable versioning on `{name}`"), e))?;
    Ok(())
}

/// Empties (every version) and deletes the bucket: only for `destroy --delete-data`.
pub async fn delete_bucket(aws: &Aws, name: &str) -> AwsResult<()> {
    loop {
        let v = aws
            .s3
            .list_object_versions()
            .bucket(name)
            .send()
            .await
            .map_err(|e| fail(format!("list `{name}`"), e))?;
        let mut any = false;
        for o in v.versions() {
            any = true;
            aws.s3
                .delete_object()
                .bucket(name)
                .key(o.key().unwrap_or_default())
                .set_version_id(o.version_id().map(str::to_string))
                .send()
                .await
                .map_err(|e| fail(format!("empty `{name}`"), e))?;
        }
        for m in v.delete_markers() {
            any = true;
            aws.s3
                .delete_object()
                .bucket(name)
                .key(m.key().unwrap_or_default())
                .set_version_id(m.version_id().map(str::to_string))
                .send()
                .await
                .map_err(|e| fail(format!("empty `{name}`"), e))?;
        }
        if !any {
            break;
        }
    }
    aws.s3
        .delete_bucket()
        .bucket(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("delete the ledger bucket `{name}`"), e))
}
