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
    // Overlays are described with the real types (no required keys), so editors flag typos inside them too.
    assert_eq!(
        j["$defs"]["EnvironmentOverlay"]["properties"]["functions"]["additionalProperties"]["$ref"],
        "#/$defs/FunctionOverlay"
    );
    assert_eq!(j["$defs"]["FunctionOverlay"]["additionalProperties"], false);
    assert!(j["$defs"]["FunctionOverlay"].get("required").is_none());
}

/// Runs `statsctl` with a deadline: a test of a hostile input must end even if the binary does not.
fn run_within(
    mut c: std::process::Command,
    limit: std::time::Duration,
) -> (harness::Run, std::time::Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    c.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let start = std::time::Instant::now();
    let mut child = c.spawn().expect("run statsctl");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("statsctl did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let read =
        |p: &std::path::Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
    let r = harness::Run {
        code: status.code().unwrap_or(-1),
        stdout: read(&out),
        stderr: read(&err),
    };
    (r, elapsed)
}

/// Generous: every case here finishes in well under a second; before the caps some ran for minutes or aborted.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

fn validate_path(path: &std::path::Path, env: Option<&str>) -> harness::Run {
    let mut c = statsctl();
    c.arg("validate").arg("--stack").arg(path);
    if let Some(e) = env {
        c.args(["--env", e]);
    }
    run_within(c, LIMIT).0
}

#[test]
fn non_regular_files_are_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stack.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let cases: [(&str, std::path::PathBuf, &str); 3] = [
        ("/dev/zero", "/dev/zero".into(), "it is a character device"),
        ("a FIFO", fifo, "it is a FIFO"),
        ("a directory", dir.path().to_path_buf(), "it is a directory"),
    ];
    for (name, path, expect) in cases {
        // Both paths: one environment (every command's loader) and all environments (validate's own read).
        for env in [Some("local"), None] {
            let r = validate_path(&path, env);
            assert_eq!(r.code, 1, "{name} {env:?}: {r:?}");
            assert!(r.stderr.contains("not a regular file"), "{name}: {r:?}");
            assert!(r.stderr.contains(expect), "{name}: {r:?}");
            assert!(r.stderr.contains("hint:"), "{name}: {r:?}");
        }
    }
}

#[test]
fn an_oversized_file_and_invalid_utf8_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "#".repeat(5 << 20)).unwrap();
    let r = validate_path(&big, None);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("MAX_FILE_BYTES"), "{r:?}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, b"stack: live-stats\nregion: eu-\xffwest-1\n").unwrap();
    for env in [Some("local"), None] {
        let r = validate_path(&bad, env);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("not valid UTF-8"), "{r:?}");
        assert!(r.stderr.contains("bad.yaml:2:12"), "{r:?}");
        assert!(!r.stderr.contains("pass the right file"), "{r:?}");
    }
}

#[test]
fn bombs_end_in_located_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    // The shapes: 9 levels of 9 aliases (~400 bytes, 1.9 GB before the cap), and `- - - …` 10,000 deep
    // (exit 134, a stack overflow in the YAML parser, before the cap).
    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        laughs.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(",")
        ));
    }
    let cases = [
        ("alias bomb", laughs, "MAX_COPIED_NODES", 5),
        ("deep nesting", "- ".repeat(10_000) + "x\n", "MAX_DEPTH", 1),
    ];
    for (name, text, cap, line) in cases {
        let path = dir.path().join("bomb.yaml");
        std::fs::write(&path, &text).unwrap();
        let r = validate_path(&path, None);
        assert_eq!(r.code, 1, "{name}: {r:?}");
        assert!(r.stderr.contains(cap), "{name}: {r:?}");
        assert!(
            r.stderr.contains(&format!("bomb.yaml:{line}:")),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn a_typo_deep_in_another_environment_fails_validate_env_local() {
    let text = shipped_with(
        "      stats-api: { memory_mb: 512 }\n",
        "      stats-api: { memry_mb: 512 }\n",
    );
    let r = validate_text(&text, Some("local"));
    assert_eq!(r.code, 1, "{r:?}");
    let line = line_of(&text, "memry_mb");
    assert!(r.stderr.contains(&format!("stack.yaml:{line}:")), "{r:?}");
    assert!(r.stderr.contains("unknown field `memry_mb`"), "{r:?}");
    assert!(r.stderr.contains("did you mean `memory_mb`?"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
}

#[test]
fn a_100k_key_stack_validates_quickly() {
    // 100,000 tags, 1.3 MB: the duplicate-key check was quadratic (over two minutes).
    let tags: String = (0..100_000).map(|i| format!("  t{i:06}: v\n")).collect();
    let text = shipped_with(
        "  team: live-stats\n",
        &format!("  team: live-stats\n{tags}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut c = statsctl();
    c.arg("validate")
        .arg("--stack")
        .arg(&path)
        .args(["--env", "local", "--quiet"]);
    let (r, _elapsed) = run_within(c, LIMIT);
    assert_eq!(r.code, 0, "{r:?}");

    // 100,000 unknown keys: every one is an error, found quickly; text shows the first hundred, not megabytes.
    let unknown: String = (0..100_000).map(|i| format!("k{i:06}: 1\n")).collect();
    let unknown_path = dir.path().join("unknown.yaml");
    std::fs::write(&unknown_path, &unknown).unwrap();
    let r = validate_path(&unknown_path, None);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("unknown field `k000000`"),
        "{}",
        &r.stderr[..r.stderr.len().min(2000)]
    );
    assert!(
        r.stderr.contains("more errors not shown"),
        "{}",
        &r.stderr[r.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        r.stderr.len() < 100_000,
        "{} bytes of errors",
        r.stderr.len()
    );

    // A duplicate at the end is still found, at its line.
    let dup = text.replacen(
        "  cost-center: esports\n",
        "  cost-center: esports\n  t000042: again\n",
        1,
    );
    let r = validate_text(&dup, Some("local"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("duplicate key `t000042`"), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("stack.yaml:{}:", line_of(&dup, "t000042: again"))),
        "{r:?}"
    );
}

#[test]
fn substituted_secrets_and_flow_map_passwords_are_not_echoed() {
    let text = shipped_with("    memory_mb: 512\n", "    memory_mb: ${LEAKY_SECRET}\n").replacen(
        "  master_username: stats_admin\n",
        "  master_username: stats_admin\n  sql: { host: db, user: u, password: hunter2 }\n",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, &text).unwrap();
    for output in ["human", "json"] {
        let mut c = statsctl();
        c.arg("validate")
            .arg("--stack")
            .arg(&path)
            .args(["--env", "prod", "--output", output])
            .env("LEAKY_SECRET", "s3cr3t-hunter2");
        let r = run(c);
        assert_eq!(r.code, 1, "{r:?}");
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(!all.contains("hunter2"), "{output}: {r:?}");
        assert!(all.contains("${LEAKY_SECRET}"), "{output}: {r:?}");
        assert!(all.contains("unknown field `password`"), "{output}: {r:?}");
    }
}

#[test]
fn a_substituted_duration_is_not_echoed_in_part() {
    let text = shipped_with("    timeout: 10s\n", "    timeout: ${LEAKY_TIMEOUT}\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, &text).unwrap();
    for output in ["human", "json"] {
        let mut c = statsctl();
        c.arg("validate")
            .arg("--stack")
            .arg(&path)
            .args(["--env", "prod", "--output", output])
            .env("LEAKY_TIMEOUT", "5Hunter2zz");
        let r = run(c);
        assert_eq!(r.code, 1, "{r:?}");
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(!all.contains("Hunter2"), "{output}: {r:?}");
        assert!(all.contains("${LEAKY_TIMEOUT}"), "{output}: {r:?}");
        assert!(all.contains("invalid duration"), "{output}: {r:?}");
    }
}

#[test]
fn a_multi_line_secret_value_is_never_shown() {
    for lines in [
        "      DB_PASSWORD: >-\n        Hunter2c\n",
        "      DB_PASSWORD: |\n        Hunter2c\n",
        "      ? DB_PASSWORD\n      : Hunter2c\n",
    ] {
        let text = shipped_with(
            "      LOG_LEVEL: info\n",
            &format!("      LOG_LEVEL: info\n{lines}"),
        );
        for output in ["human", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stack.yaml");
            std::fs::write(&path, &text).unwrap();
            let mut c = statsctl();
            c.arg("validate")
                .arg("--stack")
                .arg(&path)
                .args(["--env", "prod", "--output", output]);
            let r = run(c);
            assert_eq!(r.code, 1, "{lines} {output}: {r:?}");
            let all = format!("{}{}", r.stdout, r.stderr);
            assert!(!all.contains("Hunter2"), "{lines} {output}: {r:?}");
            assert!(all.contains("DB_PASSWORD"), "{lines} {output}: {r:?}");
            if output == "human" {
                let line = line_of(&text, "DB_PASSWORD");
                assert!(
                    r.stderr.contains(&format!("stack.yaml:{line}:")),
                    "{lines}: {r:?}"
                );
            }
        }
    }
}

#[test]
fn typos_in_another_environment_overlay_fail_validate_env_prod() {
    // The `local` overlay's functions (the `dev` overlay has the same line).
    let local = "/pgpass\n    functions:\n      stats-api: { reserved_concurrency: 20 }\n";
    for (from, to, needle, message, hint) in [
        (
            local,
            &*local.replace("stats-api:", "stats-apii:"),
            "stats-apii",
            "changes function `stats-apii`, which the base does not define",
            "did you mean `stats-api`?",
        ),
        (
            "      notify: [arn:aws:sns:us-east-1:123456789012:live-stats-oncall]\n",
            "      notify: [arn:aws:sns:us-east-1:123456789012:live-stats-oncall]\n      \
             overrides:\n        db-conections: { threshold_percent: 90 }\n",
            "db-conections",
            "no generated alarm has the id `db-conections`",
            "did you mean `db-connections`?",
        ),
        (
            "      latency: { p50: 500ms, p99: 2s }\n",
            "      latency: { p5: 500ms, p99: 2s }\n",
            "p5:",
            "unknown field `p5`",
            "did you mean",
        ),
    ] {
        let text = shipped_with(from, to);
        let r = validate_text(&text, Some("prod"));
        assert_eq!(r.code, 1, "{needle}: {r:?}");
        let line = line_of(&text, needle);
        assert!(
            r.stderr.contains(&format!("stack.yaml:{line}:")),
            "{needle}: {r:?}"
        );
        assert!(r.stderr.contains(message), "{needle}: {r:?}");
        assert!(r.stderr.contains(hint), "{needle}: {r:?}");
        assert!(r.stdout.is_empty(), "{needle}: {r:?}");
    }
    // In the base too: a closed set of percentiles.
    let text = shipped_with(
        "  latency: { p50: 100ms, p99: 500ms }\n",
        "  latency: { p50: 100ms, p99.5: 500ms }\n",
    );
    let r = validate_text(&text, Some("prod"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown field `p99.5`"), "{r:?}");
    // An overlay may still add a whole function.
    let text = shipped_with(
        local,
        &format!(
            "{local}      \
         extra-fn: {{ artifact: ../functions/stats-api, runtime: python3.12, handler: app.handler }}\n"
        ),
    );
    let r = validate_text(&text, Some("prod"));
    assert_eq!(r.code, 0, "{r:?}");
    let r = validate_text(&text, Some("local"));
    assert!(!r.stderr.contains("does not define"), "{r:?}");
}

#[test]
fn the_schema_closes_latency_keys() {
    let mut c = statsctl();
    c.arg("schema");
    let schema = run(c).json();
    let s = schema.to_string();
    assert!(s.contains("\"p99.9\""), "no `p99.9` key in the schema");
    let defs = schema["$defs"].as_object().unwrap();
    let latency = defs
        .iter()
        .find(|(name, _)| name.as_str() == "LatencyLimits")
        .map(|(_, d)| d)
        .expect("a LatencyLimits definition");
    assert_eq!(latency["additionalProperties"], false, "{latency}");
    assert!(defs.contains_key("LatencyLimitsOverlay"), "no overlay copy");
}

#[test]
fn an_endpoint_url_with_credentials_is_refused_masked() {
    let from = "      endpoint_url: http://127.0.0.1:${STATSCTL_MOTO_PORT:-4566}\n";
    // A password with a `/` in it is credentials too.
    for to in [
        "      endpoint_url: http://a:Hunter2pw@127.0.0.1:4566\n",
        "      endpoint_url: http://a:pw/Hunter2@127.0.0.1:4566/x\n",
    ] {
        let text = shipped_with(from, to);
        for output in ["human", "json"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stack.yaml");
            std::fs::write(&path, &text).unwrap();
            let mut c = statsctl();
            c.arg("validate")
                .arg("--stack")
                .arg(&path)
                .args(["--env", "local", "--output", output]);
            let r = run(c);
            assert_eq!(r.code, 1, "{to} {output}: {r:?}");
            let all = format!("{}{}", r.stdout, r.stderr);
            assert!(!all.contains("Hunter2"), "{to} {output}: {r:?}");
            assert!(
                all.contains("has credentials in it"),
                "{to} {output}: {r:?}"
            );
            assert!(
                all.contains("http://***@127.0.0.1:4566"),
                "{to} {output}: {r:?}"
            );
            if output == "human" {
                let line = line_of(&text, "endpoint_url");
                assert!(r.stderr.contains(&format!("stack.yaml:{line}:")), "{r:?}");
                assert!(r.stderr.contains("hint: remove `user:password@`"), "{r:?}");
            }
        }
    }
    // From `${VAR}`: refused too, and the value is not shown.
    let text = shipped_with(from, "      endpoint_url: ${LEAKY_ENDPOINT}\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stack.yaml");
    std::fs::write(&path, &text).unwrap();
    let mut c = statsctl();
    c.arg("validate")
        .arg("--stack")
        .arg(&path)
        .args(["--env", "local"])
        .env("LEAKY_ENDPOINT", "http://a:Hunter2pw@127.0.0.1:4566");
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        !r.stderr.contains("Hunter2") && !r.stdout.contains("Hunter2"),
        "{r:?}"
    );
    assert!(r.stderr.contains("${LEAKY_ENDPOINT}"), "{r:?}");
}
