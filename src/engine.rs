//! Orchestration of the kernels for one CLP problem held in host memory (slices or mapped
//! files): plan tiles, allocate every buffer once, stream tiles up, read back only the outputs.
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
//! Every tile is submitted on its own so that queued uploads stay bounded; uploads alternate
//! between two slots so the host can stage tile n+1 while the GPU works on tile n.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, ParamArena, Readback};
use crate::kernels::*;
use crate::plan::{plan, PlanLimits, Problem, TilePlan};
use crate::tensor::{DType, MatrixRef};
use crate::weights::{
    ClpOutput, RejectReason, RejectedRow, RowStatus, Selection, TopK, Weighting,
    WEIGHT_SUM_TOLERANCE,
};

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
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            gpu_memory_bytes: 1 << 30,
            max_m_rows: usize::MAX,
            max_o_rows: usize::MAX,
            poison: false,
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

    /// Validates shapes and returns the problem to plan.
    pub fn problem(
        h_missing: &MatrixRef,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        weighting: &Weighting,
    ) -> Result<Problem> {
        if h_overlap.rows == 0 {
            return Err(Error::Shape(
                "there are no overlapping tokens: nothing to build missing rows from".into(),
            ));
        }
        if h_missing.cols != h_overlap.cols {
            return Err(Error::Shape(format!(
                "helper rows differ in width: missing rows have {} columns, overlap rows {}",
                h_missing.cols, h_overlap.cols
            )));
        }
        if e_overlap.rows != h_overlap.rows {
            return Err(Error::Shape(format!(
                "{} overlap rows in the helper space but {} in the source space",
                h_overlap.rows, e_overlap.rows
            )));
        }
        if h_overlap.cols == 0 || e_overlap.cols == 0 {
            return Err(Error::Shape("embedding width is 0".into()));
        }
        let k = match weighting.top_k() {
            TopK::All => None,
            TopK::K(0) => return Err(Error::Argument("top-k must be at least 1".into())),
            TopK::K(k) if k > MAX_TOP_K => {
                return Err(Error::Argument(format!(
                    "top-k {k} exceeds the supported {MAX_TOP_K}; use a smaller k or `all` (the dense original)"
                )))
            }
            TopK::K(k) => Some(k.min(h_overlap.rows)),
        };
        let helper_dtype = if h_missing.dtype.size_bytes() >= h_overlap.dtype.size_bytes() {
            h_missing.dtype
        } else {
            h_overlap.dtype
        };
        Ok(Problem {
            missing: h_missing.rows,
            overlap: h_overlap.rows,
            helper_dim: h_overlap.cols,
            source_dim: e_overlap.cols,
            helper_dtype,
            source_dtype: e_overlap.dtype,
            k,
        })
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
            readback: Readback::new(g, "readback", mt * (ds + 1 + 2 * k) * 4),
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

    /// Runs CLP-Transfer on the GPU: the missing rows, rejected rows and (top-k) selections.
    pub fn clp(
        &self,
        h_missing: &MatrixRef,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        weighting: &Weighting,
    ) -> Result<ClpOutput> {
        let p = Self::problem(h_missing, h_overlap, e_overlap, weighting)?;
        let ds = p.source_dim;
        if p.missing == 0 {
            let selection = p.k.map(|k| Selection {
                k,
                indices: vec![],
                scores: vec![],
            });
            return Ok(ClpOutput {
                rows: vec![],
                dim: ds,
                rejected: vec![],
                selection,
            });
        }
        let tp = self.plan(&p)?;
        let b = self.allocate(&p, &tp);
        let mut arena = ParamArena::new(&self.gpu, 8);
        let (dh, o) = (p.helper_dim, p.overlap);
        let o_tiles: Vec<(usize, usize)> = (0..o)
            .step_by(tp.o_rows)
            .map(|s| (s, (s + tp.o_rows).min(o)))
            .collect();

        if p.k.is_none() {
            self.accumulate_gram(&p, &b, &mut arena, h_overlap, e_overlap, &o_tiles)?;
        }

        let mut rows = vec![0.0f32; p.missing * ds];
        let mut rejected = Vec::new();
        let mut selection = p.k.map(|k| Selection {
            k,
            indices: Vec::with_capacity(p.missing * k),
            scores: Vec::with_capacity(p.missing * k),
        });
        for m0 in (0..p.missing).step_by(tp.m_rows) {
            let m1 = (m0 + tp.m_rows).min(p.missing);
            let mt = m1 - m0;
            let mut enc = self.encoder("missing tile");
            self.poison(&[&b.hm_hat, &b.hm_status, &b.numer, &b.out, &b.status]);
            self.gpu.upload(&b.hm_raw, h_missing.rows_bytes(m0, m1));
            self.kernels.normalize.encode(
                &self.gpu,
                &mut enc,
                &mut arena,
                NormalizeParams {
                    rows: u32_of(mt, "rows")?,
                    cols: u32_of(dh, "helper dim")?,
                    dtype: h_missing.dtype.shader_code(),
                    _pad: 0,
                },
                &b.hm_raw,
                &b.hm_hat,
                &b.hm_status,
            );
            let k = match p.k {
                Some(k) => {
                    self.poison(&[&b.scores, &b.best_score, &b.best_index, &b.weight, &b.guard]);
                    self.select_and_combine(
                        &p, &b, &mut arena, enc, mt, k, h_overlap, e_overlap, &o_tiles,
                    )?;
                    enc = self.encoder("finish");
                    self.kernels.finish.encode(
                        &self.gpu,
                        &mut enc,
                        &mut arena,
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
                    k
                }
                None => {
                    self.kernels.matmul.encode(
                        &self.gpu,
                        &mut enc,
                        &mut arena,
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
                        &mut enc,
                        &mut arena,
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
                    0
                }
            };
            // Readback layout: rows | status | top-k scores | top-k indices.
            let rows_bytes = (mt * ds * 4) as u64;
            let status_bytes = (mt * 4) as u64;
            let sel_bytes = (mt * k * 4) as u64;
            let rb = b.readback.buffer();
            enc.copy_buffer_to_buffer(&b.out, 0, rb, 0, rows_bytes);
            enc.copy_buffer_to_buffer(&b.status, 0, rb, rows_bytes, status_bytes);
            if k > 0 {
                let off = rows_bytes + status_bytes;
                enc.copy_buffer_to_buffer(&b.best_score, 0, rb, off, sel_bytes);
                enc.copy_buffer_to_buffer(&b.best_index, 0, rb, off + sel_bytes, sel_bytes);
            }
            self.submit(enc, &mut arena);
            let total = rows_bytes + status_bytes + 2 * sel_bytes;
            b.readback.read(&self.gpu, total, |bytes| {
                let (r, rest) = bytes.split_at(rows_bytes as usize);
                let (st, rest) = rest.split_at(status_bytes as usize);
                let (sc, ix) = rest.split_at(sel_bytes as usize);
                for (dst, src) in rows[m0 * ds..m1 * ds].iter_mut().zip(r.chunks_exact(4)) {
                    *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
                }
                for (i, w) in st.chunks_exact(4).enumerate() {
                    let code = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    if let Some(reason) = RejectReason::from_code(code) {
                        rejected.push(RejectedRow {
                            row: m0 + i,
                            reason,
                        });
                    }
                }
                if let Some(sel) = selection.as_mut() {
                    sel.scores.extend(
                        sc.chunks_exact(4)
                            .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                    );
                    sel.indices.extend(
                        ix.chunks_exact(4)
                            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                    );
                }
            })?;
        }
        Ok(ClpOutput {
            rows,
            dim: ds,
            rejected,
            selection,
        })
    }

    /// Dense mode: G = Ĥ_Oᵀ [E_O | 1], accumulated over overlap tiles.
    fn accumulate_gram(
        &self,
        p: &Problem,
        b: &Buffers,
        arena: &mut ParamArena,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        o_tiles: &[(usize, usize)],
    ) -> Result<()> {
        let (dh, ds) = (p.helper_dim as u32, p.source_dim as u32);
        self.poison(&[&b.gram]);
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            let ot = (o1 - o0) as u32;
            let mut enc = self.encoder("gram tile");
            self.gpu
                .upload(&b.ho_raw[slot], h_overlap.rows_bytes(o0, o1));
            self.gpu
                .upload(&b.eo_raw[slot], e_overlap.rows_bytes(o0, o1));
            self.kernels.normalize.encode(
                &self.gpu,
                &mut enc,
                arena,
                NormalizeParams {
                    rows: ot,
                    cols: dh,
                    dtype: h_overlap.dtype.shader_code(),
                    _pad: 0,
                },
                &b.ho_raw[slot],
                &b.ho_hat,
                &b.ho_status,
            );
            self.kernels.matmul.encode(
                &self.gpu,
                &mut enc,
                arena,
                MatmulParams {
                    m: dh,
                    n: ds + 1,
                    k: ot,
                    lda: dh,
                    ldb: ds,
                    ldc: ds + 1,
                    a_trans: 1,
                    b_trans: 0,
                    b_dtype: e_overlap.dtype.shader_code(),
                    b_cols: ds,
                    ones_col: 1,
                    accumulate: (i > 0) as u32,
                },
                &b.ho_hat,
                &b.eo_raw[slot],
                &b.gram,
            );
            self.submit(enc, arena);
        }
        Ok(())
    }

    /// Top-k mode for one missing tile (already normalised in `enc`): similarity + running
    /// top-k over overlap tiles, weights, then the weighted source sums over overlap tiles.
    fn select_and_combine(
        &self,
        p: &Problem,
        b: &Buffers,
        arena: &mut ParamArena,
        mut enc: wgpu::CommandEncoder,
        mt: usize,
        k: usize,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        o_tiles: &[(usize, usize)],
    ) -> Result<()> {
        let (dh, ds) = (p.helper_dim as u32, p.source_dim as u32);
        let (mt, k) = (mt as u32, k as u32);
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            let ot = (o1 - o0) as u32;
            self.gpu
                .upload(&b.ho_raw[slot], h_overlap.rows_bytes(o0, o1));
            self.kernels.normalize.encode(
                &self.gpu,
                &mut enc,
                arena,
                NormalizeParams {
                    rows: ot,
                    cols: dh,
                    dtype: h_overlap.dtype.shader_code(),
                    _pad: 0,
                },
                &b.ho_raw[slot],
                &b.ho_hat,
                &b.ho_status,
            );
            self.kernels.matmul.encode(
                &self.gpu,
                &mut enc,
                arena,
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
                &mut enc,
                arena,
                TopKParams::new(mt, ot, u32_of(o0, "overlap index")?, k, i > 0),
                &b.scores,
                &b.best_score,
                &b.best_index,
            );
            self.submit(enc, arena);
            enc = self.encoder("overlap tile");
        }
        self.kernels.weights.encode(
            &self.gpu,
            &mut enc,
            arena,
            WeightsParams {
                rows: mt,
                k,
                _pad: [0; 2],
            },
            &b.best_score,
            &b.weight,
            &b.guard,
        );
        for (i, &(o0, o1)) in o_tiles.iter().enumerate() {
            let slot = i % 2;
            self.gpu
                .upload(&b.eo_raw[slot], e_overlap.rows_bytes(o0, o1));
            self.kernels.combine.encode(
                &self.gpu,
                &mut enc,
                arena,
                CombineParams {
                    rows: mt,
                    k,
                    dim: ds,
                    dtype: e_overlap.dtype.shader_code(),
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
            self.submit(enc, arena);
            enc = self.encoder("source tile");
        }
        self.submit(enc, arena);
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
            Selection {
                k,
                scores: bytemuck::pod_collect_to_vec(s),
                indices: bytemuck::pod_collect_to_vec(i),
            }
        })
    }
}
