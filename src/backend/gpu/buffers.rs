//! Device buffers of one run, allocated once from the plan's [`BufferTable`] (the same table the
//! planner budgets with) and reused for every tile; poisoning for tests.

use super::context::{Gpu, Readback};
use super::engine::{Engine, POISON};
use crate::plan::{BufferSpec, BufferTable, BufferUse};

/// Device buffers of one run; see [`BufferTable`] for what each holds.
pub(super) struct Buffers {
    pub hm_raw: wgpu::Buffer,
    pub hm_hat: wgpu::Buffer,
    pub hm_status: wgpu::Buffer,
    pub ho_raw: [wgpu::Buffer; 2],
    pub ho_hat: wgpu::Buffer,
    pub ho_status: wgpu::Buffer,
    pub eo_raw: [wgpu::Buffer; 2],
    pub numer: wgpu::Buffer,
    pub out: wgpu::Buffer,
    pub status: wgpu::Buffer,
    pub scores: wgpu::Buffer,
    pub best_score: wgpu::Buffer,
    pub best_index: wgpu::Buffer,
    pub weight: wgpu::Buffer,
    pub guard: wgpu::Buffer,
    pub gram: wgpu::Buffer,
    pub readback: Readback,
}

fn storage(gpu: &Gpu, spec: &BufferSpec) -> wgpu::Buffer {
    debug_assert_eq!(spec.usage, BufferUse::Storage, "{}", spec.name);
    gpu.storage_buffer(spec.name, spec.bytes)
}

impl Buffers {
    /// Allocates every buffer of `plan`.
    pub fn new(gpu: &Gpu, table: &BufferTable) -> Buffers {
        let s = |spec: &BufferSpec| storage(gpu, spec);
        debug_assert_eq!(table.readback.usage, BufferUse::Readback);
        Buffers {
            hm_raw: s(&table.hm_raw),
            hm_hat: s(&table.hm_hat),
            hm_status: s(&table.hm_status),
            ho_raw: [s(&table.ho_raw[0]), s(&table.ho_raw[1])],
            ho_hat: s(&table.ho_hat),
            ho_status: s(&table.ho_status),
            eo_raw: [s(&table.eo_raw[0]), s(&table.eo_raw[1])],
            numer: s(&table.numer),
            out: s(&table.out),
            status: s(&table.status),
            scores: s(&table.scores),
            best_score: s(&table.best_score),
            best_index: s(&table.best_index),
            weight: s(&table.weight),
            guard: s(&table.guard),
            gram: s(&table.gram),
            readback: Readback::new(gpu, table.readback.name, table.readback.bytes),
        }
    }
}

impl Engine {
    /// With [`super::EngineOptions::poison`], fills `buffers` with NaN.
    pub(super) fn poison(&self, buffers: &[&wgpu::Buffer]) {
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
}
