//! The plan: (desired, observed) → what has to change, as a pure function, and its terraform-like rendering.
//! The values a plan carries are already masked (`sensitive::mask_change`): live state may hold a secret put
//! there by hand, and every command that shows a plan, in text or JSON, shows only what the plan holds.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::inventory::{Desired, Key, Kind, Observed, Owner, KNOWN_AFTER_APPLY};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    NoOp,
}

impl Action {
    /// The action under way, for progress lines: `creating`.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "creating",
            Action::Update => "updating",
            Action::Delete => "deleting",
            Action::NoOp => "keeping",
        }
    }
    /// The action done, for outcomes: `created`.
    pub fn past(self) -> &'static str {
        match self {
            Action::Create => "created",
            Action::Update => "updated",
            Action::Delete => "deleted",
            Action::NoOp => "unchanged",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttrChange {
    pub attr: String,
    /// `None`: not set (creating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// `None`: removed (deleting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    #[serde(flatten)]
    pub key: Key,
    pub action: Action,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<AttrChange>,
    /// Why this change cannot be applied as planned (foreign owner, immutable attribute); the whole plan is
    /// refused before anything is sent to AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub stack: String,
    pub env: String,
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }
    pub fn blocked(&self) -> Vec<&Change> {
        self.changes
            .iter()
            .filter(|c| c.blocked.is_some())
            .collect()
    }
    pub fn pending(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }
}

/// The difference between what the stack wants and what AWS has. `owner` is this stack+environment: a live
/// resource with another owner is never adopted, and owned resources the stack no longer wants are deleted
/// (never resources that hold data: those are for `destroy --delete-data`).
pub fn plan(owner: &Owner, desired: &[Desired], observed: &Observed) -> Plan {
    let mut changes = Vec::new();
    let wanted: BTreeSet<&Key> = desired.iter().map(|d| &d.key).collect();
    for d in desired {
        changes.push(diff_one(owner, d, observed));
    }
    for (key, o) in &observed.resources {
        if !wanted.contains(key) && o.owner.as_ref() == Some(owner) && !key.kind.holds_data() {
            let changes_list = o
                .attrs
                .iter()
                .map(|(k, v)| attr_change(k, Some(v), None))
                .collect();
            changes.push(Change {
                key: key.clone(),
                action: Action::Delete,
                changes: changes_list,
                blocked: None,
            });
        }
    }
    changes.sort_by_key(order);
    let mut summary = Summary::default();
    for c in &changes {
        match c.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Delete => summary.delete += 1,
            Action::NoOp => summary.unchanged += 1,
        }
    }
    Plan {
        stack: owner.stack.clone(),
        env: owner.env.clone(),
        changes,
        summary,
    }
}

/// Creates and updates in dependency order; deletes after them, dependents first.
fn order(c: &Change) -> (u8, i32, String) {
    match c.action {
        Action::Delete => (1, -(c.key.kind as i32), c.key.name.clone()),
        _ => (0, c.key.kind as i32, c.key.name.clone()),
    }
}

/// One attribute's change as the plan carries it: masked.
fn attr_change(attr: &str, old: Option<&String>, new: Option<&String>) -> AttrChange {
    let (old, new) =
        crate::sensitive::mask_change(old.map(String::as_str), new.map(String::as_str));
    AttrChange {
        attr: attr.to_string(),
        old,
        new,
    }
}

/// A resource that references a secret which does not exist cannot be applied: nothing is.
fn missing_secret_block(d: &Desired) -> Option<String> {
    let name = d
        .attrs
        .values()
        .find_map(|v| crate::desired::missing_secret_in(v))?;
    Some(format!(
        "the secret `{name}` does not exist in Secrets Manager; create it (`aws secretsmanager create-secret --name {name} --secret-string …`) or fix the `{{ secret: … }}` reference in the stack file"
    ))
}

fn diff_one(owner: &Owner, d: &Desired, observed: &Observed) -> Change {
    let Some(o) = observed.resources.get(&d.key) else {
        let changes = d
            .attrs
            .iter()
            .map(|(k, v)| attr_change(k, None, Some(v)))
            .collect();
        return Change {
            key: d.key.clone(),
            action: Action::Create,
            changes,
            blocked: missing_secret_block(d),
        };
    };
    let mut changes = Vec::new();
    for (k, want) in &d.attrs {
        let have = o.attrs.get(k);
        if have != Some(want) {
            changes.push(attr_change(k, have, Some(want)));
        }
    }
    let mut blocked = missing_secret_block(d);
    // Resources whose ownership cannot be told from tags (a secret the stack references, an alias, a target
    // registration) carry no owner; the rest must be ours.
    if blocked.is_some() {
        // Already refused: a missing secret says what to do first.
    } else if let Some(other) = &o.owner {
        if other != owner {
            blocked = Some(format!(
                "`{}` already exists and belongs to stack `{}` environment `{}`; statsctl does not take over resources it does not own",
                d.key.name, other.stack, other.env
            ));
        }
    } else if owned_by_tags(d.key.kind) && !changes.is_empty() {
        blocked = Some(format!(
            "`{}` already exists without the statsctl:stack/statsctl:env tags; statsctl does not take over resources it does not own",
            d.key.name
        ));
    }
    if blocked.is_none() {
        let fixed: Vec<&str> = changes
            .iter()
            .filter(|c| d.immutable.contains(&c.attr.as_str()))
            .map(|c| c.attr.as_str())
            .collect();
        if !fixed.is_empty() {
            blocked = Some(format!(
                "{} cannot change in place; revert the stack file, or destroy and re-create `{}`",
                fixed.join(", "),
                d.key.name
            ));
        }
    }
    let action = if changes.is_empty() {
        Action::NoOp
    } else {
        Action::Update
    };
    Change {
        key: d.key.clone(),
        action,
        changes,
        blocked,
    }
}

/// What `destroy` deletes: everything this stack+environment owns, dependents first. Without `delete_data`,
/// the database, its credentials and what it stands in (its subnet group, security group, the network) are
/// kept and returned separately.
pub fn destroy_plan(
    owner: &Owner,
    observed: &Observed,
    delete_data: bool,
    db_security_group: &str,
) -> (Plan, Vec<Key>) {
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    for (key, o) in &observed.resources {
        if o.owner.as_ref() != Some(owner) {
            continue;
        }
        let supports_data = key.kind.holds_data()
            || matches!(key.kind, Kind::DbSubnetGroup | Kind::Vpc | Kind::Subnet)
            // The database's group is kept, but its rules go: they name groups deleted here, which AWS refuses
            // to delete while referenced.
            || (key.kind == Kind::SecurityGroup && key.name == db_security_group);
        if supports_data && !delete_data {
            kept.push(key.clone());
            continue;
        }
        changes.push(Change {
            key: key.clone(),
            action: Action::Delete,
            changes: vec![],
            blocked: None,
        });
    }
    changes.sort_by_key(order);
    let summary = Summary {
        delete: changes.len(),
        ..Default::default()
    };
    (
        Plan {
            stack: owner.stack.clone(),
            env: owner.env.clone(),
            changes,
            summary,
        },
        kept,
    )
}

/// Kinds whose ownership is recorded in tags.
pub fn owned_by_tags(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Ingress
            | Kind::Secret
            | Kind::Alias
            | Kind::ProxyTargetGroup
            | Kind::ProxyTarget
            | Kind::RolePolicy
            | Kind::Listener
            | Kind::Alarm
    )
}

/// Wraps `s` in an ANSI colour when `color`.
fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// Terraform-like text: one block per change, attributes `old → new`, then the summary line.
pub fn render(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    for c in plan.pending() {
        render_change(&mut out, c, color);
    }
    render_summary(&mut out, plan);
    out
}

/// One change's block: `~ kind.name will be updated in place`, its attributes, a blank line.
fn render_change(out: &mut String, c: &Change, color: bool) {
    let (sym, code, verb) = match c.action {
        Action::Create => ("+", "32", "will be created"),
        Action::Update => ("~", "33", "will be updated in place"),
        Action::Delete => ("-", "31", "will be deleted"),
        Action::NoOp => return,
    };
    let _ = writeln!(
        out,
        "{} {} {}",
        paint(color, code, sym),
        paint(color, "1", &c.key.to_string()),
        verb
    );
    let width = c.changes.iter().map(|a| a.attr.len()).max().unwrap_or(0);
    for a in &c.changes {
        // Maps (environment variables, dimensions) diff key by key: the one changed variable stands out.
        if let (Some(old), Some(new)) = (&a.old, &a.new) {
            if let Some(lines) = map_diff(&a.attr, old, new) {
                for l in lines {
                    let _ = writeln!(out, "    {l}");
                }
                continue;
            }
        }
        let line = match (&a.old, &a.new) {
            (None, Some(new)) => format!("    {:width$} = {}", a.attr, show(new)),
            (Some(old), Some(new)) => {
                format!("    {:width$} = {} → {}", a.attr, show(old), show(new))
            }
            (Some(old), None) => format!("    {:width$} = {}", a.attr, show(old)),
            (None, None) => continue,
        };
        let _ = writeln!(out, "{line}");
    }
    if let Some(why) = &c.blocked {
        let _ = writeln!(out, "    {} {why}", paint(color, "31", "✗ blocked:"));
    }
    out.push('\n');
}

fn render_summary(out: &mut String, plan: &Plan) {
    let s = &plan.summary;
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "No changes. {}/{} matches the stack file ({} resources).",
            plan.stack, plan.env, s.unchanged
        );
    } else {
        let _ = writeln!(
            out,
            "Plan for {}/{}: {} to create, {} to update, {} to delete, {} unchanged.",
            plan.stack, plan.env, s.create, s.update, s.delete, s.unchanged
        );
    }
}

/// A function alias whose traffic is split between two versions: a rollout that did not finish (a deploy killed
/// mid-shift). Not drift to fix blindly — the next deploy finishes it or rolls it back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InProgress {
    /// The unit it belongs to (`function.<name in the stack file>`).
    pub unit: String,
    /// The alias (`function:alias`).
    pub alias: String,
    /// The version the alias points at (the rest of the traffic).
    pub serving: String,
    /// The additional version taking part of the traffic.
    pub version: String,
    /// Its share of traffic, in percent (rounded to 0.1).
    pub percent: f64,
}

impl InProgress {
    /// `version 7 at 10%`; for the service, `revision family:3 (stats-service-green) at 10%`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}%",
            self.word(),
            self.version,
            percent_text(self.percent)
        )
    }

    /// What the unit ships: a function's version, the service's task definition revision.
    fn word(&self) -> &'static str {
        if self.unit.starts_with("service.") {
            "revision"
        } else {
            "version"
        }
    }
}

/// `10`, `12.5`: a percentage without a trailing `.0`.
fn percent_text(p: f64) -> String {
    let r = (p * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// The additional version weights of an alias as `aws::lambda::observe` records them (`7=0.1`, comma-separated
/// when several): version and weight (0–1) pairs. Entries that do not parse, or weigh outside 0–1, are left out
/// (an observed output is data, never trusted to be well formed).
pub fn parse_weights(text: &str) -> Vec<(String, f64)> {
    text.split(',')
        .filter_map(|part| {
            let (v, w) = part.trim().split_once('=')?;
            let w: f64 = w.trim().parse().ok()?;
            let v = v.trim();
            (!v.is_empty() && (0.0..=1.0).contains(&w)).then(|| (v.to_string(), w))
        })
        .collect()
}

/// Every alias of the stack's environment with extra version weights: rollouts left in progress. Pure: reads the
/// `weights` and `version` outputs `aws::lambda::observe` records.
pub fn rollouts_in_progress(
    observed: &Observed,
    stack: &crate::model::StackFile,
    env: &str,
) -> Vec<InProgress> {
    let mut out = Vec::new();
    for (key, r) in &observed.resources {
        if key.kind != Kind::Alias {
            continue;
        }
        let Some((version, weight)) = parse_weights(r.output("weights").unwrap_or_default())
            .into_iter()
            .next()
        else {
            continue;
        };
        let function = Key::split_alias_name(&key.name).map_or(key.name.as_str(), |(f, _)| f);
        let unit = stack
            .functions
            .keys()
            .find(|name| stack.function_name(env, name) == function)
            .map_or_else(
                || format!("function.{function}"),
                |name| format!("function.{name}"),
            );
        out.push(InProgress {
            unit,
            alias: key.name.clone(),
            serving: r.output("version").unwrap_or("?").to_string(),
            version,
            percent: (weight * 1000.0).round() / 10.0,
        });
    }
    out.extend(service_in_progress(observed, stack, env));
    out
}

/// The service's listener splitting traffic between the colours (a deploy stopped mid-rollout): the colour
/// started later is the new one (as the engine finds it), its share the listener's weight. `alias` holds the
/// listener's name. Pure.
fn service_in_progress(
    observed: &Observed,
    stack: &crate::model::StackFile,
    env: &str,
) -> Option<InProgress> {
    use crate::desired::service::{Colour, ColourNames, Routing};
    let svc = stack.service.as_ref()?;
    let names = ColourNames::new(stack, env)?;
    let Routing::Split(forwards) = names.routing(observed) else {
        return None;
    };
    let new = names.newer(observed);
    let weight = |c: Colour| {
        let tg = names.target_group(c);
        forwards
            .iter()
            .find(|(t, _)| *t == tg)
            .map_or(0, |(_, w)| u32::from(*w))
    };
    let total = weight(Colour::Blue) + weight(Colour::Green);
    let percent = if total == 0 {
        0.0
    } else {
        (f64::from(weight(new)) * 1000.0 / f64::from(total)).round() / 10.0
    };
    let runs = |c: Colour| {
        let service = names.service(c);
        let revision = observed
            .get(Kind::EcsService, &service)
            .and_then(|r| r.attrs.get("task_definition"))
            .map_or("?", String::as_str);
        format!("{revision} ({service})")
    };
    Some(InProgress {
        unit: format!("service.{}", svc.name),
        alias: names.listener.clone(),
        serving: runs(new.other()),
        version: runs(new),
        percent,
    })
}

/// A unit as `plan --output json` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitView {
    pub id: String,
    pub kind: crate::history::UnitKind,
    pub target: String,
    /// The plan's changes in this unit (`kind.name`), in plan order.
    pub changes: Vec<String>,
    pub first_time: bool,
    /// How it ships: `canary`, `linear`, `all_at_once`, `first_time` or `direct` (as deploy history records it).
    pub strategy: String,
    /// Traffic left split by an unfinished rollout of this unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_in_progress: Option<InProgress>,
}

/// How a unit ships under the stack's `rollout:` settings, in deploy history's words.
pub fn unit_strategy(u: &crate::units::Unit, r: &crate::model::Rollout) -> &'static str {
    use crate::model::Strategy;
    if u.kind == crate::history::UnitKind::Direct {
        "direct"
    } else if u.first_time {
        "first_time"
    } else {
        match r.strategy {
            Strategy::Canary => "canary",
            Strategy::Linear => "linear",
            Strategy::AllAtOnce => "all_at_once",
        }
    }
}

/// The units with their strategy and any rollout left in progress, for JSON.
pub fn unit_views(
    units: &[crate::units::Unit],
    r: &crate::model::Rollout,
    in_progress: &[InProgress],
) -> Vec<UnitView> {
    units
        .iter()
        .map(|u| UnitView {
            id: u.id.clone(),
            kind: u.kind,
            target: u.target.clone(),
            changes: u.changes.iter().map(ToString::to_string).collect(),
            first_time: u.first_time,
            strategy: unit_strategy(u, r).to_string(),
            rollout_in_progress: in_progress.iter().find(|p| p.unit == u.id).cloned(),
        })
        .collect()
}

/// What a unit's header says after its id: how it ships.
pub fn unit_summary(
    u: &crate::units::Unit,
    r: &crate::model::Rollout,
    in_progress: Option<&InProgress>,
) -> String {
    use crate::history::UnitKind;
    use crate::model::Strategy;
    if let Some(p) = in_progress {
        return in_progress_summary(p);
    }
    if u.id == crate::units::CLEANUP {
        return "deletions, last".into();
    }
    if u.kind == UnitKind::Direct {
        return "applies directly".into();
    }
    if u.first_time {
        return "ships at once (first creation: nothing to protect, no bake)".into();
    }
    let what = if u.kind == UnitKind::Service {
        "new task definition"
    } else {
        "new version"
    };
    let bake = r.bake_time;
    match r.strategy {
        Strategy::Canary => format!("{what}, canary {}% then bake {bake}", r.canary_percent),
        Strategy::Linear => format!(
            "{what}, linear {}% every {} then bake {bake}",
            r.step_percent, r.step_interval
        ),
        Strategy::AllAtOnce => format!("{what}, all at once then bake {bake}"),
    }
}

fn in_progress_summary(p: &InProgress) -> String {
    format!(
        "rollout in progress ({}; {} {} serves the rest): the next `statsctl deploy` finishes or rolls it back",
        p.describe(),
        p.word(),
        p.serving
    )
}

/// The plan grouped by unit, in shipping order: a header per unit (`unit function.stats-api — new version,
/// canary 10% then bake 5m`), its changes as [`render`] shows them, then the summary line. A rollout left in
/// progress is shown on its unit (or on its own when nothing else about that function changes), never as plain
/// drift.
pub fn render_units(
    plan: &Plan,
    units: &[crate::units::Unit],
    r: &crate::model::Rollout,
    in_progress: &[InProgress],
    color: bool,
) -> String {
    let mut out = String::new();
    let by_key: std::collections::BTreeMap<&Key, &Change> =
        plan.pending().map(|c| (&c.key, c)).collect();
    for u in units {
        let p = in_progress.iter().find(|p| p.unit == u.id);
        let head = format!("unit {}", u.id);
        let _ = writeln!(
            out,
            "{} — {}\n",
            paint(color, "1;36", &head),
            unit_summary(u, r, p)
        );
        for k in &u.changes {
            if let Some(c) = by_key.get(k) {
                render_change(&mut out, c, color);
            }
        }
    }
    for p in in_progress
        .iter()
        .filter(|p| !units.iter().any(|u| u.id == p.unit))
    {
        let head = format!("unit {}", p.unit);
        let _ = writeln!(
            out,
            "{} — {}\n    (no change to the stack file: only the split traffic of `{}`)\n",
            paint(color, "1;36", &head),
            in_progress_summary(p),
            p.alias
        );
    }
    render_summary(&mut out, plan);
    out
}

fn map_diff(attr: &str, old: &str, new: &str) -> Option<Vec<String>> {
    let old: std::collections::BTreeMap<String, String> = serde_json::from_str(old).ok()?;
    let new: std::collections::BTreeMap<String, String> = serde_json::from_str(new).ok()?;
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        match (old.get(k), new.get(k)) {
            (Some(a), Some(b)) if a != b => {
                out.push(format!("{attr}.{k} = {} → {}", show(a), show(b)))
            }
            (Some(a), None) => out.push(format!("{attr}.{k} = {} → (removed)", show(a))),
            (None, Some(b)) => out.push(format!("{attr}.{k} = (unset) → {}", show(b))),
            _ => {}
        }
    }
    Some(out)
}

fn show(v: &str) -> String {
    if v == KNOWN_AFTER_APPLY || v == crate::sensitive::MASK || v == crate::sensitive::MASK_CHANGED
    {
        v.to_string()
    } else if v.is_empty() {
        "\"\"".into()
    } else {
        format!("\"{v}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::ObservedResource;
    use crate::spec::{AlarmSpec, DbInstanceSpec, FunctionSpec, Ref, Spec, VpcSpec};

    fn owner() -> Owner {
        Owner {
            stack: "s".into(),
            env: "e".into(),
        }
    }

    fn observed_with(
        kind: Kind,
        name: &str,
        attrs: &[(&str, &str)],
        owner: Option<Owner>,
    ) -> Observed {
        let mut o = Observed::default();
        o.resources.insert(
            Key::new(kind, name),
            ObservedResource {
                id: "id".into(),
                attrs: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                owner,
                ..Default::default()
            },
        );
        o
    }

    /// What the live instance in the table has.
    const LIVE: &[(&str, &str)] = &[
        ("cluster", "db"),
        ("instance_class", "db.r6g.large"),
        ("publicly_accessible", "false"),
    ];

    fn instance(name: &str, cluster: &str, class: &str) -> Desired {
        Desired::from_spec(
            name,
            Spec::DbInstance(DbInstanceSpec {
                cluster: cluster.into(),
                instance_class: class.into(),
                publicly_accessible: false,
            }),
        )
    }

    /// Observed state holding `d` exactly as its canonical view says, owned by this stack.
    fn live_as(d: &Desired) -> Observed {
        let attrs: Vec<(&str, &str)> = d
            .attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        observed_with(d.key.kind, &d.key.name, &attrs, Some(owner()))
    }

    fn function(memory_mb: u32, env: &[(&str, &str)]) -> Desired {
        Desired::from_spec(
            "f",
            Spec::Function(FunctionSpec {
                runtime: "python3.12".into(),
                handler: "app.handler".into(),
                memory_mb,
                timeout_secs: 3,
                role: "r".into(),
                environment: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), Ref::from(*v)))
                    .collect(),
                subnets: vec![],
                security_groups: vec![],
                code_sha256: Ref::AfterApply,
                reserved_concurrency: None,
            }),
        )
    }

    fn alarm(name: &str, threshold: f64) -> Desired {
        Desired::from_spec(
            name,
            Spec::Alarm(AlarmSpec {
                namespace: "AWS/RDS".into(),
                metric: "DatabaseConnections".into(),
                dimensions: Default::default(),
                statistic: "Maximum".into(),
                comparison: crate::model::Comparison::Greater,
                threshold,
                period_secs: 60,
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                actions: vec![],
                description: String::new(),
            }),
        )
    }

    #[test]
    fn table() {
        // Three managed attributes, `cluster` immutable.
        let fun = || instance("f", "db", "db.r6g.large");
        struct Case {
            name: &'static str,
            desired: Vec<Desired>,
            observed: Observed,
            expect: Vec<(Action, usize, bool)>, // (action, number of attribute changes, blocked)
        }
        let cases = vec![
            Case {
                name: "create from nothing",
                desired: vec![fun()],
                observed: Observed::default(),
                expect: vec![(Action::Create, 3, false)],
            },
            Case {
                name: "no-op when equal (unmanaged AWS defaults are not observed at all)",
                desired: vec![fun()],
                observed: observed_with(Kind::DbInstance, "f", LIVE, Some(owner())),
                expect: vec![(Action::NoOp, 0, false)],
            },
            Case {
                name: "drift is an update back to the stack's value",
                desired: vec![fun()],
                observed: observed_with(
                    Kind::DbInstance,
                    "f",
                    &[
                        ("cluster", "db"),
                        ("instance_class", "db.t4g.medium"),
                        ("publicly_accessible", "false"),
                    ],
                    Some(owner()),
                ),
                expect: vec![(Action::Update, 1, false)],
            },
            Case {
                name: "someone else's resource is never adopted",
                desired: vec![fun()],
                observed: observed_with(
                    Kind::DbInstance,
                    "f",
                    LIVE,
                    Some(Owner {
                        stack: "s".into(),
                        env: "prod".into(),
                    }),
                ),
                expect: vec![(Action::NoOp, 0, true)],
            },
            Case {
                name: "untagged and different: refused",
                desired: vec![fun()],
                observed: observed_with(
                    Kind::DbInstance,
                    "f",
                    &[
                        ("cluster", "db"),
                        ("instance_class", "db.t4g.medium"),
                        ("publicly_accessible", "false"),
                    ],
                    None,
                ),
                expect: vec![(Action::Update, 1, true)],
            },
            Case {
                name: "immutable attribute change is blocked",
                desired: vec![instance("f", "other-db", "db.r6g.large")],
                observed: observed_with(Kind::DbInstance, "f", LIVE, Some(owner())),
                expect: vec![(Action::Update, 1, true)],
            },
            Case {
                name: "an owned resource the stack dropped is deleted",
                desired: vec![],
                observed: observed_with(Kind::Alarm, "old", &[("threshold", "1")], Some(owner())),
                expect: vec![(Action::Delete, 1, false)],
            },
            Case {
                name: "an owned database is never deleted by plan",
                desired: vec![],
                observed: observed_with(Kind::DbCluster, "db", &[], Some(owner())),
                expect: vec![],
            },
            Case {
                name: "a foreign resource not in the stack is left alone",
                desired: vec![],
                observed: observed_with(
                    Kind::Function,
                    "x",
                    &[],
                    Some(Owner {
                        stack: "other".into(),
                        env: "e".into(),
                    }),
                ),
                expect: vec![],
            },
        ];
        for case in cases {
            let p = plan(&owner(), &case.desired, &case.observed);
            let got: Vec<(Action, usize, bool)> = p
                .changes
                .iter()
                .map(|c| (c.action, c.changes.len(), c.blocked.is_some()))
                .collect();
            assert_eq!(got, case.expect, "{}", case.name);
        }
    }

    #[test]
    fn secrets_in_live_state_are_masked_in_the_plan_itself() {
        let want = vec![function(256, &[("DB_PASSWORD", "new-pw"), ("LOG", "info")])];
        let live = observed_with(
            Kind::Function,
            "f",
            &[(
                "environment",
                r#"{"API_TOKEN":"Hunter2","DB_PASSWORD":"old-pw","LOG":"info","URL":"postgres://u:Hunter2@h/d"}"#,
            )],
            Some(owner()),
        );
        let p = plan(&owner(), &want, &live);
        let json = serde_json::to_string(&p).unwrap();
        for secret in ["Hunter2", "old-pw", "new-pw"] {
            assert!(!json.contains(secret), "{json}");
        }
        let text = render(&p, false);
        for (line, why) in [
            (
                "environment.API_TOKEN = (sensitive) → (removed)",
                "a removed secret",
            ),
            (
                "environment.DB_PASSWORD = (sensitive) → (sensitive, changed)",
                "a changed secret still shows as changed",
            ),
            (
                "environment.URL = \"postgres://u:***@h/d\" → (removed)",
                "a URL keeps all but its password",
            ),
        ] {
            assert!(text.contains(line), "{why}: {text}");
        }
        assert!(
            !text.contains("Hunter2") && !text.contains("environment.LOG"),
            "{text}"
        );
    }

    #[test]
    fn action_words_for_progress_and_outcomes() {
        for (action, verb, past) in [
            (Action::Create, "creating", "created"),
            (Action::Update, "updating", "updated"),
            (Action::Delete, "deleting", "deleted"),
            (Action::NoOp, "keeping", "unchanged"),
        ] {
            assert_eq!((action.verb(), action.past()), (verb, past), "{action:?}");
        }
    }

    #[test]
    fn shifting_traffic_reads_as_an_in_place_update_of_the_split() {
        use crate::spec::{AliasSpec, AliasVersion, ListenerSpec};
        let listener = |spec| Desired::from_spec("lb:80", Spec::Listener(spec));
        let alias = |spec| Desired::from_spec("f:live", Spec::Alias(spec));
        let before = [
            listener(ListenerSpec::forward(80, "svc-blue")),
            alias(AliasSpec::new(AliasVersion::Number("6".into()))),
        ];
        let mut live = Observed::default();
        for d in &before {
            live.resources.extend(live_as(d).resources);
        }
        let after = [
            listener(ListenerSpec::weighted(80, &[("svc-blue", 90), ("svc-green", 10)]).unwrap()),
            alias(AliasSpec::weighted(AliasVersion::Number("6".into()), "7", 0.1).unwrap()),
        ];
        // Unchanged specs plan nothing; the weighted ones update in place, never blocked.
        assert!(!plan(&owner(), &before, &live).has_changes());
        let p = plan(&owner(), &after, &live);
        let got: Vec<(String, Action, bool)> = p
            .changes
            .iter()
            .map(|c| (c.key.to_string(), c.action, c.blocked.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("lambda_alias.f:live".to_string(), Action::Update, false),
                ("listener.lb:80".to_string(), Action::Update, false),
            ]
        );
        let text = render(&p, false);
        for line in [
            r#"additional_version_weights = "{"7":"0.1"}""#,
            r#"target_group         = "svc-blue" → "svc-blue,svc-green""#,
            r#"target_group_weights = "{"svc-blue":"90","svc-green":"10"}""#,
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn destroy_keeps_data_unless_asked() {
        let mut o = Observed::default();
        for (kind, name) in [
            (Kind::Function, "f"),
            (Kind::DbCluster, "db"),
            (Kind::SecurityGroup, "p-db"),
            (Kind::SecurityGroup, "p-fn"),
            (Kind::Vpc, "p"),
            (Kind::Secret, "s"),
        ] {
            o.resources.insert(
                Key::new(kind, name),
                ObservedResource {
                    owner: Some(owner()),
                    ..Default::default()
                },
            );
        }
        o.resources.insert(
            Key::new(Kind::Function, "theirs"),
            ObservedResource {
                owner: Some(Owner {
                    stack: "x".into(),
                    env: "e".into(),
                }),
                ..Default::default()
            },
        );
        let (p, kept) = destroy_plan(&owner(), &o, false, "p-db");
        let deleted: Vec<String> = p.changes.iter().map(|c| c.key.to_string()).collect();
        assert_eq!(deleted, vec!["lambda_function.f", "security_group.p-fn"]);
        assert_eq!(kept.len(), 4);
        let (p, kept) = destroy_plan(&owner(), &o, true, "p-db");
        assert_eq!(p.changes.len(), 6);
        assert!(kept.is_empty());
        // Dependents go first: the function before its security group, the cluster before the VPC.
        let order: Vec<Kind> = p.changes.iter().map(|c| c.key.kind).collect();
        assert!(
            order.iter().position(|k| *k == Kind::Function)
                < order.iter().position(|k| *k == Kind::SecurityGroup)
        );
        assert!(
            order.iter().position(|k| *k == Kind::DbCluster)
                < order.iter().position(|k| *k == Kind::Vpc)
        );
    }

    #[test]
    fn order_is_dependency_order_and_rendering_shows_old_and_new() {
        let desired = vec![
            alarm("a", 5.0),
            Desired::from_spec(
                "v",
                Spec::Vpc(VpcSpec {
                    cidr: "10.0.0.0/16".into(),
                }),
            ),
            function(256, &[]),
        ];
        // Live exactly as wanted but for its memory.
        let observed = live_as(&function(128, &[]));
        let p = plan(&owner(), &desired, &observed);
        let kinds: Vec<Kind> = p.changes.iter().map(|c| c.key.kind).collect();
        assert_eq!(kinds, vec![Kind::Vpc, Kind::Function, Kind::Alarm]);
        let text = render(&p, false);
        assert!(
            text.contains("~ lambda_function.f will be updated in place"),
            "{text}"
        );
        assert!(text.contains("memory_mb = \"128\" → \"256\""), "{text}");
        assert!(text.contains("+ vpc.v will be created"), "{text}");
        let env_change = vec![function(256, &[("A", "1"), ("DB_HOST", "proxy")])];
        let drifted = live_as(&function(256, &[("A", "1"), ("DB_HOST", "cluster")]));
        let env_text = render(&plan(&owner(), &env_change, &drifted), false);
        assert!(
            env_text.contains("environment.DB_HOST = \"cluster\" → \"proxy\""),
            "{env_text}"
        );
        assert!(!env_text.contains("environment.A"), "{env_text}");
        assert!(
            text.contains("Plan for s/e: 2 to create, 1 to update, 0 to delete, 0 unchanged."),
            "{text}"
        );
    }

    fn shipped_stack() -> crate::model::StackFile {
        crate::testing::shipped("dev")
    }

    fn unit(id: &str, kind: crate::history::UnitKind, first_time: bool) -> crate::units::Unit {
        crate::units::Unit {
            id: id.into(),
            kind,
            target: String::new(),
            changes: vec![],
            first_time,
        }
    }

    #[test]
    fn a_split_listener_is_the_service_rollout_in_progress() {
        use crate::desired::service::{Colour, ColourNames};
        let stack = shipped_stack();
        let names = ColourNames::new(&stack, "dev").unwrap();
        let world = |weights: &str| {
            let mut o = Observed::default();
            let mut put =
                |kind: Kind, name: &str, attrs: &[(&str, &str)], outputs: &[(&str, &str)]| {
                    let pairs = |v: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
                        v.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    };
                    o.resources.insert(
                        Key::new(kind, name),
                        ObservedResource {
                            id: name.into(),
                            attrs: pairs(attrs),
                            outputs: pairs(outputs),
                            owner: None,
                            state: "ACTIVE".into(),
                        },
                    );
                };
            put(
                Kind::EcsService,
                &names.service(Colour::Blue),
                &[("task_definition", "fam:2")],
                &[("started", "100")],
            );
            put(
                Kind::EcsService,
                &names.service(Colour::Green),
                &[("task_definition", "fam:3")],
                &[("started", "200")],
            );
            put(
                Kind::Listener,
                &names.listener,
                &[],
                &[("weights", weights)],
            );
            o
        };
        let blue = names.target_group(Colour::Blue);
        let green = names.target_group(Colour::Green);
        let split = rollouts_in_progress(&world(&format!("{blue}=90,{green}=10")), &stack, "dev");
        assert_eq!(
            split,
            vec![InProgress {
                unit: "service.stats-service".into(),
                alias: names.listener.clone(),
                serving: "fam:2 (stats-service)".into(),
                version: "fam:3 (stats-service-green)".into(),
                percent: 10.0,
            }]
        );
        assert_eq!(
            in_progress_summary(&split[0]),
            "rollout in progress (revision fam:3 (stats-service-green) at 10%; revision fam:2 (stats-service) \
             serves the rest): the next `statsctl deploy` finishes or rolls it back"
        );
        // One colour serving everything, or nothing routed: no rollout in progress.
        for weights in [
            format!("{green}=100"),
            format!("{blue}=1,{green}=0"),
            String::new(),
        ] {
            assert_eq!(
                rollouts_in_progress(&world(&weights), &stack, "dev"),
                vec![],
                "{weights}"
            );
        }
    }

    fn in_progress(unit: &str, version: &str, percent: f64) -> InProgress {
        InProgress {
            unit: unit.into(),
            alias: "f:live".into(),
            serving: "6".into(),
            version: version.into(),
            percent,
        }
    }

    #[test]
    fn unit_headers_say_how_each_unit_ships() {
        use crate::duration::Span;
        use crate::history::UnitKind::*;
        use crate::model::{Rollout, Strategy};
        let rollout = |strategy| Rollout {
            strategy,
            canary_percent: 10,
            step_percent: 25,
            step_interval: Span::secs(60),
            bake_time: Span::secs(300),
            ..Rollout::default()
        };
        let p = in_progress("function.stats-api", "7", 10.0);
        let cases: Vec<(crate::units::Unit, Strategy, Option<&InProgress>, &str, &str)> = vec![
            (unit("direct", Direct, false), Strategy::Canary, None, "applies directly", "direct"),
            (unit("cleanup", Direct, false), Strategy::Canary, None, "deletions, last", "direct"),
            (
                unit("function.stats-api", Function, false),
                Strategy::Canary,
                None,
                "new version, canary 10% then bake 5m",
                "canary",
            ),
            (
                unit("function.stats-api", Function, false),
                Strategy::Linear,
                None,
                "new version, linear 25% every 1m then bake 5m",
                "linear",
            ),
            (
                unit("service.stats-service", Service, false),
                Strategy::AllAtOnce,
                None,
                "new task definition, all at once then bake 5m",
                "all_at_once",
            ),
            (
                unit("function.stats-api", Function, true),
                Strategy::Canary,
                None,
                "ships at once (first creation: nothing to protect, no bake)",
                "first_time",
            ),
            (
                unit("function.stats-api", Function, false),
                Strategy::Canary,
                Some(&p),
                "rollout in progress (version 7 at 10%; version 6 serves the rest): the next `statsctl deploy` finishes or rolls it back",
                "canary",
            ),
        ];
        for (u, strategy, p, summary, name) in cases {
            let r = rollout(strategy);
            assert_eq!(unit_summary(&u, &r, p), summary, "{} {strategy:?}", u.id);
            assert_eq!(unit_strategy(&u, &r), name, "{} {strategy:?}", u.id);
        }
    }

    #[test]
    fn weights_parse_and_bad_entries_are_left_out() {
        let cases: &[(&str, &[(&str, f64)])] = &[
            ("7=0.1", &[("7", 0.1)]),
            ("7=0.1,9=0.25", &[("7", 0.1), ("9", 0.25)]),
            (" 7 = 1 ", &[("7", 1.0)]),
            ("", &[]),
            ("7", &[]),
            ("=0.1", &[]),
            ("7=x", &[]),
            ("7=1.5", &[]),
            ("7=-0.1", &[]),
            ("7=NaN", &[]),
        ];
        for (text, want) in cases {
            let got = parse_weights(text);
            let want: Vec<(String, f64)> = want.iter().map(|(v, w)| (v.to_string(), *w)).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn split_alias_traffic_is_a_rollout_in_progress_named_by_its_unit() {
        let st = shipped_stack();
        let f = st.function_name("dev", "stats-api");
        let g = st.function_name("dev", "log-ingester");
        let mut o = Observed::default();
        for (name, weights) in [(&f, Some("7=0.125")), (&g, None)] {
            let mut r = ObservedResource::default();
            r.outputs.insert("version".into(), "6".into());
            if let Some(w) = weights {
                r.outputs.insert("weights".into(), w.into());
            }
            o.resources.insert(Key::alias(name, "live"), r);
        }
        // A function the stack no longer lists is named by its physical name.
        let mut stray = ObservedResource::default();
        stray.outputs.insert("weights".into(), "3=0.5".into());
        o.resources.insert(Key::alias("old-fn", "live"), stray);
        let got = rollouts_in_progress(&o, &st, "dev");
        let shown: Vec<(String, String, String)> = got
            .iter()
            .map(|p| (p.unit.clone(), p.serving.clone(), p.describe()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "function.stats-api".to_string(),
                    "6".to_string(),
                    "version 7 at 12.5%".to_string()
                ),
                (
                    "function.old-fn".to_string(),
                    "?".to_string(),
                    "version 3 at 50%".to_string()
                ),
            ]
        );
    }

    #[test]
    fn units_render_in_shipping_order_with_their_changes() {
        use crate::history::UnitKind::*;
        let p = plan(
            &owner(),
            &[alarm("a", 5.0), function(256, &[])],
            &observed_with(Kind::SecurityGroup, "old", &[], Some(owner())),
        );
        let mut direct = unit("direct", Direct, false);
        direct.changes = vec![Key::new(Kind::Alarm, "a")];
        let mut fun = unit("function.f", Function, true);
        fun.changes = vec![Key::new(Kind::Function, "f")];
        let mut cleanup = unit("cleanup", Direct, false);
        cleanup.changes = vec![Key::new(Kind::SecurityGroup, "old")];
        let units = [direct, fun, cleanup];
        let r = crate::model::Rollout::default();
        let text = render_units(&p, &units, &r, &[], false);
        let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("unit ")).collect();
        assert_eq!(
            headers,
            [
                "unit direct — applies directly",
                "unit function.f — ships at once (first creation: nothing to protect, no bake)",
                "unit cleanup — deletions, last",
            ]
        );
        let at = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle}\n{text}"))
        };
        assert!(at("unit direct") < at("+ alarm.a will be created"));
        assert!(at("+ alarm.a") < at("unit function.f"));
        assert!(at("unit function.f") < at("+ lambda_function.f will be created"));
        assert!(at("+ lambda_function.f") < at("unit cleanup"));
        assert!(at("unit cleanup") < at("- security_group.old will be deleted"));
        assert!(
            text.ends_with("Plan for s/e: 2 to create, 0 to update, 1 to delete, 0 unchanged.\n")
        );
        // Every change is shown once, as the flat rendering shows it.
        assert_eq!(text.matches(" will be ").count(), 3, "{text}");

        // A rollout left in progress with nothing else to change still shows, on its own unit.
        let live = live_as(&alarm("a", 5.0));
        let quiet = plan(&owner(), &[alarm("a", 5.0)], &live);
        let text = render_units(
            &quiet,
            &[],
            &r,
            &[in_progress("function.f", "7", 10.0)],
            false,
        );
        assert!(
            text.starts_with("unit function.f — rollout in progress (version 7 at 10%"),
            "{text}"
        );
        assert!(text.contains("No changes."), "{text}");
        let views = unit_views(&units, &r, &[in_progress("function.f", "7", 10.0)]);
        let json = serde_json::to_value(&views).unwrap();
        assert_eq!(json[1]["id"], "function.f");
        assert_eq!(json[1]["changes"][0], "lambda_function.f");
        assert_eq!(json[1]["strategy"], "first_time");
        assert_eq!(json[1]["rollout_in_progress"]["percent"], 10.0);
        assert!(json[0].get("rollout_in_progress").is_none(), "{json}");
    }
}
