//! One module per command.

pub mod deploy;
pub mod destroy;
pub mod history;
pub mod loadtest;
pub mod local;
pub mod plan;
pub mod preflight;
pub mod promote;
pub mod rollback;
pub mod runbook;
pub mod status;
pub mod validate;
