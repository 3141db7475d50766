//! Plain-Rust CPU reference of every kernel, accumulating in f64. It is the oracle for the GPU
//! tests and for `--verify`; it favours obviousness over speed (the dense formula is computed
//! directly over all M × O cosines, not in low rank).

use crate::tensor::MatrixRef;
use crate::weights::{
    ClpOutput, RejectReason, RejectedRow, RowStatus, Selection, TopK, Weighting,
    WEIGHT_SUM_TOLERANCE,
};

/// L2-normalised rows of `m` (zeros for zero or non-finite rows) and each row's status.
pub fn normalize(m: &MatrixRef) -> (Vec<f64>, Vec<RowStatus>) {
    let mut out = vec![0.0f64; m.rows * m.cols];
    let mut status = Vec::with_capacity(m.rows);
    for r in 0..m.rows {
        let row = m.row_f64(r);
        if row.iter().any(|x| !x.is_finite()) {
            status.push(RowStatus::NonFinite);
            continue;
        }
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            status.push(RowStatus::Zero);
            continue;
        }
        for (o, x) in out[r * m.cols..(r + 1) * m.cols].iter_mut().zip(&row) {
            *o = x / norm;
        }
        status.push(RowStatus::Ok);
    }
    (out, status)
}

/// `a · bᵀ` for row-major `a` (ra × dim) and `b` (rb × dim): ra × rb.
pub fn similarity(a: &[f64], b: &[f64], ra: usize, rb: usize, dim: usize) -> Vec<f64> {
    let mut out = vec![0.0; ra * rb];
    for i in 0..ra {
        let ai = &a[i * dim..(i + 1) * dim];
        for j in 0..rb {
            let bj = &b[j * dim..(j + 1) * dim];
            out[i * rb + j] = ai.iter().zip(bj).map(|(x, y)| x * y).sum();
        }
    }
    out
}

/// The `k` best entries of `scores`: descending score, ties broken by the smaller index.
pub fn top_k(scores: &[f64], k: usize) -> Vec<(u32, f64)> {
    let mut idx: Vec<u32> = (0..scores.len() as u32).collect();
    idx.sort_by(|&a, &b| {
        scores[b as usize]
            .partial_cmp(&scores[a as usize])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.into_iter().map(|i| (i, scores[i as usize])).collect()
}

/// The full CLP computation: f64 everywhere, f32 rows out. Dense mode uses the direct formula
/// `Σ_j c_mj e_j / Σ_j c_mj` over every overlapping row.
pub fn clp(
    h_missing: &MatrixRef,
    h_overlap: &MatrixRef,
    e_overlap: &MatrixRef,
    weighting: &Weighting,
) -> ClpOutput {
    let (m, o, dh, ds) = (
        h_missing.rows,
        h_overlap.rows,
        h_missing.cols,
        e_overlap.cols,
    );
    let (hm, st_m) = normalize(h_missing);
    let (ho, _) = normalize(h_overlap);
    let sims = similarity(&hm, &ho, m, o, dh);
    let e: Vec<f64> = (0..o).flat_map(|j| e_overlap.row_f64(j)).collect();
    let dense_scale = {
        let mut s = vec![0.0f64; dh];
        for j in 0..o {
            for (si, x) in s.iter_mut().zip(&ho[j * dh..(j + 1) * dh]) {
                *si += x;
            }
        }
        s.iter().map(|x| x * x).sum::<f64>().sqrt()
    };
    let mut rows = vec![0.0f32; m * ds];
    let mut rejected = Vec::new();
    let k = match weighting.top_k() {
        TopK::K(k) => Some(k.min(o)),
        TopK::All => None,
    };
    let mut selection = k.map(|k| Selection {
        k,
        indices: Vec::new(),
        scores: Vec::new(),
    });
    for r in 0..m {
        let row_sims = &sims[r * o..(r + 1) * o];
        let chosen: Vec<(u32, f64)> = match (&mut selection, k) {
            (Some(sel), Some(k)) => {
                let best = top_k(row_sims, k);
                sel.indices.extend(best.iter().map(|p| p.0));
                sel.scores.extend(best.iter().map(|p| p.1 as f32));
                best
            }
            _ => row_sims
                .iter()
                .enumerate()
                .map(|(j, &c)| (j as u32, c))
                .collect(),
        };
        let reason = match st_m[r] {
            RowStatus::Zero => Some(RejectReason::ZeroHelperRow),
            RowStatus::NonFinite => Some(RejectReason::NonFiniteHelperRow),
            RowStatus::Ok => {
                let sum: f64 = chosen.iter().map(|p| p.1).sum();
                let scale = match k {
                    Some(_) => chosen.iter().map(|p| p.1.abs()).sum(),
                    None => dense_scale,
                };
                if sum.abs() <= WEIGHT_SUM_TOLERANCE as f64 * scale {
                    Some(RejectReason::WeightSumNearZero)
                } else {
                    let vals: Vec<f32> = (0..ds)
                        .map(|c| {
                            let acc: f64 = chosen
                                .iter()
                                .map(|&(j, w)| w * e[j as usize * ds + c])
                                .sum();
                            (acc / sum) as f32
                        })
                        .collect();
                    if vals.iter().all(|v| v.is_finite()) {
                        rows[r * ds..(r + 1) * ds].copy_from_slice(&vals);
                        None
                    } else {
                        Some(RejectReason::NonFiniteResult)
                    }
                }
            }
        };
        if let Some(reason) = reason {
            rejected.push(RejectedRow { row: r, reason });
        }
    }
    ClpOutput {
        rows,
        dim: ds,
        rejected,
        selection,
    }
}
