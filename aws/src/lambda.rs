//! Lambda: functions (code, configuration, VPC placement, reserved concurrency) and the alias traffic goes
//! through, pointed at a version published from exactly the current code and configuration. The alias's
//! description remembers the version it pointed at before, which is what a rollback returns to.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Environment, FunctionCode, Runtime, VpcConfig,
};

use crate::{code_of, fail, owner_from, Aws, AwsResult};
use statsctl_core::inventory::{canonical_map, join_sorted, Key, Kind, ObservedResource};

pub const CURRENT: &str = "published from current code and configuration";

/// `previous=N` in an alias description.
pub fn previous_version(description: &str) -> Option<String> {
    description
        .split_whitespace()
        .find_map(|w| w.strip_prefix("previous="))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The managed attributes of a function configuration; `GetFunction` and `GetFunctionConfiguration` return
/// the same fields in different types.
macro_rules! config_attrs {
    ($c:expr) => {{
        let c = $c;
        let mut a = BTreeMap::new();
        a.insert(
            "runtime".to_string(),
            c.runtime()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        );
        a.insert(
            "handler".to_string(),
            c.handler().unwrap_or_default().to_string(),
        );
        a.insert(
            "memory_mb".to_string(),
            c.memory_size().unwrap_or_default().to_string(),
        );
        a.insert(
            "timeout".to_string(),
            c.timeout().unwrap_or_default().to_string(),
        );
        a.insert(
            "role".to_string(),
            c.role()
                .unwrap_or_default()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
        let vars: BTreeMap<String, String> = c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        a.insert("environment".to_string(), canonical_map(&vars));
        a.insert(
            "subnets".to_string(),
            join_sorted(
                c.vpc_config()
                    .map(|v| v.subnet_ids().to_vec())
                    .unwrap_or_default(),
            ),
        );
        a.insert(
            "security_groups".to_string(),
            join_sorted(
                c.vpc_config()
                    .map(|v| v.security_group_ids().to_vec())
                    .unwrap_or_default(),
            ),
        );
        a.insert(
            "code_sha256".to_string(),
            c.code_sha256().unwrap_or_default().to_string(),
        );
        a
    }};
}

/// The stack's functions (by name) and any other function this stack+environment owns (by name prefix), with
/// their aliases.
pub async fn observe(
    aws: &Aws,
    prefix: &str,
    wanted: &[(String, String)],
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    // Functions the stack no longer lists are found by prefix, so plan can delete them.
    let mut names: Vec<(String, Option<String>)> = wanted
        .iter()
        .map(|(f, a)| (f.clone(), Some(a.clone())))
        .collect();
    let mut pages = aws.lambda.list_functions().into_paginator().items().send();
    let want_prefix = format!("{prefix}-");
    while let Some(f) = pages.next().await {
        let f = f.map_err(|e| fail("list Lambda functions", e))?;
        if let Some(n) = f.function_name() {
            if n.starts_with(&want_prefix) && !names.iter().any(|(w, _)| w == n) {
                names.push((n.to_string(), None));
            }
        }
    }
    let lookups = names
        .into_iter()
        .map(|(name, alias)| async move { observe_one(aws, &name, alias.as_deref()).await });
    let mut out = Vec::new();
    for r in futures::future::join_all(lookups).await {
        out.extend(r?);
    }
    Ok(out)
}

async fn observe_one(
    aws: &Aws,
    name: &str,
    alias: Option<&str>,
) -> AwsResult<Vec<(Key, ObservedResource)>> {
    let f = match aws.lambda.get_function().function_name(name).send().await {
        Ok(f) => f,
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => return Ok(vec![]),
        Err(e) => return Err(fail(format!("get Lambda function `{name}`"), e)),
    };
    let Some(c) = f.configuration() else {
        return Ok(vec![]);
    };
    let tags = f
        .tags()
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let owner = owner_from(tags);
    let mut attrs: BTreeMap<String, String> = config_attrs!(c);
    attrs.insert(
        "reserved_concurrency".into(),
        f.concurrency()
            .and_then(|c| c.reserved_concurrent_executions())
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unreserved".into()),
    );
    let mut fr = ObservedResource {
        id: c.function_arn().unwrap_or_default().into(),
        attrs,
        owner: owner.clone(),
        state: c
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    fr.outputs.insert(
        "code_sha256".into(),
        c.code_sha256().unwrap_or_default().into(),
    );
    let mut out = vec![(Key::new(Kind::Function, name), fr.clone())];
    let Some(alias) = alias else { return Ok(out) };
    match aws
        .lambda
        .get_alias()
        .function_name(name)
        .name(alias)
        .send()
        .await
    {
        Ok(a) => {
            let version = a.function_version().unwrap_or_default().to_string();
            let published = aws
                .lambda
                .get_function_configuration()
                .function_name(name)
                .qualifier(&version)
                .send()
                .await
                .map_err(|e| fail(format!("get version {version} of `{name}`"), e))?;
            // A version is current when its code and configuration are what $LATEST has now.
            let mut published_attrs: BTreeMap<String, String> = config_attrs!(&published);
            published_attrs.insert(
                "reserved_concurrency".into(),
                fr.attrs["reserved_concurrency"].clone(),
            );
            let current = published_attrs == fr.attrs;
            let mut r = ObservedResource {
                id: a.alias_arn().unwrap_or_default().into(),
                owner: owner.clone(),
                state: format!("→ version {version}"),
                ..Default::default()
            };
            r.attrs.insert(
                "version".into(),
                if current {
                    CURRENT.to_string()
                } else {
                    format!("version {version} (older code or configuration)")
                },
            );
            r.outputs.insert("version".into(), version);
            if let Some(prev) = previous_version(a.description().unwrap_or_default()) {
                r.outputs.insert("previous".into(), prev);
            }
            // Extra version weights mean a rollout stopped part way: observed (plan and status say so), not a
            // managed attribute plan would diff and "fix" by moving all traffic blindly.
            if let Some(w) = a
                .routing_config()
                .and_then(|rc| rc.additional_version_weights())
                .filter(|w| !w.is_empty())
            {
                let mut pairs: Vec<String> = w.iter().map(|(v, x)| format!("{v}={x}")).collect();
                pairs.sort();
                r.outputs.insert("weights".into(), pairs.join(","));
            }
            out.push((Key::new(Kind::Alias, format!("{name}:{alias}")), r));
        }
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {}
        Err(e) => return Err(fail(format!("get alias `{alias}` of `{name}`"), e)),
    }
    Ok(out)
}

/// What `CreateFunction` and `UpdateFunctionConfiguration` set, built by the executor from the desired state.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionInput {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub role_arn: String,
    pub memory_mb: i32,
    pub timeout_s: i32,
    pub environment: BTreeMap<String, String>,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// Only used on creation: Lambda tags are not part of the configuration.
    pub tags: Vec<(String, String)>,
}

impl FunctionInput {
    fn vpc(&self) -> VpcConfig {
        VpcConfig::builder()
            .set_subnet_ids(Some(self.subnet_ids.clone()))
            .set_security_group_ids(Some(self.security_group_ids.clone()))
            .build()
    }
    fn environment(&self) -> Environment {
        Environment::builder()
            .set_variables(Some(self.environment.clone().into_iter().collect()))
            .build()
    }
}

/// Where a function is in its lifecycle, as `GetFunctionConfiguration` reports it; the executor decides
/// whether that is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionState {
    /// `Pending`, `Active`, `Failed`… (`Active` when Lambda omits it).
    pub state: String,
    /// `InProgress`, `Successful`, `Failed` (`Successful` when Lambda omits it).
    pub last_update: String,
    /// Why it failed, when Lambda says.
    pub reason: Option<String>,
}

pub async fn function_state(aws: &Aws, name: &str) -> AwsResult<FunctionState> {
    let c = aws
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(|e| fail(format!("get function `{name}`"), e))?;
    Ok(FunctionState {
        state: c
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Active".into()),
        last_update: c
            .last_update_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Successful".into()),
        reason: c
            .state_reason()
            .or(c.last_update_status_reason())
            .map(str::to_string),
    })
}

/// Creates the function and returns its ARN at once; it is usable when [`function_state`] says so.
pub async fn create_function(aws: &Aws, f: &FunctionInput, zip: Vec<u8>) -> AwsResult<String> {
    let name = &f.name;
    let r = aws
        .lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::from(f.runtime.as_str()))
        .handler(&f.handler)
        .role(&f.role_arn)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .memory_size(f.memory_mb)
        .timeout(f.timeout_s)
        .environment(f.environment())
        .vpc_config(f.vpc())
        .set_tags(Some(f.tags.iter().cloned().collect()))
        .send()
        .await
        .map_err(|e| {
            fail(format!("create function `{name}`"), e).hint(
                "a role was just created: IAM can take a few seconds to propagate; re-run deploy",
            )
        })?;
    Ok(r.function_arn().unwrap_or_default().to_string())
}

pub async fn update_code(aws: &Aws, name: &str, zip: Vec<u8>) -> AwsResult<()> {
    aws.lambda
        .update_function_code()
        .function_name(name)
        .zip_file(Blob::new(zip))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("update code of `{name}`"), e))
}

pub async fn update_configuration(aws: &Aws, f: &FunctionInput) -> AwsResult<()> {
    let name = &f.name;
    aws.lambda
        .update_function_configuration()
        .function_name(name)
        .runtime(Runtime::from(f.runtime.as_str()))
        .handler(&f.handler)
        .role(&f.role_arn)
        .memory_size(f.memory_mb)
        .timeout(f.timeout_s)
        .environment(f.environment())
        .vpc_config(f.vpc())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(format!("update configuration of `{name}`"), e))
}

/// Reserves `Some(n)` concurrent executions for the function, or removes its reservation (`None`).
pub async fn set_reserved_concurrency(aws: &Aws, name: &str, n: Option<i32>) -> AwsResult<()> {
    match n {
        Some(n) => aws
            .lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(n)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                fail(format!("set reserved concurrency of `{name}` to {n}"), e).hint(
                    "reserved concurrency must leave 100 unreserved executions in the account",
                )
            }),
        None => aws
            .lambda
            .delete_function_concurrency()
            .function_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("remove reserved concurrency of `{name}`"), e)),
    }
}

/// Publishes the function's current code and configuration as a new version; returns its number.
pub async fn publish_version(aws: &Aws, function: &str) -> AwsResult<String> {
    let published = aws
        .lambda
        .publish_version()
        .function_name(function)
        .send()
        .await
        .map_err(|e| fail(format!("publish a version of `{function}`"), e))?;
    Ok(published.version().unwrap_or_default().to_string())
}

/// An alias pointed at one version; the description carries `previous=N` (see [`previous_version`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AliasInput {
    pub function: String,
    pub alias: String,
    pub version: String,
    pub description: String,
    /// A second version and the share of traffic it gets (0 < weight < 1, checked by the caller), for a
    /// rollout's partial shift. `None` sends all traffic to `version` and clears any weights left from before.
    pub additional: Option<(String, f64)>,
}

/// The routing an alias input asks for: the weights map is empty when there is no second version, which is how
/// `UpdateAlias` is told to drop weights it had.
fn routing(a: &AliasInput) -> AliasRoutingConfiguration {
    let weights: HashMap<String, f64> = a.additional.iter().cloned().collect();
    AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(weights))
        .build()
}

/// Creates the alias (`exists == false`) or repoints it; returns its ARN.
pub async fn put_alias(aws: &Aws, a: &AliasInput, exists: bool) -> AwsResult<String> {
    let (function, alias, version) = (&a.function, &a.alias, &a.version);
    let arn = if exists {
        aws.lambda
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(version)
            .description(&a.description)
            .routing_config(routing(a))
            .send()
            .await
            .map_err(|e| {
                fail(
                    format!("point alias `{alias}` of `{function}` at version {version}"),
                    e,
                )
            })?
            .alias_arn()
            .unwrap_or_default()
            .to_string()
    } else {
        aws.lambda
            .create_alias()
            .function_name(function)
            .name(alias)
            .function_version(version)
            .description(&a.description)
            .set_routing_config(a.additional.is_some().then(|| routing(a)))
            .send()
            .await
            .map_err(|e| fail(format!("create alias `{alias}` of `{function}`"), e))?
            .alias_arn()
            .unwrap_or_default()
            .to_string()
    };
    Ok(arn)
}

/// An alias as read back: its primary version and any additional version weights (version, 0–1), sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    pub version: String,
    pub description: String,
    pub weights: Vec<(String, f64)>,
}

/// Reads an alias back; `None` when it does not exist.
pub async fn get_alias(aws: &Aws, function: &str, alias: &str) -> AwsResult<Option<AliasState>> {
    match aws
        .lambda
        .get_alias()
        .function_name(function)
        .name(alias)
        .send()
        .await
    {
        Ok(a) => {
            let mut weights: Vec<(String, f64)> = a
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default();
            weights.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Some(AliasState {
                version: a.function_version().unwrap_or_default().to_string(),
                description: a.description().unwrap_or_default().to_string(),
                weights,
            }))
        }
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(fail(format!("read alias `{alias}` of `{function}`"), e)),
    }
}

pub async fn delete(aws: &Aws, key: &Key) -> AwsResult<()> {
    match key.kind {
        Kind::Function => match aws
            .lambda
            .delete_function()
            .function_name(&key.name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(fail(format!("delete function `{}`", key.name), e)),
        },
        // Aliases go with their function.
        _ => Ok(()),
    }
}

/// The account's concurrency limit and its unreserved part, from `GetAccountSettings`.
pub async fn account_concurrency(aws: &Aws) -> AwsResult<(u32, u32)> {
    let s = aws
        .lambda
        .get_account_settings()
        .send()
        .await
        .map_err(|e| fail("read Lambda account settings", e))?;
    let limit = s
        .account_limit()
        .map(|l| {
            (
                l.concurrent_executions(),
                l.unreserved_concurrent_executions()
                    .unwrap_or(l.concurrent_executions()),
            )
        })
        .unwrap_or((1000, 1000));
    Ok((limit.0.max(0) as u32, limit.1.max(0) as u32))
}

/// Whether a published version of a function still exists.
pub async fn version_exists(aws: &Aws, function: &str, version: &str) -> AwsResult<bool> {
    match aws
        .lambda
        .get_function_configuration()
        .function_name(function)
        .qualifier(version)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(false),
        Err(e) => Err(fail(format!("get version {version} of `{function}`"), e)),
    }
}

/// The function's reserved concurrency (`GetFunctionConcurrency`): `None` when it has none (it shares the
/// account's unreserved pool).
pub async fn reserved_concurrency(aws: &Aws, name: &str) -> AwsResult<Option<i32>> {
    aws.lambda
        .get_function_concurrency()
        .function_name(name)
        .send()
        .await
        .map(|c| c.reserved_concurrent_executions())
        .map_err(|e| fail(format!("read reserved concurrency of `{name}`"), e))
}

/// The code SHA-256 (base64, as Lambda reports it) of one published version; `None` when it does not exist.
pub async fn version_code_sha256(
    aws: &Aws,
    function: &str,
    version: &str,
) -> AwsResult<Option<String>> {
    match aws
        .lambda
        .get_function_configuration()
        .function_name(function)
        .qualifier(version)
        .send()
        .await
    {
        Ok(c) => Ok(c.code_sha256().map(str::to_string)),
        Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(fail(format!("get version {version} of `{function}`"), e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn previous_version_from_description() {
        assert_eq!(
            super::previous_version("statsctl previous=7"),
            Some("7".into())
        );
        assert_eq!(super::previous_version("statsctl"), None);
        assert_eq!(super::previous_version("statsctl previous="), None);
    }
}
