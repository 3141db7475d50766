//! `clp-gpu apply`: a source model plus a helper's tokenizer in, a loadable model directory out.
//!
//! Stages (each timed in `clp_transfer.json`), one file each, run in order by [`apply`]:
//! 1. **read** ([`read`]): resolve the directories (offline), parse every JSON file, load both
//!    tokenizers, map and validate every safetensors header, find the vocabulary-sized tensors
//!    and check their shapes and dtypes. Every bad input fails here, before any tensor data is
//!    read.
//! 2. **match** (here): overlap by exact token string (`--match canonical`: or by canonical
//!    form), special tokens by role, the rest missing; then the staging directory is created
//!    beside OUT and the backend opened. **gather** ([`rows`]): describe the rows needed
//!    (helper rows of overlap and missing tokens; source rows of overlap tokens, with the input
//!    embedding, lm_head and output bias side by side as the columns of one matrix, so one set
//!    of weights serves all three) and compute the fallback row.
//! 3. **lay out the output** ([`layout`]): every tensor copied byte-for-byte, sharded like the
//!    source, the new vocabulary tensors reserved in place; overlap and by-role rows copied
//!    bit-exactly.
//! 4. **compute** ([`rows`]): the CLP combination on the chosen backend; a [`rows::RowWriter`]
//!    receives the finished tiles, encodes the rows in the source dtype (rounded to nearest
//!    even) and writes them into the reserved rows; rejected rows get the fallback: the mean of
//!    the overlapping source rows. Padding rows stay zero.
//! 5. **write metadata** ([`metadata`]): config, tokenizer files, provenance, report; then the
//!    staging directory is renamed to OUT.

mod configs;
mod layout;
mod metadata;
mod options;
mod pad;
mod read;
mod rows;

pub use options::{ApplyOptions, ApplySummary};

use crate::backend::Backend;
use crate::commands::timer::Timer;
use crate::error::{Error, Result};
use crate::model::pair::{open_files, ModelPair};
use crate::model::writer::Staging;
use crate::vocab::{match_tokens, Matching};
use crate::weights::{TopK, Weighting};
use configs::{OutConfigs, Tokenizers};
use metadata::Transfer;
use read::Part;
use rows::{Files, RowWriter};

/// Runs the whole transfer; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn apply(opts: &ApplyOptions) -> Result<ApplySummary> {
    let mut timer = Timer::start();
    let pair = read::read_inputs(opts)?;
    let pad = pad::plan(opts, &pair)?;
    let parts = read::source_parts(&pair)?;
    let helper_m = read::helper_matrix(&pair)?;
    timer.lap("read");

    let target_vocab = pad::target_vocab(pad.as_ref(), &pair.target_vocab);
    let (mut matching, no_helper_row) = match_stage(opts, &pair, helper_m.rows)?;
    pad::add_pad_row(pad.as_ref(), &mut matching, &pair.source_vocab);
    // The weighting as run: a k at or above the overlap means all of it.
    let weighting = (opts.weighting)
        .for_overlap(matching.overlap.len())
        .map_err(Error::Argument)?;
    let target_rows = target_rows(opts, target_vocab.len());
    let tokenizers = Tokenizers {
        source: &pair.source_vocab,
        target: &target_vocab,
    };
    let configs = OutConfigs::new(&pair.source, &tokenizers, parts[0].m.rows, target_rows)?;
    let staging = Staging::create(&opts.out, opts.force)?;
    // Open the GPU before reading any tensor data, so a missing adapter fails fast.
    let backend = opts.backend.create(opts.memory_bytes)?;
    timer.lap("match");

    let (source_files, helper_files) = (
        open_files(&pair.source.weights)?,
        open_files(&pair.helper.weights)?,
    );
    let files = Files {
        pair: &pair,
        source: &source_files,
        helper: &helper_files,
    };
    let gathered = rows::gather(&files, &parts, &helper_m, &matching)?;
    timer.lap("gather");

    let out_dir = staging.path().to_path_buf();
    let targets = layout::write_tensors(
        &out_dir,
        &pair.source.weights,
        &parts,
        target_rows,
        configs.positions.as_ref(),
        &opts.progress,
    )?;
    layout::copy_matched_rows(
        &targets,
        &gathered.e_stored,
        &parts,
        &matching,
        &no_helper_row.copies,
    )
    .map_err(|e| rows::name_token(e, &pair))?;
    rows::write_fixed_rows(&targets, &no_helper_row.fallback, &gathered.fallback_row)?;
    timer.lap("write");

    let backend_name = backend.describe();
    let bar = rows::rows_bar(&opts.progress, matching.missing.len() as u64, &backend_name);
    let writer = RowWriter::new(
        &targets,
        &matching,
        &gathered.fallback_row,
        opts.provenance.is_some(),
        bar,
    );
    let computed = rows::compute(backend.as_ref(), &gathered, &weighting, writer)
        .map_err(|e| rows::name_token(e, &pair))?;
    timer.lap("compute");
    for (stage, secs) in &computed.seconds {
        timer.record(format!("compute: {stage}"), *secs);
    }

    let transfer = Transfer {
        opts,
        pair: &pair,
        helper_m: &helper_m,
        matching: &matching,
        computed: &computed,
        target_vocab: &target_vocab,
        pad: pad.as_ref(),
        configs: &configs,
    };
    let provenance_tmp = metadata::write_metadata(&transfer, &out_dir)?;
    timer.lap("write");
    let adapter = (opts.backend == Backend::Gpu).then_some(backend_name);
    let summary = summarise(
        &transfer,
        &weighting,
        &parts,
        (target_rows, adapter),
        &timer,
    );
    metadata::write_report(&transfer, &summary, &out_dir)?;
    staging.commit()?;
    if let (Some(tmp), Some(p)) = (provenance_tmp, &opts.provenance) {
        std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
    }
    Ok(summary)
}

/// Target tokens past the helper's rows (added tokens, Gemma 3 style): they have no helper row,
/// so they take no part in the combination.
struct NoHelperRow {
    /// `(target id, source id)` of such tokens in the overlap: copied from the source.
    copies: Vec<(u32, u32)>,
    /// Such tokens not in the source: they get the fallback row.
    fallback: Vec<u32>,
}

/// Stage 2, **match**: overlap by exact string (or canonical form), specials by role, the rest
/// missing; target tokens at or past `helper_rows` are taken out ([`NoHelperRow`]); an empty
/// overlap is an error.
fn match_stage(
    opts: &ApplyOptions,
    pair: &ModelPair,
    helper_rows: usize,
) -> Result<(Matching, NoHelperRow)> {
    let (source_vocab, target_vocab) = (&pair.source_vocab, &pair.target_vocab);
    let mut matching = match_tokens(source_vocab, target_vocab, opts.match_mode)?;
    let past = |t: u32| t as usize >= helper_rows;
    let no_helper_row = NoHelperRow {
        copies: matching
            .overlap
            .iter()
            .copied()
            .filter(|p| past(p.0))
            .collect(),
        fallback: matching
            .missing
            .iter()
            .copied()
            .filter(|&t| past(t))
            .collect(),
    };
    matching.overlap.retain(|p| !past(p.0));
    matching.canonical.retain(|&t| !past(t));
    matching.missing.retain(|&t| !past(t));
    let n = no_helper_row.copies.len() + no_helper_row.fallback.len();
    if n > 0 && matching.notice.is_none() {
        matching.notice = Some(format!(
            "{n} target token(s) at or past the helper's {helper_rows} embedding rows have no helper row: {} copied from the source, {} given the fallback row",
            no_helper_row.copies.len(),
            no_helper_row.fallback.len()
        ));
    }
    if matching.overlap.is_empty() {
        return Err(Error::Model(format!(
            "no token of the target tokenizer {} is in the source vocabulary {}; CLP-Transfer needs overlapping tokens: check that --helper/--helper-tokenizer is the intended tokenizer, or pass --match canonical when the two tokenizers spell tokens differently (Ġ, ▁, ##)",
            target_vocab.path.display(),
            source_vocab.path.display()
        )));
    }
    Ok((matching, no_helper_row))
}

/// Rows of the new vocabulary tensors: the target's tokens, padded to `--pad-to-multiple`.
fn target_rows(opts: &ApplyOptions, target_tokens: usize) -> usize {
    match opts.pad_to_multiple {
        Some(n) => target_tokens.next_multiple_of(n),
        None => target_tokens,
    }
}

/// `--top-k` as given: OMP's atoms (not its candidates), else the selected neighbours.
fn requested_top_k(w: &Weighting) -> TopK {
    match *w {
        Weighting::Omp { atoms } => TopK::K(atoms),
        _ => w.top_k(),
    }
}

/// The report of a finished run; `weighting` is the one that ran (after
/// [`Weighting::for_overlap`]).
fn summarise(
    t: &Transfer,
    weighting: &Weighting,
    parts: &[Part],
    (target_rows, adapter): (usize, Option<String>),
    timer: &Timer,
) -> ApplySummary {
    let (opts, pair, matching, computed) = (t.opts, t.pair, t.matching, t.computed);
    ApplySummary {
        out: opts.out.clone(),
        source: pair.source_dir.clone(),
        helper: pair.helper_dir.clone(),
        target_tokenizer: pair.tokenizer_dir.clone(),
        backend: opts.backend.name().to_string(),
        adapter,
        top_k: requested_top_k(weighting).to_string(),
        weighting: weighting.label(),
        dtype: parts[0].m.dtype.to_string(),
        target_tokens: t.target_vocab.len(),
        target_rows,
        overlap: matching.overlap.len(),
        matching: matching.counts(),
        special_by_role: matching.by_role.len(),
        computed: matching.missing.len(),
        fallback: computed.fallback.len(),
        tensors_rebuilt: parts.iter().map(|p| p.name.clone()).collect(),
        notices: matching
            .notice
            .iter()
            .chain(&t.configs.notices)
            .cloned()
            .collect(),
        timings_s: timer.stages().clone(),
    }
}
