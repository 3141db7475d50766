//! `clp-gpu apply`: a source model plus a helper's tokenizer in, a loadable model directory out.
//!
//! Stages (each timed in `clp_transfer.json`):
//! 1. **read**: resolve the directories (offline), parse every JSON file, load both tokenizers,
//!    map and validate every safetensors header, find the vocabulary-sized tensors and check
//!    their shapes and dtypes, and create the staging directory beside OUT. Every bad input
//!    fails here, before any tensor data is read.
//! 2. **match**: overlap by exact token string (`--match canonical`: or by canonical form),
//!    special tokens by role, the rest missing.
//! 3. **gather**: copy only the rows needed (helper rows of overlap and missing tokens; source
//!    rows of overlap tokens, with the input embedding, lm_head and output bias side by side as
//!    the columns of one matrix, so one set of weights serves all three).
//! 4. **compute**: the CLP combination on the GPU engine or the CPU reference; rejected rows get
//!    the fallback: the mean of the overlapping source rows.
//! 5. **write**: the new vocabulary tensors in the source dtype (overlap and by-role rows copied
//!    bit-exactly, computed rows rounded to nearest even, padding rows zero), every other
//!    tensor copied byte-for-byte, sharded like the source; config, tokenizer files, report;
//!    then the staging directory is renamed to OUT.

use crate::backend::{Backend, TileOut};
use crate::error::{Error, Result};
use crate::model::writer::{self, OutShard, OutTensor, Staging, TensorData};
use crate::model::{hub, naming, ModelDir, VocabTensors, Weights, TOKENIZER_FILES};
use crate::rows::{RowSet, Storage, Stored};
use crate::tensor::{DType, MatrixRef};
use crate::vocab::{match_tokens, MatchCounts, MatchMode, Matching, SpecialRole, Vocab};
use crate::weights::{RejectReason, Selection, TopK, Weighting};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Weighting name: clp, softmax, sparsemax or omp.
    pub weighting: String,
    /// Softmax temperature.
    pub temperature: f32,
    /// How target tokens are matched with source tokens.
    pub match_mode: MatchMode,
    /// Compute backend.
    pub backend: Backend,
    /// Memory budget of the tile buffers (GPU memory, or the CPU working set), bytes.
    pub memory_bytes: u64,
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
    /// The weighting (method, k, temperature).
    pub weighting: String,
    /// Dtype of the source input embedding (and of the new one).
    pub dtype: String,
    /// Tokens of the target tokenizer (largest id + 1).
    pub target_tokens: usize,
    /// Rows of the new embedding (tokens plus padding).
    pub target_rows: usize,
    /// Tokens copied from the source.
    pub overlap: usize,
    /// How the tokens matched, per kind (exact, canonical-only, special by role, missing).
    pub matching: MatchCounts,
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

/// Runs the whole transfer; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn apply(opts: &ApplyOptions) -> Result<ApplySummary> {
    let mut timer = Timer {
        stages: BTreeMap::new(),
        last: Instant::now(),
    };

    // ---- read -------------------------------------------------------------------------------
    writer::check_out(&opts.out, opts.force)?;
    let weighting = Weighting::from_parts(&opts.weighting, opts.top_k, opts.temperature)
        .map_err(Error::Argument)?;
    if opts.pad_to_multiple == Some(0) {
        return Err(Error::Argument(
            "--pad-to-multiple 0: give a whole number ≥ 1".into(),
        ));
    }
    let ModelPair {
        source_dir,
        helper_dir,
        tokenizer_dir,
        source,
        helper,
        source_vocab,
        target_vocab,
        src_t,
        hlp_t,
    } = read_pair(&opts.source, &opts.helper, opts.helper_tokenizer.as_deref())?;
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
    let matching = match_tokens(&source_vocab, &target_vocab, opts.match_mode)?;
    if matching.overlap.is_empty() {
        return Err(Error::Model(format!(
            "no token of the target tokenizer {} is in the source vocabulary {}; CLP-Transfer needs overlapping tokens: check that --helper/--helper-tokenizer is the intended tokenizer, or pass --match canonical when the two tokenizers spell tokens differently (Ġ, ▁, ##)",
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
    // Open the GPU before reading any tensor data, so a missing adapter fails fast.
    let backend = opts.backend.create(opts.memory_bytes)?;
    let backend_is_gpu = opts.backend == Backend::Gpu;
    timer.lap("match");

    // ---- gather: describe the row sets (read from the files tile by tile, never whole) -----
    let source_files = open_files(&source.weights)?;
    let helper_files = open_files(&helper.weights)?;
    let cols: usize = parts.iter().map(|p| p.m.cols).sum();
    let overlap_src: Vec<u32> = matching.overlap.iter().map(|p| p.1).collect();
    let overlap_tgt: Vec<u32> = matching.overlap.iter().map(|p| p.0).collect();
    let e_stored = parts
        .iter()
        .map(|p| file_stored(&source.weights, &source_files, &p.name, &p.m))
        .collect::<Result<Vec<_>>>()?;
    let e_overlap = RowSet::new("source overlap rows", e_stored.clone())?.select(overlap_src)?;
    let h_stored = file_stored(&helper.weights, &helper_files, &hlp_t.input, &helper_m)?;
    let h_overlap = RowSet::new("helper overlap rows", vec![h_stored])?.select(overlap_tgt)?;
    let h_missing =
        RowSet::new("helper missing rows", vec![h_stored])?.select(matching.missing.clone())?;
    let fallback_row = mean_rows(&e_overlap)?;
    timer.lap("gather");

    // ---- write: every tensor but the rebuilt ones, which are reserved and filled in place ---
    let out_dir = staging.path().to_path_buf();
    let rebuilt: BTreeMap<&str, &Part> = parts.iter().map(|p| (p.name.as_str(), p)).collect();
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
                    Some(match rebuilt.get(name.as_str()) {
                        Some(p) => OutTensor {
                            name: name.clone(),
                            dtype: p.safetensors_dtype,
                            shape: if p.shape_is_vector {
                                vec![target_rows]
                            } else {
                                vec![target_rows, p.m.cols]
                            },
                            data: TensorData::Reserved((target_rows * p.m.row_bytes()) as u64),
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
    let bar = bytes_bar(opts.progress, total_bytes, "copying tensors");
    let mut placed: Vec<Option<OutPart>> = parts.iter().map(|_| None).collect();
    for shard in &shards {
        let positions = writer::write_shard(&out_dir, shard, &mut |n| bar.inc(n))?;
        for (p, slot) in parts.iter().zip(placed.iter_mut()) {
            if let Some(&offset) = positions.get(&p.name) {
                let path = out_dir.join(&shard.file_name);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                *slot = Some(OutPart {
                    file,
                    path,
                    offset,
                    row_bytes: p.m.row_bytes(),
                    dtype: p.m.dtype,
                    col: p.col,
                    cols: p.m.cols,
                });
            }
        }
    }
    bar.finish_and_clear();
    let targets: Vec<OutPart> = placed.into_iter().flatten().collect();
    if targets.len() != parts.len() {
        return Err(Error::Model(
            "a rebuilt tensor was not placed in any output shard (a bug in clp-gpu; please report it)".into(),
        ));
    }
    if source.weights.sharded {
        writer::write_index(&out_dir, &shards)?;
    }
    // Overlap and by-role rows: the source bytes, copied bit-exactly.
    let copies: Vec<(u32, u32)> = matching
        .overlap
        .iter()
        .copied()
        .chain(matching.by_role.iter().map(|r| (r.target_id, r.source_id)))
        .collect();
    let mut row = Vec::new();
    for (t, stored) in targets.iter().zip(&e_stored) {
        for &(tid, sid) in &copies {
            stored.read_row(sid as usize, &mut row)?;
            t.write_row(tid, &row)?;
        }
    }
    timer.lap("write");

    // ---- compute: missing rows, streamed tile by tile into the reserved rows -----------------
    let missing = matching.missing.len();
    let keep_selection = opts.provenance.is_some();
    let mut selection: Option<Selection> = None;
    let mut fallback: Vec<(usize, String)> = Vec::new();
    let backend_name = backend.describe();
    let rows_bar = rows_bar(opts.progress, missing as u64, &backend_name);
    let mut encoded: Vec<Vec<u8>> = vec![Vec::new(); targets.len()];
    let compute_stats = backend.run(
        &h_missing,
        &h_overlap,
        &e_overlap,
        &weighting,
        &mut |tile: &TileOut| {
            if tile.dim != cols || tile.start + tile.status.len() > missing {
                return Err(Error::Shape(format!(
                    "backend returned rows of width {} at {} for {missing} rows of width {cols} (a bug in clp-gpu; please report it)",
                    tile.dim, tile.start
                )));
            }
            if keep_selection && tile.k > 0 {
                let sel = selection.get_or_insert_with(|| Selection {
                    k: tile.k,
                    indices: Vec::new(),
                    scores: Vec::new(),
                    weights: Vec::new(),
                });
                sel.indices.extend_from_slice(tile.indices);
                sel.scores.extend_from_slice(tile.scores);
                sel.weights.extend_from_slice(tile.weights);
            }
            for (i, &code) in tile.status.iter().enumerate() {
                let m = tile.start + i;
                let mut values = &tile.rows[i * cols..(i + 1) * cols];
                let mut reason = RejectReason::from_code(code).map(reason_name);
                if reason.is_none() && !encode_parts(&targets, values, &mut encoded) {
                    // Finite in f32 but not in the source dtype (f16 overflow).
                    reason = Some("non_finite_result".to_string());
                }
                if let Some(r) = reason {
                    fallback.push((m, r));
                    values = &fallback_row;
                    encode_parts(&targets, values, &mut encoded);
                }
                for (t, bytes) in targets.iter().zip(&encoded) {
                    t.write_row(matching.missing[m], bytes)?;
                }
            }
            rows_bar.inc(tile.status.len() as u64);
            Ok(())
        },
    )?;
    rows_bar.finish_and_clear();
    if let Some(sel) = &selection {
        if sel.indices.len() != missing * sel.k
            || sel
                .indices
                .iter()
                .any(|&j| j as usize >= matching.overlap.len())
        {
            return Err(Error::Shape(format!(
                "backend returned a selection of {} indices (k = {}) for {missing} rows (a bug in clp-gpu; please report it)",
                sel.indices.len(),
                sel.k
            )));
        }
    }
    for t in &targets {
        t.file.sync_data().map_err(|e| Error::io(&t.path, e))?;
    }
    let adapter = backend_is_gpu.then(|| backend_name.clone());
    timer.lap("compute");
    for (stage, secs) in &compute_stats.seconds {
        timer.stages.insert(format!("compute: {stage}"), *secs);
    }

    // ---- write: configs, tokenizer, report -------------------------------------------------
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
            weighting.name(),
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
        weighting: weighting.label(),
        dtype: parts[0].m.dtype.to_string(),
        target_tokens,
        target_rows,
        overlap: matching.overlap.len(),
        matching: matching.counts(),
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

/// The inputs every command that reads a source/helper pair needs.
pub(crate) struct ModelPair {
    pub source_dir: PathBuf,
    pub helper_dir: PathBuf,
    pub tokenizer_dir: PathBuf,
    pub source: ModelDir,
    pub helper: ModelDir,
    pub source_vocab: Vocab,
    pub target_vocab: Vocab,
    pub src_t: VocabTensors,
    pub hlp_t: VocabTensors,
}

/// Resolves (offline), opens and checks a source/helper pair: configs, tokenizers, weight
/// headers and the vocabulary-sized tensors. No tensor data is read.
pub(crate) fn read_pair(
    source: &str,
    helper: &str,
    helper_tokenizer: Option<&str>,
) -> Result<ModelPair> {
    let source_dir = hub::resolve_model_dir(source, "--source")?;
    let helper_dir = hub::resolve_model_dir(helper, "--helper")?;
    let tokenizer_dir = match helper_tokenizer {
        Some(s) => hub::resolve_model_dir(s, "--helper-tokenizer")?,
        None => helper_dir.clone(),
    };
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
    Ok(ModelPair {
        source_dir,
        helper_dir,
        tokenizer_dir,
        source,
        helper,
        source_vocab,
        target_vocab,
        src_t,
        hlp_t,
    })
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

/// Every weight file of a model, opened for positioned reads.
pub(crate) fn open_files(w: &Weights) -> Result<Vec<File>> {
    w.files
        .iter()
        .map(|f| {
            File::open(&f.path).map_err(|e| {
                Error::bad_file(&f.path, format!("cannot open: {e}; check its permissions"))
            })
        })
        .collect()
}

/// Tensor `name` (already checked as `m`) as stored matrix read from its file.
pub(crate) fn file_stored<'a>(
    w: &'a Weights,
    files: &'a [File],
    name: &str,
    m: &MatrixRef,
) -> Result<Stored<'a>> {
    let info = w
        .info(name)
        .ok_or_else(|| Error::Model(format!("tensor `{name}` vanished")))?;
    Ok(Stored {
        storage: Storage::File {
            file: &files[info.file],
            path: &w.files[info.file].path,
            offset: info.start,
        },
        dtype: m.dtype,
        rows: m.rows,
        cols: m.cols,
    })
}

/// A rebuilt tensor inside an output file: rows are written in place.
struct OutPart {
    file: File,
    path: PathBuf,
    offset: u64,
    row_bytes: usize,
    dtype: DType,
    col: usize,
    cols: usize,
}

impl OutPart {
    fn write_row(&self, target_id: u32, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(
                bytes,
                self.offset + target_id as u64 * self.row_bytes as u64,
            )
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Encodes `values` (all columns) into each part's dtype; false if any value is not finite
/// there (f16 overflows at 65,504).
fn encode_parts(parts: &[OutPart], values: &[f32], out: &mut [Vec<u8>]) -> bool {
    let mut finite = true;
    for (p, o) in parts.iter().zip(out.iter_mut()) {
        *o = p.dtype.encode(&values[p.col..p.col + p.cols]);
        finite &= (0..p.cols).all(|c| p.dtype.decode(o, c).is_finite());
    }
    finite
}

fn bytes_bar(enabled: bool, total: u64, msg: &'static str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total).with_message(msg);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec}")
    {
        pb.set_style(style);
    }
    pb
}

fn rows_bar(enabled: bool, total: u64, backend: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total).with_message(format!("computing rows on {backend}"));
    if let Ok(style) = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} rows, eta {eta}")
    {
        pb.set_style(style);
    }
    pb
}

/// Column means of the overlap source rows (the fallback row), streamed, accumulated in f64.
pub(crate) fn mean_rows(set: &RowSet) -> Result<Vec<f32>> {
    const CHUNK: usize = 4096;
    let mut acc = vec![0.0f64; set.cols()];
    let mut bytes = Vec::new();
    for r0 in (0..set.rows()).step_by(CHUNK) {
        let r1 = (r0 + CHUNK).min(set.rows());
        set.gather(r0, r1, &mut bytes)?;
        let m = MatrixRef::new(set.name(), &bytes, set.dtype(), r1 - r0, set.cols())?;
        for r in 0..m.rows {
            for (c, a) in acc.iter_mut().enumerate() {
                *a += m.get(r, c) as f64;
            }
        }
    }
    let n = set.rows().max(1) as f64;
    Ok(acc.into_iter().map(|a| (a / n) as f32).collect())
}

/// One line on how a weighting turns similarities into weights (for clp_transfer.json).
fn weighting_rule(label: &str) -> &'static str {
    match label.split(' ').next().unwrap_or("") {
        "softmax" => "softmax: weight = exp((cos - max cos) / T) over the top-k, normalised to sum 1",
        "sparsemax" => "sparsemax of the cosines over the top-k (weights sum to 1, most are 0)",
        "omp" => "orthogonal matching pursuit: least-squares coefficients of k atoms chosen greedily among the 4k most similar tokens in the helper space, normalised to sum 1",
        _ => "CLP: weight = cosine similarity in the helper embedding space / sum of weights",
    }
}

fn reason_name(r: RejectReason) -> String {
    match serde_json::to_value(r) {
        Ok(Value::String(s)) => s,
        _ => format!("{r:?}"),
    }
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
    // Multimodal configs: the language model reads its own copy in text_config.
    if let Some(Value::Object(text)) = config.get_mut("text_config") {
        text.insert("vocab_size".into(), json!(target_rows));
        for role in SpecialRole::ALL {
            let key = role.id_key();
            if text.contains_key(&key) {
                text.insert(key, id_value(role));
            }
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
#[allow(clippy::too_many_arguments)]
fn write_provenance(
    path: &Path,
    method: &str,
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
            let weights = &sel.weights[i * sel.k..(i + 1) * sel.k];
            let sum: f64 = weights.iter().map(|&w| w as f64).sum();
            let sources: Vec<Value> = idx
                .iter()
                .zip(scores.iter().zip(weights))
                .filter(|(_, (_, &w))| w != 0.0)
                .map(|(&j, (&s, &w))| {
                    let (tid, sid) = matching.overlap[j as usize];
                    json!({"id": sid, "token": target.token(tid), "similarity": s, "weight": w as f64 / sum})
                })
                .collect();
            json!({"id": t, "token": token, "method": format!("{method}_top_k"), "sources": sources})
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
        "matching": matching.report(source_vocab, target_vocab, 10),
        "special_tokens": specials,
        "fallback": {
            "method": "mean of the overlapping source rows",
            "rows": fallback_rows,
        },
        "tensors_rebuilt": summary.tensors_rebuilt,
        "timings_s": summary.timings_s,
    })
}
