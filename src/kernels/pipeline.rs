//! What every kernel is built from: its [`Shader`] (WGSL source and override values), the
//! explicit bind-group layout and pipeline ([`Pipeline`]), and the [`Recorder`] a dispatch is
//! recorded into.

use super::dispatch::ParamArena;

/// What several shaders share (status codes, dtypes, element decoding, `is_finite`): composed in
/// front of every kernel's own source by [`Shader::source`].
pub const COMMON_WGSL: &str = include_str!("../../shaders/common.wgsl");

/// One kernel's shader: its name (= file stem = entry point), WGSL source and the values of its
/// `override` constants.
#[derive(Debug, Clone, Copy)]
pub struct Shader {
    /// Kernel name, file stem and entry point.
    pub name: &'static str,
    /// The WGSL source, embedded from `shaders/{name}.wgsl`.
    pub wgsl: &'static str,
    /// `(override name, value)` for every override the shader declares.
    pub constants: &'static [(&'static str, f64)],
}

impl Shader {
    /// The source a pipeline is built from: [`COMMON_WGSL`], then the kernel's own file.
    pub fn source(&self) -> String {
        format!("{COMMON_WGSL}\n{}", self.wgsl)
    }
}

/// How a storage binding is accessed; storage bindings follow the params uniform (binding 0) and
/// are numbered in the order given.
#[derive(Clone, Copy)]
pub(super) enum Access {
    Read,
    ReadWrite,
}

/// Where a kernel records its dispatch: the device and queue (handed in by the backend, which
/// owns them), the open encoder and the uniform arena of the current submission.
pub struct Recorder<'a> {
    /// The device bind groups are created on.
    pub device: &'a wgpu::Device,
    /// The queue parameter blocks are written through.
    pub queue: &'a wgpu::Queue,
    /// The open command encoder.
    pub encoder: &'a mut wgpu::CommandEncoder,
    /// Uniform slots of the current submission.
    pub arena: &'a mut ParamArena,
}

/// A compiled kernel: its pipeline and explicit bind-group layout.
pub(super) struct Pipeline {
    name: &'static str,
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::ComputePipeline,
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType, min: u64) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: std::num::NonZeroU64::new(min),
        },
        count: None,
    }
}

impl Pipeline {
    /// Builds `shader` with a `P` params uniform at binding 0 followed by `storage`.
    pub(super) fn new<P: bytemuck::Pod>(
        device: &wgpu::Device,
        shader: &Shader,
        storage: &[Access],
    ) -> Pipeline {
        let name = shader.name;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(shader.source().into()),
        });
        let params_bytes = std::mem::size_of::<P>() as u64;
        let mut entries = vec![layout_entry(
            0,
            wgpu::BufferBindingType::Uniform,
            params_bytes,
        )];
        entries.extend(storage.iter().enumerate().map(|(i, a)| {
            let read_only = matches!(a, Access::Read);
            layout_entry(
                i as u32 + 1,
                wgpu::BufferBindingType::Storage { read_only },
                0,
            )
        }));
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
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: shader.constants,
                ..Default::default()
            },
            cache: None,
        });
        Pipeline {
            name,
            layout,
            pipeline,
        }
    }

    /// Records one dispatch with `params` (queued into the arena) followed by `buffers` as the
    /// bindings after the uniform, in layout order.
    pub(super) fn dispatch<P: bytemuck::Pod>(
        &self,
        rec: &mut Recorder,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        if groups.0 == 0 || groups.1 == 0 {
            return;
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(rec.arena.push(rec.queue, params)),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        let bind_group = rec.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        });
        let mut pass = rec
            .encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(self.name),
                timestamp_writes: None,
            });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
    }
}
