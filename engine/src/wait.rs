//! Waiting for readiness: polls an adapter's observe function with back-off until it says ready, reports
//! progress every 30 s, gives up at a deadline, and stops when Ctrl-C sets the stop flag (the change already
//! sent stays sent; re-running resumes from live state). Also the pure readiness decisions on what adapters
//! report.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use statsctl_aws::{ecs::ServiceStatus, lambda::FunctionState, AwsError, AwsResult};

/// How often a long wait says it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(30);
/// The longest pause between two polls.
const MAX_DELAY: Duration = Duration::from_secs(15);
/// How quickly a wait notices the stop flag while pausing.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Why a step did not complete.
#[derive(Debug)]
pub enum StepError {
    Failed(AwsError),
    /// Stopped on request (Ctrl-C) while waiting.
    Interrupted,
}

impl From<AwsError> for StepError {
    fn from(e: AwsError) -> StepError {
        StepError::Failed(e)
    }
}

/// Where a wait reports, and what stops it.
#[derive(Clone, Copy)]
pub struct Watch<'a> {
    /// Progress lines for stderr.
    pub progress: &'a (dyn Fn(String) + Send + Sync),
    /// Set by Ctrl-C.
    pub stop: &'a AtomicBool,
}

impl Watch<'_> {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Polls `check` until it returns `Ok(Some(value))`; `Ok(None)` is "not yet", an error ends the wait.
pub async fn wait_for<T, F, Fut>(
    watch: Watch<'_>,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AwsResult<Option<T>>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut last_report = Instant::now();
    loop {
        if watch.stopped() {
            return Err(StepError::Interrupted);
        }
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(StepError::Failed(
                AwsError::new(
                    format!("wait for {what}"),
                    format!("not ready after {}s", timeout.as_secs()),
                )
                .hint("check the resource in the AWS console; re-running deploy resumes from here"),
            ));
        }
        if last_report.elapsed() > REPORT_EVERY {
            (watch.progress)(format!(
                "    still waiting for {what} ({}s)…",
                start.elapsed().as_secs()
            ));
            last_report = Instant::now();
        }
        // Pause in short slices so Ctrl-C does not wait out a 15 s back-off.
        let until = Instant::now() + delay;
        while Instant::now() < until && !watch.stopped() {
            tokio::time::sleep(STOP_CHECK.min(until.saturating_duration_since(Instant::now())))
                .await;
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// `wait_for` on a yes/no check.
pub async fn wait_until<F, Fut>(
    watch: Watch<'_>,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<(), StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = AwsResult<bool>>,
{
    wait_for(watch, what, timeout, || {
        let f = check();
        async move { f.await.map(|ready| ready.then_some(())) }
    })
    .await
}

/// A function is ready when it is Active and its last update succeeded; Failed in either is an error.
pub fn function_ready(name: &str, s: &FunctionState) -> AwsResult<bool> {
    if s.state == "Failed" || s.last_update == "Failed" {
        return Err(AwsError::new(
            format!("deploy function `{name}`"),
            s.reason
                .clone()
                .unwrap_or_else(|| "Lambda reports Failed".into()),
        ));
    }
    Ok(s.state == "Active" && s.last_update == "Successful")
}

/// A service is steady when one deployment runs exactly the tasks it wants.
pub fn service_steady(s: &ServiceStatus) -> bool {
    s.deployments <= 1 && s.running == s.desired
}

/// A deleted service is gone once it is neither active nor draining.
pub fn service_drained(s: Option<&ServiceStatus>) -> bool {
    s.is_none_or(|s| s.status != "ACTIVE" && s.status != "DRAINING")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    fn quiet(_: String) {}

    #[tokio::test]
    async fn a_ready_check_ends_the_wait_with_its_value() {
        let stop = AtomicBool::new(false);
        let watch = Watch {
            progress: &quiet,
            stop: &stop,
        };
        let polls = AtomicUsize::new(0);
        let got = wait_for(watch, "x", Duration::from_secs(60), || async {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            Ok((n >= 1).then_some("endpoint"))
        })
        .await;
        assert_eq!(got.unwrap(), "endpoint");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_stop_flag_ends_a_wait_as_interrupted() {
        let stop = AtomicBool::new(false);
        let lines = Mutex::new(Vec::new());
        let progress = |l: String| lines.lock().unwrap().push(l);
        let watch = Watch {
            progress: &progress,
            stop: &stop,
        };
        let polls = AtomicUsize::new(0);
        // Ctrl-C arrives during the first poll; the deadline is far away.
        let got = wait_until(
            watch,
            "cluster `db` to be available",
            Duration::from_secs(3600),
            || {
                polls.fetch_add(1, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
                async { Ok(false) }
            },
        )
        .await;
        assert!(matches!(got, Err(StepError::Interrupted)), "{got:?}");
        assert_eq!(polls.load(Ordering::SeqCst), 1, "no poll after the stop");

        // Already stopped: nothing is polled at all.
        let got = wait_until(watch, "x", Duration::from_secs(3600), || {
            polls.fetch_add(1, Ordering::SeqCst);
            async { Ok(true) }
        })
        .await;
        assert!(matches!(got, Err(StepError::Interrupted)));
        assert_eq!(polls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_deadline_gives_not_ready_after_with_a_hint() {
        let stop = AtomicBool::new(false);
        let watch = Watch {
            progress: &quiet,
            stop: &stop,
        };
        let got = wait_until(
            watch,
            "proxy `p` to be available",
            Duration::ZERO,
            || async { Ok(false) },
        )
        .await;
        let Err(StepError::Failed(e)) = got else {
            panic!("expected a failure, got {got:?}");
        };
        assert_eq!(
            e.to_string(),
            "failed to wait for proxy `p` to be available: not ready after 0s"
        );
        assert!(e.hint.unwrap().contains("re-running deploy resumes"));
    }

    #[tokio::test]
    async fn a_failing_check_ends_the_wait_with_its_error() {
        let stop = AtomicBool::new(false);
        let watch = Watch {
            progress: &quiet,
            stop: &stop,
        };
        let got = wait_until(watch, "x", Duration::from_secs(60), || async {
            Err(AwsError::new("describe x", "gone"))
        })
        .await;
        assert!(matches!(got, Err(StepError::Failed(e)) if e.detail == "gone"));
    }

    #[test]
    fn readiness_decisions() {
        let state = |state: &str, last_update: &str| FunctionState {
            state: state.into(),
            last_update: last_update.into(),
            reason: None,
        };
        assert!(function_ready("f", &state("Active", "Successful")).unwrap());
        assert!(!function_ready("f", &state("Pending", "Successful")).unwrap());
        assert!(!function_ready("f", &state("Active", "InProgress")).unwrap());
        let e = function_ready("f", &state("Active", "Failed")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to deploy function `f`: Lambda reports Failed"
        );

        let svc = |status: &str, running, desired, deployments| ServiceStatus {
            status: status.into(),
            running,
            desired,
            deployments,
        };
        assert!(service_steady(&svc("ACTIVE", 2, 2, 1)));
        assert!(!service_steady(&svc("ACTIVE", 1, 2, 1)));
        assert!(!service_steady(&svc("ACTIVE", 2, 2, 2)));
        assert!(service_drained(None));
        assert!(service_drained(Some(&svc("INACTIVE", 0, 0, 0))));
        assert!(!service_drained(Some(&svc("DRAINING", 1, 0, 1))));
    }
}
