//! statsctl's executor: applies a plan's changes one at a time, in order, and reports what was and was not done.

pub mod apply;
