//! Results: HDR histograms per worker (latency measured from the scheduled time, and service time from the
//! actual send), per stage and per second, error counts by kind. Memory is constant in the number of requests.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A request still in flight when the run stopped waiting for it (its timeout and a grace period past the end).
pub const UNFINISHED: &str = "unfinished";

/// Microseconds, 1 µs to 1 hour, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Per-second buckets keep 2 significant figures: a timeline of many seconds stays small.
fn small_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds are valid")
}

#[derive(Debug, Clone)]
pub struct StageRecord {
    pub latency: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub latency: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
}

/// One worker's measurements; workers' recorders are merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub stages: Vec<StageRecord>,
    pub buckets: Vec<Bucket>,
    pub errors: BTreeMap<String, u64>,
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    /// Not sent: no connection could be had before the request timed out.
    pub late: u64,
    pub bytes: u64,
}

impl Recorder {
    pub fn new(stages: usize) -> Recorder {
        Recorder {
            latency: histogram(),
            service: histogram(),
            stages: (0..stages)
                .map(|_| StageRecord {
                    latency: histogram(),
                    requests: 0,
                    errors: 0,
                })
                .collect(),
            buckets: Vec::new(),
            errors: BTreeMap::new(),
            scheduled: 0,
            sent: 0,
            ok: 0,
            late: 0,
            bytes: 0,
        }
    }

    fn bucket(&mut self, second: usize) -> &mut Bucket {
        while self.buckets.len() <= second {
            self.buckets.push(Bucket {
                latency: small_histogram(),
                requests: 0,
                errors: 0,
            });
        }
        &mut self.buckets[second]
    }

    /// A completed request: `latency_us` from its scheduled time, `service_us` from when it was sent.
    pub fn success(
        &mut self,
        stage: usize,
        second: usize,
        latency_us: u64,
        service_us: u64,
        bytes: u64,
    ) {
        let l = latency_us.clamp(1, 3_600_000_000);
        self.ok += 1;
        self.bytes += bytes;
        let _ = self.latency.record(l);
        let _ = self.service.record(service_us.clamp(1, 3_600_000_000));
        if let Some(s) = self.stages.get_mut(stage) {
            s.requests += 1;
            let _ = s.latency.record(l);
        }
        let b = self.bucket(second);
        b.requests += 1;
        let _ = b.latency.record(l);
    }

    pub fn error(&mut self, stage: usize, second: usize, kind: &str) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
        if let Some(s) = self.stages.get_mut(stage) {
            s.requests += 1;
            s.errors += 1;
        }
        let b = self.bucket(second);
        b.requests += 1;
        b.errors += 1;
    }

    /// A request that could not be sent before its timeout (no connection to be had).
    pub fn late(&mut self, stage: usize, second: usize) {
        self.late += 1;
        if let Some(s) = self.stages.get_mut(stage) {
            s.requests += 1;
            s.errors += 1;
        }
        let b = self.bucket(second);
        b.requests += 1;
        b.errors += 1;
    }

    /// Requests still in flight when the run stopped waiting: an error kind of their own (`unfinished`), outside
    /// any stage or second (when they would have ended is unknown).
    pub fn unfinished(&mut self, n: u64) {
        if n > 0 {
            *self.errors.entry(UNFINISHED.to_string()).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.service.add(&other.service);
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            let _ = a.latency.add(&b.latency);
            a.requests += b.requests;
            a.errors += b.errors;
        }
        for (i, b) in other.buckets.iter().enumerate() {
            let mine = self.bucket(i);
            let _ = mine.latency.add(&b.latency);
            mine.requests += b.requests;
            mine.errors += b.errors;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.ok += other.ok;
        self.late += other.late;
        self.bytes += other.bytes;
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }

    /// The value for a criteria key (`p50`, `p90`, `p95`, `p99`, `p99.9`, `max`).
    pub fn get(&self, key: &str) -> Option<f64> {
        Some(match key {
            "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p99.9" => self.p99_9,
            "max" => self.max,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub name: String,
    pub viewers: u64,
    pub requests: u64,
    pub errors: u64,
    pub latency_ms: Percentiles,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub second: usize,
    /// The most viewers in the test during that second, whether or not they polled in it.
    pub viewers: u64,
    /// The fewest viewers in the test at any instant of that second: what the second *held*. Preflight's gate
    /// counts these, so a stage that flickers to a level for a millisecond does not count as holding it.
    #[serde(default)]
    pub held_viewers: u64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The full result of a run: what `--output json` prints and the ledger keeps a summary of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadTestResult {
    pub targets: Vec<String>,
    pub duration_secs: f64,
    pub peak_viewers: u64,
    pub poll_interval_secs: f64,
    /// Requests the schedule called for (up to the stop), sent, answered OK, failed, and never sent.
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub late: u64,
    pub error_rate: f64,
    pub throughput_rps: f64,
    /// Measured from each request's scheduled time: includes any wait for a connection (no coordinated omission).
    pub latency_ms: Percentiles,
    /// Measured from when the request was actually sent: what the server alone took.
    pub service_time_ms: Percentiles,
    pub errors: BTreeMap<String, u64>,
    pub stages: Vec<StageResult>,
    pub timeline: Vec<Second>,
    /// Why the run ended early, if it did (duration or request cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl LoadTestResult {
    /// The invariant every run keeps: each scheduled request ended in exactly one place — answered OK, an error
    /// of a named kind, or not sent in time.
    pub fn accounted(&self) -> bool {
        self.scheduled == self.ok + self.failed + self.late
            && self.failed == self.errors.values().sum::<u64>()
    }

    pub fn from_recorder(
        r: &Recorder,
        stages: &[crate::profile::Stage],
        targets: Vec<String>,
        poll: f64,
        elapsed: f64,
        stopped: Option<String>,
    ) -> LoadTestResult {
        let failed: u64 = r.errors.values().sum();
        let attempted = r.ok + failed + r.late;
        LoadTestResult {
            targets,
            duration_secs: elapsed,
            peak_viewers: crate::profile::peak_viewers(stages),
            poll_interval_secs: poll,
            scheduled: r.scheduled,
            sent: r.sent,
            ok: r.ok,
            failed,
            late: r.late,
            error_rate: if attempted == 0 {
                0.0
            } else {
                (failed + r.late) as f64 / attempted as f64
            },
            throughput_rps: if elapsed > 0.0 {
                r.ok as f64 / elapsed
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&r.latency),
            service_time_ms: Percentiles::of(&r.service),
            errors: r.errors.clone(),
            stages: stages
                .iter()
                .zip(&r.stages)
                .map(|(s, rec)| StageResult {
                    name: s.name.clone(),
                    viewers: s.viewers,
                    requests: rec.requests,
                    errors: rec.errors,
                    latency_ms: Percentiles::of(&rec.latency),
                })
                .collect(),
            timeline: r
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| Second {
                    second: i,
                    // The most viewers in the test during that second, whether or not they polled in it.
                    viewers: {
                        let at = |ms: u64| {
                            crate::profile::active_at(stages, std::time::Duration::from_millis(ms))
                                .0
                        };
                        at(i as u64 * 1000).max(at(i as u64 * 1000 + 999)).round() as u64
                    },
                    held_viewers: crate::profile::fewest_between(
                        stages,
                        std::time::Duration::from_secs(i as u64),
                        std::time::Duration::from_secs(i as u64 + 1),
                    )
                    .round() as u64,
                    requests: b.requests,
                    errors: b.errors,
                    p50_ms: if b.latency.is_empty() {
                        0.0
                    } else {
                        b.latency.value_at_quantile(0.5) as f64 / 1000.0
                    },
                    p99_ms: if b.latency.is_empty() {
                        0.0
                    } else {
                        b.latency.value_at_quantile(0.99) as f64 / 1000.0
                    },
                })
                .collect(),
            stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_percentiles() {
        let mut a = Recorder::new(1);
        let mut b = Recorder::new(1);
        for i in 1..=100 {
            a.success(0, 0, i * 1000, 500, 10);
        }
        b.error(0, 2, "status_503");
        b.error(0, 2, "timeout");
        a.merge(&b);
        let p = Percentiles::of(&a.latency);
        assert!(
            (p.p50 - 50.0).abs() < 0.1 && (p.max - 100.0).abs() < 0.1,
            "{p:?}"
        );
        assert_eq!(a.buckets.len(), 3);
        assert_eq!(a.errors.len(), 2);
        let r = LoadTestResult::from_recorder(
            &a,
            &[crate::profile::Stage::hold(
                "h",
                1,
                std::time::Duration::from_secs(3),
            )],
            vec![],
            1.0,
            3.0,
            None,
        );
        assert_eq!(r.failed, 2);
        assert!((r.error_rate - 2.0 / 102.0).abs() < 1e-9);
        assert_eq!(r.stages[0].requests, 102);
        assert_eq!(r.timeline[2].errors, 2);
    }

    #[test]
    fn unfinished_requests_are_failures_that_keep_the_totals_adding_up() {
        let mut rec = Recorder::new(1);
        rec.scheduled = 5;
        rec.success(0, 0, 1000, 500, 10);
        rec.error(0, 0, "timeout");
        rec.late(0, 0);
        let stages = [crate::profile::Stage::hold(
            "h",
            5,
            std::time::Duration::from_secs(1),
        )];
        let result =
            |rec: &Recorder| LoadTestResult::from_recorder(rec, &stages, vec![], 1.0, 1.0, None);
        // Two requests never came back: without counting them the totals do not add up.
        assert!(!result(&rec).accounted());
        rec.unfinished(0);
        assert!(!rec.errors.contains_key("unfinished"));
        rec.unfinished(2);
        let r = result(&rec);
        assert!(r.accounted(), "{r:?}");
        assert_eq!(r.errors["unfinished"], 2);
        assert_eq!(r.failed, 3);
        assert!((r.error_rate - 4.0 / 5.0).abs() < 1e-9, "{}", r.error_rate);
    }

    #[test]
    fn the_timeline_counts_viewers_in_the_test_not_those_who_polled() {
        // Waves every 5 s: polls in seconds 0 and 5 only; viewers ramp to 100 over 2 s and stay.
        let mut rec = Recorder::new(2);
        rec.success(0, 0, 1000, 500, 10);
        rec.success(1, 5, 1000, 500, 10);
        let stages = [
            crate::profile::Stage::ramp("r", 100, std::time::Duration::from_secs(2)),
            crate::profile::Stage::hold("h", 100, std::time::Duration::from_secs(4)),
        ];
        let r = LoadTestResult::from_recorder(&rec, &stages, vec![], 5.0, 6.0, None);
        let viewers: Vec<u64> = r.timeline.iter().map(|s| s.viewers).collect();
        assert_eq!(viewers, vec![50, 100, 100, 100, 100, 100]);
        assert_eq!(r.timeline[3].requests, 0);
    }
}
