//! Ctrl-C for commands that change things: the first one sets the stop flag the executor checks between steps
//! and between readiness polls, so nothing is cut off half-sent; a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the handler (needs a tokio runtime) and returns the flag it sets.
pub fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
            eprintln!(
                "interrupted: stopping once the call under way returns (a change already sent is not waited for; \
                 re-running resumes); Ctrl-C again to exit now"
            );
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}
