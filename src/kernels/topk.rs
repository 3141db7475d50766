//! `topk`: merges a tile of similarity scores into each row's running best-k list (exact radix
//! select plus bitonic sort; order: score descending, index ascending).

use super::dispatch::grid_2d;
use super::pipeline::{Access, Pipeline, Recorder, Shader};
use crate::method::{selectable, MAX_SELECTED};

/// Invocations per workgroup, one per list entry: the largest k a selection holds
/// ([`MAX_SELECTED`]), and the shader's `WG` override. A power of two (the bitonic sort).
pub const TOPK_WORKGROUP: u32 = MAX_SELECTED as u32;
const _: () = assert!(TOPK_WORKGROUP.is_power_of_two());

/// The `topk` shader and the values of its `override` constants.
pub(super) const SHADER: Shader = Shader {
    name: "topk",
    wgsl: include_str!("../../shaders/topk.wgsl"),
    constants: &[("WG", TOPK_WORKGROUP as f64)],
};

/// Mirrors `Params` in `shaders/topk.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TopKParams {
    /// Rows in the tile.
    pub rows: u32,
    /// Scores per row in this tile.
    pub cols: u32,
    /// Row stride of the score buffer.
    pub score_stride: u32,
    /// Global index of the tile's first column.
    pub col_offset: u32,
    /// Entries kept per row (1..=[`MAX_SELECTED`]).
    pub k: u32,
    /// 1: merge with the current list; 0: start a new one.
    pub has_prev: u32,
    /// Smallest power of two ≥ k.
    pub sort_size: u32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(std::mem::size_of::<TopKParams>() == 32);

impl TopKParams {
    /// Params for a tile; `sort_size` is derived from `k`.
    pub fn new(rows: u32, cols: u32, col_offset: u32, k: u32, has_prev: bool) -> Self {
        TopKParams {
            rows,
            cols,
            score_stride: cols,
            col_offset,
            k,
            has_prev: has_prev as u32,
            sort_size: k.next_power_of_two(),
            _pad: 0,
        }
    }
}

/// The buffers one top-k merge binds, in binding order.
pub struct TopKBuffers<'a> {
    /// The similarity tile.
    pub scores: &'a wgpu::Buffer,
    /// Running best scores (rows × k).
    pub best_score: &'a wgpu::Buffer,
    /// Running best indices (rows × k).
    pub best_index: &'a wgpu::Buffer,
}

/// The top-k pipeline.
pub struct TopKKernel(Pipeline);

impl TopKKernel {
    /// Builds the pipeline.
    pub fn new(device: &wgpu::Device) -> Self {
        use Access::*;
        TopKKernel(Pipeline::new::<TopKParams>(
            device,
            &SHADER,
            &[Read, ReadWrite, ReadWrite],
        ))
    }

    /// Records the merge of `scores` into `best_score` / `best_index`.
    ///
    /// Preconditions (checked): k [`selectable`] and k ≤ cols + (has_prev ? k : 0).
    pub fn encode(&self, rec: &mut Recorder, params: TopKParams, b: TopKBuffers) {
        assert!(
            selectable(params.k as usize),
            "top-k {} out of range",
            params.k
        );
        assert!(
            params.k <= params.cols + params.has_prev * params.k,
            "top-k {} over {} candidates",
            params.k,
            params.cols
        );
        let groups = grid_2d(params.rows);
        self.0.dispatch(
            rec,
            &params,
            &[b.scores, b.best_score, b.best_index],
            groups,
        );
    }
}
