//! `clp-gpu apply`: a source model plus a helper's tokenizer in, a loadable model directory out.
//!
//! Stages (each timed in `clp_transfer.json`):
//! 1. **read**: resolve the directories (offline), parse every JSON file, load both tokenizers,
//!    map and validate every safetensors header, find the vocabulary-sized tensors and check
//!    their shapes and dtypes, and create the staging directory beside OUT. Every bad input
//!    fails here, before any tensor data is read.
//! 2. **match**: overlap by exact token string, special tokens by role, the rest missing.
//! 3. **gather**: copy only the rows needed (helper rows of overlap and missing tokens; source
//!    rows of overlap tokens, with the input embedding, lm_head and output bias side by side as
//!    the columns of one matrix, so one set of weights serves all three).
//! 4. **compute**: the CLP combination on the GPU engine or the CPU reference; rejected rows get
//!    the fallback: the mean of the overlapping source rows.
//! 5. **write**: the new vocabulary tensors in the source dtype (overlap and by-role rows copied
//!    bit-exactly, computed rows rounded to nearest even, padding rows zero), every other
//!    tensor copied byte-for-byte, sharded like the source; config, tokenizer files, report;
//!    then the staging directory is renamed to OUT.

use crate::error::{Error, Result};
use crate::model::writer::{self, OutShard, OutTensor, Staging, TensorData};
use crate::model::{hub, naming, ModelDir, VocabTensors, TOKENIZER_FILES};
use crate::tensor::{DType, MatrixRef};
use crate::vocab::{match_vocabularies, Matching, SpecialRole, Vocab};
use crate::weights::{ClpOutput, RejectReason, Selection, TopK, Weighting};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which implementation computes the missing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The WGSL engine on the chosen GPU adapter.
    Gpu,
    /// The plain-Rust f64 reference (slow; for tests and verification).
    CpuReference,
}

impl Backend {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::CpuReference => "cpu-reference",
        }
    }
}

/// What `apply` needs to know.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Source model directory or hub id.
    pub source: String,
    /// Helper model directory or hub id.
    pub helper: String,
    /// Where the target tokenizer comes from (default: the helper directory).
    pub helper_tokenizer: Option<String>,
    /// Output directory (must not exist unless `force`).
    pub out: PathBuf,
    /// Neighbours per missing token.
    pub top_k: TopK,
    /// Compute backend.
    pub backend: Backend,
    /// Replace an existing OUT.
    pub force: bool,
    /// Write per-token provenance (JSON Lines) here.
    pub provenance: Option<PathBuf>,
    /// Round the number of embedding rows up to a multiple of this.
    pub pad_to_multiple: Option<usize>,
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// The command line, recorded in clp_transfer.json.
    pub arguments: Vec<String>,
}

/// What `apply` did (printed by the CLI, `--json` prints it as JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApplySummary {
    /// The output directory.
    pub out: PathBuf,
    /// Resolved source directory.
    pub source: PathBuf,
    /// Resolved helper directory.
    pub helper: PathBuf,
    /// Directory the target tokenizer was copied from.
    pub target_tokenizer: PathBuf,
    /// Backend name.
    pub backend: String,
    /// GPU adapter (GPU backend only).
    pub adapter: Option<String>,
    /// `--top-k`.
    pub top_k: String,
    /// Dtype of the source input embedding (and of the new one).
    pub dtype: String,
    /// Tokens of the target tokenizer (largest id + 1).
    pub target_tokens: usize,
    /// Rows of the new embedding (tokens plus padding).
    pub target_rows: usize,
    /// Tokens copied from the source.
    pub overlap: usize,
    /// Special tokens given the source row of the same role.
    pub special_by_role: usize,
    /// Tokens computed by CLP (fallback rows included).
    pub computed: usize,
    /// Computed tokens that got the fallback instead.
    pub fallback: usize,
    /// Names of the tensors that were rebuilt.
    pub tensors_rebuilt: Vec<String>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
}

/// One missing row that got the fallback.
#[derive(Debug, Clone, serde::Serialize)]
struct FallbackRow {
    target_id: u32,
    token: Option<String>,
    reason: String,
}

/// A vocabulary-sized source tensor being rebuilt: its rows are columns `col..col+cols` of the
/// combined matrix.
struct Part<'a> {
    name: String,
    m: MatrixRef<'a>,
    shape_is_vector: bool,
    safetensors_dtype: safetensors::Dtype,
    col: usize,
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

fn spinner(enabled: bool, msg: String) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner().with_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Runs the whole transfer; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn apply(opts: &ApplyOptions) -> Result<ApplySummary> {
    let mut timer = Timer {
        stages: BTreeMap::new(),
        last: Instant::now(),
    };

    // ---- read -------------------------------------------------------------------------------
    writer::check_out(&opts.out, opts.force)?;
    if opts.pad_to_multiple == Some(0) {
        return Err(Error::Argument(
            "--pad-to-multiple 0: give a whole number ≥ 1".into(),
        ));
    }
    let source_dir = hub::resolve_model_dir(&opts.source, "--source")?;
    let helper_dir = hub::resolve_model_dir(&opts.helper, "--helper")?;
    let tokenizer_dir = match &opts.helper_tokenizer {
        Some(s) => hub::resolve_model_dir(s, "--helper-tokenizer")?,
        None => helper_dir.clone(),
    };
    refuse_out_over_input(&opts.out, &[&source_dir, &helper_dir, &tokenizer_dir])?;
    if let Some(p) = &opts.provenance {
        let parent = p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::Argument(format!(
                "--provenance {}: directory {} does not exist; create it first",
                p.display(),
                parent.display()
            )));
        }
    }

    let source = ModelDir::open(&source_dir)?;
    let helper = ModelDir::open(&helper_dir)?;
    let source_vocab = Vocab::read(&source_dir, Some(&source.config.raw))?;
    let target_vocab = Vocab::read(&tokenizer_dir, Some(&helper.config.raw))?;

    let src_t = naming::find_vocab_tensors(
        &source.weights,
        source.config.model_type.as_deref(),
        source.config.hidden_size,
        source_vocab.len(),
        "source",
    )?;
    if !source.config.tie_word_embeddings && src_t.output.is_none() {
        return Err(Error::Model(format!(
            "source model: {} says tie_word_embeddings = false but no output embedding (lm_head) is in {}; set tie_word_embeddings to true if the model is tied, or add the missing shard",
            source.config.path.display(),
            source.weights.describe()
        )));
    }
    let hlp_t = naming::find_vocab_tensors(
        &helper.weights,
        helper.config.model_type.as_deref(),
        helper.config.hidden_size,
        target_vocab.len(),
        "helper",
    )?;
    let parts = source_parts(&source, &src_t, &source_vocab)?;
    let helper_m = helper.weights.matrix(&hlp_t.input)?;
    if helper_m.rows < target_vocab.len() {
        return Err(Error::bad_file(
            helper.weights.file_of(&hlp_t.input).unwrap_or(&helper_dir),
            format!(
                "helper embedding `{}` has {} rows but the target tokenizer {} has {} tokens; pass the tokenizer the helper was trained with (--helper-tokenizer)",
                hlp_t.input,
                helper_m.rows,
                target_vocab.path.display(),
                target_vocab.len()
            ),
        ));
    }
    timer.lap("read");

    // ---- match ------------------------------------------------------------------------------
    let matching = match_vocabularies(&source_vocab, &target_vocab);
    if matching.overlap.is_empty() {
        return Err(Error::Model(format!(
            "no token of the target tokenizer {} is in the source vocabulary {}; CLP-Transfer needs overlapping tokens: check that --helper/--helper-tokenizer is the intended tokenizer",
            target_vocab.path.display(),
            source_vocab.path.display()
        )));
    }
    let target_tokens = target_vocab.len();
    let target_rows = match opts.pad_to_multiple {
        Some(n) => target_tokens.next_multiple_of(n),
        None => target_tokens,
    };
    let staging = Staging::create(&opts.out, opts.force)?;
    // Open the GPU before gathering anything, so a missing adapter fails fast.
    let engine = match opts.backend {
        Backend::Gpu => Some(crate::Engine::new(crate::Gpu::new()?)?),
        Backend::CpuReference => None,
    };
    timer.lap("match");

    // ---- gather -----------------------------------------------------------------------------
    let cols: usize = parts.iter().map(|p| p.m.cols).sum();
    let overlap_src: Vec<u32> = matching.overlap.iter().map(|p| p.1).collect();
    let overlap_tgt: Vec<u32> = matching.overlap.iter().map(|p| p.0).collect();
    let (e_bytes, e_dtype) = gather_combined(&parts, &overlap_src);
    let h_overlap_bytes = gather_rows(&helper_m, &overlap_tgt);
    let h_missing_bytes = gather_rows(&helper_m, &matching.missing);
    let e_overlap = MatrixRef::new(
        "source overlap rows",
        &e_bytes,
        e_dtype,
        overlap_src.len(),
        cols,
    )?;
    let h_overlap = MatrixRef::new(
        "helper overlap rows",
        &h_overlap_bytes,
        helper_m.dtype,
        overlap_tgt.len(),
        helper_m.cols,
    )?;
    let h_missing = MatrixRef::new(
        "helper missing rows",
        &h_missing_bytes,
        helper_m.dtype,
        matching.missing.len(),
        helper_m.cols,
    )?;
    let fallback_row = mean_rows(&e_overlap);
    timer.lap("gather");

    // ---- compute ----------------------------------------------------------------------------
    let weighting = Weighting::Clp { top_k: opts.top_k };
    let (output, adapter) = compute(
        opts,
        engine.as_ref(),
        &h_missing,
        &h_overlap,
        &e_overlap,
        &weighting,
        matching.missing.len(),
    )?;
    if output.dim != cols || output.rows.len() != matching.missing.len() * cols {
        return Err(Error::Shape(format!(
            "engine returned {} values of width {} for {} rows of width {cols} (a bug in clp-gpu; please report it)",
            output.rows.len(),
            output.dim,
            matching.missing.len()
        )));
    }
    if let Some(sel) = &output.selection {
        let m = matching.missing.len();
        let o = matching.overlap.len() as u32;
        if sel.indices.len() != m * sel.k
            || sel.scores.len() != m * sel.k
            || sel.indices.iter().any(|&j| j >= o)
        {
            return Err(Error::Shape(format!(
                "engine returned a selection of {} indices (k = {}) for {m} rows over {o} overlap rows (a bug in clp-gpu; please report it)",
                sel.indices.len(),
                sel.k
            )));
        }
    }
    if output
        .rejected
        .iter()
        .any(|r| r.row >= matching.missing.len())
    {
        return Err(Error::Shape(
            "engine rejected a row index out of range (a bug in clp-gpu; please report it)".into(),
        ));
    }
    // The gathered rows are no longer needed; free them before the output tensors are built.
    drop((e_bytes, h_overlap_bytes, h_missing_bytes));
    let mut is_fallback = vec![false; matching.missing.len()];
    let mut fallback: Vec<(usize, String)> = Vec::new();
    for r in &output.rejected {
        is_fallback[r.row] = true;
        fallback.push((r.row, reason_name(r.reason)));
    }
    for (i, row) in output.rows.chunks_exact(cols.max(1)).enumerate() {
        if !is_fallback[i] && row.iter().any(|x| !x.is_finite()) {
            is_fallback[i] = true;
            fallback.push((i, "non_finite_result".to_string()));
        }
    }
    fallback.sort();
    timer.lap("compute");

    // ---- write ------------------------------------------------------------------------------
    let out_dir = staging.path().to_path_buf();
    let mut rebuilt: BTreeMap<String, (Vec<u8>, Vec<usize>, safetensors::Dtype)> = BTreeMap::new();
    {
        for p in &parts {
            let bytes = build_part(
                p,
                target_rows,
                &matching,
                &output,
                &is_fallback,
                &fallback_row,
                cols,
            );
            let shape = if p.shape_is_vector {
                vec![target_rows]
            } else {
                vec![target_rows, p.m.cols]
            };
            rebuilt.insert(p.name.clone(), (bytes, shape, p.safetensors_dtype));
        }
    }
    let selection = output.selection;
    drop(output.rows);
    let shards: Vec<OutShard> = source
        .weights
        .files
        .iter()
        .map(|f| OutShard {
            file_name: f.file_name.clone(),
            metadata: f.metadata.clone(),
            tensors: f
                .tensors
                .iter()
                .filter_map(|name| {
                    let t = source.weights.info(name)?;
                    Some(match rebuilt.get(name) {
                        Some((bytes, shape, dtype)) => OutTensor {
                            name: name.clone(),
                            dtype: *dtype,
                            shape: shape.clone(),
                            data: TensorData::Owned(bytes),
                        },
                        None => OutTensor {
                            name: name.clone(),
                            dtype: t.dtype,
                            shape: t.shape.clone(),
                            data: TensorData::Copy {
                                path: &f.path,
                                start: t.start,
                                len_bytes: t.len_bytes,
                            },
                        },
                    })
                })
                .collect(),
        })
        .collect();
    let total_bytes: u64 = shards
        .iter()
        .flat_map(|s| &s.tensors)
        .map(|t| t.data.len_bytes())
        .sum();
    let bar = if opts.progress {
        let pb = ProgressBar::new(total_bytes).with_message("writing");
        if let Ok(style) =
            ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
        {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    };
    for shard in &shards {
        writer::write_shard(&out_dir, shard, &mut |n| bar.inc(n))?;
    }
    bar.finish_and_clear();
    if source.weights.sharded {
        writer::write_index(&out_dir, &shards)?;
    }
    write_configs(&source, &target_vocab, target_rows, &out_dir)?;
    for f in TOKENIZER_FILES {
        let from = tokenizer_dir.join(f);
        if from.is_file() {
            std::fs::copy(&from, out_dir.join(f)).map_err(|e| Error::io(&from, e))?;
        }
    }
    let fallback_rows: Vec<FallbackRow> = fallback
        .iter()
        .map(|(i, reason)| {
            let t = matching.missing[*i];
            FallbackRow {
                target_id: t,
                token: target_vocab.token(t).map(str::to_owned),
                reason: reason.clone(),
            }
        })
        .collect();
    let provenance_tmp = match &opts.provenance {
        Some(p) => Some(write_provenance(
            p,
            &matching,
            selection.as_ref(),
            &fallback,
            &source_vocab,
            &target_vocab,
        )?),
        None => None,
    };
    timer.lap("write");

    let summary = ApplySummary {
        out: opts.out.clone(),
        source: source_dir.clone(),
        helper: helper_dir.clone(),
        target_tokenizer: tokenizer_dir.clone(),
        backend: opts.backend.name().to_string(),
        adapter,
        top_k: opts.top_k.to_string(),
        dtype: parts[0].m.dtype.to_string(),
        target_tokens,
        target_rows,
        overlap: matching.overlap.len(),
        special_by_role: matching.by_role.len(),
        computed: matching.missing.len(),
        fallback: fallback.len(),
        tensors_rebuilt: parts.iter().map(|p| p.name.clone()).collect(),
        timings_s: timer.stages.clone(),
    };
    let report = report_json(
        opts,
        &summary,
        &source,
        &helper,
        &src_t,
        &hlp_t,
        &helper_m,
        &matching,
        &source_vocab,
        &target_vocab,
        &fallback_rows,
    );
    crate::model::config::write_json(&out_dir.join("clp_transfer.json"), &report)?;
    staging.commit()?;
    if let (Some(tmp), Some(p)) = (provenance_tmp, &opts.provenance) {
        std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
    }
    Ok(summary)
}

/// OUT must not be one of the input directories (with --force that would delete an input).
pub(crate) fn refuse_out_over_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let Ok(out_c) = out.canonicalize() else {
        return Ok(());
    };
    for dir in inputs {
        if dir.canonicalize().is_ok_and(|d| d == out_c) {
            return Err(Error::Argument(format!(
                "--out {} is an input directory; choose a different output directory",
                out.display()
            )));
        }
    }
    Ok(())
}

/// The source's vocabulary tensors as parts of the combined matrix, with shapes checked.
fn source_parts<'a>(
    source: &'a ModelDir,
    t: &VocabTensors,
    vocab: &Vocab,
) -> Result<Vec<Part<'a>>> {
    let w = &source.weights;
    let mut names = vec![t.input.clone()];
    names.extend(t.output.iter().cloned());
    names.extend(t.output_bias.iter().cloned());
    let mut parts: Vec<Part> = Vec::new();
    let mut col = 0;
    for name in names {
        let m = w.matrix(&name)?;
        let info = w
            .info(&name)
            .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
        let path = w.file_of(&name).unwrap_or(&source.dir);
        if let Some(first) = parts.first() {
            if m.rows != first.m.rows {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "`{name}` has {} rows but the input embedding `{}` has {}; the checkpoint is inconsistent",
                        m.rows, first.name, first.m.rows
                    ),
                ));
            }
        } else if m.rows < vocab.len() {
            return Err(Error::bad_file(
                path,
                format!(
                    "source embedding `{name}` has {} rows but the source tokenizer {} has {} tokens; use the tokenizer that belongs to this model",
                    m.rows,
                    vocab.path.display(),
                    vocab.len()
                ),
            ));
        }
        parts.push(Part {
            shape_is_vector: info.shape.len() == 1,
            safetensors_dtype: info.dtype,
            name,
            m,
            col,
        });
        col += m.cols;
    }
    Ok(parts)
}

/// Rows `ids` of all parts side by side, in the parts' dtype when they share one, else f32.
fn gather_combined(parts: &[Part], ids: &[u32]) -> (Vec<u8>, DType) {
    let dtype = parts[0].m.dtype;
    let same = parts.iter().all(|p| p.m.dtype == dtype);
    let mut out = Vec::new();
    for &id in ids {
        let r = id as usize;
        for p in parts {
            if same {
                out.extend_from_slice(p.m.rows_bytes(r, r + 1));
            } else {
                let row: Vec<f32> = (0..p.m.cols).map(|c| p.m.get(r, c)).collect();
                out.extend_from_slice(&DType::F32.encode(&row));
            }
        }
    }
    (out, if same { dtype } else { DType::F32 })
}

/// Raw bytes of rows `ids` of `m`.
fn gather_rows(m: &MatrixRef, ids: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() * m.row_bytes());
    for &id in ids {
        out.extend_from_slice(m.rows_bytes(id as usize, id as usize + 1));
    }
    out
}

fn compute(
    opts: &ApplyOptions,
    engine: Option<&crate::Engine>,
    h_missing: &MatrixRef,
    h_overlap: &MatrixRef,
    e_overlap: &MatrixRef,
    weighting: &Weighting,
    missing: usize,
) -> Result<(ClpOutput, Option<String>)> {
    let empty = || ClpOutput {
        rows: Vec::new(),
        dim: e_overlap.cols,
        rejected: Vec::new(),
        selection: None,
    };
    match engine {
        None => {
            let pb = spinner(
                opts.progress,
                format!("computing {missing} rows on the CPU reference"),
            );
            let out = if missing == 0 {
                empty()
            } else {
                crate::reference::clp(h_missing, h_overlap, e_overlap, weighting)
            };
            pb.finish_and_clear();
            Ok((out, None))
        }
        Some(engine) => {
            let adapter = engine.gpu().adapter().to_string();
            let pb = spinner(
                opts.progress,
                format!("computing {missing} rows on {adapter}"),
            );
            let out = if missing == 0 {
                empty()
            } else {
                engine.clp(h_missing, h_overlap, e_overlap, weighting)?
            };
            pb.finish_and_clear();
            Ok((out, Some(adapter)))
        }
    }
}

/// Column means of `m` (the fallback row), accumulated in f64.
fn mean_rows(m: &MatrixRef) -> Vec<f32> {
    let mut acc = vec![0.0f64; m.cols];
    for r in 0..m.rows {
        for (c, a) in acc.iter_mut().enumerate() {
            *a += m.get(r, c) as f64;
        }
    }
    let n = m.rows.max(1) as f64;
    acc.into_iter().map(|a| (a / n) as f32).collect()
}

fn reason_name(r: RejectReason) -> String {
    match serde_json::to_value(r) {
        Ok(Value::String(s)) => s,
        _ => format!("{r:?}"),
    }
}

/// The new bytes of one part: `target_rows` rows in the part's dtype.
fn build_part(
    p: &Part,
    target_rows: usize,
    matching: &Matching,
    output: &ClpOutput,
    is_fallback: &[bool],
    fallback_row: &[f32],
    cols: usize,
) -> Vec<u8> {
    let rb = p.m.row_bytes();
    let mut buf = vec![0u8; target_rows * rb];
    let copy = |buf: &mut Vec<u8>, t: u32, s: u32| {
        let (t, s) = (t as usize, s as usize);
        buf[t * rb..(t + 1) * rb].copy_from_slice(p.m.rows_bytes(s, s + 1));
    };
    for &(t, s) in &matching.overlap {
        copy(&mut buf, t, s);
    }
    for r in &matching.by_role {
        copy(&mut buf, r.target_id, r.source_id);
    }
    for (i, &t) in matching.missing.iter().enumerate() {
        let values = if is_fallback[i] {
            &fallback_row[p.col..p.col + p.m.cols]
        } else {
            &output.rows[i * cols + p.col..i * cols + p.col + p.m.cols]
        };
        let t = t as usize;
        buf[t * rb..(t + 1) * rb].copy_from_slice(&p.m.dtype.encode(values));
    }
    buf
}

/// config.json (and generation_config.json when the source has one) with the target's
/// vocabulary size and special-token ids.
fn write_configs(
    source: &ModelDir,
    target: &Vocab,
    target_rows: usize,
    out_dir: &Path,
) -> Result<()> {
    let id_value = |role: SpecialRole| {
        target
            .special
            .get(&role)
            .map_or(Value::Null, |&id| json!(id))
    };
    let mut config = source.config.raw.clone();
    config.insert("vocab_size".into(), json!(target_rows));
    for role in SpecialRole::ALL {
        let key = role.id_key();
        let always = matches!(role, SpecialRole::Bos | SpecialRole::Eos | SpecialRole::Pad);
        if config.contains_key(&key) || (always && target.special.contains_key(&role)) {
            config.insert(key, id_value(role));
        }
    }
    crate::model::config::write_json(&out_dir.join("config.json"), &Value::Object(config))?;

    let gen_path = source.dir.join("generation_config.json");
    if let Some(mut gen) = crate::model::config::read_optional_json_object(&gen_path)? {
        for role in SpecialRole::ALL {
            let key = role.id_key();
            if gen.contains_key(&key) {
                gen.insert(key, id_value(role));
            }
        }
        if gen.contains_key("decoder_start_token_id") {
            gen.insert("decoder_start_token_id".into(), id_value(SpecialRole::Bos));
        }
        crate::model::config::write_json(
            &out_dir.join("generation_config.json"),
            &Value::Object(gen),
        )?;
    }
    Ok(())
}

/// Writes the provenance JSON Lines to a temporary file beside `path`; returns its path (renamed
/// into place once OUT is committed).
fn write_provenance(
    path: &Path,
    matching: &Matching,
    selection: Option<&Selection>,
    fallback: &[(usize, String)],
    source: &Vocab,
    target: &Vocab,
) -> Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "provenance".into());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
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
    let fb: BTreeMap<usize, &str> = fallback.iter().map(|(i, r)| (*i, r.as_str())).collect();
    for (i, &t) in matching.missing.iter().enumerate() {
        let token = target.token(t);
        let line = if let Some(reason) = fb.get(&i) {
            json!({"id": t, "token": token, "method": "fallback_mean", "reason": reason,
                   "note": "mean of all overlapping source rows"})
        } else if let Some(sel) = selection {
            let idx = &sel.indices[i * sel.k..(i + 1) * sel.k];
            let scores = &sel.scores[i * sel.k..(i + 1) * sel.k];
            let sum: f64 = scores.iter().map(|&s| s as f64).sum();
            let sources: Vec<Value> = idx
                .iter()
                .zip(scores)
                .map(|(&j, &s)| {
                    let (tid, sid) = matching.overlap[j as usize];
                    json!({"id": sid, "token": target.token(tid), "similarity": s, "weight": s as f64 / sum})
                })
                .collect();
            json!({"id": t, "token": token, "method": "clp_top_k", "sources": sources})
        } else {
            json!({"id": t, "token": token, "method": "clp_dense",
                   "note": "weighted over every overlapping token (weight = cosine / sum of cosines); run with --top-k K to list sources"})
        };
        lines.push((t, line));
    }
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

#[allow(clippy::too_many_arguments)]
fn report_json(
    opts: &ApplyOptions,
    summary: &ApplySummary,
    source: &ModelDir,
    helper: &ModelDir,
    src_t: &VocabTensors,
    hlp_t: &VocabTensors,
    helper_m: &MatrixRef,
    matching: &Matching,
    source_vocab: &Vocab,
    target_vocab: &Vocab,
    fallback_rows: &[FallbackRow],
) -> Value {
    let specials: Vec<Value> = target_vocab
        .special
        .iter()
        .map(|(role, &id)| {
            let token = target_vocab.token(id);
            let how = if let Some(&(_, s)) = matching.overlap.iter().find(|p| p.0 == id) {
                json!({"how": "overlap", "source_id": s, "source_token": source_vocab.token(s)})
            } else if let Some(r) = matching.by_role.iter().find(|r| r.target_id == id) {
                json!({"how": "source_row_of_role", "source_role": r.role, "source_id": r.source_id, "source_token": source_vocab.token(r.source_id)})
            } else {
                json!({"how": "computed", "note": "the source has no token for this role"})
            };
            json!({"role": role, "target_id": id, "target_token": token, "mapping": how})
        })
        .collect();
    let input_info = source.weights.info(&src_t.input);
    json!({
        "tool": "clp-gpu",
        "version": env!("CARGO_PKG_VERSION"),
        "arguments": opts.arguments,
        "backend": summary.backend,
        "adapter": summary.adapter,
        "method": {
            "top_k": summary.top_k,
            "weighting": "CLP: weight = cosine similarity in the helper embedding space / sum of weights",
            "overlap_rule": "exact token string; rows copied bit-exactly from the source",
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
            "embedding_rows": input_info.map(|t| t.shape[0]), "tokenizer_tokens": source_vocab.len(),
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
        "special_tokens": specials,
        "fallback": {
            "method": "mean of the overlapping source rows",
            "rows": fallback_rows,
        },
        "tensors_rebuilt": summary.tensors_rebuilt,
        "timings_s": summary.timings_s,
    })
}
