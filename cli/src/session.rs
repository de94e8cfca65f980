//! What plan, deploy, destroy and status share: load and validate the stack, package the function artifacts
//! (all before any AWS call) and connect; observing and planning are the engine's (`statsctl_engine::observe`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use statsctl_aws::{check_endpoint_url, Aws, AwsError, Target};
use statsctl_core::artifact;
use statsctl_core::desired::Artifact;
use statsctl_core::inventory::{Observed, Owner};
use statsctl_core::model::ResolvedStack;
use statsctl_core::plan::Plan;
use statsctl_engine::apply::Executor;
use statsctl_engine::lock::{self as lock, DeployLock, RemoteAcquire, RemoteLock};
pub use statsctl_engine::observe::Measure;
use statsctl_engine::observe::Subject;

use crate::context::Global;
use crate::exit::{CliError, CliResult};
use crate::output::progress;

pub struct Session {
    pub stack: ResolvedStack,
    pub env: String,
    pub owner: Owner,
    pub artifacts: BTreeMap<String, Artifact>,
    pub aws: Aws,
}

impl Session {
    /// Validates everything local first: a bad stack file or a missing artifact stops here, with nothing sent.
    pub async fn open(g: &Global, with_artifacts: bool) -> CliResult<Session> {
        let timeouts = g.aws_timeouts()?;
        let stack = g.load_stack()?;
        let env = stack.env_name().to_string();
        let artifacts = if with_artifacts {
            artifact::package_all(&stack).map_err(|errors| {
                let list = errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n");
                CliError::new(format!("cannot package function code:\n{list}"))
                    .hint("fix `artifact:` in the stack file (paths are relative to the stack file); nothing was sent to AWS")
            })?
        } else {
            BTreeMap::new()
        };
        let target = Target {
            region: g
                .region
                .clone()
                .unwrap_or_else(|| stack.spec.region.clone()),
            profile: g.profile.clone().or_else(|| stack.spec.aws.profile.clone()),
            endpoint_url: g
                .endpoint_url
                .clone()
                .or_else(|| stack.spec.aws.endpoint_url.clone()),
            timeouts,
        };
        if let Some(url) = &target.endpoint_url {
            check_endpoint_url(url).map_err(|e| {
                let from = if g.endpoint_url.is_some() {
                    "--endpoint-url (or AWS_ENDPOINT_URL)"
                } else {
                    "the stack's aws.endpoint_url"
                };
                CliError::new(format!("bad AWS endpoint from {from}: {e}")).hint(
                    "write it as http://HOST:PORT (the local emulator: http://127.0.0.1:4566) or https://HOST; \
                     nothing was sent to AWS",
                )
            })?;
        }
        let aws = Aws::connect_traced(&target, g.aws_trace()).await;
        let owner = Owner {
            stack: stack.spec.stack.clone(),
            env: env.clone(),
        };
        Ok(Session {
            stack,
            env,
            owner,
            artifacts,
            aws,
        })
    }

    /// The stack and environment this session works on, for the engine.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            stack: &self.stack.spec,
            env: &self.env,
            owner: &self.owner,
            artifacts: &self.artifacts,
        }
    }

    pub async fn observe(&self) -> CliResult<Observed> {
        self.subject().observe(&self.aws).await.map_err(aws_error)
    }

    /// Takes the deploy lock of this stack and environment for `command` (held until dropped).
    pub fn lock(&self, command: &str) -> CliResult<DeployLock> {
        DeployLock::acquire(&self.owner.stack, &self.env, command).map_err(|e| {
            let mut c = CliError::new(e.message);
            c.hint = e.hint;
            c
        })
    }

    /// Takes the lock object in the ledger bucket for `command` (see `statsctl_engine::lock`), first clearing a
    /// stale one when `break_lock` (after confirmation: `yes`, or typed `yes` at a terminal). None when the
    /// bucket does not exist yet: then only the local lock protects this first deploy.
    pub async fn remote_lock(
        &self,
        command: &str,
        break_lock: bool,
        yes: bool,
    ) -> CliResult<Option<RemoteLock>> {
        let (bucket, holder) = lock::bucket_and_holder(&self.aws, &self.stack.spec, &self.env)
            .await
            .map_err(aws_error)?;
        if break_lock {
            match lock::read_remote(&self.aws, &bucket, &self.env)
                .await
                .map_err(aws_error)?
            {
                None => progress(format!(
                    "--break-lock: {}/{} is not locked",
                    self.owner.stack, self.env
                )),
                Some(found) => {
                    eprintln!(
                        "{}/{} is locked by {}",
                        self.owner.stack,
                        self.env,
                        lock::describe_holder(&found)
                    );
                    if !yes {
                        let refused = || {
                            CliError::new("the lock was not broken; nothing was changed").hint(
                                "break it only when its holder is gone; pass --yes to confirm \
                                 non-interactively",
                            )
                        };
                        if !std::io::stdin().is_terminal() {
                            return Err(refused());
                        }
                        match ask("Type `yes` to break it: ").await? {
                            Some(a) if a.trim() == "yes" => {}
                            _ => return Err(refused()),
                        }
                    }
                    lock::clear_remote(&self.aws, &bucket, &self.env)
                        .await
                        .map_err(aws_error)?;
                    progress("lock broken");
                }
            }
        }
        match lock::acquire_remote(
            &self.aws,
            &self.owner.stack,
            &self.env,
            &bucket,
            &holder,
            command,
        )
        .await
        {
            Ok(RemoteAcquire::Taken(l)) => Ok(Some(l)),
            Ok(RemoteAcquire::NoBucket) => Ok(None),
            Err(e) => {
                let mut c = CliError::new(e.message);
                c.hint = e.hint;
                Err(c)
            }
        }
    }

    /// Releases the lock object (if one was taken) and returns `result`; a failed release is reported, and
    /// turns a success into an error since the next deploy would be refused.
    pub async fn release<T>(&self, l: Option<RemoteLock>, result: CliResult<T>) -> CliResult<T> {
        let Some(l) = l else { return result };
        match (l.release(&self.aws).await, result) {
            (Err(e), Ok(_)) => {
                let mut c = CliError::new(e.message);
                c.hint = e.hint;
                Err(c)
            }
            (Err(e), Err(r)) => {
                eprintln!("error: {}", e.message);
                Err(r)
            }
            (Ok(()), r) => r,
        }
    }

    /// What the executor needs to apply a plan of this session, reporting to `progress` and stopping at `stop`.
    pub fn executor<'a>(
        &'a self,
        progress: &'a (dyn Fn(String) + Send + Sync),
        stop: &'a std::sync::atomic::AtomicBool,
    ) -> Executor<'a> {
        Executor {
            subject: self.subject(),
            progress,
            stop,
        }
    }

    /// Observe + plan, with the figures reported by `plan`: API calls and wall time.
    pub async fn observe_and_plan(&self) -> CliResult<(Observed, Plan, Measure)> {
        self.subject()
            .observe_and_plan(&self.aws)
            .await
            .map_err(aws_error)
    }
}

pub fn aws_error(e: AwsError) -> CliError {
    let mut c = CliError::new(e.to_string());
    c.hint = e.hint;
    c
}

/// Refuses a plan that would take over or break something, before anything is applied.
pub fn refuse_blocked(p: &Plan) -> CliResult<()> {
    let blocked = p.blocked();
    if blocked.is_empty() {
        return Ok(());
    }
    let list = blocked
        .iter()
        .map(|c| format!("  {}: {}", c.key, c.blocked.as_deref().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n");
    Err(
        CliError::new(format!("the plan cannot be applied:\n{list}"))
            .hint("nothing was changed; resolve the conflicts above and re-run"),
    )
}

/// Asks on stderr and reads one line from stdin; None when Ctrl-C comes first or stdin is closed, so a command
/// waiting for an answer still ends through its normal path (releasing its lock).
pub async fn ask(question: &str) -> CliResult<Option<String>> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|n| (n > 0).then_some(line))
    });
    tokio::select! {
        r = read => match r {
            Ok(Ok(line)) => Ok(line),
            _ => Ok(None),
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!();
            Ok(None)
        }
    }
}
