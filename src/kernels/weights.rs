//! `weights`: selected similarities → combination weights (CLP, softmax, sparsemax; OMP weights
//! come from the host) and the per-row guard scale Σ|w|.

use super::pipeline::{Access, Pipeline, Recorder, Shader};

/// Invocations per workgroup (one invocation per row); the shader's `WG` override.
pub const WEIGHTS_WORKGROUP: u32 = 64;

/// Values of the shader's `override` constants.
/// The `weights` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "weights",
    wgsl: include_str!("../../shaders/weights.wgsl"),
    constants: &[("WG", WEIGHTS_WORKGROUP as f64)],
};

/// Mirrors `Params` in `shaders/weights.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WeightsParams {
    /// Rows.
    pub rows: u32,
    /// Entries per row.
    pub k: u32,
    /// [`crate::method::Weighting::shader_mode`].
    pub mode: u32,
    /// Softmax temperature (ignored by the other modes).
    pub temperature: f32,
}
const _: () = assert!(std::mem::size_of::<WeightsParams>() == 16);

/// The buffers the weights stage binds, in binding order.
pub struct WeightsBuffers<'a> {
    /// Selected similarities (rows × k).
    pub best_score: &'a wgpu::Buffer,
    /// Weights (rows × k; read in mode 3).
    pub weight: &'a wgpu::Buffer,
    /// Per-row guard scale Σ|w|.
    pub guard_scale: &'a wgpu::Buffer,
}

/// The weights pipeline.
pub struct WeightsKernel(Pipeline);

impl WeightsKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        WeightsKernel(Pipeline::new::<WeightsParams>(
            device,
            &SHADER,
            &[Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records weights and guard scales for `params.rows` rows.
    pub fn encode(&self, rec: &mut Recorder, params: WeightsParams, b: WeightsBuffers) {
        let groups = (params.rows.div_ceil(WEIGHTS_WORKGROUP), 1);
        self.0.dispatch(
            rec,
            &params,
            &[b.best_score, b.weight, b.guard_scale],
            groups,
        );
    }
}
