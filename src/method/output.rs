//! What a CLP computation returns: the rows, the rejected rows and, in top-k mode, the selection.

use super::status::RejectedRow;

/// The neighbours chosen for each missing row in top-k mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Neighbours per row (the requested k clamped to the overlap size).
    pub k: usize,
    /// `rows × k` indices into the overlap rows, best first (ties: smaller index first).
    pub indices: Vec<u32>,
    /// `rows × k` cosine similarities, matching `indices`.
    pub scores: Vec<f32>,
    /// `rows × k` weights before any division by their sum (CLP: the cosines; OMP: the
    /// coefficients, which are never divided).
    pub weights: Vec<f32>,
}

/// The result of a CLP computation.
#[derive(Debug, Clone)]
pub struct ClpOutput {
    /// `missing × dim` f32 rows, row-major; rejected rows are all zeros.
    pub rows: Vec<f32>,
    /// Columns of each row (the source dimension).
    pub dim: usize,
    /// Rows not computed from weights, ascending by row.
    pub rejected: Vec<RejectedRow>,
    /// Chosen neighbours (top-k mode only).
    pub selection: Option<Selection>,
}
