//! Stage 5, **write**: the kept rows of the vocabulary tensors in the new order (bytes copied),
//! every other tensor byte-for-byte ([`rewrite::write_weights`]); config ids and `vocab_size`;
//! tokenizer.json and the other tokenizer files.

use super::input::Read;
use super::select::Selection;
use crate::error::{Error, Result};
use crate::json::{read_optional_json_object, write_json};
use crate::model::rewrite::{self, numel, TensorAction, Written};
use crate::model::ModelDir;
use crate::tokenizer::write as tokenizer_files;
use crate::tokenizer::{ModelKind, TokenizerJson};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Slow-tokenizer files that cannot be edited: not written to OUT.
const SENTENCEPIECE_FILES: &[&str] =
    &["tokenizer.model", "spiece.model", "sentencepiece.bpe.model"];
/// Files copied unchanged.
const COPIED_FILES: &[&str] = &[
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
];

/// The trimmed tokenizer.json.
pub(super) struct TrimmedTokenizer {
    /// Its JSON.
    pub root: Map<String, Value>,
    /// Its text as written.
    pub text: String,
}

/// What the write stage did.
pub(super) struct WriteOutcome {
    /// The weights written.
    pub written: Written,
    /// Elements of the vocabulary tensors before.
    pub emb_before: u64,
    /// Elements of the vocabulary tensors after.
    pub emb_after: u64,
    /// Config `*_token_id` values that name no kept token.
    pub unmapped: Vec<String>,
    /// Tokenizer files not written.
    pub files_dropped: Vec<String>,
}

/// Writes the weights, configs and tokenizer files into `out_dir`.
pub(super) fn write_output(
    input: &Read,
    sel: &Selection,
    tokenizer: &TrimmedTokenizer,
    generation: Option<Map<String, Value>>,
    out_dir: &Path,
) -> Result<WriteOutcome> {
    // Kept tokens past the embedding (added tokens with no row) keep no row: they stay past it.
    let rows = input.embedding_rows_before;
    let kept_rows: Vec<u32> = sel
        .kept_ids
        .iter()
        .copied()
        .filter(|&i| (i as usize) < rows)
        .collect();
    let (written, emb_before, emb_after) = write_weights(input, &kept_rows, out_dir)?;
    let map = |id: u64| -> Option<u64> {
        usize::try_from(id)
            .ok()
            .and_then(|i| sel.new_id.get(i).copied().flatten())
            .map(u64::from)
    };
    let unmapped = write_configs(input, kept_rows.len(), generation, &map, out_dir)?;
    let files_dropped = write_tokenizer_files(input, out_dir, tokenizer, &sel.new_ids, &map)?;
    Ok(WriteOutcome {
        written,
        emb_before,
        emb_after,
        unmapped,
        files_dropped,
    })
}

/// Every tensor, the vocabulary tensors cut to `kept_ids`; returns what was written and the
/// vocabulary tensors' elements before and after.
fn write_weights(input: &Read, kept_ids: &[u32], out_dir: &Path) -> Result<(Written, u64, u64)> {
    let model = &input.model;
    let mut actions = BTreeMap::new();
    let mut emb_before = 0;
    let mut emb_after = 0;
    for name in &input.vocab_tensors {
        let action = gather_rows(model, name, kept_ids)?;
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
    let written = rewrite::write_weights(&model.weights, out_dir, &actions)?;
    Ok((written, emb_before, emb_after))
}

/// config.json (`vocab_size`, remapped ids) and generation_config.json; returns the ids that
/// name no kept token.
fn write_configs(
    input: &Read,
    tokens: usize,
    generation: Option<Map<String, Value>>,
    map: &dyn Fn(u64) -> Option<u64>,
    out_dir: &Path,
) -> Result<Vec<String>> {
    let mut config = input.model.config.raw.clone();
    config.insert("vocab_size".into(), Value::from(tokens));
    let mut unmapped: Vec<String> = rewrite::remap_token_ids(&mut config, map)
        .into_iter()
        .map(|s| format!("config.json: {s}"))
        .collect();
    write_json(&out_dir.join("config.json"), &Value::Object(config))?;
    if let Some(mut g) = generation {
        unmapped.extend(
            rewrite::remap_token_ids(&mut g, map)
                .into_iter()
                .map(|s| format!("generation_config.json: {s}")),
        );
        write_json(&out_dir.join("generation_config.json"), &Value::Object(g))?;
    }
    Ok(unmapped)
}

/// Rows `ids` of tensor `name` (any dtype: rows are copied as bytes), in that order; `[V]` and
/// `[1, V]` tensors have rows of one value.
fn gather_rows(model: &ModelDir, name: &str, ids: &[u32]) -> Result<TensorAction> {
    let w = &model.weights;
    let info = w
        .info(name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` not found in {}", w.describe())))?;
    let bytes = w.bytes(name)?;
    let row_vector = matches!(info.shape.as_slice(), [1, v] if *v > 1);
    let vocab_dim = usize::from(row_vector);
    let rows = info.shape.get(vocab_dim).copied().unwrap_or(0).max(1);
    let row_bytes = bytes.len() / rows;
    let mut out = Vec::with_capacity(ids.len() * row_bytes);
    for &id in ids {
        let r = id as usize;
        out.extend_from_slice(&bytes[r * row_bytes..(r + 1) * row_bytes]);
    }
    let mut shape = info.shape.clone();
    shape[vocab_dim] = ids.len();
    Ok(TensorAction::Replace {
        name: name.to_string(),
        dtype: info.dtype,
        shape,
        bytes: out,
    })
}

fn write_text(out_dir: &Path, name: &str, text: &str) -> Result<()> {
    let p = out_dir.join(name);
    std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
}

/// Writes tokenizer.json and the other tokenizer files; returns the files not written.
fn write_tokenizer_files(
    input: &Read,
    out_dir: &Path,
    tokenizer: &TrimmedTokenizer,
    new_ids: &HashMap<String, u32>,
    map: &dyn Fn(u64) -> Option<u64>,
) -> Result<Vec<String>> {
    let model_dir = &input.model_dir;
    write_text(out_dir, "tokenizer.json", &tokenizer.text)?;
    let tc_path = model_dir.join("tokenizer_config.json");
    if let Some(tc) = read_optional_json_object(&tc_path)? {
        let text = tokenizer_files::remap_tokenizer_config(&tc, map)?;
        write_text(out_dir, "tokenizer_config.json", &text)?;
    }
    rewrite::copy_files(model_dir, out_dir, COPIED_FILES)?;
    let mut dropped = write_slow_vocab_files(model_dir, out_dir, &input.tj, &tokenizer.root)?;
    let added_path = model_dir.join("added_tokens.json");
    if let Some(added) = read_optional_json_object(&added_path)? {
        let remapped: Map<String, Value> = added
            .keys()
            .filter_map(|t| Some((t.clone(), Value::from(*new_ids.get(t)?))))
            .collect();
        write_json(&out_dir.join("added_tokens.json"), &Value::Object(remapped))?;
    }
    dropped.extend(
        SENTENCEPIECE_FILES
            .iter()
            .filter(|f| model_dir.join(f).is_file())
            .map(|f| f.to_string()),
    );
    Ok(dropped)
}

/// vocab.txt (WordPiece), vocab.json and merges.txt (BPE) when the input has them, rebuilt from
/// the trimmed tokenizer.json; returns those that do not fit the tokenizer model (dropped).
fn write_slow_vocab_files(
    model_dir: &Path,
    out_dir: &Path,
    tj: &TokenizerJson,
    root: &Map<String, Value>,
) -> Result<Vec<String>> {
    let mut dropped = Vec::new();
    if model_dir.join("vocab.txt").is_file() {
        if tj.kind == ModelKind::WordPiece {
            write_text(out_dir, "vocab.txt", &tokenizer_files::vocab_txt(root))?;
        } else {
            dropped.push("vocab.txt".to_string());
        }
    }
    let has_vocab_json = model_dir.join("vocab.json").is_file();
    let merges_path = model_dir.join("merges.txt");
    if !(has_vocab_json || merges_path.is_file()) {
        return Ok(dropped);
    }
    if tj.kind == ModelKind::Bpe {
        let header = std::fs::read_to_string(&merges_path)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
            .filter(|l| l.starts_with("#version"));
        let (vocab_json, merges) = tokenizer_files::vocab_json_and_merges(root, header.as_deref());
        if has_vocab_json {
            write_text(out_dir, "vocab.json", &vocab_json)?;
        }
        if merges_path.is_file() {
            write_text(out_dir, "merges.txt", &merges)?;
        }
    } else {
        dropped.extend(
            ["vocab.json", "merges.txt"]
                .iter()
                .filter(|f| model_dir.join(f).is_file())
                .map(|f| f.to_string()),
        );
    }
    Ok(dropped)
}
