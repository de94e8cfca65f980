//! `statsctl promote --from dev --to prod`: deploy to one environment exactly the artifacts live in another — each
//! function's code (by SHA-256, behind its alias's version) and the service's image — refused unless the source
//! environment's preflight is READY, including a passing load test recorded for those very versions. The
//! promotion is recorded in the target environment's ledger.
//!
//! The target is deployed as `statsctl deploy` does it (`deploy::ship_units`, under the same locks): unit by
//! unit, a new function version or task definition as a rollout that watches the target's alarms and rolls back
//! when one fires, each unit in the target's deploy history. Only the service image differs from the stack
//! file: it is the one the source serves.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use statsctl_aws as aws;
use statsctl_checks::{loadtest_passed, Finding, Selection, Status};
use statsctl_core::desired::Artifact;
use statsctl_core::inventory::{Key, Kind, Observed};
use statsctl_core::plan::render;
use statsctl_core::units;
use statsctl_engine::apply::Outcome;
use statsctl_engine::interrupt::stop_on_ctrl_c;

use crate::cmd::deploy::{self, UnitReport};
use crate::cmd::rollback::now_ms;
use crate::context::Global;
use crate::exit::{CliError, CliResult, Exit, OK};
use crate::output::{self, emit, progress};
use crate::session::{aws_error, refuse_blocked, Session};

/// The ledger prefix promotions are recorded under (`promotions/<to-env>/…`).
pub const LEDGER_KIND: &str = "promotions";

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// The environment whose live artifacts are promoted (it must pass preflight, load test included)
    #[arg(long, value_name = "ENV")]
    pub from: String,
    /// The environment to deploy them to
    #[arg(long, value_name = "ENV")]
    pub to: String,
    /// Check and show the target's plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (needed without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Ship even though this alarm of the target is in ALARM now, and do not roll back for it (repeatable; the
    /// alarm's id or full name), as `deploy --ignore-alarm`. Recorded in the target's deploy history
    #[arg(long = "ignore-alarm", value_name = "NAME")]
    pub ignore_alarms: Vec<String>,
}

/// One function as it serves in the source environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LiveFunction {
    /// The stack file's name.
    pub name: String,
    /// The deployed name in the source environment.
    pub function: String,
    /// The version behind the alias (`None`: no alias there).
    pub version: Option<String>,
    /// That version's code SHA-256 (base64, as Lambda reports it).
    pub code_sha256: Option<String>,
}

/// What serves in the source environment: what a promotion ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LiveArtifacts {
    pub functions: Vec<LiveFunction>,
    /// The task definition revision the service runs and its image.
    pub service_revision: Option<String>,
    pub service_image: Option<String>,
}

/// A promotion, as the target environment's ledger keeps it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PromotionRecord {
    pub from_env: String,
    pub to_env: String,
    pub artifacts: LiveArtifacts,
    /// Unix milliseconds.
    pub started_at: u64,
    pub ended_at: u64,
    pub who: String,
    /// Whether a fresh plan of the target was empty afterwards.
    pub converged: Option<bool>,
}

/// What is missing for the artifacts to be promotable: a function with nothing behind its alias, a stack service
/// that does not run. Pure.
pub fn missing_artifacts(live: &LiveArtifacts, has_service: bool) -> Vec<String> {
    let mut out: Vec<String> = live
        .functions
        .iter()
        .filter(|f| f.version.is_none() || f.code_sha256.is_none())
        .map(|f| format!("function {}: no version serving behind its alias", f.name))
        .collect();
    if has_service && live.service_image.is_none() {
        out.push("service: no task definition running".into());
    }
    out
}

/// Why the source's preflight does not allow a promotion: every failed check, and a load test that did not pass
/// for the live versions (a warning or a skip of `loadtest.passed` is not enough). Pure.
pub fn readiness_problems(findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| format!("{}: {}", f.id, f.summary))
        .collect();
    match findings.iter().find(|f| f.id == loadtest_passed::ID) {
        Some(f) if f.status == Status::Pass || f.status == Status::Fail => {}
        Some(f) => out.push(format!(
            "{}: {} (a passing load test for the live versions is required)",
            f.id, f.summary
        )),
        None => out.push(format!("{}: not run", loadtest_passed::ID)),
    }
    out
}

/// Functions whose local build differs from the code serving in the source environment. Pure.
pub fn code_mismatches(live: &LiveArtifacts, local: &BTreeMap<String, Artifact>) -> Vec<String> {
    live.functions
        .iter()
        .filter_map(|f| {
            let serving = f.code_sha256.as_deref()?;
            match local.get(&f.name) {
                Some(a) if a.sha256 == serving => None,
                Some(a) => Some(format!(
                    "function {}: the local build is {}, version {} serves {serving}",
                    f.name,
                    a.sha256,
                    f.version.as_deref().unwrap_or("?")
                )),
                None => Some(format!("function {}: not built locally", f.name)),
            }
        })
        .collect()
}

/// Reads what serves in the source environment: each alias's version and that version's code, and the image of
/// the task definition the service runs.
async fn live_artifacts(s: &Session, o: &Observed) -> CliResult<LiveArtifacts> {
    let spec = &s.stack.spec;
    let mut functions = Vec::new();
    for (name, f) in &spec.functions {
        let function = spec.function_name(&s.env, name);
        let version = o
            .output(
                Kind::Alias,
                &Key::alias_name(&function, &f.alias),
                "version",
            )
            .map(str::to_string);
        let code_sha256 = match &version {
            Some(v) => aws::lambda::version_code_sha256(&s.aws, &function, v)
                .await
                .map_err(aws_error)?,
            None => None,
        };
        functions.push(LiveFunction {
            name: name.clone(),
            function,
            version,
            code_sha256,
        });
    }
    // The serving colour's: after a blue/green rollout that may be `<service>-green`, while blue idles on the
    // previous revision.
    let service_revision = statsctl_core::desired::service::live_service(spec, &s.env, o)
        .and_then(|(_, r)| r.attrs.get("task_definition"))
        .filter(|t| !t.is_empty())
        .cloned();
    let service_image = match &service_revision {
        Some(r) => aws::ecs::task_definition_image(&s.aws, r)
            .await
            .map_err(aws_error)?,
        None => None,
    };
    Ok(LiveArtifacts {
        functions,
        service_revision,
        service_image,
    })
}

#[derive(Serialize)]
struct Report<'a> {
    stack: &'a str,
    from: &'a str,
    to: &'a str,
    dry_run: bool,
    artifacts: &'a LiveArtifacts,
    plan: &'a statsctl_core::plan::Plan,
    /// The target's units in shipping order, each with how it ended (as `deploy --output json` has them).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    units: &'a [UnitReport],
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'a Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    converged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    seconds: f64,
}

fn describe(from: &str, to: &str, live: &LiveArtifacts) -> String {
    let mut out = format!("promote {from} → {to}:\n");
    for f in &live.functions {
        out.push_str(&format!(
            "  function {}: version {} of {from} (code sha256 {})\n",
            f.name,
            f.version.as_deref().unwrap_or("?"),
            f.code_sha256.as_deref().unwrap_or("?")
        ));
    }
    if let Some(image) = &live.service_image {
        out.push_str(&format!(
            "  service image: {image} (from {from}'s {})\n",
            live.service_revision.as_deref().unwrap_or("?")
        ));
    }
    out
}

pub async fn run(g: &Global, args: PromoteArgs) -> CliResult {
    let started = Instant::now();
    let started_ms = now_ms();
    if args.from == args.to {
        return Err(
            CliError::new(format!("--from and --to both name `{}`", args.from))
                .hint("promote from one environment to another, e.g. --from dev --to prod"),
        );
    }
    let env_global = |env: &str| Global {
        env: Some(env.to_string()),
        ..g.clone()
    };

    // The source: live artifacts, and its preflight (every check, as `statsctl preflight` runs them).
    let from = Session::open(&env_global(&args.from), true).await?;
    let viewers = from.stack.spec.event.expected_viewers;
    let findings = crate::cmd::preflight::run_checks(&from, &Selection::default(), viewers).await?;
    let observed_from = from.observe().await?;
    let live = live_artifacts(&from, &observed_from).await?;
    let mut problems = missing_artifacts(&live, from.stack.spec.service.is_some());
    problems.extend(readiness_problems(&findings));
    eprint!("{}", describe(&args.from, &args.to, &live));
    if !problems.is_empty() {
        let mut e = CliError::new(format!(
            "`{}` is not ready to promote:\n{}",
            args.from,
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .hint(format!(
            "see `statsctl preflight --env {0}`; record a load test of what runs there with `statsctl loadtest --env \
             {0}`; nothing was changed in `{1}`",
            args.from, args.to
        ));
        e.code = Exit::Attention;
        return Err(e);
    }

    // The target: the same function code (built here, checked against what serves), the source's service image.
    let mut to = Session::open(&env_global(&args.to), true).await?;
    let mismatched = code_mismatches(&live, &to.artifacts);
    if !mismatched.is_empty() {
        return Err(CliError::new(format!(
            "the local function code is not what `{}` runs:\n{}",
            args.from,
            mismatched
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
        .hint(format!(
            "check out the commit `{}` runs and promote again; nothing was changed in `{}`",
            args.from, args.to
        )));
    }
    if let (Some(svc), Some(image)) = (to.stack.spec.service.as_mut(), &live.service_image) {
        svc.image = image.clone();
    }

    if args.dry_run {
        let (_, p, _) = to.observe_and_plan().await?;
        let report = Report {
            stack: &to.owner.stack,
            from: &args.from,
            to: &args.to,
            dry_run: true,
            artifacts: &live,
            plan: &p,
            units: &[],
            outcome: None,
            converged: None,
            record: None,
            seconds: started.elapsed().as_secs_f64(),
        };
        emit(g.output, &report, |out| {
            out.push_str(&render(&p, output::color()));
            out.push_str("Dry run: nothing was changed.\n");
        })?;
        return Ok(OK);
    }
    confirm(&args).await?;
    let stop = stop_on_ctrl_c();
    let _local = to.lock("statsctl promote")?;
    let remote = to.remote_lock("statsctl promote", false, args.yes).await?;
    let result = promote(g, &to, &args, &live, (started, started_ms), &stop).await;
    to.release(remote, result).await
}

/// Plans and applies the target under the locks `run` holds, then records the promotion.
async fn promote(
    g: &Global,
    to: &Session,
    args: &PromoteArgs,
    live: &LiveArtifacts,
    (started, started_ms): (Instant, u64),
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> CliResult {
    progress(format!("reading {}/{} from AWS…", to.owner.stack, to.env));
    let (mut observed, mut p, _) = to.observe_and_plan().await?;
    let spec = &to.stack.spec;
    let ignored = deploy::ignored_alarms(spec, &to.env, &args.ignore_alarms);
    refuse_blocked(&p)?;
    deploy::refuse_firing(&deploy::firing_alarms(spec, &to.env, &observed), &ignored)?;
    let mut picked = units::units(&p, spec);
    if deploy::settle_in_flight(to, stop, &picked, &observed).await? {
        // The listener no longer splits: what the service unit ships is planned again from there.
        progress(format!(
            "reading {}/{} from AWS again…",
            to.owner.stack, to.env
        ));
        (observed, p, _) = to.observe_and_plan().await?;
        picked = units::units(&p, spec);
    }
    if g.output == output::Format::Human {
        eprint!("{}", render(&p, false));
    }
    let shipped = deploy::ship_units(to, &p, observed, picked, &ignored, stop).await?;
    let finished = shipped.outcome.failed.is_none()
        && !shipped.outcome.interrupted
        && shipped
            .units
            .iter()
            .all(|u| u.status == deploy::UnitStatus::Shipped);
    let mut record_key = None;
    if finished {
        let (account, who) = aws::ledger::caller(&to.aws).await.map_err(aws_error)?;
        let bucket = statsctl_core::ledger::bucket_name(&to.stack.spec, &to.env, &account);
        let record = PromotionRecord {
            from_env: args.from.clone(),
            to_env: args.to.clone(),
            artifacts: live.clone(),
            started_at: started_ms,
            ended_at: now_ms(),
            who,
            converged: shipped.converged,
        };
        record_key = Some(
            aws::ledger::append(&to.aws, &bucket, LEDGER_KIND, &to.env, &record)
                .await
                .map_err(aws_error)?,
        );
    }
    let report = Report {
        stack: &to.owner.stack,
        from: &args.from,
        to: &args.to,
        dry_run: false,
        artifacts: live,
        plan: &p,
        units: &shipped.units,
        outcome: Some(&shipped.outcome),
        converged: shipped.converged,
        record: record_key,
        seconds: started.elapsed().as_secs_f64(),
    };
    emit(g.output, &report, |out| {
        deploy::human_units(out, &shipped.units);
        out.push_str(&format!(
            "{} changes applied to {}{}\n",
            shipped.outcome.done.len(),
            args.to,
            if finished && shipped.converged == Some(true) {
                "; live state matches the promoted artifacts. Recorded in the ledger."
            } else {
                ""
            }
        ));
    })?;
    deploy::ended(
        "promote",
        &format!("statsctl promote --from {} --to {}", args.from, args.to),
        &shipped,
    )
}

/// Goes ahead only with `--yes` or a `y` typed at a terminal; nothing is changed otherwise.
async fn confirm(args: &PromoteArgs) -> CliResult<()> {
    if args.yes {
        return Ok(());
    }
    let refused = |why: &str| {
        CliError::new(format!("{why}; nothing was changed in `{}`", args.to))
            .hint("pass --yes to promote without a question, or run it at a terminal")
    };
    if !std::io::stdin().is_terminal() {
        return Err(refused("refusing to promote without confirmation"));
    }
    let question = format!("Deploy these to {}? [y/N] ", args.to);
    match crate::session::ask(&question).await? {
        Some(a) if matches!(a.trim(), "y" | "Y" | "yes") => Ok(()),
        _ => Err(refused("not confirmed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(
        functions: &[(&str, Option<&str>, Option<&str>)],
        image: Option<&str>,
    ) -> LiveArtifacts {
        LiveArtifacts {
            functions: functions
                .iter()
                .map(|(name, version, sha)| LiveFunction {
                    name: name.to_string(),
                    function: format!("s-dev-{name}"),
                    version: version.map(str::to_string),
                    code_sha256: sha.map(str::to_string),
                })
                .collect(),
            service_revision: image.map(|_| "s-dev-svc:3".to_string()),
            service_image: image.map(str::to_string),
        }
    }

    #[test]
    fn what_is_missing_is_named() {
        let cases = [
            (
                live(&[("api", Some("3"), Some("A"))], Some("img")),
                true,
                vec![],
            ),
            (
                live(&[("api", None, None)], None),
                true,
                vec![
                    "function api: no version serving behind its alias",
                    "service: no task definition running",
                ],
            ),
            (live(&[("api", Some("3"), Some("A"))], None), false, vec![]),
        ];
        for (l, has_service, want) in cases {
            assert_eq!(missing_artifacts(&l, has_service), want, "{l:?}");
        }
    }

    #[test]
    fn only_a_ready_preflight_with_a_passing_load_test_promotes() {
        let f = |id: &'static str, status, summary: &str| Finding::new(id, status, summary);
        let lt = loadtest_passed::ID;
        let cases = [
            (
                vec![
                    f(lt, Status::Pass, "passed"),
                    f("alarms.armed", Status::Warn, "w"),
                ],
                vec![],
            ),
            (
                vec![f(lt, Status::Fail, "no load test recorded")],
                vec!["loadtest.passed: no load test recorded".to_string()],
            ),
            (
                vec![
                    f(lt, Status::Skip, "the stack sets no load-test criteria"),
                    f("proxy.attached", Status::Fail, "not attached"),
                ],
                vec![
                    "proxy.attached: not attached".to_string(),
                    "loadtest.passed: the stack sets no load-test criteria (a passing load test for the live \
                     versions is required)"
                        .to_string(),
                ],
            ),
            (vec![], vec!["loadtest.passed: not run".to_string()]),
        ];
        for (findings, want) in cases {
            assert_eq!(readiness_problems(&findings), want, "{findings:?}");
        }
    }

    #[test]
    fn the_local_build_must_be_the_code_that_serves() {
        let art = |sha: &str| Artifact {
            sha256: sha.into(),
            zip: vec![],
        };
        let l = live(
            &[
                ("api", Some("3"), Some("A")),
                ("ingest", Some("1"), Some("B")),
            ],
            None,
        );
        let same = BTreeMap::from([
            ("api".to_string(), art("A")),
            ("ingest".to_string(), art("B")),
        ]);
        assert!(code_mismatches(&l, &same).is_empty());
        let other = BTreeMap::from([("api".to_string(), art("Z"))]);
        assert_eq!(
            code_mismatches(&l, &other),
            vec![
                "function api: the local build is Z, version 3 serves A".to_string(),
                "function ingest: not built locally".to_string()
            ]
        );
    }
}
