//! One module per command.

pub mod local;
pub mod validate;
