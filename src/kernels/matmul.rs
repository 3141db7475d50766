//! `matmul`: C (m × n) = A · B or C += A · B, f32 accumulation, 64 × 64 tiles with 4 × 4
//! register blocks; A is f32, B any of f32/f16/bf16 with an optional implicit ones column
//! (see `shaders/matmul.wgsl` for the layouts).

use super::{Access, Pipeline};
use crate::backend::gpu::{Gpu, ParamArena};

/// Output tile side of one workgroup (matches `TILE` in the shader).
pub const MATMUL_TILE: u32 = 64;

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

/// The GEMM pipeline.
pub struct MatmulKernel(Pipeline);

impl MatmulKernel {
    /// Builds the pipeline.
    pub fn new(gpu: &Gpu) -> Self {
        use Access::*;
        MatmulKernel(Pipeline::new(
            gpu,
            "matmul",
            &[Uniform, Read, Read, ReadWrite],
        ))
    }

    /// Records C (+)= A · B.
    pub fn encode(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: MatmulParams,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
    ) {
        let groups = (
            params.n.div_ceil(MATMUL_TILE),
            params.m.div_ceil(MATMUL_TILE),
        );
        self.0
            .dispatch(gpu, encoder, arena, &params, &[a, b, c], groups);
    }
}
