//! statsctl's stack layer: the stack model and its loader (with located errors), AWS facts as data, the alarm
//! set a stack requires, and — built on these — observing AWS, planning and applying changes.

pub mod alarms;
pub mod artifact;
pub mod canonical;
pub mod desired;
pub mod diagnostics;
pub mod duration;
pub mod facts;
pub mod history;
pub mod inventory;
pub mod kind;
pub mod ledger;
pub mod loader;
pub mod model;
pub mod pgpass;
pub mod plan;
pub mod rollout;
pub mod runbook;
pub mod schema_check;
pub mod sensitive;
pub mod spec;
pub mod substitute;
pub mod units;
pub mod validate;
pub mod yaml_tree;

#[cfg(test)]
pub(crate) mod testing;

/// Latency percentile keys accepted in load-test criteria, in order.
pub const PERCENTILE_KEYS: &[&str] = &["p50", "p90", "p99", "p99.9", "max"];

/// The percentile a criteria key stands for (`max` is 100).
pub fn percentile_key(key: &str) -> Option<f64> {
    match key {
        "p50" => Some(50.0),
        "p90" => Some(90.0),
        "p99" => Some(99.0),
        "p99.9" => Some(99.9),
        "max" => Some(100.0),
        _ => None,
    }
}
