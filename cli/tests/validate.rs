//! `statsctl validate` and `statsctl schema` on the shipped stack and on a table of broken stack files.

mod harness;

use harness::{run, shipped_stack, statsctl};

fn validate_text(text: &str, env: Option<&str>) -> harness::Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, text).unwrap();
    let mut c = statsctl();
    c.arg("validate").arg("--stack").arg(&path);
    if let Some(e) = env {
        c.args(["--env", e]);
    }
    c.env_remove("SURELY_UNSET_VAR");
    run(c)
}

/// The shipped stack with one line replaced (the `from` text must occur exactly once).
fn shipped_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(shipped_stack()).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in the shipped stack"
    );
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no `{needle}`"))
}

#[test]
fn shipped_stack_resolves_prod() {
    let mut c = statsctl();
    c.args(["validate", "--env", "prod"]);
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("is valid for environment `prod`"),
        "{r:?}"
    );
    // prod overrides applied over the base:
    assert!(r.stdout.contains("desired_count: 3"), "{r:?}");
    assert!(r.stdout.contains("environment: production"), "{r:?}");
    assert!(r.stdout.contains("bake_time: 10m"), "{r:?}");
    assert!(
        !r.stdout.contains("environments:"),
        "resolved output has no environments: {r:?}"
    );

    let mut c = statsctl();
    c.args(["validate", "--env", "prod", "--output", "json"]);
    let j = run(c).json();
    assert_eq!(j["valid"], true);
    assert_eq!(j["env"], "prod");
    assert_eq!(j["stack"]["functions"]["stats-api"]["memory_mb"], 512);
    assert_eq!(
        j["stack"]["functions"]["stats-api"]["reserved_concurrency"],
        300
    );
    assert_eq!(j["stack"]["database"]["instance_class"], "db.r6g.large");
}

#[test]
fn shipped_stack_valid_in_every_environment() {
    let mut c = statsctl();
    c.arg("validate");
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    for env in ["local", "dev", "prod"] {
        assert!(r.stdout.contains(&format!("✓ {env} valid")), "{r:?}");
    }
}

#[test]
fn broken_stack_files_give_located_errors() {
    struct Case {
        name: &'static str,
        text: String,
        env: Option<&'static str>,
        /// (line, expected fragments of the message or hint)
        line: usize,
        expect: &'static [&'static str],
    }
    let unknown = shipped_with(
        "    reserved_concurrency: 300\n",
        "    reserved_concurency: 300\n",
    );
    let bad_value = shipped_with(
        "  max_connections_percent: 90\n",
        "  max_connections_percent: 150\n",
    );
    let bad_type = shipped_with("    memory_mb: 256\n", "    memory_mb: lots\n");
    let unset = shipped_with(
        "  cluster_id: live-stats-db\n",
        "  cluster_id: ${SURELY_UNSET_VAR}\n",
    );
    let syntax = shipped_with("  database_name: stats\n", "  database_name: stats: oops\n");
    let no_proxy = {
        let t = std::fs::read_to_string(shipped_stack()).unwrap();
        let start = t.find("proxy:\n  name").unwrap();
        let end = t[start..].find("\nfunctions:").unwrap() + start + 1;
        format!("{}{}", &t[..start], &t[end..])
    };
    let bad_duration = shipped_with("  max_age: 7d\n", "  max_age: 7 days\n");
    let bad_enum = shipped_with("  strategy: canary\n", "  strategy: canery\n");
    let password = shipped_with(
        "  master_username: stats_admin\n",
        "  master_username: stats_admin\n  password: hunter2\n",
    );
    let env_typo = shipped_with(
        "    service: { desired_count: 3, max_count: 12 }\n",
        "    service: { desired_count: 3, max_count: 12 }\n    servce: {}\n",
    );

    let cases = vec![
        Case {
            name: "unknown key",
            line: line_of(&unknown, "reserved_concurency"),
            text: unknown,
            env: Some("prod"),
            expect: &[
                "unknown field `reserved_concurency`",
                "did you mean `reserved_concurrency`?",
            ],
        },
        Case {
            name: "percent out of range",
            line: line_of(&bad_value, "max_connections_percent: 150"),
            text: bad_value,
            env: Some("dev"),
            expect: &["max_connections_percent", "150", "between 1 and 100"],
        },
        Case {
            name: "wrong type",
            line: line_of(&bad_type, "memory_mb: lots"),
            text: bad_type,
            env: Some("dev"),
            expect: &["expected a whole number, found `lots`"],
        },
        Case {
            name: "unset variable",
            line: line_of(&unset, "SURELY_UNSET_VAR"),
            text: unset,
            env: Some("prod"),
            expect: &[
                "environment variable `SURELY_UNSET_VAR` is not set",
                "${SURELY_UNSET_VAR:-value}",
            ],
        },
        Case {
            name: "syntax error",
            line: line_of(&syntax, "stats: oops"),
            text: syntax,
            env: Some("prod"),
            expect: &["invalid YAML"],
        },
        Case {
            name: "via proxy without proxy",
            line: line_of(
                &no_proxy,
                "database: { via: proxy, host_env: DB_HOST, pool_size: 1, user: stats_api }",
            ),
            text: no_proxy,
            env: Some("prod"),
            expect: &[
                "`via: proxy`, but the stack has no proxy",
                "add a `proxy:` section",
            ],
        },
        Case {
            name: "bad duration",
            line: line_of(&bad_duration, "max_age: 7 days"),
            text: bad_duration,
            env: Some("dev"),
            expect: &["invalid duration"],
        },
        Case {
            name: "bad enum value",
            line: line_of(&bad_enum, "strategy: canery"),
            text: bad_enum,
            env: Some("prod"),
            expect: &["expected one of", "did you mean `canary`?"],
        },
        Case {
            name: "literal password",
            line: line_of(&password, "password: hunter2"),
            text: password,
            env: Some("prod"),
            expect: &["unknown field `password`", "Secrets Manager"],
        },
        Case {
            name: "typo in another environment",
            line: line_of(&env_typo, "servce: {}"),
            text: env_typo,
            env: Some("local"),
            expect: &["unknown field `servce`", "did you mean `service`?"],
        },
    ];
    for case in cases {
        let r = validate_text(&case.text, case.env);
        assert_eq!(r.code, 1, "{}: {r:?}", case.name);
        assert!(
            r.stderr.contains(&format!("stack.yaml:{}:", case.line)),
            "{}: expected line {} in {r:?}",
            case.name,
            case.line
        );
        for fragment in case.expect {
            assert!(
                r.stderr.contains(fragment),
                "{}: expected `{fragment}` in {r:?}",
                case.name
            );
        }
        assert!(
            !r.stderr.contains("hunter2"),
            "{}: a secret was echoed: {r:?}",
            case.name
        );
        assert!(
            r.stdout.is_empty(),
            "{}: nothing on stdout on error: {r:?}",
            case.name
        );
    }
}

#[test]
fn all_errors_in_one_run() {
    let text = shipped_with(
        "    reserved_concurrency: 300\n",
        "    reserved_concurency: 300\n",
    )
    .replacen(
        "  max_connections_percent: 90\n",
        "  max_connections_percent: 0\n",
        1,
    )
    .replacen("    memory_mb: 512\n", "    memory_mb: -1\n", 1);
    let r = validate_text(&text, Some("dev"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("3 errors"), "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut c = statsctl();
    c.arg("validate")
        .arg("--stack")
        .arg(&path)
        .args(["--env", "dev", "--output", "json"]);
    let j = run(c).json();
    assert_eq!(j["valid"], false);
    assert_eq!(j["errors"].as_array().unwrap().len(), 3, "{j}");
    assert!(j["errors"][0]["line"].as_u64().unwrap() > 0);
}

#[test]
fn unknown_environment_and_missing_env() {
    let r = validate_text(
        &std::fs::read_to_string(shipped_stack()).unwrap(),
        Some("prdo"),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no environment `prdo`") && r.stderr.contains("did you mean `prod`?"),
        "{r:?}"
    );
}

#[test]
fn schema_is_json_schema_with_descriptions() {
    let mut c = statsctl();
    c.arg("schema");
    let j = run(c).json();
    assert!(j["$schema"].as_str().unwrap().contains("json-schema.org"));
    let fprops = &j["$defs"]["Function"]["properties"];
    assert!(fprops["reserved_concurrency"]["description"]
        .as_str()
        .unwrap()
        .contains("Reserved concurrency"));
    assert_eq!(
        j["$defs"]["Proxy"]["properties"]["max_connections_percent"]["maximum"],
        100
    );
    assert!(j["properties"]["environments"].is_object());
}
