//! `finish`: out = numer / Σw per row, or a zeroed row with a reject status (see
//! [`crate::weights::RejectReason::from_code`]).

use super::{Access, Pipeline};
use crate::backend::gpu::{grid_2d, Gpu, ParamArena};

/// Mirrors `Params` in `shaders/finish.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FinishParams {
    /// Rows.
    pub rows: u32,
    /// Output dimension (numer has dim + 1 columns).
    pub dim: u32,
    /// 0: guard scale per row from `guard`; 1: norm of a column of `guard`.
    pub scale_mode: u32,
    /// Mode 1: rows of that column.
    pub scale_count: u32,
    /// Mode 1: row stride.
    pub scale_stride: u32,
    /// Mode 1: the column.
    pub scale_col: u32,
    /// Reject when |Σw| ≤ tolerance × scale.
    pub tolerance: f32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<FinishParams>() == 32);

/// The finish pipeline.
pub struct FinishKernel(Pipeline);

impl FinishKernel {
    /// Builds the pipeline.
    pub fn new(gpu: &Gpu) -> Self {
        use Access::*;
        FinishKernel(Pipeline::new(
            gpu,
            "finish",
            &[Uniform, Read, Read, Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records the final division and guards.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: FinishParams,
        numer: &wgpu::Buffer,
        h_status: &wgpu::Buffer,
        guard: &wgpu::Buffer,
        out: &wgpu::Buffer,
        status: &wgpu::Buffer,
    ) {
        let groups = grid_2d(params.rows);
        self.0.dispatch(
            gpu,
            encoder,
            arena,
            &params,
            &[numer, h_status, guard, out, status],
            groups,
        );
    }
}
