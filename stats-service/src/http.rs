//! The HTTP side: routing, bodies, status codes. HTTP/1.1 with keep-alive on hyper.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{Db, DbError, DbErrorKind};
use crate::logparse::{self, Line};

#[derive(Debug, Default)]
pub struct HttpCounters {
    pub requests: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub lines_stored: AtomicU64,
    pub lines_skipped: AtomicU64,
    pub in_flight: AtomicUsize,
}

pub struct App {
    pub db: Db,
    pub max_body_bytes: usize,
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
}

fn error(status: StatusCode, error: &str, hint: &str) -> Resp {
    json(status, &ErrorBody { error, hint })
}

fn db_error(e: &DbError) -> Resp {
    match e.kind {
        DbErrorKind::TooManyConnections => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("database refused a connection: {}", e.message),
            "the database's max_connections is exhausted: pool connections (DB_MODE=pool) or go through a proxy",
        ),
        DbErrorKind::PoolTimeout => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no database connection became free in time",
            "the pool is too small for the load (DB_POOL_SIZE), or queries are slow",
        ),
        DbErrorKind::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, &format!("database unavailable: {}", e.message), "check DB_HOST/DB_PORT and that the database runs"),
        DbErrorKind::Query => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("query failed: {}", e.message), "see the service's log"),
    }
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
            counters: HttpCounters::default(),
            skipped_by_reason: Default::default(),
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Resp {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let r = self.route(req).await;
        if r.status().is_server_error() {
            self.counters.responses_5xx.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    async fn route(&self, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method(), segments.as_slice()) {
            (&Method::GET, ["healthz"]) => match self.db.ping().await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
                Err(e) => db_error(&e),
            },
            (&Method::GET, ["metrics"]) => json(StatusCode::OK, &self.metrics()),
            (&Method::GET, ["matches", id, "stats"]) => match id.parse::<i64>() {
                Ok(id) => match self.db.scoreboard(id).await {
                    Ok(Some(board)) => json(StatusCode::OK, &board),
                    Ok(None) => error(
                        StatusCode::NOT_FOUND,
                        &format!("no events logged for match {id}"),
                        "game servers POST /logs?match=ID",
                    ),
                    Err(e) => db_error(&e),
                },
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    &format!("match id `{id}` is not a number"),
                    "GET /matches/42/stats",
                ),
            },
            (&Method::POST, ["logs"]) => self.ingest(req).await,
            (_, ["healthz"] | ["metrics"] | ["matches", _, "stats"] | ["logs"]) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                "GET /matches/ID/stats, GET /healthz, POST /logs",
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {path}"),
                "GET /matches/ID/stats, GET /healthz, GET /metrics, POST /logs?match=ID",
            ),
        }
    }

    async fn ingest(&self, req: Request<Incoming>) -> Resp {
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
            return error(
                StatusCode::BAD_REQUEST,
                "which match? no `match` query parameter or X-Match-Id header",
                "POST /logs?match=42",
            );
        };
        let Ok(match_id) = raw_id.trim().parse::<i64>() else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("match id `{raw_id}` is not a number"),
                "POST /logs?match=42",
            );
        };
        let body = match Limited::new(req.into_body(), self.max_body_bytes)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {} bytes", self.max_body_bytes),
                    "send logs in smaller batches, or raise MAX_BODY_BYTES",
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
                Err(e) => return db_error(&e),
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
            "lines_stored": h.lines_stored.load(Ordering::Relaxed),
            "lines_skipped": h.lines_skipped.load(Ordering::Relaxed),
            "lines_skipped_by_reason": skipped,
            "db_connections_opened": d.connections_opened.load(Ordering::Relaxed),
            "db_connections_open": self.db.open_connections(),
            "db_too_many_connections": d.too_many_connections.load(Ordering::Relaxed),
            "db_pool_timeouts": d.pool_timeouts.load(Ordering::Relaxed),
            "db_other_errors": d.other_errors.load(Ordering::Relaxed),
        })
    }
}

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning or exiting.
                eprintln!("stats-service: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let app = app.clone();
                async move {
                    app.counters.in_flight.fetch_add(1, Ordering::Relaxed);
                    let r = app.handle(req).await;
                    app.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
    let start = std::time::Instant::now();
    while app.counters.in_flight.load(Ordering::Relaxed) > 0 && start.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
