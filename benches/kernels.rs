//! Criterion benches of the GPU engine with data resident in host memory: similarity + top-k
//! (FLOPs = 2·M·O·d_h + 2·M·k·d_s) and the dense original (FLOPs = 2·(O + M)·d_h·(d_s + 1)).
//! Throughput is reported as "elements" = FLOPs, so elem/s reads as FLOP/s. Each iteration
//! includes upload, kernels and readback (the GPU is waited for inside the timed span).
//! Shapes are small by default; set CLP_BENCH_LARGE=1 for a BLOOM-like slice.

use clp_gpu::synthetic::{embeddings, Rng};
use clp_gpu::{DType, Engine, Gpu, MatrixRef, TopK, Weighting};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::{Duration, Instant};

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)");
    eprintln!("adapter: {}", gpu.adapter());
    let engine = Engine::new(gpu).expect("pipelines");
    let (m, o, dh, ds) = if std::env::var_os("CLP_BENCH_LARGE").is_some() {
        (4096, 8192, 1600, 4096)
    } else {
        (256, 256, 256, 512)
    };
    let mut rng = Rng::new(1);
    let dt = DType::F16;
    let hm_b = dt.encode(&embeddings(&mut rng, m, dh, 0.5));
    let ho_b = dt.encode(&embeddings(&mut rng, o, dh, 0.5));
    let eo_b = dt.encode(&embeddings(&mut rng, o, ds, 0.3));
    let hm = MatrixRef::new("hm", &hm_b, dt, m, dh).expect("shape");
    let ho = MatrixRef::new("ho", &ho_b, dt, o, dh).expect("shape");
    let eo = MatrixRef::new("eo", &eo_b, dt, o, ds).expect("shape");
    let mut group = c.benchmark_group(format!("clp {m}x{o} dh{dh} ds{ds} f16"));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, top_k) in [
        ("similarity+topk64+combine", TopK::K(64)),
        ("dense", TopK::All),
    ] {
        let flops = clp_gpu::commands::bench::flops(
            &clp_gpu::commands::bench::BenchShape::custom(m, o, dh, ds),
            top_k,
        );
        group.throughput(Throughput::Elements(flops as u64));
        let w = Weighting::Clp { top_k };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    engine.clp(&hm, &ho, &eo, &w).expect("clp runs");
                }
                t.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
