//! The service's blue/green colours: two ECS services, each behind its own target group, and the one listener
//! whose weights say which serves. A service unit starts the new task definition on the idle colour, waits for it
//! to be steady, then the rollout shifts listener weights; the previous colour keeps running for
//! `rollout.keep_previous` so a rollback is instant.
//!
//! Why two services rather than task sets under the EXTERNAL deployment controller: the local emulator answers
//! `CreateTaskSet` with a scale with HTTP 500 and leaves both task sets ACTIVE when the primary is named by id,
//! so a task-set rollout could not be tested locally; two plain services use only calls the emulator and AWS
//! handle alike, each colour's running count and revision can be read on its own, and the service an existing
//! stack already runs becomes the blue colour as it is (changing a service's deployment controller means
//! recreating it, and its viewers' traffic with it).
//!
//! Scaling down: `promote` tags the previous colour with `statsctl:keep-until` (now + `rollout.keep_previous`);
//! `roll_back` tags the colour it took traffic from with the current time. The desired state wants an idle colour
//! as it runs until that time has passed, then with 0 tasks, so the first `plan`/`deploy` after it shows and
//! makes the scale-down (a direct change). Nothing runs in the background.
//!
//! Alarms: the service's alarms watch the serving colour (`core::alarms`). Once traffic has changed colour (a
//! promote, a rollback to the kept colour), [`repoint_alarms`] applies the alarm updates that causes, so they
//! watch the service viewers use now rather than one with no traffic.

use std::time::{Duration, Instant};

use statsctl_aws::ecs::unix_now;
use statsctl_aws::{self as aws, Aws, AwsError};
use statsctl_core::desired::desired;
use statsctl_core::desired::service::{
    percent_on, render_weights, weights_for, Colour, ColourNames, Routing, KEEP_UNTIL_TAG,
    STARTED_TAG,
};
use statsctl_core::duration::Span;
use statsctl_core::inventory::{Desired, Key, Kind, Observed};
use statsctl_core::plan::{Action, Change};
use statsctl_core::spec::{EcsServiceSpec, Spec};

use crate::apply::{applied, apply_one, service_name, service_steady, Executor, Step, StepError};
use crate::inputs;

/// A service rollout in flight: which colour serves and which gets the new task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colours {
    pub service: String,
    /// The task definition revision (`family:N`) serving before the unit.
    pub from: Option<String>,
    /// The revision the unit ships.
    pub to: String,
    /// The colour serving before the unit, and the one the unit starts.
    pub old: Colour,
    pub new: Colour,
    /// The colours' ECS services (names and ARNs) and target group ARNs.
    pub old_service: String,
    pub new_service: String,
    pub old_service_arn: String,
    pub new_service_arn: String,
    pub old_target_group_arn: String,
    pub new_target_group_arn: String,
    pub listener_arn: String,
    /// How long the previous colour keeps its tasks after `promote` (`rollout.keep_previous`).
    pub keep_previous: Duration,
}

fn failed(what: &str, detail: impl Into<String>, hint: &str) -> StepError {
    AwsError::new(what, detail).hint(hint).into()
}

const REPLAN: &str = "run `statsctl plan` to see the service's colours, then deploy again";

/// Applies the unit's changes (task definition, service) and starts the new revision on the idle colour, waiting
/// until it is steady. `Ok(None)` when there is nothing to shift (the service was created now).
pub async fn prepare(
    aws: &Aws,
    ex: &Executor<'_>,
    changes: &[Change],
    observed: &mut Observed,
) -> Result<Option<Colours>, StepError> {
    let what = "start the new revision on the idle colour";
    let stack = ex.subject.stack;
    let (Some(svc), Some(names)) = (
        stack.service.as_ref(),
        ColourNames::new(stack, ex.subject.env),
    ) else {
        return Err(failed(what, "the stack has no service", REPLAN));
    };
    let old = match names.routing(observed) {
        Routing::All(c) => c,
        Routing::Elsewhere => Colour::Blue,
        Routing::Split(f) => {
            return Err(failed(
                what,
                format!(
                    "the listener already splits traffic ({}): a rollout is in progress",
                    render_weights(&f)
                ),
                "finish or roll back that rollout first (`statsctl status` shows the weights)",
            ))
        }
    };
    let new = old.other();
    let old_service = names.service(old);
    // The new task definition (and anything else in the unit but the service) applies as the executor does.
    for c in changes.iter().filter(|c| c.key.kind != Kind::EcsService) {
        apply_one(aws, ex, c, observed).await?;
    }
    let created = changes
        .iter()
        .any(|c| c.key.kind == Kind::EcsService && c.action == Action::Create);
    if created || observed.get(Kind::EcsService, &old_service).is_none() {
        for c in changes.iter().filter(|c| c.key.kind == Kind::EcsService) {
            apply_one(aws, ex, c, observed).await?;
        }
        return Ok(None);
    }
    let wanted = desired(stack, ex.subject.env, observed, ex.subject.artifacts);
    let find = |kind: Kind, name: &str| wanted.iter().find(|d| d.key == Key::new(kind, name));
    let Some(Spec::EcsService(live)) = find(Kind::EcsService, &old_service).map(|d| &d.spec) else {
        return Err(failed(
            what,
            format!("the stack wants no service `{old_service}`"),
            REPLAN,
        ));
    };
    let new_tg = names.target_group(new);
    let d_new = Desired::from_spec(
        names.service(new),
        Spec::EcsService(EcsServiceSpec {
            target_group: new_tg.clone(),
            ..live.clone()
        }),
    );
    // The new colour's target group: created by the first rollout, kept afterwards (the desired state wants it
    // while it exists; destroy removes it).
    if observed.get(Kind::TargetGroup, &new_tg).is_none() {
        let Some(Spec::TargetGroup(tg)) =
            find(Kind::TargetGroup, &names.target_group(old)).map(|d| &d.spec)
        else {
            return Err(failed(
                what,
                "the serving colour's target group is not wanted",
                REPLAN,
            ));
        };
        let d_tg = Desired::from_spec(new_tg.clone(), Spec::TargetGroup(tg.clone()));
        let input = inputs::target_group(&d_tg, observed, ex.scope())?;
        (ex.progress)(format!(
            "    creating target group `{new_tg}` for the {new} colour…"
        ));
        let arn = aws::elb::create_target_group(aws, &input).await?;
        let mut r = applied(&d_tg, Some(ex.subject.owner), arn.clone(), "exists");
        r.outputs
            .insert("dimension".into(), aws::elb::tg_dimension(&arn));
        observed.resources.insert(d_tg.key.clone(), r);
    }
    let id = |kind: Kind, name: &str| {
        observed
            .id_of(kind, name)
            .map(str::to_string)
            .ok_or_else(|| {
                failed(
                    what,
                    format!("{} `{name}` does not exist", kind.label()),
                    REPLAN,
                )
            })
    };
    let listener_arn = id(Kind::Listener, &names.listener)?;
    let old_target_group_arn = id(Kind::TargetGroup, &names.target_group(old))?;
    let new_target_group_arn = id(Kind::TargetGroup, &new_tg)?;
    let old_service_arn = id(Kind::EcsService, &old_service)?;
    // Attached at weight 0 before its service starts: AWS starts a service only in a target group a load
    // balancer uses. All traffic stays on the serving colour.
    aws::elb::set_forwards(
        aws,
        &listener_arn,
        &[
            (old_target_group_arn.clone(), 100),
            (new_target_group_arn.clone(), 0),
        ],
    )
    .await?;
    let input = inputs::service(&d_new, observed, (service_name(ex), svc.port), ex.scope())?;
    let exists = observed.get(Kind::EcsService, &input.name).is_some();
    (ex.progress)(format!(
        "    starting {} on the {new} colour (service `{}`); {old} keeps serving",
        input.task_definition, input.name
    ));
    let new_service_arn = aws::ecs::put_service(aws, &input, exists).await?;
    // Started now: in a split, the colour started later is the new one. A keep time left from an earlier idle
    // spell no longer applies.
    aws::ecs::tag_service(
        aws,
        &new_service_arn,
        &[
            (STARTED_TAG.to_string(), unix_now().to_string()),
            (KEEP_UNTIL_TAG.to_string(), String::new()),
        ],
    )
    .await?;
    let state = service_steady(aws, ex, &input).await?;
    let mut r = applied(
        &d_new,
        Some(ex.subject.owner),
        new_service_arn.clone(),
        &state,
    );
    r.outputs
        .insert("desired".into(), input.desired_count.to_string());
    observed.resources.insert(d_new.key.clone(), r);
    let from = observed
        .get(Kind::EcsService, &old_service)
        .and_then(|o| o.attrs.get("task_definition"))
        .cloned();
    Ok(Some(Colours {
        service: svc.name.clone(),
        from,
        to: input.task_definition,
        old,
        new,
        old_service,
        new_service: input.name,
        old_service_arn,
        new_service_arn,
        old_target_group_arn,
        new_target_group_arn,
        listener_arn,
        keep_previous: stack.rollout.keep_previous.0,
    }))
}

/// The rollout a listener found splitting traffic belongs to (a deploy killed mid-way), so the next deploy can
/// finish it or roll it back: the new colour is the one started later. `None` when the listener does not split.
pub fn in_flight(ex: &Executor<'_>, observed: &Observed) -> Option<Colours> {
    let stack = ex.subject.stack;
    let names = ColourNames::new(stack, ex.subject.env)?;
    let Routing::Split(_) = names.routing(observed) else {
        return None;
    };
    let new = names.newer(observed);
    let old = new.other();
    let service = |c: Colour| observed.get(Kind::EcsService, &names.service(c));
    let tg = |c: Colour| observed.id_of(Kind::TargetGroup, &names.target_group(c));
    Some(Colours {
        service: names.service.clone(),
        from: service(old).and_then(|s| s.attrs.get("task_definition").cloned()),
        to: service(new)?.attrs.get("task_definition")?.clone(),
        old,
        new,
        old_service: names.service(old),
        new_service: names.service(new),
        old_service_arn: service(old)?.id.clone(),
        new_service_arn: service(new)?.id.clone(),
        old_target_group_arn: tg(old)?.to_string(),
        new_target_group_arn: tg(new)?.to_string(),
        listener_arn: observed.id_of(Kind::Listener, &names.listener)?.to_string(),
        keep_previous: stack.rollout.keep_previous.0,
    })
}

/// For a rollback to `revision`: when one colour serves everything and the idle colour still runs `revision` with
/// tasks (kept for `rollout.keep_previous`), the pair as a rollout from the idle colour (`old`) to the serving one
/// (`new`), so [`roll_back`] sends all traffic to the kept colour at once. `None` otherwise.
pub fn kept(ex: &Executor<'_>, observed: &Observed, revision: &str) -> Option<Colours> {
    let stack = ex.subject.stack;
    let names = ColourNames::new(stack, ex.subject.env)?;
    let Routing::All(new) = names.routing(observed) else {
        return None;
    };
    let old = new.other();
    let service = |c: Colour| observed.get(Kind::EcsService, &names.service(c));
    let idle = service(old)?;
    let runs = |attr: &str| idle.attrs.get(attr).map(String::as_str);
    if runs("task_definition") != Some(revision)
        || runs("desired_count").and_then(|n| n.parse::<u32>().ok()) == Some(0)
    {
        return None;
    }
    let tg = |c: Colour| observed.id_of(Kind::TargetGroup, &names.target_group(c));
    Some(Colours {
        service: names.service.clone(),
        from: Some(revision.to_string()),
        to: service(new)?.attrs.get("task_definition")?.clone(),
        old,
        new,
        old_service: names.service(old),
        new_service: names.service(new),
        old_service_arn: idle.id.clone(),
        new_service_arn: service(new)?.id.clone(),
        old_target_group_arn: tg(old)?.to_string(),
        new_target_group_arn: tg(new)?.to_string(),
        listener_arn: observed.id_of(Kind::Listener, &names.listener)?.to_string(),
        keep_previous: stack.rollout.keep_previous.0,
    })
}

/// Sets the weights (previous colour, new colour) and returns the percent on the new colour read back.
async fn shift(aws: &Aws, c: &Colours, weights: (u16, u16)) -> Result<u32, StepError> {
    aws::elb::set_forwards(
        aws,
        &c.listener_arn,
        &[
            (c.old_target_group_arn.clone(), weights.0),
            (c.new_target_group_arn.clone(), weights.1),
        ],
    )
    .await?;
    let back = aws::elb::listener_forwards(aws, &c.listener_arn).await?;
    percent_on(&back, &c.new_target_group_arn).ok_or_else(|| {
        failed(
            "read the listener's weights back",
            "the listener forwards to no target group with a weight above 0",
            "run `statsctl status`; `statsctl rollback --service` sends all traffic to the previous colour",
        )
    })
}

/// Puts `percent` of the listener's traffic on the new colour and returns the percent read back.
pub async fn set_percent(aws: &Aws, c: &Colours, percent: u32) -> Result<u32, StepError> {
    let weights = weights_for(percent).map_err(|e| {
        failed(
            &format!("shift service `{}` traffic", c.service),
            e,
            "a share of traffic is a whole percent from 0 to 100",
        )
    })?;
    shift(aws, c, weights).await
}

/// All traffic on the new colour, the previous one kept running for `keep_previous`.
pub async fn promote(aws: &Aws, ex: &Executor<'_>, c: &Colours) -> Result<(), StepError> {
    let got = set_percent(aws, c, 100).await?;
    if got != 100 {
        return Err(failed(
            &format!("promote the {} colour of `{}`", c.new, c.service),
            format!("the listener reads back {got}% on it, not 100%"),
            "run `statsctl status` to see the weights, then deploy again",
        ));
    }
    let until = unix_now().saturating_add(c.keep_previous.as_secs());
    aws::ecs::tag_service(
        aws,
        &c.old_service_arn,
        &[(KEEP_UNTIL_TAG.to_string(), until.to_string())],
    )
    .await?;
    (ex.progress)(format!(
        "    the {} colour (service `{}`{}) keeps its tasks for {} (rollout.keep_previous) so a rollback is \
         instant; the first plan or deploy after that scales it to 0",
        c.old,
        c.old_service,
        c.from
            .as_deref()
            .map(|f| format!(", {f}"))
            .unwrap_or_default(),
        Span(c.keep_previous)
    ));
    Ok(())
}

/// All traffic back on the previous colour at once; returns the percent on the new one read back (0 when it
/// took).
pub async fn roll_back(aws: &Aws, c: &Colours) -> Result<u32, StepError> {
    let got = shift(aws, c, (100, 0)).await?;
    // The colour rolled back from serves nothing now: due for scaling down at the next plan/deploy. Routing is
    // what a rollback must achieve, so a failed tag does not fail it: an untagged idle colour is only kept
    // running (plan never scales one down without the tag), and status shows it.
    let _ = aws::ecs::tag_service(
        aws,
        &c.new_service_arn,
        &[(KEEP_UNTIL_TAG.to_string(), unix_now().to_string())],
    )
    .await;
    Ok(got)
}

/// Alarms that could not be re-pointed: the change that failed (the first service alarm when live state could
/// not be read) and why, with a hint to run `statsctl deploy`. Traffic stays where it was moved.
#[derive(Debug)]
pub struct AlarmsNotRepointed {
    pub key: Key,
    pub error: StepError,
}

/// After traffic changed colour: reads live state again, takes from the fresh plan only the service alarms'
/// updates the colour change causes ([`statsctl_core::alarms::colour_alarm_updates`]; other pending changes stay
/// for the next deploy) and applies them as the executor does. Returns the changes made; none when the alarms
/// already watch the serving colour. A progress line names them.
pub async fn repoint_alarms(aws: &Aws, ex: &Executor<'_>) -> Result<Vec<Step>, AlarmsNotRepointed> {
    let stack = ex.subject.stack;
    let first = Key::new(
        Kind::Alarm,
        format!(
            "{}-{}-{}",
            stack.stack,
            ex.subject.env,
            statsctl_core::alarms::SERVICE_ALARM_IDS[0]
        ),
    );
    let (mut observed, plan, _) =
        ex.subject
            .observe_and_plan(aws)
            .await
            .map_err(|e| AlarmsNotRepointed {
                key: first.clone(),
                error: with_deploy_hint(e.into(), None),
            })?;
    let serving = ColourNames::new(stack, ex.subject.env).map(|n| n.serving(&observed));
    let updates = statsctl_core::alarms::colour_alarm_updates(&plan, stack);
    let mut done = Vec::new();
    for (_, change) in &updates {
        let started = Instant::now();
        apply_one(aws, ex, change, &mut observed)
            .await
            .map_err(|e| AlarmsNotRepointed {
                key: change.key.clone(),
                error: with_deploy_hint(e, serving),
            })?;
        done.push(Step {
            key: change.key.clone(),
            action: change.action,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    if let (Some(c), false) = (serving, updates.is_empty()) {
        let ids: Vec<&str> = updates.iter().map(|(id, _)| *id).collect();
        (ex.progress)(format!(
            "    alarms now watch the {c} colour: {}",
            ids.join(", ")
        ));
    }
    Ok(done)
}

/// The error's hint, then how to finish: `statsctl deploy` re-applies the alarms from the plan.
fn with_deploy_hint(e: StepError, serving: Option<Colour>) -> StepError {
    let StepError::Failed(mut e) = e else {
        return e;
    };
    let on = serving.map_or_else(String::new, |c| format!(" (the {c} colour)"));
    let ours = format!(
        "traffic stays where it is; the service's alarms may still watch the idle colour: run `statsctl deploy` \
         to point them at the serving one{on}"
    );
    e.hint = Some(match e.hint.take() {
        Some(h) => format!("{h}; {ours}"),
        None => ours,
    });
    StepError::Failed(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use statsctl_core::inventory::{ObservedResource, Owner};

    use crate::observe::Subject;

    /// Alarms left watching the idle colour say how to finish: `statsctl deploy`, after any hint of the cause.
    #[test]
    fn alarms_not_re_pointed_say_to_run_deploy() {
        let hint = |e: StepError| match e {
            StepError::Failed(e) => e.hint.unwrap_or_default(),
            StepError::Interrupted => "interrupted".into(),
        };
        let plain = with_deploy_hint(
            AwsError::new("put alarm", "boom").into(),
            Some(Colour::Green),
        );
        let plain = hint(plain);
        assert!(plain.starts_with("traffic stays where it is"), "{plain}");
        assert!(plain.contains("run `statsctl deploy`"), "{plain}");
        assert!(plain.ends_with("(the green colour)"), "{plain}");
        let caused = AwsError::new("put alarm", "denied").hint("grant cloudwatch:PutMetricAlarm");
        let caused = hint(with_deploy_hint(caused.into(), None));
        assert!(
            caused.starts_with("grant cloudwatch:PutMetricAlarm; traffic stays"),
            "{caused}"
        );
        assert!(caused.ends_with("the serving one"), "{caused}");
        assert!(matches!(
            with_deploy_hint(StepError::Interrupted, None),
            StepError::Interrupted
        ));
    }

    /// A rollout killed mid-way is found again from the listener's split: the colour started later is the new one.
    #[test]
    fn a_split_listener_is_the_rollout_in_flight() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let stack = statsctl_core::loader::load_file(&path, Some("local"), &|_: &str| None)
            .unwrap()
            .spec;
        let owner = Owner {
            stack: stack.stack.clone(),
            env: "local".into(),
        };
        let artifacts = BTreeMap::new();
        let stop = AtomicBool::new(false);
        let progress = |_: String| {};
        let ex = Executor {
            subject: Subject {
                stack: &stack,
                env: "local",
                owner: &owner,
                artifacts: &artifacts,
            },
            progress: &progress,
            stop: &stop,
        };
        let names = ColourNames::new(&stack, "local").unwrap();
        let world = |weights: &str, started: [(Colour, &str); 2]| {
            let mut o = Observed::default();
            let mut add = |kind, name: String, r: ObservedResource| {
                o.resources.insert(Key::new(kind, name), r);
            };
            for (c, at) in started {
                let mut s = ObservedResource {
                    id: format!("arn:svc:{c}"),
                    ..Default::default()
                };
                s.attrs
                    .insert("task_definition".into(), format!("fam:{}", c as u8 + 1));
                s.outputs.insert("started".into(), at.into());
                add(Kind::EcsService, names.service(c), s);
                let tg = ObservedResource {
                    id: format!("arn:tg:{c}"),
                    ..Default::default()
                };
                add(Kind::TargetGroup, names.target_group(c), tg);
            }
            let mut l = ObservedResource {
                id: "arn:listener".into(),
                ..Default::default()
            };
            l.outputs.insert("weights".into(), weights.into());
            add(Kind::Listener, names.listener.clone(), l);
            o
        };
        let (b, g) = (
            names.target_group(Colour::Blue),
            names.target_group(Colour::Green),
        );
        let split = format!("{b}=90,{g}=10");
        let cases = [
            (
                "green started later",
                &split,
                [(Colour::Blue, "100"), (Colour::Green, "200")],
                Some(Colour::Green),
            ),
            (
                "blue started later",
                &split,
                [(Colour::Blue, "300"), (Colour::Green, "200")],
                Some(Colour::Blue),
            ),
            (
                "blue never tagged",
                &split,
                [(Colour::Blue, ""), (Colour::Green, "200")],
                Some(Colour::Green),
            ),
            (
                "not split",
                &format!("{b}=0,{g}=100"),
                [(Colour::Blue, "1"), (Colour::Green, "2")],
                None,
            ),
        ];
        for (name, weights, started, want) in cases {
            let got = in_flight(&ex, &world(weights, started));
            assert_eq!(got.as_ref().map(|c| c.new), want, "{name}");
            if let Some(c) = got {
                assert_eq!(c.old, c.new.other(), "{name}");
                assert_eq!(
                    c.new_target_group_arn,
                    format!("arn:tg:{}", c.new),
                    "{name}"
                );
                assert_eq!(c.old_service_arn, format!("arn:svc:{}", c.old), "{name}");
                assert_eq!(c.listener_arn, "arn:listener", "{name}");
                assert_eq!(c.to, format!("fam:{}", c.new as u8 + 1), "{name}");
            }
        }
    }
}
