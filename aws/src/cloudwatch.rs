//! CloudWatch: the stack's alarms, all named `<stack>-<env>-<id>`, so one prefix query finds every one it owns.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic};

use crate::{fail, Aws, AwsResult};
use statsctl_core::inventory::{
    canonical_map, join_sorted, Desired, Key, Kind, ObservedResource, Owner,
};

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

pub async fn put_alarm(aws: &Aws, d: &Desired) -> AwsResult<ObservedResource> {
    let name = &d.key.name;
    // Namespaces contain a slash themselves (`AWS/Lambda`): the metric is after the last one.
    let (namespace, metric) = d
        .get("metric")
        .rsplit_once('/')
        .unwrap_or(("", d.get("metric")));
    let dims: std::collections::BTreeMap<String, String> =
        serde_json::from_str(d.get("dimensions")).unwrap_or_default();
    let actions: Vec<String> = d
        .get("actions")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .alarm_description(d.get("description"))
        .namespace(namespace)
        .metric_name(metric)
        .set_dimensions(Some(
            dims.into_iter()
                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                .collect(),
        ))
        .statistic(Statistic::from(d.get("statistic")))
        .comparison_operator(ComparisonOperator::from(d.get("comparison")))
        .threshold(d.get("threshold").parse().unwrap_or_default())
        .period(d.get("period").parse().unwrap_or(60))
        .evaluation_periods(d.get("evaluation_periods").parse().unwrap_or(5))
        .datapoints_to_alarm(d.get("datapoints_to_alarm").parse().unwrap_or(5))
        .set_alarm_actions(Some(actions.clone()))
        .set_ok_actions(Some(actions))
        .treat_missing_data("notBreaching")
        .send()
        .await
        .map_err(|e| fail(format!("put alarm `{name}`"), e))?;
    Ok(ObservedResource {
        id: name.clone(),
        state: "INSUFFICIENT_DATA".into(),
        attrs: d.attrs.clone(),
        ..Default::default()
    })
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
