//! Global flags and what every command derives from them: the resolved stack and the AWS connection settings.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use statsctl_aws::trace::{CallTrace, TraceSink};
use statsctl_aws::Timeouts;
use statsctl_core::duration::{parse_span, Span};
use statsctl_core::model::ResolvedStack;

use crate::exit::{CliError, CliResult, ERROR};
use crate::output::Format;

/// The `--help` section of the timeout flags; the defaults are `statsctl_aws::Timeouts::default()`.
const AWS_TIMEOUTS: &str = "AWS timeouts (default: connect 3s, attempt 10s, call 30s)";

/// Accepted by every command, before or after it; shown under their own heading in every `--help`.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Stack file
    #[arg(
        long,
        global = true,
        default_value = "stacks/live-stats.yaml",
        env = "STATSCTL_STACK"
    )]
    pub stack: PathBuf,
    /// Environment from the stack file's `environments:` (local, dev, prod, …)
    #[arg(long, global = true, env = "STATSCTL_ENV")]
    pub env: Option<String>,
    /// AWS profile (overrides the stack file's `aws.profile`)
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region (overrides the stack file's `region`)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS endpoint override, e.g. the local emulator (also read from AWS_ENDPOINT_URL)
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Longest any one AWS call may take, retries included; a call that runs out ends the command (exit 1)
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, env = "STATSCTL_AWS_CALL_TIMEOUT", help_heading = AWS_TIMEOUTS)]
    pub aws_call_timeout: Option<Span>,
    /// Longest one attempt of an AWS call may take: connecting, sending and reading the answer
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, env = "STATSCTL_AWS_ATTEMPT_TIMEOUT", help_heading = AWS_TIMEOUTS)]
    pub aws_attempt_timeout: Option<Span>,
    /// Longest opening a connection to AWS may take
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, env = "STATSCTL_AWS_CONNECT_TIMEOUT", help_heading = AWS_TIMEOUTS)]
    pub aws_connect_timeout: Option<Span>,
    /// Output format: human text or JSON on stdout
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Format,
    /// Trace AWS calls on stderr (-v: each call's name, duration and outcome; -vv: also its endpoint, HTTP status
    /// and attempts)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// A duration flag's value, in the stack file's grammar (`statsctl_core::duration`); the error carries its hint,
/// shaped like every other error's, because clap prints it as is.
pub fn duration_arg(text: &str) -> Result<Span, String> {
    parse_span(text).map_err(|e| format!("{}\n  (hint: {})", e.message, e.hint))
}

impl Global {
    /// The AWS timeouts from the flags (or their environment variables), checked before anything runs.
    pub fn aws_timeouts(&self) -> CliResult<Timeouts> {
        Timeouts::resolve(
            self.aws_connect_timeout,
            self.aws_attempt_timeout,
            self.aws_call_timeout,
        )
        .map_err(|e| CliError::new(e.message).hint(e.hint))
    }

    /// Where `-v` sends each finished AWS call: a line on stderr (masked like all output); `None` without `-v`.
    pub fn aws_trace(&self) -> Option<TraceSink> {
        let level = self.verbose;
        (level > 0).then(|| -> TraceSink {
            Arc::new(move |t: &CallTrace| crate::output::progress(trace_line(t, level)))
        })
    }

    /// Loads and validates the stack for `--env`. Diagnostics are printed here; nothing has touched AWS yet.
    pub fn load_stack(&self) -> CliResult<ResolvedStack> {
        self.load_stack_for(self.env.as_deref())
    }

    pub fn load_stack_for(&self, env: Option<&str>) -> CliResult<ResolvedStack> {
        let vars = |name: &str| std::env::var(name).ok();
        statsctl_core::loader::load_file(&self.stack, env, &vars).map_err(|d| {
            match self.output {
                Format::Json => {
                    let body = serde_json::json!({"valid": false, "file": d.file, "env": d.env, "errors": d.errors});
                    // Exit 1 for the invalid stack whether or not the report could be written.
                    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
                    let _ = crate::output::print_text(&format!("{text}\n"));
                }
                Format::Human => eprint!("{d}"),
            }
            CliError::printed(ERROR)
        })
    }
}

/// One `-v` line: `aws lambda:ListFunctions 12ms ok`; at `-vv` the endpoint, HTTP status and attempts too.
/// Nothing else of the call is known here, so nothing secret can be printed.
fn trace_line(t: &CallTrace, level: u8) -> String {
    let outcome = if t.ok { "ok" } else { "failed" };
    let mut line = format!("aws {} {}ms {outcome}", t.call, t.elapsed.as_millis());
    if level >= 2 {
        let mut detail = vec![format!(
            "endpoint {}",
            t.endpoint.as_deref().unwrap_or("(nothing sent)")
        )];
        if let Some(status) = t.status {
            detail.push(format!("HTTP {status}"));
        }
        if let Some(n) = t.attempts {
            detail.push(format!("{n} attempt{}", if n == 1 { "" } else { "s" }));
        }
        line.push_str(&format!(" ({})", detail.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn trace_lines_by_level() {
        let ok = CallTrace {
            call: "lambda:ListFunctions".into(),
            endpoint: Some("http://127.0.0.1:4566".into()),
            attempts: Some(1),
            elapsed: Duration::from_micros(12_700),
            status: Some(200),
            ok: true,
        };
        let failed = CallTrace {
            call: "sts:GetCallerIdentity".into(),
            attempts: Some(3),
            status: Some(500),
            ok: false,
            ..ok.clone()
        };
        let unsent = CallTrace {
            endpoint: None,
            attempts: None,
            status: None,
            ok: false,
            ..ok.clone()
        };
        let cases = [
            (&ok, 1, "aws lambda:ListFunctions 12ms ok"),
            (
                &ok,
                2,
                "aws lambda:ListFunctions 12ms ok (endpoint http://127.0.0.1:4566, HTTP 200, 1 attempt)",
            ),
            (&failed, 1, "aws sts:GetCallerIdentity 12ms failed"),
            (
                &failed,
                3,
                "aws sts:GetCallerIdentity 12ms failed (endpoint http://127.0.0.1:4566, HTTP 500, 3 attempts)",
            ),
            (
                &unsent,
                2,
                "aws lambda:ListFunctions 12ms failed (endpoint (nothing sent))",
            ),
        ];
        for (trace, level, want) in cases {
            assert_eq!(trace_line(trace, level), want);
        }
    }
}
