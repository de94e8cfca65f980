//! AWS adapters: one file per service. Each observes into plain `ObservedResource`s and applies one planned
//! change; no decision logic lives here. Every request goes through a counting interceptor so commands can
//! report how many API calls they made.

pub mod cloudwatch;
pub mod ec2;
pub mod ecs;
pub mod elb;
pub mod iam;
pub mod lambda;
pub mod observe;
pub mod rds;
pub mod s3;
pub mod secrets;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::inventory::Owner;

/// Tag keys that mark what statsctl owns.
pub const TAG_STACK: &str = "statsctl:stack";
pub const TAG_ENV: &str = "statsctl:env";
/// The name statsctl knows a resource by, for services without unique names (EC2).
pub const TAG_NAME: &str = "statsctl:name";

/// Counts every request sent (retries included): the "API calls" figure in reports.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<AtomicUsize>);

impl CallCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "statsctl-call-counter"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Where and as whom to talk to AWS.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub region: String,
    pub profile: Option<String>,
    /// An endpoint override (the local emulator). The only difference between local and AWS.
    pub endpoint_url: Option<String>,
}

/// One client per service, sharing configuration and the call counter.
#[derive(Debug, Clone)]
pub struct Aws {
    pub region: String,
    pub calls: CallCounter,
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub rds: aws_sdk_rds::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
}

impl Aws {
    pub async fn connect(t: &Target) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(t.region.clone()));
        if let Some(p) = &t.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &t.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        let calls = CallCounter::default();
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(&conf)
                        .interceptor(calls.clone())
                        .build(),
                )
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .interceptor(calls.clone())
                .force_path_style(t.endpoint_url.is_some())
                .build(),
        );
        Aws {
            region: t.region.clone(),
            ec2: client!(aws_sdk_ec2),
            iam: client!(aws_sdk_iam),
            rds: client!(aws_sdk_rds),
            lambda: client!(aws_sdk_lambda),
            ecs: client!(aws_sdk_ecs),
            elb: client!(aws_sdk_elasticloadbalancingv2),
            cloudwatch: client!(aws_sdk_cloudwatch),
            secrets: client!(aws_sdk_secretsmanager),
            sts: client!(aws_sdk_sts),
            s3,
            calls,
        }
    }
}

/// A failed AWS call: what statsctl was doing, what AWS said, and how to fix it when known.
#[derive(Debug, thiserror::Error)]
#[error("failed to {what}: {detail}")]
pub struct AwsError {
    pub what: String,
    pub detail: String,
    pub code: Option<String>,
    pub hint: Option<String>,
}

impl AwsError {
    pub fn new(what: impl Into<String>, detail: impl Into<String>) -> AwsError {
        AwsError {
            what: what.into(),
            detail: detail.into(),
            code: None,
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> AwsError {
        self.hint = Some(hint.into());
        self
    }
}

/// Wraps an SDK error with what was being attempted, and a hint for the usual causes.
pub fn fail<E>(what: impl Into<String>, e: E) -> AwsError
where
    E: std::error::Error + aws_sdk_lambda::error::ProvideErrorMetadata + 'static,
{
    let code = e.code().map(str::to_string);
    let message = e.message().map(str::to_string);
    let detail = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => aws_sdk_lambda::error::DisplayErrorContext(&e).to_string(),
    };
    let hint = match code.as_deref() {
        Some("ExpiredToken" | "ExpiredTokenException" | "InvalidClientTokenId" | "UnrecognizedClientException" | "InvalidSignatureException") => {
            Some("AWS credentials are missing or expired: check AWS_PROFILE / --profile, or run `aws sso login`".to_string())
        }
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation") => Some("the credentials in use lack this permission".to_string()),
        Some("ThrottlingException" | "Throttling" | "TooManyRequestsException") => Some("AWS throttled the request; re-run in a minute".to_string()),
        None if detail.contains("dispatch failure") || detail.contains("connect") => {
            Some("AWS could not be reached: check the network or --endpoint-url (for the local emulator: `statsctl local up`)".to_string())
        }
        _ => None,
    };
    AwsError {
        what: what.into(),
        detail,
        code,
        hint,
    }
}

/// The error code of an SDK error, if AWS sent one.
pub fn code_of<E: aws_sdk_lambda::error::ProvideErrorMetadata>(e: &E) -> Option<&str> {
    e.code()
}

pub type AwsResult<T> = Result<T, AwsError>;

/// The owner recorded in a resource's tags.
pub fn owner_from<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Owner> {
    let mut stack = None;
    let mut env = None;
    for (k, v) in tags {
        match k {
            TAG_STACK => stack = Some(v.to_string()),
            TAG_ENV => env = Some(v.to_string()),
            _ => {}
        }
    }
    Some(Owner {
        stack: stack?,
        env: env?,
    })
}

/// The tags statsctl puts on what it creates: the stack's own tags plus ownership.
pub fn tags_for(
    owner: &Owner,
    stack_tags: &std::collections::BTreeMap<String, String>,
    name: &str,
) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = stack_tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    t.push((TAG_STACK.into(), owner.stack.clone()));
    t.push((TAG_ENV.into(), owner.env.clone()));
    t.push((TAG_NAME.into(), name.to_string()));
    t
}
