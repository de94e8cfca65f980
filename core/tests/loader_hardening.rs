//! Hostile and mistaken stack files: alias and nesting bombs end in a located error, quickly and with bounded work
//! (property tests); non-regular, oversized and non-UTF-8 files are refused; a typo at any depth of any
//! environment overlay is found; and a value substituted from `${…}` is never echoed by the error about it.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use statsctl_core::diagnostics::{mask_secret_value, Diagnostics};
use statsctl_core::loader::{load_file, load_str, read_stack_file, schema};
use statsctl_core::yaml_tree::{
    parse_with_stats, MAX_ALIASES, MAX_COPIED_BYTES, MAX_COPIED_NODES, MAX_DEPTH, MAX_FILE_BYTES,
};

fn no_vars(_: &str) -> Option<String> {
    None
}

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml"))
        .unwrap()
}

/// The shipped stack with `from` (which must occur once) replaced.
fn shipped_with(from: &str, to: &str) -> String {
    let text = shipped();
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// "Within a second" in the issue; asserted with a wide margin so a busy 2-core machine cannot fail it. Without the
/// caps the smallest generated bomb takes many seconds and gigabytes, or aborts the process.
const GENEROUS_BOUND: Duration = Duration::from_secs(5);

/// Loads a bomb: it must fail with a located error naming a cap, quickly, having built a bounded number of nodes.
fn assert_refused(text: &str, cap: &str) {
    let start = Instant::now();
    let err = load_str(Path::new("bomb.yaml"), text, None, &no_vars).unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        elapsed < GENEROUS_BOUND,
        "took {elapsed:?} for {} bytes",
        text.len()
    );
    let first = &err.errors[0];
    assert!(
        first.message.contains(cap),
        "expected {cap}: {:?}",
        err.errors
    );
    assert!(first.hint.is_some(), "{first:?}");
    let at = first.at.expect("a located error");
    assert!(
        at.line >= 1 && at.line <= text.lines().count().max(1),
        "{at:?}"
    );
    let _ = err.to_string();

    // Bounded memory: what the parser built is linear in the text plus the expansion cap, whatever the bomb.
    let (result, stats) = parse_with_stats(text);
    assert!(result.is_err());
    assert!(stats.nodes <= 2 * text.len() + 2, "{stats:?}");
    assert!(stats.max_depth <= MAX_DEPTH, "{stats:?}");
    assert!(stats.aliases <= MAX_ALIASES + 1, "{stats:?}");
    // A copy is counted before it is made, so at most one anchor's worth (itself bounded) passes the cap.
    assert!(
        stats.copied_nodes <= 2 * MAX_COPIED_NODES + stats.nodes,
        "{stats:?}"
    );
    assert!(
        stats.copied_bytes <= 2 * MAX_COPIED_BYTES + text.len(),
        "{stats:?}"
    );
    assert!(
        stats.anchored_nodes <= 2 * MAX_COPIED_NODES + stats.nodes,
        "{stats:?}"
    );
    assert!(
        stats.anchored_bytes <= 2 * MAX_COPIED_BYTES + text.len(),
        "{stats:?}"
    );
}

/// Aliases of aliases: level 0 has `fanout` scalars, each next level `fanout` aliases of the previous one.
fn alias_bomb(fanout: usize, levels: usize, flow: bool, wrapped: bool) -> String {
    let mut text = String::new();
    let indent = if wrapped {
        text.push_str("stack: bomb\ntags:\n");
        "  "
    } else {
        ""
    };
    for level in 0..levels {
        let items: Vec<String> = (0..fanout)
            .map(|_| {
                if level == 0 {
                    "lol".to_string()
                } else {
                    format!("*a{}", level - 1)
                }
            })
            .collect();
        if flow {
            text.push_str(&format!(
                "{indent}k{level}: &a{level} [{}]\n",
                items.join(", ")
            ));
        } else {
            text.push_str(&format!("{indent}k{level}: &a{level}\n"));
            for item in items {
                text.push_str(&format!("{indent}  - {item}\n"));
            }
        }
    }
    text
}

/// Nesting `depth` levels deep, each level one of: block list, flow list, flow map, block map.
fn nesting_bomb(kinds: &[u8]) -> String {
    let mut text = String::new();
    let mut closers = String::new();
    let mut indent = 0;
    let mut in_flow = false;
    for kind in kinds {
        // Block styles cannot appear inside flow collections: once in flow, stay in flow.
        match (kind % 4, in_flow) {
            (0, false) => {
                text.push_str("- ");
                indent += 2;
            }
            (3, false) if indent < 200 => {
                text.push_str(&format!("k:\n{}", " ".repeat(indent + 2)));
                indent += 2;
            }
            (1, _) | (0, true) => {
                text.push('[');
                closers.insert(0, ']');
                in_flow = true;
            }
            _ => {
                text.push_str("{k: ");
                closers.insert(0, '}');
                in_flow = true;
            }
        }
    }
    text.push('x');
    text.push_str(&closers);
    text.push('\n');
    text
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Alias bombs of any shape, from ones that just cross a cap to ones that would expand to 10^40 nodes.
    #[test]
    fn alias_bombs_end_in_a_located_error(
        fanout in 2usize..40,
        levels in 2usize..40,
        flow in any::<bool>(),
        wrapped in any::<bool>(),
    ) {
        // Only shapes whose expansion passes a cap: fanout^levels nodes, or more alias uses than allowed.
        let expanded = (fanout as f64).powi(levels as i32);
        prop_assume!(expanded > MAX_COPIED_NODES as f64 || fanout * (levels - 1) > MAX_ALIASES);
        let text = alias_bomb(fanout, levels, flow, wrapped);
        let start = Instant::now();
        let err = load_str(Path::new("bomb.yaml"), &text, None, &no_vars).unwrap_err();
        prop_assert!(start.elapsed() < GENEROUS_BOUND);
        let msg = &err.errors[0].message;
        prop_assert!(msg.contains("MAX_COPIED_NODES") || msg.contains("MAX_ALIASES"), "{:?}", err.errors);
        let cap = if msg.contains("MAX_ALIASES") { "MAX_ALIASES" } else { "MAX_COPIED_NODES" };
        assert_refused(&text, cap);
    }

    /// Nesting bombs mixing block and flow lists and maps, from just past the cap to 20,000 levels.
    #[test]
    fn nesting_bombs_end_in_a_located_error(
        kinds in prop::collection::vec(any::<u8>(), (MAX_DEPTH + 1)..20_000),
    ) {
        assert_refused(&nesting_bomb(&kinds), "MAX_DEPTH");
    }

    /// Masking snippets never panics on any line (multi-byte whitespace, stray quotes and brackets), and never
    /// shows a masked password's value.
    #[test]
    fn masking_any_line_is_safe(line in "[a-z_:{}\\[\\], \"'#-]{0,40}|\\PC{0,40}", secret in "[A-Z]{8}") {
        let _ = mask_secret_value(&line);
        let shown = mask_secret_value(&format!("{line} {{ password: {secret} }}"));
        prop_assert!(!shown.contains(&secret) || line.contains(&secret), "{}", shown);
    }

    /// Up to the cap, the same shapes load (as YAML: the stack itself is then wrong, which is a schema error).
    #[test]
    fn nesting_within_the_cap_parses(kinds in prop::collection::vec(any::<u8>(), 1..=MAX_DEPTH)) {
        let (result, stats) = parse_with_stats(&nesting_bomb(&kinds));
        prop_assert!(result.is_ok(), "{:?}", result);
        prop_assert!(stats.max_depth <= MAX_DEPTH);
    }
}

#[test]
fn the_issues_billion_laughs_is_refused() {
    // The 397-byte file from the issue's shape: 9 levels of 9 aliases (1.9 GB and 12 s before the cap).
    let text = alias_bomb(9, 9, true, false);
    assert!(text.len() < 600, "{}", text.len());
    assert_refused(&text, "MAX_COPIED_NODES");
}

#[test]
fn the_issues_deep_block_nesting_is_refused() {
    // `- - - …` 10,000 levels, 20 KB: overflowed the stack inside the YAML parser (exit 134).
    let text = "- ".repeat(10_000) + "x\n";
    assert_refused(&text, "MAX_DEPTH");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn read_error(path: &Path) -> Diagnostics {
    read_stack_file(path).expect_err("refused")
}

#[test]
fn only_regular_files_within_the_size_cap_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "character device",
            "/dev/zero".into(),
            "not a regular file (it is a character device)",
        ),
        (
            "directory",
            dir.path().to_path_buf(),
            "not a regular file (it is a directory)",
        ),
        ("missing", dir.path().join("nope.yaml"), "cannot read"),
        (
            "too big",
            write(
                dir.path(),
                "big.yaml",
                "#".repeat(MAX_FILE_BYTES + 1).as_bytes(),
            ),
            "MAX_FILE_BYTES",
        ),
    ];
    for (name, path, expect) in cases {
        let d = read_error(&path);
        assert!(
            d.errors[0].message.contains(expect),
            "{name}: {:?}",
            d.errors
        );
        assert!(d.errors[0].hint.is_some(), "{name}");
    }

    let fifo = dir.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Must not block waiting for a writer: refused from its metadata alone.
    let d = read_error(&fifo);
    assert!(
        d.errors[0].message.contains("it is a FIFO"),
        "{:?}",
        d.errors
    );

    // Exactly at the cap is read.
    let at_cap = write(
        dir.path(),
        "cap.yaml",
        "#".repeat(MAX_FILE_BYTES).as_bytes(),
    );
    assert_eq!(read_stack_file(&at_cap).unwrap().len(), MAX_FILE_BYTES);
}

#[test]
fn invalid_utf8_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        b"stack: a\nregion: \xc3\xa9u-\xff\n",
    );
    let d = load_file(&path, Some("local"), &no_vars).unwrap_err();
    let e = &d.errors[0];
    assert!(e.message.contains("not valid UTF-8"), "{e:?}");
    assert!(e.message.contains("line 2, column 12"), "{e:?}");
    let at = e.at.unwrap();
    assert_eq!((at.line, at.col), (2, 12));
    assert!(d.to_string().contains("bad.yaml:2:12"), "{d}");
}

#[test]
fn a_typo_at_any_depth_of_another_environment_is_an_error() {
    let cases = [
        // (from, to, the error's expected fragments)
        (
            "      stats-api: { memory_mb: 512 }\n",
            "      stats-api: { memry_mb: 512 }\n",
            &["unknown field `memry_mb`", "did you mean `memory_mb`?"][..],
        ),
        (
            "    rollout: { bake_time: 10m, canary_percent: 10 }\n",
            "    rollout: { bake_tme: 10m, canary_percent: 10 }\n",
            &["unknown field `bake_tme`", "did you mean `bake_time`?"][..],
        ),
        (
            "    service: { desired_count: 3, max_count: 12 }\n",
            "    service: { desired_count: 3, max_count: lots }\n",
            &["expected a whole number, found `lots`"][..],
        ),
    ];
    for (from, to, expect) in cases {
        let text = shipped_with(from, to);
        let line = line_of(&text, to.trim());
        let err = load_str(Path::new("s.yaml"), &text, Some("local"), &no_vars).unwrap_err();
        let rendered = err.to_string();
        assert!(
            rendered.contains(&format!("s.yaml:{line}:")),
            "{to}: {rendered}"
        );
        for fragment in expect {
            assert!(rendered.contains(fragment), "{to}: {rendered}");
        }
    }
    // `${…}` in overlays is not substituted for other environments, and not mistaken for a wrong type.
    for env in ["local", "dev", "prod"] {
        load_str(Path::new("s.yaml"), &shipped(), Some(env), &no_vars)
            .unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn the_schema_describes_overlays_at_every_depth() {
    let s = schema();
    let defs = s["$defs"].as_object().unwrap();
    let overlay = &defs["EnvironmentOverlay"];
    assert_eq!(overlay["additionalProperties"], false);
    assert!(overlay["properties"].get("environments").is_none());
    assert!(overlay.get("required").is_none());
    // functions.<name> is a Function overlay: known keys only, none required.
    let f_ref = overlay["properties"]["functions"]["additionalProperties"]["$ref"]
        .as_str()
        .unwrap();
    assert_eq!(f_ref, "#/$defs/FunctionOverlay");
    let f = &defs["FunctionOverlay"];
    assert_eq!(f["additionalProperties"], false);
    assert!(f.get("required").is_none());
    assert!(f["properties"]["memory_mb"]["description"].is_string());
    // Every `$ref` reachable from an overlay points at an overlay definition that exists, and none requires keys.
    fn walk(v: &serde_json::Value, defs: &serde_json::Map<String, serde_json::Value>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    let name = r.strip_prefix("#/$defs/").unwrap();
                    assert!(name.ends_with("Overlay"), "{r}");
                    assert!(defs.contains_key(name), "{r}");
                }
                assert!(!m.contains_key("required"), "{m:?}");
                for (k, child) in m {
                    if !matches!(k.as_str(), "default" | "enum" | "const" | "examples") {
                        walk(child, defs);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, defs)),
            _ => {}
        }
    }
    walk(overlay, defs);
    for (name, def) in defs {
        if name.ends_with("Overlay") {
            walk(def, defs);
        }
    }
    // The base schema still requires what it did.
    assert!(defs["Function"]["required"].is_array());
}

#[test]
fn substituted_values_are_not_echoed_by_errors() {
    let secret = "hunter2-from-the-environment-longer-than-forty-characters";
    let vars = |name: &str| (name == "LEAKY").then(|| secret.to_string());
    let cases = [
        // (from, to, an expected fragment)
        (
            "    memory_mb: 512\n",
            "    memory_mb: ${LEAKY}\n",
            "found `${LEAKY}`",
        ),
        ("    timeout: 10s\n", "    timeout: ${LEAKY}\n", "${LEAKY}"),
        (
            "  strategy: canary\n",
            "  strategy: ${LEAKY}\n",
            "found `${LEAKY}`",
        ),
        (
            "    - ${STATS_URL:-https://stats.example.com}/matches/1/stats\n",
            "    - ${LEAKY}\n",
            "${LEAKY}",
        ),
    ];
    for (from, to, expect) in cases {
        let text = shipped_with(from, to);
        let err = load_str(Path::new("s.yaml"), &text, Some("prod"), &vars).unwrap_err();
        let rendered = err.to_string();
        let json = serde_json::to_string(&err).unwrap();
        assert!(!rendered.contains("hunter2"), "{to}: {rendered}");
        assert!(!json.contains("hunter2"), "{to}: {json}");
        assert!(rendered.contains(expect), "{to}: {rendered}");
    }
}

#[test]
fn a_password_in_a_flow_map_is_masked_in_the_snippet() {
    let text = shipped_with(
        "  master_username: stats_admin\n",
        "  master_username: stats_admin\n  sql: { host: db, user: u, password: hunter2 }\n",
    );
    let err = load_str(Path::new("s.yaml"), &text, Some("prod"), &no_vars).unwrap_err();
    let rendered = err.to_string();
    assert!(rendered.contains("unknown field `password`"), "{rendered}");
    assert!(rendered.contains("password: ********"), "{rendered}");
    assert!(!rendered.contains("hunter2"), "{rendered}");
}

#[test]
fn no_part_of_a_substituted_duration_is_echoed() {
    // The parse error quoted the unit it did not know (`Hunter2zz`), which the whole-value replacement missed.
    for value in [
        "5Hunter2zz",
        "Hunter2zz",
        "5 Hunter2zz",
        "1.5.5Hunter2s",
        "'Hunter2zz'",
        "\"5Hunter2zz\"",
        "15s Hunter2zz",
        "99Hunter2zz9",
    ] {
        let vars = |name: &str| (name == "X").then(|| value.to_string());
        let text = shipped_with("    timeout: 10s\n", "    timeout: ${X}\n");
        let err = load_str(Path::new("s.yaml"), &text, Some("prod"), &vars).unwrap_err();
        let rendered = err.to_string();
        let json = serde_json::to_string(&err).unwrap();
        for shown in [&rendered, &json] {
            assert!(!shown.contains("Hunter2"), "{value}: {shown}");
            assert!(shown.contains("`${X}`"), "{value}: {shown}");
            assert!(shown.contains("15s"), "{value}: the expected form: {shown}");
        }
        assert!(rendered.contains("invalid duration"), "{value}: {rendered}");
    }
}

/// A secret value on lines of its own: folded and literal block scalars, and an explicit `? key` / `: value`.
const MULTI_LINE_SECRETS: &[(&str, &str)] = &[
    ("folded", "      DB_PASSWORD: >-\n        Hunter2c\n"),
    (
        "literal",
        "      DB_PASSWORD: |\n        Hunter2c\n        Hunter2d\n",
    ),
    ("explicit key", "      ? DB_PASSWORD\n      : Hunter2c\n"),
    (
        "explicit key, folded",
        "      ? DB_PASSWORD\n      : >-\n        Hunter2c\n",
    ),
];

#[test]
fn a_multi_line_secret_is_located_at_its_key_and_never_shown() {
    for (form, lines) in MULTI_LINE_SECRETS {
        let text = shipped_with(
            "      LOG_LEVEL: info\n",
            &format!("      LOG_LEVEL: info\n{lines}"),
        );
        let err = load_str(Path::new("s.yaml"), &text, Some("prod"), &no_vars).unwrap_err();
        let rendered = err.to_string();
        let json = serde_json::to_string(&err).unwrap();
        assert!(!rendered.contains("Hunter2"), "{form}: {rendered}");
        assert!(!json.contains("Hunter2"), "{form}: {json}");
        assert!(
            rendered.contains("`DB_PASSWORD` names a secret"),
            "{form}: {rendered}"
        );
        let key_line = line_of(&text, "DB_PASSWORD");
        assert!(
            rendered.contains(&format!("s.yaml:{key_line}:")),
            "{form}: {rendered}"
        );
    }
}

#[test]
fn an_error_below_a_secret_key_shows_no_line_of_its_value() {
    // A list where a string belongs: the type error points at the list, a line the key is not on.
    for lines in [
        "      DB_PASSWORD:\n        - Hunter2c\n",
        "      API_TOKEN:\n        - Hunter2c\n",
    ] {
        let text = shipped_with(
            "      LOG_LEVEL: info\n",
            &format!("      LOG_LEVEL: info\n{lines}"),
        );
        let err = load_str(Path::new("s.yaml"), &text, Some("prod"), &no_vars).unwrap_err();
        let rendered = err.to_string();
        assert!(!rendered.contains("Hunter2"), "{lines}: {rendered}");
        assert!(rendered.contains("********"), "{lines}: {rendered}");
    }
}
