//! `normalize`: L2-normalises rows (f32/f16/bf16 in, f32 out) and records each row's status
//! (0 ok, 1 zero, 2 non-finite; see [`crate::method::RowStatus`]).

use super::dispatch::grid_2d;
use super::pipeline::{Access, Pipeline, Recorder, Shader};

/// Invocations per workgroup (one workgroup per row); the shader's `WG` override.
pub const NORMALIZE_WORKGROUP: u32 = 256;

/// Values of the shader's `override` constants.
/// The `normalize` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "normalize",
    wgsl: include_str!("../../shaders/normalize.wgsl"),
    constants: &[("WG", NORMALIZE_WORKGROUP as f64)],
};

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

/// The buffers one normalisation binds, in binding order.
pub struct NormalizeBuffers<'a> {
    /// Input rows (elements of `params.dtype`).
    pub src: &'a wgpu::Buffer,
    /// Normalised f32 rows.
    pub dst: &'a wgpu::Buffer,
    /// Row statuses.
    pub status: &'a wgpu::Buffer,
}

/// The normalisation pipeline.
pub struct NormalizeKernel(Pipeline);

impl NormalizeKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        NormalizeKernel(Pipeline::new::<NormalizeParams>(
            device,
            &SHADER,
            &[Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records the normalisation of `params.rows` rows of `src` into `dst` and `status`.
    pub fn encode(&self, rec: &mut Recorder, params: NormalizeParams, b: NormalizeBuffers) {
        let groups = grid_2d(params.rows);
        self.0
            .dispatch(rec, &params, &[b.src, b.dst, b.status], groups);
    }
}
