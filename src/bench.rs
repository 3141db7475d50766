//! `clp-gpu bench`: times the engine on deterministic synthetic embeddings of a chosen shape and
//! reports wall time, GFLOP/s, GB/s uploaded, peak host RSS, the tile plan and the adapter.
//! `verify` rows are recomputed with the f64 reference and the worst error is reported.

use crate::engine::Engine;
use crate::error::Result;
use crate::reference;
use crate::synthetic::{embeddings, Rng};
use crate::tensor::{DType, MatrixRef};
use crate::weights::{TopK, Weighting};
use std::time::Instant;

/// The shape of a benchmark problem.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BenchShape {
    /// Missing tokens M.
    pub missing: usize,
    /// Overlapping tokens O.
    pub overlap: usize,
    /// Helper dimension d_h.
    pub helper_dim: usize,
    /// Source dimension d_s.
    pub source_dim: usize,
    /// Storage type of every input.
    pub dtype: DType,
}

impl BenchShape {
    /// The default: the seed example (BLOOM-7b1 source, 1.5B GPT-2 helper, d_s 4096, d_h 1600)
    /// with vocabulary sizes cut about 16× (O = M = 1,500), fp16, so it runs in about a minute on a
    /// software driver.
    pub fn default_scaled() -> BenchShape {
        BenchShape {
            missing: 1500,
            overlap: 1500,
            helper_dim: 1600,
            source_dim: 4096,
            dtype: DType::F16,
        }
    }
    /// S1 at full size: O ≈ M ≈ 25,000 (GPU workload).
    pub fn s1() -> BenchShape {
        BenchShape {
            missing: 25_000,
            overlap: 25_000,
            helper_dim: 1600,
            source_dim: 4096,
            dtype: DType::F16,
        }
    }
    /// S2 at full size: O = 100,000, M = 150,000, d_h 2048 (GPU workload).
    pub fn s2() -> BenchShape {
        BenchShape {
            missing: 150_000,
            overlap: 100_000,
            helper_dim: 2048,
            source_dim: 4096,
            dtype: DType::F16,
        }
    }
}

/// Floating-point operations of one run (multiply-add = 2).
pub fn flops(s: &BenchShape, top_k: TopK) -> f64 {
    let (m, o, dh, ds) = (
        s.missing as f64,
        s.overlap as f64,
        s.helper_dim as f64,
        s.source_dim as f64,
    );
    match top_k {
        TopK::K(k) => 2.0 * m * o * dh + 2.0 * m * (k.min(s.overlap) as f64) * ds,
        TopK::All => 2.0 * o * dh * (ds + 1.0) + 2.0 * m * dh * (ds + 1.0),
    }
}

/// One mode's measurements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    /// "all" or k.
    pub top_k: String,
    /// Wall time of `Engine::clp` (upload, kernels, readback), seconds.
    pub seconds: f64,
    /// Useful GFLOP/s over that time.
    pub gflops: f64,
    /// Input bytes the run uploads (helper rows once per missing tile, source rows likewise),
    /// divided by the time, GB/s.
    pub upload_gb_per_s: f64,
    /// Missing rows produced per second.
    pub rows_per_s: f64,
    /// Missing tile × overlap tile of the plan.
    pub tiles: (usize, usize),
    /// GPU memory the plan allocates, bytes.
    pub gpu_bytes: u64,
    /// Rejected rows.
    pub rejected: usize,
    /// Worst |gpu − reference| / row max-abs over the verified rows (None: not verified).
    pub verify_max_rel_err: Option<f64>,
}

/// A whole bench report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// The adapter.
    pub adapter: crate::gpu::AdapterSummary,
    /// The shape.
    pub shape: BenchShape,
    /// Seconds to generate the inputs.
    pub generate_seconds: f64,
    /// Per mode.
    pub results: Vec<BenchResult>,
    /// Peak resident set of the process, bytes (VmHWM).
    pub peak_rss_bytes: u64,
}

/// Peak resident set size of this process (Linux VmHWM), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs every mode in `modes` on synthetic data of `shape` (seeded) and verifies `verify` rows.
pub fn run(
    engine: &Engine,
    shape: BenchShape,
    modes: &[TopK],
    seed: u64,
    verify: usize,
) -> Result<BenchReport> {
    let t0 = Instant::now();
    let mut rng = Rng::new(seed);
    let dt = shape.dtype;
    let hm = dt.encode(&embeddings(&mut rng, shape.missing, shape.helper_dim, 0.5));
    let ho = dt.encode(&embeddings(&mut rng, shape.overlap, shape.helper_dim, 0.5));
    let eo = dt.encode(&embeddings(&mut rng, shape.overlap, shape.source_dim, 0.3));
    let generate_seconds = t0.elapsed().as_secs_f64();
    let hm = MatrixRef::new(
        "missing helper rows",
        &hm,
        dt,
        shape.missing,
        shape.helper_dim,
    )?;
    let ho = MatrixRef::new(
        "overlap helper rows",
        &ho,
        dt,
        shape.overlap,
        shape.helper_dim,
    )?;
    let eo = MatrixRef::new(
        "overlap source rows",
        &eo,
        dt,
        shape.overlap,
        shape.source_dim,
    )?;
    let mut results = Vec::new();
    for &top_k in modes {
        let weighting = Weighting::Clp { top_k };
        let problem = Engine::problem(&hm, &ho, &eo, &weighting)?;
        let plan = engine.plan(&problem)?;
        let t = Instant::now();
        let out = engine.clp(&hm, &ho, &eo, &weighting)?;
        let seconds = t.elapsed().as_secs_f64();
        let m_tiles = shape.missing.div_ceil(plan.m_rows) as f64;
        let passes = if matches!(top_k, TopK::All) {
            1.0
        } else {
            m_tiles
        };
        let uploaded = hm.data.len() as f64 + passes * (ho.data.len() + eo.data.len()) as f64;
        let verify_max_rel_err =
            (verify > 0).then(|| verify_rows(&hm, &ho, &eo, &weighting, &out.rows, verify, seed));
        results.push(BenchResult {
            top_k: top_k.to_string(),
            seconds,
            gflops: flops(&shape, top_k) / seconds / 1e9,
            upload_gb_per_s: uploaded / seconds / 1e9,
            rows_per_s: shape.missing as f64 / seconds,
            tiles: (plan.m_rows, plan.o_rows),
            gpu_bytes: plan.gpu_bytes,
            rejected: out.rejected.len(),
            verify_max_rel_err,
        });
    }
    Ok(BenchReport {
        adapter: engine.gpu().adapter().clone(),
        shape,
        generate_seconds,
        results,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Worst relative error of `n` random rows against the f64 reference (computed on just those
/// rows: the reference of one missing row needs only that row and the overlap).
fn verify_rows(
    hm: &MatrixRef,
    ho: &MatrixRef,
    eo: &MatrixRef,
    weighting: &Weighting,
    rows: &[f32],
    n: usize,
    seed: u64,
) -> f64 {
    let mut rng = Rng::new(seed ^ 0xfeed);
    let ds = eo.cols;
    let mut worst = 0.0f64;
    for _ in 0..n.min(hm.rows) {
        let r = rng.below(hm.rows);
        let one = MatrixRef {
            data: hm.rows_bytes(r, r + 1),
            rows: 1,
            ..*hm
        };
        let want = reference::clp(&one, ho, eo, weighting);
        let scale = want
            .rows
            .iter()
            .fold(1e-30f64, |a, x| a.max(x.abs() as f64));
        for (g, w) in rows[r * ds..(r + 1) * ds].iter().zip(&want.rows) {
            worst = worst.max((*g as f64 - *w as f64).abs() / scale);
        }
    }
    worst
}
