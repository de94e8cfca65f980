//! The HTTP side: the accept loop, routing, bodies, status codes, request ids. HTTP/1.1 with keep-alive on hyper.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use crate::config::Config;
use crate::connections::{shed_at_cap, AcceptBackoff, Activity, LogEvery, Timeouts, Watched};
use crate::db::{Db, DbError, DbErrorKind};
use crate::logparse::{self, Line};

#[derive(Debug, Default)]
pub struct HttpCounters {
    pub requests: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub lines_stored: AtomicU64,
    pub lines_skipped: AtomicU64,
    pub in_flight: AtomicUsize,
    pub connections_open: AtomicUsize,
    /// Closed by the header-read, idle or stuck-write timeout.
    pub connections_timed_out: AtomicU64,
}

/// Counts one up while alive. A drop guard, because hyper drops a request's future when its client hangs up
/// mid-request, and code after an `.await` then never runs.
struct Gauge<'a>(&'a AtomicUsize);

impl<'a> Gauge<'a> {
    fn up(g: &'a AtomicUsize) -> Gauge<'a> {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct App {
    pub db: Db,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    pub timeouts: Timeouts,
    pub counters: HttpCounters,
    skipped_by_reason: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

type Resp = Response<Full<Bytes>>;

fn json<T: Serialize>(status: StatusCode, body: &T) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    hint: &'a str,
    /// Also the `x-request-id` header, and in the service's log line about this request.
    request_id: &'a str,
}

/// One request being handled: its id, and what the log says about it.
struct Req<'a> {
    id: &'a str,
    method: &'a Method,
    path: &'a str,
}

impl Req<'_> {
    fn error(&self, status: StatusCode, error: &str, hint: &str) -> Resp {
        json(
            status,
            &ErrorBody {
                error,
                hint,
                request_id: self.id,
            },
        )
    }

    /// The database's own words can name users, databases and hosts: they go to the log under the request id,
    /// and the client gets what kind of failure it was and that id.
    fn db_error(&self, e: &DbError) -> Resp {
        eprintln!(
            "stats-service: request {} {} {}: {}: {}",
            self.id,
            self.method,
            self.path,
            e.kind.as_str(),
            e.message
        );
        let see_log = format!(
            "the service's log has the detail under request id {}",
            self.id
        );
        match e.kind {
            DbErrorKind::TooManyConnections => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database refused a connection: too many connections",
                "the database's max_connections is exhausted: pool connections (DB_MODE=pool) or go through a proxy",
            ),
            DbErrorKind::PoolTimeout => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no database connection became free in time",
                "the pool is too small for the load (DB_POOL_SIZE), or queries are slow",
            ),
            DbErrorKind::Timeout => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer in time",
                &format!("it is stalled or overloaded; the query was cancelled after DB_STATEMENT_TIMEOUT_MS; {see_log}"),
            ),
            DbErrorKind::Unavailable => self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable",
                &format!("check DB_HOST/DB_PORT, DB_USER/DB_NAME/DB_PASSWORD and that the database runs; {see_log}"),
            ),
            DbErrorKind::Query => self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "query failed",
                &see_log,
            ),
        }
    }
}

/// Unique per request and per process: a tag from the start time and pid, then a counter.
fn next_request_id() -> String {
    static TAG: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let tag = TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    });
    format!("{tag:08x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Serialize)]
struct Ingested {
    match_id: i64,
    lines: usize,
    stored: u64,
    skipped: BTreeMap<&'static str, u64>,
}

impl App {
    pub fn new(cfg: &Config) -> App {
        App {
            db: Db::new(cfg),
            max_body_bytes: cfg.max_body_bytes,
            body_read_timeout: cfg.body_read_timeout,
            timeouts: Timeouts {
                header_read: cfg.header_read_timeout,
                idle: cfg.idle_timeout,
            },
            counters: HttpCounters::default(),
            skipped_by_reason: Default::default(),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Resp {
        let _in_flight = Gauge::up(&self.counters.in_flight);
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let id = next_request_id();
        let mut r = self.route(req, &id).await;
        if r.status().is_server_error() {
            self.counters.responses_5xx.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert("x-request-id", v);
        }
        r
    }

    async fn route(&self, req: Request<Incoming>, id: &str) -> Resp {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        let rq = Req {
            id,
            method: &method,
            path: &path,
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["healthz"]) => match self.db.ping().await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
                Err(e) => rq.db_error(&e),
            },
            (&Method::GET, ["metrics"]) => json(StatusCode::OK, &self.metrics()),
            (&Method::GET, ["matches", id, "stats"]) => match id.parse::<i64>() {
                Ok(id) => match self.db.scoreboard(id).await {
                    Ok(Some(board)) => json(StatusCode::OK, &board),
                    Ok(None) => rq.error(
                        StatusCode::NOT_FOUND,
                        &format!("no events logged for match {id}"),
                        "game servers POST /logs?match=ID",
                    ),
                    Err(e) => rq.db_error(&e),
                },
                Err(_) => rq.error(
                    StatusCode::BAD_REQUEST,
                    &format!("match id `{id}` is not a number"),
                    "GET /matches/42/stats",
                ),
            },
            (&Method::POST, ["logs"]) => self.ingest(req, &rq).await,
            (_, ["healthz"] | ["metrics"] | ["matches", _, "stats"] | ["logs"]) => rq.error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "GET /matches/ID/stats, GET /healthz, POST /logs",
            ),
            _ => rq.error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {path}"),
                "GET /matches/ID/stats, GET /healthz, GET /metrics, POST /logs?match=ID",
            ),
        }
    }

    async fn ingest(&self, req: Request<Incoming>, rq: &Req<'_>) -> Resp {
        let from_query = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("match="))
                .map(str::to_string)
        });
        let from_header = req
            .headers()
            .get("x-match-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Some(raw_id) = from_query.or(from_header) else {
            return rq.error(
                StatusCode::BAD_REQUEST,
                "which match? no `match` query parameter or X-Match-Id header",
                "POST /logs?match=42",
            );
        };
        let Ok(match_id) = raw_id.trim().parse::<i64>() else {
            return rq.error(
                StatusCode::BAD_REQUEST,
                &format!("match id `{raw_id}` is not a number"),
                "POST /logs?match=42",
            );
        };
        // A client that announces a body and sends it a byte at a time must not hold the request forever.
        let collect = Limited::new(req.into_body(), self.max_body_bytes).collect();
        let body = match tokio::time::timeout(self.body_read_timeout, collect).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) if e.is::<LengthLimitError>() => {
                return rq.error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {} bytes", self.max_body_bytes),
                    "send logs in smaller batches, or raise MAX_BODY_BYTES",
                )
            }
            Ok(Err(_)) => {
                return rq.error(
                    StatusCode::BAD_REQUEST,
                    "the body could not be read",
                    "send the batch with a Content-Length or chunked encoding, complete",
                )
            }
            Err(_) => {
                return rq.error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the body did not arrive within {} ms",
                        self.body_read_timeout.as_millis()
                    ),
                    "send each batch at once, or raise BODY_READ_TIMEOUT_MS",
                )
            }
        };
        // Invalid UTF-8 (a player name cut mid-character, say) must not lose the batch.
        let text = String::from_utf8_lossy(&body);
        let lines = logparse::parse(&text);
        let mut events = Vec::new();
        let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
        for l in &lines {
            match l {
                Line::Event { logged_at, event } => events.push((*logged_at, event.clone())),
                Line::Skipped(s) => *skipped.entry(s.as_str()).or_default() += 1,
            }
        }
        let stored = if events.is_empty() {
            0
        } else {
            match self.db.store(match_id, &events).await {
                Ok(s) => s.match_events + s.player_events,
                Err(e) => return rq.db_error(&e),
            }
        };
        self.counters
            .lines_stored
            .fetch_add(stored, Ordering::Relaxed);
        let skipped_total: u64 = skipped.values().sum();
        self.counters
            .lines_skipped
            .fetch_add(skipped_total, Ordering::Relaxed);
        if skipped_total > 0 {
            let mut by = self
                .skipped_by_reason
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (k, v) in &skipped {
                *by.entry(k).or_default() += v;
            }
        }
        json(
            StatusCode::OK,
            &Ingested {
                match_id,
                lines: lines.len(),
                stored,
                skipped,
            },
        )
    }

    pub fn metrics(&self) -> serde_json::Value {
        let h = &self.counters;
        let d = &self.db.counters;
        let skipped = self
            .skipped_by_reason
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        serde_json::json!({
            "requests": h.requests.load(Ordering::Relaxed),
            "in_flight": h.in_flight.load(Ordering::Relaxed),
            "responses_5xx": h.responses_5xx.load(Ordering::Relaxed),
            "connections_open": h.connections_open.load(Ordering::Relaxed),
            "connections_timed_out": h.connections_timed_out.load(Ordering::Relaxed),
            "lines_stored": h.lines_stored.load(Ordering::Relaxed),
            "lines_skipped": h.lines_skipped.load(Ordering::Relaxed),
            "lines_skipped_by_reason": skipped,
            "db_connections_opened": d.connections_opened.load(Ordering::Relaxed),
            "db_connections_open": self.db.open_connections(),
            "db_too_many_connections": d.too_many_connections.load(Ordering::Relaxed),
            "db_pool_timeouts": d.pool_timeouts.load(Ordering::Relaxed),
            "db_timeouts": d.timeouts.load(Ordering::Relaxed),
            "db_other_errors": d.other_errors.load(Ordering::Relaxed),
        })
    }
}

/// How often a recurring listener problem (accept errors, the connection cap reached) is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to `drain` to finish.
///
/// At most `max_connections` are served at once. At the cap the loop stops calling `accept` (one connection
/// accepted and held aside), so new connections wait in the kernel's listen backlog (back-pressure) rather than
/// being accepted and dropped. Connections that have not sent a byte are then closed to make room, and once none is
/// left, idle keep-alive connections, as nginx does when it runs out of connections: otherwise they hold their slots
/// for a whole timeout while clients with a request wait.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    max_connections: usize,
) {
    tokio::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut backoff = AcceptBackoff::default();
    let mut accept_log = LogEvery::new(LOG_EVERY);
    let mut full_log = LogEvery::new(LOG_EVERY);
    let shed_idle = Arc::new(Notify::new());
    let silent_open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Whether a shedding round may close idle keep-alive connections too (not in the first: see below).
    let idle_too = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // How many were silent when the current shedding round began.
    let silent_at_round = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    'serve: loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff.succeeded();
                s
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning or exiting, and say so once
                // in a while rather than for every attempt.
                if let Some(more) = accept_log.should_log(Instant::now()) {
                    eprintln!("stats-service: accept failed: {e}{}", also(more, "failure"));
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.failed()) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(more) = full_log.should_log(Instant::now()) {
                    eprintln!(
                        "stats-service: {max_connections} connections open (MAX_CONNECTIONS): new ones wait in the listen backlog{}",
                        also(more, "time")
                    );
                }
                // This one connection is held unserved (one descriptor over the cap) and the rest stay in the
                // backlog. Someone is waiting, so silent, then idle keep-alive connections make room; again
                // every second, for connections that became silent or idle meanwhile. The first round sheds
                // only silent connections: one accepted just now is not yet known to be silent, and an idle
                // keep-alive client should not lose its connection to that race.
                let mut round = 0u32;
                loop {
                    idle_too.store(round > 0, Ordering::SeqCst);
                    // Taken before anyone is woken: a silent connection that closes on this round must not make an
                    // idle one think there are no silent ones left.
                    silent_at_round.store(silent_open.load(Ordering::SeqCst), Ordering::SeqCst);
                    round = round.saturating_add(1);
                    shed_idle.notify_waiters();
                    tokio::select! {
                        p = permits.clone().acquire_owned() => match p {
                            Ok(p) => break p,
                            Err(_) => break 'serve,
                        },
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = &mut shutdown => break 'serve,
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let shed_idle = shed_idle.clone();
        let silent_open = silent_open.clone();
        let idle_too = idle_too.clone();
        let silent_at_round = silent_at_round.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = Gauge::up(&app.counters.connections_open);
            let activity = Arc::new(Activity::counted(silent_open.clone()));
            let io = TokioIo::new(Watched::new(stream, activity.clone(), app.timeouts));
            let svc_app = app.clone();
            let svc_activity = activity.clone();
            let svc = service_fn(move |req| {
                // Busy from the moment hyper has the headers, so the header timeout no longer applies.
                let busy = svc_activity.begin();
                let app = svc_app.clone();
                async move {
                    let r = app.handle(req).await;
                    drop(busy);
                    Ok::<_, Infallible>(r)
                }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc);
            tokio::pin!(conn);
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = shed_idle.notified() => {
                        let silent_now = silent_at_round.load(Ordering::SeqCst);
                        let idle = activity.idle() && idle_too.load(Ordering::SeqCst);
                        if shed_at_cap(activity.silent(), idle, silent_now) {
                            // hyper closes an idle connection at once, and lets a busy one finish first.
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            if activity.timed_out() {
                app.counters
                    .connections_timed_out
                    .fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Closed now, so new connections are refused (and a load balancer retries elsewhere) instead of queueing.
    drop(listener);
    let start = std::time::Instant::now();
    while app.counters.in_flight.load(Ordering::Relaxed) > 0 && start.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn also(suppressed: u64, what: &str) -> String {
    match suppressed {
        0 => String::new(),
        1 => format!(" (and 1 more {what} not logged)"),
        n => format!(" (and {n} more {what}s not logged)"),
    }
}
