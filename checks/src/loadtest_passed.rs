//! `loadtest.passed`: a recorded load test for this environment passed, for exactly the deployed versions, no
//! older than the stack's max age, and what it measured meets the bar: the stack's own targets, expected viewers
//! × headroom held for `loadtest.min_hold`, and the event's spike reached. A smaller test cannot pass the gate.

use statsctl_core::duration::Span;
use statsctl_core::ledger::{held, held_secs, peak};
use statsctl_core::model::StackFile;

use crate::{Facts, Finding, LoadTestRecord, Status};

pub const ID: &str = "loadtest.passed";

/// What a recorded run must have measured to count for preflight.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Expected viewers (the stack's, or preflight's `--viewers`).
    pub expected: u64,
    pub headroom: f64,
    /// Expected × headroom: the viewers to hold.
    pub viewers: u64,
    /// How long, in whole seconds, without a break.
    pub min_hold: Span,
    pub min_hold_secs: u64,
    pub spike_factor: f64,
    /// Viewers × spike factor: the peak to reach (no more than `viewers` when the event has no spike).
    pub spike: u64,
    /// How long the spike must be held, in whole seconds: one poll interval, so every viewer polls at the peak.
    pub spike_hold_secs: u64,
    /// The stack's own targets, sorted: a run against anything else is ad hoc.
    pub targets: Vec<String>,
}

/// The bar for an audience of `expected` viewers; `None` when the stack sets no load-test criteria.
pub fn bar(stack: &StackFile, expected: u64) -> Option<Bar> {
    let c = stack.loadtest.as_ref()?;
    let viewers = (expected as f64 * c.headroom).ceil() as u64;
    let spike_factor = stack.event.spike_factor;
    // Rounded as the default profile rounds its spike, so the default run always reaches it.
    let spike = ((viewers as f64) * spike_factor.max(1.0)).round() as u64;
    let mut targets = c.targets.clone();
    targets.sort();
    targets.dedup();
    Some(Bar {
        expected,
        headroom: c.headroom,
        viewers,
        min_hold: c.min_hold,
        min_hold_secs: (c.min_hold.as_secs_f64().ceil() as u64).max(1),
        spike_factor,
        spike,
        spike_hold_secs: (stack.event.poll_interval.as_secs_f64().ceil() as u64).max(1),
        targets,
    })
}

/// The parts of the bar a recorded run missed, each saying what ran and what was needed (empty: it counts).
/// Only what the engine measured is read; the thresholds verdict, versions and age are the check's business.
pub fn missed(r: &LoadTestRecord, bar: &Bar) -> Vec<String> {
    if r.timeline.is_empty() {
        return vec![
            "it has no measured timeline of viewers (recorded before statsctl measured what ran, or nothing ran)"
                .into(),
        ];
    }
    let mut out = Vec::new();
    let mut targets = r.targets.clone();
    targets.sort();
    targets.dedup();
    if targets != bar.targets {
        out.push(format!(
            "it loaded {} — not the stack's `loadtest.targets` ({})",
            targets.join(", "),
            bar.targets.join(", ")
        ));
    }
    if held_secs(&r.timeline, bar.viewers) < bar.min_hold_secs {
        let (v, s) = held(&r.timeline, bar.min_hold_secs);
        out.push(format!(
            "it held {v} viewers for {}; needs {} ({} expected × headroom {}) held for {} (`loadtest.min_hold`)",
            Span::secs(s),
            bar.viewers,
            bar.expected,
            bar.headroom,
            bar.min_hold
        ));
    }
    // The timeline counts the fewest viewers of each second, so a peak touched for a moment is not a peak held.
    let reached = peak(&r.timeline);
    let spike_held = held_secs(&r.timeline, bar.spike);
    if bar.spike > bar.viewers && spike_held < bar.spike_hold_secs {
        out.push(if reached < bar.spike {
            format!(
                "it peaked at {reached} viewers; needs a spike to {} ({} × spike_factor {}) held for {}s (one poll interval)",
                bar.spike, bar.viewers, bar.spike_factor, bar.spike_hold_secs
            )
        } else {
            format!(
                "it held the spike of {} viewers for {spike_held}s; needs {}s (one poll interval, so every viewer polls at the peak)",
                bar.spike, bar.spike_hold_secs
            )
        });
    }
    // The gate proves the path viewers take: a connection of their own each, and certificates checked.
    if let Some(n) = r.pool {
        out.push(format!(
            "it shared {n} connection(s) per worker (`--pool`); viewers each hold their own"
        ));
    }
    if r.insecure {
        out.push("it skipped certificate checks (`--insecure`); viewers' browsers do not".into());
    }
    out
}

pub fn check(facts: &Facts) -> Vec<Finding> {
    let Some(bar) = bar(facts.stack, facts.viewers) else {
        return vec![Finding::new(
            ID,
            Status::Skip,
            "the stack sets no load-test criteria (`loadtest:`)",
        )];
    };
    let max_age = facts
        .stack
        .loadtest
        .as_ref()
        .map(|c| c.max_age)
        .unwrap_or_else(|| Span::secs(0));
    let fix = format!(
        "statsctl loadtest --env {} --viewers {}",
        facts.env, bar.viewers
    );
    let mine: Vec<_> = facts
        .loadtests
        .iter()
        .filter(|r| r.env == facts.env)
        .collect();
    if mine.is_empty() {
        return vec![Finding::new(ID, Status::Fail, "no load test recorded").fix(fix)];
    }
    let old = |r: &LoadTestRecord| facts.now.saturating_sub(r.finished_at) > max_age.as_secs();
    let good = mine
        .iter()
        .filter(|r| {
            r.passed
                && !old(r)
                && r.versions == facts.deployed_versions
                && missed(r, &bar).is_empty()
        })
        .max_by_key(|r| r.finished_at);
    if let Some(r) = good {
        // Stated against the bar: the spike may well have been held longer at more viewers.
        return vec![Finding::new(
            ID,
            Status::Pass,
            format!(
                "passed at {} viewers held for {} (peak {}) {} ago, for the deployed versions",
                bar.viewers,
                Span::secs(held_secs(&r.timeline, bar.viewers)),
                peak(&r.timeline),
                age(facts.now.saturating_sub(r.finished_at))
            ),
        )
        .evidence(format!(
            "the bar: {} viewers ({} expected × headroom {}) held for {}, a spike to {}, against {}",
            bar.viewers,
            bar.expected,
            bar.headroom,
            bar.min_hold,
            bar.spike,
            bar.targets.join(", ")
        ))];
    }
    // Say why the newest one does not count.
    let newest = mine.iter().max_by_key(|r| r.finished_at).copied();
    let mut f = Finding::new(
        ID,
        Status::Fail,
        "no passing load test at the required audience for what is deployed",
    );
    if let Some(r) = newest {
        if !r.passed {
            f = f.evidence("the newest load test failed its thresholds");
        }
        for m in missed(r, &bar) {
            f = f.evidence(format!("the newest does not count: {m}"));
        }
        if old(r) {
            f = f.evidence(format!(
                "the newest is {} old; max age {}",
                age(facts.now.saturating_sub(r.finished_at)),
                max_age
            ));
        }
        if r.versions != facts.deployed_versions {
            let changed: Vec<String> = facts
                .deployed_versions
                .iter()
                .filter(|(k, v)| r.versions.get(*k) != Some(v))
                .map(|(k, _)| k.clone())
                .collect();
            f = f.evidence(format!(
                "deployed since the newest test: {}",
                changed.join(", ")
            ));
        }
    }
    vec![f.fix(fix)]
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stack_from;
    use statsctl_core::inventory::Observed;
    use statsctl_core::ledger::timeline;
    use std::collections::BTreeMap;

    const TARGET: &str = "http://stats/matches/1/stats";

    /// A record of a run: per-second viewers as (viewers, seconds) runs.
    fn rec(
        levels: &[(u64, u64)],
        passed: bool,
        age: u64,
        sha: &str,
        target: &str,
    ) -> LoadTestRecord {
        let timeline = timeline(
            levels
                .iter()
                .flat_map(|&(v, n)| std::iter::repeat_n(v, n as usize)),
        );
        let (viewers, held_secs) = held(&timeline, 600);
        LoadTestRecord {
            env: "prod".into(),
            finished_at: 1_000_000 - age,
            viewers,
            held_secs,
            peak_viewers: peak(&timeline),
            timeline,
            stages: vec![],
            arrival: "uniform".into(),
            pool: None,
            insecure: false,
            targets: vec![target.into()],
            counts_for_preflight: false,
            does_not_count: vec![],
            passed,
            versions: [("f".to_string(), sha.to_string())].into(),
            target: target.into(),
            summary: serde_json::Value::Null,
        }
    }

    #[test]
    fn table() {
        let mut stack = stack_from("");
        stack.loadtest = Some(
            serde_json::from_value(serde_json::json!({
                "targets": [TARGET], "headroom": 1.2, "max_age": "7d", "min_hold": "10m"
            }))
            .unwrap(),
        );
        let observed = Observed::default();
        let deployed: BTreeMap<String, String> = [("f".to_string(), "sha-2".to_string())].into();
        // 1500 expected × 1.2 = 1800 held for 10 minutes, then a spike to 1800 × 3 = 5400.
        let event = [(900, 30), (1800, 600), (5400, 60), (0, 1)];
        let ok = |levels: &[(u64, u64)]| rec(levels, true, 3600, "sha-2", TARGET);
        let old_record = {
            let mut r = ok(&event);
            r.timeline.clear();
            r.viewers = 1800;
            r
        };
        let cases = vec![
            ("none", vec![], Status::Fail, "no load test recorded"),
            ("passes", vec![ok(&event)], Status::Pass, "passed at 1800 viewers held for 11m (peak 5400)"),
            (
                "tiny run: 20 viewers for 6 s",
                vec![ok(&[(20, 6)])],
                Status::Fail,
                "it held 20 viewers for 6s; needs 1800 (1500 expected × headroom 1.2) held for 10m",
            ),
            (
                "tiny run, no spike either",
                vec![ok(&[(20, 6)])],
                Status::Fail,
                "it peaked at 20 viewers; needs a spike to 5400 (1800 × spike_factor 3)",
            ),
            (
                "right viewers, hold too short",
                vec![ok(&[(1800, 500), (5400, 60), (0, 1)])],
                Status::Fail,
                "it held 1800 viewers for 560s; needs 1800",
            ),
            (
                "a dip breaks the hold",
                vec![ok(&[(1800, 300), (1700, 1), (1800, 300), (5400, 10)])],
                Status::Fail,
                "it held 1700 viewers for 611s; needs 1800",
            ),
            (
                "no spike",
                vec![ok(&[(1800, 900)])],
                Status::Fail,
                "it peaked at 1800 viewers; needs a spike to 5400",
            ),
            (
                "too few viewers",
                vec![ok(&[(1500, 900), (4500, 60)])],
                Status::Fail,
                "it held 1500 viewers for 16m; needs 1800 (1500 expected × headroom 1.2) held for 10m",
            ),
            (
                "ad-hoc target",
                vec![rec(&event, true, 3600, "sha-2", "http://elsewhere/")],
                Status::Fail,
                "it loaded http://elsewhere/ — not the stack's `loadtest.targets` (http://stats/matches/1/stats)",
            ),
            (
                "spike touched for a second, not held for a poll interval",
                vec![ok(&[(900, 30), (1800, 600), (5400, 1), (1800, 60)])],
                Status::Fail,
                "it held the spike of 5400 viewers for 1s; needs",
            ),
            (
                "shared connections (--pool)",
                vec![{
                    let mut r = ok(&event);
                    r.pool = Some(4);
                    r
                }],
                Status::Fail,
                "it shared 4 connection(s) per worker (`--pool`)",
            ),
            (
                "certificates not checked (--insecure)",
                vec![{
                    let mut r = ok(&event);
                    r.insecure = true;
                    r
                }],
                Status::Fail,
                "it skipped certificate checks (`--insecure`)",
            ),
            (
                "failed",
                vec![rec(&event, false, 3600, "sha-2", TARGET)],
                Status::Fail,
                "failed its thresholds",
            ),
            (
                "too old",
                vec![rec(&event, true, 8 * 86_400, "sha-2", TARGET)],
                Status::Fail,
                "max age",
            ),
            (
                "other version",
                vec![rec(&event, true, 60, "sha-1", TARGET)],
                Status::Fail,
                "deployed since the newest test: f",
            ),
            (
                "a record from before the measurements",
                vec![old_record],
                Status::Fail,
                "no measured timeline",
            ),
            (
                "a later ad-hoc run does not hide a good one",
                vec![ok(&event), rec(&[(20, 6)], true, 60, "sha-2", "http://elsewhere/")],
                Status::Pass,
                "passed at 1800 viewers",
            ),
        ];
        for (name, records, want, text) in cases {
            let facts = Facts {
                loadtests: records,
                deployed_versions: deployed.clone(),
                now: 1_000_000,
                ..crate::fixtures::facts(&stack, "prod", &observed)
            };
            let f = &check(&facts)[0];
            assert_eq!(f.status, want, "{name}: {f:?}");
            let all = format!("{} {:?}", f.summary, f.evidence);
            assert!(all.contains(text), "{name}: {all}");
            if want == Status::Fail {
                assert_eq!(
                    f.fixes,
                    vec!["statsctl loadtest --env prod --viewers 1800"],
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn the_bar_follows_the_audience_asked_for() {
        let mut stack = stack_from("");
        stack.loadtest = Some(
            serde_json::from_value(
                serde_json::json!({"targets": ["b", "a", "a"], "min_hold": "1.5s"}),
            )
            .unwrap(),
        );
        let b = bar(&stack, 1000).unwrap();
        assert_eq!((b.viewers, b.spike, b.min_hold_secs), (1200, 3600, 2));
        assert_eq!(b.targets, vec!["a", "b"]);
        stack.event.spike_factor = 1.0;
        let b = bar(&stack, 1000).unwrap();
        assert_eq!(b.spike, 1200);
        let r = rec(&[(1200, 2)], true, 0, "x", "a");
        let mut both = r.clone();
        both.targets = vec!["b".into(), "a".into()];
        assert!(missed(&both, &b).is_empty(), "{:?}", missed(&both, &b));
        assert_eq!(missed(&r, &b).len(), 1, "one target of two is ad hoc");
    }
}
