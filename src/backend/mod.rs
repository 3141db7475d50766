//! The compute backends: the GPU engine ([`gpu`], WGSL kernels through wgpu), the
//! multi-threaded CPU path ([`cpu`]) and the f64 reference ([`reference`]), all behind the
//! [`ClpBackend`] contract of [`api`], and [`Backend`], the one place a backend is chosen and
//! opened.

pub mod api;
pub mod cpu;
pub mod gpu;
pub mod reference;

pub use crate::weights::omp_tile_weights;
pub use api::*;

use crate::error::Result;

/// Which implementation computes the missing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The WGSL engine on the chosen GPU adapter.
    Gpu,
    /// The multi-threaded CPU path (same tiles, f32, SIMD GEMM).
    Cpu,
    /// The plain-Rust f64 reference (slow, holds the rows in memory; for tests and checking).
    CpuReference,
}

impl Backend {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
            Backend::CpuReference => "cpu-reference",
        }
    }

    /// Opens the backend with a memory budget for its tile buffers (GPU: device memory, also
    /// the place where a missing adapter fails; CPU: the working set).
    pub fn create(self, memory_bytes: u64) -> Result<Box<dyn ClpBackend>> {
        Ok(match self {
            Backend::Gpu => Box::new(gpu::Engine::with_options(
                gpu::Gpu::new()?,
                gpu::EngineOptions {
                    gpu_memory_bytes: memory_bytes,
                    ..Default::default()
                },
            )?),
            Backend::Cpu => Box::new(cpu::CpuBackend::new(memory_bytes)),
            Backend::CpuReference => Box::new(reference::ReferenceBackend),
        })
    }
}
