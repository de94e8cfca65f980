//! Opt-in tracing of AWS calls (`statsctl -v`): an interceptor that hands each finished call — its name,
//! duration, outcome — as plain data to a sink the caller supplies. It prints nothing itself, and it reads
//! nothing that could hold a secret: no headers, no bodies, only the endpoint's scheme, host and port.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use crate::fault::{endpoint_of, iam_prefix};

/// One finished AWS call, retries included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTrace {
    /// `service:Operation` as in IAM policies, e.g. `lambda:ListFunctions`.
    pub call: String,
    /// `scheme://host:port` of the last request sent; `None` when none was sent (no credentials).
    pub endpoint: Option<String>,
    /// Requests sent, retries included.
    pub attempts: Option<u32>,
    /// From the start of the call to its end, retries and back-off included.
    pub elapsed: Duration,
    /// HTTP status of the last answer, when one came.
    pub status: Option<u16>,
    /// Whether the call succeeded.
    pub ok: bool,
}

/// Where finished calls go.
pub type TraceSink = Arc<dyn Fn(&CallTrace) + Send + Sync>;

/// The interceptor; a no-op without a sink.
#[derive(Clone, Default)]
pub struct TraceCalls(pub Option<TraceSink>);

impl fmt::Debug for TraceCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceCalls")
            .field(&self.0.is_some())
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct TracedEndpoint(String);

impl Storable for TracedEndpoint {
    type Storer = StoreReplace<Self>;
}

impl Intercept for TraceCalls {
    fn name(&self) -> &'static str {
        "statsctl-trace-calls"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.is_some() {
            cfg.interceptor_state().store_put(Started(Instant::now()));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.is_some() {
            if let Some(e) = endpoint_of(ctx.request().uri()) {
                cfg.interceptor_state().store_put(TracedEndpoint(e));
            }
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(sink) = &self.0 else {
            return Ok(());
        };
        let trace = CallTrace {
            call: cfg
                .load::<Metadata>()
                .map(|m| format!("{}:{}", iam_prefix(m.service()), m.name()))
                .unwrap_or_else(|| "AWS call".into()),
            endpoint: cfg.load::<TracedEndpoint>().map(|e| e.0.clone()),
            attempts: cfg.load::<RequestAttempts>().map(|a| a.attempts()),
            elapsed: cfg
                .load::<Started>()
                .map(|s| s.0.elapsed())
                .unwrap_or_default(),
            status: ctx.response().map(|r| r.status().as_u16()),
            ok: matches!(ctx.output_or_error(), Some(Ok(_))),
        };
        sink(&trace);
        Ok(())
    }
}
