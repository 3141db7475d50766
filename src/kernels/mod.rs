//! The compute kernels, one file each beside one WGSL file in `shaders/` (file name = kernel =
//! entry point). Each kernel has a `#[repr(C)]` Pod params struct mirroring the shader's
//! uniform block (sizes asserted at compile time), an explicit bind-group layout in the shader's
//! binding order (the params uniform first, sized from the params struct), a table of the
//! shader's `override` constants, and `encode`, which records one dispatch.
//!
//! Workgroup and tile sizes live in Rust only: every shader declares them as `override`
//! constants without a default, [`SHADERS`] lists the value of each (from the kernel's Rust
//! constant, the same one its dispatch count uses), and pipeline creation applies them. The naga
//! test applies the same table, so a missing or invalid value fails without a GPU.
//!
//! [`Kernels`] builds every pipeline once at start-up.

mod combine;
mod finish;
mod matmul;
mod normalize;
mod topk;
mod weights;

pub use combine::{CombineBuffers, CombineKernel, CombineParams, COMBINE_WORKGROUP};
pub use finish::{FinishBuffers, FinishKernel, FinishParams, FINISH_WORKGROUP};
pub use matmul::{MatmulBuffers, MatmulKernel, MatmulParams, MATMUL_TILE};
pub use normalize::{NormalizeBuffers, NormalizeKernel, NormalizeParams, NORMALIZE_WORKGROUP};
pub use topk::{TopKBuffers, TopKKernel, TopKParams, TOPK_WORKGROUP};
pub use weights::{WeightsBuffers, WeightsKernel, WeightsParams, WEIGHTS_WORKGROUP};

mod dispatch;
mod pipeline;

pub use dispatch::{grid_2d, ParamArena};
pub use pipeline::{Recorder, Shader, COMMON_WGSL};

/// Every kernel's shader (also walked by the naga validation test).
pub const SHADERS: &[Shader] = &[
    normalize::SHADER,
    matmul::SHADER,
    topk::SHADER,
    weights::SHADER,
    combine::SHADER,
    finish::SHADER,
];

/// Every kernel, built once.
pub struct Kernels {
    /// Row L2 normalisation.
    pub normalize: NormalizeKernel,
    /// Tiled f32 GEMM (similarity, Gram, dense numerator).
    pub matmul: MatmulKernel,
    /// Running top-k merge.
    pub topk: TopKKernel,
    /// Selection → weights.
    pub weights: WeightsKernel,
    /// Weighted sum of source rows.
    pub combine: CombineKernel,
    /// Division by the weight sum (OMP: norm bounds), guards.
    pub finish: FinishKernel,
}

impl Kernels {
    /// Builds every pipeline.
    pub fn new(device: &wgpu::Device) -> Kernels {
        Kernels {
            normalize: NormalizeKernel::new(device),
            matmul: MatmulKernel::new(device),
            topk: TopKKernel::new(device),
            weights: WeightsKernel::new(device),
            combine: CombineKernel::new(device),
            finish: FinishKernel::new(device),
        }
    }
}
