//! Rollback, the incident path: a function's alias or the service pointed back at a known version at once — no
//! steps, no bake — then read back. Which version to return to is decided elsewhere (`core::history`); this only
//! refuses a target that no longer exists and moves traffic (and, when traffic changes colour, the service's
//! alarms with it).

use statsctl_aws::{self as aws, Aws, AwsError};

use crate::apply::Executor;
use crate::wait::{self, wait_for, StepError, Watch};

/// A function's alias after a rollback, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRolledBack {
    /// The version serving before.
    pub from: String,
    /// The version serving now (read back): the target.
    pub to: String,
}

/// Points `function`'s `alias` at version `to` with no additional weights, at once, and reads it back. Refused
/// (nothing changed) when `to` no longer exists or the alias does not; an error when the read-back differs.
pub async fn function(
    aws: &Aws,
    function: &str,
    alias: &str,
    to: &str,
) -> Result<FunctionRolledBack, AwsError> {
    let what = format!("roll back `{function}`");
    let before = aws::lambda::get_alias(aws, function, alias)
        .await?
        .ok_or_else(|| {
            AwsError::new(&what, format!("the function has no alias `{alias}`"))
                .hint("deploy the stack first: there is nothing to roll back")
        })?;
    if !aws::lambda::version_exists(aws, function, to).await? {
        return Err(AwsError::new(
            &what,
            format!("version {to} of `{function}` no longer exists; nothing was changed"),
        )
        .hint("pick a version that exists (`statsctl history` lists what shipped) and pass it with --to"));
    }
    aws::lambda::put_alias(
        aws,
        &aws::lambda::AliasInput {
            function: function.to_string(),
            alias: alias.to_string(),
            version: to.to_string(),
            description: format!("statsctl previous={}", before.version),
            additional: None,
        },
        true,
    )
    .await?;
    let after = aws::lambda::get_alias(aws, function, alias)
        .await?
        .ok_or_else(|| AwsError::new(&what, format!("alias `{alias}` vanished")))?;
    if let Some(problem) = routing_problem(&after, to) {
        return Err(AwsError::new(&what, problem)
            .hint("read the alias (`statsctl status`) and run `statsctl rollback` again"));
    }
    Ok(FunctionRolledBack {
        from: before.version,
        to: after.version,
    })
}

/// Why an alias read back after a rollback to `to` is not all on `to`; `None` when it is. Pure.
pub fn routing_problem(read: &aws::lambda::AliasState, to: &str) -> Option<String> {
    if read.version != to {
        return Some(format!(
            "the alias reads back on version {}, not {to}",
            read.version
        ));
    }
    let weighted: Vec<String> = read
        .weights
        .iter()
        .filter(|(_, w)| *w > 0.0)
        .map(|(v, w)| format!("{:.0}% on version {v}", w * 100.0))
        .collect();
    (!weighted.is_empty()).then(|| {
        format!(
            "the alias still sends traffic elsewhere: {}",
            weighted.join(", ")
        )
    })
}

/// Points the stack's service at task definition revision `to_revision` (`family:N`) at once and, unless the
/// environment's `service.steady_state_timeout` is 0s, waits for it to be steady. Refused (nothing changed) when
/// the revision is no longer ACTIVE. Returns the revision read back.
pub async fn service(
    aws: &Aws,
    ex: &Executor<'_>,
    service: &str,
    to_revision: &str,
) -> Result<String, StepError> {
    let what = format!("roll back service `{service}`");
    let svc = ex
        .subject
        .stack
        .service
        .as_ref()
        .ok_or_else(|| AwsError::new(&what, "the stack has no service"))?;
    if !aws::ecs::task_definition_active(aws, to_revision).await? {
        return Err(AwsError::new(
            &what,
            format!("task definition {to_revision} is no longer registered (ACTIVE); nothing was changed"),
        )
        .hint("pick a revision that is still registered and pass it with --to")
        .into());
    }
    // The previous colour still running the target (kept for `rollout.keep_previous`): the listener sends all
    // traffic back to it at once — nothing to start, nothing to wait for.
    let (observed, _, _) = ex.subject.observe_and_plan(aws).await?;
    if let Some(c) = crate::colours::kept(ex, &observed, to_revision) {
        let on_new = crate::colours::roll_back(aws, &c).await?;
        if on_new != 0 {
            return Err(AwsError::new(
                &what,
                format!("the listener still sends {on_new}% to the {} colour", c.new),
            )
            .into());
        }
        (ex.progress)(format!(
            "    all traffic back on the {} colour (service `{}`, {to_revision}), which was kept running",
            c.old, c.old_service
        ));
        // The service's alarms follow the traffic. The rollback itself took: a failure here is said, with the
        // way to finish, and does not fail it (its history record must still be written).
        if let Err(e) = crate::colours::repoint_alarms(aws, ex).await {
            let (why, hint) = match e.error {
                StepError::Failed(e) => (e.to_string(), e.hint),
                StepError::Interrupted => ("interrupted".into(), None),
            };
            (ex.progress)(format!(
                "    warning: the service's alarms were not re-pointed to the {} colour ({}: {why})",
                c.old, e.key
            ));
            (ex.progress)(format!(
                "    hint: {}",
                hint.unwrap_or_else(
                    || "run `statsctl deploy` to point them at the serving colour".into()
                )
            ));
        }
        return Ok(to_revision.to_string());
    }
    // Otherwise the serving colour's service is pointed at the revision.
    let serving =
        statsctl_core::desired::service::live_service(ex.subject.stack, ex.subject.env, &observed)
            .map_or_else(|| service.to_string(), |(name, _)| name);
    let service = serving.as_str();
    let read = aws::ecs::set_task_definition(aws, &svc.cluster, service, to_revision).await?;
    if read != to_revision {
        return Err(AwsError::new(
            &what,
            format!("the service reads back on {read}, not {to_revision}"),
        )
        .into());
    }
    let timeout = svc.steady_state_timeout.0;
    if timeout.is_zero() {
        (ex.progress)(format!(
            "    not waiting for service `{service}` to be steady (service.steady_state_timeout is 0s)"
        ));
        return Ok(read);
    }
    let watch = Watch {
        progress: ex.progress,
        stop: ex.stop,
    };
    let cluster = &svc.cluster;
    wait_for(
        watch,
        &format!("service `{service}` to be steady on {to_revision}"),
        timeout,
        || async {
            Ok(aws::ecs::service_status(aws, cluster, service)
                .await?
                .filter(wait::service_steady)
                .map(|_| ()))
        },
    )
    .await?;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws::lambda::AliasState;

    #[test]
    fn a_rollback_took_only_when_everything_is_on_the_target() {
        let r = |version: &str, additional: &[(&str, f64)]| AliasState {
            version: version.into(),
            weights: additional
                .iter()
                .map(|(v, w)| (v.to_string(), *w))
                .collect(),
            description: String::new(),
        };
        let cases = [
            (r("7", &[]), None),
            // An emptied weight map, or a zero weight, sends nothing elsewhere.
            (r("7", &[("9", 0.0)]), None),
            (
                r("9", &[]),
                Some("the alias reads back on version 9, not 7"),
            ),
            (
                r("7", &[("9", 0.1)]),
                Some("the alias still sends traffic elsewhere: 10% on version 9"),
            ),
        ];
        for (read, want) in cases {
            assert_eq!(routing_problem(&read, "7").as_deref(), want, "{read:?}");
        }
    }
}
