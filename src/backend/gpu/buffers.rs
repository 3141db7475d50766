//! Device buffers of one run, allocated once from the plan's [`BufferPlan`] (the same table the
//! planner budgets with) and reused for every tile; poisoning for tests.

use super::context::{Gpu, Readback};
use super::engine::{Engine, POISON};
use crate::plan::{BufferPlan, BufferSpec, BufferUse};

/// Device buffers of one run; see [`BufferPlan`] for what each holds.
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
    pub fn new(gpu: &Gpu, plan: &BufferPlan) -> Buffers {
        let s = |spec: &BufferSpec| storage(gpu, spec);
        debug_assert_eq!(plan.readback.usage, BufferUse::Readback);
        Buffers {
            hm_raw: s(&plan.hm_raw),
            hm_hat: s(&plan.hm_hat),
            hm_status: s(&plan.hm_status),
            ho_raw: [s(&plan.ho_raw[0]), s(&plan.ho_raw[1])],
            ho_hat: s(&plan.ho_hat),
            ho_status: s(&plan.ho_status),
            eo_raw: [s(&plan.eo_raw[0]), s(&plan.eo_raw[1])],
            numer: s(&plan.numer),
            out: s(&plan.out),
            status: s(&plan.status),
            scores: s(&plan.scores),
            best_score: s(&plan.best_score),
            best_index: s(&plan.best_index),
            weight: s(&plan.weight),
            guard: s(&plan.guard),
            gram: s(&plan.gram),
            readback: Readback::new(gpu, plan.readback.name, plan.readback.bytes),
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
