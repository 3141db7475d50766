//! `clp-gpu evaluate`: which weighting suits a source/helper pair, measured before writing a
//! model. A seeded random share of the overlapping tokens is hidden and treated as missing;
//! each weighting (with each k and temperature asked for) predicts their source rows from the
//! remaining overlap, and each prediction is compared with the true source input-embedding row:
//! the cosine (mean and quantiles), which is blind to scale, next to the relative L2 error
//! ‖p − t‖ / ‖t‖ and the norm ratio ‖p‖ / ‖t‖, which are not (a row 1000× too long has cosine
//! 1 and relative error 999). Methods are ranked by the mean relative L2 error. Two baselines
//! sit beside them: the mean of the remaining overlap rows, and a random row drawn from
//! N(μ, σ) of those rows per column.
//!
//! Rows the guards reject get the same fallback as in `apply` (the overlap mean) and are
//! counted. Everything runs on the chosen backend through the same streaming pipeline.
//!
//! Stages: check the options and read the pair ([`read_pair`]); split the overlap into hidden
//! and anchor tokens ([`Split`]); describe the row sets and read the hidden rows' truth
//! ([`Rows`]); score the baselines, then every weighting.

use crate::backend::{Backend, ClpBackend, TileOut};
use crate::commands::column_stats::{mean_rows, sd_rows};
use crate::error::{Error, Result};
use crate::method::{RejectReason, Weighting};
use crate::model::pair::{file_stored, open_files, read_pair, ModelPair};
use crate::rows::RowSet;
use crate::synthetic::Rng;
use crate::tensor::MatrixRef;
use crate::vocab::{match_tokens, MatchMode};
use std::collections::BTreeMap;
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
    /// 1 for the method with the lowest mean relative L2 error, 2 for the next, …
    pub rank: usize,
    /// Whether this is the method `apply` uses without flags ([`crate::defaults::WEIGHTING`]).
    pub default: bool,
    /// Mean cosine between predicted and true rows.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Mean relative L2 error ‖p − t‖ / ‖t‖ (the ranking measure; punishes a wrong scale).
    pub rel_l2: f64,
    /// Median norm ratio ‖p‖ / ‖t‖ (1 is the right scale).
    pub norm_ratio: f64,
    /// Rows the guards rejected (given the fallback).
    pub rejected: usize,
    /// The rejected rows by reason (`norm_out_of_range`, …; empty for the baselines).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected_by_reason: BTreeMap<String, usize>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// One prediction against its true row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RowScore {
    cos: f64,
    rel_l2: f64,
    norm_ratio: f64,
}

impl RowScore {
    /// Scores prediction `p` against truth `t` (a zero truth row scores 0 / 0 / 0 relative).
    fn of(p: &[f32], t: &[f64]) -> RowScore {
        let (mut pt, mut pp, mut tt, mut dd) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in p.iter().zip(t) {
            let x = x as f64;
            pt += x * y;
            pp += x * x;
            tt += y * y;
            dd += (x - y) * (x - y);
        }
        let (np, nt) = (pp.sqrt(), tt.sqrt());
        RowScore {
            cos: if np == 0.0 || nt == 0.0 {
                0.0
            } else {
                pt / (np * nt)
            },
            rel_l2: if nt == 0.0 { 0.0 } else { dd.sqrt() / nt },
            norm_ratio: if nt == 0.0 { 0.0 } else { np / nt },
        }
    }
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

/// The value at quantile `p` of sorted `v` (0 when empty).
fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

fn summarise(method: String, rows: &[RowScore], rejected: usize, seconds: f64) -> MethodScore {
    let sorted = |f: fn(&RowScore) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let cos = sorted(|r| r.cos);
    let n = rows.len().max(1) as f64;
    MethodScore {
        method,
        rank: 0,
        default: false,
        mean: cos.iter().sum::<f64>() / n,
        p10: quantile(&cos, 0.1),
        p50: quantile(&cos, 0.5),
        p90: quantile(&cos, 0.9),
        rel_l2: rows.iter().map(|r| r.rel_l2).sum::<f64>() / n,
        norm_ratio: quantile(&sorted(|r| r.norm_ratio), 0.5),
        rejected,
        rejected_by_reason: BTreeMap::new(),
        seconds,
    }
}

/// Sets each score's rank by mean relative L2 error (ties: the earlier method first).
fn rank(scores: &mut [MethodScore]) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[a]
            .rel_l2
            .total_cmp(&scores[b].rel_l2)
            .then(a.cmp(&b))
    });
    for (r, i) in order.into_iter().enumerate() {
        scores[i].rank = r + 1;
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
    let chosen = opts.backend.resolve();
    let notices: Vec<String> = (chosen.why.iter())
        .chain(&matching.notice)
        .cloned()
        .collect();
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
    let backend = chosen.backend.create(opts.memory_bytes)?;
    for (w, asked) in weightings.iter().zip(&opts.weightings) {
        let mut score = score_weighting(backend.as_ref(), &rows, w)?;
        score.default = *asked == crate::defaults::WEIGHTING;
        scores.push(score);
    }
    rank(&mut scores);
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
    let scored: Vec<RowScore> = rows.truth.iter().map(|r| RowScore::of(mean, r)).collect();
    scores.push(summarise(
        "baseline: mean of the anchor rows".into(),
        &scored,
        0,
        t.elapsed().as_secs_f64(),
    ));
    let t = Instant::now();
    let sd = sd_rows(&rows.anchor_source, mean)?;
    let mut rng = Rng::new(seed ^ 0x00ba_5e11);
    let scored: Vec<RowScore> = rows
        .truth
        .iter()
        .map(|r| {
            let x: Vec<f32> = mean
                .iter()
                .zip(&sd)
                .map(|(&m, &s)| (m as f64 + s * rng.normal()) as f32)
                .collect();
            RowScore::of(&x, r)
        })
        .collect();
    scores.push(summarise(
        "baseline: random row from N(mean, sd)".into(),
        &scored,
        0,
        t.elapsed().as_secs_f64(),
    ));
    Ok(scores)
}

/// Predicts the hidden rows with `w` on `backend` and scores them against the truth; rejected
/// rows are scored as the fallback (the anchor mean).
fn score_weighting(backend: &dyn ClpBackend, rows: &Rows, w: &Weighting) -> Result<MethodScore> {
    let t = Instant::now();
    let mut scored = Vec::with_capacity(rows.truth.len());
    let mut rejected = 0;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let sink = &mut |tile: &TileOut| {
        for (i, &code) in tile.status.iter().enumerate() {
            let truth = &rows.truth[tile.start + i];
            if let Some(reason) = RejectReason::from_code(code)? {
                rejected += 1;
                *by_reason.entry(reason.name().to_string()).or_default() += 1;
                scored.push(RowScore::of(&rows.mean, truth));
            } else {
                let row = &tile.rows[i * tile.dim..(i + 1) * tile.dim];
                scored.push(RowScore::of(row, truth));
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
    let mut score = summarise(w.label(), &scored, rejected, t.elapsed().as_secs_f64());
    score.rejected_by_reason = by_reason;
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_rows_are_counted_by_reason_and_scored_as_the_fallback() {
        // Anchors a, b nearly parallel and c, d orthogonal; hidden row 0 is c + 10 (c − d)
        // (OMP's affine coefficients ≈ (11, −10): its row leaves the source norms), row 1 is
        // 0.4 c + 0.6 d (inside the atoms' affine hull: OMP's row is 0.4 e_c + 0.6 e_d).
        let ho = [
            1.0, 0.0, 0.0, 0.0, 1.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0,
        ];
        // Source norms 2.06, 1.12, 1.5, 1.5, with e_c ⟂ e_d.
        let eo = [
            2.0, 0.5, 0.0, 0.0, 1.0, 0.5, 1.2, 0.0, 0.9, -0.9, 0.0, 1.2f32,
        ];
        let hm = [0.0, 0.0, 11.0, -10.0, 0.0, 0.0, 0.4, 0.6];
        let hm = MatrixRef::from_f32(&hm, 2, 4).unwrap();
        let ho = MatrixRef::from_f32(&ho, 4, 4).unwrap();
        let eo = MatrixRef::from_f32(&eo, 4, 3).unwrap();
        let anchor_source = RowSet::from_matrix("eo", &eo);
        let mean = mean_rows(&anchor_source).unwrap();
        // Truth: the fallback for row 0, the OMP row 0.4 e_c + 0.6 e_d for row 1 (up to the
        // ridge); a rejected row scored as zeros would have cosine 0.
        let truth = vec![
            mean.iter().map(|&x| x as f64).collect(),
            (0..3)
                .map(|c| 0.4 * eo.get(2, c) as f64 + 0.6 * eo.get(3, c) as f64)
                .collect(),
        ];
        let rows = Rows {
            hidden: RowSet::from_matrix("hm", &hm),
            anchor_helper: RowSet::from_matrix("ho", &ho),
            anchor_source,
            truth,
            mean,
        };
        let w = Weighting::Omp { atoms: 2 };
        let score =
            score_weighting(&crate::backend::reference::ReferenceBackend, &rows, &w).unwrap();
        assert_eq!(score.rejected, 1, "{score:?}");
        let reasons: Vec<_> = score.rejected_by_reason.iter().collect();
        assert_eq!(reasons, [(&"norm_out_of_range".to_string(), &1)]);
        assert!(score.mean > 0.9999 && score.rel_l2 < 1e-2, "{score:?}");
    }

    #[test]
    fn a_wrong_scale_is_seen_and_ranked_last() {
        let truth: Vec<Vec<f64>> = (0..20)
            .map(|i| {
                (0..8)
                    .map(|c| ((i * 7 + c * 3) % 11) as f64 - 5.0)
                    .collect()
            })
            .collect();
        let score = |scale: f32, noise: f32| -> Vec<RowScore> {
            truth
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let p: Vec<f32> = t
                        .iter()
                        .enumerate()
                        .map(|(c, &x)| x as f32 * scale + noise * (((i + c) % 3) as f32 - 1.0))
                        .collect();
                    RowScore::of(&p, t)
                })
                .collect()
        };
        let mut scores = vec![
            summarise("1000x too long".into(), &score(1000.0, 0.0), 0, 0.0),
            summarise("right scale, noisy".into(), &score(1.0, 0.5), 0, 0.0),
            summarise("exact".into(), &score(1.0, 0.0), 0, 0.0),
        ];
        rank(&mut scores);
        let long = &scores[0];
        // Cosine cannot tell: the scaled rows point exactly the right way.
        assert!(long.mean > 0.999_999 && long.p10 > 0.999_999, "{long:?}");
        assert!((long.rel_l2 - 999.0).abs() < 1e-3, "{long:?}");
        assert!((long.norm_ratio - 1000.0).abs() < 1e-2, "{long:?}");
        assert_eq!((scores[2].rank, scores[1].rank, long.rank), (1, 2, 3));
        assert_eq!((scores[2].rel_l2, scores[2].norm_ratio), (0.0, 1.0));
        assert!(scores[1].mean < 1.0 && scores[1].rel_l2 > 0.0);
    }
}
