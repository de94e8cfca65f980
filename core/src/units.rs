//! Units: how a plan's changes are grouped to ship one at a time. A function's new code or configuration (a new
//! version behind its alias) is one unit, the service's new task definition (a new colour behind the listener) is
//! one unit, and everything else — alarms, proxy settings, IAM, network, capacity such as reserved concurrency or
//! desired count — applies directly in the `direct` unit, before them; deletions go last in `cleanup`, once
//! nothing shipped still uses what they remove. Ids are stable across runs (they name what changes, not a
//! position), so `deploy --unit ID` can pick them.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::history::UnitKind;
use crate::inventory::{Key, Kind};
use crate::model::StackFile;
use crate::plan::{Action, Change, Plan};

/// The id of the unit of creates and updates that apply directly.
pub const DIRECT: &str = "direct";
/// The id of the unit of deletions, shipped last.
pub const CLEANUP: &str = "cleanup";

/// One unit of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unit {
    /// `function.<name in the stack file>`, `service.<service name>`, `direct` or `cleanup`.
    pub id: String,
    pub kind: UnitKind,
    /// The function's physical name or the service's name; empty for `direct` and `cleanup`.
    pub target: String,
    /// The plan's changes in this unit, in plan order.
    pub changes: Vec<Key>,
    /// It creates what it ships (the alias, the service): nothing to protect, so it ships at once, no bake.
    pub first_time: bool,
}

impl Unit {
    /// Whether traffic moves in steps for this unit (a function or service unit that is not a first creation).
    pub fn shifts_traffic(&self) -> bool {
        self.kind != UnitKind::Direct && !self.first_time
    }
}

/// Attributes whose change alone is capacity, not a new version: applied directly.
fn capacity_only(c: &Change, capacity: &[&str]) -> bool {
    c.action == Action::Update
        && !c.changes.is_empty()
        && c.changes
            .iter()
            .all(|a| capacity.contains(&a.attr.as_str()))
}

/// Groups a plan's pending changes into units, in the order they ship: `direct`, then each function unit in plan
/// order, then the service unit, then `cleanup`. Empty units are left out.
pub fn units(plan: &Plan, stack: &StackFile) -> Vec<Unit> {
    let function_id = |physical: &str| {
        stack
            .functions
            .keys()
            .find(|name| stack.function_name(&plan.env, name) == physical)
            .map(|name| format!("function.{name}"))
    };
    let service = stack.service.as_ref().map(|s| s.name.clone());
    let colours = crate::desired::service::ColourNames::new(stack, &plan.env);
    let mut direct = Unit {
        id: DIRECT.into(),
        kind: UnitKind::Direct,
        target: String::new(),
        changes: vec![],
        first_time: false,
    };
    let mut cleanup = Unit {
        id: CLEANUP.into(),
        ..direct.clone()
    };
    let mut shipped: Vec<Unit> = Vec::new();
    let mut add = |id: String, kind: UnitKind, target: &str, c: &Change| {
        let first = matches!(
            (c.key.kind, c.action),
            (Kind::Alias | Kind::EcsService, Action::Create)
        );
        match shipped.iter_mut().find(|u| u.id == id) {
            Some(u) => {
                u.changes.push(c.key.clone());
                u.first_time |= first;
            }
            None => shipped.push(Unit {
                id,
                kind,
                target: target.to_string(),
                changes: vec![c.key.clone()],
                first_time: first,
            }),
        }
    };
    for c in plan.pending() {
        if c.action == Action::Delete {
            cleanup.changes.push(c.key.clone());
            continue;
        }
        match c.key.kind {
            Kind::Function if !capacity_only(c, &["reserved_concurrency"]) => {
                match function_id(&c.key.name) {
                    Some(id) => add(id, UnitKind::Function, &c.key.name, c),
                    None => direct.changes.push(c.key.clone()),
                }
            }
            Kind::Alias => {
                let function = Key::split_alias_name(&c.key.name).map_or("", |(f, _)| f);
                match function_id(function) {
                    Some(id) => add(id, UnitKind::Function, function, c),
                    None => direct.changes.push(c.key.clone()),
                }
            }
            // The load generator's task definition is no new version of the service: it applies directly.
            Kind::TaskDefinition
                if c.key.name == crate::desired::loadgen::family(&stack.stack, &plan.env) =>
            {
                direct.changes.push(c.key.clone())
            }
            Kind::TaskDefinition => match &service {
                Some(s) => add(format!("service.{s}"), UnitKind::Service, s, c),
                None => direct.changes.push(c.key.clone()),
            },
            // Either colour's service (the serving one carries the new revision); the unit is named after the
            // stack's service.
            Kind::EcsService
                if colours.as_ref().is_some_and(|n| n.is_service(&c.key.name))
                    && !capacity_only(c, &["desired_count"]) =>
            {
                let s = service.clone().unwrap_or_default();
                add(format!("service.{s}"), UnitKind::Service, &s, c)
            }
            _ => direct.changes.push(c.key.clone()),
        }
    }
    // The service unit ships after the functions, whatever the plan order.
    shipped.sort_by_key(|u| u.kind == UnitKind::Service);
    let mut out = Vec::new();
    if !direct.changes.is_empty() {
        out.push(direct);
    }
    out.extend(shipped);
    if !cleanup.changes.is_empty() {
        out.push(cleanup);
    }
    out
}

/// The units `deploy --unit ID…` asked for, in shipping order; an unknown id is an error listing the plan's ids.
pub fn select(all: &[Unit], ids: &[String]) -> Result<Vec<Unit>, String> {
    if ids.is_empty() {
        return Ok(all.to_vec());
    }
    let known: BTreeSet<&str> = all.iter().map(|u| u.id.as_str()).collect();
    if let Some(bad) = ids.iter().find(|id| !known.contains(id.as_str())) {
        let list: Vec<&str> = all.iter().map(|u| u.id.as_str()).collect();
        return Err(if list.is_empty() {
            format!("no unit `{bad}`: the plan has no changes")
        } else {
            format!(
                "no unit `{bad}` in the plan; its units are: {}",
                list.join(", ")
            )
        });
    }
    Ok(all
        .iter()
        .filter(|u| ids.contains(&u.id))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AttrChange, Summary};

    fn stack() -> StackFile {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        crate::loader::load_str(&path, &text, Some("dev"), &|_: &str| None)
            .expect("the shipped stack loads")
            .spec
    }

    fn change(kind: Kind, name: &str, action: Action, attrs: &[&str]) -> Change {
        Change {
            key: Key::new(kind, name),
            action,
            changes: attrs
                .iter()
                .map(|a| AttrChange {
                    attr: a.to_string(),
                    old: Some("1".into()),
                    new: Some("2".into()),
                })
                .collect(),
            blocked: None,
        }
    }

    fn plan_of(changes: Vec<Change>) -> Plan {
        Plan {
            stack: "live-stats".into(),
            env: "dev".into(),
            changes,
            summary: Summary::default(),
        }
    }

    fn ids(us: &[Unit]) -> Vec<(String, Vec<String>, bool)> {
        us.iter()
            .map(|u| {
                (
                    u.id.clone(),
                    u.changes.iter().map(|k| k.to_string()).collect(),
                    u.first_time,
                )
            })
            .collect()
    }

    #[test]
    fn changes_group_into_units_in_shipping_order() {
        use Action::*;
        let st = stack();
        let f = st.function_name("dev", "stats-api");
        let svc = st.service.as_ref().unwrap().name.clone();
        let family = format!("{}-{svc}", st.prefix("dev"));
        let alias = Key::alias_name(&f, "live");
        let p = plan_of(vec![
            change(Kind::Alarm, "a", Create, &["threshold"]),
            change(Kind::TaskDefinition, &family, Update, &["image"]),
            change(Kind::EcsService, &svc, Update, &["task_definition"]),
            change(
                Kind::Function,
                &f,
                Update,
                &["memory_mb", "reserved_concurrency"],
            ),
            change(Kind::Alias, &alias, Update, &["version"]),
            change(Kind::SecurityGroup, "old", Delete, &[]),
            change(Kind::Ledger, "ledger", NoOp, &[]),
        ]);
        let got = ids(&units(&p, &st));
        let want = vec![
            ("direct".to_string(), vec!["alarm.a".to_string()], false),
            (
                "function.stats-api".to_string(),
                vec![
                    format!("lambda_function.{f}"),
                    format!("lambda_alias.{alias}"),
                ],
                false,
            ),
            (
                format!("service.{svc}"),
                vec![
                    format!("task_definition.{family}"),
                    format!("ecs_service.{svc}"),
                ],
                false,
            ),
            (
                "cleanup".to_string(),
                vec!["security_group.old".to_string()],
                false,
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn capacity_alone_applies_directly_and_creations_ship_at_once() {
        use Action::*;
        let st = stack();
        let f = st.function_name("dev", "stats-api");
        let g = st.function_name("dev", "log-ingester");
        let svc = st.service.as_ref().unwrap().name.clone();
        let p = plan_of(vec![
            change(Kind::Function, &f, Update, &["reserved_concurrency"]),
            change(Kind::EcsService, &svc, Update, &["desired_count"]),
            change(Kind::Function, &g, Create, &[]),
            change(Kind::Alias, &Key::alias_name(&g, "live"), Create, &[]),
        ]);
        let us = units(&p, &st);
        let got = ids(&us);
        assert_eq!(got[0].0, "direct");
        assert_eq!(got[0].1.len(), 2, "{got:?}");
        assert_eq!(got[1].0, "function.log-ingester");
        assert!(got[1].2, "a created alias ships at once");
        assert!(!us[1].shifts_traffic());
        assert_eq!(us.len(), 2);
    }

    /// With green serving, the new revision lands on `<service>-green`: still the service's unit, named after the
    /// stack's service; the idle colour scaled down is capacity, applied directly.
    #[test]
    fn either_colour_of_the_service_is_the_service_unit() {
        use Action::*;
        let st = stack();
        let svc = st.service.as_ref().unwrap().name.clone();
        let green = format!("{svc}-green");
        let family = format!("{}-{svc}", st.prefix("dev"));
        let p = plan_of(vec![
            change(Kind::EcsService, &svc, Update, &["desired_count"]),
            change(Kind::TaskDefinition, &family, Update, &["image"]),
            change(Kind::EcsService, &green, Update, &["task_definition"]),
        ]);
        let got = ids(&units(&p, &st));
        assert_eq!(
            got,
            vec![
                (
                    "direct".to_string(),
                    vec![format!("ecs_service.{svc}")],
                    false
                ),
                (
                    format!("service.{svc}"),
                    vec![
                        format!("task_definition.{family}"),
                        format!("ecs_service.{green}"),
                    ],
                    false,
                ),
            ]
        );
    }

    #[test]
    fn select_keeps_order_and_names_the_known_ids_on_a_typo() {
        let st = stack();
        let f = st.function_name("dev", "stats-api");
        let p = plan_of(vec![
            change(Kind::Alarm, "a", Action::Create, &["threshold"]),
            change(Kind::Function, &f, Action::Update, &["memory_mb"]),
        ]);
        let all = units(&p, &st);
        let picked = select(&all, &["function.stats-api".into(), "direct".into()]).unwrap();
        assert_eq!(
            picked.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
            ["direct", "function.stats-api"]
        );
        let e = select(&all, &["function.stats".into()]).unwrap_err();
        assert!(e.contains("direct, function.stats-api"), "{e}");
        assert_eq!(select(&all, &[]).unwrap(), all);
    }
}
