//! Function code packaging: a `.zip` is used as is; a directory is zipped reproducibly (sorted entries, fixed
//! timestamps and permissions), so the same code always has the same `CodeSha256` and an unchanged function is
//! never re-uploaded. All artifacts are packaged before anything is sent to AWS: a missing one is an input error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::desired::Artifact;
use crate::model::ResolvedStack;

#[derive(Debug, thiserror::Error)]
#[error("function `{function}`: artifact `{}` {problem}", path.display())]
pub struct ArtifactError {
    pub function: String,
    pub path: PathBuf,
    pub problem: String,
}

/// Packages every function's artifact; all problems are reported together.
pub fn package_all(
    stack: &ResolvedStack,
) -> Result<BTreeMap<String, Artifact>, Vec<ArtifactError>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, f) in &stack.spec.functions {
        let path = stack.base_dir().join(&f.artifact);
        match package(&path) {
            Ok(a) => {
                out.insert(name.clone(), a);
            }
            Err(problem) => errors.push(ArtifactError {
                function: name.clone(),
                path,
                problem,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

pub fn package(path: &Path) -> Result<Artifact, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    let zip = if meta.is_dir() {
        zip_dir(path)?
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
    {
        std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?
    } else {
        return Err("is neither a directory nor a .zip file".into());
    };
    if zip.len() > 50 * 1024 * 1024 {
        return Err(format!(
            "is {} MB zipped; Lambda accepts at most 50 MB in a direct upload",
            zip.len() / 1024 / 1024
        ));
    }
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&zip));
    Ok(Artifact { sha256, zip })
}

fn zip_dir(dir: &Path) -> Result<Vec<u8>, String> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err("is an empty directory".into());
    }
    files.sort();
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zw = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755);
        for rel in files {
            let data = std::fs::read(dir.join(&rel))
                .map_err(|e| format!("`{rel}` cannot be read: {e}"))?;
            zw.start_file(rel.clone(), opts)
                .map_err(|e| e.to_string())?;
            zw.write_all(&data).map_err(|e| e.to_string())?;
        }
        zw.finish().map_err(|e| e.to_string())?;
    }
    Ok(buf.into_inner())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot be read: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Byte-code caches and VCS metadata are not code and would make the hash unstable.
        if name == "__pycache__" || name.starts_with('.') || name.ends_with(".pyc") {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_zips_are_reproducible_and_track_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.py"),
            "def handler(e, c):\n    return 1\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/app.pyc"), "junk").unwrap();
        let a = package(dir.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("__pycache__/app.pyc"), "other junk").unwrap();
        let b = package(dir.path()).unwrap();
        assert_eq!(a.sha256, b.sha256);
        std::fs::write(
            dir.path().join("app.py"),
            "def handler(e, c):\n    return 2\n",
        )
        .unwrap();
        assert_ne!(package(dir.path()).unwrap().sha256, a.sha256);
        assert!(package(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot be read"));
    }
}
