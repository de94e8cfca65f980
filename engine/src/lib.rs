//! statsctl's executor: applies a plan's changes one at a time, in order, waiting for each to be ready, and
//! reports what was and was not done; holds the deploy lock.

pub mod apply;
pub mod inputs;
pub mod lock;
pub mod wait;
