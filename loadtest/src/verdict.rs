//! Pass/fail: latency percentiles and error rate against the stack's thresholds. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::LoadTestResult;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Percentile key (`p50`, `p90`, `p95`, `p99`, `p99.9`, `max`) → the most it may be.
    pub latency: BTreeMap<String, Duration>,
    /// Failed + never-sent requests over all attempted, at most.
    pub max_error_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub violations: Vec<String>,
}

pub fn verdict(r: &LoadTestResult, t: &Thresholds) -> Verdict {
    let mut violations = Vec::new();
    if r.ok + r.failed + r.late == 0 {
        violations.push("no request completed".to_string());
    }
    if r.error_rate > t.max_error_rate {
        violations.push(format!(
            "error rate {:.2}% > {:.2}%",
            r.error_rate * 100.0,
            t.max_error_rate * 100.0
        ));
    }
    for (key, limit) in &t.latency {
        let limit_ms = limit.as_secs_f64() * 1000.0;
        match r.latency_ms.get(key) {
            Some(v) if v > limit_ms => {
                violations.push(format!("{key} {v:.1} ms > {limit_ms:.1} ms"))
            }
            Some(_) => {}
            None => violations.push(format!("unknown percentile `{key}`")),
        }
    }
    Verdict {
        passed: violations.is_empty(),
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    fn result(p99: f64, failed: u64, ok: u64) -> LoadTestResult {
        LoadTestResult {
            targets: vec![],
            duration_secs: 1.0,
            peak_viewers: 1,
            poll_interval_secs: 1.0,
            scheduled: ok + failed,
            sent: ok + failed,
            ok,
            failed,
            late: 0,
            error_rate: failed as f64 / (ok + failed).max(1) as f64,
            throughput_rps: 0.0,
            latency_ms: Percentiles {
                p50: p99 / 2.0,
                p99,
                max: p99,
                ..Default::default()
            },
            service_time_ms: Percentiles::default(),
            errors: BTreeMap::new(),
            stages: vec![],
            timeline: vec![],
            stopped: None,
        }
    }

    #[test]
    fn table() {
        let t = Thresholds {
            latency: [("p99".to_string(), Duration::from_millis(500))].into(),
            max_error_rate: 0.01,
        };
        let cases = [
            ("fast and clean", result(120.0, 0, 1000), true, ""),
            (
                "slow",
                result(800.0, 0, 1000),
                false,
                "p99 800.0 ms > 500.0 ms",
            ),
            (
                "errors",
                result(120.0, 20, 980),
                false,
                "error rate 2.00% > 1.00%",
            ),
            ("at the limit", result(500.0, 10, 990), true, ""),
            (
                "nothing answered",
                result(0.0, 0, 0),
                false,
                "no request completed",
            ),
        ];
        for (name, r, pass, why) in cases {
            let v = verdict(&r, &t);
            assert_eq!(v.passed, pass, "{name}: {v:?}");
            if !why.is_empty() {
                assert!(v.violations.iter().any(|x| x == why), "{name}: {v:?}");
            }
        }
    }
}
