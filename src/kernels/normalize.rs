//! `normalize`: L2-normalises rows (f32/f16/bf16 in, f32 out) and records each row's status
//! (0 ok, 1 zero, 2 non-finite; see [`crate::weights::RowStatus`]).

use super::{Access, Pipeline};
use crate::backend::gpu::{grid_2d, Gpu, ParamArena};

/// Mirrors `Params` in `shaders/normalize.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NormalizeParams {
    /// Rows to normalise.
    pub rows: u32,
    /// Elements per row.
    pub cols: u32,
    /// [`crate::DType::shader_code`] of the input.
    pub dtype: u32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<NormalizeParams>() == 16);

/// The normalisation pipeline.
pub struct NormalizeKernel(Pipeline);

impl NormalizeKernel {
    /// Builds the pipeline.
    pub fn new(gpu: &Gpu) -> Self {
        use Access::*;
        NormalizeKernel(Pipeline::new(
            gpu,
            "normalize",
            &[Uniform, Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records the normalisation of `params.rows` rows of `src` into `dst` and `status`.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: NormalizeParams,
        src: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        status: &wgpu::Buffer,
    ) {
        let groups = grid_2d(params.rows);
        self.0
            .dispatch(gpu, encoder, arena, &params, &[src, dst, status], groups);
    }
}
