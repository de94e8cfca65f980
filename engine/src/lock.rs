//! One deploy per stack and environment at a time: an exclusive `flock` on a lock file. The kernel releases it
//! when the process ends however it ends (even SIGKILL), so a crashed deploy never leaves a stale lock; the file
//! records who holds it, for the error the second deploy prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Why the lock was not taken: what is wrong and, when known, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockError {
    pub message: String,
    pub hint: Option<String>,
}

impl LockError {
    fn new(message: String) -> LockError {
        LockError {
            message,
            hint: None,
        }
    }
}

pub struct DeployLock {
    file: File,
    path: PathBuf,
}

fn lock_dir() -> PathBuf {
    std::env::var_os("STATSCTL_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".statsctl/locks"))
}

impl DeployLock {
    pub fn acquire(stack: &str, env: &str, command: &str) -> Result<DeployLock, LockError> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir).map_err(|e| {
            LockError::new(format!(
                "cannot create lock directory `{}`: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join(format!("{stack}-{env}.lock"));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LockError::new(format!("cannot open lock `{}`: {e}", path.display())))?;
        let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !got {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError {
                message: format!(
                    "another statsctl is changing {stack}/{env}: {}",
                    holder.trim()
                ),
                hint: Some(
                    "wait for it to finish; two deploys of the same stack never run at once".into(),
                ),
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(
            file,
            "{command} (pid {}, started {}s after the epoch)",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        let _ = file.flush();
        Ok(DeployLock { file, path })
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
        let _ = &self.path;
    }
}
