//! Client connections under hostile or broken peers: how many may be open at once, how long one may sit idle or
//! dribble its headers, and how accept errors are reported without flooding the log.
//!
//! hyper 1 has one header-read timer that starts as soon as a connection waits for a request, so it cannot tell
//! an idle keep-alive connection (which must outlive the load balancer's 60 s idle timeout, or the balancer reuses
//! a connection the service just closed and its client gets a 502) from a slowloris client that sent half a
//! header (which should be cut off in seconds). [`Watched`] wraps the socket and keeps the two apart: the
//! connection's phase is idle, reading a head, or busy with a request; each phase has its own deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// The connection's task, when a read went pending while busy (no deadline armed). hyper does not read
    /// again after writing a response unless woken, so the end of the request wakes it to arm the idle deadline.
    parked: Mutex<Option<Waker>>,
}

impl Activity {
    /// Marks a request in progress until the guard is dropped — also when its future is cancelled.
    pub fn begin(self: &Arc<Self>) -> BusyGuard {
        self.busy.store(true, Ordering::SeqCst);
        self.in_head.store(false, Ordering::Relaxed);
        BusyGuard(self.clone())
    }

    /// A keep-alive connection between requests: it has had one, and not a byte of the next has arrived. Safe
    /// to close, the client just reconnects. A connection that has not sent its first request yet is not: its
    /// client most likely is about to.
    pub fn idle(&self) -> bool {
        self.finished.load(Ordering::Relaxed) > 0
            && !self.busy.load(Ordering::SeqCst)
            && !self.in_head.load(Ordering::Relaxed)
    }

    /// Whether the connection was closed by one of the timeouts.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
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
    /// Waiting for a request since then.
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
            phase: Phase::Idle(now),
            seen_finished: 0,
            read_timer: Box::pin(tokio::time::sleep_until(now + timeouts.idle)),
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
            Phase::Head(since) => Some(since + self.timeouts.header_read),
            Phase::Busy => None,
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.phase {
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
                    if let Phase::Idle(_) = me.phase {
                        me.phase = Phase::Head(Instant::now());
                        me.activity.in_head.store(true, Ordering::Relaxed);
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

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() {
        let (mut w, _client, activity) = watched(Timeouts {
            header_read: Duration::from_secs(3600),
            idle: Duration::from_millis(50),
        });
        let mut buf = [0u8; 16];
        let e = tokio::time::timeout(Duration::from_secs(60), w.read(&mut buf))
            .await
            .expect("the idle timeout ends the read")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(activity.timed_out());
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
