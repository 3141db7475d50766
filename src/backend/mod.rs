//! The compute backends: the GPU engine ([`gpu`], WGSL kernels through wgpu), the
//! multi-threaded CPU path ([`cpu`]) and the f64 reference ([`reference`]), all behind the
//! [`ClpBackend`] contract of [`api`], and [`Backend`], the one place a backend is chosen and
//! opened.

pub mod api;
pub mod cpu;
pub mod gpu;
pub mod reference;

pub use crate::method::omp_tile_weights;
pub use api::*;

use crate::error::Result;

/// Which implementation computes the missing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A hardware GPU when one exists, otherwise the CPU path ([`Backend::resolve`]).
    Auto,
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
            Backend::Auto => "auto",
            Backend::Gpu => "gpu",
            Backend::Cpu => "cpu",
            Backend::CpuReference => "cpu-reference",
        }
    }

    /// Opens the backend with a memory budget for its tile buffers (GPU: device memory, also
    /// the place where a missing adapter fails; CPU: the working set).
    pub fn create(self, memory_bytes: u64) -> Result<Box<dyn ClpBackend>> {
        Ok(match self {
            Backend::Auto => return self.resolve().backend.create(memory_bytes),
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

/// The backend a run uses, and why, when `auto` chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Never [`Backend::Auto`].
    pub backend: Backend,
    /// What `auto` saw and picked, for the run's first notice (`None`: asked for by name).
    pub why: Option<String>,
}

impl Backend {
    /// The backend to run: itself, or for [`Backend::Auto`] a hardware GPU adapter when wgpu
    /// sees one (or `WGPU_ADAPTER_NAME` names one), else the CPU path ([`choose_auto`]).
    pub fn resolve(self) -> Chosen {
        match self {
            Backend::Auto => {
                let name = std::env::var("WGPU_ADAPTER_NAME")
                    .ok()
                    .filter(|s| !s.is_empty());
                choose_auto(&gpu::list_adapters(), name.as_deref())
            }
            backend => Chosen { backend, why: None },
        }
    }
}

/// Whether an adapter renders in software on the CPU (llvmpipe/lavapipe, WARP, SwiftShader):
/// the CPU path beats it by far, so `auto` uses one only when asked for by name.
pub fn is_software(adapter: &gpu::AdapterSummary) -> bool {
    let name = adapter.name.to_lowercase();
    adapter.device_type == "Cpu"
        || ["llvmpipe", "lavapipe", "swiftshader", "basic render driver"]
            .iter()
            .any(|s| name.contains(s))
}

/// `auto`'s choice among `adapters` (best first, as [`gpu::list_adapters`] lists them):
/// `WGPU_ADAPTER_NAME` (`name_filter`) means the GPU path on that adapter, whatever it is;
/// otherwise the first hardware adapter; otherwise the CPU path, saying what was seen.
pub fn choose_auto(adapters: &[gpu::AdapterSummary], name_filter: Option<&str>) -> Chosen {
    let gpu = |why: String| Chosen {
        backend: Backend::Gpu,
        why: Some(why),
    };
    if let Some(name) = name_filter {
        return gpu(format!(
            "backend auto: the GPU, on the adapter WGPU_ADAPTER_NAME={name} names"
        ));
    }
    if let Some(a) = adapters.iter().find(|a| !is_software(a)) {
        return gpu(format!("backend auto: the GPU, {a}"));
    }
    let why = match adapters {
        [] => "backend auto: the CPU path, since wgpu found no GPU adapter (--backend gpu needs one)"
            .to_string(),
        software => format!(
            "backend auto: the CPU path, since the only adapters are software renderers ({}), much slower than the CPU path; --backend gpu uses them anyway",
            software
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Chosen {
        backend: Backend::Cpu,
        why: Some(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, device_type: &str) -> gpu::AdapterSummary {
        gpu::AdapterSummary {
            name: name.into(),
            backend: "Vulkan".into(),
            device_type: device_type.into(),
            driver: String::new(),
            max_storage_binding_bytes: 1 << 27,
            max_buffer_bytes: 1 << 30,
            max_workgroup_storage_bytes: 1 << 15,
            shader_f16: true,
            subgroup: true,
        }
    }

    #[test]
    fn auto_takes_hardware_else_the_cpu() {
        let lavapipe = adapter("llvmpipe (LLVM 15.0.6, 256 bits)", "Cpu");
        let swiftshader = adapter("SwiftShader Device (Subzero)", "Other");
        let warp = adapter("Microsoft Basic Render Driver", "Other");
        let h100 = adapter("NVIDIA H100 80GB HBM3", "DiscreteGpu");
        let igpu = adapter("Intel(R) UHD Graphics 630", "IntegratedGpu");
        for sw in [&lavapipe, &swiftshader, &warp] {
            assert!(is_software(sw), "{sw}");
        }
        assert!(!is_software(&h100) && !is_software(&igpu));

        let only_software = choose_auto(&[lavapipe.clone(), swiftshader.clone()], None);
        assert_eq!(only_software.backend, Backend::Cpu);
        let why = only_software.why.unwrap();
        assert!(
            why.contains("llvmpipe") && why.contains("CPU path"),
            "{why}"
        );

        let none = choose_auto(&[], None);
        assert_eq!(none.backend, Backend::Cpu);
        assert!(none.why.unwrap().contains("no GPU adapter"));

        // A hardware adapter wins wherever it is listed.
        let hw = choose_auto(&[lavapipe.clone(), igpu.clone()], None);
        assert_eq!(hw.backend, Backend::Gpu);
        assert!(hw.why.unwrap().contains("Intel"));

        // Asking for an adapter by name means the GPU path, software or not.
        let named = choose_auto(&[lavapipe], Some("llvmpipe"));
        assert_eq!(named.backend, Backend::Gpu);
        assert!(named.why.unwrap().contains("WGPU_ADAPTER_NAME=llvmpipe"));

        // Explicit backends resolve to themselves without looking at adapters.
        for b in [Backend::Gpu, Backend::Cpu, Backend::CpuReference] {
            assert_eq!(
                b.resolve(),
                Chosen {
                    backend: b,
                    why: None
                }
            );
        }
    }
}
