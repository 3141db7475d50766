//! The one GPU context: adapter choice, device, queue and limits, plus the buffer helpers every
//! kernel uses (storage buffers, padded uploads, a uniform arena, timed readback).
//!
//! Adapter choice honours `WGPU_BACKEND` (e.g. `vulkan`, `gl`) and `WGPU_ADAPTER_NAME` (a
//! case-insensitive substring of the adapter name); otherwise the highest-performance adapter
//! wins (discrete > integrated > virtual > CPU). The device is opened with the adapter's own
//! limits, since wgpu's defaults cap a storage binding at 128 MiB and a buffer at 256 MiB.

use super::faults;
use crate::error::{Error, Result};
use std::time::Duration;

/// How long a readback may wait for the GPU before it is reported as hung.
const READBACK_TIMEOUT: Duration = Duration::from_secs(600);

/// A summary of one adapter, as printed by `clp-gpu devices` and stored in reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    /// Adapter name.
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Device type (DiscreteGpu, IntegratedGpu, Cpu, ...).
    pub device_type: String,
    /// Driver name and version information.
    pub driver: String,
    /// Largest storage-buffer binding in bytes.
    pub max_storage_binding_bytes: u64,
    /// Largest buffer in bytes.
    pub max_buffer_bytes: u64,
    /// Workgroup memory in bytes.
    pub max_workgroup_storage_bytes: u32,
    /// Whether the adapter offers SHADER_F16.
    pub shader_f16: bool,
    /// Whether the adapter offers SUBGROUP.
    pub subgroup: bool,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroup_storage_bytes: limits.max_compute_workgroup_storage_size,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroup: features.contains(wgpu::Features::SUBGROUP),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

/// The GPU context: created once, borrowed by everything that touches the device.
pub struct Gpu {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Limits the device was opened with (the adapter's own).
    pub limits: wgpu::Limits,
    summary: AdapterSummary,
    /// Errors no scope caught, and device loss (see [`faults`]).
    pub(super) faults: faults::Faults,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = default_backends();
    wgpu::Instance::new(desc.with_env())
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` orders devices for the
/// application, probing Wayland/X11 on the way; on a headless machine that prints
/// `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` twice when the instance is
/// created. We choose the adapter ourselves, so the layer has nothing to do: it is switched off
/// (`NODEVICE_SELECT=1`) for this process, unless the user configured it (`NODEVICE_SELECT` or
/// `MESA_VK_DEVICE_SELECT` set).
///
/// The Vulkan loader reads the variable when an instance is created, so it can only be set in
/// the environment, and setting a variable is sound only while no other thread reads or writes
/// the environment (glibc's `getenv` is not synchronised with `setenv`). A library cannot know
/// that inside `Gpu::new` (the Python module runs it on a worker thread beside the interpreter's),
/// so the front ends call this once, at the one moment they can vouch for: the CLI as the first
/// statement of `main`, before any thread exists; the Python module in its init, at import,
/// while the importing thread holds the GIL and before the module has started any thread of its
/// own. A library user who skips it only sees the layer's messages.
///
/// # Safety
///
/// No other thread may read or write the environment while this runs: call it before the
/// process starts threads.
pub unsafe fn quiet_mesa_device_select() {
    let user_set = ["NODEVICE_SELECT", "MESA_VK_DEVICE_SELECT"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    if !user_set {
        // SAFETY: the caller guarantees no other thread touches the environment meanwhile.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// `WGPU_BACKEND` if set, else the primary backends (Vulkan, Metal, DX12): GL is opt-in, since
/// probing it only adds noise where Vulkan works.
fn default_backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Every adapter wgpu can see (after `WGPU_BACKEND` filtering), best first.
pub fn list_adapters() -> Vec<AdapterSummary> {
    sorted_adapters(&instance())
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

/// The adapter to use: the first matching `WGPU_ADAPTER_NAME`, else the best.
fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let adapters = sorted_adapters(instance);
    let name_filter = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|s| !s.is_empty());
    let chosen = match &name_filter {
        Some(want) => {
            let want = want.to_lowercase();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&want))
        }
        None => adapters.into_iter().next(),
    };
    chosen.ok_or_else(|| Error::NoAdapter {
        filter: match (&name_filter, std::env::var("WGPU_BACKEND")) {
            (Some(n), _) => format!(" matching WGPU_ADAPTER_NAME={n}"),
            (None, Ok(b)) => format!(" for WGPU_BACKEND={b}"),
            _ => String::new(),
        },
    })
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(default_backends()));
    // Stable order: by performance class, then backend (Vulkan first), then name.
    adapters.sort_by_key(|a| {
        let i = a.get_info();
        (
            rank(i.device_type),
            i.backend != wgpu::Backend::Vulkan,
            i.name,
        )
    });
    adapters
}

impl Gpu {
    /// Chooses an adapter (see the module docs) and opens a device with its limits.
    pub fn new() -> Result<Gpu> {
        Self::open(|_| {})
    }

    /// Test hook (a fault switch): opens the device with limits lowered by `lower`, while the
    /// planner keeps seeing the adapter's own limits, so a run allocates what the device
    /// refuses; and the adapter check sees the lowered limits. Never used by the CLI.
    #[doc(hidden)]
    pub fn with_device_limits(lower: impl FnOnce(&mut wgpu::Limits)) -> Result<Gpu> {
        Self::open(lower)
    }

    fn open(lower: impl FnOnce(&mut wgpu::Limits)) -> Result<Gpu> {
        let adapter = choose_adapter(&instance())?;
        let summary = AdapterSummary::of(&adapter);
        let limits = adapter.limits();
        let mut requested = limits.clone();
        lower(&mut requested);
        faults::check_adapter(&adapter, &summary.name, &requested)?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("clp-gpu device"),
            required_features: wgpu::Features::empty(),
            required_limits: requested,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| Error::RequestDevice {
            adapter: summary.name.clone(),
            source,
        })?;
        let faults = faults::Faults::watch(&device);
        Ok(Gpu {
            device,
            queue,
            limits,
            summary,
            faults,
        })
    }

    /// Runs `f` (pipeline creation, allocation, a submission) inside wgpu error scopes; what
    /// they catch, an earlier uncaught error or a lost device is an [`Error::GpuFault`] naming
    /// `during`.
    pub fn checked<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        (self.faults).scoped(&self.device, (&self.summary.name, during), f)
    }

    /// An uncaught GPU error or device loss recorded so far, as an error naming `during`.
    pub fn check_faults(&self, during: &str) -> Result<()> {
        self.faults.check(&self.summary.name, during)
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Largest storage binding, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A storage buffer of `size_bytes` (rounded up to 4, at least 4) usable as copy source and
    /// destination.
    pub fn storage_buffer(&self, label: &str, size_bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size_bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// Queues a write of `bytes` at offset 0 of `buffer`, padding a ragged tail (f16 data with
    /// an odd element count) to the 4-byte copy alignment without copying the bulk.
    pub fn upload(&self, buffer: &wgpu::Buffer, bytes: &[u8]) {
        let aligned = bytes.len() & !3;
        if aligned > 0 {
            self.queue.write_buffer(buffer, 0, &bytes[..aligned]);
        }
        if aligned < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - aligned].copy_from_slice(&bytes[aligned..]);
            self.queue.write_buffer(buffer, aligned as u64, &tail);
        }
    }

    /// Waits for all submitted work (for benchmarks that time GPU work).
    pub fn wait(&self) -> Result<()> {
        self.wait_for(None)
    }

    /// Waits until submission `index` (all work when `None`) has finished.
    pub fn wait_for(&self, index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: Some(READBACK_TIMEOUT),
            })
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        self.check_faults("waiting for the GPU")
    }
}

/// A reusable map-readable buffer: copy regions in, then [`Readback::read`] them out.
pub struct Readback {
    buffer: wgpu::Buffer,
    size_bytes: u64,
}

impl Readback {
    /// A readback buffer of `size_bytes`.
    pub fn new(gpu: &Gpu, label: &str, size_bytes: u64) -> Readback {
        let size_bytes = size_bytes.max(4).next_multiple_of(4);
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Readback { buffer, size_bytes }
    }

    /// The buffer to copy into.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Maps the first `len_bytes`, waits (with a timeout), and hands the bytes to `f`.
    pub fn read<T>(&self, gpu: &Gpu, len_bytes: u64, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        if len_bytes == 0 {
            return Ok(f(&[]));
        }
        let len = len_bytes.next_multiple_of(4);
        let slice = self.buffer.slice(0..len);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        gpu.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(READBACK_TIMEOUT),
            })
            .map_err(|e| Error::Gpu(format!("waiting for readback: {e}")))?;
        gpu.check_faults("reading results back")?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| Error::Gpu("readback was never mapped".into()))?
            .map_err(|e| Error::Gpu(format!("mapping readback buffer: {e}")))?;
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("reading mapped range: {e}")))?;
            f(&view[..len_bytes as usize])
        };
        self.buffer.unmap();
        Ok(out)
    }
}
