//! The compute kernels, one file each beside one WGSL file in `shaders/` (file name = kernel =
//! entry point). Each kernel has a `#[repr(C)]` Pod params struct mirroring the shader's
//! uniform block (sizes asserted at compile time), an explicit bind-group layout in the shader's
//! binding order, and `encode`, which records one dispatch.
//!
//! [`Kernels`] builds every pipeline once at start-up.

mod combine;
mod finish;
mod matmul;
mod normalize;
mod topk;
mod weights;

pub use combine::{CombineKernel, CombineParams};
pub use finish::{FinishKernel, FinishParams};
pub use matmul::{MatmulKernel, MatmulParams};
pub use normalize::{NormalizeKernel, NormalizeParams};
pub use topk::{TopKKernel, TopKParams, MAX_TOP_K};
pub use weights::{WeightsKernel, WeightsParams};

use crate::backend::gpu::{Gpu, ParamArena};

/// WGSL source of every kernel, by name (also walked by the naga validation test).
pub const SHADERS: &[(&str, &str)] = &[
    ("normalize", include_str!("../../shaders/normalize.wgsl")),
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    ("topk", include_str!("../../shaders/topk.wgsl")),
    ("weights", include_str!("../../shaders/weights.wgsl")),
    ("combine", include_str!("../../shaders/combine.wgsl")),
    ("finish", include_str!("../../shaders/finish.wgsl")),
];

fn source(name: &str) -> &'static str {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .expect("kernel listed in SHADERS")
}

/// How a binding is accessed; bindings are numbered in the order given.
#[derive(Clone, Copy)]
enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// A compiled kernel: its pipeline and explicit bind-group layout.
struct Pipeline {
    name: &'static str,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

impl Pipeline {
    fn new(gpu: &Gpu, name: &'static str, access: &[Access]) -> Pipeline {
        let device = &gpu.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source(name).into()),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = access
            .iter()
            .enumerate()
            .map(|(i, a)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match a {
                    Access::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Access::Read | Access::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: matches!(a, Access::Read),
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(name),
            compilation_options: wgpu::PipelineCompilationOptions::default(),
            cache: None,
        });
        Pipeline {
            name,
            layout,
            pipeline,
        }
    }

    /// Records one dispatch with `params` (queued into `arena`) followed by `buffers` as the
    /// bindings after the uniform, in layout order.
    fn dispatch<P: bytemuck::Pod>(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        arena: &mut ParamArena,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        if groups.0 == 0 || groups.1 == 0 {
            return;
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(arena.push(gpu, params)),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(self.name),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
    }
}

/// Every kernel, built once.
pub struct Kernels {
    /// Row L2 normalisation.
    pub normalize: NormalizeKernel,
    /// Tiled f32 GEMM (similarity, Gram, dense numerator).
    pub matmul: MatmulKernel,
    /// Running top-k merge.
    pub topk: TopKKernel,
    /// Selection → weights.
    pub weights: WeightsKernel,
    /// Weighted sum of source rows.
    pub combine: CombineKernel,
    /// Division by the weight sum, guards.
    pub finish: FinishKernel,
}

impl Kernels {
    /// Builds every pipeline.
    pub fn new(gpu: &Gpu) -> Kernels {
        Kernels {
            normalize: NormalizeKernel::new(gpu),
            matmul: MatmulKernel::new(gpu),
            topk: TopKKernel::new(gpu),
            weights: WeightsKernel::new(gpu),
            combine: CombineKernel::new(gpu),
            finish: FinishKernel::new(gpu),
        }
    }
}
