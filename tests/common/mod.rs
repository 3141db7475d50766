//! Shared test support: one GPU engine per test binary (fails loudly without an adapter),
//! seeded inputs, tolerant comparisons that report the worst element.
#![allow(dead_code)]

use clp_gpu::backend::gpu::{Engine, EngineOptions};
use clp_gpu::backend::reference;
use clp_gpu::{DType, Gpu, MatrixRef, TopK, Weighting};
use std::sync::{Mutex, MutexGuard, OnceLock};

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

/// Rounds values through `dtype` and returns the encoded bytes and the rounded f32 values.
pub fn encode(dtype: DType, values: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let bytes = dtype.encode(values);
    let back = (0..values.len()).map(|i| dtype.decode(&bytes, i)).collect();
    (bytes, back)
}

pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];

/// Asserts |got - want| ≤ tol(i) element-wise; on failure reports the count, the worst index and
/// both values. NaN in `got` always fails.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut fails = 0usize;
    let mut worst = (0usize, 0.0f64);
    for i in 0..got.len() {
        let err = (got[i] as f64 - want[i]).abs();
        let excess = if got[i].is_finite() {
            err / tol(i)
        } else {
            f64::INFINITY
        };
        if excess > 1.0 {
            fails += 1;
        }
        if excess > worst.1 || (i == 0 && excess.is_nan()) {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        fails == 0,
        "{what}: {fails} of {} elements out of tolerance; worst at {i}: got {}, want {}, tol {}",
        got.len(),
        got[i],
        want[i],
        tol(i)
    );
}

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
