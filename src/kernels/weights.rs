//! `weights`: selected similarities → combination weights (CLP, softmax, sparsemax; OMP weights
//! come from the host) and the per-row guard scale Σ|w|.

use super::{Access, Pipeline};
use crate::backend::gpu::{Gpu, ParamArena};

/// Mirrors `Params` in `shaders/weights.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WeightsParams {
    /// Rows.
    pub rows: u32,
    /// Entries per row.
    pub k: u32,
    /// [`crate::weights::Weighting::shader_mode`].
    pub mode: u32,
    /// Softmax temperature (ignored by the other modes).
    pub temperature: f32,
}
const _: () = assert!(std::mem::size_of::<WeightsParams>() == 16);

/// The weights pipeline.
pub struct WeightsKernel(Pipeline);

impl WeightsKernel {
    /// Builds the pipeline.
    pub fn new(gpu: &Gpu) -> Self {
        use Access::*;
        WeightsKernel(Pipeline::new(
            gpu,
            "weights",
            &[Uniform, Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records weights and guard scales for `params.rows` rows.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: WeightsParams,
        best_score: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        guard_scale: &wgpu::Buffer,
    ) {
        let groups = (params.rows.div_ceil(64), 1);
        self.0.dispatch(
            gpu,
            encoder,
            arena,
            &params,
            &[best_score, weight, guard_scale],
            groups,
        );
    }
}
