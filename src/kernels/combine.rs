//! `combine`: accumulates Σ w · E_O[index] (and Σ w in the extra last column) over the selected
//! rows that fall in one overlap tile.

use super::pipeline::{Access, Pipeline, Recorder, Shader};
use crate::plan::MAX_WORKGROUPS_PER_DIMENSION;

/// Invocations per workgroup (one per output column); the shader's `WG` override. Also the
/// most selections per row a workgroup can stage, so it must be at least
/// [`crate::method::MAX_SELECTED`].
pub const COMBINE_WORKGROUP: u32 = 256;
const _: () = assert!(COMBINE_WORKGROUP as usize >= crate::method::MAX_SELECTED);

/// The `combine` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "combine",
    wgsl: include_str!("../../shaders/combine.wgsl"),
    constants: &[("WG", COMBINE_WORKGROUP as f64)],
};

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

/// The buffers one combine step binds, in binding order.
pub struct CombineBuffers<'a> {
    /// Selected overlap indices (rows × k).
    pub best_index: &'a wgpu::Buffer,
    /// Their weights (rows × k).
    pub weight: &'a wgpu::Buffer,
    /// The overlap tile's source rows.
    pub source: &'a wgpu::Buffer,
    /// Weighted sums (rows × (dim + 1)).
    pub numer: &'a wgpu::Buffer,
}

/// The combine pipeline.
pub struct CombineKernel(Pipeline);

impl CombineKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        CombineKernel(Pipeline::new::<CombineParams>(
            device,
            &SHADER,
            &[Read, Read, Read, ReadWrite],
        ))
    }

    /// Records one tile's accumulation (rows must be ≤ 65,535: one workgroup row each).
    pub fn encode(&self, rec: &mut Recorder, params: CombineParams, b: CombineBuffers) {
        assert!(
            params.rows <= MAX_WORKGROUPS_PER_DIMENSION,
            "combine tile of {} rows",
            params.rows
        );
        let groups = ((params.dim + 1).div_ceil(COMBINE_WORKGROUP), params.rows);
        self.0.dispatch(
            rec,
            &params,
            &[b.best_index, b.weight, b.source, b.numer],
            groups,
        );
    }
}
