//! One worker's result in a distributed run, as it travels from the worker to the coordinator: every HDR
//! histogram in the standard V2 serialized form (base64 in JSON), overall, per stage and per second, and the
//! counts by outcome. The coordinator merges the workers' results exactly: histograms added, counts summed,
//! per-second timelines added second by second — never averaged percentiles.

use std::collections::BTreeMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::engine::Ran;
use crate::shard::Shard;
use crate::stats::{Bucket, Recorder, StageRecord};

/// Requests and errors with their latency histogram, for one stage or one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub requests: u64,
    pub errors: u64,
    /// V2-serialized HDR histogram (microseconds), base64.
    pub latency: String,
}

/// What one worker measured: the file it writes to the run's store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartResult {
    pub run_id: String,
    pub shard: Shard,
    /// Who ran it: `pid 1234` or an ECS task ARN.
    pub worker: String,
    pub elapsed_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub late: u64,
    pub bytes: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// V2-serialized HDR histograms (microseconds), base64: from the schedule, and from the actual send.
    pub latency: String,
    pub service: String,
    pub stages: Vec<Counted>,
    pub seconds: Vec<Counted>,
}

fn encode(h: &Histogram<u64>) -> Result<String, String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| format!("cannot serialize a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decode(text: &str, what: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("{what}: not base64 ({e})"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("{what}: not a V2 HDR histogram ({e:?})"))
}

impl PartResult {
    pub fn from_ran(
        run_id: &str,
        shard: Shard,
        worker: &str,
        ran: &Ran,
    ) -> Result<PartResult, String> {
        let r = &ran.recorder;
        Ok(PartResult {
            run_id: run_id.to_string(),
            shard,
            worker: worker.to_string(),
            elapsed_secs: ran.elapsed_secs,
            stopped: ran.stopped.clone(),
            scheduled: r.scheduled,
            sent: r.sent,
            ok: r.ok,
            late: r.late,
            bytes: r.bytes,
            errors: r.errors.clone(),
            latency: encode(&r.latency)?,
            service: encode(&r.service)?,
            stages: r
                .stages
                .iter()
                .map(|s| {
                    Ok(Counted {
                        requests: s.requests,
                        errors: s.errors,
                        latency: encode(&s.latency)?,
                    })
                })
                .collect::<Result<_, String>>()?,
            seconds: r
                .buckets
                .iter()
                .map(|b| {
                    Ok(Counted {
                        requests: b.requests,
                        errors: b.errors,
                        latency: encode(&b.latency)?,
                    })
                })
                .collect::<Result<_, String>>()?,
        })
    }

    /// The recorder this result was made from, histograms and all.
    pub fn to_recorder(&self) -> Result<Recorder, String> {
        let who = format!("worker {} ({})", self.shard, self.worker);
        let mut r = Recorder::new(0);
        r.latency = decode(&self.latency, &format!("{who}: latency"))?;
        r.service = decode(&self.service, &format!("{who}: service time"))?;
        r.stages = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(StageRecord {
                    latency: decode(&s.latency, &format!("{who}: stage {}", i + 1))?,
                    requests: s.requests,
                    errors: s.errors,
                })
            })
            .collect::<Result<_, String>>()?;
        r.buckets = self
            .seconds
            .iter()
            .enumerate()
            .map(|(i, b)| {
                Ok(Bucket {
                    latency: decode(&b.latency, &format!("{who}: second {i}"))?,
                    requests: b.requests,
                    errors: b.errors,
                })
            })
            .collect::<Result<_, String>>()?;
        r.errors = self.errors.clone();
        r.scheduled = self.scheduled;
        r.sent = self.sent;
        r.ok = self.ok;
        r.late = self.late;
        r.bytes = self.bytes;
        Ok(r)
    }

    /// The failed requests of this part (every error kind).
    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The workers' results merged exactly into one: the run as if one generator had measured it. The elapsed time
/// is the longest worker's; a reason to stop early, the first one given. `stages` is how many the profile has:
/// every part must have as many.
pub fn merge(parts: &[PartResult], stages: usize) -> Result<Ran, String> {
    let mut merged = Recorder::new(stages);
    let mut elapsed = 0.0f64;
    let mut stopped = None;
    for p in parts {
        if p.stages.len() != stages {
            return Err(format!(
                "worker {} ({}) reported {} stages, the run has {stages}",
                p.shard,
                p.worker,
                p.stages.len()
            ));
        }
        merged.merge(&p.to_recorder()?);
        elapsed = elapsed.max(p.elapsed_secs);
        if stopped.is_none() {
            stopped.clone_from(&p.stopped);
        }
    }
    Ok(Ran {
        recorder: merged,
        elapsed_secs: elapsed,
        stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Stage;
    use crate::stats::LoadTestResult;
    use std::time::Duration;

    /// A deterministic stream of outcomes: (viewer, stage, second, what happened).
    fn samples() -> Vec<(u64, usize, usize, u64)> {
        let mut rng = crate::profile::Rng::new(11);
        (0..5_000)
            .map(|i| {
                let viewer = rng.next_u64() % 300;
                let second = (i / 500) as usize;
                let stage = usize::from(second >= 4);
                // Latencies from 1 µs to ~2 s, heavy tail: every bucket size of the histograms is exercised.
                let latency = 1 + (rng.next_u64() % 2_000_000) / (1 + rng.next_u64() % 1000);
                (viewer, stage, second, latency)
            })
            .collect()
    }

    fn feed(rec: &mut Recorder, (viewer, stage, second, latency): (u64, usize, usize, u64)) {
        rec.scheduled += 1;
        match latency % 17 {
            0 => rec.error(stage, second, "status_503"),
            1 => rec.error(stage, second, "timeout"),
            2 => rec.late(stage, second),
            _ => {
                rec.sent += 1;
                rec.success(stage, second, latency, latency / 2 + viewer, 100)
            }
        }
    }

    #[test]
    fn merging_the_shards_results_equals_one_recorder_fed_every_sample() {
        let stages = [
            Stage::hold("a", 300, Duration::from_secs(4)),
            Stage::hold("b", 300, Duration::from_secs(6)),
        ];
        let mut single = Recorder::new(2);
        for s in samples() {
            feed(&mut single, s);
        }
        // Three requests still in flight at the end: scheduled, and counted as unfinished.
        single.scheduled += 3;
        single.unfinished(3);
        for count in [1u32, 2, 3, 7] {
            let parts: Vec<PartResult> = (0..count)
                .map(|index| {
                    let shard = Shard { index, count };
                    let mut rec = Recorder::new(2);
                    for s in samples().into_iter().filter(|s| shard.contains(s.0)) {
                        feed(&mut rec, s);
                    }
                    if index == 0 {
                        rec.scheduled += 3;
                        rec.unfinished(3);
                    }
                    let ran = Ran {
                        recorder: rec,
                        elapsed_secs: 10.0 + f64::from(index),
                        stopped: None,
                    };
                    let part =
                        PartResult::from_ran("run", shard, &format!("pid {index}"), &ran).unwrap();
                    // Through the file it travels in.
                    serde_json::from_str(&serde_json::to_string(&part).unwrap()).unwrap()
                })
                .collect();
            let merged = merge(&parts, 2).unwrap();
            let m = &merged.recorder;
            assert_eq!(m.latency, single.latency, "{count} shards: latency");
            assert_eq!(m.service, single.service, "{count} shards: service time");
            for (a, b) in m.stages.iter().zip(&single.stages) {
                assert_eq!(
                    (a.requests, a.errors, &a.latency),
                    (b.requests, b.errors, &b.latency)
                );
            }
            assert_eq!(m.buckets.len(), single.buckets.len());
            for (a, b) in m.buckets.iter().zip(&single.buckets) {
                assert_eq!(
                    (a.requests, a.errors, &a.latency),
                    (b.requests, b.errors, &b.latency)
                );
            }
            assert_eq!(
                (m.scheduled, m.sent, m.ok, m.late, m.bytes, &m.errors),
                (
                    single.scheduled,
                    single.sent,
                    single.ok,
                    single.late,
                    single.bytes,
                    &single.errors
                )
            );
            assert_eq!(merged.elapsed_secs, 10.0 + f64::from(count - 1));
            // And so the result printed and recorded is the single recorder's, percentiles included.
            let result =
                |r: &Recorder| LoadTestResult::from_recorder(r, &stages, vec![], 5.0, 10.0, None);
            assert_eq!(result(m), result(&single), "{count} shards");
            assert!(result(m).accounted());
        }
    }

    #[test]
    fn a_damaged_result_is_refused_naming_the_worker() {
        let ran = Ran {
            recorder: Recorder::new(1),
            elapsed_secs: 1.0,
            stopped: None,
        };
        let shard = Shard { index: 1, count: 3 };
        let good = PartResult::from_ran("run", shard, "pid 7", &ran).unwrap();
        let mut bad = good.clone();
        bad.latency = "not base64!".into();
        let e = merge(&[good.clone(), bad], 1).unwrap_err();
        assert!(e.contains("worker 2/3 (pid 7): latency"), "{e}");
        let mut bad = good.clone();
        bad.service = base64::engine::general_purpose::STANDARD.encode(b"not a histogram");
        let e = merge(&[bad], 1).unwrap_err();
        assert!(e.contains("not a V2 HDR histogram"), "{e}");
        let e = merge(&[good], 2).unwrap_err();
        assert!(e.contains("reported 1 stages, the run has 2"), "{e}");
    }
}
