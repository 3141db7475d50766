//! Every kernel against the f64 CPU reference on a real adapter (lavapipe in CI), on seeded
//! random inputs in f32, f16 and bf16 and on awkward shapes. Outputs are poisoned with NaN
//! before each run, so an element a kernel forgets to write fails the comparison.

mod common;

use clp_gpu::backend::reference;
use clp_gpu::kernels::MatmulParams;
use clp_gpu::synthetic::{embeddings, gaussian, Rng};
use clp_gpu::weights::RowStatus;
use clp_gpu::{DType, MatrixRef, RejectReason, TopK, Weighting};
use common::*;

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

#[test]
fn clp_top_k_matches_reference_on_awkward_shapes() {
    let mut e = engine();
    // (m, o, dh, ds, k, max_m_rows, max_o_rows)
    for (ci, &(m, o, dh, ds, k, mm, mo)) in TOP_K_CASES.iter().enumerate() {
        for (hd, sd) in [
            (DType::F32, DType::F32),
            (DType::F16, DType::BF16),
            (DType::BF16, DType::F16),
        ] {
            let mut rng = Rng::new(1000 + ci as u64);
            let (hm_b, _) = encode(hd, &embeddings(&mut rng, m, dh, 0.5));
            let (ho_b, _) = encode(hd, &embeddings(&mut rng, o, dh, 0.5));
            let (eo_b, _) = encode(sd, &gaussian(&mut rng, o, ds));
            let hm = MatrixRef::new("hm", &hm_b, hd, m, dh).unwrap();
            let ho = MatrixRef::new("ho", &ho_b, hd, o, dh).unwrap();
            let eo = MatrixRef::new("eo", &eo_b, sd, o, ds).unwrap();
            let mut opts = e.options();
            opts.max_m_rows = mm;
            opts.max_o_rows = mo;
            e.set_options(opts);
            let got = e
                .clp(&hm, &ho, &eo, &Weighting::Clp { top_k: TopK::K(k) })
                .unwrap();
            check_topk_run(&format!("case {ci} {hd}/{sd}"), &hm, &ho, &eo, k, &got);
        }
    }
}

#[test]
fn clp_dense_matches_direct_formula() {
    let mut e = engine();
    // (m, o, dh, ds, max_m_rows, max_o_rows)
    for (ci, &(m, o, dh, ds, mm, mo)) in DENSE_CASES.iter().enumerate() {
        for dtype in DTYPES {
            let mut rng = Rng::new(2000 + ci as u64);
            // Well-conditioned: a strong shared direction keeps Σ cos far from zero.
            let (hm_b, _) = encode(dtype, &embeddings(&mut rng, m, dh, 2.0));
            let mut rng2 = Rng::new(2000 + ci as u64);
            let _ = embeddings(&mut rng2, 0, dh, 2.0); // same mean direction for overlap rows
            let (ho_b, _) = encode(dtype, &embeddings(&mut rng, o, dh, 2.0));
            let (eo_b, _) = encode(dtype, &gaussian(&mut rng, o, ds));
            let hm = MatrixRef::new("hm", &hm_b, dtype, m, dh).unwrap();
            let ho = MatrixRef::new("ho", &ho_b, dtype, o, dh).unwrap();
            let eo = MatrixRef::new("eo", &eo_b, dtype, o, ds).unwrap();
            let mut opts = e.options();
            opts.max_m_rows = mm;
            opts.max_o_rows = mo;
            e.set_options(opts);
            let w = Weighting::Clp { top_k: TopK::All };
            let got = e.clp(&hm, &ho, &eo, &w).unwrap();
            let want = reference::clp(&hm, &ho, &eo, &w);
            assert!(got.selection.is_none());
            assert_eq!(got.rejected, want.rejected, "case {ci} {dtype}: rejected");
            let want64: Vec<f64> = want.rows.iter().map(|&x| x as f64).collect();
            let scale = row_max_abs(&want64, ds);
            assert_close(
                &format!("dense case {ci} {dtype}"),
                &got.rows,
                &want64,
                |i| 1e-5 * scale[i / ds].max(1e-30),
            );
        }
    }
}

#[test]
fn guards_report_rows_instead_of_writing_nan() {
    let e = engine();
    let dh = 6;
    let ds = 5;
    let v: Vec<f32> = (0..dh).map(|i| i as f32 + 1.0).collect();
    let u: Vec<f32> = (0..dh)
        .map(|i| if i % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let neg = |x: &[f32]| x.iter().map(|a| -a).collect::<Vec<f32>>();
    // Overlap rows v, -v, u, -u: Σ_j ĥ_j = 0, so every dense Σ cos is 0 (cancels exactly).
    let ho: Vec<f32> = [v.clone(), neg(&v), u.clone(), neg(&u)].concat();
    let mut hm = [v.clone(), vec![0.0; dh], v.clone()].concat();
    hm[2 * dh + 1] = f32::INFINITY;
    let mut rng = Rng::new(5);
    let eo = gaussian(&mut rng, 4, ds);
    let hm = MatrixRef::from_f32(&hm, 3, dh).unwrap();
    let ho = MatrixRef::from_f32(&ho, 4, dh).unwrap();
    let eo = MatrixRef::from_f32(&eo, 4, ds).unwrap();
    for top_k in [TopK::K(4), TopK::All] {
        let w = Weighting::Clp { top_k };
        let got = e.clp(&hm, &ho, &eo, &w).unwrap();
        let want = reference::clp(&hm, &ho, &eo, &w);
        let reasons: Vec<_> = got.rejected.iter().map(|r| (r.row, r.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (0, RejectReason::WeightSumNearZero), // cos 1, -1, c, -c
                (1, RejectReason::ZeroHelperRow),
                (2, RejectReason::NonFiniteHelperRow),
            ],
            "{top_k}"
        );
        assert_eq!(got.rejected, want.rejected);
        assert!(
            got.rows.iter().all(|x| *x == 0.0),
            "{top_k}: rejected rows must be zeros"
        );
    }
}

#[test]
fn runs_are_bit_reproducible_and_m_zero_is_empty() {
    let e = engine();
    let mut rng = Rng::new(9);
    let (m, o, dh, ds) = (21, 90, 20, 17);
    let (hm_b, _) = encode(DType::F16, &embeddings(&mut rng, m, dh, 0.5));
    let (ho_b, _) = encode(DType::F16, &embeddings(&mut rng, o, dh, 0.5));
    let (eo_b, _) = encode(DType::BF16, &gaussian(&mut rng, o, ds));
    let hm = MatrixRef::new("hm", &hm_b, DType::F16, m, dh).unwrap();
    let ho = MatrixRef::new("ho", &ho_b, DType::F16, o, dh).unwrap();
    let eo = MatrixRef::new("eo", &eo_b, DType::BF16, o, ds).unwrap();
    for top_k in [TopK::K(10), TopK::All] {
        let w = Weighting::Clp { top_k };
        let a = e.clp(&hm, &ho, &eo, &w).unwrap();
        let b = e.clp(&hm, &ho, &eo, &w).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.rows),
            bits(&b.rows),
            "{top_k}: rows differ between runs"
        );
        assert_eq!(a.selection, b.selection);
        let empty = MatrixRef::new("hm", &[], DType::F16, 0, dh).unwrap();
        let z = e.clp(&empty, &ho, &eo, &w).unwrap();
        assert!(z.rows.is_empty() && z.rejected.is_empty());
    }
    // O = 0 and mismatched widths are errors, not panics.
    let none = MatrixRef::new("ho", &[], DType::F16, 0, dh).unwrap();
    let none_e = MatrixRef::new("eo", &[], DType::BF16, 0, ds).unwrap();
    assert!(e
        .clp(&hm, &none, &none_e, &Weighting::Clp { top_k: TopK::All })
        .is_err());
    assert!(e
        .clp(
            &hm,
            &ho,
            &eo,
            &Weighting::Clp {
                top_k: TopK::K(257)
            }
        )
        .is_err());
}

#[test]
fn property_random_shapes_agree_with_reference() {
    let mut e = engine();
    let mut rng = Rng::new(4242);
    for case in 0..6 {
        let m = 1 + rng.below(40);
        let o = 1 + rng.below(200);
        let dh = 1 + rng.below(70);
        let ds = 1 + rng.below(50);
        let k = 1 + rng.below(40);
        let dtype = DTYPES[rng.below(3)];
        let mut opts = e.options();
        opts.max_m_rows = 1 + rng.below(48);
        opts.max_o_rows = 1 + rng.below(160);
        e.set_options(opts);
        let (hm_b, _) = encode(dtype, &embeddings(&mut rng, m, dh, 0.7));
        let (ho_b, _) = encode(dtype, &embeddings(&mut rng, o, dh, 0.7));
        let (eo_b, _) = encode(dtype, &gaussian(&mut rng, o, ds));
        let hm = MatrixRef::new("hm", &hm_b, dtype, m, dh).unwrap();
        let ho = MatrixRef::new("ho", &ho_b, dtype, o, dh).unwrap();
        let eo = MatrixRef::new("eo", &eo_b, dtype, o, ds).unwrap();
        let got = e
            .clp(&hm, &ho, &eo, &Weighting::Clp { top_k: TopK::K(k) })
            .unwrap();
        let label =
            format!("property case {case}: m {m} o {o} dh {dh} ds {ds} k {k} {dtype} {opts:?}");
        check_topk_run(&label, &hm, &ho, &eo, k, &got);
    }
}

#[test]
fn softmax_sparsemax_and_omp_match_reference() {
    let mut e = engine();
    // (m, o, dh, ds, max_m_rows, max_o_rows): one tile, and ragged tiles on both sides.
    for (ci, &(m, o, dh, ds, mm, mo)) in [(6, 40, 12, 9, 64, 64), (23, 230, 17, 10, 8, 96)]
        .iter()
        .enumerate()
    {
        let mut rng = Rng::new(3000 + ci as u64);
        let (hm_b, _) = encode(DType::F16, &embeddings(&mut rng, m, dh, 0.5));
        let (ho_b, _) = encode(DType::F16, &embeddings(&mut rng, o, dh, 0.5));
        let (eo_b, _) = encode(DType::BF16, &gaussian(&mut rng, o, ds));
        let hm = MatrixRef::new("hm", &hm_b, DType::F16, m, dh).unwrap();
        let ho = MatrixRef::new("ho", &ho_b, DType::F16, o, dh).unwrap();
        let eo = MatrixRef::new("eo", &eo_b, DType::BF16, o, ds).unwrap();
        let mut opts = e.options();
        opts.max_m_rows = mm;
        opts.max_o_rows = mo;
        e.set_options(opts);
        for w in other_weightings() {
            let got = e.clp(&hm, &ho, &eo, &w).unwrap();
            check_weighting_run(
                &format!("gpu case {ci} {}", w.label()),
                &hm,
                &ho,
                &eo,
                &w,
                &got,
            );
        }
    }
    // Dense mode exists only for CLP.
    let (hm_b, _) = encode(DType::F32, &[1.0, 0.0]);
    let hm = MatrixRef::new("hm", &hm_b, DType::F32, 1, 2).unwrap();
    let bad = Weighting::Sparsemax { top_k: TopK::All };
    assert!(e.clp(&hm, &hm, &hm, &bad).is_err());
}
