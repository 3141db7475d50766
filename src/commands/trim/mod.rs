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
//!    then the staging directory is renamed to OUT.

pub mod corpus;
pub mod tokenizer_json;

use crate::error::{Error, Result};
use crate::model::rewrite::{self, numel, TensorAction};
use crate::model::writer::{self, Staging};
use crate::model::{hub, naming, ModelDir};
use crate::vocab::Vocab;
use corpus::{CorpusCounts, Verification};
use indicatif::ProgressBar;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenizer_json::{ModelKind, TokenizerJson};

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

/// Why a token was kept (first reason that applies, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    Special,
    KeepFile,
    Frequency,
    ByteAlphabet,
    Alphabet,
    UnkPath,
    MergeClosure,
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

struct Timer {
    stages: BTreeMap<String, f64>,
    last: Instant,
}

impl Timer {
    fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages
            .insert(stage.to_string(), (now - self.last).as_secs_f64());
        self.last = now;
    }
}

fn spinner(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Slow-tokenizer files that cannot be edited: not written to OUT.
const SENTENCEPIECE_FILES: &[&str] =
    &["tokenizer.model", "spiece.model", "sentencepiece.bpe.model"];
/// Files copied unchanged.
const COPIED_FILES: &[&str] = &[
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
];

/// Runs the whole trim; see the module docs. Nothing exists at `opts.out` unless this returns `Ok`.
pub fn trim(opts: &TrimOptions) -> Result<TrimReport> {
    let mut timer = Timer {
        stages: BTreeMap::new(),
        last: Instant::now(),
    };
    // ---- read -------------------------------------------------------------------------------
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
    let model_dir = hub::resolve_model_dir(&opts.model, "--model")?;
    crate::commands::apply::refuse_out_over_input(&opts.out, &[&model_dir])?;
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
    let vt = naming::find_vocab_tensors(
        &model.weights,
        model.config.model_type.as_deref(),
        model.config.hidden_size,
        vocab.len(),
        "model",
    )?;
    if !model.config.tie_word_embeddings && vt.output.is_none() {
        return Err(Error::Model(format!(
            "{} says tie_word_embeddings = false but no output embedding (lm_head) is in {}; set tie_word_embeddings to true if the model is tied, or add the missing shard",
            model.config.path.display(),
            model.weights.describe()
        )));
    }
    let mut vocab_tensors = vec![vt.input.clone()];
    vocab_tensors.extend(vt.output.iter().cloned());
    vocab_tensors.extend(vt.output_bias.iter().cloned());
    let mut embedding_rows_before = 0;
    for (i, name) in vocab_tensors.iter().enumerate() {
        let info = model
            .weights
            .info(name)
            .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
        let path = model.weights.file_of(name).unwrap_or(&model_dir);
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
    let keep_tokens = match &opts.keep {
        Some(p) => read_keep_file(p, &vocab)?,
        None => Vec::new(),
    };
    let counting = tj.load_for_counting()?;
    let staging = Staging::create(&opts.out, opts.force)?;
    timer.lap("read");

    // ---- count ------------------------------------------------------------------------------
    let pb = spinner(opts.progress);
    let unk_id = match tj.kind {
        ModelKind::WordPiece => tj_model_unk(&tj).and_then(|t| vocab.id(&t)),
        _ => None,
    };
    let mut counts: Vec<CorpusCounts> = Vec::new();
    for c in &opts.corpora {
        let name = c.display().to_string();
        counts.push(corpus::count(&counting, c, vocab.len(), unk_id, &|n| {
            pb.set_message(format!("counting tokens of {name}: {n} lines"))
        })?);
    }
    pb.finish_and_clear();
    timer.lap("count");

    // ---- select -----------------------------------------------------------------------------
    let n = vocab.len();
    let mut reason: Vec<Option<Reason>> = vec![None; n];
    let mark = |reason: &mut Vec<Option<Reason>>, token: &str, r: Reason| {
        if let Some(id) = vocab.id(token) {
            let slot = &mut reason[id as usize];
            if slot.is_none() {
                *slot = Some(r);
            }
        }
    };
    for t in tj.added_tokens().iter().chain(&tj.referenced_tokens()) {
        mark(&mut reason, t, Reason::Special);
    }
    let mut config_ids: Vec<u64> = vocab.special.values().map(|&i| i as u64).collect();
    config_ids.extend(rewrite::config_token_ids(&model.config.raw));
    let gen_path = model_dir.join("generation_config.json");
    let generation = crate::model::config::read_optional_json_object(&gen_path)?;
    if let Some(g) = &generation {
        config_ids.extend(rewrite::config_token_ids(g));
    }
    for id in config_ids {
        if let Some(t) = u32::try_from(id).ok().and_then(|i| vocab.token(i)) {
            mark(&mut reason, t, Reason::Special);
        }
    }
    for t in &keep_tokens {
        mark(&mut reason, t, Reason::KeepFile);
    }
    let mut summaries = Vec::new();
    for c in &counts {
        let mut distinct = 0;
        let mut frequent = 0;
        for (id, slot) in reason.iter_mut().enumerate() {
            if c.counts[id] == 0 {
                continue;
            }
            distinct += 1;
            if c.frequency(id) >= opts.min_freq {
                frequent += 1;
                slot.get_or_insert(Reason::Frequency);
            }
        }
        summaries.push(CorpusSummary {
            path: c.path.clone(),
            lines: c.lines,
            tokens: c.tokens,
            distinct_tokens: distinct,
            frequent_tokens: frequent,
        });
    }
    for t in tj.byte_alphabet() {
        mark(&mut reason, &t, Reason::ByteAlphabet);
    }
    let dropped_seen: Vec<u32> = (0..n)
        .filter(|&id| reason[id].is_none() && counts.iter().any(|c| c.counts[id] > 0))
        .map(|id| id as u32)
        .collect();
    for id in dropped_seen {
        if let Some(t) = vocab.token(id) {
            for leaf in tj.leaves(t) {
                mark(&mut reason, &leaf, Reason::Alphabet);
            }
        }
    }
    if tj.kind == ModelKind::WordPiece {
        let spans: std::collections::BTreeSet<&String> =
            counts.iter().flat_map(|c| &c.unk_spans).collect();
        for span in spans {
            for word in pre_tokenized_words(&counting, span)? {
                for t in tj.wordpiece_path(&word) {
                    mark(&mut reason, &t, Reason::UnkPath);
                }
            }
        }
    }
    let kept_strings: HashSet<String> = (0..n)
        .filter(|&id| reason[id].is_some())
        .filter_map(|id| vocab.token(id as u32).map(str::to_owned))
        .collect();
    for t in tj.merge_closure(&kept_strings) {
        mark(&mut reason, &t, Reason::MergeClosure);
    }
    let mut kept = KeptCounts::default();
    let mut kept_ids: Vec<u32> = Vec::new();
    let mut new_id: Vec<Option<u32>> = vec![None; n];
    let mut new_ids: HashMap<String, u32> = HashMap::new();
    for (id, r) in reason.iter().enumerate() {
        let Some(r) = r else { continue };
        let Some(token) = vocab.token(id as u32) else {
            continue;
        };
        match r {
            Reason::Special => kept.special += 1,
            Reason::KeepFile => kept.keep_file += 1,
            Reason::Frequency => kept.frequency += 1,
            Reason::ByteAlphabet => kept.byte_alphabet += 1,
            Reason::Alphabet => kept.alphabet += 1,
            Reason::UnkPath => kept.unk_path += 1,
            Reason::MergeClosure => kept.merge_closure += 1,
        }
        let new = kept_ids.len() as u32;
        new_id[id] = Some(new);
        new_ids.insert(token.to_string(), new);
        kept_ids.push(id as u32);
    }
    timer.lap("select");

    // ---- tokenizer --------------------------------------------------------------------------
    let out_dir = staging.path().to_path_buf();
    let (root, edit) = tj.trimmed(&new_ids)?;
    let tokenizer_text = tokenizer_json::to_pretty(&tj.path, &root)?;
    let written_path = out_dir.join("tokenizer.json");
    let loaded = tokenizer_text.parse::<tokenizers::Tokenizer>().map_err(|e| {
        Error::Model(format!(
            "the trimmed tokenizer does not load ({}); (a bug in clp-gpu; please report it with {})",
            one_line(&e.to_string()),
            tj.path.display()
        ))
    })?;
    for (token, &id) in &new_ids {
        if loaded.token_to_id(token) != Some(id) {
            return Err(Error::Model(format!(
                "the trimmed tokenizer gives `{token}` id {:?} instead of {id}; the ids of {} are not in the layout the tokenizers crate expects (added tokens must follow the model vocabulary)",
                loaded.token_to_id(token),
                tj.path.display()
            )));
        }
    }
    let mut verification = Vec::new();
    if opts.verify {
        let trimmed_tj = TokenizerJson::from_root(&written_path, root.clone())?;
        let trimmed = trimmed_tj.load_for_counting()?;
        let pb = spinner(opts.progress);
        for c in &opts.corpora {
            let name = c.display().to_string();
            verification.push(corpus::verify(&counting, &trimmed, c, &new_id, &|n| {
                pb.set_message(format!(
                    "checking the trimmed tokenizer on {name}: {n} lines"
                ))
            })?);
        }
        pb.finish_and_clear();
    }
    timer.lap("tokenizer");

    // ---- write ------------------------------------------------------------------------------
    let mut actions = BTreeMap::new();
    let mut emb_before = 0;
    let mut emb_after = 0;
    for name in &vocab_tensors {
        let action = gather_rows(&model, name, &kept_ids)?;
        let info = model
            .weights
            .info(name)
            .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
        emb_before += numel(&info.shape);
        if let TensorAction::Replace { shape, .. } = &action {
            emb_after += numel(shape);
        }
        actions.insert(name.clone(), action);
    }
    let written = rewrite::write_weights(&model.weights, &out_dir, &actions)?;
    drop(actions);
    let map = |id: u64| -> Option<u64> {
        usize::try_from(id)
            .ok()
            .and_then(|i| new_id.get(i).copied().flatten())
            .map(u64::from)
    };
    let mut config = model.config.raw.clone();
    config.insert("vocab_size".into(), Value::from(kept_ids.len()));
    let mut unmapped: Vec<String> = rewrite::remap_token_ids(&mut config, &map)
        .into_iter()
        .map(|s| format!("config.json: {s}"))
        .collect();
    crate::model::config::write_json(&out_dir.join("config.json"), &Value::Object(config))?;
    if let Some(mut g) = generation {
        unmapped.extend(
            rewrite::remap_token_ids(&mut g, &map)
                .into_iter()
                .map(|s| format!("generation_config.json: {s}")),
        );
        crate::model::config::write_json(
            &out_dir.join("generation_config.json"),
            &Value::Object(g),
        )?;
    }
    let files_dropped = write_tokenizer_files(
        &model_dir,
        &out_dir,
        &tj,
        &root,
        &tokenizer_text,
        &new_ids,
        &map,
    )?;
    timer.lap("write");

    let tokens_after = kept_ids.len();
    let report = TrimReport {
        out: opts.out.clone(),
        model: model_dir.clone(),
        tokenizer_model: tj.kind,
        min_freq: opts.min_freq,
        corpora: summaries,
        tokens_before: n,
        tokens_after,
        kept,
        merges_before: (tj.kind == ModelKind::Bpe).then_some(edit.merges_before),
        merges_after: (tj.kind == ModelKind::Bpe).then_some(edit.merges_after),
        embedding_tensors: vocab_tensors,
        embedding_rows_before,
        embedding_params_before: emb_before,
        embedding_params_after: emb_after,
        embedding_params_removed_share: if emb_before == 0 {
            0.0
        } else {
            1.0 - emb_after as f64 / emb_before as f64
        },
        model_params_before: rewrite::total_params(&model.weights),
        model_params_after: written.params,
        model_bytes_before: model.weights.total_bytes(),
        model_bytes_after: written.bytes,
        verification,
        config_ids_unmapped: unmapped,
        files_dropped,
        timings_s: timer.stages.clone(),
    };
    let value = serde_json::to_value(&report)
        .map_err(|e| Error::Model(format!("cannot serialise the report: {e}")))?;
    crate::model::config::write_json(&out_dir.join("trim_report.json"), &value)?;
    staging.commit()?;
    Ok(report)
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

/// The words the tokenizer's normalizer and pre-tokenizer make of `span`.
fn pre_tokenized_words(tok: &tokenizers::Tokenizer, span: &str) -> Result<Vec<String>> {
    use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizer};
    let fail = |e: tokenizers::Error| {
        Error::Model(format!(
            "the tokenizer failed on `{span}`: {}",
            one_line(&e.to_string())
        ))
    };
    let mut normalized = tokenizers::NormalizedString::from(span);
    if let Some(n) = tok.get_normalizer() {
        n.normalize(&mut normalized).map_err(fail)?;
    }
    let mut pre = tokenizers::PreTokenizedString::from(normalized);
    if let Some(p) = tok.get_pre_tokenizer() {
        p.pre_tokenize(&mut pre).map_err(fail)?;
    }
    Ok(pre
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(s, _, _)| s.to_string())
        .collect())
}

/// Rows `ids` of tensor `name` (any dtype: rows are copied as bytes), in that order.
fn gather_rows(model: &ModelDir, name: &str, ids: &[u32]) -> Result<TensorAction> {
    let w = &model.weights;
    let info = w
        .info(name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` not found in {}", w.describe())))?;
    let bytes = w.bytes(name)?;
    let rows = info.shape.first().copied().unwrap_or(0).max(1);
    let row_bytes = bytes.len() / rows;
    let mut out = Vec::with_capacity(ids.len() * row_bytes);
    for &id in ids {
        let r = id as usize;
        out.extend_from_slice(&bytes[r * row_bytes..(r + 1) * row_bytes]);
    }
    let mut shape = info.shape.clone();
    shape[0] = ids.len();
    Ok(TensorAction::Replace {
        name: name.to_string(),
        dtype: info.dtype,
        shape,
        bytes: out,
    })
}

/// Writes tokenizer.json and the other tokenizer files; returns the files not written.
fn write_tokenizer_files(
    model_dir: &Path,
    out_dir: &Path,
    tj: &TokenizerJson,
    root: &Map<String, Value>,
    tokenizer_text: &str,
    new_ids: &HashMap<String, u32>,
    map: &dyn Fn(u64) -> Option<u64>,
) -> Result<Vec<String>> {
    let write = |name: &str, text: &str| {
        let p = out_dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    write("tokenizer.json", tokenizer_text)?;
    let tc_path = model_dir.join("tokenizer_config.json");
    if let Some(tc) = crate::model::config::read_optional_json_object(&tc_path)? {
        write(
            "tokenizer_config.json",
            &tokenizer_json::remap_tokenizer_config(&tc, map)?,
        )?;
    }
    rewrite::copy_files(model_dir, out_dir, COPIED_FILES)?;
    let mut dropped = Vec::new();
    if model_dir.join("vocab.txt").is_file() {
        if tj.kind == ModelKind::WordPiece {
            write("vocab.txt", &TokenizerJson::vocab_txt(root))?;
        } else {
            dropped.push("vocab.txt".to_string());
        }
    }
    let has_vocab_json = model_dir.join("vocab.json").is_file();
    let merges_path = model_dir.join("merges.txt");
    if has_vocab_json || merges_path.is_file() {
        if tj.kind == ModelKind::Bpe {
            let header = std::fs::read_to_string(&merges_path)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_owned))
                .filter(|l| l.starts_with("#version"));
            let (vocab_json, merges) =
                TokenizerJson::vocab_json_and_merges(root, header.as_deref());
            if has_vocab_json {
                write("vocab.json", &vocab_json)?;
            }
            if merges_path.is_file() {
                write("merges.txt", &merges)?;
            }
        } else {
            dropped.extend(
                ["vocab.json", "merges.txt"]
                    .iter()
                    .filter(|f| model_dir.join(f).is_file())
                    .map(|f| f.to_string()),
            );
        }
    }
    let added_path = model_dir.join("added_tokens.json");
    if let Some(added) = crate::model::config::read_optional_json_object(&added_path)? {
        let remapped: Map<String, Value> = added
            .keys()
            .filter_map(|t| Some((t.clone(), Value::from(*new_ids.get(t)?))))
            .collect();
        crate::model::config::write_json(
            &out_dir.join("added_tokens.json"),
            &Value::Object(remapped),
        )?;
    }
    dropped.extend(
        SENTENCEPIECE_FILES
            .iter()
            .filter(|f| model_dir.join(f).is_file())
            .map(|f| f.to_string()),
    );
    Ok(dropped)
}
