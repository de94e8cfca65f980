//! `statsctl validate` and `statsctl schema`: check a stack file without touching AWS.

use clap::Args;
use serde::Serialize;
use statsctl_core::loader;

use crate::context::Global;
use crate::exit::{CliError, CliResult, ERROR, OK};
use crate::output::{self, Format};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Print only the verdict, not the resolved stack
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Serialize)]
struct EnvVerdict {
    env: String,
    valid: bool,
    errors: Vec<statsctl_core::diagnostics::Diagnostic>,
}

pub fn run(g: &Global, args: ValidateArgs) -> CliResult {
    if g.env.is_some() {
        return validate_one(g, &args);
    }
    // Read with the loader's caps (regular file, size, UTF-8); when it refuses, `validate_one` reports why exactly as
    // every other command does.
    let Ok(text) = loader::read_stack_file(&g.stack) else {
        return validate_one(g, &args);
    };
    let envs = loader::environment_names(&text);
    if envs.is_empty() {
        return validate_one(g, &args);
    }
    // No --env: validate every environment, so a typo in `prod` shows up while working on `local`.
    let vars = |name: &str| std::env::var(name).ok();
    let mut verdicts = Vec::new();
    for env in &envs {
        match loader::load_str(&g.stack, &text, Some(env), &vars) {
            Ok(_) => verdicts.push(EnvVerdict {
                env: env.clone(),
                valid: true,
                errors: vec![],
            }),
            Err(d) => {
                if g.output == Format::Human {
                    eprint!("{d}");
                    eprintln!();
                }
                verdicts.push(EnvVerdict {
                    env: env.clone(),
                    valid: false,
                    errors: d.errors,
                });
            }
        }
    }
    let all_valid = verdicts.iter().all(|v| v.valid);
    output::emit(
        g.output,
        &serde_json::json!({"file": g.stack, "valid": all_valid, "environments": verdicts}),
        |s| {
            for v in &verdicts {
                if v.valid {
                    s.push_str(&format!("{} {} valid\n", output::green("✓"), v.env));
                } else {
                    let n = v.errors.len();
                    s.push_str(&format!(
                        "{} {} {} error{}\n",
                        output::red("✗"),
                        v.env,
                        n,
                        if n == 1 { "" } else { "s" }
                    ));
                }
            }
            if all_valid {
                s.push_str(&format!("{} is valid in every environment; `statsctl validate --env NAME` prints one resolved\n", g.stack.display()));
            }
        },
    )?;
    Ok(if all_valid { OK } else { ERROR })
}

fn validate_one(g: &Global, args: &ValidateArgs) -> CliResult {
    let stack = g.load_stack()?;
    let env = stack.env.clone().unwrap_or_else(|| "(none)".into());
    output::emit(
        g.output,
        &serde_json::json!({"file": g.stack, "env": stack.env, "valid": true, "stack": stack.spec}),
        |s| {
            s.push_str(&format!(
                "# {} is valid for environment `{env}`. Resolved stack:\n",
                g.stack.display()
            ));
            if !args.quiet {
                s.push_str(
                    &serde_yaml::to_string(&stack.spec)
                        .unwrap_or_else(|e| format!("# (cannot render: {e})\n")),
                );
            }
        },
    )?;
    Ok(OK)
}

pub fn schema() -> CliResult {
    let text = serde_json::to_string_pretty(loader::schema())
        .map_err(|e| CliError::new(format!("cannot render the schema: {e}")))?;
    output::print_text(&format!("{text}\n"))?;
    Ok(OK)
}
