//! One deploy per stack and environment at a time, on this machine and across machines. Locally: an exclusive
//! `flock` on a lock file, which the kernel releases however the process ends. Across machines: a lock object
//! `locks/<env>.json` in the stack's ledger bucket, written with If-None-Match so only one writer wins; it names
//! who holds it, and is deleted when the command ends (a killed process leaves it: `--break-lock` clears it).

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

/// The lock object's key in the ledger bucket.
pub fn lock_key(env: &str) -> String {
    format!("locks/{env}.json")
}

/// What the lock object says about who holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockBody {
    /// The caller identity ARN (sts:GetCallerIdentity) of the holder.
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
}

impl LockBody {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// A body someone else wrote; an unreadable one is still a lock, shown as raw text (bounded).
    pub fn parse(bytes: &[u8]) -> Result<LockBody, String> {
        serde_json::from_slice(bytes).map_err(|_| {
            let text = String::from_utf8_lossy(bytes);
            text.chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string()
        })
    }
}

/// One line naming who holds the lock, for refusals and `--break-lock`'s question.
pub fn describe_holder(body: &Result<LockBody, String>) -> String {
    match body {
        Ok(b) => format!(
            "{} on host {} (pid {}, `{}`, started {})",
            b.holder, b.host, b.pid, b.command, b.started
        ),
        Err(raw) if raw.is_empty() => "an unknown holder (empty lock object)".into(),
        Err(raw) => format!("an unknown holder (unreadable lock object: {raw})"),
    }
}

/// The refusal when another statsctl holds the lock object of `stack`/`env`.
pub fn refusal(stack: &str, env: &str, body: &Result<LockBody, String>) -> LockError {
    LockError {
        message: format!(
            "another statsctl is changing {stack}/{env}: locked by {}",
            describe_holder(body)
        ),
        hint: Some(format!(
            "wait for it to finish; if that process is gone (killed, machine lost), re-run with --break-lock to \
             clear the lock `{}` (you will be asked to confirm)",
            lock_key(env)
        )),
    }
}

/// Seconds after the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The lock object this process holds; release it with [`RemoteLock::release`] when the command ends.
#[derive(Debug)]
pub struct RemoteLock {
    bucket: String,
    key: String,
}

/// What taking the lock object found.
pub enum RemoteAcquire {
    /// Ours until released.
    Taken(RemoteLock),
    /// The ledger bucket does not exist yet: only the local lock protects this (first) deploy.
    NoBucket,
}

/// The ledger bucket of this stack and environment in the caller's account, and the caller's ARN.
pub async fn bucket_and_holder(
    aws: &statsctl_aws::Aws,
    stack: &statsctl_core::model::StackFile,
    env: &str,
) -> statsctl_aws::AwsResult<(String, String)> {
    let (account, arn) = statsctl_aws::ledger::caller(aws).await?;
    Ok((
        statsctl_core::ledger::bucket_name(stack, env, &account),
        arn,
    ))
}

/// The current lock object of `env` in `bucket`, if any.
pub async fn read_remote(
    aws: &statsctl_aws::Aws,
    bucket: &str,
    env: &str,
) -> statsctl_aws::AwsResult<Option<Result<LockBody, String>>> {
    Ok(statsctl_aws::ledger::get_lock(aws, bucket, &lock_key(env))
        .await?
        .map(|b| LockBody::parse(&b)))
}

/// Deletes the lock object of `env` (for `--break-lock`).
pub async fn clear_remote(
    aws: &statsctl_aws::Aws,
    bucket: &str,
    env: &str,
) -> statsctl_aws::AwsResult<()> {
    statsctl_aws::ledger::delete_lock(aws, bucket, &lock_key(env)).await
}

/// Takes the lock object at once or says who holds it: no waiting, no retrying.
pub async fn acquire_remote(
    aws: &statsctl_aws::Aws,
    stack: &str,
    env: &str,
    bucket: &str,
    holder: &str,
    command: &str,
) -> Result<RemoteAcquire, LockError> {
    let key = lock_key(env);
    let body = LockBody {
        holder: holder.to_string(),
        host: host_name(),
        pid: std::process::id(),
        command: command.to_string(),
        started: utc(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    };
    let aws_err = |e: statsctl_aws::AwsError| LockError {
        message: e.to_string(),
        hint: e.hint,
    };
    match statsctl_aws::ledger::put_lock(aws, bucket, &key, body.to_json())
        .await
        .map_err(aws_err)?
    {
        statsctl_aws::ledger::LockPut::Taken => Ok(RemoteAcquire::Taken(RemoteLock {
            bucket: bucket.to_string(),
            key,
        })),
        statsctl_aws::ledger::LockPut::NoBucket => Ok(RemoteAcquire::NoBucket),
        statsctl_aws::ledger::LockPut::Held => {
            let found = statsctl_aws::ledger::get_lock(aws, bucket, &key)
                .await
                .map_err(aws_err)?;
            let body = found
                .map(|b| LockBody::parse(&b))
                .unwrap_or_else(|| Err("released while we looked; re-run".into()));
            Err(refusal(stack, env, &body))
        }
    }
}

impl RemoteLock {
    /// Deletes the lock object; on failure says how to clear it by hand.
    pub async fn release(self, aws: &statsctl_aws::Aws) -> Result<(), LockError> {
        statsctl_aws::ledger::delete_lock(aws, &self.bucket, &self.key)
            .await
            .map_err(|e| LockError {
                message: format!("could not release the lock `{}`: {e}", self.key),
                hint: Some("the next deploy will be refused; clear it with --break-lock".into()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> LockBody {
        LockBody {
            holder: "arn:aws:iam::123456789012:user/ana".into(),
            host: "ci-7".into(),
            pid: 4242,
            command: "statsctl deploy".into(),
            started: "2026-11-28T21:00:05Z".into(),
        }
    }

    #[test]
    fn a_lock_body_reads_back_as_written() {
        assert_eq!(LockBody::parse(&body().to_json()), Ok(body()));
    }

    #[test]
    fn an_unreadable_lock_body_is_still_a_lock_shown_raw_and_bounded() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "an unknown holder (empty lock object)"),
            (b"  held by bob \n", "unreadable lock object: held by bob)"),
            (
                b"{\"holder\": 1}",
                "unreadable lock object: {\"holder\": 1})",
            ),
        ];
        for (bytes, want) in cases {
            let d = describe_holder(&LockBody::parse(bytes));
            assert!(d.contains(want), "{d:?} should contain {want:?}");
        }
        let long = vec![b'x'; 10_000];
        assert!(describe_holder(&LockBody::parse(&long)).len() < 300);
    }

    #[test]
    fn the_refusal_names_holder_host_start_and_the_way_out() {
        let e = refusal("live-stats", "dev", &Ok(body()));
        for want in [
            "live-stats/dev",
            "arn:aws:iam::123456789012:user/ana",
            "host ci-7",
            "pid 4242",
            "started 2026-11-28T21:00:05Z",
        ] {
            assert!(e.message.contains(want), "{} lacks {want}", e.message);
        }
        let hint = e.hint.unwrap();
        assert!(hint.contains("--break-lock"), "{hint}");
        assert!(hint.contains("locks/dev.json"), "{hint}");
    }

    #[test]
    fn utc_formats_known_instants() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_900_000, "2026-11-28T21:06:40Z"),
        ] {
            assert_eq!(utc(secs), want, "{secs}");
        }
    }
}
