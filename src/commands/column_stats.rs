//! Streaming statistics over a [`RowSet`]: the rows are gathered in chunks (never the whole
//! set at once) and fed to a closure; the column mean (the fallback row of `apply`, the mean
//! baseline of `evaluate`), the column standard deviation and `apply`'s FVT rows are built on
//! it.

use crate::error::Result;
use crate::rows::RowSet;
use crate::tensor::MatrixRef;

/// Feeds `set` to `f` in chunks of [`crate::rows::CHUNK_ROWS`] rows, in row order.
pub fn for_each_chunk(set: &RowSet, mut f: impl FnMut(&MatrixRef)) -> Result<()> {
    try_for_each_chunk(set, |m| {
        f(m);
        Ok(())
    })
}

/// [`for_each_chunk`] with a fallible `f`: its first error stops the stream and is returned, and
/// so does a requested stop ([`crate::cancel`]), checked before every chunk.
pub fn try_for_each_chunk(set: &RowSet, mut f: impl FnMut(&MatrixRef) -> Result<()>) -> Result<()> {
    set.for_each_chunk(|_, m| f(m))
}

/// Column means of `set`, accumulated in f64.
pub fn mean_rows(set: &RowSet) -> Result<Vec<f32>> {
    let mut acc = vec![0.0f64; set.cols()];
    for_each_chunk(set, |m| {
        for r in 0..m.rows {
            for (c, a) in acc.iter_mut().enumerate() {
                *a += m.get(r, c) as f64;
            }
        }
    })?;
    let n = set.rows().max(1) as f64;
    Ok(acc.into_iter().map(|a| (a / n) as f32).collect())
}

/// Column standard deviations of `set` around `mean` (population, accumulated in f64).
pub fn sd_rows(set: &RowSet, mean: &[f32]) -> Result<Vec<f64>> {
    let mut var = vec![0.0f64; set.cols()];
    for_each_chunk(set, |m| {
        for r in 0..m.rows {
            for (c, v) in var.iter_mut().enumerate() {
                *v += (m.get(r, c) as f64 - mean[c] as f64).powi(2);
            }
        }
    })?;
    let n = set.rows().max(1) as f64;
    Ok(var.iter().map(|v| (v / n).sqrt()).collect())
}
