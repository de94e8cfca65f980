//! The generator: worker threads, each with its own single-threaded runtime and its share of the viewers in a
//! schedule sorted by phase (24 bytes a viewer). Every request is sent at its scheduled time whether or not earlier ones have
//! returned (open model); latency is measured from the scheduled time, so a slow server cannot hide behind a
//! generator that waits (no coordinated omission). Every scheduled request ends in exactly one place: answered
//! (ok or a status error), failed with a named error kind, or not sent in time (`late`); a request whose code
//! panicked is `internal_error` and one still unfinished when the run gives up waiting is `unfinished`, never
//! silently dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http1::Conn;
use crate::profile::{active_at, first_poll, total_duration, Profile, Target};
use crate::shard::Shard;
use crate::stats::{histogram, LoadTestResult, Recorder};

/// A live view of the run, about once a second.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub elapsed_secs: f64,
    pub viewers: u64,
    /// Responses per second over the last poll interval.
    pub rps: f64,
    /// p99 latency over the last poll interval.
    pub p99_ms: f64,
    pub ok: u64,
    pub errors: u64,
}

struct Shared {
    start: Instant,
    stop: Arc<AtomicBool>,
    /// Requests reserved against `max_requests`, in batches per worker.
    sent: AtomicU64,
    /// One per worker, each on its own cache lines: workers count without contending; the reporter sums.
    live: Vec<Live>,
}

/// What the live progress line needs from one worker.
#[repr(align(128))]
struct Live {
    ok: AtomicU64,
    errors: AtomicU64,
    /// Latencies since the reporter last looked.
    window: Mutex<hdrhistogram::Histogram<u64>>,
}

/// How many requests a worker reserves against the cap at a time.
const RESERVE: u64 = 64;

/// A target with what every request to it needs, built once.
struct Prepared {
    target: Target,
    request: Vec<u8>,
    /// For https:// targets.
    tls: Option<crate::tls::Client>,
}

/// A request whose code panicked: counted under its own kind, the bug made visible rather than the request lost.
pub const INTERNAL_ERROR: &str = "internal_error";
/// A request still in flight when the run stopped waiting for it; defined beside the counts that hold it.
pub use crate::stats::UNFINISHED;

/// How long past the end of the schedule and the request timeout the run waits for requests in flight.
const GRACE: Duration = Duration::from_secs(2);

struct Worker {
    index: usize,
    profile: Arc<Profile>,
    targets: Vec<Prepared>,
    shared: Arc<Shared>,
    rec: RefCell<Recorder>,
    /// Idle keep-alive connections, per viewer (without a pool).
    idle_by_viewer: RefCell<HashMap<u64, Conn>>,
    /// Pool mode: polls that are due, for the pool's connections to take in order.
    queue: RefCell<std::collections::VecDeque<Due>>,
    wake: tokio::sync::Notify,
    /// Pool mode: a connection found the queue empty, so the schedule goes back to exact wake-ups (see
    /// [`wait_for_turn`]).
    hungry: tokio::sync::Notify,
    /// The schedule has ended: pooled connections stop once the queue is empty.
    done: std::cell::Cell<bool>,
    in_flight: std::cell::Cell<u64>,
    /// Recent service time (send to answer) in µs: how long a poll of the pool needs (see [`too_late`]).
    service_us: std::cell::Cell<u64>,
}

/// Runs the profile to the end (or a stop) and returns the merged result. Blocking: call from a plain thread or
/// `spawn_blocking`. `stop` ends the run early (Ctrl-C); `progress` is called about once a second.
pub fn run(
    profile: Profile,
    stop: Arc<AtomicBool>,
    progress: impl Fn(&Snapshot) + Send + Sync + 'static,
) -> Result<LoadTestResult, String> {
    let stages = profile.stages.clone();
    let poll = profile.poll_interval.as_secs_f64();
    let targets = profile.targets.iter().map(|t| t.url.clone()).collect();
    let ran = run_part(profile, Shard::WHOLE, Instant::now(), stop, progress)?;
    Ok(LoadTestResult::from_recorder(
        &ran.recorder,
        &stages,
        targets,
        poll,
        ran.elapsed_secs,
        ran.stopped,
    ))
}

/// What one part of a run measured, before it becomes a result: a distributed run merges its workers' parts.
#[derive(Debug, Clone)]
pub struct Ran {
    pub recorder: Recorder,
    /// Seconds from the schedule's start to the end, bounded by the stages plus the request timeout.
    pub elapsed_secs: f64,
    /// Why it ended early, if it did.
    pub stopped: Option<String>,
}

/// Runs `shard`'s viewers of the profile on the schedule that starts at `start` (which may be a little in the
/// future: workers of a distributed run start together), as `run` does. The profile's `max_requests` applies to
/// this part alone.
pub fn run_part(
    profile: Profile,
    shard: Shard,
    start: Instant,
    stop: Arc<AtomicBool>,
    progress: impl Fn(&Snapshot) + Send + Sync + 'static,
) -> Result<Ran, String> {
    if profile.targets.is_empty() {
        return Err("no targets".into());
    }
    if profile.poll_interval.is_zero() {
        return Err("the poll interval must be above zero".into());
    }
    let profile = Arc::new(profile);
    let workers = profile.workers.max(1);
    let live = (0..workers)
        .map(|_| Live {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            window: Mutex::new(histogram()),
        })
        .collect();
    let shared = Arc::new(Shared {
        start,
        stop: stop.clone(),
        sent: AtomicU64::new(0),
        live,
    });
    let end = total_duration(&profile.stages).min(profile.max_duration);
    // One TLS configuration for the run, built before anything is sent: a machine without root certificates
    // fails here, not as thousands of handshake errors.
    let tls = if profile.targets.iter().any(|t| t.tls) {
        Some(crate::tls::client_config(profile.insecure)?)
    } else {
        None
    };

    let reporter = {
        let shared = shared.clone();
        let profile = profile.clone();
        let done = Arc::new(AtomicBool::new(false));
        let done2 = done.clone();
        let handle = std::thread::spawn(move || {
            // Rates and p99 over the last poll interval (at least 1 s, at most 60 s): with synchronised viewers
            // (page-load waves) a one-second window would swing between a burst and nothing.
            let window = (profile.poll_interval.as_secs_f64().ceil() as usize).clamp(1, 60);
            let mut seconds: std::collections::VecDeque<(
                Instant,
                u64,
                hdrhistogram::Histogram<u64>,
            )> = std::collections::VecDeque::new();
            let mut last = Instant::now();
            seconds.push_back((last, 0, histogram()));
            while !done2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                last = Instant::now();
                let elapsed = shared.start.elapsed();
                let ok: u64 = shared
                    .live
                    .iter()
                    .map(|l| l.ok.load(Ordering::Relaxed))
                    .sum();
                let errors: u64 = shared
                    .live
                    .iter()
                    .map(|l| l.errors.load(Ordering::Relaxed))
                    .sum();
                let mut h = histogram();
                for l in &shared.live {
                    let mut w = l.window.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = h.add(&*w);
                    w.reset();
                }
                seconds.push_back((last, ok + errors, h));
                while seconds.len() > window + 1 {
                    seconds.pop_front();
                }
                let (t0, done0, _) = &seconds[0];
                let span = last.duration_since(*t0).as_secs_f64().max(0.001);
                let mut merged = histogram();
                for (_, _, h) in seconds.iter().skip(1) {
                    let _ = merged.add(h);
                }
                let p99 = if merged.is_empty() {
                    0.0
                } else {
                    merged.value_at_quantile(0.99) as f64 / 1000.0
                };
                progress(&Snapshot {
                    elapsed_secs: elapsed.as_secs_f64(),
                    viewers: active_at(&profile.stages, elapsed).0 as u64,
                    rps: (ok + errors - done0) as f64 / span,
                    p99_ms: p99,
                    ok,
                    errors,
                });
            }
        });
        (done, handle)
    };

    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let profile = profile.clone();
            let shared = shared.clone();
            let tls = tls.clone();
            std::thread::spawn(move || -> Result<Recorder, String> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, worker(w, workers, shard, profile, shared, end, tls))
            })
        })
        .collect();
    let mut merged = Recorder::new(profile.stages.len());
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => merged.merge(&r),
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("a worker thread panicked".into()),
        }
    }
    reporter.0.store(true, Ordering::Relaxed);
    let _ = reporter.1.join();
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = Instant::now()
        .saturating_duration_since(shared.start)
        .as_secs_f64()
        .min(end.as_secs_f64() + profile.timeout.as_secs_f64());
    let stopped = if stop.load(Ordering::Relaxed) {
        Some(
            if shared.sent.load(Ordering::Relaxed) >= profile.max_requests {
                format!("request cap of {} reached", profile.max_requests)
            } else {
                "stopped on request".into()
            },
        )
    } else if total_duration(&profile.stages) > profile.max_duration {
        Some(format!(
            "maximum duration {:.0}s reached",
            profile.max_duration.as_secs_f64()
        ))
    } else {
        None
    };
    Ok(Ran {
        recorder: merged,
        elapsed_secs: elapsed,
        stopped,
    })
}

async fn worker(
    index: usize,
    workers: usize,
    shard: Shard,
    profile: Arc<Profile>,
    shared: Arc<Shared>,
    end: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Recorder, String> {
    let peak = crate::profile::peak_viewers(&profile.stages);
    let end_us = end.as_micros() as u64;
    let poll_us = profile.poll_interval.as_micros().max(1) as u64;
    // Every viewer polls at first + k × poll: within each round of one poll interval the order is the order of
    // the viewers' phases (first mod poll). Sorted once, the schedule is a walk round after round — O(1) per
    // request where a heap would be O(log viewers).
    let mut ring: Vec<(u64, u64, u64)> = Vec::new();
    for v in shard.thread_viewers(index, workers, peak) {
        if let Some(t) = first_poll(&profile, v) {
            let t = t.as_micros() as u64;
            if t < end_us {
                ring.push((t % poll_us, t, v));
            }
        }
    }
    ring.sort_unstable();
    let targets = profile
        .targets
        .iter()
        .map(|t| {
            let request = crate::http1::request_bytes(&t.host, t.port, &t.path)
                .map_err(|e| format!("`{}`: {e}", t.url))?;
            let tls = match (&tls, t.tls) {
                (Some(config), true) => Some(
                    crate::tls::Client::new(config.clone(), &t.host)
                        .map_err(|e| format!("`{}`: {e}", t.url))?,
                ),
                _ => None,
            };
            Ok(Prepared {
                target: t.clone(),
                request,
                tls,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let me = Rc::new(Worker {
        index,
        targets,
        profile: profile.clone(),
        shared: shared.clone(),
        rec: RefCell::new(Recorder::new(profile.stages.len())),
        idle_by_viewer: RefCell::new(HashMap::new()),
        queue: RefCell::new(std::collections::VecDeque::new()),
        wake: tokio::sync::Notify::new(),
        hungry: tokio::sync::Notify::new(),
        done: std::cell::Cell::new(false),
        in_flight: std::cell::Cell::new(0),
        service_us: std::cell::Cell::new(0),
    });
    if let Some(k) = profile.pool {
        for _ in 0..k.max(1) {
            tokio::task::spawn_local(pooled_connection(me.clone()));
        }
    }
    let clock = Clock::new();
    let mut allowance = 0u64;
    let mut round = 0u64;
    'rounds: while !ring.is_empty() {
        let base = round * poll_us;
        round += 1;
        for &(phase, first, viewer) in &ring {
            let due = base + phase;
            if due >= end_us {
                break 'rounds;
            }
            if due < first {
                continue;
            }
            if shared.stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let at = shared.start + Duration::from_micros(due);
            let backlog = || profile.pool.is_some() && !me.queue.borrow().is_empty();
            wait_for_turn(backlog, &me.hungry, &clock, at).await;
            let t = Duration::from_micros(due);
            let (active, stage) = active_at(&profile.stages, t);
            let second = (due / 1_000_000) as usize;
            if (viewer as f64) < active {
                {
                    let mut rec = me.rec.borrow_mut();
                    rec.scheduled += 1;
                }
                if allowance == 0 {
                    allowance = reserve(&shared.sent, profile.max_requests);
                    if allowance == 0 {
                        shared.stop.store(true, Ordering::Relaxed);
                        me.rec.borrow_mut().scheduled -= 1;
                        break 'rounds;
                    }
                }
                allowance -= 1;
                let target = (viewer as usize) % me.targets.len();
                me.in_flight.set(me.in_flight.get() + 1);
                if profile.pool.is_some() {
                    me.queue.borrow_mut().push_back(Due {
                        at,
                        stage,
                        second,
                        target,
                    });
                    me.wake.notify_one();
                } else {
                    tokio::task::spawn_local(request(
                        me.clone(),
                        target,
                        viewer,
                        at,
                        stage,
                        second,
                    ));
                }
            }
        }
    }
    me.done.set(true);
    me.wake.notify_waiters();
    // Let what is in flight finish (each is bounded by the timeout).
    let deadline = Instant::now() + profile.timeout + GRACE;
    while me.in_flight.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    me.idle_by_viewer.borrow_mut().clear();
    // What is still in flight now (a machine too busy to run its timers, a task that never finished) is
    // dropped with the runtime: counted, so the totals still add up. No await between this and the copy, so
    // nothing can record in between.
    let mut rec = me.rec.borrow().clone();
    rec.unfinished(me.in_flight.get());
    Ok(rec)
}

/// Waits until `at`, when the poll due then is handed to the pool (or to a task of its own). While the pool has
/// a backlog (every connection busy, polls queued) a poll only joins the back of the queue, so its hand-over
/// need not be exact: tokio's millisecond timer then wakes the schedule once for every poll due in that
/// millisecond, where exact wake-ups (a timerfd armed, polled and read some 15,000 times a second at full load)
/// cost the generator a fifth of its system time per request. A connection that finds the queue empty
/// cuts the wait short, so no connection idles while a poll is due. Without a backlog: to the microsecond.
/// Either way a poll's latency is measured from `at`, its scheduled time.
async fn wait_for_turn(
    backlog: impl Fn() -> bool,
    hungry: &tokio::sync::Notify,
    clock: &Clock,
    at: Instant,
) {
    loop {
        if !backlog() {
            return clock.sleep_until(at).await;
        }
        if at <= Instant::now() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => return,
            _ = hungry.notified() => {}
        }
    }
}

/// Takes up to `RESERVE` requests from what is left under `cap`; 0 when the cap is reached. Never over-reserves,
/// so the cap is exact.
fn reserve(sent: &AtomicU64, cap: u64) -> u64 {
    let mut current = sent.load(Ordering::Relaxed);
    loop {
        let take = cap.saturating_sub(current).min(RESERVE);
        if take == 0 {
            return 0;
        }
        match sent.compare_exchange_weak(
            current,
            current + take,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return take,
            Err(now) => current = now,
        }
    }
}

/// Sleeps until `at` with microsecond precision. tokio's timer rounds every deadline up to the next
/// millisecond, which would add up to 1 ms to each latency measured from the schedule; a timerfd registered in
/// the same reactor wakes the worker on time while its I/O keeps being served. Elsewhere, tokio's timer.
struct Clock {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
    /// Exact waits so far (those long enough to sleep at all).
    exact: std::cell::Cell<u64>,
}

impl Clock {
    fn new() -> Clock {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: timerfd_create returns a new descriptor we own, or -1.
            let raw = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            let fd = (raw >= 0)
                .then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) })
                .and_then(|fd| {
                    // SAFETY: the OwnedFd stays open, and the same descriptor, for as long as the AsyncFd owns it.
                    unsafe {
                        tokio::io::unix::AsyncFd::register_with_interest(
                            fd,
                            tokio::io::Interest::READABLE,
                        )
                    }
                    .ok()
                });
            Clock {
                fd,
                exact: std::cell::Cell::new(0),
            }
        }
        #[cfg(not(target_os = "linux"))]
        Clock {
            exact: std::cell::Cell::new(0),
        }
    }

    async fn sleep_until(&self, at: Instant) {
        let Some(left) = at
            .checked_duration_since(Instant::now())
            .filter(|d| *d >= Duration::from_micros(20))
        else {
            return;
        };
        self.exact.set(self.exact.get() + 1);
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            use std::os::fd::AsRawFd;
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: left.as_secs() as libc::time_t,
                    tv_nsec: left.subsec_nanos() as libc::c_long,
                },
            };
            // SAFETY: a valid timerfd and a valid itimerspec.
            if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } == 0
            {
                loop {
                    let Ok(mut guard) = fd.readable().await else {
                        break;
                    };
                    let mut expirations = 0u64;
                    // SAFETY: reading 8 bytes into a u64 from a timerfd.
                    let n = unsafe {
                        libc::read(fd.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8)
                    };
                    if n == 8 {
                        return;
                    }
                    guard.clear_ready();
                }
            }
        }
        tokio::time::sleep(left).await;
    }
}

/// How far a request got before its timeout, so a timeout is named for where it stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for its turn or a connection of the pool: never tried.
    Waiting,
    /// Opening a connection (TCP connect, and the TLS handshake for `https://`).
    Connecting,
    /// Connected, about to write the request.
    Connected,
    /// The request was written.
    Sent,
}

/// How a request ended: an answer (status, body bytes, when it was sent) or an error kind, or its timeout.
enum Outcome {
    Done(Result<(u16, u64, Instant), &'static str>),
    TimedOut,
}

/// Runs `attempt` until `deadline`.
async fn within(
    deadline: Instant,
    attempt: impl std::future::Future<Output = Result<(u16, u64, Instant), &'static str>>,
) -> Outcome {
    match tokio::time::timeout_at(deadline.into(), guarded(attempt)).await {
        Ok(r) => Outcome::Done(r),
        Err(_) => Outcome::TimedOut,
    }
}

/// Runs `f`, turning a panic inside it into `internal_error`: a panic in a spawned task would otherwise end the
/// task silently, and its request with it. In place (no task, no allocation): the hot path pays nothing.
async fn guarded<T>(
    f: impl std::future::Future<Output = Result<T, &'static str>>,
) -> Result<T, &'static str> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(poll) => poll,
            // Never polled again: the future is dropped as it is.
            Err(_) => std::task::Poll::Ready(Err(INTERNAL_ERROR)),
        }
    })
    .await
}

impl Worker {
    fn live(&self) -> &Live {
        &self.shared.live[self.index]
    }

    /// Counts one request's outcome, measured from `scheduled`.
    fn record(
        &self,
        outcome: Outcome,
        phase: Phase,
        scheduled: Instant,
        stage: usize,
        second: usize,
    ) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(scheduled).as_micros() as u64;
        let mut rec = self.rec.borrow_mut();
        match outcome {
            Outcome::Done(Ok((status, bytes, sent_at))) if status < 400 => {
                let service = now.saturating_duration_since(sent_at).as_micros() as u64;
                rec.success(stage, second, latency, service, bytes);
                // Up at once to a slower answer, down by 1/8 of the difference with each faster one: the margin
                // a queued poll needs errs long (late) rather than short (a timeout that costs the connection).
                let est = self.service_us.get();
                self.service_us
                    .set(service.max(est - est / 8 + service / 8));
                self.live().ok.fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .live()
                    .window
                    .lock()
                    .map(|mut w| w.record(latency.max(1)));
            }
            failed => {
                match failed {
                    Outcome::Done(Ok((status, _, _))) => {
                        rec.error(stage, second, &format!("status_{status}"))
                    }
                    Outcome::Done(Err(kind)) => rec.error(stage, second, kind),
                    // Never tried: its turn (or a pooled connection) came too late. Counted, never dropped.
                    Outcome::TimedOut if phase == Phase::Waiting => rec.late(stage, second),
                    // The server did not accept, or did not finish the TLS handshake, in time.
                    Outcome::TimedOut if phase == Phase::Connecting => {
                        rec.error(stage, second, "connect_timeout")
                    }
                    Outcome::TimedOut => rec.error(stage, second, "timeout"),
                }
                self.live().errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.in_flight.set(self.in_flight.get() - 1);
    }
}

/// A viewer's poll on its own keep-alive connection (the default: one connection per viewer, like a browser).
async fn request(
    me: Rc<Worker>,
    target: usize,
    viewer: u64,
    scheduled: Instant,
    stage: usize,
    second: usize,
) {
    let deadline = scheduled + me.profile.timeout;
    let phase = std::cell::Cell::new(Phase::Waiting);
    let mut slot = me.idle_by_viewer.borrow_mut().remove(&viewer);
    let outcome = within(
        deadline,
        attempt(&me, &me.targets[target], &mut slot, &phase),
    )
    .await;
    if let Some(c) = slot {
        me.idle_by_viewer.borrow_mut().insert(viewer, c);
    }
    me.record(outcome, phase.get(), scheduled, stage, second);
}

/// A poll waiting for a pooled connection: 40 bytes in a queue, however many pile up when the target is slower
/// than the schedule.
struct Due {
    at: Instant,
    stage: usize,
    second: usize,
    target: usize,
}

/// Whether a queued poll is late: its timeout has passed, or what is left of it is under twice the time an
/// answer recently took. Under overload the oldest poll in the queue is always near its timeout; sent, it would
/// time out on the wire, close its connection (a timed-out exchange leaves it unusable), make the target serve an
/// answer nobody reads and cost a new connection: the generator would slow itself down with its own backlog.
/// Counted late instead, it is what it is: not sent in time.
fn too_late(now: Instant, deadline: Instant, service: Duration) -> bool {
    deadline.saturating_duration_since(now) <= service * 2
}

/// One connection of a worker's pool (`--pool N`): takes due polls in schedule order, one at a time.
async fn pooled_connection(me: Rc<Worker>) {
    let mut slot: Option<Conn> = None;
    let mut slot_target = usize::MAX;
    loop {
        let next = me.queue.borrow_mut().pop_front();
        let Some(due) = next else {
            if me.done.get() {
                return;
            }
            me.hungry.notify_one();
            me.wake.notified().await;
            continue;
        };
        let deadline = due.at + me.profile.timeout;
        if too_late(
            Instant::now(),
            deadline,
            Duration::from_micros(me.service_us.get()),
        ) {
            // Its turn came after its timeout, or so close to it that the answer could not come in time:
            // never sent.
            me.record(
                Outcome::TimedOut,
                Phase::Waiting,
                due.at,
                due.stage,
                due.second,
            );
            continue;
        }
        if slot_target != due.target {
            slot = None;
            slot_target = due.target;
        }
        let phase = std::cell::Cell::new(Phase::Waiting);
        let outcome = within(
            deadline,
            attempt(&me, &me.targets[due.target], &mut slot, &phase),
        )
        .await;
        me.record(outcome, phase.get(), due.at, due.stage, due.second);
    }
}

/// One request on the connection in `slot` (or a new one when there is none or it was closed), leaving it there
/// when it can carry the next request.
async fn attempt(
    me: &Worker,
    target: &Prepared,
    slot: &mut Option<Conn>,
    phase: &std::cell::Cell<Phase>,
) -> Result<(u16, u64, Instant), &'static str> {
    // The server may have closed an idle connection meanwhile (keep-alive timeout): that costs a new
    // connection, not an error.
    let mut conn = match slot.take().and_then(|mut c| c.is_open().then_some(c)) {
        Some(c) => c,
        None => {
            phase.set(Phase::Connecting);
            crate::http1::connect(&target.target.host, target.target.port, target.tls.as_ref())
                .await?
        }
    };
    phase.set(Phase::Connected);
    let mut sent_at = Instant::now();
    let resp = conn
        .exchange(&target.request, || {
            sent_at = Instant::now();
            phase.set(Phase::Sent);
            me.rec.borrow_mut().sent += 1;
        })
        .await?;
    if resp.keep_alive {
        *slot = Some(conn);
    }
    Ok((resp.status, resp.body_bytes, sent_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_backlog_batches_the_schedules_wake_ups_until_a_connection_goes_hungry() {
        block_on(async {
            let clock = Clock::new();
            let hungry = tokio::sync::Notify::new();
            let ms = Duration::from_millis;
            // A backlog: the coarse timer, never the exact clock; never before the poll's time.
            let at = Instant::now() + ms(30);
            wait_for_turn(|| true, &hungry, &clock, at).await;
            assert!(Instant::now() >= at);
            assert_eq!(clock.exact.get(), 0, "a backlog armed the exact clock");
            // No backlog: exact.
            let at = Instant::now() + ms(30);
            wait_for_turn(|| false, &hungry, &clock, at).await;
            assert!(Instant::now() >= at);
            assert_eq!(clock.exact.get(), 1);
            // A backlog that drains mid-wait: the connection that found the queue empty says so, and the rest
            // of the wait is exact.
            let backlog = std::cell::Cell::new(true);
            let at = Instant::now() + ms(300);
            // After the wait has started (join polls it first), with no timer of its own to be late.
            let drain = async {
                tokio::task::yield_now().await;
                backlog.set(false);
                hungry.notify_one();
            };
            tokio::join!(wait_for_turn(|| backlog.get(), &hungry, &clock, at), drain);
            assert!(Instant::now() >= at);
            assert_eq!(
                clock.exact.get(),
                2,
                "the drained queue did not end the coarse wait"
            );
        });
    }

    #[test]
    fn a_queued_poll_too_close_to_its_timeout_is_late_not_sent() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        for (left, service, late) in [
            // Plenty of time, or no answer measured yet.
            (ms(5000), ms(1), false),
            (ms(5000), ms(0), false),
            (ms(1), ms(0), false),
            // Its timeout has passed (or is now).
            (ms(0), ms(0), true),
            // Less than two answers' time left: it would time out on the wire.
            (ms(10), ms(10), true),
            (ms(20), ms(10), true),
            (ms(21), ms(10), false),
        ] {
            assert_eq!(
                too_late(now, now + left, service),
                late,
                "{left:?} left, answers take {service:?}"
            );
        }
        // A deadline already past.
        assert!(too_late(now + ms(5), now, ms(0)));
    }

    #[test]
    fn a_panicking_request_is_an_internal_error_not_a_lost_request() {
        let panics = async {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("a bug in the client");
            }
            Ok((200u16, 0u64, Instant::now()))
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        match block_on(within(deadline, panics)) {
            Outcome::Done(Err(kind)) => assert_eq!(kind, INTERNAL_ERROR),
            Outcome::Done(Ok(_)) => panic!("a panic counted as an answer"),
            Outcome::TimedOut => panic!("a panic counted as a timeout"),
        }
        // An answer passes through untouched.
        let fine = async { Ok((204u16, 3u64, Instant::now())) };
        assert!(matches!(
            block_on(within(deadline, fine)),
            Outcome::Done(Ok((204, 3, _)))
        ));
    }
}
