//! The live-statistics service statsctl operates: game servers `POST /logs`, viewers' browsers poll
//! `GET /matches/{id}/stats`. Events are stored in PostgreSQL with their logged-at time; the scoreboard is
//! computed from them on every read.
//!
//! Database access goes through a pool (`DB_MODE=pool`, the default), or every request in flight opens a
//! connection of its own and keeps it until it has been idle a while (`DB_MODE=per-request`), which is how Lambda
//! functions without a proxy behave — kept so the connection exhaustion incident can be reproduced on purpose.

pub mod config;
pub mod connections;
pub mod db;
pub mod http;
pub mod logparse;
