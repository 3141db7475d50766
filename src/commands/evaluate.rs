//! `clp-gpu evaluate`: which weighting suits a source/helper pair, measured before writing a
//! model. A seeded random share of the overlapping tokens is hidden and treated as missing;
//! each weighting (with each k and temperature asked for) predicts their source rows from the
//! remaining overlap, and the cosine between predicted and true source input-embedding rows is
//! summarised (mean and quantiles). Two baselines sit beside them: the mean of the remaining
//! overlap rows, and a random row drawn from N(μ, σ) of those rows per column.
//!
//! Rows the guards reject get the same fallback as in `apply` (the overlap mean) and are
//! counted. Everything runs on the chosen backend through the same streaming pipeline.

use crate::backend::Backend;
use crate::backend::TileOut;
use crate::commands::apply::{file_stored, mean_rows, open_files, read_pair};
use crate::error::{Error, Result};
use crate::rows::RowSet;
use crate::synthetic::Rng;
use crate::tensor::MatrixRef;
use crate::vocab::{match_tokens, MatchMode};
use crate::weights::Weighting;
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
    let o = matching.overlap.len();
    let n_hold = ((o as f64 * opts.holdout).round() as usize).clamp(1, o.max(1));
    if o < 2 || n_hold >= o {
        return Err(Error::Model(format!(
            "only {o} overlapping tokens: evaluate needs enough to hide {:.0}% and keep the rest as anchors; check the tokenizers or try --match canonical",
            opts.holdout * 100.0
        )));
    }
    // Seeded shuffle; the first n_hold pairs are hidden.
    let mut order: Vec<usize> = (0..o).collect();
    let mut rng = Rng::new(opts.seed);
    for i in (1..o).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let (mut held, mut kept): (Vec<usize>, Vec<usize>) =
        (order[..n_hold].to_vec(), order[n_hold..].to_vec());
    held.sort_unstable();
    kept.sort_unstable();
    let pick = |ix: &[usize], side: fn(&(u32, u32)) -> u32| -> Vec<u32> {
        ix.iter().map(|&i| side(&matching.overlap[i])).collect()
    };
    let source_files = open_files(&pair.source.weights)?;
    let helper_files = open_files(&pair.helper.weights)?;
    let src_m = pair.source.weights.matrix(&pair.src_t.input)?;
    let hlp_m = pair.helper.weights.matrix(&pair.hlp_t.input)?;
    let s = file_stored(
        &pair.source.weights,
        &source_files,
        &pair.src_t.input,
        &src_m,
    )?;
    let h = file_stored(
        &pair.helper.weights,
        &helper_files,
        &pair.hlp_t.input,
        &hlp_m,
    )?;
    let hm = RowSet::new("hidden helper rows", vec![h])?.select(pick(&held, |p| p.0))?;
    let ho = RowSet::new("anchor helper rows", vec![h])?.select(pick(&kept, |p| p.0))?;
    let eo = RowSet::new("anchor source rows", vec![s])?.select(pick(&kept, |p| p.1))?;
    let truth = RowSet::new("hidden source rows", vec![s])?.select(pick(&held, |p| p.1))?;
    let mut bytes = Vec::new();
    truth.gather(0, truth.rows(), &mut bytes)?;
    let truth_m = MatrixRef::new(
        truth.name(),
        &bytes,
        truth.dtype(),
        truth.rows(),
        truth.cols(),
    )?;
    let true_rows: Vec<Vec<f64>> = (0..truth.rows()).map(|r| truth_m.row_f64(r)).collect();
    let mean = mean_rows(&eo)?;

    let mut scores = Vec::new();
    // Baselines.
    let t = Instant::now();
    let cos: Vec<f64> = true_rows.iter().map(|r| cosine(&mean, r)).collect();
    scores.push(summarise(
        "baseline: mean of the anchor rows".into(),
        cos,
        0,
        t.elapsed().as_secs_f64(),
    ));
    let t = Instant::now();
    let mut var = vec![0.0f64; eo.cols()];
    let mut chunk = Vec::new();
    for r0 in (0..eo.rows()).step_by(4096) {
        let r1 = (r0 + 4096).min(eo.rows());
        eo.gather(r0, r1, &mut chunk)?;
        let m = MatrixRef::new(eo.name(), &chunk, eo.dtype(), r1 - r0, eo.cols())?;
        for r in 0..m.rows {
            for (c, v) in var.iter_mut().enumerate() {
                *v += (m.get(r, c) as f64 - mean[c] as f64).powi(2);
            }
        }
    }
    let sd: Vec<f64> = var
        .iter()
        .map(|v| (v / eo.rows().max(1) as f64).sqrt())
        .collect();
    let mut rng = Rng::new(opts.seed ^ 0x00ba_5e11);
    let cos: Vec<f64> = true_rows
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

    let backend = opts.backend.create(opts.memory_bytes)?;
    for w in &opts.weightings {
        let t = Instant::now();
        let mut cos = Vec::with_capacity(n_hold);
        let mut rejected = 0;
        backend.run(&hm, &ho, &eo, w, &mut |tile: &TileOut| {
            for (i, &code) in tile.status.iter().enumerate() {
                let truth = &true_rows[tile.start + i];
                if code != 0 {
                    rejected += 1;
                    cos.push(cosine(&mean, truth));
                } else {
                    cos.push(cosine(&tile.rows[i * tile.dim..(i + 1) * tile.dim], truth));
                }
            }
            Ok(())
        })?;
        scores.push(summarise(
            w.label(),
            cos,
            rejected,
            t.elapsed().as_secs_f64(),
        ));
    }
    Ok(EvaluateReport {
        backend: backend.describe(),
        overlap: o,
        held_out: n_hold,
        anchors: o - n_hold,
        scores,
    })
}
