//! `clp-gpu inspect`: how a target tokenizer overlaps a source tokenizer, before any weights are
//! read.
//!
//! Only tokenizer files are read (`tokenizer.json`, `tokenizer_config.json`,
//! `special_tokens_map.json`) and `config.json` when the directory has one (its `*_token_id`
//! keys are the last resort for special-token roles, as in `apply`); no safetensors and no GPU.
//! The matching is exactly the one `apply` would do ([`crate::vocab::match_tokens`]), so the
//! counts here are the counts `apply` reports.

use crate::error::Result;
use crate::json::read_optional_json_object;
use crate::model::hub;
use crate::vocab::{match_tokens, MatchMode, MatchReport, SpecialRole, Vocab};
use std::path::{Path, PathBuf};

/// What `inspect` needs to know.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Source model directory or hub id.
    pub source: String,
    /// Helper model directory or hub id.
    pub helper: String,
    /// Where the target tokenizer comes from (default: the helper directory).
    pub helper_tokenizer: Option<String>,
    /// How target tokens are matched.
    pub match_mode: MatchMode,
    /// Examples of each kind to list.
    pub examples: usize,
}

/// One special token of a tokenizer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpecialToken {
    /// Its role.
    pub role: SpecialRole,
    /// Its id.
    pub id: u32,
    /// Its string.
    pub token: Option<String>,
}

/// A tokenizer as `inspect` read it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenizerInfo {
    /// The resolved directory.
    pub dir: PathBuf,
    /// The tokenizer.json read.
    pub tokenizer: PathBuf,
    /// Ids (largest id + 1).
    pub tokens: usize,
    /// Special-token roles.
    pub special: Vec<SpecialToken>,
}

/// What `inspect` found (printed as text, or as JSON with `--json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InspectReport {
    /// The source tokenizer.
    pub source: TokenizerInfo,
    /// The target tokenizer.
    pub target: TokenizerInfo,
    /// Families, counts per kind and examples.
    pub matching: MatchReport,
    /// With `--match exact`: how many more target tokens `--match canonical` would copy (absent
    /// when a tokenizer's family is unknown, or in canonical mode).
    pub canonical_would_add: Option<usize>,
}

fn info(dir: &Path, vocab: &Vocab) -> TokenizerInfo {
    TokenizerInfo {
        dir: dir.to_path_buf(),
        tokenizer: vocab.path.clone(),
        tokens: vocab.len(),
        special: vocab
            .special
            .iter()
            .map(|(&role, &id)| SpecialToken {
                role,
                id,
                token: vocab.token(id).map(str::to_owned),
            })
            .collect(),
    }
}

/// Reads both tokenizers and matches them; see the module docs.
pub fn inspect(opts: &InspectOptions) -> Result<InspectReport> {
    let source_dir = hub::resolve_model_dir(&opts.source, "--source")?;
    let helper_dir = hub::resolve_model_dir(&opts.helper, "--helper")?;
    let tokenizer_dir = match &opts.helper_tokenizer {
        Some(s) => hub::resolve_model_dir(s, "--helper-tokenizer")?,
        None => helper_dir.clone(),
    };
    let source_config = read_optional_json_object(&source_dir.join("config.json"))?;
    let helper_config = read_optional_json_object(&helper_dir.join("config.json"))?;
    let source = Vocab::read(&source_dir, source_config.as_ref())?;
    let target = Vocab::read(&tokenizer_dir, helper_config.as_ref())?;
    let matching = match_tokens(&source, &target, opts.match_mode)?;
    let canonical_would_add = if opts.match_mode == MatchMode::Exact
        && source.family.is_known()
        && target.family.is_known()
    {
        let canonical = match_tokens(&source, &target, MatchMode::Canonical)?;
        Some(
            canonical
                .overlap
                .len()
                .saturating_sub(matching.overlap.len()),
        )
    } else {
        None
    };
    Ok(InspectReport {
        source: info(&source_dir, &source),
        target: info(&tokenizer_dir, &target),
        matching: matching.report(&source, &target, opts.examples),
        canonical_would_add,
    })
}
