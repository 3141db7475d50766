//! Plain-Rust CPU reference of every kernel, accumulating in f64. It is the oracle for the GPU
//! tests and for `--verify`; it favours obviousness over speed (the dense formula is computed
//! directly over all M × O cosines, not in low rank).

use crate::backend::api::{self, stage, ClpBackend, Stats, TileOut};
use crate::error::Result;
use crate::method::{
    closed_form_weights, omp, ClpOutput, FinishRule, RejectReason, RejectedRow, RowStatus,
    Selection, TopK, Weighting, WEIGHT_SUM_TOLERANCE,
};
use crate::plan::{Problem, TilePlan};
use crate::rows::{RowSet, CHUNK_ROWS};
use crate::tensor::MatrixRef;

pub use crate::method::normalize_rows as normalize;

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

/// `k` of a top-k weighting over `o` overlap rows, `None` in dense mode.
fn effective_k(weighting: &Weighting, o: usize) -> Option<usize> {
    match weighting.top_k() {
        TopK::K(k) => Some(k.min(o)),
        TopK::All => None,
    }
}

/// `‖v‖₂`.
fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// OMP weights of a row's selection `(overlap index, cosine)` with `atoms` atoms.
type OmpWeights<'a> = dyn FnMut(&[(u32, f64)], usize) -> Result<Vec<f64>> + 'a;

/// Every neighbour one missing row uses, as (overlap index, weight): in top-k mode the `k`
/// most similar overlap rows weighted by `weighting` (OMP solved by `omp_weights` from the
/// selection), in dense mode every overlap row weighted by its cosine.
fn neighbours(
    weighting: &Weighting,
    k: Option<usize>,
    row_sims: &[f64],
    omp_weights: &mut OmpWeights,
) -> Result<Vec<(u32, f64)>> {
    let Some(k) = k else {
        return Ok(row_sims
            .iter()
            .enumerate()
            .map(|(j, &c)| (j as u32, c))
            .collect());
    };
    let best = top_k(row_sims, k);
    let w = match *weighting {
        Weighting::Omp { atoms } => omp_weights(&best, atoms)?,
        _ => closed_form_weights(weighting, &best.iter().map(|p| p.1).collect::<Vec<_>>()),
    };
    Ok(best.iter().map(|p| p.0).zip(w).collect())
}

/// The guards every backend applies, on one row, under the run's `rule`: a zero or non-finite
/// helper row; weights that cancel (divided rows: `|Σw| ≤ tol · Σ|w|` in top-k mode, `≤ tol ·
/// ‖s‖` in dense mode) or are all zero (OMP rows, as solved); a non-finite result; an OMP row
/// whose norm leaves the source rows' range. `sums(d)` gives the row `Σ_j w_j e_j / d` in f64
/// (`d` = Σw, or 1 for rows as solved).
fn guard(
    status: RowStatus,
    chosen: &[(u32, f64)],
    dense_scale: Option<f64>,
    rule: FinishRule,
    sums: impl FnOnce(f64) -> Vec<f64>,
) -> std::result::Result<Vec<f32>, RejectReason> {
    match status {
        RowStatus::Zero => return Err(RejectReason::ZeroHelperRow),
        RowStatus::NonFinite => return Err(RejectReason::NonFiniteHelperRow),
        RowStatus::Ok => {}
    }
    let sum: f64 = chosen.iter().map(|p| p.1).sum();
    let scale = dense_scale.unwrap_or_else(|| chosen.iter().map(|p| p.1.abs()).sum());
    let divisor = match rule {
        FinishRule::DivideBySum if sum.abs() <= WEIGHT_SUM_TOLERANCE as f64 * scale => {
            return Err(RejectReason::WeightSumNearZero)
        }
        FinishRule::DivideBySum => sum,
        FinishRule::AsSolved(_) if scale.is_nan() || scale <= 0.0 => {
            return Err(RejectReason::WeightSumNearZero)
        }
        FinishRule::AsSolved(_) => 1.0,
    };
    let row = sums(divisor);
    let vals: Vec<f32> = row.iter().map(|&v| v as f32).collect();
    if !vals.iter().all(|v| v.is_finite()) {
        return Err(RejectReason::NonFiniteResult);
    }
    match rule {
        FinishRule::AsSolved(range) if !range.contains(norm(&row)) => {
            Err(RejectReason::NormOutOfRange)
        }
        _ => Ok(vals),
    }
}

/// The full CLP computation: f64 everywhere, f32 rows out. Dense mode uses the direct formula
/// `Σ_j c_mj e_j / Σ_j c_mj` over every overlapping row; OMP rows are `Σ_j x_j e_j` as solved,
/// bounded by the norms of the overlap source rows ([`FinishRule`]).
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
    let mut s = vec![0.0f64; dh];
    for j in 0..o {
        for (si, x) in s.iter_mut().zip(&ho[j * dh..(j + 1) * dh]) {
            *si += x;
        }
    }
    let k = effective_k(weighting, o);
    let dense_scale = k.is_none().then(|| norm(&s));
    let rule = FinishRule::for_run(
        weighting,
        &RowSet::from_matrix("overlap source rows", e_overlap),
    )
    .expect("in-memory rows cannot fail");
    let mut out = ClpOutput {
        rows: vec![0.0f32; m * ds],
        dim: ds,
        rejected: Vec::new(),
        selection: k.map(|k| Selection {
            k,
            indices: Vec::new(),
            scores: Vec::new(),
            weights: Vec::new(),
        }),
    };
    for r in 0..m {
        let row_sims = &sims[r * o..(r + 1) * o];
        let target = h_missing.row_f64(r);
        let mut omp_weights = |best: &[(u32, f64)], atoms: usize| -> Result<Vec<f64>> {
            let cand: Vec<f64> = best
                .iter()
                .flat_map(|&(j, _)| h_overlap.row_f64(j as usize))
                .collect();
            Ok(omp(&target, &cand, dh, atoms))
        };
        let chosen = neighbours(weighting, k, row_sims, &mut omp_weights)
            .expect("in-memory candidates cannot fail");
        if let Some(sel) = out.selection.as_mut() {
            sel.indices.extend(chosen.iter().map(|p| p.0));
            sel.scores
                .extend(chosen.iter().map(|p| row_sims[p.0 as usize] as f32));
            sel.weights.extend(chosen.iter().map(|p| p.1 as f32));
        }
        let sums = |d: f64| -> Vec<f64> {
            (0..ds)
                .map(|c| {
                    let acc: f64 = chosen
                        .iter()
                        .map(|&(j, w)| w * e[j as usize * ds + c])
                        .sum();
                    acc / d
                })
                .collect()
        };
        match guard(st_m[r], &chosen, dense_scale, rule, sums) {
            Ok(vals) => out.rows[r * ds..(r + 1) * ds].copy_from_slice(&vals),
            Err(reason) => out.rejected.push(RejectedRow { row: r, reason }),
        }
    }
    out
}

/// One missing row computed by [`clp_rows`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceRow {
    /// The row (zeros when rejected).
    pub values: Vec<f32>,
    /// Why it was rejected, if it was.
    pub rejected: Option<RejectReason>,
}

/// `v / ‖v‖` with the row's status (zeros for a non-finite row, unchanged for a zero row).
fn unit(v: Vec<f64>) -> (Vec<f64>, RowStatus) {
    if v.iter().any(|x| !x.is_finite()) {
        return (vec![0.0; v.len()], RowStatus::NonFinite);
    }
    let n = norm(&v);
    if n == 0.0 {
        return (v, RowStatus::Zero);
    }
    (v.iter().map(|x| x / n).collect(), RowStatus::Ok)
}

/// Pass 1 of [`clp_rows`], over the helper overlap in chunks: the cosine of every target with
/// every overlap row, and `Σ_j ĥ_j`.
fn streamed_cosines(
    targets: &[(Vec<f64>, RowStatus)],
    h_overlap: &RowSet,
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let (o, dh) = (h_overlap.rows(), h_overlap.cols());
    let mut sims = vec![vec![0.0f64; o]; targets.len()];
    let mut s = vec![0.0f64; dh];
    h_overlap.for_each_chunk(|o0, chunk| {
        let (hat, _) = normalize(chunk);
        for j in 0..chunk.rows {
            let hj = &hat[j * dh..(j + 1) * dh];
            for (si, x) in s.iter_mut().zip(hj) {
                *si += x;
            }
            for (t, sim) in targets.iter().zip(sims.iter_mut()) {
                sim[o0 + j] = t.0.iter().zip(hj).map(|(a, b)| a * b).sum();
            }
        }
        Ok(())
    })?;
    Ok((sims, s))
}

/// Pass 2 of [`clp_rows`], over the source overlap in chunks: `Σ_j w_j e_j` of every row.
fn streamed_sums(chosen: &[Vec<(u32, f64)>], e_overlap: &RowSet) -> Result<Vec<Vec<f64>>> {
    let (o, ds) = (e_overlap.rows(), e_overlap.cols());
    let mut acc = vec![vec![0.0f64; ds]; chosen.len()];
    let mut by_chunk: Vec<Vec<(usize, usize, f64)>> = vec![Vec::new(); o.div_ceil(CHUNK_ROWS)];
    for (i, c) in chosen.iter().enumerate() {
        for &(j, w) in c {
            by_chunk[j as usize / CHUNK_ROWS].push((i, j as usize, w));
        }
    }
    let needed = (0..by_chunk.len()).filter(|&c| !by_chunk[c].is_empty());
    e_overlap.for_chunks(needed, |o0, chunk| {
        for &(i, j, w) in &by_chunk[o0 / CHUNK_ROWS] {
            for (c, a) in acc[i].iter_mut().enumerate() {
                *a += w * chunk.get(j - o0, c) as f64;
            }
        }
        Ok(())
    })?;
    Ok(acc)
}

/// [`clp`] for the chosen missing rows only, streaming the overlap sets in chunks so that it
/// works on vocabularies that do not fit in memory (for `bench --verify` on on-disk inputs).
/// Same f64 arithmetic and tie rules as [`clp`].
pub fn clp_rows(
    rows: &[usize],
    h_missing: &RowSet,
    h_overlap: &RowSet,
    e_overlap: &RowSet,
    weighting: &Weighting,
) -> Result<Vec<ReferenceRow>> {
    let (o, dh, ds) = (h_overlap.rows(), h_overlap.cols(), e_overlap.cols());
    let targets: Vec<(Vec<f64>, RowStatus)> = rows
        .iter()
        .map(|&r| h_missing.row_f64(r).map(unit))
        .collect::<Result<_>>()?;
    let (sims, s) = streamed_cosines(&targets, h_overlap)?;
    let k = effective_k(weighting, o);
    let dense_scale = k.is_none().then(|| norm(&s));
    let rule = FinishRule::for_run(weighting, e_overlap)?;
    let mut bytes = Vec::new();
    let mut chosen: Vec<Vec<(u32, f64)>> = Vec::with_capacity(rows.len());
    for (row, &r) in sims.iter().zip(rows) {
        let mut omp_weights = |best: &[(u32, f64)], atoms: usize| -> Result<Vec<f64>> {
            let target = h_missing.row_f64(r)?;
            let mut cand = Vec::with_capacity(best.len() * dh);
            for &(j, _) in best {
                h_overlap.gather(j as usize, j as usize + 1, &mut bytes)?;
                let one = MatrixRef::new("candidate", &bytes, h_overlap.dtype(), 1, dh)?;
                cand.extend(one.row_f64(0));
            }
            Ok(omp(&target, &cand, dh, atoms))
        };
        chosen.push(neighbours(weighting, k, row, &mut omp_weights)?);
    }
    let acc = streamed_sums(&chosen, e_overlap)?;
    Ok(targets
        .iter()
        .zip(chosen.iter().zip(&acc))
        .map(|((_, status), (c, acc))| {
            let sums = |d: f64| acc.iter().map(|a| a / d).collect();
            match guard(*status, c, dense_scale, rule, sums) {
                Ok(values) => ReferenceRow {
                    values,
                    rejected: None,
                },
                Err(reason) => ReferenceRow {
                    values: vec![0.0; ds],
                    rejected: Some(reason),
                },
            }
        })
        .collect())
}

/// The f64 reference as a [`ClpBackend`]: gathers every row into memory and emits one tile.
/// Only for small problems (tests, `apply --backend cpu-reference`).
#[derive(Debug, Clone, Copy)]
pub struct ReferenceBackend;

impl ClpBackend for ReferenceBackend {
    fn describe(&self) -> String {
        "CPU f64 reference".into()
    }
    fn tile_plan(&self, p: &Problem) -> Result<TilePlan> {
        Ok(TilePlan {
            m_rows: p.missing.max(1),
            o_rows: p.overlap.max(1),
            gpu_bytes: 0,
            largest_buffer_bytes: 0,
        })
    }
    fn run(
        &self,
        h_missing: &RowSet,
        h_overlap: &RowSet,
        e_overlap: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        let p = api::problem(h_missing, h_overlap, e_overlap, weighting)?;
        let mut stats = Stats::default();
        if p.missing == 0 {
            return Ok(stats);
        }
        let mut bytes = [Vec::new(), Vec::new(), Vec::new()];
        let sets = [h_missing, h_overlap, e_overlap];
        stats.time(stage::GATHER, || -> Result<()> {
            for (b, s) in bytes.iter_mut().zip(sets) {
                s.gather(0, s.rows(), b)?;
            }
            Ok(())
        })?;
        let m = |i: usize| {
            MatrixRef::new(
                sets[i].name(),
                &bytes[i],
                sets[i].dtype(),
                sets[i].rows(),
                sets[i].cols(),
            )
        };
        let out = stats.time(stage::COMBINE, || -> Result<ClpOutput> {
            Ok(clp(&m(0)?, &m(1)?, &m(2)?, weighting))
        })?;
        let mut status = vec![0u32; p.missing];
        for r in &out.rejected {
            status[r.row] = r.reason.code();
        }
        let (k, scores, indices, weights) = match &out.selection {
            Some(s) => (
                s.k,
                s.scores.as_slice(),
                s.indices.as_slice(),
                s.weights.as_slice(),
            ),
            None => (0, &[][..], &[][..], &[][..]),
        };
        stats.time(stage::WRITE, || {
            sink(&TileOut {
                start: 0,
                dim: out.dim,
                rows: &out.rows,
                status: &status,
                k,
                scores,
                indices,
                weights,
            })
        })?;
        stats.tiles = (p.missing, p.overlap);
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{embeddings, Rng};
    use crate::tensor::DType;

    #[test]
    fn streamed_rows_equal_the_whole_reference() {
        let mut rng = Rng::new(5);
        let (m, o, dh, ds) = (7, 5000, 6, 5);
        let hm = DType::F16.encode(&embeddings(&mut rng, m, dh, 0.5));
        let ho = DType::BF16.encode(&embeddings(&mut rng, o, dh, 0.5));
        let eo = DType::F32.encode(&embeddings(&mut rng, o, ds, 0.3));
        let hm = MatrixRef::new("hm", &hm, DType::F16, m, dh).unwrap();
        let ho = MatrixRef::new("ho", &ho, DType::BF16, o, dh).unwrap();
        let eo = MatrixRef::new("eo", &eo, DType::F32, o, ds).unwrap();
        for top_k in [TopK::K(3), TopK::All] {
            let w = Weighting::Clp { top_k };
            let whole = clp(&hm, &ho, &eo, &w);
            let rows = [0, 3, 6];
            let got = clp_rows(
                &rows,
                &RowSet::from_matrix("hm", &hm),
                &RowSet::from_matrix("ho", &ho),
                &RowSet::from_matrix("eo", &eo),
                &w,
            )
            .unwrap();
            for (g, &r) in got.iter().zip(&rows) {
                let want = &whole.rows[r * ds..(r + 1) * ds];
                for (a, b) in g.values.iter().zip(want) {
                    assert!(
                        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                        "{top_k}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
