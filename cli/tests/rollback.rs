//! `statsctl rollback` and `promote` against the emulator: the target comes from the deploy history (records
//! written here through the SDK, as deploy writes them), the alias moves at once and is read back, the rollback
//! is recorded, and every refusal (no terminal, a missing version, nothing in history, a dry run) changes
//! nothing; preflight's `rollback.ready` follows the same rule. Each test has its own emulator.

mod harness;

use harness::*;
use statsctl_core::history::{Outcome, UnitKind, UnitRecord};

const STATS_API: &str = "live-stats-local-stats-api";

fn shipped(from: Option<&str>, to: &str, ended_at: u64) -> UnitRecord {
    UnitRecord {
        env: "local".into(),
        unit: "function.stats-api".into(),
        kind: UnitKind::Function,
        target: STATS_API.into(),
        from: from.map(str::to_string),
        to: Some(to.into()),
        started_at: ended_at - 5_000,
        ended_at,
        who: "arn:aws:iam::123456789012:user/release".into(),
        strategy: "canary".into(),
        timeline: vec![],
        outcome: Outcome::Shipped,
        alarm: None,
        ignored_alarms: vec![],
        detail: None,
    }
}

/// Appends a history record as deploy does: one object under `deploys/local/`, keyed by time.
async fn append(s3: &aws_sdk_s3::Client, bucket: &str, r: &UnitRecord) {
    s3.put_object()
        .bucket(bucket)
        .key(format!("deploys/local/{:015}-test.json", r.ended_at))
        .body(serde_json::to_vec(r).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// The history records in the bucket, oldest first.
async fn history(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<UnitRecord> {
    ledger_objects(s3, bucket, "deploys/local/").await
}

/// (version, additional weights) of the stats API's alias, read through the SDK.
async fn alias(lambda: &aws_sdk_lambda::Client) -> (String, usize) {
    let (version, weights) = alias_routing(lambda, STATS_API, "live").await;
    (version, weights.iter().filter(|(_, w)| *w > 0.0).count())
}

fn rollback_ready(env: &LocalAws) -> serde_json::Value {
    let r = env.run(&["preflight", "--only", "rollback.ready", "--output", "json"]);
    assert!(r.code == 0 || r.code == 2, "{r:?}");
    r.json()["findings"][0].clone()
}

#[test]
fn rollback_returns_a_function_to_the_version_history_names() {
    let env = LocalAws::start();
    env.deploy();
    // A second version (2) behind the alias: a change to the function, deployed.
    let (lambda, s3) = block_on(async {
        let conf = sdk_config(&env).await;
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("LOG_LEVEL".into(), "debug".into());
        set_function_environment(&lambda, STATS_API, vars).await;
        (lambda, aws_sdk_s3::Client::new(&conf))
    });
    env.deploy();
    let bucket = block_on(async {
        assert_eq!(alias(&lambda).await, ("2".into(), 0));
        let bucket = ledger_bucket(&s3).await;
        append(&s3, &bucket, &shipped(None, "1", 1_000_000)).await;
        append(&s3, &bucket, &shipped(Some("1"), "2", 2_000_000)).await;
        bucket
    });
    let before = block_on(history(&s3, &bucket)).len();

    // Without a terminal and without --yes: refused, nothing changed.
    let r = env.run(&["rollback", "--function", "stats-api"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("refusing to roll back without confirmation; nothing was changed")
            && r.stderr.contains("--yes"),
        "{r:?}"
    );
    assert!(
        // Deploy recorded the unit that shipped 2 (its own record, newer than the test's): history says 1.
        r.stderr.contains(
            "function stats-api: alias live 2 → 1 (from history: function.stats-api shipped "
        ),
        "{r:?}"
    );
    // A dry run shows the same and changes nothing.
    let r = env.run(&["rollback", "--function", "stats-api", "--dry-run"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("alias live 2 → 1 (from history")
            && r.stdout.contains("Dry run: nothing was changed."),
        "{r:?}"
    );
    // A version that does not exist is refused.
    let r = env.run(&["rollback", "--function", STATS_API, "--to", "99", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "version 99 of `live-stats-local-stats-api` no longer exists; nothing was changed"
        ),
        "{r:?}"
    );
    block_on(async {
        assert_eq!(alias(&lambda).await, ("2".into(), 0), "nothing changed");
        assert_eq!(
            history(&s3, &bucket).await.len(),
            before,
            "nothing recorded"
        );
    });
    let ready = rollback_ready(&env);
    assert!(
        ready["evidence"].to_string().contains(&format!(
            "{STATS_API}: version 2 rolls back to version 1 (from history)"
        )),
        "{ready}"
    );

    // A canary left mid-way (10% on version 1, as a killed deploy leaves it): the rollback clears the weights too.
    block_on(async {
        lambda
            .update_alias()
            .function_name(STATS_API)
            .name("live")
            .function_version("2")
            .routing_config(
                aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                    .additional_version_weights("1", 0.1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(alias(&lambda).await, ("2".into(), 1));
    });
    // The real thing: at once, read back, recorded.
    let r = env.run(&[
        "rollback",
        "--function",
        "stats-api",
        "--yes",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(
        (&j["from"], &j["to"], &j["source"], &j["rolled_back"]),
        (
            &serde_json::json!("2"),
            &serde_json::json!("1"),
            &serde_json::json!("history"),
            &serde_json::json!(true)
        ),
        "{j}"
    );
    block_on(async {
        assert_eq!(alias(&lambda).await, ("1".into(), 0));
        let h = history(&s3, &bucket).await;
        assert_eq!(h.len(), before + 1, "{h:?}");
        let last = h.last().unwrap();
        assert_eq!(
            (
                last.strategy.as_str(),
                last.outcome,
                last.from.as_deref(),
                last.to.as_deref(),
                last.target.as_str()
            ),
            (
                "rollback",
                Outcome::RolledBack,
                Some("2"),
                Some("1"),
                STATS_API
            ),
            "{last:?}"
        );
        assert!(last.who.starts_with("arn:aws:"), "{last:?}");
    });

    // Rolled back to 1, history has nothing before it: a second rollback does not bounce to the bad build (which
    // the alias description would name) but asks for --to.
    let r = env.run(&["rollback", "--function", "stats-api", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("history has no version to roll `stats-api` back to")
            && r.stderr.contains("--to VERSION")
            && r.stderr.contains("statsctl history"),
        "{r:?}"
    );
    block_on(async { assert_eq!(alias(&lambda).await, ("1".into(), 0)) });

    // Forward again with --to; then the history target (1) is deleted: preflight fails and rollback refuses.
    let r = env.run(&["rollback", "--function", "stats-api", "--to", "2", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    block_on(async {
        assert_eq!(alias(&lambda).await, ("2".into(), 0));
        lambda
            .delete_function()
            .function_name(STATS_API)
            .qualifier("1")
            .send()
            .await
            .unwrap();
    });
    let ready = rollback_ready(&env);
    assert_eq!(ready["status"], "fail", "{ready}");
    assert!(
        ready["evidence"].to_string().contains(&format!(
            "{STATS_API}: version 2 rolls back to version 1 (from history), which was deleted"
        )),
        "{ready}"
    );
    let r = env.run(&["rollback", "--function", "stats-api", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("version 1 of"), "{r:?}");
    block_on(async { assert_eq!(alias(&lambda).await, ("2".into(), 0)) });
}

#[test]
fn rollback_names_an_unknown_function() {
    let r = run({
        let mut c = statsctl();
        c.args(["--env", "local", "rollback", "--function", "stats"]);
        c
    });
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("the stack has no function `stats`") && r.stderr.contains("stats-api"),
        "{r:?}"
    );
}

#[test]
fn rollback_returns_the_service_to_the_revision_history_names() {
    const FAMILY: &str = "live-stats-local-stats-service";
    let env = LocalAws::start();
    env.deploy();
    // A second task definition revision: a new image, deployed.
    let r = env.run_with(
        &["deploy"],
        &[(
            "STATS_SERVICE_IMAGE",
            "public.ecr.aws/live-stats/stats-service:0.2.0",
        )],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let conf = block_on(sdk_config(&env));
    let (ecs, s3) = (
        aws_sdk_ecs::Client::new(&conf),
        aws_sdk_s3::Client::new(&conf),
    );
    // The revision a colour's service runs (blue is `stats-service`, green `stats-service-green`).
    let runs = |service: &str| {
        block_on(async {
            let s = ecs
                .describe_services()
                .cluster("live-stats")
                .services(service)
                .send()
                .await
                .unwrap();
            let td = s.services()[0].task_definition().unwrap_or_default();
            td.rsplit('/').next().unwrap().to_string()
        })
    };
    // The new image shipped on the green colour; blue keeps the previous revision (rollout.keep_previous).
    assert_eq!(runs("stats-service-green"), format!("{FAMILY}:2"));
    assert_eq!(runs("stats-service"), format!("{FAMILY}:1"));
    // The service's alarms followed the traffic to green.
    assert_eq!(
        service_alarms_watch(&env),
        (
            "stats-service-green".into(),
            "live-stats-local-svc-green".into()
        )
    );
    block_on(async {
        let bucket = ledger_bucket(&s3).await;
        let mut r = shipped(
            Some(&format!("{FAMILY}:1")),
            &format!("{FAMILY}:2"),
            3_000_000,
        );
        r.unit = "service.stats-service".into();
        r.kind = UnitKind::Service;
        r.target = "stats-service".into();
        append(&s3, &bucket, &r).await;
    });
    let r = env.run(&["rollback", "--service", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "service stats-service: {FAMILY}:2 → {FAMILY}:1 (from history"
        )),
        "{r:?}"
    );
    // Blue still ran it: the listener sends everything back to blue at once, and the alarms follow it back.
    assert!(
        r.stderr.contains("all traffic back on the blue colour"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("alarms now watch the blue colour: ecs-cpu"),
        "{r:?}"
    );
    assert_eq!(
        service_alarms_watch(&env),
        ("stats-service".into(), "live-stats-local-svc".into())
    );
    // Nothing about the alarms is left for a deploy (green's scale-down is; the stack here has the first image).
    let (_, plan) = env.plan_json();
    let alarms: Vec<_> = pending(&plan)
        .into_iter()
        .filter(|(resource, _)| resource.starts_with("alarm."))
        .collect();
    assert!(alarms.is_empty(), "{alarms:?}");
    // A revision that is not registered is refused.
    let r = env.run(&["rollback", "--service", "--to", "9", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "task definition {FAMILY}:9 is no longer registered"
        )),
        "{r:?}"
    );
    assert_eq!(runs("stats-service"), format!("{FAMILY}:1"));
}

#[test]
fn promote_refuses_without_a_passing_load_test_for_the_live_artifacts() {
    let env = LocalAws::start();
    env.deploy();
    // Everything points at this test's emulator, --to included: a refusal must come before `dev` is touched.
    let endpoint = env.endpoint();
    let r = env.run(&[
        "--endpoint-url",
        &endpoint,
        "promote",
        "--from",
        "local",
        "--to",
        "dev",
        "--yes",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("`local` is not ready to promote:")
            && r.stderr.contains("loadtest.passed: no load test recorded")
            && r.stderr.contains("statsctl loadtest --env local")
            && r.stderr.contains("nothing was changed in `dev`"),
        "{r:?}"
    );
    // It names what it would have promoted: the version serving and its code.
    assert!(
        r.stderr
            .contains("function stats-api: version 1 of local (code sha256 "),
        "{r:?}"
    );
    let r = env.run(&["promote", "--from", "local", "--to", "local"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("--from and --to both name `local`"),
        "{r:?}"
    );
}

/// The shipped stack with a second emulated environment, `staging` (the local one in another region of the same
/// emulator), so a promotion has somewhere to go.
fn stack_with_staging(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    let start = text.find("\n  local:\n").unwrap();
    let end = text.find("\n  dev:\n").unwrap();
    let staging = text[start..end]
        .replace("\n  local:\n", "\n  staging:\n")
        .replace("us-east-1", "us-west-2")
        // The stack file's image for staging is not what local runs: the promotion must take local's.
        .replace(
            "\n    service:\n",
            "\n    service:\n      image: public.ecr.aws/live-stats/stats-service:9.9.9-staging\n",
        );
    let functions = repo_root().join("functions");
    let text = format!("{}{staging}{}", &text[..end], &text[end..]).replace(
        "artifact: ../functions/",
        &format!("artifact: {}/", functions.display()),
    );
    let path = dir.join("stack.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn promote_deploys_what_serves_in_a_ready_environment() {
    // The quick start's shape: the real service through PgBouncer, deploy, a passing load test: `local` is ready.
    let env = LocalAws::start_opts(30, true, &[]);
    env.deploy();
    let r = env.run(&["loadtest", "--ramp", "5s", "--hold", "12s"]);
    assert_eq!(r.code, 0, "the quick start's load test passes: {r:?}");
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_with_staging(dir.path());
    let stack = stack.to_str().unwrap();

    let r = env.run(&[
        "--stack",
        stack,
        "promote",
        "--from",
        "local",
        "--to",
        "staging",
        "--dry-run",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Dry run: nothing was changed."), "{r:?}");
    let r = env.run(&[
        "--stack", stack, "promote", "--from", "local", "--to", "staging",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("refusing to promote without confirmation; nothing was changed in `staging`"),
        "{r:?}"
    );

    let r = env.run(&[
        "--stack", stack, "promote", "--from", "local", "--to", "staging", "--yes", "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["converged"], true, "{j}");
    assert!(
        j["record"]
            .as_str()
            .unwrap()
            .starts_with("promotions/staging/"),
        "{j}"
    );
    // Staging serves the code local serves, behind its alias, and the service image local runs.
    block_on(async {
        let conf = sdk_config(&env).await;
        let west = conf
            .to_builder()
            .region(aws_config::Region::new("us-west-2"))
            .build();
        let code = |conf: aws_config::SdkConfig, function: &'static str| async move {
            let lambda = aws_sdk_lambda::Client::new(&conf);
            let a = lambda
                .get_alias()
                .function_name(function)
                .name("live")
                .send()
                .await
                .unwrap();
            lambda
                .get_function_configuration()
                .function_name(function)
                .qualifier(a.function_version().unwrap())
                .send()
                .await
                .unwrap()
                .code_sha256()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            code(west.clone(), "live-stats-staging-stats-api").await,
            code(conf.clone(), STATS_API).await
        );
        let image = |conf: aws_config::SdkConfig, family: &'static str| async move {
            aws_sdk_ecs::Client::new(&conf)
                .describe_task_definition()
                .task_definition(family)
                .send()
                .await
                .unwrap()
                .task_definition()
                .unwrap()
                .container_definitions()[0]
                .image()
                .unwrap()
                .to_string()
        };
        let local = image(conf, "live-stats-local-stats-service").await;
        assert_eq!(local, "public.ecr.aws/live-stats/stats-service:0.1.0");
        assert_eq!(image(west, "live-stats-staging-stats-service").await, local);
    });

    // A new image ships to local as a blue/green rollout: green serves it, blue idles on the old one. Promote
    // takes what serves (green's image), and staging ships it the way deploy does: a canary of its own, recorded
    // in staging's deploy history.
    let new_image = "public.ecr.aws/live-stats/stats-service:0.2.0";
    let vars = [("STATS_SERVICE_IMAGE", new_image)];
    let r = env.run_with(&["deploy", "--yes"], &vars);
    assert_eq!(r.code, 0, "{r:?}");
    let r = env.run_with(&["loadtest", "--ramp", "5s", "--hold", "12s"], &vars);
    assert_eq!(r.code, 0, "{r:?}");
    let r = env.run_with(
        &[
            "--stack", stack, "promote", "--from", "local", "--to", "staging", "--yes", "--output",
            "json",
        ],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["artifacts"]["service_image"], new_image, "{j}");
    assert_eq!(j["converged"], true, "{j}");
    let unit = j["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "service.stats-service")
        .unwrap_or_else(|| panic!("no service unit: {j}"));
    assert_eq!(unit["status"], "shipped", "{j}");
    assert_eq!(unit["record"]["strategy"], "canary", "{j}");
    assert_eq!(unit["recorded"], true, "{j}");
    let shares: Vec<u64> = unit["record"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(shares.last(), Some(&100), "{j}");
    assert!(shares.len() >= 2, "not shifted in steps: {j}");
}
