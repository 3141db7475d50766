//! `clp-gpu evaluate`: which weighting suits a source/helper pair, measured before writing a
//! model. A seeded random share of the overlapping tokens is hidden and treated as missing;
//! each weighting (with each k and temperature asked for) predicts their source rows from the
//! remaining overlap, and the cosine between predicted and true source input-embedding rows is
//! summarised (mean and quantiles). Two baselines sit beside them: the mean of the remaining
//! overlap rows, and a random row drawn from N(μ, σ) of those rows per column.
//!
//! Rows the guards reject get the same fallback as in `apply` (the overlap mean) and are
//! counted. Everything runs on the chosen backend through the same streaming pipeline.
//!
//! Stages: check the options and read the pair ([`read_pair`]); split the overlap into hidden
//! and anchor tokens ([`Split`]); describe the row sets and read the hidden rows' truth
//! ([`Rows`]); score the baselines, then every weighting.

use crate::backend::{Backend, ClpBackend, TileOut};
use crate::commands::stream::{mean_rows, sd_rows};
use crate::error::{Error, Result};
use crate::model::pair::{file_stored, open_files, read_pair, ModelPair};
use crate::rows::RowSet;
use crate::synthetic::Rng;
use crate::tensor::MatrixRef;
use crate::vocab::{match_tokens, MatchMode};
use crate::weights::Weighting;
use std::fs::File;
use std::time::Instant;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Source model directory or hub id.
    pub source: String,
    /// Helper model directory or hub id.
    pub helper: String,
    /// Target tokenizer directory (default: the helper's).
    pub helper_tokenizer: Option<String>,
    /// Token matching.
    pub match_mode: MatchMode,
    /// Share of the overlap hidden (0 < share < 1).
    pub holdout: f64,
    /// Seed of the hidden sample and the random baseline.
    pub seed: u64,
    /// Configurations to score.
    pub weightings: Vec<Weighting>,
    /// Backend.
    pub backend: Backend,
    /// Memory budget of the tile buffers.
    pub memory_bytes: u64,
}

/// Scores of one method.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MethodScore {
    /// Method label (weighting with k and T, or a baseline).
    pub method: String,
    /// Mean cosine between predicted and true rows.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Rows the guards rejected (given the fallback).
    pub rejected: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The whole evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvaluateReport {
    /// What computed.
    pub backend: String,
    /// Overlapping tokens found.
    pub overlap: usize,
    /// Hidden (scored) tokens.
    pub held_out: usize,
    /// Overlap rows the methods may use.
    pub anchors: usize,
    /// One entry per method, baselines first.
    pub scores: Vec<MethodScore>,
    /// What the user should know about how the run differs from what was asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let x = x as f64;
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

fn summarise(method: String, mut cos: Vec<f64>, rejected: usize, seconds: f64) -> MethodScore {
    cos.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if cos.is_empty() {
            0.0
        } else {
            cos[((cos.len() - 1) as f64 * p).round() as usize]
        }
    };
    MethodScore {
        method,
        mean: cos.iter().sum::<f64>() / cos.len().max(1) as f64,
        p10: q(0.1),
        p50: q(0.5),
        p90: q(0.9),
        rejected,
        seconds,
    }
}

/// The overlap split into hidden (scored) and anchor pairs, as indices into `matching.overlap`.
struct Split {
    /// `(target id, source id)` of every overlapping token.
    overlap: Vec<(u32, u32)>,
    /// Hidden pairs, ascending.
    held: Vec<usize>,
    /// Anchor pairs, ascending.
    kept: Vec<usize>,
}

impl Split {
    /// A seeded shuffle of the overlap; the first `holdout` share is hidden.
    fn new(overlap: Vec<(u32, u32)>, holdout: f64, seed: u64) -> Result<Split> {
        let o = overlap.len();
        let n_hold = ((o as f64 * holdout).round() as usize).clamp(1, o.max(1));
        if o < 2 || n_hold >= o {
            return Err(Error::Model(format!(
                "only {o} overlapping tokens: evaluate needs enough to hide {:.0}% and keep the rest as anchors; check the tokenizers or try --match canonical",
                holdout * 100.0
            )));
        }
        let mut order: Vec<usize> = (0..o).collect();
        let mut rng = Rng::new(seed);
        for i in (1..o).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (mut held, mut kept) = (order[..n_hold].to_vec(), order[n_hold..].to_vec());
        held.sort_unstable();
        kept.sort_unstable();
        Ok(Split {
            overlap,
            held,
            kept,
        })
    }

    /// One side (`.0` target, `.1` source) of the pairs `ix`.
    fn pick(&self, ix: &[usize], side: fn(&(u32, u32)) -> u32) -> Vec<u32> {
        ix.iter().map(|&i| side(&self.overlap[i])).collect()
    }
}

/// The row sets of one evaluation and the true rows of the hidden tokens.
struct Rows<'a> {
    /// Helper rows of the hidden tokens (the "missing" rows).
    hidden: RowSet<'a>,
    /// Helper rows of the anchors.
    anchor_helper: RowSet<'a>,
    /// Source rows of the anchors.
    anchor_source: RowSet<'a>,
    /// The true source rows of the hidden tokens, in f64.
    truth: Vec<Vec<f64>>,
    /// Column means of the anchor source rows (baseline and fallback).
    mean: Vec<f32>,
}

impl<'a> Rows<'a> {
    /// Describes the row sets (input embeddings only) and reads the hidden rows' truth.
    fn read(pair: &'a ModelPair, files: &'a [Vec<File>; 2], split: &Split) -> Result<Rows<'a>> {
        let (src, hlp) = (&pair.source.weights, &pair.helper.weights);
        let src_m = src.matrix(&pair.src_t.input)?;
        let hlp_m = hlp.matrix(&pair.hlp_t.input)?;
        let s = file_stored(src, &files[0], &pair.src_t.input, &src_m)?;
        let h = file_stored(hlp, &files[1], &pair.hlp_t.input, &hlp_m)?;
        let (held, kept) = (&split.held, &split.kept);
        let hidden = RowSet::new("hidden helper rows", vec![h])?
            .tensors([&pair.hlp_t.input])
            .select(split.pick(held, |p| p.0))?;
        let anchor_helper = RowSet::new("anchor helper rows", vec![h])?
            .tensors([&pair.hlp_t.input])
            .select(split.pick(kept, |p| p.0))?;
        let anchor_source = RowSet::new("anchor source rows", vec![s])?
            .tensors([&pair.src_t.input])
            .select(split.pick(kept, |p| p.1))?;
        let truth = RowSet::new("hidden source rows", vec![s])?
            .tensors([&pair.src_t.input])
            .select(split.pick(held, |p| p.1))?;
        let mut bytes = Vec::new();
        truth.gather(0, truth.rows(), &mut bytes)?;
        let truth_m = MatrixRef::new(
            truth.name(),
            &bytes,
            truth.dtype(),
            truth.rows(),
            truth.cols(),
        )?;
        let truth = (0..truth.rows()).map(|r| truth_m.row_f64(r)).collect();
        let mean = mean_rows(&anchor_source)?;
        Ok(Rows {
            hidden,
            anchor_helper,
            anchor_source,
            truth,
            mean,
        })
    }
}

/// Runs the evaluation; see the module docs.
pub fn evaluate(opts: &EvaluateOptions) -> Result<EvaluateReport> {
    if !(opts.holdout > 0.0 && opts.holdout < 1.0) {
        return Err(Error::Argument(format!(
            "--holdout {}: give a share between 0 and 1, e.g. 0.1",
            opts.holdout
        )));
    }
    for w in &opts.weightings {
        w.validate().map_err(Error::Argument)?;
    }
    let pair = read_pair(&opts.source, &opts.helper, opts.helper_tokenizer.as_deref())?;
    let matching = match_tokens(&pair.source_vocab, &pair.target_vocab, opts.match_mode)?;
    let notices: Vec<String> = matching.notice.iter().cloned().collect();
    let split = Split::new(matching.overlap, opts.holdout, opts.seed)?;
    // Each weighting as it runs over the anchors: a k at or above their count means all.
    let weightings = (opts.weightings.iter())
        .map(|w| w.for_overlap(split.kept.len()).map_err(Error::Argument))
        .collect::<Result<Vec<_>>>()?;
    let files = [
        open_files(&pair.source.weights)?,
        open_files(&pair.helper.weights)?,
    ];
    let rows = Rows::read(&pair, &files, &split)?;
    let mut scores = baselines(&rows, opts.seed)?;
    let backend = opts.backend.create(opts.memory_bytes)?;
    for w in &weightings {
        scores.push(score_weighting(backend.as_ref(), &rows, w)?);
    }
    let (o, n_hold) = (split.overlap.len(), split.held.len());
    Ok(EvaluateReport {
        backend: backend.describe(),
        overlap: o,
        held_out: n_hold,
        anchors: o - n_hold,
        scores,
        notices,
    })
}

/// The two baselines: the anchor mean, and a random row from N(mean, sd) per column.
fn baselines(rows: &Rows, seed: u64) -> Result<Vec<MethodScore>> {
    let mut scores = Vec::new();
    let mean = &rows.mean;
    let t = Instant::now();
    let cos: Vec<f64> = rows.truth.iter().map(|r| cosine(mean, r)).collect();
    scores.push(summarise(
        "baseline: mean of the anchor rows".into(),
        cos,
        0,
        t.elapsed().as_secs_f64(),
    ));
    let t = Instant::now();
    let sd = sd_rows(&rows.anchor_source, mean)?;
    let mut rng = Rng::new(seed ^ 0x00ba_5e11);
    let cos: Vec<f64> = rows
        .truth
        .iter()
        .map(|r| {
            let x: Vec<f32> = mean
                .iter()
                .zip(&sd)
                .map(|(&m, &s)| (m as f64 + s * rng.normal()) as f32)
                .collect();
            cosine(&x, r)
        })
        .collect();
    scores.push(summarise(
        "baseline: random row from N(mean, sd)".into(),
        cos,
        0,
        t.elapsed().as_secs_f64(),
    ));
    Ok(scores)
}

/// Predicts the hidden rows with `w` on `backend` and scores them against the truth; rejected
/// rows are scored as the fallback (the anchor mean).
fn score_weighting(backend: &dyn ClpBackend, rows: &Rows, w: &Weighting) -> Result<MethodScore> {
    let t = Instant::now();
    let mut cos = Vec::with_capacity(rows.truth.len());
    let mut rejected = 0;
    let sink = &mut |tile: &TileOut| {
        for (i, &code) in tile.status.iter().enumerate() {
            let truth = &rows.truth[tile.start + i];
            if code != 0 {
                rejected += 1;
                cos.push(cosine(&rows.mean, truth));
            } else {
                cos.push(cosine(&tile.rows[i * tile.dim..(i + 1) * tile.dim], truth));
            }
        }
        Ok(())
    };
    backend.run(
        &rows.hidden,
        &rows.anchor_helper,
        &rows.anchor_source,
        w,
        sink,
    )?;
    Ok(summarise(
        w.label(),
        cos,
        rejected,
        t.elapsed().as_secs_f64(),
    ))
}
