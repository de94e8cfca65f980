//! The command line's own surface, with no AWS behind it: duration flags, exit codes, a closed stdout, help,
//! completions, the man page and `--version`.

mod harness;

use harness::{run, statsctl};

/// Every duration flag reads the stack file's grammar: an absurd or malformed value is exit 1 with the reason
/// and a hint, before anything runs (no AWS endpoint is even set) — never a panic.
#[test]
fn absurd_or_malformed_durations_are_input_errors_not_panics() {
    for (args, want) in [
        (
            &["loadtest", "--max-duration", "99999999999999999999h"][..],
            "is longer than 365d",
        ),
        (
            &["loadtest", "--timeout", "366d"][..],
            "is longer than 365d",
        ),
        (&["loadtest", "--ramp", "30s1m"][..], "largest first"),
        (&["loadtest", "--hold", "90"][..], "`90` has no unit"),
        (
            &["--aws-call-timeout", "1e400s", "plan"][..],
            "unknown unit `e`",
        ),
    ] {
        let mut c = statsctl();
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
        assert!(r.stderr.contains("hint: "), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
}
