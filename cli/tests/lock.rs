//! The deploy lock across machines (a lock object in the ledger bucket, written through the SDK here as another
//! machine would), `--break-lock`, and deploy asking before it deletes anything. Each test has its own emulator.

mod harness;

use harness::*;

const INGESTER: &str = "live-stats-local-log-ingester";
const LOCK_KEY: &str = "locks/local.json";

async fn lock_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(LOCK_KEY)
        .send()
        .await
        .is_ok()
}

/// Removes one of the stack's alarms behind statsctl's back, so the next deploy has something to do.
async fn drop_an_alarm(cw: &aws_sdk_cloudwatch::Client) -> String {
    let name = cw
        .describe_alarms()
        .alarm_name_prefix("live-stats-local-")
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .first()
        .and_then(|a| a.alarm_name())
        .expect("deploy created alarms")
        .to_string();
    cw.delete_alarms().alarm_names(&name).send().await.unwrap();
    name
}

async fn alarm_exists(cw: &aws_sdk_cloudwatch::Client, name: &str) -> bool {
    !cw.describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .unwrap()
        .metric_alarms()
        .is_empty()
}

#[test]
fn a_lock_held_elsewhere_refuses_deploy_until_broken_and_a_deploy_leaves_none() {
    let env = LocalAws::start();
    // First deploy: no bucket yet, so only the local lock; it creates the bucket.
    let first = env.deploy();
    assert!(
        first.stderr.contains("only the local lock is held"),
        "{first:?}"
    );
    block_on(async {
        let conf = sdk_config(&env).await;
        let s3 = aws_sdk_s3::Client::new(&conf);
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let bucket = ledger_bucket(&s3).await;

        // A deploy with the bucket in place takes the lock object and deletes it when done.
        let alarm = drop_an_alarm(&cw).await;
        env.deploy();
        assert!(alarm_exists(&cw, &alarm).await);
        assert!(!lock_exists(&s3, &bucket).await, "no lock object is left");
        let versions = s3
            .list_object_versions()
            .bucket(&bucket)
            .prefix(LOCK_KEY)
            .send()
            .await
            .unwrap();
        assert!(
            !versions.versions().is_empty(),
            "the deploy did take the lock object (the versioned bucket keeps it)"
        );

        // Another machine holds the lock.
        let body = serde_json::json!({
            "holder": "arn:aws:iam::123456789012:user/other-engineer",
            "host": "build-box-7",
            "pid": 31337,
            "command": "statsctl deploy",
            "started": "2026-11-28T20:58:01Z",
        });
        s3.put_object()
            .bucket(&bucket)
            .key(LOCK_KEY)
            .body(serde_json::to_vec(&body).unwrap().into())
            .send()
            .await
            .unwrap();
        let alarm = drop_an_alarm(&cw).await;

        // A deploy from another working directory (its own local lock directory) is refused, changing nothing.
        let elsewhere = tempfile::tempdir().unwrap();
        let mut c = env.statsctl();
        c.current_dir(elsewhere.path())
            .env("STATSCTL_LOCK_DIR", elsewhere.path().join("locks"))
            .arg("--stack")
            .arg(shipped_stack())
            .arg("deploy");
        let r = run(c);
        assert_eq!(r.code, 1, "{r:?}");
        for want in [
            "another statsctl is changing live-stats/local",
            "arn:aws:iam::123456789012:user/other-engineer",
            "build-box-7",
            "2026-11-28T20:58:01Z",
            "--break-lock",
        ] {
            assert!(r.stderr.contains(want), "stderr lacks {want}: {r:?}");
        }
        assert!(!alarm_exists(&cw, &alarm).await, "nothing was changed");
        assert!(lock_exists(&s3, &bucket).await, "the holder's lock stays");

        // Breaking it needs confirmation: no terminal and no --yes is refused.
        let r = env.run(&["deploy", "--break-lock"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("build-box-7"), "shows the holder: {r:?}");
        assert!(r.stderr.contains("--yes"), "{r:?}");
        assert!(lock_exists(&s3, &bucket).await, "not broken without --yes");
        assert!(!alarm_exists(&cw, &alarm).await, "nothing was changed");

        // With --yes: cleared, deployed, and released.
        let r = env.run(&["deploy", "--break-lock", "--yes"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(alarm_exists(&cw, &alarm).await, "deployed");
        assert!(!lock_exists(&s3, &bucket).await, "no lock object is left");
    });
}

/// The shipped stack without the log-ingester function, next to a link to the function code.
fn stack_without_ingester(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with("  log-ingester:") {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with("    ") || line.trim().is_empty()) {
            continue;
        }
        skipping = false;
        if line.trim_start().starts_with("log-ingester:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(!out.contains("log-ingester"), "{out}");
    let path = dir.join("stacks/live-stats.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, out).unwrap();
    std::os::unix::fs::symlink(repo_root().join("functions"), dir.join("functions")).unwrap();
    path
}

#[test]
fn deploy_asks_before_deleting_and_refuses_without_a_terminal() {
    let env = LocalAws::start();
    env.deploy();
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_without_ingester(dir.path());
    let stack = stack.to_str().unwrap();
    let ingester_exists = || {
        block_on(async {
            let conf = sdk_config(&env).await;
            aws_sdk_lambda::Client::new(&conf)
                .get_function()
                .function_name(INGESTER)
                .send()
                .await
                .is_ok()
        })
    };

    // stdin is not a terminal and there is no --yes: refused, nothing deleted.
    let r = env.run(&["--stack", stack, "deploy"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("refusing to deploy without confirmation") && r.stderr.contains(INGESTER),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("hint:") && r.stderr.contains("--yes"),
        "{r:?}"
    );
    assert!(ingester_exists(), "nothing was deleted");

    // With --yes it deletes.
    let r = env.run(&["--stack", stack, "deploy", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!ingester_exists(), "the function was deleted: {r:?}");
}
