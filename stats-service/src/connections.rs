//! Client connections under hostile or broken peers: how many may be open at once, how long one may sit idle or
//! dribble its headers, and how accept errors are reported without flooding the log.
//!
//! hyper 1 has one header-read timer that starts as soon as a connection waits for a request, so it cannot tell
//! an idle keep-alive connection (which must outlive the load balancer's 60 s idle timeout, or the balancer reuses
//! a connection the service just closed and its client gets a 502) from a slowloris client that sent half a
//! header (which should be cut off in seconds). [`Watched`] wraps the socket and keeps the two apart: the
//! connection's phase is new (no request yet), idle, reading a head, or busy with a request; each phase has its
//! own deadline. A new connection gets the header-read deadline, not the idle one: the keep-alive allowance is for
//! clients that have been served, and a client that connects and never speaks would otherwise hold a connection
//! (and a file descriptor) for the whole idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::config::DbMode;

/// File descriptors the process needs besides client and database connections: stdio, the listener, the runtime's
/// epoll and wakers, signal handling, and slack for a cancel request or a log file.
const BASE_FDS: u64 = 32;

/// The connection cap actually used, and why it is lower than `MAX_CONNECTIONS` when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cap {
    pub limit: usize,
    pub lowered_because: Option<String>,
}

/// Past the open-file limit `accept` fails with EMFILE and the database pool cannot open a connection either, so
/// the cap leaves room for the database connections (one per request in flight in per-request mode).
pub fn connection_cap(configured: usize, open_files: Option<u64>, mode: DbMode) -> Cap {
    let Some(nofile) = open_files else {
        return Cap {
            limit: configured,
            lowered_because: None,
        };
    };
    let spare = nofile.saturating_sub(BASE_FDS);
    let room = match mode {
        DbMode::Pool { size } => spare.saturating_sub(size as u64),
        DbMode::PerRequest { .. } => spare / 2,
    };
    let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    if room >= configured {
        return Cap {
            limit: configured,
            lowered_because: None,
        };
    }
    Cap {
        limit: room,
        lowered_because: Some(format!(
            "MAX_CONNECTIONS {configured} lowered to {room}: the process may open {nofile} files (ulimit -n), \
             and database connections need some of them; raise the limit to allow more"
        )),
    }
}

/// The soft limit on open files, or `None` when unlimited or unknown.
// `rlim_t` is u64 on the 64-bit targets clippy sees, but u32 on 32-bit Linux: the cast is needed there.
#[allow(clippy::unnecessary_cast)]
pub fn open_file_limit() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0
        || r.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(r.rlim_cur as u64)
}

/// Logs a recurring problem at most once per interval, saying how many were not logged in between.
#[derive(Debug)]
pub struct LogEvery {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogEvery {
    pub fn new(interval: Duration) -> LogEvery {
        LogEvery {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were suppressed since the last one.
    pub fn should_log(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// How long to wait after a failed `accept`: doubling from 10 ms to 1 s, so running out of file descriptors
/// neither spins a core nor stalls long after one is free again.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    pub fn failed(&mut self) -> Duration {
        let d = self.next.unwrap_or(Self::FIRST);
        self.next = Some((d * 2).min(Self::MOST));
        d
    }

    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

/// What the request handler tells the socket wrapper: whether a request is being handled, and how many were.
#[derive(Debug, Default)]
pub struct Activity {
    busy: AtomicBool,
    /// Part of a request has arrived, its headers not all yet.
    in_head: AtomicBool,
    finished: AtomicU64,
    timed_out: AtomicBool,
    /// No byte has arrived, and a read found none waiting: the client is connected but silent.
    silent: AtomicBool,
    /// How many connections sharing it are silent now (see [`shed_at_cap`]); counted only when given.
    silent_open: Option<Arc<AtomicUsize>>,
    /// The connection's task, when a read went pending while busy (no deadline armed). hyper does not read
    /// again after writing a response unless woken, so the end of the request wakes it to arm the idle deadline.
    parked: Mutex<Option<Waker>>,
}

impl Activity {
    /// An activity that counts itself in `silent_open` while its connection is silent.
    pub fn counted(silent_open: Arc<AtomicUsize>) -> Activity {
        let mut a = Activity::default();
        a.silent_open = Some(silent_open);
        a
    }

    /// Marks a request in progress until the guard is dropped — also when its future is cancelled.
    pub fn begin(self: &Arc<Self>) -> BusyGuard {
        self.busy.store(true, Ordering::SeqCst);
        self.in_head.store(false, Ordering::Relaxed);
        BusyGuard(self.clone())
    }

    /// A keep-alive connection between requests: it has had one, and not a byte of the next has arrived. Safe
    /// to close, the client just reconnects.
    pub fn idle(&self) -> bool {
        self.finished.load(Ordering::Relaxed) > 0
            && !self.busy.load(Ordering::SeqCst)
            && !self.in_head.load(Ordering::Relaxed)
    }

    /// A connection that has not sent a byte, and had none waiting when it was read: closing it costs nobody a
    /// request. (A client whose request is still on the wire at that instant gets a reset and retries, as with an
    /// idle keep-alive connection closed just as its next request left.)
    pub fn silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    /// Whether the connection was closed by one of the timeouts.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn set_silent(&self, silent: bool) {
        if self.silent.swap(silent, Ordering::SeqCst) != silent {
            if let Some(n) = &self.silent_open {
                if silent {
                    n.fetch_add(1, Ordering::SeqCst);
                } else {
                    n.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.set_silent(false);
    }
}

/// At the connection cap, with a client waiting: whether this connection should be closed to make room.
/// Connections that never spoke go first; keep-alive ones idle between requests only once none is left, since
/// their clients would have to reconnect. A connection busy or part-way through a head is never closed.
pub fn shed_at_cap(silent: bool, idle: bool, silent_open: usize) -> bool {
    silent || (idle && silent_open == 0)
}

pub struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
        self.0.in_head.store(false, Ordering::Relaxed);
        self.0.busy.store(false, Ordering::SeqCst);
        let parked = self
            .0
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = parked {
            w.wake();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the first byte of a request to the end of its headers.
    pub header_read: Duration,
    /// With no request and no byte of one; also how long a response write may be stuck on a client that does
    /// not read.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A connection accepted then that has not finished sending its first request's headers.
    New(Instant),
    /// Between requests of a keep-alive connection since then, not a byte of the next one yet.
    Idle(Instant),
    /// A request's first byte arrived then; its headers have not all arrived yet.
    Head(Instant),
    /// The handler has the request; its body (bounded by the handler) and the database set the pace.
    Busy,
}

/// A socket whose reads fail with `TimedOut` once the current phase's deadline passes (see the module doc).
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    timeouts: Timeouts,
    phase: Phase,
    /// A byte has arrived on this connection.
    spoke: bool,
    seen_finished: u64,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_stuck_since: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: Option<Instant>,
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Arc<Activity>, timeouts: Timeouts) -> Watched<T> {
        let now = Instant::now();
        Watched {
            io,
            activity,
            timeouts,
            phase: Phase::New(now),
            spoke: false,
            seen_finished: 0,
            read_timer: Box::pin(tokio::time::sleep_until(now + timeouts.header_read)),
            read_armed: None,
            write_stuck_since: None,
            write_timer: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
            write_armed: None,
        }
    }

    /// Follows the handler: busy while it has a request, idle from the moment it is done with one.
    fn sync(&mut self) {
        if self.activity.busy.load(Ordering::SeqCst) {
            self.phase = Phase::Busy;
            self.activity.set_silent(false);
            self.activity.in_head.store(false, Ordering::Relaxed);
            return;
        }
        let finished = self.activity.finished.load(Ordering::Relaxed);
        if finished != self.seen_finished || self.phase == Phase::Busy {
            self.seen_finished = finished;
            self.phase = Phase::Idle(Instant::now());
            self.activity.in_head.store(false, Ordering::Relaxed);
        }
    }

    fn read_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle(since) => Some(since + self.timeouts.idle),
            // From the accept to the end of the first request's headers, however the bytes trickle in.
            Phase::New(since) | Phase::Head(since) => Some(since + self.timeouts.header_read),
            Phase::Busy => None,
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
            Phase::New(_) => "waiting for the first request",
            Phase::Head(_) => "reading the request headers",
            _ => "idle connection",
        }
    }

    fn expired(&self, what: &str) -> io::Error {
        self.activity.timed_out.store(true, Ordering::Relaxed);
        io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
    }
}

/// Arms `timer` for `deadline` (re-arming only when it moved) and says whether it has passed; a pending timer
/// wakes the task when it does.
fn passed(
    timer: &mut Pin<Box<Sleep>>,
    armed: &mut Option<Instant>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    if *armed != Some(deadline) {
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
    }
    timer.as_mut().poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        me.sync();
        // Checked before reading too: a client dribbling a byte whenever the socket is polled still runs out.
        if let Some(deadline) = me.read_deadline() {
            if Instant::now() >= deadline {
                return Poll::Ready(Err(me.expired(me.phase_name())));
            }
        }
        let before = buf.filled().len();
        match Pin::new(&mut me.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    match me.phase {
                        Phase::Idle(_) => {
                            me.phase = Phase::Head(Instant::now());
                            me.activity.in_head.store(true, Ordering::Relaxed);
                        }
                        // The first request's deadline keeps counting from the accept.
                        Phase::New(_) => {
                            me.spoke = true;
                            me.activity.set_silent(false);
                        }
                        _ => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some(deadline) = me.read_deadline() else {
                    *me.activity.parked.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(cx.waker().clone());
                    // The request may have ended between `sync` and parking: then nobody wakes us.
                    if !me.activity.busy.load(Ordering::SeqCst) {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                // `New` lasts until the first head is complete: silent only while not a byte has come.
                if matches!(me.phase, Phase::New(_)) && !me.spoke {
                    me.activity.set_silent(true);
                }
                if passed(&mut me.read_timer, &mut me.read_armed, deadline, cx) {
                    return Poll::Ready(Err(me.expired(me.phase_name())));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// A write that cannot proceed (the client does not read) fails after the idle timeout.
    fn after_write<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let since = *self.write_stuck_since.get_or_insert_with(Instant::now);
                let deadline = since + self.timeouts.idle;
                if passed(&mut self.write_timer, &mut self.write_armed, deadline, cx) {
                    return Poll::Ready(Err(self.expired("writing the response")));
                }
                Poll::Pending
            }
            ready => {
                self.write_stuck_since = None;
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_write(cx, buf);
        me.after_write(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_write_vectored(cx, bufs);
        me.after_write(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        let r = Pin::new(&mut me.io).poll_flush(cx);
        me.after_write(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_cap_leaves_room_for_database_connections() {
        let pool = DbMode::Pool { size: 10 };
        let per_request = DbMode::PerRequest {
            idle: Duration::from_secs(1),
        };
        // (configured, ulimit -n, mode, cap, lowered)
        let cases = [
            (4096, None, pool, 4096, false),
            (4096, Some(1_048_576), pool, 4096, false),
            (4096, Some(256), pool, 214, true),
            (100, Some(256), pool, 100, false),
            (4096, Some(256), per_request, 112, true),
            (4096, Some(20), pool, 1, true),
            (4096, Some(0), per_request, 1, true),
        ];
        for (configured, nofile, mode, want, lowered) in cases {
            let cap = connection_cap(configured, nofile, mode);
            assert_eq!(cap.limit, want, "{configured} {nofile:?} {mode:?}");
            assert_eq!(
                cap.lowered_because.is_some(),
                lowered,
                "{configured} {nofile:?} {mode:?}: {cap:?}"
            );
        }
        let why = connection_cap(4096, Some(256), pool)
            .lowered_because
            .unwrap();
        assert!(why.contains("ulimit -n") && why.contains("214"), "{why}");
    }

    #[test]
    fn accept_errors_are_logged_once_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut log = LogEvery::new(ms(1000));
        // (at, logged with this many suppressed before it)
        let cases = [
            (0, Some(0)),
            (10, None),
            (500, None),
            (999, None),
            (1000, Some(3)),
            (1001, None),
            (5000, Some(1)),
            (5001, None),
        ];
        for (at, want) in cases {
            assert_eq!(log.should_log(t0 + ms(at)), want, "at {at} ms");
        }
    }

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }

    fn watched(
        timeouts: Timeouts,
    ) -> (
        Watched<tokio::io::DuplexStream>,
        tokio::io::DuplexStream,
        Arc<Activity>,
    ) {
        let (server, client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::default());
        (
            Watched::new(server, activity.clone(), timeouts),
            client,
            activity,
        )
    }

    /// The review finding: a client that connects and never speaks got the 75 s keep-alive allowance.
    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout_not_the_idle_one() {
        let (mut w, _client, activity) = watched(Timeouts {
            header_read: Duration::from_millis(50),
            idle: Duration::from_secs(3600),
        });
        let mut buf = [0u8; 16];
        let e = tokio::time::timeout(Duration::from_secs(60), w.read(&mut buf))
            .await
            .expect("the header timeout ends the read")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("first request"), "{e}");
        assert!(activity.timed_out());
    }

    /// A client that waits and then starts its first request does not get a fresh header allowance: the deadline
    /// counts from the accept, so the read fails before a header timeout has passed since the first byte.
    #[tokio::test]
    async fn the_first_request_must_be_in_within_the_header_timeout_of_the_accept() {
        let header_read = Duration::from_secs(2);
        let (mut w, mut client, _activity) = watched(Timeouts {
            header_read,
            idle: Duration::from_secs(3600),
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let first_byte = Instant::now();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let read_all = async {
            loop {
                if let Err(e) = w.read(&mut buf).await {
                    return e;
                }
            }
        };
        let e = tokio::time::timeout(Duration::from_secs(60), read_all)
            .await
            .expect("the header timeout ends the read");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Counted from the first byte it would end no earlier than this; from the accept it ends about 1.5 s
        // sooner, which leaves a busy machine that much slack.
        assert!(
            first_byte.elapsed() < header_read,
            "the deadline was counted from the first byte, not the accept"
        );
    }

    #[tokio::test]
    async fn the_idle_timeout_applies_between_requests_not_before_the_first() {
        let (mut w, mut client, activity) = watched(Timeouts {
            header_read: Duration::from_millis(30),
            idle: Duration::from_secs(3600),
        });
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = w.read(&mut buf).await.unwrap();
        assert!(n > 0, "the request reached the server side");
        // The handler has the request, and answers it.
        drop(activity.begin());
        // Far past the header timeout, the served keep-alive connection is still open.
        let r = tokio::time::timeout(Duration::from_millis(300), w.read(&mut buf)).await;
        assert!(
            r.is_err(),
            "idle between requests is allowed the idle timeout: {r:?}"
        );
        assert!(!activity.timed_out());
    }

    #[tokio::test]
    async fn a_connection_is_silent_until_its_first_byte_and_counted_while_it_is() {
        let silent_open = Arc::new(AtomicUsize::new(0));
        let (server, mut client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::counted(silent_open.clone()));
        let mut w = Watched::new(
            server,
            activity.clone(),
            Timeouts {
                header_read: Duration::from_secs(3600),
                idle: Duration::from_secs(3600),
            },
        );
        assert!(!activity.silent(), "not before a read found nothing");
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_millis(20), w.read(&mut buf)).await;
        assert!(r.is_err());
        assert!(activity.silent());
        assert_eq!(silent_open.load(Ordering::SeqCst), 1);
        // Reading again while still silent counts it once.
        let _ = tokio::time::timeout(Duration::from_millis(20), w.read(&mut buf)).await;
        assert_eq!(silent_open.load(Ordering::SeqCst), 1);
        client.write_all(b"G").await.unwrap();
        assert_eq!(w.read(&mut buf).await.unwrap(), 1);
        assert!(!activity.silent());
        assert_eq!(silent_open.load(Ordering::SeqCst), 0);
        // Half a head, then nothing: spoke, so not silent again.
        let _ = tokio::time::timeout(Duration::from_millis(20), w.read(&mut buf)).await;
        assert!(!activity.silent());
        assert_eq!(silent_open.load(Ordering::SeqCst), 0);

        // A silent connection that goes away is no longer counted.
        let (server, _client) = tokio::io::duplex(1024);
        let activity = Arc::new(Activity::counted(silent_open.clone()));
        let mut w = Watched::new(
            server,
            activity.clone(),
            Timeouts {
                header_read: Duration::from_secs(3600),
                idle: Duration::from_secs(3600),
            },
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), w.read(&mut buf)).await;
        assert_eq!(silent_open.load(Ordering::SeqCst), 1);
        drop(w);
        drop(activity);
        assert_eq!(silent_open.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn at_the_cap_silent_connections_are_shed_first_then_idle_keep_alive_ones() {
        // (silent, idle, silent connections open, shed)
        let cases = [
            (true, false, 1, true),
            (true, false, 5, true),
            (false, true, 1, false),
            (false, true, 0, true),
            (false, false, 0, false),
            (false, false, 3, false),
        ];
        for (silent, idle, open, want) in cases {
            assert_eq!(
                shed_at_cap(silent, idle, open),
                want,
                "silent {silent}, idle {idle}, {open} silent open"
            );
        }
    }

    #[tokio::test]
    async fn a_dribbled_header_is_cut_off_by_the_header_timeout_not_the_idle_one() {
        let (mut w, mut client, activity) = watched(Timeouts {
            header_read: Duration::from_millis(50),
            idle: Duration::from_secs(3600),
        });
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = w.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        // More bytes keep arriving, but the headers never end: the deadline counts from the first byte.
        let dribble = async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                if client.write_all(b"x").await.is_err() {
                    return;
                }
            }
        };
        let read_all = async {
            loop {
                if let Err(e) = w.read(&mut buf).await {
                    return e;
                }
            }
        };
        let e = tokio::select! {
            e = read_all => e,
            _ = dribble => panic!("the writer stopped first"),
            _ = tokio::time::sleep(Duration::from_secs(60)) => panic!("never timed out"),
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(activity.timed_out());
    }

    #[tokio::test]
    async fn a_response_stuck_on_a_client_that_does_not_read_fails_after_the_idle_timeout() {
        let (server, _client) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::default());
        let mut w = Watched::new(
            server,
            activity.clone(),
            Timeouts {
                header_read: Duration::from_secs(3600),
                idle: Duration::from_millis(50),
            },
        );
        // The client never reads: after 64 bytes the write cannot proceed.
        let e = tokio::time::timeout(Duration::from_secs(60), w.write_all(&[b'x'; 4096]))
            .await
            .expect("the stuck write ends")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(activity.timed_out());
    }

    /// hyper parks its read while the handler runs and, after writing the response, reads again only when woken:
    /// the end of the request must wake it, or the idle deadline is never armed.
    #[tokio::test]
    async fn a_read_parked_while_busy_gets_the_idle_deadline_when_the_request_ends() {
        let (mut w, _client, activity) = watched(Timeouts {
            header_read: Duration::from_secs(3600),
            idle: Duration::from_millis(20),
        });
        let guard = activity.begin();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            w.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(guard);
        let r = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("woken when the request ended")
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn only_a_connection_between_requests_is_idle_enough_to_close() {
        let activity = Arc::new(Activity::default());
        assert!(!activity.idle(), "before its first request");
        let guard = activity.begin();
        assert!(!activity.idle(), "busy");
        drop(guard);
        assert!(activity.idle(), "after a request");
        activity.in_head.store(true, Ordering::Relaxed);
        assert!(!activity.idle(), "part of the next request arrived");
    }

    #[tokio::test]
    async fn a_busy_connection_has_no_read_deadline_and_is_idle_again_after() {
        let (mut w, mut client, activity) = watched(Timeouts {
            header_read: Duration::from_millis(20),
            idle: Duration::from_millis(20),
        });
        let guard = activity.begin();
        let mut buf = [0u8; 16];
        // Far past both timeouts while busy (a slow query), the read is still just pending.
        let r = tokio::time::timeout(Duration::from_millis(200), w.read(&mut buf)).await;
        assert!(r.is_err(), "no timeout while busy: {r:?}");
        client.write_all(b"body").await.unwrap();
        assert_eq!(w.read(&mut buf).await.unwrap(), 4);
        drop(guard);
        let e = tokio::time::timeout(Duration::from_secs(60), w.read(&mut buf))
            .await
            .expect("idle again once the request is done")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
