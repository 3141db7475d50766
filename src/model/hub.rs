//! Resolving a model argument to a directory, offline only: a local directory as given, or a
//! Hugging Face model id (`org/name`) looked up in the local cache (`$HF_HUB_CACHE`, else
//! `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), whose layout is
//! `models--org--name/snapshots/<revision>/` with `refs/main` naming the revision. Nothing is
//! ever downloaded.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The Hugging Face hub cache directory this process would use.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("HF_HUB_CACHE")
        .or_else(|| env("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

/// Whether `spec` has the shape of a hub model id: `org/name` of letters, digits, `-`, `_`, `.`.
fn looks_like_model_id(spec: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(spec.split('/').collect::<Vec<_>>().as_slice(), [org, name] if ok(org) && ok(name))
}

/// Resolves `spec` (given as command-line option `flag`) to an existing directory.
pub fn resolve_model_dir(spec: &str, flag: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::Argument(format!(
            "{flag} {spec}: not a directory; pass the model directory (the one holding config.json)"
        )));
    }
    if !looks_like_model_id(spec) {
        return Err(Error::Argument(format!(
            "{flag} {spec}: no such directory; pass a model directory or a model id (org/name) that is in the local Hugging Face cache"
        )));
    }
    let Some(cache) = cache_dir() else {
        return Err(Error::Argument(format!(
            "{flag} {spec}: no such directory, and no Hugging Face cache is configured (set HF_HUB_CACHE or HF_HOME)"
        )));
    };
    resolve_in_cache(&cache, spec, flag)
}

/// Looks `model_id` up in the cache at `cache`.
pub fn resolve_in_cache(cache: &Path, model_id: &str, flag: &str) -> Result<PathBuf> {
    let repo = cache.join(format!("models--{}", model_id.replace('/', "--")));
    let not_cached = || {
        Error::Argument(format!(
            "{flag} {model_id}: no such directory and not in the Hugging Face cache ({} missing); download it first (`huggingface-cli download {model_id}`) or pass a local directory",
            repo.display()
        ))
    };
    if !repo.is_dir() {
        return Err(not_cached());
    }
    let snapshots = repo.join("snapshots");
    let refs_main = repo.join("refs").join("main");
    let revision = match std::fs::read_to_string(&refs_main) {
        Ok(rev) => rev.trim().to_string(),
        Err(_) => {
            // No refs/main: accept the snapshot if there is exactly one.
            let entries = std::fs::read_dir(&snapshots).map_err(|_| not_cached())?;
            let mut revs: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            revs.sort();
            match revs.as_slice() {
                [one] => one.clone(),
                [] => return Err(not_cached()),
                many => {
                    return Err(Error::Argument(format!(
                        "{flag} {model_id}: {} has no refs/main and {} snapshots ({}); pass the snapshot directory you want",
                        repo.display(),
                        many.len(),
                        many.join(", ")
                    )))
                }
            }
        }
    };
    let dir = snapshots.join(&revision);
    if !dir.is_dir() {
        return Err(Error::Argument(format!(
            "{flag} {model_id}: refs/main names revision {revision}, but {} is missing; download the model again",
            dir.display()
        )));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert!(looks_like_model_id("bigscience/bloom-560m"));
        assert!(looks_like_model_id("gpt2/x.y_z"));
        assert!(!looks_like_model_id("gpt2"));
        assert!(!looks_like_model_id("/abs/path"));
        assert!(!looks_like_model_id("a/b/c"));
        assert!(!looks_like_model_id("../x"));
    }
}
