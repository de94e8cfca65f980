//! statsctl's executor: reads live state and plans against it, applies a plan's changes one at a time in order
//! (waiting for each to be ready, stopping on Ctrl-C), reports what was and was not done, and holds the deploy
//! lock.

pub mod apply;
pub mod colours;
pub mod inputs;
pub mod interrupt;
pub mod lock;
pub mod observe;
pub mod rollback;
pub mod rollout;
pub mod wait;
