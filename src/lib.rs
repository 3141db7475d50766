//! clp-gpu: CLP-Transfer (Ostendorff & Rehm, 2023) on any GPU.
//!
//! A target-language model is built from a large *source* model and a small *helper* model that
//! already speaks the target tokenizer: rows of tokens both vocabularies share are copied from the
//! source; each missing token becomes a similarity-weighted combination of source rows, the
//! similarities measured in the helper's embedding space.
//!
//! Data flows one way: read ([`model`]) → match ([`vocab`]) → plan ([`plan`]) → kernels
//! ([`kernels`], WGSL in `shaders/`) → combine ([`engine`]) → write ([`model`]).
//! [`reference`] is the plain-Rust f64 oracle of every kernel.

pub mod apply;
pub mod bench;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod gpu;
pub mod inspect;
pub mod kernels;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod rows;
pub mod shrink;
pub mod synthetic;
pub mod tensor;
pub mod trim;
pub mod vocab;
pub mod weights;

pub use engine::Engine;
pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{DType, MatrixRef};
pub use weights::{ClpOutput, RejectReason, RejectedRow, Selection, TopK, Weighting};
