//! `matmul`: C (m × n) = A · B or C += A · B, f32 accumulation in K blocks of
//! [`OVERLAP_BLOCK_ROWS`] (so C += A · B over K split at block multiples has the bits of one
//! product), [`MATMUL_TILE`]² output tiles with 4 × 4 register blocks; A is f32, B any of f32/f16/bf16 with an optional implicit ones column
//! (see `shaders/matmul.wgsl` for the layouts).

use super::pipeline::{Access, Pipeline, Recorder, Shader};
use crate::plan::OVERLAP_BLOCK_ROWS;

/// Output tile side of one workgroup; the shader's `TILE` override. The workgroup is
/// (TILE / 4) × (TILE / 4) invocations, each computing a 4 × 4 block.
pub const MATMUL_TILE: u32 = 64;
const _: () = assert!(MATMUL_TILE.is_multiple_of(4) && MATMUL_TILE > 0);

/// Values of the shader's `override` constants.
/// The `matmul` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "matmul",
    wgsl: include_str!("../../shaders/matmul.wgsl"),
    constants: &[
        ("TILE", MATMUL_TILE as f64),
        ("K_BLOCK", OVERLAP_BLOCK_ROWS as f64),
    ],
};
// The shader's K step is TILE / 4; its K blocks must be whole steps.
const _: () = assert!((OVERLAP_BLOCK_ROWS as u32).is_multiple_of(MATMUL_TILE / 4));

/// Mirrors `Params` in `shaders/matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    /// Rows of A and C.
    pub m: u32,
    /// Columns of B and C (b_cols + 1 with the ones column).
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// Row stride of A as stored.
    pub lda: u32,
    /// Row stride of B as stored.
    pub ldb: u32,
    /// Row stride of C.
    pub ldc: u32,
    /// 1: A is stored transposed (k × m).
    pub a_trans: u32,
    /// 1: B is stored transposed (n × k).
    pub b_trans: u32,
    /// [`crate::DType::shader_code`] of B.
    pub b_dtype: u32,
    /// Real columns of B.
    pub b_cols: u32,
    /// 1: logical column b_cols of B is all ones.
    pub ones_col: u32,
    /// 1: add to C instead of overwriting it.
    pub accumulate: u32,
}
const _: () = assert!(std::mem::size_of::<MatmulParams>() == 48);

/// The buffers one GEMM binds, in binding order.
pub struct MatmulBuffers<'a> {
    /// A (f32).
    pub a: &'a wgpu::Buffer,
    /// B (elements of `params.b_dtype`).
    pub b: &'a wgpu::Buffer,
    /// C (f32).
    pub c: &'a wgpu::Buffer,
}

/// The GEMM pipeline.
pub struct MatmulKernel(Pipeline);

impl MatmulKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        MatmulKernel(Pipeline::new::<MatmulParams>(
            device,
            &SHADER,
            &[Read, Read, ReadWrite],
        ))
    }

    /// Records C (+)= A · B.
    pub fn encode(&self, rec: &mut Recorder, params: MatmulParams, b: MatmulBuffers) {
        let groups = (
            params.n.div_ceil(MATMUL_TILE),
            params.m.div_ceil(MATMUL_TILE),
        );
        self.0.dispatch(rec, &params, &[b.a, b.b, b.c], groups);
    }
}
