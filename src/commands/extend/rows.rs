//! Rows for the new tokens, by the `apply` engine with the extended tokenizer as the target.
//!
//! The extended tokenizer keeps every existing token's string and id, so `apply` matches each
//! existing token with itself (its rows are copied bit-exact, the config's token ids stay) and
//! the new tokens are its missing tokens:
//! - FVT (default): `apply --weighting fvt` with the model as the source, each new row the
//!   mean of the model's rows of the token's pieces under the original tokenizer.
//! - `--helper`: the helper speaks another tokenizer, so it is first carried onto the
//!   extended one by the same FVT (tokens the helper has keep their helper rows, the others
//!   get the mean of the helper rows of their helper pieces); that helper then serves `apply`'s
//!   weighting: each new token's row combines the model's rows of its nearest existing tokens
//!   in the helper's space.
//!
//! Everything is written inside the staging directory of OUT; the model files end up at its
//! top, the intermediate directories are removed.

use super::learn::Extension;
use super::options::ExtendOptions;
use crate::commands::apply::{apply, ApplyOptions, ApplySummary, Method};
use crate::error::{Error, Result};
use crate::model::hub;
use std::path::{Path, PathBuf};

/// The tokenizer files carried next to the extended tokenizer.json (the slow tokenizers'
/// files, `vocab.json`, `merges.txt`, `vocab.txt`, `*.model`, are not: they lack the new
/// tokens, and transformers loads the fast tokenizer from tokenizer.json).
const CARRIED: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "config.json",
];

/// The engine's files `extend` does not keep (its report names temporary directories;
/// `extend_report.json` holds what it says).
const DROPPED: &[&str] = &["clp_transfer.json"];

/// What the rows stage made.
pub struct Built {
    /// The final `apply` run's summary.
    pub summary: ApplySummary,
    /// The resolved helper directory, with `--helper`.
    pub helper: Option<PathBuf>,
    /// What the engine noticed (backend choice, ...).
    pub notices: Vec<String>,
}

/// Writes the extended model's files at the top of `staging`.
pub fn build(
    opts: &ExtendOptions,
    model_dir: &Path,
    ext: &Extension,
    staging: &Path,
) -> Result<Built> {
    let tokenizer_dir = staging.join(".extend-tokenizer");
    write_tokenizer_dir(model_dir, ext, &tokenizer_dir)?;
    let helper_dir = (opts.helper.as_deref())
        .map(|h| hub::resolve_model_dir(h, "--helper"))
        .transpose()?;
    let carried_helper = match &helper_dir {
        Some(h) => Some(carry_helper(opts, h, &tokenizer_dir, staging)?),
        None => None,
    };
    let model_out = staging.join(".extend-model");
    let run = ApplyOptions {
        source: model_dir.to_string_lossy().into_owned(),
        helper: (carried_helper.as_ref()).map(|p| p.to_string_lossy().into_owned()),
        helper_tokenizer: Some(tokenizer_dir.to_string_lossy().into_owned()),
        out: model_out.clone(),
        force: false,
        ..engine_options(opts)
    };
    let summary = apply(&run)?;
    move_up(&model_out, staging)?;
    for dir in [Some(&tokenizer_dir), carried_helper.as_ref()]
        .into_iter()
        .flatten()
    {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(Built {
        notices: summary.notices.clone(),
        summary,
        helper: helper_dir,
    })
}

/// The `apply` options every run of `extend` shares.
fn engine_options(opts: &ExtendOptions) -> ApplyOptions {
    ApplyOptions {
        source: String::new(),
        helper: None,
        helper_tokenizer: None,
        out: PathBuf::new(),
        method: opts.method,
        fallback: opts.fallback,
        match_mode: opts.match_mode,
        preset: None,
        backend: opts.backend,
        memory_bytes: opts.memory_bytes,
        force: false,
        provenance: opts.provenance.clone(),
        pad_to_multiple: opts.pad_to_multiple,
        pad_token: None,
        progress: opts.progress.clone(),
        arguments: opts.arguments.clone(),
    }
}

/// The extended tokenizer.json with the model's other tokenizer files (and config.json, whose
/// special-token ids the engine reads) beside it.
fn write_tokenizer_dir(model_dir: &Path, ext: &Extension, dir: &Path) -> Result<()> {
    std::fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, &ext.tokenizer_json).map_err(|e| Error::io(&path, e))?;
    for name in CARRIED {
        let from = model_dir.join(name);
        if from.is_file() {
            let to = dir.join(name);
            std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

/// The helper carried onto the extended tokenizer by FVT (see the module docs).
fn carry_helper(
    opts: &ExtendOptions,
    helper: &Path,
    tokenizer_dir: &Path,
    staging: &Path,
) -> Result<PathBuf> {
    let out = staging.join(".extend-helper");
    let run = ApplyOptions {
        source: helper.to_string_lossy().into_owned(),
        helper: None,
        helper_tokenizer: Some(tokenizer_dir.to_string_lossy().into_owned()),
        out: out.clone(),
        method: Method::Fvt,
        provenance: None,
        pad_to_multiple: None,
        ..engine_options(opts)
    };
    apply(&run).map_err(|e| match e {
        Error::Argument(m) | Error::Model(m) => {
            Error::Model(format!("--helper {}: {m}", helper.display()))
        }
        other => other,
    })?;
    Ok(out)
}

/// Moves every file of `from` into `to` (both in the staging directory) and removes `from`.
fn move_up(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        let path = entry.path();
        if DROPPED.iter().any(|d| name == *d) {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            continue;
        }
        let dest = to.join(&name);
        std::fs::rename(&path, &dest).map_err(|e| Error::io(&dest, e))?;
    }
    std::fs::remove_dir(from).map_err(|e| Error::io(from, e))
}
