//! clp-gpu: CLP-Transfer (Ostendorff & Rehm, 2023) on any GPU.
//!
//! A target-language model is built from a large *source* model and a small *helper* model that
//! already speaks the target tokenizer: rows of tokens both vocabularies share are copied from the
//! source; each missing token becomes a similarity-weighted combination of source rows, the
//! similarities measured in the helper's embedding space.
//!
//! Data flows one way: read ([`model`]) → match ([`vocab`]) → plan ([`plan`]) → compute
//! ([`backend`]: the GPU engine with its [`kernels`] and WGSL in `shaders/`, the CPU path, the
//! f64 reference) → write ([`model::writer`]). [`commands`] strings these stages together per
//! subcommand; [`cli`] is the command line over them. [`cancel`] (the stop flag) and [`progress`]
//! (where progress shows) are what front ends, the CLI and the Python package, hand the engine.
//! `ARCHITECTURE.md` walks the whole tree.

pub mod backend;
pub mod cancel;
pub mod cli;
pub mod commands;
pub mod defaults;
pub mod error;
pub mod json;
pub mod kernels;
pub mod method;
pub mod model;
pub mod plan;
pub mod progress;
pub mod rows;
pub mod synthetic;
pub mod tensor;
pub mod tokenizer;
pub mod vocab;

pub use backend::gpu::{Engine, Gpu};
pub use error::{Error, Result};
pub use method::{ClpOutput, RejectReason, RejectedRow, Selection, TopK, Weighting};
pub use tensor::{DType, MatrixRef};
