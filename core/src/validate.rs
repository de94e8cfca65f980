//! Rules across fields that a schema cannot say: exactly-one-of choices, `via: proxy` without a proxy, limits
//! between settings, durations within AWS's ranges, names AWS will accept.

use std::time::Duration;

use crate::model::{DbAccess, EnvValue, StackFile, Strategy, Via};
use crate::sensitive::url_credentials;

/// A semantic problem: the dotted path of the field it concerns, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: Vec<String>,
    pub message: String,
    pub hint: String,
}

fn p(path: &[&str], message: impl Into<String>, hint: impl Into<String>) -> Problem {
    Problem {
        path: path.iter().map(|s| s.to_string()).collect(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// Every semantic problem in a stack (empty when it is valid).
pub fn validate(stack: &StackFile, env: &str) -> Vec<Problem> {
    let mut out = Vec::new();

    let name_ok = stack
        .stack
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && stack
            .stack
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && stack.stack.len() <= 32;
    if !name_ok {
        out.push(p(
            &["stack"],
            format!("stack name `{}` is not valid", stack.stack),
            "use 1–32 lowercase letters, digits and `-`, starting with a letter",
        ));
    }

    // `plan` refuses such an endpoint before connecting; validate says so first, and never echoes the password.
    if let Some(masked) = stack.aws.endpoint_url.as_deref().and_then(url_credentials) {
        out.push(p(
            &["aws", "endpoint_url"],
            format!("endpoint `{masked}` has credentials in it"),
            "remove `user:password@`: AWS credentials come from the profile or environment, never the endpoint URL",
        ));
    }

    match (&stack.network.existing, &stack.network.create) {
        (Some(_), Some(_)) => out.push(p(&["network"], "network has both `existing` and `create`", "keep exactly one of them")),
        (None, None) => out.push(p(&["network"], "network has neither `existing` nor `create`", "reference a VPC with `existing: {vpc_id, subnet_ids}` or add `create: {cidr, subnets}`")),
        _ => {}
    }
    if let Some(create) = &stack.network.create {
        if create.subnets.len() < 2 {
            out.push(p(
                &["network", "create", "subnets"],
                "Aurora and RDS Proxy need subnets in at least two availability zones",
                "add a second subnet in another availability zone",
            ));
        }
    }

    let db = &stack.database;
    match (&db.instance_class, &db.serverless) {
        (Some(_), Some(_)) => out.push(p(
            &["database"],
            "database has both `instance_class` and `serverless`",
            "keep exactly one: a provisioned class or a Serverless v2 ACU range",
        )),
        (None, None) => out.push(p(
            &["database"],
            "database has neither `instance_class` nor `serverless`",
            "add `instance_class: db.r6g.large` or `serverless: {min_acu: 0.5, max_acu: 16}`",
        )),
        _ => {}
    }
    if let Some(s) = &db.serverless {
        if s.min_acu > s.max_acu {
            out.push(p(
                &["database", "serverless", "min_acu"],
                format!("min_acu {} is above max_acu {}", s.min_acu, s.max_acu),
                "make min_acu ≤ max_acu",
            ));
        }
        for (field, v) in [("min_acu", s.min_acu), ("max_acu", s.max_acu)] {
            if (v * 2.0).fract() != 0.0 {
                out.push(p(
                    &["database", "serverless", field],
                    format!("{field} {v} is not a multiple of 0.5"),
                    "Aurora capacity moves in steps of 0.5 ACU",
                ));
            }
        }
    }
    if db.credentials_secret.trim().is_empty() {
        out.push(p(
            &["database", "credentials_secret"],
            "credentials_secret is empty",
            "name a Secrets Manager secret, e.g. `live-stats/db-master`",
        ));
    }

    if let Some(proxy) = &stack.proxy {
        if let Some(idle) = proxy.max_idle_connections_percent {
            if idle > proxy.max_connections_percent {
                out.push(p(
                    &["proxy", "max_idle_connections_percent"],
                    format!(
                        "max_idle_connections_percent {idle} is above max_connections_percent {}",
                        proxy.max_connections_percent
                    ),
                    "idle connections are a part of all connections: lower it",
                ));
            }
        }
        check_range(
            &mut out,
            &["proxy", "connection_borrow_timeout"],
            proxy.connection_borrow_timeout.0,
            Duration::ZERO,
            Duration::from_secs(300),
            "RDS Proxy accepts 0s–300s",
        );
        check_range(
            &mut out,
            &["proxy", "idle_client_timeout"],
            proxy.idle_client_timeout.0,
            Duration::from_secs(1),
            Duration::from_secs(28_800),
            "RDS Proxy accepts 1s–8h",
        );
    }

    let mut reserved_total: u64 = 0;
    for (name, f) in &stack.functions {
        let base = ["functions", name.as_str()];
        let fname = stack.function_name(env, name);
        if fname.len() > 64
            || !fname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            out.push(p(&base, format!("function name `{fname}` is not valid in Lambda"), "use letters, digits, `-` and `_`, 64 characters at most including the stack prefix"));
        }
        check_range(
            &mut out,
            &["functions", name, "timeout"],
            f.timeout.0,
            Duration::from_secs(1),
            Duration::from_secs(900),
            "Lambda timeouts are 1s–15m",
        );
        if let Some(rc) = f.reserved_concurrency {
            reserved_total += u64::from(rc);
        }
        if let Some(access) = &f.database {
            check_access(&mut out, stack, access, &["functions", name, "database"]);
        }
        check_environment(
            &mut out,
            &f.environment,
            f.database.as_ref().map(|d| d.host_env.as_str()),
            true,
            &["functions", name, "environment"],
        );
        if f.alias.is_empty() || f.alias.chars().all(|c| c.is_ascii_digit()) {
            out.push(p(
                &["functions", name, "alias"],
                format!("alias `{}` is not valid", f.alias),
                "an alias name must contain a letter, e.g. `live`",
            ));
        }
    }
    let limit = u64::from(stack.aws.lambda_concurrency_limit);
    let min_unreserved = u64::from(crate::facts::LAMBDA_MIN_UNRESERVED.value);
    if reserved_total > limit.saturating_sub(min_unreserved) {
        out.push(p(&["functions"], format!("reserved concurrency adds up to {reserved_total}, but the account allows at most {} reserved ({limit} limit − {min_unreserved} that must stay unreserved)", limit.saturating_sub(min_unreserved)), "lower reserved_concurrency, or raise aws.lambda_concurrency_limit if your quota is higher"));
    }

    if let Some(svc) = &stack.service {
        if svc.max_count < svc.desired_count {
            out.push(p(
                &["service", "max_count"],
                format!(
                    "max_count {} is below desired_count {}",
                    svc.max_count, svc.desired_count
                ),
                "max_count is the autoscaling ceiling: make it ≥ desired_count",
            ));
        }
        if !svc.health_check_path.starts_with('/') {
            out.push(p(
                &["service", "health_check_path"],
                "health_check_path must start with `/`",
                "e.g. `/healthz`",
            ));
        }
        if let Some(access) = &svc.database {
            check_access(&mut out, stack, access, &["service", "database"]);
        }
        check_environment(
            &mut out,
            &svc.environment,
            svc.database.as_ref().map(|d| d.host_env.as_str()),
            false,
            &["service", "environment"],
        );
    }

    let ev = &stack.event;
    if ev.poll_interval.0.is_zero() {
        out.push(p(
            &["event", "poll_interval"],
            "poll_interval must be above zero",
            "e.g. `15s`",
        ));
    }
    if ev.request_duration.0.is_zero() {
        out.push(p(
            &["event", "request_duration"],
            "request_duration must be above zero",
            "e.g. `120ms`",
        ));
    }

    let r = &stack.rollout;
    check_range(
        &mut out,
        &["rollout", "bake_time"],
        r.bake_time.0,
        Duration::ZERO,
        Duration::from_secs(86_400),
        "bake time is 0s–24h",
    );
    check_range(
        &mut out,
        &["rollout", "keep_previous"],
        r.keep_previous.0,
        Duration::ZERO,
        Duration::from_secs(7 * 86_400),
        "keep_previous is 0s–7d",
    );
    if r.strategy == Strategy::Linear && r.step_interval.0.is_zero() {
        out.push(p(
            &["rollout", "step_interval"],
            "step_interval must be above zero for linear rollouts",
            "e.g. `1m`",
        ));
    }

    // A watched alarm is one of the stack's own, by id (`5xx`) or by its full name in this environment.
    if !r.watch.is_empty() {
        let mut ids = crate::alarms::generated_ids(stack);
        ids.extend(stack.alarms.extra.keys().cloned());
        let prefix = format!("{}-{env}-", stack.stack);
        for (i, name) in r.watch.iter().enumerate() {
            let id = name.strip_prefix(&prefix).unwrap_or(name);
            if ids.iter().any(|k| k == id) {
                continue;
            }
            let hint = crate::diagnostics::closest(id, ids.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`? the stack's alarms: {}", ids.join(", ")))
                .unwrap_or_else(|| format!("the stack's alarms: {}", ids.join(", ")));
            let idx = i.to_string();
            out.push(p(
                &["rollout", "watch", idx.as_str()],
                format!("`{name}` is not one of the stack's alarms"),
                hint,
            ));
        }
    }

    if let Some(lt) = &stack.loadtest {
        // A test shorter than a second measures nothing; one longer than a day is a typo.
        check_range(
            &mut out,
            &["loadtest", "min_hold"],
            lt.min_hold.0,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
            "min_hold is 1s–24h, e.g. `5m`",
        );
        for (i, t) in lt.targets.iter().enumerate() {
            if let Some(masked) = url_credentials(t) {
                let idx = i.to_string();
                out.push(p(
                    &["loadtest", "targets", idx.as_str()],
                    format!("target `{masked}` has credentials in it"),
                    "remove `user:password@`: load-test targets take no credentials (they would be recorded in the ledger)",
                ));
                continue;
            }
            if !(t.starts_with("http://") || t.starts_with("https://")) {
                let idx = i.to_string();
                out.push(p(
                    &["loadtest", "targets", idx.as_str()],
                    format!("target `{t}` is not an http(s) URL"),
                    "e.g. `http://127.0.0.1:8080/matches/1/stats`",
                ));
            }
        }
        if let Some(stages) = &lt.stages {
            if let Err(e) = check_stages(stages) {
                out.push(p(&["loadtest", "stages"], e, "stages are `kind:viewers:duration,…`, e.g. `ramp:1500:60s,hold:1500:5m,spike:4500:1s,ramp:0:30s`"));
            }
        }
        if let Some(arrival) = &lt.arrival {
            if let Err(e) = check_arrival(arrival) {
                out.push(p(
                    &["loadtest", "arrival"],
                    e,
                    "`uniform`, or `waves:COUNT:SPREAD` such as `waves:1:100ms`",
                ));
            }
        }
        for key in lt.latency.keys() {
            if crate::percentile_key(key).is_none() {
                let hint = crate::diagnostics::closest(key, crate::PERCENTILE_KEYS.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("use one of {}", crate::PERCENTILE_KEYS.join(", ")));
                out.push(p(
                    &["loadtest", "latency", key.as_str()],
                    format!("unknown percentile `{key}`"),
                    hint,
                ));
            }
        }
    }

    for id in stack.alarms.overrides.keys() {
        let known = crate::alarms::generated_ids(stack);
        if !known.iter().any(|k| k == id) {
            let hint = crate::diagnostics::closest(id, known.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`?"))
                .unwrap_or_else(|| format!("generated alarm ids: {}", known.join(", ")));
            out.push(p(
                &["alarms", "overrides", id.as_str()],
                format!("no generated alarm has the id `{id}`"),
                hint,
            ));
        }
    }
    for id in stack.alarms.extra.keys() {
        if crate::alarms::generated_ids(stack).iter().any(|k| k == id) {
            out.push(p(
                &["alarms", "extra", id.as_str()],
                format!("alarm id `{id}` is already used by a generated alarm"),
                "pick another id, or change the generated one under `alarms.overrides`",
            ));
        }
    }
    out
}

fn check_access(out: &mut Vec<Problem>, stack: &StackFile, access: &DbAccess, path: &[&str]) {
    if access.via == Via::Proxy && stack.proxy.is_none() {
        let mut via_path = path.to_vec();
        via_path.push("via");
        out.push(p(
            &via_path,
            "`via: proxy`, but the stack has no proxy",
            "add a `proxy:` section (name, max_connections_percent, …) or use `via: direct`",
        ));
    }
    if access.host_env.is_empty()
        || !access
            .host_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        let mut env_path = path.to_vec();
        env_path.push("host_env");
        out.push(p(
            &env_path,
            format!(
                "`{}` is not a valid environment variable name",
                access.host_env
            ),
            "use letters, digits and `_`, e.g. `DB_HOST`",
        ));
    }
}

/// Environment variables: valid names, and no secret written as a plain value (the value is never repeated in
/// the message: the error would print it). A reference must not collide with what deploy sets itself: the
/// database host variable, and for a function (`lambda`) the `<NAME>_SECRET_ARN`/`_SECRET_KEY` it derives.
fn check_environment(
    out: &mut Vec<Problem>,
    vars: &std::collections::BTreeMap<String, EnvValue>,
    host_env: Option<&str>,
    lambda: bool,
    path: &[&str],
) {
    for (name, value) in vars {
        let mut at = path.to_vec();
        at.push(name.as_str());
        let name_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            out.push(p(
                &at,
                format!("`{name}` is not a valid environment variable name"),
                "use letters, digits and `_`, starting with a letter, e.g. `LOG_LEVEL`",
            ));
        }
        match value {
            EnvValue::Plain(v) => {
                let by_name = crate::sensitive::is_secret_key(name);
                if by_name || crate::sensitive::looks_like_secret_value(v) {
                    let why = if by_name {
                        format!("`{name}` names a secret")
                    } else {
                        format!("the value of `{name}` contains a secret (a password in a URL, or a private key)")
                    };
                    out.push(p(
                        &at,
                        format!("{why}, and secrets are never written in a stack file"),
                        format!("put it in Secrets Manager and reference it: `{name}: {{ secret: NAME_OR_ARN, key: JSON_KEY }}` (`key` optional: the whole secret); functions get `{name}_SECRET_ARN`, the service gets `{name}` from the secret"),
                    ));
                }
            }
            EnvValue::Secret(r) => {
                if host_env == Some(name.as_str()) {
                    out.push(p(
                        &at,
                        format!("`{name}` is the database host variable, which deploy sets itself"),
                        "reference the secret under another name, or change `database.host_env`",
                    ));
                }
                if lambda {
                    for derived in [format!("{name}_SECRET_ARN"), format!("{name}_SECRET_KEY")] {
                        if vars.contains_key(&derived) {
                            out.push(p(
                                &at,
                                format!("`{derived}` is set here, and deploy also derives it from the reference `{name}`"),
                                format!("remove `{derived}`: deploy sets it from `{name}: {{ secret: … }}`"),
                            ));
                        }
                    }
                }
                if r.secret.trim().is_empty() {
                    out.push(p(
                        &at,
                        format!("`{name}` references an empty secret name"),
                        "name a Secrets Manager secret or give its ARN, e.g. `{ secret: live-stats/api-token }`",
                    ));
                }
                if r.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
                    out.push(p(
                        &at,
                        format!("`{name}` has an empty `key`"),
                        "name the key inside the JSON secret (e.g. `password`), or leave `key` out for the whole secret",
                    ));
                }
            }
        }
    }
}

fn check_range(
    out: &mut Vec<Problem>,
    path: &[&str],
    v: Duration,
    min: Duration,
    max: Duration,
    hint: &str,
) {
    if v < min || v > max {
        let field = path.last().copied().unwrap_or("value");
        out.push(p(
            path,
            format!("`{field}` is {} — out of range", crate::duration::Span(v)),
            hint,
        ));
    }
}

/// One stage of a load test as written: `kind:viewers:duration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    /// `ramp`, `hold` or `spike` (a ramp, normally within a second).
    pub kind: &'static str,
    pub viewers: u64,
    pub duration: Duration,
}

/// `kind:viewers:duration,…`: the one parser of this syntax, for the stack file's `loadtest.stages` and
/// `statsctl loadtest --stages` alike.
pub fn parse_stages(text: &str) -> Result<Vec<StageSpec>, String> {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Err("no stages".into());
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let fields: Vec<&str> = part.split(':').collect();
        let [kind, viewers, duration] = fields[..] else {
            return Err(format!(
                "stage {}: `{part}` is not kind:viewers:duration",
                i + 1
            ));
        };
        let kind = match kind {
            "ramp" => "ramp",
            "hold" => "hold",
            "spike" => "spike",
            other => {
                return Err(format!(
                    "stage {}: unknown kind `{other}` (ramp, hold, spike)",
                    i + 1
                ))
            }
        };
        let viewers = viewers
            .parse::<u64>()
            .map_err(|_| format!("stage {}: `{viewers}` is not a number of viewers", i + 1))?;
        let duration = crate::duration::parse_span(duration)
            .map_err(|_| {
                format!(
                    "stage {}: `{duration}` is not a duration like 30s or 2m",
                    i + 1
                )
            })?
            .0;
        out.push(StageSpec {
            kind,
            viewers,
            duration,
        });
    }
    Ok(out)
}

pub fn check_stages(text: &str) -> Result<(), String> {
    parse_stages(text).map(drop)
}

/// `uniform` or `waves:COUNT:SPREAD`.
pub fn check_arrival(text: &str) -> Result<(), String> {
    parse_arrival(text).map(drop)
}

/// `uniform` → `None`; `waves:COUNT:SPREAD` → `Some((count, spread))`. The one parser of this syntax: the stack
/// file's `loadtest.arrival` and `statsctl loadtest --arrival` both go through it.
pub fn parse_arrival(text: &str) -> Result<Option<(u32, Duration)>, String> {
    if text == "uniform" {
        return Ok(None);
    }
    let fields: Vec<&str> = text.split(':').collect();
    match fields[..] {
        ["waves", count, spread] => {
            let count = match count.parse::<u32>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "arrival `{text}`: `{count}` is not a wave count ≥ 1"
                    ))
                }
            };
            let spread = crate::duration::parse_span(spread).map_err(|_| {
                format!("arrival `{text}`: `{spread}` is not a duration like 100ms")
            })?;
            Ok(Some((count, spread.0)))
        }
        _ => Err(format!(
            "arrival `{text}` is not `uniform` or `waves:COUNT:SPREAD`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_alarms_must_be_the_stacks_own() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut stack = crate::loader::load_str(&path, &text, Some("dev"), &|_: &str| None)
            .expect("the shipped stack loads")
            .spec;
        // (watch list, the entries refused, a word the hint must contain)
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&["db-connections", "target-5xx"], &[], ""),
            (&["live-stats-dev-db-connections"], &[], ""),
            (&["db-conections"], &["0"], "did you mean `db-connections`?"),
            (&["target-5xx", "nope"], &["1"], "db-connections"),
            // Another environment's full name is not this environment's alarm.
            (&["live-stats-prod-db-connections"], &["0"], "target-5xx"),
        ];
        for (watch, refused, hint) in cases {
            stack.rollout.watch = watch.iter().map(|w| w.to_string()).collect();
            let problems = validate(&stack, "dev");
            let got: Vec<&Problem> = problems
                .iter()
                .filter(|p| p.path.first().map(String::as_str) == Some("rollout"))
                .collect();
            let idx: Vec<&str> = got.iter().map(|p| p.path[2].as_str()).collect();
            assert_eq!(idx, *refused, "{watch:?}: {got:?}");
            for p in got {
                assert_eq!(p.path[1], "watch");
                assert!(p.message.contains("not one of the stack's alarms"), "{p:?}");
                assert!(p.hint.contains(hint), "{p:?}");
            }
        }
    }

    #[test]
    fn secrets_in_environment_values_are_refused() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
        let base = std::fs::read_to_string(&path).unwrap();
        for (line, refused) in [
            ("DB_PASSWORD: Hunter2", Some("DB_PASSWORD")),
            ("api_token: abc", Some("api_token")),
            ("STRIPE_API_KEY: sk_live_1", Some("STRIPE_API_KEY")),
            ("DATABASE_URL: postgres://u:pw@h/d", Some("DATABASE_URL")),
            (
                "DB_PASSWORD: { secret: live-stats/db-master, key: password }",
                None,
            ),
            (
                "API_TOKEN: { secret: arn:aws:secretsmanager:eu-west-1:1:secret:t }",
                None,
            ),
            ("DATABASE_URL: postgres://u@h/d", None),
            (
                "DB_PASSWORD_SECRET_ARN: arn:aws:secretsmanager:eu-west-1:1:secret:x",
                None,
            ),
            ("API_TOKEN: { secret: \"\" }", Some("API_TOKEN")),
            ("API_TOKEN: { secret: t, key: \"\" }", Some("API_TOKEN")),
            ("BAD-NAME: x", Some("BAD-NAME")),
            ("DB_HOST: { secret: h }", Some("DB_HOST")),
            (
                "API_TOKEN: { secret: t }\n      API_TOKEN_SECRET_ARN: arn:aws:secretsmanager:eu-west-1:1:secret:t",
                Some("API_TOKEN"),
            ),
        ] {
            let text = base.replacen(
                "      LOG_LEVEL: info",
                &format!("      LOG_LEVEL: info\n      {line}"),
                1,
            );
            let got = crate::loader::load_str(&path, &text, Some("local"), &|_: &str| None);
            match (refused, got) {
                (None, Ok(_)) => {}
                (Some(key), Err(d)) => {
                    let field = format!("functions.stats-api.environment.{key}");
                    assert!(
                        d.errors
                            .iter()
                            .any(|e| e.field.as_deref().is_some_and(|f| f.starts_with(&field))),
                        "{line}: {d}"
                    );
                    // The value is never repeated in messages or hints.
                    let shown = serde_json::to_string(&d.errors).unwrap() + &d.to_string();
                    for secret in ["Hunter2", "sk_live_1", ":pw@"] {
                        assert!(!shown.contains(secret), "{line}: {shown}");
                    }
                }
                (want, got) => panic!("{line}: wanted refused={want:?}, got {:?}", got.err()),
            }
        }
    }

    #[test]
    fn stage_lists_parse() {
        let st =
            parse_stages("ramp:100:10s, hold:100:1m,spike:300:1s,ramp:0:500ms,hold:1:1d").unwrap();
        assert_eq!(st.len(), 5);
        assert_eq!(
            st[1],
            StageSpec {
                kind: "hold",
                viewers: 100,
                duration: Duration::from_secs(60)
            }
        );
        assert_eq!(st[2].kind, "spike");
        assert_eq!(st[3].duration, Duration::from_millis(500));
        assert_eq!(st[4].duration, Duration::from_secs(86_400));
    }

    #[test]
    fn stages_and_arrival() {
        for ok in [
            "ramp:1500:60s,hold:1500:5m,spike:4500:1s,ramp:0:30s",
            " hold:10:1s ",
            "ramp:0:500ms,",
        ] {
            assert_eq!(check_stages(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("", "no stages"),
            ("ramp:10", "not kind:viewers:duration"),
            ("jump:1:1s", "unknown kind `jump`"),
            ("hold:many:1s", "`many` is not a number"),
            ("hold:1:soon", "`soon` is not a duration"),
        ] {
            let e = check_stages(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        for ok in ["uniform", "waves:1:100ms", "waves:3:0s"] {
            assert_eq!(check_arrival(ok), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("bursty", "is not `uniform`"),
            ("waves:0:1s", "`0` is not a wave count"),
            ("waves:2", "is not `uniform`"),
            ("waves:2:x", "`x` is not a duration"),
        ] {
            let e = check_arrival(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
