//! Stage 5, **write metadata**: config.json and generation_config.json with the target's
//! vocabulary size and special-token ids, the target tokenizer's files, the per-token
//! provenance (`--provenance`, JSON Lines) and the report `clp_transfer.json`. Generic file
//! writing (safetensors shards, JSON) is [`crate::model::writer`] and [`crate::json`].

use super::configs::OutConfigs;
use super::options::{ApplyOptions, ApplySummary, Fallback, Method};
use super::pad::{self, Pad};
use super::rows::{Computed, FallbackRow};
use crate::error::{Error, Result};
use crate::json::write_json;
use crate::model::pair::{Helper, SourceTarget};
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
    /// The source and the target tokenizer.
    pub pair: &'a SourceTarget,
    /// The helper and its input embedding (weighted methods only).
    pub helper: Option<(&'a Helper, &'a MatrixRef<'a>)>,
    /// The `--helper` directory, when given.
    pub helper_dir: Option<&'a Path>,
    /// How the tokens matched.
    pub matching: &'a Matching,
    /// The method as it ran.
    pub method: &'a Method,
    /// What the computation left.
    pub computed: &'a Computed,
    /// The target tokenizer, with `--pad-token` applied.
    pub target_vocab: &'a Vocab,
    /// The pad token chosen with `--pad-token`.
    pub pad: Option<&'a Pad>,
    /// The output's configs.
    pub configs: &'a OutConfigs,
}

/// One row that got a fallback, as the report lists it.
#[derive(Debug, Clone, serde::Serialize)]
struct FallbackEntry {
    target_id: u32,
    token: Option<String>,
    reason: String,
    got: Fallback,
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

/// One provenance line per by-role token, per computed token and per token without a helper
/// row, keyed by target id (unsorted).
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
    let mut fb: BTreeMap<u32, &FallbackRow> = (t.computed.fallback.iter())
        .map(|f| (f.target_id, f))
        .collect();
    for (i, &id) in matching.missing.iter().enumerate() {
        let line = match fb.remove(&id) {
            Some(f) => fallback_line(t, f),
            None => computed_line(t, i, id),
        };
        lines.push((id, line));
    }
    // Tokens without a helper row, not among the missing rows.
    for f in fb.values() {
        lines.push((f.target_id, fallback_line(t, f)));
    }
    lines
}

/// The source tokens an FVT row of target token `id` averages, each weighted 1/n.
fn fvt_sources(t: &Transfer, id: u32) -> Vec<Value> {
    let ids = t.computed.spellings.get(&id).map_or(&[][..], Vec::as_slice);
    let w = 1.0 / ids.len().max(1) as f64;
    (ids.iter())
        .map(|&s| json!({"id": s, "token": t.pair.source_vocab.token(s), "weight": w}))
        .collect()
}

/// The provenance of a row that got a fallback: which, and why.
fn fallback_line(t: &Transfer, f: &FallbackRow) -> Value {
    let (id, token) = (f.target_id, t.target_vocab.token(f.target_id));
    match f.got {
        Fallback::Fvt => {
            json!({"id": id, "token": token, "method": "fallback_fvt", "reason": f.reason,
            "sources": fvt_sources(t, id),
            "note": "mean of the source rows of the token as the source tokenizer spells it"})
        }
        Fallback::Mean => {
            let note = if t.opts.fallback == Fallback::Fvt || *t.method == Method::Fvt {
                "mean of all overlapping source rows (the source tokenizer cannot spell this token)"
            } else {
                "mean of all overlapping source rows"
            };
            json!({"id": id, "token": token, "method": "fallback_mean", "reason": f.reason, "note": note})
        }
    }
}

/// The provenance of missing row `i` (target id `id`) built by the method.
fn computed_line(t: &Transfer, i: usize, id: u32) -> Value {
    let (matching, target) = (t.matching, t.target_vocab);
    let token = target.token(id);
    if *t.method == Method::Fvt {
        json!({"id": id, "token": token, "method": "fvt", "sources": fvt_sources(t, id)})
    } else if let Some(sel) = &t.computed.selection {
        let idx = &sel.indices[i * sel.k..(i + 1) * sel.k];
        let scores = &sel.scores[i * sel.k..(i + 1) * sel.k];
        let weights = &sel.weights[i * sel.k..(i + 1) * sel.k];
        let divides = match t.method {
            Method::Weighted(w) => w.divides_by_weight_sum(),
            Method::Fvt => true,
        };
        let sum: f64 = if divides {
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
        let method = format!("{}_top_k", t.method.name());
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
        "omp" => "orthogonal matching pursuit: k atoms chosen greedily among the 4k most similar tokens in the helper space; their affine least-squares coefficients (summing to 1) for the raw helper row weight the source rows as solved; a row longer (L2) than every overlapping source row gets the fallback",
        "fvt" => "FVT: the mean of the source rows of the token as the source tokenizer spells it (its bytes and word start; lone bytes through byte-fallback tokens); no helper weights",
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

/// The rows that got a fallback, with their target ids and tokens.
fn fallback_rows(t: &Transfer) -> Vec<FallbackEntry> {
    (t.computed.fallback.iter())
        .map(|f| FallbackEntry {
            target_id: f.target_id,
            token: t.target_vocab.token(f.target_id).map(str::to_owned),
            reason: f.reason.clone(),
            got: f.got,
        })
        .collect()
}

/// The helper in the report: the model a weighted method read, or what FVT did not read.
fn helper_json(t: &Transfer) -> Value {
    match t.helper {
        Some((h, m)) => json!({
            "dir": h.dir, "model_type": h.model.config.model_type, "weights": h.model.weights.describe(),
            "size_bytes": h.model.weights.total_bytes(),
            "input_embedding": h.t.input, "embedding_rows": m.rows, "dim": m.cols, "dtype": m.dtype.to_string(),
        }),
        None => json!({"dir": t.helper_dir, "weights": "not read: fvt needs none"}),
    }
}

/// What the fallback rows got, per `--fallback`.
fn fallback_rule(f: Fallback) -> &'static str {
    match f {
        Fallback::Fvt => "fvt: the token's FVT row (the mean of the source rows of its spelling by the source tokenizer); the mean of the overlapping source rows when the source tokenizer cannot spell it",
        Fallback::Mean => "mean of the overlapping source rows",
    }
}

fn report_json(t: &Transfer, summary: &ApplySummary) -> Value {
    let (pair, matching) = (t.pair, t.matching);
    let (source, src_t) = (&pair.source, &pair.src_t);
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
            "fallback": summary.fallback_method,
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
        "helper": helper_json(t),
        "target_tokenizer": { "dir": summary.target_tokenizer, "tokens": summary.target_tokens },
        "target_rows": summary.target_rows,
        "padding_rows": { "count": summary.target_rows - summary.target_tokens, "value": "zeros" },
        "counts": {
            "overlap": summary.overlap, "special_by_role": summary.special_by_role,
            "computed": summary.computed, "fallback": summary.fallback,
            "fallback_fvt": summary.fallback_rows.fvt, "fallback_mean": summary.fallback_rows.mean,
        },
        "matching": matching.report(&pair.source_vocab, t.target_vocab, 10),
        "pad_token": t.pad.map(|p| json!({"token": p.token, "id": p.id, "added": p.is_new()})),
        "special_tokens": special_tokens(t),
        "fallback": {
            "method": summary.fallback_method,
            "rule": fallback_rule(summary.fallback_method),
            "rows": fallback_rows(t),
        },
        "tensors_rebuilt": summary.tensors_rebuilt,
        "timings_s": summary.timings_s,
    })
}
