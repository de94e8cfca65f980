//! `statsctl status`: every resource of the stack with its live state and versions (the version behind each
//! alias and the one before it, the task definition revision, proxy and target health, alarm states), and
//! whether each secret the environment references exists. An alias whose traffic is split between two versions is
//! shown as a rollout in progress, not as drift.

use serde::Serialize;
use statsctl_core::inventory::Kind;
use statsctl_core::plan::{rollouts_in_progress, Action, InProgress};

use crate::context::Global;
use crate::exit::{CliResult, OK};
use crate::output::{self, emit};
use crate::session::Session;

#[derive(Serialize)]
struct Row {
    resource: String,
    kind: &'static str,
    name: String,
    exists: bool,
    state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
    /// The plan would change it.
    pending: bool,
    /// Traffic split between two versions by a rollout that did not finish (aliases only).
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout_in_progress: Option<InProgress>,
}

#[derive(Serialize)]
struct StatusReport {
    stack: String,
    env: String,
    account: String,
    region: String,
    resources: Vec<Row>,
    pending_changes: usize,
    alarms_in_alarm: Vec<String>,
    rollouts_in_progress: Vec<InProgress>,
}

pub async fn run(g: &Global) -> CliResult {
    let s = Session::open(g, true).await?;
    let (observed, p, _) = s.observe_and_plan().await?;
    let in_progress = rollouts_in_progress(&observed, &s.stack.spec, &s.env);
    let mut rows = Vec::new();
    for c in &p.changes {
        let live = observed.resources.get(&c.key);
        let detail = match (c.key.kind, live) {
            (Kind::Alias, Some(r)) => format!(
                "version {}{}",
                r.output("version").unwrap_or("?"),
                r.output("previous")
                    .map(|p| format!(" (previous {p})"))
                    .unwrap_or_default()
            ),
            (Kind::TaskDefinition, Some(r)) => {
                r.output("revision_ref").unwrap_or_default().to_string()
            }
            (Kind::Proxy, Some(r)) => r.output("endpoint").unwrap_or_default().to_string(),
            (Kind::DbCluster, Some(r)) => r.output("endpoint").unwrap_or_default().to_string(),
            (Kind::LoadBalancer, Some(r)) => r.output("dns_name").unwrap_or_default().to_string(),
            // The listener's weights by target group: which colour serves, or a rollout in progress.
            (Kind::Listener, Some(r)) => r.output("weights").unwrap_or_default().to_string(),
            (Kind::EcsService, Some(r)) => colour_detail(&s, &observed, &c.key.name, r),
            (Kind::Alarm, Some(r)) if r.state == "ALARM" => {
                r.output("state_reason").unwrap_or_default().to_string()
            }
            _ => String::new(),
        };
        rows.push(Row {
            resource: c.key.to_string(),
            kind: c.key.kind.label(),
            name: c.key.name.clone(),
            exists: live.is_some(),
            state: live
                .map(|r| r.state.clone())
                .unwrap_or_else(|| "missing".into()),
            detail,
            pending: c.action != Action::NoOp,
            rollout_in_progress: in_progress
                .iter()
                .find(|r| {
                    matches!(c.key.kind, Kind::Alias | Kind::Listener) && r.alias == c.key.name
                })
                .cloned(),
        });
    }
    // Secrets the environment references are not managed, so no plan change lists them; on-call still needs to
    // see that each exists (the secret's ARN, never its value).
    for name in statsctl_core::desired::referenced_secrets(&s.stack.spec) {
        let key = statsctl_core::inventory::Key::new(Kind::Secret, name.as_str());
        if rows.iter().any(|r| r.resource == key.to_string()) {
            continue;
        }
        let live = observed.get(Kind::Secret, &name);
        rows.push(Row {
            resource: key.to_string(),
            kind: Kind::Secret.label(),
            name,
            exists: live.is_some(),
            state: live
                .map(|_| "exists (referenced)".to_string())
                .unwrap_or_else(|| "missing".into()),
            detail: live.map(|r| r.id.clone()).unwrap_or_default(),
            pending: false,
            rollout_in_progress: None,
        });
    }
    let alarms_in_alarm: Vec<String> = rows
        .iter()
        .filter(|r| r.kind == "alarm" && r.state == "ALARM")
        .map(|r| r.name.clone())
        .collect();
    let report = StatusReport {
        stack: s.owner.stack.clone(),
        env: s.env.clone(),
        account: observed.account_id.clone(),
        region: observed.region.clone(),
        pending_changes: rows.iter().filter(|r| r.pending).count(),
        alarms_in_alarm,
        rollouts_in_progress: in_progress,
        resources: rows,
    };
    emit(g.output, &report, |out| {
        out.push_str(&format!(
            "{}/{} in account {} ({})\n\n",
            report.stack, report.env, report.account, report.region
        ));
        let width = report
            .resources
            .iter()
            .map(|r| r.resource.chars().count())
            .max()
            .unwrap_or(10);
        out.push_str(&format!(
            "{:width$}  {:<28} {}\n",
            "RESOURCE", "STATE", "DETAIL"
        ));
        for r in &report.resources {
            let state = match r.state.as_str() {
                "missing" | "ALARM" | "Failed" => output::red(&r.state),
                "INSUFFICIENT_DATA" => output::yellow(&r.state),
                _ => r.state.clone(),
            };
            let pad = 28usize.saturating_sub(r.state.chars().count());
            let drift = if let Some(p) = &r.rollout_in_progress {
                output::yellow(&format!(
                    " (rollout in progress: {}; the next `statsctl deploy` finishes or rolls it back)",
                    p.describe()
                ))
            } else if r.pending && r.exists {
                output::yellow(" (drifted from the stack file)")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:width$}  {}{} {}{}\n",
                r.resource,
                state,
                " ".repeat(pad),
                r.detail,
                drift
            ));
        }
        out.push_str(&format!(
            "\n{} resources, {} with pending changes, {} alarms in ALARM\n",
            report.resources.len(),
            report.pending_changes,
            report.alarms_in_alarm.len()
        ));
        if !report.rollouts_in_progress.is_empty() {
            out.push_str(&format!(
                "{} rollout(s) in progress: the next `statsctl deploy` finishes or rolls each back\n",
                report.rollouts_in_progress.len()
            ));
        }
    })?;
    Ok(OK)
}

/// A service colour's revision and role: serving, or idle and how long it keeps its tasks for a rollback.
fn colour_detail(
    s: &Session,
    observed: &statsctl_core::inventory::Observed,
    name: &str,
    r: &statsctl_core::inventory::ObservedResource,
) -> String {
    let revision = r.attrs.get("task_definition").cloned().unwrap_or_default();
    let Some(names) = statsctl_core::desired::service::ColourNames::new(&s.stack.spec, &s.env)
    else {
        return revision;
    };
    let serving = names.service(names.serving(observed));
    let role = if name == serving {
        "serving".to_string()
    } else {
        match r.output("keep_until").and_then(|t| t.parse::<u64>().ok()) {
            Some(until) => {
                let left = until.saturating_sub(statsctl_aws::ecs::unix_now());
                if left == 0 {
                    "idle; keep time passed: the next deploy scales it to 0".to_string()
                } else {
                    format!(
                        "idle; kept {} more for a rollback",
                        statsctl_core::duration::Span(std::time::Duration::from_secs(
                            left.div_ceil(60) * 60
                        ))
                    )
                }
            }
            None => "idle".to_string(),
        }
    };
    format!("{revision} ({role})")
}
