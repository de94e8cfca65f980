//! The executor's loop without AWS: a stop requested before the first step attempts nothing, sends nothing,
//! and records every pending change as not done, so re-running deploy does all of them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use statsctl_aws::{Aws, Target};
use statsctl_core::inventory::{Observed, Owner};
use statsctl_engine::apply::{apply, Executor};
use statsctl_engine::observe::Subject;

#[tokio::test]
async fn a_stop_before_the_first_step_attempts_nothing_and_sends_nothing() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
    let stack = statsctl_core::loader::load_file(&path, Some("local"), &|_: &str| None)
        .unwrap_or_else(|d| panic!("the shipped stack loads: {:?}", d.errors));
    let owner = Owner {
        stack: stack.spec.stack.clone(),
        env: "local".into(),
    };
    let artifacts = BTreeMap::new();
    let subject = Subject {
        stack: &stack.spec,
        env: "local",
        owner: &owner,
        artifacts: &artifacts,
    };
    let mut observed = Observed::default();
    let plan = subject.plan(&observed);
    let pending: Vec<_> = plan.pending().map(|c| c.key.clone()).collect();
    assert!(!pending.is_empty(), "from nothing, everything is to create");

    // Nothing listens on port 9 (discard): a call would fail the step instead of interrupting it.
    let aws = Aws::connect(&Target {
        region: "us-east-1".into(),
        endpoint_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    })
    .await;
    let lines = Mutex::new(Vec::new());
    let progress = |l: String| lines.lock().unwrap().push(l);
    let stop = AtomicBool::new(true);
    let ex = Executor {
        subject,
        progress: &progress,
        stop: &stop,
    };
    let outcome = apply(&aws, &ex, &plan, &mut observed).await;

    assert!(outcome.interrupted);
    assert!(outcome.done.is_empty());
    assert!(outcome.failed.is_none());
    assert_eq!(outcome.not_done, pending);
    assert_eq!(aws.calls.get(), 0, "no request was sent");
    assert!(observed.resources.is_empty());
    assert!(lines.lock().unwrap().is_empty(), "no step was started");
}
