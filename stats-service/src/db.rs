//! PostgreSQL: the schema, storing events, reading a scoreboard — through a bounded pool, or a connection of its
//! own for every request in flight (per-request mode).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde::Serialize;
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::config::{Config, DbMode};
use crate::logparse::Event;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS match_events (
    id            bigserial PRIMARY KEY,
    match_id      bigint      NOT NULL,
    logged_at     timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    kind          text        NOT NULL,
    map           text,
    score_ct      integer,
    score_t       integer,
    rounds_played integer,
    team          text,
    detail        text
);
CREATE INDEX IF NOT EXISTS match_events_by_match ON match_events (match_id, logged_at);
CREATE TABLE IF NOT EXISTS player_events (
    id              bigserial PRIMARY KEY,
    match_id        bigint      NOT NULL,
    logged_at       timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    kind            text        NOT NULL,
    player          text        NOT NULL,
    steam_id        text        NOT NULL,
    team            text        NOT NULL,
    victim          text        NOT NULL,
    victim_steam_id text        NOT NULL,
    victim_team     text        NOT NULL,
    weapon          text,
    damage          integer,
    hitgroup        text,
    headshot        boolean     NOT NULL DEFAULT false,
    flash           boolean     NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS player_events_by_match ON player_events (match_id, kind);
";

/// Why a database operation failed, as the HTTP layer needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbErrorKind {
    /// PostgreSQL (or the proxy) refused a new connection: `too many clients`.
    TooManyConnections,
    /// No pooled connection became free in time.
    PoolTimeout,
    /// The database could not be reached or the connection broke.
    Unavailable,
    /// A query (or the whole transaction) did not finish within the statement timeout.
    Timeout,
    /// A query failed.
    Query,
}

impl DbErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DbErrorKind::TooManyConnections => "too many connections",
            DbErrorKind::PoolTimeout => "pool timeout",
            DbErrorKind::Unavailable => "database unavailable",
            DbErrorKind::Timeout => "statement timeout",
            DbErrorKind::Query => "query failed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DbError {
    fn from_pg(e: tokio_postgres::Error, connecting: bool) -> DbError {
        let text = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        // PgBouncer answers an over-full client limit with a protocol error whose text says so.
        let too_many = e.code() == Some(&SqlState::TOO_MANY_CONNECTIONS)
            || text.contains("too many")
            || text.contains("no more connections");
        let kind = if too_many {
            DbErrorKind::TooManyConnections
        } else if connecting || e.is_closed() || e.as_db_error().is_none() {
            DbErrorKind::Unavailable
        } else {
            DbErrorKind::Query
        };
        DbError {
            kind,
            message: text,
        }
    }

    fn from_pool(e: PoolError) -> DbError {
        match e {
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => DbError {
                kind: DbErrorKind::PoolTimeout,
                message: "timed out waiting for a pooled connection".into(),
            },
            // Opening or checking a connection took too long: the database, not the pool, is the problem.
            PoolError::Timeout(t) => DbError {
                kind: DbErrorKind::Unavailable,
                message: format!(
                    "timed out {} a connection (DB_TIMEOUT_MS)",
                    match t {
                        deadpool_postgres::TimeoutType::Create => "opening",
                        _ => "checking",
                    }
                ),
            },
            PoolError::Backend(e) => DbError::from_pg(e, true),
            other => DbError {
                kind: DbErrorKind::Unavailable,
                message: other.to_string(),
            },
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DbCounters {
    pub connections_opened: AtomicU64,
    pub too_many_connections: AtomicU64,
    pub pool_timeouts: AtomicU64,
    /// Operations cut off by the statement timeout.
    pub timeouts: AtomicU64,
    pub other_errors: AtomicU64,
}

pub struct Db {
    /// Both modes keep connections in a deadpool pool: bounded and shared (pool mode), or grown by one for every
    /// request that finds none idle and shrunk only by the idle reaper (per-request mode).
    pool: Pool,
    schema: OnceCell<()>,
    statement_timeout: Duration,
    pub counters: Arc<DbCounters>,
}

/// The most connections per-request mode opens: above any Aurora PostgreSQL max_connections (its default formula
/// caps at 5,000), so the database, not the service, is what refuses. deadpool reserves a slot list this long.
const PER_REQUEST_MAX: usize = 10_000;

/// One borrowed connection, returned to the pool when dropped — unless an operation on it was cut short (timed
/// out, or its request's future dropped because the client hung up). Its query may then still be running, or
/// waiting on a lock, and the next request to borrow the connection would queue behind it: such a connection is
/// closed instead, and the server is asked to cancel the query so it stops holding a backend and its locks.
struct Conn {
    obj: Option<deadpool_postgres::Object>,
    cancel: tokio_postgres::CancelToken,
    /// Set while an operation runs; still set at drop means it did not finish.
    busy: bool,
    cancel_timeout: Duration,
}

impl Conn {
    fn new(obj: deadpool_postgres::Object, cancel_timeout: Duration) -> Conn {
        Conn {
            cancel: obj.cancel_token(),
            obj: Some(obj),
            busy: false,
            cancel_timeout,
        }
    }

    /// Ends an operation: the connection goes back to the pool when dropped, unless the operation timed out.
    fn settle<T>(&mut self, r: Result<T, DbError>) -> Result<T, DbError> {
        if !matches!(&r, Err(e) if e.kind == DbErrorKind::Timeout) {
            self.busy = false;
        }
        r
    }

    /// deadpool's wrapper: a `tokio_postgres::Client` that also caches prepared statements.
    fn client(&mut self) -> &mut deadpool_postgres::ClientWrapper {
        self.obj
            .as_deref_mut()
            .expect("only Drop takes the object out")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.busy {
            return;
        }
        if let Some(obj) = self.obj.take() {
            // Detached from the pool and dropped: the connection closes.
            drop(deadpool_postgres::Object::take(obj));
        }
        // PgBouncer and RDS Proxy forward cancel requests; a stalled database may not answer this either, so it
        // is bounded too. PostgreSQL would otherwise notice the closed connection only when it next writes to it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let cancel = self.cancel.clone();
            let bound = self.cancel_timeout;
            rt.spawn(async move {
                let _ = tokio::time::timeout(bound, cancel.cancel_query(NoTls)).await;
            });
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlayerLine {
    pub name: String,
    pub steam_id: String,
    pub team: String,
    pub kills: i64,
    pub deaths: i64,
    pub assists: i64,
    pub damage: i64,
    /// Average damage per round.
    pub adr: f64,
    /// Share of kills that were headshots, in percent.
    pub headshot_percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Score {
    pub ct: i32,
    pub t: i32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scoreboard {
    pub match_id: i64,
    pub map: Option<String>,
    pub score: Score,
    pub rounds_played: i32,
    /// Logged time of the newest event, RFC 3339.
    pub updated_at: Option<String>,
    pub players: Vec<PlayerLine>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Stored {
    pub match_events: u64,
    pub player_events: u64,
}

impl Db {
    pub fn new(cfg: &Config) -> Db {
        let counters = Arc::new(DbCounters::default());
        let mut pg = tokio_postgres::Config::new();
        pg.host(&cfg.db_host)
            .port(cfg.db_port)
            .user(&cfg.db_user)
            .dbname(&cfg.db_name)
            .application_name("stats-service")
            .connect_timeout(cfg.db_timeout);
        if let Some(p) = &cfg.db_password {
            pg.password(p);
        }
        let opened = counters.clone();
        let mgr = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let (size, wait) = match cfg.mode {
            DbMode::Pool { size } => (size, Some(cfg.db_timeout)),
            // Never waits for another request's connection: opens its own.
            DbMode::PerRequest { .. } => (PER_REQUEST_MAX, None),
        };
        let pool = Pool::builder(mgr)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(Some(cfg.db_timeout))
            .recycle_timeout(Some(cfg.db_timeout))
            .post_create(deadpool_postgres::Hook::sync_fn(move |_, _| {
                opened.connections_opened.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }))
            .build()
            .expect("a pool with a runtime and a size ≥ 1 always builds");
        if let (DbMode::PerRequest { idle }, Ok(rt)) =
            (cfg.mode, tokio::runtime::Handle::try_current())
        {
            // Warm containers are reclaimed after a while idle; so are these connections.
            let weak = pool.weak();
            rt.spawn(async move {
                let mut tick = tokio::time::interval(
                    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(10)),
                );
                loop {
                    tick.tick().await;
                    let Some(pool) = weak.upgrade() else { break };
                    pool.retain(|_, m| m.last_used() < idle);
                }
            });
        }
        Db {
            pool,
            schema: OnceCell::new(),
            statement_timeout: cfg.db_statement_timeout,
            counters,
        }
    }

    /// Connections open now (idle or in use).
    pub fn open_connections(&self) -> usize {
        self.pool.status().size
    }

    fn count(&self, e: &DbError) {
        let c = match e.kind {
            DbErrorKind::TooManyConnections => &self.counters.too_many_connections,
            DbErrorKind::PoolTimeout => &self.counters.pool_timeouts,
            DbErrorKind::Timeout => &self.counters.timeouts,
            _ => &self.counters.other_errors,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `op` within the statement timeout. Statement timeouts are kept on this side, not set with
    /// `SET statement_timeout`: a SET pins the session to one backend behind RDS Proxy, PgBouncer drops the
    /// `options` startup parameter, and only a client-side bound also covers a database that stopped answering at
    /// all. The caller marks its connection busy before and calls [`Conn::settle`] after, so a connection whose
    /// operation timed out is closed, not reused.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, DbError>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(self.statement_timeout, op).await {
            Ok(r) => r,
            Err(_) => {
                let e = DbError {
                    kind: DbErrorKind::Timeout,
                    message: format!(
                        "no answer within {} ms (DB_STATEMENT_TIMEOUT_MS); the query was cancelled and its connection closed",
                        self.statement_timeout.as_millis()
                    ),
                };
                self.count(&e);
                Err(e)
            }
        }
    }

    async fn conn(&self) -> Result<Conn, DbError> {
        let cancel_timeout = self.statement_timeout;
        let r = self
            .pool
            .get()
            .await
            .map(|o| Conn::new(o, cancel_timeout))
            .map_err(DbError::from_pool);
        let mut conn = r.inspect_err(|e| self.count(e))?;
        if self.schema.initialized() {
            return Ok(conn);
        }
        // The schema, once per process; retried by the next request when it failed.
        conn.busy = true;
        let c = &mut conn;
        let r = self
            .bounded(self.schema.get_or_try_init(move || async move {
                let tx = c
                    .client()
                    .transaction()
                    .await
                    .map_err(|e| DbError::from_pg(e, false))?;
                // Concurrent first requests (or replicas) must not race on CREATE TABLE.
                tx.batch_execute("SELECT pg_advisory_xact_lock(727174)")
                    .await
                    .map_err(|e| DbError::from_pg(e, false))?;
                tx.batch_execute(SCHEMA)
                    .await
                    .map_err(|e| DbError::from_pg(e, false))?;
                tx.commit().await.map_err(|e| DbError::from_pg(e, false))
            }))
            .await
            .map(|_| ());
        conn.settle(r).inspect_err(|e| {
            if e.kind != DbErrorKind::Timeout {
                self.count(e)
            }
        })?;
        Ok(conn)
    }

    fn fail(&self, e: tokio_postgres::Error) -> DbError {
        let e = DbError::from_pg(e, false);
        self.count(&e);
        e
    }

    /// Round-trips `SELECT 1`.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut c = self.conn().await?;
        c.busy = true;
        let r = self
            .bounded(async {
                c.client()
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| self.fail(e))
            })
            .await;
        c.settle(r).map(|_| ())
    }

    /// Stores a batch of events in one transaction.
    pub async fn store(
        &self,
        match_id: i64,
        events: &[(SystemTime, Event)],
    ) -> Result<Stored, DbError> {
        let mut m = MatchRows::default();
        let mut p = PlayerRows::default();
        for (at, e) in events {
            match e {
                Event::Status {
                    score_ct,
                    score_t,
                    map,
                    rounds_played,
                } => m.push(
                    *at,
                    e.kind(),
                    Some(map.clone()),
                    Some(*score_ct),
                    Some(*score_t),
                    Some(*rounds_played),
                    None,
                    None,
                ),
                Event::RoundStart | Event::RoundEnd => {
                    m.push(*at, e.kind(), None, None, None, None, None, None)
                }
                Event::RoundWon {
                    team,
                    how,
                    score_ct,
                    score_t,
                } => m.push(
                    *at,
                    e.kind(),
                    None,
                    Some(*score_ct),
                    Some(*score_t),
                    None,
                    Some(team.clone()),
                    Some(how.clone()),
                ),
                Event::Kill {
                    killer,
                    victim,
                    weapon,
                    headshot,
                } => p.push(
                    *at,
                    e.kind(),
                    killer,
                    victim,
                    Some(weapon.clone()),
                    None,
                    None,
                    *headshot,
                    false,
                ),
                Event::Assist {
                    assister,
                    victim,
                    flash,
                } => p.push(
                    *at,
                    e.kind(),
                    assister,
                    victim,
                    None,
                    None,
                    None,
                    false,
                    *flash,
                ),
                Event::Damage {
                    attacker,
                    victim,
                    weapon,
                    damage,
                    hitgroup,
                } => p.push(
                    *at,
                    e.kind(),
                    attacker,
                    victim,
                    Some(weapon.clone()),
                    Some(*damage),
                    Some(hitgroup.clone()),
                    false,
                    false,
                ),
            }
        }
        let mut conn = self.conn().await?;
        conn.busy = true;
        let r = self.bounded(self.insert(&mut conn, match_id, &m, &p)).await;
        conn.settle(r)
    }

    async fn insert(
        &self,
        conn: &mut Conn,
        match_id: i64,
        m: &MatchRows,
        p: &PlayerRows,
    ) -> Result<Stored, DbError> {
        let tx = conn
            .client()
            .transaction()
            .await
            .map_err(|e| self.fail(e))?;
        let mut stored = Stored::default();
        if !m.kind.is_empty() {
            stored.match_events = tx
                .execute(
                    "INSERT INTO match_events (match_id, logged_at, kind, map, score_ct, score_t, rounds_played, team, detail)
                     SELECT $1, * FROM UNNEST($2::timestamptz[], $3::text[], $4::text[], $5::int4[], $6::int4[], $7::int4[], $8::text[], $9::text[])",
                    &[&match_id, &m.at, &m.kind, &m.map, &m.score_ct, &m.score_t, &m.rounds, &m.team, &m.detail],
                )
                .await
                .map_err(|e| self.fail(e))?;
        }
        if !p.kind.is_empty() {
            stored.player_events = tx
                .execute(
                    "INSERT INTO player_events (match_id, logged_at, kind, player, steam_id, team, victim, victim_steam_id, victim_team, weapon, damage, hitgroup, headshot, flash)
                     SELECT $1, * FROM UNNEST($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int4[], $12::text[], $13::bool[], $14::bool[])",
                    &[&match_id, &p.at, &p.kind, &p.name, &p.steam, &p.team, &p.vname, &p.vsteam, &p.vteam, &p.weapon, &p.damage, &p.hitgroup, &p.headshot, &p.flash],
                )
                .await
                .map_err(|e| self.fail(e))?;
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(stored)
    }

    /// The live scoreboard, or `None` when nothing was logged for the match.
    pub async fn scoreboard(&self, match_id: i64) -> Result<Option<Scoreboard>, DbError> {
        let mut conn = self.conn().await?;
        conn.busy = true;
        let r = self
            .bounded(self.read_scoreboard(&mut conn, match_id))
            .await;
        conn.settle(r)
    }

    async fn read_scoreboard(
        &self,
        conn: &mut Conn,
        match_id: i64,
    ) -> Result<Option<Scoreboard>, DbError> {
        // Prepared once per connection: a poll then skips the parse round trip.
        let c: &deadpool_postgres::ClientWrapper = conn.client();
        let summary_stmt = c
            .prepare_cached(
                "SELECT count(*),
                        count(*) FILTER (WHERE kind = 'round_end'),
                        to_char(max(logged_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        (array_agg(map ORDER BY logged_at DESC, id DESC) FILTER (WHERE kind = 'status'))[1],
                        (array_agg(score_ct ORDER BY logged_at DESC, id DESC) FILTER (WHERE kind IN ('status', 'round_won')))[1],
                        (array_agg(score_t ORDER BY logged_at DESC, id DESC) FILTER (WHERE kind IN ('status', 'round_won')))[1],
                        (array_agg(rounds_played ORDER BY logged_at DESC, id DESC) FILTER (WHERE kind = 'status'))[1]
                   FROM match_events WHERE match_id = $1",
            )
            .await
            .map_err(|e| self.fail(e))?;
        let players_stmt = c
            .prepare_cached(
                "WITH ev AS (SELECT * FROM player_events WHERE match_id = $1),
                 people AS (SELECT steam_id, player AS name, team, logged_at, id FROM ev
                            UNION ALL SELECT victim_steam_id, victim, victim_team, logged_at, id FROM ev),
                 latest AS (SELECT DISTINCT ON (steam_id) steam_id, name, team FROM people ORDER BY steam_id, logged_at DESC, id DESC),
                 actor AS (
                   SELECT steam_id,
                          count(*) FILTER (WHERE kind = 'kill' AND victim_steam_id <> steam_id AND NOT (team <> '' AND team = victim_team)) AS kills,
                          count(*) FILTER (WHERE kind = 'kill' AND headshot AND victim_steam_id <> steam_id AND NOT (team <> '' AND team = victim_team)) AS hs,
                          count(*) FILTER (WHERE kind = 'assist') AS assists,
                          coalesce(sum(damage) FILTER (WHERE kind = 'damage' AND NOT (team <> '' AND team = victim_team)), 0)::int8 AS damage
                     FROM ev GROUP BY steam_id),
                 victim AS (SELECT victim_steam_id AS steam_id, count(*) AS deaths FROM ev WHERE kind = 'kill' GROUP BY victim_steam_id)
                 SELECT l.steam_id, l.name, l.team, coalesce(a.kills, 0), coalesce(a.hs, 0), coalesce(a.assists, 0), coalesce(a.damage, 0), coalesce(v.deaths, 0),
                        (SELECT to_char(max(logged_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM ev)
                   FROM latest l LEFT JOIN actor a USING (steam_id) LEFT JOIN victim v USING (steam_id)
                  ORDER BY 4 DESC, 8 ASC, l.name",
            )
            .await
            .map_err(|e| self.fail(e))?;
        // Both queries in flight at once on the one connection (pipelined): one round trip.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&match_id];
        let (summary, rows) = tokio::try_join!(
            c.query_one(&summary_stmt, &params),
            c.query(&players_stmt, &params)
        )
        .map_err(|e| self.fail(e))?;
        let match_events: i64 = summary.get(0);
        if match_events == 0 && rows.is_empty() {
            return Ok(None);
        }
        let rounds_ended: i64 = summary.get(1);
        let status_rounds: Option<i32> = summary.get(6);
        let rounds_played = status_rounds
            .unwrap_or(0)
            .max(i32::try_from(rounds_ended).unwrap_or(i32::MAX));
        let per_round = f64::from(rounds_played.max(1));
        let players = rows
            .iter()
            .map(|r| {
                let kills: i64 = r.get(3);
                let hs: i64 = r.get(4);
                let damage: i64 = r.get(6);
                PlayerLine {
                    steam_id: r.get(0),
                    name: r.get(1),
                    team: r.get(2),
                    kills,
                    assists: r.get(5),
                    deaths: r.get(7),
                    damage,
                    adr: round1(damage as f64 / per_round),
                    headshot_percent: if kills > 0 {
                        round1(hs as f64 * 100.0 / kills as f64)
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        let updated_match: Option<String> = summary.get(2);
        let updated_players: Option<String> = rows.first().and_then(|r| r.get(8));
        Ok(Some(Scoreboard {
            match_id,
            map: summary.get(3),
            score: Score {
                ct: summary.get::<_, Option<i32>>(4).unwrap_or(0),
                t: summary.get::<_, Option<i32>>(5).unwrap_or(0),
            },
            rounds_played,
            // The fixed-width format sorts as text.
            updated_at: updated_match.into_iter().chain(updated_players).max(),
            players,
        }))
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[derive(Default)]
struct MatchRows {
    at: Vec<SystemTime>,
    kind: Vec<&'static str>,
    map: Vec<Option<String>>,
    score_ct: Vec<Option<i32>>,
    score_t: Vec<Option<i32>>,
    rounds: Vec<Option<i32>>,
    team: Vec<Option<String>>,
    detail: Vec<Option<String>>,
}

impl MatchRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        at: SystemTime,
        kind: &'static str,
        map: Option<String>,
        ct: Option<i32>,
        t: Option<i32>,
        rounds: Option<i32>,
        team: Option<String>,
        detail: Option<String>,
    ) {
        self.at.push(at);
        self.kind.push(kind);
        self.map.push(map);
        self.score_ct.push(ct);
        self.score_t.push(t);
        self.rounds.push(rounds);
        self.team.push(team);
        self.detail.push(detail);
    }
}

#[derive(Default)]
struct PlayerRows {
    at: Vec<SystemTime>,
    kind: Vec<&'static str>,
    name: Vec<String>,
    steam: Vec<String>,
    team: Vec<String>,
    vname: Vec<String>,
    vsteam: Vec<String>,
    vteam: Vec<String>,
    weapon: Vec<Option<String>>,
    damage: Vec<Option<i32>>,
    hitgroup: Vec<Option<String>>,
    headshot: Vec<bool>,
    flash: Vec<bool>,
}

impl PlayerRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        at: SystemTime,
        kind: &'static str,
        actor: &crate::logparse::Player,
        victim: &crate::logparse::Player,
        weapon: Option<String>,
        damage: Option<i32>,
        hitgroup: Option<String>,
        headshot: bool,
        flash: bool,
    ) {
        self.at.push(at);
        self.kind.push(kind);
        self.name.push(actor.name.clone());
        self.steam.push(actor.steam_id.clone());
        self.team.push(actor.team.clone());
        self.vname.push(victim.name.clone());
        self.vsteam.push(victim.steam_id.clone());
        self.vteam.push(victim.team.clone());
        self.weapon.push(weapon);
        self.damage.push(damage);
        self.hitgroup.push(hitgroup);
        self.headshot.push(headshot);
        self.flash.push(flash);
    }
}
