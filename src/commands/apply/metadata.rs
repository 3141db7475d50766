//! Stage 5, **write metadata**: config.json and generation_config.json with the target's
//! vocabulary size and special-token ids, the target tokenizer's files, the per-token
//! provenance (`--provenance`, JSON Lines) and the report `clp_transfer.json`. Generic file
//! writing (safetensors shards, JSON) is [`crate::model::writer`] and [`crate::model::json`].

use super::configs::OutConfigs;
use super::options::{ApplyOptions, ApplySummary};
use super::pad::{self, Pad};
use super::rows::Computed;
use crate::error::{Error, Result};
use crate::model::json::write_json;
use crate::model::pair::ModelPair;
use crate::tensor::MatrixRef;
use crate::vocab::{Matching, Vocab};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything the metadata of one transfer is made from.
pub(super) struct Transfer<'a> {
    /// The options.
    pub opts: &'a ApplyOptions,
    /// The inputs.
    pub pair: &'a ModelPair,
    /// The helper's input embedding.
    pub helper_m: &'a MatrixRef<'a>,
    /// How the tokens matched.
    pub matching: &'a Matching,
    /// What the computation left.
    pub computed: &'a Computed,
    /// The target tokenizer, with `--pad-token` applied.
    pub target_vocab: &'a Vocab,
    /// The pad token chosen with `--pad-token`.
    pub pad: Option<&'a Pad>,
    /// The output's configs.
    pub configs: &'a OutConfigs,
}

/// One missing row that got the fallback.
#[derive(Debug, Clone, serde::Serialize)]
struct FallbackRow {
    target_id: u32,
    token: Option<String>,
    reason: String,
}

/// Writes the configs and the tokenizer files into `out_dir`; writes the provenance to a
/// temporary file beside its path and returns that (renamed once OUT is committed).
pub(super) fn write_metadata(t: &Transfer, out_dir: &Path) -> Result<Option<PathBuf>> {
    write_json(
        &out_dir.join("config.json"),
        &Value::Object(t.configs.config.clone()),
    )?;
    if let Some(gen) = &t.configs.generation {
        write_json(
            &out_dir.join("generation_config.json"),
            &Value::Object(gen.clone()),
        )?;
    }
    pad::write_tokenizer_files(t.pad, &t.pair.tokenizer_dir, out_dir)?;
    match &t.opts.provenance {
        Some(p) => Ok(Some(write_provenance(t, p)?)),
        None => Ok(None),
    }
}

/// Writes the provenance JSON Lines to a temporary file beside `path`; returns its path.
fn write_provenance(t: &Transfer, path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "provenance".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut lines = provenance_lines(t);
    lines.sort_by_key(|l| l.0);
    let mut text = Vec::new();
    for (_, l) in &lines {
        serde_json::to_writer(&mut text, l).map_err(|e| Error::bad_file(path, e.to_string()))?;
        text.push(b'\n');
    }
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&text).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

/// One provenance line per by-role and per computed token, keyed by target id (unsorted).
fn provenance_lines(t: &Transfer) -> Vec<(u32, Value)> {
    let (matching, source, target) = (t.matching, &t.pair.source_vocab, t.target_vocab);
    let mut lines: Vec<(u32, Value)> = Vec::new();
    for r in &matching.by_role {
        lines.push((
            r.target_id,
            json!({
                "id": r.target_id, "token": target.token(r.target_id), "method": "special_role",
                "role": r.role, "sources": [{"id": r.source_id, "token": source.token(r.source_id), "weight": 1.0}],
            }),
        ));
    }
    let fb: BTreeMap<usize, &str> = t
        .computed
        .fallback
        .iter()
        .map(|(i, r)| (*i, r.as_str()))
        .collect();
    for (i, &id) in matching.missing.iter().enumerate() {
        lines.push((id, computed_line(t, i, id, fb.get(&i).copied())));
    }
    lines
}

/// The provenance of missing row `i` (target id `id`).
fn computed_line(t: &Transfer, i: usize, id: u32, fallback: Option<&str>) -> Value {
    let (matching, target) = (t.matching, t.target_vocab);
    let token = target.token(id);
    if let Some(reason) = fallback {
        json!({"id": id, "token": token, "method": "fallback_mean", "reason": reason,
               "note": "mean of all overlapping source rows"})
    } else if let Some(sel) = &t.computed.selection {
        let idx = &sel.indices[i * sel.k..(i + 1) * sel.k];
        let scores = &sel.scores[i * sel.k..(i + 1) * sel.k];
        let weights = &sel.weights[i * sel.k..(i + 1) * sel.k];
        let sum: f64 = if t.opts.weighting.divides_by_weight_sum() {
            weights.iter().map(|&w| w as f64).sum()
        } else {
            1.0 // omp: the coefficients as solved
        };
        let sources: Vec<Value> = idx
            .iter()
            .zip(scores.iter().zip(weights))
            .filter(|(_, (_, &w))| w != 0.0)
            .map(|(&j, (&s, &w))| {
                let (tid, sid) = matching.overlap[j as usize];
                json!({"id": sid, "token": target.token(tid), "similarity": s, "weight": w as f64 / sum})
            })
            .collect();
        let method = format!("{}_top_k", t.opts.weighting.name());
        json!({"id": id, "token": token, "method": method, "sources": sources})
    } else {
        json!({"id": id, "token": token, "method": "clp_dense",
               "note": "weighted over every overlapping token (weight = cosine / sum of cosines); run with --top-k K to list sources"})
    }
}

/// One line on how a weighting turns similarities into weights (for clp_transfer.json).
fn weighting_rule(label: &str) -> &'static str {
    match label.split(' ').next().unwrap_or("") {
        "softmax" => "softmax: weight = exp((cos - max cos) / T) over the top-k, normalised to sum 1",
        "sparsemax" => "sparsemax of the cosines over the top-k (weights sum to 1, most are 0)",
        "omp" => "orthogonal matching pursuit: least-squares coefficients of k atoms chosen greedily among the 4k most similar tokens in the helper space, used as solved (not normalised); a row whose L2 norm leaves the range of the overlapping source rows' norms gets the fallback",
        _ => "CLP: weight = cosine similarity in the helper embedding space / sum of weights",
    }
}

/// Writes `clp_transfer.json` into `out_dir`.
pub(super) fn write_report(t: &Transfer, summary: &ApplySummary, out_dir: &Path) -> Result<()> {
    let mut report = report_json(t, summary);
    if !summary.notices.is_empty() {
        report["notices"] = json!(summary.notices);
    }
    write_json(&out_dir.join("clp_transfer.json"), &report)
}

/// How each special token of the target got its row.
fn special_tokens(t: &Transfer) -> Vec<Value> {
    let (matching, source, target) = (t.matching, &t.pair.source_vocab, t.target_vocab);
    target
        .special
        .iter()
        .map(|(role, &id)| {
            let token = target.token(id);
            let how = if let Some(&(_, s)) = matching.overlap.iter().find(|p| p.0 == id) {
                json!({"how": "overlap", "source_id": s, "source_token": source.token(s)})
            } else if let Some(r) = matching.by_role.iter().find(|r| r.target_id == id) {
                json!({"how": "source_row_of_role", "source_role": r.role, "source_id": r.source_id, "source_token": source.token(r.source_id)})
            } else if t.pad.is_some_and(|p| p.is_new() && p.id == id) {
                json!({"how": "added_pad_token", "note": "added with --pad-token; its row is zeros (the source has no pad token)"})
            } else {
                json!({"how": "computed", "note": "the source has no token for this role"})
            };
            json!({"role": role, "target_id": id, "target_token": token, "mapping": how})
        })
        .collect()
}

/// The rows that got the fallback, with their target ids and tokens.
fn fallback_rows(t: &Transfer) -> Vec<FallbackRow> {
    t.computed
        .fallback
        .iter()
        .map(|(i, reason)| {
            let id = t.matching.missing[*i];
            FallbackRow {
                target_id: id,
                token: t.target_vocab.token(id).map(str::to_owned),
                reason: reason.clone(),
            }
        })
        .collect()
}

fn report_json(t: &Transfer, summary: &ApplySummary) -> Value {
    let (pair, matching, helper_m) = (t.pair, t.matching, t.helper_m);
    let (source, helper, src_t, hlp_t) = (&pair.source, &pair.helper, &pair.src_t, &pair.hlp_t);
    let input_info = source.weights.info(&src_t.input);
    json!({
        "tool": "clp-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "arguments": t.opts.arguments,
        "backend": summary.backend,
        "adapter": summary.adapter,
        "method": {
            "preset": summary.preset,
            "match": summary.match_mode,
            "top_k": summary.top_k,
            "weighting": summary.weighting,
            "weighting_rule": weighting_rule(&summary.weighting),
            "overlap_rule": matching.mode.rule(),
            "special_tokens": "a missing target special token takes the source row of the same role when there is one",
            "output_dtype": summary.dtype,
            "rounding": "computed rows rounded to nearest even in the source dtype",
            "untied_output": "lm_head and output bias rows use the same weights as the input embedding",
        },
        "source": {
            "dir": source.dir, "model_type": source.config.model_type, "weights": source.weights.describe(),
            "size_bytes": source.weights.total_bytes(),
            "tie_word_embeddings": source.config.tie_word_embeddings,
            "input_embedding": src_t.input, "output_embedding": src_t.output, "output_bias": src_t.output_bias,
            "embedding_rows": input_info.map(|t| t.shape[0]), "tokenizer_tokens": pair.source_vocab.len(),
        },
        "helper": {
            "dir": helper.dir, "model_type": helper.config.model_type, "weights": helper.weights.describe(),
            "size_bytes": helper.weights.total_bytes(),
            "input_embedding": hlp_t.input, "embedding_rows": helper_m.rows, "dim": helper_m.cols, "dtype": helper_m.dtype.to_string(),
        },
        "target_tokenizer": { "dir": summary.target_tokenizer, "tokens": summary.target_tokens },
        "target_rows": summary.target_rows,
        "padding_rows": { "count": summary.target_rows - summary.target_tokens, "value": "zeros" },
        "counts": {
            "overlap": summary.overlap, "special_by_role": summary.special_by_role,
            "computed": summary.computed, "fallback": summary.fallback,
        },
        "matching": matching.report(&pair.source_vocab, t.target_vocab, 10),
        "pad_token": t.pad.map(|p| json!({"token": p.token, "id": p.id, "added": p.is_new()})),
        "special_tokens": special_tokens(t),
        "fallback": {
            "method": "mean of the overlapping source rows",
            "rows": fallback_rows(t),
        },
        "tensors_rebuilt": summary.tensors_rebuilt,
        "timings_s": summary.timings_s,
    })
}
