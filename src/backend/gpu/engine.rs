//! The GPU engine: the one [`Gpu`] context plus every compiled kernel, its options, and the
//! everything a run needs from it (the [`ClpBackend`] implementation is the tile loop, `tile_loop`).

use super::context::Gpu;
use crate::backend::api;
use crate::error::{Error, Result};
use crate::kernels::Kernels;
use crate::method::{ClpOutput, Weighting};
use crate::plan::{choose_tiles, Problem, TileLimits, TilePlan};
use crate::tensor::MatrixRef;

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
pub(super) const POISON: u32 = 0x7fc0_dead;

/// The GPU context plus every compiled kernel.
pub struct Engine {
    pub(super) gpu: Gpu,
    pub(super) kernels: Kernels,
    pub(super) options: EngineOptions,
}

pub(super) fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Shape(format!("{what} = {n} exceeds 2^32 - 1")))
}

impl Engine {
    /// Builds every pipeline on `gpu` with default options.
    pub fn new(gpu: Gpu) -> Result<Engine> {
        Self::with_options(gpu, EngineOptions::default())
    }

    /// Builds every pipeline on `gpu`.
    pub fn with_options(gpu: Gpu, options: EngineOptions) -> Result<Engine> {
        let kernels = gpu.checked("building the compute pipelines", || {
            Kernels::new(&gpu.device)
        })?;
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

    fn limits(&self) -> TileLimits {
        TileLimits {
            max_binding_bytes: self.gpu.max_binding_bytes(),
            budget_bytes: self.options.gpu_memory_bytes,
            max_m_rows: self.options.max_m_rows,
            max_o_rows: self.options.max_o_rows,
        }
    }

    /// The tile plan this engine would use for a problem.
    pub fn tile_plan(&self, problem: &Problem) -> Result<TilePlan> {
        choose_tiles(problem, &self.limits())
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

    pub(super) fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}
