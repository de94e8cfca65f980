//! What core's unit tests share: the shipped stack file, loaded for an environment.

use crate::model::StackFile;

/// `stacks/live-stats.yaml` as loaded for `env`, with no substitution variables set (defaults apply).
pub fn shipped(env: &str) -> StackFile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stacks/live-stats.yaml");
    crate::loader::load_file(&path, Some(env), &|_: &str| None)
        .expect("the shipped stack loads")
        .spec
}
