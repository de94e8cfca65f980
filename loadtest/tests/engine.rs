//! The engine against a local HTTP server this test starts, with injectable latency, errors and serialisation.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use statsctl_loadtest::{run, verdict, Arrival, Profile, Stage, Target, Thresholds};

#[derive(Clone, Default)]
struct Behaviour {
    delay: Duration,
    /// Every n-th request answers 503 (0: never).
    fail_every: u64,
    /// One request at a time (a server stuck on a lock).
    serialise: bool,
}

struct Server {
    port: u16,
    hits: Arc<AtomicU64>,
    /// Connections accepted.
    conns: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
    _thread: std::thread::JoinHandle<()>,
}

fn serve(b: Behaviour) -> Server {
    let hits = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicU64::new(0));
    let accepted = conns.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let counter = hits.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let lock = Arc::new(tokio::sync::Mutex::new(()));
            let accept = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let b = b.clone();
                    let counter = counter.clone();
                    let lock = lock.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |_req| {
                            let b = b.clone();
                            let counter = counter.clone();
                            let lock = lock.clone();
                            async move {
                                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                                let _guard = if b.serialise {
                                    Some(lock.lock().await)
                                } else {
                                    None
                                };
                                if !b.delay.is_zero() {
                                    tokio::time::sleep(b.delay).await;
                                }
                                let status = if b.fail_every > 0 && n.is_multiple_of(b.fail_every) {
                                    503
                                } else {
                                    200
                                };
                                Ok::<_, Infallible>(
                                    hyper::Response::builder()
                                        .status(status)
                                        .body(Full::new(Bytes::from_static(b"{\"score\":\"1:0\"}")))
                                        .unwrap(),
                                )
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stop_rx => {}
            }
        });
    });
    let port = rx.recv().unwrap();
    Server {
        port,
        hits,
        conns,
        _stop: stop_tx,
        _thread: thread,
    }
}

fn profile(port: u16, viewers: u64, poll: Duration, secs: u64) -> Profile {
    Profile {
        targets: vec![Target::parse(&format!("http://127.0.0.1:{port}/matches/1/stats")).unwrap()],
        poll_interval: poll,
        arrival: Arrival::Uniform,
        stages: vec![Stage::hold("hold", viewers, Duration::from_secs(secs))],
        timeout: Duration::from_secs(2),
        pool: None,
        max_duration: Duration::from_secs(30),
        max_requests: 1_000_000,
        seed: 1,
        workers: 2,
        insecure: false,
    }
}

fn quiet() -> impl Fn(&statsctl_loadtest::Snapshot) + Send + Sync + 'static {
    |_| {}
}

#[test]
fn request_count_follows_the_schedule_and_the_run_stops_by_itself() {
    let s = serve(Behaviour::default());
    // 200 viewers polling every 500 ms for 3 s: 1200 requests.
    let started = std::time::Instant::now();
    let r = run(
        profile(s.port, 200, Duration::from_millis(500), 3),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stops by itself"
    );
    assert!((1100..=1300).contains(&r.ok), "ok = {} ({r:?})", r.ok);
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert_eq!(s.hits.load(Ordering::SeqCst), r.sent);
    assert_eq!(r.scheduled, r.sent);
    assert!(r.timeline.len() >= 3);
    // A latency limit a busy machine cannot miss: an answer later than the timeout is an error, not a latency.
    let t = Thresholds {
        latency: [("p99".to_string(), Duration::from_secs(2))].into(),
        max_error_rate: 0.01,
    };
    assert!(verdict(&r, &t).passed, "{:?}", verdict(&r, &t));
}

#[test]
fn injected_errors_flip_the_verdict() {
    let s = serve(Behaviour {
        fail_every: 10,
        ..Default::default()
    });
    let r = run(
        profile(s.port, 100, Duration::from_millis(500), 2),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    let rate = r.error_rate;
    assert!((0.07..0.13).contains(&rate), "{rate}");
    assert!(
        r.errors.get("status_503").copied().unwrap_or(0) > 0,
        "{:?}",
        r.errors
    );
    let t = Thresholds {
        latency: Default::default(),
        max_error_rate: 0.01,
    };
    let v = verdict(&r, &t);
    assert!(!v.passed);
    assert!(v.violations[0].starts_with("error rate"), "{v:?}");
    assert!(
        verdict(
            &r,
            &Thresholds {
                max_error_rate: 0.2,
                ..t
            }
        )
        .passed
    );
}

#[test]
fn a_slow_server_shows_in_latency_measured_from_the_schedule() {
    // 20 ms per request, one at a time: 50 req/s capacity. Offered: 100 req/s (synchronised waves) for 2 s.
    let s = serve(Behaviour {
        delay: Duration::from_millis(20),
        serialise: true,
        ..Default::default()
    });
    let mut p = profile(s.port, 50, Duration::from_millis(500), 2);
    p.arrival = Arrival::Waves {
        count: 1,
        spread: Duration::from_millis(10),
    };
    p.timeout = Duration::from_secs(5);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    // The server itself always answers in ~20 ms once it gets to a request…
    assert!(r.service_time_ms.p50 < 2000.0);
    // …but queued requests wait: from the schedule, p99 is many times the service time.
    assert!(
        r.latency_ms.p99 > 500.0,
        "latency from schedule should expose the queue: {:?}",
        r.latency_ms
    );
    assert!(r.latency_ms.p99 > 10.0 * 20.0);
    let t = Thresholds {
        latency: [("p99".to_string(), Duration::from_millis(100))].into(),
        max_error_rate: 0.5,
    };
    assert!(!verdict(&r, &t).passed);
}

#[test]
fn refused_connections_and_request_caps_are_counted() {
    // Nothing listens: every request fails to connect; the cap stops the run early.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut p = profile(port, 100, Duration::from_millis(100), 5);
    p.max_requests = 300;
    let started = std::time::Instant::now();
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the cap ends the run early"
    );
    assert!(
        r.stopped.as_deref().unwrap_or("").contains("request cap"),
        "{:?}",
        r.stopped
    );
    assert!(
        r.errors.get("connect_refused").copied().unwrap_or(0) > 0,
        "{:?}",
        r.errors
    );
    assert!(r.sent <= 300 && r.scheduled <= 300);
    assert_eq!(r.ok, 0);
}

#[test]
fn a_pool_bounds_the_connections_and_polls_past_their_timeout_are_late() {
    // 10 ms a request; 2 workers × a pool of 2: 4 connections, ~400 req/s. Offered: 200 req/s for 2 s.
    let s = serve(Behaviour {
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let mut p = profile(s.port, 100, Duration::from_millis(500), 2);
    p.pool = Some(2);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!((350..=450).contains(&r.ok), "ok = {}", r.ok);
    assert!(
        s.conns.load(Ordering::SeqCst) <= 4,
        "{} connections",
        s.conns.load(Ordering::SeqCst)
    );

    // One worker, one connection: ~100 req/s against 400 offered, timeout 300 ms. The queue grows, waits show
    // in latency from the schedule, and polls whose turn comes after their timeout are late: never sent.
    let s = serve(Behaviour {
        delay: Duration::from_millis(10),
        ..Default::default()
    });
    let mut p = profile(s.port, 200, Duration::from_millis(500), 1);
    p.pool = Some(1);
    p.workers = 1;
    p.timeout = Duration::from_millis(300);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    assert!(r.late > 100, "late = {} ({r:?})", r.late);
    // The backlog does not cost the generator its connection: a poll whose turn comes too close to its timeout
    // is late rather than sent to time out on the wire (which closes the connection and opens another). Before,
    // here: ~220 timeouts and as many connections for ~35 answers; now a few at most, on a busy machine.
    let timeouts = r.errors.get("timeout").copied().unwrap_or(0);
    let conns = s.conns.load(Ordering::SeqCst);
    assert!(
        timeouts * 4 <= r.ok && conns * 4 <= r.ok,
        "{timeouts} timeouts, {} ok, {conns} connections",
        r.ok
    );
    // Every poll sent reached the server, unless it timed out on the way (its connection closed with it).
    let (hits, timeouts) = (
        s.hits.load(Ordering::SeqCst),
        r.errors.get("timeout").copied().unwrap_or(0),
    );
    assert!(
        hits <= r.sent && r.sent - hits <= timeouts,
        "hits {hits}, sent {}, timeouts {timeouts}",
        r.sent
    );
    assert_eq!(
        r.scheduled,
        r.sent + r.late,
        "every scheduled poll is sent or counted late"
    );
    assert!(r.latency_ms.p50 > 50.0, "{:?}", r.latency_ms);
}

/// What a misbehaving server does with a request, by its number.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    Fine,
    /// Chunk size `ffffffffffffffff`: it overflowed the client's arithmetic and panicked its task.
    ChunkSizeMax,
    /// A Content-Length of 100 GB: the client buffered whole bodies.
    HugeLength,
    /// Chunks that keep coming past the body cap.
    EndlessChunks,
    /// Closes without answering.
    Reset,
    /// Answers after the client's timeout.
    Slow,
    /// Not HTTP.
    Garbage,
}

/// A raw HTTP/1.1 server on 127.0.0.1 that answers request n with `plan[n % plan.len()]`, one thread per
/// connection, for tests of what the client makes of answers no well-behaved library would send.
fn serve_raw(plan: Vec<Misbehaviour>) -> (u16, Arc<AtomicU64>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let plan = plan.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                // Bounded: a connection the client forgot ends with the test process anyway.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
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
                    let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
                    let fine: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    let answer: Vec<u8> = match plan[n % plan.len()] {
                        Misbehaviour::Fine => fine.to_vec(),
                        Misbehaviour::ChunkSizeMax => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n0\r\n\r\n".to_vec(),
                        Misbehaviour::HugeLength => b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nxxxx".to_vec(),
                        Misbehaviour::EndlessChunks => {
                            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                            for _ in 0..9 {
                                r.extend_from_slice(b"100000\r\n");
                                r.resize(r.len() + 0x100000, b'y');
                                r.extend_from_slice(b"\r\n");
                            }
                            r.extend_from_slice(b"0\r\n\r\n");
                            r
                        }
                        Misbehaviour::Reset => return,
                        Misbehaviour::Slow => {
                            std::thread::sleep(Duration::from_millis(1500));
                            fine.to_vec()
                        }
                        Misbehaviour::Garbage => b"SMTP ready\r\n\r\n".to_vec(),
                    };
                    if stream.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, hits)
}

#[test]
fn every_scheduled_request_ends_in_exactly_one_bucket_whatever_the_server_does() {
    use Misbehaviour::*;
    let (port, _hits) = serve_raw(vec![
        Fine,
        ChunkSizeMax,
        Fine,
        HugeLength,
        EndlessChunks,
        Reset,
        Slow,
        Garbage,
    ]);
    let mut p = profile(port, 20, Duration::from_millis(250), 2);
    p.timeout = Duration::from_secs(1);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    eprintln!(
        "scheduled {} sent {} ok {} late {} errors {:?}",
        r.scheduled, r.sent, r.ok, r.late, r.errors
    );
    assert!(r.scheduled >= 100, "{r:?}");
    assert_eq!(
        r.scheduled,
        r.ok + r.errors.values().sum::<u64>() + r.late,
        "every scheduled request is ok, a named error or late: {:?}",
        r.errors
    );
    assert!(r.accounted());
    assert!(r.ok > 0);
    for kind in [
        "body_too_large",
        "connection_reset",
        "timeout",
        "bad_response",
    ] {
        assert!(
            r.errors.get(kind).copied().unwrap_or(0) > 0,
            "no {kind}: {:?}",
            r.errors
        );
    }
    // Nothing was lost to a panic or left behind.
    for kind in ["internal_error", "unfinished"] {
        assert_eq!(r.errors.get(kind), None, "{:?}", r.errors);
    }
    let v = verdict(
        &r,
        &Thresholds {
            latency: Default::default(),
            max_error_rate: 0.01,
        },
    );
    assert!(!v.passed, "{v:?}");
}

/// A self-signed certificate for 127.0.0.1 and localhost, made by `openssl` (on every Debian system with
/// ca-certificates) in `dir`: (certificate, key) PEM paths.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            // An end-entity certificate, so that it can also be trusted directly through SSL_CERT_FILE.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .output()
        .expect("openssl is needed to make a test certificate (apt-get install openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// An HTTPS server on 127.0.0.1 with the certificate in `cert`/`key`: keep-alive, 200 to every GET. Returns its
/// port and how many TLS sessions it has established.
fn serve_tls(cert: &std::path::Path, key: &std::path::Path) -> (u16, Arc<AtomicU64>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let sessions = Arc::new(AtomicU64::new(0));
    let established = sessions.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let established = established.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    established.fetch_add(1, Ordering::SeqCst);
                    let mut buf = Vec::new();
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read_buf(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                        buf.clear();
                        let answer =
                            b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"score\":\"1:0\"}";
                        if tls.write_all(answer).await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    });
    (port, sessions)
}

fn https_profile(port: u16, insecure: bool) -> Profile {
    let mut p = profile(port, 20, Duration::from_millis(250), 1);
    p.targets = vec![Target::parse(&format!("https://127.0.0.1:{port}/matches/1/stats")).unwrap()];
    p.insecure = insecure;
    p
}

#[test]
fn https_with_a_self_signed_certificate_fails_verification_and_passes_with_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (port, sessions) = serve_tls(&cert, &key);

    // Verified against the system's roots: refused, every request counted as a certificate error.
    let r = run(
        https_profile(port, false),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert!(r.scheduled > 0 && r.accounted(), "{r:?}");
    assert_eq!(r.ok, 0, "{r:?}");
    assert_eq!(
        r.errors.keys().collect::<Vec<_>>(),
        ["tls_certificate"],
        "{:?}",
        r.errors
    );
    assert_eq!(r.errors["tls_certificate"], r.scheduled - r.late);

    // --insecure: the same server passes, over kept-alive connections.
    let r = run(
        https_profile(port, true),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert!(r.accounted(), "{r:?}");
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(r.ok >= 40, "{r:?}");
    assert_eq!(r.ok, r.scheduled);
    // Kept alive: one session per viewer (20), however many polls, and the refused attempts above made none.
    assert!(
        sessions.load(Ordering::SeqCst) <= 20,
        "{} TLS sessions for {} requests",
        sessions.load(Ordering::SeqCst),
        r.ok
    );
    assert!(
        verdict(
            &r,
            &Thresholds {
                latency: Default::default(),
                max_error_rate: 0.0
            }
        )
        .passed
    );

    // A plain HTTP server behind an https:// URL: a handshake error, not a certificate one.
    let s = serve(Behaviour::default());
    let r = run(
        https_profile(s.port, true),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert!(r.accounted(), "{r:?}");
    assert_eq!(
        r.errors.keys().collect::<Vec<_>>(),
        ["tls_handshake"],
        "{:?}",
        r.errors
    );
}

#[test]
fn https_verifies_against_the_roots_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (port, sessions) = serve_tls(&cert, &key);
    // rustls-native-certs reads SSL_CERT_FILE: trusting exactly this certificate, verification (of the
    // certificate and of 127.0.0.1 as the name in it) succeeds without --insecure. (nextest runs each test in
    // its own process: the variable reaches no other test.)
    std::env::set_var("SSL_CERT_FILE", &cert);
    let r = run(
        https_profile(port, false),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(r.ok > 0 && r.accounted(), "{r:?}");
    assert!(sessions.load(Ordering::SeqCst) > 0);
}

#[test]
fn https_without_any_root_certificate_refuses_to_start_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (port, sessions) = serve_tls(&cert, &key);
    // rustls-native-certs reads only these when they are set: an empty bundle and an empty directory.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    std::env::set_var("SSL_CERT_FILE", &empty);
    std::env::set_var("SSL_CERT_DIR", dir.path().join("no-such-dir"));
    let e = run(
        https_profile(port, false),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap_err();
    assert!(
        e.contains("no trusted root certificates") && e.contains("hint:"),
        "{e}"
    );
    assert_eq!(sessions.load(Ordering::SeqCst), 0, "nothing was sent");
    // --insecure needs no roots.
    let r = run(
        https_profile(port, true),
        Arc::new(AtomicBool::new(false)),
        quiet(),
    )
    .unwrap();
    assert!(r.ok > 0 && r.failed == 0, "{r:?}");
}

#[test]
fn https_through_a_pool_reuses_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (port, sessions) = serve_tls(&cert, &key);
    let mut p = https_profile(port, true);
    p.pool = Some(2);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    assert!(r.accounted(), "{r:?}");
    assert_eq!(r.failed, 0, "{:?}", r.errors);
    assert!(r.ok >= 40, "{r:?}");
    // 2 workers × a pool of 2.
    assert!(
        sessions.load(Ordering::SeqCst) <= 4,
        "{} TLS sessions",
        sessions.load(Ordering::SeqCst)
    );
}

#[test]
fn a_run_stopped_midway_still_accounts_for_every_request() {
    // Slow answers through one pooled connection per worker: when the stop comes, polls are queued and in
    // flight. Each is still answered, timed out or counted late.
    let s = serve(Behaviour {
        delay: Duration::from_millis(100),
        ..Default::default()
    });
    let mut p = profile(s.port, 100, Duration::from_millis(500), 10);
    p.pool = Some(1);
    p.timeout = Duration::from_millis(800);
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let started = std::time::Instant::now();
    let r = run(p, stop, quiet()).unwrap();
    stopper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the stop ends the 10 s run early"
    );
    assert_eq!(r.stopped.as_deref(), Some("stopped on request"));
    assert!(r.accounted(), "{r:?}");
    assert!(r.ok > 0 && r.scheduled < 2000, "{r:?}");
    assert_eq!(r.errors.get("unfinished"), None, "{:?}", r.errors);
}

#[test]
fn a_handshake_that_never_finishes_is_a_connect_timeout_not_late() {
    // Accepts TCP and never answers the TLS ClientHello: every request stalls while connecting. They were tried,
    // so they are `connect_timeout` errors, never `late` ("not sent in time" is for polls that never got a turn).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let mut p = https_profile(port, true);
    p.stages = vec![Stage::hold("hold", 5, Duration::from_secs(1))];
    p.timeout = Duration::from_millis(300);
    let r = run(p, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
    assert!(r.scheduled > 0 && r.accounted(), "{r:?}");
    assert_eq!(r.ok, 0, "{r:?}");
    assert_eq!(r.late, 0, "tried, so not late: {r:?}");
    assert_eq!(
        r.errors.get("connect_timeout").copied(),
        Some(r.scheduled),
        "{:?}",
        r.errors
    );
}

#[test]
fn shards_run_apart_and_merged_are_the_whole_schedule() {
    use statsctl_loadtest::part::{merge, PartResult};
    use statsctl_loadtest::shard::scheduled_per_second;
    use statsctl_loadtest::{run_part, Shard};
    let s = serve(Behaviour::default());
    let mut p = profile(s.port, 90, Duration::from_millis(500), 2);
    p.workers = 1;
    let end = Duration::from_secs(2);
    let whole: u64 = scheduled_per_second(&p, Shard::WHOLE, end).iter().sum();
    assert!(whole > 0);
    // Three shards started together a little in the future, as a distributed run's workers are.
    let start = std::time::Instant::now() + Duration::from_millis(300);
    let handles: Vec<_> = (0..3)
        .map(|index| {
            let p = p.clone();
            std::thread::spawn(move || {
                let shard = Shard { index, count: 3 };
                let ran =
                    run_part(p, shard, start, Arc::new(AtomicBool::new(false)), quiet()).unwrap();
                PartResult::from_ran("t", shard, "thread", &ran).unwrap()
            })
        })
        .collect();
    let parts: Vec<PartResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for part in &parts {
        let own: u64 = scheduled_per_second(&p, part.shard, end).iter().sum();
        assert_eq!(part.scheduled, own, "shard {}", part.shard);
        assert_eq!(part.ok + part.failed() + part.late, part.scheduled);
    }
    let merged = merge(&parts, 1).unwrap().recorder;
    assert_eq!(merged.scheduled, whole);
    assert_eq!(merged.sent, s.hits.load(Ordering::SeqCst));
    assert_eq!(
        merged.ok,
        parts.iter().map(|p| p.ok).sum::<u64>(),
        "merged counts are the workers' summed"
    );
    assert_eq!(merged.latency.len(), merged.ok);
}
