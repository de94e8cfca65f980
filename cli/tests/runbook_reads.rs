//! A runbook's `metric` step against the emulator: points published for the stack's own database are read back
//! through the names `statsctl_runbooks::metric` derives from the stack file and `statsctl_aws::cloudwatch`'s
//! GetMetricData adapter, then summarized and drawn as the step shows them.

mod harness;

use harness::*;
use statsctl_runbooks::metric::{self, Of, StackNames};

/// The local environment of the shipped stack, as the test's statsctl resolves it (names only: no AWS call).
fn local_stack() -> statsctl_core::model::StackFile {
    let path = shipped_stack();
    let text = std::fs::read_to_string(&path).unwrap();
    statsctl_core::loader::load_str(&path, &text, Some("local"), &|_: &str| None)
        .expect("the shipped stack loads")
        .spec
}

async fn put_points(env: &LocalAws, dims: &[(&str, &str)], values: &[(u64, f64)]) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let cw = aws_sdk_cloudwatch::Client::new(&sdk_config(env).await);
    let now = std::time::SystemTime::now();
    let data: Vec<MetricDatum> = values
        .iter()
        .map(|(ago_s, v)| {
            MetricDatum::builder()
                .metric_name("DatabaseConnections")
                .set_dimensions(Some(
                    dims.iter()
                        .map(|(k, v)| Dimension::builder().name(*k).value(*v).build())
                        .collect(),
                ))
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                    now - std::time::Duration::from_secs(*ago_s),
                ))
                .value(*v)
                .build()
        })
        .collect();
    cw.put_metric_data()
        .namespace("AWS/RDS")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData");
}

#[test]
fn database_connections_are_read_back_under_the_stacks_names() {
    let env = LocalAws::start();
    let stack = local_stack();
    // statsctl's own client reads credentials from the environment, as the binary does (nextest runs each test
    // in its own process).
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    block_on(async {
        // Three minutes of the stack's cluster, one minute apart, and a point of another cluster that must not
        // show up (dimensions match exactly).
        put_points(
            &env,
            &[("DBClusterIdentifier", &stack.database.cluster_id)],
            &[(270, 4.0), (150, 11.0), (30, 27.0)],
        )
        .await;
        put_points(
            &env,
            &[("DBClusterIdentifier", "someone-elses-db")],
            &[(150, 500.0)],
        )
        .await;

        let aws = statsctl_aws::Aws::connect(&statsctl_aws::Target {
            region: "us-east-1".into(),
            endpoint_url: Some(env.endpoint()),
            ..Default::default()
        })
        .await;
        let names = StackNames::new(&stack, "local", None, None);
        let queries = metric::queries(&Of::Database, "DatabaseConnections", &names).unwrap();
        assert_eq!(queries.len(), 1);
        let q = &queries[0];
        let window_s = 15 * 60;
        let read = |stat: &str| statsctl_aws::cloudwatch::MetricRead {
            namespace: q.namespace.to_string(),
            metric: q.metric.clone(),
            dimensions: q.dimensions.clone(),
            stat: stat.to_string(),
            period_s: metric::period_secs(window_s),
            window_s,
        };
        let points = statsctl_aws::cloudwatch::metric_points(&aws, &read("Maximum"))
            .await
            .expect("GetMetricData");
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, vec![4.0, 11.0, 27.0], "oldest first: {points:?}");
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "{points:?}");
        assert_eq!(
            metric::summarize(&values),
            (Some(4.0), Some(14.0), Some(27.0))
        );
        assert_eq!(metric::sparkline(&values), "▁▃█");

        // A window that ends before the points: nothing, and nothing to draw.
        let mut short = read("Maximum");
        short.window_s = 60;
        let recent = statsctl_aws::cloudwatch::metric_points(&aws, &short)
            .await
            .expect("GetMetricData");
        assert_eq!(
            recent.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec![27.0],
            "only the last minute: {recent:?}"
        );

        // A part of the stack that published nothing reads as an empty series, not an error.
        let proxy = metric::queries(&Of::Proxy, "ClientConnections", &names).unwrap();
        let none = statsctl_aws::cloudwatch::metric_points(
            &aws,
            &statsctl_aws::cloudwatch::MetricRead {
                namespace: proxy[0].namespace.to_string(),
                metric: proxy[0].metric.clone(),
                dimensions: proxy[0].dimensions.clone(),
                stat: "Maximum".into(),
                period_s: 60,
                window_s,
            },
        )
        .await
        .expect("GetMetricData");
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(metric::summarize(&[]), (None, None, None));
    });
}

/// `BEGIN READ ONLY`, the query, `ROLLBACK`: the rows as text (column → value), or the database's error.
async fn read_only(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<Vec<std::collections::BTreeMap<String, String>>, String> {
    use tokio_postgres::SimpleQueryMessage;
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(|e| e.to_string())?;
    let answer = client.simple_query(sql).await;
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(|e| e.to_string())?;
    let messages = answer.map_err(|e| match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    })?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            c.name().to_string(),
                            r.get(i).unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

async fn connect(env: &LocalAws, user: &str) -> tokio_postgres::Client {
    let mut c = tokio_postgres::Config::new();
    c.host("127.0.0.1")
        .port(env.pg_port)
        .user(user)
        .password(env.db_password(user))
        .dbname("stats")
        .connect_timeout(std::time::Duration::from_secs(5));
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Every `sql` step of every shipped runbook runs on a real PostgreSQL inside a read-only transaction, with its
/// parameters bound from the stack and earlier steps' first rows as later steps' fields, the way the runner does;
/// with a dozen idle connections held as one of the stack's users, the connection runbooks name that user and
/// list exactly those connections.
#[test]
fn shipped_sql_runs_read_only_and_finds_the_idle_holder() {
    use statsctl_core::runbook::{
        bind_params_for_stack, load_str, references, resolve, Found, ParamKind, Reference, StepKind,
    };
    let env = LocalAws::start();
    let stack = local_stack();
    block_on(async {
        let mut held = Vec::new();
        for _ in 0..12 {
            held.push(connect(&env, "stats_api").await);
        }
        // Idle longer than the `older_than=1s` given below.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let admin = connect(&env, "postgres").await;
        let mut found_by_runbook = std::collections::BTreeMap::new();
        for (name, text) in statsctl_runbooks::shipped() {
            let rb = load_str(std::path::Path::new(name), text).unwrap();
            // Required parameters get a plausible value of their type; kill-idle-connections looks back 1s.
            let mut given: Vec<(String, String)> = rb
                .params
                .iter()
                .filter(|(_, p)| p.default.is_none() && p.default_from.is_none())
                .map(|(k, p)| {
                    let v = match p.kind {
                        ParamKind::Count => "2",
                        ParamKind::Duration => "1s",
                        ParamKind::String if k == "target" => "function:stats-api",
                        ParamKind::String => "stats-api",
                    };
                    (k.clone(), v.to_string())
                })
                .collect();
            if rb.params.contains_key("older_than") {
                given.push(("older_than".into(), "1s".into()));
            }
            let mut found = Found {
                params: bind_params_for_stack(&rb, &given, &stack)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}")),
                ..Default::default()
            };
            for step in &rb.steps {
                let StepKind::Sql(sql) = &step.kind else {
                    continue;
                };
                // The runner lets into SQL text only values of letters, digits, spaces and `_ . : - + @ /`
                // (statsctl_runbooks::sql): the values the stack's defaults give must be such.
                for r in references(sql).into_iter().flatten() {
                    let value = match &r {
                        Reference::Param(p) => found.params.get(p),
                        Reference::Step { id, field } => {
                            found.steps.get(id).and_then(|f| f.get(field))
                        }
                    };
                    if let Some(v) = value {
                        assert!(
                            v.chars()
                                .all(|c| c.is_alphanumeric() || " _.:-+@/".contains(c)),
                            "{name}: `{}`: {r:?} is `{v}`",
                            step.title
                        );
                    }
                }
                let sql = resolve(sql, &found)
                    .unwrap_or_else(|e| panic!("{name}: `{}`: {e}", step.title));
                let rows = read_only(&admin, &sql)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: `{}`: {e}\n{sql}", step.title));
                if let (Some(id), Some(first)) = (&step.id, rows.first()) {
                    found.steps.insert(id.clone(), first.clone());
                }
                // For the assertions below: each step's first row and row count, by title.
                let mut shown = rows.first().cloned().unwrap_or_default();
                shown.insert("#rows".into(), rows.len().to_string());
                found.steps.insert(step.title.clone(), shown);
            }
            found_by_runbook.insert(name, found);
        }

        let exhausted = &found_by_runbook["db-connections-exhausted"];
        assert_eq!(
            exhausted.steps["holders"]["usename"], "stats_api",
            "{:?}",
            exhausted.steps
        );
        assert_eq!(exhausted.steps["holders"]["idle"], "12");
        assert_eq!(exhausted.steps["budget"]["function"], "stats-api");
        let cap: u32 = exhausted.steps["budget"]["cap"].parse().unwrap();
        // max_connections 30 − 3 reserved − the others' connections, and never above the local reserved 20.
        assert!(cap <= 20, "{:?}", exhausted.steps["budget"]);
        assert!(
            exhausted.steps["count"]["connections"]
                .parse::<u32>()
                .unwrap()
                >= 13
        );

        let kill = &found_by_runbook["kill-idle-connections"];
        assert_eq!(kill.params["user"], "log_ingester stats_api stats_service");
        assert_eq!(
            kill.steps["idle"]["usename"], "stats_api",
            "{:?}",
            kill.steps
        );
        assert_eq!(kill.steps["idle"]["idle"], "12");
        assert_eq!(kill.steps["idle"]["idle_all_users"], "12");
        assert_eq!(
            kill.steps["The connections that will be terminated"]["#rows"],
            "12"
        );
        assert_eq!(kill.steps["Idle connections left"]["idle_left"], "12");
        assert_eq!(kill.steps["Idle connections left"]["other_users_idle"], "0");

        // Read only: every connection is still there.
        let left = read_only(
            &admin,
            "select count(*)::int as n from pg_stat_activity where usename = 'stats_api'",
        )
        .await
        .unwrap();
        assert_eq!(left[0]["n"], "12");
        drop(held);
    });
}
