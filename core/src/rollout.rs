//! Rollout decisions, pure: the shifts a unit goes through under the stack's `rollout:` settings, and — given
//! where a rollout stands, the time and the alarms — what to do next (shift, wait, promote or roll back). The
//! executor owns the clock, the sleeping and the AWS calls; everything here is decided from plain values so it can
//! be tested at fake times with tables of cases.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::model::{Rollout, Strategy};

/// One shift of traffic: the share on the new version, then how long it holds before the next shift (for the
/// last shift, the bake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    /// Percent of traffic on the new version (1–100).
    pub percent: u32,
    pub hold: Duration,
}

/// The shifts a unit goes through. Something created for the first time has no previous version to protect:
/// it ships at once with no bake.
///
/// - `all_at_once`: 100 %, then the bake.
/// - `canary`: `canary_percent` for the bake time, then 100 % and the bake.
/// - `linear`: `step_percent` more every `step_interval` until 100 %, then the bake.
pub fn schedule(r: &Rollout, first_time: bool) -> Vec<Shift> {
    let bake = r.bake_time.0;
    if first_time {
        return vec![Shift {
            percent: 100,
            hold: Duration::ZERO,
        }];
    }
    let full = Shift {
        percent: 100,
        hold: bake,
    };
    match r.strategy {
        Strategy::AllAtOnce => vec![full],
        Strategy::Canary if (1..100).contains(&r.canary_percent) => vec![
            Shift {
                percent: r.canary_percent,
                hold: bake,
            },
            full,
        ],
        Strategy::Linear if (1..100).contains(&r.step_percent) => {
            let mut out: Vec<Shift> = (1..)
                .map(|i| r.step_percent.saturating_mul(i))
                .take_while(|p| *p < 100)
                .map(|percent| Shift {
                    percent,
                    hold: r.step_interval.0,
                })
                .collect();
            out.push(full);
            out
        }
        // Out-of-range percentages are refused by validation; should one get here, ship without a partial step
        // rather than send a nonsense weight to AWS.
        Strategy::Canary | Strategy::Linear => vec![full],
    }
}

/// An alarm's state as CloudWatch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    InsufficientData,
    Alarm { reason: String },
}

/// A watched alarm and its state now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedAlarm {
    pub name: String,
    pub state: AlarmState,
}

/// Where a rollout stands: the index of the last shift applied and when it was applied (on the executor's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub step: usize,
    pub applied_at: Duration,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply shift `step` (put `percent` of traffic on the new version) now.
    Shift { step: usize, percent: u32 },
    /// Nothing to do before `until` (poll alarms meanwhile).
    Wait { until: Duration },
    /// The last shift held through its bake with no alarm: make the new version the only one.
    Promote,
    /// An alarm fired after traffic reached the new version: send all traffic back to the previous one.
    RollBack { alarm: String, reason: String },
}

/// Alarms in ALARM that are not ignored, by name (sorted, so the first named is stable).
pub fn firing<'a>(alarms: &'a [WatchedAlarm], ignored: &BTreeSet<String>) -> Vec<&'a WatchedAlarm> {
    let mut out: Vec<_> = alarms
        .iter()
        .filter(|a| matches!(a.state, AlarmState::Alarm { .. }) && !ignored.contains(&a.name))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The next step of a rollout. `progress` is `None` before the first shift. Alarms named in `ignored` (the deploy's
/// `--ignore-alarm`) never roll back; any other watched alarm in ALARM once traffic has moved rolls the unit back.
pub fn decide(
    schedule: &[Shift],
    progress: Option<Progress>,
    now: Duration,
    alarms: &[WatchedAlarm],
    ignored: &BTreeSet<String>,
) -> Decision {
    let Some(p) = progress else {
        return match schedule.first() {
            Some(first) => Decision::Shift {
                step: 0,
                percent: first.percent,
            },
            None => Decision::Promote,
        };
    };
    if let Some(a) = firing(alarms, ignored).first() {
        let reason = match &a.state {
            AlarmState::Alarm { reason } => reason.clone(),
            _ => String::new(),
        };
        return Decision::RollBack {
            alarm: a.name.clone(),
            reason,
        };
    }
    let Some(current) = schedule.get(p.step) else {
        return Decision::Promote;
    };
    let until = p.applied_at.saturating_add(current.hold);
    if now < until {
        return Decision::Wait { until };
    }
    match schedule.get(p.step + 1) {
        Some(next) => Decision::Shift {
            step: p.step + 1,
            percent: next.percent,
        },
        None => Decision::Promote,
    }
}

/// Where an interrupted rollout stands, from the share of traffic live routing gives the new version: the index
/// of the last shift at or below it, so a resumed rollout re-holds that step rather than skipping ahead. `None`
/// when no traffic reached the new version.
pub fn resume_step(schedule: &[Shift], live_percent: u32) -> Option<usize> {
    if live_percent == 0 {
        return None;
    }
    schedule
        .iter()
        .rposition(|s| s.percent <= live_percent)
        .or(Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Span;

    fn rollout(strategy: Strategy, canary: u32, step: u32, interval: u64, bake: u64) -> Rollout {
        Rollout {
            strategy,
            canary_percent: canary,
            step_percent: step,
            step_interval: Span::secs(interval),
            bake_time: Span::secs(bake),
            ..Rollout::default()
        }
    }

    fn shifts(s: &[Shift]) -> Vec<(u32, u64)> {
        s.iter().map(|x| (x.percent, x.hold.as_secs())).collect()
    }

    /// A stack's rollout settings, whether the unit is new, and the (percent, hold seconds) shifts expected.
    type ScheduleCase<'a> = (Rollout, bool, &'a [(u32, u64)]);

    /// Progress, clock (s), alarms, ignored alarms, and the decision expected.
    type DecideCase<'a> = (
        Option<Progress>,
        u64,
        Vec<WatchedAlarm>,
        &'a BTreeSet<String>,
        Decision,
    );

    #[test]
    fn schedules() {
        let cases: &[ScheduleCase] = &[
            (
                rollout(Strategy::Canary, 10, 10, 60, 300),
                false,
                &[(10, 300), (100, 300)],
            ),
            (
                rollout(Strategy::Canary, 50, 10, 60, 5),
                false,
                &[(50, 5), (100, 5)],
            ),
            (
                rollout(Strategy::AllAtOnce, 10, 10, 60, 30),
                false,
                &[(100, 30)],
            ),
            (
                rollout(Strategy::Linear, 10, 25, 60, 30),
                false,
                &[(25, 60), (50, 60), (75, 60), (100, 30)],
            ),
            (
                rollout(Strategy::Linear, 10, 30, 10, 5),
                false,
                &[(30, 10), (60, 10), (90, 10), (100, 5)],
            ),
            (
                rollout(Strategy::Linear, 10, 99, 10, 5),
                false,
                &[(99, 10), (100, 5)],
            ),
            // Created for the first time: at once, no bake, whatever the strategy.
            (
                rollout(Strategy::Canary, 10, 10, 60, 300),
                true,
                &[(100, 0)],
            ),
            (
                rollout(Strategy::Linear, 10, 10, 60, 300),
                true,
                &[(100, 0)],
            ),
            // Out of range (refused by validation): no partial weight is ever produced.
            (rollout(Strategy::Canary, 0, 10, 60, 5), false, &[(100, 5)]),
            (
                rollout(Strategy::Linear, 10, 100, 60, 5),
                false,
                &[(100, 5)],
            ),
        ];
        for (r, first, want) in cases {
            assert_eq!(shifts(&schedule(r, *first)), *want, "{r:?} first={first}");
        }
    }

    fn ok(name: &str) -> WatchedAlarm {
        WatchedAlarm {
            name: name.into(),
            state: AlarmState::Ok,
        }
    }
    fn alarm(name: &str) -> WatchedAlarm {
        WatchedAlarm {
            name: name.into(),
            state: AlarmState::Alarm {
                reason: format!("{name} crossed its threshold"),
            },
        }
    }
    fn at(step: usize, secs: u64) -> Option<Progress> {
        Some(Progress {
            step,
            applied_at: Duration::from_secs(secs),
        })
    }

    #[test]
    fn decisions_at_fake_times() {
        let canary = schedule(&rollout(Strategy::Canary, 10, 10, 60, 300), false);
        let none = BTreeSet::new();
        let ignore_5xx: BTreeSet<String> = ["5xx".to_string()].into();
        let s = Duration::from_secs;
        let cases: Vec<DecideCase> = vec![
            // Start: the canary shift, whatever the clock.
            (
                None,
                0,
                vec![ok("5xx")],
                &none,
                Decision::Shift {
                    step: 0,
                    percent: 10,
                },
            ),
            // Baking the canary: wait until the bake ends.
            (
                at(0, 10),
                100,
                vec![ok("5xx")],
                &none,
                Decision::Wait { until: s(310) },
            ),
            (
                at(0, 10),
                309,
                vec![],
                &none,
                Decision::Wait { until: s(310) },
            ),
            // Bake over: the full shift.
            (
                at(0, 10),
                310,
                vec![ok("5xx")],
                &none,
                Decision::Shift {
                    step: 1,
                    percent: 100,
                },
            ),
            // Full shift baked: promote.
            (at(1, 310), 610, vec![ok("5xx")], &none, Decision::Promote),
            (
                at(1, 310),
                609,
                vec![ok("5xx")],
                &none,
                Decision::Wait { until: s(610) },
            ),
            // An alarm during the canary's bake rolls back, naming it.
            (
                at(0, 10),
                100,
                vec![ok("latency"), alarm("5xx")],
                &none,
                Decision::RollBack {
                    alarm: "5xx".into(),
                    reason: "5xx crossed its threshold".into(),
                },
            ),
            // Even when the bake is over: an alarm wins over the next shift.
            (
                at(0, 10),
                999,
                vec![alarm("latency")],
                &none,
                Decision::RollBack {
                    alarm: "latency".into(),
                    reason: "latency crossed its threshold".into(),
                },
            ),
            // Several: the first by name.
            (
                at(1, 310),
                400,
                vec![alarm("zz"), alarm("aa")],
                &none,
                Decision::RollBack {
                    alarm: "aa".into(),
                    reason: "aa crossed its threshold".into(),
                },
            ),
            // An ignored alarm (the deploy ships the fix for it) does not roll back.
            (
                at(0, 10),
                100,
                vec![alarm("5xx")],
                &ignore_5xx,
                Decision::Wait { until: s(310) },
            ),
            // Insufficient data is not an alarm.
            (
                at(0, 10),
                100,
                vec![WatchedAlarm {
                    name: "5xx".into(),
                    state: AlarmState::InsufficientData,
                }],
                &none,
                Decision::Wait { until: s(310) },
            ),
        ];
        for (i, (progress, now, alarms, ignored, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                decide(&canary, progress, s(now), &alarms, ignored),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn before_the_first_shift_alarms_do_not_roll_back_nothing() {
        // Alarms firing before a deploy starts block it (checked by the caller with `firing`), they are not a
        // rollback of a unit that has moved no traffic.
        let s = schedule(&rollout(Strategy::AllAtOnce, 10, 10, 60, 5), false);
        let alarms = [alarm("5xx")];
        assert_eq!(
            decide(&s, None, Duration::ZERO, &alarms, &BTreeSet::new()),
            Decision::Shift {
                step: 0,
                percent: 100
            }
        );
        assert_eq!(firing(&alarms, &BTreeSet::new()).len(), 1);
        assert!(firing(&alarms, &["5xx".to_string()].into()).is_empty());
    }

    #[test]
    fn resuming_an_interrupted_rollout() {
        let linear = schedule(&rollout(Strategy::Linear, 10, 25, 60, 30), false);
        for (live, want) in [
            (0, None),
            (25, Some(0)),
            (40, Some(0)),
            (50, Some(1)),
            (75, Some(2)),
            (100, Some(3)),
            (10, Some(0)),
        ] {
            assert_eq!(resume_step(&linear, live), want, "live {live}%");
        }
    }

    #[test]
    fn a_huge_hold_saturates_instead_of_overflowing() {
        let s = [Shift {
            percent: 100,
            hold: Duration::MAX,
        }];
        assert_eq!(
            decide(
                &s,
                at(0, 10),
                Duration::from_secs(20),
                &[],
                &BTreeSet::new()
            ),
            Decision::Wait {
                until: Duration::MAX
            }
        );
    }
}
