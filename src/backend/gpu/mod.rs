//! Orchestration of the kernels for one CLP problem: plan tiles from the GPU-memory budget,
//! allocate every buffer once, gather each input tile from its [`RowSet`] (memory or file) into a
//! reused host staging buffer, upload it, and hand each finished missing tile to a sink.
//!
//! Top-k mode, per missing tile: normalise it; for each overlap tile, normalise it, compute the
//! similarity tile and merge it into the running top-k; turn the selection into weights; for each
//! overlap tile, accumulate its share of the weighted source sum; divide (OMP: bound the norm)
//! and guard; read back rows, statuses and the selection. At most one similarity tile exists on
//! the device.
//!
//! Dense mode (k = all): G = Ĥ_Oᵀ [E_O | 1] is accumulated over overlap tiles once (its last
//! column is s = Σ_j ĥ_j); each missing tile is then Ĥ_M G divided by its last column
//! (Ĥ_M s = Σ_j c_mj), which is the original CLP formula without the M × O matrix.
//!
//! Every overlap tile is submitted on its own and the host waits for the submission before it,
//! so at most two tiles of uploads are queued (host memory stays bounded) while the host gathers
//! tile n+1 as the GPU works on tile n; uploads alternate between two device slots.
//! `EngineOptions::time_stages` serialises the stages instead, to time each one.
//!
//! Layout: this file holds the engine and its options; `buffers` allocates the device buffers
//! from the plan's [`crate::plan::BufferPlan`]; `stream` is the tile loop over missing tiles
//! (its [`stream::Flow`] owns the encoder, uniform arena, submissions and timings); `dense` and
//! `topk` are the two ways a missing tile is combined; `ops` runs single kernels for tests.

use crate::error::{Error, Result};
pub mod context;

mod buffers;
mod dense;
mod faults;
mod ops;
mod stream;
mod topk;

use crate::backend::api::{self, ClpBackend, Stats, TileOut};
use crate::kernels::Kernels;
use crate::method::{ClpOutput, Weighting};
use crate::plan::{plan, PlanLimits, Problem, TilePlan};
use crate::rows::RowSet;
use crate::tensor::MatrixRef;
pub use context::{grid_2d, ParamArena, Readback, MAX_WORKGROUPS_PER_DIMENSION};
pub use context::{list_adapters, AdapterSummary, Gpu};
pub use faults::REQUIRED_STORAGE_BUFFERS;

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
        let inputs = stream::Inputs {
            hm: h_missing,
            ho: h_overlap,
            eo: e_overlap,
            weighting,
        };
        self.run_streamed(inputs, sink)
    }
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
        let kernels = gpu.checked("building the compute pipelines", || Kernels::new(&gpu))?;
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

    /// Runs CLP-Transfer on the GPU over in-memory matrices and keeps every result (tests and
    /// small inputs; [`ClpBackend::run`] streams).
    pub fn clp(
        &self,
        h_missing: &MatrixRef,
        h_overlap: &MatrixRef,
        e_overlap: &MatrixRef,
        weighting: &Weighting,
    ) -> Result<ClpOutput> {
        api::collect(self, h_missing, h_overlap, e_overlap, weighting)
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}
