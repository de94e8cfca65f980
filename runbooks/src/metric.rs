//! A runbook's `metric` step, the pure parts: whose metric `of:` names (namespace and dimensions from the stack's
//! own names, the same ones its alarms use), the period a window is read at, and what is shown (min/avg/max and a
//! sparkline). Reading CloudWatch is the AWS adapter's; deciding and drawing is here.

use std::collections::BTreeMap;

use statsctl_core::diagnostics::closest;
use statsctl_core::model::StackFile;

/// The `of:` values a metric step may name.
pub const OF: [&str; 7] = [
    "database",
    "proxy",
    "functions",
    "function:NAME",
    "service",
    "load_balancer",
    "target_group",
];

/// Whose metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Of {
    Database,
    Proxy,
    /// Each of the stack's functions, one series each.
    Functions,
    /// One function: the stack's name for it (`stats-api`) or its AWS name.
    Function(String),
    Service,
    LoadBalancer,
    TargetGroup,
}

impl Of {
    pub fn parse(text: &str) -> Result<Of, String> {
        let t = text.trim();
        Ok(match t {
            "database" => Of::Database,
            "proxy" => Of::Proxy,
            "functions" => Of::Functions,
            "service" => Of::Service,
            "load_balancer" => Of::LoadBalancer,
            "target_group" => Of::TargetGroup,
            _ => match t.strip_prefix("function:") {
                Some(name) if !name.trim().is_empty() && !name.contains("{{") => {
                    Of::Function(name.trim().to_string())
                }
                _ => {
                    let known = OF.iter().copied().filter(|o| *o != "function:NAME");
                    let suggestion = closest(t, known)
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "metric `of: {t}` names no part of the stack{suggestion}; it is one of: {}",
                        OF.join(", ")
                    ));
                }
            },
        })
    }

    /// Whether reading it needs what only the live load balancer says: its dimension values (`app/…`,
    /// `targetgroup/…`), or which colour of the service serves (its listener's weights).
    pub fn needs_load_balancer(&self) -> bool {
        matches!(self, Of::LoadBalancer | Of::TargetGroup | Of::Service)
    }
}

/// The names metrics are published under, for one stack in one environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackNames {
    pub cluster_id: String,
    pub proxy: Option<String>,
    /// (the stack's name, the AWS function name), in the stack's order.
    pub functions: Vec<(String, String)>,
    /// (ECS cluster, service name).
    pub service: Option<(String, String)>,
    /// The live `LoadBalancer` dimension value (`app/name/id`), once the load balancer exists.
    pub load_balancer: Option<String>,
    /// The live `TargetGroup` dimension value (`targetgroup/name/id`).
    pub target_group: Option<String>,
}

impl StackNames {
    /// The names from the stack file; the load balancer's dimension values are live and given by the caller.
    pub fn new(
        stack: &StackFile,
        env: &str,
        load_balancer: Option<String>,
        target_group: Option<String>,
    ) -> StackNames {
        StackNames {
            cluster_id: stack.database.cluster_id.clone(),
            proxy: stack.proxy.as_ref().map(|p| p.name.clone()),
            functions: stack
                .functions
                .keys()
                .map(|k| (k.clone(), stack.function_name(env, k)))
                .collect(),
            service: stack
                .service
                .as_ref()
                .map(|s| (s.cluster.clone(), s.name.clone())),
            load_balancer,
            target_group,
        }
    }
}

/// One series to read: what GetMetricData is asked for, and the label shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub label: String,
    pub namespace: &'static str,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
}

/// An error for the operator: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
}

fn problem(message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        message: message.into(),
        hint: hint.into(),
    }
}

/// The series a metric step reads: namespace and dimensions for `of` (aws-facts.md §5), one per function for
/// `functions`.
pub fn queries(of: &Of, metric: &str, names: &StackNames) -> Result<Vec<Query>, Problem> {
    let dims = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let one = |namespace: &'static str, whose: String, pairs: &[(&str, &str)]| {
        vec![Query {
            label: format!("{metric} ({whose})"),
            namespace,
            metric: metric.to_string(),
            dimensions: dims(pairs),
        }]
    };
    let function = |(_, aws_name): &(String, String)| Query {
        label: format!("{metric} (function {aws_name})"),
        namespace: "AWS/Lambda",
        metric: metric.to_string(),
        dimensions: dims(&[("FunctionName", aws_name)]),
    };
    let lb_missing = || {
        problem(
            "the load balancer's CloudWatch dimensions are not known: it does not exist yet",
            "deploy the stack first (`statsctl deploy`); `statsctl status` shows whether the load balancer exists",
        )
    };
    Ok(match of {
        Of::Database => one(
            "AWS/RDS",
            format!("database {}", names.cluster_id),
            &[("DBClusterIdentifier", &names.cluster_id)],
        ),
        Of::Proxy => {
            let proxy = names.proxy.as_deref().ok_or_else(|| {
                problem(
                    "the stack has no proxy to read a metric of",
                    "use `of: database`, or add `proxy:` to the stack file",
                )
            })?;
            one("AWS/RDS", format!("proxy {proxy}"), &[("ProxyName", proxy)])
        }
        Of::Functions if names.functions.is_empty() => {
            return Err(problem(
                "the stack has no functions to read a metric of",
                "use `of: service` or `of: database`",
            ))
        }
        Of::Functions => names.functions.iter().map(function).collect(),
        Of::Function(name) => {
            let f = names
                .functions
                .iter()
                .find(|(short, aws_name)| short == name || aws_name == name)
                .ok_or_else(|| {
                    let suggestion = closest(name, names.functions.iter().map(|(s, _)| s.as_str()))
                        .map(|c| format!("did you mean `function:{c}`? "))
                        .unwrap_or_default();
                    problem(
                        format!("the stack has no function `{name}`"),
                        format!(
                            "{suggestion}the stack's functions: {}",
                            names
                                .functions
                                .iter()
                                .map(|(s, _)| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            vec![function(f)]
        }
        Of::Service => {
            let (cluster, service) = names.service.as_ref().ok_or_else(|| {
                problem(
                    "the stack has no service to read a metric of",
                    "use `of: functions` or `of: database`",
                )
            })?;
            one(
                "AWS/ECS",
                format!("service {service}"),
                &[("ClusterName", cluster), ("ServiceName", service)],
            )
        }
        Of::LoadBalancer | Of::TargetGroup if names.service.is_none() => {
            return Err(problem(
                "the stack has no service, so no load balancer to read a metric of",
                "use `of: functions` or `of: database`",
            ))
        }
        Of::LoadBalancer => {
            let lb = names.load_balancer.as_deref().ok_or_else(lb_missing)?;
            one(
                "AWS/ApplicationELB",
                format!("load balancer {lb}"),
                &[("LoadBalancer", lb)],
            )
        }
        Of::TargetGroup => {
            let (lb, tg) = names
                .load_balancer
                .as_deref()
                .zip(names.target_group.as_deref())
                .ok_or_else(lb_missing)?;
            // The same pair of dimensions the stack's target alarms use.
            one(
                "AWS/ApplicationELB",
                format!("target group {tg}"),
                &[("LoadBalancer", lb), ("TargetGroup", tg)],
            )
        }
    })
}

/// The period a window is read at: one minute, or coarser so a long window stays about 60 points. Always a
/// multiple of 60 s, as CloudWatch wants for periods over a minute.
pub fn period_secs(window_secs: u64) -> u32 {
    let minutes = window_secs.div_ceil(60 * 60).max(1);
    u32::try_from(minutes * 60).unwrap_or(u32::MAX - u32::MAX % 60)
}

/// Whether a series has a limit to read it against: the database's DatabaseConnections (max_connections).
pub fn has_limit(of: &Of, metric: &str) -> bool {
    matches!(of, Of::Database) && metric == "DatabaseConnections"
}

/// The limit to read a series against, when statsctl knows one (see [`has_limit`]).
pub fn limit(of: &Of, metric: &str, max_connections: Option<u32>) -> Option<f64> {
    max_connections
        .filter(|_| has_limit(of, metric))
        .map(f64::from)
}

/// Min, average and max of the values (non-finite ones ignored); `None` for each when there are none.
pub fn summarize(values: &[f64]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (None, None, None);
    }
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let avg = finite.iter().sum::<f64>() / finite.len() as f64;
    (Some(min), Some(avg), Some(max))
}

/// The widest sparkline drawn: longer series are bucketed, each bucket drawn at its peak (a spike stays visible).
pub const SPARK_WIDTH: usize = 60;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The values, oldest first, as one line of bars scaled from the lowest to the highest; a flat series is a flat
/// line of the lowest bar. Empty for no values; non-finite values are left out.
pub fn sparkline(values: &[f64]) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return String::new();
    }
    let buckets = finite.len().div_ceil(SPARK_WIDTH);
    let peaks: Vec<f64> = finite
        .chunks(buckets)
        .map(|c| c.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .collect();
    let (lo, _, hi) = summarize(&peaks);
    let (lo, hi) = (lo.unwrap_or_default(), hi.unwrap_or_default());
    let top = (BARS.len() - 1) as f64;
    peaks
        .iter()
        .map(|v| {
            if hi > lo {
                // In 0..=7 by construction: (v - lo) / (hi - lo) is within 0..=1.
                BARS[((v - lo) / (hi - lo) * top).round() as usize]
            } else {
                BARS[0]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> StackNames {
        StackNames {
            cluster_id: "live-stats-db".into(),
            proxy: Some("live-stats-proxy".into()),
            functions: vec![
                ("log-ingester".into(), "live-stats-dev-log-ingester".into()),
                ("stats-api".into(), "live-stats-dev-stats-api".into()),
            ],
            service: Some(("live-stats".into(), "stats-service".into())),
            load_balancer: Some("app/live-stats-dev/abc".into()),
            target_group: Some("targetgroup/live-stats-dev-svc/def".into()),
        }
    }

    #[test]
    fn of_parses_every_documented_value_and_refuses_others() {
        let cases: &[(&str, Result<Of, &str>)] = &[
            ("database", Ok(Of::Database)),
            ("proxy", Ok(Of::Proxy)),
            ("functions", Ok(Of::Functions)),
            ("function:stats-api", Ok(Of::Function("stats-api".into()))),
            ("service", Ok(Of::Service)),
            ("load_balancer", Ok(Of::LoadBalancer)),
            (" target_group ", Ok(Of::TargetGroup)),
            ("databse", Err("did you mean `database`?")),
            ("function:", Err("names no part of the stack")),
            ("function:{{params.f}}", Err("names no part")),
            (
                "lambda",
                Err("one of: database, proxy, functions, function:NAME"),
            ),
        ];
        for (text, want) in cases {
            match (Of::parse(text), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, w) => panic!("{text}: got {got:?}, want {w:?}"),
            }
        }
    }

    /// Namespace and dimensions per `of`, the same names the stack's alarms publish under (core/src/alarms.rs).
    #[test]
    fn queries_use_the_stacks_own_names() {
        type Case = (
            Of,
            &'static str,
            &'static str,
            &'static [&'static [(&'static str, &'static str)]],
        );
        let cases: &[Case] = &[
            (
                Of::Database,
                "DatabaseConnections",
                "AWS/RDS",
                &[&[("DBClusterIdentifier", "live-stats-db")]],
            ),
            (
                Of::Proxy,
                "ClientConnections",
                "AWS/RDS",
                &[&[("ProxyName", "live-stats-proxy")]],
            ),
            (
                Of::Functions,
                "ConcurrentExecutions",
                "AWS/Lambda",
                &[
                    &[("FunctionName", "live-stats-dev-log-ingester")],
                    &[("FunctionName", "live-stats-dev-stats-api")],
                ],
            ),
            (
                Of::Function("stats-api".into()),
                "Throttles",
                "AWS/Lambda",
                &[&[("FunctionName", "live-stats-dev-stats-api")]],
            ),
            (
                Of::Function("live-stats-dev-stats-api".into()),
                "Errors",
                "AWS/Lambda",
                &[&[("FunctionName", "live-stats-dev-stats-api")]],
            ),
            (
                Of::Service,
                "CPUUtilization",
                "AWS/ECS",
                &[&[
                    ("ClusterName", "live-stats"),
                    ("ServiceName", "stats-service"),
                ]],
            ),
            (
                Of::LoadBalancer,
                "TargetResponseTime",
                "AWS/ApplicationELB",
                &[&[("LoadBalancer", "app/live-stats-dev/abc")]],
            ),
            (
                Of::TargetGroup,
                "HTTPCode_Target_5XX_Count",
                "AWS/ApplicationELB",
                &[&[
                    ("LoadBalancer", "app/live-stats-dev/abc"),
                    ("TargetGroup", "targetgroup/live-stats-dev-svc/def"),
                ]],
            ),
        ];
        for (of, metric, namespace, dims) in cases {
            let qs = queries(of, metric, &names()).unwrap();
            assert_eq!(qs.len(), dims.len(), "{of:?}");
            for (q, d) in qs.iter().zip(dims.iter()) {
                assert_eq!(q.namespace, *namespace, "{of:?}");
                assert_eq!(&q.metric, metric);
                let want: BTreeMap<String, String> = d
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(q.dimensions, want, "{of:?}");
                assert!(q.label.starts_with(metric), "{}", q.label);
            }
        }
        assert_eq!(
            queries(&Of::Database, "DatabaseConnections", &names()).unwrap()[0].label,
            "DatabaseConnections (database live-stats-db)"
        );
    }

    /// A part the stack does not have, or cannot be named yet, is an error with a hint; never a guessed dimension.
    #[test]
    fn missing_parts_are_named() {
        let bare = StackNames {
            cluster_id: "db".into(),
            ..Default::default()
        };
        let mut undeployed = names();
        undeployed.target_group = None;
        let cases: &[(Of, &StackNames, &str, &str)] = &[
            (Of::Proxy, &bare, "no proxy", "proxy:"),
            (Of::Functions, &bare, "no functions", "of: service"),
            (Of::Service, &bare, "no service", "of: functions"),
            (Of::TargetGroup, &bare, "no load balancer", "of: functions"),
            (
                Of::Function("stats-apu".into()),
                &names(),
                "no function `stats-apu`",
                "did you mean `function:stats-api`?",
            ),
            (
                Of::TargetGroup,
                &undeployed,
                "does not exist yet",
                "statsctl deploy",
            ),
        ];
        for (of, n, message, hint) in cases {
            let p = queries(of, "M", n).unwrap_err();
            assert!(p.message.contains(message), "{of:?}: {p:?}");
            assert!(p.hint.contains(hint), "{of:?}: {p:?}");
        }
    }

    #[test]
    fn periods_keep_long_windows_short() {
        for (window, period) in [
            (60, 60),
            (15 * 60, 60),
            (3600, 60),
            (3601, 120),
            (86_400, 1440),
            (7 * 86_400, 10_080),
            (u64::MAX, u32::MAX - u32::MAX % 60),
        ] {
            assert_eq!(period_secs(window), period, "{window}");
            assert_eq!(period_secs(window) % 60, 0);
        }
    }

    #[test]
    fn limit_is_max_connections_for_database_connections_only() {
        assert_eq!(
            limit(&Of::Database, "DatabaseConnections", Some(30)),
            Some(30.0)
        );
        assert_eq!(limit(&Of::Database, "DatabaseConnections", None), None);
        assert_eq!(limit(&Of::Proxy, "DatabaseConnections", Some(30)), None);
        assert_eq!(limit(&Of::Database, "CPUUtilization", Some(30)), None);
        assert!(has_limit(&Of::Database, "DatabaseConnections"));
        assert!(!has_limit(&Of::Functions, "ConcurrentExecutions"));
    }

    /// (min, avg, max).
    type Summary = (Option<f64>, Option<f64>, Option<f64>);

    #[test]
    fn summaries() {
        let cases: &[(&[f64], Summary)] = &[
            (&[], (None, None, None)),
            (&[4.0], (Some(4.0), Some(4.0), Some(4.0))),
            (&[1.0, 2.0, 6.0], (Some(1.0), Some(3.0), Some(6.0))),
            (
                &[f64::NAN, 2.0, f64::INFINITY],
                (Some(2.0), Some(2.0), Some(2.0)),
            ),
            (&[f64::NAN], (None, None, None)),
        ];
        for (values, want) in cases {
            assert_eq!(summarize(values), *want, "{values:?}");
        }
    }

    #[test]
    fn sparklines() {
        let cases: &[(&[f64], &str)] = &[
            (&[], ""),
            (&[5.0], "▁"),
            (&[3.0, 3.0, 3.0], "▁▁▁"),
            (&[0.0, 7.0], "▁█"),
            (&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "▁▂▃▄▅▆▇█"),
            (&[10.0, f64::NAN, 20.0], "▁█"),
            (&[-1.0, 1.0], "▁█"),
        ];
        for (values, want) in cases {
            assert_eq!(sparkline(values), *want, "{values:?}");
        }
        // A long series is bucketed to the width, each bucket at its peak: a lone spike survives.
        let mut long = vec![1.0; 600];
        long[301] = 50.0;
        let line = sparkline(&long);
        assert_eq!(line.chars().count(), SPARK_WIDTH);
        assert_eq!(line.chars().filter(|c| *c == '█').count(), 1, "{line}");
        assert_eq!(line.chars().nth(30), Some('█'), "{line}");
    }
}
