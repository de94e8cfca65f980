//! `statsctl history` against a private emulator (records appended to the ledger bucket with the SDK, as deploy
//! appends them), and a rollout left in progress (alias weights set with the SDK, as a killed deploy leaves them)
//! as `plan` and `status` show it.

mod harness;

use harness::*;
use statsctl_core::history::{FiredAlarm, Outcome, UnitKind, UnitRecord, WeightPoint};

const STATS_API: &str = "live-stats-local-stats-api";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn record(from: &str, to: &str, ended_at: u64, outcome: Outcome) -> UnitRecord {
    UnitRecord {
        env: "local".into(),
        unit: "function.stats-api".into(),
        kind: UnitKind::Function,
        target: STATS_API.into(),
        from: Some(from.into()),
        to: Some(to.into()),
        started_at: ended_at - 7_000,
        ended_at,
        who: "arn:aws:iam::123456789012:user/ops".into(),
        strategy: "canary".into(),
        timeline: vec![WeightPoint {
            at_ms: 0,
            percent: 10,
        }],
        outcome,
        alarm: None,
        ignored_alarms: vec![],
        detail: None,
    }
}

/// The ledger bucket's name, as `plan` names it (its account id comes from the emulator's STS).
fn ledger_bucket(env: &LocalAws) -> String {
    let (_, plan) = env.plan_json();
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "ledger_bucket")
        .and_then(|c| c["name"].as_str())
        .expect("the plan names the ledger bucket")
        .to_string()
}

#[test]
fn history_lists_ledger_records_newest_first_and_names_bad_objects() {
    let env = LocalAws::start();

    // No bucket yet: an empty history with a note, exit 0.
    let r = env.run(&["history"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("No deploy history for live-stats/local")
            && r.stdout.contains("does not exist yet"),
        "{r:?}"
    );
    let r = env.run(&["history", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json(), serde_json::json!([]), "{r:?}");

    let bucket = ledger_bucket(&env);
    let now = now_ms();
    let old_end = now - 2 * 86_400_000;
    let new_end = now - 60_000;
    let mut shipped = record("1", "2", old_end, Outcome::Shipped);
    shipped.timeline.push(WeightPoint {
        at_ms: 5_000,
        percent: 100,
    });
    let mut rolled = record("2", "3", new_end, Outcome::RolledBack);
    rolled.alarm = Some(FiredAlarm {
        name: "live-stats-local-lambda-errors-stats-api".into(),
        reason: "Threshold Crossed: 1 datapoint [3.0] was greater than 0.0".into(),
    });
    let mut elsewhere = record("5", "6", new_end, Outcome::Shipped);
    elsewhere.env = "prod".into();
    let junk = format!("deploys/local/{now:015}-junk.json");
    block_on(async {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk_config(&env).await)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let objects = [
            (
                format!("deploys/local/{old_end:015}-aaaa.json"),
                serde_json::to_vec(&shipped).unwrap(),
            ),
            (
                format!("deploys/local/{new_end:015}-bbbb.json"),
                serde_json::to_vec(&rolled).unwrap(),
            ),
            (junk.clone(), b"{ not a record".to_vec()),
            // Another environment's prefix is not read at all.
            (
                format!("deploys/prod/{new_end:015}-cccc.json"),
                serde_json::to_vec(&elsewhere).unwrap(),
            ),
        ];
        for (key, body) in objects {
            s3.put_object()
                .bucket(&bucket)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    });

    let r = env.run(&["history"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("warning:") && r.stderr.contains(&junk),
        "the bad object is named: {r:?}"
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and one line per unit: {r:?}");
    assert!(lines[0].starts_with("STARTED"), "{r:?}");
    for (line, wants) in [
        (
            lines[1],
            &[
                "function.stats-api",
                "2 → 3",
                "rolled_back",
                "7s",
                "user/ops",
                "10%@0s",
                "alarm live-stats-local-lambda-errors-stats-api: Threshold Crossed",
            ][..],
        ),
        (lines[2], &["1 → 2", "shipped", "canary 10%@0s 100%@5s"][..]),
    ] {
        for w in wants {
            assert!(line.contains(w), "{w:?} not in {line:?}\n{r:?}");
        }
    }

    let r = env.run(&["history", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let got: Vec<UnitRecord> = serde_json::from_value(r.json()).expect("a list of UnitRecords");
    assert_eq!(got, vec![rolled.clone(), shipped.clone()]);

    for (args, want) in [
        (&["history", "--since", "1h"][..], vec![rolled.clone()]),
        (&["history", "--limit", "1"][..], vec![rolled.clone()]),
        (&["history", "--unit", "direct"][..], vec![]),
        (
            &["history", "--unit", "function.stats-api", "--limit", "5"][..],
            vec![rolled.clone(), shipped.clone()],
        ),
    ] {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let r = env.run(&a);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let got: Vec<UnitRecord> = serde_json::from_value(r.json()).unwrap();
        assert_eq!(got, want, "{args:?}");
    }
    let r = env.run(&["history", "--unit", "direct"]);
    assert!(
        r.stdout
            .contains("No deploy history for live-stats/local for unit `direct`"),
        "{r:?}"
    );

    for bad in ["0", "1001", "many"] {
        let r = env.run(&["history", "--limit", bad]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains("1 to 1000") && r.stderr.contains("hint:"),
            "{r:?}"
        );
    }
}

#[test]
fn a_rollout_left_in_progress_shows_in_plan_and_status() {
    let env = LocalAws::start();
    env.deploy();
    // What a deploy killed during its canary leaves: a new version published from new configuration, and the
    // alias still on the old one with 10% on the new.
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        lambda
            .update_function_configuration()
            .function_name(STATS_API)
            .memory_size(1024)
            .send()
            .await
            .unwrap();
        let v = lambda
            .publish_version()
            .function_name(STATS_API)
            .send()
            .await
            .unwrap();
        assert_eq!(v.version(), Some("2"));
        lambda
            .update_alias()
            .function_name(STATS_API)
            .name("live")
            .routing_config(
                aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                    .additional_version_weights("2", 0.1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });

    let r = env.run(&["plan"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "unit function.stats-api — rollout in progress (version 2 at 10%; version 1 serves the rest): \
             the next `statsctl deploy` finishes or rolls it back"
        ),
        "{r:?}"
    );

    let r = env.run(&["plan", "--detailed-exitcode", "--output", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let plan = r.json();
    let p = &plan["rollouts_in_progress"][0];
    assert_eq!(p["unit"], "function.stats-api", "{plan}");
    assert_eq!(p["alias"], format!("{STATS_API}:live"), "{plan}");
    assert_eq!(p["version"], "2", "{plan}");
    assert_eq!(p["serving"], "1", "{plan}");
    assert_eq!(p["percent"], 10.0, "{plan}");
    let unit = plan["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "function.stats-api")
        .unwrap_or_else(|| panic!("no function unit: {plan}"));
    assert_eq!(unit["rollout_in_progress"]["version"], "2", "{plan}");

    let r = env.run(&["status"]);
    assert_eq!(r.code, 0, "{r:?}");
    let alias_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("lambda_alias.{STATS_API}:live")))
        .unwrap_or_else(|| panic!("no alias row: {r:?}"));
    assert!(
        alias_line.contains("rollout in progress: version 2 at 10%")
            && !alias_line.contains("drifted"),
        "{alias_line}"
    );
    let r = env.run(&["status", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let status = r.json();
    let row = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == format!("{STATS_API}:live"))
        .unwrap();
    assert_eq!(row["rollout_in_progress"]["version"], "2", "{status}");
    assert_eq!(
        status["rollouts_in_progress"][0]["percent"], 10.0,
        "{status}"
    );
}
