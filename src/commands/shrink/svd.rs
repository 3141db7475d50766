//! Width reduction of an embedding by truncated SVD, in f64.
//!
//! For E (rows × d) = U Σ Vᵀ, the top-D right singular vectors V_D (d × D) are the top-D
//! eigenvectors of the d × d Gram matrix G = EᵀE (eigenvalues σ²), which is cheap to form
//! (rows × d² multiply-adds, split over threads, each block through nalgebra's dgemm) and to
//! decompose (nalgebra's symmetric eigen-solver). The reduced embedding is E V_D = U_D Σ_D:
//! the top-D left singular vectors scaled by their singular values, the best rank-D
//! approximation of E in its own coordinates (E ≈ (E V_D) V_Dᵀ). Eigenvector signs are fixed
//! (largest-magnitude component positive) so the same input gives the same bytes.

use crate::error::{Error, Result};
use crate::tensor::MatrixRef;
use nalgebra::DMatrix;

/// Rows per block of the Gram and projection products.
const BLOCK_ROWS: usize = 512;

/// The top-D right singular subspace of an embedding.
#[derive(Debug, Clone)]
pub struct WidthReduction {
    /// V_D: d × D, columns orthonormal, ordered by descending singular value.
    pub basis: DMatrix<f64>,
    /// The top-D singular values, descending.
    pub singular_values: Vec<f64>,
    /// Σ_{i<D} σ_i² / Σ_i σ_i² (1 when E is zero).
    pub spectrum_kept: f64,
}

/// Rows `start..end` of `m` as an f64 matrix.
fn block(m: &MatrixRef, start: usize, end: usize) -> DMatrix<f64> {
    DMatrix::from_fn(end - start, m.cols, |i, j| m.get(start + i, j) as f64)
}

/// Runs `f` on contiguous row ranges of `rows` on up to 8 threads; results in range order.
fn par_ranges<T: Send>(rows: usize, f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(rows.div_ceil(BLOCK_ROWS))
        .max(1);
    let per = rows.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || f((t * per).min(rows), ((t + 1) * per).min(rows)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// G = EᵀE in f64.
pub fn gram(m: &MatrixRef) -> DMatrix<f64> {
    let d = m.cols;
    let parts = par_ranges(m.rows, |start, end| {
        let mut g = DMatrix::<f64>::zeros(d, d);
        let mut r = start;
        while r < end {
            let e = (r + BLOCK_ROWS).min(end);
            let b = block(m, r, e);
            g.gemm(1.0, &b.transpose(), &b, 1.0);
            r = e;
        }
        g
    });
    parts
        .into_iter()
        .fold(DMatrix::<f64>::zeros(d, d), |acc, g| acc + g)
}

/// The top-`dim` right singular subspace of `m`; `name` is used in errors.
pub fn reduce(m: &MatrixRef, dim: usize, name: &str) -> Result<WidthReduction> {
    if dim == 0 || dim >= m.cols {
        return Err(Error::Argument(format!(
            "--hidden-size {dim}: `{name}` is {} wide; give a width between 1 and {}",
            m.cols,
            m.cols.saturating_sub(1)
        )));
    }
    let g = gram(m);
    let trace: f64 = g.diagonal().iter().sum();
    let eig = nalgebra::SymmetricEigen::new(g);
    let mut order: Vec<usize> = (0..m.cols).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut basis = DMatrix::<f64>::zeros(m.cols, dim);
    let mut singular_values = Vec::with_capacity(dim);
    let mut kept = 0.0;
    for (k, &i) in order.iter().take(dim).enumerate() {
        let lambda = eig.eigenvalues[i].max(0.0);
        kept += lambda;
        singular_values.push(lambda.sqrt());
        let v = eig.eigenvectors.column(i);
        let pivot = v
            .iter()
            .copied()
            .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
        let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
        for r in 0..m.cols {
            basis[(r, k)] = sign * v[r];
        }
    }
    if !kept.is_finite() || !trace.is_finite() {
        return Err(Error::Model(format!(
            "`{name}` holds non-finite values (inf or NaN); repair the checkpoint before shrinking"
        )));
    }
    Ok(WidthReduction {
        basis,
        singular_values,
        spectrum_kept: if trace > 0.0 {
            (kept / trace).min(1.0)
        } else {
            1.0
        },
    })
}

/// E V_D (rows × D, row-major f32) and the share of E's energy it keeps, ‖E V_D‖² / ‖E‖².
pub fn project(m: &MatrixRef, basis: &DMatrix<f64>) -> (Vec<f32>, f64) {
    let dim = basis.ncols();
    let parts = par_ranges(m.rows, |start, end| {
        let mut out = Vec::with_capacity((end - start) * dim);
        let (mut kept, mut total) = (0.0f64, 0.0f64);
        let mut r = start;
        while r < end {
            let e = (r + BLOCK_ROWS).min(end);
            let b = block(m, r, e);
            total += b.norm_squared();
            let p = &b * basis;
            kept += p.norm_squared();
            for i in 0..p.nrows() {
                out.extend((0..dim).map(|j| p[(i, j)] as f32));
            }
            r = e;
        }
        (out, kept, total)
    });
    let (mut out, mut kept, mut total) = (Vec::with_capacity(m.rows * dim), 0.0, 0.0);
    for (o, k, t) in parts {
        out.extend(o);
        kept += k;
        total += t;
    }
    (out, if total > 0.0 { kept / total } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_low_rank_is_kept_whole() {
        // E = A B with A 700 × 2 and B 2 × 5: rank 2.
        let (rows, d) = (700, 5);
        let mut e = vec![0.0f32; rows * d];
        for r in 0..rows {
            let a = [(r as f32 * 0.37).sin(), (r as f32 * 0.11).cos()];
            for c in 0..d {
                e[r * d + c] = a[0] * (c as f32 + 1.0) + a[1] * (c as f32 * c as f32 - 2.0);
            }
        }
        let m = MatrixRef::from_f32(&e, rows, d).unwrap();
        let red = reduce(&m, 2, "e").unwrap();
        assert!(
            (red.spectrum_kept - 1.0).abs() < 1e-9,
            "{}",
            red.spectrum_kept
        );
        let (p, energy) = project(&m, &red.basis);
        assert!((energy - 1.0).abs() < 1e-6);
        // Reconstruction E ≈ P V_Dᵀ.
        for r in (0..rows).step_by(37) {
            for c in 0..d {
                let x: f64 = (0..2)
                    .map(|k| p[r * 2 + k] as f64 * red.basis[(c, k)])
                    .sum();
                assert!(
                    (x - e[r * d + c] as f64).abs() < 1e-4,
                    "{r},{c}: {x} vs {}",
                    e[r * d + c]
                );
            }
        }
        assert!(red.singular_values[0] >= red.singular_values[1]);
        assert!(reduce(&m, 5, "e").is_err());
        assert!(reduce(&m, 0, "e").is_err());
    }
}
