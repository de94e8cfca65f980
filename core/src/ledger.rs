//! The ledger: an S3 bucket the stack owns (`<stack>-<env>-ledger-<account>`), used as an append-only record
//! store. Every record is its own object under `<kind>/<env>/<unix-ms>-<random>.json`, written once and never
//! overwritten (the bucket is versioned besides), so concurrent writers cannot lose each other's records.
//! Load tests write `loadtests/`; deploy history will use `deploys/`.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::desired::Names;
use crate::inventory::{Kind, Observed};
use crate::model::StackFile;

/// The ledger bucket's name (named with the stack's other resources, in `desired`).
pub use crate::desired::ledger_bucket_name as bucket_name;

/// A recorded load test: what preflight's `loadtest.passed` reads. It states what actually ran — measured by the
/// engine, never what was asked — so that a smaller test cannot pass for a bigger one. Records written before
/// these measurements existed deserialize with an empty `timeline` and do not count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadTestRecord {
    pub env: String,
    /// Unix seconds.
    pub finished_at: u64,
    /// Viewers held: the most viewers the run kept for `held_secs` (see [`held`]). Older records hold the
    /// `--viewers` asked for here, which is why the gate reads `timeline` instead.
    pub viewers: u64,
    /// How long `viewers` were held, in whole seconds of the timeline.
    #[serde(default)]
    pub held_secs: u64,
    /// The most viewers during the run (the spike reached).
    #[serde(default)]
    pub peak_viewers: u64,
    /// Viewers in the test second by second, run-length encoded: what the engine ran, from its own timeline.
    #[serde(default)]
    pub timeline: Vec<Level>,
    /// Each stage as it ran: its level and length, and the requests it made.
    #[serde(default)]
    pub stages: Vec<StageRan>,
    /// The arrival pattern (`uniform`, `waves:COUNT:SPREAD`).
    #[serde(default)]
    pub arrival: String,
    /// Connections shared per worker (`--pool`), when not one per viewer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<usize>,
    /// The run skipped certificate checks of `https://` targets (`--insecure`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The URLs loaded.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Whether the run met preflight's bar when it was recorded, and if not, which parts it missed (an ad-hoc run:
    /// `--target`, `--stages` below the bar). Informational: preflight decides again from the measurements.
    #[serde(default)]
    pub counts_for_preflight: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub does_not_count: Vec<String>,
    pub passed: bool,
    /// What was deployed while it ran (see `deployed_versions`).
    pub versions: BTreeMap<String, String>,
    /// The targets joined by commas (kept for readers of older records).
    #[serde(default)]
    pub target: String,
    /// The measured summary, thresholds and violations, for people reading the ledger.
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// `secs` consecutive seconds at `viewers`: one run of the per-second timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    pub viewers: u64,
    pub secs: u64,
}

/// One stage of a recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRan {
    pub name: String,
    /// The level the stage holds or ramps to.
    pub viewers: u64,
    pub duration_secs: f64,
    pub requests: u64,
    pub errors: u64,
}

/// Run-length encodes a per-second series of viewers (a 15-minute ramp stays a few hundred entries).
pub fn timeline(per_second: impl IntoIterator<Item = u64>) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for v in per_second {
        match out.last_mut() {
            Some(l) if l.viewers == v => l.secs += 1,
            _ => out.push(Level {
                viewers: v,
                secs: 1,
            }),
        }
    }
    out
}

/// The longest stretch, in whole seconds, during which the run had at least `viewers` viewers. A second counts
/// when the level was reached in it, so this is exact to the second.
pub fn held_secs(timeline: &[Level], viewers: u64) -> u64 {
    let (mut best, mut run) = (0, 0);
    for l in timeline {
        if l.viewers >= viewers {
            // Saturating: a record read back from the ledger is data, and may be corrupt.
            run = l.secs.saturating_add(run);
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// The most viewers in any second of the run.
pub fn peak(timeline: &[Level]) -> u64 {
    timeline.iter().map(|l| l.viewers).max().unwrap_or(0)
}

/// What a run held: the most viewers kept for at least `min_secs` and for how long they were kept. A run shorter
/// than `min_secs` is described by its longest stretch instead (`hold:20:6s` held 20 viewers for 6 s), so the
/// record always says what happened; whether that is enough is preflight's question.
pub fn held(timeline: &[Level], min_secs: u64) -> (u64, u64) {
    let longest = held_secs(timeline, 1);
    if longest == 0 {
        return (0, 0);
    }
    let window = min_secs.clamp(1, longest);
    // The most viewers held for `window` seconds is the best, over every `window`-second span, of the fewest
    // viewers in it. A best span can always start where a level starts, so one pass over the levels does, with
    // the levels in the span kept in a queue of increasing viewers (linear in the number of levels).
    let mut best = 0;
    let mut span: VecDeque<usize> = VecDeque::new();
    let (mut end, mut covered) = (0, 0u64);
    for start in 0..timeline.len() {
        while end < timeline.len() && covered < window {
            while span
                .back()
                .is_some_and(|&i| timeline[i].viewers >= timeline[end].viewers)
            {
                span.pop_back();
            }
            span.push_back(end);
            covered = covered.saturating_add(timeline[end].secs);
            end += 1;
        }
        if covered < window {
            break;
        }
        if let Some(&i) = span.front() {
            best = best.max(timeline[i].viewers);
        }
        if span.front() == Some(&start) {
            span.pop_front();
        }
        covered -= timeline[start].secs;
    }
    (best, held_secs(timeline, best))
}

/// What is deployed, in the ledger's terms: each function → `<code sha256> v<version behind its alias>`, and
/// `service:<name>` → its image. A new version of anything changes this map.
pub fn deployed_versions(stack: &StackFile, env: &str, o: &Observed) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (name, f) in &stack.functions {
        let fname = stack.function_name(env, name);
        if let Some(sha) = o
            .get(Kind::Function, &fname)
            .and_then(|r| r.attrs.get("code_sha256"))
        {
            let version = o
                .output(
                    Kind::Alias,
                    &crate::inventory::Key::alias_name(&fname, &f.alias),
                    "version",
                )
                .unwrap_or("?");
            v.insert(fname, format!("{sha} v{version}"));
        }
    }
    if let Some(svc) = &stack.service {
        if let Some(image) = o
            .get(
                Kind::TaskDefinition,
                &Names::new(stack, env).task_family(&svc.name),
            )
            .and_then(|r| r.attrs.get("image"))
        {
            v.insert(format!("service:{}", svc.name), image.clone());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(levels: &[(u64, u64)]) -> Vec<Level> {
        timeline(
            levels
                .iter()
                .flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize)),
        )
    }

    /// (name, per-second timeline as (viewers, seconds) runs, min_secs, held, held_secs(240), peak)
    type HeldCase = (&'static str, Vec<(u64, u64)>, u64, (u64, u64), u64, u64);

    #[test]
    fn what_a_run_held_comes_from_its_timeline() {
        let cases: Vec<HeldCase> = vec![
            ("empty", vec![], 5, (0, 0), 0, 0),
            ("tiny hold", vec![(20, 6)], 10, (20, 6), 0, 20),
            ("tiny hold, short bar", vec![(20, 6)], 5, (20, 6), 0, 20),
            (
                "event profile",
                vec![
                    (48, 1),
                    (96, 1),
                    (144, 1),
                    (192, 1),
                    (240, 11),
                    (720, 10),
                    (0, 1),
                ],
                5,
                (720, 10),
                21,
                720,
            ),
            (
                "spike shorter than the bar",
                vec![(120, 1), (240, 10), (720, 2), (240, 3)],
                5,
                (240, 15),
                15,
                720,
            ),
            (
                "a dip breaks the hold",
                vec![(240, 4), (200, 1), (240, 4)],
                5,
                (200, 9),
                4,
                240,
            ),
            (
                "ramp only",
                vec![(80, 1), (160, 1), (240, 1)],
                5,
                (80, 3),
                1,
                240,
            ),
        ];
        for (name, levels, min_secs, want_held, want_240, want_peak) in cases {
            let t = per_second(&levels);
            assert_eq!(held(&t, min_secs), want_held, "{name}");
            assert_eq!(held_secs(&t, 240), want_240, "{name}");
            assert_eq!(peak(&t), want_peak, "{name}");
        }
        assert_eq!(
            per_second(&[(1, 2), (3, 1)]),
            vec![
                Level {
                    viewers: 1,
                    secs: 2
                },
                Level {
                    viewers: 3,
                    secs: 1
                }
            ]
        );
    }

    #[test]
    fn what_a_run_held_matches_the_plain_definition_and_stays_linear() {
        // The plain definition: the most viewers among levels held at least `window` seconds.
        let plain = |t: &[Level], min: u64| {
            let window = min.clamp(1, held_secs(t, 1).max(1));
            t.iter()
                .map(|l| l.viewers)
                .filter(|&v| v > 0 && held_secs(t, v) >= window)
                .max()
                .unwrap_or(0)
        };
        let mut seed = 7u64;
        for _ in 0..300 {
            let levels: Vec<Level> = (0..(seed % 12))
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    Level {
                        viewers: (seed >> 33) % 5,
                        secs: 1 + (seed >> 40) % 4,
                    }
                })
                .collect();
            for min in [1, 2, 3, 5, 8] {
                assert_eq!(
                    held(&levels, min).0,
                    plain(&levels, min),
                    "{levels:?} {min}"
                );
            }
            // The next case starts one past the generator's state; wrapping, like the generator, since that
            // state can be any u64.
            seed = seed.wrapping_add(1);
        }
        // A day-long ramp, one level a second, and a corrupt record: answered at once, without overflow.
        let ramp = timeline(0..86_400);
        assert_eq!(held(&ramp, 300), (86_100, 300));
        let corrupt = [
            Level {
                viewers: 5,
                secs: u64::MAX,
            },
            Level {
                viewers: 9,
                secs: u64::MAX,
            },
        ];
        assert_eq!(held(&corrupt, 10), (9, u64::MAX));
        assert_eq!(held_secs(&corrupt, 5), u64::MAX);
    }

    #[test]
    fn records_from_before_the_measurements_still_read() {
        let old = r#"{ "env": "local", "finished_at": 1795856241, "viewers": 240, "passed": true,
            "versions": { "f": "sha v1" }, "target": "http://127.0.0.1:28080/matches/1/stats", "summary": {} }"#;
        let r: LoadTestRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.viewers, 240);
        assert!(r.timeline.is_empty() && r.targets.is_empty() && !r.counts_for_preflight);
    }

    #[test]
    fn bucket_names_fit_s3_rules() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let stack = crate::loader::load_file(&path, Some("prod"), &|_: &str| None)
            .unwrap()
            .spec;
        let n = super::bucket_name(&stack, "prod", "123456789012");
        assert_eq!(n, "live-stats-prod-ledger-123456789012");
        assert!(
            n.len() <= 63
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
