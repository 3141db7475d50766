//! `finish`: out = numer / Σw per row (or numer as it is, for OMP, within norm bounds), or a
//! zeroed row with a reject status (see [`crate::method::RejectReason::from_code`]).

use super::dispatch::grid_2d;
use super::pipeline::{Access, Pipeline, Recorder, Shader};
use crate::method::FinishRule;

/// Invocations per workgroup (one workgroup per row); the shader's `WG` override.
pub const FINISH_WORKGROUP: u32 = 256;

/// The `finish` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "finish",
    wgsl: include_str!("../../shaders/finish.wgsl"),
    constants: &[("WG", FINISH_WORKGROUP as f64)],
};

/// Mirrors `Params` in `shaders/finish.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
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
    /// Reject when |Σw| ≤ tolerance × scale (divide = 1).
    pub tolerance: f32,
    /// 1: out = numer / Σw (clp, softmax, sparsemax); 0: out = numer as solved (OMP), rejected
    /// when the scale is 0 (every weight zero).
    pub divide: u32,
    /// 1: reject a row whose L2 norm lies outside [norm_lo, norm_hi].
    pub bound_norm: u32,
    /// Smallest accepted row norm (bound_norm = 1).
    pub norm_lo: f32,
    /// Largest accepted row norm (bound_norm = 1).
    pub norm_hi: f32,
    /// Padding to a multiple of 16 bytes.
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<FinishParams>() == 48);
const _: () = assert!(std::mem::size_of::<FinishParams>().is_multiple_of(16));

impl FinishParams {
    /// `divide`, `bound_norm` and the bounds of a run's [`FinishRule`].
    pub fn with_rule(mut self, rule: FinishRule) -> FinishParams {
        match rule {
            FinishRule::DivideBySum => {
                self.divide = 1;
                self.bound_norm = 0;
                (self.norm_lo, self.norm_hi) = (0.0, 0.0);
            }
            FinishRule::AsSolved(range) => {
                self.divide = 0;
                self.bound_norm = 1;
                (self.norm_lo, self.norm_hi) = (range.lo, range.hi);
            }
        }
        self
    }
}

/// The buffers the finish stage binds, in binding order.
pub struct FinishBuffers<'a> {
    /// Weighted sums (rows × (dim + 1)).
    pub numer: &'a wgpu::Buffer,
    /// Statuses of the helper rows.
    pub h_status: &'a wgpu::Buffer,
    /// Guard scales (mode 0) or the matrix holding the guard column (mode 1).
    pub guard: &'a wgpu::Buffer,
    /// Output rows.
    pub out: &'a wgpu::Buffer,
    /// Output statuses.
    pub status: &'a wgpu::Buffer,
}

/// The finish pipeline.
pub struct FinishKernel(Pipeline);

impl FinishKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        FinishKernel(Pipeline::new::<FinishParams>(
            device,
            &SHADER,
            &[Read, Read, Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records the final division (or the norm bounds) and guards.
    pub fn encode(&self, rec: &mut Recorder, params: FinishParams, b: FinishBuffers) {
        let groups = grid_2d(params.rows);
        self.0.dispatch(
            rec,
            &params,
            &[b.numer, b.h_status, b.guard, b.out, b.status],
            groups,
        );
    }
}
