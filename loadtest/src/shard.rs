//! Splitting a profile's viewers into disjoint shards for a distributed run: shard K of N runs the viewers whose
//! index is K modulo N. A viewer's schedule (arrival, phase, polls) depends only on its index, the stages and the
//! seed, so each viewer polls in its shard exactly when it would in one generator: phases, ramps and waves are
//! preserved. Pure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::profile::{active_at, first_poll, peak_viewers, Profile};

/// Shard `index` of `count` (0-based index; written `K/N` with K from 1 on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Every viewer: a single-process run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `K/N` with 1 ≤ K ≤ N (1-based, as people count workers).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard like 2/3 (worker K of N, 1 ≤ K ≤ N)");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }

    /// Whether this shard runs viewer `viewer`.
    pub fn contains(&self, viewer: u64) -> bool {
        viewer % u64::from(self.count.max(1)) == u64::from(self.index)
    }

    /// This shard's viewers that thread `thread` of `threads` runs, below `peak`: the shard's viewers dealt out
    /// round-robin, so threads of every shard get near-equal shares.
    pub fn thread_viewers(
        &self,
        thread: usize,
        threads: usize,
        peak: u64,
    ) -> impl Iterator<Item = u64> {
        let count = u64::from(self.count.max(1));
        let first = u64::from(self.index) + thread as u64 * count;
        let step = threads.max(1) as u64 * count;
        (0..)
            .map(move |i: u64| first.saturating_add(i.saturating_mul(step)))
            .take_while(move |v| *v < peak)
    }

    /// The share of `total` (a request cap) this shard gets: the shares of all shards add up to `total`.
    pub fn share(&self, total: u64) -> u64 {
        let count = u64::from(self.count.max(1));
        total / count + u64::from(u64::from(self.index) < total % count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// The polls the engine schedules for `shard` before `end`, counted per second of the run: each viewer of the
/// shard polls at its first poll and every poll interval after, while it is in the test. What a run of the shard
/// calls for when nothing stops it; the same walk as the engine's, in microseconds.
pub fn scheduled_per_second(profile: &Profile, shard: Shard, end: Duration) -> Vec<u64> {
    let end_us = end.as_micros() as u64;
    let poll_us = (profile.poll_interval.as_micros() as u64).max(1);
    let mut seconds = Vec::new();
    for viewer in shard.thread_viewers(0, 1, peak_viewers(&profile.stages)) {
        let Some(first) = first_poll(profile, viewer) else {
            continue;
        };
        let mut due = first.as_micros() as u64;
        while due < end_us {
            let (active, _) = active_at(&profile.stages, Duration::from_micros(due));
            if (viewer as f64) < active {
                let second = (due / 1_000_000) as usize;
                if seconds.len() <= second {
                    seconds.resize(second + 1, 0);
                }
                seconds[second] += 1;
            }
            due += poll_us;
        }
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{event_profile, total_duration, Arrival, Stage};

    fn profile(arrival: Arrival, stages: Vec<Stage>) -> Profile {
        Profile {
            targets: vec![],
            poll_interval: Duration::from_secs(5),
            arrival,
            stages,
            timeout: Duration::from_secs(1),
            pool: None,
            max_duration: Duration::from_secs(3600),
            max_requests: u64::MAX,
            seed: 3,
            workers: 1,
            insecure: false,
        }
    }

    #[test]
    fn shards_parse_from_one_based_text_and_bad_ones_are_refused() {
        assert_eq!(Shard::parse("1/1").unwrap(), Shard::WHOLE);
        assert_eq!(Shard::parse("3/4").unwrap(), Shard { index: 2, count: 4 });
        assert_eq!(Shard::parse("3/4").unwrap().to_string(), "3/4");
        for bad in ["0/3", "4/3", "1/0", "3", "a/b", "", "-1/3", "1/3/5"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains("worker K of N"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_viewer_is_in_exactly_one_shard_and_every_thread_share_too() {
        for count in 1..=7u32 {
            for peak in [0u64, 1, 6, 7, 100, 1001] {
                let mut seen = vec![0u32; peak as usize];
                for index in 0..count {
                    let shard = Shard { index, count };
                    let threads = 3;
                    let mut of_shard = vec![];
                    for t in 0..threads {
                        of_shard.extend(shard.thread_viewers(t, threads, peak));
                    }
                    for v in &of_shard {
                        assert!(shard.contains(*v), "{shard}: viewer {v}");
                        seen[*v as usize] += 1;
                    }
                    let alone: Vec<u64> = shard.thread_viewers(0, 1, peak).collect();
                    of_shard.sort_unstable();
                    assert_eq!(of_shard, alone, "{shard}, peak {peak}");
                }
                assert!(
                    seen.iter().all(|n| *n == 1),
                    "{count} shards of {peak}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn the_shards_schedules_add_up_to_the_single_run_second_by_second() {
        let s = Duration::from_secs_f64;
        let cases = [
            (
                "uniform, event profile with a spike",
                profile(Arrival::Uniform, event_profile(300, 3.0, s(4.0), s(6.0))),
            ),
            (
                "waves, ramp and spike",
                profile(
                    Arrival::Waves {
                        count: 2,
                        spread: s(0.2),
                    },
                    vec![
                        Stage::ramp("r", 120, s(3.0)),
                        Stage::hold("h", 120, s(4.0)),
                        Stage::ramp("spike", 500, s(1.0)),
                        Stage::hold("hs", 500, s(6.0)),
                        Stage::ramp("down", 0, s(2.0)),
                    ],
                ),
            ),
            (
                "one viewer",
                profile(Arrival::Uniform, vec![Stage::hold("h", 1, s(12.0))]),
            ),
        ];
        for (name, p) in cases {
            let end = total_duration(&p.stages);
            let whole = scheduled_per_second(&p, Shard::WHOLE, end);
            assert!(whole.iter().sum::<u64>() > 0, "{name}: nothing scheduled");
            for count in [2u32, 3, 5] {
                let mut sum = vec![0u64; whole.len()];
                for index in 0..count {
                    let part = scheduled_per_second(&p, Shard { index, count }, end);
                    assert!(part.len() <= whole.len(), "{name}");
                    for (i, n) in part.iter().enumerate() {
                        sum[i] += n;
                    }
                }
                assert_eq!(sum, whole, "{name}, {count} shards");
            }
        }
    }

    #[test]
    fn request_caps_are_shared_out_exactly() {
        for total in [0u64, 1, 2, 10, 10_000_001] {
            for count in 1..=5u32 {
                let shares: Vec<u64> = (0..count)
                    .map(|index| Shard { index, count }.share(total))
                    .collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {count}");
                let (lo, hi) = (shares.iter().min(), shares.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{shares:?}");
            }
        }
    }
}
