//! One module per command.

pub mod loadtest;
pub mod local;
pub mod validate;
pub mod deploy;
pub mod destroy;
pub mod plan;
pub mod preflight;
pub mod status;
