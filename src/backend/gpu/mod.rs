//! Orchestration of the kernels for one CLP problem: plan tiles from the GPU-memory budget,
//! allocate every buffer once, gather each input tile from its [`RowSet`] (memory or file) into a
//! reused host staging buffer, upload it, and hand each finished missing tile to a sink.
//!
//! Top-k mode, per missing tile: normalise it; for each overlap tile, normalise it, compute the
//! similarity tile and merge it into the running top-k; turn the selection into weights; for each
//! overlap tile, accumulate its share of the weighted source sum; divide and guard; read back
//! rows, statuses and the selection. At most one similarity tile exists on the device.
//!
//! Dense mode (k = all): G = Ĥ_Oᵀ [E_O | 1] is accumulated over overlap tiles once (its last
//! column is s = Σ_j ĥ_j); each missing tile is then Ĥ_M G divided by its last column
//! (Ĥ_M s = Σ_j c_mj), which is the original CLP formula without the M × O matrix.
//!
//! Every overlap tile is submitted on its own and the host waits for the submission before it,
//! so at most two tiles of uploads are queued (host memory stays bounded) while the host gathers
//! tile n+1 as the GPU works on tile n; uploads alternate between two device slots.
//! `EngineOptions::time_stages` serialises the stages instead, to time each one.

use crate::error::{Error, Result};
pub mod context;

use crate::backend::{self, stage, ClpBackend, Stats, TileOut};
use crate::kernels::*;
use crate::plan::{plan, PlanLimits, Problem, TilePlan};
use crate::rows::RowSet;
use crate::tensor::{DType, MatrixRef};
use crate::weights::{ClpOutput, RowStatus, Selection, Weighting, WEIGHT_SUM_TOLERANCE};
pub use context::{grid_2d, ParamArena, Readback};
pub use context::{list_adapters, AdapterSummary, Gpu};
use std::time::Instant;

/// Tunables of the engine.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// GPU memory all buffers of one run may take, in bytes.
    pub gpu_memory_bytes: u64,
    /// Cap on missing rows per tile (to force tiling in tests).
    pub max_m_rows: usize,
    /// Cap on overlap rows per tile (to force tiling in tests).
    pub max_o_rows: usize,
    /// Fill every output buffer with NaN before each tile, so that any element a kernel fails
    /// to write shows up (tests).
    pub poison: bool,
    /// Submit and wait after every stage so that [`Stats`] has a time per kernel stage
    /// (serialises host and GPU work: slower, for profiling).
    pub time_stages: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            gpu_memory_bytes: 1 << 30,
            max_m_rows: usize::MAX,
            max_o_rows: usize::MAX,
            poison: false,
            time_stages: false,
        }
    }
}

/// The bit pattern written by poisoning: a quiet NaN that no kernel produces.
const POISON: u32 = 0x7fc0_dead;

/// The GPU context plus every compiled kernel.
pub struct Engine {
    gpu: Gpu,
    kernels: Kernels,
    options: EngineOptions,
}

/// Host staging buffers of one run, reused for every tile.
#[derive(Default)]
struct Staging {
    hm: Vec<u8>,
    ho: Vec<u8>,
    eo: Vec<u8>,
}

/// Encoding state of one run: the open encoder, the uniform arena, the last submission and the
/// stage timings.
struct Flow<'e> {
    engine: &'e Engine,
    enc: wgpu::CommandEncoder,
    arena: ParamArena,
    in_flight: Option<wgpu::SubmissionIndex>,
    stats: Stats,
}

impl<'e> Flow<'e> {
    fn new(engine: &'e Engine) -> Flow<'e> {
        Flow {
            engine,
            enc: engine.encoder("clp"),
            arena: ParamArena::new(&engine.gpu, 8),
            in_flight: None,
            stats: Stats::default(),
        }
    }

    /// Gathers rows `start..end` of `set` into `staging` and queues them into `buffer`.
    fn load(
        &mut self,
        set: &RowSet,
        start: usize,
        end: usize,
        staging: &mut Vec<u8>,
        buffer: &wgpu::Buffer,
    ) -> Result<()> {
        self.stats
            .time(stage::GATHER, || set.gather(start, end, staging))?;
        self.stats.gathered_bytes += staging.len() as u64;
        self.stats
            .time(stage::UPLOAD, || self.engine.gpu.upload(buffer, staging));
        self.stats.uploaded_bytes += staging.len() as u64;
        Ok(())
    }

    /// Submits the open encoder. The call is timed as GPU time: some drivers (lavapipe) run
    /// the work inside the submit call itself.
    fn submit(&mut self) -> wgpu::SubmissionIndex {
        let t = Instant::now();
        let enc = std::mem::replace(&mut self.enc, self.engine.encoder("clp"));
        let idx = self.engine.gpu.queue.submit([enc.finish()]);
        self.arena.reset();
        if !self.engine.options.time_stages {
            self.stats.add(stage::GPU, t.elapsed());
        }
        idx
    }

    fn wait(&mut self, idx: Option<wgpu::SubmissionIndex>, stage: &str) -> Result<()> {
        let t = Instant::now();
        self.engine.gpu.wait_for(idx)?;
        self.stats.add(stage, t.elapsed());
        Ok(())
    }

    /// With `time_stages`, submits and waits, charging the GPU time to `stage`; otherwise keeps
    /// encoding.
    fn stage_end(&mut self, stage: &str) -> Result<()> {
        if !self.engine.options.time_stages {
            return Ok(());
        }
        let t = Instant::now();
        let idx = self.submit();
        self.engine.gpu.wait_for(Some(idx))?;
        self.in_flight = None;
        self.stats.add(stage, t.elapsed());
        Ok(())
    }

    /// Submits the open encoder, then waits for the one before it: at most two submissions
    /// (and their queued uploads) are in flight, and the host gathers tile n+1 while the GPU
    /// works on tile n.
    fn submit_bounded(&mut self) -> Result<()> {
        let idx = self.submit();
        if let Some(prev) = self.in_flight.replace(idx) {
            self.wait(Some(prev), stage::GPU)?;
        }
        Ok(())
    }

    /// Submits the open encoder and waits for all work.
    fn submit_and_drain(&mut self) -> Result<()> {
        let idx = self.submit();
        self.in_flight = None;
        self.wait(Some(idx), stage::GPU)
    }
}

/// Copies little-endian 4-byte words into `dst`.
fn copy_words<T: bytemuck::Pod>(bytes: &[u8], dst: &mut [T]) {
    bytemuck::cast_slice_mut::<T, u8>(dst).copy_from_slice(bytes);
}

impl ClpBackend for Engine {
    fn describe(&self) -> String {
        self.gpu.adapter().to_string()
    }
    fn plan(&self, problem: &Problem) -> Result<TilePlan> {
        Engine::plan(self, problem)
    }
    fn run(
        &self,
        h_missing: &RowSet,
        h_overlap: &RowSet,
        e_overlap: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        self.run_streamed(h_missing, h_overlap, e_overlap, weighting, sink)
    }
}

/// Device buffers of one run, sized once from the plan.
struct Buffers {
    hm_raw: wgpu::Buffer,
    hm_hat: wgpu::Buffer,
    hm_status: wgpu::Buffer,
    ho_raw: [wgpu::Buffer; 2],
    ho_hat: wgpu::Buffer,
    ho_status: wgpu::Buffer,
    eo_raw: [wgpu::Buffer; 2],
    numer: wgpu::Buffer,
    out: wgpu::Buffer,
    status: wgpu::Buffer,
    scores: wgpu::Buffer,
    best_score: wgpu::Buffer,
    best_index: wgpu::Buffer,
    weight: wgpu::Buffer,
    guard: wgpu::Buffer,
    gram: wgpu::Buffer,
    readback: Readback,
}

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Shape(format!("{what} = {n} exceeds 2^32 - 1")))
}

impl Engine {
    /// Builds every pipeline on `gpu` with default options.
    pub fn new(gpu: Gpu) -> Result<Engine> {
        Self::with_options(gpu, EngineOptions::default())
    }

    /// Builds every pipeline on `gpu`.
    pub fn with_options(gpu: Gpu, options: EngineOptions) -> Result<Engine> {
        let kernels = Kernels::new(&gpu);
        Ok(Engine {
            gpu,
            kernels,
            options,
        })
    }

    /// The GPU context.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Current options.
    pub fn options(&self) -> EngineOptions {
        self.options
    }

    /// Replaces the options (tile caps, budget, poisoning).
    pub fn set_options(&mut self, options: EngineOptions) {
        self.options = options;
    }

    fn limits(&self) -> PlanLimits {
        PlanLimits {
            max_binding_bytes: self.gpu.max_binding_bytes(),
            budget_bytes: self.options.gpu_memory_bytes,
            max_m_rows: self.options.max_m_rows,
            max_o_rows: self.options.max_o_rows,
        }
    }

    /// The tile plan this engine would use for a problem.
    pub fn plan(&self, problem: &Problem) -> Result<TilePlan> {
        plan(problem, &self.limits())
    }

    fn allocate(&self, p: &Problem, tp: &TilePlan) -> Buffers {
        let g = &self.gpu;
        let (mt, ot) = (tp.m_rows as u64, tp.o_rows as u64);
        let (dh, ds) = (p.helper_dim as u64, p.source_dim as u64);
        let he = p.helper_dtype.size_bytes() as u64;
        let se = p.source_dtype.size_bytes() as u64;
        let k = p.k.unwrap_or(0) as u64;
        let topk = p.k.is_some();
        let if_topk = |n: u64| if topk { n } else { 4 };
        Buffers {
            hm_raw: g.storage_buffer("missing helper rows", mt * dh * he),
            hm_hat: g.storage_buffer("normalised missing rows", mt * dh * 4),
            hm_status: g.storage_buffer("missing row status", mt * 4),
            ho_raw: [
                g.storage_buffer("overlap helper rows 0", ot * dh * he),
                g.storage_buffer("overlap helper rows 1", ot * dh * he),
            ],
            ho_hat: g.storage_buffer("normalised overlap rows", ot * dh * 4),
            ho_status: g.storage_buffer("overlap row status", ot * 4),
            eo_raw: [
                g.storage_buffer("source rows 0", ot * ds * se),
                g.storage_buffer("source rows 1", ot * ds * se),
            ],
            numer: g.storage_buffer("weighted sums", mt * (ds + 1) * 4),
            out: g.storage_buffer("output rows", mt * ds * 4),
            status: g.storage_buffer("output status", mt * 4),
            scores: g.storage_buffer("similarity tile", if_topk(mt * ot * 4)),
            best_score: g.storage_buffer("top-k scores", if_topk(mt * k * 4)),
            best_index: g.storage_buffer("top-k indices", if_topk(mt * k * 4)),
            weight: g.storage_buffer("weights", if_topk(mt * k * 4)),
            guard: g.storage_buffer("guard scales", if_topk(mt * 4)),
            gram: g.storage_buffer("Gram matrix", if topk { 4 } else { dh * (ds + 1) * 4 }),
            readback: Readback::new(g, "readback", mt * (ds + 1 + 3 * k) * 4),
        }
    }

    fn poison(&self, buffers: &[&wgpu::Buffer]) {
        if !self.options.poison {
            return;
        }
        for b in buffers {
            let words = vec![POISON; (b.size() / 4) as usize];
            self.gpu
                .queue
                .write_buffer(b, 0, bytemuck::cast_slice(&words));
        }
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    fn submit(&self, encoder: wgpu::CommandEncoder, arena: &mut ParamArena) {
        self.gpu.queue.submit([encoder.finish()]);
        arena.reset();
    }

    /// Runs CLP-Transfer on the GPU over in-memory matrices and keeps every result (tests and
    /// small inputs; [`ClpBackend::run`] streams).
    pub fn clp(
        &self,
        h_missing: &MatrixRef,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        weighting: &Weighting,
    ) -> Result<ClpOutput> {
        backend::collect(self, h_missing, h_overlap, e_overlap, weighting)
    }

    fn run_streamed(
        &self,
        hm: &RowSet,
        ho: &RowSet,
        eo: &RowSet,
        weighting: &Weighting,
        sink: &mut dyn FnMut(&TileOut) -> Result<()>,
    ) -> Result<Stats> {
        let p = backend::problem(hm, ho, eo, weighting)?;
        if p.missing == 0 {
            return Ok(Stats::default());
        }
        let tp = self.plan(&p)?;
        let b = self.allocate(&p, &tp);
        let mut flow = Flow::new(self);
        flow.stats.tiles = (tp.m_rows, tp.o_rows);
        flow.stats.buffer_bytes = tp.gpu_bytes;
        let (dh, ds) = (p.helper_dim, p.source_dim);
        let o_tiles = backend::tiles(p.overlap, tp.o_rows);
        let mut stage = Staging::default();

        if p.k.is_none() {
            self.accumulate_gram(&p, &b, &mut flow, &mut stage, ho, eo, &o_tiles)?;
        }
        let mut rows = vec![0.0f32; tp.m_rows * ds];
        let mut status = vec![0u32; tp.m_rows];
        let k = p.k.unwrap_or(0);
        let mut scores = vec![0.0f32; tp.m_rows * k];
        let mut indices = vec![0u32; tp.m_rows * k];
        let mut weights = vec![0.0f32; tp.m_rows * k];
        for (m0, m1) in backend::tiles(p.missing, tp.m_rows) {
            let mt = m1 - m0;
            self.poison(&[&b.hm_hat, &b.hm_status, &b.numer, &b.out, &b.status]);
            flow.load(hm, m0, m1, &mut stage.hm, &b.hm_raw)?;
            let norm = NormalizeParams {
                rows: u32_of(mt, "rows")?,
                cols: u32_of(dh, "helper dim")?,
                dtype: hm.dtype().shader_code(),
                _pad: 0,
            };
            self.kernels.normalize.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                norm,
                &b.hm_raw,
                &b.hm_hat,
                &b.hm_status,
            );
            flow.stage_end(stage::NORMALISE)?;
            match p.k {
                Some(k) => {
                    self.poison(&[&b.scores, &b.best_score, &b.best_index, &b.weight, &b.guard]);
                    self.select_and_combine(
                        &p,
                        &b,
                        &mut flow,
                        &mut stage,
                        (m0, m1),
                        k,
                        hm,
                        ho,
                        eo,
                        weighting,
                        &o_tiles,
                    )?;
                    self.kernels.finish.encode(
                        &self.gpu,
                        &mut flow.enc,
                        &mut flow.arena,
                        FinishParams {
                            rows: mt as u32,
                            dim: ds as u32,
                            scale_mode: 0,
                            scale_count: 0,
                            scale_stride: 0,
                            scale_col: 0,
                            tolerance: WEIGHT_SUM_TOLERANCE,
                            _pad: 0,
                        },
                        &b.numer,
                        &b.hm_status,
                        &b.guard,
                        &b.out,
                        &b.status,
                    );
                }
                None => {
                    self.kernels.matmul.encode(
                        &self.gpu,
                        &mut flow.enc,
                        &mut flow.arena,
                        MatmulParams {
                            m: mt as u32,
                            n: ds as u32 + 1,
                            k: dh as u32,
                            lda: dh as u32,
                            ldb: ds as u32 + 1,
                            ldc: ds as u32 + 1,
                            b_dtype: DType::F32.shader_code(),
                            b_cols: ds as u32 + 1,
                            ..Default::default()
                        },
                        &b.hm_hat,
                        &b.gram,
                        &b.numer,
                    );
                    self.kernels.finish.encode(
                        &self.gpu,
                        &mut flow.enc,
                        &mut flow.arena,
                        FinishParams {
                            rows: mt as u32,
                            dim: ds as u32,
                            scale_mode: 1,
                            scale_count: dh as u32,
                            scale_stride: ds as u32 + 1,
                            scale_col: ds as u32,
                            tolerance: WEIGHT_SUM_TOLERANCE,
                            _pad: 0,
                        },
                        &b.numer,
                        &b.hm_status,
                        &b.gram,
                        &b.out,
                        &b.status,
                    );
                }
            }
            flow.stage_end(stage::COMBINE)?;
            // Readback layout: rows | status | top-k scores | top-k indices | weights.
            let rows_bytes = (mt * ds * 4) as u64;
            let status_bytes = (mt * 4) as u64;
            let sel_bytes = (mt * k * 4) as u64;
            let rb = b.readback.buffer();
            let enc = &mut flow.enc;
            enc.copy_buffer_to_buffer(&b.out, 0, rb, 0, rows_bytes);
            enc.copy_buffer_to_buffer(&b.status, 0, rb, rows_bytes, status_bytes);
            if k > 0 {
                let off = rows_bytes + status_bytes;
                enc.copy_buffer_to_buffer(&b.best_score, 0, rb, off, sel_bytes);
                enc.copy_buffer_to_buffer(&b.best_index, 0, rb, off + sel_bytes, sel_bytes);
                enc.copy_buffer_to_buffer(&b.weight, 0, rb, off + 2 * sel_bytes, sel_bytes);
            }
            flow.submit_and_drain()?;
            let total = rows_bytes + status_bytes + 3 * sel_bytes;
            let t = Instant::now();
            b.readback.read(&self.gpu, total, |bytes| {
                let (r, rest) = bytes.split_at(rows_bytes as usize);
                let (st, rest) = rest.split_at(status_bytes as usize);
                let (sc, rest) = rest.split_at(sel_bytes as usize);
                let (ix, wt) = rest.split_at(sel_bytes as usize);
                copy_words(r, &mut rows[..mt * ds]);
                copy_words(st, &mut status[..mt]);
                copy_words(sc, &mut scores[..mt * k]);
                copy_words(ix, &mut indices[..mt * k]);
                copy_words(wt, &mut weights[..mt * k]);
            })?;
            flow.stats.add(stage::READBACK, t.elapsed());
            flow.stats.readback_bytes += total;
            let t = Instant::now();
            sink(&TileOut {
                start: m0,
                dim: ds,
                rows: &rows[..mt * ds],
                status: &status[..mt],
                k,
                scores: &scores[..mt * k],
                indices: &indices[..mt * k],
                weights: &weights[..mt * k],
            })?;
            flow.stats.add(stage::WRITE, t.elapsed());
        }
        Ok(flow.stats)
    }

    /// Dense mode: G = Ĥ_Oᵀ [E_O | 1], accumulated over overlap tiles.
    #[allow(clippy::too_many_arguments)]
    fn accumulate_gram(
        &self,
        p: &Problem,
        b: &Buffers,
        flow: &mut Flow,
        stage: &mut Staging,
        ho: &RowSet,
        eo: &RowSet,
        o_tiles: &[(usize, usize)],
    ) -> Result<()> {
        let (dh, ds) = (p.helper_dim as u32, p.source_dim as u32);
        self.poison(&[&b.gram]);
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            let ot = (o1 - o0) as u32;
            flow.load(ho, o0, o1, &mut stage.ho, &b.ho_raw[slot])?;
            flow.load(eo, o0, o1, &mut stage.eo, &b.eo_raw[slot])?;
            self.kernels.normalize.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                NormalizeParams {
                    rows: ot,
                    cols: dh,
                    dtype: ho.dtype().shader_code(),
                    _pad: 0,
                },
                &b.ho_raw[slot],
                &b.ho_hat,
                &b.ho_status,
            );
            flow.stage_end(stage::NORMALISE)?;
            self.kernels.matmul.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                MatmulParams {
                    m: dh,
                    n: ds + 1,
                    k: ot,
                    lda: dh,
                    ldb: ds,
                    ldc: ds + 1,
                    a_trans: 1,
                    b_trans: 0,
                    b_dtype: eo.dtype().shader_code(),
                    b_cols: ds,
                    ones_col: 1,
                    accumulate: (i > 0) as u32,
                },
                &b.ho_hat,
                &b.eo_raw[slot],
                &b.gram,
            );
            flow.stage_end(stage::GRAM)?;
            flow.submit_bounded()?;
        }
        Ok(())
    }

    /// Top-k mode for one missing tile (already normalised): similarity + running top-k over
    /// overlap tiles, weights, then the weighted source sums over overlap tiles.
    #[allow(clippy::too_many_arguments)]
    fn select_and_combine(
        &self,
        p: &Problem,
        b: &Buffers,
        flow: &mut Flow,
        stage: &mut Staging,
        (m0, m1): (usize, usize),
        k: usize,
        hm: &RowSet,
        ho: &RowSet,
        eo: &RowSet,
        weighting: &Weighting,
        o_tiles: &[(usize, usize)],
    ) -> Result<()> {
        let (dh, ds) = (p.helper_dim as u32, p.source_dim as u32);
        let (mt, k) = ((m1 - m0) as u32, k as u32);
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            let ot = (o1 - o0) as u32;
            flow.load(ho, o0, o1, &mut stage.ho, &b.ho_raw[slot])?;
            self.kernels.normalize.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                NormalizeParams {
                    rows: ot,
                    cols: dh,
                    dtype: ho.dtype().shader_code(),
                    _pad: 0,
                },
                &b.ho_raw[slot],
                &b.ho_hat,
                &b.ho_status,
            );
            flow.stage_end(stage::NORMALISE)?;
            self.kernels.matmul.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                MatmulParams {
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
                },
                &b.hm_hat,
                &b.ho_hat,
                &b.scores,
            );
            self.kernels.topk.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                TopKParams::new(mt, ot, u32_of(o0, "overlap index")?, k, i > 0),
                &b.scores,
                &b.best_score,
                &b.best_index,
            );
            flow.stage_end(stage::SIMILARITY)?;
            flow.submit_bounded()?;
        }
        if let Weighting::Omp { atoms } = *weighting {
            // OMP runs on the host from the selected candidates; its weights go back up.
            let bytes = (mt * k * 4) as u64;
            flow.enc
                .copy_buffer_to_buffer(&b.best_index, 0, b.readback.buffer(), 0, bytes);
            flow.submit_and_drain()?;
            let indices =
                b.readback
                    .read(&self.gpu, bytes, bytemuck::pod_collect_to_vec::<u8, u32>)?;
            let t = Instant::now();
            let w = backend::omp_tile_weights(hm, ho, m0, m1, &indices, k as usize, atoms)?;
            flow.stats.add(stage::COMBINE, t.elapsed());
            self.gpu.upload(&b.weight, bytemuck::cast_slice(&w));
        }
        let temperature = match *weighting {
            Weighting::Softmax { temperature, .. } => temperature,
            _ => 1.0,
        };
        self.kernels.weights.encode(
            &self.gpu,
            &mut flow.enc,
            &mut flow.arena,
            WeightsParams {
                rows: mt,
                k,
                mode: weighting.shader_mode(),
                temperature,
            },
            &b.best_score,
            &b.weight,
            &b.guard,
        );
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            flow.load(eo, o0, o1, &mut stage.eo, &b.eo_raw[slot])?;
            self.kernels.combine.encode(
                &self.gpu,
                &mut flow.enc,
                &mut flow.arena,
                CombineParams {
                    rows: mt,
                    k,
                    dim: ds,
                    dtype: eo.dtype().shader_code(),
                    row_offset: o0 as u32,
                    tile_rows: (o1 - o0) as u32,
                    accumulate: (i > 0) as u32,
                    _pad: 0,
                },
                &b.best_index,
                &b.weight,
                &b.eo_raw[slot],
                &b.numer,
            );
            flow.stage_end(stage::COMBINE)?;
            flow.submit_bounded()?;
        }
        Ok(())
    }

    /// Runs `normalize` alone on one tile (for tests): normalised f32 rows and statuses.
    pub fn normalize(&self, m: &MatrixRef) -> Result<(Vec<f32>, Vec<RowStatus>)> {
        let g = &self.gpu;
        let src = g.storage_buffer("normalize input", m.data.len() as u64);
        let dst = g.storage_buffer("normalize output", (m.rows * m.cols * 4) as u64);
        let status = g.storage_buffer("normalize status", (m.rows * 4) as u64);
        self.poison(&[&dst, &status]);
        let mut arena = ParamArena::new(g, 1);
        g.upload(&src, m.data);
        let mut enc = self.encoder("normalize");
        self.kernels.normalize.encode(
            g,
            &mut enc,
            &mut arena,
            NormalizeParams {
                rows: u32_of(m.rows, "rows")?,
                cols: u32_of(m.cols, "cols")?,
                dtype: m.dtype.shader_code(),
                _pad: 0,
            },
            &src,
            &dst,
            &status,
        );
        let rows_bytes = (m.rows * m.cols * 4) as u64;
        let rb = Readback::new(g, "normalize readback", rows_bytes + m.rows as u64 * 4);
        enc.copy_buffer_to_buffer(&dst, 0, rb.buffer(), 0, rows_bytes);
        enc.copy_buffer_to_buffer(&status, 0, rb.buffer(), rows_bytes, m.rows as u64 * 4);
        self.submit(enc, &mut arena);
        rb.read(g, rb.size_bytes(), |bytes| {
            let (r, s) = bytes.split_at(rows_bytes as usize);
            let rows = bytemuck::pod_collect_to_vec::<u8, f32>(r);
            let st = bytemuck::pod_collect_to_vec::<u8, u32>(&s[..m.rows * 4]);
            (rows, st.into_iter().map(RowStatus::from_code).collect())
        })
    }

    /// Runs `matmul` alone (for tests): returns C (params.m × params.ldc) after C (+)= A · B,
    /// with C starting as `c_init` (or poison).
    pub fn matmul(
        &self,
        params: MatmulParams,
        a: &[f32],
        b: &[u8],
        c_init: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let g = &self.gpu;
        let c_len = params.m as usize * params.ldc as usize;
        let a_buf = g.storage_buffer("matmul a", (a.len() * 4) as u64);
        let b_buf = g.storage_buffer("matmul b", b.len() as u64);
        let c_buf = g.storage_buffer("matmul c", (c_len * 4) as u64);
        g.upload(&a_buf, bytemuck::cast_slice(a));
        g.upload(&b_buf, b);
        match c_init {
            Some(c) => g.upload(&c_buf, bytemuck::cast_slice(c)),
            None => self.poison(&[&c_buf]),
        }
        let mut arena = ParamArena::new(g, 1);
        let mut enc = self.encoder("matmul");
        self.kernels
            .matmul
            .encode(g, &mut enc, &mut arena, params, &a_buf, &b_buf, &c_buf);
        let rb = Readback::new(g, "matmul readback", (c_len * 4) as u64);
        enc.copy_buffer_to_buffer(&c_buf, 0, rb.buffer(), 0, (c_len * 4) as u64);
        self.submit(enc, &mut arena);
        rb.read(
            g,
            (c_len * 4) as u64,
            bytemuck::pod_collect_to_vec::<u8, f32>,
        )
    }

    /// Runs `topk` alone over a score matrix (rows × cols) fed in column tiles of `tile_cols`
    /// (for tests: exact ties, tile boundaries).
    pub fn top_k_scores(
        &self,
        scores: &[f32],
        rows: usize,
        cols: usize,
        k: usize,
        tile_cols: usize,
    ) -> Result<Selection> {
        if k == 0 || k > MAX_TOP_K || k > cols || tile_cols < k || scores.len() != rows * cols {
            return Err(Error::Argument(format!(
                "top_k_scores: rows {rows}, cols {cols}, k {k}, tile {tile_cols}"
            )));
        }
        let g = &self.gpu;
        let tile = g.storage_buffer("topk scores", (rows * tile_cols * 4) as u64);
        let best_score = g.storage_buffer("topk best scores", (rows * k * 4) as u64);
        let best_index = g.storage_buffer("topk best indices", (rows * k * 4) as u64);
        self.poison(&[&best_score, &best_index]);
        let mut arena = ParamArena::new(g, 1);
        for c0 in (0..cols).step_by(tile_cols) {
            let c1 = (c0 + tile_cols).min(cols);
            let w = c1 - c0;
            let packed: Vec<f32> = (0..rows)
                .flat_map(|r| scores[r * cols + c0..r * cols + c1].iter().copied())
                .collect();
            g.upload(&tile, bytemuck::cast_slice(&packed));
            let mut enc = self.encoder("topk tile");
            self.kernels.topk.encode(
                g,
                &mut enc,
                &mut arena,
                TopKParams::new(rows as u32, w as u32, c0 as u32, k as u32, c0 > 0),
                &tile,
                &best_score,
                &best_index,
            );
            self.submit(enc, &mut arena);
        }
        let n = (rows * k * 4) as u64;
        let rb = Readback::new(g, "topk readback", 2 * n);
        let mut enc = self.encoder("topk readback");
        enc.copy_buffer_to_buffer(&best_score, 0, rb.buffer(), 0, n);
        enc.copy_buffer_to_buffer(&best_index, 0, rb.buffer(), n, n);
        self.submit(enc, &mut arena);
        rb.read(g, 2 * n, |bytes| {
            let (s, i) = bytes.split_at(n as usize);
            let scores: Vec<f32> = bytemuck::pod_collect_to_vec(s);
            Selection {
                k,
                weights: scores.clone(),
                scores,
                indices: bytemuck::pod_collect_to_vec(i),
            }
        })
    }
}
