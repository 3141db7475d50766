//! Shared test support: one GPU engine per test binary (fails loudly without an adapter),
//! seeded inputs, tolerant comparisons that report the worst element.
#![allow(dead_code)]

use clp_gpu::engine::{Engine, EngineOptions};
use clp_gpu::{DType, Gpu};
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
