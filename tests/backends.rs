//! Every backend against the f64 CPU reference, on seeded random inputs in f32, f16 and bf16 and
//! on awkward shapes: each CLP property runs on the GPU engine (a real adapter, lavapipe in CI)
//! and on the multi-threaded CPU path through [`common::for_each_backend`], in memory and
//! streaming scattered rows from safetensors files under tiny budgets. GPU outputs are poisoned
//! with NaN before each run, so an element a kernel forgets to write fails the comparison. The
//! single-kernel tests (normalize, matmul, top-k) exist only for the GPU engine.

mod common;

use clp_gpu::backend::reference;
use clp_gpu::backend::{collect, collect_sets};
use clp_gpu::kernels::MatmulParams;
use clp_gpu::method::{RowStatus, OMP_RIDGE};
use clp_gpu::model::safetensors::data_offset;
use clp_gpu::rows::{RowSet, Storage, Stored};
use clp_gpu::synthetic::{gaussian, sample_ids, write_embedding_file, Rng};
use clp_gpu::{DType, Error, MatrixRef, RejectReason, TopK, Weighting};
use common::*;
use std::fs::File;
use std::path::Path;

// ---- Single kernels (GPU engine only) ----

#[test]
fn normalize_matches_reference() {
    let e = engine();
    for (seed, &(rows, cols)) in [(1, 1), (3, 1), (5, 1757), (17, 64), (2, 257)]
        .iter()
        .enumerate()
    {
        for dtype in DTYPES {
            let mut rng = Rng::new(seed as u64 * 31 + dtype.shader_code() as u64);
            let mut v = gaussian(&mut rng, rows, cols);
            if rows >= 3 {
                v[cols..2 * cols].fill(0.0); // a zero row
                v[2 * cols] = f32::NAN; // a non-finite row
            }
            if rows >= 5 && dtype == DType::F32 {
                v[3 * cols..4 * cols].iter_mut().for_each(|x| *x *= 1e30); // squares overflow f32
                v[4 * cols..5 * cols].iter_mut().for_each(|x| *x *= 1e-30); // squares underflow
            }
            let (bytes, _) = encode(dtype, &v);
            let m = MatrixRef::new("m", &bytes, dtype, rows, cols).unwrap();
            let (got, status) = e.normalize(&m).unwrap();
            let (want, want_status) = reference::normalize(&m);
            assert_eq!(status, want_status, "{rows}x{cols} {dtype}: status");
            assert_close(
                &format!("normalize {rows}x{cols} {dtype}"),
                &got,
                &want,
                |_| 1e-6,
            );
            if rows >= 3 {
                assert_eq!(status[1], RowStatus::Zero);
                assert_eq!(status[2], RowStatus::NonFinite);
            }
        }
    }
}

/// Logical A (m × k) and B (k × n) stored as the params say; C = A·B (+ c_init) in f64.
fn matmul_reference(p: &MatmulParams, a: &[f32], b: &[f32], c_init: Option<&[f32]>) -> Vec<f64> {
    let mut c = vec![0.0f64; (p.m * p.ldc) as usize];
    for r in 0..p.m as usize {
        for j in 0..p.n as usize {
            let mut acc = 0.0f64;
            for t in 0..p.k as usize {
                let av = if p.a_trans == 1 {
                    a[t * p.lda as usize + r]
                } else {
                    a[r * p.lda as usize + t]
                };
                let bv = if j as u32 >= p.b_cols {
                    if p.ones_col == 1 && j as u32 == p.b_cols {
                        1.0
                    } else {
                        0.0
                    }
                } else if p.b_trans == 1 {
                    b[j * p.ldb as usize + t]
                } else {
                    b[t * p.ldb as usize + j]
                };
                acc += av as f64 * bv as f64;
            }
            let i = r * p.ldc as usize + j;
            c[i] = acc + c_init.map_or(0.0, |ci| ci[i] as f64);
        }
    }
    c
}

#[test]
fn matmul_matches_reference() {
    let e = engine();
    // (m, n_real, k, a_trans, b_trans, ones_col, accumulate)
    let cases = [
        (1, 1, 1, 0, 0, 0, 0),
        (64, 64, 16, 0, 1, 0, 0),
        (65, 63, 17, 0, 1, 0, 0),
        (63, 65, 15, 1, 0, 1, 0),
        (130, 1, 33, 0, 0, 0, 1),
        (3, 200, 1757, 0, 1, 0, 0),
        (33, 70, 129, 1, 0, 1, 1),
    ];
    for (ci, &(m, nr, k, at, bt, ones, acc)) in cases.iter().enumerate() {
        for dtype in DTYPES {
            let mut rng = Rng::new(100 + ci as u64);
            let n = nr + ones;
            let p = MatmulParams {
                m,
                n,
                k,
                lda: if at == 1 { m } else { k },
                ldb: if bt == 1 { k } else { nr },
                ldc: n,
                a_trans: at,
                b_trans: bt,
                b_dtype: dtype.shader_code(),
                b_cols: nr,
                ones_col: ones,
                accumulate: acc,
            };
            let a = gaussian(&mut rng, m as usize, k as usize);
            let (b_bytes, b) = encode(dtype, &gaussian(&mut rng, k as usize, nr as usize));
            let c0 = gaussian(&mut rng, m as usize, n as usize);
            let c_init = (acc == 1).then_some(c0.as_slice());
            let got = e.matmul(p, &a, &b_bytes, c_init).unwrap();
            let want = matmul_reference(&p, &a, &b, c_init);
            // f32 accumulation error grows like sqrt(k) * |a||b|; 1e-5 * k is a loose bound.
            let tol = 1e-5 * (k as f64).max(8.0);
            assert_close(&format!("matmul case {ci} {dtype}"), &got, &want, |_| tol);
        }
    }
}

#[test]
fn topk_is_exact_with_ties_across_tiles() {
    let e = engine();
    let mut rng = Rng::new(7);
    // (rows, cols, k, tile_cols): k = 1, k = cols, tile = k, tile ± 1, ragged last tile.
    let cases = [
        (1, 1, 1, 1),
        (3, 10, 1, 3),
        (4, 100, 7, 7),
        (4, 100, 7, 8),
        (2, 100, 100, 100),
        (5, 300, 33, 64),
        (2, 1000, 256, 256),
        (3, 513, 200, 257),
    ];
    for &(rows, cols, k, tile) in &cases {
        // Scores on a coarse grid: many exact ties, negative values, -0.0 and +0.0.
        let scores: Vec<f32> = (0..rows * cols)
            .map(|_| {
                let v = (rng.below(17) as f32 - 8.0) / 8.0;
                if v == 0.0 && rng.below(2) == 0 {
                    -0.0
                } else {
                    v
                }
            })
            .collect();
        let sel = e.top_k_scores(&scores, rows, cols, k, tile).unwrap();
        for r in 0..rows {
            let row: Vec<f64> = scores[r * cols..(r + 1) * cols]
                .iter()
                .map(|&x| x as f64)
                .collect();
            let want = reference::top_k(&row, k);
            let got_idx = &sel.indices[r * k..(r + 1) * k];
            let got_sc = &sel.scores[r * k..(r + 1) * k];
            // No arithmetic is involved, so ties resolve identically: exact equality.
            let want_idx: Vec<u32> = want.iter().map(|p| p.0).collect();
            assert_eq!(
                got_idx,
                &want_idx[..],
                "rows {rows} cols {cols} k {k} tile {tile}: row {r}"
            );
            for (g, w) in got_sc.iter().zip(&want) {
                assert_eq!(*g as f64, w.1, "score");
            }
        }
    }
}

// ---- Test support ----

#[test]
#[should_panic(expected = "out of tolerance")]
fn assert_close_fails_on_a_nan_expected_value() {
    assert_close("nan expected", &[1.0, 2.0], &[1.0, f64::NAN], |_| 1e-3);
}

#[test]
fn assert_close_fails_on_any_non_finite_value() {
    let fails = |got: &[f32], want: &[f64]| {
        let (got, want) = (got.to_vec(), want.to_vec());
        std::panic::catch_unwind(move || assert_close("t", &got, &want, |_| 1e-3)).is_err()
    };
    assert!(!fails(&[1.0, 2.0], &[1.0, 2.0005]), "within tolerance");
    assert!(fails(&[1.0, 2.0], &[1.0, 2.1]), "out of tolerance");
    assert!(fails(&[1.0, 2.0], &[1.0, f64::NAN]), "NaN expected");
    assert!(fails(&[1.0, 2.0], &[f64::INFINITY, 2.0]), "inf expected");
    assert!(fails(&[1.0, f32::NAN], &[1.0, 2.0]), "NaN got");
    assert!(fails(&[f32::NEG_INFINITY, 2.0], &[1.0, 2.0]), "-inf got");
    assert!(fails(&[f32::NAN], &[f64::NAN]), "NaN on both sides");
    assert!(
        fails(&[f32::INFINITY], &[f64::INFINITY]),
        "inf on both sides"
    );
}

// ---- CLP on every backend ----

/// Helper/source dtype pairs of the top-k tests.
const DTYPE_PAIRS: [(DType, DType); 3] = [
    (DType::F32, DType::F32),
    (DType::F16, DType::BF16),
    (DType::BF16, DType::F16),
];

#[test]
fn clp_top_k_matches_reference_on_awkward_shapes() {
    // (m, o, dh, ds, k, max_m_rows, max_o_rows)
    for (ci, &(m, o, dh, ds, k, mm, mo)) in TOP_K_CASES.iter().enumerate() {
        for (hd, sd) in DTYPE_PAIRS {
            let mut rng = Rng::new(1000 + ci as u64);
            let inputs = Inputs::random(&mut rng, Shape { m, o, dh, ds }, 0.5, (hd, sd));
            let (hm, ho, eo) = inputs.matrices();
            let w = Weighting::Clp { top_k: TopK::K(k) };
            for_each_backend(Tiling::caps(mm, mo), |name, backend| {
                let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
                check_topk_run(
                    &format!("{name} case {ci} {hd}/{sd}"),
                    &hm,
                    &ho,
                    &eo,
                    k,
                    &got,
                );
            });
        }
    }
}

#[test]
fn clp_dense_matches_direct_formula() {
    // (m, o, dh, ds, max_m_rows, max_o_rows)
    for (ci, &(m, o, dh, ds, mm, mo)) in DENSE_CASES.iter().enumerate() {
        for dtype in DTYPES {
            let mut rng = Rng::new(2000 + ci as u64);
            // Well-conditioned: a strong shared direction keeps Σ cos far from zero.
            let inputs = Inputs::random(&mut rng, Shape { m, o, dh, ds }, 2.0, (dtype, dtype));
            let (hm, ho, eo) = inputs.matrices();
            let w = Weighting::Clp { top_k: TopK::All };
            let want = reference::clp(&hm, &ho, &eo, &w);
            for_each_backend(Tiling::caps(mm, mo), |name, backend| {
                let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
                dense_close(
                    &format!("{name} dense case {ci} {dtype}"),
                    &got,
                    &want,
                    1e-5,
                );
            });
        }
    }
}

#[test]
fn guards_report_rows_instead_of_writing_nan() {
    let (dh, ds) = (6, 5);
    let v: Vec<f32> = (0..dh).map(|i| i as f32 + 1.0).collect();
    let u: Vec<f32> = (0..dh)
        .map(|i| if i % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let neg = |x: &[f32]| x.iter().map(|a| -a).collect::<Vec<f32>>();
    // Overlap rows v, -v, u, -u: Σ_j ĥ_j = 0, so every dense Σ cos is 0 (cancels exactly).
    let ho: Vec<f32> = [v.clone(), neg(&v), u.clone(), neg(&u)].concat();
    let mut rng = Rng::new(5);
    let eo = gaussian(&mut rng, 4, ds);
    let ho = MatrixRef::from_f32(&ho, 4, dh).unwrap();
    let eo = MatrixRef::from_f32(&eo, 4, ds).unwrap();
    for bad in [f32::INFINITY, f32::NAN] {
        let mut hm = [v.clone(), vec![0.0; dh], v.clone()].concat();
        hm[2 * dh + 1] = bad;
        let hm = MatrixRef::from_f32(&hm, 3, dh).unwrap();
        for top_k in [TopK::K(4), TopK::All] {
            let w = Weighting::Clp { top_k };
            let want = reference::clp(&hm, &ho, &eo, &w);
            for_each_backend(Tiling::DEFAULT, |name, backend| {
                let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
                let reasons: Vec<_> = got.rejected.iter().map(|r| (r.row, r.reason)).collect();
                assert_eq!(
                    reasons,
                    vec![
                        (0, RejectReason::WeightSumNearZero), // cos 1, -1, c, -c
                        (1, RejectReason::ZeroHelperRow),
                        (2, RejectReason::NonFiniteHelperRow),
                    ],
                    "{name} {top_k} {bad}"
                );
                assert_eq!(got.rejected, want.rejected, "{name} {top_k} {bad}");
                assert!(
                    got.rows.iter().all(|x| *x == 0.0),
                    "{name} {top_k} {bad}: rejected rows must be zeros"
                );
            });
        }
    }
}

#[test]
fn runs_are_bit_reproducible_and_m_zero_is_empty() {
    let mut rng = Rng::new(9);
    let (m, o, dh, ds) = (21, 90, 20, 17);
    let inputs = Inputs::random(
        &mut rng,
        Shape { m, o, dh, ds },
        0.5,
        (DType::F16, DType::BF16),
    );
    let (hm, ho, eo) = inputs.matrices();
    let empty = MatrixRef::new("hm", &[], DType::F16, 0, dh).unwrap();
    let none = MatrixRef::new("ho", &[], DType::F16, 0, dh).unwrap();
    let none_e = MatrixRef::new("eo", &[], DType::BF16, 0, ds).unwrap();
    for tiling in [Tiling::DEFAULT, Tiling::caps(8, 30)] {
        for_each_backend(tiling, |name, backend| {
            let label = format!("{name} {tiling:?}");
            for top_k in [TopK::K(10), TopK::All] {
                let w = Weighting::Clp { top_k };
                let a = collect(backend, &hm, &ho, &eo, &w).unwrap();
                let b = collect(backend, &hm, &ho, &eo, &w).unwrap();
                assert_eq!(
                    bits(&a.rows),
                    bits(&b.rows),
                    "{label} {top_k}: rows differ between runs"
                );
                assert_eq!(a.selection, b.selection, "{label} {top_k}");
                let z = collect(backend, &empty, &ho, &eo, &w).unwrap();
                assert!(
                    z.rows.is_empty() && z.rejected.is_empty(),
                    "{label} {top_k}"
                );
            }
            // O = 0 and k beyond the supported maximum are errors, not panics.
            let all = Weighting::Clp { top_k: TopK::All };
            let err = collect(backend, &hm, &none, &none_e, &all).unwrap_err();
            assert!(
                matches!(err, Error::Shape(_)),
                "{label}: O = 0 gave {err:?}"
            );
            let too_many = Weighting::Clp {
                top_k: TopK::K(257),
            };
            let err = collect(backend, &hm, &ho, &eo, &too_many).unwrap_err();
            assert!(
                matches!(err, Error::Argument(_)),
                "{label}: k 257 gave {err:?}"
            );
        });
    }
}

#[test]
fn property_random_shapes_agree_with_reference() {
    let mut rng = Rng::new(4242);
    for case in 0..6 {
        let m = 1 + rng.below(40);
        let o = 1 + rng.below(200);
        let dh = 1 + rng.below(70);
        let ds = 1 + rng.below(50);
        let k = 1 + rng.below(40);
        let dtype = DTYPES[rng.below(3)];
        let tiling = Tiling::caps(1 + rng.below(48), 1 + rng.below(160));
        let inputs = Inputs::random(&mut rng, Shape { m, o, dh, ds }, 0.7, (dtype, dtype));
        let (hm, ho, eo) = inputs.matrices();
        let w = Weighting::Clp { top_k: TopK::K(k) };
        for_each_backend(tiling, |name, backend| {
            let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
            let label = format!(
                "{name} property case {case}: m {m} o {o} dh {dh} ds {ds} k {k} {dtype} {tiling:?}"
            );
            check_topk_run(&label, &hm, &ho, &eo, k, &got);
        });
    }
}

#[test]
fn softmax_sparsemax_and_omp_match_reference() {
    // (m, o, dh, ds, max_m_rows, max_o_rows): one tile, and ragged tiles on both sides.
    for (ci, &(m, o, dh, ds, mm, mo)) in [(6, 40, 12, 9, 64, 64), (23, 230, 17, 10, 8, 96)]
        .iter()
        .enumerate()
    {
        let mut rng = Rng::new(3000 + ci as u64);
        let inputs = Inputs::random(
            &mut rng,
            Shape { m, o, dh, ds },
            0.5,
            (DType::F16, DType::BF16),
        );
        let (hm, ho, eo) = inputs.matrices();
        for_each_backend(Tiling::caps(mm, mo), |name, backend| {
            for w in other_weightings() {
                let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
                let label = format!("{name} case {ci} {}", w.label());
                check_weighting_run(&label, &hm, &ho, &eo, &w, &got);
            }
        });
    }
    // Dense mode exists only for CLP.
    let (hm_b, _) = encode(DType::F32, &[1.0, 0.0]);
    let hm = MatrixRef::new("hm", &hm_b, DType::F32, 1, 2).unwrap();
    let bad = Weighting::Sparsemax { top_k: TopK::All };
    for_each_backend(Tiling::DEFAULT, |name, backend| {
        let err = collect(backend, &hm, &hm, &hm, &bad).unwrap_err();
        assert!(matches!(err, Error::Argument(_)), "{name}: {err:?}");
    });
}

// ---- Streaming from files ----

/// A single-tensor safetensors file as a stored matrix read with positioned reads.
fn stored_file<'a>(
    file: &'a File,
    path: &'a Path,
    dtype: DType,
    rows: usize,
    cols: usize,
) -> Stored<'a> {
    Stored {
        storage: Storage::File {
            file,
            path,
            offset: data_offset(file, path).unwrap(),
        },
        dtype,
        rows,
        cols,
    }
}

/// Rows `ids` of one stored matrix.
fn select<'a>(name: &str, from: Stored<'a>, ids: Vec<u32>) -> RowSet<'a> {
    RowSet::new(name, vec![from]).unwrap().select(ids).unwrap()
}

/// Every row of `set`, gathered into memory.
fn gathered(set: &RowSet) -> Vec<u8> {
    let mut b = Vec::new();
    set.gather(0, set.rows(), &mut b).unwrap();
    b
}

#[test]
fn both_backends_stream_scattered_rows_from_files_under_tiny_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let (vh, dh, vs, ds) = (700, 40, 900, 56);
    let (o, m) = (300, 260);
    let hp = dir.path().join("helper.safetensors");
    let sp = dir.path().join("source.safetensors");
    write_embedding_file(&hp, "embedding", vh, dh, DType::F16, 11, 0.5).unwrap();
    write_embedding_file(&sp, "embedding", vs, ds, DType::BF16, 12, 0.3).unwrap();
    let (hf, sf) = (File::open(&hp).unwrap(), File::open(&sp).unwrap());
    let h = stored_file(&hf, &hp, DType::F16, vh, dh);
    let s = stored_file(&sf, &sp, DType::BF16, vs, ds);
    let mut rng = Rng::new(3);
    let tgt = sample_ids(&mut rng, vh, o + m);
    let hm = select("hm", h, tgt[o..].to_vec());
    let ho = select("ho", h, tgt[..o].to_vec());
    let eo = select("eo", s, sample_ids(&mut rng, vs, o));
    // The same rows in memory, for the reference.
    let (hm_b, ho_b, eo_b) = (gathered(&hm), gathered(&ho), gathered(&eo));
    let hm_m = MatrixRef::new("hm", &hm_b, DType::F16, m, dh).unwrap();
    let ho_m = MatrixRef::new("ho", &ho_b, DType::F16, o, dh).unwrap();
    let eo_m = MatrixRef::new("eo", &eo_b, DType::BF16, o, ds).unwrap();
    let top_k = Weighting::Clp { top_k: TopK::K(16) };
    let dense = Weighting::Clp { top_k: TopK::All };
    let dense_want = reference::clp(&hm_m, &ho_m, &eo_m, &dense);

    for (budget, label) in [(1u64 << 30, "large"), (96 << 10, "96 KiB")] {
        for_each_backend(Tiling::budget(budget), |name, backend| {
            let label = format!("{name} from files, {label} budget");
            if budget < 1 << 20 {
                let p = clp_gpu::backend::problem(&hm, &ho, &eo, &top_k).unwrap();
                let tiles = backend.tile_plan(&p).unwrap();
                assert!(
                    tiles.m_rows < m && tiles.o_rows < o,
                    "{label}: a 96 KiB budget must tile both sides: {tiles:?}"
                );
            }
            let got = collect_sets(backend, &hm, &ho, &eo, &top_k).unwrap();
            check_topk_run(&format!("{label}: top-k"), &hm_m, &ho_m, &eo_m, 16, &got);
            // Streaming from files gives exactly what the same backend gives on the rows in
            // memory.
            let in_memory = collect(backend, &hm_m, &ho_m, &eo_m, &top_k).unwrap();
            assert_eq!(bits(&got.rows), bits(&in_memory.rows), "{label}: rows");
            assert_eq!(got.selection, in_memory.selection, "{label}: selection");
            let got = collect_sets(backend, &hm, &ho, &eo, &dense).unwrap();
            dense_close(&format!("{label}: dense"), &got, &dense_want, 2e-5);
        });
    }
}

// ---- Invariance under the tiling ----

/// The bits of everything a run outputs: rows, rejected rows and the selection (indices, scores,
/// weights).
fn output_bits(out: &clp_gpu::ClpOutput) -> (Vec<u32>, String, Option<[Vec<u32>; 3]>) {
    let sel = out
        .selection
        .as_ref()
        .map(|s| [s.indices.clone(), bits(&s.scores), bits(&s.weights)]);
    (bits(&out.rows), format!("{:?}", out.rejected), sel)
}

#[test]
fn outputs_are_bit_identical_across_tilings_and_budgets() {
    let (m, o, dh, ds) = (13, 300, 40, 24);
    let mut rng = Rng::new(77);
    let mut hm = clp_gpu::synthetic::embeddings(&mut rng, m, dh, 2.0);
    hm[3 * dh..4 * dh].fill(0.0); // a rejected row keeps its status under every tiling
    let ho = clp_gpu::synthetic::embeddings(&mut rng, o, dh, 2.0);
    let eo = gaussian(&mut rng, o, ds);
    let (hm, _) = encode(DType::F16, &hm);
    let (ho, _) = encode(DType::F16, &ho);
    let (eo, _) = encode(DType::BF16, &eo);
    let hm = MatrixRef::new("hm", &hm, DType::F16, m, dh).unwrap();
    let ho = MatrixRef::new("ho", &ho, DType::F16, o, dh).unwrap();
    let eo = MatrixRef::new("eo", &eo, DType::BF16, o, ds).unwrap();
    let mut weightings = vec![
        Weighting::Clp { top_k: TopK::All },
        Weighting::Clp { top_k: TopK::K(8) },
        Weighting::Clp { top_k: TopK::K(64) },
    ];
    weightings.extend(other_weightings());
    // The default plan (one tile each side), caps down to one row, ragged caps, and budgets
    // the planner has to tile in.
    let tilings = [
        Tiling::DEFAULT,
        Tiling::caps(1, 1),
        Tiling::caps(7, 13),
        Tiling::caps(64, 256),
        Tiling::budget(160 << 10),
        Tiling::budget(400 << 10),
    ];
    for w in &weightings {
        let mut first: Vec<(String, _)> = Vec::new();
        for tiling in tilings {
            for_each_backend(tiling, |name, backend| {
                let got = output_bits(&collect(backend, &hm, &ho, &eo, w).unwrap());
                match first.iter().find(|(n, _)| n == name) {
                    None => first.push((name.to_string(), got)),
                    Some((_, want)) => {
                        let label = format!("{name} {} {tiling:?}", w.label());
                        assert_eq!(
                            got.0, want.0,
                            "{label}: rows differ from the default tiling"
                        );
                        assert_eq!(got.1, want.1, "{label}: rejected rows");
                        assert_eq!(got.2, want.2, "{label}: selection");
                    }
                }
            });
        }
        let rejected = &first[0].1 .1;
        assert!(rejected.contains("row: 3"), "{}: {rejected}", w.label());
    }
}

// ---- OMP: coefficients as solved, bounded by the source norms ----

/// `v` in f64.
fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// The affine coefficients of `t` on `atoms`: minimise ‖Σ x_j a_j − t‖² + λ‖x‖² subject to
/// Σ x_j = 1, λ = `ridge` × Σ_j ‖t − a_j‖², by Lagrange multipliers on the bordered normal
/// equations [AᵀA + λI, 1; 1ᵀ, 0] [x; μ] = [Aᵀt; 1] (Gauss–Jordan with pivoting in f64):
/// independent of the crate's Cholesky on the differences. With `affine` false: plain least
/// squares (no constraint, no ridge), the coefficients OMP used before.
fn affine_least_squares(atoms: &[Vec<f64>], t: &[f64], ridge: f64) -> Vec<f64> {
    solve_normal(atoms, t, ridge, true)
}

/// See [`affine_least_squares`].
fn solve_normal(atoms: &[Vec<f64>], t: &[f64], ridge: f64, affine: bool) -> Vec<f64> {
    let n = atoms.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let dist2 = |a: &[f64]| a.iter().zip(t).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let lambda = ridge * atoms.iter().map(|a| dist2(a)).sum::<f64>();
    let mut g: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut row: Vec<f64> = (0..n).map(|j| dot(&atoms[i], &atoms[j])).collect();
            if affine {
                row[i] += lambda;
                row.push(1.0);
            }
            row.push(dot(&atoms[i], t));
            row
        })
        .collect();
    let n = if affine {
        let mut last = vec![1.0; n];
        last.extend([0.0, 1.0]);
        g.push(last);
        n + 1
    } else {
        n
    };
    for c in 0..n {
        let p = (c..n)
            .max_by(|&a, &b| g[a][c].abs().total_cmp(&g[b][c].abs()))
            .unwrap();
        g.swap(c, p);
        for r in 0..n {
            if r != c {
                let f = g[r][c] / g[c][c];
                let pivot = g[c].clone();
                for (x, y) in g[r].iter_mut().zip(&pivot) {
                    *x -= f * y;
                }
            }
        }
    }
    let m = if affine { n - 1 } else { n };
    (0..m).map(|i| g[i][n] / g[i][i]).collect()
}

/// ‖v‖ in f64.
fn norm64(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// What an OMP run must give for one missing row, computed independently in f64.
#[derive(Debug)]
enum OmpExpect {
    /// The row Σ_j x_j e_j (not divided by Σx) and the coefficients per overlap index.
    Row(Vec<f64>, Vec<(u32, f64)>),
    /// Rejected, with every column zero.
    Rejected(RejectReason),
}

/// Checks one backend's OMP run against `expect`: rejected rows are reported and zero, kept rows
/// equal Σ_j x_j e_j within `tol` of the row's max-abs and have exactly the expected non-zero
/// coefficients, and no row's norm exceeds the largest source norm.
fn check_omp_run(label: &str, got: &clp_gpu::ClpOutput, expect: &[OmpExpect], max_norm: f64) {
    let (ds, sel) = (got.dim, got.selection.as_ref().expect("selection"));
    let mut want_rejected = Vec::new();
    for (r, e) in expect.iter().enumerate() {
        let row = &got.rows[r * ds..(r + 1) * ds];
        let n = row.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        assert!(n <= max_norm, "{label}: row {r} norm {n} > {max_norm}");
        match e {
            OmpExpect::Rejected(reason) => {
                want_rejected.push((r, *reason));
                assert!(row.iter().all(|&x| x == 0.0), "{label}: row {r} not zero");
            }
            OmpExpect::Row(want, coefs) => {
                let scale = want.iter().fold(1.0f64, |a, x| a.max(x.abs()));
                assert_close(&format!("{label}: row {r}"), row, want, |_| 1e-5 * scale);
                let k = sel.k;
                for (&j, &w) in sel.indices[r * k..(r + 1) * k]
                    .iter()
                    .zip(&sel.weights[r * k..(r + 1) * k])
                {
                    let x = coefs.iter().find(|c| c.0 == j).map_or(0.0, |c| c.1);
                    assert!(
                        (w as f64 - x).abs() <= 1e-5 * x.abs().max(1.0),
                        "{label}: row {r} coefficient of {j}: got {w}, want {x}"
                    );
                }
            }
        }
    }
    let got_rejected: Vec<_> = got.rejected.iter().map(|r| (r.row, r.reason)).collect();
    assert_eq!(got_rejected, want_rejected, "{label}: rejected rows");
}

/// The expectation of every missing row from its known atoms: the affine least-squares
/// coefficients on the raw helper rows, the row Σ_j x_j e_j and its norm against the range of
/// the source norms.
fn omp_expectations(
    hm: &[f32],
    ho: &[f32],
    eo: &[f32],
    (dh, ds): (usize, usize),
    atoms: &[&[u32]],
) -> (Vec<OmpExpect>, (f64, f64)) {
    let norms: Vec<f64> = eo
        .chunks(ds)
        .map(|e| norm64(&e.iter().map(|&x| x as f64).collect::<Vec<_>>()))
        .collect();
    // Only the top bounds: a row may be shorter than every source row.
    let range = (0.0, norms.iter().copied().fold(0.0, f64::max));
    let expect = atoms
        .iter()
        .enumerate()
        .map(|(r, &ids)| {
            if ids.is_empty() {
                return OmpExpect::Rejected(RejectReason::WeightSumNearZero);
            }
            let t = f64s(&hm[r * dh..(r + 1) * dh]);
            let a: Vec<Vec<f64>> = ids
                .iter()
                .map(|&j| f64s(&ho[j as usize * dh..(j as usize + 1) * dh]))
                .collect();
            let x = affine_least_squares(&a, &t, OMP_RIDGE);
            let row: Vec<f64> = (0..ds)
                .map(|c| {
                    ids.iter()
                        .zip(&x)
                        .map(|(&j, xj)| xj * eo[j as usize * ds + c] as f64)
                        .sum()
                })
                .collect();
            let n = norm64(&row);
            if n < range.0 || n > range.1 {
                OmpExpect::Rejected(RejectReason::NormOutOfRange)
            } else {
                OmpExpect::Row(row, ids.iter().copied().zip(x).collect())
            }
        })
        .collect();
    (expect, range)
}

#[test]
fn omp_rows_are_not_divided_and_stay_within_the_source_norms() {
    let (dh, ds, eps) = (6, 5, 0.01f32);
    // Overlap helper rows: a and b nearly parallel (cos 0.99995), c and d orthogonal, e and f
    // away from every target.
    let ho: Vec<f32> = [
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, eps, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, -1.0],
    ]
    .concat();
    // Source rows with norms 1.118, 1.118, 1.5, 1.5, 0.5 (min) and 3 (max); e_c ⟂ e_d.
    let eo: Vec<f32> = [
        [1.0, 0.5, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.5, 0.0, 0.0],
        [0.0, 0.0, 1.2, 0.0, 0.9],
        [0.9, 0.0, 0.0, 1.2, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.5],
        [0.0, 3.0, 0.0, 0.0, 0.0],
    ]
    .concat();
    // Missing helper rows and the atoms OMP (2 atoms) must pick for each. Coefficients are
    // affine (Σx = 1), so each row is a point on the line through two atoms' source rows.
    let hm: Vec<f32> = [
        // a − b, between nearly parallel atoms: plain least squares on unit rows gave
        // x = (+100, −100) here (a row of norm 158, the explosion OMP had); affine, the ridge
        // keeps it between a and b.
        [0.0, -eps, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 11.0, -10.0, 0.0, 0.0], // c + 10 (c − d): x ≈ (11, −10), norm ≈ 22
        [0.0, 0.0, 0.6, 0.8, 0.0, 0.0],    // x ≈ (0.4, 0.6): norm ≈ 1.1
        [0.0, 0.0, 0.8, -0.6, 0.0, 0.0],   // x ≈ (1.2, −0.2): norm ≈ 1.8
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],    // orthogonal to every atom: x = 0
    ]
    .concat();
    let atoms: [&[u32]; 5] = [&[0, 1], &[2, 3], &[2, 3], &[2, 3], &[]];
    let (m, o) = (5, 6);
    let w = Weighting::Omp { atoms: 2 };
    for (hd, sd) in DTYPE_PAIRS {
        let (hm_b, hm_v) = encode(hd, &hm);
        let (ho_b, ho_v) = encode(hd, &ho);
        let (eo_b, eo_v) = encode(sd, &eo);
        let hm_m = MatrixRef::new("hm", &hm_b, hd, m, dh).unwrap();
        let ho_m = MatrixRef::new("ho", &ho_b, hd, o, dh).unwrap();
        let eo_m = MatrixRef::new("eo", &eo_b, sd, o, ds).unwrap();
        let (expect, (_, max_norm)) = omp_expectations(&hm_v, &ho_v, &eo_v, (dh, ds), &atoms);
        // The fixture is what it claims: far out of range, well inside it, or no atoms.
        let kinds: Vec<&str> = expect
            .iter()
            .map(|e| match e {
                OmpExpect::Row(..) => "kept",
                OmpExpect::Rejected(RejectReason::NormOutOfRange) => "norm",
                OmpExpect::Rejected(_) => "zero",
            })
            .collect();
        assert_eq!(kinds, ["kept", "norm", "kept", "kept", "zero"], "{hd}/{sd}");
        let label = format!("{hd}/{sd}");
        check_omp_run(
            &format!("reference {label}"),
            &collect(&reference::ReferenceBackend, &hm_m, &ho_m, &eo_m, &w).unwrap(),
            &expect,
            max_norm,
        );
        for tiling in [Tiling::DEFAULT, Tiling::caps(2, 4)] {
            for_each_backend(tiling, |name, backend| {
                let got = collect(backend, &hm_m, &ho_m, &eo_m, &w).unwrap();
                let label = format!("{name} {label} {tiling:?}");
                check_omp_run(&label, &got, &expect, max_norm);
            });
        }
    }
}

#[test]
fn omp_rows_within_the_source_norms_are_kept() {
    let (m, o, dh, ds) = (24, 120, 16, 12);
    let mut rng = Rng::new(4100);
    let hm = clp_gpu::synthetic::embeddings(&mut rng, m, dh, 0.5);
    let ho = clp_gpu::synthetic::embeddings(&mut rng, o, dh, 0.5);
    // Source rows whose norms spread over 0.1×–3× (as real vocabularies' do), so the range is
    // wide and the rows OMP builds fall inside it.
    let mut eo = gaussian(&mut rng, o, ds);
    for row in eo.chunks_mut(ds) {
        let s = 0.1 + 2.9 * rng.uniform() as f32;
        row.iter_mut().for_each(|x| *x *= s);
    }
    let (hd, sd) = (DType::F16, DType::BF16);
    let (hm, _) = encode(hd, &hm);
    let (ho, _) = encode(hd, &ho);
    let (eo, _) = encode(sd, &eo);
    let hm = MatrixRef::new("hm", &hm, hd, m, dh).unwrap();
    let ho = MatrixRef::new("ho", &ho, hd, o, dh).unwrap();
    let eo = MatrixRef::new("eo", &eo, sd, o, ds).unwrap();
    let norms: Vec<f64> = (0..o).map(|j| norm64(&eo.row_f64(j))).collect();
    let lo = 0.0; // only the top bounds
    let hi = norms.iter().copied().fold(0.0, f64::max);
    for atoms in [1, 3, 5] {
        let w = Weighting::Omp { atoms };
        let want = reference::clp(&hm, &ho, &eo, &w);
        // Kept rows are the majority; the rest are rejected by the norm bound only.
        assert!(
            want.rejected.len() <= m / 4,
            "omp {atoms}: {:?}",
            want.rejected
        );
        for r in &want.rejected {
            assert_eq!(r.reason, RejectReason::NormOutOfRange, "omp {atoms}");
        }
        let check = |name: &str, backend: &dyn clp_gpu::backend::ClpBackend| {
            let got = collect(backend, &hm, &ho, &eo, &w).unwrap();
            let label = format!("{name} omp {atoms}");
            check_weighting_run(&label, &hm, &ho, &eo, &w, &got);
            // Each kept row is Σ_j x_j e_j over the reported coefficients, not divided by Σx.
            let sel = got.selection.as_ref().unwrap();
            let k = sel.k;
            for r in 0..m {
                let row = &got.rows[r * ds..(r + 1) * ds];
                let x = &sel.weights[r * k..(r + 1) * k];
                let ix = &sel.indices[r * k..(r + 1) * k];
                let want: Vec<f64> = (0..ds)
                    .map(|c| {
                        (ix.iter().zip(x))
                            .map(|(&j, &x)| x as f64 * eo.get(j as usize, c) as f64)
                            .sum()
                    })
                    .collect();
                let n = norm64(&want);
                if got.rejected.iter().any(|q| q.row == r) {
                    assert!(row.iter().all(|&v| v == 0.0), "{label}: row {r} not zero");
                    assert!(n < lo || n > hi, "{label}: row {r} rejected at norm {n}");
                    continue;
                }
                assert!(
                    n >= lo * 0.9999 && n <= hi * 1.0001,
                    "{label}: row {r} norm {n}"
                );
                let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
                assert_close(&format!("{label}: row {r}"), row, &want, |_| 1e-5 * scale);
            }
        };
        check("reference", &reference::ReferenceBackend);
        for_each_backend(Tiling::caps(7, 50), check);
    }
}

/// How [`latent_pair`] spreads its rows: scales of the helper's common offset and of its noise,
/// and of the source's common offset, of its latent part and of its noise.
struct Spread {
    h_offset: f32,
    h_noise: f32,
    e_offset: f32,
    e_latent: f32,
    e_noise: f32,
}

/// Helper rows c₀ + z P (+ noise) and source rows c₁ + z Q (+ noise) over shared latents
/// z ∈ R^5: without noise the source is a linear image of the helper rows (the map that sends
/// c₀ to c₁ and P to Q), with noise only roughly one. The missing rows' latents are shrunk by
/// 0.7, so their true source rows lie inside the overlap's norms. Returns (hm, ho, eo, true
/// source rows of the missing tokens), f32.
#[allow(clippy::type_complexity)]
fn latent_pair(
    seed: u64,
    (m, o, dh, ds): (usize, usize, usize, usize),
    s: Spread,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    const R: usize = 5;
    let mut rng = Rng::new(seed);
    let scaled = |v: Vec<f32>, f: f32| -> Vec<f32> { v.into_iter().map(|x| x * f).collect() };
    let c0 = scaled(gaussian(&mut rng, 1, dh), s.h_offset);
    let p = gaussian(&mut rng, R, dh);
    let c1 = scaled(gaussian(&mut rng, 1, ds), s.e_offset);
    let q = scaled(gaussian(&mut rng, R, ds), s.e_latent);
    let mut z = gaussian(&mut rng, m + o, R);
    z[..m * R].iter_mut().for_each(|x| *x *= 0.7);
    let map = |c: &[f32], w: &[f32], d: usize| -> Vec<f32> {
        (z.chunks(R))
            .flat_map(|zr| {
                (0..d).map(move |col| {
                    let dot: f64 = (0..R).map(|i| zr[i] as f64 * w[i * d + col] as f64).sum();
                    (c[col] as f64 + dot) as f32
                })
            })
            .collect()
    };
    let mut h = map(&c0, &p, dh);
    let hn = gaussian(&mut rng, m + o, dh);
    h.iter_mut().zip(&hn).for_each(|(x, n)| *x += s.h_noise * n);
    let mut e = map(&c1, &q, ds);
    let truth = e[..m * ds].to_vec();
    let en = gaussian(&mut rng, m + o, ds);
    e.iter_mut().zip(&en).for_each(|(x, n)| *x += s.e_noise * n);
    let (hm, ho) = h.split_at(m * dh);
    (hm.to_vec(), ho.to_vec(), e[m * ds..].to_vec(), truth)
}

/// ‖p − t‖ / ‖t‖ of every row, and the rows the former OMP would have built from the same atoms
/// (plain least squares of the unit target on unit atoms, applied to the raw source rows).
fn omp_errors(
    got: &clp_gpu::ClpOutput,
    (hm, ho, eo, truth): (&[f32], &[f32], &[f32], &[f32]),
    (dh, ds): (usize, usize),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let sel = got.selection.as_ref().unwrap();
    let unit = |v: &[f32]| {
        let n = norm64(&f64s(v));
        v.iter().map(|&x| x as f64 / n).collect::<Vec<f64>>()
    };
    let mut errors = Vec::new();
    let mut former = Vec::new();
    for r in 0..truth.len() / ds {
        let t = f64s(&truth[r * ds..(r + 1) * ds]);
        let row = f64s(&got.rows[r * ds..(r + 1) * ds]);
        let diff: Vec<f64> = row.iter().zip(&t).map(|(a, b)| a - b).collect();
        errors.push(norm64(&diff) / norm64(&t));
        let ids: Vec<usize> = (r * sel.k..(r + 1) * sel.k)
            .filter(|&i| sel.weights[i] != 0.0)
            .map(|i| sel.indices[i] as usize)
            .collect();
        let atoms: Vec<Vec<f64>> = ids
            .iter()
            .map(|&j| unit(&ho[j * dh..(j + 1) * dh]))
            .collect();
        let x = solve_normal(&atoms, &unit(&hm[r * dh..(r + 1) * dh]), 0.0, false);
        former.push(
            (0..ds)
                .map(|c| {
                    ids.iter()
                        .zip(&x)
                        .map(|(&j, x)| x * eo[j * ds + c] as f64)
                        .sum()
                })
                .collect(),
        );
    }
    (errors, former)
}

#[test]
fn omp_is_nearly_exact_when_the_source_is_a_linear_image_of_the_helper() {
    let (m, o, dh, ds) = (40, 200, 12, 10);
    let linear = Spread {
        h_offset: 1.0,
        h_noise: 0.0,
        e_offset: 1.0,
        e_latent: 1.0,
        e_noise: 0.0,
    };
    let (hm, ho, eo, truth) = latent_pair(4200, (m, o, dh, ds), linear);
    let mats = (
        MatrixRef::from_f32(&hm, m, dh).unwrap(),
        MatrixRef::from_f32(&ho, o, dh).unwrap(),
        MatrixRef::from_f32(&eo, o, ds).unwrap(),
    );
    let max_norm = (0..o)
        .map(|j| norm64(&mats.2.row_f64(j)))
        .fold(0.0, f64::max);
    assert!(
        (0..m).all(|r| norm64(&f64s(&truth[r * ds..(r + 1) * ds])) < max_norm),
        "fixture: every true row lies within the source norms"
    );
    let w = Weighting::Omp { atoms: 8 };
    let check = |name: &str, backend: &dyn clp_gpu::backend::ClpBackend| {
        let got = collect(backend, &mats.0, &mats.1, &mats.2, &w).unwrap();
        check_weighting_run(name, &mats.0, &mats.1, &mats.2, &w, &got);
        assert!(
            got.rejected.is_empty(),
            "{name}: fell back: {:?}",
            got.rejected
        );
        let (errors, former) = omp_errors(&got, (&hm, &ho, &eo, &truth), (dh, ds));
        // Nearly exact: what is left is the ridge (and f32 rounding).
        let worst = errors.iter().copied().fold(0.0, f64::max);
        let mean = errors.iter().sum::<f64>() / m as f64;
        eprintln!("{name}: relative error mean {mean:.4}, worst {worst:.4}");
        assert!(
            mean < 0.02 && worst < 0.05,
            "{name}: relative error mean {mean}, up to {worst}"
        );
        // The former coefficients, on the same atoms, were far off and often too long.
        let former_err: Vec<f64> = (former.iter().enumerate())
            .map(|(r, p)| {
                let t = f64s(&truth[r * ds..(r + 1) * ds]);
                let d: Vec<f64> = p.iter().zip(&t).map(|(a, b)| a - b).collect();
                norm64(&d) / norm64(&t)
            })
            .collect();
        let former_mean = former_err.iter().sum::<f64>() / m as f64;
        eprintln!("{name}: the former OMP's mean relative error {former_mean:.4}");
        assert!(
            former_mean > 0.1,
            "{name}: the former OMP was off by {former_mean} only"
        );
    };
    check("reference", &reference::ReferenceBackend);
    for_each_backend(Tiling::caps(16, 64), check);
}

#[test]
fn omp_rarely_falls_back_when_the_spaces_are_only_roughly_related() {
    // As on the trained pair (README, "OMP"): the source rows share a large common offset
    // (their norms are concentrated), the helper's do not, and both carry noise the other
    // space does not explain. Plain least-squares coefficients of a unit target then sum to
    // ~1.5, so the former OMP's rows were ~1.5 × the offset: longer than every source row.
    let (m, o, dh, ds) = (100, 240, 24, 10);
    let rough = Spread {
        h_offset: 0.0,
        h_noise: 1.0,
        e_offset: 3.0,
        e_latent: 0.3,
        e_noise: 0.3,
    };
    let (hm, ho, eo, truth) = latent_pair(4300, (m, o, dh, ds), rough);
    let mats = (
        MatrixRef::from_f32(&hm, m, dh).unwrap(),
        MatrixRef::from_f32(&ho, o, dh).unwrap(),
        MatrixRef::from_f32(&eo, o, ds).unwrap(),
    );
    let max_norm = (0..o)
        .map(|j| norm64(&mats.2.row_f64(j)))
        .fold(0.0, f64::max);
    let w = Weighting::Omp { atoms: 10 };
    let check = |name: &str, backend: &dyn clp_gpu::backend::ClpBackend| {
        let got = collect(backend, &mats.0, &mats.1, &mats.2, &w).unwrap();
        check_weighting_run(name, &mats.0, &mats.1, &mats.2, &w, &got);
        assert!(
            got.rejected.len() * 100 <= 3 * m,
            "{name}: {} of {m} rows fell back",
            got.rejected.len()
        );
        let (_, former) = omp_errors(&got, (&hm, &ho, &eo, &truth), (dh, ds));
        let former_long = former.iter().filter(|p| norm64(p) > max_norm).count();
        eprintln!(
            "{name}: {} of {m} rows fell back; the former OMP: {former_long}",
            got.rejected.len()
        );
        assert!(
            former_long * 4 >= m,
            "{name}: the former OMP would have rejected {former_long} of {m} only"
        );
    };
    check("reference", &reference::ReferenceBackend);
    for_each_backend(Tiling::caps(16, 64), check);
}
