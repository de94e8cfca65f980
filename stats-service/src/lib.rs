//! The live-statistics service statsctl operates: game servers `POST /logs`, viewers' browsers poll
//! `GET /matches/{id}/stats`. Events are stored in PostgreSQL with their logged-at time; the scoreboard is
//! computed from them on every read.
//!
//! Database access goes through a pool (`DB_MODE=pool`, the default) or opens one connection per request
//! (`DB_MODE=per-request`), which is how a Lambda function without a proxy behaves — kept so the connection
//! exhaustion incident can be reproduced on purpose.

pub mod config;
pub mod db;
pub mod http;
pub mod logparse;
