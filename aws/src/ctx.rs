//! What the adapters still take from the executor: the apply context and the readiness wait. (Being removed: adapters
//! are to take explicit typed inputs and never wait; see the engine.)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use statsctl_core::desired::Artifact;
use statsctl_core::inventory::Owner;
use statsctl_core::model::StackFile;

use crate::{AwsError, AwsResult};

/// What every apply step needs besides the clients.
pub struct ApplyCtx<'a> {
    pub owner: Owner,
    pub tags: &'a BTreeMap<String, String>,
    pub stack: &'a StackFile,
    pub env: &'a str,
    pub artifacts: &'a BTreeMap<String, Artifact>,
    /// Progress lines for stderr.
    pub progress: &'a (dyn Fn(String) + Send + Sync),
    /// Set (by Ctrl-C) to stop before the next step; the step under way completes, so state stays consistent.
    pub stop: &'a std::sync::atomic::AtomicBool,
}

/// Polls `check` until it returns `Ok(true)`, with progress every 30 s and a deadline.
pub async fn wait_until<F, Fut>(
    ctx: &ApplyCtx<'_>,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> AwsResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = AwsResult<bool>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut last_report = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(AwsError::new(
                format!("wait for {what}"),
                format!("not ready after {}s", timeout.as_secs()),
            )
            .hint("check the resource in the AWS console; re-running deploy resumes from here"));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            (ctx.progress)(format!(
                "    still waiting for {what} ({}s)…",
                start.elapsed().as_secs()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
