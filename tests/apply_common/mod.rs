//! Transitional shim for `benches/pipeline.rs`, which still includes this file by path and calls
//! the old positional `build_model`. Everything lives in `tests/fixtures`; delete this file when
//! the bench uses `fixtures::build_model(&dir, &ModelSpec { .. })`.

#![allow(dead_code)]

#[path = "../fixtures/mod.rs"]
mod fixtures;

pub use fixtures::{Arch, Lang, Model};
use fixtures::{ModelSpec, Vocab};
use std::path::Path;

/// The old positional form of [`fixtures::build_model`] (arguments as the bench passes them).
#[allow(clippy::too_many_arguments)] // transitional: goes with this file
pub fn build_model(
    dir: &Path,
    arch: Arch,
    lang: Lang,
    vocab: usize,
    pad_rows: usize,
    dim: usize,
    dtype: clp_gpu::tensor::DType,
    shards: usize,
    seed: u64,
) -> Model {
    fixtures::build_model(
        dir,
        &ModelSpec {
            arch,
            vocab: Vocab::Trained {
                lang,
                size: vocab,
                pad_rows,
            },
            dim,
            dtype,
            shards,
            seed,
            ..Default::default()
        },
    )
}
