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

/// A stand-in for AWS that answers every request with HTTP 500 and closes; serves until the test ends.
fn failing_aws() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0).min(1 << 20);
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = reader.get_mut().write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    url
}

/// `-v` does what `--help` says: one stderr line per AWS call with its name, duration and outcome; `-vv` adds
/// the endpoint, HTTP status and attempts. The secret key is never printed; without `-v`, no trace lines.
#[test]
fn verbose_traces_aws_calls_without_secrets() {
    const SECRET: &str = "wJalrXUtnFEMI-not-a-real-secret-7f3a";
    let url = failing_aws();
    let locks = tempfile::tempdir().unwrap();
    let plan = |flags: &[&str]| {
        let mut c = statsctl();
        c.env("AWS_ACCESS_KEY_ID", "AKIDTRACETEST")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("STATSCTL_LOCK_DIR", locks.path())
            .args(["--env", "local", "--endpoint-url", &url])
            .args(["--aws-call-timeout", "20s", "--aws-attempt-timeout", "5s"])
            .args(flags)
            .arg("plan");
        run(c)
    };
    let traced = |r: &harness::Run| -> Vec<String> {
        r.stderr
            .lines()
            .filter(|l| l.starts_with("aws "))
            .map(str::to_string)
            .collect()
    };

    let quiet = plan(&[]);
    assert_eq!(quiet.code, 1, "{quiet:?}");
    assert!(traced(&quiet).is_empty(), "{quiet:?}");

    let v = plan(&["-v"]);
    assert_eq!(v.code, 1, "{v:?}");
    let lines = traced(&v);
    assert!(!lines.is_empty(), "{v:?}");
    for l in &lines {
        // `aws service:Operation <n>ms failed`
        let words: Vec<&str> = l.split(' ').collect();
        assert_eq!(words.len(), 4, "{l}");
        assert!(words[1].contains(':'), "{l}");
        assert!(words[2].ends_with("ms"), "{l}");
        assert!(
            words[2].trim_end_matches("ms").parse::<u64>().is_ok(),
            "{l}"
        );
        assert_eq!(words[3], "failed", "{l}");
    }

    let vv = plan(&["-vv"]);
    assert_eq!(vv.code, 1, "{vv:?}");
    let lines = traced(&vv);
    assert!(!lines.is_empty(), "{vv:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("(endpoint {url}, HTTP 500, "))),
        "{vv:?}"
    );
    for r in [&quiet, &v, &vv] {
        assert!(!r.stderr.contains(SECRET), "{r:?}");
        assert!(!r.stdout.contains(SECRET), "{r:?}");
    }
}

/// The text of `section:` in a help output: its lines up to the next blank line.
fn help_section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        // A section ends at the next heading (an unindented line); long help (`--help` when some flag has a
        // paragraph of its own) puts blank lines between flags, so a blank line does not end it.
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// Global flags have their own heading in the help of statsctl and of every command, apart from the command's
/// own options.
#[test]
fn global_flags_have_their_own_heading_in_help() {
    for args in [
        &["--help"][..],
        &["plan", "--help"][..],
        &["loadtest", "--help"][..],
        &["local", "up", "--help"][..],
    ] {
        let mut c = statsctl();
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let global = help_section(&r.stdout, "Global options:").join("\n");
        for flag in [
            "--stack <STACK>",
            "--env <ENV>",
            "--profile <PROFILE>",
            "--region <REGION>",
            "--endpoint-url <ENDPOINT_URL>",
            "--output <OUTPUT>",
            "-v, --verbose",
        ] {
            assert!(global.contains(flag), "{args:?}: {flag} in\n{}", r.stdout);
        }
        let own = help_section(&r.stdout, "Options:").join("\n");
        assert!(!own.contains("--stack"), "{args:?}:\n{}", r.stdout);
        assert!(own.contains("-h, --help"), "{args:?}:\n{}", r.stdout);
    }
    let mut c = statsctl();
    c.args(["loadtest", "--help"]);
    let r = run(c);
    let own = help_section(&r.stdout, "Options:").join("\n");
    assert!(own.contains("--max-duration"), "{}", r.stdout);
}

/// Completion scripts and the man page are generated from the command definition: they know the commands.
#[test]
fn completions_and_man_page_know_the_commands() {
    for (args, wants) in [
        (
            &["completions", "bash"][..],
            &["_statsctl()", "preflight", "--max-duration", "complete -F"][..],
        ),
        (
            &["completions", "zsh"][..],
            &["#compdef statsctl", "preflight"][..],
        ),
        (
            &["completions", "fish"][..],
            &["complete -c statsctl", "preflight"][..],
        ),
        (&["man"][..], &[".TH statsctl", "preflight", "loadtest"][..]),
    ] {
        let mut c = statsctl();
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{args:?}: {r:?}");
        for want in wants {
            assert!(
                r.stdout.contains(want),
                "{args:?}: no {want} in\n{}",
                r.stdout
            );
        }
    }
    let mut c = statsctl();
    c.args(["completions", "tcsh"]);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("[possible values: bash, zsh, fish]"),
        "{r:?}"
    );
}

/// `--version` names the commit: `statsctl 0.1.0 (<12 hex digits>)`, or `(unknown)` when built without git;
/// every command's `--version` too.
#[test]
fn version_includes_the_git_commit() {
    for (args, name) in [
        (&["--version"][..], "statsctl"),
        (&["-V"][..], "statsctl"),
        (&["plan", "--version"][..], "statsctl-plan"),
    ] {
        let mut c = statsctl();
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        let line = r.stdout.trim_end();
        let prefix = format!("{name} {} (", env!("CARGO_PKG_VERSION"));
        let commit = line
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{args:?}: {line:?}"));
        assert!(
            commit == "unknown"
                || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
            "{args:?}: {line:?}"
        );
    }
}

/// The stack file reads durations in the same grammar as the flags: compound values are accepted, and a bad one
/// is a located error with the same hint.
#[test]
fn stack_file_durations_share_the_grammar_and_its_hint() {
    let shipped = std::fs::read_to_string(harness::shipped_stack()).unwrap();
    let line = "  connection_borrow_timeout: 30s\n";
    assert_eq!(
        shipped.matches(line).count(),
        1,
        "the shipped stack changed"
    );
    let dir = tempfile::tempdir().unwrap();
    let validate = |value: &str, output: &str| {
        let path = dir.path().join("stack.yaml");
        let text = shipped.replacen(line, &format!("  connection_borrow_timeout: {value}\n"), 1);
        std::fs::write(&path, text).unwrap();
        let mut c = statsctl();
        c.arg("validate")
            .arg("--stack")
            .arg(&path)
            .args(["--env", "local", "--output", output]);
        run(c)
    };
    let good = validate("1m30s", "json");
    assert_eq!(good.code, 0, "{good:?}");
    assert_eq!(
        good.json()["stack"]["proxy"]["connection_borrow_timeout"],
        "90s",
        "{good:?}"
    );
    let bad = validate("30s1m", "human");
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr
            .contains("`m` comes after a smaller or the same unit"),
        "{bad:?}"
    );
    assert!(
        bad.stderr.contains("hint: write a number and a unit"),
        "{bad:?}"
    );
}
