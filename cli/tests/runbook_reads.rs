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
