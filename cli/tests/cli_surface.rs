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

/// `statsctl … | head -1`: the reader closes the pipe before statsctl has written; statsctl stops quietly with
/// exit 0 — no "Broken pipe" error or panic. The read end is closed before the child writes anything, so every
/// write fails, however much output there is and however busy the machine.
#[test]
fn a_closed_stdout_exits_0_quietly() {
    for args in [
        &["schema"][..],
        &["validate", "--output", "json"][..],
        &["validate"][..],
        &["validate", "--env", "local"][..],
        &["validate", "--env", "local", "--output", "json"][..],
    ] {
        let mut c = statsctl();
        c.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn statsctl");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for statsctl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("broken pipe"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

/// Usage errors are exit 1 (2 means "attention"), with clap's message on stderr; `--help` is exit 0 on stdout.
#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    for (args, code, stderr_has) in [
        (
            &["preflight", "--bogus"][..],
            1,
            "error: unexpected argument '--bogus'",
        ),
        (
            &["no-such-command"][..],
            1,
            "error: unrecognized subcommand",
        ),
        // No command at all: the help, on stderr, as a usage error.
        (&[][..], 1, "Usage: statsctl"),
        (&["--help"][..], 0, ""),
        (&["plan", "--help"][..], 0, ""),
    ] {
        let mut c = statsctl();
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        if code == 1 {
            assert!(r.stderr.contains(stderr_has), "{args:?}: {r:?}");
            assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        } else {
            assert!(r.stdout.contains("Usage: statsctl"), "{args:?}: {r:?}");
        }
    }
}
