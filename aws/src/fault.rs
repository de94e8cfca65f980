//! Why an AWS call failed, as one line and a hint that fits the cause. The SDK's error is read once, at the
//! edge, into a plain [`Fault`]; [`judge`] is a pure function from that to the line, the cause and the hint.
//!
//! The SDK's errors do not say which operation failed, and a call that never got an answer (a timeout, a refused
//! connection, no credentials) has no response to read it from. [`NameCalls`], an interceptor on every client,
//! attaches the call (`lambda:ListFunctions`), the endpoint and the attempt count: to the response when there
//! is one, otherwise by wrapping the error it ends with (keeping its kind, so the SDK's variant is unchanged).

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, Error as OperationError, FinalizerInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The longest excerpt of a response body or an error text that goes into the one line.
const EXCERPT_CHARS: usize = 120;

/// What went wrong with one AWS call, in plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    /// `service:Operation` as in IAM policies, e.g. `lambda:ListFunctions`, when known.
    pub call: Option<String>,
    /// `scheme://host:port` the request went to, when it got that far.
    pub endpoint: Option<String>,
    /// Requests sent, retries included.
    pub attempts: Option<u32>,
    pub stage: Stage,
    /// HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// AWS error code and message from the answer, if it had them.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The start of the answer's body, when it was not an AWS error (an HTML error page, plain text).
    pub body: Option<String>,
    /// The error texts from outermost to innermost (the innermost is the root cause, e.g. `Connection refused`).
    pub chain: Vec<String>,
}

/// How far the call got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stage {
    /// Failed before anything was sent (building the request, resolving credentials or the endpoint).
    NotSent,
    /// The operation or one attempt ran out of time.
    TimedOut,
    /// No connection within the connect timeout.
    ConnectTimedOut,
    /// The connection failed (refused, reset, DNS, TLS).
    Unreachable,
    /// Dispatch failed some other way (credential resolution happens here too).
    DispatchOther,
    /// An answer came that could not be read as an AWS response.
    Unreadable,
    /// AWS answered with an error.
    #[default]
    Answered,
}

/// The cause a hint is chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    NoCredentials,
    ExpiredCredentials,
    InvalidCredentials,
    Unreachable,
    TimedOut,
    Throttled,
    AccessDenied,
    ServerError,
    /// An answer that is not an AWS response: the endpoint is something else.
    NotAws,
    /// AWS refused this request for a reason of its own (validation, not found, conflict…): the caller knows
    /// best what to do, so no generic hint.
    Rejected,
    /// Anything else that stopped the request before it was sent.
    NotSent,
}

impl Cause {
    /// Causes about the connection or the credentials rather than this request: a caller's hint about what AWS
    /// answered (e.g. "IAM can take a few seconds to propagate") does not apply to them.
    pub fn is_about_the_connection(self) -> bool {
        !matches!(self, Cause::Rejected | Cause::NotSent)
    }
}

/// The one line (after "failed to <what>: "), the cause and the hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub cause: Cause,
    pub line: String,
    pub hint: Option<String>,
}

const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ProvisionedThroughputExceededException",
    "BandwidthLimitExceeded",
];
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthorizationError",
    "AuthorizationErrorException",
    "NotAuthorized",
    // S3 answers a HEAD request that it refuses with no body; the SDK names the status.
    "Forbidden",
];
const EXPIRED: &[&str] = &["ExpiredToken", "ExpiredTokenException", "RequestExpired"];
const INVALID_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAccessKeyId",
    "AuthFailure",
    "MissingAuthenticationToken",
];

/// Decides the line and the hint for a failed call. Pure: everything it needs is in `f`.
pub fn judge(f: &Fault) -> Verdict {
    let call = f
        .call
        .as_deref()
        .map(|c| format!("`{c}` "))
        .unwrap_or_default();
    let endpoint = f.endpoint.as_deref();
    let innermost = f.chain.last().map(|s| excerpt(s)).unwrap_or_default();
    let mentions_credentials = f
        .chain
        .iter()
        .any(|s| s.to_ascii_lowercase().contains("credential"));
    let code = f.code.as_deref();
    let is = |list: &[&str]| code.is_some_and(|c| list.contains(&c));
    let cause = match f.stage {
        Stage::NotSent | Stage::DispatchOther if mentions_credentials => Cause::NoCredentials,
        Stage::NotSent => Cause::NotSent,
        Stage::TimedOut => Cause::TimedOut,
        Stage::ConnectTimedOut | Stage::Unreachable | Stage::DispatchOther => Cause::Unreachable,
        Stage::Unreadable => Cause::NotAws,
        Stage::Answered if is(EXPIRED) => Cause::ExpiredCredentials,
        Stage::Answered if is(INVALID_CREDENTIALS) => Cause::InvalidCredentials,
        Stage::Answered if is(THROTTLED) || f.status == Some(429) => Cause::Throttled,
        Stage::Answered if is(DENIED) || (code.is_none() && f.status == Some(403)) => {
            Cause::AccessDenied
        }
        Stage::Answered if f.status.is_some_and(|s| s >= 500) => Cause::ServerError,
        Stage::Answered if code.is_none() => Cause::NotAws,
        Stage::Answered => Cause::Rejected,
    };
    let status = f
        .status
        .map(|s| format!("HTTP {s}"))
        .unwrap_or_else(|| "an error".to_string());
    let attempts = match f.attempts {
        Some(n) if n > 1 => format!(" ({n} attempts)"),
        _ => String::new(),
    };
    let line = match (cause, f.stage) {
        (Cause::NoCredentials, _) => match credential_failures(&f.chain) {
            Some(why) => format!("{call}was not sent: no AWS credentials found ({why})"),
            None => format!("{call}was not sent: no AWS credentials found"),
        },
        (_, Stage::TimedOut) => match timeout_after(&f.chain) {
            Some(after) => format!("{call}timed out after {after}{attempts}"),
            None => format!("{call}timed out{attempts}"),
        },
        (_, Stage::ConnectTimedOut) => match timeout_after(&f.chain) {
            Some(after) => format!(
                "{call}could not connect to {} within {after}",
                endpoint.unwrap_or("the endpoint")
            ),
            None => format!(
                "{call}could not connect to {}",
                endpoint.unwrap_or("the endpoint")
            ),
        },
        (_, Stage::Unreachable | Stage::DispatchOther) => format!(
            "{call}could not reach {}: {innermost}",
            endpoint.unwrap_or("the endpoint")
        ),
        (_, Stage::NotSent) => format!("{call}was not sent: {innermost}"),
        // A success status whose body is not the operation's answer: the SDK reports it as an error without a
        // code, but nothing "answered with an error".
        (_, Stage::Answered) if code.is_none() && f.status.is_some_and(|s| s < 400) => {
            let body = f
                .body
                .as_deref()
                .map(|b| format!(": {}", quoted(b)))
                .unwrap_or_default();
            format!("{call}got {status} that is not an AWS response{body}")
        }
        (_, Stage::Unreadable) => {
            let body = f
                .body
                .as_deref()
                .map(|b| format!(": {}", quoted(b)))
                .unwrap_or_default();
            format!("{call}got {status} that is not an AWS response ({innermost}){body}")
        }
        (_, Stage::Answered) => {
            let said = match (code, f.message.as_deref()) {
                (Some(c), Some(m)) if !m.is_empty() => format!("{c}: {}", excerpt(m)),
                (Some(c), _) => c.to_string(),
                (None, Some(m)) if !m.is_empty() => excerpt(m),
                (None, _) => match f.body.as_deref() {
                    Some(b) if !b.trim().is_empty() => {
                        format!("with no AWS error code: {}", quoted(b))
                    }
                    _ => "with no AWS error code and an empty body".to_string(),
                },
            };
            format!("{call}answered {status} {said}{attempts}")
        }
    };
    let action = f.call.as_deref().unwrap_or("this call");
    let hint = match cause {
        Cause::NoCredentials => Some(
            "set AWS_PROFILE (or --profile) to a profile with credentials, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY; for an SSO profile run `aws sso login`. Nothing was sent"
                .to_string(),
        ),
        Cause::ExpiredCredentials => Some(
            "the AWS credentials have expired: refresh them (`aws sso login`, or new temporary keys) and re-run"
                .to_string(),
        ),
        Cause::InvalidCredentials => Some(
            "AWS does not accept these credentials (wrong key, secret or session token): check AWS_PROFILE / \
             --profile and AWS_ACCESS_KEY_ID"
                .to_string(),
        ),
        Cause::Unreachable => Some(format!(
            "nothing answered at {}: for the local emulator run `statsctl local up`; otherwise check \
             --endpoint-url (AWS_ENDPOINT_URL, the stack's aws.endpoint_url) and the network",
            endpoint.unwrap_or("the AWS endpoint")
        )),
        Cause::TimedOut => Some(format!(
            "{} accepted the request but did not answer in time (a paused emulator, an overloaded or \
             blackholed endpoint): check it is healthy and re-run, or allow more with --aws-call-timeout / \
             --aws-attempt-timeout",
            endpoint.unwrap_or("the endpoint")
        )),
        Cause::Throttled => Some(match f.attempts {
            Some(n) if n > 1 => format!(
                "AWS throttled the request and {} retries did not get through: re-run in a minute, or run \
                 fewer commands against this account at once",
                n - 1
            ),
            _ => "AWS throttled the request: re-run in a minute, or run fewer commands against this account \
                  at once"
                .to_string(),
        }),
        Cause::AccessDenied => Some(format!(
            "the credentials in use lack permission for `{action}` (AWS's message names the action and \
             resource): grant it to the role or user, or use a --profile that has it"
        )),
        Cause::ServerError => Some(format!(
            "{status} is a failure on the server's side (AWS, or the local emulator): re-run; if it persists, \
             check the AWS Health Dashboard or the emulator's log"
        )),
        Cause::NotAws => Some(format!(
            "{} did not answer like AWS: check that --endpoint-url (AWS_ENDPOINT_URL, the stack's \
             aws.endpoint_url) points at AWS or the local emulator",
            endpoint.unwrap_or("the endpoint")
        )),
        Cause::Rejected | Cause::NotSent => None,
    };
    Verdict { cause, line, hint }
}

/// What the credential providers that were configured said: the SDK lists every provider in its chain, one a
/// line, and those that were simply not set up ("not enabled") say nothing the hint does not.
fn credential_failures(chain: &[String]) -> Option<String> {
    let innermost = chain.last()?;
    let said: Vec<&str> = innermost
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("not enabled") && !l.ends_with("Attempted:"))
        .collect();
    (!said.is_empty()).then(|| excerpt(&said.join("; ")))
}

/// The duration an SDK or HTTP-client timeout reports ("… timeout occurred after 10s").
fn timeout_after(chain: &[String]) -> Option<String> {
    chain.iter().rev().find_map(|s| {
        let (_, after) = s.split_once("occurred after ")?;
        let after = after.split_whitespace().next()?;
        (!after.is_empty()).then(|| after.to_string())
    })
}

/// One line, at most `EXCERPT_CHARS` characters, control characters escaped: safe to print whatever a peer
/// sent.
pub fn excerpt(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for (i, c) in flat.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", excerpt(text).replace('"', "\\\""))
}

/// `scheme://host:port` of a request URI, without user info, path or query (a presigned query holds a
/// signature; user info a password).
pub fn endpoint_of(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!scheme.is_empty() && !host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// The IAM prefix of an SDK service name: `Elastic Load Balancing v2` → `elasticloadbalancing`.
pub fn iam_prefix(service: &str) -> String {
    let squashed: String = service
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match squashed.as_str() {
        "elasticloadbalancingv2" => "elasticloadbalancing".to_string(),
        "cloudwatchlogs" => "logs".to_string(),
        _ => squashed,
    }
}

/// What [`NameCalls`] attaches to a failed call.
#[derive(Debug, Clone, Default)]
pub struct CallTag {
    pub call: Option<String>,
    pub endpoint: Option<String>,
    pub attempts: Option<u32>,
}

/// The endpoint of the last request sent, kept for the error: the request itself is gone by then.
#[derive(Debug, Clone)]
struct SentTo(String);

impl Storable for SentTo {
    type Storer = StoreReplace<Self>;
}

/// An error that never got a response, with the call it ended.
#[derive(Debug)]
struct Tagged {
    tag: CallTag,
    source: OrchestratorError<OperationError>,
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag.call.as_deref().unwrap_or("AWS call"))
    }
}

impl StdError for Tagged {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Names every failed call: see the module comment.
#[derive(Debug, Clone, Default)]
pub struct NameCalls;

impl Intercept for NameCalls {
    fn name(&self) -> &'static str {
        "statsctl-name-calls"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(e) = endpoint_of(ctx.request().uri()) {
            cfg.interceptor_state().store_put(SentTo(e));
        }
        Ok(())
    }

    fn modify_before_completion(
        &self,
        ctx: &mut FinalizerInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !matches!(ctx.output_or_error(), Some(Err(_))) {
            return Ok(());
        }
        let tag = CallTag {
            call: cfg
                .load::<Metadata>()
                .map(|m| format!("{}:{}", iam_prefix(m.service()), m.name())),
            endpoint: cfg.load::<SentTo>().map(|s| s.0.clone()),
            attempts: cfg.load::<RequestAttempts>().map(|a| a.attempts()),
        };
        let has_response = match ctx.response_mut() {
            Some(r) => {
                r.add_extension(tag.clone());
                true
            }
            None => false,
        };
        if let Some(Err(err)) = ctx.output_or_error_mut() {
            // Errors with a response are read from it; a timeout or a connection failure never has one (or
            // it is not part of the error), so the name travels inside the error.
            if !has_response || err.is_timeout_error() || err.is_connector_error() {
                let original = std::mem::replace(err, OrchestratorError::other("renamed"));
                *err = wrap(original, tag);
            }
        }
        Ok(())
    }
}

/// The same kind of error, with `tag` in its chain: the SDK turns it into the same `SdkError` variant.
fn wrap(
    original: OrchestratorError<OperationError>,
    tag: CallTag,
) -> OrchestratorError<OperationError> {
    let timeout = original.is_timeout_error();
    let connector = original
        .as_connector_error()
        .map(|c| (c.is_io(), c.is_timeout(), c.is_user(), c.as_other()));
    let tagged: BoxError = Box::new(Tagged {
        tag,
        source: original,
    });
    match connector {
        _ if timeout => OrchestratorError::timeout(tagged),
        Some((true, _, _, _)) => OrchestratorError::connector(ConnectorError::io(tagged)),
        Some((_, true, _, _)) => OrchestratorError::connector(ConnectorError::timeout(tagged)),
        Some((_, _, true, _)) => OrchestratorError::connector(ConnectorError::user(tagged)),
        Some((_, _, _, kind)) => OrchestratorError::connector(ConnectorError::other(tagged, kind)),
        None => OrchestratorError::other(tagged),
    }
}

/// Reads an SDK error into a [`Fault`]: the only place that looks inside the SDK's error types.
pub fn fault_of<E>(e: &SdkError<E, HttpResponse>) -> Fault
where
    E: StdError + ProvideErrorMetadata + 'static,
{
    let mut chain = Vec::new();
    let mut tag = None;
    let mut next: Option<&(dyn StdError + 'static)> = StdError::source(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<Tagged>() {
            tag = Some(t.tag.clone());
        } else {
            let text = err.to_string();
            // The SDK's wrappers say only what kind of error follows ("io error", "timeout"): noise here.
            if !matches!(
                text.as_str(),
                "connector error"
                    | "io error"
                    | "timeout"
                    | "other"
                    | "user error"
                    | "unhandled error"
                    | "service error"
                    | "response error"
                    | "dispatch failure"
                    | "an unknown error occurred"
            ) {
                chain.push(text);
            }
        }
        next = err.source();
    }
    let raw = e.raw_response();
    if let Some(t) = raw.and_then(|r| r.extension::<CallTag>()) {
        tag = Some(t.clone());
    }
    let stage = match e {
        SdkError::ConstructionFailure(_) => Stage::NotSent,
        SdkError::TimeoutError(_) => Stage::TimedOut,
        SdkError::DispatchFailure(d) if d.is_timeout() => Stage::ConnectTimedOut,
        SdkError::DispatchFailure(d) if d.is_io() => Stage::Unreachable,
        SdkError::DispatchFailure(d) if d.is_user() => Stage::NotSent,
        SdkError::DispatchFailure(_) => Stage::DispatchOther,
        SdkError::ResponseError(_) => Stage::Unreadable,
        _ => Stage::Answered,
    };
    let code = e.code().map(str::to_string);
    let body = match (&stage, &code) {
        (Stage::Answered, Some(_)) => None,
        _ => raw
            .and_then(|r| r.body().bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned()),
    };
    let tag = tag.unwrap_or_default();
    Fault {
        call: tag.call,
        endpoint: tag.endpoint,
        attempts: tag.attempts,
        stage,
        status: raw.map(|r| r.status().as_u16()),
        code,
        message: e.message().map(str::to_string),
        body,
        chain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(stage: Stage) -> Fault {
        Fault {
            call: Some("lambda:ListFunctions".into()),
            endpoint: Some("http://127.0.0.1:4566".into()),
            attempts: Some(1),
            stage,
            ..Default::default()
        }
    }

    #[test]
    fn each_cause_gets_its_line_and_hint() {
        struct Case {
            name: &'static str,
            fault: Fault,
            cause: Cause,
            line: &'static str,
            hint: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "operation timeout",
                fault: Fault {
                    chain: vec![
                        "operation timeout (all attempts including retries) occurred after 10s".into(),
                    ],
                    ..fault(Stage::TimedOut)
                },
                cause: Cause::TimedOut,
                line: "`lambda:ListFunctions` timed out after 10s",
                hint: Some("--aws-call-timeout"),
            },
            Case {
                name: "attempt timeout after retries",
                fault: Fault {
                    attempts: Some(3),
                    chain: vec!["operation attempt timeout (single attempt) occurred after 2.5s".into()],
                    ..fault(Stage::TimedOut)
                },
                cause: Cause::TimedOut,
                line: "`lambda:ListFunctions` timed out after 2.5s (3 attempts)",
                hint: Some("did not answer in time"),
            },
            Case {
                name: "timeout without a duration",
                fault: fault(Stage::TimedOut),
                cause: Cause::TimedOut,
                line: "`lambda:ListFunctions` timed out",
                hint: Some("http://127.0.0.1:4566 accepted"),
            },
            Case {
                name: "connect timeout",
                fault: Fault {
                    chain: vec![
                        "client error (Connect)".into(),
                        "HTTP connect timeout occurred after 3s".into(),
                    ],
                    ..fault(Stage::ConnectTimedOut)
                },
                cause: Cause::Unreachable,
                line: "`lambda:ListFunctions` could not connect to http://127.0.0.1:4566 within 3s",
                hint: Some("statsctl local up"),
            },
            Case {
                name: "connection refused",
                fault: Fault {
                    chain: vec![
                        "client error (Connect)".into(),
                        "tcp connect error".into(),
                        "Connection refused (os error 111)".into(),
                    ],
                    ..fault(Stage::Unreachable)
                },
                cause: Cause::Unreachable,
                line: "`lambda:ListFunctions` could not reach http://127.0.0.1:4566: Connection refused (os error 111)",
                hint: Some("nothing answered at http://127.0.0.1:4566"),
            },
            Case {
                name: "no credentials (resolved while dispatching)",
                fault: Fault {
                    endpoint: None,
                    chain: vec![
                        "failed to resolve identity".into(),
                        "the credential provider was not enabled".into(),
                    ],
                    ..fault(Stage::DispatchOther)
                },
                cause: Cause::NoCredentials,
                line: "`lambda:ListFunctions` was not sent: no AWS credentials found",
                hint: Some("AWS_ACCESS_KEY_ID"),
            },
            Case {
                name: "no credentials (at construction)",
                fault: Fault {
                    chain: vec!["no providers in chain provided credentials".into()],
                    ..fault(Stage::NotSent)
                },
                cause: Cause::NoCredentials,
                line: "`lambda:ListFunctions` was not sent: no AWS credentials found (no providers in chain provided credentials)",
                hint: Some("AWS_PROFILE"),
            },
            Case {
                name: "other construction failure",
                fault: Fault {
                    chain: vec!["invalid header value".into()],
                    ..fault(Stage::NotSent)
                },
                cause: Cause::NotSent,
                line: "`lambda:ListFunctions` was not sent: invalid header value",
                hint: None,
            },
            Case {
                name: "throttled by code, after retries",
                fault: Fault {
                    status: Some(400),
                    code: Some("ThrottlingException".into()),
                    message: Some("Rate exceeded".into()),
                    attempts: Some(3),
                    ..fault(Stage::Answered)
                },
                cause: Cause::Throttled,
                line: "`lambda:ListFunctions` answered HTTP 400 ThrottlingException: Rate exceeded (3 attempts)",
                hint: Some("2 retries did not get through"),
            },
            Case {
                name: "throttled by status only",
                fault: Fault {
                    status: Some(429),
                    body: Some("slow down".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::Throttled,
                line: "`lambda:ListFunctions` answered HTTP 429 with no AWS error code: \"slow down\"",
                hint: Some("re-run in a minute"),
            },
            Case {
                name: "access denied",
                fault: Fault {
                    status: Some(403),
                    code: Some("AccessDenied".into()),
                    message: Some("User: arn:aws:iam::1:user/ci is not authorized to perform: lambda:ListFunctions".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::AccessDenied,
                line: "`lambda:ListFunctions` answered HTTP 403 AccessDenied: User: arn:aws:iam::1:user/ci is not authorized to perform: lambda:ListFunctions",
                hint: Some("lack permission for `lambda:ListFunctions`"),
            },
            Case {
                name: "403 without a code is still access denied",
                fault: Fault {
                    status: Some(403),
                    ..fault(Stage::Answered)
                },
                cause: Cause::AccessDenied,
                line: "`lambda:ListFunctions` answered HTTP 403 with no AWS error code and an empty body",
                hint: Some("grant it"),
            },
            Case {
                name: "expired token",
                fault: Fault {
                    status: Some(403),
                    code: Some("ExpiredToken".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::ExpiredCredentials,
                line: "`lambda:ListFunctions` answered HTTP 403 ExpiredToken",
                hint: Some("aws sso login"),
            },
            Case {
                name: "wrong key",
                fault: Fault {
                    status: Some(403),
                    code: Some("InvalidClientTokenId".into()),
                    message: Some("The security token included in the request is invalid.".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::InvalidCredentials,
                line: "`lambda:ListFunctions` answered HTTP 403 InvalidClientTokenId: The security token included in the request is invalid.",
                hint: Some("does not accept these credentials"),
            },
            Case {
                name: "5xx with an HTML body",
                fault: Fault {
                    status: Some(500),
                    body: Some("<html>\n<body>oops</body>\n</html>".into()),
                    attempts: Some(3),
                    ..fault(Stage::Answered)
                },
                cause: Cause::ServerError,
                line: "`lambda:ListFunctions` answered HTTP 500 with no AWS error code: \"<html> <body>oops</body> </html>\" (3 attempts)",
                hint: Some("HTTP 500 is a failure on the server's side"),
            },
            Case {
                name: "5xx with an AWS code",
                fault: Fault {
                    status: Some(503),
                    code: Some("ServiceUnavailable".into()),
                    message: Some("Service is unavailable".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::ServerError,
                line: "`lambda:ListFunctions` answered HTTP 503 ServiceUnavailable: Service is unavailable",
                hint: Some("re-run"),
            },
            Case {
                name: "a 4xx AWS error the caller explains",
                fault: Fault {
                    status: Some(400),
                    code: Some("InvalidParameterValueException".into()),
                    message: Some("Unzipped size must be smaller than 262144000 bytes".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::Rejected,
                line: "`lambda:ListFunctions` answered HTTP 400 InvalidParameterValueException: Unzipped size must be smaller than 262144000 bytes",
                hint: None,
            },
            Case {
                name: "a 404 from something that is not AWS",
                fault: Fault {
                    status: Some(404),
                    body: Some("Not Found".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::NotAws,
                line: "`lambda:ListFunctions` answered HTTP 404 with no AWS error code: \"Not Found\"",
                hint: Some("did not answer like AWS"),
            },
            Case {
                name: "an unreadable 200",
                fault: Fault {
                    status: Some(200),
                    body: Some("hello".into()),
                    chain: vec!["failed to parse XML".into()],
                    ..fault(Stage::Unreadable)
                },
                cause: Cause::NotAws,
                line: "`lambda:ListFunctions` got HTTP 200 that is not an AWS response (failed to parse XML): \"hello\"",
                hint: Some("points at AWS or the local emulator"),
            },
            Case {
                name: "S3 refusing a HEAD request (no body; the SDK names the status)",
                fault: Fault {
                    call: Some("s3:HeadBucket".into()),
                    status: Some(403),
                    code: Some("Forbidden".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::AccessDenied,
                line: "`s3:HeadBucket` answered HTTP 403 Forbidden",
                hint: Some("lack permission for `s3:HeadBucket`"),
            },
            Case {
                name: "a quota is not throttling: waiting a minute does not help",
                fault: Fault {
                    call: Some("iam:CreateRole".into()),
                    status: Some(409),
                    code: Some("LimitExceeded".into()),
                    message: Some("Cannot exceed quota for RolesPerAccount: 1000".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::Rejected,
                line: "`iam:CreateRole` answered HTTP 409 LimitExceeded: Cannot exceed quota for RolesPerAccount: 1000",
                hint: None,
            },
            Case {
                name: "a 200 whose body is not the answer",
                fault: Fault {
                    status: Some(200),
                    body: Some("hello".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::NotAws,
                line: "`lambda:ListFunctions` got HTTP 200 that is not an AWS response: \"hello\"",
                hint: Some("http://127.0.0.1:4566 did not answer like AWS"),
            },
            Case {
                name: "call unknown",
                fault: Fault {
                    call: None,
                    endpoint: None,
                    status: Some(500),
                    code: Some("InternalError".into()),
                    ..fault(Stage::Answered)
                },
                cause: Cause::ServerError,
                line: "answered HTTP 500 InternalError",
                hint: Some("failure on the server's side"),
            },
        ];
        for c in cases {
            let v = judge(&c.fault);
            assert_eq!(v.cause, c.cause, "{}", c.name);
            assert_eq!(v.line, c.line, "{}", c.name);
            match (c.hint, &v.hint) {
                (None, None) => {}
                (Some(want), Some(got)) => assert!(got.contains(want), "{}: {got}", c.name),
                (want, got) => panic!("{}: hint {got:?}, wanted {want:?}", c.name),
            }
            assert!(!v.line.contains('\n'), "{}: one line", c.name);
        }
    }

    #[test]
    fn excerpts_are_one_short_escaped_line() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("two\nlines\r\n  spaced", "two lines spaced"),
            ("bell\u{7}here", "bell\\u{7}here"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(excerpt(input), *want, "{input:?}");
        }
        let long = "x".repeat(10_000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn endpoints_drop_user_info_path_and_query() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions",
                Some("https://lambda.us-east-1.amazonaws.com"),
            ),
            ("http://127.0.0.1:4566/", Some("http://127.0.0.1:4566")),
            (
                "http://user:secret@127.0.0.1:4566/x?X-Amz-Signature=abc",
                Some("http://127.0.0.1:4566"),
            ),
            ("http://host?q=1", Some("http://host")),
            ("no-scheme", None),
            ("http://", None),
        ];
        for (uri, want) in cases {
            assert_eq!(endpoint_of(uri).as_deref(), *want, "{uri}");
        }
    }

    #[test]
    fn service_names_become_iam_prefixes() {
        for (service, want) in [
            ("Lambda", "lambda"),
            ("STS", "sts"),
            ("Elastic Load Balancing v2", "elasticloadbalancing"),
            ("Secrets Manager", "secretsmanager"),
            ("CloudWatch", "cloudwatch"),
        ] {
            assert_eq!(iam_prefix(service), want);
        }
    }

    #[test]
    fn credential_failures_keep_what_configured_providers_said() {
        let chain = |s: &str| vec!["failed to resolve identity".to_string(), s.to_string()];
        let none_configured = "no credentials found in chain. Attempted:\n  Environment: the credential provider \
            was not enabled: environment variable not set\n  Profile: the credential provider was not enabled";
        assert_eq!(credential_failures(&chain(none_configured)), None);
        let profile_failed =
            "no credentials found in chain. Attempted:\n  Environment: the credential provider \
            was not enabled\n  Profile: the SSO token for profile `dev` has expired";
        assert_eq!(
            credential_failures(&chain(profile_failed)).as_deref(),
            Some("Profile: the SSO token for profile `dev` has expired")
        );
        assert_eq!(
            credential_failures(&chain("request forbidden: IMDS is disabled")).as_deref(),
            Some("request forbidden: IMDS is disabled")
        );
        assert_eq!(credential_failures(&[]), None);
    }

    #[test]
    fn timeout_durations_are_read_from_the_innermost_text() {
        assert_eq!(
            timeout_after(&["HTTP connect timeout occurred after 1.5s".into()]).as_deref(),
            Some("1.5s")
        );
        assert_eq!(timeout_after(&["timeout".into()]), None);
        assert_eq!(timeout_after(&["occurred after ".into()]), None);
    }
}
