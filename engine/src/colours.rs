//! The service's blue/green colours: two ECS services, each behind its own target group, and the one listener
//! whose weights say which serves. A service unit starts the new task definition on the idle colour, waits for it
//! to be steady, then the rollout shifts listener weights; the previous colour keeps running for
//! `rollout.keep_previous` so a rollback is instant.
//!
//! Placeholder interface: the rollout loop (rollout.rs) calls these; they are filled in by the service rollout
//! work.

use statsctl_aws::{Aws, AwsError};
use statsctl_core::inventory::Observed;
use statsctl_core::plan::Change;

use crate::apply::{Executor, StepError};

/// A service rollout in flight: which colour serves and which gets the new task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colours {
    pub service: String,
    /// The task definition revision (`family:N`) serving before the unit.
    pub from: Option<String>,
    /// The revision the unit ships.
    pub to: String,
}

fn not_built() -> StepError {
    AwsError::new("shift service traffic", "service colours are not built yet").into()
}

/// Applies the unit's changes (task definition, service) and starts the new revision on the idle colour, waiting
/// until it is steady. `Ok(None)` when there is nothing to shift (the service was created now).
pub async fn prepare(
    _aws: &Aws,
    _ex: &Executor<'_>,
    _changes: &[Change],
    _observed: &mut Observed,
) -> Result<Option<Colours>, StepError> {
    Err(not_built())
}

/// Puts `percent` of the listener's traffic on the new colour and returns the percent read back.
pub async fn set_percent(_aws: &Aws, _c: &Colours, _percent: u32) -> Result<u32, StepError> {
    Err(not_built())
}

/// All traffic on the new colour, the previous one kept running for `keep_previous`.
pub async fn promote(_aws: &Aws, _ex: &Executor<'_>, _c: &Colours) -> Result<(), StepError> {
    Err(not_built())
}

/// All traffic back on the previous colour at once; returns the percent on the new one read back (0 when it
/// took).
pub async fn roll_back(_aws: &Aws, _c: &Colours) -> Result<u32, StepError> {
    Err(not_built())
}
