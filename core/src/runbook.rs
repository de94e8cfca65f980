//! The runbook model, pure: a runbook file (name, title, when to use it, typed parameters, steps) loaded with the
//! same located errors as a stack file, checked whole before anything runs, and its `{{params.x}}` /
//! `{{steps.id.field}}` references resolved from plain values. Running steps (AWS, SQL, prompts) is the
//! executor's; this module only says what a runbook is and whether it is well formed.
//!
//! A step is one map with a title, a one-line why, and exactly one kind key:
//!
//! ```yaml
//! - id: holders
//!   title: Who holds the connections
//!   why: the user with most connections is usually the client that bypasses the proxy
//!   sql: select usename, count(*) as n from pg_stat_activity group by 1 order by 2 desc
//! - title: Terminate that user's idle connections
//!   why: idle connections of a crashed client are never given back
//!   action: { terminate_idle_connections: { user: "{{steps.holders.usename}}", older_than: "{{params.older_than}}" } }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostics::{closest, Diagnostic, Diagnostics, Location};
use crate::duration::{parse_span, Span};
use crate::model::StackFile;
use crate::schema_check::SchemaCheck;
use crate::yaml_tree::{self, Kind, Node};

/// Bounds: a runbook is read at 3 a.m.; one that needs more than this is several runbooks.
pub const MAX_STEPS: usize = 64;
pub const MAX_PARAMS: usize = 32;
/// A runbook file is small text (a stack file may be up to `yaml_tree::MAX_FILE_BYTES`).
pub const MAX_RUNBOOK_BYTES: usize = 256 * 1024;

/// A runbook as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookFile {
    /// The name `statsctl runbook run NAME` uses: lowercase letters, digits and dashes.
    pub name: String,
    /// One line for `runbook list`.
    pub title: String,
    /// When to reach for it: the symptom, the error message, the alarm.
    pub when: String,
    /// Typed parameters, given with `--param name=value`.
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    pub steps: Vec<StepFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Param {
    #[serde(rename = "type")]
    pub kind: ParamKind,
    /// Used when `--param` does not give it; a parameter with no default is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// A default taken from the stack file instead of written here (`app_users`, `functions`): what one runbook
    /// file cannot know for every stack. Only for `type: string`, and not together with `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_from: Option<StackValue>,
    /// What it means, for `runbook show`.
    #[serde(default)]
    pub help: String,
}

/// A value statsctl reads from the stack file for a parameter's default. Lists are space-separated (a value put
/// into SQL may hold only letters, digits, spaces and `_ . : - + @ /`), so a query takes them apart with
/// `string_to_array('{{params.x}}', ' ')`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StackValue {
    /// Every database user the stack's functions and service connect as (sorted, once each), never the admin
    /// (`database.master_username`) nor statsctl's own diagnostic user (`database.sql.user`).
    AppUsers,
    /// Each function that connects to the database as `USER:FUNCTION:POOL_SIZE:RESERVED` (the stack's function
    /// name; RESERVED, its reserved concurrency, is empty when it has none).
    Functions,
}

impl StackValue {
    /// The value for this stack; empty when the stack names none.
    pub fn read(self, stack: &StackFile) -> String {
        match self {
            StackValue::AppUsers => {
                let admins = [
                    Some(stack.database.master_username.as_str()),
                    stack.database.sql.as_ref().map(|s| s.user.as_str()),
                ];
                let users: BTreeSet<&str> = stack
                    .functions
                    .values()
                    .filter_map(|f| f.database.as_ref())
                    .chain(stack.service.iter().filter_map(|s| s.database.as_ref()))
                    .map(|d| d.user.as_str())
                    .filter(|u| !admins.contains(&Some(*u)))
                    .collect();
                users.into_iter().collect::<Vec<_>>().join(" ")
            }
            StackValue::Functions => stack
                .functions
                .iter()
                .filter_map(|(name, f)| {
                    f.database.as_ref().map(|d| {
                        let reserved = f
                            .reserved_concurrency
                            .map(|r| r.to_string())
                            .unwrap_or_default();
                        format!("{}:{name}:{}:{reserved}", d.user, d.pool_size)
                    })
                })
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    String,
    /// A whole number ≥ 0.
    Count,
    /// A duration (`30s`, `5m`).
    Duration,
}

/// One step as written: a title, why, and exactly one of the kind keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    /// Lets later steps use what this one found: `{{steps.ID.FIELD}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub title: String,
    /// One line: why this step, in this order.
    pub why: String,
    /// Preflight checks to run, by id (`proxy.attached`, `capacity.connections`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Vec<String>>,
    /// With `check`: the audience the checks budget for, a whole number or a reference such as
    /// `"{{params.viewers}}"` (as `statsctl preflight --viewers N`). Default: the stack's `event.expected_viewers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricStep>,
    /// A read-only query against the stack's database (`database.sql`), run in a read-only transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Text for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A question; answering no skips the rest of the runbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide: Option<String>,
    /// The newest N units of the deploy history (1–50): what shipped or rolled back, when, from → to, who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
}

/// A CloudWatch metric of one part of the stack, over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricStep {
    /// The metric's name, e.g. `DatabaseConnections`, `ClientConnections`, `ConcurrentExecutions`.
    pub name: String,
    /// Whose metric: `database`, `proxy`, `functions` (each of the stack's functions), `function:NAME`, `service`,
    /// `load_balancer`, `target_group`. statsctl fills namespace and dimensions from the stack's own names.
    pub of: String,
    #[serde(default = "maximum")]
    pub stat: Stat,
    #[serde(default = "fifteen_minutes")]
    pub window: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub enum Stat {
    Maximum,
    Average,
    Minimum,
    Sum,
}

fn maximum() -> Stat {
    Stat::Maximum
}
fn fifteen_minutes() -> Span {
    Span::secs(15 * 60)
}

/// A change, made through the engine after showing exactly what it will do and asking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Set a function's reserved concurrency (`value` may be a reference, e.g. to what a check computed).
    SetReservedConcurrency { function: String, value: String },
    /// Put the stack's own proxy routing back on a function: host variable, subnets, security group, rds-db:connect.
    RouteThroughProxy { function: String },
    /// `pg_terminate_backend` for a user's connections idle longer than `older_than`.
    TerminateIdleConnections { user: String, older_than: String },
    /// Set the service's desired count.
    ScaleService { desired: String },
    /// Roll a function (or, with `service`, the service) back to the version history names.
    Rollback { target: String },
    /// Replace the service's tasks that accept connections but do not answer.
    ReplaceUnresponsiveTasks {},
}

impl Action {
    /// The words a transcript and a confirmation use.
    pub fn describe(&self) -> String {
        match self {
            Action::SetReservedConcurrency { function, value } => {
                format!("set reserved concurrency of `{function}` to {value}")
            }
            Action::RouteThroughProxy { function } => {
                format!("route `{function}` through the stack's proxy")
            }
            Action::TerminateIdleConnections { user, older_than } => {
                format!("terminate connections of `{user}` idle longer than {older_than}")
            }
            Action::ScaleService { desired } => format!("scale the service to {desired} tasks"),
            Action::Rollback { target } => format!("roll back `{target}`"),
            Action::ReplaceUnresponsiveTasks {} => {
                "replace the service's tasks that do not answer".to_string()
            }
        }
    }

    fn texts(&self) -> Vec<&str> {
        match self {
            Action::SetReservedConcurrency { function, value } => vec![function, value],
            Action::RouteThroughProxy { function } => vec![function],
            Action::TerminateIdleConnections { user, older_than } => vec![user, older_than],
            Action::ScaleService { desired } => vec![desired],
            Action::Rollback { target } => vec![target],
            Action::ReplaceUnresponsiveTasks {} => vec![],
        }
    }
}

/// A step, checked: exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Check(Vec<String>),
    Metric(MetricStep),
    Sql(String),
    Action(Action),
    Note(String),
    Decide(String),
    /// The newest N deploy-history records.
    History(u32),
}

impl StepKind {
    pub fn label(&self) -> &'static str {
        match self {
            StepKind::Check(_) => "check",
            StepKind::Metric(_) => "metric",
            StepKind::Sql(_) => "sql",
            StepKind::Action(_) => "action",
            StepKind::Note(_) => "note",
            StepKind::Decide(_) => "decide",
            StepKind::History(_) => "history",
        }
    }
    /// Only actions change anything; everything else reads.
    pub fn mutates(&self) -> bool {
        matches!(self, StepKind::Action(_))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: Option<String>,
    pub title: String,
    pub why: String,
    pub kind: StepKind,
    /// A check step's audience (unresolved: may hold references); `None`: the stack's expected viewers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewers: Option<String>,
}

/// A runbook that loaded and checked whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub when: String,
    pub params: BTreeMap<String, Param>,
    pub steps: Vec<Step>,
    /// Where it came from (`(built in)` for shipped ones).
    pub source: PathBuf,
}

/// The runbook file's JSON Schema, generated from the types.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| schemars::schema_for!(RunbookFile).to_value())
}

const KINDS: [&str; 7] = [
    "check", "metric", "sql", "action", "note", "decide", "history",
];
/// The most deploy-history records a `history` step shows.
pub const MAX_HISTORY: u32 = 50;

/// Loads a runbook from text: parse with locations → schema check (every unknown key, wrong type) → deserialize
/// → semantic checks (one kind per step, unique ids, references to parameters and earlier steps that exist,
/// read-only SQL, defaults of the declared type, bounds). All problems are reported together.
pub fn load_str(path: &Path, text: &str) -> Result<Runbook, Diagnostics> {
    let fail = |errors: Vec<Diagnostic>| Diagnostics {
        file: path.to_path_buf(),
        env: None,
        errors,
        source: text.to_string(),
    };
    if text.len() > MAX_RUNBOOK_BYTES {
        return Err(fail(vec![Diagnostic {
            at: None,
            field: None,
            message: format!(
                "the runbook is {} bytes; runbooks are at most {MAX_RUNBOOK_BYTES}",
                text.len()
            ),
            hint: Some("split it into several runbooks".into()),
        }]));
    }
    let root = yaml_tree::parse(text).map_err(fail)?;
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(fail(vec![Diagnostic::at(
            root.at,
            format!("a runbook is a map, found {}", root.describe()),
        )
        .with_hint("start with `name:`, `title:`, `when:` and `steps:`")]));
    }
    let mut check = SchemaCheck::new(schema());
    let value = check.check(&root, schema(), &mut Vec::new());
    if !check.errors.is_empty() {
        return Err(fail(check.errors));
    }
    let file: RunbookFile = serde_json::from_value(value).map_err(|e| {
        fail(vec![Diagnostic {
            at: None,
            field: None,
            message: format!("invalid runbook: {e}"),
            hint: None,
        }])
    })?;
    let (runbook, problems) = check_file(file, path);
    if problems.is_empty() {
        return Ok(runbook);
    }
    Err(fail(
        problems
            .into_iter()
            .map(|(field, message, hint)| {
                Diagnostic::at(locate(&root, &field), message)
                    .with_hint(hint)
                    .with_field(&field)
            })
            .collect(),
    ))
}

fn locate(root: &Node, path: &[String]) -> Location {
    root.locate(path)
}

type Problem = (Vec<String>, String, String);

fn check_file(file: RunbookFile, path: &Path) -> (Runbook, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let mut problem = |field: Vec<String>, message: String, hint: &str| {
        problems.push((field, message, hint.to_string()))
    };
    if file.name.is_empty()
        || file.name.len() > 64
        || !file
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problem(
            vec!["name".into()],
            format!("`{}` is not a runbook name", file.name),
            "use lowercase letters, digits and dashes (at most 64), e.g. `db-connections-exhausted`",
        );
    }
    if file.params.len() > MAX_PARAMS {
        problem(
            vec!["params".into()],
            format!("{} parameters; at most {MAX_PARAMS}", file.params.len()),
            "split the runbook",
        );
    }
    for (name, p) in &file.params {
        if p.default_from.is_some() && (p.default.is_some() || p.kind != ParamKind::String) {
            problem(
                vec!["params".into(), name.clone(), "default_from".into()],
                format!("`{name}` takes its default from the stack: it cannot have `default` too, and it is a string"),
                "keep `default_from` with `type: string` and no `default`, or drop `default_from`",
            );
        }
        if let Some(d) = &p.default {
            if let Err(e) = p.kind.parse(d) {
                problem(
                    vec!["params".into(), name.clone(), "default".into()],
                    format!("default `{d}` of `{name}`: {e}"),
                    "give a default of the declared type, or none to make the parameter required",
                );
            }
        }
    }
    if file.steps.is_empty() || file.steps.len() > MAX_STEPS {
        problem(
            vec!["steps".into()],
            format!("{} steps; a runbook has 1 to {MAX_STEPS}", file.steps.len()),
            "a runbook is a short list of steps; split a long one",
        );
    }
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut steps = Vec::new();
    for (i, s) in file.steps.into_iter().enumerate() {
        let at = |k: &str| vec!["steps".to_string(), i.to_string(), k.to_string()];
        let present: Vec<&str> = [
            s.check.is_some(),
            s.metric.is_some(),
            s.sql.is_some(),
            s.action.is_some(),
            s.note.is_some(),
            s.decide.is_some(),
            s.history.is_some(),
        ]
        .iter()
        .zip(KINDS)
        .filter(|(p, _)| **p)
        .map(|(_, k)| k)
        .collect();
        if present.len() != 1 {
            let field = present
                .first()
                .map(|k| at(k))
                .unwrap_or_else(|| at("title"));
            problem(
                field,
                match present.len() {
                    0 => format!("step {} (`{}`) has no kind", i + 1, s.title),
                    _ => format!(
                        "step {} (`{}`) has {} kinds: {}",
                        i + 1,
                        s.title,
                        present.len(),
                        present.join(", ")
                    ),
                },
                "give each step exactly one of: check, metric, sql, action, note, decide, history",
            );
        }
        // References: parameters that exist, and ids of earlier steps.
        let texts: Vec<(String, &str)> = [
            s.sql.as_deref().map(|t| ("sql", t)),
            s.note.as_deref().map(|t| ("note", t)),
            s.decide.as_deref().map(|t| ("decide", t)),
            s.metric.as_ref().map(|m| ("metric", m.of.as_str())),
            s.viewers.as_deref().map(|t| ("viewers", t)),
        ]
        .into_iter()
        .flatten()
        .map(|(k, t)| (k.to_string(), t))
        .chain(
            s.action
                .iter()
                .flat_map(|a| a.texts().into_iter().map(|t| ("action".to_string(), t))),
        )
        .collect();
        for (key, t) in texts {
            for r in references(t) {
                match r {
                    Ok(Reference::Param(p)) if !file.params.contains_key(&p) => {
                        let hint = match closest(&p, file.params.keys().map(String::as_str)) {
                            Some(c) => format!("did you mean `{{{{params.{c}}}}}`?"),
                            None => "declare it under `params:`".to_string(),
                        };
                        problem(at(&key), format!("no parameter `{p}`"), &hint);
                    }
                    Ok(Reference::Step { id, .. }) if !ids.contains(&id) => {
                        let hint = match closest(&id, ids.iter().map(String::as_str)) {
                            Some(c) => {
                                format!("did you mean `{c}`? Only earlier steps can be used")
                            }
                            None => {
                                "give an earlier step `id: NAME`; only earlier steps can be used"
                                    .to_string()
                            }
                        };
                        problem(at(&key), format!("no earlier step with id `{id}`"), &hint);
                    }
                    Ok(_) => {}
                    Err(e) => problem(
                        at(&key),
                        e,
                        "write `{{params.NAME}}` or `{{steps.ID.FIELD}}`",
                    ),
                }
            }
        }
        if let Some(sql) = &s.sql {
            if !read_only(sql) {
                problem(
                    at("sql"),
                    "an `sql` step only reads: it must be one SELECT, WITH or SHOW statement".into(),
                    "make changes with an `action` step, which shows what it will do and asks first",
                );
            }
        }
        if let Some(Action::Rollback { target }) = &s.action {
            if !(target == "service" || target.starts_with("function:") || target.contains("{{")) {
                problem(
                    at("action"),
                    format!("rollback target `{target}` is neither `service` nor `function:NAME`"),
                    "write `target: service` or `target: function:stats-api`",
                );
            }
        }
        if let Some(n) = s.history.filter(|n| !(1..=MAX_HISTORY).contains(n)) {
            problem(
                at("history"),
                format!("history {n}: a history step shows 1 to {MAX_HISTORY} records"),
                "e.g. `history: 10`; `statsctl history --limit N` shows more",
            );
        }
        if let Some(v) = &s.viewers {
            if s.check.is_none() {
                problem(
                    at("viewers"),
                    "`viewers` belongs to a `check` step: it is the audience the checks budget for"
                        .into(),
                    "move it to the check step, or remove it",
                );
            } else if !v.contains("{{") && !v.trim().parse::<u64>().is_ok_and(|n| n > 0) {
                problem(
                    at("viewers"),
                    format!("viewers `{v}` is not a whole number above 0"),
                    "write a number such as `50000`, or `\"{{params.viewers}}\"` with a count parameter",
                );
            }
        }
        if let Some(id) = &s.id {
            if !ids.insert(id.clone()) {
                problem(
                    at("id"),
                    format!("step id `{id}` is used twice"),
                    "give each step a distinct id",
                );
            }
        }
        let kind = if let Some(c) = s.check {
            StepKind::Check(c)
        } else if let Some(m) = s.metric {
            StepKind::Metric(m)
        } else if let Some(q) = s.sql {
            StepKind::Sql(q)
        } else if let Some(a) = s.action {
            StepKind::Action(a)
        } else if let Some(n) = s.note {
            StepKind::Note(n)
        } else if let Some(n) = s.history {
            StepKind::History(n)
        } else {
            StepKind::Decide(s.decide.unwrap_or_default())
        };
        steps.push(Step {
            id: s.id,
            title: s.title,
            why: s.why,
            kind,
            viewers: s.viewers,
        });
    }
    (
        Runbook {
            name: file.name,
            title: file.title,
            when: file.when,
            params: file.params,
            steps,
            source: path.to_path_buf(),
        },
        problems,
    )
}

/// One SELECT/WITH/SHOW statement (a trailing `;` allowed). The executor also runs it in a read-only
/// transaction; this check makes a runbook that tries to write fail at `list` time, not during an incident.
pub fn read_only(sql: &str) -> bool {
    let t = sql.trim().trim_end_matches(';').trim();
    let first = t
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(first.as_str(), "select" | "with" | "show") && !t.contains(';')
}

impl ParamKind {
    /// Checks a value of this kind; the error says what was expected.
    pub fn parse(self, value: &str) -> Result<(), String> {
        match self {
            ParamKind::String if value.len() <= 256 => Ok(()),
            ParamKind::String => Err("a string of at most 256 characters".into()),
            ParamKind::Count => value
                .parse::<u64>()
                .map(|_| ())
                .map_err(|_| format!("`{value}` is not a whole number")),
            ParamKind::Duration => parse_span(value)
                .map(|_| ())
                .map_err(|e| format!("{} ({})", e.message, e.hint)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Param(String),
    Step { id: String, field: String },
}

/// Every `{{…}}` reference in a text. Malformed ones are errors.
pub fn references(text: &str) -> Vec<Result<Reference, String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push(Err(format!("`{{{{` without `}}}}` in `{text}`")));
            break;
        };
        let inner = after[..end].trim();
        let parts: Vec<&str> = inner.split('.').collect();
        out.push(match parts.as_slice() {
            ["params", p] if !p.is_empty() => Ok(Reference::Param(p.to_string())),
            ["steps", id, field] if !id.is_empty() && !field.is_empty() => Ok(Reference::Step {
                id: id.to_string(),
                field: field.to_string(),
            }),
            _ => Err(format!("`{{{{{inner}}}}}` is not a reference")),
        });
        rest = &after[end + 2..];
    }
    out
}

/// Values found so far: parameters, and each step's fields by step id.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub params: BTreeMap<String, String>,
    pub steps: BTreeMap<String, BTreeMap<String, String>>,
}

/// Replaces every reference in `text` with its value; a value not found (an earlier step found no rows) is an
/// error naming it, so an action never runs with a blank where a user name should be.
pub fn resolve(text: &str, found: &Found) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in `{text}`"))?;
        let inner = after[..end].trim();
        let value = match references(&format!("{{{{{inner}}}}}")).pop() {
            Some(Ok(Reference::Param(p))) => found.params.get(&p).cloned(),
            Some(Ok(Reference::Step { id, field })) => {
                found.steps.get(&id).and_then(|f| f.get(&field)).cloned()
            }
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "`{{{{{inner}}}}}` has no value: the step that finds it found nothing"
                ))
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parameter values for a run: `--param k=v` pairs checked against the declaration (unknown names, wrong types
/// and missing required ones are all reported), defaults filled in.
pub fn bind_params(
    runbook: &Runbook,
    given: &[(String, String)],
) -> Result<BTreeMap<String, String>, Vec<String>> {
    bind(runbook, given, None)
}

/// [`bind_params`] for a run against `stack`: parameters with `default_from` take their default from it.
pub fn bind_params_for_stack(
    runbook: &Runbook,
    given: &[(String, String)],
    stack: &StackFile,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    bind(runbook, given, Some(stack))
}

fn bind(
    runbook: &Runbook,
    given: &[(String, String)],
    stack: Option<&StackFile>,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    for (k, v) in given {
        match runbook.params.get(k) {
            None => errors.push(
                match closest(k, runbook.params.keys().map(String::as_str)) {
                    Some(c) => format!(
                        "`{}` has no parameter `{k}`; did you mean `{c}`?",
                        runbook.name
                    ),
                    None if runbook.params.is_empty() => {
                        format!("`{}` takes no parameters (got `{k}`)", runbook.name)
                    }
                    None => format!(
                        "`{}` has no parameter `{k}`; it takes {}",
                        runbook.name,
                        runbook
                            .params
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            ),
            Some(p) => match p.kind.parse(v) {
                Ok(()) => {
                    out.insert(k.clone(), v.clone());
                }
                Err(e) => errors.push(format!("--param {k}: {e}")),
            },
        }
    }
    for (k, p) in &runbook.params {
        if out.contains_key(k) {
            continue;
        }
        let from_stack = p.default_from.zip(stack).map(|(v, st)| v.read(st));
        match p.default.clone().or(from_stack) {
            Some(d) => {
                out.insert(k.clone(), d);
            }
            None => errors.push(format!(
                "`{}` needs `--param {k}=…` ({})",
                runbook.name, p.help
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: kill-idle-connections
title: Terminate idle connections
when: 'the database says "sorry, too many clients" and most connections are idle'
params:
  user: { type: string, help: the database user whose idle connections go }
  older_than: { type: duration, default: 5m }
steps:
  - id: rows
    title: Idle connections of the user
    why: see what will go before anything goes
    sql: select pid, usename from pg_stat_activity where usename = '{{params.user}}' and state = 'idle'
  - title: Terminate them
    why: idle connections of a crashed client are never given back
    action: { terminate_idle_connections: { user: "{{params.user}}", older_than: "{{params.older_than}}" } }
  - title: Watch the count fall
    why: the fix took only if connections drop
    metric: { name: DatabaseConnections, of: database, window: 10m }
"#;

    fn load(text: &str) -> Result<Runbook, Diagnostics> {
        load_str(Path::new("rb.yaml"), text)
    }

    #[test]
    fn a_good_runbook_loads_typed() {
        let rb = load(GOOD).unwrap();
        assert_eq!(rb.name, "kill-idle-connections");
        assert_eq!(rb.steps.len(), 3);
        assert_eq!(rb.steps[0].kind.label(), "sql");
        assert!(!rb.steps[0].kind.mutates());
        assert!(rb.steps[1].kind.mutates());
        match &rb.steps[2].kind {
            StepKind::Metric(m) => {
                assert_eq!(m.stat, Stat::Maximum);
                assert_eq!(m.window, Span::secs(600));
            }
            other => panic!("{other:?}"),
        }
    }

    /// Each broken runbook gives a located error whose message and hint say what is wrong.
    #[test]
    fn broken_runbooks_are_refused_with_located_errors() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "title: Idle connections of the user",
                "title: x\n    tilte: y",
                "unknown",
                "title",
            ),
            (
                "    sql: select pid",
                "    sql: select pid\n    note: two kinds",
                "has 2 kinds: sql, note",
                "exactly one",
            ),
            (
                "{{params.user}}' and",
                "{{params.usr}}' and",
                "no parameter `usr`",
                "did you mean",
            ),
            (
                "older_than: \"{{params.older_than}}\"",
                "older_than: \"{{steps.later.x}}\"",
                "no earlier step with id `later`",
                "earlier",
            ),
            (
                "sql: select pid,",
                "sql: delete from t where true or pid,",
                "only reads",
                "action",
            ),
            (
                "default: 5m",
                "default: soon",
                "default `soon`",
                "declared type",
            ),
            (
                "name: kill-idle-connections",
                "name: Kill Idle",
                "not a runbook name",
                "lowercase",
            ),
            (
                "of: database",
                "of: database\n      stat: Median",
                "Median",
                "",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    metric: { name: DatabaseConnections, of: database, window: 10m }\n    viewers: \"5000\"",
                "`viewers` belongs to a `check` step",
                "move it",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    check: [capacity.connections]\n    viewers: lots",
                "viewers `lots` is not a whole number above 0",
                "params.viewers",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    check: [capacity.connections]\n    viewers: \"0\"",
                "viewers `0` is not a whole number above 0",
                "",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    check: [capacity.connections]\n    viewers: \"{{params.viewer}}\"",
                "no parameter `viewer`",
                "declare it",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    history: 500",
                "history 500: a history step shows 1 to 50 records",
                "statsctl history --limit N",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    history: 0",
                "history 0",
                "",
            ),
            (
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                "    history: 5\n    note: and a note",
                "has 2 kinds: note, history",
                "history",
            ),
        ];
        for (from, to, message, hint) in cases {
            assert!(GOOD.contains(from), "case text `{from}` not in the fixture");
            let text = GOOD.replacen(from, to, 1);
            let err = load(&text).expect_err(to);
            let shown = err.to_string();
            assert!(shown.contains(message), "`{to}`: {shown}");
            assert!(shown.contains(hint), "`{to}`: {shown}");
            assert!(
                err.errors.iter().all(|d| d.at.is_some()),
                "`{to}`: every error is located: {shown}"
            );
        }
    }

    #[test]
    fn a_check_step_budgets_for_the_audience_it_names() {
        for viewers in ["\"250000\"", "\"{{params.user}}\""] {
            let text = GOOD.replacen(
                "    metric: { name: DatabaseConnections, of: database, window: 10m }",
                &format!("    check: [capacity.connections]\n    viewers: {viewers}"),
                1,
            );
            let rb = load(&text).unwrap_or_else(|e| panic!("{viewers}: {e}"));
            assert_eq!(
                rb.steps[2].viewers.as_deref(),
                Some(viewers.trim_matches('"')),
                "{viewers}"
            );
        }
        // Without it, the stack's expected viewers (decided when the step runs).
        assert_eq!(load(GOOD).unwrap().steps[0].viewers, None);
        // A history step: the newest N deploys.
        let text = GOOD.replacen(
            "    metric: { name: DatabaseConnections, of: database, window: 10m }",
            "    history: 10",
            1,
        );
        assert_eq!(load(&text).unwrap().steps[2].kind, StepKind::History(10));
    }

    #[test]
    fn bounds_and_non_maps() {
        assert!(load("- a list").is_err());
        assert!(load(&"x".repeat(MAX_RUNBOOK_BYTES + 1)).is_err());
        let many = (0..=MAX_STEPS)
            .map(|i| format!("  - {{title: s{i}, why: w, note: n}}\n"))
            .collect::<String>();
        let text = format!("name: a\ntitle: t\nwhen: w\nsteps:\n{many}");
        let err = load(&text).unwrap_err();
        assert!(err.to_string().contains("1 to 64"), "{err}");
        assert!(load("name: a\ntitle: t\nwhen: w\nsteps: []\n").is_err());
    }

    #[test]
    fn read_only_sql() {
        for (sql, ok) in [
            ("select 1", true),
            ("  SELECT count(*) FROM pg_stat_activity;", true),
            ("with x as (select 1) select * from x", true),
            ("show max_connections", true),
            ("select 1; drop table t", false),
            ("delete from t", false),
            ("select pg_terminate_backend(1); select 2", false),
            ("", false),
        ] {
            assert_eq!(read_only(sql), ok, "{sql}");
        }
    }

    #[test]
    fn references_and_resolution() {
        let mut found = Found::default();
        found.params.insert("user".into(), "app".into());
        found.steps.insert(
            "holders".into(),
            [("usename".to_string(), "ingest".to_string())].into(),
        );
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("u={{params.user}}", Ok("u=app")),
            ("{{ steps.holders.usename }}!", Ok("ingest!")),
            ("{{steps.holders.pid}}", Err("has no value")),
            ("{{params.nope}}", Err("has no value")),
            ("{{params.user", Err("without")),
        ];
        for (text, want) in cases {
            match (resolve(text, &found), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, w) => panic!("{text}: got {got:?}, want {w:?}"),
            }
        }
        assert_eq!(
            references("{{bogus}} {{params.a}}"),
            vec![
                Err("`{{bogus}}` is not a reference".to_string()),
                Ok(Reference::Param("a".into()))
            ]
        );
    }

    #[test]
    fn binding_parameters() {
        let rb = load(GOOD).unwrap();
        let p = |pairs: &[(&str, &str)]| {
            bind_params(
                &rb,
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let bound = p(&[("user", "app")]).unwrap();
        assert_eq!(bound["older_than"], "5m", "default filled in");
        let errs = p(&[]).unwrap_err();
        assert!(errs[0].contains("needs `--param user=…`"), "{errs:?}");
        let errs = p(&[("user", "app"), ("older_tahn", "1s")]).unwrap_err();
        assert!(errs[0].contains("did you mean `older_than`"), "{errs:?}");
        let errs = p(&[("user", "app"), ("older_than", "soon")]).unwrap_err();
        assert!(errs[0].contains("--param older_than"), "{errs:?}");
    }

    fn stack(env: &str) -> StackFile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        crate::loader::load_str(&path, &text, Some(env), &|_: &str| None)
            .expect("the shipped stack loads")
            .spec
    }

    /// `default_from` fills a default from the stack: the application users (never the admin, never statsctl's
    /// own SQL user) and the functions that connect; a given `--param` still wins.
    #[test]
    fn defaults_from_the_stack() {
        let text = GOOD.replace(
            "user: { type: string, help: the database user whose idle connections go }",
            "user: { type: string, default_from: app_users }\n  fns: { type: string, default_from: functions }",
        );
        let rb = load(&text).unwrap();
        let mut st = stack("local");
        let bound = bind_params_for_stack(&rb, &[], &st).unwrap();
        assert_eq!(bound["user"], "log_ingester stats_api stats_service");
        assert_eq!(
            bound["fns"],
            "log_ingester:log-ingester:1:5 stats_api:stats-api:1:20"
        );
        assert_eq!(bound["older_than"], "5m");
        // The admin and statsctl's SQL user are left out even when a client connects as them.
        st.functions
            .get_mut("stats-api")
            .unwrap()
            .database
            .as_mut()
            .unwrap()
            .user = st.database.master_username.clone();
        st.service.as_mut().unwrap().database.as_mut().unwrap().user = "postgres".into();
        assert_eq!(StackValue::AppUsers.read(&st), "log_ingester");
        let given = [("user".to_string(), "stats_api".to_string())];
        assert_eq!(
            bind_params_for_stack(&rb, &given, &st).unwrap()["user"],
            "stats_api"
        );
        // Without a stack there is no default: the parameter is required.
        let errs = bind_params(&rb, &[]).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("--param user=")), "{errs:?}");
        // `default_from` with `default`, or on a non-string parameter, is refused where it is written.
        for bad in [
            "user: { type: string, default: x, default_from: app_users }",
            "user: { type: count, default_from: app_users }",
        ] {
            let text = GOOD.replace(
                "user: { type: string, help: the database user whose idle connections go }",
                bad,
            );
            let err = load(&text).unwrap_err().to_string();
            assert!(
                err.contains("takes its default from the stack"),
                "{bad}: {err}"
            );
            assert!(err.contains("hint"), "{bad}: {err}");
        }
    }
}
