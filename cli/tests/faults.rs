//! AWS misbehaving, against the real binary: an endpoint that accepts connections and never answers, one that
//! answers 5xx with an HTML page, 403 AccessDenied or Throttling, one that refuses connections, and no
//! credentials at all.
//! Each command must end by itself with exit 1, one line naming the call, a hint for the cause, and (for a
//! deploy) its lock released. The peers are tiny servers inside the test, on 127.0.0.1 and free ports.

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;

/// Far above any timeout these tests configure, far below nextest's kill: a command still running then hangs.
const HANG: Duration = Duration::from_secs(60);

/// A peer on 127.0.0.1 that accepts connections and keeps them open without a byte in reply (what a paused
/// emulator or a blackholed endpoint looks like), or answers every request with one canned response.
struct Peer {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Peer {
    fn silent() -> Peer {
        Peer::start(None)
    }

    fn answering(status: &str, headers: &str, body: &str) -> Peer {
        let response = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        Peer::start(Some(response))
    }

    fn start(response: Option<String>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        // Open connections are kept here so they stay unanswered (the test process ends them).
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                match &response {
                    None => held.lock().unwrap().push(conn),
                    Some(r) => {
                        let r = r.clone();
                        std::thread::spawn(move || answer(conn, &r));
                    }
                }
            }
        });
        Peer { port, accepted }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads one request (headers and a Content-Length body) and sends `response`.
fn answer(conn: TcpStream, response: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let _ = (&conn).write_all(response.as_bytes());
}

/// `statsctl --env local` with dummy credentials, its own lock directory, and AWS pointed at `endpoint`.
fn statsctl_at(endpoint: &str, locks: &Path) -> Command {
    let mut c = statsctl();
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("STATSCTL_LOCK_DIR", locks)
        .env_remove("STATSCTL_AWS_CALL_TIMEOUT")
        .env_remove("STATSCTL_AWS_ATTEMPT_TIMEOUT")
        .env_remove("STATSCTL_AWS_CONNECT_TIMEOUT")
        .args(["--env", "local", "--endpoint-url", endpoint]);
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().expect("start statsctl")
}

/// Waits for `child` at most `HANG`; a command still running then is killed and the test fails.
fn finish(mut child: Child) -> Run {
    let deadline = Instant::now() + HANG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "statsctl still running after {HANG:?}: it hangs\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run_bounded(c: Command) -> Run {
    finish(spawn(c))
}

/// The error is one `error:` line and one hint line, with none of the SDK's debug formatting.
fn assert_one_clean_line(r: &Run) {
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{r:?}");
    for debug in [
        "SdkError",
        "ServiceError {",
        "DispatchFailure",
        "TimeoutError {",
        "ConnectorError",
        "Unhandled",
        "source:",
        "raw: Response",
    ] {
        assert!(!r.stderr.contains(debug), "debug text `{debug}` in {r:?}");
    }
    assert!(r.stderr.contains("\n  (hint: "), "{r:?}");
}

/// True when the deploy lock of live-stats/local is free: taking it without waiting succeeds.
fn lock_is_free(locks: &Path) -> bool {
    let path: PathBuf = locks.join("live-stats-local.lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap();
    let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if got {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    got
}

#[test]
fn plan_against_a_silent_endpoint_ends_with_the_configured_timeout_naming_the_call() {
    let peer = Peer::silent();
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&peer.url(), dir.path());
    c.args(["--aws-call-timeout", "2s", "plan"]);
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(peer.accepted() >= 1, "the request reached the silent peer");
    assert!(
        r.stderr.contains(
            "error: failed to identify the AWS account (sts:GetCallerIdentity): timed out after 2s"
        ),
        "{r:?}"
    );
    assert!(r.stderr.contains("--aws-call-timeout"), "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("{} accepted the request", peer.url())),
        "{r:?}"
    );
    assert_one_clean_line(&r);

    // The same bound from the environment, for CI.
    let mut c = statsctl_at(&peer.url(), dir.path());
    c.env("STATSCTL_AWS_CALL_TIMEOUT", "1500ms").arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("timed out after 1.5s"), "{r:?}");
}

#[test]
fn a_deploy_that_times_out_releases_its_lock() {
    let peer = Peer::silent();
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path();
    let mut c = statsctl_at(&peer.url(), locks);
    c.args(["--aws-call-timeout", "3s", "deploy"]);
    let hung = spawn(c);

    // The deploy takes its lock before its first AWS call: once the peer has a connection, it is held.
    let deadline = Instant::now() + HANG;
    while peer.accepted() == 0 {
        assert!(Instant::now() < deadline, "deploy never called AWS");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!lock_is_free(locks), "a running deploy holds its lock");

    let r = finish(hung);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("timed out after 3s"), "{r:?}");
    assert_one_clean_line(&r);
    assert!(
        lock_is_free(locks),
        "the lock is released when deploy fails"
    );

    // The next deploy gets past the lock at once and fails on AWS, not on "another statsctl is changing".
    let mut c = statsctl_at(&peer.url(), locks);
    c.args(["--aws-call-timeout", "1s", "deploy"]);
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("another statsctl"), "{r:?}");
    assert!(r.stderr.contains("timed out after 1s"), "{r:?}");
}

#[test]
fn a_5xx_with_an_html_body_is_a_one_line_server_error() {
    let peer = Peer::answering(
        "500 Internal Server Error",
        "Content-Type: text/html\r\n",
        "<html>oops",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&peer.url(), dir.path());
    c.arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "error: failed to identify the AWS account (sts:GetCallerIdentity): answered HTTP 500 with no AWS \
             error code: \"<html>oops\""
        ),
        "{r:?}"
    );
    assert!(r.stderr.contains("failure on the server's side"), "{r:?}");
    assert!(!r.stderr.contains("could not be reached"), "{r:?}");
    assert!(peer.accepted() > 1, "a 5xx is retried");
    assert_one_clean_line(&r);
}

#[test]
fn access_denied_names_the_permission() {
    let peer = Peer::answering(
        "403 Forbidden",
        "Content-Type: text/xml\r\n",
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
         arn:aws:iam::123456789012:user/ci is not authorized to perform: sts:GetCallerIdentity</Message>\
         </Error><RequestId>4d0c</RequestId></ErrorResponse>",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&peer.url(), dir.path());
    c.arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "answered HTTP 403 AccessDenied: User: arn:aws:iam::123456789012:user/ci is not authorized to \
             perform: sts:GetCallerIdentity"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("lack permission for `sts:GetCallerIdentity`"),
        "{r:?}"
    );
    assert_one_clean_line(&r);
}

#[test]
fn throttling_says_the_retries_did_not_get_through() {
    let peer = Peer::answering(
        "400 Bad Request",
        "Content-Type: text/xml\r\n",
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>\
         </Error><RequestId>4d0c</RequestId></ErrorResponse>",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&peer.url(), dir.path());
    c.arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("answered HTTP 400 Throttling: Rate exceeded (3 attempts)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("2 retries did not get through"), "{r:?}");
    assert_eq!(peer.accepted(), 3, "the SDK retried twice");
    assert_one_clean_line(&r);
}

#[test]
fn a_refused_connection_says_nothing_answered_there() {
    // A port that was free a moment ago: nothing listens, so connecting is refused.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&url, dir.path());
    c.arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&format!("could not reach {url}")),
        "{r:?}"
    );
    assert!(
        r.stderr.contains(&format!("nothing answered at {url}")),
        "{r:?}"
    );
    assert!(r.stderr.contains("statsctl local up"), "{r:?}");
    assert_one_clean_line(&r);
}

#[test]
fn no_credentials_says_how_to_set_them_and_sends_nothing() {
    let peer = Peer::silent();
    let dir = tempfile::tempdir().unwrap();
    let mut c = statsctl_at(&peer.url(), dir.path());
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        c.env_remove(var);
    }
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        dir.path().join("no-credentials"),
    )
    .env("AWS_CONFIG_FILE", dir.path().join("no-config"))
    .env("HOME", dir.path())
    .arg("plan");
    let r = run_bounded(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("was not sent: no AWS credentials found"),
        "{r:?}"
    );
    assert!(r.stderr.contains("AWS_PROFILE"), "{r:?}");
    assert!(r.stderr.contains("AWS_ACCESS_KEY_ID"), "{r:?}");
    assert_eq!(peer.accepted(), 0, "nothing is sent without credentials");
    assert_one_clean_line(&r);
}

#[test]
fn bad_timeouts_are_input_errors_and_send_nothing() {
    let peer = Peer::silent();
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            &["--aws-call-timeout", "0s"][..],
            "--aws-call-timeout must be longer than 0s",
        ),
        (
            &["--aws-attempt-timeout", "20s", "--aws-call-timeout", "5s"][..],
            "--aws-attempt-timeout 20s is longer than --aws-call-timeout 5s",
        ),
        (&["--aws-call-timeout", "5"][..], "`5` has no unit"),
    ] {
        let mut c = statsctl_at(&peer.url(), dir.path());
        c.args(args).arg("plan");
        let r = run_bounded(c);
        assert_eq!(r.code, 1, "bad input is exit 1: {r:?}");
        assert!(r.stderr.contains(want), "{r:?}");
    }
    assert_eq!(peer.accepted(), 0);
}

#[test]
fn a_malformed_endpoint_is_an_input_error_that_hides_passwords() {
    let dir = tempfile::tempdir().unwrap();
    for (url, want) in [
        ("notaurl", "has no `http://`"),
        ("http://127.0.0.1:", "no valid port"),
        ("http://me:s3cret@127.0.0.1:4566", "holds user info"),
    ] {
        let mut c = statsctl_at(url, dir.path());
        c.arg("plan");
        let r = run_bounded(c);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr
                .contains("error: bad AWS endpoint from --endpoint-url"),
            "{r:?}"
        );
        assert!(r.stderr.contains(want), "{r:?}");
        assert!(!r.stderr.contains("s3cret"), "{r:?}");
        assert!(
            !r.stderr.contains("reading live-stats"),
            "nothing was sent: {r:?}"
        );
    }
}
