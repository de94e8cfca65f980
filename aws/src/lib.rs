//! AWS adapters: one file per service. Each observes into plain `ObservedResource`s (or small status structs
//! the executor polls) and puts or deletes resources from explicit typed inputs; none waits, prints, reads the
//! stack file or decides anything. Every request goes through a counting interceptor so commands can
//! report how many API calls they made, and one that names failed calls; every call is bounded by [`Timeouts`].

pub mod cloudwatch;
pub mod ec2;
pub mod ecs;
pub mod elb;
pub mod fault;
pub mod iam;
pub mod lambda;
pub mod ledger;
pub mod loadgen;
pub mod observe;
pub mod rds;
pub mod s3;
pub mod secrets;
pub mod trace;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use fault::{endpoint_of, fault_of, judge, Cause, NameCalls};
use statsctl_core::duration::Span;
use statsctl_core::inventory::Owner;

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
    pub timeouts: Timeouts,
}

/// How long statsctl waits for AWS. Without them an endpoint that accepts the connection and never answers (a
/// paused emulator, a blackholed address) hangs a command for ever, and a hung deploy keeps its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the connection.
    pub connect: Duration,
    /// One attempt: connecting, sending, and reading the answer.
    pub attempt: Duration,
    /// One call, every retry and back-off included: the longest any single AWS call can take.
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(10),
            call: Duration::from_secs(30),
        }
    }
}

/// A timeout setting that cannot be used, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutsError {
    pub message: String,
    pub hint: String,
}

impl Timeouts {
    /// The timeouts from what the user set (`None`: not set). Unset values follow set ones, so that a single
    /// `--aws-call-timeout 2s` bounds everything and `--aws-attempt-timeout 60s` alone is not cut short by the
    /// default call timeout; values the user set that contradict each other are an error.
    pub fn resolve(
        connect: Option<Span>,
        attempt: Option<Span>,
        call: Option<Span>,
    ) -> Result<Timeouts, TimeoutsError> {
        let d = Timeouts::default();
        let flags = [
            "--aws-connect-timeout",
            "--aws-attempt-timeout",
            "--aws-call-timeout",
        ];
        let set = [connect, attempt, call].map(|v| v.map(|s| s.0));
        for (flag, v) in flags.iter().zip(set) {
            if v.is_some_and(|v| v.is_zero()) {
                return Err(TimeoutsError {
                    message: format!("{flag} must be longer than 0s"),
                    hint: format!(
                        "give a duration such as `{flag} 30s`; the defaults are connect 3s, attempt 10s, call 30s"
                    ),
                });
            }
        }
        // Each timeout runs inside the next: connect ⊂ attempt ⊂ call.
        for (inner, outer) in [(0, 1), (1, 2), (0, 2)] {
            if let (Some(i), Some(o)) = (set[inner], set[outer]) {
                if i > o {
                    return Err(TimeoutsError {
                        message: format!(
                            "{} {} is longer than {} {}",
                            flags[inner],
                            Span(i),
                            flags[outer],
                            Span(o)
                        ),
                        hint: format!(
                            "{} runs inside {}: shorten the first or lengthen the second",
                            flags[inner], flags[outer]
                        ),
                    });
                }
            }
        }
        let [connect, attempt, call] = set;
        let call = call.unwrap_or_else(|| {
            d.call
                .max(attempt.unwrap_or_default())
                .max(connect.unwrap_or_default())
        });
        let attempt =
            attempt.unwrap_or_else(|| d.attempt.max(connect.unwrap_or_default()).min(call));
        let connect = connect.unwrap_or_else(|| d.connect.min(attempt));
        Ok(Timeouts {
            connect,
            attempt,
            call,
        })
    }
}

/// Checks an endpoint override before the SDK sees it: a malformed one would otherwise surface as a confusing
/// dispatch failure on the first call. The error never repeats user info (it may hold a password).
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let shown = match endpoint_of(url) {
        Some(clean) if url.contains('@') => format!("{clean}…"),
        _ if url.contains('@') => "(a URL with user info)".to_string(),
        _ => url.to_string(),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "`{shown}` is not a URL: it has no `http://` or `https://`"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "`{shown}` uses `{scheme}://`; only http:// and https:// reach AWS"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "`{shown}` holds user info (`user:password@`); AWS credentials come from the profile or environment, never the URL"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => return Err(format!("`{shown}` has an unclosed `[` in its host")),
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("`{shown}` has no host"));
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(format!("`{shown}` has no valid port after `:` (1–65535)"));
        }
    }
    Ok(())
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
        Aws::connect_traced(t, None).await
    }

    /// As [`Aws::connect`], handing every finished call to `trace` (`statsctl -v`).
    pub async fn connect_traced(t: &Target, trace: Option<trace::TraceSink>) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(t.region.clone()));
        if let Some(p) = &t.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &t.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(t.timeouts.connect)
                .operation_attempt_timeout(t.timeouts.attempt)
                .operation_timeout(t.timeouts.call)
                .build(),
        );
        let conf = loader.load().await;
        let calls = CallCounter::default();
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(&conf)
                        .interceptor(calls.clone())
                        .interceptor(NameCalls)
                        .interceptor(trace::TraceCalls(trace.clone()))
                        .build(),
                )
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .interceptor(calls.clone())
                .interceptor(NameCalls)
                .interceptor(trace::TraceCalls(trace.clone()))
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
    /// Why the call failed, when it was an SDK error (see [`fault::judge`]).
    pub cause: Option<Cause>,
}

impl AwsError {
    pub fn new(what: impl Into<String>, detail: impl Into<String>) -> AwsError {
        AwsError {
            what: what.into(),
            detail: detail.into(),
            code: None,
            hint: None,
            cause: None,
        }
    }
    /// A caller's hint explains what AWS answered; when no answer came (timeout, unreachable, no credentials…)
    /// or the answer is about the connection, the cause's own hint is the right one and is kept.
    pub fn hint(mut self, hint: impl Into<String>) -> AwsError {
        let keep = self.hint.is_some() && self.cause.is_some_and(Cause::is_about_the_connection);
        if !keep {
            self.hint = Some(hint.into());
        }
        self
    }
}

/// Wraps an SDK error with what was being attempted: one line naming the call, the HTTP status and AWS's code
/// and message (never the SDK's debug dump), and a hint for the cause.
pub fn fail<E>(what: impl Into<String>, e: SdkError<E, HttpResponse>) -> AwsError
where
    E: std::error::Error + aws_sdk_lambda::error::ProvideErrorMetadata + 'static,
{
    let f = fault_of(&e);
    let verdict = judge(&f);
    let what = what.into();
    // Callers often name the call already ("… (sts:GetCallerIdentity)"); say it once.
    let line = match &f.call {
        Some(call) if what.contains(call.as_str()) => {
            verdict.line.replacen(&format!("`{call}` "), "", 1)
        }
        _ => verdict.line,
    };
    AwsError {
        what,
        detail: line,
        code: f.code,
        hint: verdict.hint,
        cause: Some(verdict.cause),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_what_the_user_set() {
        let s = |secs: u64| Some(Span::secs(secs));
        let t = |connect: u64, attempt: u64, call: u64| Timeouts {
            connect: Duration::from_secs(connect),
            attempt: Duration::from_secs(attempt),
            call: Duration::from_secs(call),
        };
        let cases = [
            ("nothing set: the defaults", None, None, None, t(3, 10, 30)),
            ("a short call bounds the rest", None, None, s(2), t(2, 2, 2)),
            (
                "a call between connect and attempt",
                None,
                None,
                s(5),
                t(3, 5, 5),
            ),
            (
                "a long attempt lengthens the call",
                None,
                s(60),
                None,
                t(3, 60, 60),
            ),
            (
                "a long connect lengthens the attempt",
                s(20),
                None,
                None,
                t(20, 20, 30),
            ),
            (
                "a very long connect lengthens both",
                s(40),
                None,
                None,
                t(40, 40, 40),
            ),
            ("all set", s(1), s(4), s(9), t(1, 4, 9)),
            ("all equal", s(5), s(5), s(5), t(5, 5, 5)),
            ("connect and call set", s(4), None, s(5), t(4, 5, 5)),
        ];
        for (name, connect, attempt, call, want) in cases {
            assert_eq!(
                Timeouts::resolve(connect, attempt, call),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn contradictory_or_zero_timeouts_are_refused() {
        let s = |secs: u64| Some(Span::secs(secs));
        let cases = [
            (
                None,
                None,
                Some(Span::secs(0)),
                "--aws-call-timeout must be longer than 0s",
            ),
            (
                Some(Span::millis(0)),
                None,
                None,
                "--aws-connect-timeout must be longer than 0s",
            ),
            (
                None,
                s(20),
                s(10),
                "--aws-attempt-timeout 20s is longer than --aws-call-timeout 10s",
            ),
            (
                s(5),
                s(2),
                None,
                "--aws-connect-timeout 5s is longer than --aws-attempt-timeout 2s",
            ),
            (
                s(8),
                None,
                s(5),
                "--aws-connect-timeout 8s is longer than --aws-call-timeout 5s",
            ),
        ];
        for (connect, attempt, call, want) in cases {
            let e = Timeouts::resolve(connect, attempt, call).unwrap_err();
            assert_eq!(e.message, want);
            assert!(!e.hint.is_empty());
        }
    }

    mod sdk_errors {
        //! `fail` on errors built the way the SDK builds them: the edge that reads SDK types.
        use super::*;
        use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        type E = SdkError<GetCallerIdentityError, HttpResponse>;

        fn response(status: u16, body: &str) -> HttpResponse {
            HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body))
        }

        #[test]
        fn a_5xx_with_an_html_body_is_one_line_with_the_body_and_a_server_hint() {
            let parse_failed = GetCallerIdentityError::unhandled("failed to parse XML: <html>oops");
            let e: E = SdkError::service_error(
                parse_failed,
                response(502, "<html>\n<h1>Bad Gateway</h1>"),
            );
            let a = fail("identify the AWS account", e);
            assert_eq!(
                a.to_string(),
                "failed to identify the AWS account: answered HTTP 502 with no AWS error code: \"<html> <h1>Bad Gateway</h1>\""
            );
            assert_eq!(a.cause, Some(Cause::ServerError));
            assert!(a.hint.unwrap().contains("server's side"));
        }

        #[test]
        fn an_aws_error_shows_its_code_and_message() {
            let meta = ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform: sts:GetCallerIdentity")
                .build();
            let e: E = SdkError::service_error(
                GetCallerIdentityError::generic(meta),
                response(403, "<xml/>"),
            );
            let a = fail("identify the AWS account", e);
            assert_eq!(
                a.to_string(),
                "failed to identify the AWS account: answered HTTP 403 AccessDenied: not authorized to perform: sts:GetCallerIdentity"
            );
            assert_eq!(a.code.as_deref(), Some("AccessDenied"));
            assert_eq!(a.cause, Some(Cause::AccessDenied));
        }

        #[test]
        fn a_timeout_reports_its_duration_and_keeps_its_hint_over_the_callers() {
            let e: E = SdkError::timeout_error(
                "operation timeout (all attempts including retries) occurred after 2s",
            );
            let a =
                fail("list Lambda functions", e).hint("IAM can take a few seconds to propagate");
            assert_eq!(
                a.to_string(),
                "failed to list Lambda functions: timed out after 2s"
            );
            assert!(
                a.hint.unwrap().contains("--aws-call-timeout"),
                "the caller's hint is about an answer; none came"
            );
        }

        #[test]
        fn a_callers_hint_replaces_none_for_a_rejected_request() {
            let meta = ErrorMetadata::builder()
                .code("InvalidParameterValue")
                .build();
            let e: E =
                SdkError::service_error(GetCallerIdentityError::generic(meta), response(400, ""));
            let a = fail("create function `f`", e).hint("check the role");
            assert_eq!(a.hint.as_deref(), Some("check the role"));
            assert_eq!(AwsError::new("x", "y").hint("z").hint.as_deref(), Some("z"));
        }
    }

    #[test]
    fn endpoint_urls_are_checked_without_echoing_passwords() {
        for ok in [
            "http://127.0.0.1:4566",
            "https://lambda.us-east-1.amazonaws.com",
            "http://localhost:4566/",
            "HTTP://[::1]:4566",
            "https://vpce-1.lambda.us-east-1.vpce.amazonaws.com/path",
        ] {
            assert_eq!(check_endpoint_url(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("notaurl", "has no `http://`"),
            ("ftp://x", "uses `ftp://`"),
            ("http://", "has no host"),
            ("http://127.0.0.1:", "no valid port"),
            ("http://127.0.0.1:99999", "no valid port"),
            ("http://127.0.0.1:0", "no valid port"),
            ("http://[::1", "unclosed `[`"),
            ("http://me:s3cret@127.0.0.1:4566", "holds user info"),
        ];
        for (url, want) in cases {
            let e = check_endpoint_url(url).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("s3cret"), "{url}: {e}");
        }
    }
}
