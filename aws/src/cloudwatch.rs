//! CloudWatch: the stack's alarms, all named `<stack>-<env>-<id>`, so one prefix query finds every one it owns.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic};

use std::collections::BTreeMap;

use crate::{fail, Aws, AwsResult};
use statsctl_core::inventory::{canonical_map, join_sorted, Key, Kind, ObservedResource, Owner};

/// The managed attributes of a live alarm, in the same form `desired` writes them.
fn attrs(a: &MetricAlarm) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    m.insert(
        "metric".into(),
        format!(
            "{}/{}",
            a.namespace().unwrap_or_default(),
            a.metric_name().unwrap_or_default()
        ),
    );
    let dims: std::collections::BTreeMap<String, String> = a
        .dimensions()
        .iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_string(),
                d.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    m.insert("dimensions".into(), canonical_map(&dims));
    m.insert(
        "statistic".into(),
        a.statistic()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    );
    m.insert(
        "comparison".into(),
        a.comparison_operator()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
    );
    m.insert(
        "threshold".into(),
        statsctl_core::desired::format_number(a.threshold().unwrap_or_default()),
    );
    m.insert("period".into(), a.period().unwrap_or_default().to_string());
    m.insert(
        "evaluation_periods".into(),
        a.evaluation_periods().unwrap_or_default().to_string(),
    );
    m.insert(
        "datapoints_to_alarm".into(),
        a.datapoints_to_alarm()
            .unwrap_or(a.evaluation_periods().unwrap_or_default())
            .to_string(),
    );
    m.insert(
        "actions".into(),
        join_sorted(a.alarm_actions().iter().cloned()),
    );
    m.insert(
        "description".into(),
        a.alarm_description().unwrap_or_default().into(),
    );
    m
}

pub async fn observe(
    aws: &Aws,
    owner: &Owner,
    prefix: &str,
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let mut out = Vec::new();
    let mut pages = aws
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{prefix}-"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail("describe CloudWatch alarms", e))?;
        for a in page.metric_alarms() {
            let name = a.alarm_name().unwrap_or_default().to_string();
            let mut r = ObservedResource {
                id: a.alarm_arn().unwrap_or_default().into(),
                attrs: attrs(a),
                owner: Some(owner.clone()),
                state: a
                    .state_value()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                ..Default::default()
            };
            r.outputs.insert(
                "state_reason".into(),
                a.state_reason().unwrap_or_default().into(),
            );
            out.push((Key::new(Kind::Alarm, name), r));
        }
    }
    Ok(out)
}

/// One metric alarm, as `PutMetricAlarm` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmInput {
    pub name: String,
    pub description: String,
    /// `AWS/Lambda`, `AWS/RDS`…
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Average`, `Maximum`, `Sum`…
    pub statistic: String,
    /// `GreaterThanThreshold`…
    pub comparison: String,
    pub threshold: f64,
    pub period_s: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    /// Notified on ALARM and on OK.
    pub actions: Vec<String>,
}

/// Creates or replaces the alarm (the call is an upsert).
pub async fn put_alarm(aws: &Aws, a: &AlarmInput) -> AwsResult<()> {
    let name = &a.name;
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(&a.description)
        .namespace(&a.namespace)
        .metric_name(&a.metric)
        .set_dimensions(Some(
            a.dimensions
                .iter()
                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                .collect(),
        ))
        .statistic(Statistic::from(a.statistic.as_str()))
        .comparison_operator(ComparisonOperator::from(a.comparison.as_str()))
        .threshold(a.threshold)
        .period(a.period_s)
        .evaluation_periods(a.evaluation_periods)
        .datapoints_to_alarm(a.datapoints_to_alarm)
        .set_alarm_actions(Some(a.actions.clone()))
        .set_ok_actions(Some(a.actions.clone()))
        .treat_missing_data("notBreaching")
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("put alarm `{name}`"), e))
}

pub async fn delete(aws: &Aws, name: &str) -> AwsResult<()> {
    aws.cloudwatch
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("delete alarm `{name}`"), e))
}

/// An alarm's state now, as `DescribeAlarms` reports it: `state` is `OK`, `ALARM` or `INSUFFICIENT_DATA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmStatus {
    pub name: String,
    pub state: String,
    pub reason: String,
}

/// The current state of the named alarms (a rollout's watch list), asked by name in batches of 100 (the API's
/// limit). Reads only: re-putting an alarm would reset its state, so a bake never writes alarms. Names that do
/// not exist are left out of the answer.
pub async fn alarm_states(aws: &Aws, names: &[String]) -> AwsResult<Vec<AlarmStatus>> {
    let mut out = Vec::new();
    for batch in names.chunks(100) {
        let mut pages = aws
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(batch.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail("read the state of CloudWatch alarms", e))?;
            out.extend(page.metric_alarms().iter().map(|a| {
                AlarmStatus {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    state: a
                        .state_value()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: a.state_reason().unwrap_or_default().to_string(),
                }
            }));
        }
    }
    Ok(out)
}

/// One metric series to read over a window ending now (a runbook's `metric` step).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRead {
    /// `AWS/RDS`, `AWS/Lambda`…
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    /// `Maximum`, `Average`, `Minimum`, `Sum`.
    pub stat: String,
    pub period_s: u32,
    pub window_s: u64,
}

/// Pages of GetMetricData read at most (each holds up to 100,800 points, far more than a window of a runbook's).
const MAX_METRIC_PAGES: usize = 10;

/// The series' datapoints as (unix seconds, value), oldest first, from GetMetricData.
pub async fn metric_points(aws: &Aws, m: &MetricRead) -> AwsResult<Vec<(i64, f64)>> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat, ScanBy};
    let end = std::time::SystemTime::now();
    let start = end
        .checked_sub(std::time::Duration::from_secs(m.window_s))
        .unwrap_or(std::time::UNIX_EPOCH);
    let metric = Metric::builder()
        .namespace(&m.namespace)
        .metric_name(&m.metric)
        .set_dimensions(Some(
            m.dimensions
                .iter()
                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                .collect(),
        ))
        .build();
    let query = MetricDataQuery::builder()
        .id("m0")
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(i32::try_from(m.period_s).unwrap_or(i32::MAX))
                .stat(&m.stat)
                .build(),
        )
        .return_data(true)
        .build();
    let what = || format!("read metric {}/{}", m.namespace, m.metric);
    let mut points = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_METRIC_PAGES {
        let out = aws
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query.clone())
            .start_time(DateTime::from(start))
            .end_time(DateTime::from(end))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| fail(what(), e))?;
        for r in out.metric_data_results() {
            points.extend(
                r.timestamps()
                    .iter()
                    .map(DateTime::secs)
                    .zip(r.values().iter().copied()),
            );
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    // Ascending was asked for; an endpoint that ignores ScanBy (the emulator) still gives them oldest first here.
    points.sort_by_key(|(t, _)| *t);
    Ok(points)
}
