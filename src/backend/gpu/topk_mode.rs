//! Top-k mode for one normalised missing tile: similarity + running top-k over overlap tiles
//! (at most one similarity tile exists on the device), the selection turned into weights (OMP
//! on the host), the weighted source sums over overlap tiles, then the division (or OMP's norm
//! bounds) and guards.

use super::engine::u32_of;
use super::tile_loop::{Host, Run};
use crate::backend::api::stage;
use crate::error::Result;
use crate::kernels::{
    CombineBuffers, CombineParams, FinishBuffers, FinishParams, MatmulBuffers, MatmulParams,
    TopKBuffers, TopKParams, WeightsBuffers, WeightsParams,
};
use crate::method::{Weighting, WEIGHT_SUM_TOLERANCE};
use crate::tensor::DType;
use std::time::Instant;

impl Run<'_> {
    /// Selects the k best overlap rows of missing rows `m0..m1` and writes their combination.
    pub(super) fn select_and_combine(&mut self, (m0, m1): (usize, usize), k: usize) -> Result<()> {
        let (mt, k32) = ((m1 - m0) as u32, k as u32);
        for i in 0..self.o_tiles.len() {
            self.similarity_tile(i, mt, k32)?;
            self.flow.submit_bounded()?;
        }
        if let Weighting::Omp { atoms } = *self.inputs.weighting {
            self.omp_weights((m0, m1), k, atoms)?;
        }
        self.encode_weights(mt, k32);
        for i in 0..self.o_tiles.len() {
            self.combine_tile(i, mt, k32)?;
            self.flow.submit_bounded()?;
        }
        self.encode_finish(mt);
        Ok(())
    }

    /// Uploads and normalises overlap tile `i`, scores it against the missing tile and merges
    /// the scores into the running top-k.
    fn similarity_tile(&mut self, i: usize, mt: u32, k: u32) -> Result<()> {
        let inputs = self.inputs;
        let (o0, o1) = self.o_tiles[i];
        let slot = i % 2;
        let dh = self.p.helper_dim as u32;
        let ot = (o1 - o0) as u32;
        self.flow
            .load(inputs.ho, (o0, o1), Host::Overlap, &self.b.ho_raw[slot])?;
        self.normalize_overlap(slot, ot)?;
        let (e, b) = (self.engine, &self.b);
        let similarity = MatmulParams {
            m: mt,
            n: ot,
            k: dh,
            lda: dh,
            ldb: dh,
            ldc: ot,
            b_trans: 1,
            b_dtype: DType::F32.shader_code(),
            b_cols: ot,
            ..Default::default()
        };
        let similarity_buffers = MatmulBuffers {
            a: &b.hm_hat,
            b: &b.ho_hat,
            c: &b.scores,
        };
        e.kernels
            .matmul
            .encode(&mut self.flow.rec(), similarity, similarity_buffers);
        let merge = TopKParams::new(mt, ot, u32_of(o0, "overlap index")?, k, i > 0);
        let merge_buffers = TopKBuffers {
            scores: &b.scores,
            best_score: &b.best_score,
            best_index: &b.best_index,
        };
        e.kernels
            .topk
            .encode(&mut self.flow.rec(), merge, merge_buffers);
        self.flow.stage_end(stage::SIMILARITY)
    }

    /// OMP runs on the host from the selected candidates; its weights go back up.
    fn omp_weights(&mut self, (m0, m1): (usize, usize), k: usize, atoms: usize) -> Result<()> {
        let (gpu, b, inputs) = (&self.engine.gpu, &self.b, self.inputs);
        let bytes = ((m1 - m0) * k * 4) as u64;
        self.flow
            .encoder()
            .copy_buffer_to_buffer(&b.best_index, 0, b.readback.buffer(), 0, bytes);
        self.flow.submit_and_drain()?;
        let indices = b
            .readback
            .read(gpu, bytes, bytemuck::pod_collect_to_vec::<u8, u32>)?;
        let t = Instant::now();
        let w = crate::method::omp_tile_weights(inputs.hm, inputs.ho, m0, m1, &indices, k, atoms)?;
        self.flow.stats.add(stage::COMBINE, t.elapsed());
        gpu.upload(&b.weight, bytemuck::cast_slice(&w));
        Ok(())
    }

    /// Selection → weights and guard scales.
    fn encode_weights(&mut self, mt: u32, k: u32) {
        let (e, b, weighting) = (self.engine, &self.b, self.inputs.weighting);
        let temperature = match *weighting {
            Weighting::Softmax { temperature, .. } => temperature,
            _ => 1.0,
        };
        let params = WeightsParams {
            rows: mt,
            k,
            mode: weighting.shader_mode(),
            temperature,
        };
        let buffers = WeightsBuffers {
            best_score: &b.best_score,
            weight: &b.weight,
            guard_scale: &b.guard,
        };
        e.kernels
            .weights
            .encode(&mut self.flow.rec(), params, buffers);
    }

    /// Uploads the source rows of overlap tile `i` and adds their weighted share to the sums.
    fn combine_tile(&mut self, i: usize, mt: u32, k: u32) -> Result<()> {
        let (e, b, inputs) = (self.engine, &self.b, self.inputs);
        let (o0, o1) = self.o_tiles[i];
        let slot = i % 2;
        self.flow
            .load(inputs.eo, (o0, o1), Host::Source, &b.eo_raw[slot])?;
        let params = CombineParams {
            rows: mt,
            k,
            dim: self.p.source_dim as u32,
            dtype: inputs.eo.dtype().shader_code(),
            row_offset: o0 as u32,
            tile_rows: (o1 - o0) as u32,
            accumulate: (i > 0) as u32,
            _pad: 0,
        };
        let buffers = CombineBuffers {
            best_index: &b.best_index,
            weight: &b.weight,
            source: &b.eo_raw[slot],
            numer: &b.numer,
        };
        e.kernels
            .combine
            .encode(&mut self.flow.rec(), params, buffers);
        self.flow.stage_end(stage::COMBINE)
    }

    /// The run's [`crate::method::FinishRule`]: division by the weight sum guarded by Σ|w| per
    /// row, or (OMP) the sums as solved, bounded in norm.
    fn encode_finish(&mut self, mt: u32) {
        let (e, b) = (self.engine, &self.b);
        let params = FinishParams {
            rows: mt,
            dim: self.p.source_dim as u32,
            scale_mode: 0,
            tolerance: WEIGHT_SUM_TOLERANCE,
            ..Default::default()
        }
        .with_rule(self.rule);
        let buffers = FinishBuffers {
            numer: &b.numer,
            h_status: &b.hm_status,
            guard: &b.guard,
            out: &b.out,
            status: &b.status,
        };
        e.kernels
            .finish
            .encode(&mut self.flow.rec(), params, buffers);
    }
}
