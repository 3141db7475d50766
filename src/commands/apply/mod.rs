//! `clp-gpu apply`: a source model plus a helper's tokenizer in, a loadable model directory out.
//!
//! Stages (each timed in `clp_transfer.json`), one file each, run in order by [`apply`]:
//! 1. **read** ([`read`]): resolve the directories (offline), parse every JSON file, load both
//!    tokenizers, map and validate every safetensors header (the helper's only for a weighted
//!    method: FVT reads no helper weights), find the vocabulary-sized tensors and check their
//!    shapes and dtypes. Every bad input fails here, before any tensor data is read.
//! 2. **match** (here): overlap by exact token string (`--match canonical`: or by canonical
//!    form), special tokens by role, the rest missing; then the staging directory is created
//!    beside OUT and the backend opened (weighted methods only). **gather** ([`rows`]):
//!    describe the rows needed (helper rows of overlap and missing tokens; source rows of
//!    overlap tokens, with the input embedding, lm_head and output bias side by side as the
//!    columns of one matrix, so one set of weights serves all three) and compute the mean row.
//! 3. **lay out the output** ([`layout`]): every tensor copied byte-for-byte, sharded like the
//!    source, the new vocabulary tensors reserved in place; overlap and by-role rows copied
//!    bit-exactly.
//! 4. **compute**: a weighted method ([`rows`]) runs the CLP combination on the chosen backend;
//!    a [`rows::RowWriter`] receives the finished tiles, encodes the rows in the source dtype
//!    (rounded to nearest even) and writes them into the reserved rows, giving rejected rows
//!    the mean of the overlapping source rows; with `--fallback fvt` ([`fallback`]) those rows
//!    and the tokens without a helper row then get their FVT row where they have one.
//!    `--weighting fvt` ([`fallback`], [`fvt`]) builds every missing row from the source
//!    rows of the token's spelling by the source tokenizer, on the host. Padding rows stay
//!    zero.
//! 5. **write metadata** ([`metadata`]): config, tokenizer files, provenance, report; then the
//!    staging directory is renamed to OUT.

mod configs;
mod fallback;
mod fvt;
mod layout;
mod metadata;
mod options;
mod pad;
mod read;
mod rows;

pub use options::{ApplyOptions, ApplySummary, Fallback, FallbackCounts, Method};

use crate::backend::{Backend, Chosen, ClpBackend};
use crate::commands::timer::Timer;
use crate::error::{Error, Result};
use crate::model::pair::{open_files, SourceTarget};
use crate::model::writer::Staging;
use crate::rows::Stored;
use crate::tensor::MatrixRef;
use crate::vocab::{match_tokens, Matching, Vocab};
use configs::{OutConfigs, Tokenizers};
use layout::OutPart;
use metadata::Transfer;
use pad::Pad;
use read::Part;
use rows::{Computed, Gathered, HelperFiles, RowWriter};

/// Runs the whole transfer; see the module docs. Nothing exists at `opts.out` unless this
/// returns `Ok`.
pub fn apply(opts: &ApplyOptions) -> Result<ApplySummary> {
    let mut timer = Timer::start();
    // Settle `--backend auto` first: the report's first notice says what runs and why.
    let chosen = match opts.method {
        Method::Weighted(_) => opts.backend.resolve(),
        Method::Fvt => Chosen {
            backend: opts.backend,
            why: None,
        },
    };
    let opts = &ApplyOptions {
        backend: chosen.backend,
        ..opts.clone()
    };
    let inputs = read::read_inputs(opts)?;
    let pair = &inputs.st;
    let pad = pad::plan(opts, pair)?;
    let parts = read::source_parts(pair)?;
    let helper_m = inputs
        .helper
        .as_ref()
        .map(read::helper_matrix)
        .transpose()?;
    timer.lap("read");

    let plan = plan_stage(opts, pair, &parts, helper_m.as_ref(), pad)?;
    timer.lap("match");

    let source_files = open_files(&pair.source.weights)?;
    let helper_files = (inputs.helper.as_ref())
        .map(|h| open_files(&h.model.weights))
        .transpose()?;
    let e_stored = rows::source_stored(pair, &source_files, &parts)?;
    let helper_side = (inputs
        .helper
        .as_ref()
        .zip(helper_m.as_ref())
        .zip(helper_files.as_deref()))
    .map(|((helper, m), files)| HelperFiles { helper, m, files });
    let gathered = (helper_side.as_ref())
        .map(|h| rows::gather(pair, &e_stored, &parts, h, &plan.matching))
        .transpose()?;
    timer.lap("gather");

    let targets = write_stage(opts, pair, &parts, &e_stored, &plan, gathered.as_ref())?;
    timer.lap("write");

    let sources = fallback::Sources {
        pair,
        parts: &parts,
        stored: &e_stored,
        targets: &targets,
    };
    let computed = compute_stage(opts, &plan, &sources, gathered.as_ref())?;
    timer.lap("compute");
    for (stage, secs) in &computed.seconds {
        timer.record(format!("compute: {stage}"), *secs);
    }

    let transfer = Transfer {
        opts,
        pair,
        helper: inputs.helper.as_ref().zip(helper_m.as_ref()),
        helper_dir: inputs.helper_dir.as_deref(),
        matching: &plan.matching,
        method: &plan.method,
        computed: &computed,
        target_vocab: &plan.target_vocab,
        pad: plan.pad.as_ref(),
        configs: &plan.configs,
    };
    let out_dir = plan.staging.path().to_path_buf();
    let provenance_tmp = metadata::write_metadata(&transfer, &out_dir)?;
    timer.lap("write");
    let adapter = plan.backend.as_ref().map(|b| b.describe());
    let adapter = adapter.filter(|_| opts.backend == Backend::Gpu);
    let mut summary = summarise(&transfer, &parts, (plan.target_rows, adapter), &timer);
    summary.notices.splice(0..0, chosen.why);
    metadata::write_report(&transfer, &summary, &out_dir)?;
    plan.staging.commit()?;
    if let (Some(tmp), Some(p)) = (provenance_tmp, &opts.provenance) {
        std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
    }
    Ok(summary)
}

/// What stage 2 settled, before any tensor data is read.
struct Plan {
    /// The pad token chosen with `--pad-token`.
    pad: Option<Pad>,
    /// The target tokenizer, with `--pad-token` applied.
    target_vocab: Vocab,
    /// How the tokens matched.
    matching: Matching,
    /// Target tokens without a helper row.
    no_helper_row: NoHelperRow,
    /// The method as it runs: a k at or above the overlap means all of it.
    method: Method,
    /// Rows of the new vocabulary tensors.
    target_rows: usize,
    /// The output's configs.
    configs: OutConfigs,
    /// The staging directory beside OUT.
    staging: Staging,
    /// The backend of a weighted method (FVT needs none).
    backend: Option<Box<dyn ClpBackend>>,
}

/// Stage 2: match the tokens, settle the method, the configs and the output rows, create the
/// staging directory and open the backend (`helper_m`: the helper's embedding, weighted
/// methods only).
fn plan_stage(
    opts: &ApplyOptions,
    pair: &SourceTarget,
    parts: &[Part],
    helper_m: Option<&MatrixRef>,
    pad: Option<Pad>,
) -> Result<Plan> {
    let target_vocab = pad::target_vocab(pad.as_ref(), &pair.target_vocab);
    let (mut matching, no_helper_row) = match_stage(opts, pair, helper_m.map(|m| m.rows))?;
    pad::add_pad_row(pad.as_ref(), &mut matching, &pair.source_vocab);
    let method = (opts.method)
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
    let backend = match method {
        Method::Weighted(_) => Some(opts.backend.create(opts.memory_bytes)?),
        Method::Fvt => None,
    };
    Ok(Plan {
        pad,
        target_vocab,
        matching,
        no_helper_row,
        method,
        target_rows,
        configs,
        staging,
        backend,
    })
}

/// Stage 3, **lay out the output**: every tensor, the matched rows copied bit-exactly and the
/// tokens without a helper row given the mean (the fallback stage may give them their FVT
/// row); returns the rebuilt tensors, opened for row writes.
fn write_stage(
    opts: &ApplyOptions,
    pair: &SourceTarget,
    parts: &[Part],
    e_stored: &[Stored],
    plan: &Plan,
    gathered: Option<&Gathered>,
) -> Result<Vec<OutPart>> {
    let targets = layout::write_tensors(
        plan.staging.path(),
        &pair.source.weights,
        parts,
        plan.target_rows,
        plan.configs.positions.as_ref(),
        &opts.progress,
    )?;
    layout::copy_matched_rows(
        &targets,
        e_stored,
        parts,
        &plan.matching,
        &plan.no_helper_row.copies,
    )
    .map_err(|e| rows::name_token(e, pair))?;
    if let Some(g) = gathered {
        rows::write_fixed_rows(&targets, &plan.no_helper_row.fallback, &g.fallback_row)?;
    }
    Ok(targets)
}

/// Stage 4, **compute**: the missing rows by the method (weighted: on the backend over
/// `gathered`; FVT: from the source rows of each token's spelling), then the fallback rows.
fn compute_stage(
    opts: &ApplyOptions,
    plan: &Plan,
    sources: &fallback::Sources,
    gathered: Option<&Gathered>,
) -> Result<Computed> {
    let matching = &plan.matching;
    let (backend, gathered, weighting) = match (&plan.backend, gathered, plan.method) {
        (_, _, Method::Fvt) => return fallback::fvt_rows(sources, matching, &opts.progress),
        (Some(b), Some(g), Method::Weighted(w)) => (b, g, w),
        _ => {
            return Err(Error::Model(
                "a weighted method without its backend or helper rows (a bug in clp-gpu; please report it)".into(),
            ))
        }
    };
    let backend_name = backend.describe();
    let bar = rows::rows_bar(&opts.progress, matching.missing.len() as u64, &backend_name);
    let writer = RowWriter::new(
        sources.targets,
        matching,
        &gathered.fallback_row,
        opts.provenance.is_some(),
        bar,
    );
    let mut computed = rows::compute(backend.as_ref(), gathered, &weighting, writer)
        .map_err(|e| rows::name_token(e, sources.pair))?;
    let no_helper_row = plan
        .no_helper_row
        .fallback
        .iter()
        .map(|&target_id| rows::FallbackRow {
            target_id,
            reason: "no_helper_row".into(),
            got: Fallback::Mean,
        });
    computed.fallback.extend(no_helper_row);
    computed.fallback.sort_by_key(|f| f.target_id);
    if opts.fallback == Fallback::Fvt {
        fallback::fvt_fallback(sources, &mut computed)?;
    }
    Ok(computed)
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
/// missing; target tokens at or past `helper_rows` (weighted methods) are taken out
/// ([`NoHelperRow`]); an empty overlap is an error.
fn match_stage(
    opts: &ApplyOptions,
    pair: &SourceTarget,
    helper_rows: Option<usize>,
) -> Result<(Matching, NoHelperRow)> {
    let (source_vocab, target_vocab) = (&pair.source_vocab, &pair.target_vocab);
    let mut matching = match_tokens(source_vocab, target_vocab, opts.match_mode)?;
    let past = |t: u32| helper_rows.is_some_and(|rows| t as usize >= rows);
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
            "{n} target token(s) at or past the helper's {} embedding rows have no helper row: {} copied from the source, {} given the fallback row",
            helper_rows.unwrap_or_default(),
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

/// The report of a finished run.
fn summarise(
    t: &Transfer,
    parts: &[Part],
    (target_rows, adapter): (usize, Option<String>),
    timer: &Timer,
) -> ApplySummary {
    let (opts, pair, matching, computed) = (t.opts, t.pair, t.matching, t.computed);
    let mut fallback_rows = FallbackCounts::default();
    for f in &computed.fallback {
        match f.got {
            Fallback::Fvt => fallback_rows.fvt += 1,
            Fallback::Mean => fallback_rows.mean += 1,
        }
    }
    ApplySummary {
        out: opts.out.clone(),
        source: pair.source_dir.clone(),
        helper: t.helper_dir.map(|d| d.to_path_buf()),
        target_tokenizer: pair.tokenizer_dir.clone(),
        backend: match t.method {
            Method::Weighted(_) => opts.backend.name().to_string(),
            Method::Fvt => "none".to_string(),
        },
        adapter,
        preset: opts.preset,
        match_mode: matching.mode.name().to_string(),
        top_k: (t.method.requested_top_k()).map_or_else(|| "none".to_string(), |k| k.to_string()),
        weighting: t.method.label(),
        dtype: parts[0].m.dtype.to_string(),
        target_tokens: t.target_vocab.len(),
        target_rows,
        overlap: matching.overlap.len(),
        matching: matching.counts(),
        special_by_role: matching.by_role.len(),
        computed: matching.missing.len(),
        fallback: computed.fallback.len(),
        fallback_method: opts.fallback,
        fallback_rows,
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
