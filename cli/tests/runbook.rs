//! `statsctl runbook`: list/show/run of the SHIPPED runbooks against a private moto + PostgreSQL: a dozen idle
//! connections held by one of the stack's database users (`kill-idle-connections`, `db-connections-exhausted`),
//! and a deploy rolled back to the version history names (`bad-deploy`).

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::*;

const STATS_API: &str = "live-stats-local-stats-api";

/// Connections held open (idle) by the test as one database user, on a runtime of their own so they stay up
/// while `statsctl` runs.
struct Idle {
    rt: tokio::runtime::Runtime,
    clients: Vec<tokio_postgres::Client>,
    pids: Vec<i32>,
}

impl Idle {
    fn open(env: &LocalAws, user: &str, n: usize) -> Idle {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let password = env.db_password(user);
        let port = env.pg_port;
        let clients: Vec<tokio_postgres::Client> = rt.block_on(async {
            let mut out = Vec::new();
            for _ in 0..n {
                let mut c = tokio_postgres::Config::new();
                c.host("127.0.0.1")
                    .port(port)
                    .user(user)
                    .password(&password)
                    .dbname("stats")
                    .application_name("leaky-test-client")
                    .connect_timeout(Duration::from_secs(5));
                let (client, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                out.push(client);
            }
            out
        });
        let pids = rt.block_on(async {
            let mut pids = Vec::new();
            for c in &clients {
                pids.push(
                    c.query_one("SELECT pg_backend_pid()", &[])
                        .await
                        .unwrap()
                        .get(0),
                );
            }
            pids
        });
        Idle { rt, clients, pids }
    }

    /// How many of the connections still answer. Asking makes them busy for a moment, so this waits past the
    /// runbooks' `older_than=1s` afterwards: they are idle long enough again for the next run.
    fn alive(&self) -> usize {
        let n = self.rt.block_on(async {
            let mut n = 0;
            for c in &self.clients {
                let ok = tokio::time::timeout(Duration::from_secs(5), c.simple_query("SELECT 1"))
                    .await
                    .is_ok_and(|r| r.is_ok());
                n += usize::from(ok);
            }
            n
        });
        std::thread::sleep(Duration::from_millis(1500));
        n
    }
}

/// `statsctl --env local runbook ARGS…` (the shipped runbooks), transcripts into `transcripts`.
fn runbook(env: &LocalAws, transcripts: &std::path::Path, args: &[&str]) -> Run {
    let mut c = env.statsctl();
    c.arg("runbook")
        .args(args)
        .env("STATSCTL_TRANSCRIPT_DIR", transcripts);
    run(c)
}

fn transcripts_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn idle_connections_are_named_refused_without_yes_and_terminated_with_it() {
    let env = LocalAws::start();
    env.deploy();
    let transcripts = env.dir.path().join("transcripts");
    let idle = Idle::open(&env, "stats_api", 12);
    assert_eq!(idle.alive(), 12);

    // No terminal, no --yes: the rows are shown, the change is refused, nothing is terminated.
    let refused = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "kill-idle-connections",
            "--param",
            "user=stats_api",
            "--param",
            "older_than=1s",
        ],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("refused"), "{refused:?}");
    assert!(
        refused.stderr.contains("hint: run it at a terminal"),
        "{refused:?}"
    );
    for pid in &idle.pids {
        assert!(
            refused.stdout.contains(&pid.to_string()),
            "pid {pid} not shown: {refused:?}"
        );
    }
    assert_eq!(idle.alive(), 12, "a refused run terminated connections");
    assert_eq!(
        transcripts_in(&transcripts).len(),
        1,
        "a refused run leaves a transcript"
    );

    // The diagnosis, as a dry run: names the holder, changes nothing.
    let dry = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "db-connections-exhausted",
            "--dry-run",
            "--param",
            "older_than=1s",
        ],
    );
    assert_eq!(dry.code, 0, "{dry:?}");
    // "Who holds the connections": stats_api first, with its 12 connections, all idle.
    let holders = dry
        .stdout
        .split("Who holds the connections")
        .nth(1)
        .expect("the holders step");
    let first_row: Vec<&str> = holders
        .lines()
        .map(str::split_whitespace)
        .map(Iterator::collect)
        .find(|cells: &Vec<&str>| {
            cells.first() != Some(&"why:") && cells.len() > 3 && cells[0] != "usename"
        })
        .expect("a row");
    assert_eq!(first_row[..3], ["stats_api", "12", "12"], "{dry:?}");
    assert!(dry.stdout.contains("dry run: not changed"), "{dry:?}");
    assert!(
        dry.stdout
            .contains("12 idle connection(s) of `stats_api` will be terminated"),
        "{dry:?}"
    );
    assert_eq!(idle.alive(), 12, "a dry run terminated connections");

    // --yes: terminated, read back as gone, the transcript lists every one.
    let done = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "kill-idle-connections",
            "--param",
            "user=stats_api",
            "--param",
            "older_than=1s",
            "--yes",
            "--output",
            "json",
        ],
    );
    assert_eq!(done.code, 0, "{done:?}");
    let t = done.json();
    assert_eq!(t["result"], "finished", "{t}");
    let action = &t["steps"][3];
    assert_eq!(action["status"], "done", "{t}");
    assert_eq!(action["change"]["took"], true, "{t}");
    assert_eq!(
        action["change"]["read_back"], "0 of the 12 connection(s) still open",
        "{t}"
    );
    assert_eq!(idle.alive(), 0, "connections still answer after --yes");
    let files = transcripts_in(&transcripts);
    assert_eq!(files.len(), 3, "{files:?}");
    let md = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains("| mode | run with --yes |"))
        .expect("the --yes run's transcript");
    for pid in &idle.pids {
        assert!(
            md.contains(&format!("| {pid} | stats_api |")),
            "pid {pid}: {md}"
        );
    }
    assert!(md.contains("(took)"), "{md}");
    // Secrets: no password of any local role in any transcript or output.
    for role in ["postgres", "stats_api"] {
        let password = env.db_password(role);
        for f in &files {
            assert!(!std::fs::read_to_string(f).unwrap().contains(&password));
        }
        assert!(!done.stdout.contains(&password) && !done.stderr.contains(&password));
    }

    // Every run was appended to the ledger bucket too.
    let kept = block_on(async {
        let s3 = aws_sdk_s3::Client::new(&sdk_config(&env).await);
        let buckets = s3.list_buckets().send().await.unwrap();
        let bucket = buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .find(|n| n.contains("-ledger-"))
            .expect("the ledger bucket")
            .to_string();
        s3.list_objects_v2()
            .bucket(bucket)
            .prefix("runbooks/local/")
            .send()
            .await
            .unwrap()
            .contents()
            .len()
    });
    assert_eq!(kept, 3, "transcripts in the ledger");

    // The admin user's connections are never terminated.
    let admin = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "kill-idle-connections",
            "--param",
            "user=postgres",
            "--yes",
        ],
    );
    assert_eq!(admin.code, 1, "{admin:?}");
    assert!(admin.stdout.contains("admin user"), "{admin:?}");
}

/// Bad parameters and broken runbook files are refused before anything runs, with what is wrong and a hint.
#[test]
fn bad_parameters_and_broken_files_are_refused_up_front() {
    let transcripts = tempfile::tempdir().unwrap();
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("typo.yaml"),
        "name: typo\ntitle: t\nwhen: w\nsteps:\n  - title: a\n    why: b\n    sql: select 1\n    tilte: x\n",
    )
    .unwrap();
    // A shipped runbook's name again: the copy is reported, never picked by accident.
    std::fs::copy(
        repo_root().join("runbooks/shipped/kill-idle-connections.yaml"),
        broken.path().join("zz-copy.yaml"),
    )
    .unwrap();
    let cmd = |args: &[&str], dir: Option<&str>| {
        let mut c = statsctl();
        c.args(["--env", "local", "runbook"])
            .args(args)
            .env("STATSCTL_TRANSCRIPT_DIR", transcripts.path());
        if let Some(dir) = dir {
            c.args(["--runbooks", dir]);
        }
        run(c)
    };
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["run", "kill-idle-connections", "--param", "usr=x"],
            "did you mean `user`",
            "nothing was run",
        ),
        (
            &[
                "run",
                "kill-idle-connections",
                "--param",
                "user=a",
                "--param",
                "older_than=soon",
            ],
            "--param older_than",
            "runbook show kill-idle-connections",
        ),
        (
            &["run", "kill-idle-connections", "--param", "user"],
            "is not NAME=VALUE",
            "nothing was run",
        ),
        (
            &["run", "kill-idle-connection"],
            "no runbook named",
            "did you mean `kill-idle-connections`",
        ),
        (&["show", "nope"], "no runbook named `nope`", "runbook list"),
    ];
    for (args, message, hint) in cases {
        let r = cmd(args, None);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(message), "{args:?}: {r:?}");
        assert!(r.stderr.contains(hint), "{args:?}: {r:?}");
    }
    assert!(
        transcripts_in(transcripts.path()).is_empty(),
        "nothing ran, so no transcript"
    );

    // A broken file: listed with its located error, the others still listed, exit 1.
    let list = cmd(&["list"], Some(&broken.path().display().to_string()));
    assert_eq!(list.code, 1, "{list:?}");
    assert!(list.stderr.contains("typo.yaml:8:5"), "{list:?}");
    assert!(list.stdout.contains("kill-idle-connections"), "{list:?}");
    assert!(
        list.stderr
            .contains("runbook `kill-idle-connections` is already defined in (built in)"),
        "{list:?}"
    );
    assert!(
        list.stdout.contains("2 runbook file(s) do not load"),
        "{list:?}"
    );
    // Every shipped runbook is listed, built in.
    let ok = cmd(&["list"], None);
    assert_eq!(ok.code, 0, "{ok:?}");
    for name in [
        "db-connections-exhausted",
        "kill-idle-connections",
        "lambda-bypassing-proxy",
        "bad-deploy",
        "accepting-but-not-answering",
        "scale-for-event",
        "pre-event",
    ] {
        assert!(ok.stdout.contains(name), "{name}: {ok:?}");
    }
    let show = cmd(&["show", "kill-idle-connections"], None);
    assert_eq!(show.code, 0, "{show:?}");
    for want in [
        "older_than (duration, default 5m)",
        "user (string, default from the stack: app_users)",
        "4. [action] Terminate them",
        "changes: terminate connections of `{{steps.idle.usename}}` idle longer than {{params.older_than}} (asks first)",
    ] {
        assert!(show.stdout.contains(want), "{want}: {show:?}");
    }
}

/// The function's alias as read back through the SDK: (version, additional weights).
fn alias(env: &LocalAws) -> (String, usize) {
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(env).await);
        let (version, weights) = alias_routing(&lambda, STATS_API, "live").await;
        (version, weights.len())
    })
}

/// `bad-deploy`: after a deploy ships version 2 of a function (history: 1 → 2), the runbook shows the rollback
/// `statsctl rollback` would make, changes nothing on a dry run or without --yes, and with --yes points the
/// alias back at version 1, reads it back and records the rollback in the deploy history.
#[test]
fn bad_deploy_rolls_a_function_back_to_the_version_history_names() {
    let env = LocalAws::start();
    env.deploy();
    // A change to the function's configuration, deployed: version 2 behind the alias, recorded by deploy.
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("RUNBOOK_TEST".into(), "bad".into());
        set_function_environment(&lambda, STATS_API, vars).await;
    });
    let second = env.deploy();
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(alias(&env), ("2".to_string(), 0));
    let transcripts = env.dir.path().join("transcripts");
    let line = "function stats-api: alias live 2 → 1 (from history: function.stats-api shipped";

    let dry = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "bad-deploy",
            "--param",
            "target=stats-api",
            "--dry-run",
        ],
    );
    assert!(dry.stdout.contains(line), "{dry:?}");
    assert!(dry.stdout.contains("dry run: not changed"), "{dry:?}");
    assert_eq!(alias(&env), ("2".to_string(), 0), "a dry run rolled back");

    let refused = runbook(
        &env,
        &transcripts,
        &["run", "bad-deploy", "--param", "target=function:stats-api"],
    );
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains(line), "{refused:?}");
    assert_eq!(
        alias(&env),
        ("2".to_string(), 0),
        "a refused run rolled back"
    );

    let done = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "bad-deploy",
            "--param",
            "target=stats-api",
            "--yes",
            "--output",
            "json",
        ],
    );
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(
        alias(&env),
        ("1".to_string(), 0),
        "not rolled back: {done:?}"
    );
    let t = done.json();
    // The first step lists what shipped, newest first under a header: the deploy of version 2 of stats-api.
    let shipped = &t["steps"][0];
    assert_eq!(shipped["kind"], "history", "{t}");
    assert!(
        shipped["lines"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("STARTED"),
        "{t}"
    );
    let first = shipped["lines"][1].as_str().unwrap_or_default();
    assert!(
        first.contains("function.stats-api") && first.contains("1 → 2"),
        "{t}"
    );
    let step = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "action")
        .expect("the rollback step");
    assert_eq!(step["status"], "done", "{t}");
    assert_eq!(step["change"]["before"], "2", "{t}");
    assert_eq!(step["change"]["after"], "1", "{t}");
    assert_eq!(step["change"]["took"], true, "{t}");
    assert_eq!(
        step["change"]["read_back"], "function.stats-api serves 1",
        "{t}"
    );
    let md = transcripts_in(&transcripts)
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .find(|m| m.contains("| mode | run with --yes |"))
        .expect("the --yes run's transcript");
    assert!(md.contains(line), "{md}");
    assert!(md.contains("(took)"), "{md}");

    // The same record `statsctl rollback` appends: history lists it, and a second rollback has no target.
    let history = env.run(&["history", "--output", "json"]);
    assert_eq!(history.code, 0, "{history:?}");
    let h = history.json();
    let newest = &h[0];
    assert_eq!(newest["outcome"], "rolled_back", "{h}");
    assert_eq!(newest["strategy"], "rollback", "{h}");
    assert_eq!(
        (&newest["from"], &newest["to"]),
        (&"2".into(), &"1".into()),
        "{h}"
    );
}

/// After a blue/green rollout green serves and blue idles: a runbook's `scale_service` changes green, the
/// service viewers reach, never the idle colour, and its `metric … of: service` reads green's.
#[test]
fn a_runbook_scales_the_colour_that_serves() {
    let env = LocalAws::start();
    env.deploy();
    let image = [(
        "STATS_SERVICE_IMAGE",
        "public.ecr.aws/live-stats/stats-service:0.2.0",
    )];
    let rolled = env.run_with(&["deploy", "--yes"], &image);
    assert_eq!(rolled.code, 0, "{rolled:?}");
    let desired = |name: &str| {
        block_on(async {
            let ecs = aws_sdk_ecs::Client::new(&sdk_config(&env).await);
            let out = ecs
                .describe_services()
                .cluster("live-stats")
                .services(name)
                .send()
                .await
                .unwrap();
            out.services()[0].desired_count()
        })
    };
    let blue_before = desired("stats-service");
    // A count green does not have yet, within the local environment's max_count (2).
    let want = if desired("stats-service-green") == 2 {
        1
    } else {
        2
    };
    let dir = env.dir.path().join("own-runbooks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("scale-serving.yaml"),
        format!(
            "name: scale-serving\ntitle: Scale the service\nwhen: a test\nparams:\n  viewers: {{ type: count }}\n\
             steps:\n  - title: CPU lately\n    \
             why: a test\n    metric: {{ name: CPUUtilization, of: service, stat: Average, window: 1h }}\n  \
             - title: Set the task count\n    why: a test\n    action:\n      scale_service:\n        \
             desired: \"{want}\"\n  - title: The budget for the audience\n    why: a test\n    \
             check: [capacity.connections]\n    viewers: \"{{{{params.viewers}}}}\"\n"
        ),
    )
    .unwrap();
    let transcripts = env.dir.path().join("transcripts");
    let dir_arg = dir.display().to_string();
    let done = runbook(
        &env,
        &transcripts,
        &[
            "run",
            "scale-serving",
            "--runbooks",
            &dir_arg,
            "--param",
            "viewers=10000000",
            "--yes",
            "--output",
            "json",
        ],
    );
    // The last step finds ten million viewers do not fit the budget: a problem it cannot fix (exit 2).
    assert_eq!(done.code, 2, "{done:?}");
    let t = done.json();
    // The check budgeted for the runbook's audience, not the stack's.
    let lines: Vec<&str> = t["steps"][2]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(lines.first(), Some(&"for 10000000 viewers"), "{t}");
    assert!(lines.contains(&"    10000000 viewers"), "{t}");
    assert_eq!(t["steps"][2]["status"], "problem", "{t}");
    // The metric read is green's too.
    let metric = t["steps"][0]["lines"][0].as_str().unwrap_or_default();
    assert!(
        metric.starts_with("CPUUtilization (service stats-service-green):"),
        "{t}"
    );
    let step = &t["steps"][1];
    assert_eq!(
        step["change"]["what"], "desired task count of `stats-service-green`",
        "{t}"
    );
    assert_eq!(step["change"]["took"], true, "{t}");
    assert_eq!(desired("stats-service-green"), want);
    assert_eq!(
        desired("stats-service"),
        blue_before,
        "the idle colour was scaled"
    );
}
