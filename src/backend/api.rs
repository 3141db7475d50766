//! What every compute backend shares (the contract of [`crate::backend`]): the checked problem, the tiles it hands out, the stage
//! timings it reports, and the [`ClpBackend`] trait the GPU engine ([`crate::Engine`]) and the
//! multi-threaded CPU path ([`crate::backend::cpu::CpuBackend`]) implement.
//!
//! A run streams: inputs come as [`RowSet`]s gathered tile by tile, and results leave as
//! [`TileOut`]s handed to a sink as soon as each missing tile is done, so neither side ever holds
//! a whole vocabulary. [`collect`] is the sink that keeps everything (tests, small problems).

use crate::error::{Error, Result};
use crate::method::{
    selectable, ClpOutput, RejectReason, RejectedRow, Selection, TopK, Weighting, MAX_SELECTED,
};
use crate::plan::{Problem, TilePlan};
use crate::rows::RowSet;
use crate::tensor::MatrixRef;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The results of one missing tile: rows `start .. start + status.len()`.
#[derive(Debug)]
pub struct TileOut<'a> {
    /// Index of the first missing row of the tile.
    pub start: usize,
    /// Row width d_s.
    pub dim: usize,
    /// `rows × dim` values (all zeros for rejected rows).
    pub rows: &'a [f32],
    /// Per row: 0 ok, else a [`RejectReason`] code.
    pub status: &'a [u32],
    /// Neighbours per row (0 in dense mode).
    pub k: usize,
    /// `rows × k` selected similarities, best first (top-k mode).
    pub scores: &'a [f32],
    /// `rows × k` selected overlap indices (top-k mode).
    pub indices: &'a [u32],
    /// `rows × k` weights before any division by their sum (top-k mode; OMP: as solved).
    pub weights: &'a [f32],
}

/// Wall time per stage and bytes moved, accumulated over a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Seconds per stage name.
    pub seconds: BTreeMap<String, f64>,
    /// Bytes gathered from the inputs (host).
    pub gathered_bytes: u64,
    /// Bytes sent to the device (GPU backend).
    pub uploaded_bytes: u64,
    /// Bytes read back from the device (GPU backend).
    pub readback_bytes: u64,
    /// Missing × overlap tile of the plan.
    pub tiles: (usize, usize),
    /// Memory the plan allocates for buffers (device memory for the GPU).
    pub buffer_bytes: u64,
}

impl Stats {
    /// Adds `d` to `stage`.
    pub fn add(&mut self, stage: &str, d: Duration) {
        *self.seconds.entry(stage.to_string()).or_default() += d.as_secs_f64();
    }
    /// Runs `f`, adding its wall time to `stage`.
    pub fn time<T>(&mut self, stage: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(stage, t.elapsed());
        out
    }
}

/// Stage names used in [`Stats`] (the order reports print them in).
pub mod stage {
    /// Gathering input rows from memory or files into staging buffers.
    pub const GATHER: &str = "read/gather";
    /// Host → device copies (GPU) or decoding to f32 (CPU).
    pub const UPLOAD: &str = "upload";
    /// Row normalisation.
    pub const NORMALISE: &str = "normalise";
    /// Similarity GEMM and running top-k (top-k mode).
    pub const SIMILARITY: &str = "similarity+top-k";
    /// Dense mode: the Gram matrix Ĥ_Oᵀ [E_O | 1].
    pub const GRAM: &str = "gram";
    /// Weights, weighted sums of source rows, division and guards.
    pub const COMBINE: &str = "combine";
    /// Submitting and waiting for GPU work when stages are not timed one by one (kernels,
    /// minus whatever overlapped with host work).
    pub const GPU: &str = "gpu";
    /// Device → host copies of the results.
    pub const READBACK: &str = "readback";
    /// The sink (writing rows to the output).
    pub const WRITE: &str = "write";
    /// Every stage in report order.
    pub const ALL: [&str; 9] = [
        GATHER, UPLOAD, NORMALISE, SIMILARITY, GRAM, COMBINE, GPU, READBACK, WRITE,
    ];
}

/// A CLP implementation that streams tiles.
pub trait ClpBackend {
    /// What runs the math (adapter or CPU), for reports.
    fn describe(&self) -> String;
    /// The tiling this backend would use.
    fn tile_plan(&self, problem: &Problem) -> Result<TilePlan>;
    /// Runs CLP over the row sets, handing every finished missing tile to `sink` in order.
    fn run(
        &self,
        h_missing: &RowSet,
        h_overlap: &RowSet,
        e_overlap: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats>;
}

/// Validates the shapes of a run and returns the problem to plan.
pub fn problem(
    h_missing: &RowSet,
    h_overlap: &RowSet,
    e_overlap: &RowSet,
    weighting: &Weighting,
) -> Result<Problem> {
    if h_overlap.rows() == 0 {
        return Err(Error::Shape(
            "there are no overlapping tokens: nothing to build missing rows from".into(),
        ));
    }
    if h_missing.cols() != h_overlap.cols() {
        return Err(Error::Shape(format!(
            "helper rows differ in width: missing rows have {} columns, overlap rows {}",
            h_missing.cols(),
            h_overlap.cols()
        )));
    }
    if e_overlap.rows() != h_overlap.rows() {
        return Err(Error::Shape(format!(
            "{} overlap rows in the helper space but {} in the source space",
            h_overlap.rows(),
            e_overlap.rows()
        )));
    }
    if h_overlap.cols() == 0 || e_overlap.cols() == 0 {
        return Err(Error::Shape("embedding width is 0".into()));
    }
    weighting.validate().map_err(Error::Argument)?;
    let k = match weighting.top_k() {
        TopK::All => None,
        TopK::K(k) if !selectable(k) => {
            return Err(Error::Argument(format!(
                "top-k {k}: give 1 to {MAX_SELECTED}, or `all` (the dense original)"
            )))
        }
        TopK::K(k) => Some(k.min(h_overlap.rows())),
    };
    let helper_dtype = if h_missing.dtype().size_bytes() >= h_overlap.dtype().size_bytes() {
        h_missing.dtype()
    } else {
        h_overlap.dtype()
    };
    Ok(Problem {
        missing: h_missing.rows(),
        overlap: h_overlap.rows(),
        helper_dim: h_overlap.cols(),
        source_dim: e_overlap.cols(),
        helper_dtype,
        source_dtype: e_overlap.dtype(),
        k,
    })
}

/// Runs `backend` and keeps every row, rejection and selection (for tests and small inputs).
pub fn collect(
    backend: &dyn ClpBackend,
    h_missing: &MatrixRef,
    h_overlap: &MatrixRef,
    e_overlap: &MatrixRef,
    weighting: &Weighting,
) -> Result<ClpOutput> {
    let hm = RowSet::from_matrix("missing helper rows", h_missing);
    let ho = RowSet::from_matrix("overlap helper rows", h_overlap);
    let eo = RowSet::from_matrix("overlap source rows", e_overlap);
    collect_sets(backend, &hm, &ho, &eo, weighting)
}

/// [`collect`] over row sets (which may stream from files).
pub fn collect_sets(
    backend: &dyn ClpBackend,
    hm: &RowSet,
    ho: &RowSet,
    eo: &RowSet,
    weighting: &Weighting,
) -> Result<ClpOutput> {
    let p = problem(hm, ho, eo, weighting)?;
    let mut out = ClpOutput {
        rows: Vec::with_capacity(p.missing * p.source_dim),
        dim: p.source_dim,
        rejected: Vec::new(),
        selection: p.k.map(|k| Selection {
            k,
            indices: Vec::with_capacity(p.missing * k),
            scores: Vec::with_capacity(p.missing * k),
            weights: Vec::with_capacity(p.missing * k),
        }),
    };
    backend.run(hm, ho, eo, weighting, &mut |t: &TileOut| {
        out.rows.extend_from_slice(t.rows);
        for (i, &code) in t.status.iter().enumerate() {
            if let Some(reason) = RejectReason::from_code(code)? {
                out.rejected.push(RejectedRow {
                    row: t.start + i,
                    reason,
                });
            }
        }
        if let Some(sel) = out.selection.as_mut() {
            sel.scores.extend_from_slice(t.scores);
            sel.indices.extend_from_slice(t.indices);
            sel.weights.extend_from_slice(t.weights);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Overlap tiles `(start, end)` of `tile` rows covering `0..n`.
pub fn tiles(n: usize, tile: usize) -> Vec<(usize, usize)> {
    (0..n)
        .step_by(tile.max(1))
        .map(|s| (s, (s + tile).min(n)))
        .collect()
}
