//! Argument types more than one subcommand parses, so each flag is spelled, checked and
//! documented once.

use crate::backend::Backend;
use crate::tensor::DType;
use crate::weights::{TopK, Weighting};

/// Compute backend on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// The WGSL engine on a GPU (honours WGPU_BACKEND / WGPU_ADAPTER_NAME).
    Gpu,
    /// The multi-threaded CPU path (no GPU needed).
    Cpu,
    /// The plain-Rust f64 CPU reference (slow; for checking).
    CpuReference,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Backend {
        match b {
            BackendArg::Gpu => Backend::Gpu,
            BackendArg::Cpu => Backend::Cpu,
            BackendArg::CpuReference => Backend::CpuReference,
        }
    }
}

/// `--weighting` on the command line: clp, softmax, sparsemax or omp (the variants carry no doc
/// comments so that `--help` keeps listing the plain names; the argument's help explains them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightingArg {
    // cos / Σcos, the original CLP-Transfer.
    Clp,
    // exp(cos/T), WECHSEL.
    Softmax,
    // FOCUS.
    Sparsemax,
    // Orthogonal matching pursuit with K atoms, tokensurgeon.
    Omp,
}

impl WeightingArg {
    /// The name [`Weighting::from_parts`] takes.
    pub fn name(self) -> &'static str {
        match self {
            WeightingArg::Clp => "clp",
            WeightingArg::Softmax => "softmax",
            WeightingArg::Sparsemax => "sparsemax",
            WeightingArg::Omp => "omp",
        }
    }

    /// The weighting with its `--top-k` and `--temperature`, checked.
    pub fn with(self, top_k: TopK, temperature: f32) -> crate::Result<Weighting> {
        Weighting::from_parts(self.name(), top_k, temperature).map_err(crate::Error::Argument)
    }
}

/// Storage type of generated data (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DTypeArg> for DType {
    fn from(d: DTypeArg) -> DType {
        match d {
            DTypeArg::F32 => DType::F32,
            DTypeArg::F16 => DType::F16,
            DTypeArg::Bf16 => DType::BF16,
        }
    }
}
