//! `statsctl runbook list|show|run`: the on-call's procedures as executable, confirmable, recorded steps. This
//! file finds runbooks (shipped, the stack's `runbooks.dir`, `--runbooks DIR`) and renders `list` and `show`;
//! `run.rs` runs one.

pub mod reads;
pub mod run;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;
use statsctl_core::diagnostics::{closest, Diagnostics};
use statsctl_core::runbook::{self as model, Runbook, StepKind};

use crate::context::Global;
use crate::exit::{CliError, CliResult, ERROR, OK};
use crate::output::{self, emit};

#[derive(Subcommand, Debug)]
pub enum RunbookCommand {
    /// List the runbooks: shipped, the stack's `runbooks.dir`, and --runbooks DIR (a broken file is reported
    /// with its located errors, and the command exits 1)
    List(Sources),
    /// Show a runbook: its parameters, and each step with why it is there and exactly what it runs
    Show(ShowArgs),
    /// Run a runbook step by step: reads run, every change is shown and asked for first, a transcript is kept
    Run(run::RunArgs),
}

/// Where runbooks are found besides the shipped ones and the stack's `runbooks.dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct Sources {
    /// A directory of runbook files (`*.yaml`) to add to the shipped ones and the stack's `runbooks.dir`
    #[arg(long, value_name = "DIR")]
    pub runbooks: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The runbook's name (see `statsctl runbook list`)
    pub name: String,
    #[command(flatten)]
    pub sources: Sources,
}

pub async fn run(g: &Global, c: RunbookCommand) -> CliResult {
    match c {
        RunbookCommand::List(s) => list(g, &s),
        RunbookCommand::Show(a) => show(g, &a),
        RunbookCommand::Run(a) => run::run(g, a).await,
    }
}

/// A runbook file found, loaded or not.
pub struct Entry {
    pub source: String,
    pub loaded: Result<Runbook, Diagnostics>,
}

/// The shipped runbooks, embedded in the binary: `(name, yaml)`.
fn shipped() -> Vec<(&'static str, &'static str)> {
    statsctl_runbooks::shipped()
}

/// Most runbook files read from one directory: a directory of thousands is not a runbook collection.
const MAX_FILES: usize = 256;

/// Every runbook: shipped first, then the stack's `runbooks.dir`, then `--runbooks DIR`. A file that does not
/// load is an entry with its diagnostics; a later runbook with a name already taken is reported as broken too,
/// so `run NAME` never picks one of two by accident.
pub fn catalogue(g: &Global, sources: &Sources) -> CliResult<Vec<Entry>> {
    let mut entries: Vec<Entry> = shipped()
        .into_iter()
        .map(|(name, yaml)| Entry {
            source: "(built in)".into(),
            loaded: model::load_str(Path::new(&format!("(built in) {name}.yaml")), yaml),
        })
        .collect();
    let mut dirs: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(dir) = stack_runbooks_dir(g)? {
        dirs.push((dir, "the stack's `runbooks.dir`"));
    }
    if let Some(d) = &sources.runbooks {
        dirs.push((d.clone(), "--runbooks"));
    }
    for (dir, from) in dirs {
        let files = read_dir(&dir).map_err(|e| {
            CliError::new(format!(
                "cannot read runbooks from `{}` ({from}): {e}",
                dir.display()
            ))
            .hint("give a directory of runbook files (*.yaml)")
        })?;
        for path in files {
            let loaded = match std::fs::metadata(&path) {
                Ok(m) if m.len() > model::MAX_RUNBOOK_BYTES as u64 => model::load_str(
                    &path,
                    &"#".repeat(model::MAX_RUNBOOK_BYTES + 1), // the loader's own size error
                ),
                _ => match std::fs::read_to_string(&path) {
                    Ok(text) => model::load_str(&path, &text),
                    Err(e) => Err(Diagnostics {
                        file: path.clone(),
                        env: None,
                        errors: vec![statsctl_core::diagnostics::Diagnostic {
                            at: None,
                            field: None,
                            message: format!("cannot read it: {e}"),
                            hint: Some("check the file's permissions".into()),
                        }],
                        source: String::new(),
                    }),
                },
            };
            entries.push(Entry {
                source: path.display().to_string(),
                loaded,
            });
        }
    }
    // Duplicates: the first of a name wins; later ones are errors.
    let mut seen: Vec<(String, String)> = Vec::new();
    for e in &mut entries {
        let Ok(rb) = &e.loaded else { continue };
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == rb.name) {
            e.loaded = Err(Diagnostics {
                file: PathBuf::from(&e.source),
                env: None,
                errors: vec![statsctl_core::diagnostics::Diagnostic {
                    at: None,
                    field: Some("name".into()),
                    message: format!("runbook `{}` is already defined in {first}", rb.name),
                    hint: Some("give it another `name:`".into()),
                }],
                source: String::new(),
            });
        } else {
            seen.push((rb.name.clone(), e.source.clone()));
        }
    }
    Ok(entries)
}

/// The stack's `runbooks.dir`, relative to the stack file. With `--env`, from the resolved stack (a broken stack
/// file is reported); without, from the file's top level as written, so `list` and `show` need no environment.
fn stack_runbooks_dir(g: &Global) -> CliResult<Option<PathBuf>> {
    if !g.stack.is_file() {
        return Ok(None);
    }
    let base = g.stack.parent().unwrap_or(Path::new("."));
    if g.env.is_some() {
        let stack = g.load_stack()?;
        return Ok(stack.spec.runbooks.map(|r| base.join(r.dir)));
    }
    let text = std::fs::read_to_string(&g.stack).unwrap_or_default();
    let dir = serde_yaml::from_str::<serde_yaml::Value>(&text)
        .ok()
        .and_then(|v| v.get("runbooks")?.get("dir")?.as_str().map(str::to_string));
    Ok(dir.map(|d| base.join(d)))
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .take(MAX_FILES)
        .collect();
    files.sort();
    Ok(files)
}

/// The runbook called `name`; its diagnostics (printed) when it is broken; an error naming the closest one
/// when there is none.
pub fn find(g: &Global, sources: &Sources, name: &str) -> CliResult<Runbook> {
    let entries = catalogue(g, sources)?;
    let mut names = Vec::new();
    for e in entries {
        match e.loaded {
            Ok(rb) if rb.name == name => return Ok(rb),
            Ok(rb) => names.push(rb.name),
            Err(d) => {
                // A broken file whose name is the one asked for: show why it cannot run.
                let stem = Path::new(&e.source)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                if stem == name || d.source.contains(&format!("name: {name}")) {
                    eprint!("{d}");
                    return Err(CliError::printed(ERROR));
                }
            }
        }
    }
    let hint = match closest(name, names.iter().map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`? `statsctl runbook list` shows them all"),
        None => "`statsctl runbook list` shows them all".to_string(),
    };
    Err(CliError::new(format!("no runbook named `{name}`")).hint(hint))
}

#[derive(Serialize)]
struct ListItem {
    name: String,
    title: String,
    when: String,
    source: String,
    steps: usize,
    /// Whether any step changes something.
    changes: bool,
}

#[derive(Serialize)]
struct Broken {
    file: String,
    errors: Vec<statsctl_core::diagnostics::Diagnostic>,
}

#[derive(Serialize)]
struct ListReport {
    runbooks: Vec<ListItem>,
    broken: Vec<Broken>,
}

fn list(g: &Global, sources: &Sources) -> CliResult {
    let mut report = ListReport {
        runbooks: vec![],
        broken: vec![],
    };
    let mut shown_errors = String::new();
    for e in catalogue(g, sources)? {
        match e.loaded {
            Ok(rb) => report.runbooks.push(ListItem {
                changes: rb.steps.iter().any(|s| s.kind.mutates()),
                steps: rb.steps.len(),
                name: rb.name,
                title: rb.title,
                when: rb.when,
                source: e.source,
            }),
            Err(d) => {
                shown_errors.push_str(&d.to_string());
                report.broken.push(Broken {
                    file: e.source,
                    errors: d.errors,
                });
            }
        }
    }
    if g.output == output::Format::Human {
        eprint!("{}", statsctl_core::sensitive::redact_text(&shown_errors));
    }
    emit(g.output, &report, |out| {
        let width = report
            .runbooks
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0);
        for r in &report.runbooks {
            let changes = if r.changes { "changes" } else { "reads" };
            out.push_str(&format!(
                "{:width$}  {:7}  {}  {}\n",
                r.name,
                changes,
                r.title,
                output::dim(&format!("({})", r.source))
            ));
        }
        if report.runbooks.is_empty() {
            out.push_str("no runbooks found\n");
        }
        if !report.broken.is_empty() {
            out.push_str(&format!(
                "\n{} runbook file(s) do not load (errors above)\n",
                report.broken.len()
            ));
        }
    })?;
    Ok(if report.broken.is_empty() { OK } else { ERROR })
}

fn show(g: &Global, a: &ShowArgs) -> CliResult {
    let rb = find(g, &a.sources, &a.name)?;
    emit(g.output, &rb, |out| out.push_str(&describe(&rb)))?;
    Ok(OK)
}

/// `runbook show`: what it is for, its parameters, and each step with exactly what it runs.
pub fn describe(rb: &Runbook) -> String {
    let mut out = format!(
        "{} — {}\nwhen: {}\nfrom: {}\n",
        rb.name,
        rb.title,
        rb.when,
        rb.source.display()
    );
    if rb.params.is_empty() {
        out.push_str("\nparameters: none\n");
    } else {
        out.push_str("\nparameters:\n");
        for (name, p) in &rb.params {
            let kind = serde_json::to_value(p.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let default = match (&p.default, p.default_from) {
                (Some(d), _) => format!("default {d}"),
                // What a run binds when none is given (`bind_params_for_stack`), so not "required".
                (None, Some(from)) => serde_json::to_value(from)
                    .ok()
                    .and_then(|v| v.as_str().map(|v| format!("default from the stack: {v}")))
                    .unwrap_or_else(|| "default from the stack".to_string()),
                (None, None) => "required".to_string(),
            };
            out.push_str(&format!("  {name} ({kind}, {default}) {}\n", p.help));
        }
    }
    out.push_str("\nsteps:\n");
    for (i, s) in rb.steps.iter().enumerate() {
        out.push_str(&format!(
            "  {}. [{}] {}\n     why: {}\n",
            i + 1,
            s.kind.label(),
            s.title,
            s.why
        ));
        let body = match &s.kind {
            StepKind::History(n) => format!("history: the newest {n} deployed units"),
            StepKind::Check(ids) => format!(
                "checks: {}{}",
                ids.join(", "),
                s.viewers
                    .as_deref()
                    .map(|v| format!(", for {v} viewers"))
                    .unwrap_or_default()
            ),
            StepKind::Metric(m) => format!(
                "metric: {} of {} ({:?} over {}s)",
                m.name,
                m.of,
                m.stat,
                m.window.as_secs()
            ),
            StepKind::Sql(q) => format!("sql (read-only): {}", q.trim()),
            StepKind::Action(a) => format!("changes: {} (asks first)", a.describe()),
            StepKind::Note(n) => format!("note: {}", n.trim()),
            StepKind::Decide(q) => format!("asks: {} (no skips the rest)", q.trim()),
        };
        for (j, line) in body.lines().enumerate() {
            let lead = if j == 0 { "     " } else { "       " };
            out.push_str(&format!("{lead}{line}\n"));
        }
    }
    out
}
