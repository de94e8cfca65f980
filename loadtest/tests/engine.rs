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
                                let status = if b.fail_every > 0 && n % b.fail_every == 0 {
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
    let t = Thresholds {
        latency: [("p99".to_string(), Duration::from_millis(200))].into(),
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
    // (A poll that times out after it was sent takes its connection with it: the next one opens another.)
    assert!(r.late > 100, "late = {} ({r:?})", r.late);
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
