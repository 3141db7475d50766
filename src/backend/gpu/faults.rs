//! GPU faults as errors, never panics. Pipeline creation, buffer allocation and every
//! submission run inside wgpu error scopes (`Gpu::checked`, built on [`Faults::scoped`]); what a scope catches (a
//! validation error, out of memory, an internal error) becomes an [`Error::GpuFault`] naming
//! what was being done and the fix. Errors outside any scope (wgpu's default would panic) and a
//! lost device are recorded by the handlers installed when the device is opened
//! ([`Faults::watch`]) and reported by the next checked call or wait (`Gpu::checked`, `Gpu::check_faults`). An adapter that cannot run
//! the kernels at all (no compute shaders, too few storage bindings) is refused before the
//! device is requested ([`check_adapter`]).

use crate::error::{one_line, Error, Result};
use std::sync::{Arc, Mutex};

/// Storage buffers the widest kernel binds per shader stage (`finish.wgsl`: five).
pub const REQUIRED_STORAGE_BUFFERS: u32 = 5;

/// The first fault no error scope caught: `(kind, message)`.
#[derive(Clone, Default)]
pub(crate) struct Faults(Arc<Mutex<Option<(&'static str, String)>>>);

impl Faults {
    /// Installs the uncaptured-error and device-lost handlers on `device`.
    pub fn watch(device: &wgpu::Device) -> Faults {
        let faults = Faults::default();
        let slot = faults.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            slot.record(kind_of(&e), &e.to_string())
        }));
        let slot = faults.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                slot.record(LOST, &msg);
            }
        });
        faults
    }

    fn record(&self, kind: &'static str, msg: &str) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some((kind, one_line(msg)));
        }
    }

    fn first(&self) -> Option<(&'static str, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

const LOST: &str = "device lost";

fn kind_of(e: &wgpu::Error) -> &'static str {
    match e {
        wgpu::Error::OutOfMemory { .. } => "out of memory",
        wgpu::Error::Validation { .. } => "validation error",
        wgpu::Error::Internal { .. } => "internal error",
    }
}

/// What the user can do about a fault of `kind`.
fn fix_for(kind: &str) -> &'static str {
    match kind {
        "out of memory" => "lower --gpu-memory, close other programs using the GPU, or use --backend cpu",
        LOST => "the driver reset or lost the device: retry with a lower --gpu-memory, or use --backend cpu",
        _ => "this is a bug in clp-gpu (please report this line); --backend cpu avoids the GPU",
    }
}

impl Faults {
    /// Runs `f` inside error scopes on `device`; an error they catch, or an earlier uncaught
    /// one or a lost device, is an [`Error::GpuFault`] naming `during` on `adapter`.
    pub fn scoped<T>(
        &self,
        device: &wgpu::Device,
        (adapter, during): (&str, &str),
        f: impl FnOnce() -> T,
    ) -> Result<T> {
        self.check(adapter, during)?;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        // Scopes pop innermost first.
        let caught = [internal.pop(), validation.pop(), oom.pop()];
        for scope in caught {
            if let Some(e) = pollster::block_on(scope) {
                return Err(fault(
                    adapter,
                    during,
                    kind_of(&e),
                    &one_line(&e.to_string()),
                ));
            }
        }
        self.check(adapter, during)?;
        Ok(out)
    }

    /// An uncaught error or device loss recorded so far, as an error naming `during`.
    pub fn check(&self, adapter: &str, during: &str) -> Result<()> {
        match self.first() {
            Some((kind, msg)) => Err(fault(adapter, during, kind, &msg)),
            None => Ok(()),
        }
    }
}

fn fault(adapter: &str, during: &str, kind: &'static str, msg: &str) -> Error {
    Error::GpuFault {
        adapter: adapter.to_string(),
        during: during.to_string(),
        kind,
        msg: msg.to_string(),
        fix: fix_for(kind),
    }
}

/// Refuses an adapter that cannot run the kernels with `limits` (those the device would be
/// opened with): no compute shaders, or fewer storage buffers per stage than the kernels bind.
pub(super) fn check_adapter(
    adapter: &wgpu::Adapter,
    name: &str,
    limits: &wgpu::Limits,
) -> Result<()> {
    let unsupported = |what: String| Error::GpuUnsupported {
        adapter: name.to_string(),
        what,
    };
    let caps = adapter.get_downlevel_capabilities();
    if !caps.flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
        return Err(unsupported("it has no compute shaders".into()));
    }
    let storage = limits.max_storage_buffers_per_shader_stage;
    if storage < REQUIRED_STORAGE_BUFFERS {
        return Err(unsupported(format!(
            "it binds at most {storage} storage buffers per shader stage and the kernels need {REQUIRED_STORAGE_BUFFERS}"
        )));
    }
    Ok(())
}
