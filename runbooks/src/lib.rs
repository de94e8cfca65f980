//! Runbooks: the on-call's procedures as data — the runbooks statsctl ships (embedded in the binary) — and the pure
//! parts of running them: what to do at each step (`flow`), how an operator's answer reads (`answer`), metric
//! windows and sparklines (`metric`), values allowed into SQL (`sql`), and the run's record for the postmortem
//! (`transcript`). Talking to AWS and the database is the binary's (`statsctl runbook run`); nothing here does I/O.

pub mod metric;
pub mod shipped;

pub use shipped::shipped;

pub mod answer;
pub mod flow;
pub mod sql;
pub mod transcript;
