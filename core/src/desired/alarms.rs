//! The alarms family: the CloudWatch alarms the stack requires (crate::alarms decides which), as specs. The
//! service's alarms get the serving colour's ECS service and target group, by the same rule the service's own
//! desired state follows ([`ColourNames::serving`]), so a plan after a rollout or a rollback is empty whichever
//! colour serves.

use super::service::ColourNames;
use super::{max_connections_estimate, Ctx};
use crate::alarms::{desired_alarms, AlarmContext};
use crate::inventory::{Desired, Kind};
use crate::spec::{AlarmSpec, Spec};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let serving = ColourNames::new(stack, cx.env).map(|names| {
        let c = names.serving(cx.observed);
        (names.service(c), names.target_group(c))
    });
    let ctx = AlarmContext {
        max_connections: max_connections_estimate(stack),
        load_balancer_dimension: cx
            .observed
            .output(Kind::LoadBalancer, &n.load_balancer(), "dimension")
            .map(str::to_string),
        target_group_dimension: serving.as_ref().and_then(|(_, tg)| {
            cx.observed
                .output(Kind::TargetGroup, tg, "dimension")
                .map(str::to_string)
        }),
        service_name: serving.map(|(service, _)| service),
        account_concurrency: stack.aws.lambda_concurrency_limit,
    };
    desired_alarms(stack, cx.env, &ctx)
        .into_iter()
        .map(|a| {
            Desired::from_spec(
                a.name,
                Spec::Alarm(AlarmSpec {
                    namespace: a.namespace,
                    metric: a.metric,
                    dimensions: a.dimensions,
                    statistic: a.statistic,
                    comparison: a.comparison,
                    threshold: a.threshold,
                    period_secs: a.period_secs,
                    evaluation_periods: a.evaluation_periods,
                    datapoints_to_alarm: a.datapoints_to_alarm,
                    actions: a.actions,
                    description: a.description,
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::alarms::colour_alarm_updates;
    use crate::desired::desired;
    use crate::desired::service::Colour;
    use crate::inventory::{Key, Kind, Observed, ObservedResource, Owner};
    use crate::model::StackFile;
    use crate::plan::{plan, Action};
    use crate::spec::Spec;

    use super::ColourNames;

    fn shipped() -> StackFile {
        crate::testing::shipped("local")
    }

    /// The load balancer, both colours' target groups (with their dimensions) and, unless `weights` is `None`, the
    /// listener forwarding by `weights`.
    fn world(stack: &StackFile, weights: Option<&str>) -> Observed {
        let names = ColourNames::new(stack, "local").unwrap();
        let mut o = Observed::default();
        let mut add = |kind, name: String, output: (&str, String)| {
            let mut r = ObservedResource::default();
            r.outputs.insert(output.0.into(), output.1);
            o.resources.insert(Key::new(kind, name), r);
        };
        add(
            Kind::LoadBalancer,
            "live-stats-local".into(),
            ("dimension", "app/live-stats-local/lb1".into()),
        );
        for c in Colour::BOTH {
            let tg = names.target_group(c);
            add(
                Kind::TargetGroup,
                tg.clone(),
                ("dimension", format!("targetgroup/{tg}/{c}")),
            );
        }
        if let Some(w) = weights {
            add(
                Kind::Listener,
                names.listener.clone(),
                ("weights", w.into()),
            );
        }
        o
    }

    /// The dimensions of each service alarm the stack wants with `observed`.
    fn dimensions(
        stack: &StackFile,
        observed: &Observed,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        desired(stack, "local", observed, &BTreeMap::new())
            .into_iter()
            .filter_map(|d| match d.spec {
                Spec::Alarm(a) => Some((d.key.name, a.dimensions)),
                _ => None,
            })
            .filter(|(name, _)| {
                crate::alarms::SERVICE_ALARM_IDS
                    .iter()
                    .any(|id| *name == format!("live-stats-local-{id}"))
            })
            .collect()
    }

    #[test]
    fn the_service_alarms_watch_the_serving_colour() {
        let stack = shipped();
        let names = ColourNames::new(&stack, "local").unwrap();
        let (b, g) = (
            names.target_group(Colour::Blue),
            names.target_group(Colour::Green),
        );
        let cases = [
            ("blue serving", Some(format!("{b}=100,{g}=0")), Colour::Blue),
            (
                "green serving",
                Some(format!("{b}=0,{g}=100")),
                Colour::Green,
            ),
            (
                "split 90/10 on blue",
                Some(format!("{b}=90,{g}=10")),
                Colour::Blue,
            ),
            (
                "split 10/90 on green",
                Some(format!("{b}=10,{g}=90")),
                Colour::Green,
            ),
            ("no listener", None, Colour::Blue),
        ];
        for (case, weights, want) in cases {
            let o = world(&stack, weights.as_deref());
            let got = dimensions(&stack, &o);
            assert_eq!(got.len(), 4, "{case}: {got:?}");
            let service = names.service(want);
            let tg = format!("targetgroup/{}/{want}", names.target_group(want));
            for id in ["ecs-cpu", "ecs-memory"] {
                let d = &got[&format!("live-stats-local-{id}")];
                assert_eq!(d["ServiceName"], service, "{case}: {id}");
                assert_eq!(d["ClusterName"], "live-stats", "{case}: {id}");
            }
            for id in ["target-5xx", "unhealthy-hosts"] {
                let d = &got[&format!("live-stats-local-{id}")];
                assert_eq!(d["TargetGroup"], tg, "{case}: {id}");
                assert_eq!(
                    d["LoadBalancer"], "app/live-stats-local/lb1",
                    "{case}: {id}"
                );
            }
        }
        // Blue keeps the names the service always had.
        let d = dimensions(&stack, &world(&stack, None));
        assert_eq!(
            d["live-stats-local-ecs-cpu"]["ServiceName"],
            "stats-service"
        );
    }

    #[test]
    fn after_a_colour_change_only_the_service_alarms_are_re_pointed() {
        let stack = shipped();
        let owner = Owner {
            stack: stack.stack.clone(),
            env: "local".into(),
        };
        let names = ColourNames::new(&stack, "local").unwrap();
        let (b, g) = (
            names.target_group(Colour::Blue),
            names.target_group(Colour::Green),
        );
        // Every alarm exists as wanted while blue served…
        let mut o = world(&stack, Some(&format!("{b}=100,{g}=0")));
        for d in desired(&stack, "local", &o, &BTreeMap::new()) {
            if d.key.kind == Kind::Alarm {
                let r = ObservedResource {
                    attrs: d.attrs.clone(),
                    owner: Some(owner.clone()),
                    ..Default::default()
                };
                o.resources.insert(d.key, r);
            }
        }
        let alarms_only = |o: &Observed| {
            let wanted: Vec<_> = desired(&stack, "local", o, &BTreeMap::new())
                .into_iter()
                .filter(|d| d.key.kind == Kind::Alarm)
                .collect();
            plan(&owner, &wanted, o)
        };
        assert!(colour_alarm_updates(&alarms_only(&o), &stack).is_empty());
        // …and one of them has a pending threshold change of its own (a `deploy --unit` left it).
        for id in ["db-connections", "ecs-memory"] {
            let key = Key::new(Kind::Alarm, format!("live-stats-local-{id}"));
            o.resources
                .get_mut(&key)
                .unwrap()
                .attrs
                .insert("threshold".into(), "1".into());
        }
        let p = alarms_only(&o);
        assert!(
            colour_alarm_updates(&p, &stack).is_empty(),
            "no colour change"
        );
        // Green takes the traffic: the four service alarms, nothing else.
        let key = Key::new(Kind::Listener, names.listener.clone());
        o.resources
            .get_mut(&key)
            .unwrap()
            .outputs
            .insert("weights".into(), format!("{b}=0,{g}=100"));
        let p = alarms_only(&o);
        let took = colour_alarm_updates(&p, &stack);
        let mut ids: Vec<&str> = took.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            ["ecs-cpu", "ecs-memory", "target-5xx", "unhealthy-hosts"]
        );
        assert!(took.iter().all(|(_, c)| c.action == Action::Update));
        assert!(p
            .pending()
            .any(|c| c.key.name == "live-stats-local-db-connections"));
    }
}
