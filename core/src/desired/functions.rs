//! The functions family: each Lambda function (code, configuration, the database link) and the alias that
//! points at a version published from exactly that code and configuration.

use super::Ctx;
use crate::inventory::{Desired, Key, Kind};
use crate::spec::{AliasSpec, AliasVersion, FunctionSpec, Ref, Spec};

pub(super) fn desired(cx: &Ctx) -> Vec<Desired> {
    let (stack, n) = (cx.stack, &cx.n);
    let mut out = Vec::new();
    for (name, f) in &stack.functions {
        let fname = stack.function_name(cx.env, name);
        let (mut vars, secrets) = cx.split_environment(&f.environment);
        // Lambda has no secret variables: the code reads the secret at start from the ARN (and JSON key) given.
        for (k, arn, key) in secrets {
            vars.insert(format!("{k}_SECRET_ARN"), arn);
            if let Some(key) = key {
                vars.insert(format!("{k}_SECRET_KEY"), Ref::Known(key));
            }
        }
        if let Some(d) = &f.database {
            vars.insert(d.host_env.clone(), cx.db_host(d));
        }
        let function = Desired::from_spec(
            fname.clone(),
            Spec::Function(FunctionSpec {
                runtime: f.runtime.clone(),
                handler: f.handler.clone(),
                memory_mb: f.memory_mb,
                // Lambda's timeout is whole seconds, at least one.
                timeout_secs: f.timeout.as_secs().max(1),
                role: n.function_role(name),
                environment: vars,
                subnets: cx.subnets.clone(),
                security_groups: vec![n.sg("fn")],
                code_sha256: Ref::or_after_apply(cx.artifacts.get(name).map(|a| a.sha256.as_str())),
                reserved_concurrency: f.reserved_concurrency,
            }),
        );
        // The alias must point at a version published from exactly this code and configuration; any pending
        // change to the function (other than concurrency, which is not versioned) means a new version.
        let versioned_change = match cx.observed.get(Kind::Function, &fname) {
            None => true,
            Some(o) => function
                .attrs
                .iter()
                .any(|(k, v)| k != "reserved_concurrency" && o.attrs.get(k) != Some(v)),
        };
        let version = if versioned_change {
            AliasVersion::ToPublish
        } else {
            AliasVersion::Current
        };
        out.push(function);
        out.push(Desired::from_spec(
            Key::alias_name(&fname, &f.alias),
            Spec::Alias(AliasSpec::new(version)),
        ));
    }
    out
}
