//! Secrets are referenced, never written, never printed: a plain secret in a stack file is refused without being
//! echoed; `{ secret: … }` references reach Lambda (ARN + key, and the role's grant) and ECS (`secrets`
//! `valueFrom`); a missing secret blocks the plan; and a secret planted in live state by hand appears in no
//! output of validate, plan, deploy --dry-run, status or preflight, text or JSON — while the change still shows.

mod harness;

use std::path::{Path, PathBuf};

use harness::*;

const PLANTED: &str = "Hunter2-planted-9f3a";
const STATS_API: &str = "live-stats-local-stats-api";

/// The shipped stack with `edit` applied, written to `dir` (artifact paths made absolute, so it deploys from
/// there).
fn stack_file(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    let functions = repo_root().join("functions");
    let text = text.replace("../functions", functions.to_str().unwrap());
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit must change the stack");
    let path = dir.join("stack.yaml");
    std::fs::write(&path, edited).unwrap();
    path
}

/// Adds lines to the stats-api function's environment (after `LOG_LEVEL: info`).
fn with_function_env(text: String, lines: &[&str]) -> String {
    let extra: String = lines.iter().map(|l| format!("\n      {l}")).collect();
    text.replacen(
        "      LOG_LEVEL: info",
        &format!("      LOG_LEVEL: info{extra}"),
        1,
    )
}

/// Adds an `environment:` to the service (after its health check path).
fn with_service_env(text: String, lines: &[&str]) -> String {
    let extra: String = lines.iter().map(|l| format!("\n    {l}")).collect();
    text.replacen(
        "  health_check_path: /healthz",
        &format!("  health_check_path: /healthz\n  environment:{extra}"),
        1,
    )
}

fn assert_not_printed(what: &str, r: &Run) {
    assert!(
        !r.stdout.contains(PLANTED) && !r.stderr.contains(PLANTED),
        "`{what}` printed the planted secret: {r:?}"
    );
}

#[test]
fn a_plain_secret_in_a_stack_file_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), |t| {
        with_function_env(t, &[&format!("DB_PASSWORD: {PLANTED}")])
    });
    let stack = stack.to_str().unwrap();
    for args in [
        vec!["--env", "local", "validate"],
        vec!["--env", "local", "validate", "--output", "json"],
        vec!["validate"],
        vec!["validate", "--output", "json"],
        // Every command that talks to AWS validates first, and sends nothing.
        vec!["--env", "local", "plan"],
        vec!["--env", "local", "deploy", "--dry-run", "--output", "json"],
    ] {
        let mut c = statsctl();
        c.args(["--stack", stack]).args(&args);
        let r = run(c);
        let what = args.join(" ");
        assert_eq!(r.code, 1, "{what}: {r:?}");
        assert_not_printed(&what, &r);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("DB_PASSWORD"), "{what}: {r:?}");
        if args.contains(&"json") {
            continue;
        }
        // Located, with the reference form as the fix (the per-environment summary of `validate` without
        // --env prints the located errors on stderr too).
        assert!(all.contains("stack.yaml:"), "{what}: {r:?}");
        assert!(
            all.contains("hint: put it in Secrets Manager and reference it: `DB_PASSWORD: { secret: NAME_OR_ARN"),
            "{what}: {r:?}"
        );
    }
    let mut c = statsctl();
    c.args([
        "--stack", stack, "--env", "local", "validate", "--output", "json",
    ]);
    let v = run(c).json();
    assert_eq!(v["valid"], false);
    assert_eq!(
        v["errors"][0]["field"],
        "functions.stats-api.environment.DB_PASSWORD"
    );
    assert!(v["errors"][0]["hint"]
        .as_str()
        .unwrap()
        .contains("{ secret: NAME_OR_ARN, key: JSON_KEY }"));

    // A password inside a URL is a secret whatever the variable is called.
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), |t| {
        with_service_env(
            t,
            &[&format!(
                "DATABASE_URL: postgres://stats:{PLANTED}@db/stats"
            )],
        )
    });
    let mut c = statsctl();
    c.args([
        "--stack",
        stack.to_str().unwrap(),
        "--env",
        "local",
        "validate",
    ]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert_not_printed("validate (URL)", &r);
    assert!(
        r.stderr
            .contains("the value of `DATABASE_URL` contains a secret"),
        "{r:?}"
    );
}

/// Secret names the rule once missed: short forms, camelCase, and keys named by what they do.
const MISSED_NAMES: &[&str] = &[
    "DB_PASS",
    "DB_PWD",
    "apiToken",
    "dbPassword",
    "SIGNING_KEY",
    "ENCRYPTION_KEY",
    "SESSION_KEY",
];

#[test]
fn short_camel_case_and_key_material_names_are_secrets_too() {
    for name in MISSED_NAMES {
        let dir = tempfile::tempdir().unwrap();
        let stack = stack_file(dir.path(), |t| {
            with_function_env(t, &[&format!("{name}: {PLANTED}")])
        });
        for output in ["human", "json"] {
            let mut c = statsctl();
            c.args([
                "--stack",
                stack.to_str().unwrap(),
                "--env",
                "local",
                "validate",
            ])
            .args(["--output", output]);
            let r = run(c);
            assert_eq!(r.code, 1, "{name} {output}: {r:?}");
            assert_not_printed(&format!("validate {name} {output}"), &r);
            let all = format!("{}{}", r.stdout, r.stderr);
            let expected = if output == "json" {
                format!("functions.stats-api.environment.{name}")
            } else {
                format!("`{name}` names a secret")
            };
            assert!(all.contains(&expected), "{name} {output}: {r:?}");
        }
    }
}

#[test]
fn secret_looking_values_outside_environments_are_masked_in_the_resolved_stack() {
    // Not refused (tags are not environment variables), but never printed either. (Credentials in a load-test
    // target are refused outright: cli/tests/gate.rs.)
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), |t| {
        t.replacen(
            "  cost-center: esports",
            &format!("  cost-center: esports\n  deploy_token: {PLANTED}"),
            1,
        )
    });
    for json in [false, true] {
        let mut c = statsctl();
        c.args([
            "--stack",
            stack.to_str().unwrap(),
            "--env",
            "local",
            "validate",
        ]);
        if json {
            c.args(["--output", "json"]);
        }
        let r = run(c);
        assert_eq!(r.code, 0, "{r:?}");
        assert_not_printed("validate", &r);
        if json {
            assert_eq!(r.json()["stack"]["tags"]["deploy_token"], "(sensitive)");
        } else {
            assert!(r.stdout.contains("deploy_token: (sensitive)"), "{r:?}");
        }
    }
}

#[test]
fn references_are_delivered_and_planted_secrets_appear_in_no_output() {
    let env = LocalAws::start();
    let arn = block_on(async {
        let conf = sdk_config(&env).await;
        aws_sdk_secretsmanager::Client::new(&conf)
            .create_secret()
            .name("live-stats/api-token")
            .secret_string(format!("{{\"token\":\"{PLANTED}\"}}"))
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), |t| {
        let t = with_function_env(
            t,
            &["API_TOKEN: { secret: live-stats/api-token, key: token }"],
        );
        // The credentials secret does not exist before the first deploy, which creates it first.
        with_service_env(
            t,
            &[
                "API_TOKEN: { secret: live-stats/api-token, key: token }",
                "DB_PASSWORD: { secret: live-stats/db-master, key: password }",
            ],
        )
    });
    let stack = stack.to_str().unwrap().to_string();
    let run_stack = |args: &[&str]| {
        let mut all = vec!["--stack", stack.as_str()];
        all.extend_from_slice(args);
        env.run(&all)
    };
    let r = run_stack(&["deploy"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_not_printed("deploy", &r);

    // Delivered the AWS-native way: Lambda gets the ARN and key (and its role the grant), ECS `valueFrom`.
    let arn_suffix = arn.rsplit('/').next().unwrap().to_string();
    block_on(async {
        let conf = sdk_config(&env).await;
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let f = lambda
            .get_function_configuration()
            .function_name(STATS_API)
            .send()
            .await
            .unwrap();
        let vars = f.environment().unwrap().variables().unwrap();
        assert_eq!(vars.get("API_TOKEN_SECRET_ARN"), Some(&arn), "{vars:?}");
        assert_eq!(
            vars.get("API_TOKEN_SECRET_KEY").map(String::as_str),
            Some("token")
        );
        assert!(!vars.contains_key("API_TOKEN"), "{vars:?}");
        let iam = aws_sdk_iam::Client::new(&conf);
        let policy = iam
            .get_role_policy()
            .role_name("live-stats-local-fn-stats-api")
            .policy_name("statsctl")
            .send()
            .await
            .unwrap();
        let doc = policy.policy_document();
        assert!(
            doc.contains("GetSecretValue") && doc.contains(&arn_suffix),
            "{doc}"
        );
        let ecs = aws_sdk_ecs::Client::new(&conf);
        let td = ecs
            .describe_task_definition()
            .task_definition("live-stats-local-stats-service")
            .send()
            .await
            .unwrap();
        let container = &td.task_definition().unwrap().container_definitions()[0];
        let secrets: Vec<(String, String)> = container
            .secrets()
            .iter()
            .map(|s| (s.name().to_string(), s.value_from().to_string()))
            .collect();
        let sm = aws_sdk_secretsmanager::Client::new(&conf);
        let master = sm
            .describe_secret()
            .secret_id("live-stats/db-master")
            .send()
            .await
            .unwrap();
        assert_eq!(
            secrets,
            vec![
                ("API_TOKEN".to_string(), format!("{arn}:token::")),
                (
                    "DB_PASSWORD".to_string(),
                    format!("{}:password::", master.arn().unwrap())
                )
            ]
        );
        assert!(container
            .environment()
            .iter()
            .all(|kv| kv.name() != Some("API_TOKEN") && kv.name() != Some("DB_PASSWORD")));
    });
    // The generated master password is a secret too: it must not show up anywhere either.
    let master_password = block_on(async {
        let conf = sdk_config(&env).await;
        let v = aws_sdk_secretsmanager::Client::new(&conf)
            .get_secret_value()
            .secret_id("live-stats/db-master")
            .send()
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
        doc["password"].as_str().unwrap().to_string()
    });
    assert!(master_password.len() >= 16);
    let (code, plan) = {
        let r = run_stack(&["plan", "--detailed-exitcode", "--output", "json"]);
        (r.code, r.json())
    };
    assert_eq!(
        code, 0,
        "deployed references read back as converged: {plan}"
    );

    // Someone pastes secrets into the function's live environment by hand.
    block_on(async {
        let conf = sdk_config(&env).await;
        let lambda = aws_sdk_lambda::Client::new(&conf);
        let mut vars = function_environment(&lambda, STATS_API).await;
        vars.insert("DB_PASSWORD".into(), PLANTED.into());
        // Short forms, camelCase and key material: each a secret too (the rule used to miss them).
        for name in MISSED_NAMES {
            vars.insert(name.to_string(), format!("{PLANTED}-{name}"));
        }
        vars.insert(
            "DATABASE_URL".into(),
            format!("postgres://stats:{PLANTED}@db/stats"),
        );
        set_function_environment(&lambda, STATS_API, vars).await;
    });

    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["deploy", "--dry-run"],
        vec!["status"],
        vec!["preflight"],
        vec!["preflight", "--markdown"],
    ] {
        for json in [false, true] {
            let mut a = args.clone();
            if json {
                a.extend(["--output", "json"]);
            }
            let r = run_stack(&a);
            let what = a.join(" ");
            assert!(r.code == 0 || r.code == 2, "{what}: {r:?}");
            assert_not_printed(&what, &r);
            assert!(
                !r.stdout.contains(&master_password) && !r.stderr.contains(&master_password),
                "`{what}` printed the master password: {r:?}"
            );
        }
    }

    // The change is still shown, key by key, without either value.
    let human = run_stack(&["plan"]);
    assert!(
        human
            .stdout
            .contains("environment.DB_PASSWORD = (sensitive) → (removed)"),
        "{human:?}"
    );
    assert!(
        human
            .stdout
            .contains("environment.DATABASE_URL = \"postgres://stats:***@db/stats\" → (removed)"),
        "{human:?}"
    );
    let r = run_stack(&["plan", "--detailed-exitcode", "--output", "json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let plan = r.json();
    let f = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "lambda_function" && c["name"] == STATS_API)
        .unwrap();
    assert_eq!(f["action"], "update");
    let old = f["changes"][0]["old"].as_str().unwrap();
    assert!(old.contains("\"DB_PASSWORD\":\"(sensitive)\""), "{f}");
    let status = run_stack(&["status", "--output", "json"]).json();
    let row = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == format!("lambda_function.{STATS_API}"))
        .unwrap();
    assert_eq!(row["pending"], true, "{row}");
    let secret_row = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "secret.live-stats/api-token")
        .unwrap();
    assert_eq!(secret_row["state"], "exists (referenced)");
    assert_eq!(secret_row["detail"], arn.as_str());

    // Deploy repairs the drift; the plan it prints on stderr (not a command result) is masked too, because the
    // plan itself carries no secret.
    let repair = run_stack(&["deploy"]);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert_not_printed("deploy (repair)", &repair);
    assert!(
        repair
            .stderr
            .contains("environment.DB_PASSWORD = (sensitive) → (removed)"),
        "{repair:?}"
    );
}

#[test]
fn a_missing_secret_blocks_the_plan_and_nothing_is_applied() {
    let env = LocalAws::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = stack_file(dir.path(), |t| {
        with_function_env(t, &["API_TOKEN: { secret: live-stats/no-such-secret }"])
    });
    let stack = stack.to_str().unwrap();
    let plan = env.run(&["--stack", stack, "plan"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    assert!(
        plan.stderr.contains(
            "the stack references secrets that do not exist in Secrets Manager: `live-stats/no-such-secret`"
        ),
        "{plan:?}"
    );
    assert!(plan.stderr.contains("hint: create them"), "{plan:?}");
    assert!(
        plan.stdout
            .contains("✗ blocked: the secret `live-stats/no-such-secret` does not exist"),
        "{plan:?}"
    );

    // status names it as missing (and still works).
    let status = env.run(&["--stack", stack, "status", "--output", "json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let rows = status.json()["resources"].as_array().unwrap().clone();
    let row = rows
        .iter()
        .find(|r| r["resource"] == "secret.live-stats/no-such-secret")
        .unwrap_or_else(|| panic!("{status:?}"));
    assert_eq!(row["state"], "missing", "{row}");

    let deploy = env.run(&["--stack", stack, "deploy"]);
    assert_eq!(deploy.code, 1, "{deploy:?}");
    assert!(
        deploy.stderr.contains("live-stats/no-such-secret"),
        "{deploy:?}"
    );
    let functions = block_on(async {
        let conf = sdk_config(&env).await;
        aws_sdk_lambda::Client::new(&conf)
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .len()
    });
    assert_eq!(functions, 0, "nothing may be applied: {deploy:?}");
}
