//! The runbooks statsctl ships (embedded in the binary) and the pure parts of running them.

pub mod metric;
pub mod shipped;

pub use shipped::shipped;

// runner modules
