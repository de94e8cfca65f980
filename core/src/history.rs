//! Deploy history: one record per unit that `deploy` shipped, rolled back or left interrupted, and per `rollback`,
//! appended to the ledger bucket under `deploys/<env>/` (never overwritten). It is what `statsctl history` lists
//! and where a rollback's target comes from: the version that was serving before the last unit — never
//! "revision − 1", which may be the last bad build.

use serde::{Deserialize, Serialize};

/// The ledger prefix deploy history is written under (`deploys/<env>/<unix-ms>-<random>.json`).
pub const LEDGER_KIND: &str = "deploys";

/// What a unit changes, and so how it ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A function's new code or configuration, published as a version behind its alias.
    Function,
    /// A new task definition for the service, started on the idle colour behind the listener.
    Service,
    /// Everything else (alarms, proxy, IAM, network, capacity): applied directly, nothing to shift.
    Direct,
}

/// How a unit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All traffic on the new version after the bake, with no alarm.
    Shipped,
    /// An alarm fired (or an operator asked): all traffic back on the previous version.
    RolledBack,
    /// Stopped part way (Ctrl-C, kill, an AWS error): see `detail` for where routing was left.
    Interrupted,
}

/// One point of a unit's weight timeline, as read back from AWS after the shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightPoint {
    /// Milliseconds since the unit started.
    pub at_ms: u64,
    /// Percent of traffic on the new version (0–100), as read back.
    pub percent: u32,
}

/// The alarm that rolled a unit back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredAlarm {
    pub name: String,
    pub reason: String,
}

/// One unit as it ran. States what happened (read back from AWS), never what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub env: String,
    /// The unit's stable id, as `plan` shows it (e.g. `function.stats-api`).
    pub unit: String,
    pub kind: UnitKind,
    /// What the unit moved: the function's physical name, or the service's name; empty for `direct`.
    pub target: String,
    /// The version (function) or task definition revision (`family:N`, service) serving before the unit;
    /// `None` when the unit created it.
    #[serde(default)]
    pub from: Option<String>,
    /// The version or revision the unit shipped (or tried to).
    #[serde(default)]
    pub to: Option<String>,
    /// Unix milliseconds.
    pub started_at: u64,
    pub ended_at: u64,
    /// The caller identity (ARN) that ran it.
    pub who: String,
    /// `canary`, `linear`, `all_at_once`, `first_time` (created, shipped at once), `direct` or `rollback`.
    pub strategy: String,
    /// Traffic on the new version after each shift, read back.
    #[serde(default)]
    pub timeline: Vec<WeightPoint>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<FiredAlarm>,
    /// Alarms in ALARM at the start that the operator chose to ship through (`--ignore-alarm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_alarms: Vec<String>,
    /// Where things were left, in words (for `interrupted`, and for people reading the ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The version to roll `target` back to, from history: the version that was serving before the most recent unit
/// that shipped what is serving now (`live`). `None` when history has no such unit (nothing to go back to from
/// history). Records may come in any order; the latest `ended_at` wins.
pub fn rollback_target(records: &[UnitRecord], target: &str, live: &str) -> Option<String> {
    records
        .iter()
        .filter(|r| {
            r.target == target
                && r.kind != UnitKind::Direct
                && r.outcome == Outcome::Shipped
                && r.to.as_deref() == Some(live)
        })
        .max_by_key(|r| (r.ended_at, r.started_at))
        .and_then(|r| r.from.clone())
        .filter(|from| from != live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(target: &str, from: Option<&str>, to: &str, ended: u64, outcome: Outcome) -> UnitRecord {
        UnitRecord {
            env: "dev".into(),
            unit: format!("function.{target}"),
            kind: UnitKind::Function,
            target: target.into(),
            from: from.map(str::to_string),
            to: Some(to.into()),
            started_at: ended.saturating_sub(10),
            ended_at: ended,
            who: "arn:aws:iam::123456789012:user/ops".into(),
            strategy: "canary".into(),
            timeline: vec![],
            outcome,
            alarm: None,
            ignored_alarms: vec![],
            detail: None,
        }
    }

    #[test]
    fn rollback_target_follows_history_not_revision_minus_one() {
        use Outcome::*;
        let h = vec![
            rec("f", None, "1", 100, Shipped),
            rec("f", Some("1"), "2", 200, Shipped),
            // 3 was bad and rolled back: 2 kept serving.
            rec("f", Some("2"), "3", 300, RolledBack),
            rec("f", Some("2"), "4", 400, Shipped),
            rec("g", Some("7"), "9", 500, Shipped),
        ];
        let cases: &[(&str, &str, Option<&str>)] = &[
            // Serving 4: go back to 2 (not 3, the bad build, which "4 − 1" would pick).
            ("f", "4", Some("2")),
            ("f", "2", Some("1")),
            // Created by its first unit: nothing before it.
            ("f", "1", None),
            // Serving something history never shipped (changed by hand): no answer from history.
            ("f", "5", None),
            ("g", "9", Some("7")),
            ("h", "1", None),
        ];
        for (target, live, want) in cases {
            assert_eq!(
                rollback_target(&h, target, live).as_deref(),
                *want,
                "{target} serving {live}"
            );
        }
    }

    #[test]
    fn the_latest_shipped_unit_wins_whatever_the_order() {
        use Outcome::*;
        let h = vec![
            rec("f", Some("1"), "2", 900, Shipped),
            rec("f", Some("5"), "2", 100, Shipped),
        ];
        assert_eq!(rollback_target(&h, "f", "2").as_deref(), Some("1"));
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut r = rec("f", Some("1"), "2", 5, Outcome::RolledBack);
        r.timeline = vec![WeightPoint {
            at_ms: 0,
            percent: 10,
        }];
        r.alarm = Some(FiredAlarm {
            name: "a".into(),
            reason: "Threshold Crossed".into(),
        });
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""outcome":"rolled_back""#), "{json}");
        let back: UnitRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
