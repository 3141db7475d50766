//! The streaming pipeline: the multi-threaded CPU backend against the f64 reference on the same
//! awkward shapes as the GPU kernels, and both backends reading scattered rows straight from
//! safetensors files under tiny memory budgets, against the reference and against each other.

mod common;

use clp_gpu::backend::cpu::CpuBackend;
use clp_gpu::backend::reference;
use clp_gpu::backend::{collect, collect_sets, ClpBackend};
use clp_gpu::rows::{RowSet, Storage, Stored};
use clp_gpu::synthetic::{embeddings, gaussian, sample_ids, write_embedding_file, Rng};
use clp_gpu::{DType, MatrixRef, RejectReason, TopK, Weighting};
use common::*;
use std::fs::File;
use std::io::Read;
use std::path::Path;

fn cpu(max_m_rows: usize, max_o_rows: usize) -> CpuBackend {
    CpuBackend {
        memory_bytes: 1 << 30,
        max_m_rows,
        max_o_rows,
    }
}

fn dense_close(label: &str, got: &clp_gpu::ClpOutput, want: &clp_gpu::ClpOutput, tol: f64) {
    assert!(got.selection.is_none(), "{label}: dense has no selection");
    assert_eq!(got.rejected, want.rejected, "{label}: rejected rows");
    let want64: Vec<f64> = want.rows.iter().map(|&x| x as f64).collect();
    let scale = row_max_abs(&want64, want.dim);
    assert_close(label, &got.rows, &want64, |i| {
        tol * scale[i / want.dim].max(1e-30)
    });
}

#[test]
fn cpu_top_k_matches_reference_on_awkward_shapes() {
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
            let w = Weighting::Clp { top_k: TopK::K(k) };
            let got = collect(&cpu(mm, mo), &hm, &ho, &eo, &w).unwrap();
            check_topk_run(&format!("cpu case {ci} {hd}/{sd}"), &hm, &ho, &eo, k, &got);
        }
    }
}

#[test]
fn cpu_dense_matches_direct_formula() {
    // (m, o, dh, ds, max_m_rows, max_o_rows)
    for (ci, &(m, o, dh, ds, mm, mo)) in DENSE_CASES.iter().enumerate() {
        for dtype in DTYPES {
            let mut rng = Rng::new(2000 + ci as u64);
            let (hm_b, _) = encode(dtype, &embeddings(&mut rng, m, dh, 2.0));
            let (ho_b, _) = encode(dtype, &embeddings(&mut rng, o, dh, 2.0));
            let (eo_b, _) = encode(dtype, &gaussian(&mut rng, o, ds));
            let hm = MatrixRef::new("hm", &hm_b, dtype, m, dh).unwrap();
            let ho = MatrixRef::new("ho", &ho_b, dtype, o, dh).unwrap();
            let eo = MatrixRef::new("eo", &eo_b, dtype, o, ds).unwrap();
            let w = Weighting::Clp { top_k: TopK::All };
            let got = collect(&cpu(mm, mo), &hm, &ho, &eo, &w).unwrap();
            let want = reference::clp(&hm, &ho, &eo, &w);
            dense_close(&format!("cpu dense case {ci} {dtype}"), &got, &want, 1e-5);
        }
    }
}

#[test]
fn cpu_guards_report_rows_and_runs_are_bit_reproducible() {
    let (dh, ds) = (6, 5);
    let v: Vec<f32> = (0..dh).map(|i| i as f32 + 1.0).collect();
    let u: Vec<f32> = (0..dh)
        .map(|i| if i % 2 == 0 { 1.0 } else { -0.5 })
        .collect();
    let neg = |x: &[f32]| x.iter().map(|a| -a).collect::<Vec<f32>>();
    let ho: Vec<f32> = [v.clone(), neg(&v), u.clone(), neg(&u)].concat();
    let mut hm = [v.clone(), vec![0.0; dh], v.clone()].concat();
    hm[2 * dh + 1] = f32::NAN;
    let mut rng = Rng::new(5);
    let eo = gaussian(&mut rng, 4, ds);
    let hm = MatrixRef::from_f32(&hm, 3, dh).unwrap();
    let ho = MatrixRef::from_f32(&ho, 4, dh).unwrap();
    let eo = MatrixRef::from_f32(&eo, 4, ds).unwrap();
    for top_k in [TopK::K(4), TopK::All] {
        let w = Weighting::Clp { top_k };
        let got = collect(&cpu(64, 64), &hm, &ho, &eo, &w).unwrap();
        let reasons: Vec<_> = got.rejected.iter().map(|r| (r.row, r.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (0, RejectReason::WeightSumNearZero),
                (1, RejectReason::ZeroHelperRow),
                (2, RejectReason::NonFiniteHelperRow),
            ],
            "{top_k}"
        );
        assert_eq!(got.rejected, reference::clp(&hm, &ho, &eo, &w).rejected);
        assert!(got.rows.iter().all(|x| *x == 0.0), "{top_k}: rows not zero");
    }
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
        let a = collect(&cpu(8, 30), &hm, &ho, &eo, &w).unwrap();
        let b = collect(&cpu(8, 30), &hm, &ho, &eo, &w).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.rows), bits(&b.rows), "{top_k}: rows differ");
        assert_eq!(a.selection, b.selection);
    }
}

/// A single-tensor safetensors file as a stored matrix read with positioned reads.
fn stored_file<'a>(
    file: &'a File,
    path: &'a Path,
    dtype: DType,
    rows: usize,
    cols: usize,
) -> Stored<'a> {
    let mut n = [0u8; 8];
    (&*file).read_exact(&mut n).unwrap();
    Stored {
        storage: Storage::File {
            file,
            path,
            offset: 8 + u64::from_le_bytes(n),
        },
        dtype,
        rows,
        cols,
    }
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
    let hm = RowSet::new("hm", vec![h])
        .unwrap()
        .select(tgt[o..].to_vec())
        .unwrap();
    let ho = RowSet::new("ho", vec![h])
        .unwrap()
        .select(tgt[..o].to_vec())
        .unwrap();
    let eo = RowSet::new("eo", vec![s])
        .unwrap()
        .select(sample_ids(&mut rng, vs, o))
        .unwrap();
    // The same rows in memory, for the reference.
    let (hm_b, ho_b, eo_b) = (gathered(&hm), gathered(&ho), gathered(&eo));
    let hm_m = MatrixRef::new("hm", &hm_b, DType::F16, m, dh).unwrap();
    let ho_m = MatrixRef::new("ho", &ho_b, DType::F16, o, dh).unwrap();
    let eo_m = MatrixRef::new("eo", &eo_b, DType::BF16, o, ds).unwrap();

    let mut gpu = engine();
    for (budget, label) in [(1u64 << 30, "large"), (96 << 10, "96 KiB")] {
        let mut opts = gpu.options();
        opts.gpu_memory_bytes = budget;
        gpu.set_options(opts);
        let cpu = CpuBackend::new(budget);
        let plan_tiles = {
            let w = Weighting::Clp { top_k: TopK::K(16) };
            let p = clp_gpu::backend::problem(&hm, &ho, &eo, &w).unwrap();
            ClpBackend::plan(&*gpu, &p).unwrap()
        };
        if budget < 1 << 20 {
            assert!(
                plan_tiles.m_rows < m && plan_tiles.o_rows < o,
                "a 96 KiB budget must tile both sides: {plan_tiles:?}"
            );
        }
        let backends: [(&str, &dyn ClpBackend); 2] = [("gpu", &*gpu), ("cpu", &cpu)];
        for (name, backend) in backends {
            let w = Weighting::Clp { top_k: TopK::K(16) };
            let got = collect_sets(backend, &hm, &ho, &eo, &w).unwrap();
            check_topk_run(
                &format!("{name} top-k from files, {label} budget"),
                &hm_m,
                &ho_m,
                &eo_m,
                16,
                &got,
            );
            let w = Weighting::Clp { top_k: TopK::All };
            let got = collect_sets(backend, &hm, &ho, &eo, &w).unwrap();
            let want = reference::clp(&hm_m, &ho_m, &eo_m, &w);
            dense_close(
                &format!("{name} dense from files, {label} budget"),
                &got,
                &want,
                2e-5,
            );
        }
    }
    // Streaming from files gives exactly what the same engine gives on the rows in memory.
    let w = Weighting::Clp { top_k: TopK::K(16) };
    let from_files = collect_sets(&*gpu, &hm, &ho, &eo, &w).unwrap();
    let in_memory = gpu.clp(&hm_m, &ho_m, &eo_m, &w).unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&from_files.rows), bits(&in_memory.rows));
    assert_eq!(from_files.selection, in_memory.selection);
}

#[test]
fn cpu_softmax_sparsemax_and_omp_match_reference() {
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
        for w in other_weightings() {
            let got = collect(&cpu(mm, mo), &hm, &ho, &eo, &w).unwrap();
            check_weighting_run(
                &format!("cpu case {ci} {}", w.label()),
                &hm,
                &ho,
                &eo,
                &w,
                &got,
            );
        }
    }
}
