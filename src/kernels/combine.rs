//! `combine`: accumulates Σ w · E_O[index] (and Σ w in the extra last column) over the selected
//! rows that fall in one overlap tile.

use super::{Access, Pipeline};
use crate::backend::gpu::{Gpu, ParamArena};

/// Mirrors `Params` in `shaders/combine.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CombineParams {
    /// Missing rows in the tile.
    pub rows: u32,
    /// Selected entries per row.
    pub k: u32,
    /// Source dimension (numer has dim + 1 columns).
    pub dim: u32,
    /// [`crate::DType::shader_code`] of the source tile.
    pub dtype: u32,
    /// Global overlap index of the tile's first row.
    pub row_offset: u32,
    /// Rows in the source tile.
    pub tile_rows: u32,
    /// 1: add to numer; 0: overwrite.
    pub accumulate: u32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<CombineParams>() == 32);

/// The combine pipeline.
pub struct CombineKernel(Pipeline);

impl CombineKernel {
    /// Builds the pipeline.
    pub fn new(gpu: &Gpu) -> Self {
        use Access::*;
        CombineKernel(Pipeline::new(
            gpu,
            "combine",
            &[Uniform, Read, Read, Read, ReadWrite],
        ))
    }

    /// Records one tile's accumulation (rows must be ≤ 65,535: one workgroup row each).
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: CombineParams,
        best_index: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        source: &wgpu::Buffer,
        numer: &wgpu::Buffer,
    ) {
        assert!(
            params.rows <= 65_535,
            "combine tile of {} rows",
            params.rows
        );
        let groups = ((params.dim + 1).div_ceil(256), params.rows);
        self.0.dispatch(
            gpu,
            encoder,
            arena,
            &params,
            &[best_index, weight, source, numer],
            groups,
        );
    }
}
