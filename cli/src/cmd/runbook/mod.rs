//! `statsctl runbook list|show|run`: the on-call's procedures as executable, confirmable, recorded steps.

#[allow(dead_code)] // Wired by the runner.
pub mod reads;
