//! The read steps of a runbook that reach past SQL: preflight checks by id (`check`) and CloudWatch metrics over a
//! window (`metric`). The runner (run.rs) calls these and renders what they return.
//!
//! Placeholder interface: filled in by the runbook reads work.

use statsctl_checks::Finding;
use statsctl_core::runbook::MetricStep;

use crate::context::Global;
use crate::exit::{CliError, CliResult};
use crate::session::Session;

/// One series of a `metric` step (a step over `functions` gives one per function).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricSeries {
    /// What it measures, e.g. `DatabaseConnections (database live-stats-dev-db)`.
    pub label: String,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// Datapoints in the window.
    pub points: usize,
    /// The values over the window as a one-line sparkline (`▁▂▅█`).
    pub sparkline: String,
    /// A limit to read the values against (max_connections for DatabaseConnections), when statsctl knows one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

/// Runs the preflight checks with these ids against the live stack and returns their findings.
pub async fn checks(_g: &Global, _s: &Session, _ids: &[String]) -> CliResult<Vec<Finding>> {
    Err(CliError::new("runbook check steps are not built yet"))
}

/// Reads the metric over its window, one series per resource it names.
pub async fn metric(_s: &Session, _step: &MetricStep) -> CliResult<Vec<MetricSeries>> {
    Err(CliError::new("runbook metric steps are not built yet"))
}
