//! Shared support of the backend tests: one GPU engine per test binary (fails loudly without an
//! adapter), [`for_each_backend`] to run one property on the GPU engine and on the CPU path,
//! seeded inputs, tolerant comparisons that report the worst element, and the shape tables.
#![allow(dead_code)]

use clp_gpu::backend::cpu::CpuBackend;
use clp_gpu::backend::gpu::{Engine, EngineOptions};
use clp_gpu::backend::{reference, ClpBackend};
use clp_gpu::synthetic::{embeddings, gaussian, Rng};
use clp_gpu::{DType, Gpu, MatrixRef, TopK, Weighting};
use std::sync::{Mutex, MutexGuard, OnceLock};

#[path = "../fixtures/close.rs"]
mod close;
pub use close::assert_close;

/// The test binary's engine, poisoning outputs. Tests lock it (lavapipe already uses every
/// core, so running GPU tests one at a time costs nothing).
pub fn engine() -> MutexGuard<'static, Engine> {
    static ENGINE: OnceLock<Mutex<Engine>> = OnceLock::new();
    let m = ENGINE.get_or_init(|| {
        let gpu = Gpu::new().unwrap_or_else(|e| {
            panic!("GPU tests need a wgpu adapter; install mesa-vulkan-drivers (lavapipe): {e}")
        });
        eprintln!("adapter: {}", gpu.adapter());
        let opts = EngineOptions {
            poison: true,
            ..Default::default()
        };
        Mutex::new(Engine::with_options(gpu, opts).expect("pipelines build"))
    });
    let mut e = m.lock().unwrap_or_else(|p| p.into_inner());
    e.set_options(EngineOptions {
        poison: true,
        ..Default::default()
    });
    e
}

/// Tile caps and memory budget given to every backend of a [`for_each_backend`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Bytes the tile buffers may take (GPU memory, or the CPU working set).
    pub memory_bytes: u64,
    /// Cap on missing rows per tile.
    pub max_m_rows: usize,
    /// Cap on overlap rows per tile.
    pub max_o_rows: usize,
}

impl Tiling {
    /// The backends' defaults: 1 GiB, no caps.
    pub const DEFAULT: Tiling = Tiling {
        memory_bytes: 1 << 30,
        max_m_rows: usize::MAX,
        max_o_rows: usize::MAX,
    };

    /// 1 GiB with tiles of at most `max_m_rows` × `max_o_rows` (forces tiling).
    pub fn caps(max_m_rows: usize, max_o_rows: usize) -> Tiling {
        Tiling {
            max_m_rows,
            max_o_rows,
            ..Tiling::DEFAULT
        }
    }

    /// A memory budget and no caps (the plan picks the tiles).
    pub fn budget(memory_bytes: u64) -> Tiling {
        Tiling {
            memory_bytes,
            ..Tiling::DEFAULT
        }
    }
}

/// Runs `check(name, backend)` on every streaming backend with `tiling`: the GPU engine of this
/// binary (outputs poisoned with NaN, so an element a kernel forgets to write fails), then the
/// multi-threaded CPU path. `name` ("gpu", "cpu") is for labels.
pub fn for_each_backend(tiling: Tiling, mut check: impl FnMut(&str, &dyn ClpBackend)) {
    {
        let mut gpu = engine();
        let mut opts = gpu.options();
        opts.gpu_memory_bytes = tiling.memory_bytes;
        opts.max_m_rows = tiling.max_m_rows;
        opts.max_o_rows = tiling.max_o_rows;
        gpu.set_options(opts);
        check("gpu", &*gpu);
    }
    let cpu = CpuBackend {
        memory_bytes: tiling.memory_bytes,
        max_m_rows: tiling.max_m_rows,
        max_o_rows: tiling.max_o_rows,
    };
    check("cpu", &cpu);
}

/// Sizes of one CLP problem: m missing rows, o overlap rows, helper width dh, source width ds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub m: usize,
    pub o: usize,
    pub dh: usize,
    pub ds: usize,
}

/// Seeded CLP inputs, encoded: helper rows (missing and overlap) in one dtype, source rows in
/// another.
pub struct Inputs {
    pub shape: Shape,
    pub helper_dtype: DType,
    pub source_dtype: DType,
    hm: Vec<u8>,
    ho: Vec<u8>,
    eo: Vec<u8>,
}

impl Inputs {
    /// Draws, in this order, the missing helper rows and the overlap helper rows
    /// (`embeddings(.., spread)`) and the overlap source rows (`gaussian`).
    pub fn random(rng: &mut Rng, shape: Shape, spread: f32, (hd, sd): (DType, DType)) -> Inputs {
        let Shape { m, o, dh, ds } = shape;
        let (hm, _) = encode(hd, &embeddings(rng, m, dh, spread));
        let (ho, _) = encode(hd, &embeddings(rng, o, dh, spread));
        let (eo, _) = encode(sd, &gaussian(rng, o, ds));
        Inputs {
            shape,
            helper_dtype: hd,
            source_dtype: sd,
            hm,
            ho,
            eo,
        }
    }

    /// The missing helper rows, overlap helper rows and overlap source rows.
    pub fn matrices(&self) -> (MatrixRef<'_>, MatrixRef<'_>, MatrixRef<'_>) {
        let Shape { m, o, dh, ds } = self.shape;
        let (hd, sd) = (self.helper_dtype, self.source_dtype);
        (
            MatrixRef::new("hm", &self.hm, hd, m, dh).unwrap(),
            MatrixRef::new("ho", &self.ho, hd, o, dh).unwrap(),
            MatrixRef::new("eo", &self.eo, sd, o, ds).unwrap(),
        )
    }
}

/// The bits of `v`, for exact comparisons (NaN-safe, and -0.0 differs from 0.0).
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Checks a dense-mode run against the reference output: no selection, the same rejected rows,
/// rows within `tol` relative to each row's max-abs.
pub fn dense_close(label: &str, got: &clp_gpu::ClpOutput, want: &clp_gpu::ClpOutput, tol: f64) {
    assert!(got.selection.is_none(), "{label}: dense has no selection");
    assert_eq!(got.rejected, want.rejected, "{label}: rejected rows");
    let want64: Vec<f64> = want.rows.iter().map(|&x| x as f64).collect();
    let scale = row_max_abs(&want64, want.dim);
    assert_close(label, &got.rows, &want64, |i| {
        tol * scale[i / want.dim].max(1e-30)
    });
}

/// Rounds values through `dtype` and returns the encoded bytes and the rounded f32 values.
pub fn encode(dtype: DType, values: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let bytes = dtype.encode(values);
    let back = (0..values.len()).map(|i| dtype.decode(&bytes, i)).collect();
    (bytes, back)
}

pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Max |x| of each row of a row-major matrix.
pub fn row_max_abs(v: &[f64], cols: usize) -> Vec<f64> {
    v.chunks(cols.max(1))
        .map(|r| r.iter().fold(0.0f64, |m, x| m.max(x.abs())))
        .collect()
}

/// Checks a top-k CLP run against the reference, tie-safely: the sorted scores match, every
/// index is unique and in range and scores at least the reference k-th score minus `tol`, and
/// each row equals the f64 combination over the indices the GPU chose.
pub fn check_topk_run(
    label: &str,
    hm: &MatrixRef,
    ho: &MatrixRef,
    eo: &MatrixRef,
    k: usize,
    got: &clp_gpu::ClpOutput,
) {
    let want = reference::clp(hm, ho, eo, &Weighting::Clp { top_k: TopK::K(k) });
    let (m, o, ds) = (hm.rows, ho.rows, eo.cols);
    let k_eff = k.min(o);
    let sel = got.selection.as_ref().expect("selection");
    let wsel = want.selection.as_ref().expect("reference selection");
    assert_eq!(sel.k, k_eff, "{label}: k");
    assert_eq!(sel.indices.len(), m * k_eff, "{label}: selection size");
    let (hm_hat, _) = reference::normalize(hm);
    let (ho_hat, _) = reference::normalize(ho);
    let cos = reference::similarity(&hm_hat, &ho_hat, m, o, hm.cols);
    let tol = 2e-5;
    let rejected: Vec<usize> = got.rejected.iter().map(|r| r.row).collect();
    assert_eq!(got.rejected, want.rejected, "{label}: rejected rows");
    for r in 0..m {
        let idx = &sel.indices[r * k_eff..(r + 1) * k_eff];
        let mut seen = std::collections::HashSet::new();
        for (t, &j) in idx.iter().enumerate() {
            assert!((j as usize) < o, "{label}: row {r} index {j} out of range");
            assert!(seen.insert(j), "{label}: row {r} index {j} repeated");
            let kth = wsel.scores[(r + 1) * k_eff - 1] as f64;
            assert!(
                cos[r * o + j as usize] >= kth - tol,
                "{label}: row {r} picked {j} below k-th"
            );
            let ws = wsel.scores[r * k_eff + t] as f64;
            assert!(
                (sel.scores[r * k_eff + t] as f64 - ws).abs() <= tol,
                "{label}: row {r} score {t}"
            );
        }
        let row = &got.rows[r * ds..(r + 1) * ds];
        if rejected.contains(&r) {
            assert!(
                row.iter().all(|&x| x == 0.0),
                "{label}: rejected row {r} not zero"
            );
            continue;
        }
        let w: Vec<f64> = idx.iter().map(|&j| cos[r * o + j as usize]).collect();
        let sum: f64 = w.iter().sum();
        let expect: Vec<f64> = (0..ds)
            .map(|c| {
                idx.iter()
                    .zip(&w)
                    .map(|(&j, wj)| wj * eo.get(j as usize, c) as f64)
                    .sum::<f64>()
                    / sum
            })
            .collect();
        let scale = expect.iter().fold(1e-30f64, |a, x| a.max(x.abs()));
        assert_close(&format!("{label}: row {r}"), row, &expect, |_| 1e-4 * scale);
    }
}

/// Checks a run of any top-k weighting against the reference on inputs without near-ties: the
/// same neighbours in the same order, weights within 1e-4 relative to the row's largest weight,
/// and rows within 1e-4 of the row's max-abs.
pub fn check_weighting_run(
    label: &str,
    hm: &MatrixRef,
    ho: &MatrixRef,
    eo: &MatrixRef,
    w: &Weighting,
    got: &clp_gpu::ClpOutput,
) {
    let want = reference::clp(hm, ho, eo, w);
    let (sel, wsel) = (
        got.selection.as_ref().expect("selection"),
        want.selection.as_ref().expect("reference selection"),
    );
    assert_eq!(sel.k, wsel.k, "{label}: k");
    assert_eq!(sel.indices, wsel.indices, "{label}: neighbours");
    assert_eq!(got.rejected, want.rejected, "{label}: rejected rows");
    for (r, (gw, ww)) in sel
        .weights
        .chunks(sel.k)
        .zip(wsel.weights.chunks(sel.k))
        .enumerate()
    {
        let scale = ww.iter().fold(1e-30f64, |a, x| a.max(x.abs() as f64));
        let ww64: Vec<f64> = ww.iter().map(|&x| x as f64).collect();
        assert_close(&format!("{label}: weights of row {r}"), gw, &ww64, |_| {
            1e-4 * scale
        });
    }
    let want64: Vec<f64> = want.rows.iter().map(|&x| x as f64).collect();
    let scale = row_max_abs(&want64, want.dim);
    assert_close(&format!("{label}: rows"), &got.rows, &want64, |i| {
        1e-4 * scale[i / want.dim].max(1e-30)
    });
}

/// The top-k weightings other than CLP, with awkward parameters.
pub fn other_weightings() -> Vec<Weighting> {
    vec![
        Weighting::Softmax {
            top_k: TopK::K(8),
            temperature: 0.1,
        },
        Weighting::Softmax {
            top_k: TopK::K(1),
            temperature: 0.05,
        },
        Weighting::Sparsemax { top_k: TopK::K(16) },
        Weighting::Sparsemax {
            top_k: TopK::K(200),
        },
        Weighting::Omp { atoms: 1 },
        Weighting::Omp { atoms: 5 },
    ]
}

/// Awkward top-k shapes shared by the GPU and CPU tests: (m, o, dh, ds, k, max_m_rows,
/// max_o_rows).
pub const TOP_K_CASES: [(usize, usize, usize, usize, usize, usize, usize); 7] = [
    (1, 1, 1, 1, 1, 64, 64),
    (3, 1, 5, 7, 1, 64, 64),
    (5, 3, 8, 9, 5, 64, 64),      // k > O
    (4, 20, 16, 12, 20, 64, 64),  // k = O
    (37, 150, 24, 33, 8, 16, 64), // ragged tiles on both sides
    (9, 130, 1757, 5, 3, 4, 65),  // odd dimension; tile ± 1
    (20, 300, 32, 40, 128, 8, 128),
];

/// Dense-mode shapes shared by the GPU and CPU tests: (m, o, dh, ds, max_m_rows, max_o_rows).
pub const DENSE_CASES: [(usize, usize, usize, usize, usize, usize); 4] = [
    (1, 1, 1, 1, 64, 64),
    (7, 50, 16, 24, 64, 64),
    (40, 333, 48, 65, 16, 100),
    (3, 70, 1757, 9, 2, 64),
];
