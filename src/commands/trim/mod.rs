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
//! 4. **tokenizer**: tokenizer.json edited as JSON ([`tokenizer_json`]), kept tokens renumbered
//!    0.. in their old order; reloaded with the tokenizers crate and every id checked; then each
//!    corpus is tokenized again with both tokenizers and compared line by line.
//! 5. **write**: kept rows of the vocabulary tensors in the new order (bytes copied), every
//!    other tensor byte-for-byte; config ids and `vocab_size`; tokenizer files; the report;
//!    then the staging directory is renamed to OUT ([`write`]).
//!
//! Selection is [`select`]; each stage is one function here, [`trim`] runs them in order.

pub mod corpus;
mod select;
pub mod tokenizer_json;
mod write;

use crate::commands::timer::Timer;
use crate::error::{Error, Result};
use crate::model::json::{read_optional_json_object, write_json};
use crate::model::pair::rebuilt_vocab_tensors;
use crate::model::rewrite;
use crate::model::writer::{self, Staging};
use crate::model::{hub, ModelDir, VocabTensors};
use crate::vocab::Vocab;
use corpus::{CorpusCounts, Verification};
use indicatif::ProgressBar;
use select::Selection;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokenizer_json::{EditCounts, ModelKind, TokenizerJson};
use write::{TrimmedTokenizer, WriteOutcome};

/// What `trim` needs to know.
#[derive(Debug, Clone)]
pub struct TrimOptions {
    /// Model directory or hub id.
    pub model: String,
    /// Text files (UTF-8, one unit per line) whose tokens are kept.
    pub corpora: Vec<PathBuf>,
    /// Keep a token whose relative frequency in some corpus is at least this.
    pub min_freq: f64,
    /// A file of token strings (one per line) to keep whatever their frequency.
    pub keep: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Replace an existing OUT.
    pub force: bool,
    /// Tokenize every corpus again with the trimmed tokenizer and compare.
    pub verify: bool,
    /// Draw a spinner on stderr.
    pub progress: bool,
}

/// Tokens kept, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeptCounts {
    /// Added tokens, special-token roles, config ids, tokens the tokenizer names.
    pub special: usize,
    /// Forced by `--keep`.
    pub keep_file: usize,
    /// Frequency ≥ `--min-freq` in at least one corpus.
    pub frequency: usize,
    /// Byte-level alphabet / byte-fallback tokens.
    pub byte_alphabet: usize,
    /// Smallest pieces of tokens seen in a corpus but dropped by frequency.
    pub alphabet: usize,
    /// WordPiece: prefixes the greedy walk takes on a word that ends up unknown.
    pub unk_path: usize,
    /// BPE: parts of merges that build a kept token.
    pub merge_closure: usize,
}

/// One corpus in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CorpusSummary {
    /// The file.
    pub path: PathBuf,
    /// Non-empty lines.
    pub lines: u64,
    /// Tokens under the original tokenizer.
    pub tokens: u64,
    /// Distinct token ids seen.
    pub distinct_tokens: usize,
    /// Distinct tokens at or above `--min-freq`.
    pub frequent_tokens: usize,
}

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

fn spinner(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
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

/// What the read stage found.
pub(super) struct Read {
    /// The resolved model directory.
    model_dir: PathBuf,
    /// The model.
    model: ModelDir,
    /// Its tokenizer.
    vocab: Vocab,
    /// Its tokenizer.json.
    tj: TokenizerJson,
    /// The vocabulary tensors: input embedding, then lm_head and output bias when present.
    vocab_tensors: Vec<String>,
    /// Rows of the input embedding.
    embedding_rows_before: usize,
    /// `--keep` tokens.
    keep_tokens: Vec<String>,
    /// The tokenizer as loaded for counting.
    counting: tokenizers::Tokenizer,
}

/// Stage 1, **read**: options, model, tokenizer, vocabulary tensors, `--keep`.
fn read(opts: &TrimOptions) -> Result<Read> {
    check_options(opts)?;
    let model_dir = hub::resolve_model_dir(&opts.model, "--model")?;
    writer::refuse_out_over_input(&opts.out, &[&model_dir])?;
    for c in &opts.corpora {
        if !c.is_file() {
            return Err(Error::Argument(format!(
                "--corpus {}: no such file; pass a UTF-8 text file, one sentence or paragraph per line",
                c.display()
            )));
        }
    }
    let model = ModelDir::open(&model_dir)?;
    let vocab = Vocab::read(&model_dir, Some(&model.config.raw))?;
    let tj = TokenizerJson::read(&model_dir.join("tokenizer.json"))?;
    let vt = rebuilt_vocab_tensors(&model, vocab.len(), "model", "")?;
    let mut vocab_tensors = vec![vt.input.clone()];
    vocab_tensors.extend(vt.output.iter().cloned());
    vocab_tensors.extend(vt.output_bias.iter().cloned());
    let embedding_rows_before = check_rows(&model, &vocab, &vt, &vocab_tensors)?;
    let keep_tokens = match &opts.keep {
        Some(p) => read_keep_file(p, &vocab)?,
        None => Vec::new(),
    };
    let counting = tj.load_for_counting()?;
    Ok(Read {
        model_dir,
        model,
        vocab,
        tj,
        vocab_tensors,
        embedding_rows_before,
        keep_tokens,
        counting,
    })
}

/// The options checked before any file is read.
fn check_options(opts: &TrimOptions) -> Result<()> {
    writer::check_out(&opts.out, opts.force)?;
    if !(opts.min_freq.is_finite() && (0.0..=1.0).contains(&opts.min_freq)) {
        return Err(Error::Argument(format!(
            "--min-freq {}: give a relative frequency between 0 and 1, e.g. 1e-6",
            opts.min_freq
        )));
    }
    if opts.corpora.is_empty() {
        return Err(Error::Argument(
            "--corpus: give at least one text file (one sentence or paragraph per line)".into(),
        ));
    }
    Ok(())
}

/// Every vocabulary tensor must have the input embedding's rows, at least one per token;
/// returns that row count.
fn check_rows(
    model: &ModelDir,
    vocab: &Vocab,
    vt: &VocabTensors,
    names: &[String],
) -> Result<usize> {
    let mut embedding_rows_before = 0;
    for (i, name) in names.iter().enumerate() {
        let info = model
            .weights
            .info(name)
            .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
        let path = model.weights.file_of(name).unwrap_or(&model.dir);
        let rows = info.shape.first().copied().unwrap_or(0);
        if i == 0 {
            embedding_rows_before = rows;
        }
        if rows < vocab.len() || rows != embedding_rows_before {
            return Err(Error::bad_file(
                path,
                format!(
                    "`{name}` has {rows} rows but the tokenizer {} has {} tokens{}; use the tokenizer that belongs to this model",
                    vocab.path.display(),
                    vocab.len(),
                    if i > 0 { format!(" and `{}` has {embedding_rows_before} rows", vt.input) } else { String::new() }
                ),
            ));
        }
    }
    Ok(embedding_rows_before)
}

/// Stage 2, **count**: every corpus through the model's own tokenizer.
fn count(opts: &TrimOptions, input: &Read) -> Result<Vec<CorpusCounts>> {
    let pb = spinner(opts.progress);
    let unk_id = match input.tj.kind {
        ModelKind::WordPiece => tj_model_unk(&input.tj).and_then(|t| input.vocab.id(&t)),
        _ => None,
    };
    let mut counts: Vec<CorpusCounts> = Vec::new();
    for c in &opts.corpora {
        let name = c.display().to_string();
        counts.push(corpus::count(
            &input.counting,
            c,
            input.vocab.len(),
            unk_id,
            &|n| pb.set_message(format!("counting tokens of {name}: {n} lines")),
        )?);
    }
    pb.finish_and_clear();
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
    let text = tokenizer_json::to_pretty(&tj.path, &root)?;
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
    let pb = spinner(opts.progress);
    let mut verification = Vec::new();
    for c in &opts.corpora {
        let name = c.display().to_string();
        verification.push(corpus::verify(
            &input.counting,
            &trimmed,
            c,
            &sel.new_id,
            &|n| {
                pb.set_message(format!(
                    "checking the trimmed tokenizer on {name}: {n} lines"
                ))
            },
        )?);
    }
    pb.finish_and_clear();
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

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The model's `unk_token` when it has one.
fn tj_model_unk(tj: &TokenizerJson) -> Option<String> {
    tj.root
        .get("model")?
        .get("unk_token")?
        .as_str()
        .map(str::to_owned)
}

/// `--keep FILE`: one token string per line (exact vocabulary strings); blank lines skipped.
fn read_keep_file(path: &Path, vocab: &Vocab) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::bad_file(
            path,
            format!(
                "cannot read the --keep file ({e}); pass a UTF-8 text file with one token per line"
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.strip_suffix('\r').unwrap_or(line);
        if t.is_empty() {
            continue;
        }
        if vocab.id(t).is_none() {
            return Err(Error::bad_file(
                path,
                format!(
                    "line {}: `{t}` is not a token of {}; write tokens exactly as in its vocabulary (e.g. Ġthe for GPT-2) or remove the line",
                    i + 1,
                    vocab.path.display()
                ),
            ));
        }
        out.push(t.to_string());
    }
    Ok(out)
}
