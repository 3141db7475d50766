//! Criterion benches of the streaming pipeline from disk, on the GPU engine and the CPU path:
//!
//! - `stream/*`: CLP over row sets read with positioned reads from full-vocabulary safetensors
//!   files (scattered overlap/missing ids, as in a real vocabulary), throughput in FLOPs (so
//!   elem/s reads as FLOP/s). Includes gather, upload, kernels, readback.
//! - `apply/*`: the whole `apply` on a small Llama-like model directory (tokenizers trained and
//!   safetensors written by the test helpers): read, match, gather, compute, write, rename.
//!
//! Shapes are small by default (lavapipe is slow); CLP_BENCH_LARGE=1 uses an S1 slice.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use clp_gpu::backend::cpu::CpuBackend;
use clp_gpu::backend::Backend;
use clp_gpu::backend::{ClpBackend, TileOut};
use clp_gpu::commands::apply::{apply, ApplyOptions, Fallback, Method};
use clp_gpu::model::safetensors::data_offset;
use clp_gpu::rows::{RowSet, Storage, Stored};
use clp_gpu::synthetic::{sample_ids, write_embedding_file, Rng};
use clp_gpu::{DType, Engine, Gpu, TopK, Weighting};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixtures::{build_model, Arch, Lang, ModelSpec, Vocab};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

fn stored<'a>(f: &'a File, p: &'a Path, rows: usize, cols: usize) -> Stored<'a> {
    Stored {
        storage: Storage::File {
            file: f,
            path: p,
            offset: data_offset(f, p).expect("header length"),
        },
        dtype: DType::F16,
        rows,
        cols,
    }
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!("adapter: {}", gpu.adapter());
    let engine = Engine::new(gpu).expect("pipelines");
    let cpu = CpuBackend::new(1 << 30);
    let large = std::env::var_os("CLP_BENCH_LARGE").is_some();
    let (m, o, dh, ds) = if large {
        (4096, 8192, 1600, 4096)
    } else {
        (256, 512, 256, 512)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (vh, vs) = (2 * (m + o), 4 * o);
    let hp = dir.path().join("helper.safetensors");
    let sp = dir.path().join("source.safetensors");
    write_embedding_file(&hp, "embedding", vh, dh, DType::F16, 1, 0.5).expect("helper file");
    write_embedding_file(&sp, "embedding", vs, ds, DType::F16, 2, 0.3).expect("source file");
    let (hf, sf) = (
        File::open(&hp).expect("open"),
        File::open(&sp).expect("open"),
    );
    let (h, s) = (stored(&hf, &hp, vh, dh), stored(&sf, &sp, vs, ds));
    let mut rng = Rng::new(3);
    let tgt = sample_ids(&mut rng, vh, m + o);
    let hm = RowSet::new("hm", vec![h])
        .and_then(|r| r.select(tgt[o..].to_vec()))
        .expect("row set");
    let ho = RowSet::new("ho", vec![h])
        .and_then(|r| r.select(tgt[..o].to_vec()))
        .expect("row set");
    let eo = RowSet::new("eo", vec![s])
        .and_then(|r| r.select(sample_ids(&mut rng, vs, o)))
        .expect("row set");

    let mut group = c.benchmark_group(format!("stream {m}x{o} dh{dh} ds{ds} f16 from disk"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let shape = clp_gpu::commands::bench::BenchShape::custom(m, o, dh, ds);
    let backends: [(&str, &dyn ClpBackend); 2] = [("gpu", &engine), ("cpu", &cpu)];
    for (name, backend) in backends {
        for (mode, top_k) in [("top64", TopK::K(64)), ("dense", TopK::All)] {
            group.throughput(Throughput::Elements(
                clp_gpu::commands::bench::flops(&shape, top_k) as u64,
            ));
            let w = Weighting::Clp { top_k };
            group.bench_function(format!("{name}/{mode}"), |b| {
                b.iter(|| {
                    let mut rows = 0usize;
                    backend
                        .run(&hm, &ho, &eo, &w, &mut |t: &TileOut| {
                            rows += t.status.len();
                            Ok(())
                        })
                        .expect("run");
                    assert_eq!(rows, m);
                })
            });
        }
    }
    group.finish();

    // The whole apply on a small model directory.
    let src = build_model(
        &dir.path().join("src"),
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Trained {
                lang: Lang::English,
                size: 400,
                pad_rows: 0,
            },
            dim: if large { 1024 } else { 256 },
            dtype: DType::BF16,
            shards: 2,
            seed: 5,
            ..Default::default()
        },
    );
    let hlp = build_model(
        &dir.path().join("hlp"),
        &ModelSpec {
            arch: Arch::Llama,
            vocab: Vocab::Trained {
                lang: Lang::German,
                size: 350,
                pad_rows: 0,
            },
            dim: if large { 512 } else { 128 },
            dtype: DType::BF16,
            shards: 1,
            seed: 6,
            ..Default::default()
        },
    );
    let mut group = c.benchmark_group("apply llama-like model dir");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, backend) in [("gpu", Backend::Gpu), ("cpu", Backend::Cpu)] {
        for top_k in [TopK::K(64), TopK::All] {
            let opts = ApplyOptions {
                preset: None,
                source: src.dir.display().to_string(),
                helper: Some(hlp.dir.display().to_string()),
                helper_tokenizer: None,
                out: dir.path().join(format!("out-{name}-{top_k}")),
                method: Method::Weighted(Weighting::Clp { top_k }),
                fallback: Fallback::Mean,
                match_mode: clp_gpu::vocab::MatchMode::Exact,
                backend,
                memory_bytes: 1 << 30,
                force: true,
                provenance: None,
                pad_to_multiple: None,
                pad_token: None,
                progress: clp_gpu::progress::Progress::Hidden,
                arguments: vec![],
            };
            group.bench_function(format!("{name}/top-k {top_k}"), |b| {
                b.iter(|| apply(&opts).expect("apply"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
