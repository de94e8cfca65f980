//! Runbooks: the on-call's procedures as data, and the pure parts of running them — what to do at each step
//! (`flow`), how an operator's answer reads (`answer`), and the run's record for the postmortem (`transcript`).
//! Talking to AWS and the database is the binary's (`statsctl runbook run`); nothing here does I/O.

// runner modules
pub mod answer;
pub mod flow;
pub mod sql;
pub mod transcript;
