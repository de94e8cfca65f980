//! `statsctl loadtest` against a local HTTP server the test starts, recorded in the ledger (an S3 bucket in the
//! emulator), and read back by preflight's `loadtest.passed`.

mod harness;

use std::time::Duration;

use harness::*;

fn loadtest(env: &LocalAws, server: &TestServer, extra: &[&str]) -> Run {
    let url = server.url();
    let mut args = vec![
        "loadtest",
        "--target",
        url.as_str(),
        "--stages",
        "ramp:240:1s,hold:240:3s",
        "--viewers",
        "240",
        "--arrival",
        "uniform",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn loadtest_finding(env: &LocalAws) -> serde_json::Value {
    let r = env.run(&["preflight", "--only", "loadtest.passed", "--output", "json"]);
    r.json()["findings"][0].clone()
}

#[test]
fn a_passing_load_test_turns_preflight_green_until_something_new_is_deployed() {
    let env = LocalAws::start();
    env.deploy();
    assert!(loadtest_finding(&env)["summary"]
        .as_str()
        .unwrap()
        .contains("no load test recorded"));

    // Only a run against the stack's own target counts: the local stack's is on STATSCTL_SERVICE_PORT.
    let server = TestServer::start(Duration::from_millis(2), false);
    let port = server.port.to_string();
    let vars = [("STATSCTL_SERVICE_PORT", port.as_str())];
    let finding = || {
        let r = env.run_with(
            &["preflight", "--only", "loadtest.passed", "--output", "json"],
            &vars,
        );
        r.json()["findings"][0].clone()
    };
    // The audience preflight requires: 200 × headroom 1.2 = 240 held for min_hold (5s), spiking × 3 and holding
    // the spike for one poll interval (5s).
    let r = env.run_with(
        &[
            "loadtest",
            "--stages",
            "ramp:240:1s,hold:240:5s,spike:720:1s,hold:720:5s",
            "--arrival",
            "uniform",
            "--output",
            "json",
        ],
        &vars,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let j = r.json();
    assert_eq!(j["verdict"]["passed"], true, "{j}");
    // 240 viewers polling every 5 s for ~6 s, then 720 for ~6 s: roughly 1,200 requests, all answered.
    let ok = j["result"]["ok"].as_u64().unwrap();
    assert!((700..=1800).contains(&ok), "{ok}");
    assert_eq!(j["result"]["failed"], 0);
    assert!(
        j["recorded"]
            .as_str()
            .unwrap()
            .starts_with("loadtests/local/"),
        "{j}"
    );

    let f = finding();
    assert_eq!(f["status"], "pass", "{f}");
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains("passed at 240 viewers"),
        "{f}"
    );

    // A new version of stats-api: the recorded test no longer proves what is deployed.
    block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&sdk_config(&env).await);
        let mut vars = function_environment(&lambda, "live-stats-local-stats-api").await;
        vars.insert("LOG_LEVEL".into(), "debug".into());
        set_function_environment(&lambda, "live-stats-local-stats-api", vars).await;
    });
    env.deploy();
    let f = finding();
    assert_eq!(f["status"], "fail", "{f}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("deployed since the newest test: live-stats-local-stats-api"),
        "{f}"
    );
}

#[test]
fn failing_server_fails_the_verdict_and_records_it() {
    let env = LocalAws::start();
    env.deploy();
    let server = TestServer::start(Duration::ZERO, true);
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.svg");
    let r = loadtest(&env, &server, &["--chart", chart.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    let j = r.json();
    assert_eq!(j["verdict"]["passed"], false);
    assert!(
        j["verdict"]["violations"][0]
            .as_str()
            .unwrap()
            .starts_with("error rate"),
        "{j}"
    );
    assert!(j["result"]["errors"]["status_503"].as_u64().unwrap() > 0);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("p99 latency"));
    // Recorded as failed: preflight says so.
    let f = loadtest_finding(&env);
    assert_eq!(f["status"], "fail");
    assert!(
        f["evidence"]
            .to_string()
            .contains("the newest load test failed its thresholds"),
        "{f}"
    );
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let env = LocalAws::start();
    for (args, want) in [
        (
            vec!["loadtest", "--target", "ftp://example.com/", "--no-record"],
            "only http:// and https:// targets",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--stages",
                "jump:1:1s",
                "--no-record",
            ],
            "unknown kind `jump`",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--arrival",
                "bursty",
                "--no-record",
            ],
            "is not `uniform` or `waves:COUNT:SPREAD`",
        ),
        (
            vec![
                "loadtest",
                "--target",
                "http://127.0.0.1:1/",
                "--arrival",
                "waves:x:1s",
                "--no-record",
            ],
            "`x` is not a wave count",
        ),
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {r:?}");
    }
}

#[test]
fn a_pool_queues_polls_and_the_wait_shows_in_latency() {
    let env = LocalAws::start();
    // 50 ms a request; 120 viewers poll in one wave. On their own connections they are answered in parallel; a
    // pool of one connection per worker answers them one after another (6 s on one core: hence the timeout),
    // and the wait is measured from the schedule.
    let server = TestServer::start(Duration::from_millis(50), false);
    let url = server.url();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "loadtest",
            "--target",
            url.as_str(),
            "--stages",
            "hold:120:1s",
            "--viewers",
            "120",
            "--arrival",
            "waves:1:10ms",
            "--timeout",
            "20s",
            "--no-record",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let r = env.run(&args);
        // 0 or 2: the queue may well break the stack's latency thresholds.
        assert!(r.code == 0 || r.code == 2, "{r:?}");
        let j = r.json();
        assert_eq!(j["verdict"]["passed"], r.code == 0, "{j}");
        assert_eq!(j["result"]["failed"], 0, "{j}");
        assert_eq!(j["result"]["ok"], 120, "{j}");
        j["result"]["latency_ms"]["p99"].as_f64().unwrap()
    };
    let own = run(&[]);
    let pooled = run(&["--pool", "1"]);
    eprintln!(
        "p99: {own} ms on their own connections, {pooled} ms through a pool of one per worker"
    );
    assert!(
        pooled > 3.0 * own,
        "pooled p99 {pooled} ms vs {own} ms on the viewers' own connections"
    );
}

/// A raw HTTP/1.1 server on 127.0.0.1: every other request is answered with a chunk size of `ffffffffffffffff`
/// (which overflowed the load generator's arithmetic and lost the request with its panicking task), the others
/// with 200. One thread per connection; the threads end with the test process.
fn broken_chunk_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = broken.clone();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (hits, broken) = (hits.clone(), counter.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    let n = hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let answer: &[u8] = if n % 2 == 1 {
                        broken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{\"score\":\"1:0\"}\r\n0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"score\":\"1:0\"}"
                    };
                    if stream.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, broken)
}

/// `--output json` of `statsctl loadtest` against `url` (40 viewers for 4 s), without recording.
fn loadtest_url(env: &LocalAws, url: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "loadtest",
        "--target",
        url,
        "--stages",
        "hold:40:4s",
        "--viewers",
        "40",
        "--arrival",
        "uniform",
        "--no-record",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

#[test]
fn a_server_answering_half_the_requests_with_a_broken_chunk_size_fails_with_them_counted() {
    let env = LocalAws::start();
    let (port, broken) = broken_chunk_server();
    let r = loadtest_url(
        &env,
        &format!("http://127.0.0.1:{port}/matches/1/stats"),
        &[],
    );
    assert_eq!(r.code, 2, "{r:?}");
    let j = r.json();
    let res = &j["result"];
    let n = |k: &str| res[k].as_u64().unwrap();
    // Every scheduled request is in exactly one bucket: none lost with a panicking task.
    assert_eq!(n("scheduled"), n("ok") + n("failed") + n("late"), "{res}");
    let too_large = res["errors"]["body_too_large"].as_u64().unwrap_or(0);
    assert_eq!(
        too_large,
        broken.load(std::sync::atomic::Ordering::SeqCst),
        "each broken answer counted once: {res}"
    );
    assert!(too_large >= 10 && n("ok") >= 10, "{res}");
    assert_eq!(n("failed"), too_large, "{res}");
    assert_eq!(j["verdict"]["passed"], false);
    assert!(
        j["verdict"]["violations"][0]
            .as_str()
            .unwrap()
            .starts_with("error rate"),
        "{j}"
    );
}

/// A self-signed certificate for 127.0.0.1, made by `openssl` in `dir`, and a TLS server with it that answers
/// every GET with 200 on keep-alive connections (one thread per connection, ending with the test process).
fn self_signed_https_server(dir: &std::path::Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{Read, Write};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make a test certificate (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, PrivateKeyDer::from_pem_file(&key).unwrap())
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match tls.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    let answer =
                        b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"score\":\"1:0\"}";
                    if tls.write_all(answer).and_then(|_| tls.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn an_https_target_with_a_self_signed_certificate_fails_unless_insecure() {
    let env = LocalAws::start();
    let dir = tempfile::tempdir().unwrap();
    let port = self_signed_https_server(dir.path());
    let url = format!("https://127.0.0.1:{port}/matches/1/stats");

    // Verified: the certificate is refused, and every request is counted as a TLS certificate error.
    let r = loadtest_url(&env, &url, &[]);
    assert_eq!(r.code, 2, "{r:?}");
    let j = r.json();
    let res = &j["result"];
    assert_eq!(res["ok"], 0, "{res}");
    let scheduled = res["scheduled"].as_u64().unwrap();
    assert!(scheduled > 0, "{res}");
    assert_eq!(res["errors"]["tls_certificate"], scheduled, "{res}");
    assert_eq!(res["failed"], scheduled, "{res}");

    // --insecure: the same server, the same load, passes.
    let r = loadtest_url(&env, &url, &["--insecure"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("--insecure: certificates of https:// targets are not verified"),
        "{r:?}"
    );
    let j = r.json();
    let res = &j["result"];
    assert_eq!(j["verdict"]["passed"], true, "{j}");
    assert_eq!(res["failed"], 0, "{res}");
    assert_eq!(res["ok"], res["scheduled"], "{res}");
    assert!(res["ok"].as_u64().unwrap() > 0, "{res}");
}
