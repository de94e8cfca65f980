//! The service's two colours against the emulator: a new image starts on the idle colour, listener weights move
//! and read back, a rollback and a promote each take at once, plan is empty after the promote whichever colour
//! serves, and destroy removes both colours. The rollout loop is driven from here directly (the functions
//! `statsctl deploy` calls), built the way `cli/src/session.rs` builds them.

mod harness;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use harness::{block_on, shipped_stack, LocalAws};
use statsctl_aws::{elb, Aws, Target, Timeouts};
use statsctl_core::desired::service::{percent_on, Colour};
use statsctl_core::inventory::{Kind, Owner};
use statsctl_core::plan::Change;
use statsctl_core::units::units;
use statsctl_engine::apply::Executor;
use statsctl_engine::colours::{self, Colours};
use statsctl_engine::observe::Subject;

const NEW_IMAGE: &str = "public.ecr.aws/live-stats/stats-service:0.2.0";
const FAMILY: &str = "live-stats-local-stats-service";

/// AWS clients for the test's emulator, as a session builds them.
async fn connect(env: &LocalAws) -> Aws {
    Aws::connect(&Target {
        region: "us-east-1".into(),
        profile: None,
        endpoint_url: Some(env.endpoint()),
        timeouts: Timeouts::default(),
    })
    .await
}

/// The listener's forwards read back: percent on the new colour's target group, and the weights by colour.
async fn read_back(aws: &Aws, c: &Colours) -> (u32, u16, u16) {
    let f = elb::listener_forwards(aws, &c.listener_arn).await.unwrap();
    let weight = |arn: &str| f.iter().find(|(t, _)| t == arn).map_or(0, |(_, w)| *w);
    (
        percent_on(&f, &c.new_target_group_arn).unwrap(),
        weight(&c.old_target_group_arn),
        weight(&c.new_target_group_arn),
    )
}

#[test]
fn a_new_image_moves_between_the_colours_and_plan_settles_on_the_serving_one() {
    let env = LocalAws::start();
    env.deploy();
    let moto_port = env.moto_port.to_string();
    let pg_port = env.pg_port.to_string();
    let local_dir = env.dir.path().join("local").display().to_string();
    let vars: BTreeMap<&str, &str> = BTreeMap::from([
        ("STATSCTL_MOTO_PORT", moto_port.as_str()),
        ("STATSCTL_PG_PORT", pg_port.as_str()),
        ("STATSCTL_LOCAL_DIR", local_dir.as_str()),
        ("STATS_SERVICE_IMAGE", NEW_IMAGE),
    ]);
    let lookup = |name: &str| vars.get(name).map(|v| v.to_string());
    let resolved =
        statsctl_core::loader::load_file(&shipped_stack(), Some("local"), &lookup).unwrap();
    let artifacts = statsctl_core::artifact::package_all(&resolved).unwrap();
    let stack = &resolved.spec;
    let owner = Owner {
        stack: stack.stack.clone(),
        env: "local".into(),
    };
    // The emulator's dummy credentials, as the harness gives every statsctl it runs.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let lines = Mutex::new(Vec::<String>::new());
    let progress = |l: String| lines.lock().unwrap().push(l);
    let stop = AtomicBool::new(false);
    let ex = Executor {
        subject: Subject {
            stack,
            env: "local",
            owner: &owner,
            artifacts: &artifacts,
        },
        progress: &progress,
        stop: &stop,
    };
    let c = block_on(async {
        let aws = connect(&env).await;
        let (mut observed, plan, _) = ex.subject.observe_and_plan(&aws).await.unwrap();
        let unit = units(&plan, stack)
            .into_iter()
            .find(|u| u.id == "service.stats-service")
            .unwrap_or_else(|| panic!("no service unit in {plan:?}"));
        let changes: Vec<Change> = plan
            .changes
            .iter()
            .filter(|c| unit.changes.contains(&c.key))
            .cloned()
            .collect();
        let c = colours::prepare(&aws, &ex, &changes, &mut observed)
            .await
            .unwrap_or_else(|e| panic!("prepare: {e:?}"))
            .expect("an existing service has a colour to shift to");
        assert_eq!((c.old, c.new), (Colour::Blue, Colour::Green));
        assert_eq!(c.new_service, "stats-service-green");
        assert_ne!(c.from.as_deref(), Some(c.to.as_str()));

        // The idle colour runs the new revision, which has the new image; blue still runs the old one and the
        // listener still sends everything to blue.
        let now = ex.subject.observe(&aws).await.unwrap();
        let green = now.get(Kind::EcsService, "stats-service-green").unwrap();
        assert_eq!(green.attrs["task_definition"], c.to);
        assert_eq!(green.attrs["target_group"], "live-stats-local-svc-green");
        let blue = now.get(Kind::EcsService, "stats-service").unwrap();
        assert_eq!(Some(&blue.attrs["task_definition"]), c.from.as_ref());
        let td = now.get(Kind::TaskDefinition, FAMILY).unwrap();
        assert_eq!(td.attrs["image"], NEW_IMAGE);
        assert_eq!(read_back(&aws, &c).await, (0, 100, 0));

        // Half and half, read back from DescribeListeners.
        assert_eq!(colours::set_percent(&aws, &c, 50).await.unwrap(), 50);
        assert_eq!(read_back(&aws, &c).await, (50, 50, 50));
        // A share that is not one is refused and changes nothing.
        assert!(colours::set_percent(&aws, &c, 101).await.is_err());
        assert_eq!(read_back(&aws, &c).await, (50, 50, 50));
        c
    });

    // A split listener is a rollout in progress: status says so, and the plan leaves the weights alone.
    let status = env.run_with(&["status"], &[("STATS_SERVICE_IMAGE", NEW_IMAGE)]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("rollout in progress"),
        "{}",
        status.stdout
    );
    let (_, plan) = env.plan_json();
    let listener_changes: Vec<_> = harness::pending(&plan)
        .into_iter()
        .filter(|(k, _)| k.starts_with("listener."))
        .collect();
    assert!(listener_changes.is_empty(), "{listener_changes:?}");

    block_on(async {
        let aws = connect(&env).await;
        assert_eq!(colours::roll_back(&aws, &c).await.unwrap(), 0);
        assert_eq!(read_back(&aws, &c).await, (0, 100, 0));
        colours::promote(&aws, &ex, &c).await.unwrap();
        assert_eq!(read_back(&aws, &c).await, (100, 0, 100));
        // What a service unit does after its promote: the service's four alarms follow the traffic to green.
        let steps = colours::repoint_alarms(&aws, &ex).await.unwrap();
        assert_eq!(steps.len(), 4, "{steps:?}");
    });
    assert!(
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("keeps its tasks for 30m")),
        "{:?}",
        lines.lock().unwrap()
    );

    // Green serves the new image: nothing left to do, though the stack file never named a colour.
    let plan = env.run_with(
        &["plan", "--detailed-exitcode"],
        &[("STATS_SERVICE_IMAGE", NEW_IMAGE)],
    );
    assert_eq!(plan.code, 0, "{plan:?}");
    // Blue's keep time passing (promoted again with keep_previous 0s): the next plan scales blue to 0, a deploy
    // does it, and the plan is empty again.
    let no_keep = Colours {
        keep_previous: std::time::Duration::ZERO,
        ..c.clone()
    };
    block_on(async {
        colours::promote(&connect(&env).await, &ex, &no_keep)
            .await
            .unwrap()
    });
    let with_image = [("STATS_SERVICE_IMAGE", NEW_IMAGE)];
    let r = env.run_with(
        &["plan", "--detailed-exitcode", "--output", "json"],
        &with_image,
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(
        harness::pending(&r.json()),
        vec![(
            "ecs_service.stats-service".to_string(),
            "update".to_string()
        )],
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("desired_count"), "{}", r.stdout);
    let r = env.run_with(&["deploy", "--yes"], &with_image);
    assert_eq!(r.code, 0, "{r:?}");
    let r = env.run_with(&["plan", "--detailed-exitcode"], &with_image);
    assert_eq!(r.code, 0, "{r:?}");
    let now = block_on(async { ex.subject.observe(&connect(&env).await).await.unwrap() });
    let blue = now.get(Kind::EcsService, "stats-service").unwrap();
    assert_eq!(blue.attrs["desired_count"], "0");

    // Blue (kept for a rollback) and green are both there, and destroy removes both, and both target groups.
    let status = env.run_with(
        &["status", "--output", "json"],
        &[("STATS_SERVICE_IMAGE", NEW_IMAGE)],
    );
    for name in [
        "ecs_service.stats-service",
        "ecs_service.stats-service-green",
        "target_group.live-stats-local-svc-green",
    ] {
        assert!(status.stdout.contains(name), "{name}: {}", status.stdout);
    }
    let destroy = env.run_with(&["destroy", "--yes"], &[("STATS_SERVICE_IMAGE", NEW_IMAGE)]);
    assert_eq!(destroy.code, 0, "{destroy:?}");
    let left = block_on(async {
        let aws = connect(&env).await;
        ex.subject.observe(&aws).await.unwrap()
    });
    let remaining: Vec<String> = left
        .resources
        .keys()
        .filter(|k| {
            matches!(
                k.kind,
                Kind::EcsService | Kind::TargetGroup | Kind::Listener
            )
        })
        .map(|k| k.to_string())
        .collect();
    assert!(remaining.is_empty(), "{remaining:?}");
}
