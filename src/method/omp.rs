//! Orthogonal matching pursuit ([`super::Weighting::Omp`]): the greedy atom choice, the affine
//! refit on the raw helper rows, and the host step every backend runs for a tile of rows.

use crate::rows::RowSet;
use crate::tensor::MatrixRef;

/// Orthogonal matching pursuit of one missing row: `target` is its raw helper row and
/// `candidates` the raw helper rows (`n × dim`) of the overlap tokens to choose from. Up to
/// `atoms` candidates are chosen greedily by |cosine| with the residual, on unit rows (the
/// choice does not depend on row norms), refitting least squares after every pick (incremental
/// Cholesky); ties go to the smaller index and nearly dependent atoms are skipped. The returned
/// coefficients (one per candidate, zero where not chosen) are then refitted on the *raw* rows
/// as an affine combination ([`affine_fit`]): they sum to 1. Zero or non-finite rows count as
/// zero rows (never chosen; a zero target chooses nothing and gets no coefficients).
pub fn omp(target: &[f64], candidates: &[f64], dim: usize, atoms: usize) -> Vec<f64> {
    let n = candidates.len() / dim.max(1);
    let unit = |v: &[f64]| -> Vec<f64> {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm.is_finite() && norm > 0.0 {
            v.iter().map(|x| x / norm).collect()
        } else {
            vec![0.0; v.len()]
        }
    };
    let t = unit(target);
    let a: Vec<f64> = candidates.chunks(dim.max(1)).flat_map(unit).collect();
    let chosen = omp_choose(&t, &a, dim, atoms);
    let mut out = vec![0.0; n];
    let rows: Vec<&[f64]> = (chosen.iter())
        .map(|&j| &candidates[j * dim..(j + 1) * dim])
        .collect();
    for (&j, x) in chosen.iter().zip(affine_fit(target, &rows)) {
        out[j] = x;
    }
    out
}

/// The ridge of OMP's affine refit, relative to tr(C) = Σ_j ‖t − h_j‖² (the regulariser of
/// locally linear embedding, at its customary 1e-3). It grows with the atoms, as the need for it
/// does: more atoms fit more of what only the helper space holds, and their coefficients carry
/// more of what only the source rows hold (measured on the trained pair: at k = 64 a ridge of
/// 1e-3 × the *mean* squared distance left 15% of the rows longer than every source row). On a
/// pair whose source rows are an exact linear image of the helper rows it costs ~1% relative
/// error.
pub const OMP_RIDGE: f64 = 1e-3;

/// The affine least-squares coefficients of `target` on `rows` (the chosen atoms, raw):
/// `min ‖Σ_j x_j h_j − t‖² + λ ‖x‖²` subject to `Σ_j x_j = 1`, λ = [`OMP_RIDGE`] × tr(C),
/// solved as `C x ∝ 1` with C the Gram matrix of the differences t − h_j (+ λ I), by Cholesky
/// in f64. Why affine and not plain least squares, measured (README, "OMP"): trained
/// embeddings share a large common component, the source's differing from the helper's, so
/// the plain coefficients' sum decides the row's length; an affine combination carries every
/// component the atoms share (the common one included) over as it is, and is exact whenever
/// the source rows are an affine image of the helper rows. Empty for no rows.
pub fn affine_fit(target: &[f64], rows: &[&[f64]]) -> Vec<f64> {
    let k = rows.len();
    if k == 0 {
        return Vec::new();
    }
    let diff: Vec<Vec<f64>> = (rows.iter())
        .map(|r| target.iter().zip(*r).map(|(t, h)| t - h).collect())
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut c: Vec<Vec<f64>> = (diff.iter())
        .map(|di| diff.iter().map(|dj| dot(di, dj)).collect())
        .collect();
    let trace: f64 = (0..k).map(|i| c[i][i]).sum();
    if trace.is_nan() || trace <= 0.0 || trace.is_infinite() {
        return vec![1.0 / k as f64; k]; // the target is every atom: any affine weights fit
    }
    let lambda = OMP_RIDGE * trace;
    for (i, ci) in c.iter_mut().enumerate() {
        ci[i] += lambda;
    }
    let x = cholesky_solve(c, &vec![1.0; k]);
    let sum: f64 = x.iter().sum();
    x.iter().map(|v| v / sum).collect()
}

/// `G x = b` for a symmetric positive definite G, by Cholesky (G overwritten by L).
fn cholesky_solve(mut g: Vec<Vec<f64>>, b: &[f64]) -> Vec<f64> {
    let t = b.len();
    for c in 0..t {
        let d = g[c][c] - (0..c).map(|k| g[c][k] * g[c][k]).sum::<f64>();
        g[c][c] = d.max(f64::MIN_POSITIVE).sqrt();
        for r in c + 1..t {
            let acc: f64 = (0..c).map(|k| g[r][k] * g[c][k]).sum();
            g[r][c] = (g[r][c] - acc) / g[c][c];
        }
    }
    let mut y = vec![0.0; t];
    for r in 0..t {
        let acc: f64 = (0..r).map(|c| g[r][c] * y[c]).sum();
        y[r] = (b[r] - acc) / g[r][r];
    }
    let mut x = vec![0.0; t];
    for r in (0..t).rev() {
        let acc: f64 = (r + 1..t).map(|c| g[c][r] * x[c]).sum();
        x[r] = (y[r] - acc) / g[r][r];
    }
    x
}

/// Greedy OMP on unit rows: the chosen candidate indices, in the order chosen.
fn omp_choose(target: &[f64], candidates: &[f64], dim: usize, atoms: usize) -> Vec<usize> {
    let n = candidates.len() / dim.max(1);
    let atom = |j: usize| &candidates[j * dim..(j + 1) * dim];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let b: Vec<f64> = (0..n).map(|j| dot(atom(j), target)).collect();
    let mut chosen: Vec<usize> = Vec::new();
    let mut excluded = vec![false; n];
    let mut gram_cols: Vec<Vec<f64>> = Vec::new(); // G[:, s] for every chosen s
    let mut l: Vec<Vec<f64>> = Vec::new(); // Cholesky rows of G[S, S]
    let mut x: Vec<f64> = Vec::new();
    while chosen.len() < atoms.min(n) {
        // Correlation of the residual with every candidate: b − G[:, S] x.
        let mut best: Option<(usize, f64)> = None;
        for j in 0..n {
            if excluded[j] {
                continue;
            }
            let c = b[j]
                - gram_cols
                    .iter()
                    .zip(&x)
                    .map(|(g, xi)| g[j] * xi)
                    .sum::<f64>();
            if best.is_none_or(|(_, bc)| c.abs() > bc) {
                best = Some((j, c.abs()));
            }
        }
        let Some((j, corr)) = best else { break };
        if corr <= 1e-12 {
            break;
        }
        excluded[j] = true;
        let g: Vec<f64> = (0..n).map(|i| dot(atom(i), atom(j))).collect();
        // New Cholesky row: solve L w = G[S, j]; d = sqrt(G[j, j] − |w|²).
        let mut wv = Vec::with_capacity(chosen.len());
        for (r, lr) in l.iter().enumerate() {
            let acc: f64 = (0..r).map(|c| lr[c] * wv[c]).sum();
            wv.push((g[chosen[r]] - acc) / lr[r]);
        }
        let d2 = g[j] - wv.iter().map(|v| v * v).sum::<f64>();
        if d2 <= 1e-10 {
            continue; // dependent on the atoms already chosen
        }
        wv.push(d2.sqrt());
        l.push(wv);
        chosen.push(j);
        gram_cols.push(g);
        // Solve L Lᵀ x = b[S].
        let t = chosen.len();
        let mut y = vec![0.0; t];
        for r in 0..t {
            let acc: f64 = (0..r).map(|c| l[r][c] * y[c]).sum();
            y[r] = (b[chosen[r]] - acc) / l[r][r];
        }
        x = vec![0.0; t];
        for r in (0..t).rev() {
            let acc: f64 = (r + 1..t).map(|c| l[c][r] * x[c]).sum();
            x[r] = (y[r] - acc) / l[r][r];
        }
    }
    chosen
}

/// OMP weights of missing rows `m0..m1` given their selected candidates (`indices`, `n` per
/// row, into the overlap rows): the host step of [`super::Weighting::Omp`] for every backend, on the
/// raw helper rows in f64 as in the reference ([`omp`]); rows run in parallel.
pub fn omp_tile_weights(
    h_missing: &RowSet,
    h_overlap: &RowSet,
    m0: usize,
    m1: usize,
    indices: &[u32],
    n: usize,
    atoms: usize,
) -> crate::Result<Vec<f32>> {
    use rayon::prelude::*;
    let dh = h_overlap.cols();
    let raw = |set: &RowSet, bytes: &[u8], rows: usize| -> crate::Result<Vec<f64>> {
        let m = MatrixRef::new(set.name(), bytes, set.dtype(), rows, dh)?;
        Ok((0..rows).flat_map(|r| m.row_f64(r)).collect())
    };
    let mut bytes = Vec::new();
    h_missing.gather(m0, m1, &mut bytes)?;
    let targets = raw(h_missing, &bytes, m1 - m0)?;
    // Every distinct candidate once, gathered in index order (runs read together).
    let mut ids: Vec<u32> = indices.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut cand = Vec::new();
    let mut row = Vec::new();
    for &id in &ids {
        h_overlap.gather(id as usize, id as usize + 1, &mut row)?;
        cand.extend_from_slice(&row);
    }
    let cand = raw(h_overlap, &cand, ids.len())?;
    let pos = |id: u32| ids.binary_search(&id).unwrap_or(0);
    let out: Vec<Vec<f32>> = (0..m1 - m0)
        .into_par_iter()
        .map(|r| {
            let sel = &indices[r * n..(r + 1) * n];
            let mut a = Vec::with_capacity(n * dh);
            for &j in sel {
                let p = pos(j);
                a.extend_from_slice(&cand[p * dh..(p + 1) * dh]);
            }
            omp(&targets[r * dh..(r + 1) * dh], &a, dh, atoms)
                .into_iter()
                .map(|x| x as f32)
                .collect()
        })
        .collect();
    Ok(out.concat())
}
