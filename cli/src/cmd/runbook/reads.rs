//! The read steps of a runbook that reach past SQL: preflight checks by id (`check`) and CloudWatch metrics over a
//! window (`metric`). The runner (run.rs) calls these and renders what they return. Gathering and judging the
//! checks is preflight's (`preflight::run_checks`); naming, summarizing and drawing a metric is
//! `statsctl_runbooks::metric`'s; this file only connects them to the live stack.

use statsctl_aws as aws;
use statsctl_checks::{Finding, Selection};
use statsctl_core::desired::service::{Colour, ColourNames};
use statsctl_core::desired::Names;
use statsctl_core::inventory::{Kind, Observed};
use statsctl_core::runbook::{MetricStep, Stat};
use statsctl_runbooks::metric::{self, Of, StackNames};

use crate::cmd::preflight;
use crate::context::Global;
use crate::exit::{CliError, CliResult};
use crate::session::{aws_error, Session};

/// One series of a `metric` step (a step over `functions` gives one per function).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricSeries {
    /// What it measures, e.g. `DatabaseConnections (database live-stats-dev-db)`.
    pub label: String,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// Datapoints in the window.
    pub points: usize,
    /// The values over the window as a one-line sparkline (`▁▂▅█`).
    pub sparkline: String,
    /// A limit to read the values against (max_connections for DatabaseConnections), when statsctl knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// Runs the preflight checks with these ids against the live stack, for an audience of `viewers`, and returns
/// their findings.
pub async fn checks(
    g: &Global,
    s: &Session,
    ids: &[String],
    viewers: u64,
) -> CliResult<Vec<Finding>> {
    let selection = Selection {
        only: ids.to_vec(),
        ..Default::default()
    };
    if ids.is_empty() {
        // An empty `only` means every check to preflight; a step that names none runs none.
        return Err(CliError::new("a check step names no checks").hint(format!(
            "list check ids, e.g. `check: [proxy.attached]`; checks: {}",
            statsctl_checks::ids().join(", ")
        )));
    }
    preflight::known_checks(&selection)?;
    // stack.drift compares the plan with live state, and the plan compares function code by its packaged hash:
    // a session opened without the packages would see every function's code as a pending change.
    let packaged;
    let s = if needs_packages(s, &selection) {
        packaged = Session::open(g, true).await?;
        &packaged
    } else {
        s
    };
    preflight::run_checks(s, &selection, viewers).await
}

fn needs_packages(s: &Session, selection: &Selection) -> bool {
    selection.runs(statsctl_checks::stack_drift::ID)
        && s.artifacts.is_empty()
        && !s.stack.spec.functions.is_empty()
}

/// Reads the metric over its window, one series per resource it names.
pub async fn metric(s: &Session, step: &MetricStep) -> CliResult<Vec<MetricSeries>> {
    let of = Of::parse(&step.of).map_err(|e| {
        CliError::new(e)
            .hint("write `of:` as one of the parts of the stack listed, e.g. `of: database`")
    })?;
    let spec = &s.stack.spec;
    // The load balancer's dimension values hold ids AWS chose: read them live, and only when needed.
    let serving = if of.needs_load_balancer() {
        serving(s).await?
    } else {
        None
    };
    let mut names = StackNames::new(spec, &s.env, None, None);
    if let Some(v) = serving {
        names.load_balancer = v.load_balancer_dimension;
        names.target_group = v.target_group_dimension;
        // The colour serving viewers: after a blue/green rollout, `<service>-green`.
        if let Some((_, service)) = names.service.as_mut() {
            *service = v.service;
        }
    }
    let queries = metric::queries(&of, &step.name, &names).map_err(|p| {
        CliError::new(format!("metric step `{}`: {}", step.name, p.message)).hint(p.hint)
    })?;
    // Only the live value: an estimate from AWS's table would draw a limit the database may not have.
    let max_connections = if metric::has_limit(&of, &step.name) {
        preflight::measure_sql(spec).await.0.map(|m| m.value)
    } else {
        None
    };
    let window_s = step.window.as_secs();
    let period_s = metric::period_secs(window_s);
    let reads: Vec<aws::cloudwatch::MetricRead> = queries
        .iter()
        .map(|q| aws::cloudwatch::MetricRead {
            namespace: q.namespace.to_string(),
            metric: q.metric.clone(),
            dimensions: q.dimensions.clone(),
            stat: stat_name(step.stat).to_string(),
            period_s,
            window_s,
        })
        .collect();
    let reads = reads
        .iter()
        .map(|r| aws::cloudwatch::metric_points(&s.aws, r));
    let results = futures::future::join_all(reads).await;
    let mut out = Vec::with_capacity(queries.len());
    for (q, points) in queries.into_iter().zip(results) {
        let values: Vec<f64> = points
            .map_err(aws_error)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let (min, avg, max) = metric::summarize(&values);
        out.push(MetricSeries {
            label: q.label,
            min,
            avg,
            max,
            points: values.len(),
            sparkline: metric::sparkline(&values),
            limit: metric::limit(&of, &step.name, max_connections),
        });
    }
    Ok(out)
}

fn stat_name(stat: Stat) -> &'static str {
    match stat {
        Stat::Maximum => "Maximum",
        Stat::Average => "Average",
        Stat::Minimum => "Minimum",
        Stat::Sum => "Sum",
    }
}

/// The colour of the service that serves viewers now, read live from the listener's weights.
pub struct Serving {
    /// Its ECS service (the stack's service name for blue, `<name>-green` for green).
    pub service: String,
    /// Its target group's name.
    pub target_group: String,
    pub load_balancer_dimension: Option<String>,
    pub target_group_dimension: Option<String>,
}

/// Which colour serves, from the listener as it is now: after a blue/green rollout that may be green, while blue
/// idles with no traffic. What a runbook step that scales, replaces or measures the service must act on. `None`
/// when the stack has no service.
pub async fn serving(s: &Session) -> CliResult<Option<Serving>> {
    let n = Names::new(&s.stack.spec, &s.env);
    let Some(colours) = ColourNames::new(&s.stack.spec, &s.env) else {
        return Ok(None);
    };
    let groups = Colour::BOTH.map(|c| colours.target_group(c));
    let found = aws::elb::observe(&s.aws, &n.load_balancer(), &groups)
        .await
        .map_err(aws_error)?;
    let observed = Observed {
        resources: found.into_iter().collect(),
        ..Observed::default()
    };
    let colour = colours.serving(&observed);
    let target_group = colours.target_group(colour);
    let dimension = |kind: Kind, name: Option<&str>| {
        observed
            .resources
            .iter()
            .find(|(k, _)| k.kind == kind && name.is_none_or(|n| k.name == n))
            .and_then(|(_, r)| r.outputs.get("dimension").cloned())
    };
    Ok(Some(Serving {
        service: colours.service(colour),
        load_balancer_dimension: dimension(Kind::LoadBalancer, None),
        target_group_dimension: dimension(Kind::TargetGroup, Some(&target_group)),
        target_group,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::BTreeMap;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        global: Global,
    }

    /// A session on the shipped stack's local environment whose AWS endpoint answers nothing: a step that reached
    /// AWS would fail with a connection error, not the messages asserted.
    async fn session() -> (Global, Session) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let stack = statsctl_core::loader::load_str(&path, &text, Some("local"), &|_: &str| None)
            .expect("the shipped stack loads");
        let aws = aws::Aws::connect(&aws::Target {
            region: "us-east-1".into(),
            endpoint_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        })
        .await;
        let s = Session {
            env: "local".into(),
            owner: statsctl_core::inventory::Owner {
                stack: stack.spec.stack.clone(),
                env: "local".into(),
            },
            stack,
            artifacts: BTreeMap::new(),
            aws,
        };
        (Args::parse_from(["statsctl"]).global, s)
    }

    /// Unknown or missing check ids are refused before anything is read, naming what exists.
    #[tokio::test]
    async fn check_steps_refuse_ids_that_name_no_check() {
        let (g, s) = session().await;
        let ids = |list: &[&str]| list.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &str, &str)] = &[
            (
                &["proxy.atached"],
                "unknown check `proxy.atached`",
                "did you mean `proxy.attached`? checks: proxy.attached, capacity.connections",
            ),
            (
                &["security", "nope"],
                "unknown check `nope`",
                "checks: proxy.attached",
            ),
            (&[], "names no checks", "check: [proxy.attached]"),
        ];
        for (list, message, hint) in cases {
            let e = checks(&g, &s, &ids(list), 1000).await.unwrap_err();
            assert!(e.message.contains(message), "{list:?}: {e:?}");
            assert!(
                e.hint.as_deref().unwrap_or_default().contains(hint),
                "{list:?}: {e:?}"
            );
        }
        assert_eq!(s.aws.calls.get(), 0, "nothing was sent");
    }

    /// Only stack.drift compares function code, so only it needs the packages when the session has none.
    #[tokio::test]
    async fn only_drift_needs_the_function_packages() {
        let (_, mut s) = session().await;
        let only = |ids: &[&str]| Selection {
            only: ids.iter().map(|i| i.to_string()).collect(),
            ..Default::default()
        };
        assert!(needs_packages(&s, &only(&["stack.drift"])));
        assert!(needs_packages(&s, &only(&["security", "stack.drift"])));
        assert!(!needs_packages(
            &s,
            &only(&["proxy.attached", "alarms.armed"])
        ));
        s.artifacts.insert(
            "stats-api".into(),
            statsctl_core::desired::Artifact {
                sha256: "packaged".into(),
                zip: vec![],
            },
        );
        assert!(!needs_packages(&s, &only(&["stack.drift"])));
        s.artifacts.clear();
        s.stack.spec.functions.clear();
        assert!(!needs_packages(&s, &only(&["stack.drift"])));
    }

    /// A metric step whose `of:` names nothing in the stack (or a part it does not have) says so, with a hint,
    /// before any AWS call.
    #[tokio::test]
    async fn metric_steps_refuse_what_the_stack_does_not_have() {
        let (_, mut s) = session().await;
        let step = |of: &str| MetricStep {
            name: "ClientConnections".into(),
            of: of.into(),
            stat: Stat::Maximum,
            window: statsctl_core::duration::Span::secs(600),
        };
        let e = metric(&s, &step("proxies")).await.unwrap_err();
        assert!(e.message.contains("names no part of the stack"), "{e:?}");
        assert!(e.hint.is_some(), "{e:?}");
        s.stack.spec.proxy = None;
        let e = metric(&s, &step("proxy")).await.unwrap_err();
        assert!(e.message.contains("no proxy"), "{e:?}");
        assert!(e.hint.unwrap_or_default().contains("of: database"));
        let e = metric(&s, &step("function:stats-apx")).await.unwrap_err();
        assert!(e.message.contains("no function `stats-apx`"), "{e:?}");
        assert_eq!(s.aws.calls.get(), 0, "nothing was sent");
    }
}
