//! Dense mode (k = all): G = Ĥ_Oᵀ [E_O | 1] is accumulated over overlap tiles once, then each
//! missing tile is Ĥ_M G divided by its last column.

use super::tile_loop::{Host, Run};
use crate::backend::api::stage;
use crate::error::Result;
use crate::kernels::{FinishBuffers, FinishParams, MatmulBuffers, MatmulParams};
use crate::method::{FinishRule, WEIGHT_SUM_TOLERANCE};
use crate::tensor::DType;

impl Run<'_> {
    /// G = Ĥ_Oᵀ [E_O | 1], accumulated over overlap tiles.
    pub(super) fn accumulate_gram(&mut self) -> Result<()> {
        self.engine.poison(&[&self.b.gram]);
        for i in 0..self.o_tiles.len() {
            self.gram_tile(i)?;
            self.flow.submit_bounded()?;
        }
        Ok(())
    }

    /// Uploads overlap tile `i` (helper and source rows), normalises it and adds its share of G.
    fn gram_tile(&mut self, i: usize) -> Result<()> {
        let inputs = self.inputs;
        let (o0, o1) = self.o_tiles[i];
        let slot = i % 2;
        let (dh, ds) = (self.p.helper_dim as u32, self.p.source_dim as u32);
        let ot = (o1 - o0) as u32;
        self.flow
            .load(inputs.ho, (o0, o1), Host::Overlap, &self.b.ho_raw[slot])?;
        self.flow
            .load(inputs.eo, (o0, o1), Host::Source, &self.b.eo_raw[slot])?;
        self.normalize_overlap(slot, ot)?;
        let (e, b) = (self.engine, &self.b);
        let gram = MatmulParams {
            m: dh,
            n: ds + 1,
            k: ot,
            lda: dh,
            ldb: ds,
            ldc: ds + 1,
            a_trans: 1,
            b_trans: 0,
            b_dtype: inputs.eo.dtype().shader_code(),
            b_cols: ds,
            ones_col: 1,
            accumulate: (i > 0) as u32,
        };
        let gram_buffers = MatmulBuffers {
            a: &b.ho_hat,
            b: &b.eo_raw[slot],
            c: &b.gram,
        };
        e.kernels
            .matmul
            .encode(&mut self.flow.rec(), gram, gram_buffers);
        self.flow.stage_end(stage::GRAM)
    }

    /// Output rows of a normalised missing tile of `mt` rows: Ĥ_M G, divided by its last column
    /// (guarded by ‖Σ_j ĥ_j‖, the norm of G's last column).
    pub(super) fn dense_rows(&mut self, mt: usize) {
        let (e, b) = (self.engine, &self.b);
        let (dh, ds, mt) = (
            self.p.helper_dim as u32,
            self.p.source_dim as u32,
            mt as u32,
        );
        let numer = MatmulParams {
            m: mt,
            n: ds + 1,
            k: dh,
            lda: dh,
            ldb: ds + 1,
            ldc: ds + 1,
            b_dtype: DType::F32.shader_code(),
            b_cols: ds + 1,
            ..Default::default()
        };
        let numer_buffers = MatmulBuffers {
            a: &b.hm_hat,
            b: &b.gram,
            c: &b.numer,
        };
        e.kernels
            .matmul
            .encode(&mut self.flow.rec(), numer, numer_buffers);
        let finish = FinishParams {
            rows: mt,
            dim: ds,
            scale_mode: 1,
            scale_count: dh,
            scale_stride: ds + 1,
            scale_col: ds,
            tolerance: WEIGHT_SUM_TOLERANCE,
            ..Default::default()
        }
        .with_rule(FinishRule::DivideBySum); // dense mode exists for clp only
        let finish_buffers = FinishBuffers {
            numer: &b.numer,
            h_status: &b.hm_status,
            guard: &b.gram,
            out: &b.out,
            status: &b.status,
        };
        e.kernels
            .finish
            .encode(&mut self.flow.rec(), finish, finish_buffers);
    }
}
