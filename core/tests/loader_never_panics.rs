//! Property tests: whatever the input, the loader returns a stack or located errors — it never panics, and every
//! error that has a location points inside the file.

use std::path::Path;

use proptest::prelude::*;
use statsctl_core::loader::load_str;

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml"))
        .unwrap()
}

fn no_vars(_: &str) -> Option<String> {
    None
}

fn check(text: &str, env: Option<&str>) {
    match load_str(Path::new("fuzz.yaml"), text, env, &no_vars) {
        Ok(_) => {}
        Err(d) => {
            assert!(!d.errors.is_empty(), "an Err carries at least one error");
            let lines = text.lines().count().max(1);
            for e in &d.errors {
                if let Some(at) = e.at {
                    assert!(
                        at.line >= 1 && at.line <= lines + 1,
                        "line {} outside a {lines}-line file: {e:?}",
                        at.line
                    );
                    assert!(at.col >= 1, "{e:?}");
                }
            }
            // Rendering must not panic either (snippets, carets on multi-byte lines).
            let _ = d.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// Arbitrary text, including YAML punctuation and multi-byte characters.
    #[test]
    fn arbitrary_text(text in "[a-z_:{}\\[\\], \\n\\t\"'$&*!|>#-é0-9]{0,200}") {
        check(&text, None);
        check(&text, Some("local"));
    }

    /// The shipped file with one byte range deleted: near-valid input exercises the deep validation paths.
    #[test]
    fn shipped_file_with_a_hole(start in 0usize..6000, len in 1usize..40) {
        let text = shipped();
        let start = start.min(text.len());
        let end = (start + len).min(text.len());
        if text.is_char_boundary(start) && text.is_char_boundary(end) {
            let mutated = format!("{}{}", &text[..start], &text[end..]);
            for env in ["local", "dev", "prod"] {
                check(&mutated, Some(env));
            }
        }
    }

    /// The shipped file with one scalar replaced by a hostile value.
    #[test]
    fn shipped_file_with_a_bad_value(line in 0usize..160, value in prop_oneof![
        Just("-1".to_string()), Just("0".to_string()), Just("99999999999999999999999".to_string()),
        Just("~".to_string()), Just("[]".to_string()), Just("{}".to_string()), Just("1e309".to_string()),
        Just("\"\"".to_string()), Just("${UNSET}".to_string()), Just("-5ms".to_string()), Just("NaN".to_string()),
        Just("0.000001".to_string()), Just("ü".to_string()),
    ]) {
        let text = shipped();
        let lines: Vec<&str> = text.lines().collect();
        let i = line % lines.len();
        if let Some((key, _)) = lines[i].split_once(": ") {
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[i] = format!("{key}: {value}");
            let mutated = out.join("\n");
            for env in ["local", "dev", "prod"] {
                check(&mutated, Some(env));
            }
        }
    }
}
