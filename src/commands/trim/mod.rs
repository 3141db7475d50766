//! `clp-gpu trim`: cut a model's vocabulary down to the tokens its corpora use.
//!
//! Stages (each timed in `trim_report.json`):
//! 1. **read**: resolve the model directory, parse config.json and tokenizer.json, map the
//!    weights, find the vocabulary tensors (input embedding, untied lm_head, output biases),
//!    read `--keep`, and create the staging directory beside OUT.
//! 2. **count**: stream every corpus through the model's own tokenizer ([`corpus`]).
//! 3. **select**: a token is kept for the first reason that applies, in this order: special
//!    (added tokens, special-token roles, ids named in config.json / generation_config.json,
//!    tokens the tokenizer names itself), `--keep`, frequency (≥ `--min-freq` in at least one
//!    corpus), byte alphabet (byte-level BPE and byte fallback, so any text stays encodable),
//!    alphabet (the smallest pieces of a token seen but dropped by frequency, so its text stays
//!    encodable), WordPiece unknown-word path, and finally BPE merge closure.
//! 4. **tokenizer**: tokenizer.json edited as JSON ([`crate::tokenizer`]), kept tokens renumbered
//!    0.. in their old order; reloaded with the tokenizers crate and every id checked; then each
//!    corpus is tokenized again with both tokenizers and compared line by line.
//! 5. **write**: kept rows of the vocabulary tensors in the new order (bytes copied), every
//!    other tensor byte-for-byte; config ids and `vocab_size`; tokenizer files; the report;
//!    then the staging directory is renamed to OUT ([`write`]).
//!
//! Selection is [`select`]; each stage is one function here, [`trim`] runs them in order.

pub mod corpus;
mod input;
mod select;
mod write;

use crate::commands::timer::Timer;
use crate::error::{one_line, Error, Result};
use crate::json::{read_optional_json_object, write_json};
use crate::model::rewrite;
use crate::model::writer::Staging;
use crate::progress::Unit;
use corpus::{CorpusCounts, Verification};
pub use input::TrimOptions;
pub use select::{CorpusSummary, KeptCounts};

use crate::tokenizer::rewrite::EditCounts;
use crate::tokenizer::{write::to_pretty, ModelKind, TokenizerJson};
use input::{read, Read};
use select::Selection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use write::{TrimmedTokenizer, WriteOutcome};

/// What `trim` did (printed by the CLI; also `trim_report.json` in OUT).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrimReport {
    /// The output directory.
    pub out: PathBuf,
    /// The resolved model directory.
    pub model: PathBuf,
    /// Tokenizer model type.
    pub tokenizer_model: ModelKind,
    /// `--min-freq`.
    pub min_freq: f64,
    /// Per corpus.
    pub corpora: Vec<CorpusSummary>,
    /// Tokens before (largest id + 1).
    pub tokens_before: usize,
    /// Tokens after (ids 0..tokens_after).
    pub tokens_after: usize,
    /// Kept tokens per reason.
    pub kept: KeptCounts,
    /// BPE merges before and after.
    pub merges_before: Option<usize>,
    /// BPE merges kept.
    pub merges_after: Option<usize>,
    /// The vocabulary tensors cut.
    pub embedding_tensors: Vec<String>,
    /// Rows of the input embedding before (may exceed `tokens_before`: padding rows are dropped).
    pub embedding_rows_before: usize,
    /// Elements of the vocabulary tensors before.
    pub embedding_params_before: u64,
    /// Elements of the vocabulary tensors after.
    pub embedding_params_after: u64,
    /// Share of the vocabulary tensors' elements removed.
    pub embedding_params_removed_share: f64,
    /// Elements of all tensors before.
    pub model_params_before: u64,
    /// Elements of all tensors after.
    pub model_params_after: u64,
    /// Tensor bytes before (the index's total_size).
    pub model_bytes_before: u64,
    /// Tensor bytes after.
    pub model_bytes_after: u64,
    /// The trimmed tokenizer checked against the original on every corpus line (empty with
    /// `--no-verify`).
    pub verification: Vec<Verification>,
    /// Config `*_token_id` values that name no token of the tokenizer (set to null).
    pub config_ids_unmapped: Vec<String>,
    /// Tokenizer files of the input not written to OUT (slow-tokenizer files that cannot be
    /// trimmed; the trimmed tokenizer.json is authoritative).
    pub files_dropped: Vec<String>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}

/// Runs the whole trim; see the module docs. Nothing exists at `opts.out` unless this returns `Ok`.
pub fn trim(opts: &TrimOptions) -> Result<TrimReport> {
    let mut timer = Timer::start();
    let input = read(opts)?;
    let staging = Staging::create(&opts.out, opts.force)?;
    timer.lap("read");

    let counts = count(opts, &input)?;
    timer.lap("count");

    let gen_path = input.model_dir.join("generation_config.json");
    let generation = read_optional_json_object(&gen_path)?;
    let sel = select::select(&input, &counts, generation.as_ref(), opts.min_freq)?;
    timer.lap("select");

    let out_dir = staging.path().to_path_buf();
    let (tokenizer, edit, verification) = trim_tokenizer(opts, &input, &sel, &out_dir)?;
    timer.lap("tokenizer");

    let outcome = write::write_output(&input, &sel, &tokenizer, generation, &out_dir)?;
    timer.lap("write");

    let report = report(opts, input, sel, edit, verification, outcome, &timer);
    let value = serde_json::to_value(&report)
        .map_err(|e| Error::Model(format!("cannot serialise the report: {e}")))?;
    write_json(&out_dir.join("trim_report.json"), &value)?;
    staging.commit()?;
    Ok(report)
}

/// Stage 2, **count**: every corpus through the model's own tokenizer.
fn count(opts: &TrimOptions, input: &Read) -> Result<Vec<CorpusCounts>> {
    let unk_id = match input.tj.kind {
        ModelKind::WordPiece => input.tj.unk_token().and_then(|t| input.vocab.id(&t)),
        _ => None,
    };
    let mut counts: Vec<CorpusCounts> = Vec::new();
    for c in &opts.corpora {
        let bar =
            (opts.progress).counter(format!("counting tokens of {}", c.display()), Unit::Lines);
        counts.push(corpus::count(
            &input.counting,
            c,
            input.vocab.len(),
            unk_id,
            &|n| bar.set_position(n),
        )?);
        bar.finish();
    }
    Ok(counts)
}

/// Stage 4, **tokenizer**: the trimmed tokenizer.json, reloaded and checked id by id, and
/// (with `--verify`) every corpus tokenized again with both tokenizers.
fn trim_tokenizer(
    opts: &TrimOptions,
    input: &Read,
    sel: &Selection,
    out_dir: &Path,
) -> Result<(TrimmedTokenizer, EditCounts, Vec<Verification>)> {
    let tj = &input.tj;
    let (root, edit) = tj.trimmed(&sel.new_ids)?;
    let text = to_pretty(&tj.path, &root)?;
    let loaded = text.parse::<tokenizers::Tokenizer>().map_err(|e| {
        Error::Model(format!(
            "the trimmed tokenizer does not load ({}); (a bug in clp-gpu; please report it with {})",
            one_line(&e.to_string()),
            tj.path.display()
        ))
    })?;
    for (token, &id) in &sel.new_ids {
        if loaded.token_to_id(token) != Some(id) {
            return Err(Error::Model(format!(
                "the trimmed tokenizer gives `{token}` id {:?} instead of {id}; the ids of {} are not in the layout the tokenizers crate expects (added tokens must follow the model vocabulary)",
                loaded.token_to_id(token),
                tj.path.display()
            )));
        }
    }
    let verification = if opts.verify {
        verify(opts, input, sel, &out_dir.join("tokenizer.json"), &root)?
    } else {
        Vec::new()
    };
    Ok((TrimmedTokenizer { root, text }, edit, verification))
}

/// Every corpus tokenized with the original and the trimmed tokenizer, compared line by line.
fn verify(
    opts: &TrimOptions,
    input: &Read,
    sel: &Selection,
    written_path: &Path,
    root: &serde_json::Map<String, Value>,
) -> Result<Vec<Verification>> {
    let trimmed_tj = TokenizerJson::from_root(written_path, root.clone())?;
    let trimmed = trimmed_tj.load_for_counting()?;
    let mut verification = Vec::new();
    for c in &opts.corpora {
        let task = format!("checking the trimmed tokenizer on {}", c.display());
        let bar = (opts.progress).counter(task, Unit::Lines);
        verification.push(corpus::verify(
            &input.counting,
            &trimmed,
            c,
            &sel.new_id,
            &|n| bar.set_position(n),
        )?);
        bar.finish();
    }
    Ok(verification)
}

/// The report of one trim.
fn report(
    opts: &TrimOptions,
    input: Read,
    sel: Selection,
    edit: EditCounts,
    verification: Vec<Verification>,
    outcome: WriteOutcome,
    timer: &Timer,
) -> TrimReport {
    let (tj, model) = (&input.tj, &input.model);
    let (emb_before, emb_after) = (outcome.emb_before, outcome.emb_after);
    let is_bpe = tj.kind == ModelKind::Bpe;
    TrimReport {
        out: opts.out.clone(),
        model: input.model_dir.clone(),
        tokenizer_model: tj.kind,
        min_freq: opts.min_freq,
        corpora: sel.summaries,
        tokens_before: input.vocab.len(),
        tokens_after: sel.kept_ids.len(),
        kept: sel.kept,
        merges_before: is_bpe.then_some(edit.merges_before),
        merges_after: is_bpe.then_some(edit.merges_after),
        embedding_tensors: input.vocab_tensors.clone(),
        embedding_rows_before: input.embedding_rows_before,
        embedding_params_before: emb_before,
        embedding_params_after: emb_after,
        embedding_params_removed_share: if emb_before == 0 {
            0.0
        } else {
            1.0 - emb_after as f64 / emb_before as f64
        },
        model_params_before: rewrite::total_params(&model.weights),
        model_params_after: outcome.written.params,
        model_bytes_before: model.weights.total_bytes(),
        model_bytes_after: outcome.written.bytes,
        verification,
        config_ids_unmapped: outcome.unmapped,
        files_dropped: outcome.files_dropped,
        timings_s: timer.stages().clone(),
    }
}
