//! The moto AWS emulator: started on 127.0.0.1 at the port asked for, ready when it answers HTTP.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::supervisor::{spawn, wait_http, Proc};
use crate::exit::CliResult;
use crate::output::progress;

/// moto_server's arguments: loopback only, on `port`. Pure.
fn args(port: u16) -> Vec<String> {
    vec![
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// Starts moto and returns once it answers HTTP (or fails with its log's tail after `timeout`). `record` is
/// called with the process as soon as it runs, before the wait, so a failed wait still leaves its pid on record
/// for `local down`.
pub fn start(
    bin: &Path,
    dir: &Path,
    port: u16,
    timeout: Duration,
    record: impl FnOnce(&Proc) -> CliResult<()>,
) -> CliResult<Proc> {
    let log = dir.join("moto.log");
    let proc = spawn(
        Command::new(bin).args(args(port)),
        &log,
        port,
        "moto_server",
        bin,
    )?;
    record(&proc)?;
    progress(format!(
        "starting moto on 127.0.0.1:{port} (pid {})…",
        proc.pid
    ));
    wait_http(&proc, timeout)?;
    Ok(proc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn moto_listens_on_loopback_only() {
        assert_eq!(super::args(4566), ["-H", "127.0.0.1", "-p", "4566"]);
    }
}
